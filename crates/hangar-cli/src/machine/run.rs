//! `hangar machine run` (create and start from an image or a machine config,
//! with the flags of seeds 000/004) and `hangar machine create -f FILE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use super::{CommonConfig, RewriteArgs, file_dir};
use crate::client::Client;
use crate::flags::{inline_local_files, load_machine_config, unwrap_config};
use crate::output::{field, print_json};
use crate::rewrite::ImageRewrites;
use crate::target::AppArgs;

/// How long `run` waits for a new machine to start (image pulls included).
pub const START_WAIT: Duration = Duration::from_secs(300);

/// `hangar machine run`
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// The image (optional with --machine-config; `ubuntu` with --shell).
    pub image: Option<String>,
    /// The command to run instead of the image's (after the image, or after `--`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
    /// The machine's name.
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// The region to run in.
    #[arg(short = 'r', long)]
    pub region: Option<String>,
    /// Destroy the machine when it exits (and do not restart it).
    #[arg(long)]
    pub rm: bool,
    /// Open a shell in a throwaway machine; the machine (and its app, when one
    /// was made for it) is destroyed when the shell exits. Each line runs as
    /// `sh -c LINE` in the machine; `exit` or end of input ends it.
    #[arg(long)]
    pub shell: bool,
    /// Do not wait for the machine to start.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Print the machine as JSON when done.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: CommonConfig,
}

/// `hangar machine create`
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// The JSON file: a machine config, or a request body with `config`.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
    /// The machine's name (else the file's `name`).
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// The region (else the file's `region`).
    #[arg(short = 'r', long)]
    pub region: Option<String>,
    /// Print the machine as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub rewrite: RewriteArgs,
}

/// `POST /apps/{app}/machines` with `body`; the new machine.
pub async fn create_machine(client: &Client, app: &str, body: &Value) -> anyhow::Result<Value> {
    Ok(client.post(&format!("/apps/{app}/machines"), body).await?)
}

/// The config `run` sends: --machine-config, then the image, command and flags.
fn build_config(args: &RunArgs) -> anyhow::Result<Value> {
    let mut config = match &args.config.machine_config {
        Some(m) => load_machine_config(m)?,
        None => json!({}),
    };
    let image = match (&args.image, args.shell) {
        (Some(i), _) => Some(i.clone()),
        (None, true) if config.get("containers").is_none() => Some("ubuntu".to_owned()),
        (None, _) => None,
    };
    if let Some(i) = image {
        config["image"] = json!(i);
    }
    let has_containers = config
        .get("containers")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    if config.get("image").is_none() && !has_containers {
        anyhow::bail!(
            "IMAGE: required (or --machine-config with a containers array whose entries name an image)"
        );
    }
    if !args.command.is_empty() {
        config["init"]["cmd"] = json!(args.command);
    }
    args.config.flags.apply(&mut config)?;
    if args.rm {
        config["auto_destroy"] = json!(true);
        if args.config.flags.restart.is_none() {
            config["restart"] = json!({"policy": "no"});
        }
    }
    if args.shell && args.command.is_empty() && config.pointer("/init/cmd").is_none() {
        // Something long-running for the shell's commands to run next to.
        config["init"]["entrypoint"] = json!(["/bin/sh"]);
        config["init"]["cmd"] = json!(["-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]);
    }
    ImageRewrites::from_flags_and_env(&args.config.rewrite.image_rewrite)?.apply(&mut config);
    Ok(config)
}

pub async fn run(client: &Client, args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = build_config(&args)?;
    if args.shell {
        let app = args.app.resolve().ok();
        return super::shell::shell(client, app, config, args.region).await;
    }
    let app = args.app.resolve()?;
    let standby = config
        .get("standbys")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let mut body = json!({"config": config});
    if let Some(n) = &args.name {
        body["name"] = json!(n);
    }
    if let Some(r) = &args.region {
        body["region"] = json!(r);
    }
    if standby {
        // A standby stays stopped until the machines it watches fail.
        body["skip_launch"] = json!(true);
    }
    let m = create_machine(client, &app, &body).await?;
    let id = field(&m, "/id");
    eprintln!("Machine ID: {id}");
    if standby {
        eprintln!("Machine {id} is a standby: created, not started");
    } else if !args.detach {
        eprintln!("Waiting for machine {id} to start...");
        client
            .wait_for(&app, &id, "started", START_WAIT)
            .await
            .with_context(|| format!("machine {id} did not start"))?;
        eprintln!("Machine {id} is started");
    }
    if args.json {
        print_json(&client.get(&format!("/apps/{app}/machines/{id}")).await?);
    } else {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn create(client: &Client, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let app = args.app.resolve()?;
    let shown = args.file.display().to_string();
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("-f {shown}: reading"))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("-f {shown}: not JSON"))?;
    let mut body = match doc {
        Value::Object(ref o) if o.get("config").is_some_and(Value::is_object) => doc,
        other => {
            json!({"config": unwrap_config(other).map_err(|p| anyhow::anyhow!("-f {shown}: {p}"))?})
        }
    };
    let config = body
        .get_mut("config")
        .expect("the body was built with a config");
    inline_local_files(config, &file_dir(&args.file))
        .map_err(|p| anyhow::anyhow!("-f {shown}: {p}"))?;
    ImageRewrites::from_flags_and_env(&args.rewrite.image_rewrite)?.apply(config);
    if let Some(n) = args.name {
        body["name"] = json!(n);
    }
    if let Some(r) = args.region {
        body["region"] = json!(r);
    }
    body["skip_launch"] = json!(true);
    let m = create_machine(client, &app, &body).await?;
    if args.json {
        print_json(&m);
    } else {
        let id = field(&m, "/id");
        eprintln!("Machine {id} created (not started: hangar machine start -a {app} {id})");
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}
