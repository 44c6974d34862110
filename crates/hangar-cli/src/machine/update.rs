//! `hangar machine update`: the new config is the old one with the flags
//! applied; the diff is shown as seed 004 shows it and confirmed before the
//! update (`--yes` skips the question).

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use super::CommonConfig;
use super::run::START_WAIT;
use crate::client::Client;
use crate::diff::diff_json;
use crate::flags::load_machine_config;
use crate::output::field;
use crate::prompt::confirm;
use crate::rewrite::ImageRewrites;
use crate::target::AppArgs;

/// `hangar machine update`
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// The machine's id.
    pub id: String,
    /// A new image.
    #[arg(short = 'i', long)]
    pub image: Option<String>,
    /// A new command (replaces init.cmd).
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "ARG")]
    pub command: Vec<String>,
    /// Apply without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Do not wait for the machine to start again.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub config: CommonConfig,
}

/// The config after the flags: `--machine-config` replaces the whole config
/// (keeping the image unless it sets one), then the image and flags apply.
fn new_config(old: &Value, args: &UpdateArgs) -> anyhow::Result<Value> {
    let mut config = match &args.config.machine_config {
        Some(m) => {
            let mut c = load_machine_config(m)?;
            if c.get("image").is_none()
                && c.get("containers").is_none()
                && let Some(i) = old.get("image")
            {
                c["image"] = i.clone();
            }
            c
        }
        None => old.clone(),
    };
    if let Some(i) = &args.image {
        config["image"] = json!(i);
    }
    if !args.command.is_empty() {
        config["init"]["cmd"] = json!(args.command);
    }
    args.config.flags.apply(&mut config)?;
    ImageRewrites::from_flags_and_env(&args.config.rewrite.image_rewrite)?.apply(&mut config);
    Ok(config)
}

pub async fn run(client: &Client, args: UpdateArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.resolve()?;
    let id = &args.id;
    let m = client.get(&format!("/apps/{app}/machines/{id}")).await?;
    let old = m.get("config").cloned().unwrap_or_else(|| json!({}));
    let new = new_config(&old, &args)?;
    let diff = diff_json(&old, &new);
    if diff.is_empty() {
        println!("No changes to apply to machine {id}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Configuration changes to be applied to machine: {id} ({})",
        field(&m, "/name")
    );
    print!("{diff}");
    if !args.yes && !confirm("Apply changes?") {
        anyhow::bail!("machine {id} not updated: not confirmed (pass --yes to skip the question)");
    }
    eprintln!("Updating machine {id}");
    let body =
        json!({"config": new, "current_version": m.get("version").cloned().unwrap_or(Value::Null)});
    client
        .post(&format!("/apps/{app}/machines/{id}"), &body)
        .await?;
    let was_running = matches!(field(&m, "/state").as_str(), "started" | "starting");
    if was_running && !args.detach {
        eprintln!("Waiting for machine {id} to start...");
        client
            .wait_for(&app, id, "started", START_WAIT)
            .await
            .with_context(|| format!("machine {id} did not start after the update"))?;
    }
    println!("Machine {id} updated successfully!");
    Ok(ExitCode::SUCCESS)
}
