//! From the agent's spec to pilot's plan: names, images, commands, environment,
//! users, files, health checks, restart and stop policies, each problem reported
//! with its JSON path.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hangar_types::config::{
    Check, DependencyCondition, File, HealthCheck, HealthCheckKind, HealthProbe, MachineSecret,
    RestartMode, RestartPolicy, StopConfig, UnhealthyPolicy,
};
use hangar_types::{ContainerConfig, MachineConfig};

use crate::plan::{
    CheckKind, CheckPlan, Condition, ContainerPlan, Dependency, HttpProbe, MachinePlan, Probe,
    RestartPlan, RestartPolicyKind, StopPlan, UnhealthyAction,
};
use crate::runtime::{BindMount, ContainerLaunch, FileWrite, ProcessSpec, Rootfs, User};
use crate::spec::{ImageSpec, MachineSpec};
use crate::users;

/// Default number of log lines kept.
pub const DEFAULT_LOG_LINES: usize = 10_000;
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Every problem found in a spec, each with its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid machine spec: {}", .problems.join("; "))]
pub struct ResolveError {
    pub problems: Vec<String>,
}

/// The parts of one container or process, before resolution.
struct Unit<'a> {
    path: String,
    name: String,
    image: Option<&'a str>,
    exec: Option<&'a Vec<String>>,
    entrypoint: Option<&'a Vec<String>>,
    cmd: Option<&'a Vec<String>>,
    env: BTreeMap<String, String>,
    secrets: &'a [MachineSecret],
    user: Option<&'a str>,
    files: Vec<(String, &'a File)>,
    checks: Vec<&'a HealthCheck>,
    /// The machine's own `checks` (single-image machines), run by its first
    /// process.
    machine_checks: Vec<(&'a String, &'a Check)>,
    depends_on: Vec<(Option<&'a str>, DependencyCondition)>,
    restart: Option<&'a RestartPolicy>,
    stop: Option<&'a StopConfig>,
}

/// Builds the plan, or every problem that prevents it.
pub fn resolve(spec: &MachineSpec) -> Result<MachinePlan, ResolveError> {
    let mut problems = Vec::new();
    let cfg = &spec.config;
    let units = units(cfg);
    let mut names = BTreeMap::new();
    for u in &units {
        if u.name.is_empty() {
            problems.push(format!(
                "{}.name: a container needs a name (or an image to name it after)",
                u.path
            ));
        } else if let Some(first) = names.insert(u.name.clone(), u.path.clone()) {
            problems.push(format!(
                "{}.name: {:?} is also the name of {first}",
                u.path, u.name
            ));
        }
    }
    let mut containers = Vec::new();
    for u in &units {
        match container(spec, cfg, u, &names) {
            Ok(c) => containers.push(c),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if containers.is_empty() && problems.is_empty() {
        problems.push("config: neither `image` nor `containers` is set".into());
    }
    if let Some(cycle) = find_cycle(&containers) {
        problems.push(format!(
            "config.containers: depends_on forms a cycle: {}",
            cycle.join(" -> ")
        ));
    }
    if !problems.is_empty() {
        return Err(ResolveError { problems });
    }
    Ok(MachinePlan {
        machine_id: spec.machine_id.clone(),
        containers,
        log_buffer_lines: spec.log_buffer_lines.unwrap_or(DEFAULT_LOG_LINES),
    })
}

/// `containers[]`, or the single image (one unit per `processes[]` entry);
/// the first unit also runs the machine's `checks` (the containers share the
/// network namespace, so any of them reaches the ports).
fn units(cfg: &MachineConfig) -> Vec<Unit<'_>> {
    let mut units = units_of(cfg);
    if let Some(first) = units.first_mut() {
        first.machine_checks = cfg.checks.iter().flatten().collect();
    }
    units
}

fn units_of(cfg: &MachineConfig) -> Vec<Unit<'_>> {
    if !cfg.containers().is_empty() {
        return cfg
            .containers()
            .iter()
            .enumerate()
            .map(|(i, c)| container_unit(i, c))
            .collect();
    }
    let Some(image) = cfg.image.as_deref() else {
        return Vec::new();
    };
    let init = cfg.init.as_ref();
    let machine_files: Vec<(String, &File)> = cfg
        .files()
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("config.files[{i}]"), f))
        .collect();
    let base = |path: String, name: String| Unit {
        path,
        name,
        image: Some(image),
        exec: init.and_then(|i| i.exec.as_ref()),
        entrypoint: init.and_then(|i| i.entrypoint.as_ref()),
        cmd: init.and_then(|i| i.cmd.as_ref()),
        env: BTreeMap::new(),
        secrets: &[],
        user: None,
        files: machine_files.clone(),
        checks: Vec::new(),
        machine_checks: Vec::new(),
        depends_on: Vec::new(),
        restart: cfg.restart.as_ref(),
        stop: None,
    };
    let procs = cfg.processes();
    if procs.is_empty() {
        return vec![base("config".into(), "app".into())];
    }
    procs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = if procs.len() == 1 {
                "app".to_string()
            } else {
                format!("process-{i}")
            };
            let mut u = base(format!("config.processes[{i}]"), name);
            if p.exec.is_some() || p.entrypoint.is_some() || p.cmd.is_some() {
                u.exec = p.exec.as_ref();
                u.entrypoint = p.entrypoint.as_ref();
                u.cmd = p.cmd.as_ref();
            }
            u.env = p.env.clone().unwrap_or_default();
            u.secrets = p.secrets.as_deref().unwrap_or_default();
            u.user = p.user.as_deref();
            u
        })
        .collect()
}

