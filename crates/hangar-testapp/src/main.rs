//! `testapp`: a small program that Hangar's tests run inside containers.
//!
//! It depends on nothing but std and is built as a static binary
//! (`rustc -O -C target-feature=+crt-static src/main.rs`), so it runs in a
//! root filesystem that has no libc. Subcommands:
//!
//! - `serve-http PORT [--unhealthy-after SECS] [--healthy-after SECS] [--body TEXT]`:
//!   an HTTP/1.1 server (keep-alive, pipelining, HEAD) on all addresses.
//!   `GET /health` answers 200 `ok`, or 503 `unhealthy` before `--healthy-after`
//!   or from `--unhealthy-after` seconds on (counted from the start);
//!   `GET /` answers the body (default `hello from testapp`), a line
//!   `hostname=NAME`, and one line `NAME=VALUE` (or `NAME=<unset>`) per
//!   `?env=NAME` in the query; `GET /count` adds one to a counter kept in
//!   memory and answers `count=N` (N counts from 1 since the start);
//!   `GET /exit?code=N` answers, then exits with N;
//!   `GET /echo` with `Upgrade: echo` (and `Connection: upgrade`) switches
//!   protocols (101) and echoes every byte back, as a WebSocket server would
//!   after its handshake. Any other path answers 404.
//! - `serve-tcp PORT`: a TCP echo server on all addresses.
//! - `serve-udp PORT`: a UDP server on all addresses that answers each
//!   datagram with `HOSTNAME: ` followed by the datagram (a machine's
//!   hostname is its id, so tests can tell machines apart).
//! - `exit CODE`: exits with CODE.
//! - `sleep SECS`: sleeps (fractions allowed), then exits 0.
//! - `ignore-signals`: ignores SIGTERM, SIGINT, SIGHUP and SIGQUIT and sleeps forever.
//! - `trap-signal`: prints `waiting for a signal`, then on SIGHUP, SIGINT, SIGQUIT,
//!   SIGUSR1, SIGUSR2, SIGALRM or SIGTERM prints its name (e.g. `SIGTERM`) and exits 0.
//! - `cat FILE`: prints FILE.
//! - `write FILE TEXT`: writes TEXT to FILE (created or truncated).
//! - `id`: prints `uid=U gid=G`.
//! - `ps`: prints one `PID COMM` line per process visible in /proc.
//! - `alloc MB`: allocates and touches MB MiB, prints `allocated MB MiB`, sleeps forever.
//! - `env`: prints the environment, one `NAME=VALUE` per line, sorted.
//!
//! The servers print `listening on PORT` once they accept connections (or
//! datagrams).
//! Usage errors exit 2, runtime errors exit 1.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: testapp COMMAND [ARGS]

commands:
  serve-http PORT [--unhealthy-after SECS] [--healthy-after SECS] [--body TEXT]
                     HTTP/1.1 server: /health (200 or 503), / (body, hostname,
                     ?env=NAME values), /exit?code=N, /echo (Upgrade: echo,
                     then echoes bytes)
  serve-tcp PORT     TCP echo server
  serve-udp PORT     UDP server: answers each datagram with HOSTNAME: DATAGRAM
  exit CODE          exit with CODE
  sleep SECS         sleep, then exit 0
  ignore-signals     ignore SIGTERM/SIGINT/SIGHUP/SIGQUIT and sleep forever
  trap-signal        print the name of the first signal received, exit 0
  cat FILE           print FILE
  write FILE TEXT    write TEXT to FILE
  id                 print uid=U gid=G
  ps                 print PID COMM for each process in /proc
  alloc MB           allocate and touch MB MiB, then sleep forever
  env                print the environment, sorted
  --help             print this help
";

mod sys {
    //! The few libc calls std does not wrap. std already links libc, so these
    //! declarations add no dependency.

    unsafe extern "C" {
        pub safe fn getuid() -> u32;
        pub safe fn getgid() -> u32;
        /// `sighandler_t signal(int, sighandler_t)`.
        pub unsafe fn signal(signum: i32, handler: usize) -> usize;
        pub unsafe fn gethostname(name: *mut u8, len: usize) -> i32;
    }

