//! The demo's cluster and traffic, as data and pure functions: the GPU fleet, the three
//! models with their variants, the load pattern over simulated time, and what `--speed`
//! scales. No I/O, no clock.

/// Namespace of the models.
pub const NAMESPACE: &str = "llm";
/// Namespace of the inventory ConfigMap.
pub const SYSTEM_NAMESPACE: &str = "wvo-system";
/// Prompt length of every request, tokens.
pub const INPUT_TOKENS: u32 = 512;
/// Mean generated tokens per request (geometric), tokens.
pub const MEAN_OUTPUT_TOKENS: f64 = 128.0;
/// Longest generation a request asks for, tokens.
pub const MAX_OUTPUT_TOKENS: u32 = 1024;

/// Simulated seconds at speed 1 of: the control cycle, the scale-down stabilization window,
/// a pod's start-up, one period of the traffic pattern, and the collector's first-scrape gap.
pub const CYCLE_SECONDS: f64 = 15.0;
/// Scale-down stabilization window, simulated s.
pub const STABILIZATION_SECONDS: f64 = 300.0;
/// Time from a pod's binding to its readiness, simulated s.
pub const STARTUP_SECONDS: f64 = 60.0;
/// Period of the traffic pattern, simulated s.
pub const PATTERN_PERIOD_SECONDS: f64 = 1800.0;
/// Gap between the two scrapes of a newly seen pod, simulated s.
pub const FIRST_SCRAPE_GAP_SECONDS: f64 = 5.0;
/// How long the gateway holds a request while its model has no ready server, simulated s
/// (then it is dropped).
pub const GATEWAY_HOLD_SECONDS: f64 = 300.0;

/// One kind of GPU in the fleet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuType {
    /// Inventory name (and catalog accelerator name).
    pub name: &'static str,
    /// `nvidia.com/gpu.product` label of its nodes.
    pub product: &'static str,
    /// Nodes of this type.
    pub nodes: u32,
    /// GPUs per node.
    pub gpus_per_node: u32,
    /// $ per GPU-hour.
    pub cost_per_hour: f64,
}

/// The mixed fleet: few H100s (the cheapest per request) so the planner must place the rest
/// of the demand on A100s and L40S. Costs are the catalog's ($/GPU-hour).
pub const FLEET: [GpuType; 3] = [
    GpuType {
        name: "H100",
        product: "NVIDIA-H100-80GB-HBM3",
        nodes: 1,
        gpus_per_node: 4,
        cost_per_hour: 2.50,
    },
    GpuType {
        name: "A100-80G",
        product: "NVIDIA-A100-SXM4-80GB",
        nodes: 1,
        gpus_per_node: 8,
        cost_per_hour: 1.80,
    },
    GpuType {
        name: "L40S",
        product: "NVIDIA-L40S",
        nodes: 2,
        gpus_per_node: 4,
        cost_per_hour: 1.20,
    },
];

/// One way to serve a model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variant {
    /// Variant name (also the Deployment's suffix).
    pub name: &'static str,
    /// GPU type ([`GpuType::name`]).
    pub accelerator: &'static str,
    /// GPUs per replica (tensor parallelism).
    pub tp: u32,
    /// Replicas of its Deployment at the start.
    pub initial_replicas: u32,
}

/// The shape of a model's load over one period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pattern {
    /// `low + (high - low) * sin²(π φ / P)`: a day-like wave peaking mid-period, req/s.
    Wave {
        /// Lowest rate, req/s.
        low: f64,
        /// Highest rate, req/s.
        high: f64,
    },
    /// `high` while the phase is in one of the windows (fractions of the period), else
    /// `low`, req/s.
    Steps {
        /// Rate outside the windows, req/s.
        low: f64,
        /// Rate inside, req/s.
        high: f64,
        /// `[start, end)` as fractions of the period.
        windows: &'static [(f64, f64)],
    },
}

/// One model: a VariantAutoscaling, its Deployments and its traffic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    /// VA name (short, used in the summary lines).
    pub name: &'static str,
    /// Served model id (`model_name` in the metrics).
    pub model_id: &'static str,
    /// Catalog model the profiles are estimated for.
    pub catalog: &'static str,
    /// Service class in the inventory.
    pub service_class: &'static str,
    /// The variants.
    pub variants: &'static [Variant],
    /// Its load.
    pub pattern: Pattern,
    /// `scaleToZero.idleSeconds` of its VA, simulated s (None: it keeps one replica).
    pub idle_seconds: Option<f64>,
}

