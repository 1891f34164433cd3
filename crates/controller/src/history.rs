//! A bounded, in-memory history of what the controller published: one sample per completed
//! cycle, per model, for the dashboard's time series (`GET /api/v1/history`).
//!
//! ```text
//!  reconciler, after each cycle ─► History::record(now, &view.models)
//!    cycles:  (seq, time) ................ at most max_points, none older than window
//!    models:  (ns, name) ─► points ....... at most max_models series, max_points each
//!  status API ─► History::body(&Visible) ─► times, $/h, cost to date, per-model series,
//!                                           replicas per accelerator type, attainment
//! ```
//!
//! Pure: no clock (the caller passes the time), no I/O. Bounds ([`HistoryLimits`]): cycles
//! older than `window_seconds` before the newest are dropped, and at most `max_points`
//! cycles are kept (both apply); at most `max_models` model series (a new model over the cap
//! takes the place of the series that has gone longest without a point, if one was absent
//! from the cycle, else it is not recorded and counted in `modelsNotKept`); at most
//! `max_accelerators` accelerator type names (replicas on further types are not recorded).
//! [`HistoryLimits::bound_bytes`] is the worst-case heap use these imply; with the defaults
//! (1 h, 480 points, 100 models, 32 types) about 11 MB, printed by
//! `cargo test -p wvo-controller --lib history::tests::the_memory_bound -- --nocapture`.
//!
//! Attainment is measured, not planned: the share of a model's cycles whose measured
//! latencies (the servers' window, as in [`crate::view::LatencyView::within_slo`]) met its
//! SLO, among the cycles where the figures could tell. The planner's satisfaction is kept
//! apart as `plannedCoverage`.

use crate::scope::Visible;
use crate::view::ModelView;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How much history is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryLimits {
    /// Cycles older than this before the newest are dropped, s.
    pub window_seconds: f64,
    /// Most cycles kept (and so most points per series).
    pub max_points: usize,
    /// Most model series kept.
    pub max_models: usize,
    /// Most accelerator type names kept.
    pub max_accelerators: usize,
}

/// Default history window: one hour, s.
pub const DEFAULT_WINDOW_SECONDS: f64 = 3600.0;
/// Default cap on cycles kept: an hour of 7.5 s cycles (`wvo run` defaults to 15 s).
pub const DEFAULT_MAX_POINTS: usize = 480;
/// Default cap on model series.
pub const DEFAULT_MAX_MODELS: usize = 100;
/// Default cap on accelerator type names.
pub const DEFAULT_MAX_ACCELERATORS: usize = 32;
/// Most accelerator types recorded per model and cycle (replicas on further types of the
/// same model are not recorded).
pub const MAX_TYPES_PER_MODEL: usize = 8;
/// Longest accelerator name kept, bytes (longer names are cut at a character boundary).
pub const MAX_NAME_BYTES: usize = 253;
/// Longest namespace plus name of a model (Kubernetes: 63 + 253), bytes.
const MAX_KEY_BYTES: usize = 63 + 253;

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            window_seconds: DEFAULT_WINDOW_SECONDS,
            max_points: DEFAULT_MAX_POINTS,
            max_models: DEFAULT_MAX_MODELS,
            max_accelerators: DEFAULT_MAX_ACCELERATORS,
        }
    }
}

impl HistoryLimits {
    /// Worst-case heap bytes of a [`History`] with these limits (the allocations
    /// [`History::heap_bytes`] counts, at their largest).
    pub fn bound_bytes(&self) -> usize {
        // Queues never grow past `max_points` ([`push_bounded`]).
        let points = self.max_points.max(1);
        let accelerators = self.max_accelerators.min(usize::from(u16::MAX) + 1);
        let per_point = std::mem::size_of::<ModelPoint>()
            + accelerators.min(MAX_TYPES_PER_MODEL) * std::mem::size_of::<Replicas>();
        let per_model = points * per_point + MAX_KEY_BYTES + MAP_ENTRY_BYTES;
        points * std::mem::size_of::<Cycle>()
            + self.max_models * per_model
            + accelerators.next_power_of_two() * (std::mem::size_of::<String>() + MAX_NAME_BYTES)
    }
}

/// What a B-tree map entry of a series costs beyond its key and value, bytes (an estimate:
/// node overhead per entry, generous).
const MAP_ENTRY_BYTES: usize = 64 + std::mem::size_of::<(Key, ModelSeries)>();

