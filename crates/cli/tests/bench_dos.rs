//! `wvo bench-dos` end to end, small: a flood of what-if requests against a `wvo run` child
//! is turned away with 429 and `Retry-After`, the controller stays up and its cycles keep
//! completing. (Behaviour only; the figures are in docs/controller.md.)

use std::process::Command;

#[test]
fn a_flood_of_whatifs_gets_429s_and_the_controller_keeps_cycling() {
    let out = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args([
            "bench-dos",
            "--vas",
            "10",
            "--clients",
            "12",
            "--models",
            "300",
            "--seconds",
            "3",
            "--interval-seconds",
            "1",
            "--output",
            "json",
        ])
        .output()
        .expect("run wvo bench-dos");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench-dos prints JSON");
    let count = |code: &str| f["requests"][code].as_u64().unwrap_or(0);
    // 12 clients against one planning slot and a queue of four: some are turned away,
    // each with a Retry-After, and some are planned.
    assert!(count("429") > 0, "{f}");
    assert_eq!(f["retryAfterMissing"], 0, "{f}");
    assert!(count("200") > 0, "{f}");
    assert_eq!(count("500"), 0, "{f}");
    // The controller is still up and kept completing cycles during the flood.
    assert_eq!(f["alive"], true, "{f}");
    assert!(f["cycles"].as_u64().unwrap_or(0) >= 1, "{f}");
    // Its own measure of the longest what-if solve is exported.
    assert!(f["longestSolveSeconds"].as_f64().is_some(), "{f}");
}
