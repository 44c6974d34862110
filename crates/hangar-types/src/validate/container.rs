//! Rules for `containers[]`: names, images, dependencies (targets, conditions,
//! cycles), health checks, files, restart and stop.

use std::collections::HashMap;

use super::machine::{
    validate_env_from, validate_files, validate_restart, validate_secrets, validate_stop,
};
use super::{CONTAINER_NAME_MAX_LEN, Problems, checks};
use crate::config::{ContainerConfig, DependencyCondition};
use crate::order;

pub(super) fn validate_containers(containers: &[ContainerConfig], at: &str, p: &mut Problems) {
    // Name → index of the first container with it.
    let mut first_with: HashMap<String, usize> = HashMap::new();
    for (i, c) in containers.iter().enumerate() {
        let cp = format!("{at}[{i}]");
        match c.image.as_deref() {
            None => p.push(format!("{cp}.image"), "an image is required"),
            Some("") => p.push(format!("{cp}.image"), "must not be empty"),
            Some(_) => {}
        }
        match c.effective_name() {
            None => {
                if c.image.as_deref().is_some_and(|i| !i.is_empty()) {
                    p.push(
                        format!("{cp}.name"),
                        "a name is required (none can be derived from the image)",
                    )
                }
            }
            Some(name) => {
                let name_path = if c.name.as_deref().is_some_and(|n| !n.is_empty()) {
                    format!("{cp}.name")
                } else {
                    format!("{cp}.image")
                };
                if let Some(msg) = bad_container_name(&name) {
                    p.push(name_path.clone(), msg);
                }
                if let Some(first) = first_with.get(&name) {
                    p.push(
                        name_path,
                        format!("duplicate container name {name:?} (also {at}[{first}])"),
                    );
                } else {
                    first_with.insert(name, i);
                }
            }
        }
    }

    for (i, c) in containers.iter().enumerate() {
        let cp = format!("{at}[{i}]");
        let me = c.effective_name();
        for (k, d) in c.depends_on().iter().enumerate() {
            let dp = format!("{cp}.depends_on[{k}]");
            if let (Some(n), Some(cn)) = (d.name.as_deref(), d.container.as_deref())
                && n != cn
            {
                p.push(
                    dp.clone(),
                    format!("\"name\" ({n:?}) and \"container\" ({cn:?}) disagree"),
                );
                continue;
            }
            let Some(target) = d.target() else {
                p.push(
                    dp.clone(),
                    "missing the container to wait for (give \"name\")",
                );
                continue;
            };
            let target_index = first_with.get(target).copied();
            if me.as_deref() == Some(target) {
                p.push(
                    dp.clone(),
                    format!("container {target:?} depends on itself"),
                );
            } else if target_index.is_none() {
                p.push(dp.clone(), format!("no container named {target:?}"));
            }
            match &d.condition {
                Some(DependencyCondition::Unknown(s)) => p.push(
                    format!("{dp}.condition"),
                    format!(
                        "unknown condition {s:?} (expected started, healthy or exited_successfully)"
                    ),
                ),
                Some(DependencyCondition::Healthy) => {
                    if let Some(t) = target_index
                        && !containers[t].has_health_checks()
                    {
                        p.push(
                            format!("{dp}.condition"),
                            format!(
                                "container {target:?} has no health checks, so it can never be healthy"
                            ),
                        );
                    }
                }
                _ => {}
            }
        }

        match (&c.healthchecks, &c.health_checks) {
            (Some(_), Some(_)) => p.push(
                cp.clone(),
                "give health checks under \"healthchecks\" or \"health_checks\", not both",
            ),
            (Some(hc), None) => {
                checks::validate_health_checks(hc, &format!("{cp}.healthchecks"), p)
            }
            (None, Some(hc)) => {
                checks::validate_health_checks(hc, &format!("{cp}.health_checks"), p)
            }
            (None, None) => {}
        }
        validate_files(c.files(), &format!("{cp}.files"), p);
        validate_env_from(c.env_from.as_deref(), &cp, p);
        validate_secrets(c.secrets.as_deref(), &cp, p);
        if let Some(r) = &c.restart {
            validate_restart(r, &format!("{cp}.restart"), p);
        }
        if let Some(s) = &c.stop {
            validate_stop(s, &format!("{cp}.stop"), p);
        }
    }

    if let Err(e) = order::levels(&order::graph(containers, false)) {
        p.push(at, e.to_string());
    }
}

/// Container names become directory and cgroup names: letters, digits, `-`,
/// `_` and `.`, not starting with `.` or `-`, at most 63 characters.
fn bad_container_name(name: &str) -> Option<String> {
    if name.len() > CONTAINER_NAME_MAX_LEN {
        return Some(format!(
            "container name {name:?} is longer than {CONTAINER_NAME_MAX_LEN} characters"
        ));
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok_chars || name.starts_with('.') || name.starts_with('-') {
        return Some(format!(
            "invalid container name {name:?} (use letters, digits, '-', '_' and '.', not starting with '.' or '-')"
        ));
    }
    None
}
