//! Keep-last-good of the accelerator inventory: the controller reads the inventory
//! ConfigMap each cycle and feeds what it found to [`InventoryState::observe`]; a bad text (or
//! a missing ConfigMap or key) is refused for as long as it stays so, and the last good
//! inventory stays in force meanwhile. The controller publishes an Event when a refusal is new
//! ([`InventoryOutcome::newly_refused`]: a refusal whose message differs from the last cycle's).
//!
//! ```text
//!  ConfigMap read ─► InventoryRead (NotFound | NoKey | Text) ─► InventoryState::observe
//!    ─► InventoryOutcome { inventory in force (or NoInventory), refusal (kind, message),
//!                          newly_refused }
//! ```
//!
//! Pure: the controller keeps the ConfigMap GET, the Event and node discovery.

use wvo_api::crd::{InventoryConfig, INVENTORY_KEY};

/// What the controller found where the inventory lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InventoryRead<'a> {
    /// The ConfigMap `namespace/name` does not exist.
    NotFound {
        /// Namespace of the ConfigMap.
        namespace: &'a str,
        /// Name of the ConfigMap.
        name: &'a str,
    },
    /// The ConfigMap has no data key [`INVENTORY_KEY`].
    NoKey,
    /// The text under [`INVENTORY_KEY`].
    Text(&'a str),
}

/// No valid inventory has ever been read: the message says why (the refusal of the text
/// read, or that none was read yet).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoInventory(pub String);

/// What kind of problem a refusal is: each has its own Event reason, so that one kind of
/// failure is never folded into an Event of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// The ConfigMap does not exist.
    NotFound,
    /// The ConfigMap has no data key [`INVENTORY_KEY`].
    KeyMissing,
    /// The text does not parse or check.
    Invalid,
}

impl RefusalKind {
    /// The Event reason of this kind of refusal.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotFound => "InventoryNotFound",
            Self::KeyMissing => "InventoryKeyMissing",
            Self::Invalid => "InvalidInventory",
        }
    }
}

/// Why what was read is not in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The kind of problem (the Event reason).
    pub kind: RefusalKind,
    /// What a user reads: `inventory refused: <field>: <problem>`, `ConfigMap ns/name not
    /// found`, `ConfigMap has no data key inventory.yaml`.
    pub message: String,
}

/// The result of one [`InventoryState::observe`].
#[derive(Clone, Debug, PartialEq)]
pub struct InventoryOutcome {
    /// The inventory in force: the one just read when it is good, else the last good one.
    pub inventory: Result<InventoryConfig, NoInventory>,
    /// Why what was read is not in force (`Optimized=True StaleInventory` when the last good
    /// inventory is used for it); None when what was read is in force. Given on every cycle
    /// for as long as what is read stays bad.
    pub refusal: Option<Refusal>,
    /// The refusal differs from the previous cycle's (none, or another message): publish the
    /// Event (once per distinct failure, not every cycle).
    pub newly_refused: bool,
}

/// The inventory between cycles: the last good one, the last text read and the last refusal.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InventoryState {
    /// The last inventory that parsed.
    good: Option<InventoryConfig>,
    /// The last text read and its refusal, if bad: the same text is not parsed again.
    text: Option<(String, Option<Refusal>)>,
    /// The previous cycle's refusal, to tell a new one from the same one.
    refused: Option<Refusal>,
}

impl InventoryState {
    /// No inventory read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last good inventory (None before one was read).
    pub fn in_force(&self) -> Option<&InventoryConfig> {
        self.good.as_ref()
    }

    /// Takes in what the controller found this cycle.
    ///
    /// A text that parses replaces the inventory in force and clears any refusal. One that
    /// does not is refused (`inventory refused: <field>: <problem>`) on every cycle it stays,
    /// and the last good inventory stays in force; so is a missing ConfigMap or key.
    /// [`InventoryOutcome::newly_refused`] is set on the first cycle of each distinct refusal.
    pub fn observe(&mut self, read: InventoryRead<'_>) -> InventoryOutcome {
        let refusal = match read {
            InventoryRead::NotFound { namespace, name } => Some(Refusal {
                kind: RefusalKind::NotFound,
                message: format!("ConfigMap {namespace}/{name} not found"),
            }),
            InventoryRead::NoKey => Some(Refusal {
                kind: RefusalKind::KeyMissing,
                message: format!("ConfigMap has no data key {INVENTORY_KEY}"),
            }),
            InventoryRead::Text(text) => match &self.text {
                Some((last, refusal)) if last == text => refusal.clone(),
                _ => {
                    let refusal = match InventoryConfig::parse(text) {
                        Ok(inventory) => {
                            self.good = Some(inventory);
                            None
                        }
                        Err(e) => Some(Refusal {
                            kind: RefusalKind::Invalid,
                            message: format!("inventory refused: {e}"),
                        }),
                    };
                    self.text = Some((text.to_string(), refusal.clone()));
                    refusal
                }
            },
        };
        let newly_refused = refusal.is_some() && refusal != self.refused;
        self.refused = refusal.clone();
        let inventory = match &self.good {
            Some(inventory) => Ok(inventory.clone()),
            None => Err(NoInventory(refusal.as_ref().map_or_else(
                || "no inventory read yet".into(),
                |r| r.message.clone(),
            ))),
        };
        InventoryOutcome {
            inventory,
            refusal,
            newly_refused,
        }
    }
}
