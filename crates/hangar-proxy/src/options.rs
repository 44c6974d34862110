//! The proxy's options, shared by `hangar proxy` and `hangar serve` (which
//! flattens [`ProxyOptions`] into its own flags).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Parses `250ms`, `2s`, `1m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 250ms, 2s, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// How and where the proxy listens, and its limits.
#[derive(Debug, Clone, clap::Args)]
pub struct ProxyOptions {
    /// Address the service ports (`services[].ports[]`) are bound on.
    #[arg(long = "proxy-bind", env = "HANGAR_PROXY_BIND", default_value_t = IpAddr::V6(Ipv6Addr::UNSPECIFIED))]
    pub bind: IpAddr,
    /// Apps are reached as `<app>.<domain>` in the Host header (or TLS SNI)
    /// when several apps share a port.
    #[arg(
        long = "proxy-domain",
        env = "HANGAR_PROXY_DOMAIN",
        default_value = "localhost"
    )]
    pub domain: String,
    /// How often idle machines are considered for autostop.
    #[arg(long = "autostop-period", env = "HANGAR_AUTOSTOP_PERIOD", default_value = "60s", value_parser = parse_duration)]
    pub autostop_period: Duration,
    /// Prometheus metrics (`GET /metrics`) and the busy endpoint
    /// (`POST /busy`) are served here; none when not given.
    #[arg(long = "proxy-metrics", env = "HANGAR_PROXY_METRICS")]
    pub metrics: Option<SocketAddr>,
    /// How often the machine list is re-read (it is also re-read at once on
    /// an unknown app or a failed connect).
    #[arg(long = "proxy-refresh", default_value = "500ms", value_parser = parse_duration)]
    pub refresh: Duration,
    /// Certificate chain (PEM) for `tls` handlers; a self-signed one for the
    /// proxy domain is made when not given.
    #[arg(long = "proxy-tls-cert", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--proxy-tls-cert`.
    #[arg(long = "proxy-tls-key", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Certificates per hostname for `tls` handlers: pairs
    /// `<hostname>.crt` + `<hostname>.key` (PEM), and
    /// `_wildcard.<domain>.crt/.key` for `*.<domain>`, picked by SNI before
    /// the default certificate; re-read when the files change.
    #[arg(long = "proxy-tls-dir", env = "HANGAR_PROXY_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Largest request head (request line and headers) accepted; larger ones
    /// get 431.
    #[arg(long = "proxy-max-header-bytes", default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,
    /// A client must send a whole request head within this time.
    #[arg(long = "proxy-header-timeout", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// A client connection with no traffic for this long is closed.
    #[arg(long = "proxy-idle-timeout", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// A UDP flow (one client address on one UDP service port) with no
    /// datagram either way for this long ends; the client's next datagram
    /// may go to another machine.
    #[arg(long = "proxy-udp-idle-timeout", default_value = "30s", value_parser = parse_duration)]
    pub udp_idle_timeout: Duration,
    /// How long a request waits for a machine under its hard limit before 503.
    #[arg(long = "proxy-queue-timeout", default_value = "5s", value_parser = parse_duration)]
    pub queue_timeout: Duration,
    /// How long a request is held while its machine starts before 503.
    #[arg(long = "proxy-start-timeout", default_value = "30s", value_parser = parse_duration)]
    pub start_timeout: Duration,
    /// Threads serving client connections (0: one per CPU).
    #[arg(
        long = "proxy-threads",
        env = "HANGAR_PROXY_THREADS",
        default_value_t = 0
    )]
    pub threads: usize,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            bind: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            domain: "localhost".into(),
            autostop_period: Duration::from_secs(60),
            metrics: None,
            refresh: Duration::from_millis(500),
            tls_cert: None,
            tls_key: None,
            tls_dir: None,
            max_header_bytes: 32 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            udp_idle_timeout: Duration::from_secs(30),
            queue_timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(30),
            threads: 0,
        }
    }
}
