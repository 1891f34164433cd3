//! The discrete-event simulator: traffic, gateway, pods on GPUs, scrapes and policy ticks on
//! one virtual clock. See the crate docs for the model; `docs/bench.md` for the rationale.

use std::collections::{BTreeSet, VecDeque};

use wvo_perf::batching::{Completion, Engine, EngineConfig, Request};
use wvo_perf::workload::SplitMix64;

use crate::policy::{Desired, ModelView, ObservedLoad, PodSample, Policy, VariantView, View};
use crate::scenario::{OutputDistribution, Scenario, Shape};
use crate::trace::Arrivals;
use crate::BenchError;

/// Seconds between metric scrapes (Prometheus' usual 15 s).
pub const SCRAPE_SECONDS: f64 = 15.0;
/// Trailing window of the observed arrival rate, s (wvo's collector default).
pub const RATE_WINDOW_SECONDS: f64 = 60.0;
/// Width of the arrival-time buckets the recovery time is measured on, s.
pub const BUCKET_SECONDS: f64 = 10.0;
/// A recovery window spans this many buckets (30 s).
pub const RECOVERY_WINDOW_BUCKETS: usize = 3;

/// Lifecycle of a pod.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PodState {
    /// Waiting for free GPUs of its type (unschedulable).
    Pending,
    /// GPUs bound, loading the model until `ready_at` (s).
    Starting { ready_at: f64 },
    /// Serving.
    Ready,
    /// Removed by scale-down: receives nothing new, finishes what it has, then frees its GPUs;
    /// killed at `until` (s, the termination grace period) with what is left dropped.
    Draining { until: f64 },
}

#[derive(Clone, Debug)]
struct Pod {
    id: u64,
    model: usize,
    variant: usize,
    state: PodState,
    engine: Engine,
    /// Metrics of the last scrape (None until scraped while Ready).
    scraped: Option<PodSample>,
    /// Ids of the requests on this pod, not finished.
    in_flight: BTreeSet<u64>,
    /// When it got its GPUs, s (None while Pending).
    bound_at: Option<f64>,
}

impl Pod {
    fn outstanding(&self) -> u64 {
        self.in_flight.len() as u64
    }

    fn holds_gpus(&self) -> bool {
        !matches!(self.state, PodState::Pending)
    }
}

/// A request waiting at the gateway for a ready replica.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    id: u64,
    arrival_s: f64,
    input: u32,
    output: u32,
}

/// Seeded arrivals of one model.
#[derive(Clone, Debug)]
enum Source {
    /// Poisson arrivals by thinning against the peak rate (req/s); `next_s` is the next
    /// candidate arrival, s.
    Poisson {
        rng: SplitMix64,
        peak: f64,
        next_s: f64,
    },
    /// Replay of a trace.
    Trace(Arrivals),
}

impl Source {
    /// Time of the next (candidate) arrival, s.
    fn next_s(&self) -> f64 {
        match self {
            Source::Poisson { next_s, .. } => *next_s,
            Source::Trace(a) => a.next_time(),
        }
    }
}

/// Per-model counters of finished requests (the servers' `request_success_total` and token
/// counters, summed over pods).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counters {
    finished: u64,
    input_tokens: u64,
    output_tokens: u64,
}

/// One model at one scrape, as the collector reads it: counters, and gauges summed over the
/// pods scraped (Ready and Draining: a terminating pod is scraped until it is gone).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ModelScrape {
    counters: Counters,
    /// `num_requests_running + num_requests_waiting`, summed, requests.
    in_flight: u64,
    /// `num_requests_waiting`, summed, requests.
    waiting: u64,
    /// The gateway's queue gauge (the EPP's flow-control queue size), requests.
    gateway_queue: u64,
    /// Sum of `kv_cache_usage_perc` over Ready pods, and their number.
    kv_sum: f64,
    kv_pods: u32,
}

/// One point of the time series (taken at every scrape).
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesPoint {
    /// Time, s.
    pub t: f64,
    /// Per model: true arrival rate, req/s.
    pub rate: Vec<f64>,
    /// Per model: capacity of its ready replicas at the model's SLO, req/s.
    pub capacity: Vec<f64>,
    /// Per model, per variant: ready replicas.
    pub ready: Vec<Vec<u32>>,
    /// Per model, per variant: replicas asked for (pending + starting + ready).
    pub replicas: Vec<Vec<u32>>,
    /// Cost of the GPUs held now, $/h.
    pub cost_per_hour: f64,
}