/// A service class: priority and SLO.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServiceClass {
    /// Name.
    pub name: &'static str,
    /// Priority tier.
    pub priority: i32,
    /// TTFT target, ms.
    pub ttft_ms: f64,
    /// ITL target, ms.
    pub itl_ms: f64,
    /// Share of requests (percent) that must meet both targets: the share the demo's
    /// attainment counts.
    pub percentile: f64,
}

/// The inventory's service classes.
pub const SERVICE_CLASSES: [ServiceClass; 2] = [
    ServiceClass {
        name: "interactive",
        priority: 100,
        ttft_ms: 1000.0,
        itl_ms: 70.0,
        percentile: 99.0,
    },
    ServiceClass {
        name: "batch",
        priority: 10,
        ttft_ms: 2000.0,
        itl_ms: 100.0,
        percentile: 99.0,
    },
];

/// The four models. Peak load needs about twice the H100s there are; `summarize` is idle
/// between two bursts and scales to zero.
pub const MODELS: [Model; 4] = [
    Model {
        name: "chat",
        model_id: "Qwen/Qwen2.5-14B-Instruct",
        catalog: "qwen2.5-14b",
        service_class: "interactive",
        variants: &[
            Variant {
                name: "h100",
                accelerator: "H100",
                tp: 1,
                initial_replicas: 1,
            },
            Variant {
                name: "a100",
                accelerator: "A100-80G",
                tp: 1,
                initial_replicas: 0,
            },
            Variant {
                name: "l40s",
                accelerator: "L40S",
                tp: 2,
                initial_replicas: 0,
            },
        ],
        pattern: Pattern::Wave {
            low: 4.0,
            high: 20.0,
        },
        idle_seconds: None,
    },
    Model {
        name: "code",
        model_id: "mistralai/Mistral-Small-24B-Instruct-2501",
        catalog: "mistral-small-24b",
        service_class: "interactive",
        variants: &[
            Variant {
                name: "h100",
                accelerator: "H100",
                tp: 1,
                initial_replicas: 1,
            },
            Variant {
                name: "a100",
                accelerator: "A100-80G",
                tp: 2,
                initial_replicas: 0,
            },
            Variant {
                name: "l40s",
                accelerator: "L40S",
                tp: 2,
                initial_replicas: 0,
            },
        ],
        pattern: Pattern::Steps {
            low: 3.0,
            high: 14.0,
            windows: &[(0.03, 0.4)],
        },
        idle_seconds: None,
    },
    Model {
        name: "reasoning",
        model_id: "meta-llama/Llama-3.1-70B-Instruct",
        catalog: "llama-3.1-70b",
        service_class: "batch",
        variants: &[
            Variant {
                name: "h100",
                accelerator: "H100",
                tp: 2,
                initial_replicas: 0,
            },
            Variant {
                name: "a100",
                accelerator: "A100-80G",
                tp: 4,
                initial_replicas: 1,
            },
        ],
        pattern: Pattern::Steps {
            low: 1.0,
            high: 4.0,
            windows: &[(0.25, 0.45), (0.7, 0.8)],
        },
        idle_seconds: None,
    },
    Model {
        name: "summarize",
        model_id: "meta-llama/Llama-3.1-8B-Instruct",
        catalog: "llama-3.1-8b",
        service_class: "batch",
        variants: &[Variant {
            name: "l40s",
            accelerator: "L40S",
            tp: 1,
            initial_replicas: 1,
        }],
        // Bursts at 0-8 % and 45-55 % of the period (0-144 s and 810-990 s simulated),
        // nothing between: idle, it goes to zero and the gateway's queue wakes it.
        pattern: Pattern::Steps {
            low: 0.0,
            high: 3.0,
            windows: &[(0.0, 0.08), (0.45, 0.55)],
        },
        idle_seconds: Some(IDLE_SECONDS),
    },
];

/// `scaleToZero.idleSeconds` of the model that idles, simulated s.
pub const IDLE_SECONDS: f64 = 120.0;

/// The service class named `name`.
pub fn service_class(name: &str) -> Option<&'static ServiceClass> {
    SERVICE_CLASSES.iter().find(|c| c.name == name)
}

/// The GPU type named `name`.
pub fn gpu_type(name: &str) -> Option<&'static GpuType> {
    FLEET.iter().find(|g| g.name == name)
}

/// Offered load of `pattern` at simulated time `t` (s) with period `period` (s), req/s.
pub fn rate(pattern: &Pattern, t: f64, period: f64) -> f64 {
    let phase = if period > 0.0 && t.is_finite() {
        (t / period).rem_euclid(1.0)
    } else {
        0.0
    };
    match *pattern {
        Pattern::Wave { low, high } => {
            let s = (std::f64::consts::PI * phase).sin();
            low + (high - low) * s * s
        }
        Pattern::Steps { low, high, windows } => {
            if windows.iter().any(|&(a, b)| phase >= a && phase < b) {
                high
            } else {
                low
            }
        }
    }
}

