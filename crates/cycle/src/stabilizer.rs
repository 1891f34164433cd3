//! Scale-down stabilization (pure: time is an input, in seconds).
//!
//! Scale-up takes effect in the cycle it is decided. A scale-down takes the highest
//! recommendation of the stabilization window (as the HPA does), so a dip must last the whole
//! window before replicas go. Replicas that are Pending because no GPU is free serve nothing:
//! they may be removed at once.

use std::collections::{BTreeMap, VecDeque};

/// Identity of one variant: (namespace, VA name, variant name).
pub type VariantKey = (String, String, String);

/// What the stabilizer decided for one variant.
#[derive(Clone, Debug, PartialEq)]
pub struct Stabilized {
    /// Replicas to set.
    pub desired: u32,
    /// Why, for status and events.
    pub reason: String,
}

/// One variant's numbers for one stabilization step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// Time of the step, s.
    pub now: f64,
    /// Replicas the optimizer recommends.
    pub recommended: u32,
    /// Replicas the workload is set to now.
    pub current: u32,
    /// Of those, replicas Pending because no GPU is free.
    pub pending: u32,
    /// Scale-down stabilization window, s.
    pub window_seconds: f64,
    /// Forbid any scale-down (metrics unknown).
    pub hold: bool,
}

/// Recommendation history per variant.
#[derive(Clone, Debug, Default)]
pub struct Stabilizer {
    history: BTreeMap<VariantKey, VecDeque<(f64, u32)>>,
}

impl Stabilizer {
    /// A stabilizer with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the step's recommendation for `key` and returns the replicas to set.
    ///
    /// With `hold` (metrics unknown) the result is never below the replicas that are not
    /// Pending (`current - pending`): only Pending replicas may go.
    pub fn stabilize(&mut self, key: &VariantKey, step: Step) -> Stabilized {
        let Step {
            now,
            recommended,
            current,
            pending,
            window_seconds,
            hold,
        } = step;
        let history = self.history.entry(key.clone()).or_default();
        if history.is_empty() {
            // No history (first sight, or a new leader): the replicas running now count as
            // a recommendation, so nothing is scaled down before a full window has passed.
            history.push_back((now, current));
        }
        history.push_back((now, recommended));
        while history
            .front()
            .is_some_and(|&(t, _)| t < now - window_seconds)
        {
            history.pop_front();
        }
        if recommended >= current {
            let reason = if recommended > current {
                format!("scale up {current} -> {recommended}")
            } else {
                "steady".to_string()
            };
            return Stabilized {
                desired: recommended,
                reason,
            };
        }
        // Pending (unschedulable) replicas serve nothing: they can go now, even on unknown
        // metrics; running ones wait for the window.
        let serving = current - pending.min(current);
        if hold {
            let desired = recommended.max(serving);
            let reason = if desired < current {
                format!(
                    "remove {} pending replicas that cannot get a GPU; hold at {desired}: metrics unknown, no scale-down (plan wanted {recommended})",
                    current - desired
                )
            } else {
                format!(
                    "hold at {current}: metrics unknown, no scale-down (plan wanted {recommended})"
                )
            };
            return Stabilized { desired, reason };
        }
        let window_max = history.iter().map(|&(_, r)| r).max().unwrap_or(recommended);
        let desired = window_max.min(current).min(recommended.max(serving));
        let reason = if desired == recommended {
            format!("scale down {current} -> {recommended}")
        } else if desired < current {
            format!(
                "remove {} pending replicas that cannot get a GPU; scale down to {recommended} waits for the {window_seconds:.0} s window",
                current - desired
            )
        } else {
            format!(
                "scale down to {recommended} waits for the {window_seconds:.0} s stabilization window"
            )
        };
        Stabilized { desired, reason }
    }

