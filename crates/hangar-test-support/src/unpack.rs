//! An image's layers unpacked into directories, for tests that run containers
//! without the agent (pilot's): the returned directories can be stacked as
//! overlayfs lower dirs.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::error::{Result, io_at};
use crate::image::Image;
use crate::testapp::target_dir;

/// Unpacks each layer of `image` once (cached under the target dir by diff
/// id, shared by parallel tests) and returns the directories, lowest layer
/// first. Overlayfs wants `lowerdir=` highest first: reverse the list.
pub fn unpacked_layers(image: &Image) -> Result<Vec<PathBuf>> {
    let root = target_dir().join("hangar-test-layers/v1");
    std::fs::create_dir_all(&root).map_err(io_at(&root))?;
    let mut dirs = Vec::with_capacity(image.layers.len());
    for layer in &image.layers {
        let dir = root.join(layer.diff_id.trim_start_matches("sha256:"));
        if !dir.is_dir() {
            let temporary = tempfile::Builder::new()
                .prefix(".unpack-")
                .tempdir_in(&root)
                .map_err(io_at(&root))?;
            let mut archive = tar::Archive::new(&layer.tar[..]);
            archive.set_preserve_permissions(true);
            archive.set_preserve_ownerships(true);
            archive.set_unpack_xattrs(true);
            archive.unpack(temporary.path()).map_err(io_at(&dir))?;
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
