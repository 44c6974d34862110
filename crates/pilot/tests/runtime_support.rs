//! Shared helpers of the runtime tests (included with `#[path]`): a busybox
//! rootfs layer, a runtime with its own cgroup parent, and a started container
//! that is killed, reaped and cleaned up on drop, even when a test fails.
#![allow(dead_code, clippy::new_without_default)]

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use pilot::runtime::{
    ContainerHandle, ContainerLaunch, NamespaceRuntime, NamespaceRuntimeConfig, ProcessSpec,
    Rootfs, Runtime, Started, User,
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes a minimal image layer into `dir`: static busybox with its applets as
/// symlinks, the usual top-level directories, and /etc/passwd.
pub fn busybox_layer(dir: &Path) -> PathBuf {
    let layer = dir.join("layer");
    let bin = layer.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed");
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    for d in ["proc", "sys", "dev", "tmp", "etc", "root", "home/app"] {
        std::fs::create_dir_all(layer.join(d)).unwrap();
    }
    std::fs::write(
        layer.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    layer
}

/// A runtime whose container cgroups go under a cgroup of this test; the cgroup
/// is removed on drop.
pub struct TestRuntime {
    pub rt: NamespaceRuntime,
    pub dir: tempfile::TempDir,
    pub layer: PathBuf,
    parents: Vec<PathBuf>,
}

impl TestRuntime {
    pub fn new() -> TestRuntime {
        Self::with_parent(Some(PathBuf::from(format!(
            "/{}",
            unique("hangar-rt-test")
        ))))
    }

    /// `None`: container cgroups under this test process's own cgroups.
    pub fn with_parent(parent: Option<PathBuf>) -> TestRuntime {
        pilot::runtime::set_child_subreaper().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("hangar-rt-")
            .tempdir()
            .unwrap();
        let layer = busybox_layer(dir.path());
        let own = parent.is_some();
        let rt = NamespaceRuntime::new(NamespaceRuntimeConfig {
            pilot_exe: env!("CARGO_BIN_EXE_pilot").into(),
            cgroup_parent: parent,
        })
        .unwrap();
        let parents = if own {
            rt.cgroups().parents().to_vec()
        } else {
            Vec::new()
        };
        TestRuntime {
            rt,
            dir,
            layer,
            parents,
        }
    }

    /// A launch of `sh -c script` as root in a fresh state dir.
    pub fn launch(&self, script: &str) -> ContainerLaunch {
        let name = unique("c");
        ContainerLaunch {
            rootfs: Rootfs {
                layers: vec![self.layer.clone()],
                state_dir: self.dir.path().join(&name),
            },
            name,
            process: ProcessSpec {
                argv: vec!["sh".into(), "-c".into(), script.into()],
                env: vec!["PATH=/usr/bin:/bin".into(), "HOME=/root".into()],
                cwd: "/".into(),
                user: User::default(),
            },
            files: Vec::new(),
            mounts: Vec::new(),
            hostname: "test".into(),
        }
    }

    pub fn start(&self, launch: &ContainerLaunch) -> Container<'_> {
        let started = self.rt.start(launch).expect("container starts");
        Container::new(&self.rt, started)
    }
}

impl Drop for TestRuntime {
    fn drop(&mut self) {
        for p in &self.parents {
            let _ = std::fs::remove_dir(p);
        }
    }
}

/// A started container; on drop: SIGKILL if still running, reap, cleanup.
pub struct Container<'a> {
    rt: &'a NamespaceRuntime,
    pub pid: i32,
    pub handle: ContainerHandle,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    status: Option<WaitStatus>,
    cleaned: bool,
}

impl<'a> Container<'a> {
    pub fn new(rt: &'a NamespaceRuntime, started: Started) -> Self {
        Container {
            rt,
            pid: started.pid,
            handle: started.handle,
            stdout: Some(started.stdout),
            stderr: Some(started.stderr),
            status: None,
            cleaned: false,
        }
    }

    /// Reads stdout and stderr to end-of-file and waits for the process.
    pub fn finish(&mut self) -> (String, String, WaitStatus) {
        let err = self.stderr.take().map(|fd| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::fs::File::from(fd).read_to_string(&mut s);
                s
            })
        });
        let mut out = String::new();
        if let Some(fd) = self.stdout.take() {
            let _ = std::fs::File::from(fd).read_to_string(&mut out);
        }
        let err = err.map(|t| t.join().unwrap()).unwrap_or_default();
        let status = self.wait();
        (out, err, status)
    }

    pub fn wait(&mut self) -> WaitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let s = waitpid(Pid::from_raw(self.pid), None).expect("waitpid");
        self.status = Some(s);
        s
    }

    /// Reads stdout up to and including the first line equal to `marker`
    /// (bounded by the container's output: a container that never prints it
    /// and exits makes this fail).
    pub fn read_until(&mut self, marker: &str) -> Vec<String> {
        let fd = self.stdout.take().expect("stdout");
        let mut reader = BufReader::new(std::fs::File::from(fd));
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).unwrap();
            assert!(n > 0, "stdout closed before {marker:?}; got {lines:?}");
            let line = line.trim_end().to_string();
            let done = line == marker;
            lines.push(line);
            if done {
                break;
            }
        }
        self.stdout = Some(OwnedFd::from(reader.into_inner()));
        lines
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid), sig).unwrap();
    }

    pub fn cleanup(&mut self) {
        if !self.cleaned {
            self.rt.cleanup(&self.handle).expect("cleanup");
            self.cleaned = true;
        }
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(self.pid), None);
        }
        if !self.cleaned {
            let _ = self.rt.cleanup(&self.handle);
        }
    }
}

/// True while `pid` exists (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls `cond` every 10 ms for at most `limit`.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lines of this process's mountinfo mentioning `path`.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let needle = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}
