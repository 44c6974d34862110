//! The routing table, rebuilt from each machine list: public port → handlers
//! and the apps served there → each app's service (limits, autostart and
//! autostop settings) and machines. TCP and UDP ports are separate tables:
//! 53/tcp and 53/udp may belong to different apps.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hangar_types::config::{AutostopMode, TlsOptions};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::fleet::{MachineInfo, MachineState};
use crate::live::Live;

/// What a public port does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Handlers {
    pub http: bool,
    pub tls: bool,
    pub proxy_proto: Option<ProxyProtoVersion>,
    pub force_https: bool,
    /// Speak HTTP/2 cleartext (h2c) to the machines.
    pub h2_backend: bool,
    /// `http_options.idle_timeout`: how long a client connection may sit
    /// idle; the proxy's `--proxy-idle-timeout` when not given.
    pub idle_timeout: Option<Duration>,
    /// `http_options.headers_read_timeout`: how long a client has to send a
    /// request's head; the proxy's `--proxy-header-timeout` when not given.
    pub headers_read_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtoVersion {
    V1,
    V2,
}

/// What a machine's load counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyType {
    Connections,
    Requests,
}

/// One app's service on one public port.
#[derive(Debug)]
pub struct Group {
    pub app: String,
    pub internal_port: u16,
    pub soft_limit: u32,
    pub hard_limit: u32,
    /// What a unit of load is: a client connection (held while it is open,
    /// its requests going to the machine it was given) or a request. Without
    /// the `http` handler it is always a connection.
    pub concurrency: ConcurrencyType,
    pub autostart: bool,
    pub autostop: AutostopMode,
    pub min_running: u32,
    /// `http_options.response.headers` of the port.
    pub response_headers: ResponseHeaders,
    /// `http_options.compress`: compress responses the client accepts
    /// compressed (on unless `false`).
    pub compress: bool,
    /// `http_options.response.pristine`: pass the machine's responses on
    /// without the proxy's own changes: no compression (the proxy adds no
    /// headers of its own to responses; `response.headers`, asked for
    /// explicitly, still apply).
    pub pristine: bool,
    /// Machines with an address the host reaches.
    pub machines: Vec<Arc<Live>>,
}

/// `http_options.response.headers`: header name → a value, a list of values
/// (set on the machines' responses, replacing theirs), or `false` (removed
/// from them). Names and values that are not valid HTTP, other JSON values,
/// and headers that frame the message (`content-length`,
/// `transfer-encoding`, hop-by-hop ones) are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaders {
    set: Vec<(HeaderName, Vec<HeaderValue>)>,
    remove: Vec<HeaderName>,
}

impl ResponseHeaders {
    fn of(port: &hangar_types::config::MachinePort) -> ResponseHeaders {
        use serde_json::Value;
        let mut out = ResponseHeaders::default();
        let headers = port
            .http_options
            .as_ref()
            .and_then(|o| o.response.as_ref())
            .and_then(|r| r.headers.as_ref());
        for (name, value) in headers.into_iter().flatten() {
            let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) else {
                continue;
            };
            if frames_the_message(&name) {
                continue;
            }
            let one = |v: &Value| match v {
                Value::String(s) => HeaderValue::from_str(s).ok(),
                Value::Number(n) => HeaderValue::from_str(&n.to_string()).ok(),
                _ => None,
            };
            match value {
                Value::Bool(false) => out.remove.push(name),
                Value::Array(items) => {
                    let values: Vec<HeaderValue> = items.iter().filter_map(one).collect();
                    if !values.is_empty() {
                        out.set.push((name, values));
                    }
                }
                v => {
                    if let Some(v) = one(v) {
                        out.set.push((name, vec![v]));
                    }
                }
            }
        }
        out
    }

    /// Applies the settings to a machine's response headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, values) in &self.set {
            headers.remove(name);
            for v in values {
                headers.append(name.clone(), v.clone());
            }
        }
    }
}

