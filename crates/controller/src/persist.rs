//! A model's rate history to and from `status.demandHistory`, and from Prometheus range
//! queries (pure), so a restarted controller or a new leader keeps the history the
//! forecast needs.
//!
//! ```text
//!  CycleState (wvo_demand::History, UNIX seconds) ─► history_to_status (the newest
//!      STATUS_HISTORY_BUCKETS, 0.01 req/s) ─► status.demandHistory, at most every
//!      HISTORY_PERSIST_SECONDS (history_due)
//!  1. status.demandHistory ─► history_from_status ─► CycleState::restore_demand_history
//!      (when this controller has no history of the model, or an older one)
//!  2. Prometheus range query (once per model; RangeRestores: a failure is tried again
//!      after RANGE_RETRY_SECONDS) ─► history_from_rates ─► fill_history (the buckets the
//!      controller or the status lack) ─► CycleState::restore_demand_history
//! ```

use std::collections::{BTreeMap, BTreeSet};
use wvo_api::crd::DemandHistoryStatus;
use wvo_collector::RatePoint;
use wvo_demand::history::Bucket;
use wvo_demand::History;

/// Most buckets written to a status: two days of 60 s buckets, all the history a daily
/// period needs to be found again (about 35 kB of JSON).
/// The CRD's `maxItems` of `status.demandHistory.maxRps` and `meanRps`.
pub const STATUS_HISTORY_BUCKETS: usize = wvo_api::crd::MAX_HISTORY_BUCKETS as usize;
/// The history in a status is rewritten once it lags the controller's by this much, s.
pub const HISTORY_PERSIST_SECONDS: f64 = 300.0;
/// Marks a bucket with no observation in a status.
const EMPTY: f64 = -1.0;

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The status form of `history`: its newest [`STATUS_HISTORY_BUCKETS`] buckets, rates
/// rounded to 0.01 req/s; None when it holds nothing.
pub fn history_to_status(history: &History) -> Option<DemandHistoryStatus> {
    let start = history.start_seconds()?;
    let buckets = history.buckets();
    let skip = buckets.len().saturating_sub(STATUS_HISTORY_BUCKETS);
    let kept = &buckets[skip..];
    let rate = |b: &Bucket, v: f64| if b.samples > 0 { round2(v) } else { EMPTY };
    Some(DemandHistoryStatus {
        bucket_seconds: history.bucket_seconds(),
        start_seconds: start + skip as f64 * history.bucket_seconds(),
        max_rps: kept.iter().map(|b| rate(b, b.max_rps)).collect(),
        mean_rps: kept.iter().map(|b| rate(b, b.mean_rps)).collect(),
    })
}

/// The history a status holds, in a history of `capacity` buckets (a restored bucket counts
/// as one observation; a missing mean is taken as the bucket's max; an [`EMPTY`] or other
/// negative or non-finite rate makes the bucket empty, as [`History::from_buckets`] does).
/// None when the status holds no usable bucket.
pub fn history_from_status(saved: &DemandHistoryStatus, capacity: usize) -> Option<History> {
    let buckets = saved.max_rps.iter().enumerate().map(|(i, &max)| Bucket {
        max_rps: max,
        mean_rps: saved.mean_rps.get(i).copied().unwrap_or(max),
        samples: 1,
    });
    let h = History::from_buckets(saved.bucket_seconds, capacity, saved.start_seconds, buckets);
    (h.buckets().iter().any(|b| b.samples > 0) && h.bucket_seconds() == saved.bucket_seconds)
        .then_some(h)
}

/// Start of the newest bucket a status holds, s.
fn saved_newest(saved: &DemandHistoryStatus) -> Option<f64> {
    let n = saved.max_rps.len();
    (n > 0 && saved.start_seconds.is_finite())
        .then(|| saved.start_seconds + (n - 1) as f64 * saved.bucket_seconds)
}

/// True when the status's history should be rewritten from `ours`: it has none, another
/// bucket width, or lags `ours` by [`HISTORY_PERSIST_SECONDS`] or more.
pub fn history_due(saved: Option<&DemandHistoryStatus>, ours: &History) -> bool {
    let Some(newest) = ours.newest_start_seconds() else {
        return false;
    };
    match saved {
        None => true,
        Some(s) if s.bucket_seconds != ours.bucket_seconds() => true,
        Some(s) => saved_newest(s).is_none_or(|t| newest - t >= HISTORY_PERSIST_SECONDS),
    }
}

