//! A deterministic continuous-batching engine of ONE replica on virtual time.
//!
//! The same engine drives the queueing-model validation here, the vLLM emulator and the
//! benchmark simulator. It is vLLM-V0-like and deliberately simple:
//!
//! * Time is virtual, in milliseconds (`f64`). Work happens in *steps*; a step, once started,
//!   runs to its end and nothing else happens on the replica meanwhile.
//! * At the start of every step the engine **admits** waiting requests in FIFO order while
//!   `running < max_batch_size` and the KV cache has room for the request's prompt, its already
//!   generated tokens and the token the prefill will produce. Only requests whose
//!   `arrival_ms <= step start` are admitted.
//! * If any were admitted the step is a **prefill** of duration
//!   `gamma + delta * sum(prefill tokens of the admitted)`; at its end each admitted request gets
//!   one token (its first one, which fixes its TTFT). Running requests are stalled meanwhile.
//! * Otherwise, if requests are running, the step is a **decode** of duration
//!   `alpha + beta * n` (`n` = running) giving one token to each running request.
//! * A request finishes when it has generated `output_tokens` tokens (a request with one output
//!   token finishes at the end of its prefill).
//! * KV cache (optional, in tokens): a running request holds `input + generated` tokens. Before a
//!   decode step, while the cache cannot hold one more token for each running request, the most
//!   recently admitted request is **preempted** (recompute): its cache is freed and it goes back
//!   to the front of the queue, keeping its generated tokens; when readmitted its prefill
//!   covers `input + generated` tokens and yields its next token. Each preemption is counted.
//! * With nothing runnable the engine is idle until the next arrival.
//!
//! Ties: a step that can start at time `t` starts during [`Engine::advance_to`]`(t)`; a request
//! submitted afterwards with `arrival_ms == t` joins the following step.
//!
//! Cost: `O(log n)` per request event and `O(1)` per decode step, plus `O(n)` per decode step
//! only when per-token ITL observations are recorded ([`EngineConfig::record_itl`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use wvo_api::Profile;

use crate::PerfError;

/// Configuration of one emulated replica.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EngineConfig {
    /// Step durations (ms) and the batch limit.
    pub profile: Profile,
    /// KV-cache capacity in tokens; `None` = unlimited.
    pub kv_cache_tokens: Option<u64>,
    /// Report one [`ItlObservation`] per decoded token (costs `O(running)` per decode step).
    pub record_itl: bool,
}

impl EngineConfig {
    /// An engine with unlimited KV cache that does not record per-token observations.
    pub fn new(profile: Profile) -> Self {
        Self {
            profile,
            kv_cache_tokens: None,
            record_itl: false,
        }
    }
}

/// One request offered to the replica.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// Caller's identifier, echoed in every observation.
    pub id: u64,
    /// Arrival time, ms of virtual time.
    pub arrival_ms: f64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Tokens to generate (>= 1).
    pub output_tokens: u32,
}

/// A request's first token (emitted at the end of its first prefill).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FirstToken {
    /// Request id.
    pub id: u64,
    /// When the token was produced, ms.
    pub at_ms: f64,
    /// Time to first token (arrival to first token), ms.
    pub ttft_ms: f64,
    /// Time from arrival to first admission, ms.
    pub queue_ms: f64,
}

/// One inter-token latency observation (only with [`EngineConfig::record_itl`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ItlObservation {
    /// Request id.
    pub id: u64,
    /// When the token was produced, ms.
    pub at_ms: f64,
    /// Time since the request's previous token, ms.
    pub itl_ms: f64,
}