    pub const SIG_IGN: usize = 1;
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match command.as_str() {
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        "serve-http" => serve_http(rest),
        "serve-tcp" => serve_tcp(rest),
        "serve-udp" => serve_udp(rest),
        "exit" => exit_with(rest),
        "sleep" => sleep(rest),
        "ignore-signals" => ignore_signals(),
        "trap-signal" => trap_signal(),
        "cat" => cat(rest),
        "write" => write_file(rest),
        "id" => {
            println!("uid={} gid={}", sys::getuid(), sys::getgid());
            Ok(())
        }
        "ps" => ps(),
        "alloc" => alloc(rest),
        "env" => {
            let vars: BTreeMap<String, String> = std::env::vars().collect();
            for (name, value) in vars {
                println!("{name}={value}");
            }
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("testapp: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("testapp: {message}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Runtime(String),
}

fn runtime(what: &str) -> impl FnOnce(io::Error) -> Failure + '_ {
    move |e| Failure::Runtime(format!("{what}: {e}"))
}

fn arg<'a>(args: &'a [String], index: usize, name: &str) -> Result<&'a str, Failure> {
    args.get(index)
        .map(String::as_str)
        .ok_or_else(|| Failure::Usage(format!("missing argument {name}")))
}

fn parse<T: std::str::FromStr>(value: &str, name: &str) -> Result<T, Failure> {
    value
        .parse()
        .map_err(|_| Failure::Usage(format!("{name}: not a valid value: {value:?}")))
}

fn exit_with(args: &[String]) -> Result<(), Failure> {
    let code: i32 = parse(arg(args, 0, "CODE")?, "CODE")?;
    std::process::exit(code)
}

fn sleep(args: &[String]) -> Result<(), Failure> {
    let secs: f64 = parse(arg(args, 0, "SECS")?, "SECS")?;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(Failure::Usage(format!("SECS: must be >= 0, got {secs}")));
    }
    std::thread::sleep(Duration::from_secs_f64(secs));
    Ok(())
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn ignore_signals() -> Result<(), Failure> {
    for signum in [SIGHUP, SIGINT, SIGQUIT, SIGTERM] {
        // SAFETY: SIG_IGN is a valid disposition for these catchable signals.
        unsafe { sys::signal(signum, sys::SIG_IGN) };
    }
    println!("ignoring SIGTERM, SIGINT, SIGHUP and SIGQUIT");
    let _ = io::stdout().flush();
    sleep_forever()
}

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGQUIT: i32 = 3;
const SIGUSR1: i32 = 10;
const SIGUSR2: i32 = 12;
const SIGALRM: i32 = 14;
const SIGTERM: i32 = 15;

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signum: i32) {
    // Only an atomic store: async-signal-safe.
    RECEIVED.store(signum, Ordering::SeqCst);
}

fn signal_name(signum: i32) -> String {
    let name = match signum {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGUSR1 => "SIGUSR1",
        SIGUSR2 => "SIGUSR2",
        SIGALRM => "SIGALRM",
        SIGTERM => "SIGTERM",
        other => return format!("signal {other}"),
    };
    name.to_string()
}