type Key = (String, String);

/// One recorded cycle.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cycle {
    seq: u64,
    time_unix: f64,
}

/// Replicas of a model on one accelerator type (index into [`History::accelerators`]).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Replicas {
    accelerator: u16,
    current: u32,
    desired: u32,
}

/// One model in one cycle.
#[derive(Clone, Debug, PartialEq)]
struct ModelPoint {
    seq: u64,
    arrival_rate: Option<f64>,
    demand_rps: f64,
    /// Σ desired × capacity of one replica, req/s.
    capacity_rps: f64,
    /// Cost of the desired replicas, $/h.
    desired_cost_per_hour: f64,
    /// Cost of the current replicas, $/h.
    current_cost_per_hour: f64,
    planned_coverage: f64,
    latency: Option<LatencyPoint>,
    replicas: Box<[Replicas]>,
}

/// Measured latencies and targets, ms (f32: 7 significant digits are plenty for a chart).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct LatencyPoint {
    ttft_p95_ms: Option<f32>,
    itl_p95_ms: Option<f32>,
    ttft_mean_ms: Option<f32>,
    itl_mean_ms: Option<f32>,
    ttft_target_ms: Option<f32>,
    itl_target_ms: Option<f32>,
    percentile: Option<f32>,
    within_slo: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct ModelSeries {
    points: VecDeque<ModelPoint>,
}

/// The history: see the module doc.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    limits: HistoryLimits,
    next_seq: u64,
    cycles: VecDeque<Cycle>,
    models: BTreeMap<Key, ModelSeries>,
    accelerators: Vec<String>,
    not_kept: usize,
}

impl Default for History {
    fn default() -> Self {
        Self::new(HistoryLimits::default())
    }
}

impl History {
    /// An empty history bounded by `limits`.
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            next_seq: 0,
            cycles: VecDeque::new(),
            models: BTreeMap::new(),
            accelerators: Vec::new(),
            not_kept: 0,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &HistoryLimits {
        &self.limits
    }

    /// Cycles kept.
    pub fn len(&self) -> usize {
        self.cycles.len()
    }

    /// Whether no cycle is kept.
    pub fn is_empty(&self) -> bool {
        self.cycles.is_empty()
    }

    /// Model series kept.
    pub fn model_count(&self) -> usize {
        self.models.len()
    }