/// Requests so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Arrived at the gateway.
    pub arrived: u64,
    /// Finished (served, whether in time or not).
    pub served: u64,
    /// Dropped at the gateway (waited longer than the timeout with no ready replica).
    pub dropped: u64,
    /// At the gateway or on a replica.
    pub in_flight: u64,
}

/// Outcome of one request.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Outcome {
    model: usize,
    arrival_s: f64,
    /// None when dropped.
    ttft_ms: Option<f64>,
    itl_ms: Option<f64>,
    met: bool,
}

/// Everything a finished run measured. Requests are scored when they arrive at or after the
/// scenario's `warmupSeconds`; GPU time and scaling actions count from it too.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    /// Policy name.
    pub policy: String,
    /// GPU-hours held (starting + ready + draining pods), per accelerator type in inventory
    /// order, GPU-h.
    pub gpu_hours: Vec<f64>,
    /// Cost of those GPU-hours, $.
    pub cost_dollars: f64,
    /// Requests arrived.
    pub requests: u64,
    /// Requests dropped.
    pub dropped: u64,
    /// Requests meeting both TTFT and ITL targets.
    pub met: u64,
    /// Per priority tier: (priority, arrived, met), ascending priority.
    pub per_tier: Vec<(i32, u64, u64)>,
    /// TTFT (gateway wait included) of every served request, ms.
    pub ttft_ms: Vec<f64>,
    /// Mean ITL of every served request with >= 2 tokens, ms.
    pub itl_ms: Vec<f64>,
    /// Sum of all inter-token gaps of served requests, ms (token-weighted ITL numerator).
    pub itl_gap_sum_ms: f64,
    /// Number of those gaps.
    pub itl_gaps: u64,
    /// Changes of desired replicas (per variant and decision).
    pub scaling_actions: u64,
    /// Per 10 s bucket of arrival time: (arrived, met).
    pub buckets: Vec<(u64, u64)>,
    /// Time series, one point per scrape.
    pub series: Vec<SeriesPoint>,
}

/// A simulation of one policy on one scenario.
pub struct Simulation<'a> {
    scenario: &'a Scenario,
    policy: Box<dyn Policy + 'a>,
    now: f64,
    sources: Vec<Source>,
    gateway: Vec<VecDeque<Waiting>>,
    pods: Vec<Pod>,
    next_pod_id: u64,
    next_request_id: u64,
    /// Arrival time (s) and gateway wait (s) per request id.
    arrival_of: Vec<f64>,
    dispatch_of: Vec<f64>,
    model_of: Vec<u32>,
    free_gpus: Vec<u32>,
    gpu_seconds: Vec<f64>,
    counters: Vec<Counters>,
    /// Scrape history: (time, what each model's scrape showed).
    history: VecDeque<(f64, Vec<ModelScrape>)>,
    /// Per model, per variant: the last start-up seen (GPUs bound to Ready), s.
    observed_startup: Vec<Vec<Option<f64>>>,
    next_scrape: f64,
    next_decision: f64,
    outcomes: Vec<Outcome>,
    itl_gap_sum_ms: f64,
    itl_gaps: u64,
    dropped: u64,
    served: u64,
    scaling_actions: u64,
    series: Vec<SeriesPoint>,
    /// Longest output a generated request may ask for per model (fits every variant's KV
    /// cache; at most 16x the mean).
    max_output: Vec<u32>,
    /// Smallest KV cache of each model's variants, tokens (trace requests are capped to it).
    min_kv: Vec<u64>,
    /// Start of scoring (the scenario's warm-up), s.
    warmup: f64,
}

fn engine_for(scenario: &Scenario, model: usize, variant: usize) -> Result<Engine, BenchError> {
    let v = &scenario.models[model].variants[variant];
    Engine::new(EngineConfig {
        profile: v.profile,
        kv_cache_tokens: v.kv_cache_tokens,
        record_itl: false,
    })
    .map_err(|e| {
        BenchError::field(
            format!("models[{model}].variants[{variant}].profile"),
            e.to_string(),
        )
    })
}

