//! Per-model rate history at a fixed resolution: a bounded ring of buckets, each the highest
//! arrival rate observed in its span (the forecast plans for peaks, not averages).

use serde::{Deserialize, Serialize};

/// One bucket: the highest and the mean observed arrival rate in its span, req/s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Highest observed rate in the bucket, req/s.
    pub max_rps: f64,
    /// Mean of the observed rates in the bucket, req/s.
    pub mean_rps: f64,
    /// Observations folded into the bucket.
    pub samples: u32,
}

/// Rate history: bucket `k` covers `[origin + k * bucket_seconds, origin + (k+1) * bucket_seconds)`;
/// only the most recent `capacity` buckets are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Width of one bucket, s.
    bucket_seconds: f64,
    /// Most buckets kept.
    capacity: usize,
    /// Index (since the origin at time 0) of `buckets[0]`.
    first_index: i64,
    /// Oldest first. Buckets with no observation have `samples == 0`.
    buckets: Vec<Bucket>,
}

impl History {
    /// An empty history of `capacity` buckets of `bucket_seconds` each (both at least 1).
    pub fn new(bucket_seconds: f64, capacity: usize) -> Self {
        History {
            bucket_seconds: if bucket_seconds.is_finite() && bucket_seconds > 0.0 {
                bucket_seconds
            } else {
                60.0
            },
            capacity: capacity.max(1),
            first_index: 0,
            buckets: Vec::new(),
        }
    }

    /// Width of one bucket, s.
    pub fn bucket_seconds(&self) -> f64 {
        self.bucket_seconds
    }

    /// Most buckets kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Start of the oldest kept bucket, s (the origin of the recorded times); None when
    /// nothing was recorded.
    pub fn start_seconds(&self) -> Option<f64> {
        (!self.buckets.is_empty()).then_some(self.first_index as f64 * self.bucket_seconds)
    }

    /// Start of the newest kept bucket, s; None when nothing was recorded.
    pub fn newest_start_seconds(&self) -> Option<f64> {
        (!self.buckets.is_empty()).then(|| {
            (self.first_index + self.buckets.len() as i64 - 1) as f64 * self.bucket_seconds
        })
    }

    /// The kept buckets, oldest first (`samples == 0`: no observation).
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// A history of at most `capacity` buckets of `bucket_seconds` holding `buckets` (oldest
    /// first, the first starting at `start_seconds`, rounded to a bucket boundary), e.g. as
    /// saved in a status. Only the newest `capacity` are kept; a bucket with a non-finite
    /// or negative rate counts as empty; a non-finite start gives an empty history.
    pub fn from_buckets(
        bucket_seconds: f64,
        capacity: usize,
        start_seconds: f64,
        buckets: impl IntoIterator<Item = Bucket>,
    ) -> Self {
        let mut h = History::new(bucket_seconds, capacity);
        if !start_seconds.is_finite() {
            return h;
        }
        let first = (start_seconds / h.bucket_seconds).round();
        if first.abs() > 1e15 {
            return h;
        }
        h.first_index = first as i64;
        h.buckets = buckets
            .into_iter()
            .map(|b| {
                let ok = |v: f64| v.is_finite() && v >= 0.0;
                if b.samples > 0 && ok(b.max_rps) && ok(b.mean_rps) {
                    Bucket {
                        max_rps: b.max_rps.max(b.mean_rps),
                        ..b
                    }
                } else {
                    Bucket::default()
                }
            })
            .collect();
        let over = h.buckets.len().saturating_sub(h.capacity);
        if over > 0 {
            h.buckets.drain(..over);
            h.first_index += over as i64;
        }
        h
    }

    /// Seconds of history held (first to last bucket), s.
    pub fn span_seconds(&self) -> f64 {
        self.buckets.len() as f64 * self.bucket_seconds
    }

    fn index_of(&self, at_seconds: f64) -> i64 {
        (at_seconds / self.bucket_seconds).floor() as i64
    }

