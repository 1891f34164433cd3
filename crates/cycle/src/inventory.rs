//! Keep-last-good of the accelerator inventory: the controller reads the inventory
//! ConfigMap each cycle and feeds what it found to [`InventoryState::observe`]; a bad text is
//! refused (once: the controller publishes an Event on [`InventoryOutcome::newly_refused`])
//! and the last good inventory stays in force.
//!
//! ```text
//!  ConfigMap read ─► InventoryRead (NotFound | NoKey | Text) ─► InventoryState::observe
//!    ─► InventoryOutcome { inventory in force (or NoInventory), refusal, newly_refused }
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

/// The result of one [`InventoryState::observe`].
#[derive(Clone, Debug, PartialEq)]
pub struct InventoryOutcome {
    /// The inventory in force: the one just read when it is good, else the last good one.
    pub inventory: Result<InventoryConfig, NoInventory>,
    /// Why what was read is not in force, when the last good inventory is used for it
    /// (`Optimized=True StaleInventory`); None when what was read is in force.
    pub refusal: Option<String>,
    /// A text not seen before was refused this time: publish the Event (once per text).
    pub newly_refused: bool,
}

/// The inventory between cycles: the last good one and the last text read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InventoryState {
    /// The last inventory that parsed.
    good: Option<InventoryConfig>,
    /// The last text read (good or bad): the same text is not parsed, nor refused, again.
    text: Option<String>,
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
    /// A new text that parses replaces the inventory in force; one that does not is refused
    /// (`inventory refused: <field>: <problem>`, [`InventoryOutcome::newly_refused`] once per
    /// text) and the last good inventory stays. A missing ConfigMap or key is a refusal of
    /// its own. When the last text read parses, a refusal does not outlive it: the inventory
    /// in force is then that text's.
    pub fn observe(&mut self, read: InventoryRead<'_>) -> InventoryOutcome {
        let mut refusal = None;
        let mut newly_refused = false;
        match read {
            InventoryRead::NotFound { namespace, name } => {
                refusal = Some(format!("ConfigMap {namespace}/{name} not found"));
            }
            InventoryRead::NoKey => {
                refusal = Some(format!("ConfigMap has no data key {INVENTORY_KEY}"));
            }
            InventoryRead::Text(text) if Some(text) == self.text.as_deref() => {}
            InventoryRead::Text(text) => {
                match InventoryConfig::parse(text) {
                    Ok(inventory) => self.good = Some(inventory),
                    Err(e) => {
                        refusal = Some(format!("inventory refused: {e}"));
                        newly_refused = true;
                    }
                }
                // Remembered good or bad: a bad text is refused once, not every cycle.
                self.text = Some(text.to_string());
            }
        }
        if refusal.is_none() && self.good.is_none() {
            if let Some(text) = &self.text {
                refusal = InventoryConfig::parse(text)
                    .err()
                    .map(|e| format!("inventory refused: {e}"));
            }
        }
        let Some(inventory) = self.good.clone() else {
            return InventoryOutcome {
                inventory: Err(NoInventory(
                    refusal
                        .clone()
                        .unwrap_or_else(|| "no inventory read yet".into()),
                )),
                refusal,
                newly_refused,
            };
        };
        // A stale refusal of a text that later became good again is cleared.
        if refusal.is_some()
            && self
                .text
                .as_deref()
                .is_some_and(|t| InventoryConfig::parse(t).is_ok())
        {
            refusal = None;
        }
        InventoryOutcome {
            inventory: Ok(inventory),
            refusal,
            newly_refused,
        }
    }
}
