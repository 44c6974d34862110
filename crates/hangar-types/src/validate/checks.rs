//! Rules for checks: machine and service checks (`fly.MachineCheck`) and
//! container health checks (`fly.ContainerHealthcheck`, nested or flattened).

use std::collections::HashSet;

use super::Problems;
use super::util::check_port;
use crate::config::{
    Check, DEFAULT_INTERVAL, HealthCheck, HealthCheckKind, HealthProbe, ProbeError, UnhealthyPolicy,
};
use crate::duration::Duration;

/// A machine or service check.
pub(super) fn validate_check(c: &Check, at: &str, p: &mut Problems) {
    match c.check_type.as_deref() {
        Some("tcp") | Some("http") => {}
        Some(t) => p.push(
            format!("{at}.type"),
            format!("unknown check type {t:?} (expected tcp or http)"),
        ),
        None => p.push(format!("{at}.type"), "required (tcp or http)"),
    }
    check_port(c.port, &format!("{at}.port"), p);
    if let Some(proto) = c.protocol.as_deref()
        && !["http", "https"].contains(&proto)
    {
        p.push(
            format!("{at}.protocol"),
            format!("unknown protocol {proto:?} (expected http or https)"),
        );
    }
    if let Some(k) = c.kind.as_deref()
        && !["informational", "readiness"].contains(&k)
    {
        p.push(
            format!("{at}.kind"),
            format!("unknown kind {k:?} (expected informational or readiness)"),
        );
    }
    check_timing(c.interval.as_ref(), c.timeout.as_ref(), at, p);
}

/// `interval` must be positive, `timeout` positive and not longer than the interval
/// (the default interval when none is given).
fn check_timing(
    interval: Option<&Duration>,
    timeout: Option<&Duration>,
    at: &str,
    p: &mut Problems,
) {
    if let Some(i) = interval
        && i.is_zero()
    {
        p.push(format!("{at}.interval"), "must be longer than 0");
    }
    if let Some(t) = timeout
        && t.is_zero()
    {
        p.push(format!("{at}.timeout"), "must be longer than 0");
    }
    if let Some(t) = timeout {
        match interval {
            Some(i) if !i.is_zero() && t.as_std() > i.as_std() => p.push(
                format!("{at}.timeout"),
                format!("timeout ({t}) is longer than interval ({i})"),
            ),
            None if t.as_std() > DEFAULT_INTERVAL => p.push(
                format!("{at}.timeout"),
                format!(
                    "timeout ({t}) is longer than the default interval ({}s)",
                    DEFAULT_INTERVAL.as_secs()
                ),
            ),
            _ => {}
        }
    }
}

/// The health checks of one container, listed under `key` (`healthchecks` or
/// `health_checks`).
pub(super) fn validate_health_checks(checks: &[HealthCheck], at: &str, p: &mut Problems) {
    let mut names = HashSet::new();
    for (j, hc) in checks.iter().enumerate() {
        let hp = format!("{at}[{j}]");
        if let Some(n) = hc.name.as_deref()
            && !names.insert(n)
        {
            p.push(
                format!("{hp}.name"),
                format!("duplicate health check name {n:?}"),
            );
        }
        validate_health_check(hc, &hp, p);
    }
}

fn validate_health_check(hc: &HealthCheck, at: &str, p: &mut Problems) {
    match hc.probe() {
        Err(ProbeError::UnknownType(_)) => {
            p.push(format!("{at}.type"), hc.probe().unwrap_err().to_string())
        }
        Err(e) => p.push(at, e.to_string()),
        Ok(probe) => {
            // Settings live under the probe's key when nested, at the check's
            // top level when flattened.
            let base = if hc.is_flattened() {
                at.to_owned()
            } else {
                format!("{at}.{}", probe.kind())
            };
            match &probe {
                HealthProbe::Tcp(t) => match t.port {
                    None => p.push(format!("{base}.port"), "a tcp check needs a port"),
                    port => check_port(port, &format!("{base}.port"), p),
                },
                HealthProbe::Http(h) => {
                    check_port(h.port, &format!("{base}.port"), p);
                    if let Some(s) = h.scheme.as_deref()
                        && !s.eq_ignore_ascii_case("http")
                        && !s.eq_ignore_ascii_case("https")
                    {
                        p.push(
                            format!("{base}.scheme"),
                            format!("unknown scheme {s:?} (expected http or https)"),
                        );
                    }
                    if let Some(path) = h.path.as_deref()
                        && !path.starts_with('/')
                    {
                        p.push(
                            format!("{base}.path"),
                            format!("must start with \"/\" (got {path:?})"),
                        );
                    }
                }
                HealthProbe::Exec(e) => {
                    if e.command.as_deref().is_none_or(|c| c.is_empty()) {
                        p.push(format!("{base}.command"), "an exec check needs a command");
                    }
                }
            }
        }
    }
    for (field, v) in [
        ("success_threshold", hc.success_threshold),
        ("failure_threshold", hc.failure_threshold),
    ] {
        if let Some(n) = v
            && n < 1
        {
            p.push(
                format!("{at}.{field}"),
                format!("must be at least 1 (got {n})"),
            );
        }
    }
    if let Some(HealthCheckKind::Unknown(k)) = &hc.kind {
        p.push(
            format!("{at}.kind"),
            format!("unknown kind {k:?} (expected readiness or liveness)"),
        );
    }
    if let Some(UnhealthyPolicy::Unknown(u)) = &hc.unhealthy {
        p.push(
            format!("{at}.unhealthy"),
            format!("unknown policy {u:?} (expected stop)"),
        );
    }
    check_timing(hc.interval.as_ref(), hc.timeout.as_ref(), at, p);
}
