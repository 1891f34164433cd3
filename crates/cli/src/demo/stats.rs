//! What the traffic generator measured: per model, requests that met the SLO, missed it or
//! were dropped, over the last summary window and in total. Pure.

use std::collections::BTreeMap;

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Served: time to first token and mean inter-token latency, ms.
    Served {
        /// Time to first token, ms (queueing included).
        ttft_ms: f64,
        /// Mean inter-token latency, ms (0 for a one-token answer).
        itl_ms: f64,
    },
    /// No ready replica, or the replica failed or went away mid-request.
    Dropped,
}

/// Counts of one model over some time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// Requests that ended (served + dropped).
    pub ended: u64,
    /// Served requests meeting both the TTFT and the ITL target.
    pub met: u64,
    /// Dropped requests.
    pub dropped: u64,
    /// Sum of the served requests' TTFT, ms.
    pub ttft_ms_sum: f64,
    /// Sum of the served requests' ITL, ms.
    pub itl_ms_sum: f64,
}

impl Counts {
    /// Adds one outcome, judged against `ttft_ms`/`itl_ms` targets.
    pub fn add(&mut self, outcome: Outcome, ttft_target_ms: f64, itl_target_ms: f64) {
        self.ended += 1;
        match outcome {
            Outcome::Dropped => self.dropped += 1,
            Outcome::Served { ttft_ms, itl_ms } => {
                self.ttft_ms_sum += ttft_ms;
                self.itl_ms_sum += itl_ms;
                if ttft_ms <= ttft_target_ms && itl_ms <= itl_target_ms {
                    self.met += 1;
                }
            }
        }
    }

    /// Adds another count.
    pub fn merge(&mut self, other: &Counts) {
        self.ended += other.ended;
        self.met += other.met;
        self.dropped += other.dropped;
        self.ttft_ms_sum += other.ttft_ms_sum;
        self.itl_ms_sum += other.itl_ms_sum;
    }

    /// Share of ended requests that met the SLO (None when none ended).
    pub fn attainment(&self) -> Option<f64> {
        (self.ended > 0).then(|| self.met as f64 / self.ended as f64)
    }

    /// Mean TTFT of served requests, ms.
    pub fn mean_ttft_ms(&self) -> Option<f64> {
        let served = self.ended - self.dropped;
        (served > 0).then(|| self.ttft_ms_sum / served as f64)
    }

    /// Mean ITL of served requests, ms.
    pub fn mean_itl_ms(&self) -> Option<f64> {
        let served = self.ended - self.dropped;
        (served > 0).then(|| self.itl_ms_sum / served as f64)
    }
}

/// Per-model counts: since the last [`take_window`](Stats::take_window), and in total.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    targets: BTreeMap<String, (f64, f64)>,
    window: BTreeMap<String, Counts>,
    total: BTreeMap<String, Counts>,
}

impl Stats {
    /// Stats for models with their (TTFT, ITL) targets, ms.
    pub fn new(targets: impl IntoIterator<Item = (String, (f64, f64))>) -> Stats {
        Stats {
            targets: targets.into_iter().collect(),
            ..Stats::default()
        }
    }

    /// Records how a request of `model` ended; unknown models are ignored.
    pub fn record(&mut self, model: &str, outcome: Outcome) {
        let Some(&(ttft, itl)) = self.targets.get(model) else {
            return;
        };
        self.window
            .entry(model.to_string())
            .or_default()
            .add(outcome, ttft, itl);
        self.total
            .entry(model.to_string())
            .or_default()
            .add(outcome, ttft, itl);
    }

    /// The counts since the last call (per model), and starts a new window.
    pub fn take_window(&mut self) -> BTreeMap<String, Counts> {
        std::mem::take(&mut self.window)
    }

    /// The counts since the start, per model.
    pub fn total(&self) -> &BTreeMap<String, Counts> {
        &self.total
    }
}

/// The counts of every model added up.
pub fn sum<'a>(counts: impl IntoIterator<Item = &'a Counts>) -> Counts {
    let mut all = Counts::default();
    for c in counts {
        all.merge(c);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn served(ttft_ms: f64, itl_ms: f64) -> Outcome {
        Outcome::Served { ttft_ms, itl_ms }
    }

    #[test]
    fn a_request_meets_the_slo_only_when_both_targets_hold() {
        let mut c = Counts::default();
        c.add(served(900.0, 40.0), 1000.0, 50.0);
        c.add(served(1100.0, 40.0), 1000.0, 50.0);
        c.add(served(900.0, 60.0), 1000.0, 50.0);
        c.add(Outcome::Dropped, 1000.0, 50.0);
        assert_eq!((c.ended, c.met, c.dropped), (4, 1, 1));
        assert_eq!(c.attainment(), Some(0.25));
        assert!((c.mean_ttft_ms().unwrap() - 2900.0 / 3.0).abs() < 1e-9);
        assert!((c.mean_itl_ms().unwrap() - 140.0 / 3.0).abs() < 1e-9);
        assert_eq!(Counts::default().attainment(), None);
    }

    #[test]
    fn windows_restart_and_totals_keep_everything() {
        let mut s = Stats::new([("chat".to_string(), (1000.0, 50.0))]);
        s.record("chat", served(10.0, 10.0));
        s.record("other", served(10.0, 10.0));
        let w = s.take_window();
        assert_eq!(w["chat"].met, 1);
        assert!(!w.contains_key("other"));
        s.record("chat", Outcome::Dropped);
        assert_eq!(s.take_window()["chat"].dropped, 1);
        assert!(s.take_window().is_empty());
        assert_eq!(s.total()["chat"].ended, 2);
    }

    proptest! {
        #[test]
        fn windows_add_up_to_the_total(events in proptest::collection::vec((0u8..3, 0.0f64..3000.0, 0.0f64..200.0, any::<bool>()), 0..200)) {
            let names = ["a", "b", "c"];
            let mut s = Stats::new(names.iter().map(|n| (n.to_string(), (1000.0, 50.0))));
            let mut windows = Counts::default();
            for (i, (m, ttft, itl, cut)) in events.iter().enumerate() {
                let outcome = if i % 7 == 0 { Outcome::Dropped } else { served(*ttft, *itl) };
                s.record(names[*m as usize], outcome);
                if *cut {
                    windows.merge(&sum(s.take_window().values()));
                }
            }
            windows.merge(&sum(s.take_window().values()));
            let total = sum(s.total().values());
            prop_assert_eq!(windows.ended, total.ended);
            prop_assert_eq!(windows.met, total.met);
            prop_assert_eq!(windows.dropped, total.dropped);
            prop_assert!(total.met + total.dropped <= total.ended);
            prop_assert_eq!(total.ended as usize, events.len());
        }
    }
}