fn trap_signal() -> Result<(), Failure> {
    let handler = on_signal as extern "C" fn(i32) as usize;
    for signum in [SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM] {
        // SAFETY: `on_signal` is an `extern "C" fn(i32)` that only stores to an
        // atomic, which is async-signal-safe.
        unsafe { sys::signal(signum, handler) };
    }
    println!("waiting for a signal");
    let _ = io::stdout().flush();
    loop {
        let signum = RECEIVED.load(Ordering::SeqCst);
        if signum != 0 {
            println!("{}", signal_name(signum));
            let _ = io::stdout().flush();
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn cat(args: &[String]) -> Result<(), Failure> {
    let path = arg(args, 0, "FILE")?;
    let data = std::fs::read(path).map_err(runtime(path))?;
    io::stdout().write_all(&data).map_err(runtime("stdout"))
}

fn write_file(args: &[String]) -> Result<(), Failure> {
    let path = arg(args, 0, "FILE")?;
    let text = arg(args, 1, "TEXT")?;
    std::fs::write(path, text).map_err(runtime(path))
}

fn ps() -> Result<(), Failure> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map_err(runtime("/proc"))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        println!("{pid} {}", comm.trim_end());
    }
    Ok(())
}

fn alloc(args: &[String]) -> Result<(), Failure> {
    let mib: usize = parse(arg(args, 0, "MB")?, "MB")?;
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(mib);
    for _ in 0..mib {
        // A non-zero fill writes every page, so the memory is really charged.
        chunks.push(vec![0xa5; 1 << 20]);
    }
    std::hint::black_box(&chunks);
    println!("allocated {mib} MiB");
    let _ = io::stdout().flush();
    sleep_forever()
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let rc = unsafe { sys::gethostname(buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return String::from("<unknown>");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Binds PORT on all IPv6 and IPv4 addresses (dual stack), or on all IPv4
/// addresses where IPv6 is unavailable.
fn listen(port: u16) -> Result<TcpListener, Failure> {
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let listener = match TcpListener::bind(v6) {
        Ok(listener) => listener,
        Err(_) => TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .map_err(|e| Failure::Runtime(format!("bind port {port}: {e}")))?,
    };
    println!("listening on {port}");
    let _ = io::stdout().flush();
    Ok(listener)
}

fn serve_tcp(args: &[String]) -> Result<(), Failure> {
    let port: u16 = parse(arg(args, 0, "PORT")?, "PORT")?;
    let listener = listen(port)?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        std::thread::spawn(move || {
            let Ok(mut reader) = stream.try_clone() else {
                return;
            };
            let _ = io::copy(&mut reader, &mut stream);
        });
    }
    Ok(())
}

fn serve_udp(args: &[String]) -> Result<(), Failure> {
    let port: u16 = parse(arg(args, 0, "PORT")?, "PORT")?;
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let socket = match UdpSocket::bind(v6) {
        Ok(socket) => socket,
        Err(_) => UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .map_err(|e| Failure::Runtime(format!("bind UDP port {port}: {e}")))?,
    };
    println!("listening on {port}");
    let _ = io::stdout().flush();
    let mut answer = format!("{}: ", hostname()).into_bytes();
    let prefix = answer.len();
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, peer) = socket.recv_from(&mut buf).map_err(runtime("UDP receive"))?;
        answer.truncate(prefix);
        answer.extend_from_slice(&buf[..n]);
        // A lost answer is the client's to retry, as with any UDP server.
        let _ = socket.send_to(&answer, peer);
    }
}

struct HttpOptions {
    started: Instant,
    healthy_after: Option<Duration>,
    unhealthy_after: Option<Duration>,
    body: String,
}

impl HttpOptions {
    fn healthy(&self) -> bool {
        let elapsed = self.started.elapsed();
        let ready = self.healthy_after.is_none_or(|after| elapsed >= after);
        let broken = self.unhealthy_after.is_some_and(|after| elapsed >= after);
        ready && !broken
    }
}

fn parse_secs(value: Option<&String>, name: &str) -> Result<Duration, Failure> {
    let value = value.ok_or_else(|| Failure::Usage(format!("{name}: missing SECS")))?;
    let secs: f64 = parse(value, name)?;
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(Failure::Usage(format!("{name}: must be >= 0, got {secs}")));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn serve_http(args: &[String]) -> Result<(), Failure> {
    let port: u16 = parse(arg(args, 0, "PORT")?, "PORT")?;
    let mut options = HttpOptions {
        started: Instant::now(),
        healthy_after: None,
        unhealthy_after: None,
        body: String::from("hello from testapp"),
    };
    let mut flags = args[1..].iter();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "--unhealthy-after" => {
                options.unhealthy_after = Some(parse_secs(flags.next(), flag)?);
            }
            "--healthy-after" => options.healthy_after = Some(parse_secs(flags.next(), flag)?),
            "--body" => {
                options.body = flags
                    .next()
                    .ok_or_else(|| Failure::Usage("--body: missing TEXT".into()))?
                    .clone();
            }
            other => {
                return Err(Failure::Usage(format!(
                    "serve-http: unknown flag {other:?}"
                )));
            }
        }
    }
    let options: &'static HttpOptions = Box::leak(Box::new(options));
    let listener = listen(port)?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            let _ = serve_connection(stream, options);
        });
    }
    Ok(())
}

/// Longest request head (request line + headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

struct Request {
    method: String,
    target: String,
    keep_alive: bool,
    /// The `Upgrade` header, when `Connection` names `upgrade`.
    upgrade: Option<String>,
}