/// The inventory ConfigMap's `inventory.yaml`: every fleet type discovered from its nodes,
/// and the service classes.
pub fn inventory_yaml() -> String {
    let mut out = String::from("accelerators:\n");
    for g in &FLEET {
        out.push_str(&format!(
            "- {{name: {}, discover: true, costPerHour: {}, nodeSelector: {{nvidia.com/gpu.product: {}}}}}\n",
            g.name, g.cost_per_hour, g.product
        ));
    }
    out.push_str("serviceClasses:\n");
    for c in &SERVICE_CLASSES {
        out.push_str(&format!(
            "- {{name: {}, priority: {}, ttftMs: {}, itlMs: {}, percentile: {}}}\n",
            c.name, c.priority, c.ttft_ms, c.itl_ms, c.percentile
        ));
    }
    out
}

/// Time settings of one run: simulated durations divided by the speed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Simulated seconds per wall second.
    pub speed: f64,
    /// Control cycle, wall s.
    pub cycle_seconds: f64,
    /// Scale-down stabilization window, wall s (whole seconds, at least 1: the VA field).
    pub stabilization_seconds: u32,
    /// Pod start-up, wall s.
    pub startup_seconds: f64,
    /// Traffic pattern period, wall s.
    pub period_seconds: f64,
    /// First-scrape gap, wall s.
    pub first_scrape_gap_seconds: f64,
    /// Span the arrival rate is measured over, wall s: one cycle, but at least
    /// [`MIN_RATE_WINDOW_SECONDS`] (request rates are not scaled, so a short cycle would
    /// count too few completions).
    pub rate_window_seconds: f64,
    /// The gateway's hold of a request while its model has no ready server, wall s.
    pub gateway_hold_seconds: f64,
}

impl Timing {
    /// A VA's `scaleToZero.idleSeconds` for `simulated` seconds: divided by the speed, whole
    /// seconds, at least the VA's minimum of 10 s.
    pub fn idle_seconds(&self, simulated: f64) -> u32 {
        let wall = (simulated / self.speed).round();
        // In range: at most IDLE_SECONDS / 0.1 = 1200.
        wall.clamp(f64::from(wvo_api::crd::MIN_IDLE_SECONDS), 604_800.0) as u32
    }
}

/// Shortest span an arrival rate is measured over, wall s.
pub const MIN_RATE_WINDOW_SECONDS: f64 = 4.5;

/// Lowest and highest `--speed`.
pub const SPEED_RANGE: (f64, f64) = (0.1, 50.0);

impl Timing {
    /// The settings at `speed`, or why the speed is refused.
    pub fn new(speed: f64) -> Result<Timing, String> {
        if !(speed.is_finite() && speed >= SPEED_RANGE.0 && speed <= SPEED_RANGE.1) {
            return Err(format!(
                "--speed: must be between {} and {}, got {speed}",
                SPEED_RANGE.0, SPEED_RANGE.1
            ));
        }
        let stab = (STABILIZATION_SECONDS / speed).round().max(1.0);
        Ok(Timing {
            speed,
            cycle_seconds: CYCLE_SECONDS / speed,
            // In range: STABILIZATION_SECONDS / 0.1 = 3000.
            stabilization_seconds: stab as u32,
            startup_seconds: STARTUP_SECONDS / speed,
            period_seconds: PATTERN_PERIOD_SECONDS / speed,
            first_scrape_gap_seconds: (FIRST_SCRAPE_GAP_SECONDS / speed).max(0.2),
            rate_window_seconds: (CYCLE_SECONDS / speed).max(MIN_RATE_WINDOW_SECONDS),
            gateway_hold_seconds: GATEWAY_HOLD_SECONDS / speed,
        })
    }
}