    /// Folds the rate observed at `at_seconds` into its bucket. Observations older than the
    /// newest bucket's start are folded into the bucket they belong to when it is still
    /// kept, and dropped otherwise; non-finite or negative rates are ignored.
    pub fn record(&mut self, at_seconds: f64, rate_rps: f64) {
        if !(rate_rps.is_finite() && rate_rps >= 0.0 && at_seconds.is_finite()) {
            return;
        }
        let k = self.index_of(at_seconds);
        if self.buckets.is_empty() {
            self.first_index = k;
        }
        let last = self.first_index + self.buckets.len() as i64 - 1;
        if k > last {
            // Gaps stay as empty buckets, so positions keep meaning times; a jump past the
            // whole capacity starts over.
            let gap = k - last;
            if gap > self.capacity as i64 {
                self.buckets.clear();
                self.first_index = k;
                self.buckets.push(Bucket::default());
            } else {
                for _ in 0..gap {
                    self.buckets.push(Bucket::default());
                }
            }
            let over = self.buckets.len().saturating_sub(self.capacity);
            if over > 0 {
                self.buckets.drain(..over);
                self.first_index += over as i64;
            }
        }
        let Some(pos) = usize::try_from(k - self.first_index)
            .ok()
            .filter(|&p| p < self.buckets.len())
        else {
            return;
        };
        let b = &mut self.buckets[pos];
        let n = f64::from(b.samples);
        b.mean_rps = (b.mean_rps * n + rate_rps) / (n + 1.0);
        b.max_rps = if b.samples == 0 {
            rate_rps
        } else {
            b.max_rps.max(rate_rps)
        };
        b.samples = b.samples.saturating_add(1);
    }

    /// Highest rate recorded in `[from_seconds, to_seconds]` (bucket resolution), req/s; None
    /// when no bucket in the span has an observation.
    pub fn max_between(&self, from_seconds: f64, to_seconds: f64) -> Option<f64> {
        if self.buckets.is_empty()
            || to_seconds.is_nan()
            || from_seconds.is_nan()
            || to_seconds < from_seconds
        {
            return None;
        }
        let lo = self.index_of(from_seconds).max(self.first_index);
        let hi = self
            .index_of(to_seconds)
            .min(self.first_index + self.buckets.len() as i64 - 1);
        (lo..=hi)
            .filter_map(|k| {
                let b = self.buckets[(k - self.first_index) as usize];
                (b.samples > 0).then_some(b.max_rps)
            })
            .reduce(f64::max)
    }

    /// The bucket means, oldest first, empty buckets filled from their predecessor (the
    /// series the period detector reads).
    pub fn means(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.buckets.len());
        let mut last = self
            .buckets
            .iter()
            .find(|b| b.samples > 0)
            .map_or(0.0, |b| b.mean_rps);
        for b in &self.buckets {
            if b.samples > 0 {
                last = b.mean_rps;
            }
            out.push(last);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_the_peak_and_the_mean() {
        let mut h = History::new(60.0, 10);
        h.record(0.0, 10.0);
        h.record(30.0, 20.0);
        h.record(61.0, 5.0);
        assert_eq!(h.max_between(0.0, 59.0), Some(20.0));
        assert_eq!(h.max_between(0.0, 200.0), Some(20.0));
        assert_eq!(h.max_between(60.0, 119.0), Some(5.0));
        assert_eq!(h.means(), vec![15.0, 5.0]);
    }

    #[test]
    fn old_buckets_fall_out_and_gaps_keep_their_place() {
        let mut h = History::new(10.0, 3);
        h.record(0.0, 1.0);
        h.record(35.0, 4.0);
        // Buckets 1..=3 kept; bucket 0 fell out, 1 and 2 are empty.
        assert_eq!(h.max_between(0.0, 9.0), None);
        assert_eq!(h.max_between(0.0, 40.0), Some(4.0));
        assert_eq!(h.means(), vec![4.0, 4.0, 4.0]);
        // A jump far ahead starts over.
        h.record(1e6, 7.0);
        assert_eq!(h.span_seconds(), 10.0);
        assert_eq!(h.max_between(0.0, 2e6), Some(7.0));
    }

    #[test]
    fn a_history_rebuilt_from_its_buckets_answers_the_same() {
        let mut h = History::new(60.0, 100);
        for i in 0..50 {
            h.record(1_700_000_000.0 + f64::from(i) * 37.0, f64::from(i % 7));
        }
        let start = h.start_seconds().expect("start");
        let back = History::from_buckets(60.0, 100, start, h.buckets().to_vec());
        assert_eq!(back, h);
        // Capped to the newest `capacity`; bad buckets become empty.
        let mut buckets = h.buckets().to_vec();
        let last = buckets.len() - 1;
        buckets[last].max_rps = f64::NAN;
        let short = History::from_buckets(60.0, 5, start, buckets);
        assert_eq!(short.buckets().len(), 5);
        assert_eq!(short.newest_start_seconds(), h.newest_start_seconds());
        assert_eq!(short.buckets()[4].samples, 0);
        assert_eq!(
            History::from_buckets(60.0, 5, f64::NAN, h.buckets().to_vec()).span_seconds(),
            0.0
        );
    }

    #[test]
    fn unusable_rates_are_ignored() {
        let mut h = History::new(60.0, 5);
        h.record(0.0, f64::NAN);
        h.record(0.0, -1.0);
        h.record(f64::INFINITY, 1.0);
        assert_eq!(h.span_seconds(), 0.0);
        assert_eq!(h.max_between(0.0, 100.0), None);
    }
}