/// Serves requests on one connection until the client closes it, asks for
/// `Connection: close`, or sends something malformed.
fn serve_connection(stream: TcpStream, options: &HttpOptions) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let request = match read_request(&mut reader)? {
            Some(Ok(request)) => request,
            Some(Err(status)) => {
                respond(&mut writer, status, "bad request\n", false, false)?;
                return Ok(());
            }
            None => return Ok(()),
        };
        let (path, query) = request
            .target
            .split_once('?')
            .unwrap_or((request.target.as_str(), ""));
        let head = request.method == "HEAD";
        if request.method != "GET" && !head && request.method != "POST" {
            respond(
                &mut writer,
                405,
                "method not allowed\n",
                head,
                request.keep_alive,
            )?;
        } else if path == "/health" {
            if options.healthy() {
                respond(&mut writer, 200, "ok\n", head, request.keep_alive)?;
            } else {
                respond(&mut writer, 503, "unhealthy\n", head, request.keep_alive)?;
            }
        } else if path == "/" {
            let mut body = format!("{}\nhostname={}\n", options.body, hostname());
            for (name, var) in query_pairs(query) {
                if name == "env" {
                    let value = std::env::var(&var).unwrap_or_else(|_| "<unset>".into());
                    body.push_str(&format!("{var}={value}\n"));
                }
            }
            respond(&mut writer, 200, &body, head, request.keep_alive)?;
        } else if path == "/count" {
            static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            respond(
                &mut writer,
                200,
                &format!("count={n}\n"),
                head,
                request.keep_alive,
            )?;
        } else if path == "/echo" {
            if request.upgrade.as_deref() != Some("echo") {
                respond(
                    &mut writer,
                    426,
                    "/echo: send Upgrade: echo and Connection: upgrade\n",
                    head,
                    request.keep_alive,
                )?;
                continue;
            }
            writer.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
            )?;
            // Bytes the client sent right after the head are in the reader.
            io::copy(&mut reader, &mut writer)?;
            return Ok(());
        } else if path == "/exit" {
            let code = query_pairs(query)
                .find(|(name, _)| name == "code")
                .and_then(|(_, value)| value.parse::<i32>().ok());
            let Some(code) = code else {
                respond(
                    &mut writer,
                    400,
                    "exit: need ?code=N\n",
                    head,
                    request.keep_alive,
                )?;
                continue;
            };
            respond(&mut writer, 200, &format!("exiting {code}\n"), head, false)?;
            let _ = io::stdout().flush();
            std::process::exit(code);
        } else {
            respond(&mut writer, 404, "not found\n", head, request.keep_alive)?;
        }
        if !request.keep_alive {
            return Ok(());
        }
    }
}

fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one request head and discards its body. `None` at a clean end of
/// the connection, `Some(Err(status))` for a malformed request.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Result<Request, u16>>> {
    let mut line = String::new();
    let mut head_len = 0;
    // Tolerate empty lines between pipelined requests (RFC 9112 2.2).
    loop {
        line.clear();
        let n = reader.take(MAX_HEAD as u64).read_line(&mut line)?;
        if n == 0 {
            return Ok(None);
        }
        head_len += n;
        if head_len >= MAX_HEAD {
            return Ok(Some(Err(431)));
        }
        if !line.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Ok(Some(Err(400)));
    };
    let (method, target, version) = (method.to_string(), target.to_string(), version.to_string());
    let mut keep_alive = version == "HTTP/1.1";
    let mut content_length: u64 = 0;
    let mut chunked = false;
    let mut upgrade = None;
    let mut connection_upgrade = false;
    loop {
        line.clear();
        let n = reader.take(MAX_HEAD as u64).read_line(&mut line)?;
        if n == 0 {
            return Ok(None);
        }
        head_len += n;
        if head_len >= MAX_HEAD {
            return Ok(Some(Err(431)));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Ok(Some(Err(400)));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse() {
                Ok(length) => content_length = length,
                Err(_) => return Ok(Some(Err(400))),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.contains("close") {
                keep_alive = false;
            } else if value.contains("keep-alive") {
                keep_alive = true;
            }
            connection_upgrade |= value.split(',').any(|t| t.trim() == "upgrade");
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = Some(value.to_string());
        }
    }
    if chunked {
        if !discard_chunked(reader)? {
            return Ok(Some(Err(400)));
        }
    } else {
        io::copy(&mut reader.take(content_length), &mut io::sink())?;
    }
    Ok(Some(Ok(Request {
        method,
        target,
        keep_alive,
        upgrade: upgrade.filter(|_| connection_upgrade),
    })))
}

/// Discards a chunked body and its trailers; false when it is malformed.
fn discard_chunked(reader: &mut impl BufRead) -> io::Result<bool> {
    let mut line = String::new();
    loop {
        line.clear();
        reader.take(1024).read_line(&mut line)?;
        let size_text = line.trim_end().split(';').next().unwrap_or("").trim();
        let Ok(size) = u64::from_str_radix(size_text, 16) else {
            return Ok(false);
        };
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if reader.take(MAX_HEAD as u64).read_line(&mut line)? == 0 {
                    return Ok(true);
                }
                if line.trim_end().is_empty() {
                    return Ok(true);
                }
            }
        }
        io::copy(&mut reader.take(size), &mut io::sink())?;
        line.clear();
        reader.take(2).read_line(&mut line)?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn respond(
    writer: &mut impl Write,
    status: u16,
    body: &str,
    head: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        reason(status),
        body.len()
    );
    if !head {
        response.push_str(body);
    }
    writer.write_all(response.as_bytes())?;
    writer.flush()
}
