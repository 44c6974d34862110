//! Volumes: persistent, size-limited filesystems that live on this host.
//!
//! A volume is a sparse file holding an ext4 filesystem, mounted through a loop device
//! under `<root>/<id>/mnt` while a machine uses it. The filesystem enforces the size
//! (a full volume answers `ENOSPC`), the data outlives machine stops, updates and agent
//! restarts, and extending grows the file and the filesystem in place, mounted or not.
//!
//! Layout under the manager's root:
//!
//! ```text
//! <root>/<volume id>/disk.ext4   the filesystem image (sparse)
//! <root>/<volume id>/mnt/        its mount point
//! <root>/<volume id>/resize-pending  present while the filesystem is smaller than its image
//! ```
//!
//! The tools are e2fsprogs' `mkfs.ext4` and `resize2fs`, util-linux's `losetup`, and the
//! `mount(2)` loop option, so a crashed agent leaves nothing that `mount` and `losetup`
//! cannot show.

use std::path::{Path, PathBuf};
use std::process::Command;

const GIB: u64 = 1 << 30;
const IMAGE: &str = "disk.ext4";
const MOUNT_DIR: &str = "mnt";
const RESIZE_PENDING: &str = "resize-pending";

/// What an extend did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extended {
    /// The filesystem grows only when the volume is next mounted (the machine
    /// using it must restart).
    pub needs_restart: bool,
}

/// Largest volume this host creates, in GiB (Fly's limit is 500).
pub const MAX_SIZE_GB: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {id}: size_gb must be between 1 and {MAX_SIZE_GB}, got {size_gb}")]
    BadSize { id: String, size_gb: u32 },
    #[error("volume {id}: size_gb can only grow: it is {current} GiB, asked for {requested}")]
    Shrink {
        id: String,
        current: u64,
        requested: u32,
    },
    #[error("volume {id}: not found on this host")]
    NotFound { id: String },
    #[error("volume {id} already exists on this host")]
    Exists { id: String },
    #[error("volume id {0:?} is not a valid directory name")]
    BadId(String),
    #[error("volume {id}: {what}: {source}")]
    Io {
        id: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("volume {id}: {command} failed: {stderr}")]
    Tool {
        id: String,
        command: String,
        stderr: String,
    },
}

/// Creates, mounts, extends and destroys the volumes of one host.
#[derive(Debug, Clone)]
pub struct VolumeManager {
    root: PathBuf,
}