    /// Forgets variants not in `keep` (deleted VAs or variants).
    pub fn retain(&mut self, keep: &std::collections::BTreeSet<VariantKey>) {
        self.history.retain(|k, _| keep.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> VariantKey {
        ("ns".into(), "va".into(), "v".into())
    }

    #[test]
    fn scale_up_is_immediate() {
        let mut s = Stabilizer::new();
        assert_eq!(
            s.stabilize(
                &key(),
                Step {
                    now: 0.0,
                    recommended: 5,
                    current: 2,
                    pending: 0,
                    window_seconds: 300.0,
                    hold: false
                }
            )
            .desired,
            5
        );
    }

    #[test]
    fn scale_down_waits_for_the_window() {
        let mut s = Stabilizer::new();
        assert_eq!(
            s.stabilize(
                &key(),
                Step {
                    now: 0.0,
                    recommended: 6,
                    current: 6,
                    pending: 0,
                    window_seconds: 300.0,
                    hold: false
                }
            )
            .desired,
            6
        );
        // The dip starts at t=15: held while the t=0 recommendation of 6 is in the window.
        for t in (15..=300).step_by(15) {
            let out = s.stabilize(
                &key(),
                Step {
                    now: f64::from(t),
                    recommended: 3,
                    current: 6,
                    pending: 0,
                    window_seconds: 300.0,
                    hold: false,
                },
            );
            assert_eq!(out.desired, 6, "t={t}");
            assert!(out.reason.contains("waits"));
        }
        // At t=315 every recommendation in the window is 3.
        assert_eq!(
            s.stabilize(
                &key(),
                Step {
                    now: 315.0,
                    recommended: 3,
                    current: 6,
                    pending: 0,
                    window_seconds: 300.0,
                    hold: false
                }
            )
            .desired,
            3
        );
    }

    #[test]
    fn a_brief_dip_does_not_scale_down() {
        let mut s = Stabilizer::new();
        s.stabilize(
            &key(),
            Step {
                now: 0.0,
                recommended: 6,
                current: 6,
                pending: 0,
                window_seconds: 60.0,
                hold: false,
            },
        );
        s.stabilize(
            &key(),
            Step {
                now: 15.0,
                recommended: 2,
                current: 6,
                pending: 0,
                window_seconds: 60.0,
                hold: false,
            },
        );
        s.stabilize(
            &key(),
            Step {
                now: 30.0,
                recommended: 6,
                current: 6,
                pending: 0,
                window_seconds: 60.0,
                hold: false,
            },
        );
        // 60 s after the dip the window still holds the 6 from t=30.
        assert_eq!(
            s.stabilize(
                &key(),
                Step {
                    now: 75.0,
                    recommended: 2,
                    current: 6,
                    pending: 0,
                    window_seconds: 60.0,
                    hold: false
                }
            )
            .desired,
            6
        );
    }

    #[test]
    fn pending_replicas_go_at_once() {
        let mut s = Stabilizer::new();
        s.stabilize(
            &key(),
            Step {
                now: 0.0,
                recommended: 8,
                current: 8,
                pending: 0,
                window_seconds: 300.0,
                hold: false,
            },
        );
        // 3 of 8 cannot get a GPU; the plan moved the demand elsewhere and wants 2.
        let out = s.stabilize(
            &key(),
            Step {
                now: 15.0,
                recommended: 2,
                current: 8,
                pending: 3,
                window_seconds: 300.0,
                hold: false,
            },
        );
        assert_eq!(out.desired, 5);
        assert!(out.reason.contains("pending"));
    }

    #[test]
    fn unknown_metrics_never_scale_down() {
        let mut s = Stabilizer::new();
        for t in 0..100 {
            let out = s.stabilize(
                &key(),
                Step {
                    now: f64::from(t) * 15.0,
                    recommended: 1,
                    current: 4,
                    pending: 0,
                    window_seconds: 30.0,
                    hold: true,
                },
            );
            assert_eq!(out.desired, 4);
        }
        // But scale-up still happens.
        assert_eq!(
            s.stabilize(
                &key(),
                Step {
                    now: 2000.0,
                    recommended: 7,
                    current: 4,
                    pending: 0,
                    window_seconds: 30.0,
                    hold: true
                }
            )
            .desired,
            7
        );
    }

    #[test]
    fn unknown_metrics_still_remove_pending_replicas() {
        // A model whose only replicas are Pending has no server to scrape: its metrics are
        // unknown. Its Pending replicas serve nothing and must not be frozen in place.
        let mut s = Stabilizer::new();
        let out = s.stabilize(
            &key(),
            Step {
                now: 0.0,
                recommended: 0,
                current: 3,
                pending: 2,
                window_seconds: 30.0,
                hold: true,
            },
        );
        assert_eq!(out.desired, 1, "{}", out.reason);
        assert!(out.reason.contains("remove 2 pending"), "{}", out.reason);
    }
}