/// Headers the proxy and hyper own: changing them would break the framing
/// of the response or the connection.
fn frames_the_message(name: &HeaderName) -> bool {
    [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
    ]
    .contains(name)
        || name == "keep-alive"
        || name == "proxy-connection"
}

/// Everything served on one public port.
#[derive(Debug)]
pub struct PortRoute {
    pub handlers: Handlers,
    /// `tls_options` of the port (ALPN protocols, TLS versions,
    /// `default_self_signed`), from the first service seen for it.
    pub tls_options: Option<hangar_types::config::TlsOptions>,
    pub apps: HashMap<String, Arc<Group>>,
}

impl PortRoute {
    /// The app for a Host header or SNI name: `<app>.<domain>` (any port
    /// suffix ignored) or the bare app name; the only app when one is served.
    pub fn route(&self, host: Option<&str>, domain: &str) -> Option<&Arc<Group>> {
        if let Some(host) = host {
            let host = strip_port(host);
            let app = host
                .strip_suffix(domain)
                .and_then(|h| h.strip_suffix('.'))
                .unwrap_or(host);
            if let Some(g) = self.apps.get(app) {
                return Some(g);
            }
        }
        if self.apps.len() == 1 {
            return self.apps.values().next();
        }
        None
    }
}

/// `host` without a `:port` suffix.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host;
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The whole routing table.
#[derive(Debug, Default)]
pub struct Catalog {
    /// TCP public ports.
    pub ports: HashMap<u16, Arc<PortRoute>>,
    /// UDP public ports: one app each (a datagram carries no name to route
    /// by), with no handlers.
    pub udp_ports: HashMap<u16, Arc<PortRoute>>,
    /// UDP ports claimed by more than one app, and who got them.
    pub udp_conflicts: Vec<UdpConflict>,
    /// Every live machine service, for autostop, checks and metrics.
    pub lives: Vec<Arc<Live>>,
    /// Machines with services but no address (`--network none`).
    pub unreachable: usize,
    /// Service checks to run, per machine service.
    pub checks: Vec<(LiveKey, Arc<Live>, Vec<crate::checks::Probe>)>,
}

/// A UDP public port several apps declare: `winner` (the app of the lowest
/// machine id) serves it, `losers` get no traffic on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConflict {
    pub port: u16,
    pub winner: String,
    pub losers: Vec<String>,
}

/// Key of a [`Live`] across refreshes.
pub type LiveKey = (String, u16, SocketAddr);

/// Handlers, limits and autostart settings of the first service seen for a
/// port; later services on the same port add their machines and apps.
fn handlers_of(port: &hangar_types::config::MachinePort) -> Handlers {
    let names = port.handlers();
    let has = |n: &str| names.iter().any(|h| h.eq_ignore_ascii_case(n));
    Handlers {
        http: has("http"),
        tls: has("tls"),
        proxy_proto: if has("proxy_proto") {
            let v = port
                .proxy_proto_options
                .as_ref()
                .and_then(|o| o.version.as_deref());
            Some(if v == Some("v2") {
                ProxyProtoVersion::V2
            } else {
                ProxyProtoVersion::V1
            })
        } else {
            None
        },
        force_https: port.force_https.unwrap_or(false),
        h2_backend: port
            .http_options
            .as_ref()
            .and_then(|o| o.h2_backend)
            .unwrap_or(false),
        idle_timeout: seconds(port.http_options.as_ref().and_then(|o| o.idle_timeout)),
        headers_read_timeout: seconds(
            port.http_options
                .as_ref()
                .and_then(|o| o.headers_read_timeout),
        ),
    }
}

/// A positive number of seconds from a config field.
fn seconds(n: Option<i64>) -> Option<Duration> {
    n.and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n > 0)
        .map(Duration::from_secs)
}

