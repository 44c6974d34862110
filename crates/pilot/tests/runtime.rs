//! NamespaceRuntime end to end, as root: real namespaces, overlay mounts, cgroups,
//! capabilities and seccomp, with containers made from a busybox layer.

#[path = "runtime_support.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use pilot::runtime::{BindMount, ExecSpec, FileWrite, Runtime, User};
use support::{TestRuntime, alive, eventually, mounts_under, unique};

fn exited(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        _ => None,
    }
}

#[test]
fn process_sees_the_overlay_rootfs_not_the_host() {
    let t = TestRuntime::new();
    let marker = PathBuf::from(format!("/tmp/{}", unique("host-only")));
    std::fs::write(&marker, "host").unwrap();
    let script = format!(
        "test -e {m} && echo HOST-VISIBLE; test -x /bin/busybox && echo HAS-BUSYBOX; \
         grep ' / / ' /proc/self/mountinfo | grep -q overlay && echo ROOT-IS-OVERLAY; \
         ls /dev",
        m = marker.display()
    );
    let mut c = t.start(&t.launch(&script));
    let (out, err, status) = c.finish();
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(exited(status), Some(0), "stderr: {err}");
    assert!(!out.contains("HOST-VISIBLE"), "{out}");
    assert!(out.contains("HAS-BUSYBOX"), "{out}");
    assert!(out.contains("ROOT-IS-OVERLAY"), "{out}");
    for dev in [
        "null", "zero", "urandom", "tty", "pts", "shm", "mqueue", "fd", "ptmx",
    ] {
        assert!(out.lines().any(|l| l == dev), "/dev/{dev} missing: {out}");
    }
}

