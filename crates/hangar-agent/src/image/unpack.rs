//! Unpacks one layer tar into a directory that overlayfs can use as a lower
//! dir.
//!
//! - Whiteouts become overlayfs whiteouts: `.wh.NAME` → a character device
//!   0/0 at `NAME`; `DIR/.wh..wh..opq` → xattr `trusted.overlay.opaque=y` on
//!   `DIR`. Other `.wh..wh.*` entries (aufs metadata) are skipped.
//! - Owners, modes (with setuid/setgid/sticky), modification times and
//!   xattrs (PAX `SCHILY.xattr.*`) are set as the tar says, except
//!   `trusted.overlay.*` xattrs, which only the whiteout conversion may set.
//! - Nothing is written outside the directory: entries with `..` are
//!   rejected, a leading `/` is dropped, no entry is written through a
//!   symlink (a symlink's target, absolute or not, is never followed while
//!   unpacking), and hard links must point inside the layer.

#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use tar::EntryType;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("entry {path:?}: the path leaves the layer")]
    PathEscape { path: String },
    #[error("entry {path:?}: {parent:?} is a symlink; refusing to write through it")]
    ThroughSymlink { path: String, parent: String },
    #[error("entry {path:?}: hard link target {target:?}: {reason}")]
    BadHardlink {
        path: String,
        target: String,
        reason: String,
    },
    #[error("reading the layer archive: {0}")]
    Archive(#[source] io::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

const OPAQUE_MARKER: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// A directory's metadata, applied after its contents are written (a
/// read-only directory would refuse them otherwise), deepest first.
struct DirMeta {
    path: PathBuf,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Unpacks the (uncompressed) tar read from `reader` into `dest`, which must
/// exist. Returns the reader once the archive's end marker was read, so the
/// caller can finish hashing the stream.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path) -> Result<R, UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut dirs = Vec::new();
    for entry in archive.entries().map_err(UnpackError::Archive)? {
        let mut entry = entry.map_err(UnpackError::Archive)?;
        unpack_entry(&mut entry, dest, &mut dirs)?;
    }
    for dir in dirs.iter().rev() {
        apply_dir_meta(dir)?;
    }
    Ok(archive.into_inner())
}

/// The relative path an entry names, or an error when it leaves the root.
fn sanitize(raw: &Path) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(UnpackError::PathEscape {
                    path: raw.display().to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Makes sure every directory above `rel` exists as a real directory
/// (creating missing ones 0755, replacing whiteout devices and files), and
/// that none of them is a symlink.
fn prepare_parents(root: &Path, rel: &Path) -> Result<(), UnpackError> {
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    let mut current = root.to_path_buf();
    for component in parent.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(UnpackError::ThroughSymlink {
                    path: rel.display().to_string(),
                    parent: current
                        .strip_prefix(root)
                        .unwrap_or(&current)
                        .display()
                        .to_string(),
                });
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&current).map_err(io_at(&current))?;
                fs::create_dir(&current).map_err(io_at(&current))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&current).map_err(io_at(&current))?;
                fs::set_permissions(&current, fs::Permissions::from_mode(0o755))
                    .map_err(io_at(&current))?;
            }
            Err(e) => return Err(io_at(&current)(e)),
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (a file, link, device or whole directory).
fn remove_existing(path: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).map_err(io_at(path)),
        Ok(_) => fs::remove_file(path).map_err(io_at(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(path)(e)),
    }
}

