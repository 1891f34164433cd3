//! What the tests that run the real `kubectl` (v1.32, on PATH) against the emulator share:
//! a scratch directory (kubeconfig, manifests, kubectl's discovery cache) and one way to
//! run kubectl in it, bounded in time.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one kubectl command may take.
pub const KUBECTL_DEADLINE: Duration = Duration::from_secs(90);

/// kubectl's outcome: success, stdout, stderr.
pub struct Run {
    /// Exit status 0.
    pub ok: bool,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

/// A scratch directory under the temp dir, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory named after the test binary's `prefix`, the test's `tag` and this
    /// process.
    pub fn new(prefix: &str, tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("wvo-{prefix}-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    /// Writes `text` to the file `name` in the directory; its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write scratch file");
        p
    }

    /// An executable `sed` script for `KUBE_EDITOR`: kubectl runs it on the file to edit.
    pub fn editor(&self, name: &str, sed: &str) {
        let p = self.write(name, &format!("#!/bin/sh\nsed -i -e '{sed}' \"$1\"\n"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The workspace root (where `deploy/` and `crds/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A kubectl command with the scratch directory's kubeconfig and cache, run from the
/// workspace root.
pub fn kubectl_command(dir: &Path) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .current_dir(workspace_root())
        .stdin(Stdio::null());
    cmd
}

/// Runs `kubectl args` (with `env` set) against the kubeconfig in `dir`, within
/// [`KUBECTL_DEADLINE`].
pub async fn kubectl<S: AsRef<OsStr>>(dir: &Path, args: &[S], env: &[(String, String)]) -> Run {
    let mut cmd = kubectl_command(dir);
    cmd.arg("--request-timeout=20s")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)));
    let out = tokio::time::timeout(
        KUBECTL_DEADLINE,
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .expect("kubectl finished in time")
    .expect("kubectl task")
    .expect("kubectl runs (is it on PATH?)");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
