//! fly.toml text → [`Model`]: the root keys, `[build]`, `[env]`,
//! `[processes]` and `[deploy]`. Services and checks are in [`services`],
//! `[[vm]]` and `[mounts]` in [`resources`], the rest in [`machine`].

mod checks;
mod machine;
mod resources;
mod services;

use std::path::Path;

use hangar_types::config::Signal;

use crate::error::{FlyTomlError, Warning};
use crate::model::{DeployStrategy, Model, Process};
use crate::read::{Cx, R, Tbl};
use crate::shell;
use crate::tree::{self, Kind, Lines, Node};

const ROOT_KEYS: &[&str] = &[
    "app",
    "primary_region",
    "kill_signal",
    "kill_timeout",
    "swap_size_mb",
    "build",
    "env",
    "processes",
    "services",
    "http_service",
    "checks",
    "vm",
    "mounts",
    "deploy",
    "restart",
    "files",
    "experimental",
    "machine_config",
    "container",
    "metrics",
    "statics",
];
const ROOT_IGNORED: &[&str] = &["console_command", "host_dedication_id"];

/// Parse the text of a fly.toml. Returns the model and the warnings.
pub(crate) fn parse(text: &str, file: &Path) -> Result<(Model, Vec<Warning>), FlyTomlError> {
    let lines = Lines::new(text);
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let pos = e.span().map(|s| lines.pos(s.start));
        FlyTomlError::at(
            file,
            pos,
            "",
            format!("TOML syntax error: {}", e.message().trim()),
        )
    })?;
    let root_node = tree::from_document(&doc, &lines);
    let mut cx = Cx {
        file,
        warnings: Vec::new(),
    };
    let root = cx.table(&root_node, "", ROOT_KEYS, ROOT_IGNORED)?;
    let mut m = Model {
        app: root.string(&cx, "app")?,
        primary_region: root.string(&cx, "primary_region")?,
        ..Default::default()
    };
    read_stop(&cx, &root, &mut m)?;
    if let Some(n) = root.int_min(&cx, "swap_size_mb", 0)? {
        m.init.insert("swap_size_mb".into(), n.into());
    }
    if let Some(n) = root.node("build") {
        read_build(&mut cx, n, &mut m)?;
    }
    if let Some(n) = root.node("env") {
        read_env(&mut cx, n, &mut m)?;
    }
    if let Some(n) = root.node("processes") {
        read_processes(&mut cx, n, &mut m)?;
    }
    services::read_http_service(&mut cx, &root, &mut m)?;
    services::read_services(&mut cx, &root, &mut m)?;
    checks::read_checks(&mut cx, &root, &mut m)?;
    resources::read_vms(&mut cx, &root, &mut m)?;
    resources::read_mounts(&mut cx, &root, &mut m)?;
    if let Some(n) = root.node("deploy") {
        read_deploy(&mut cx, n, &mut m)?;
    }
    machine::read_restarts(&mut cx, &root, &mut m)?;
    machine::read_files(&mut cx, &root, &mut m)?;
    machine::read_machine_config(&mut cx, &root, &mut m)?;
    m.machine_config_json = m
        .machine_config
        .as_ref()
        .and_then(|mc| lines.inline_json_start(mc.pos));
    machine::read_metrics_statics(&mut cx, &root, &mut m)?;
    check_groups(&cx, &m)?;
    // In the order of the file, not the order sections were read.
    cx.warnings.sort_by_key(|w| (w.line, w.column));
    Ok((m, cx.warnings))
}

fn read_stop(cx: &Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    if let Some(sig) = root.str(cx, "kill_signal")? {
        if Signal::named(&sig.value).number().is_none() {
            return Err(cx.err(
                sig.pos,
                &sig.key,
                format!(
                    "unknown signal {:?} (expected a name like \"SIGINT\" or \"SIGTERM\")",
                    sig.value
                ),
            ));
        }
        m.stop_config.insert("signal".into(), sig.value.into());
    }
    if let Some(t) = root.duration(cx, "kill_timeout")? {
        m.stop_config.insert("timeout".into(), t);
    }
    Ok(())
}

