//! Finds the `pilot` binary for tests that run machines.
//!
//! `HANGAR_PILOT` names a pilot binary to use as is (the test script points it at
//! the one `cargo test --workspace` builds, so nothing is built twice). Without it,
//! pilot is built with `cargo build -p pilot` in the profile the tests run in.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::testapp::{target_dir, workspace_root};

/// The path of the pilot binary, building it on first use unless `HANGAR_PILOT`
/// is set. Panics when the build fails: no caller can go on without it.
pub fn pilot_binary() -> PathBuf {
    static PILOT: OnceLock<PathBuf> = OnceLock::new();
    PILOT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("HANGAR_PILOT") {
                let path = PathBuf::from(path);
                assert!(
                    path.exists(),
                    "HANGAR_PILOT={} does not exist",
                    path.display()
                );
                return path;
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut args = vec!["build", "-q", "-p", "pilot", "--bin", "pilot"];
            let profile = if cfg!(debug_assertions) {
                "debug"
            } else {
                args.push("--release");
                "release"
            };
            let status = Command::new(cargo)
                .current_dir(workspace_root())
                .args(&args)
                .status()
                .expect("running cargo build for pilot");
            assert!(status.success(), "building pilot failed");
            target_dir().join(profile).join("pilot")
        })
        .clone()
}