fn container_unit(i: usize, c: &ContainerConfig) -> Unit<'_> {
    let path = format!("config.containers[{i}]");
    Unit {
        name: c.effective_name().unwrap_or_default(),
        image: c.image.as_deref(),
        exec: c.exec.as_ref(),
        entrypoint: c.entrypoint.as_ref(),
        cmd: c.cmd.as_ref(),
        env: c.env(),
        secrets: c.secrets.as_deref().unwrap_or_default(),
        user: c.user.as_deref(),
        files: c
            .files()
            .iter()
            .enumerate()
            .map(|(j, f)| (format!("{path}.files[{j}]"), f))
            .collect(),
        checks: c.health_checks().collect(),
        machine_checks: Vec::new(),
        depends_on: c
            .depends_on()
            .iter()
            .map(|d| (d.target(), d.condition_or_default()))
            .collect(),
        restart: c.restart.as_ref(),
        stop: c.stop.as_ref(),
        path,
    }
}

fn container(
    spec: &MachineSpec,
    cfg: &MachineConfig,
    u: &Unit<'_>,
    names: &BTreeMap<String, String>,
) -> Result<ContainerPlan, Vec<String>> {
    let mut problems = Vec::new();
    let p = &u.path;
    let empty = ImageSpec::default();
    let image = match u.image {
        None => {
            problems.push(format!("{p}.image: missing"));
            &empty
        }
        Some(r) => spec.images.get(r).unwrap_or_else(|| {
            problems.push(format!(
                "{p}.image: {r:?} is not among the spec's images (the agent must resolve every image)"
            ));
            &empty
        }),
    };
    let layers = image.layers.clone();

    // Command: exec replaces everything; else entrypoint + cmd over the image's.
    let argv = if let Some(exec) = u.exec {
        exec.clone()
    } else {
        let entrypoint = u
            .entrypoint
            .or(image.config.entrypoint.as_ref())
            .cloned()
            .unwrap_or_default();
        let cmd = match (u.cmd, u.entrypoint) {
            (Some(c), _) => c.clone(),
            // A new entrypoint drops the image's cmd (as OCI runtimes do).
            (None, Some(_)) => Vec::new(),
            (None, None) => image.config.cmd.clone().unwrap_or_default(),
        };
        entrypoint.into_iter().chain(cmd).collect()
    };
    if argv.is_empty() && u.image.is_some_and(|r| spec.images.contains_key(r)) {
        problems.push(format!(
            "{p}: no command: the image has no entrypoint or cmd and none of exec/entrypoint/cmd is set"
        ));
    }

    // Environment: image, then the agent's, then the machine's, then the container's.
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(ek, _)| ek == k) {
        Some(e) => e.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    let image_env = image.config.env.clone().unwrap_or_default();
    if !image_env.iter().any(|e| e.starts_with("PATH=")) {
        let (k, v) = DEFAULT_PATH.split_once('=').expect("KEY=VALUE");
        set(k, v);
    }
    for e in &image_env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        set(k, v);
    }
    for (k, v) in spec.env.iter().chain(cfg.env().iter()).chain(u.env.iter()) {
        set(k, v);
    }
    for (j, s) in u.secrets.iter().enumerate() {
        let Some(name) = s.name.as_deref() else {
            problems.push(format!("{p}.secrets[{j}].name: missing"));
            continue;
        };
        match spec.secrets.get(name) {
            Some(v) => set(s.env_var.as_deref().unwrap_or(name), v),
            None => problems.push(format!(
                "{p}.secrets[{j}].name: the machine has no secret {name:?}"
            )),
        }
    }
    let env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    let user_spec = u.user.or(image.config.user.as_deref());
    let user = users::resolve(&layers, user_spec).unwrap_or_else(|e| {
        problems.push(format!("{p}.user: {e}"));
        User::default()
    });

    let mut files = Vec::new();
    for (fp, f) in &u.files {
        match file(spec, fp, f, user) {
            Ok(w) => files.push(w),
            Err(e) => problems.push(e),
        }
    }

    let mut checks = Vec::new();
    for (j, c) in u.checks.iter().enumerate() {
        match check(&format!("{p}.health_checks[{j}]"), j, c) {
            Ok(c) => checks.push(c),
            Err(e) => problems.push(e),
        }
    }
    for (name, c) in &u.machine_checks {
        match machine_check(&format!("config.checks.{name}"), name, c) {
            Ok(c) => checks.push(c),
            Err(e) => problems.push(e),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &checks {
        if !seen.insert(c.name.clone()) {
            problems.push(format!(
                "{p}.health_checks: two checks are named {:?}",
                c.name
            ));
        }
    }

    let mut depends_on = Vec::new();
    for (j, (target, cond)) in u.depends_on.iter().enumerate() {
        let dp = format!("{p}.depends_on[{j}]");
        let Some(target) = target else {
            problems.push(format!("{dp}.name: missing"));
            continue;
        };
        if !names.contains_key(*target) {
            problems.push(format!("{dp}.name: no container named {target:?}"));
        }
        if *target == u.name {
            problems.push(format!("{dp}.name: a container cannot depend on itself"));
        }
        let condition = match cond {
            DependencyCondition::Started => Condition::Started,
            DependencyCondition::Healthy => Condition::Healthy,
            DependencyCondition::ExitedSuccessfully => Condition::ExitedSuccessfully,
            DependencyCondition::Unknown(s) => {
                problems.push(format!(
                    "{dp}.condition: unknown condition {s:?} (expected started, healthy or exited_successfully)"
                ));
                continue;
            }
        };
        depends_on.push(Dependency {
            container: target.to_string(),
            condition,
        });
    }

    let restart_cfg = u
        .restart
        .or(cfg.restart.as_ref())
        .cloned()
        .unwrap_or_default();
    let policy = match restart_cfg.mode() {
        RestartMode::No | RestartMode::Never => RestartPolicyKind::No,
        RestartMode::Always => RestartPolicyKind::Always,
        RestartMode::OnFailure => RestartPolicyKind::OnFailure,
        RestartMode::Unknown(s) => {
            problems.push(format!(
                "{p}.restart.policy: unknown policy {s:?} (expected no, always or on-failure)"
            ));
            RestartPolicyKind::No
        }
    };
    let restart = RestartPlan::new(policy, Some(restart_cfg.max_retries_or_default()));

    let machine_stop = cfg.stop_config.as_ref();
    let signal_of = |s: &StopConfig| s.signal.as_ref().and_then(|x| x.number());
    let stop = StopPlan {
        signal: u
            .stop
            .and_then(signal_of)
            .or_else(|| machine_stop.and_then(signal_of))
            .unwrap_or(libc::SIGINT),
        timeout: u
            .stop
            .and_then(|s| s.timeout.as_ref())
            .or_else(|| machine_stop.and_then(|s| s.timeout.as_ref()))
            .map(|d| d.as_std())
            .unwrap_or(Duration::from_secs(5)),
    };
    for (what, s) in [("stop", u.stop), ("stop_config", machine_stop)] {
        if let Some(sig) = s.and_then(|s| s.signal.as_ref())
            && sig.number().is_none()
        {
            let path = if what == "stop" {
                format!("{p}.stop")
            } else {
                "config.stop_config".into()
            };
            problems.push(format!("{path}.signal: unknown signal {sig:?}"));
        }
    }

    let mounts = spec
        .volumes
        .iter()
        .filter(|v| v.containers.as_ref().is_none_or(|c| c.contains(&u.name)))
        .map(|v| BindMount {
            source: v.source.clone(),
            target: v.target.clone(),
            readonly: v.readonly,
        })
        .collect();

    if !problems.is_empty() {
        return Err(problems);
    }
    let cwd = image
        .config
        .working_dir
        .as_deref()
        .filter(|w| !w.is_empty())
        .unwrap_or("/");
    Ok(ContainerPlan {
        name: u.name.clone(),
        launch: ContainerLaunch {
            name: u.name.clone(),
            rootfs: Rootfs {
                layers,
                state_dir: spec.state_dir.join("containers").join(&u.name),
            },
            process: ProcessSpec {
                argv,
                env,
                cwd: PathBuf::from(cwd),
                user,
            },
            files,
            mounts,
            hostname: spec.machine_id.clone(),
        },
        depends_on,
        checks,
        restart,
        stop,
    })
}

fn file(spec: &MachineSpec, p: &str, f: &File, owner: User) -> Result<FileWrite, String> {
    let guest_path = match f.guest_path.as_deref() {
        Some(g) if g.starts_with('/') => PathBuf::from(g),
        Some(g) => return Err(format!("{p}.guest_path: {g:?} is not an absolute path")),
        None => return Err(format!("{p}.guest_path: missing")),
    };
    let sources = f.sources();
    if sources.len() != 1 {
        return Err(format!(
            "{p}: give exactly one of raw_value, secret_name, image_config (got {})",
            if sources.is_empty() {
                "none".to_string()
            } else {
                sources.join(", ")
            }
        ));
    }
    let content = if let Some(raw) = &f.raw_value {
        hangar_types::config::decode_base64(raw)
            .map_err(|e| format!("{p}.raw_value: not valid base64: {e}"))?
    } else if let Some(name) = &f.secret_name {
        let v = spec
            .secrets
            .get(name)
            .ok_or_else(|| format!("{p}.secret_name: the machine has no secret {name:?}"))?;
        hangar_types::config::decode_base64(v)
            .map_err(|e| format!("{p}.secret_name: secret {name:?} is not valid base64: {e}"))?
    } else if let Some(image) = &f.image_config {
        let img = spec
            .images
            .get(image)
            .ok_or_else(|| format!("{p}.image_config: {image:?} is not among the spec's images"))?;
        img.raw_config
            .clone()
            .ok_or_else(|| {
                format!("{p}.image_config: the spec has no raw config for image {image:?}")
            })?
            .into_bytes()
    } else {
        return Err(format!(
            "{p}.local_path: pilot does not read host files; the CLI resolves local_path into raw_value before the config is sent"
        ));
    };
    let mode = match f.mode {
        None => hangar_types::config::DEFAULT_FILE_MODE,
        Some(m) if (0..=0o7777).contains(&m) => m as u32,
        Some(m) => return Err(format!("{p}.mode: {m} is not a file mode (0 to 0o7777)")),
    };
    Ok(FileWrite {
        guest_path,
        content,
        mode,
        owner,
    })
}

fn check(p: &str, index: usize, c: &HealthCheck) -> Result<CheckPlan, String> {
    let port = |port: Option<i64>| -> Result<u16, String> {
        match port {
            Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Some(n) => Err(format!("{p}.port: {n} is not a TCP port")),
            None => Err(format!("{p}.port: missing")),
        }
    };
    let probe = match c.probe().map_err(|e| format!("{p}: {e}"))? {
        HealthProbe::Tcp(t) => Probe::Tcp {
            port: port(t.port)?,
        },
        HealthProbe::Http(h) => {
            let port = h
                .effective_port()
                .ok_or_else(|| format!("{p}.port: {:?} is not a TCP port", h.port))?;
            let headers = header_pairs(p, h.headers.as_deref())?;
            if let Some(s) = &h.scheme
                && !s.eq_ignore_ascii_case("http")
                && !s.eq_ignore_ascii_case("https")
            {
                return Err(format!("{p}.scheme: {s:?} is not http or https"));
            }
            let method = h.effective_method().to_ascii_uppercase();
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("{p}.method: {method:?} is not an HTTP method"));
            }
            Probe::Http(HttpProbe {
                port,
                method,
                path: h.effective_path().to_string(),
                https: h.is_https(),
                host: h.tls_server_name.clone(),
                headers,
            })
        }
        HealthProbe::Exec(e) => match e.command {
            Some(cmd) if !cmd.is_empty() => Probe::Exec { argv: cmd },
            _ => return Err(format!("{p}.command: an exec check needs a command")),
        },
    };
    let kind = match c.kind_or_default() {
        HealthCheckKind::Readiness => CheckKind::Readiness,
        HealthCheckKind::Liveness => CheckKind::Liveness,
        HealthCheckKind::Unknown(k) => {
            return Err(format!(
                "{p}.kind: unknown kind {k:?} (expected readiness or liveness)"
            ));
        }
    };
    let on_unhealthy = match &c.unhealthy {
        None => UnhealthyAction::Report,
        Some(UnhealthyPolicy::Stop) => UnhealthyAction::Stop,
        Some(UnhealthyPolicy::Unknown(s)) => {
            return Err(format!(
                "{p}.unhealthy: unknown policy {s:?} (expected stop)"
            ));
        }
    };
    let kind_name = match &probe {
        Probe::Tcp { .. } => "tcp",
        Probe::Http(_) => "http",
        Probe::Exec { .. } => "exec",
    };
    Ok(CheckPlan {
        name: c
            .name
            .clone()
            .unwrap_or_else(|| format!("{kind_name}-{index}")),
        kind,
        probe,
        interval: c.interval_or_default(),
        timeout: c.timeout_or_default(),
        grace_period: c.grace_period_or_default(),
        success_threshold: c.success_threshold_or_default().max(1),
        failure_threshold: c.failure_threshold_or_default().max(1),
        on_unhealthy,
    })
}

