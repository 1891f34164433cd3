//! A model's rate history to and from `status.demandHistory` (pure), so a restarted
//! controller or a new leader keeps the history the forecast needs.
//!
//! ```text
//!  CycleState (wvo_demand::History, UNIX seconds) ─► history_to_status (the newest
//!      STATUS_HISTORY_BUCKETS, 0.01 req/s) ─► status.demandHistory, at most every
//!      HISTORY_PERSIST_SECONDS (history_due)
//!  status.demandHistory ─► history_from_status ─► CycleState::restore_demand_history
//!      (when this controller has no history of the model, or an older one)
//! ```

use wvo_api::crd::DemandHistoryStatus;
use wvo_demand::history::Bucket;
use wvo_demand::History;

/// Most buckets written to a status: two days of 60 s buckets, all the history a daily
/// period needs to be found again (about 35 kB of JSON).
pub const STATUS_HISTORY_BUCKETS: usize = 2_880;
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
}