fn public_ports(port: &hangar_types::config::MachinePort) -> Vec<u16> {
    let ok = |n: i64| u16::try_from(n).ok().filter(|p| *p != 0);
    if let Some(p) = port.port.and_then(ok) {
        return vec![p];
    }
    match (port.start_port.and_then(ok), port.end_port.and_then(ok)) {
        // Ranges are capped so a typo cannot open thousands of listeners.
        (Some(a), Some(b)) if a <= b => (a..=b).take(256).collect(),
        _ => Vec::new(),
    }
}

/// The transport of a service (`protocol`, `tcp` when not given); none for a
/// protocol the proxy does not know.
fn transport(service: &hangar_types::config::MachineService) -> Option<Transport> {
    match service.protocol.as_deref() {
        None => Some(Transport::Tcp),
        Some(p) if p.eq_ignore_ascii_case("tcp") => Some(Transport::Tcp),
        Some(p) if p.eq_ignore_ascii_case("udp") => Some(Transport::Udp),
        Some(_) => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
}

/// One UDP port while the table is built: every app that declares it, with
/// the lowest id of its machines there (the lowest of all wins the port).
type UdpBuild = HashMap<String, (String, GroupBuild)>;

struct GroupBuild {
    app: String,
    internal_port: u16,
    soft_limit: u32,
    hard_limit: u32,
    concurrency: ConcurrencyType,
    autostart: bool,
    autostop: AutostopMode,
    min_running: u32,
    response_headers: ResponseHeaders,
    compress: bool,
    pristine: bool,
    machines: Vec<Arc<Live>>,
    unreachable: usize,
}

impl GroupBuild {
    fn finish(self) -> Arc<Group> {
        Arc::new(Group {
            app: self.app,
            internal_port: self.internal_port,
            soft_limit: self.soft_limit,
            hard_limit: self.hard_limit.max(self.soft_limit),
            concurrency: self.concurrency,
            autostart: self.autostart,
            autostop: self.autostop,
            min_running: self.min_running,
            response_headers: self.response_headers,
            compress: self.compress,
            pristine: self.pristine,
            machines: self.machines,
        })
    }
}

/// Builds the catalog from a machine list asked for at `asked` (clock ms),
/// reusing the [`Live`]s in `registry` (and dropping those of machines that
/// are gone).
pub fn build(
    machines: &[MachineInfo],
    asked: u64,
    registry: &mut HashMap<LiveKey, Arc<Live>>,
) -> Catalog {
    let mut next_registry: HashMap<LiveKey, Arc<Live>> = HashMap::new();
    type TcpBuild = (Handlers, Option<TlsOptions>, HashMap<String, GroupBuild>);
    let mut ports: HashMap<u16, TcpBuild> = HashMap::new();
    let mut udp: HashMap<u16, UdpBuild> = HashMap::new();
    let mut unreachable = 0;
    let mut checks = Vec::new();
    for m in machines {
        if m.state == MachineState::Other {
            continue;
        }
        if m.private_ip.is_none() && !m.services.is_empty() {
            unreachable += 1;
        }
        for service in &m.services {
            let Some(transport) = transport(service) else {
                continue;
            };
            let Some(internal_port) = service
                .internal_port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
            else {
                continue;
            };
            let live = m.private_ip.map(|ip| {
                let addr = SocketAddr::new(ip, internal_port);
                let key = (m.id.clone(), internal_port, addr);
                let live = next_registry
                    .entry(key.clone())
                    .or_insert_with(|| {
                        registry
                            .get(&key)
                            .cloned()
                            .unwrap_or_else(|| Arc::new(Live::new(&m.app, &m.id, &m.region, addr)))
                    })
                    .clone();
                live.set_api_state(m.state, m.cordoned, asked);
                let probes: Vec<_> = service
                    .checks
                    .iter()
                    .flatten()
                    .filter_map(|c| crate::checks::Probe::of(c, internal_port))
                    .collect();
                if !probes.is_empty() {
                    checks.push((key, live.clone(), probes));
                }
                live
            });
            let conc = service.concurrency.clone().unwrap_or_default();
            let new_group = |port: &hangar_types::config::MachinePort| GroupBuild {
                app: m.app.clone(),
                internal_port,
                soft_limit: conc.soft_limit_or_default().max(1),
                hard_limit: conc.hard_limit_or_default().max(1),
                concurrency: if conc.concurrency_type.as_deref() == Some("requests") {
                    ConcurrencyType::Requests
                } else {
                    ConcurrencyType::Connections
                },
                autostart: service.autostart.unwrap_or(true),
                autostop: service.autostop_mode(),
                min_running: service
                    .min_machines_running
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0),
                response_headers: ResponseHeaders::of(port),
                compress: port
                    .http_options
                    .as_ref()
                    .and_then(|o| o.compress)
                    .unwrap_or(true),
                pristine: port
                    .http_options
                    .as_ref()
                    .and_then(|o| o.response.as_ref())
                    .and_then(|r| r.pristine)
                    .unwrap_or(false),
                machines: Vec::new(),
                unreachable: 0,
            };
            for port in service.ports() {
                for public in public_ports(port) {
                    let g = match transport {
                        Transport::Tcp => ports
                            .entry(public)
                            .or_insert_with(|| {
                                (handlers_of(port), port.tls_options.clone(), HashMap::new())
                            })
                            .2
                            .entry(m.app.clone())
                            .or_insert_with(|| new_group(port)),
                        Transport::Udp => {
                            let (first_id, g) = udp
                                .entry(public)
                                .or_default()
                                .entry(m.app.clone())
                                .or_insert_with(|| (m.id.clone(), new_group(port)));
                            if m.id < *first_id {
                                first_id.clone_from(&m.id);
                            }
                            g
                        }
                    };
                    match &live {
                        Some(l) if !g.machines.iter().any(|x| Arc::ptr_eq(x, l)) => {
                            g.machines.push(l.clone())
                        }
                        Some(_) => {}
                        None => g.unreachable += 1,
                    }
                }
            }
        }
    }
    *registry = next_registry;
    let lives = registry.values().cloned().collect();
    let ports = ports
        .into_iter()
        .map(|(port, (handlers, tls_options, apps))| {
            let apps = apps.into_iter().map(|(app, g)| (app, g.finish())).collect();
            let route = PortRoute {
                handlers,
                tls_options,
                apps,
            };
            (port, Arc::new(route))
        })
        .collect();
    let (udp_ports, udp_conflicts) = resolve_udp(udp);
    Catalog {
        ports,
        udp_ports,
        udp_conflicts,
        lives,
        unreachable,
        checks,
    }
}

/// One app per UDP port: the app with the lowest machine id among those
/// declaring it (the machine list's order does not matter).
fn resolve_udp(udp: HashMap<u16, UdpBuild>) -> (HashMap<u16, Arc<PortRoute>>, Vec<UdpConflict>) {
    let mut routes = HashMap::new();
    let mut conflicts = Vec::new();
    for (port, apps) in udp {
        let mut apps: Vec<(String, (String, GroupBuild))> = apps.into_iter().collect();
        apps.sort_by(|a, b| (&a.1.0, &a.0).cmp(&(&b.1.0, &b.0)));
        let mut apps = apps.into_iter();
        let Some((winner, (_, g))) = apps.next() else {
            continue;
        };
        let losers: Vec<String> = apps.map(|(app, _)| app).collect();
        if !losers.is_empty() {
            conflicts.push(UdpConflict {
                port,
                winner: winner.clone(),
                losers,
            });
        }
        let route = PortRoute {
            handlers: Handlers::default(),
            tls_options: None,
            apps: HashMap::from([(winner, g.finish())]),
        };
        routes.insert(port, Arc::new(route));
    }
    conflicts.sort_by_key(|c| c.port);
    (routes, conflicts)
}
