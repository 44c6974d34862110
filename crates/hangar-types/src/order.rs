//! The order in which pilot starts and stops the containers of a machine.
//!
//! Containers are grouped in levels: level 0 holds the containers that depend
//! on nothing, level n those whose dependencies are all in earlier levels. The
//! containers of one level can start together once the previous level has
//! reached the conditions they wait for. Names are sorted inside a level, so the
//! order is the same on every run. Stopping goes level by level in reverse.
//!
//! Containers are known by [`ContainerConfig::effective_name`]. Dependencies on
//! names that are not in the list are ignored here (validation reports them);
//! a container without a usable name is left out; of two containers with the
//! same name the first is used.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::ContainerConfig;

/// The dependencies form a cycle: `cycle` lists it, first name repeated last.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dependency cycle {}", DisplayCycle(.cycle))]
pub struct CycleError {
    /// `["a", "b", "a"]` for a → b → a (a depends on b, b on a).
    pub cycle: Vec<String>,
}

struct DisplayCycle<'a>(&'a [String]);

impl fmt::Display for DisplayCycle<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" → "))
    }
}

/// Start order: topological levels, names sorted inside each level.
pub fn start_groups(containers: &[ContainerConfig]) -> Result<Vec<Vec<String>>, CycleError> {
    levels(&graph(containers, true))
}

/// Stop order: the start levels in reverse (dependents stop before what they
/// depend on).
pub fn stop_order(containers: &[ContainerConfig]) -> Result<Vec<Vec<String>>, CycleError> {
    let mut groups = start_groups(containers)?;
    groups.reverse();
    Ok(groups)
}

/// name → names it depends on (only names in the list). With `self_edges`
/// false, a container depending on itself is not counted (validation reports
/// that on its own).
pub(crate) fn graph(
    containers: &[ContainerConfig],
    self_edges: bool,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut firsts = Vec::new();
    for c in containers {
        if let Some(name) = c.effective_name()
            && !g.contains_key(&name)
        {
            g.insert(name.clone(), BTreeSet::new());
            firsts.push((name, c));
        }
    }
    for (name, c) in firsts {
        let deps: BTreeSet<String> = c
            .depends_on()
            .iter()
            .filter_map(|d| d.target())
            .filter(|t| g.contains_key(*t) && (self_edges || *t != name))
            .map(str::to_owned)
            .collect();
        g.insert(name, deps);
    }
    g
}

pub(crate) fn levels(
    g: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<Vec<String>>, CycleError> {
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    while placed.len() < g.len() {
        let level: Vec<String> = g
            .iter()
            .filter(|(n, deps)| {
                !placed.contains(n.as_str()) && deps.iter().all(|d| placed.contains(d.as_str()))
            })
            .map(|(n, _)| n.clone())
            .collect();
        if level.is_empty() {
            return Err(find_cycle(g, &placed));
        }
        for n in &level {
            placed.insert(g.get_key_value(n).map(|(k, _)| k.as_str()).unwrap_or(""));
        }
        out.push(level);
    }
    Ok(out)
}

/// Every unplaced node has an unplaced dependency, so walking "first unplaced
/// dependency" from the smallest unplaced name must come back to a node already
/// seen: that loop is a cycle. It is rotated to start at its smallest name.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>, placed: &BTreeSet<&str>) -> CycleError {
    let start = g
        .keys()
        .find(|n| !placed.contains(n.as_str()))
        .expect("an unplaced node exists");
    let mut path: Vec<&String> = vec![start];
    loop {
        let cur = path[path.len() - 1];
        let next = g[cur]
            .iter()
            .find(|d| !placed.contains(d.as_str()))
            .expect("an unplaced node has an unplaced dependency");
        if let Some(pos) = path.iter().position(|n| *n == next) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| (*s).clone()).collect();
            let min = cycle
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.cmp(b.1))
                .map(|(i, _)| i)
                .unwrap_or(0);
            cycle.rotate_left(min);
            cycle.push(cycle[0].clone());
            return CycleError { cycle };
        }
        path.push(next);
    }
}