/// A finished request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Completion {
    /// Request id.
    pub id: u64,
    /// Arrival time, ms.
    pub arrival_ms: f64,
    /// Time of the last token, ms.
    pub finish_ms: f64,
    /// Arrival to first admission, ms.
    pub queue_ms: f64,
    /// Arrival to first token, ms.
    pub ttft_ms: f64,
    /// Arrival to last token, ms.
    pub e2e_ms: f64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Generated tokens.
    pub output_tokens: u32,
    /// Sum of the gaps between consecutive tokens (= last token - first token), ms.
    pub itl_sum_ms: f64,
    /// Number of those gaps (`output_tokens - 1`).
    pub itl_count: u32,
    /// How often this request was preempted.
    pub preemptions: u32,
}

impl Completion {
    /// Mean inter-token latency of this request (time per output token after the first), ms;
    /// `None` for a single-token request.
    pub fn mean_itl_ms(&self) -> Option<f64> {
        (self.itl_count > 0).then(|| self.itl_sum_ms / f64::from(self.itl_count))
    }
}

/// What happened during one [`Engine::advance_to`] call, in time order per kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Advance {
    /// First tokens produced.
    pub first_tokens: Vec<FirstToken>,
    /// Per-token ITL observations (empty unless [`EngineConfig::record_itl`]).
    pub itl: Vec<ItlObservation>,
    /// Requests that finished.
    pub completions: Vec<Completion>,
    /// Steps completed.
    pub steps: u64,
}

/// Point-in-time gauges and monotone counters of the replica.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gauges {
    /// Engine clock, ms.
    pub now_ms: f64,
    /// Requests admitted (decoding or in the current prefill).
    pub running: usize,
    /// Requests queued (submitted, not admitted; includes preempted ones and future arrivals).
    pub waiting: usize,
    /// KV-cache tokens held by admitted requests.
    pub kv_tokens_used: u64,
    /// KV-cache usage, 0..=1 (0 when the cache is unlimited).
    pub kv_cache_usage: f64,
    /// Preemptions so far (counter).
    pub preemptions_total: u64,
    /// Prefill tokens computed so far, recomputation included (counter).
    pub prompt_tokens_total: u64,
    /// Output tokens generated so far (counter).
    pub generation_tokens_total: u64,
    /// Prefill steps completed (counter).
    pub prefill_steps_total: u64,
    /// Decode steps completed (counter).
    pub decode_steps_total: u64,
    /// Time spent in completed prefill steps, ms (counter).
    pub prefill_ms_total: f64,
    /// Time spent in completed decode steps, ms (counter).
    pub decode_ms_total: f64,
    /// Requests accepted by [`Engine::submit`] (counter).
    pub submitted_total: u64,
    /// Requests finished (counter).
    pub finished_total: u64,
}

#[derive(Clone, Copy, Debug)]
struct Queued {
    req: Request,
    generated: u32,
    first_admit_ms: Option<f64>,
    first_token_ms: Option<f64>,
    /// Time of its latest token (meaningful only with `record_itl`).
    last_token_ms: f64,
    preemptions: u32,
}

#[derive(Clone, Copy, Debug)]
struct Running {
    req: Request,
    /// Tokens generated when it (re)joined the decode set.
    gen_base: u32,
    /// Global decode-step count when it (re)joined the decode set.
    decode_base: u64,
    first_admit_ms: f64,
    first_token_ms: f64,
    last_token_ms: f64,
    preemptions: u32,
}

impl Running {
    fn generated(&self, decodes: u64) -> u32 {
        let extra = decodes.saturating_sub(self.decode_base);
        self.gen_base
            .saturating_add(u32::try_from(extra).unwrap_or(u32::MAX))
    }
}

#[derive(Clone, Debug)]
enum Step {
    Prefill { end_ms: f64, admitted: Vec<Queued> },
    Decode { end_ms: f64 },
}

impl Step {
    fn end_ms(&self) -> f64 {
        match self {
            Step::Prefill { end_ms, .. } | Step::Decode { end_ms } => *end_ms,
        }
    }
}

