//! Builds the static `testapp` binary once and hands out its path.
//!
//! The binary is compiled straight with `rustc` (no cargo, so no build lock is
//! taken while other tests build) into `target/hangar-testapp/`, under a name
//! that carries a hash of the source: parallel tests in one process share one
//! build through a `OnceLock`, parallel test binaries each build into a
//! private temporary file and atomically rename it into place.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result, io_at};

/// The root of the Hangar workspace (the directory holding `Cargo.lock`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.to_path_buf())
}

/// The shared target directory (`CARGO_TARGET_DIR` or `<workspace>/target`).
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target"),
    }
}

/// The path of the static `testapp` binary, building it on first use.
///
/// Panics with the compiler's output when the build fails: every caller is a
/// test that cannot go on without it.
pub fn testapp_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(|| build().map_err(|e| e.to_string())) {
        Ok(path) => path.clone(),
        Err(message) => panic!("testapp_binary: {message}"),
    }
}

fn build() -> Result<PathBuf> {
    let source = workspace_root().join("crates/hangar-testapp/src/main.rs");
    let code = std::fs::read(&source).map_err(io_at(&source))?;
    let hash = hex::encode(&Sha256::digest(&code)[..8]);
    let dir = target_dir().join("hangar-testapp");
    let binary = dir.join(format!("testapp-{hash}"));
    if binary.is_file() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let temporary = tempfile::Builder::new()
        .prefix(".testapp-build-")
        .tempfile_in(&dir)
        .map_err(io_at(&dir))?
        .into_temp_path();
    let output = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .current_dir(workspace_root())
        .args(["--edition", "2024", "--crate-name", "testapp", "-O"])
        .args(["-C", "strip=symbols", "-C", "target-feature=+crt-static"])
        .arg(&source)
        .arg("-o")
        .arg(&temporary)
        .output()
        .map_err(io_at("rustc"))?;
    if !output.status.success() {
        return Err(Error::TestappBuild(format!(
            "rustc {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    temporary.persist(&binary).map_err(|e| Error::Io {
        path: binary.clone(),
        source: e.error,
    })?;
    Ok(binary)
}
