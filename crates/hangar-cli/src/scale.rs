//! `hangar scale count N [--region a,b,c] [--process-group g]` (seed 003):
//! clones an existing machine of the group into each region that needs more
//! and destroys extra ones (stopped first, then the newest). Standbys are not
//! counted.

use std::process::ExitCode;

use serde_json::Value;

use crate::client::Client;
use crate::machine::{clone_body, create_machine};
use crate::output::{Table, field, is_standby, print_json, process_group};
use crate::target::AppArgs;

/// `hangar scale ...`
#[derive(Debug, clap::Subcommand)]
pub enum ScaleCommand {
    /// Run N machines of a process group, spread evenly over --region.
    #[command(after_help = concat!("With --region, N is spread evenly: `count 6 --region ams,ewr,syd` runs two in\neach. Without it, machines are added in the region of an existing one.\n\nExamples:\n  hangar scale count 2 -a my-app\n  hangar scale count 6 -a my-app --region ams,ewr,syd\n  hangar scale count 1 -a my-app --process-group worker\n\n", exit_codes!()))]
    Count {
        #[command(flatten)]
        app: AppArgs,
        /// How many machines the group should have.
        count: usize,
        /// Regions to spread the machines over (comma-separated).
        #[arg(short = 'r', long, value_delimiter = ',')]
        region: Vec<String>,
        /// The process group (needed when the app has several).
        #[arg(short = 'g', long = "process-group")]
        process_group: Option<String>,
    },
    /// Show how many machines each process group runs where.
    #[command(after_help = concat!("Examples:\n  hangar scale show -a my-app\n  hangar scale show -a my-app --json\n\n", exit_codes!()))]
    Show {
        #[command(flatten)]
        app: AppArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `scale count` does: machines to add (by region) and to destroy.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<String>,
    pub destroy: Vec<String>,
}

/// `count` spread over `regions`: the first regions get one more when it
/// does not divide evenly.
fn spread(count: usize, regions: &[String]) -> Vec<(String, usize)> {
    let k = regions.len();
    regions
        .iter()
        .enumerate()
        .map(|(i, r)| (r.clone(), count / k + usize::from(i < count % k)))
        .collect()
}

/// Picks which machines to destroy: stopped ones first, then the newest.
fn extras(mut machines: Vec<&Value>, n: usize) -> Vec<String> {
    machines.sort_by_key(|m| {
        let running = field(m, "/state") == "started";
        (running, std::cmp::Reverse(field(m, "/created_at")))
    });
    machines.iter().take(n).map(|m| field(m, "/id")).collect()
}

/// The plan for a group's machines (standbys already left out).
pub fn plan(machines: &[Value], count: usize, regions: &[String]) -> Plan {
    let mut p = Plan::default();
    if regions.is_empty() {
        if machines.len() < count {
            let region = machines
                .first()
                .map(|m| field(m, "/region"))
                .unwrap_or_default();
            p.create = vec![region; count - machines.len()];
        } else {
            p.destroy = extras(machines.iter().collect(), machines.len() - count);
        }
        return p;
    }
    for (region, want) in spread(count, regions) {
        let here: Vec<&Value> = machines
            .iter()
            .filter(|m| field(m, "/region") == region)
            .collect();
        if here.len() < want {
            p.create
                .extend(std::iter::repeat_n(region.clone(), want - here.len()));
        } else {
            p.destroy.extend(extras(here.clone(), here.len() - want));
        }
    }
    p
}

async fn machines(client: &Client, app: &str) -> anyhow::Result<Vec<Value>> {
    let ms = client.get(&format!("/apps/{app}/machines")).await?;
    Ok(ms
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !matches!(field(m, "/state").as_str(), "destroyed" | "destroying"))
        .collect())
}

pub async fn run(client: &Client, cmd: ScaleCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ScaleCommand::Count {
            app,
            count,
            region,
            process_group: group,
        } => {
            let app = app.resolve()?;
            let all = machines(client, &app).await?;
            let mut groups: Vec<String> = all.iter().map(process_group).collect();
            groups.sort();
            groups.dedup();
            let group = match group {
                Some(g) => g,
                None if groups.len() > 1 => anyhow::bail!(
                    "--process-group: required, app {app} has several ({})",
                    groups.join(", ")
                ),
                None => groups.into_iter().next().unwrap_or_else(|| "app".into()),
            };
            let members: Vec<Value> = all
                .into_iter()
                .filter(|m| process_group(m) == group && !is_standby(m))
                .collect();
            let regions: Vec<String> = region
                .iter()
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect();
            let p = plan(&members, count, &regions);
            if p.create.is_empty() && p.destroy.is_empty() {
                println!("Process group {group} already runs {count} machines as asked");
                return Ok(ExitCode::SUCCESS);
            }
            if !p.create.is_empty() && members.is_empty() {
                anyhow::bail!(
                    "process group {group} of app {app} has no machine to copy: run or deploy one first"
                );
            }
            for region in &p.create {
                let template = members
                    .iter()
                    .find(|m| field(m, "/region") == *region)
                    .unwrap_or(&members[0]);
                let body = clone_body(template, Some(region), &[])?;
                let m = create_machine(client, &app, &body).await?;
                println!(
                    "+ created machine {} in {region} (group {group})",
                    field(&m, "/id")
                );
            }
            for id in &p.destroy {
                client
                    .delete(&format!("/apps/{app}/machines/{id}?force=true"))
                    .await?;
                println!("- destroyed machine {id} (group {group})");
            }
            println!("Process group {group} now has {count} machines");
        }
        ScaleCommand::Show { app, json } => {
            let app = app.resolve()?;
            let all = machines(client, &app).await?;
            let mut counts: std::collections::BTreeMap<(String, String), usize> =
                Default::default();
            for m in all.iter().filter(|m| !is_standby(m)) {
                *counts
                    .entry((process_group(m), field(m, "/region")))
                    .or_default() += 1;
            }
            if json {
                let rows: Vec<Value> = counts
                    .iter()
                    .map(|((g, r), n)| serde_json::json!({"process_group": g, "region": r, "count": n}))
                    .collect();
                print_json(&Value::Array(rows));
            } else {
                let mut t = Table::new(&["GROUP", "REGION", "COUNT"]);
                for ((g, r), n) in &counts {
                    t.row(vec![g.clone(), r.clone(), n.to_string()]);
                }
                t.print();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(id: &str, region: &str, state: &str, created: &str) -> Value {
        json!({"id": id, "region": region, "state": state, "created_at": created})
    }

    #[test]
    fn six_over_three_regions_is_two_each() {
        let regions: Vec<String> = ["ams", "ewr", "syd"].map(String::from).to_vec();
        let p = plan(&[m("a", "ams", "started", "1")], 6, &regions);
        assert_eq!(p.create, ["ams", "ewr", "ewr", "syd", "syd"]);
        assert!(p.destroy.is_empty());
        assert_eq!(spread(7, &regions)[0], ("ams".into(), 3));
    }

    #[test]
    fn extras_go_stopped_first_then_newest() {
        let ms = [
            m("old", "local", "started", "2026-01-01"),
            m("new", "local", "started", "2026-02-01"),
            m("stopped", "local", "stopped", "2025-01-01"),
        ];
        assert_eq!(plan(&ms, 1, &[]).destroy, ["stopped", "new"]);
        assert_eq!(plan(&ms, 4, &[]).create, ["local"]);
        assert_eq!(plan(&ms, 3, &[]), Plan::default());
    }
}
