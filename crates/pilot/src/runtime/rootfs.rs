//! The container's filesystem: an overlay of the image layers with a fresh upper
//! directory, and the kernel filesystems an OCI runtime provides (`/proc` with
//! masked and read-only paths, read-only `/sys`, a tmpfs `/dev` with the standard
//! devices, `/dev/pts`, `/dev/shm`, `/dev/mqueue`), bind mounts, files, and the
//! switch to it with `pivot_root`.
//!
//! Everything here runs in the container's own mount namespace (made private
//! first), so nothing is mounted in pilot's namespace: the mounts disappear with
//! the container's last process.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use super::sys::{Ctx, StageError};
use super::{BindMount, FileWrite, Rootfs};

/// Files under /proc hidden behind /dev/null.
const MASKED_FILES: &[&str] = &[
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
];
/// Directories hidden behind an empty read-only tmpfs.
const MASKED_DIRS: &[&str] = &["proc/acpi", "proc/scsi", "proc/asound"];
/// Paths under /proc made read-only.
const READONLY_PATHS: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];
/// Character devices created in /dev: (name, major, minor).
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];
/// Symlinks in /dev.
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Directories of one container run inside its state directory.
#[derive(Debug, Clone)]
pub(crate) struct StatePaths {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub root: PathBuf,
}

impl StatePaths {
    pub(crate) fn of(state_dir: &Path) -> StatePaths {
        StatePaths {
            upper: state_dir.join("upper"),
            work: state_dir.join("work"),
            root: state_dir.join("rootfs"),
        }
    }