impl VolumeManager {
    /// Volumes live under `root`, which is created if missing.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn dir(&self, id: &str) -> Result<PathBuf, VolumeError> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(VolumeError::BadId(id.to_owned()));
        }
        Ok(self.root.join(id))
    }

    fn image(&self, id: &str) -> Result<PathBuf, VolumeError> {
        Ok(self.dir(id)?.join(IMAGE))
    }

    /// Where the volume's filesystem is (or will be) mounted on the host.
    pub fn mount_point(&self, id: &str) -> Result<PathBuf, VolumeError> {
        Ok(self.dir(id)?.join(MOUNT_DIR))
    }

    /// Makes a new empty volume of `size_gb` GiB. On failure nothing is left behind.
    pub fn create(&self, id: &str, size_gb: u32) -> Result<(), VolumeError> {
        check_size(id, size_gb)?;
        let dir = self.dir(id)?;
        if dir.exists() {
            return Err(VolumeError::Exists { id: id.to_owned() });
        }
        let result = self.create_in(id, &dir, size_gb);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    fn create_in(&self, id: &str, dir: &Path, size_gb: u32) -> Result<(), VolumeError> {
        let io = |what| {
            move |source| VolumeError::Io {
                id: id.to_owned(),
                what,
                source,
            }
        };
        std::fs::create_dir_all(dir.join(MOUNT_DIR)).map_err(io("creating its directory"))?;
        let image = dir.join(IMAGE);
        let file = std::fs::File::create(&image).map_err(io("creating its image"))?;
        file.set_len(u64::from(size_gb) * GIB)
            .map_err(io("sizing its image"))?;
        file.sync_all().map_err(io("syncing its image"))?;
        drop(file);
        // No reserved blocks: the whole size belongs to the machine. lazy init keeps
        // creation fast; the kernel zeroes the inode tables in the background.
        run(
            id,
            Command::new("mkfs.ext4")
                .args([
                    "-q",
                    "-F",
                    "-m",
                    "0",
                    "-E",
                    "lazy_itable_init=1,lazy_journal_init=1",
                ])
                .args(["-L", &label(id)])
                .arg(&image),
        )
    }

    /// Size of the volume's image in bytes.
    pub fn size_bytes(&self, id: &str) -> Result<u64, VolumeError> {
        let image = self.image(id)?;
        match std::fs::metadata(&image) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(VolumeError::NotFound { id: id.to_owned() })
            }
            Err(source) => Err(VolumeError::Io {
                id: id.to_owned(),
                what: "reading its image",
                source,
            }),
        }
    }

    /// Whether the volume's filesystem is mounted on the host now.
    pub fn is_mounted(&self, id: &str) -> Result<bool, VolumeError> {
        let target = self.mount_point(id)?;
        Ok(mounted_targets().iter().any(|t| t == &target))
    }

    /// Mounts the volume (idempotent) and returns its host mount point, ready to be
    /// bind-mounted into a machine.
    pub fn mount(&self, id: &str) -> Result<PathBuf, VolumeError> {
        let image = self.image(id)?;
        if !image.exists() {
            return Err(VolumeError::NotFound { id: id.to_owned() });
        }
        let target = self.mount_point(id)?;
        if self.is_mounted(id)? {
            return Ok(target);
        }
        std::fs::create_dir_all(&target).map_err(|source| VolumeError::Io {
            id: id.to_owned(),
            what: "creating its mount point",
            source,
        })?;
        let pending = self.dir(id)?.join(RESIZE_PENDING);
        if pending.exists() {
            self.resize_offline(id, &image)?;
            let _ = std::fs::remove_file(&pending);
        }
        // `loop` attaches a loop device that the kernel releases at unmount.
        run(
            id,
            Command::new("mount")
                .args(["-t", "ext4", "-o", "loop,nodev,nosuid"])
                .arg(&image)
                .arg(&target),
        )?;
        Ok(target)
    }

    /// Unmounts the volume if it is mounted.
    pub fn unmount(&self, id: &str) -> Result<(), VolumeError> {
        if !self.is_mounted(id)? {
            return Ok(());
        }
        let target = self.mount_point(id)?;
        run(id, Command::new("umount").arg(&target))?;
        // The loop device goes with the mount (autoclear), unless a mount was made
        // without it; detach any that still points at the image.
        let image = self.image(id)?;
        for dev in loop_devices_of(&image) {
            let _ = Command::new("losetup").arg("-d").arg(dev).status();
        }
        Ok(())
    }

    /// Grows the volume to `size_gb` GiB, mounted or not. Shrinking is refused.
    ///
    /// An unmounted volume grows at once. A mounted one grows online where the host
    /// allows it (`CAP_SYS_RESOURCE`); otherwise the image grows now and the filesystem
    /// at the next mount, and the outcome says `needs_restart` (as Fly's API does).
    pub fn extend(&self, id: &str, size_gb: u32) -> Result<Extended, VolumeError> {
        check_size(id, size_gb)?;
        let current = self.size_bytes(id)?;
        let new = u64::from(size_gb) * GIB;
        if new < current {
            return Err(VolumeError::Shrink {
                id: id.to_owned(),
                current: current / GIB,
                requested: size_gb,
            });
        }
        if new == current {
            return Ok(Extended {
                needs_restart: self.dir(id)?.join(RESIZE_PENDING).exists(),
            });
        }
        let image = self.image(id)?;
        let io = |what| {
            move |source| VolumeError::Io {
                id: id.to_owned(),
                what,
                source,
            }
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .map_err(io("opening its image"))?;
        file.set_len(new).map_err(io("growing its image"))?;
        file.sync_all().map_err(io("syncing its image"))?;
        let pending = self.dir(id)?.join(RESIZE_PENDING);
        // Marked first, so a crash between here and the resize is finished at mount.
        std::fs::write(&pending, b"").map_err(io("marking the resize"))?;
        let loops = loop_devices_of(&image);
        let needs_restart = match loops.first() {
            Some(dev) => {
                run(id, Command::new("losetup").arg("-c").arg(dev))?;
                run(id, Command::new("resize2fs").arg(dev)).is_err()
            }
            None => {
                self.resize_offline(id, &image)?;
                false
            }
        };
        if !needs_restart {
            std::fs::remove_file(&pending).map_err(io("clearing the resize mark"))?;
        }
        Ok(Extended { needs_restart })
    }

    fn resize_offline(&self, id: &str, image: &Path) -> Result<(), VolumeError> {
        // e2fsck exits 1 when it fixed something, which is fine before a resize.
        let status = Command::new("e2fsck")
            .args(["-f", "-p"])
            .arg(image)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|source| VolumeError::Io {
                id: id.to_owned(),
                what: "running e2fsck",
                source,
            })?;
        if !matches!(status.code(), Some(0 | 1)) {
            return Err(VolumeError::Tool {
                id: id.to_owned(),
                command: "e2fsck -f -p".into(),
                stderr: format!("exited with {status}"),
            });
        }
        run(id, Command::new("resize2fs").arg(image))
    }

    /// Unmounts and deletes the volume and its data. Idempotent.
    pub fn destroy(&self, id: &str) -> Result<(), VolumeError> {
        let dir = self.dir(id)?;
        if !dir.exists() {
            return Ok(());
        }
        self.unmount(id)?;
        std::fs::remove_dir_all(&dir).map_err(|source| VolumeError::Io {
            id: id.to_owned(),
            what: "removing its files",
            source,
        })
    }

    /// Ids of the volumes present on this host.
    pub fn list(&self) -> std::io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            if entry.path().join(IMAGE).exists() {
                ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }
}

fn check_size(id: &str, size_gb: u32) -> Result<(), VolumeError> {
    if size_gb == 0 || size_gb > MAX_SIZE_GB {
        return Err(VolumeError::BadSize {
            id: id.to_owned(),
            size_gb,
        });
    }
    Ok(())
}

/// ext4 labels hold at most 16 bytes.
fn label(id: &str) -> String {
    id.chars()
        .rev()
        .take(16)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

fn run(id: &str, cmd: &mut Command) -> Result<(), VolumeError> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| VolumeError::Io {
        id: id.to_owned(),
        what: "running a filesystem tool",
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(VolumeError::Tool {
            id: id.to_owned(),
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Mount points listed in this process's mount table, with octal escapes decoded.
fn mounted_targets() -> Vec<PathBuf> {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|t| PathBuf::from(unescape_mountinfo(t)))
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Loop devices whose backing file is `image`.
fn loop_devices_of(image: &Path) -> Vec<String> {
    let Ok(out) = Command::new("losetup").arg("-j").arg(image).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests;
