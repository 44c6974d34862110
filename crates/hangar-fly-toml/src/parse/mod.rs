//! fly.toml text → [`Model`]: the root keys, `[build]`, `[env]`,
//! `[processes]`, `[deploy]`, `[[restart]]`, `[[files]]`, `[experimental]`,
//! `[metrics]` and `[[statics]]`. Services and checks are in [`services`],
//! `[[vm]]` and `[mounts]` in [`resources`].

mod resources;
mod services;

use std::path::Path;

use hangar_types::config::{RestartMode, Signal, decode_base64};
use serde_json::{Map, Value};

use crate::error::{FlyTomlError, Warning};
use crate::model::{DeployStrategy, FileSource, FileSpec, Model, Process, Scoped};
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
    services::read_checks(&mut cx, &root, &mut m)?;
    resources::read_vms(&mut cx, &root, &mut m)?;
    resources::read_mounts(&mut cx, &root, &mut m)?;
    if let Some(n) = root.node("deploy") {
        read_deploy(&mut cx, n, &mut m)?;
    }
    read_restarts(&mut cx, &root, &mut m)?;
    read_files(&mut cx, &root, &mut m)?;
    read_machine_config(&mut cx, &root, &mut m)?;
    read_metrics_statics(&mut cx, &root, &mut m)?;
    check_groups(&cx, &m)?;
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

fn read_restarts(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    for (key, node) in root.tables(cx, "restart")? {
        let t = cx.table(
            node,
            &key,
            &["policy", "max_retries", "retries", "processes"],
            &[],
        )?;
        let mut obj = Map::new();
        match t.str(cx, "policy")? {
            Some(p) => {
                // `on-fail` is flyctl's spelling of the API's `on-failure`.
                let policy = if p.value == "on-fail" {
                    "on-failure".to_owned()
                } else {
                    p.value.clone()
                };
                let mode = RestartMode::from(policy.as_str());
                if !mode.is_known() {
                    return Err(cx.err(
                        p.pos,
                        &p.key,
                        format!(
                            "unknown restart policy {:?} (expected always, never or on-failure)",
                            p.value
                        ),
                    ));
                }
                obj.insert("policy".into(), policy.into());
            }
            None => return Err(t.missing(cx, "policy", "required (always, never or on-failure)")),
        }
        let retries = match t.int_min(cx, "max_retries", 0)? {
            Some(n) => Some(n),
            None => t.int_min(cx, "retries", 0)?,
        };
        if let Some(n) = retries {
            obj.insert("max_retries".into(), n.into());
        }
        m.restarts.push(Scoped {
            processes: t.processes(cx)?,
            key,
            pos: t.pos,
            value: Value::Object(obj),
        });
    }
    Ok(())
}

fn read_files(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    for (key, node) in root.tables(cx, "files")? {
        let t = cx.table(
            node,
            &key,
            &[
                "guest_path",
                "local_path",
                "raw_value",
                "secret_name",
                "processes",
            ],
            &[],
        )?;
        let guest_path = match t.str(cx, "guest_path")? {
            Some(g) if !g.value.starts_with('/') => {
                return Err(cx.err(
                    g.pos,
                    &g.key,
                    format!("must be an absolute path (got {:?})", g.value),
                ));
            }
            Some(g) => g.value,
            None => return Err(t.missing(cx, "guest_path", "required")),
        };
        let mut sources = Vec::new();
        if let Some(l) = t.str(cx, "local_path")? {
            sources.push(FileSource::Local(l));
        }
        if let Some(r) = t.str(cx, "raw_value")? {
            if decode_base64(&r.value).is_err() {
                return Err(cx.err(r.pos, &r.key, "must be base64-encoded"));
            }
            sources.push(FileSource::Raw(r.value));
        }
        if let Some(s) = t.str(cx, "secret_name")? {
            sources.push(FileSource::Secret(s.value));
        }
        if sources.len() != 1 {
            return Err(cx.err(
                t.pos,
                &key,
                "give exactly one of local_path, raw_value or secret_name",
            ));
        }
        m.files.push(Scoped {
            processes: t.processes(cx)?,
            key,
            pos: t.pos,
            value: FileSpec {
                guest_path,
                source: sources.remove(0),
            },
        });
    }
    Ok(())
}

fn read_machine_config(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    m.machine_config = root.str(cx, "machine_config")?;
    m.container = root.str(cx, "container")?;
    let Some(node) = root.node("experimental") else {
        return Ok(());
    };
    let t = cx.table(
        node,
        "experimental",
        &["cmd", "entrypoint", "exec", "machine_config", "container"],
        &[
            "auto_rollback",
            "enable_consul",
            "enable_etcd",
            "lazy_load_images",
            "private_network",
            "attached",
            "allowed_public_ports",
        ],
    )?;
    for key in ["cmd", "entrypoint", "exec"] {
        let Some(e) = t.get(key) else { continue };
        let argv = match &e.node.kind {
            Kind::Str(s) => shell::split(s).map_err(|err| {
                cx.err(
                    e.node.pos,
                    &t.key(key),
                    format!("cannot split the command: {err}"),
                )
            })?,
            _ => t
                .strings(cx, key)?
                .map(|a| a.value.into_iter().map(|s| s.value).collect())
                .unwrap_or_default(),
        };
        m.init.insert(key.into(), argv.into());
    }
    for (key, slot) in [
        ("machine_config", &mut m.machine_config),
        ("container", &mut m.container),
    ] {
        if let Some(v) = t.str(cx, key)? {
            if slot.is_some() {
                return Err(cx.err(
                    v.pos,
                    &v.key,
                    format!("{key} is given both at the top level and in [experimental]; keep one"),
                ));
            }
            *slot = Some(v);
        }
    }
    Ok(())
}

fn read_metrics_statics(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    if let Some((key, node)) = root.tables(cx, "metrics")?.into_iter().next() {
        let t = cx.table(node, &key, &["port", "path", "https", "processes"], &[])?;
        let mut obj = Map::new();
        match t.port(cx, "port")? {
            Some(p) => obj.insert("port".into(), p.into()),
            None => return Err(t.missing(cx, "port", "required")),
        };
        if let Some(p) = t.string(cx, "path")? {
            obj.insert("path".into(), p.into());
        }
        if let Some(h) = t.bool(cx, "https")? {
            obj.insert("https".into(), h.into());
        }
        m.metrics = Some(Value::Object(obj));
    }
    for (key, node) in root.tables(cx, "statics")? {
        let t = cx.table(
            node,
            &key,
            &[
                "guest_path",
                "url_prefix",
                "tigris_bucket",
                "index_document",
            ],
            &[],
        )?;
        let mut obj = Map::new();
        for k in ["guest_path", "url_prefix"] {
            match t.string(cx, k)? {
                Some(v) => obj.insert(k.into(), v.into()),
                None => return Err(t.missing(cx, k, "required")),
            };
        }
        for k in ["tigris_bucket", "index_document"] {
            if let Some(v) = t.string(cx, k)? {
                obj.insert(k.into(), v.into());
            }
        }
        m.statics.push(Value::Object(obj));
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