    /// Namespaces of the model series kept.
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.models.keys().map(|(ns, _)| ns.clone()).collect()
    }

    /// Records one completed cycle at `now_unix` (UNIX s) with the models the view
    /// published. A time before the last recorded one is taken as the last one (a clock
    /// stepped back does not reorder the series); a time that is not finite records nothing.
    pub fn record(&mut self, now_unix: f64, models: &[ModelView]) {
        if !now_unix.is_finite() || self.limits.max_points == 0 {
            return;
        }
        let time_unix = self
            .cycles
            .back()
            .map_or(now_unix, |c| c.time_unix.max(now_unix));
        let seq = self.next_seq;
        self.next_seq += 1;
        push_bounded(
            &mut self.cycles,
            Cycle { seq, time_unix },
            self.limits.max_points,
        );
        self.prune(time_unix);

        // Models already followed first, so a new model over the cap only replaces a series
        // absent from this cycle.
        let mut new = Vec::new();
        for m in models {
            let key = (m.namespace.clone(), m.name.clone());
            let point = self.point(seq, m);
            match self.models.get_mut(&key) {
                Some(series) if series.points.back().is_some_and(|p| p.seq == seq) => {}
                Some(series) => push_bounded(&mut series.points, point, self.limits.max_points),
                None => new.push((key, point)),
            }
        }
        self.not_kept = 0;
        for (key, point) in new {
            if self.models.contains_key(&key) {
                continue;
            }
            if self.models.len() >= self.limits.max_models {
                let stalest = self
                    .models
                    .iter()
                    .filter(|(_, s)| s.points.back().is_none_or(|p| p.seq < seq))
                    .min_by_key(|(_, s)| s.points.back().map_or(0, |p| p.seq))
                    .map(|(k, _)| k.clone());
                match stalest {
                    Some(k) => {
                        self.models.remove(&k);
                    }
                    None => {
                        self.not_kept += 1;
                        continue;
                    }
                }
            }
            let mut series = ModelSeries::default();
            push_bounded(&mut series.points, point, self.limits.max_points);
            self.models.insert(key, series);
        }
    }

    /// Drops cycles outside the window and the points of dropped cycles.
    fn prune(&mut self, newest: f64) {
        let from = newest - self.limits.window_seconds;
        while self.cycles.front().is_some_and(|c| c.time_unix < from) {
            self.cycles.pop_front();
        }
        let oldest = self.cycles.front().map_or(u64::MAX, |c| c.seq);
        self.models.retain(|_, s| {
            while s.points.front().is_some_and(|p| p.seq < oldest) {
                s.points.pop_front();
            }
            !s.points.is_empty()
        });
    }

    fn point(&mut self, seq: u64, m: &ModelView) -> ModelPoint {
        let mut replicas: Vec<Replicas> = Vec::new();
        for v in &m.variants {
            let Some(accelerator) = self.accelerator_index(&v.accelerator) else {
                continue;
            };
            if let Some(r) = replicas.iter_mut().find(|r| r.accelerator == accelerator) {
                r.current = r.current.saturating_add(v.current);
                r.desired = r.desired.saturating_add(v.desired);
            } else if replicas.len() < MAX_TYPES_PER_MODEL {
                replicas.push(Replicas {
                    accelerator,
                    current: v.current,
                    desired: v.desired,
                });
            }
        }
        ModelPoint {
            seq,
            arrival_rate: m.arrival_rate.filter(|r| r.is_finite()),
            demand_rps: m.demand_rps,
            capacity_rps: m
                .variants
                .iter()
                .map(|v| f64::from(v.desired) * v.capacity_rps)
                .sum(),
            desired_cost_per_hour: m.variants.iter().map(|v| v.cost_per_hour).sum(),
            current_cost_per_hour: m
                .variants
                .iter()
                .map(|v| f64::from(v.current) * v.price_per_replica)
                .sum(),
            planned_coverage: m.satisfaction,
            latency: m.latency.as_ref().map(|l| {
                let f = |v: Option<f64>| v.map(|v| v as f32);
                LatencyPoint {
                    ttft_p95_ms: f(l.ttft_p95_ms),
                    itl_p95_ms: f(l.itl_p95_ms),
                    ttft_mean_ms: f(l.ttft_mean_ms),
                    itl_mean_ms: f(l.itl_mean_ms),
                    ttft_target_ms: f(l.ttft_target_ms),
                    itl_target_ms: f(l.itl_target_ms),
                    percentile: f(l.percentile),
                    within_slo: l.within_slo,
                }
            }),
            replicas: replicas.into_boxed_slice(),
        }
    }

    /// The index of accelerator `name`, added when new and the cap allows.
    fn accelerator_index(&mut self, name: &str) -> Option<u16> {
        let name = cut(name, MAX_NAME_BYTES);
        if let Some(i) = self.accelerators.iter().position(|a| a == name) {
            return u16::try_from(i).ok();
        }
        let cap = self.limits.max_accelerators.min(usize::from(u16::MAX) + 1);
        if self.accelerators.len() >= cap {
            return None;
        }
        self.accelerators.push(name.to_string());
        u16::try_from(self.accelerators.len() - 1).ok()
    }

    /// Heap bytes held now (the allocations [`HistoryLimits::bound_bytes`] bounds).
    pub fn heap_bytes(&self) -> usize {
        let points: usize = self
            .models
            .iter()
            .map(|((ns, name), s)| {
                s.points.capacity() * std::mem::size_of::<ModelPoint>()
                    + s.points
                        .iter()
                        .map(|p| p.replicas.len() * std::mem::size_of::<Replicas>())
                        .sum::<usize>()
                    + ns.capacity()
                    + name.capacity()
                    + MAP_ENTRY_BYTES
            })
            .sum();
        self.cycles.capacity() * std::mem::size_of::<Cycle>()
            + points
            + self.accelerators.capacity() * std::mem::size_of::<String>()
            + self
                .accelerators
                .iter()
                .map(String::capacity)
                .sum::<usize>()
    }

    /// The history as the caller who sees `visible` may read it: every cycle's time, the
    /// cost and replicas summed over the visible models, and their series.
    pub fn body(&self, visible: &Visible) -> HistoryBody {
        let times: Vec<f64> = self.cycles.iter().map(|c| c.time_unix).collect();
        let first_seq = self.cycles.front().map_or(0, |c| c.seq);
        let index = |seq: u64| {
            seq.checked_sub(first_seq)
                .and_then(|d| usize::try_from(d).ok())
        };
        let n = times.len();
        let mut desired_cost = vec![0.0; n];
        let mut current_cost = vec![0.0; n];
        let mut per_type: BTreeMap<u16, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
        let mut models = Vec::new();
        let mut overall = Attainment::default();
        for ((ns, name), series) in &self.models {
            if !visible.contains(ns) {
                continue;
            }
            let mut body = ModelSeriesBody {
                namespace: ns.clone(),
                name: name.clone(),
                ..ModelSeriesBody::default()
            };
            for p in &series.points {
                // Cycle seqs are consecutive in `cycles`, so the index is the position.
                let Some(i) = index(p.seq).filter(|&i| i < n) else {
                    continue;
                };
                desired_cost[i] += p.desired_cost_per_hour;
                current_cost[i] += p.current_cost_per_hour;
                for r in p.replicas.iter() {
                    let (cur, des) = per_type
                        .entry(r.accelerator)
                        .or_insert_with(|| (vec![0; n], vec![0; n]));
                    cur[i] += u64::from(r.current);
                    des[i] += u64::from(r.desired);
                }
                let l = p.latency.unwrap_or_default();
                let ms = |v: Option<f32>| v.map(f64::from);
                body.times.push(times[i]);
                body.arrival_rate.push(p.arrival_rate);
                body.demand_rps.push(p.demand_rps);
                body.capacity_rps.push(p.capacity_rps);
                body.cost_per_hour.push(p.desired_cost_per_hour);
                body.planned_coverage.push(p.planned_coverage);
                body.ttft_p95_ms.push(ms(l.ttft_p95_ms));
                body.itl_p95_ms.push(ms(l.itl_p95_ms));
                body.ttft_mean_ms.push(ms(l.ttft_mean_ms));
                body.itl_mean_ms.push(ms(l.itl_mean_ms));
                body.ttft_target_ms.push(ms(l.ttft_target_ms));
                body.itl_target_ms.push(ms(l.itl_target_ms));
                body.within_slo.push(l.within_slo);
                body.attainment.add(p.latency.map(|l| l.within_slo));
                if p.latency.is_some() {
                    body.percentile = ms(l.percentile);
                }
            }
            overall.met += body.attainment.met;
            overall.measured += body.attainment.measured;
            overall.undecided += body.attainment.undecided;
            body.attainment.finish();
            models.push(body);
        }
        overall.finish();
        let mut cost_to_date = Vec::with_capacity(n);
        let mut total = 0.0;
        for i in 0..n {
            if i > 0 {
                total += current_cost[i - 1] * (times[i] - times[i - 1]) / 3600.0;
            }
            cost_to_date.push(total);
        }
        HistoryBody {
            window_seconds: self.limits.window_seconds,
            max_points: self.limits.max_points,
            max_models: self.limits.max_models,
            models_not_kept: visible.is_all().then_some(self.not_kept),
            times,
            desired_cost_per_hour: desired_cost,
            current_cost_per_hour: current_cost,
            cost_to_date,
            models,
            accelerators: per_type
                .into_iter()
                .map(|(i, (current, desired))| AcceleratorSeriesBody {
                    name: self
                        .accelerators
                        .get(usize::from(i))
                        .cloned()
                        .unwrap_or_default(),
                    current,
                    desired,
                })
                .collect(),
            attainment: overall,
        }
    }
}

