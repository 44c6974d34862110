//! `[http_service]` and `[[services]]` (ports, handlers, concurrency,
//! autostop/autostart; their checks are read in [`super::checks`]), each
//! turned into a Machines API `config.services[]` entry.

use serde_json::{Map, Value, json};

use super::checks::read_check;
use crate::model::{Model, Scoped};
use crate::read::{Cx, R, Tbl, to_json};
use crate::tree::{Kind, Node};

/// Handlers the proxy knows.
const HANDLERS: &[&str] = &["http", "tls", "pg_tls", "proxy_proto", "edge_http"];
const AUTOSTOP: &str = "\"stop\", \"suspend\", \"off\", true or false";

pub(super) fn read_http_service(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    let Some(node) = root.node("http_service") else {
        return Ok(());
    };
    let t = cx.table(
        node,
        "http_service",
        &[
            "internal_port",
            "force_https",
            "auto_stop_machines",
            "auto_start_machines",
            "min_machines_running",
            "processes",
            "concurrency",
            "checks",
            "http_options",
            "tls_options",
        ],
        &[],
    )?;
    let mut svc = Map::new();
    svc.insert("protocol".into(), "tcp".into());
    match t.port(cx, "internal_port")? {
        Some(p) => svc.insert("internal_port".into(), p.into()),
        None => {
            return Err(t.missing(
                cx,
                "internal_port",
                "required (the port the app listens on)",
            ));
        }
    };
    read_autoscaling(cx, &t, &mut svc)?;
    let mut http = Map::new();
    http.insert("port".into(), 80.into());
    http.insert("handlers".into(), json!(["http"]));
    if let Some(f) = t.bool(cx, "force_https")? {
        http.insert("force_https".into(), f.into());
    }
    let mut https = Map::new();
    https.insert("port".into(), 443.into());
    https.insert("handlers".into(), json!(["tls", "http"]));
    if let Some(o) = option_table(cx, &t, "http_options")? {
        http.insert("http_options".into(), o.clone());
        https.insert("http_options".into(), o);
    }
    if let Some(o) = option_table(cx, &t, "tls_options")? {
        https.insert("tls_options".into(), o);
    }
    svc.insert("ports".into(), json!([http, https]));
    read_concurrency(cx, &t, &mut svc)?;
    let mut checks = Vec::new();
    for (key, node) in t.tables(cx, "checks")? {
        checks.push(read_check(cx, node, &key, Some("http"))?.0);
    }
    if !checks.is_empty() {
        svc.insert("checks".into(), checks.into());
    }
    m.services.push(Scoped {
        processes: t.processes(cx)?,
        key: "http_service".into(),
        pos: t.pos,
        value: Value::Object(svc),
    });
    Ok(())
}

pub(super) fn read_services(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    for (key, node) in root.tables(cx, "services")? {
        let t = cx.table(
            node,
            &key,
            &[
                "internal_port",
                "protocol",
                "processes",
                "ports",
                "concurrency",
                "tcp_checks",
                "http_checks",
                "auto_stop_machines",
                "auto_start_machines",
                "min_machines_running",
            ],
            &["script_checks"],
        )?;
        let mut svc = Map::new();
        let protocol = match t.str(cx, "protocol")? {
            Some(p) if p.value != "tcp" && p.value != "udp" => {
                return Err(cx.err(
                    p.pos,
                    &p.key,
                    format!("unknown protocol {:?} (expected tcp or udp)", p.value),
                ));
            }
            Some(p) => p.value,
            None => "tcp".into(),
        };
        svc.insert("protocol".into(), protocol.into());
        match t.port(cx, "internal_port")? {
            Some(p) => svc.insert("internal_port".into(), p.into()),
            None => {
                return Err(t.missing(
                    cx,
                    "internal_port",
                    "required (the port the app listens on)",
                ));
            }
        };
        read_autoscaling(cx, &t, &mut svc)?;
        let mut ports = Vec::new();
        for (pkey, pnode) in t.tables(cx, "ports")? {
            ports.push(read_port(cx, pnode, &pkey)?);
        }
        if !ports.is_empty() {
            svc.insert("ports".into(), ports.into());
        }
        read_concurrency(cx, &t, &mut svc)?;
        let mut checks = Vec::new();
        for (ckey, cnode) in t.tables(cx, "tcp_checks")? {
            checks.push(read_check(cx, cnode, &ckey, Some("tcp"))?.0);
        }
        for (ckey, cnode) in t.tables(cx, "http_checks")? {
            checks.push(read_check(cx, cnode, &ckey, Some("http"))?.0);
        }
        if !checks.is_empty() {
            svc.insert("checks".into(), checks.into());
        }
        m.services.push(Scoped {
            processes: t.processes(cx)?,
            key,
            pos: t.pos,
            value: Value::Object(svc),
        });
    }
    Ok(())
}

