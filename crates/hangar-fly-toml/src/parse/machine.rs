//! `[[restart]]`, `[[files]]`, `[experimental]` (cmd, entrypoint, exec,
//! machine_config, container), `[metrics]` and `[[statics]]`.

use hangar_types::config::{RestartMode, decode_base64};
use serde_json::{Map, Value};

use crate::model::{FileSource, FileSpec, Model, Scoped};
use crate::read::{Cx, R, Tbl};
use crate::shell;
use crate::tree::Kind;

pub(super) fn read_restarts(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
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

pub(super) fn read_files(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
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

pub(super) fn read_machine_config(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
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

pub(super) fn read_metrics_statics(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    for (key, node) in root.tables(cx, "metrics")? {
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
        m.metrics.push(Scoped {
            processes: t.processes(cx)?,
            key,
            pos: t.pos,
            value: Value::Object(obj),
        });
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
