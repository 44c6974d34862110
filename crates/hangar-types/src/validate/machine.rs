//! Machine-level rules: image, guest resources, restart, stop, services, mounts,
//! files, processes, standbys, schedule, checks.

use super::util::{check_guest_path, check_port, one_of};
use super::{
    MAX_GUEST_CPUS, MAX_GUEST_GPUS, MAX_GUEST_MEMORY_MB, MIN_GUEST_MEMORY_MB, Problems, checks,
    container,
};
use crate::config::{
    Autostop, ENV_FROM_FIELDS, EnvFrom, File, GuestConfig, MachineConfig, MachinePort,
    MachineSecret, MachineService, RestartMode, RestartPolicy, SCHEDULES, StopConfig,
    decode_base64,
};
use crate::ids::{MachineId, VolumeId};

pub(super) fn validate_machine(c: &MachineConfig, at: &str, p: &mut Problems) {
    let has_containers = !c.containers().is_empty();
    match c.image.as_deref() {
        None if !has_containers => p.push(
            format!("{at}.image"),
            "an image is required (or give containers)",
        ),
        Some("") => p.push(format!("{at}.image"), "must not be empty"),
        _ => {}
    }
    if let Some(g) = &c.guest {
        validate_guest(g, &format!("{at}.guest"), p);
    }
    if let Some(r) = &c.restart {
        validate_restart(r, &format!("{at}.restart"), p);
    }
    if let Some(s) = &c.stop_config {
        validate_stop(s, &format!("{at}.stop_config"), p);
    }
    for (i, s) in c.services().iter().enumerate() {
        validate_service(s, &format!("{at}.services[{i}]"), p);
    }
    if let Some(checks) = &c.checks {
        for (name, check) in checks {
            checks::validate_check(check, &format!("{at}.checks.{name}"), p);
        }
    }
    for (i, m) in c.mounts().iter().enumerate() {
        let mp = format!("{at}.mounts[{i}]");
        match m.volume.as_deref() {
            None => p.push(format!("{mp}.volume"), "a volume id is required"),
            Some(v) => {
                if let Err(e) = VolumeId::parse(v) {
                    p.push(format!("{mp}.volume"), e.to_string());
                }
            }
        }
        match m.path.as_deref() {
            None => p.push(format!("{mp}.path"), "a mount path is required"),
            Some(path) => check_guest_path(path.trim_end_matches('/'), &format!("{mp}.path"), p),
        }
        if let Some(n) = m.size_gb
            && n < 1
        {
            p.push(
                format!("{mp}.size_gb"),
                format!("must be at least 1 (got {n})"),
            );
        }
    }
    validate_files(c.files(), &format!("{at}.files"), p);
    for (i, proc_) in c.processes().iter().enumerate() {
        let pp = format!("{at}.processes[{i}]");
        validate_env_from(proc_.env_from.as_deref(), &pp, p);
        validate_secrets(proc_.secrets.as_deref(), &pp, p);
    }
    for (i, s) in c.standbys().iter().enumerate() {
        if let Err(e) = MachineId::parse(s) {
            p.push(format!("{at}.standbys[{i}]"), e.to_string());
        }
    }
    if let Some(s) = c.schedule.as_deref()
        && !SCHEDULES.contains(&s)
    {
        p.push(
            format!("{at}.schedule"),
            format!("unknown schedule {s:?} (expected {})", one_of(SCHEDULES)),
        );
    }
    if let Some(m) = &c.metrics {
        check_port(m.port, &format!("{at}.metrics.port"), p);
    }
    for (i, s) in c.statics.iter().flatten().enumerate() {
        let sp = format!("{at}.statics[{i}]");
        match s.guest_path.as_deref() {
            None => p.push(format!("{sp}.guest_path"), "required"),
            Some(gp) => check_guest_path(gp.trim_end_matches('/'), &format!("{sp}.guest_path"), p),
        }
        if s.url_prefix.is_none() {
            p.push(format!("{sp}.url_prefix"), "required");
        }
    }
    container::validate_containers(c.containers(), &format!("{at}.containers"), p);
}