impl Timing {
    /// The controller's demand estimation in wall seconds: `wvo run`'s defaults for a
    /// simulated cluster (15 s cycles, 15 s scrape age, 60 s fall, this demo's start-up),
    /// divided by the speed, over the demo's own rate window.
    pub fn demand_options(&self) -> wvo_controller::cycle::DemandOptions {
        let defaults = wvo_controller::cycle::DemandOptions::default();
        wvo_controller::cycle::DemandOptions {
            cycle_seconds: self.cycle_seconds,
            window_seconds: self.rate_window_seconds,
            scrape_age_seconds: self.first_scrape_gap_seconds,
            default_startup_seconds: self.startup_seconds,
            fall_seconds: defaults.fall_seconds / self.speed,
            ..defaults
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn demand_runs_on_the_wall_clock_of_the_speed() {
        let t = Timing::new(10.0).expect("speed");
        let d = t.demand_options();
        assert!((d.cycle_seconds - 1.5).abs() < 1e-9);
        assert!((d.fall_seconds - 6.0).abs() < 1e-9);
        assert!((d.default_startup_seconds - t.startup_seconds).abs() < 1e-9);
        assert!((d.window_seconds - t.rate_window_seconds).abs() < 1e-9);
    }

    #[test]
    fn every_variant_names_a_fleet_type_and_every_model_a_class() {
        for m in &MODELS {
            assert!(service_class(m.service_class).is_some(), "{}", m.name);
            assert!(m.variants.iter().map(|v| v.initial_replicas).sum::<u32>() >= 1);
            for v in m.variants {
                assert!(gpu_type(v.accelerator).is_some(), "{}/{}", m.name, v.name);
            }
        }
    }

    #[test]
    fn the_idle_time_scales_with_the_speed_but_stays_a_valid_va_field() {
        let at = |speed: f64| Timing::new(speed).unwrap().idle_seconds(IDLE_SECONDS);
        assert_eq!(at(1.0), 120);
        assert_eq!(at(10.0), 12);
        assert_eq!(at(50.0), wvo_api::crd::MIN_IDLE_SECONDS);
        assert_eq!(at(0.1), 1200);
    }

    #[test]
    fn initial_replicas_fit_the_fleet() {
        for g in &FLEET {
            let used: u32 = MODELS
                .iter()
                .flat_map(|m| m.variants.iter())
                .filter(|v| v.accelerator == g.name)
                .map(|v| v.initial_replicas * v.tp)
                .sum();
            assert!(used <= g.nodes * g.gpus_per_node, "{}", g.name);
        }
    }

    #[test]
    fn the_wave_peaks_mid_period_and_steps_switch_at_their_edges() {
        let wave = Pattern::Wave {
            low: 4.0,
            high: 20.0,
        };
        assert!((rate(&wave, 0.0, 100.0) - 4.0).abs() < 1e-9);
        assert!((rate(&wave, 50.0, 100.0) - 20.0).abs() < 1e-9);
        assert!((rate(&wave, 150.0, 100.0) - 20.0).abs() < 1e-9);
        let steps = Pattern::Steps {
            low: 1.0,
            high: 5.0,
            windows: &[(0.2, 0.3)],
        };
        assert_eq!(rate(&steps, 19.9, 100.0), 1.0);
        assert_eq!(rate(&steps, 20.0, 100.0), 5.0);
        assert_eq!(rate(&steps, 30.0, 100.0), 1.0);
        assert_eq!(rate(&steps, 125.0, 100.0), 5.0);
    }

    #[test]
    fn speed_divides_every_simulated_duration() {
        let t = Timing::new(10.0).unwrap();
        assert_eq!(t.cycle_seconds, 1.5);
        assert_eq!(t.stabilization_seconds, 30);
        assert_eq!(t.startup_seconds, 6.0);
        assert_eq!(t.period_seconds, 180.0);
        assert!(Timing::new(0.0).is_err());
        assert!(Timing::new(f64::NAN).is_err());
        assert!(Timing::new(1000.0).is_err());
    }

    #[test]
    fn the_inventory_parses_and_lists_the_fleet() {
        let inv = wvo_api::crd::InventoryConfig::parse(&inventory_yaml()).unwrap();
        assert_eq!(inv.accelerators.len(), FLEET.len());
        assert_eq!(inv.service_classes.len(), SERVICE_CLASSES.len());
        assert!(inv.accelerators.iter().all(|a| a.discover));
    }

    proptest! {
        #[test]
        fn rates_stay_between_low_and_high(t in -1e6f64..1e6, period in 1.0f64..1e4) {
            for m in &MODELS {
                let (low, high) = match m.pattern {
                    Pattern::Wave { low, high } | Pattern::Steps { low, high, .. } => (low, high),
                };
                let r = rate(&m.pattern, t, period);
                prop_assert!(r >= low - 1e-9 && r <= high + 1e-9);
            }
        }

        #[test]
        fn timing_is_simulated_time_over_speed(speed in 0.1f64..50.0) {
            let t = Timing::new(speed).unwrap();
            prop_assert!((t.cycle_seconds * speed - CYCLE_SECONDS).abs() < 1e-9);
            prop_assert!((t.period_seconds * speed - PATTERN_PERIOD_SECONDS).abs() < 1e-6);
            prop_assert!(t.stabilization_seconds >= 1);
        }
    }
}