#[test]
fn process_gets_exactly_its_environment_stdio_and_signal_state() {
    let t = TestRuntime::new();
    // `ls` lists its own descriptors: stdio plus the directory it reads (3).
    let mut c = t.start(
        &t.launch("exec 2>&1; cat /proc/$$/environ | tr '\\0' '\\n'; echo --; ls /proc/self/fd"),
    );
    let (out, _, status) = c.finish();
    assert_eq!(exited(status), Some(0));
    let parts: Vec<&str> = out.split("--\n").collect();
    assert_eq!(parts[0], "PATH=/usr/bin:/bin\nHOME=/root\n");
    assert_eq!(
        parts[1], "0\n1\n2\n3\n",
        "descriptors leaked into the container"
    );
    // No shell in between (sh ignores SIGQUIT itself): nothing blocked or
    // ignored, whatever pilot's own signal state.
    let mut launch = t.launch("");
    launch.process.argv = ["grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"]
        .map(String::from)
        .to_vec();
    let mut c = t.start(&launch);
    let (out, _, status) = c.finish();
    assert_eq!(exited(status), Some(0));
    assert_eq!(
        out,
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
}

#[test]
fn files_exist_with_mode_and_owner_before_the_process_starts() {
    let t = TestRuntime::new();
    let mut launch =
        t.launch("stat -c '%a %u %g' /etc/app/config.toml; cat /etc/app/config.toml; id -u");
    launch.process.user = User {
        uid: 1000,
        gid: 1000,
    };
    launch.files.push(FileWrite {
        guest_path: "/etc/app/config.toml".into(),
        content: b"port = 8080\n".to_vec(),
        mode: 0o640,
        owner: User {
            uid: 1000,
            gid: 1000,
        },
    });
    let mut c = t.start(&launch);
    let (out, err, status) = c.finish();
    assert_eq!(exited(status), Some(0), "stderr: {err}");
    assert_eq!(out, "640 1000 1000\nport = 8080\n1000\n");
}

#[test]
fn upper_dir_is_blank_at_every_start() {
    let t = TestRuntime::new();
    let launch =
        t.launch("test -e /tmp/left-behind && echo FOUND; echo data > /tmp/left-behind; echo done");
    for _ in 0..2 {
        let mut c = t.start(&launch);
        let (out, err, status) = c.finish();
        assert_eq!(exited(status), Some(0), "stderr: {err}");
        assert_eq!(out, "done\n", "a file from the previous start survived");
        c.cleanup();
    }
    // The image layer itself was never written to.
    assert!(!t.layer.join("tmp/left-behind").exists());
}

#[test]
fn container_has_its_own_pid_namespace() {
    let t = TestRuntime::new();
    let mut c =
        t.start(&t.launch("echo self=$$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '"));
    let (out, err, status) = c.finish();
    assert_eq!(exited(status), Some(0), "stderr: {err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("self=2"), "{out}");
    // pid 1 (the container init), 2 (sh) and its pipeline: no host process.
    let pids: Vec<u32> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.starts_with(&[1, 2]), "{pids:?}");
    assert!(
        pids.len() <= 6 && pids.iter().all(|p| *p < 10),
        "host pids visible: {pids:?}"
    );
}

#[test]
fn two_containers_share_localhost_but_not_processes_or_files() {
    let t = TestRuntime::new();
    // A port free right now on loopback (the containers share this namespace).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The server sends; the client keeps its stdin open a moment so it reads
    // the reply before quitting (busybox nc quits at stdin's end).
    let server = t.launch(&format!(
        "echo secret > /tmp/server-secret; echo listening; \
         echo hello-over-localhost | nc -l -p {port} || echo NC-FAILED; echo server-done"
    ));
    let mut s = t.start(&server);
    s.read_until("listening");
    let client = t.launch(&format!(
        "test -e /tmp/server-secret && echo SEES-FILE; \
         ps -o pid,args | grep -v grep | grep -q 'nc -l' && echo SEES-PROCESS; \
         i=0; while [ $i -lt 50 ]; do \
         out=$(sleep 0.3 | nc 127.0.0.1 {port}) && [ -n \"$out\" ] && {{ echo got:$out; exit 0; }}; \
         i=$((i+1)); sleep 0.05; done; exit 1"
    ));
    let mut c = t.start(&client);
    let (cout, cerr, cstatus) = c.finish();
    assert_eq!(
        exited(cstatus),
        Some(0),
        "client got nothing: {cout} {cerr}"
    );
    assert!(cout.ends_with("got:hello-over-localhost\n"), "{cout}");
    assert!(!cout.contains("SEES-FILE"), "{cout}");
    assert!(!cout.contains("SEES-PROCESS"), "{cout}");
    let (sout, serr, sstatus) = s.finish();
    assert_eq!(exited(sstatus), Some(0), "stderr: {serr}");
    assert_eq!(sout, "server-done\n");
}

#[test]
fn stop_signal_reaches_the_process() {
    let t = TestRuntime::new();
    let mut c = t.start(&t.launch(
        "trap 'echo got-term; exit 42' TERM; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
    ));
    c.read_until("ready");
    c.signal(Signal::SIGTERM);
    let (out, _, status) = c.finish();
    assert_eq!(exited(status), Some(42));
    assert_eq!(out, "got-term\n");
}

#[test]
fn exit_codes_and_signals_are_reported() {
    let t = TestRuntime::new();
    let mut c = t.start(&t.launch("exit 7"));
    assert_eq!(exited(c.finish().2), Some(7));
    let mut c = t.start(&t.launch("kill -USR1 $$; sleep 5"));
    assert!(matches!(
        c.finish().2,
        WaitStatus::Signaled(_, Signal::SIGUSR1, _)
    ));
    let mut c = t.start(&t.launch("kill -KILL $$"));
    assert!(matches!(
        c.finish().2,
        WaitStatus::Signaled(_, Signal::SIGKILL, _)
    ));
}

#[test]
fn capabilities_are_dropped_and_seccomp_is_on() {
    let t = TestRuntime::new();
    let mut c = t.start(&t.launch(
        "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; \
         unshare -m true 2>/dev/null && echo UNSHARE-ALLOWED; \
         mkdir -p /mnt/x; mount -t tmpfs none /mnt/x 2>/dev/null && echo MOUNT-ALLOWED; \
         echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo PROC-SYS-WRITABLE; \
         cat /proc/kcore | head -c 1 | wc -c; echo end",
    ));
    let (out, err, status) = c.finish();
    assert_eq!(exited(status), Some(0), "stderr: {err}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{name} missing in {out}"))
    };
    for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:"] {
        assert_eq!(field(set), "00000000a80425fb", "{set}");
    }
    assert_eq!(field("CapAmb:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
    assert!(!out.contains("UNSHARE-ALLOWED"), "{out}");
    assert!(!out.contains("MOUNT-ALLOWED"), "{out}");
    assert!(!out.contains("PROC-SYS-WRITABLE"), "{out}");
    assert!(out.contains("\n0\nend"), "/proc/kcore is not masked: {out}");
}

#[test]
fn non_root_user_has_no_effective_capabilities() {
    let t = TestRuntime::new();
    let mut launch = t.launch("grep -E '^(CapEff|CapBnd):' /proc/self/status; id -u; id -g");
    launch.process.user = User {
        uid: 1000,
        gid: 1000,
    };
    let mut c = t.start(&launch);
    let (out, err, status) = c.finish();
    assert_eq!(exited(status), Some(0), "stderr: {err}");
    assert_eq!(
        out,
        "CapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n1000\n1000\n"
    );
}

#[test]
fn exec_runs_inside_the_container() {
    let t = TestRuntime::new();
    let mut c = t.start(&t.launch(
        "echo inside > /tmp/only-here; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
    ));
    c.read_until("ready");
    let spec = ExecSpec {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "cat /tmp/only-here; echo pid=$$; grep CapEff /proc/self/status; read line; echo got:$line; exit 3".into(),
        ],
        env: vec!["PATH=/bin".into()],
        cwd: "/tmp".into(),
        user: User::default(),
    };
    let ex = t.rt.exec(&c.handle, &spec).expect("exec");
    {
        use std::io::Write;
        let mut stdin = std::fs::File::from(ex.stdin);
        stdin.write_all(b"from-stdin\n").unwrap();
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(ex.stdout), &mut out).unwrap();
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(ex.pid), None).unwrap();
    assert_eq!(exited(status), Some(3));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "inside");
    let pid: u32 = lines[1].strip_prefix("pid=").unwrap().parse().unwrap();
    assert!(
        pid > 2 && pid < 100,
        "exec'd process is not in the container's PID namespace: {pid}"
    );
    assert_eq!(lines[2], "CapEff:\t00000000a80425fb");
    assert_eq!(lines[3], "got:from-stdin");

    let err =
        t.rt.exec(
            &c.handle,
            &ExecSpec {
                argv: vec!["no-such-program".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                user: User::default(),
            },
        )
        .expect_err("missing program");
    assert!(err.to_string().contains("no-such-program"), "{err}");
}