/// An HTTP check's headers as (name, value) pairs, a pair per value.
fn header_pairs(
    p: &str,
    headers: Option<&[hangar_types::config::HttpHeader]>,
) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for h in headers.unwrap_or_default() {
        let name = h
            .name
            .clone()
            .ok_or_else(|| format!("{p}.headers: a header has no name"))?;
        for v in h.values.iter().flatten() {
            pairs.push((name.clone(), v.clone()));
        }
    }
    Ok(pairs)
}

/// One of the machine's `checks` (`tcp` or `http` against a port of the
/// machine): a readiness check that reports, never stops anything. Fly's
/// defaults: every 15 s, 10 s timeout, a single pass or failure decides.
fn machine_check(p: &str, name: &str, c: &Check) -> Result<CheckPlan, String> {
    let port = match c.port {
        Some(n) if (1..=65535).contains(&n) => n as u16,
        Some(n) => return Err(format!("{p}.port: {n} is not a TCP port")),
        None => return Err(format!("{p}.port: missing")),
    };
    let probe = match c.check_type.as_deref().unwrap_or("tcp") {
        "tcp" => Probe::Tcp { port },
        "http" => {
            let headers = header_pairs(p, c.headers.as_deref())?;
            let https = match c.protocol.as_deref() {
                None | Some("http") => false,
                Some("https") => true,
                Some(other) => {
                    return Err(format!("{p}.protocol: {other:?} is not http or https"));
                }
            };
            Probe::Http(HttpProbe {
                port,
                method: c.method.as_deref().unwrap_or("GET").to_ascii_uppercase(),
                path: c.path.clone().unwrap_or_else(|| "/".into()),
                https,
                host: c.tls_server_name.clone(),
                headers,
            })
        }
        other => return Err(format!("{p}.type: {other:?} is not tcp or http")),
    };
    let secs = |d: Option<&hangar_types::Duration>, default: u64| {
        d.map(|d| d.as_std())
            .unwrap_or(Duration::from_secs(default))
    };
    Ok(CheckPlan {
        name: name.to_owned(),
        kind: CheckKind::Readiness,
        probe,
        interval: secs(c.interval.as_ref(), 15),
        timeout: secs(c.timeout.as_ref(), 10),
        grace_period: secs(c.grace_period.as_ref(), 0),
        success_threshold: 1,
        failure_threshold: 1,
        on_unhealthy: UnhealthyAction::Report,
    })
}

/// A dependency cycle, as the names along it, if there is one.
fn find_cycle(containers: &[ContainerPlan]) -> Option<Vec<String>> {
    fn visit(
        i: usize,
        cs: &[ContainerPlan],
        state: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        state[i] = 1;
        stack.push(i);
        for d in &cs[i].depends_on {
            let Some(j) = cs.iter().position(|c| c.name == d.container) else {
                continue;
            };
            if state[j] == 1 {
                let from = stack.iter().position(|x| *x == j).unwrap_or(0);
                let mut names: Vec<String> =
                    stack[from..].iter().map(|k| cs[*k].name.clone()).collect();
                names.push(cs[j].name.clone());
                return Some(names);
            }
            if state[j] == 0
                && let Some(c) = visit(j, cs, state, stack)
            {
                return Some(c);
            }
        }
        stack.pop();
        state[i] = 2;
        None
    }
    let mut state = vec![0u8; containers.len()];
    for i in 0..containers.len() {
        if state[i] == 0
            && let Some(c) = visit(i, containers, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests;