/// Pushes `item`, first dropping the oldest while `max` are held; the queue's capacity
/// grows by doubling up to `max`, never past it.
fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, max: usize) {
    while queue.len() >= max {
        queue.pop_front();
    }
    if queue.len() == queue.capacity() {
        let target = (queue.capacity() * 2).clamp(4, max.max(1));
        queue.reserve_exact(target.saturating_sub(queue.len()));
    }
    queue.push_back(item);
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Body of `GET /api/v1/history`: series aligned on `times` (oldest first) unless a model's
/// own `times` says otherwise.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryBody {
    /// The window kept, s.
    pub window_seconds: f64,
    /// Most cycles kept.
    pub max_points: usize,
    /// Most model series kept.
    pub max_models: usize,
    /// Models of the last cycle not recorded because `maxModels` series were live (only for
    /// callers who see every namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models_not_kept: Option<usize>,
    /// Completed cycles, UNIX s.
    pub times: Vec<f64>,
    /// Cost of the desired replicas of the visible models at each cycle, $/h.
    pub desired_cost_per_hour: Vec<f64>,
    /// Cost of the current replicas of the visible models at each cycle, $/h.
    pub current_cost_per_hour: Vec<f64>,
    /// Cost of the current replicas integrated from the first cycle kept, $ (each cycle's
    /// $/h holds until the next cycle).
    pub cost_to_date: Vec<f64>,
    /// Per visible model.
    pub models: Vec<ModelSeriesBody>,
    /// Replicas per accelerator type, summed over the visible models, at each cycle.
    pub accelerators: Vec<AcceleratorSeriesBody>,
    /// Measured attainment over every visible model's cycles.
    pub attainment: Attainment,
}

