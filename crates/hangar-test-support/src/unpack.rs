//! An image's layers unpacked into directories, for tests that run containers
//! without the agent (pilot's): the returned directories can be stacked as
//! overlayfs lower dirs.
//!
//! The unpacking is the agent's own (`hangar-agent/src/image/unpack.rs`,
//! compiled into this crate rather than depended on, so tests of crates below
//! the agent do not build or break with it): whiteouts become overlayfs
//! whiteouts, owners, modes and xattrs are kept, escaping paths rejected.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::error::{Error, Result, io_at};
use crate::image::Image;
use crate::testapp::target_dir;

#[allow(dead_code, unreachable_pub)]
#[path = "../../hangar-agent/src/image/unpack.rs"]
mod agent_unpack;

/// Unpacks each layer of `image` once (cached under the target dir by diff
/// id, shared by parallel tests and test binaries) and returns the
/// directories, lowest layer first. Overlayfs wants `lowerdir=` highest
/// first: reverse the list.
pub fn unpacked_layers(image: &Image) -> Result<Vec<PathBuf>> {
    let root = target_dir().join("hangar-test-layers/v2");
    std::fs::create_dir_all(&root).map_err(io_at(&root))?;
    let mut dirs = Vec::with_capacity(image.layers.len());
    for layer in &image.layers {
        let dir = root.join(layer.diff_id.trim_start_matches("sha256:"));
        if !dir.is_dir() {
            let temporary = tempfile::Builder::new()
                .prefix(".unpack-")
                .tempdir_in(&root)
                .map_err(io_at(&root))?;
            agent_unpack::unpack_layer(&layer.tar[..], temporary.path())
                .map_err(|e| Error::Image(format!("unpacking layer {}: {e}", layer.diff_id)))?;
            let temporary = temporary.keep();
            let mode = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(&temporary, mode).map_err(io_at(&temporary))?;
            if std::fs::rename(&temporary, &dir).is_err() {
                // Another test unpacked it first; theirs is identical.
                let _ = std::fs::remove_dir_all(&temporary);
            }
        }
        dirs.push(dir);
    }
    Ok(dirs)
}