fn validate_guest(g: &GuestConfig, at: &str, p: &mut Problems) {
    if let Some(n) = g.cpus {
        if n < 1 {
            p.push(
                format!("{at}.cpus"),
                format!("must be at least 1 (got {n})"),
            );
        } else if n > MAX_GUEST_CPUS {
            p.push(
                format!("{at}.cpus"),
                format!("{n} cpus is more than any host has (at most {MAX_GUEST_CPUS})"),
            );
        }
    }
    if let Some(n) = g.memory_mb {
        if n < MIN_GUEST_MEMORY_MB {
            p.push(
                format!("{at}.memory_mb"),
                format!("must be at least {MIN_GUEST_MEMORY_MB} (got {n})"),
            );
        } else if n > MAX_GUEST_MEMORY_MB {
            p.push(
                format!("{at}.memory_mb"),
                format!("{n} MB is more memory than any host has (at most {MAX_GUEST_MEMORY_MB})"),
            );
        }
    }
    if let (Some(max), Some(mem)) = (g.max_memory_mb, g.memory_mb)
        && max < mem
    {
        p.push(
            format!("{at}.max_memory_mb"),
            format!("max_memory_mb ({max}) is below memory_mb ({mem})"),
        );
    }
    if let Some(n) = g.gpus
        && !(0..=MAX_GUEST_GPUS).contains(&n)
    {
        p.push(
            format!("{at}.gpus"),
            format!("must be between 0 and {MAX_GUEST_GPUS} (got {n})"),
        );
    }
    if let Some(k) = g.cpu_kind.as_deref()
        && !["shared", "performance"].contains(&k)
    {
        p.push(
            format!("{at}.cpu_kind"),
            format!("unknown cpu kind {k:?} (expected shared or performance)"),
        );
    }
}

pub(super) fn validate_restart(r: &RestartPolicy, at: &str, p: &mut Problems) {
    if let Some(RestartMode::Unknown(s)) = &r.policy {
        p.push(
            format!("{at}.policy"),
            format!("unknown restart policy {s:?} (expected no, always or on-failure)"),
        );
    }
    if let Some(n) = r.max_retries
        && n < 0
    {
        p.push(
            format!("{at}.max_retries"),
            format!("must not be negative (got {n})"),
        );
    }
}

pub(super) fn validate_stop(s: &StopConfig, at: &str, p: &mut Problems) {
    if let Some(sig) = &s.signal
        && sig.number().is_none()
    {
        p.push(
            format!("{at}.signal"),
            format!("unknown signal {:?}", sig.to_string()),
        );
    }
}

fn validate_service(s: &MachineService, at: &str, p: &mut Problems) {
    if let Some(proto) = s.protocol.as_deref()
        && !["tcp", "udp"].contains(&proto)
    {
        p.push(
            format!("{at}.protocol"),
            format!("unknown protocol {proto:?} (expected tcp or udp)"),
        );
    }
    match s.internal_port {
        None => p.push(format!("{at}.internal_port"), "required"),
        port => check_port(port, &format!("{at}.internal_port"), p),
    }
    for (j, port) in s.ports().iter().enumerate() {
        let pp = format!("{at}.ports[{j}]");
        check_port(port.port, &format!("{pp}.port"), p);
        check_port(port.start_port, &format!("{pp}.start_port"), p);
        check_port(port.end_port, &format!("{pp}.end_port"), p);
        if let (Some(a), Some(b)) = (port.start_port, port.end_port)
            && a > b
        {
            p.push(
                format!("{pp}.start_port"),
                format!("start_port ({a}) is above end_port ({b})"),
            );
        }
        if port.port.is_none() && (port.start_port.is_none() || port.end_port.is_none()) {
            p.push(pp.clone(), "give port, or start_port and end_port");
        }
        validate_port_options(port, &pp, p);
    }
    if let Some(Autostop::Unknown(v)) = &s.autostop {
        p.push(
            format!("{at}.autostop"),
            format!(
                "unknown autostop {v:?} (expected true, false, \"off\", \"stop\" or \"suspend\")"
            ),
        );
    }
    if let Some(n) = s.min_machines_running
        && n < 0
    {
        p.push(
            format!("{at}.min_machines_running"),
            format!("must not be negative (got {n})"),
        );
    }
    if let Some(c) = &s.concurrency {
        let cp = format!("{at}.concurrency");
        if let Some(t) = c.concurrency_type.as_deref()
            && !["connections", "requests"].contains(&t)
        {
            p.push(
                format!("{cp}.type"),
                format!("unknown concurrency type {t:?} (expected connections or requests)"),
            );
        }
        for (field, v) in [("soft_limit", c.soft_limit), ("hard_limit", c.hard_limit)] {
            if let Some(n) = v
                && n < 1
            {
                p.push(
                    format!("{cp}.{field}"),
                    format!("must be at least 1 (got {n})"),
                );
            }
        }
        if let (Some(soft), Some(hard)) = (c.soft_limit, c.hard_limit)
            && soft > hard
        {
            p.push(
                format!("{cp}.soft_limit"),
                format!("soft_limit ({soft}) is above hard_limit ({hard})"),
            );
        }
    }
    for (j, check) in s.checks.iter().flatten().enumerate() {
        checks::validate_check(check, &format!("{at}.checks[{j}]"), p);
    }
}

