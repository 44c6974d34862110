//! `pilot sandbox`, the machine launcher, as root: new PID/UTS/IPC/mount
//! namespaces, a new or joined network namespace, a machine cgroup with limits,
//! PROGRAM detached as PID 1 with its pid in the pidfile.

#[path = "runtime_support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use support::{eventually, unique};

/// A launched machine: SIGKILLed, reaped and its cgroup removed on drop.
struct Machine {
    pid: Option<i32>,
    cgroup: Option<String>,
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroup {
            for ctrl in ["memory", "pids", "cpu", "cpuacct", "unified"] {
                let dir = Path::new("/sys/fs/cgroup").join(ctrl).join(cg);
                if dir.exists() {
                    eventually(Duration::from_secs(5), || std::fs::remove_dir(&dir).is_ok());
                }
            }
        }
    }
}

/// Runs `pilot sandbox`; returns its exit code and stderr. The machine's stdio
/// is /dev/null and a file, so nothing waits for the machine to close a pipe.
fn sandbox(args: &[&str], program: &[&str]) -> (Option<i32>, String) {
    let err_file = tempfile::NamedTempFile::new().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_pilot"))
        .arg("sandbox")
        .args(args)
        .arg("--")
        .args(program)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file.reopen().unwrap())
        .status()
        .unwrap();
    (
        status.code(),
        std::fs::read_to_string(err_file.path()).unwrap(),
    )
}

/// Waits for `pidfile` and returns the pid in it.
fn read_pid(pidfile: &Path) -> i32 {
    assert!(eventually(Duration::from_secs(5), || pidfile.exists()));
    std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn wait_for(path: &Path) -> String {
    assert!(
        eventually(Duration::from_secs(10), || path.exists()),
        "{} never written",
        path.display()
    );
    std::fs::read_to_string(path).unwrap()
}

/// The machine writes what it sees into `out` (via a temp file and rename), then
/// stays up.
fn report_script(out: &Path) -> String {
    let tmp = out.with_extension("tmp");
    format!(
        "{{ echo pid=$$; cat /proc/sys/kernel/hostname; ls /proc | grep -c '^[0-9]'; \
         readlink /proc/self/ns/net; ip -o link show lo; grep memory /proc/self/cgroup; }} > {t}; \
         mv {t} {o}; sleep 30",
        t = tmp.display(),
        o = out.display()
    )
}

#[test]
fn sandbox_starts_a_detached_machine_with_its_namespaces_and_cgroup() {
    pilot::runtime::set_child_subreaper().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seen");
    let pidfile = dir.path().join("machine.pid");
    let cgroup = unique("hangar-sandbox-test");
    let mut machine = Machine {
        pid: None,
        cgroup: Some(cgroup.clone()),
    };
    let script = report_script(&out);
    let result = sandbox(
        &[
            "--new-netns",
            "--hostname",
            "m-sandbox-test",
            "--cgroup-parent",
            &cgroup,
            "--memory-mb",
            "64",
            "--cpus",
            "0.5",
            "--pidfile",
            pidfile.to_str().unwrap(),
        ],
        &["/bin/sh", "-c", &script],
    );
    assert_eq!(result.0, Some(0), "{}", result.1);
    let pid = read_pid(&pidfile);
    machine.pid = Some(pid);
    let seen = wait_for(&out);
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "pid=1", "{seen}");
    assert_eq!(lines[1], "m-sandbox-test");
    let visible: u32 = lines[2].parse().unwrap();
    assert!(
        visible <= 4,
        "the machine's /proc shows {visible} processes"
    );
    let own_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(PathBuf::from(lines[3]), own_net, "same network namespace");
    assert!(
        lines[4].contains("lo:") && lines[4].contains("UP"),
        "{}",
        lines[4]
    );
    assert!(lines[5].ends_with(&format!("/{cgroup}")), "{}", lines[5]);
    // Limits on the machine cgroup, and the machine outlives `pilot sandbox`.
    let mem = Path::new("/sys/fs/cgroup/memory").join(&cgroup);
    assert_eq!(
        std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        (64u64 << 20).to_string()
    );
    let cpu = Path::new("/sys/fs/cgroup/cpu").join(&cgroup);
    assert_eq!(
        std::fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
            .unwrap()
            .trim(),
        "50000"
    );
    assert!(
        std::fs::read_to_string(mem.join("cgroup.procs"))
            .unwrap()
            .lines()
            .any(|l| l == pid.to_string())
    );

    // A second machine can join the first one's network namespace.
    let out2 = dir.path().join("seen2");
    let pidfile2 = dir.path().join("machine2.pid");
    let mut machine2 = Machine {
        pid: None,
        cgroup: None,
    };
    let netns = format!("/proc/{pid}/ns/net");
    let result = sandbox(
        &["--netns", &netns, "--pidfile", pidfile2.to_str().unwrap()],
        &["/bin/sh", "-c", &report_script(&out2)],
    );
    assert_eq!(result.0, Some(0), "{}", result.1);
    machine2.pid = Some(read_pid(&pidfile2));
    let seen2 = wait_for(&out2);
    assert_eq!(seen2.lines().nth(3), Some(lines[3]), "not the same netns");
    drop(machine2);
    drop(machine);
}

#[test]
fn sandbox_reports_a_program_that_cannot_start() {
    let result = sandbox(&["--new-netns"], &["/nonexistent/program"]);
    assert_eq!(result.0, Some(1));
    assert!(result.1.contains("/nonexistent/program"), "{}", result.1);
}

#[test]
fn sandbox_rejects_bad_options() {
    let result = sandbox(&["--memory-mb", "64"], &["/bin/true"]);
    assert_eq!(result.0, Some(2));
    assert!(result.1.contains("--cgroup-parent"), "{}", result.1);
    let result = sandbox(&["--cpus", "zero", "--cgroup-parent", "x"], &["/bin/true"]);
    assert_eq!(result.0, Some(2));
    assert!(result.1.contains("--cpus"), "{}", result.1);
}