/// `auto_stop_machines`, `auto_start_machines`, `min_machines_running`. When
/// neither autostop nor autostart is written, both are turned on (the machines
/// of a first deploy have autostop/autostart on).
fn read_autoscaling(cx: &mut Cx<'_>, t: &Tbl<'_>, svc: &mut Map<String, Value>) -> R<()> {
    let stop = match t.get("auto_stop_machines") {
        None => None,
        Some(e) => {
            let key = t.key("auto_stop_machines");
            Some(match &e.node.kind {
                Kind::Bool(b) => Value::Bool(*b),
                Kind::Str(s) if ["stop", "suspend", "off"].contains(&s.as_str()) => {
                    Value::String(s.clone())
                }
                Kind::Str(s) => {
                    return Err(cx.err(
                        e.node.pos,
                        &key,
                        format!("expected {AUTOSTOP}, found {s:?}"),
                    ));
                }
                _ => return Err(cx.expected(&e.node, &key, AUTOSTOP)),
            })
        }
    };
    let start = t.bool(cx, "auto_start_machines")?;
    match (stop, start) {
        (None, None) => {
            svc.insert("autostop".into(), "stop".into());
            svc.insert("autostart".into(), true.into());
        }
        (stop, start) => {
            if let Some(s) = stop {
                svc.insert("autostop".into(), s);
            }
            if let Some(s) = start {
                svc.insert("autostart".into(), s.into());
            }
        }
    }
    if let Some(n) = t.int_min(cx, "min_machines_running", 0)? {
        svc.insert("min_machines_running".into(), n.into());
    }
    Ok(())
}

fn read_concurrency(cx: &mut Cx<'_>, t: &Tbl<'_>, svc: &mut Map<String, Value>) -> R<()> {
    let Some(node) = t.node("concurrency") else {
        return Ok(());
    };
    let c = cx.table(
        node,
        &t.key("concurrency"),
        &["type", "soft_limit", "hard_limit"],
        &[],
    )?;
    let mut obj = Map::new();
    if let Some(ty) = c.str(cx, "type")? {
        if ty.value != "connections" && ty.value != "requests" {
            return Err(cx.err(
                ty.pos,
                &ty.key,
                format!(
                    "unknown concurrency type {:?} (expected connections or requests)",
                    ty.value
                ),
            ));
        }
        obj.insert("type".into(), ty.value.into());
    }
    let soft = c.int_min(cx, "soft_limit", 1)?;
    let hard = c.int_min(cx, "hard_limit", 1)?;
    if let (Some(s), Some(h)) = (soft, hard)
        && s > h
    {
        let pos = c.get("soft_limit").map_or(c.pos, |e| e.node.pos);
        return Err(cx.err(
            pos,
            &c.key("soft_limit"),
            format!("soft_limit ({s}) is above hard_limit ({h})"),
        ));
    }
    if let Some(s) = soft {
        obj.insert("soft_limit".into(), s.into());
    }
    if let Some(h) = hard {
        obj.insert("hard_limit".into(), h.into());
    }
    svc.insert("concurrency".into(), Value::Object(obj));
    Ok(())
}

fn read_port(cx: &mut Cx<'_>, node: &Node, key: &str) -> R<Value> {
    let t = cx.table(
        node,
        key,
        &[
            "port",
            "start_port",
            "end_port",
            "handlers",
            "force_https",
            "http_options",
            "tls_options",
            "proxy_proto_options",
        ],
        &[],
    )?;
    let mut obj = Map::new();
    let port = t.port(cx, "port")?;
    let start = t.port(cx, "start_port")?;
    let end = t.port(cx, "end_port")?;
    match (port, start, end) {
        (Some(p), None, None) => {
            obj.insert("port".into(), p.into());
        }
        (None, Some(s), Some(e)) if s <= e => {
            obj.insert("start_port".into(), s.into());
            obj.insert("end_port".into(), e.into());
        }
        (None, Some(s), Some(e)) => {
            let pos = t.get("start_port").map_or(t.pos, |x| x.node.pos);
            return Err(cx.err(
                pos,
                &t.key("start_port"),
                format!("start_port ({s}) is above end_port ({e})"),
            ));
        }
        (Some(_), _, _) => {
            return Err(cx.err(
                t.pos,
                key,
                "give either port or start_port and end_port, not both",
            ));
        }
        (None, _, _) => {
            return Err(cx.err(
                t.pos,
                &t.key("port"),
                "required (or start_port and end_port)",
            ));
        }
    }
    if let Some(h) = t.strings(cx, "handlers")? {
        for name in &h.value {
            if !HANDLERS.contains(&name.value.as_str()) {
                return Err(cx.err(
                    name.pos,
                    &name.key,
                    format!(
                        "unknown handler {:?} (expected one of {})",
                        name.value,
                        HANDLERS.join(", ")
                    ),
                ));
            }
        }
        let names: Vec<Value> = h.value.into_iter().map(|a| a.value.into()).collect();
        obj.insert("handlers".into(), names.into());
    }
    if let Some(f) = t.bool(cx, "force_https")? {
        obj.insert("force_https".into(), f.into());
    }
    for k in ["http_options", "tls_options", "proxy_proto_options"] {
        if let Some(o) = option_table(cx, &t, k)? {
            obj.insert(k.into(), o);
        }
    }
    Ok(Value::Object(obj))
}

/// A table of proxy options passed through as written.
fn option_table(cx: &Cx<'_>, t: &Tbl<'_>, key: &str) -> R<Option<Value>> {
    match t.get(key) {
        None => Ok(None),
        Some(e) if matches!(e.node.kind, Kind::Table(_)) => Ok(Some(to_json(&e.node))),
        Some(e) => Err(cx.expected(&e.node, &t.key(key), "a table")),
    }
}
