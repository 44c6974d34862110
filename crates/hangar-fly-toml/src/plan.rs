//! The machine config of each process group: the `machine_config` base (if
//! any), then every fly.toml section that applies to the group, then files
//! read from disk; checked with hangar-types' parse + validate.

use std::path::Path;

use hangar_types::config::File;
use hangar_types::parse_machine_config_document;
use serde_json::{Map, Value};

use crate::error::{FlyTomlError, Pos};
use crate::machine_config;
use crate::model::{FileSource, Model, MountPlan, default_group};

/// Everything a deploy creates for one process group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    pub group: String,
    /// The Machines API `config` object for machines of this group, already
    /// checked with hangar-types' parse + validate. Volumes are not in it:
    /// their ids exist only once the deploy created them (see `mounts` and
    /// [`MountPlan::machine_mount`]).
    pub config: Value,
    pub has_services: bool,
    /// Volumes the group mounts (`[mounts]`).
    pub mounts: Vec<MountPlan>,
    /// Machines a first deploy creates: 1 for a group with volumes, 2 for a
    /// group with services (autostop/autostart on), else 1.
    pub first_deploy_machines: usize,
    /// Stopped standbys a first deploy adds (`standbys` = [id of the first
    /// machine]): 1 for a group without services and without volumes, else 0.
    pub first_deploy_standbys: usize,
}

/// Which fly.toml key a part of the JSON config came from.
struct Origins {
    list: Vec<(String, String, Option<Pos>)>,
    fallback: (String, Option<Pos>),
}

impl Origins {
    fn add(&mut self, json_path: String, key: &str, pos: Option<Pos>) {
        self.list.push((json_path, key.to_owned(), pos));
    }

    fn find(&self, path: &str) -> (&str, Option<Pos>) {
        self.list
            .iter()
            .filter(|(p, _, _)| {
                path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
            .max_by_key(|(p, _, _)| p.len())
            .map_or(
                (self.fallback.0.as_str(), self.fallback.1),
                |(_, k, pos)| (k.as_str(), *pos),
            )
    }
}

pub(crate) fn plan(
    m: &Model,
    file: &Path,
    dir: &Path,
    groups: &[String],
    image: &str,
) -> Result<Vec<GroupPlan>, FlyTomlError> {
    let base = match &m.machine_config {
        Some(mc) => Some(machine_config::load(file, dir, mc, m.machine_config_json)?),
        None => None,
    };
    let target = match &base {
        Some((typed, _)) if !typed.containers().is_empty() => {
            Some(target_container(file, m, typed)?)
        }
        _ => None,
    };
    let cx = GroupCx {
        m,
        file,
        dir,
        image,
        base: base.as_ref().map(|b| &b.1),
        target: target.as_ref(),
        default: default_group(groups),
    };
    groups.iter().map(|g| plan_group(&cx, g)).collect()
}

/// The container that runs the deployed image: `container`, else the one
/// named `app`, else the first.
fn target_container(
    file: &Path,
    m: &Model,
    typed: &hangar_types::MachineConfig,
) -> Result<(usize, String), FlyTomlError> {
    let names: Vec<String> = typed
        .containers()
        .iter()
        .map(|c| c.effective_name().unwrap_or_default())
        .collect();
    let index = match &m.container {
        Some(c) => names.iter().position(|n| *n == c.value).ok_or_else(|| {
            FlyTomlError::at(
                file,
                Some(c.pos),
                &c.key,
                format!(
                    "no container named {:?} in machine_config (it has: {})",
                    c.value,
                    names.join(", ")
                ),
            )
        }),
        None => Ok(names.iter().position(|n| n == "app").unwrap_or(0)),
    }?;
    Ok((index, names[index].clone()))
}

fn obj<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("just made an object")
}

fn arr<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().expect("just made an array")
}

/// What every group's plan shares.
struct GroupCx<'a> {
    m: &'a Model,
    file: &'a Path,
    dir: &'a Path,
    image: &'a str,
    /// The machine_config, as a JSON object.
    base: Option<&'a Map<String, Value>>,
    /// The container that runs the deployed image, and its name.
    target: Option<&'a (usize, String)>,
    /// The group sections without `processes` apply to.
    default: &'a str,
}