/// One model's series: one entry per cycle in which it was published.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSeriesBody {
    /// Namespace of the VA.
    pub namespace: String,
    /// Name of the VA.
    pub name: String,
    /// The cycles of the points, UNIX s.
    pub times: Vec<f64>,
    /// Observed arrival rate, req/s (null: unknown).
    pub arrival_rate: Vec<Option<f64>>,
    /// Demand the plan was made for (with headroom), req/s.
    pub demand_rps: Vec<f64>,
    /// Capacity of the desired replicas, req/s.
    pub capacity_rps: Vec<f64>,
    /// Cost of the desired replicas, $/h.
    pub cost_per_hour: Vec<f64>,
    /// The planner's share of demand served (0..1): planned, not measured.
    pub planned_coverage: Vec<f64>,
    /// Measured p95 time to first token, ms.
    pub ttft_p95_ms: Vec<Option<f64>>,
    /// Measured p95 inter-token latency, ms.
    pub itl_p95_ms: Vec<Option<f64>>,
    /// Measured mean time to first token, ms.
    pub ttft_mean_ms: Vec<Option<f64>>,
    /// Measured mean inter-token latency, ms.
    pub itl_mean_ms: Vec<Option<f64>>,
    /// The SLO's TTFT target, ms.
    pub ttft_target_ms: Vec<Option<f64>>,
    /// The SLO's ITL target, ms.
    pub itl_target_ms: Vec<Option<f64>>,
    /// Whether the measured window met the SLO (null: the figures cannot tell).
    pub within_slo: Vec<Option<bool>>,
    /// The SLO's percentile at the last measured point, percent (null: the targets are
    /// means, or nothing was measured).
    pub percentile: Option<f64>,
    /// Measured attainment over these cycles.
    pub attainment: Attainment,
}

/// Replicas on one accelerator type.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceleratorSeriesBody {
    /// Accelerator type.
    pub name: String,
    /// Current replicas at each cycle.
    pub current: Vec<u64>,
    /// Desired replicas at each cycle.
    pub desired: Vec<u64>,
}

/// Measured SLO attainment: of the cycles whose measured latencies could tell, how many met
/// the SLO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attainment {
    /// Cycles whose measured window met the SLO.
    pub met: u64,
    /// Cycles with a verdict (met or missed).
    pub measured: u64,
    /// Cycles with measured latencies but no verdict (a figure unknown, or a p95 within the
    /// targets of an SLO above the 95th percentile, which it cannot confirm).
    pub undecided: u64,
    /// `met / measured` (0..1); null when nothing was measured.
    pub share: Option<f64>,
}

impl Attainment {
    /// Counts one cycle: None when nothing was measured, else its verdict.
    fn add(&mut self, measured: Option<Option<bool>>) {
        match measured {
            None => {}
            Some(None) => self.undecided += 1,
            Some(Some(w)) => {
                self.measured += 1;
                self.met += u64::from(w);
            }
        }
    }

