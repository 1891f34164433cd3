//! Writing the Prometheus text format the way vLLM's `prometheus_client` does (label
//! names sorted, `_total` counters, `_created` samples in V1, histogram `le` as floats).

use std::fmt::Write as _;

/// TTFT buckets of vLLM V1, s.
pub const TTFT_V1: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// TTFT buckets of vLLM V0 (0.5), s.
pub const TTFT_V0: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// ITL (and old TPOT) buckets of vLLM V1, s.
pub const ITL_V1: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// TPOT buckets of vLLM V0 (0.5), s.
pub const ITL_V0: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
/// End-to-end / phase latency buckets of vLLM V1, s.
pub const E2E_V1: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// End-to-end latency buckets of vLLM V0 (0.5), s.
pub const E2E_V0: &[f64] = &[1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0];

/// vLLM's `build_1_2_5_buckets(max)`: 1, 2, 5, 10, 20, 50, ... up to `max`.
pub fn buckets_1_2_5(max: u64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut exp = 1u64;
    'outer: loop {
        for m in [1u64, 2, 5] {
            let v = m * exp;
            if v > max {
                break 'outer;
            }
            out.push(v as f64);
        }
        exp = exp.saturating_mul(10);
    }
    out
}

/// A cumulative histogram with fixed upper bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram with these finite upper bounds (ascending).
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Record one observation.
    pub fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }
}

fn fmt_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn labels(l: &[(&str, String)], extra: Option<(&str, String)>) -> String {
    let mut all: Vec<(&str, String)> = l.to_vec();
    if let Some(e) = extra {
        all.push(e);
    }
    all.sort_by(|a, b| a.0.cmp(b.0));
    let inner: Vec<String> = all
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    if inner.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", inner.join(","))
    }
}

/// Accumulates a text-format body.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    /// A gauge family with one series.
    pub fn gauge(&mut self, name: &str, help: &str, l: &[(&str, String)], v: f64) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} gauge");
        let _ = writeln!(self.out, "{name}{} {}", labels(l, None), fmt_f(v));
    }

    /// A counter family with one series; `name` without `_total`.
    pub fn counter(
        &mut self,
        name: &str,
        help: &str,
        l: &[(&str, String)],
        v: f64,
        created: Option<f64>,
    ) {
        self.counter_rows(name, help, &[(l.to_vec(), v)], created);
    }

    /// A counter family with several series; `name` without `_total`.
    pub fn counter_rows(
        &mut self,
        name: &str,
        help: &str,
        rows: &[(Vec<(&str, String)>, f64)],
        created: Option<f64>,
    ) {
        let _ = writeln!(
            self.out,
            "# HELP {name}_total {help}\n# TYPE {name}_total counter"
        );
        for (l, v) in rows {
            let _ = writeln!(self.out, "{name}_total{} {}", labels(l, None), fmt_f(*v));
        }
        if let Some(c) = created {
            let _ = writeln!(
                self.out,
                "# HELP {name}_created {help}\n# TYPE {name}_created gauge"
            );
            for (l, _) in rows {
                let _ = writeln!(self.out, "{name}_created{} {}", labels(l, None), fmt_f(c));
            }
        }
    }

    /// A histogram family with one series.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        l: &[(&str, String)],
        h: &Histogram,
        created: Option<f64>,
    ) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in h.bounds.iter().zip(&h.counts) {
            let _ = writeln!(
                self.out,
                "{name}_bucket{} {}",
                labels(l, Some(("le", fmt_f(*b)))),
                fmt_f(*c as f64)
            );
        }
        let _ = writeln!(
            self.out,
            "{name}_bucket{} {}",
            labels(l, Some(("le", "+Inf".into()))),
            fmt_f(h.count as f64)
        );
        let _ = writeln!(
            self.out,
            "{name}_count{} {}",
            labels(l, None),
            fmt_f(h.count as f64)
        );
        let _ = writeln!(self.out, "{name}_sum{} {}", labels(l, None), fmt_f(h.sum));
        if let Some(c) = created {
            let _ = writeln!(
                self.out,
                "# HELP {name}_created {help}\n# TYPE {name}_created gauge"
            );
            let _ = writeln!(self.out, "{name}_created{} {}", labels(l, None), fmt_f(c));
        }
    }

    /// The body.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_two_five_buckets_like_vllm() {
        assert_eq!(
            buckets_1_2_5(2048),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
        );
    }

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let mut w = Writer::default();
        w.histogram("x", "h", &[("model_name", "m".into())], &h, None);
        let t = w.finish();
        assert!(
            t.contains("x_bucket{le=\"0.1\",model_name=\"m\"} 1.0"),
            "{t}"
        );
        assert!(
            t.contains("x_bucket{le=\"1.0\",model_name=\"m\"} 2.0"),
            "{t}"
        );
        assert!(
            t.contains("x_bucket{le=\"+Inf\",model_name=\"m\"} 3.0"),
            "{t}"
        );
        assert!(t.contains("x_count{model_name=\"m\"} 3.0"), "{t}");
    }
}
