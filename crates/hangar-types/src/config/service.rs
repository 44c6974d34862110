//! Services the proxy exposes (`fly.MachineService`), their ports, handler
//! options, concurrency limits and checks (`fly.MachineCheck`,
//! `fly.MachineServiceCheck`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::enums::{Autostop, AutostopMode};
use super::health::HttpHeader;
use crate::duration::Duration;

/// `fly.MachineService`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineService {
    /// `tcp` or `udp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<MachinePort>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autostop: Option<Autostop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autostart: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_machines_running: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<Check>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_instance_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_instance_description: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MachineService {
    /// The autostop mode, `off` when none (or an unknown one) is given.
    pub fn autostop_mode(&self) -> AutostopMode {
        self.autostop
            .as_ref()
            .and_then(Autostop::mode)
            .unwrap_or(AutostopMode::Off)
    }

    /// The ports (empty when none).
    pub fn ports(&self) -> &[MachinePort] {
        self.ports.as_deref().unwrap_or_default()
    }
}

/// `fly.MachinePort`: a public port (or range) of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachinePort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
    /// `http`, `tls`, `proxy_proto`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handlers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_https: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_options: Option<HttpOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_options: Option<TlsOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_proto_options: Option<ProxyProtoOptions>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MachinePort {
    /// The handler names (empty when none).
    pub fn handlers(&self) -> &[String] {
        self.handlers.as_deref().unwrap_or_default()
    }
}

/// `fly.HTTPOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h2_backend: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers_read_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_cache: Option<Vec<ReplayCache>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponseOptions>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.HTTPResponseOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpResponseOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pristine: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.ReplayCache`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayCache {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    /// `cookie` or `header`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub cache_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_bypass: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.TLSOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_self_signed: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.ProxyProtoOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyProtoOptions {
    /// `v1` or `v2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `fly.MachineServiceConcurrency`: load the proxy puts on one machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Concurrency {
    /// `connections` or `requests`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub concurrency_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soft_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard_limit: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Soft limit when none is given (Fly's default).
pub const DEFAULT_SOFT_LIMIT: u32 = 20;
/// Hard limit when none is given (Fly's default).
pub const DEFAULT_HARD_LIMIT: u32 = 25;

impl Concurrency {
    pub fn soft_limit_or_default(&self) -> u32 {
        self.soft_limit
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_SOFT_LIMIT)
    }

    pub fn hard_limit_or_default(&self) -> u32 {
        self.hard_limit
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_HARD_LIMIT.max(self.soft_limit_or_default()))
    }
}

/// A machine check (`fly.MachineCheck`, under `config.checks`) or a service
/// check (`fly.MachineServiceCheck`, under `services[].checks`); the two share
/// every field but `kind`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `tcp` or `http`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub check_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For http checks: `http` or `https`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_skip_verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<HttpHeader>>,
    /// Machine checks only: `informational` or `readiness`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