fn read_build(cx: &mut Cx<'_>, node: &Node, m: &mut Model) -> R<()> {
    let t = cx.table(
        node,
        "build",
        &["image", "dockerfile", "builder", "buildpacks"],
        &[
            "build-target",
            "build_target",
            "ignorefile",
            "args",
            "settings",
            "builtin",
            "compose",
        ],
    )?;
    m.image = t.str(cx, "image")?.map(|a| a.value);
    if let Some(a) = &m.image
        && a.trim().is_empty()
    {
        return Err(cx.err(
            t.get("image").map_or(t.pos, |e| e.node.pos),
            "build.image",
            "must not be empty",
        ));
    }
    for key in ["dockerfile", "builder", "buildpacks"] {
        if let Some(e) = t.get(key) {
            m.build_source = Some(crate::read::At {
                value: key.to_owned(),
                key: t.key(key),
                pos: e.key_pos,
            });
            break;
        }
    }
    Ok(())
}

fn read_env(cx: &mut Cx<'_>, node: &Node, m: &mut Model) -> R<()> {
    let Kind::Table(entries) = &node.kind else {
        return Err(cx.expected(node, "env", "a table"));
    };
    for e in entries {
        let key = format!("env.{}", e.key);
        let value = match &e.node.kind {
            Kind::Str(s) => s.clone(),
            Kind::Int(n) => n.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Bool(b) => b.to_string(),
            _ => return Err(cx.expected(&e.node, &key, "a string")),
        };
        m.env.insert(e.key.clone(), value);
    }
    Ok(())
}

fn read_processes(cx: &mut Cx<'_>, node: &Node, m: &mut Model) -> R<()> {
    let Kind::Table(entries) = &node.kind else {
        return Err(cx.expected(node, "processes", "a table"));
    };
    for e in entries {
        let key = format!("processes.{}", e.key);
        if !valid_group_name(&e.key) {
            return Err(cx.err(
                e.key_pos,
                &key,
                "a process group name must be lowercase letters, digits, '-' and '_'",
            ));
        }
        let Kind::Str(command) = &e.node.kind else {
            return Err(cx.expected(&e.node, &key, "a command string"));
        };
        let argv = shell::split(command)
            .map_err(|err| cx.err(e.node.pos, &key, format!("cannot split the command: {err}")))?;
        m.processes.push(Process {
            name: crate::read::At {
                value: e.key.clone(),
                key: key.clone(),
                pos: e.key_pos,
            },
            argv,
        });
    }
    Ok(())
}

fn valid_group_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn read_deploy(cx: &mut Cx<'_>, node: &Node, m: &mut Model) -> R<()> {
    let t = cx.table(
        node,
        "deploy",
        &["strategy"],
        &[
            "release_command",
            "release_command_timeout",
            "release_command_vm",
            "max_unavailable",
            "wait_timeout",
            "max_concurrent",
        ],
    )?;
    if let Some(s) = t.str(cx, "strategy")? {
        m.strategy = DeployStrategy::parse(&s.value).ok_or_else(|| {
            cx.err(
                s.pos,
                &s.key,
                format!(
                    "unknown strategy {:?} (expected rolling, immediate, canary or bluegreen)",
                    s.value
                ),
            )
        })?;
    }
    Ok(())
}

/// Every `processes = [...]` must name a group of `[processes]` (or `app`
/// when there is no `[processes]`).
fn check_groups(cx: &Cx<'_>, m: &Model) -> R<()> {
    let groups = crate::groups(m);
    let mut lists: Vec<&[crate::read::At<String>]> = Vec::new();
    lists.extend(m.services.iter().map(|s| s.processes.as_slice()));
    lists.extend(m.checks.iter().map(|s| s.processes.as_slice()));
    lists.extend(m.vms.iter().map(|s| s.processes.as_slice()));
    lists.extend(m.mounts.iter().map(|s| s.processes.as_slice()));
    lists.extend(m.restarts.iter().map(|s| s.processes.as_slice()));
    lists.extend(m.files.iter().map(|s| s.processes.as_slice()));
    lists.extend(m.metrics.iter().map(|s| s.processes.as_slice()));
    for p in lists.into_iter().flatten() {
        if !groups.contains(&p.value) {
            return Err(cx.err(
                p.pos,
                &p.key,
                format!(
                    "unknown process group {:?} (this fly.toml has: {})",
                    p.value,
                    groups.join(", ")
                ),
            ));
        }
    }
    Ok(())
}
