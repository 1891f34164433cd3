//! The inventory's keep-last-good without a server: a bad text is refused once and the last
//! good inventory stays; a text that becomes good again clears the refusal; nothing good read
//! yet is an error.

use wvo_cycle::inventory::{InventoryOutcome, InventoryRead, InventoryState, NoInventory};

const GOOD: &str = "accelerators:\n- {name: H100, count: 16, costPerHour: 4.1}\n";
const GOOD_TOO: &str = "accelerators:\n- {name: H100, count: 8, costPerHour: 4.1}\n";
const BAD: &str = "accelerators:\n- {name: H100, count: 16, costPerHour: -1}\n";

fn count(outcome: &InventoryOutcome) -> Option<u32> {
    outcome
        .inventory
        .as_ref()
        .ok()
        .and_then(|i| i.accelerators.first())
        .and_then(|a| a.count)
}

#[test]
fn good_then_bad_then_good_again() {
    let mut state = InventoryState::new();
    let first = state.observe(InventoryRead::Text(GOOD));
    assert_eq!(count(&first), Some(16));
    assert_eq!((first.refusal, first.newly_refused), (None, false));

    let bad = state.observe(InventoryRead::Text(BAD));
    assert_eq!(count(&bad), Some(16), "the last good inventory stays");
    let refusal = bad.refusal.expect("refused");
    assert!(refusal.starts_with("inventory refused: "), "{refusal}");
    assert!(refusal.contains("accelerators[0].costPerHour"), "{refusal}");
    assert!(bad.newly_refused);

    let fixed = state.observe(InventoryRead::Text(GOOD_TOO));
    assert_eq!(count(&fixed), Some(8));
    assert_eq!((fixed.refusal, fixed.newly_refused), (None, false));
    assert_eq!(
        state.in_force().and_then(|i| i.accelerators[0].count),
        Some(8)
    );
}

#[test]
fn a_repeated_bad_text_is_refused_once() {
    let mut state = InventoryState::new();
    state.observe(InventoryRead::Text(GOOD));
    assert!(state.observe(InventoryRead::Text(BAD)).newly_refused);
    let again = state.observe(InventoryRead::Text(BAD));
    assert!(!again.newly_refused, "the Event is not repeated");
    // As before the move: with a good inventory in force, the same bad text is not
    // reported again (no StaleInventory on the next cycles).
    assert_eq!(again.refusal, None);
    assert_eq!(count(&again), Some(16));
}

#[test]
fn a_bad_text_first_is_no_inventory_and_stays_refused_without_a_new_event() {
    let mut state = InventoryState::new();
    let first = state.observe(InventoryRead::Text(BAD));
    assert!(first.newly_refused);
    let Err(NoInventory(why)) = &first.inventory else {
        panic!("no inventory expected: {first:?}");
    };
    assert!(why.starts_with("inventory refused: "), "{why}");
    assert_eq!(first.refusal.as_deref(), Some(why.as_str()));

    let again = state.observe(InventoryRead::Text(BAD));
    assert!(!again.newly_refused);
    assert_eq!(
        again.inventory, first.inventory,
        "still refused, same message"
    );
    assert_eq!(state.in_force(), None);

    let good = state.observe(InventoryRead::Text(GOOD));
    assert_eq!(count(&good), Some(16));
    assert_eq!(good.refusal, None);
}

#[test]
fn a_missing_key_or_config_map_is_a_refusal_of_its_own() {
    let mut state = InventoryState::new();
    let missing = state.observe(InventoryRead::NoKey);
    assert_eq!(
        missing.inventory,
        Err(NoInventory(
            "ConfigMap has no data key inventory.yaml".into()
        ))
    );
    assert!(!missing.newly_refused, "no Event for a missing key");
    let gone = state.observe(InventoryRead::NotFound {
        namespace: "wvo-system",
        name: "wvo-inventory",
    });
    assert_eq!(
        gone.inventory,
        Err(NoInventory(
            "ConfigMap wvo-system/wvo-inventory not found".into()
        ))
    );
    assert_eq!(
        gone.refusal.as_deref(),
        Some("ConfigMap wvo-system/wvo-inventory not found")
    );
}

#[test]
fn a_missing_key_after_a_good_text_keeps_it_without_a_refusal() {
    let mut state = InventoryState::new();
    state.observe(InventoryRead::Text(GOOD));
    let missing = state.observe(InventoryRead::NoKey);
    assert_eq!(count(&missing), Some(16));
    // The last text read is good: the refusal does not outlive it (as before the move).
    assert_eq!(missing.refusal, None);
}

#[test]
fn a_missing_key_after_a_bad_text_is_reported_with_the_last_good_inventory() {
    let mut state = InventoryState::new();
    state.observe(InventoryRead::Text(GOOD));
    state.observe(InventoryRead::Text(BAD));
    let missing = state.observe(InventoryRead::NoKey);
    assert_eq!(count(&missing), Some(16));
    assert_eq!(
        missing.refusal.as_deref(),
        Some("ConfigMap has no data key inventory.yaml")
    );
}