/// True when a history saved in a status is newer than `ours` (none, or its newest bucket
/// is older): a controller restores it before planning (fresh start, new leader, or a
/// former leader back after another one wrote).
pub fn saved_is_newer(saved: &DemandHistoryStatus, ours: Option<&History>) -> bool {
    let Some(theirs) = saved_newest(saved) else {
        return false;
    };
    ours.and_then(History::newest_start_seconds)
        .is_none_or(|o| o < theirs)
}

/// A failed read of a model's past from Prometheus is tried again after this long, s.
pub const RANGE_RETRY_SECONDS: f64 = 600.0;

/// A history of at most `capacity` buckets of `bucket_seconds` from a rate series (UNIX
/// seconds, req/s), as a range query returns it: each point is folded into the bucket
/// holding its time, as the controller folds what it observes each cycle (the bucket's
/// max and mean over its points); buckets without a point are empty; NaN, infinite or
/// negative rates are skipped (a gap, not 0). None when no point is usable.
pub fn history_from_rates(
    points: &[RatePoint],
    bucket_seconds: f64,
    capacity: usize,
) -> Option<History> {
    let mut sorted: Vec<RatePoint> = points.to_vec();
    sorted.sort_by(|a, b| a.at_seconds.total_cmp(&b.at_seconds));
    let mut h = History::new(bucket_seconds, capacity);
    for p in &sorted {
        h.record(p.at_seconds, p.rps);
    }
    h.buckets().iter().any(|b| b.samples > 0).then_some(h)
}

/// `ours` (the controller's own history, or the one restored from the status) with the
/// buckets it lacks taken from `past` (e.g. read from Prometheus): every bucket `ours`
/// observed is kept as it is, every other bucket of either span comes from `past` (the
/// minutes since the status was last written, hours no controller ran, a status that held
/// nothing). At most `ours`' capacity, the newest kept. With another bucket width,
/// `ours` unchanged.
///
/// Where both have a bucket, ours wins: it was measured the way every later bucket will
/// be (the controller's arrival rate each cycle, the bucket's peak over its cycles),
/// while one range-query point per bucket reads the same load a little lower at its peak.
pub fn fill_history(ours: &History, past: &History) -> History {
    let w = ours.bucket_seconds();
    if past.bucket_seconds() != w {
        return ours.clone();
    }
    let index = |t: f64| (t / w).round() as i64;
    let span = |h: &History| Some((index(h.start_seconds()?), index(h.newest_start_seconds()?)));
    let Some((p0, p1)) = span(past) else {
        return ours.clone();
    };
    let (first, last) = match span(ours) {
        Some((o0, o1)) => (o0.min(p0), o1.max(p1)),
        None => (p0, p1),
    };
    let first = first.max(last - ours.capacity() as i64 + 1);
    let observed = |h: &History, k: i64| -> Option<Bucket> {
        let (h0, _) = span(h)?;
        let b = *h.buckets().get(usize::try_from(k - h0).ok()?)?;
        (b.samples > 0).then_some(b)
    };
    let buckets = (first..=last).map(|k| {
        observed(ours, k)
            .or_else(|| observed(past, k))
            .unwrap_or_default()
    });
    History::from_buckets(w, ours.capacity(), first as f64 * w, buckets)
}

/// Which models' histories were read from the metrics source's past (Prometheus range
/// queries), so each is read once, and a failed read is tried again only after
/// [`RANGE_RETRY_SECONDS`] (pure: time is an input). Keys are VAs (namespace, name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeRestores {
    /// Per VA: None once read (whether the source had data or not), else when the last
    /// read failed, UNIX s.
    tried: BTreeMap<(String, String), Option<f64>>,
}

impl RangeRestores {
    /// True when VA `key`'s past should be read at `now_seconds`: never tried, or the last
    /// try failed [`RANGE_RETRY_SECONDS`] or more ago (or in the future: a clock step).
    pub fn due(&self, key: &(String, String), now_seconds: f64) -> bool {
        match self.tried.get(key) {
            None => true,
            Some(None) => false,
            Some(Some(failed)) => {
                now_seconds - failed >= RANGE_RETRY_SECONDS || now_seconds < *failed
            }
        }
    }

    /// VA `key`'s past was read (restored, or the source has none): not read again.
    pub fn done(&mut self, key: (String, String)) {
        self.tried.insert(key, None);
    }

    /// Reading VA `key`'s past failed at `now_seconds`.
    pub fn failed(&mut self, key: (String, String), now_seconds: f64) {
        self.tried.insert(key, Some(now_seconds));
    }

