//! Admission and execution of what-if plans (`POST /api/v1/whatif`), so that no client can
//! take the controller down with them:
//!
//! ```text
//!  request ─► body limit (Content-Length) ─► slot? ─┬─ free: take it
//!                                                   ├─ queue has room: wait (until the deadline → 503)
//!                                                   └─ queue full: 429 + Retry-After
//!          ─► read the body (≤ limit, before the deadline) ─► worker thread: parse, count, plan
//!          ─► answer before the deadline, else 503 and the solve is cancelled
//! ```
//!
//! - A slot (one of [`WhatIfLimits::concurrency`]) is taken **before** the body is read, so
//!   at most `concurrency` bodies are held, parsed and planned at once: memory is bounded by
//!   `concurrency × max body × expansion`, not by the number of clients.
//! - Each solve runs on its own short-lived thread (`wvo-whatif`), never on the async
//!   runtime's workers that run the control cycle, and keeps its slot until the thread ends:
//!   an abandoned solve still counts against the cap until it has stopped.
//! - A solve is cancelled (its [`Cancel`] flag raised) when the request's deadline passes or
//!   the request is dropped (the client went away); the optimizer checks the flag between
//!   its steps, and a MILP in HiGHS stops at its time limit, which is clamped to the time
//!   the request has left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use wvo_api::{PlanInput, PlanOutput};
use wvo_optimizer::{Cancel, PlanError};

/// The limits of the what-if endpoint and of the bodies of every endpoint.
#[derive(Clone, Debug)]
pub struct WhatIfLimits {
    /// Largest what-if body, bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Largest body on every other endpoint, bytes (larger: 413; they read none).
    pub max_other_body_bytes: usize,
    /// Most models in a what-if input, after the overlay on the live input (more: 413).
    pub max_models: usize,
    /// Most variants over all models of a what-if input (more: 413).
    pub max_variants: usize,
    /// Most variants for which `options.solver: exact` is honoured; above, the
    /// decomposition plans and the answer's `warnings` say so.
    pub exact_max_variants: usize,
    /// What-ifs read, parsed and planned at once (each on its own thread).
    pub concurrency: usize,
    /// Requests that may wait for a slot; when full, 429 with `Retry-After`.
    pub queue: usize,
    /// Longest life of one what-if request (waiting, reading, planning); then 503 and the
    /// solve is cancelled.
    pub deadline: Duration,
    /// `Retry-After` of a 429 or 503, seconds.
    pub retry_after_seconds: u64,
}

/// Default [`WhatIfLimits::max_body_bytes`]: 4 MiB (a 10,000-model input in the `wvo plan`
/// form is about 2 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

impl Default for WhatIfLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_other_body_bytes: 16 << 10,
            max_models: 10_000,
            max_variants: 40_000,
            exact_max_variants: wvo_optimizer::EXACT_SCARCE_MAX_VARIANTS,
            concurrency: crate::status_api::WHATIF_CONCURRENCY,
            queue: 4,
            deadline: Duration::from_secs(10),
            retry_after_seconds: 2,
        }
    }
}

/// The planner a what-if calls: [`wvo_optimizer::plan_cancellable`] in the controller; a
/// stand-in in tests. It must return soon after the [`Cancel`] flag is raised.
pub type Planner =
    Arc<dyn Fn(&PlanInput, &Cancel) -> Result<PlanOutput, PlanError> + Send + Sync + 'static>;

/// Why a what-if was not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is busy and the queue is full (429).
    QueueFull,
    /// The request's deadline passed while it waited for a slot (503).
    WaitedTooLong,
    /// The worker thread could not be started (503).
    NoThread(String),
}

/// How a running what-if ended without an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The request's deadline passed; the solve was cancelled.
    Deadline,
    /// The worker thread panicked.
    Panicked,
}

/// Slots, the wait queue and the planner of the what-if endpoint. Share it behind an `Arc`.
pub struct WhatIfRunner {
    limits: WhatIfLimits,
    planner: Planner,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    running: Arc<AtomicUsize>,
}

impl std::fmt::Debug for WhatIfRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatIfRunner")
            .field("limits", &self.limits)
            .field("waiting", &self.waiting())
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

/// A taken slot: released when dropped (by the worker thread, when it ends).
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

/// One wait-queue place, given back when dropped (the request got a slot, gave up or went
/// away).
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A job on its worker thread. Dropping it (the request ended or went away) cancels the
/// solve.
pub struct Running<T> {
    answer: oneshot::Receiver<T>,
    cancel: Cancel,
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl<T> Running<T> {
    /// The job's answer, or [`Ended::Deadline`] (and the solve cancelled) once `deadline`
    /// passes.
    pub async fn answer_before(mut self, deadline: Instant) -> Result<T, Ended> {
        match tokio::time::timeout_at(deadline, &mut self.answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(Ended::Panicked),
            Err(_) => Err(Ended::Deadline),
        }
    }
}

/// Counts a worker thread while it lives.
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WhatIfRunner {
    /// A runner planning with [`wvo_optimizer::plan_cancellable`].
    pub fn new(limits: WhatIfLimits) -> Arc<Self> {
        Self::with_planner(
            limits,
            Arc::new(|input: &PlanInput, cancel: &Cancel| {
                wvo_optimizer::plan_cancellable(input, cancel)
            }),
        )
    }

    /// A runner planning with `planner` (tests: a planner that waits on a gate).
    pub fn with_planner(limits: WhatIfLimits, planner: Planner) -> Arc<Self> {
        let concurrency = limits.concurrency.max(1);
        Arc::new(Self {
            limits,
            planner,
            permits: Arc::new(Semaphore::new(concurrency)),
            waiting: AtomicUsize::new(0),
            running: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The limits this runner enforces.
    pub fn limits(&self) -> &WhatIfLimits {
        &self.limits
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Worker threads alive now (a cancelled solve counts until its thread has ended).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Takes a slot: at once when one is free, else after waiting in the queue when it has
    /// room and a slot frees before `deadline`.
    pub async fn admit(&self, deadline: Instant) -> Result<Slot, Refused> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(Slot(permit));
        }
        let queue = self.limits.queue;
        if self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < queue).then_some(w + 1)
            })
            .is_err()
        {
            return Err(Refused::QueueFull);
        }
        let _place = QueuePlace(&self.waiting);
        match tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot(permit)),
            // The semaphore is never closed; treat it as a full house.
            Ok(Err(_)) => Err(Refused::QueueFull),
            Err(_) => Err(Refused::WaitedTooLong),
        }
    }

    /// Runs `job` on a new worker thread holding `slot` until it ends. The job gets the
    /// planner and the cancel flag raised when the returned [`Running`] is dropped or its
    /// deadline passes.
    pub fn spawn<T, F>(&self, slot: Slot, job: F) -> Result<Running<T>, Refused>
    where
        T: Send + 'static,
        F: FnOnce(&Planner, &Cancel) -> T + Send + 'static,
    {
        let cancel = Cancel::new();
        let (tx, answer) = oneshot::channel();
        let planner = self.planner.clone();
        let flag = cancel.clone();
        self.running.fetch_add(1, Ordering::AcqRel);
        let alive = Alive(self.running.clone());
        std::thread::Builder::new()
            .name("wvo-whatif".into())
            .spawn(move || {
                // Both released when the thread ends, whether anyone still waits or not.
                let _slot = slot;
                let _alive = alive;
                let _ = tx.send(job(&planner, &flag));
            })
            .map_err(|e| Refused::NoThread(e.to_string()))?;
        Ok(Running { answer, cancel })
    }
}
