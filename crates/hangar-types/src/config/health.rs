//! Container health checks (`fly.ContainerHealthcheck`), in both spellings the
//! docs use: nested (`"http": {"port": 80, "path": "/"}`) and flattened
//! (`"type": "http", "port": 80, "path": "/"`). Every field is stored as written,
//! so the check serializes back unchanged; [`HealthCheck::probe`] gives the one
//! normalized probe whichever spelling was used.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::enums::{HealthCheckKind, UnhealthyPolicy};
use crate::duration::Duration;

/// Interval used when a check gives none.
pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);
/// Timeout used when a check gives none.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Grace period used when a check gives none.
pub const DEFAULT_GRACE_PERIOD: std::time::Duration = std::time::Duration::ZERO;
/// Consecutive successes needed when a check gives none.
pub const DEFAULT_SUCCESS_THRESHOLD: i64 = 1;
/// Consecutive failures needed when a check gives none.
pub const DEFAULT_FAILURE_THRESHOLD: i64 = 3;

/// A header sent by an HTTP check (`fly.MachineHTTPHeader`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpHeader {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.TCPHealthcheck`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpProbe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.HTTPHealthcheck`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpProbe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `http` or `https`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<HttpHeader>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_skip_verify: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl HttpProbe {
    /// `https` when the scheme says so, else `http`.
    pub fn is_https(&self) -> bool {
        self.scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    }

    /// The port to probe: the given one, else the scheme's default (80 or 443),
    /// as a URL without a port would mean.
    pub fn effective_port(&self) -> Option<u16> {
        match self.port {
            Some(p) => u16::try_from(p).ok().filter(|p| *p != 0),
            None if self.is_https() => Some(443),
            None => Some(80),
        }
    }

    /// The method, `GET` when none is given.
    pub fn effective_method(&self) -> &str {
        self.method.as_deref().unwrap_or("GET")
    }

    /// The path, `/` when none is given.
    pub fn effective_path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }
}

/// `fly.ExecHealthcheck`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecProbe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The one probe of a health check, whichever way it was written.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthProbe {
    Tcp(TcpProbe),
    Http(HttpProbe),
    Exec(ExecProbe),
}

impl HealthProbe {
    /// `"tcp"`, `"http"` or `"exec"`.
    pub fn kind(&self) -> &'static str {
        match self {
            HealthProbe::Tcp(_) => "tcp",
            HealthProbe::Http(_) => "http",
            HealthProbe::Exec(_) => "exec",
        }
    }
}

/// Why a health check has no single probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("health check has no probe (give one of \"tcp\", \"http\", \"exec\", or a \"type\")")]
    Missing,
    #[error("health check has {} probes ({}); give exactly one", .0.len(), .0.join(" and "))]
    Several(Vec<&'static str>),
    #[error("unknown health check type {0:?} (expected tcp, http or exec)")]
    UnknownType(String),
}

/// A container health check (`fly.ContainerHealthcheck`), nested or flattened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Unique within the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<HealthCheckKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy: Option<UnhealthyPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i64>,

    // Nested spelling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecProbe>,

    // Flattened spelling: `type` picks the probe, the other fields are its settings.
    /// `tcp`, `http` or `exec` in the flattened spelling.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub check_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<HttpHeader>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_skip_verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,

    /// Keys Hangar does not know: kept and echoed, otherwise ignored.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl HealthCheck {
    /// The probe, normalized: nested and flattened spellings give the same value.
    pub fn probe(&self) -> Result<HealthProbe, ProbeError> {
        let mut found: Vec<(&'static str, HealthProbe)> = Vec::new();
        if let Some(t) = &self.tcp {
            found.push(("tcp", HealthProbe::Tcp(t.clone())));
        }
        if let Some(h) = &self.http {
            found.push(("http", HealthProbe::Http(h.clone())));
        }
        if let Some(e) = &self.exec {
            found.push(("exec", HealthProbe::Exec(e.clone())));
        }
        if let Some(t) = &self.check_type {
            let flat = match t.to_ascii_lowercase().as_str() {
                "tcp" => HealthProbe::Tcp(TcpProbe {
                    port: self.port,
                    extra: Map::new(),
                }),
                "http" => HealthProbe::Http(HttpProbe {
                    port: self.port,
                    method: self.method.clone(),
                    path: self.path.clone(),
                    scheme: self.scheme.clone(),
                    headers: self.headers.clone(),
                    tls_server_name: self.tls_server_name.clone(),
                    tls_skip_verify: self.tls_skip_verify,
                    extra: Map::new(),
                }),
                "exec" => HealthProbe::Exec(ExecProbe {
                    command: self.command.clone(),
                    extra: Map::new(),
                }),
                _ => return Err(ProbeError::UnknownType(t.clone())),
            };
            found.push(("type", flat));
        }
        match found.len() {
            0 => Err(ProbeError::Missing),
            1 => Ok(found.pop().map(|(_, p)| p).expect("one probe")),
            _ => Err(ProbeError::Several(
                found
                    .iter()
                    .map(|(label, p)| if *label == "type" { p.kind() } else { label })
                    .collect(),
            )),
        }
    }

    /// Whether the check is written flattened (`"type": ...`).
    pub fn is_flattened(&self) -> bool {
        self.check_type.is_some()
    }

    pub fn interval_or_default(&self) -> std::time::Duration {
        self.interval
            .as_ref()
            .map_or(DEFAULT_INTERVAL, Duration::as_std)
    }

    /// The timeout; without one, [`DEFAULT_TIMEOUT`] but never longer than the
    /// interval (a probe must end before the next one starts).
    pub fn timeout_or_default(&self) -> std::time::Duration {
        match &self.timeout {
            Some(t) => t.as_std(),
            None => DEFAULT_TIMEOUT.min(self.interval_or_default()),
        }
    }

    pub fn grace_period_or_default(&self) -> std::time::Duration {
        self.grace_period
            .as_ref()
            .map_or(DEFAULT_GRACE_PERIOD, Duration::as_std)
    }

    pub fn success_threshold_or_default(&self) -> u32 {
        self.success_threshold
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_SUCCESS_THRESHOLD as u32)
    }

    pub fn failure_threshold_or_default(&self) -> u32 {
        self.failure_threshold
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_FAILURE_THRESHOLD as u32)
    }

    /// The kind, `readiness` when none is given.
    pub fn kind_or_default(&self) -> HealthCheckKind {
        self.kind.clone().unwrap_or(HealthCheckKind::Readiness)
    }
}
