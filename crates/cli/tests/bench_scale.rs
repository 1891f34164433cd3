//! `wvo bench-scale` end to end, small: the controller child runs against the emulator and a
//! steady cycle reads only the inventory ConfigMap (everything else from watch caches) and
//! writes nothing.

use std::process::Command;

#[test]
fn a_steady_cycle_at_forty_vas_sends_one_request() {
    let out = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args([
            "bench-scale",
            "--vas",
            "40",
            "--cycles",
            "2",
            "--output",
            "json",
        ])
        .output()
        .expect("run wvo bench-scale");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("bench-scale prints JSON");
    let row = &figures[0];
    assert_eq!(row["vas"], 40);
    assert_eq!(row["variants"], 80);
    // The first cycle lists and watches each cached kind and writes every VA's status.
    let first = &row["firstCycleRequests"];
    for verb in [
        "watch variantautoscalings",
        "watch pods",
        "watch deployments",
        "watch horizontalpodautoscalers",
    ] {
        assert_eq!(first[verb], 1, "{verb} in {first}");
    }
    assert_eq!(first["patch variantautoscalings/status"], 40, "{first}");
    // Steady cycles: the inventory ConfigMap only.
    let steady = row["requestsPerCycle"]
        .as_object()
        .expect("requests per cycle");
    assert_eq!(
        steady.keys().collect::<Vec<_>>(),
        vec!["get configmaps"],
        "{steady:?}"
    );
    assert!(row["rssMib"].as_f64().is_some_and(|r| r > 0.0), "{row}");
}
