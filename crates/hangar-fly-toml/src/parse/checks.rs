//! Checks: the top-level `[checks.<name>]` (machine checks) and the checks of
//! services (`tcp_checks`, `http_checks`, `http_service.checks`).

use serde_json::{Map, Value, json};

use crate::model::{Model, Scoped};
use crate::read::{At, Cx, R, Tbl};
use crate::tree::{Kind, Node};

/// `[checks.<name>]`: machine checks.
pub(super) fn read_checks(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    let Some(node) = root.node("checks") else {
        return Ok(());
    };
    let Kind::Table(entries) = &node.kind else {
        return Err(cx.expected(node, "checks", "a table of named checks"));
    };
    for e in entries {
        let key = format!("checks.{}", e.key);
        let (check, processes) = read_check(cx, &e.node, &key, None)?;
        m.checks.push(Scoped {
            processes,
            key,
            pos: e.node.pos,
            value: (e.key.clone(), check),
        });
    }
    Ok(())
}

/// A check. `kind` is the type implied by where it is written (`tcp_checks`,
/// `http_checks`, `http_service.checks`); `None` for `[checks.<name>]`, which
/// must give `type` and `port` and may name `processes` (returned with it).
pub(super) fn read_check(
    cx: &mut Cx<'_>,
    node: &Node,
    key: &str,
    kind: Option<&str>,
) -> R<(Value, Vec<At<String>>)> {
    let machine_check = kind.is_none();
    let mut known = vec![
        "interval",
        "timeout",
        "grace_period",
        "method",
        "path",
        "protocol",
        "tls_skip_verify",
        "tls_server_name",
        "headers",
    ];
    if machine_check {
        known.extend(["type", "port", "processes"]);
    }
    let ignored: &[&str] = if machine_check {
        &[]
    } else {
        &["restart_limit"]
    };
    let t = cx.table(node, key, &known, ignored)?;
    let processes = if machine_check {
        t.processes(cx)?
    } else {
        Vec::new()
    };
    let mut obj = Map::new();
    let ty = match kind {
        Some(k) => k.to_owned(),
        None => match t.str(cx, "type")? {
            Some(ty) if ty.value == "tcp" || ty.value == "http" => ty.value,
            Some(ty) => {
                return Err(cx.err(
                    ty.pos,
                    &ty.key,
                    format!("unknown check type {:?} (expected tcp or http)", ty.value),
                ));
            }
            None => return Err(t.missing(cx, "type", "required (tcp or http)")),
        },
    };
    obj.insert("type".into(), ty.clone().into());
    if machine_check {
        match t.port(cx, "port")? {
            Some(p) => obj.insert("port".into(), p.into()),
            None => {
                return Err(t.missing(cx, "port", "required (the port in the machine to check)"));
            }
        };
    }
    for k in ["interval", "timeout", "grace_period"] {
        if let Some(d) = t.duration(cx, k)? {
            obj.insert(k.into(), d);
        }
    }
    let http_only = [
        "method",
        "path",
        "protocol",
        "tls_skip_verify",
        "tls_server_name",
        "headers",
    ];
    if ty == "tcp" {
        if let Some(k) = http_only.iter().find(|k| t.get(k).is_some()) {
            let e = t.get(k).map_or(t.pos, |e| e.key_pos);
            return Err(cx.err(e, &t.key(k), "only http checks take this key"));
        }
        return Ok((Value::Object(obj), processes));
    }
    if let Some(mth) = t.str(cx, "method")? {
        let upper = mth.value.to_ascii_uppercase();
        if !["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"].contains(&upper.as_str()) {
            return Err(cx.err(
                mth.pos,
                &mth.key,
                format!("unknown HTTP method {:?}", mth.value),
            ));
        }
        obj.insert("method".into(), mth.value.into());
    }
    match t.str(cx, "path")? {
        Some(p) if !p.value.starts_with('/') => {
            return Err(cx.err(
                p.pos,
                &p.key,
                format!("must start with / (got {:?})", p.value),
            ));
        }
        Some(p) => {
            obj.insert("path".into(), p.value.into());
        }
        None if machine_check => return Err(t.missing(cx, "path", "required for http checks")),
        None => {}
    }
    if let Some(p) = t.str(cx, "protocol")? {
        if p.value != "http" && p.value != "https" {
            return Err(cx.err(
                p.pos,
                &p.key,
                format!("unknown protocol {:?} (expected http or https)", p.value),
            ));
        }
        obj.insert("protocol".into(), p.value.into());
    }
    if let Some(b) = t.bool(cx, "tls_skip_verify")? {
        obj.insert("tls_skip_verify".into(), b.into());
    }
    if let Some(s) = t.string(cx, "tls_server_name")? {
        obj.insert("tls_server_name".into(), s.into());
    }
    if let Some(e) = t.get("headers") {
        let hkey = t.key("headers");
        let Kind::Table(entries) = &e.node.kind else {
            return Err(cx.expected(&e.node, &hkey, "a table of header names and values"));
        };
        let mut headers = Vec::new();
        for h in entries {
            let values: Vec<Value> = match &h.node.kind {
                Kind::Str(s) => vec![s.clone().into()],
                Kind::Array(items) => items
                    .iter()
                    .map(|n| match &n.kind {
                        Kind::Str(s) => Ok(Value::String(s.clone())),
                        _ => Err(cx.expected(n, &format!("{hkey}.{}", h.key), "a string")),
                    })
                    .collect::<R<_>>()?,
                _ => return Err(cx.expected(&h.node, &format!("{hkey}.{}", h.key), "a string")),
            };
            headers.push(json!({"name": h.key, "values": values}));
        }
        obj.insert("headers".into(), headers.into());
    }
    Ok((Value::Object(obj), processes))
}