impl<'a> Simulation<'a> {
    /// A simulation at time 0 with the policy's initial replicas ready (warm start).
    pub fn new(
        scenario: &'a Scenario,
        mut policy: Box<dyn Policy + 'a>,
        seed: u64,
    ) -> Result<Self, BenchError> {
        let w = scenario.warmup_seconds;
        if !(w.is_finite() && w >= 0.0 && w < scenario.duration_seconds) {
            return Err(BenchError::field(
                "warmupSeconds",
                format!(
                    "must be >= 0 s and below the duration ({} s), got {w}",
                    scenario.duration_seconds
                ),
            ));
        }
        let sources = scenario
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut rng =
                    SplitMix64::new(seed ^ 0x5851_F42D_4C95_7F2D_u64.wrapping_mul(i as u64 + 1));
                if let Shape::Trace {
                    replay: Some(r), ..
                } = &m.traffic.shape
                {
                    return Source::Trace(Arrivals::new(r.clone(), rng.next_u64()));
                }
                let peak = m.traffic.shape.max_rate(0.0, scenario.duration_seconds);
                let next_s = if peak > 0.0 {
                    rng.exp1() / peak
                } else {
                    f64::INFINITY
                };
                Source::Poisson { rng, peak, next_s }
            })
            .collect();
        let min_kv: Vec<u64> = scenario
            .models
            .iter()
            .map(|m| {
                m.variants
                    .iter()
                    .filter_map(|v| v.kv_cache_tokens)
                    .min()
                    .unwrap_or(u64::MAX)
            })
            .collect();
        let max_output = scenario
            .models
            .iter()
            .zip(&min_kv)
            .map(|(m, &kv)| {
                let Some(t) = m.traffic.tokens else {
                    return u32::MAX;
                };
                let room = kv.saturating_sub(u64::from(t.input)).max(1);
                let cap = u64::from(t.output).saturating_mul(16).max(1);
                u32::try_from(room.min(cap)).unwrap_or(u32::MAX)
            })
            .collect();
        let period = policy.period_seconds();
        let initial = policy.initial(scenario)?;
        let mut sim = Simulation {
            scenario,
            now: 0.0,
            sources,
            gateway: vec![VecDeque::new(); scenario.models.len()],
            pods: Vec::new(),
            next_pod_id: 0,
            next_request_id: 0,
            arrival_of: Vec::new(),
            dispatch_of: Vec::new(),
            model_of: Vec::new(),
            free_gpus: scenario.inventory.iter().map(|a| a.count).collect(),
            gpu_seconds: vec![0.0; scenario.inventory.len()],
            counters: vec![Counters::default(); scenario.models.len()],
            history: VecDeque::new(),
            observed_startup: scenario
                .models
                .iter()
                .map(|m| vec![None; m.variants.len()])
                .collect(),
            next_scrape: 0.0,
            next_decision: if period.is_finite() && period > 0.0 {
                period
            } else {
                f64::INFINITY
            },
            outcomes: Vec::new(),
            itl_gap_sum_ms: 0.0,
            itl_gaps: 0,
            dropped: 0,
            served: 0,
            scaling_actions: 0,
            series: Vec::new(),
            max_output,
            min_kv,
            warmup: w,
            policy,
        };
        sim.check_shape(&initial)?;
        // Warm start: the initial replicas hold their GPUs and are ready at time 0.
        for (mi, model) in initial.iter().enumerate() {
            for (vi, &n) in model.iter().enumerate() {
                for _ in 0..n {
                    let engine = engine_for(scenario, mi, vi)?;
                    sim.pods.push(Pod {
                        id: sim.next_pod_id,
                        model: mi,
                        variant: vi,
                        state: PodState::Pending,
                        engine,
                        scraped: None,
                        in_flight: BTreeSet::new(),
                        bound_at: None,
                    });
                    sim.next_pod_id += 1;
                }
            }
        }
        sim.bind(true);
        Ok(sim)
    }

    fn check_shape(&self, d: &Desired) -> Result<(), BenchError> {
        let ok = d.len() == self.scenario.models.len()
            && d.iter()
                .zip(&self.scenario.models)
                .all(|(v, m)| v.len() == m.variants.len());
        if ok {
            Ok(())
        } else {
            Err(BenchError::Policy(format!(
                "{} returned replicas that do not match the scenario's models and variants",
                self.policy.name()
            )))
        }
    }

    /// Simulated time now, s.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// Requests so far (pods advanced to the current time).
    pub fn counts(&self) -> Counts {
        let arrived = self.next_request_id;
        let on_pods: u64 = self.pods.iter().map(Pod::outstanding).sum();
        let at_gateway: u64 = self.gateway.iter().map(|q| q.len() as u64).sum();
        Counts {
            arrived,
            served: self.served,
            dropped: self.dropped,
            in_flight: on_pods + at_gateway,
        }
    }

    /// Runs until `t` (s, capped at the scenario's duration).
    pub fn run_until(&mut self, t: f64) -> Result<(), BenchError> {
        let end = t.min(self.scenario.duration_seconds);
        loop {
            let next_arrival = self
                .sources
                .iter()
                .enumerate()
                .map(|(i, s)| (s.next_s(), i))
                .fold((f64::INFINITY, 0), |a, b| if b.0 < a.0 { b } else { a });
            // The next pod to become ready and the next drain to end, in one pass.
            let (mut next_ready, mut next_kill) = (f64::INFINITY, f64::INFINITY);
            for p in &self.pods {
                match p.state {
                    PodState::Starting { ready_at } => next_ready = next_ready.min(ready_at),
                    PodState::Draining { until } => next_kill = next_kill.min(until),
                    _ => {}
                }
            }
            let timeout = self.scenario.timeout_seconds;
            let next_timeout = self
                .gateway
                .iter()
                .filter_map(|q| q.front().map(|w| w.arrival_s + timeout))
                .fold(f64::INFINITY, f64::min);
            let next = next_arrival
                .0
                .min(next_ready)
                .min(next_kill)
                .min(next_timeout)
                .min(self.next_scrape)
                .min(self.next_decision);
            if next > end {
                break;
            }
            self.advance_clock(next);
            // Ties: pods becoming ready, then timeouts, then the policy (which sees the
            // previous scrape), then the scrape, then arrivals.
            if next_kill <= next {
                self.on_kill();
            } else if next_ready <= next {
                self.on_ready();
            } else if next_timeout <= next {
                self.on_timeouts();
            } else if self.next_decision <= next {
                self.on_decision()?;
                self.next_decision += self.policy.period_seconds();
            } else if self.next_scrape <= next {
                self.on_scrape();
                self.next_scrape += SCRAPE_SECONDS;
            } else {
                self.on_arrival(next_arrival.1);
            }
        }
        self.advance_clock(end);
        let now_ms = self.now * 1000.0;
        for i in 0..self.pods.len() {
            let adv = self.pods[i].engine.advance_to(now_ms);
            self.record(i, &adv.completions);
        }
        Ok(())
    }

    /// Runs the whole scenario, lets in-flight requests finish (requests still at the
    /// gateway count as dropped) and returns the measurements.
    pub fn finish(mut self) -> Result<RunResult, BenchError> {
        self.run_until(self.scenario.duration_seconds)?;
        for q in &mut self.gateway {
            for w in q.drain(..) {
                self.dropped += 1;
                self.outcomes.push(Outcome {
                    model: self.model_of[w.id as usize] as usize,
                    arrival_s: w.arrival_s,
                    ttft_ms: None,
                    itl_ms: None,
                    met: false,
                });
            }
        }
        for i in 0..self.pods.len() {
            let adv = self.pods[i].engine.run_to_idle();
            self.record(i, &adv.completions);
        }
        Ok(self.result())
    }

    fn advance_clock(&mut self, t: f64) {
        if t > self.now {
            // GPU time counts from the end of the warm-up.
            let dt = t - self.now.max(self.warmup);
            for p in self.pods.iter().filter(|_| dt > 0.0) {
                if p.holds_gpus() {
                    let v = &self.scenario.models[p.model].variants[p.variant];
                    if let Some(ai) = self
                        .scenario
                        .inventory
                        .iter()
                        .position(|a| a.name == v.accelerator)
                    {
                        self.gpu_seconds[ai] += dt * f64::from(v.gpus_per_replica);
                    }
                }
            }
            self.now = t;
        }
    }

    fn accelerator_index(&self, model: usize, variant: usize) -> Option<usize> {
        let name = &self.scenario.models[model].variants[variant].accelerator;
        self.scenario.inventory.iter().position(|a| &a.name == name)
    }

    /// Binds pending pods (creation order) to free GPUs; `instant` makes them ready at once.
    fn bind(&mut self, instant: bool) {
        let startup = self.scenario.startup_seconds;
        for i in 0..self.pods.len() {
            if self.pods[i].state != PodState::Pending {
                continue;
            }
            let (m, v) = (self.pods[i].model, self.pods[i].variant);
            let need = self.scenario.models[m].variants[v].gpus_per_replica;
            if let Some(ai) = self.accelerator_index(m, v) {
                if self.free_gpus[ai] >= need {
                    self.free_gpus[ai] -= need;
                    self.pods[i].bound_at = Some(self.now);
                    self.pods[i].state = if instant || startup <= 0.0 {
                        PodState::Ready
                    } else {
                        PodState::Starting {
                            ready_at: self.now + startup,
                        }
                    };
                }
            }
        }
        self.dispatch_gateways();
    }

    fn release(&mut self, i: usize) {
        let (m, v) = (self.pods[i].model, self.pods[i].variant);
        if self.pods[i].holds_gpus() {
            if let Some(ai) = self.accelerator_index(m, v) {
                self.free_gpus[ai] += self.scenario.models[m].variants[v].gpus_per_replica;
            }
        }
        self.pods.remove(i);
    }

    fn on_ready(&mut self) {
        let now = self.now;
        let now_ms = now * 1000.0;
        for p in &mut self.pods {
            if let PodState::Starting { ready_at } = p.state {
                if ready_at <= now {
                    p.state = PodState::Ready;
                    if let Some(bound) = p.bound_at {
                        self.observed_startup[p.model][p.variant] = Some(now - bound);
                    }
                    // An idle engine's clock starts when it starts serving.
                    p.engine.advance_to(now_ms);
                }
            }
        }
        self.dispatch_gateways();
    }

    /// Draining pods past their grace period are killed: what they still hold is dropped.
    fn on_kill(&mut self) {
        let now = self.now;
        let mut i = 0;
        while i < self.pods.len() {
            let PodState::Draining { until } = self.pods[i].state else {
                i += 1;
                continue;
            };
            if until > now {
                i += 1;
                continue;
            }
            let adv = self.pods[i].engine.advance_to(now * 1000.0);
            self.record(i, &adv.completions);
            let mi = self.pods[i].model;
            for id in std::mem::take(&mut self.pods[i].in_flight) {
                self.dropped += 1;
                self.outcomes.push(Outcome {
                    model: mi,
                    arrival_s: self.arrival_of[id as usize],
                    ttft_ms: None,
                    itl_ms: None,
                    met: false,
                });
            }
            self.release(i);
        }
        let instant = self.policy.instant_startup();
        self.bind(instant);
    }

    fn on_timeouts(&mut self) {
        // The same sum as `run_until`'s next timeout: `now - timeout` can round the other way
        // and leave the front request in place while the clock stands still.
        let timeout = self.scenario.timeout_seconds;
        for mi in 0..self.gateway.len() {
            while let Some(w) = self.gateway[mi].front().copied() {
                if w.arrival_s + timeout > self.now {
                    break;
                }
                self.gateway[mi].pop_front();
                self.dropped += 1;
                self.outcomes.push(Outcome {
                    model: mi,
                    arrival_s: w.arrival_s,
                    ttft_ms: None,
                    itl_ms: None,
                    met: false,
                });
            }
        }
    }

    fn on_arrival(&mut self, mi: usize) {
        let now = self.now;
        let model = &self.scenario.models[mi];
        let (input, output) = match &mut self.sources[mi] {
            Source::Poisson { rng, peak, next_s } => {
                let Some(tokens) = model.traffic.tokens else {
                    *next_s = f64::INFINITY;
                    return;
                };
                let accept = rng.unit_half_open() * *peak < model.traffic.shape.rate(now);
                let output = match tokens.output_distribution {
                    OutputDistribution::Geometric => rng.geometric(f64::from(tokens.output)),
                    OutputDistribution::Fixed => tokens.output,
                }
                .clamp(1, self.max_output[mi]);
                *next_s = now + rng.exp1() / *peak;
                if !accept {
                    return;
                }
                (tokens.input, output)
            }
            Source::Trace(arrivals) => {
                let Some(a) = arrivals.pop() else {
                    return;
                };
                let room = self.min_kv[mi].saturating_sub(u64::from(a.input)).max(1);
                let cap = u32::try_from(room).unwrap_or(u32::MAX);
                (a.input, a.output.clamp(1, cap))
            }
        };
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.arrival_of.push(now);
        self.dispatch_of.push(now);
        self.model_of.push(mi as u32);
        let w = Waiting {
            id,
            arrival_s: now,
            input,
            output,
        };
        if self.gateway[mi].is_empty() {
            if let Some(pi) = self.pick_replica(mi) {
                self.submit(pi, w);
                return;
            }
        }
        self.gateway[mi].push_back(w);
    }

    /// Least outstanding requests among the model's ready pods (advanced to now).
    fn pick_replica(&mut self, mi: usize) -> Option<usize> {
        let now_ms = self.now * 1000.0;
        let mut best: Option<(u64, usize)> = None;
        for i in 0..self.pods.len() {
            if self.pods[i].model != mi || self.pods[i].state != PodState::Ready {
                continue;
            }
            let adv = self.pods[i].engine.advance_to(now_ms);
            if !adv.completions.is_empty() {
                self.record(i, &adv.completions);
            }
            let o = self.pods[i].outstanding();
            if best.is_none_or(|(b, _)| o < b) {
                best = Some((o, i));
            }
        }
        best.map(|(_, i)| i)
    }

    fn submit(&mut self, pi: usize, w: Waiting) {
        let now = self.now;
        self.dispatch_of[w.id as usize] = now;
        let req = Request {
            id: w.id,
            arrival_ms: now * 1000.0,
            input_tokens: w.input,
            output_tokens: w.output,
        };
        if self.pods[pi].engine.submit(req).is_ok() {
            self.pods[pi].in_flight.insert(w.id);
        } else {
            // Cannot happen for a checked scenario (outputs are capped to the KV cache);
            // count it as dropped rather than lose it.
            self.dropped += 1;
            self.outcomes.push(Outcome {
                model: self.pods[pi].model,
                arrival_s: w.arrival_s,
                ttft_ms: None,
                itl_ms: None,
                met: false,
            });
        }
    }

    fn dispatch_gateways(&mut self) {
        for mi in 0..self.gateway.len() {
            while let Some(w) = self.gateway[mi].front().copied() {
                let Some(pi) = self.pick_replica(mi) else {
                    break;
                };
                self.gateway[mi].pop_front();
                self.submit(pi, w);
            }
        }
    }

    fn record(&mut self, pi: usize, completions: &[Completion]) {
        let mi = self.pods[pi].model;
        let slo = self.scenario.models[mi].slo;
        for c in completions {
            self.pods[pi].in_flight.remove(&c.id);
            let id = c.id as usize;
            let arrival_s = self.arrival_of[id];
            let wait_ms = (self.dispatch_of[id] - arrival_s) * 1000.0;
            let ttft = c.ttft_ms + wait_ms;
            let itl = c.mean_itl_ms();
            let met = ttft <= slo.ttft_ms && itl.is_none_or(|x| x <= slo.itl_ms);
            self.served += 1;
            if arrival_s >= self.warmup {
                self.itl_gap_sum_ms += c.itl_sum_ms;
                self.itl_gaps += u64::from(c.itl_count);
            }
            let k = &mut self.counters[mi];
            k.finished += 1;
            k.input_tokens += u64::from(c.input_tokens);
            k.output_tokens += u64::from(c.output_tokens);
            self.outcomes.push(Outcome {
                model: mi,
                arrival_s,
                ttft_ms: Some(ttft),
                itl_ms: itl,
                met,
            });
        }
    }

    fn on_scrape(&mut self) {
        let now_ms = self.now * 1000.0;
        for i in 0..self.pods.len() {
            let adv = self.pods[i].engine.advance_to(now_ms);
            self.record(i, &adv.completions);
            if self.now <= 0.0 {
                // Warm-started pods have served nothing yet at time 0: no sample rather than
                // an idle one a policy would mistake for no load.
                continue;
            }
            let p = &mut self.pods[i];
            p.scraped = (p.state == PodState::Ready).then(|| {
                let g = p.engine.gauges();
                PodSample {
                    ready: true,
                    running: g.running as f64,
                    waiting: g.waiting as f64,
                    kv_usage: g.kv_cache_usage,
                }
            });
        }
        // Drained pods go and free their GPUs.
        let mut freed = false;
        let mut i = 0;
        while i < self.pods.len() {
            if matches!(self.pods[i].state, PodState::Draining { .. })
                && self.pods[i].outstanding() == 0
            {
                self.release(i);
                freed = true;
            } else {
                i += 1;
            }
        }
        if freed {
            let instant = self.policy.instant_startup();
            self.bind(instant);
        }
        let mut scrape: Vec<ModelScrape> = self
            .counters
            .iter()
            .zip(&self.gateway)
            .map(|(c, q)| ModelScrape {
                counters: *c,
                gateway_queue: q.len() as u64,
                ..ModelScrape::default()
            })
            .collect();
        for p in &self.pods {
            if !matches!(p.state, PodState::Ready | PodState::Draining { .. }) {
                continue;
            }
            let g = p.engine.gauges();
            let m = &mut scrape[p.model];
            m.in_flight += (g.running + g.waiting) as u64;
            m.waiting += g.waiting as u64;
            if p.state == PodState::Ready {
                m.kv_sum += g.kv_cache_usage;
                m.kv_pods += 1;
            }
        }
        self.history.push_back((self.now, scrape));
        while self
            .history
            .front()
            .is_some_and(|(t, _)| *t < self.now - RATE_WINDOW_SECONDS - 1e-9)
        {
            self.history.pop_front();
        }
        self.series.push(self.point());
    }

    fn point(&self) -> SeriesPoint {
        let s = self.scenario;
        let mut ready: Vec<Vec<u32>> = s.models.iter().map(|m| vec![0; m.variants.len()]).collect();
        let mut replicas = ready.clone();
        let mut cost = 0.0;
        for p in &self.pods {
            let v = &s.models[p.model].variants[p.variant];
            if p.state == PodState::Ready {
                ready[p.model][p.variant] += 1;
            }
            if !matches!(p.state, PodState::Draining { .. }) {
                replicas[p.model][p.variant] += 1;
            }
            if p.holds_gpus() {
                cost += v.cost_per_replica_hour;
            }
        }
        let capacity = s
            .models
            .iter()
            .zip(&ready)
            .map(|(m, r)| {
                m.variants
                    .iter()
                    .zip(r)
                    .map(|(v, &n)| v.capacity_rps * f64::from(n))
                    .sum()
            })
            .collect();
        SeriesPoint {
            t: self.now,
            rate: s
                .models
                .iter()
                .map(|m| m.traffic.shape.rate(self.now))
                .collect(),
            capacity,
            ready,
            replicas,
            cost_per_hour: cost,
        }
    }

    /// What the policy sees now: pod counts from the API, metrics from the last scrape.
    fn view(&self) -> View<'a> {
        let s = self.scenario;
        let latest = self.history.back();
        let oldest = self.history.front();
        let models = s
            .models
            .iter()
            .enumerate()
            .map(|(mi, m)| {
                let variants = (0..m.variants.len())
                    .map(|vi| {
                        let mut vv = VariantView::default();
                        for p in self
                            .pods
                            .iter()
                            .filter(|p| p.model == mi && p.variant == vi)
                        {
                            match p.state {
                                PodState::Pending => vv.pending += 1,
                                PodState::Starting { .. } => vv.starting += 1,
                                PodState::Ready => vv.ready += 1,
                                PodState::Draining { .. } => continue,
                            }
                            vv.replicas += 1;
                            vv.pods.push(p.scraped.unwrap_or_default());
                        }
                        vv.startup_seconds = self.observed_startup[mi][vi];
                        vv
                    })
                    .collect();
                // What wvo's collector computes: completions plus the growth of the
                // requests in the servers over the window (vLLM has no arrival counter);
                // the gateway is seen only through its queue gauge.
                let load = match (oldest, latest) {
                    (Some((t0, s0)), Some((t1, s1))) if t1 > t0 => {
                        let (a, b) = (s0[mi], s1[mi]);
                        let dt = t1 - t0;
                        let done = b.counters.finished - a.counters.finished;
                        let growth = b.in_flight as f64 - a.in_flight as f64;
                        let mix = m.mix();
                        Some(ObservedLoad {
                            arrival_rate: ((done as f64 + growth) / dt).max(0.0),
                            avg_input_tokens: if done > 0 {
                                (b.counters.input_tokens - a.counters.input_tokens) as f64
                                    / done as f64
                            } else {
                                mix.avg_input_tokens
                            },
                            avg_output_tokens: if done > 0 {
                                (b.counters.output_tokens - a.counters.output_tokens) as f64
                                    / done as f64
                            } else {
                                mix.avg_output_tokens
                            },
                            waiting: (b.waiting + b.gateway_queue) as f64,
                            gateway_queue: b.gateway_queue as f64,
                            kv_usage: (b.kv_pods > 0).then(|| b.kv_sum / f64::from(b.kv_pods)),
                        })
                    }
                    _ => None,
                };
                ModelView { variants, load }
            })
            .collect();
        View {
            now: self.now,
            scenario: s,
            models,
        }
    }

    fn on_decision(&mut self) -> Result<(), BenchError> {
        let view = self.view();
        let desired = self.policy.decide(&view)?;
        drop(view);
        self.check_shape(&desired)?;
        self.apply(&desired)
    }

    /// Scales every variant to `desired`: removals first (pending, then starting, then the
    /// least-loaded ready pods drain), then new pods, then binding.
    fn apply(&mut self, desired: &Desired) -> Result<(), BenchError> {
        let now_ms = self.now * 1000.0;
        for i in 0..self.pods.len() {
            let adv = self.pods[i].engine.advance_to(now_ms);
            self.record(i, &adv.completions);
        }
        let mut adds = Vec::new();
        for (mi, model) in desired.iter().enumerate() {
            for (vi, &want) in model.iter().enumerate() {
                let have = self
                    .pods
                    .iter()
                    .filter(|p| {
                        p.model == mi
                            && p.variant == vi
                            && !matches!(p.state, PodState::Draining { .. })
                    })
                    .count() as u32;
                if want == have {
                    continue;
                }
                if self.now >= self.warmup {
                    self.scaling_actions += 1;
                }
                if want > have {
                    adds.push((mi, vi, want - have));
                    continue;
                }
                for _ in want..have {
                    let mut pick: Option<(u8, u64, u64, usize)> = None;
                    for (i, p) in self.pods.iter_mut().enumerate() {
                        if p.model != mi || p.variant != vi {
                            continue;
                        }
                        let rank = match p.state {
                            PodState::Pending => 0u8,
                            PodState::Starting { .. } => 1,
                            PodState::Ready => 2,
                            PodState::Draining { .. } => continue,
                        };
                        // Newest first among pending/starting; least loaded among ready.
                        let load = if rank == 2 { p.outstanding() } else { 0 };
                        let key = (rank, load, u64::MAX - p.id, i);
                        if pick.is_none_or(|k| key < k) {
                            pick = Some(key);
                        }
                    }
                    let Some((rank, load, _, i)) = pick else {
                        break;
                    };
                    if rank == 2 && load > 0 {
                        self.pods[i].state = PodState::Draining {
                            until: self.now + self.scenario.drain_seconds,
                        };
                    } else {
                        self.release(i);
                    }
                }
            }
        }
        for (mi, vi, n) in adds {
            for _ in 0..n {
                let engine = engine_for(self.scenario, mi, vi)?;
                self.pods.push(Pod {
                    id: self.next_pod_id,
                    model: mi,
                    variant: vi,
                    state: PodState::Pending,
                    engine,
                    scraped: None,
                    in_flight: BTreeSet::new(),
                    bound_at: None,
                });
                self.next_pod_id += 1;
            }
        }
        let instant = self.policy.instant_startup();
        self.bind(instant);
        Ok(())
    }

    fn result(self) -> RunResult {
        let s = self.scenario;
        let gpu_hours: Vec<f64> = self.gpu_seconds.iter().map(|x| x / 3600.0).collect();
        let cost_dollars = gpu_hours
            .iter()
            .zip(&s.inventory)
            .map(|(h, a)| h * a.cost_per_hour)
            .sum();
        let mut tiers: Vec<i32> = s.models.iter().map(|m| m.priority).collect();
        tiers.sort_unstable();
        tiers.dedup();
        let mut per_tier: Vec<(i32, u64, u64)> = tiers.iter().map(|&p| (p, 0, 0)).collect();
        let n_buckets = (s.duration_seconds / BUCKET_SECONDS).ceil().max(1.0) as usize;
        let mut buckets = vec![(0u64, 0u64); n_buckets];
        let mut ttft = Vec::with_capacity(self.outcomes.len());
        let mut itl = Vec::with_capacity(self.outcomes.len());
        let (mut met, mut requests, mut dropped) = (0, 0, 0);
        for o in self.outcomes.iter().filter(|o| o.arrival_s >= self.warmup) {
            requests += 1;
            dropped += u64::from(o.ttft_ms.is_none());
            let prio = s.models[o.model].priority;
            if let Some(t) = per_tier.iter_mut().find(|t| t.0 == prio) {
                t.1 += 1;
                t.2 += u64::from(o.met);
            }
            let b = ((o.arrival_s / BUCKET_SECONDS) as usize).min(n_buckets - 1);
            buckets[b].0 += 1;
            buckets[b].1 += u64::from(o.met);
            met += u64::from(o.met);
            if let Some(t) = o.ttft_ms {
                ttft.push(t);
            }
            if let Some(t) = o.itl_ms {
                itl.push(t);
            }
        }
        RunResult {
            policy: self.policy.name(),
            gpu_hours,
            cost_dollars,
            requests,
            dropped,
            met,
            per_tier,
            ttft_ms: ttft,
            itl_ms: itl,
            itl_gap_sum_ms: self.itl_gap_sum_ms,
            itl_gaps: self.itl_gaps,
            scaling_actions: self.scaling_actions,
            buckets,
            series: self.series,
        }
    }
}
