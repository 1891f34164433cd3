//! The pure crates stay pure: none of them depends, even indirectly, on a Kubernetes client,
//! an async runtime, an HTTP server or an HTTP client. Cargo enforces what each crate may
//! use; this test keeps the dependency lists from growing one.

use std::process::Command;

/// Crates that must not appear among a pure crate's normal dependencies.
const FORBIDDEN: [&str; 7] = [
    "kube",
    "kube-client",
    "kube-runtime",
    "tokio",
    "axum",
    "reqwest",
    "hyper",
];

/// The pure crates: the decision core, the planner and its inputs, and the simulator.
const PURE: [&str; 8] = [
    "wvo-cycle",
    "wvo-optimizer",
    "wvo-perf",
    "wvo-demand",
    "wvo-api",
    "wvo-baselines",
    "wvo-bench",
    "wvo-schema",
];

#[test]
fn the_pure_crates_depend_on_no_kube_client_runtime_or_http_stack() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for krate in PURE {
        let out = Command::new(&cargo)
            .args([
                "tree", "-p", krate, "-e", "normal", "--prefix", "none", "--format", "{p}",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run cargo tree");
        assert!(
            out.status.success(),
            "cargo tree -p {krate} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(tree.contains(krate), "{krate} not in its own tree:\n{tree}");
        let found: Vec<&str> = tree
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| FORBIDDEN.contains(name))
            .collect();
        assert!(
            found.is_empty(),
            "{krate} depends on {found:?}; a pure crate must not (see docs/architecture.md)"
        );
    }
}
