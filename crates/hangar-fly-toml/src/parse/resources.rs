//! `[[vm]]` (size presets, cpus, cpu_kind, memory) → `config.guest` fields,
//! and `[mounts]` → the volumes each group mounts.

use serde_json::{Map, Value};

use crate::model::{Model, MountPlan, Scoped};
use crate::read::{Cx, R, Tbl};
use crate::tree::Kind;
use crate::units::{VM_PRESETS, parse_size_mb, vm_preset};

pub(super) fn read_vms(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    for (key, node) in root.tables(cx, "vm")? {
        let t = cx.table(
            node,
            &key,
            &[
                "size",
                "memory",
                "memory_mb",
                "cpus",
                "cpu_kind",
                "gpus",
                "gpu_kind",
                "kernel_args",
                "host_dedication_id",
                "persist_rootfs",
                "processes",
            ],
            &[],
        )?;
        let mut guest = Map::new();
        if let Some(size) = t.str(cx, "size")? {
            let Some(p) = vm_preset(&size.value) else {
                let names: Vec<&str> = VM_PRESETS.iter().map(|p| p.name).collect();
                return Err(cx.err(
                    size.pos,
                    &size.key,
                    format!(
                        "unknown size {:?} (expected one of {})",
                        size.value,
                        names.join(", ")
                    ),
                ));
            };
            guest.insert("cpu_kind".into(), p.cpu_kind.into());
            guest.insert("cpus".into(), p.cpus.into());
            guest.insert("memory_mb".into(), p.memory_mb.into());
        }
        if let Some(kind) = t.str(cx, "cpu_kind")? {
            if kind.value != "shared" && kind.value != "performance" {
                return Err(cx.err(
                    kind.pos,
                    &kind.key,
                    format!(
                        "unknown cpu kind {:?} (expected shared or performance)",
                        kind.value
                    ),
                ));
            }
            guest.insert("cpu_kind".into(), kind.value.into());
        }
        if let Some(n) = t.int_min(cx, "cpus", 1)? {
            guest.insert("cpus".into(), n.into());
        }
        if t.get("memory").is_some() && t.get("memory_mb").is_some() {
            let pos = t.get("memory_mb").map_or(t.pos, |e| e.key_pos);
            return Err(cx.err(
                pos,
                &t.key("memory_mb"),
                "give memory or memory_mb, not both",
            ));
        }
        if let Some(e) = t.get("memory") {
            let mkey = t.key("memory");
            let mb = match &e.node.kind {
                Kind::Int(n) => *n,
                Kind::Str(s) => parse_size_mb(s, 1.0).ok_or_else(|| {
                    cx.err(
                        e.node.pos,
                        &mkey,
                        format!(
                            "invalid memory size {s:?} (expected a size like \"512mb\" or \"1gb\")"
                        ),
                    )
                })?,
                _ => return Err(cx.expected(&e.node, &mkey, "a size like \"512mb\" or \"1gb\"")),
            };
            if mb < 1 {
                return Err(cx.err(
                    e.node.pos,
                    &mkey,
                    format!("must be at least 1 MB (got {mb})"),
                ));
            }
            guest.insert("memory_mb".into(), mb.into());
        }
        if let Some(n) = t.int_min(cx, "memory_mb", 1)? {
            guest.insert("memory_mb".into(), n.into());
        }
        if let Some(n) = t.int_min(cx, "gpus", 0)? {
            guest.insert("gpus".into(), n.into());
        }
        for k in ["gpu_kind", "host_dedication_id", "persist_rootfs"] {
            if let Some(v) = t.string(cx, k)? {
                guest.insert(k.into(), v.into());
            }
        }
        if let Some(args) = t.strings(cx, "kernel_args")? {
            let v: Vec<Value> = args.value.into_iter().map(|a| a.value.into()).collect();
            guest.insert("kernel_args".into(), v.into());
        }
        m.vms.push(Scoped {
            processes: t.processes(cx)?,
            key,
            pos: t.pos,
            value: guest,
        });
    }
    Ok(())
}

pub(super) fn read_mounts(cx: &mut Cx<'_>, root: &Tbl<'_>, m: &mut Model) -> R<()> {
    for (key, node) in root.tables(cx, "mounts")? {
        let t = cx.table(
            node,
            &key,
            &["source", "destination", "initial_size", "processes"],
            &[
                "auto_extend_size_threshold",
                "auto_extend_size_increment",
                "auto_extend_size_limit",
                "snapshot_retention",
                "scheduled_snapshots",
            ],
        )?;
        let source = match t.str(cx, "source")? {
            Some(s) if s.value.is_empty() => {
                return Err(cx.err(s.pos, &s.key, "must not be empty"));
            }
            Some(s) => s.value,
            None => return Err(t.missing(cx, "source", "required (the volume name)")),
        };
        let destination = match t.str(cx, "destination")? {
            Some(d) if !d.value.starts_with('/') => {
                return Err(cx.err(
                    d.pos,
                    &d.key,
                    format!("must be an absolute path (got {:?})", d.value),
                ));
            }
            Some(d) => d.value,
            None => {
                return Err(t.missing(cx, "destination", "required (where the volume is mounted)"));
            }
        };
        let initial_size_gb = match t.get("initial_size") {
            None => None,
            Some(e) => {
                let skey = t.key("initial_size");
                let mb = match &e.node.kind {
                    Kind::Int(n) => n.checked_mul(1024),
                    Kind::Str(s) => parse_size_mb(s, 1024.0),
                    _ => return Err(cx.expected(&e.node, &skey, "a size like \"10gb\"")),
                };
                match mb {
                    Some(mb) if mb >= 1 => Some((mb as u64).div_ceil(1024)),
                    _ => {
                        let shown = match &e.node.kind {
                            Kind::Str(s) => format!("{s:?}"),
                            other => crate::read::to_json(&crate::tree::Node {
                                kind: other.clone(),
                                pos: e.node.pos,
                            })
                            .to_string(),
                        };
                        return Err(cx.err(
                            e.node.pos,
                            &skey,
                            format!("invalid volume size {shown} (expected a size like \"10gb\", at least 1gb)"),
                        ));
                    }
                }
            }
        };
        m.mounts.push(Scoped {
            processes: t.processes(cx)?,
            key,
            pos: t.pos,
            value: MountPlan {
                source,
                destination,
                initial_size_gb,
            },
        });
    }
    Ok(())
}
