//! `hangar status`: an app and its machines, by process group.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::client::Client;
use crate::machine::{MACHINE_HEADER, machine_row};
use crate::output::{Table, field, print_json, process_group};
use crate::target::AppArgs;

/// `hangar status`
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Print JSON ({"app": ..., "machines": [...]}).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(client: &Client, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.resolve()?;
    let a = client.get(&format!("/apps/{app}")).await?;
    let ms = client.get(&format!("/apps/{app}/machines")).await?;
    let mut machines = ms.as_array().cloned().unwrap_or_default();
    if args.json {
        print_json(&json!({"app": a, "machines": machines}));
        return Ok(ExitCode::SUCCESS);
    }
    println!("App:      {}", field(&a, "/name"));
    println!("Org:      {}", field(&a, "/organization/slug"));
    println!("Status:   {}", field(&a, "/status"));
    println!("Machines: {}", machines.len());
    if machines.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    machines.sort_by_key(|m: &Value| (process_group(m), field(m, "/region"), field(m, "/id")));
    println!();
    let mut t = Table::new(MACHINE_HEADER);
    for m in &machines {
        t.row(machine_row(m));
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}