#[test]
fn bind_mounts_appear_inside() {
    let t = TestRuntime::new();
    let vol = t.dir.path().join("volume");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(vol.join("kept"), "persisted").unwrap();
    let mut launch = t.launch(
        "cat /data/kept; echo new > /data/written; echo x > /ro/y 2>/dev/null || echo READONLY",
    );
    launch.mounts.push(BindMount {
        source: vol.clone(),
        target: "/data".into(),
        readonly: false,
    });
    launch.mounts.push(BindMount {
        source: vol.clone(),
        target: "/ro".into(),
        readonly: true,
    });
    let mut c = t.start(&launch);
    let (out, err, status) = c.finish();
    assert_eq!(exited(status), Some(0), "stderr: {err}");
    assert_eq!(out, "persistedREADONLY\n");
    assert_eq!(
        std::fs::read_to_string(vol.join("written")).unwrap(),
        "new\n"
    );
    assert!(!vol.join("y").exists());
}

#[test]
fn oom_kill_is_detected() {
    let t = TestRuntime::new();
    let memory_parent =
        t.rt.cgroups()
            .parents()
            .iter()
            .find(|p| p.join("memory.limit_in_bytes").exists() || p.join("memory.max").exists())
            .expect("a memory cgroup")
            .clone();
    let limit = (32u64 << 20).to_string();
    if memory_parent.join("memory.limit_in_bytes").exists() {
        std::fs::write(memory_parent.join("memory.limit_in_bytes"), &limit).unwrap();
    } else {
        std::fs::write(memory_parent.join("memory.max"), &limit).unwrap();
    }
    // dd's 128 MiB buffer is filled from /dev/zero: far over the 32 MiB limit.
    let mut c = t.start(&t.launch("exec dd if=/dev/zero of=/dev/null bs=128M count=1"));
    let (_, _, status) = c.finish();
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "{status:?}"
    );
    assert!(t.rt.oom_kills(&c.handle) >= 1);
}

#[test]
fn a_failed_start_says_why_and_leaves_nothing() {
    let t = TestRuntime::new();
    let mut launch = t.launch("");
    launch.process.argv = vec!["does-not-exist".into()];
    let err = t.rt.start(&launch).expect_err("start must fail");
    let text = err.to_string();
    assert!(
        text.contains("does-not-exist") && text.contains("PATH"),
        "{text}"
    );
    assert!(mounts_under(&launch.rootfs.state_dir).is_empty());
    assert!(!launch.rootfs.state_dir.join("upper").exists());
    for parent in t.rt.cgroups().parents() {
        let left: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("ctr-"))
            .collect();
        assert!(left.is_empty(), "cgroups left in {}", parent.display());
    }
}

#[test]
fn cleanup_leaves_no_mounts_cgroups_or_processes() {
    // Container cgroups under this test process's own cgroups (the default).
    let t = TestRuntime::with_parent(None);
    let launch = t.launch("sleep 30 & sleep 30 & echo ready; wait");
    let mut c = t.start(&launch);
    c.read_until("ready");
    let init = c.handle.ns_pid;
    assert!(alive(init));
    assert!(!c.handle.cgroups.is_empty());
    let cgroups = c.handle.cgroups.clone();
    let procs = std::fs::read_to_string(cgroups[0].join("cgroup.procs")).unwrap();
    let pids: Vec<i32> = procs.lines().map(|l| l.parse().unwrap()).collect();
    assert!(pids.len() >= 4, "init, sh and two sleeps: {pids:?}");
    c.signal(Signal::SIGKILL);
    c.wait();
    c.cleanup();
    for dir in &cgroups {
        assert!(!dir.exists(), "{} left", dir.display());
    }
    assert!(eventually(Duration::from_secs(2), || pids
        .iter()
        .all(|p| !alive(*p))));
    assert!(mounts_under(&launch.rootfs.state_dir).is_empty());
    assert!(!launch.rootfs.state_dir.join("upper").exists());
    assert!(!launch.rootfs.state_dir.join("rootfs").exists());
    // Idempotent.
    c.cleanup();
    t.rt.cleanup(&c.handle).unwrap();
}

