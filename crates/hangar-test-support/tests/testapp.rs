//! The testapp subcommands, run directly on the host.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hangar_test_support::testapp_binary;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(testapp_binary())
        .args(args)
        .output()
        .expect("run testapp")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Kills the child (by its own pid) when the test ends, even on panic.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Guard, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(testapp_binary())
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn testapp");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    (Guard(child), out)
}

fn first_line(out: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).expect("read line");
    line.trim_end().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn binary_is_static() {
    let output = Command::new("file").arg(testapp_binary()).output().unwrap();
    let text = stdout(&output);
    assert!(
        text.contains("statically linked") || text.contains("static-pie linked"),
        "{text}"
    );
}

#[test]
fn exit_code_id_env_files_and_ps() {
    assert_eq!(run(&["exit", "7"]).status.code(), Some(7));
    assert_eq!(run(&["exit", "0"]).status.code(), Some(0));
    assert_eq!(stdout(&run(&["id"])).trim(), "uid=0 gid=0");

    let env = Command::new(testapp_binary())
        .arg("env")
        .env_clear()
        .env("B_VAR", "two")
        .env("A_VAR", "one")
        .output()
        .unwrap();
    assert_eq!(stdout(&env), "A_VAR=one\nB_VAR=two\n");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.txt");
    let file = file.to_str().unwrap();
    assert!(run(&["write", file, "hello file"]).status.success());
    assert_eq!(stdout(&run(&["cat", file])), "hello file");
    assert_eq!(run(&["cat", "/nonexistent/x"]).status.code(), Some(1));

    let ps = stdout(&run(&["ps"]));
    let me = format!("{} ", std::process::id());
    assert!(
        ps.lines().any(|l| l.starts_with(&me)),
        "own pid missing from ps: {ps}"
    );
}

#[test]
fn usage_errors_exit_2_and_help_lists_commands() {
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(run(&["exit"]).status.code(), Some(2));
    let help = run(&["--help"]);
    assert!(help.status.success());
    for command in [
        "serve-http",
        "serve-tcp",
        "trap-signal",
        "ignore-signals",
        "alloc",
    ] {
        assert!(stdout(&help).contains(command), "help lacks {command}");
    }
}

#[test]
fn sleep_sleeps() {
    let started = Instant::now();
    assert!(run(&["sleep", "0.3"]).status.success());
    assert!(started.elapsed() >= Duration::from_millis(300));
}

fn http(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_http_routes_keep_alive_and_exit() {
    let port = free_port();
    let (mut guard, mut out) = spawn(&["serve-http", &port.to_string(), "--body", "hi there"]);
    assert_eq!(first_line(&mut out), format!("listening on {port}"));

    // Two pipelined keep-alive requests, then one that closes.
    let response = http(
        port,
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /?env=HANGAR_T&env=UNSET_T HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let statuses: Vec<&str> = response
        .lines()
        .filter(|l| l.starts_with("HTTP/1.1"))
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 404 Not Found"
        ]
    );
    assert!(response.contains("hi there\nhostname="), "{response}");
    assert!(response.contains("UNSET_T=<unset>\n"), "{response}");

    let response = http(port, "GET /exit?code=4 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let status = wait_exit(&mut guard.0, Duration::from_secs(5)).expect("exited");
    assert_eq!(status.code(), Some(4));
}

#[test]
fn serve_http_shows_env_values() {
    let port = free_port();
    let mut child = Command::new(testapp_binary())
        .args(["serve-http", &port.to_string()])
        .env("HANGAR_T", "a value")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let _guard = Guard(child);
    first_line(&mut out);
    let response = http(port, "GET /?env=HANGAR_T HTTP/1.0\r\n\r\n");
    assert!(response.contains("hello from testapp\n"), "{response}");
    assert!(response.contains("HANGAR_T=a value\n"), "{response}");
    assert!(
        response.contains("Connection: close"),
        "HTTP/1.0 closes: {response}"
    );
}

#[test]
fn serve_http_turns_unhealthy_and_healthy() {
    let port = free_port();
    let (_guard, mut out) = spawn(&["serve-http", &port.to_string(), "--unhealthy-after", "0.5"]);
    first_line(&mut out);
    let health = || http(port, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(health().starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(600));
    assert!(health().starts_with("HTTP/1.1 503"));

    let port = free_port();
    let (_guard, mut out) = spawn(&["serve-http", &port.to_string(), "--healthy-after", "0.5"]);
    first_line(&mut out);
    let health = || http(port, "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(health().starts_with("HTTP/1.1 503"));
    std::thread::sleep(Duration::from_millis(600));
    assert!(health().starts_with("HTTP/1.1 200"));
}

#[test]
fn serve_tcp_echoes() {
    let port = free_port();
    let (_guard, mut out) = spawn(&["serve-tcp", &port.to_string()]);
    first_line(&mut out);
    let mut stream = TcpStream::connect(("::1", port))
        .or_else(|_| TcpStream::connect(("127.0.0.1", port)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"ping\n").unwrap();
    let mut buf = [0u8; 5];
    stream.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping\n");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn trap_signal_prints_the_signal_and_exits_0() {
    let (mut guard, mut out) = spawn(&["trap-signal"]);
    assert_eq!(first_line(&mut out), "waiting for a signal");
    signal(&guard.0, "USR1");
    assert_eq!(first_line(&mut out), "SIGUSR1");
    let status = wait_exit(&mut guard.0, Duration::from_secs(5)).expect("exited");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn ignore_signals_survives_term_and_int() {
    let (mut guard, mut out) = spawn(&["ignore-signals"]);
    first_line(&mut out);
    signal(&guard.0, "TERM");
    signal(&guard.0, "INT");
    assert!(
        wait_exit(&mut guard.0, Duration::from_millis(300)).is_none(),
        "died from a signal it ignores"
    );
}

#[test]
fn alloc_touches_its_memory() {
    let (guard, mut out) = spawn(&["alloc", "64"]);
    assert_eq!(first_line(&mut out), "allocated 64 MiB");
    let status = std::fs::read_to_string(format!("/proc/{}/status", guard.0.id())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib >= 64 * 1024, "VmRSS {rss_kib} KiB < 64 MiB");
}