fn xattrs_of<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<Vec<(String, Vec<u8>)>, UnpackError> {
    let mut xattrs = Vec::new();
    if let Some(extensions) = entry.pax_extensions().map_err(UnpackError::Archive)? {
        for extension in extensions {
            let extension = extension.map_err(UnpackError::Archive)?;
            let Ok(key) = extension.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.")
                && !name.starts_with("trusted.overlay.")
            {
                xattrs.push((name.to_string(), extension.value_bytes().to_vec()));
            }
        }
    }
    Ok(xattrs)
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    root: &Path,
    dirs: &mut Vec<DirMeta>,
) -> Result<(), UnpackError> {
    let raw_path = entry.path().map_err(UnpackError::Archive)?.into_owned();
    let rel = sanitize(&raw_path)?;
    let kind = entry.header().entry_type();
    if matches!(
        kind,
        EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
    ) {
        return Ok(());
    }
    let Some(name) = rel.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
        // The root itself ("./"): the layer directory keeps its own metadata.
        return Ok(());
    };
    prepare_parents(root, &rel)?;
    let dst = root.join(&rel);

    if name == OPAQUE_MARKER {
        let dir = dst.parent().unwrap_or(root);
        xattr::set(dir, OPAQUE_XATTR, b"y").map_err(io_at(dir))?;
        return Ok(());
    }
    if name.starts_with(".wh..wh.") {
        return Ok(());
    }
    if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
        let target = dst.with_file_name(hidden);
        remove_existing(&target)?;
        mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|e| io_at(&target)(io::Error::from(e)))?;
        return Ok(());
    }

    let header = entry.header().clone();
    let mode = header.mode().map_err(UnpackError::Archive)? & 0o7777;
    let uid = header.uid().map_err(UnpackError::Archive)?;
    let gid = header.gid().map_err(UnpackError::Archive)?;
    let mtime = header.mtime().unwrap_or(0);
    let xattrs = xattrs_of(entry)?;

    match kind {
        EntryType::Directory => {
            match fs::symlink_metadata(&dst) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    remove_existing(&dst)?;
                    fs::create_dir(&dst).map_err(io_at(&dst))?;
                }
                Err(_) => fs::create_dir(&dst).map_err(io_at(&dst))?,
            }
            dirs.push(DirMeta {
                path: dst,
                mode,
                uid,
                gid,
                mtime,
                xattrs,
            });
            return Ok(());
        }
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            remove_existing(&dst)?;
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dst)
                .map_err(io_at(&dst))?;
            io::copy(entry, &mut file).map_err(io_at(&dst))?;
        }
        EntryType::Symlink => {
            let target = entry
                .link_name()
                .map_err(UnpackError::Archive)?
                .ok_or_else(|| UnpackError::Archive(io::Error::other("symlink without a target")))?
                .into_owned();
            remove_existing(&dst)?;
            std::os::unix::fs::symlink(&target, &dst).map_err(io_at(&dst))?;
        }
        EntryType::Link => {
            let raw_target = entry
                .link_name()
                .map_err(UnpackError::Archive)?
                .ok_or_else(|| {
                    UnpackError::Archive(io::Error::other("hard link without a target"))
                })?
                .into_owned();
            let bad = |reason: &str| UnpackError::BadHardlink {
                path: rel.display().to_string(),
                target: raw_target.display().to_string(),
                reason: reason.to_string(),
            };
            let target_rel = sanitize(&raw_target).map_err(|_| bad("leaves the layer"))?;
            // The target's directories must be real directories of this layer.
            let mut current = root.to_path_buf();
            for component in target_rel.parent().unwrap_or(Path::new("")).components() {
                current.push(component);
                let meta = fs::symlink_metadata(&current)
                    .map_err(|_| bad("does not exist in this layer"))?;
                if !meta.is_dir() {
                    return Err(bad("goes through a symlink or a non-directory"));
                }
            }
            let source = root.join(&target_rel);
            let meta =
                fs::symlink_metadata(&source).map_err(|_| bad("does not exist in this layer"))?;
            if meta.is_dir() {
                return Err(bad("is a directory"));
            }
            if source == dst {
                return Ok(());
            }
            remove_existing(&dst)?;
            fs::hard_link(&source, &dst).map_err(io_at(&dst))?;
            // A hard link shares the target's inode and metadata.
            return Ok(());
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let file_type = match kind {
                EntryType::Char => SFlag::S_IFCHR,
                EntryType::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            remove_existing(&dst)?;
            mknod(
                &dst,
                file_type,
                Mode::from_bits_truncate(mode),
                makedev(major.into(), minor.into()),
            )
            .map_err(|e| io_at(&dst)(io::Error::from(e)))?;
        }
        // Other entry types carry nothing to unpack.
        _ => return Ok(()),
    }
    apply_meta(
        &dst,
        kind == EntryType::Symlink,
        mode,
        uid,
        gid,
        mtime,
        &xattrs,
    )
}

fn apply_meta(
    path: &Path,
    symlink: bool,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    xattrs: &[(String, Vec<u8>)],
) -> Result<(), UnpackError> {
    let (uid, gid) = (u32::try_from(uid).ok(), u32::try_from(gid).ok());
    std::os::unix::fs::lchown(path, uid, gid).map_err(io_at(path))?;
    if !symlink {
        // After chown, which clears setuid/setgid.
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_at(path))?;
    }
    for (name, value) in xattrs {
        // user.* xattrs are not allowed on symlinks; skip what the kernel refuses there.
        match xattr::set(path, name, value) {
            Ok(()) => {}
            Err(_) if symlink => {}
            Err(e) => return Err(io_at(path)(e)),
        }
    }
    let time = filetime::FileTime::from_unix_time(mtime as i64, 0);
    filetime::set_symlink_file_times(path, time, time).map_err(io_at(path))
}

fn apply_dir_meta(dir: &DirMeta) -> Result<(), UnpackError> {
    apply_meta(
        &dir.path,
        false,
        dir.mode,
        dir.uid,
        dir.gid,
        dir.mtime,
        &dir.xattrs,
    )
}
