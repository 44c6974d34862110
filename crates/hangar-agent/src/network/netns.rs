//! Persistent, named network namespaces, made the way `ip netns add` makes them:
//! a namespace bind-mounted at `/run/netns/<name>` (a shared mount point), so it
//! outlives the process that made it and can be joined by path (`setns`).
//!
//! Work inside a namespace happens on a short-lived helper thread that enters it
//! and opens a netlink socket there; the socket stays bound to that namespace
//! after the thread is gone, and the calling thread never changes namespace.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::statfs::{NSFS_MAGIC, statfs};

use super::error::{NetworkError, Result};
use super::names::NETNS_DIR;
use super::netlink::Netlink;

/// Serialises the one-time setup of `/run/netns` between threads.
static NETNS_DIR_LOCK: Mutex<()> = Mutex::new(());

fn sys(op: &'static str, path: &str) -> impl FnOnce(Errno) -> NetworkError {
    let path = path.to_string();
    move |source| NetworkError::Sys { op, path, source }
}

fn io_err(op: &'static str, path: &str) -> impl FnOnce(io::Error) -> NetworkError {
    let path = path.to_string();
    move |source| NetworkError::Io { op, path, source }
}

/// Makes `/run/netns` a shared mount point, as `ip netns` does, so namespace
/// mounts made under it propagate to mount namespaces that copied it.
fn ensure_dir() -> Result<()> {
    let _guard = NETNS_DIR_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    fs::create_dir_all(NETNS_DIR).map_err(io_err("create dir", NETNS_DIR))?;
    let make_shared = || {
        mount(
            None::<&str>,
            NETNS_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then share it.
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys("bind-mount", NETNS_DIR))?;
            make_shared().map_err(sys("make shared", NETNS_DIR))
        }
        Err(e) => Err(sys("make shared", NETNS_DIR)(e)),
    }
}

/// The path of namespace `name`.
pub(crate) fn path_of(name: &str) -> String {
    format!("{NETNS_DIR}/{name}")
}

/// Creates the persistent namespace `name` and returns a netlink socket inside it.
/// Fails with [`NetworkError::AlreadyExists`] when the name is taken.
pub(crate) fn create(name: &str) -> Result<Netlink> {
    ensure_dir()?;
    let path = path_of(name);
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(NetworkError::AlreadyExists(name.to_string()));
        }
        Err(e) => return Err(io_err("create", &path)(e)),
    }
    let thread_path = path.clone();
    let made = std::thread::Builder::new()
        .name("netns-create".into())
        .spawn(move || -> Result<Netlink> {
            // This thread alone moves into the new namespace; it ends right after.
            unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare netns", &thread_path))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                thread_path.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys("bind-mount netns", &thread_path))?;
            Netlink::open()
        })
        .map_err(io_err("spawn thread for", &path))?
        .join()
        .map_err(|_| NetworkError::ThreadPanicked("create netns"))
        .and_then(|r| r);
    if made.is_err() {
        let _ = umount2(path.as_str(), MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&path);
    }
    made
}

/// Opens a netlink socket inside the namespace mounted at `path`.
pub(crate) fn socket_in(path: &str) -> Result<Netlink> {
    let file = fs::File::open(path).map_err(io_err("open netns", path))?;
    let thread_path = path.to_string();
    std::thread::Builder::new()
        .name("netns-enter".into())
        .spawn(move || -> Result<Netlink> {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(sys("enter netns", &thread_path))?;
            Netlink::open()
        })
        .map_err(io_err("spawn thread for", path))?
        .join()
        .map_err(|_| NetworkError::ThreadPanicked("enter netns"))?
}

/// Whether a namespace is mounted at `path` (not just an empty file left behind).
pub(crate) fn is_mounted(path: &str) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Unmounts and removes namespace `name`; `Ok(false)` when there was nothing.
/// The kernel frees the namespace once no process or mount holds it.
pub(crate) fn remove(name: &str) -> Result<bool> {
    let path = path_of(name);
    let mut found = false;
    match umount2(path.as_str(), MntFlags::MNT_DETACH) {
        Ok(()) => found = true,
        // EINVAL: not a mount point (an empty file left by a crash); ENOENT: gone.
        Err(Errno::EINVAL | Errno::ENOENT) => {}
        Err(e) => return Err(sys("unmount netns", &path)(e)),
    }
    match fs::remove_file(&path) {
        Ok(()) => found = true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove", &path)(e)),
    }
    Ok(found)
}

/// Names of the namespaces under `/run/netns` that start with `prefix`.
pub(crate) fn list(prefix: &str) -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read dir", NETNS_DIR)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("read dir", NETNS_DIR))?;
        if let Some(name) = entry.file_name().to_str()
            && name.starts_with(prefix)
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}