fn plan_group(cx: &GroupCx<'_>, group: &str) -> Result<GroupPlan, FlyTomlError> {
    let GroupCx {
        m,
        file,
        dir,
        image,
        base,
        target,
        default,
    } = *cx;
    let mut origins = Origins {
        list: Vec::new(),
        fallback: match &m.machine_config {
            Some(mc) => (mc.key.clone(), Some(mc.pos)),
            None => (String::new(), None),
        },
    };
    let mut c = base.cloned().unwrap_or_default();
    let process = m.processes.iter().find(|p| p.name.value == group);

    // Image, command and environment: on the target container of a
    // multi-container config, else on the machine.
    let mut env: Map<String, Value> = m
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    env.insert("FLY_PROCESS_GROUP".into(), group.into());
    if let Some(r) = &m.primary_region {
        env.insert("PRIMARY_REGION".into(), r.clone().into());
    }
    let mut init_cmds = Map::new();
    for k in ["cmd", "entrypoint", "exec"] {
        if let Some(v) = m.init.get(k) {
            init_cmds.insert(k.into(), v.clone());
        }
    }
    if let Some(p) = process {
        init_cmds.insert("cmd".into(), p.argv.clone().into());
    }
    let config_env = obj(&mut c, "env");
    for (k, v) in &env {
        config_env.insert(k.clone(), v.clone());
    }
    match target {
        Some((i, name)) => {
            let container = arr(&mut c, "containers")
                .get_mut(*i)
                .and_then(Value::as_object_mut)
                .expect("target container exists");
            // A container named after its image keeps its name (others may
            // depend on it) when its image is replaced.
            if container.get("name").is_none_or(Value::is_null) && !name.is_empty() {
                container.insert("name".into(), name.clone().into());
            }
            container.insert("image".into(), image.into());
            for (k, v) in init_cmds {
                container.insert(k, v);
            }
            let cenv = obj(container, "env");
            for (k, v) in env {
                cenv.entry(k).or_insert(v);
            }
            origins.add(format!("config.containers[{i}].image"), "build.image", None);
        }
        None => {
            c.insert("image".into(), image.into());
            origins.add("config.image".into(), "build.image", None);
            let init = obj(&mut c, "init");
            for (k, v) in init_cmds {
                init.insert(k, v);
            }
        }
    }
    if let Some(swap) = m.init.get("swap_size_mb") {
        obj(&mut c, "init").insert("swap_size_mb".into(), swap.clone());
        origins.add("config.init.swap_size_mb".into(), "swap_size_mb", None);
    }
    if c.get("init")
        .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
    {
        c.remove("init");
    }

    let meta = obj(&mut c, "metadata");
    meta.insert("fly_process_group".into(), group.into());
    meta.insert("fly_platform_version".into(), "v2".into());

    // One [[vm]] per group: the first naming it, else the first naming none.
    let vm = m
        .vms
        .iter()
        .find(|v| v.names(group))
        .or_else(|| m.vms.iter().find(|v| v.processes.is_empty()));
    if let Some(vm) = vm {
        let guest = obj(&mut c, "guest");
        for (k, v) in &vm.value {
            guest.insert(k.clone(), v.clone());
        }
        origins.add("config.guest".into(), &vm.key, Some(vm.pos));
    }

    for s in m.services.iter().filter(|s| s.applies_to(group, default)) {
        let services = arr(&mut c, "services");
        origins.add(
            format!("config.services[{}]", services.len()),
            &s.key,
            Some(s.pos),
        );
        services.push(s.value.clone());
    }
    let has_services = c
        .get("services")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());

    for ch in m.checks.iter().filter(|s| s.applies_to(group, default)) {
        let (name, check) = &ch.value;
        obj(&mut c, "checks").insert(name.clone(), check.clone());
        origins.add(format!("config.checks.{name}"), &ch.key, Some(ch.pos));
    }

    if let Some(r) = m
        .restarts
        .iter()
        .rev()
        .find(|r| r.applies_to(group, default))
    {
        c.insert("restart".into(), r.value.clone());
        origins.add("config.restart".into(), &r.key, Some(r.pos));
    }

    if !m.stop_config.is_empty() {
        let stop = obj(&mut c, "stop_config");
        for (k, v) in &m.stop_config {
            stop.insert(k.clone(), v.clone());
        }
        origins.add("config.stop_config".into(), "kill_signal", None);
    }

    for f in m.files.iter().filter(|f| f.applies_to(group, default)) {
        let entry = match &f.value.source {
            FileSource::Raw(r) => {
                serde_json::json!({"guest_path": f.value.guest_path, "raw_value": r})
            }
            FileSource::Secret(s) => {
                serde_json::json!({"guest_path": f.value.guest_path, "secret_name": s})
            }
            FileSource::Local(l) => {
                let path = dir.join(&l.value);
                let bytes = std::fs::read(&path).map_err(|e| {
                    FlyTomlError::at(
                        file,
                        Some(l.pos),
                        &l.key,
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                serde_json::to_value(File::from_bytes(&f.value.guest_path, &bytes))
                    .expect("a file serializes")
            }
        };
        let files = arr(&mut c, "files");
        origins.add(
            format!("config.files[{}]", files.len()),
            &f.key,
            Some(f.pos),
        );
        files.push(entry);
    }
    inline_local_files(&mut c, file, dir, &origins)?;

    if let Some(metrics) = m.metrics.iter().find(|x| x.applies_to(group, default)) {
        c.insert("metrics".into(), metrics.value.clone());
        origins.add("config.metrics".into(), &metrics.key, Some(metrics.pos));
    }
    if !m.statics.is_empty() {
        let statics = arr(&mut c, "statics");
        for (i, s) in m.statics.iter().enumerate() {
            origins.add(
                format!("config.statics[{}]", statics.len()),
                &format!("statics[{i}]"),
                None,
            );
            statics.push(s.clone());
        }
    }

    let config = Value::Object(c);
    check(&config, file, &origins)?;

    let mounts: Vec<MountPlan> = m
        .mounts
        .iter()
        .filter(|mt| mt.applies_to(group, default))
        .map(|mt| mt.value.clone())
        .collect();
    let (machines, standbys) = if !mounts.is_empty() {
        (1, 0)
    } else if has_services {
        (2, 0)
    } else {
        (1, 1)
    };
    Ok(GroupPlan {
        group: group.to_owned(),
        config,
        has_services,
        mounts,
        first_deploy_machines: machines,
        first_deploy_standbys: standbys,
    })
}

/// `local_path` files of the machine config (machine-level and each
/// container's) are read now, relative to the fly.toml's directory, and sent as
/// `raw_value`: the server cannot read the client's disk.
fn inline_local_files(
    c: &mut Map<String, Value>,
    file: &Path,
    dir: &Path,
    origins: &Origins,
) -> Result<(), FlyTomlError> {
    let mut lists: Vec<(String, &mut Vec<Value>)> = Vec::new();
    let (files, containers) = split_two(c, "files", "containers");
    if let Some(Value::Array(files)) = files {
        lists.push(("config.files".into(), files));
    }
    if let Some(Value::Array(containers)) = containers {
        for (i, ct) in containers.iter_mut().enumerate() {
            if let Some(Value::Array(files)) = ct.get_mut("files") {
                lists.push((format!("config.containers[{i}].files"), files));
            }
        }
    }
    for (path, files) in lists {
        for (j, f) in files.iter_mut().enumerate() {
            let Some(obj) = f.as_object_mut() else {
                continue;
            };
            let Some(Value::String(local)) = obj.get("local_path").cloned() else {
                continue;
            };
            let at = format!("{path}[{j}].local_path");
            let full = dir.join(&local);
            let bytes = std::fs::read(&full).map_err(|e| {
                let (key, pos) = origins.find(&at);
                FlyTomlError::at(
                    file,
                    pos,
                    key,
                    format!("{}: cannot read {}: {e}", strip_config(&at), full.display()),
                )
            })?;
            let encoded = File::from_bytes("/", &bytes).raw_value.unwrap_or_default();
            obj.remove("local_path");
            obj.insert("raw_value".into(), encoded.into());
        }
    }
    Ok(())
}

/// Two distinct entries of a map, mutably.
fn split_two<'a>(
    c: &'a mut Map<String, Value>,
    a: &str,
    b: &str,
) -> (Option<&'a mut Value>, Option<&'a mut Value>) {
    let mut first = None;
    let mut second = None;
    for (k, v) in c.iter_mut() {
        if k == a {
            first = Some(v);
        } else if k == b {
            second = Some(v);
        }
    }
    (first, second)
}

fn strip_config(path: &str) -> &str {
    path.strip_prefix("config.").unwrap_or(path)
}

/// hangar-types' parse + validate; the first problem becomes the error, named
/// by the fly.toml key its part of the config came from.
fn check(config: &Value, file: &Path, origins: &Origins) -> Result<(), FlyTomlError> {
    let text = config.to_string();
    let typed = parse_machine_config_document(&text).map_err(|e| {
        let (key, pos) = origins.find(&e.path);
        FlyTomlError::at(
            file,
            pos,
            key,
            format!("{}: {}", strip_config(&e.path), e.message),
        )
    })?;
    typed.validate().map_err(|problems| {
        let p = problems.iter().next().expect("an error has a problem");
        let (key, pos) = origins.find(&p.path);
        FlyTomlError::at(
            file,
            pos,
            key,
            format!("{}: {}", strip_config(&p.path), p.message),
        )
    })
}