    /// Forgets the VAs not in `live` (deleted ones).
    pub fn retain(&mut self, live: &BTreeSet<(String, String)>) {
        self.tried.retain(|k, _| live.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_780_000_020.0;

    fn history() -> History {
        let mut h = History::new(60.0, 100);
        h.record(T0, 10.123);
        h.record(T0 + 30.0, 20.0);
        // One empty bucket, then one more.
        h.record(T0 + 130.0, 5.0);
        h
    }

    #[test]
    fn a_history_survives_the_round_trip_through_a_status() {
        let h = history();
        let s = history_to_status(&h).expect("status");
        assert_eq!(s.bucket_seconds, 60.0);
        assert_eq!(s.start_seconds, (T0 / 60.0).floor() * 60.0);
        assert_eq!(s.max_rps, vec![20.0, EMPTY, 5.0]);
        assert_eq!(s.mean_rps, vec![15.06, EMPTY, 5.0]);
        let back = history_from_status(&s, 100).expect("history");
        assert_eq!(back.max_between(0.0, f64::MAX), Some(20.0));
        assert_eq!(back.max_between(T0 + 60.0, T0 + 90.0), None);
        assert_eq!(back.newest_start_seconds(), h.newest_start_seconds());
        assert_eq!(back.means(), vec![15.06, 15.06, 5.0]);
        // Through JSON too (what the API server stores).
        let json = serde_json::to_string(&s).expect("json");
        assert!(json.contains("\"maxRps\""), "{json}");
        let s2: DemandHistoryStatus = serde_json::from_str(&json).expect("parse");
        assert_eq!(s2, s);
    }

    #[test]
    fn the_status_keeps_the_newest_buckets_only() {
        let mut h = History::new(60.0, 5_000);
        for i in 0..4_000 {
            h.record(T0 + f64::from(i) * 60.0, 1.0);
        }
        let s = history_to_status(&h).expect("status");
        assert_eq!(s.max_rps.len(), STATUS_HISTORY_BUCKETS);
        let back = history_from_status(&s, 5_000).expect("history");
        assert_eq!(back.newest_start_seconds(), h.newest_start_seconds());
        assert_eq!(back.span_seconds(), STATUS_HISTORY_BUCKETS as f64 * 60.0);
    }

    #[test]
    fn an_empty_or_unusable_status_restores_nothing() {
        assert!(history_to_status(&History::new(60.0, 10)).is_none());
        let empty = DemandHistoryStatus {
            bucket_seconds: 60.0,
            start_seconds: T0,
            max_rps: vec![EMPTY, EMPTY],
            mean_rps: vec![EMPTY, EMPTY],
        };
        assert!(history_from_status(&empty, 10).is_none());
        let bad_width = DemandHistoryStatus {
            bucket_seconds: f64::NAN,
            max_rps: vec![1.0],
            mean_rps: vec![1.0],
            ..empty.clone()
        };
        assert!(history_from_status(&bad_width, 10).is_none());
        let bad_start = DemandHistoryStatus {
            start_seconds: f64::INFINITY,
            max_rps: vec![1.0],
            mean_rps: vec![1.0],
            ..empty
        };
        assert!(history_from_status(&bad_start, 10).is_none());
    }

    #[test]
    fn the_status_is_rewritten_every_few_minutes_not_every_cycle() {
        let mut h = history();
        assert!(history_due(None, &h));
        let saved = history_to_status(&h).expect("status");
        assert!(!history_due(Some(&saved), &h));
        h.record(T0 + 200.0, 1.0);
        assert!(!history_due(Some(&saved), &h), "one bucket later");
        h.record(T0 + 130.0 + HISTORY_PERSIST_SECONDS, 1.0);
        assert!(history_due(Some(&saved), &h));
        assert!(
            !history_due(None, &History::new(60.0, 10)),
            "nothing to write"
        );
    }

    #[test]
    fn a_newer_saved_history_replaces_an_older_or_missing_one() {
        let h = history();
        let saved = history_to_status(&h).expect("status");
        assert!(saved_is_newer(&saved, None));
        assert!(!saved_is_newer(&saved, Some(&h)), "our own write");
        let mut stale = History::new(60.0, 100);
        stale.record(T0, 1.0);
        assert!(saved_is_newer(&saved, Some(&stale)));
    }

    fn rate(at_seconds: f64, rps: f64) -> RatePoint {
        RatePoint { at_seconds, rps }
    }

    #[test]
    fn a_rate_series_becomes_buckets_of_its_peak_and_mean_with_gaps_empty() {
        let base = (T0 / 60.0).floor() * 60.0;
        let points = [
            // Out of order on purpose; two points in the first bucket.
            rate(base + 40.0, 6.0),
            rate(base + 10.0, 2.0),
            // Bucket 1: no point. Bucket 2: NaN only (a gap too).
            rate(base + 130.0, f64::NAN),
            rate(base + 190.0, 3.0),
            rate(base + 250.0, -1.0),
            rate(base + 310.0, 0.0),
        ];
        let h = history_from_rates(&points, 60.0, 100).expect("history");
        assert_eq!(h.start_seconds(), Some(base));
        let b = h.buckets();
        assert_eq!(b.len(), 6);
        assert_eq!((b[0].max_rps, b[0].mean_rps, b[0].samples), (6.0, 4.0, 2));
        assert_eq!(b[1].samples, 0);
        assert_eq!(b[2].samples, 0);
        assert_eq!((b[3].max_rps, b[3].samples), (3.0, 1));
        assert_eq!(b[4].samples, 0, "a negative rate is a gap");
        assert_eq!(
            (b[5].max_rps, b[5].samples),
            (0.0, 1),
            "a real zero is kept"
        );
        // Only the newest `capacity` buckets.
        let short = history_from_rates(&points, 60.0, 2).expect("history");
        assert_eq!(short.start_seconds(), Some(base + 240.0));
        assert!(history_from_rates(&[rate(base, f64::NAN)], 60.0, 10).is_none());
        assert!(history_from_rates(&[], 60.0, 10).is_none());
    }

    #[test]
    fn the_past_fills_what_our_history_lacks_and_ours_wins_where_both_have_it() {
        let base = (T0 / 60.0).floor() * 60.0;
        // Ours (e.g. from the status): buckets 5..=7, bucket 6 empty.
        let mut ours = History::new(60.0, 12);
        ours.record(base + 300.0, 10.0);
        ours.record(base + 420.0, 12.0);
        // The past from Prometheus: buckets 0..=9, every one 1 req/s.
        let mut past = History::new(60.0, 12);
        for k in 0..10 {
            past.record(base + f64::from(k) * 60.0, 1.0);
        }
        let merged = fill_history(&ours, &past);
        assert_eq!(merged.start_seconds(), Some(base));
        assert_eq!(merged.newest_start_seconds(), Some(base + 540.0));
        let max: Vec<f64> = merged.buckets().iter().map(|b| b.max_rps).collect();
        assert_eq!(
            max,
            vec![1.0, 1.0, 1.0, 1.0, 1.0, 10.0, 1.0, 12.0, 1.0, 1.0]
        );
        assert!(merged.buckets().iter().all(|b| b.samples > 0));
        // Capped to our capacity, newest kept.
        let mut small = History::new(60.0, 4);
        small.record(base + 300.0, 10.0);
        let merged = fill_history(&small, &past);
        assert_eq!(merged.start_seconds(), Some(base + 360.0));
        assert_eq!(merged.buckets().len(), 4);
        // Nothing of ours: the past as it is; nothing in the past or another width: ours.
        let empty = History::new(60.0, 12);
        assert_eq!(fill_history(&empty, &past), past);
        assert_eq!(fill_history(&ours, &empty), ours);
        let mut wide = History::new(300.0, 12);
        wide.record(base, 99.0);
        assert_eq!(fill_history(&ours, &wide), ours);
    }

    #[test]
    fn a_models_past_is_read_once_and_a_failure_retried_only_after_ten_minutes() {
        let key = ("llm".to_string(), "chat".to_string());
        let other = ("llm".to_string(), "code".to_string());
        let mut r = RangeRestores::default();
        assert!(r.due(&key, T0));
        r.failed(key.clone(), T0);
        assert!(!r.due(&key, T0 + 15.0), "not every cycle");
        assert!(!r.due(&key, T0 + RANGE_RETRY_SECONDS - 1.0));
        assert!(r.due(&key, T0 + RANGE_RETRY_SECONDS));
        assert!(r.due(&key, T0 - 3600.0), "the clock stepped back");
        r.done(key.clone());
        assert!(!r.due(&key, T0 + 10.0 * RANGE_RETRY_SECONDS), "read once");
        assert!(r.due(&other, T0));
        r.done(other.clone());
        r.retain(&BTreeSet::from([key.clone()]));
        assert!(
            r.due(&other, T0),
            "a VA deleted and created again is read again"
        );
        assert!(!r.due(&key, T0));
    }
}
