//! Output to a reader that left (`wvo crds | head -1`): every command that prints ends
//! quietly with exit 0, never with Rust's "failed printing to stdout" panic (exit 101).

use std::process::{Command, Stdio};

/// Runs `wvo args` with its stdout a pipe whose read end is closed at once, so the first
/// write fails with EPIPE; returns the exit code and stderr.
fn run_with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wvo"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wvo");
    // The child is still starting (parsing, planning) when its reader goes away.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for wvo");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_printing_command_ends_quietly_when_its_reader_leaves() {
    for args in [
        &["crds"][..],
        &["plan", "examples/plan.yaml", "--output", "json"],
        &["plan", "examples/plan.yaml"],
        &["profile", "--list"],
    ] {
        let (code, stderr) = run_with_closed_stdout(args);
        assert_eq!(
            code,
            Some(0),
            "wvo {args:?}: exit {code:?}, stderr: {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "wvo {args:?} complained: {stderr}"
        );
    }
}