/// Handler names a port may list (matched in any case, as the proxy does).
/// `pg_tls` and `edge_http` are accepted for compatibility with Fly
/// configs; see the proxy's README for what it does with them.
const PORT_HANDLERS: &[&str] = &["http", "tls", "proxy_proto", "pg_tls", "edge_http"];
/// TLS versions `tls_options.versions` may list (matched in any case).
const TLS_VERSIONS: &[&str] = &["TLSv1.2", "TLSv1.3"];
/// PROXY protocol versions of `proxy_proto_options.version`.
const PROXY_PROTO_VERSIONS: &[&str] = &["v1", "v2"];

/// Handlers and the options of one `services[].ports[]` entry.
fn validate_port_options(port: &MachinePort, pp: &str, p: &mut Problems) {
    for (k, h) in port.handlers().iter().enumerate() {
        if !PORT_HANDLERS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(h))
        {
            p.push(
                format!("{pp}.handlers[{k}]"),
                format!("unknown handler {h:?} (expected {})", one_of(PORT_HANDLERS)),
            );
        }
    }
    if let Some(tls) = &port.tls_options {
        let tp = format!("{pp}.tls_options");
        for (k, proto) in tls.alpn.iter().flatten().enumerate() {
            if proto.is_empty() {
                p.push(format!("{tp}.alpn[{k}]"), "must not be empty");
            } else if proto.len() > 255 {
                p.push(
                    format!("{tp}.alpn[{k}]"),
                    format!(
                        "an ALPN protocol name is at most 255 bytes (got {})",
                        proto.len()
                    ),
                );
            }
        }
        for (k, v) in tls.versions.iter().flatten().enumerate() {
            if !TLS_VERSIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(v))
            {
                p.push(
                    format!("{tp}.versions[{k}]"),
                    format!(
                        "unknown TLS version {v:?} (expected {})",
                        one_of(TLS_VERSIONS)
                    ),
                );
            }
        }
    }
    if let Some(v) = port
        .proxy_proto_options
        .as_ref()
        .and_then(|o| o.version.as_deref())
        && !PROXY_PROTO_VERSIONS.contains(&v)
    {
        p.push(
            format!("{pp}.proxy_proto_options.version"),
            format!(
                "unknown PROXY protocol version {v:?} (expected {})",
                one_of(PROXY_PROTO_VERSIONS)
            ),
        );
    }
    if let Some(o) = &port.http_options {
        for (field, v) in [
            ("idle_timeout", o.idle_timeout),
            ("headers_read_timeout", o.headers_read_timeout),
        ] {
            if let Some(n) = v
                && n < 0
            {
                p.push(
                    format!("{pp}.http_options.{field}"),
                    format!("must not be negative (got {n})"),
                );
            }
        }
    }
}

/// `files[]` of the machine or of a container.
pub(super) fn validate_files(files: &[File], at: &str, p: &mut Problems) {
    for (k, f) in files.iter().enumerate() {
        let fp = format!("{at}[{k}]");
        match f.guest_path.as_deref() {
            None => p.push(format!("{fp}.guest_path"), "required"),
            Some(gp) => check_guest_path(gp, &format!("{fp}.guest_path"), p),
        }
        let sources = f.sources();
        match sources.len() {
            1 => {}
            0 => p.push(
                fp.clone(),
                "give exactly one of raw_value, secret_name, local_path or image_config (none given)",
            ),
            _ => p.push(
                fp.clone(),
                format!(
                    "give exactly one of raw_value, secret_name, local_path or image_config (got {})",
                    sources.join(" and ")
                ),
            ),
        }
        if let Some(raw) = f.raw_value.as_deref()
            && decode_base64(raw).is_err()
        {
            p.push(format!("{fp}.raw_value"), "not valid base64");
        }
        if let Some(m) = f.mode
            && !(0..=0o7777).contains(&m)
        {
            p.push(
                format!("{fp}.mode"),
                format!("must be between 0 and 0o7777 (4095) (got {m})"),
            );
        }
    }
}

pub(super) fn validate_env_from(env_from: Option<&[EnvFrom]>, at: &str, p: &mut Problems) {
    for (k, e) in env_from.unwrap_or_default().iter().enumerate() {
        let ep = format!("{at}.env_from[{k}]");
        if e.env_var.as_deref().is_none_or(str::is_empty) {
            p.push(format!("{ep}.env_var"), "required");
        }
        match e.field_ref.as_deref() {
            None => p.push(format!("{ep}.field_ref"), "required"),
            Some(f) if !ENV_FROM_FIELDS.contains(&f) => p.push(
                format!("{ep}.field_ref"),
                format!("unknown field {f:?} (expected {})", one_of(ENV_FROM_FIELDS)),
            ),
            Some(_) => {}
        }
    }
}

pub(super) fn validate_secrets(secrets: Option<&[MachineSecret]>, at: &str, p: &mut Problems) {
    for (k, s) in secrets.unwrap_or_default().iter().enumerate() {
        if s.env_var.as_deref().is_none_or(str::is_empty) {
            p.push(format!("{at}.secrets[{k}].env_var"), "required");
        }
    }
}
