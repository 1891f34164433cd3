//! The inventory's keep-last-good without a server: a bad text (or a missing ConfigMap or
//! key) is refused on every cycle it stays, with an Event once per distinct refusal, and the
//! last good inventory stays; a text that becomes good again clears the refusal; nothing good
//! read yet is an error.

use wvo_cycle::inventory::{
    InventoryOutcome, InventoryRead, InventoryState, NoInventory, RefusalKind,
};

const GOOD: &str = "accelerators:\n- {name: H100, count: 16, costPerHour: 4.1}\n";
const GOOD_TOO: &str = "accelerators:\n- {name: H100, count: 8, costPerHour: 4.1}\n";
const BAD: &str = "accelerators:\n- {name: H100, count: 16, costPerHour: -1}\n";
const BAD_TOO: &str = "accelerators:\n- {name: H100, count: -3, costPerHour: 4.1}\n";

fn message(outcome: &InventoryOutcome) -> Option<&str> {
    outcome.refusal.as_ref().map(|r| r.message.as_str())
}

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
    let refusal = message(&bad).expect("refused");
    assert_eq!(
        bad.refusal.as_ref().map(|r| r.kind),
        Some(RefusalKind::Invalid)
    );
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
fn a_repeated_bad_text_stays_refused_with_one_event() {
    let mut state = InventoryState::new();
    state.observe(InventoryRead::Text(GOOD));
    let bad = state.observe(InventoryRead::Text(BAD));
    assert!(bad.newly_refused);
    for _ in 0..3 {
        let again = state.observe(InventoryRead::Text(BAD));
        assert!(!again.newly_refused, "the Event is not repeated");
        // Changed deliberately: the refusal used to be dropped one cycle after it (VAs went
        // back to Planned while the text was still bad); it now stays while the text does.
        assert_eq!(message(&again), message(&bad));
        assert_eq!(count(&again), Some(16));
    }
}

#[test]
fn another_bad_text_is_a_new_refusal_with_its_own_message() {
    let mut state = InventoryState::new();
    state.observe(InventoryRead::Text(GOOD));
    let first = state.observe(InventoryRead::Text(BAD));
    let second = state.observe(InventoryRead::Text(BAD_TOO));
    assert!(second.newly_refused, "a new Event for the new cause");
    let why = message(&second).expect("refused");
    assert!(why.contains("accelerators[0].count"), "{why}");
    assert_ne!(message(&first), message(&second));
    assert_eq!(count(&second), Some(16));
    // Back to the first bad text: a change of cause again, so a new Event.
    assert!(state.observe(InventoryRead::Text(BAD)).newly_refused);
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
    assert_eq!(message(&first), Some(why.as_str()));

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
    // Changed deliberately: a missing key used to publish no Event; each kind now has its own.
    assert!(missing.newly_refused);
    assert_eq!(
        missing.refusal.as_ref().map(|r| r.kind),
        Some(RefusalKind::KeyMissing)
    );
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
        message(&gone),
        Some("ConfigMap wvo-system/wvo-inventory not found")
    );
    assert!(gone.newly_refused);
    assert_eq!(
        gone.refusal.map(|r| r.kind.reason()),
        Some("InventoryNotFound")
    );
}

#[test]
fn a_missing_key_after_a_good_text_is_refused_until_the_text_is_back() {
    let mut state = InventoryState::new();
    state.observe(InventoryRead::Text(GOOD));
    let missing = state.observe(InventoryRead::NoKey);
    assert_eq!(count(&missing), Some(16));
    // Changed deliberately: a missing key after a good text used to give no refusal; the last
    // good inventory is used for what is no longer there, and the VAs say so every cycle.
    assert_eq!(
        message(&missing),
        Some("ConfigMap has no data key inventory.yaml")
    );
    assert!(missing.newly_refused);
    let again = state.observe(InventoryRead::NoKey);
    assert_eq!(
        (message(&again), again.newly_refused),
        (message(&missing), false)
    );
    let back = state.observe(InventoryRead::Text(GOOD));
    assert_eq!(count(&back), Some(16));
    assert_eq!((back.refusal, back.newly_refused), (None, false));
}

#[test]
fn a_missing_key_after_a_bad_text_is_reported_with_the_last_good_inventory() {
    let mut state = InventoryState::new();
    state.observe(InventoryRead::Text(GOOD));
    state.observe(InventoryRead::Text(BAD));
    let missing = state.observe(InventoryRead::NoKey);
    assert_eq!(count(&missing), Some(16));
    assert_eq!(
        message(&missing),
        Some("ConfigMap has no data key inventory.yaml")
    );
    assert!(missing.newly_refused, "another cause, another Event");
}