    /// Wipes the upper and work directories and creates them afresh, with the
    /// mount point: each start is a blank slate.
    pub(crate) fn reset(&self) -> std::io::Result<()> {
        self.remove()?;
        for dir in [&self.upper, &self.work, &self.root] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)?;
        }
        Ok(())
    }

    /// Removes what [`reset`](Self::reset) made. Missing is fine.
    pub(crate) fn remove(&self) -> std::io::Result<()> {
        for dir in [&self.upper, &self.work] {
            match fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        match fs::remove_dir(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn mnt(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), StageError> {
    mount(source, target, fstype, flags, data).ctx(|| {
        format!(
            "mount {} on {}",
            fstype.or(source).unwrap_or("(remount)"),
            target.display()
        )
    })
}

/// Stops mount events from propagating between pilot's namespace and this one.
pub(crate) fn make_private() -> Result<(), StageError> {
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
}

/// Mounts the overlay: lower = layers top-first, fresh upper and work.
pub(crate) fn mount_overlay(rootfs: &Rootfs, paths: &StatePaths) -> Result<(), StageError> {
    if rootfs.layers.is_empty() {
        return Err(StageError("rootfs.layers: no image layer".into()));
    }
    let lower: Vec<String> = rootfs
        .layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    // `volatile`: the upper dir is thrown away at every start, so it is never synced.
    let data = format!(
        "lowerdir={},upperdir={},workdir={},volatile",
        lower.join(":"),
        paths.upper.display(),
        paths.work.display()
    );
    mnt(
        Some("overlay"),
        &paths.root,
        Some("overlay"),
        MsFlags::empty(),
        Some(&data),
    )
}

/// Creates directory `dir` (and parents) if missing.
fn ensure_dir(dir: &Path) -> Result<(), StageError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .ctx(|| format!("create {}", dir.display()))
}

/// `/dev` as a tmpfs with the standard devices, pts, shm and mqueue; `/sys`
/// read-only with `/sys/firmware` hidden.
pub(crate) fn mount_dev_and_sys(root: &Path) -> Result<(), StageError> {
    let dev = inside(root, Path::new("/dev"), "rootfs /dev", false)?;
    ensure_dir(&dev)?;
    mnt(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for (name, major, minor) in DEVICES {
        let path = dev.join(name);
        mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(*major, *minor),
        )
        .ctx(|| format!("mknod {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666))
            .ctx(|| format!("chmod {}", path.display()))?;
    }
    for (name, target) in DEV_LINKS {
        symlink(target, dev.join(name)).ctx(|| format!("symlink /dev/{name}"))?;
    }
    let pts = dev.join("pts");
    ensure_dir(&pts)?;
    mnt(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = dev.join("shm");
    ensure_dir(&shm)?;
    mnt(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    let mqueue = dev.join("mqueue");
    ensure_dir(&mqueue)?;
    mnt(
        Some("mqueue"),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;

    let sys = inside(root, Path::new("/sys"), "rootfs /sys", false)?;
    ensure_dir(&sys)?;
    mnt(
        Some("sysfs"),
        &sys,
        Some("sysfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    let firmware = sys.join("firmware");
    if firmware.is_dir() {
        mask_dir(&firmware)?;
    }
    Ok(())
}

fn mask_dir(dir: &Path) -> Result<(), StageError> {
    mnt(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=0"),
    )
}

/// Mounts `/proc` (the caller must already be inside the container's PID
/// namespace) and applies masked and read-only paths.
pub(crate) fn mount_proc(root: &Path) -> Result<(), StageError> {
    let proc_dir = inside(root, Path::new("/proc"), "rootfs /proc", false)?;
    ensure_dir(&proc_dir)?;
    mnt(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    let null = root.join("dev/null");
    for f in MASKED_FILES {
        let path = root.join(f);
        if path.exists() {
            mnt(
                Some(null.to_str().unwrap_or("/dev/null")),
                &path,
                None,
                MsFlags::MS_BIND,
                None,
            )?;
        }
    }
    for d in MASKED_DIRS {
        let path = root.join(d);
        if path.is_dir() {
            mask_dir(&path)?;
        }
    }
    for p in READONLY_PATHS {
        let path = root.join(p);
        if !path.exists() {
            continue;
        }
        let src = path.to_str().unwrap_or_default();
        mnt(
            Some(src),
            &path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        mnt(
            None,
            &path,
            None,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None,
        )?;
    }
    Ok(())
}

/// Joins a container path to the rootfs, refusing `.` and `..`, and, unless
/// `follow` (safe once the rootfs is `/`), any symlink on the way: before
/// `pivot_root` an image's absolute symlink would point outside the rootfs.
fn inside(root: &Path, guest: &Path, field: &str, follow: bool) -> Result<PathBuf, StageError> {
    if !guest.is_absolute() {
        return Err(StageError(format!(
            "{field}: {} is not absolute",
            guest.display()
        )));
    }
    let mut path = root.to_path_buf();
    for c in guest.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(part) => {
                path.push(part);
                if !follow
                    && path
                        .symlink_metadata()
                        .is_ok_and(|m| m.file_type().is_symlink())
                {
                    return Err(StageError(format!(
                        "{field}: {} goes through a symlink in the image",
                        guest.display()
                    )));
                }
            }
            _ => {
                return Err(StageError(format!(
                    "{field}: {} must not contain `.` or `..`",
                    guest.display()
                )));
            }
        }
    }
    Ok(path)
}

/// Bind-mounts host paths into the rootfs, creating the targets.
pub(crate) fn mount_binds(root: &Path, mounts: &[BindMount]) -> Result<(), StageError> {
    for (i, m) in mounts.iter().enumerate() {
        let field = format!("mounts[{i}].target");
        let target = inside(root, &m.target, &field, false)?;
        let source_meta = fs::metadata(&m.source)
            .ctx(|| format!("mounts[{i}].source: {}", m.source.display()))?;
        if source_meta.is_dir() {
            ensure_dir(&target)?;
        } else if !target.exists() {
            if let Some(parent) = target.parent() {
                ensure_dir(parent)?;
            }
            fs::File::create(&target).ctx(|| format!("{field}: create {}", target.display()))?;
        }
        let src = m.source.to_str().unwrap_or_default();
        mnt(
            Some(src),
            &target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        if m.readonly {
            mnt(
                None,
                &target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None,
            )?;
        }
    }
    Ok(())
}

/// Makes `root` the root of the mount namespace and detaches the old one.
pub(crate) fn pivot(root: &Path) -> Result<(), StageError> {
    std::env::set_current_dir(root).ctx(|| format!("chdir {}", root.display()))?;
    nix::unistd::pivot_root(".", ".").ctx(|| format!("pivot_root to {}", root.display()))?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the old root".to_string())?;
    std::env::set_current_dir("/").ctx(|| "chdir /".to_string())
}

/// Writes `files` (after [`pivot`], so paths resolve inside the container).
pub(crate) fn write_files(files: &[FileWrite]) -> Result<(), StageError> {
    for (i, f) in files.iter().enumerate() {
        let field = format!("files[{i}].guest_path");
        let path = inside(Path::new("/"), &f.guest_path, &field, true)?;
        if let Some(parent) = path.parent() {
            ensure_dir(parent)?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(f.mode & 0o7777)
            .open(&path)
            .ctx(|| format!("{field}: open {}", path.display()))?;
        file.write_all(&f.content)
            .ctx(|| format!("{field}: write {}", path.display()))?;
        std::os::unix::fs::fchown(&file, Some(f.owner.uid), Some(f.owner.gid))
            .ctx(|| format!("{field}: chown {}", path.display()))?;
        file.set_permissions(fs::Permissions::from_mode(f.mode & 0o7777))
            .ctx(|| format!("{field}: chmod {}", path.display()))?;
    }
    Ok(())
}
