//! One Event store, two APIs: a core/v1 Event and an events.k8s.io/v1 Event are the same
//! object, as on a real API server (where both are served from the same storage). The
//! emulator stores Events in the events.k8s.io/v1 form and converts core/v1 reads, writes,
//! watches and field selectors with the API server's field mapping
//! (`k8s.io/kubernetes/pkg/apis/events/v1/conversion.go`):
//!
//! | core/v1 | events.k8s.io/v1 |
//! |---|---|
//! | `involvedObject` | `regarding` |
//! | `message` | `note` |
//! | `source` | `deprecatedSource` |
//! | `firstTimestamp` | `deprecatedFirstTimestamp` |
//! | `lastTimestamp` | `deprecatedLastTimestamp` |
//! | `count` | `deprecatedCount` |
//! | `reportingComponent` | `reportingController` |
//!
//! Every other field (`eventTime`, `series`, `action`, `reason`, `type`, `related`,
//! `reportingInstance`, `metadata`) has the same name in both. So an Event written by
//! `kube::runtime::events::Recorder` (events.k8s.io/v1) is what `kubectl get events` and
//! `kubectl describe` (core/v1, by `involvedObject.*` field selectors) list.

use serde_json::{json, Map, Value};

/// (core/v1 name, events.k8s.io/v1 name) of the fields whose names differ.
const RENAMED: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

/// Whether (group, plural) is the core/v1 Event resource.
fn is_core_events(group: &str, plural: &str) -> bool {
    group.is_empty() && plural == "events"
}

/// The storage key of a resource: core/v1 events share events.k8s.io's.
pub fn storage_gr(group: &str, plural: &str) -> (String, String) {
    if is_core_events(group, plural) {
        ("events.k8s.io".into(), "events".into())
    } else {
        (group.into(), plural.into())
    }
}

fn rename(obj: &mut Value, from_core: bool) {
    let Some(o) = obj.as_object_mut() else { return };
    let mut moved = Map::new();
    for (core, events) in RENAMED {
        let (from, to) = if from_core {
            (core, events)
        } else {
            (events, core)
        };
        if let Some(v) = o.remove(*from) {
            moved.insert((*to).to_string(), v);
        }
    }
    o.extend(moved);
}

/// A core/v1 Event being written, in the stored (events.k8s.io/v1) form; other objects
/// unchanged.
pub fn to_storage(group: &str, plural: &str, obj: &mut Value) {
    if is_core_events(group, plural) {
        rename(obj, true);
    }
}

/// A stored Event as served at core/v1 (`involvedObject` always present, as the core type
/// requires it); other objects unchanged.
pub fn present(group: &str, plural: &str, obj: &mut Value) {
    if !is_core_events(group, plural) {
        return;
    }
    rename(obj, false);
    if let Some(o) = obj.as_object_mut() {
        o.entry("involvedObject").or_insert_with(|| json!({}));
    }
}

/// The stored path of a field a selector names (`involvedObject.name` on core/v1 events is
/// `regarding.name` in storage; `source` is `source.component`).
pub fn selector_field(group: &str, plural: &str, field: &str) -> String {
    if !is_core_events(group, plural) {
        return field.to_string();
    }
    if field == "source" {
        return "deprecatedSource.component".into();
    }
    let (head, rest) = field.split_once('.').unwrap_or((field, ""));
    match RENAMED.iter().find(|(core, _)| *core == head) {
        Some((_, stored)) if rest.is_empty() => (*stored).to_string(),
        Some((_, stored)) => format!("{stored}.{rest}"),
        None => field.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_fields_round_trip_through_storage() {
        let core = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"},
            "message": "m", "reason": "R", "source": {"component": "c"}, "count": 3,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:01Z",
            "reportingComponent": "rc", "reportingInstance": "ri", "type": "Normal",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}});
        let mut stored = core.clone();
        to_storage("", "events", &mut stored);
        assert_eq!(stored["regarding"]["name"], "p");
        assert_eq!(stored["note"], "m");
        assert_eq!(stored["deprecatedCount"], 3);
        assert_eq!(stored["reportingController"], "rc");
        assert_eq!(stored["series"]["count"], 2);
        assert!(stored.get("involvedObject").is_none());
        let mut back = stored.clone();
        present("", "events", &mut back);
        assert_eq!(back, core);
        // events.k8s.io objects are stored and served as they are.
        let mut same = stored.clone();
        present("events.k8s.io", "events", &mut same);
        assert_eq!(same, stored);
    }

    #[test]
    fn core_view_always_has_involved_object_and_selectors_map() {
        let mut e = json!({"note": "n"});
        present("", "events", &mut e);
        assert_eq!(e, json!({"message": "n", "involvedObject": {}}));
        assert_eq!(
            selector_field("", "events", "involvedObject.uid"),
            "regarding.uid"
        );
        assert_eq!(
            selector_field("", "events", "source"),
            "deprecatedSource.component"
        );
        assert_eq!(selector_field("", "events", "reason"), "reason");
        assert_eq!(selector_field("", "pods", "spec.nodeName"), "spec.nodeName");
        assert_eq!(
            storage_gr("", "events"),
            storage_gr("events.k8s.io", "events")
        );
    }
}
