//! `pilot sandbox`: the machine launcher. Used by the agent (and pilot's tests) to
//! start a machine whose PID 1 is PROGRAM (normally `pilot run ...`):
//!
//! ```text
//! pilot sandbox [--netns PATH | --new-netns] [--hostname H] [--cgroup-parent NAME]
//!               [--memory-mb N] [--cpus N] [--pidfile F] -- PROGRAM ARGS...
//! ```
//!
//! - `--netns PATH` joins a network namespace (e.g. `/run/netns/m-1`, made by the
//!   agent); `--new-netns` makes an empty one with `lo` up; neither keeps the
//!   caller's.
//! - New PID, UTS (hostname `H`), IPC and mount namespaces. The mount namespace
//!   is a slave of the caller's (mounts made later by the agent, such as volumes,
//!   propagate in; nothing propagates out), and PROGRAM gets a fresh `/proc` of
//!   the machine's PID namespace: `ps` in the machine lists only its processes,
//!   and `/proc/self` and `/proc/<pid>` use the machine's pids, which pilot relies
//!   on. `/sys` is the caller's.
//! - `--cgroup-parent NAME` (a path inside every cgroup hierarchy, like
//!   `hangar/m-1`) is created as the machine's cgroup, with `--memory-mb`
//!   (memory limit, no swap on v2) and `--cpus` (CFS quota) on cgroup v1 and v2,
//!   and entered. Removing it after the machine ends is the caller's job.
//! - PROGRAM runs as PID 1 of the new PID namespace in a new session (`setsid`),
//!   with the caller's stdio. Its host pid goes to `--pidfile`, then `sandbox`
//!   exits 0, so the machine outlives whoever launched it. If PROGRAM cannot be
//!   started, `sandbox` prints why and exits 1.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};

use super::cgroup::{self, MachineLimits};
use super::proto;
use super::sys::{self, Ctx, Forked, StageError};

pub(crate) const SUBCOMMAND: &str = "sandbox";

const USAGE: &str = "usage: pilot sandbox [--netns PATH | --new-netns] [--hostname H] \
[--cgroup-parent NAME] [--memory-mb N] [--cpus N] [--pidfile F] -- PROGRAM ARGS...";

#[derive(Debug, Default)]
struct Options {
    netns: Option<PathBuf>,
    new_netns: bool,
    hostname: Option<String>,
    cgroup_parent: Option<PathBuf>,
    limits: MachineLimits,
    pidfile: Option<PathBuf>,
    program: Vec<String>,
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pilot sandbox: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pilot sandbox: {e}");
            ExitCode::from(1)
        }
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name}: missing value"))
        };
        match arg.as_str() {
            "--netns" => o.netns = Some(value("--netns")?.into()),
            "--new-netns" => o.new_netns = true,
            "--hostname" => o.hostname = Some(value("--hostname")?),
            "--cgroup-parent" => o.cgroup_parent = Some(value("--cgroup-parent")?.into()),
            "--memory-mb" => {
                let v = value("--memory-mb")?;
                o.limits.memory_mb = Some(
                    v.parse()
                        .map_err(|_| format!("--memory-mb: {v:?} is not a number"))?,
                );
            }
            "--cpus" => {
                let v = value("--cpus")?;
                let cpus: f64 = v
                    .parse()
                    .map_err(|_| format!("--cpus: {v:?} is not a number"))?;
                if cpus.is_nan() || cpus <= 0.0 {
                    return Err(format!("--cpus: {v} must be positive"));
                }
                o.limits.cpus = Some(cpus);
            }
            "--pidfile" => o.pidfile = Some(value("--pidfile")?.into()),
            "--" => {
                o.program = it.cloned().collect();
                break;
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.netns.is_some() && o.new_netns {
        return Err("--netns and --new-netns exclude each other".into());
    }
    if o.program.is_empty() {
        return Err("PROGRAM: missing after --".into());
    }
    if (o.limits.memory_mb.is_some() || o.limits.cpus.is_some()) && o.cgroup_parent.is_none() {
        return Err("--memory-mb and --cpus need --cgroup-parent".into());
    }
    Ok(o)
}

fn run(o: &Options) -> Result<(), StageError> {
    if let Some(path) = &o.netns {
        let f = File::open(path).ctx(|| format!("--netns {}", path.display()))?;
        setns(&f, CloneFlags::CLONE_NEWNET).ctx(|| format!("--netns {}: setns", path.display()))?;
    } else if o.new_netns {
        unshare(CloneFlags::CLONE_NEWNET).ctx(|| "--new-netns: unshare".into())?;
        sys::loopback_up().ctx(|| "--new-netns: bring lo up".into())?;
    }
    unshare(
        CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWNS,
    )
    .ctx(|| "unshare PID, UTS, IPC and mount namespaces".into())?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .ctx(|| "make / a slave mount".into())?;
    if let Some(h) = &o.hostname {
        nix::unistd::sethostname(h).ctx(|| format!("--hostname {h}"))?;
    }
    if let Some(parent) = &o.cgroup_parent {
        cgroup::create_machine(parent, o.limits, &mut |w| {
            eprintln!("pilot sandbox: warning: {w}")
        })
        .ctx(|| format!("--cgroup-parent {}", parent.display()))?;
    }
    let (st_r, st_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    match sys::fork().ctx(|| "fork".into())? {
        Forked::Child => {
            drop(st_r);
            let e = machine_init(&o.program);
            proto::write_status(st_w.as_raw_fd(), &format!("error {e}"));
            sys::exit_now(127)
        }
        Forked::Parent(pid) => {
            drop(st_w);
            let report = proto::read_status(st_r).ctx(|| "read the status pipe".into())?;
            if !report.errors.is_empty() {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                return Err(StageError(report.errors.join("; ")));
            }
            if let Some(pidfile) = &o.pidfile {
                write_pidfile(pidfile, pid)?;
            }
            Ok(())
        }
    }
}

/// In the machine's PID namespace, as its PID 1: new session, fresh /proc, exec.
fn machine_init(program: &[String]) -> StageError {
    let run = || -> Result<std::convert::Infallible, StageError> {
        nix::unistd::setsid().ctx(|| "setsid".into())?;
        mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .ctx(|| "mount /proc".into())?;
        sys::reset_signals();
        let argv = program
            .iter()
            .map(|a| std::ffi::CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .ctx(|| "PROGRAM: contains a NUL byte".into())?;
        nix::unistd::execvp(&argv[0], &argv).ctx(|| format!("PROGRAM: exec {}", program[0]))
    };
    match run() {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn write_pidfile(path: &std::path::Path, pid: i32) -> Result<(), StageError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{pid}\n")).ctx(|| format!("--pidfile {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("--pidfile {}", path.display()))
}