#[test]
fn the_container_init_reaps_orphans_and_forwards_signals() {
    let t = TestRuntime::new();
    // The subshell exits at once, orphaning its `sleep`, which the container's
    // init (PID 1) must reap when it exits.
    let mut c = t.start(&t.launch(
        "trap 'echo forwarded-term; exit 9' TERM; (sleep 0.1 &); sleep 0.5; \
         ps -o stat,args | grep -c '^Z'; echo ready; \
         i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
    ));
    let lines = c.read_until("ready");
    assert_eq!(lines, ["0", "ready"], "zombies left in the container");
    // A signal sent to the container's init reaches the program.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.handle.ns_pid), Signal::SIGTERM).unwrap();
    let (out, _, status) = c.finish();
    assert_eq!(exited(status), Some(9));
    assert_eq!(out, "forwarded-term\n");
    // The init follows its program out.
    assert!(eventually(Duration::from_secs(2), || !alive(
        c.handle.ns_pid
    )));
}

#[test]
fn exec_into_a_finished_container_fails_clearly() {
    let t = TestRuntime::new();
    let mut c = t.start(&t.launch("exit 0"));
    c.finish();
    c.cleanup();
    let err =
        t.rt.exec(
            &c.handle,
            &ExecSpec {
                argv: vec!["true".into()],
                env: Vec::new(),
                cwd: "/".into(),
                user: User::default(),
            },
        )
        .expect_err("the container is gone");
    assert!(err.to_string().contains(&c.handle.name), "{err}");
    let err =
        t.rt.exec(
            &c.handle,
            &ExecSpec {
                argv: Vec::new(),
                env: Vec::new(),
                cwd: "/".into(),
                user: User::default(),
            },
        )
        .expect_err("no command");
    assert!(err.to_string().contains("empty command"), "{err}");
}

#[test]
fn containers_share_the_machines_network_uts_and_ipc_namespaces_only() {
    let t = TestRuntime::new();
    let mut c = t.start(
        &t.launch("for ns in net uts ipc mnt pid; do echo $ns $(readlink /proc/self/ns/$ns); done"),
    );
    let (out, err, status) = c.finish();
    assert_eq!(exited(status), Some(0), "stderr: {err}");
    for line in out.lines() {
        let (ns, inside) = line.split_once(' ').unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let shared = ours == std::path::Path::new(inside);
        match ns {
            "net" | "uts" | "ipc" => assert!(shared, "{ns} namespace not shared: {line}"),
            _ => assert!(!shared, "{ns} namespace shared with the machine: {line}"),
        }
    }
    assert_eq!(out.lines().count(), 5, "{out}");
}

#[test]
fn bind_mount_targets_through_image_symlinks_are_refused() {
    let t = TestRuntime::new();
    // An image whose /escape points at the host's /tmp.
    std::os::unix::fs::symlink("/tmp", t.layer.join("escape")).unwrap();
    let vol = t.dir.path().join("volume");
    std::fs::create_dir(&vol).unwrap();
    let mut launch = t.launch("true");
    launch.mounts.push(BindMount {
        source: vol,
        target: "/escape/data".into(),
        readonly: false,
    });
    let err = t.rt.start(&launch).expect_err("symlinked target");
    let text = err.to_string();
    assert!(
        text.contains("mounts[0].target") && text.contains("symlink"),
        "{text}"
    );
}

#[test]
fn later_layers_override_earlier_ones() {
    let t = TestRuntime::new();
    std::fs::write(t.layer.join("etc/release"), "base\n").unwrap();
    std::fs::write(t.layer.join("etc/only-base"), "kept\n").unwrap();
    let top = t.dir.path().join("top-layer");
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("etc/release"), "top\n").unwrap();
    let mut launch = t.launch("cat /etc/release /etc/only-base");
    launch.rootfs.layers.push(top);
    let mut c = t.start(&launch);
    let (out, err, status) = c.finish();
    assert_eq!(exited(status), Some(0), "stderr: {err}");
    assert_eq!(out, "top\nkept\n");
}