/// The continuous-batching engine of one replica. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Engine {
    cfg: EngineConfig,
    now_ms: f64,
    last_arrival_ms: f64,
    waiting: VecDeque<Queued>,
    /// Decoding requests keyed by admission sequence number (largest = most recent).
    running: BTreeMap<u64, Running>,
    /// (decode count at which it finishes, admission seq); stale entries skipped lazily.
    finish_at: BinaryHeap<Reverse<(u64, u64)>>,
    step: Option<Step>,
    next_seq: u64,
    decodes: u64,
    kv_used: u64,
    preemptions: u64,
    prompt_tokens: u64,
    generation_tokens: u64,
    submitted: u64,
    finished: u64,
    prefill_steps: u64,
    prefill_ms: f64,
    decode_ms: f64,
}

impl Engine {
    /// A new idle engine at time 0.
    ///
    /// Fails when the profile is not usable: `alpha` must be > 0, `beta`, `gamma`, `delta`
    /// finite and >= 0, `max_batch_size` >= 1, `kv_cache_tokens` >= 1 when set.
    pub fn new(cfg: EngineConfig) -> Result<Self, PerfError> {
        crate::check_profile(&cfg.profile)?;
        if cfg.kv_cache_tokens == Some(0) {
            return Err(PerfError::bad(
                "kv_cache_tokens",
                "must be at least 1 token",
            ));
        }
        Ok(Self {
            cfg,
            now_ms: 0.0,
            last_arrival_ms: 0.0,
            waiting: VecDeque::new(),
            running: BTreeMap::new(),
            finish_at: BinaryHeap::new(),
            step: None,
            next_seq: 0,
            decodes: 0,
            kv_used: 0,
            preemptions: 0,
            prompt_tokens: 0,
            generation_tokens: 0,
            submitted: 0,
            finished: 0,
            prefill_steps: 0,
            prefill_ms: 0.0,
            decode_ms: 0.0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Queue a request. Arrivals must be finite, >= 0 and non-decreasing across calls
    /// (FIFO); `output_tokens` >= 1; `input_tokens + output_tokens` must fit the KV cache.
    pub fn submit(&mut self, req: Request) -> Result<(), PerfError> {
        if !req.arrival_ms.is_finite() || req.arrival_ms < 0.0 {
            return Err(PerfError::bad(
                "arrival_ms",
                format!("must be finite and >= 0 ms, got {}", req.arrival_ms),
            ));
        }
        if req.arrival_ms < self.last_arrival_ms {
            return Err(PerfError::bad(
                "arrival_ms",
                format!(
                    "arrivals must not go back in time: {} ms after {} ms",
                    req.arrival_ms, self.last_arrival_ms
                ),
            ));
        }
        if req.output_tokens == 0 {
            return Err(PerfError::bad("output_tokens", "must be at least 1"));
        }
        if let Some(limit) = self.cfg.kv_cache_tokens {
            let need = u64::from(req.input_tokens) + u64::from(req.output_tokens);
            if need > limit {
                return Err(PerfError::bad(
                    "input_tokens",
                    format!("input + output = {need} tokens exceed the KV cache of {limit}"),
                ));
            }
        }
        self.last_arrival_ms = req.arrival_ms;
        self.submitted += 1;
        self.waiting.push_back(Queued {
            req,
            generated: 0,
            first_admit_ms: None,
            first_token_ms: None,
            last_token_ms: req.arrival_ms,
            preemptions: 0,
        });
        Ok(())
    }

    /// When the next thing happens on its own: the end of the current step, or the start of
    /// the next one (a queued arrival); `None` when idle with an empty queue.
    pub fn next_event_ms(&self) -> Option<f64> {
        if let Some(step) = &self.step {
            return Some(step.end_ms());
        }
        self.next_start_ms()
    }

    /// Run the engine up to `t_ms` (ms): complete every step ending at or before `t_ms` and
    /// start every step that can start at or before it. The clock never goes back; a `t_ms`
    /// in the past completes nothing.
    pub fn advance_to(&mut self, t_ms: f64) -> Advance {
        let mut out = Advance::default();
        loop {
            if let Some(step) = &self.step {
                if step.end_ms() <= t_ms {
                    self.finish_step(&mut out);
                    continue;
                }
                break;
            }
            match self.next_start_ms() {
                Some(start) if start <= t_ms => self.start_step(start),
                _ => break,
            }
        }
        if t_ms.is_finite() && t_ms > self.now_ms && self.step.is_none() {
            self.now_ms = t_ms;
        }
        out
    }

    /// Run until no request is left (every submitted request finished).
    pub fn run_to_idle(&mut self) -> Advance {
        self.advance_to(f64::INFINITY)
    }

    /// Current gauges and counters.
    pub fn gauges(&self) -> Gauges {
        let prefilling = match &self.step {
            Some(Step::Prefill { admitted, .. }) => admitted.len(),
            _ => 0,
        };
        let usage = match self.cfg.kv_cache_tokens {
            Some(limit) => self.kv_used as f64 / limit as f64,
            None => 0.0,
        };
        Gauges {
            now_ms: self.now_ms,
            running: self.running.len() + prefilling,
            waiting: self.waiting.len(),
            kv_tokens_used: self.kv_used,
            kv_cache_usage: usage,
            preemptions_total: self.preemptions,
            prompt_tokens_total: self.prompt_tokens,
            generation_tokens_total: self.generation_tokens,
            prefill_steps_total: self.prefill_steps,
            decode_steps_total: self.decodes,
            prefill_ms_total: self.prefill_ms,
            decode_ms_total: self.decode_ms,
            submitted_total: self.submitted,
            finished_total: self.finished,
        }
    }

    fn next_start_ms(&self) -> Option<f64> {
        if !self.running.is_empty() {
            return Some(self.now_ms);
        }
        self.waiting
            .front()
            .map(|q| q.req.arrival_ms.max(self.now_ms))
    }

    fn kv_fits(&self, extra: u64) -> bool {
        match self.cfg.kv_cache_tokens {
            Some(limit) => self.kv_used + extra <= limit,
            None => true,
        }
    }

    fn start_step(&mut self, start_ms: f64) {
        self.now_ms = start_ms;
        let p = self.cfg.profile;
        let max_batch = usize::try_from(p.max_batch_size).unwrap_or(usize::MAX);
        let mut admitted: Vec<Queued> = Vec::new();
        let mut prefill_tokens: u64 = 0;
        while self.running.len() + admitted.len() < max_batch {
            let Some(head) = self.waiting.front() else {
                break;
            };
            if head.req.arrival_ms > start_ms {
                break;
            }
            let tokens = u64::from(head.req.input_tokens) + u64::from(head.generated);
            if !self.kv_fits(tokens + 1) {
                break;
            }
            let Some(mut q) = self.waiting.pop_front() else {
                break;
            };
            self.kv_used += tokens + 1;
            prefill_tokens += tokens;
            if q.first_admit_ms.is_none() {
                q.first_admit_ms = Some(start_ms);
            }
            admitted.push(q);
        }
        if !admitted.is_empty() {
            self.prompt_tokens += prefill_tokens;
            let end_ms = start_ms + p.gamma + p.delta * prefill_tokens as f64;
            self.step = Some(Step::Prefill { end_ms, admitted });
            return;
        }
        // Decode: make room for one token per running request, preempting the newest.
        while !self.running.is_empty() && !self.kv_fits(self.running.len() as u64) {
            self.preempt_newest();
        }
        if self.running.is_empty() {
            return;
        }
        let n = self.running.len() as f64;
        self.kv_used += self.running.len() as u64;
        self.step = Some(Step::Decode {
            end_ms: start_ms + p.alpha + p.beta * n,
        });
    }

    fn preempt_newest(&mut self) {
        let Some((_, r)) = self.running.pop_last() else {
            return;
        };
        let generated = r.generated(self.decodes);
        self.kv_used = self
            .kv_used
            .saturating_sub(u64::from(r.req.input_tokens) + u64::from(generated));
        self.preemptions += 1;
        self.waiting.push_front(Queued {
            req: r.req,
            generated,
            first_admit_ms: Some(r.first_admit_ms),
            first_token_ms: Some(r.first_token_ms),
            last_token_ms: r.last_token_ms,
            preemptions: r.preemptions + 1,
        });
    }

    fn finish_step(&mut self, out: &mut Advance) {
        let Some(step) = self.step.take() else {
            return;
        };
        out.steps += 1;
        match step {
            Step::Prefill { end_ms, admitted } => {
                self.prefill_steps += 1;
                self.prefill_ms += end_ms - self.now_ms;
                self.now_ms = end_ms;
                self.generation_tokens += admitted.len() as u64;
                for q in admitted {
                    let first_admit_ms = q.first_admit_ms.unwrap_or(end_ms);
                    let generated = q.generated + 1;
                    let first_token_ms = match q.first_token_ms {
                        Some(t) => {
                            if self.cfg.record_itl {
                                out.itl.push(ItlObservation {
                                    id: q.req.id,
                                    at_ms: end_ms,
                                    itl_ms: end_ms - q.last_token_ms,
                                });
                            }
                            t
                        }
                        None => {
                            out.first_tokens.push(FirstToken {
                                id: q.req.id,
                                at_ms: end_ms,
                                ttft_ms: end_ms - q.req.arrival_ms,
                                queue_ms: first_admit_ms - q.req.arrival_ms,
                            });
                            end_ms
                        }
                    };
                    let r = Running {
                        req: q.req,
                        gen_base: generated,
                        decode_base: self.decodes,
                        first_admit_ms,
                        first_token_ms,
                        last_token_ms: end_ms,
                        preemptions: q.preemptions,
                    };
                    if generated >= q.req.output_tokens {
                        self.complete(r, end_ms, out);
                    } else {
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        let left = u64::from(q.req.output_tokens - generated);
                        self.finish_at.push(Reverse((self.decodes + left, seq)));
                        self.running.insert(seq, r);
                    }
                }
            }
            Step::Decode { end_ms } => {
                self.decode_ms += end_ms - self.now_ms;
                self.now_ms = end_ms;
                self.decodes += 1;
                self.generation_tokens += self.running.len() as u64;
                if self.cfg.record_itl {
                    for r in self.running.values_mut() {
                        out.itl.push(ItlObservation {
                            id: r.req.id,
                            at_ms: end_ms,
                            itl_ms: end_ms - r.last_token_ms,
                        });
                        r.last_token_ms = end_ms;
                    }
                }
                while let Some(&Reverse((at, seq))) = self.finish_at.peek() {
                    if at > self.decodes {
                        break;
                    }
                    self.finish_at.pop();
                    if let Some(r) = self.running.remove(&seq) {
                        self.complete(r, end_ms, out);
                    }
                }
            }
        }
    }

    fn complete(&mut self, r: Running, end_ms: f64, out: &mut Advance) {
        let held = u64::from(r.req.input_tokens) + u64::from(r.req.output_tokens);
        self.kv_used = self.kv_used.saturating_sub(held);
        self.finished += 1;
        out.completions.push(Completion {
            id: r.req.id,
            arrival_ms: r.req.arrival_ms,
            finish_ms: end_ms,
            queue_ms: r.first_admit_ms - r.req.arrival_ms,
            ttft_ms: r.first_token_ms - r.req.arrival_ms,
            e2e_ms: end_ms - r.req.arrival_ms,
            input_tokens: r.req.input_tokens,
            output_tokens: r.req.output_tokens,
            itl_sum_ms: end_ms - r.first_token_ms,
            itl_count: r.req.output_tokens - 1,
            preemptions: r.preemptions,
        });
    }
}
