//! The store's committed changes as a feed for tests: every create, update and delete with
//! the moment it was committed, straight from the store (no HTTP, no watch: not affected by
//! [`drop_watches`](super::KubeApiHandle::drop_watches), delays or compaction).

use super::store::{Change, EventKind};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast::{self, error::TryRecvError};

/// One committed change of an object.
#[derive(Clone, Debug)]
pub struct Commit {
    /// When the store committed it (monotonic clock).
    pub at: Instant,
    /// Its resourceVersion.
    pub resource_version: u64,
    /// API group of the object (`""` for core).
    pub group: String,
    /// Resource (plural), e.g. `leases`.
    pub resource: String,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub event: &'static str,
    /// The object after the change (for a deletion, its last state).
    pub object: Value,
}

/// The feed of [`Commit`]s from the moment it was made
/// ([`KubeApiHandle::commits`](super::KubeApiHandle::commits)); holds the last 16,384 until
/// read.
pub struct Commits(pub(crate) broadcast::Receiver<Arc<Change>>);

/// The feed fell more than 16,384 commits behind: that many were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the commit feed fell behind: {0} commits lost (read it more often)")]
pub struct Lagged(pub u64);

impl Commits {
    /// Every commit not read yet, oldest first (without waiting).
    pub fn drain(&mut self) -> Result<Vec<Commit>, Lagged> {
        let mut out = Vec::new();
        loop {
            match self.0.try_recv() {
                Ok(c) => out.push(commit(&c)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return Ok(out),
                Err(TryRecvError::Lagged(n)) => return Err(Lagged(n)),
            }
        }
    }
}

fn commit(c: &Change) -> Commit {
    Commit {
        at: c.at,
        resource_version: c.rv,
        group: c.gr.0.clone(),
        resource: c.gr.1.clone(),
        namespace: c.ns.clone(),
        name: c
            .obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        event: match c.kind {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        },
        object: c.obj.clone(),
    }
}