    fn finish(&mut self) {
        self.share = (self.measured > 0).then(|| self.met as f64 / self.measured as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{LatencyView, VariantView};

    fn variant(accelerator: &str, current: u32, desired: u32) -> VariantView {
        VariantView {
            name: format!("v-{accelerator}"),
            accelerator: accelerator.into(),
            current,
            ready: current,
            pending: 0,
            planned: desired,
            desired,
            capacity_rps: 10.0,
            cost_per_hour: f64::from(desired) * 2.0,
            price_per_replica: 2.0,
            reason: String::new(),
            may_actuate: true,
            frozen: None,
        }
    }

    fn model(ns: &str, name: &str, rate: f64, within: Option<bool>) -> ModelView {
        ModelView {
            namespace: ns.into(),
            name: name.into(),
            model_id: name.into(),
            priority: 0,
            arrival_rate: Some(rate),
            demand_rps: rate,
            satisfaction: 1.0,
            metrics_unknown: None,
            variants: vec![variant("H100", 1, 2), variant("L40S", 3, 3)],
            conditions: Vec::new(),
            latency: Some(LatencyView {
                ttft_mean_ms: Some(100.0),
                ttft_p95_ms: Some(200.0),
                itl_mean_ms: Some(10.0),
                itl_p95_ms: Some(20.0),
                ttft_target_ms: Some(500.0),
                itl_target_ms: Some(50.0),
                percentile: None,
                within_slo: within,
            }),
            actuation: wvo_api::crd::ActuationMode::Scale,
            dry_run: false,
        }
    }

    fn limits(window: f64, points: usize, models: usize) -> HistoryLimits {
        HistoryLimits {
            window_seconds: window,
            max_points: points,
            max_models: models,
            max_accelerators: 4,
        }
    }

    #[test]
    fn at_most_max_points_cycles_and_points_per_series_are_kept() {
        let mut h = History::new(limits(1e9, 5, 10));
        for t in 0..12 {
            h.record(f64::from(t), &[model("a", "x", f64::from(t), None)]);
        }
        let body = h.body(&Visible::All);
        assert_eq!(body.times, vec![7.0, 8.0, 9.0, 10.0, 11.0]);
        assert_eq!(body.models[0].times, body.times);
        assert_eq!(
            body.models[0].arrival_rate,
            vec![Some(7.0), Some(8.0), Some(9.0), Some(10.0), Some(11.0)]
        );
    }

    #[test]
    fn cycles_older_than_the_window_are_dropped_with_their_points() {
        let mut h = History::new(limits(10.0, 100, 10));
        h.record(0.0, &[model("a", "gone", 1.0, None)]);
        for t in [5.0, 12.0, 20.0] {
            h.record(t, &[model("a", "x", 1.0, None)]);
        }
        let body = h.body(&Visible::All);
        assert_eq!(body.times, vec![12.0, 20.0]);
        // The model last seen at 0 s has no point left: its series is gone.
        let names: Vec<&str> = body.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["x"]);
        assert_eq!(h.model_count(), 1);
    }

    #[test]
    fn a_new_model_over_the_cap_replaces_the_stalest_absent_series_or_is_not_kept() {
        let mut h = History::new(limits(1e9, 100, 2));
        h.record(0.0, &[model("a", "old", 1.0, None)]);
        h.record(1.0, &[model("a", "x", 1.0, None)]);
        // "old" is absent from this cycle and stalest: "y" takes its place.
        h.record(
            2.0,
            &[model("a", "x", 1.0, None), model("a", "y", 1.0, None)],
        );
        let names: Vec<String> = h
            .body(&Visible::All)
            .models
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, vec!["x", "y"]);
        // Both live: "z" is not recorded, and the count says so (to unscoped callers only).
        let three = [
            model("a", "x", 1.0, None),
            model("a", "y", 1.0, None),
            model("a", "z", 1.0, None),
        ];
        h.record(3.0, &three);
        let body = h.body(&Visible::All);
        assert_eq!(body.models.len(), 2);
        assert_eq!(body.models_not_kept, Some(1));
        let scoped = Visible::Only(["a".to_string()].into_iter().collect());
        assert_eq!(h.body(&scoped).models_not_kept, None);
    }

    #[test]
    fn cost_to_date_integrates_the_current_replicas_cost_between_cycles() {
        let mut h = History::new(limits(1e9, 100, 10));
        // 4 current replicas x $2/h = $8/h; desired 5 x $2 = $10/h.
        h.record(0.0, &[model("a", "x", 1.0, None)]);
        h.record(1800.0, &[model("a", "x", 1.0, None)]);
        h.record(3600.0, &[]);
        let body = h.body(&Visible::All);
        assert_eq!(body.current_cost_per_hour, vec![8.0, 8.0, 0.0]);
        assert_eq!(body.desired_cost_per_hour, vec![10.0, 10.0, 0.0]);
        assert_eq!(body.cost_to_date, vec![0.0, 4.0, 8.0]);
        // Capacity of the desired replicas: (2 + 3) x 10 req/s.
        assert_eq!(body.models[0].capacity_rps, vec![50.0, 50.0]);
        let h100 = &body.accelerators[0];
        assert_eq!(
            (h100.name.as_str(), &h100.current, &h100.desired),
            ("H100", &vec![1, 1, 0], &vec![2, 2, 0])
        );
    }

    #[test]
    fn attainment_counts_only_cycles_whose_measurement_could_tell() {
        let mut h = History::new(limits(1e9, 100, 10));
        for (t, within) in [Some(true), Some(false), None, Some(true)]
            .into_iter()
            .enumerate()
        {
            h.record(t as f64, &[model("a", "x", 1.0, within)]);
        }
        let a = h.body(&Visible::All).models[0].attainment;
        assert_eq!((a.met, a.measured, a.undecided), (2, 3, 1));
        assert_eq!(a.share, Some(2.0 / 3.0));
        let empty = History::default().body(&Visible::All).attainment;
        assert_eq!(empty.share, None);
    }

    #[test]
    fn a_scoped_caller_gets_its_models_and_totals_over_them_only() {
        let mut h = History::new(limits(1e9, 100, 10));
        h.record(
            0.0,
            &[
                model("a", "x", 1.0, Some(true)),
                model("b", "y", 1.0, Some(false)),
            ],
        );
        let a = h.body(&Visible::Only(["a".to_string()].into_iter().collect()));
        assert_eq!(a.models.len(), 1);
        assert_eq!(a.desired_cost_per_hour, vec![10.0]);
        assert_eq!(a.accelerators[0].desired, vec![2]);
        assert_eq!((a.attainment.met, a.attainment.measured), (1, 1));
        assert_eq!(h.body(&Visible::All).desired_cost_per_hour, vec![20.0]);
    }

    #[test]
    fn a_clock_stepped_back_does_not_reorder_the_series() {
        let mut h = History::new(limits(1e9, 100, 10));
        h.record(10.0, &[model("a", "x", 1.0, None)]);
        h.record(5.0, &[model("a", "x", 2.0, None)]);
        h.record(f64::NAN, &[model("a", "x", 3.0, None)]);
        assert_eq!(h.body(&Visible::All).times, vec![10.0, 10.0]);
    }

    #[test]
    fn accelerator_types_over_the_cap_are_not_recorded() {
        let mut h = History::new(HistoryLimits {
            max_accelerators: 1,
            ..limits(1e9, 100, 10)
        });
        h.record(0.0, &[model("a", "x", 1.0, None)]);
        let names: Vec<String> = h
            .body(&Visible::All)
            .accelerators
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, vec!["H100"]);
    }

    #[test]
    fn the_memory_bound() {
        // Filled past every cap with the longest names: the heap stays under the bound.
        let l = limits(1e9, 40, 6);
        let mut h = History::new(l.clone());
        let long = "n".repeat(253);
        for t in 0..100 {
            let models: Vec<ModelView> = (0..10)
                .map(|i| {
                    let mut m = model(
                        &"s".repeat(63),
                        &format!("{long}{}", (t + i) % 13),
                        1.0,
                        None,
                    );
                    m.variants = (0..8)
                        .map(|k| variant(&format!("{long}{k}"), 1, 1))
                        .collect();
                    m
                })
                .collect();
            h.record(f64::from(t), &models);
            assert!(h.len() <= 40 && h.model_count() <= 6);
            assert!(
                h.heap_bytes() <= l.bound_bytes(),
                "{} > {}",
                h.heap_bytes(),
                l.bound_bytes()
            );
        }
        let default = HistoryLimits::default().bound_bytes();
        println!(
            "history memory bound with the defaults ({} s, {} points, {} models, {} types): {} bytes ({:.1} MB)",
            DEFAULT_WINDOW_SECONDS,
            DEFAULT_MAX_POINTS,
            DEFAULT_MAX_MODELS,
            DEFAULT_MAX_ACCELERATORS,
            default,
            default as f64 / 1e6
        );
    }
}
