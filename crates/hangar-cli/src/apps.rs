//! `hangar apps create | list | destroy`.

use std::process::ExitCode;

use serde_json::json;

use crate::client::Client;
use crate::output::{print_json, print_list};
use crate::prompt::confirm;

/// `hangar apps ...`
#[derive(Debug, clap::Subcommand)]
pub enum AppsCommand {
    /// Create an app.
    #[command(after_help = concat!("Examples:\n  hangar apps create my-app\n  hangar apps create my-app --org personal\n\n", exit_codes!()))]
    Create {
        /// The app's name.
        name: String,
        /// The organization slug.
        #[arg(long, default_value = "personal")]
        org: String,
        /// Print the API's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List apps.
    #[command(alias = "ls", after_help = concat!("Examples:\n  hangar apps list\n  hangar apps list --json\n\n", exit_codes!()))]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Destroy an app (asks first; --yes does not).
    #[command(alias = "rm", after_help = concat!("Examples:\n  hangar apps destroy my-app --yes\n\n", exit_codes!()))]
    Destroy {
        /// The app's name.
        name: String,
        /// Do not ask.
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

pub async fn run(client: &Client, cmd: AppsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AppsCommand::Create { name, org, json } => {
            let app = client
                .post("/apps", &json!({"app_name": name, "org_slug": org}))
                .await?;
            if json {
                print_json(&app);
            } else {
                println!("New app created: {name}");
            }
        }
        AppsCommand::List { json } => {
            let apps = client.get("/apps").await?;
            print_list(
                &apps,
                "apps",
                json,
                &[
                    ("NAME", "/name"),
                    ("ORG", "/organization/slug"),
                    ("STATUS", "/status"),
                    ("MACHINES", "/machine_count"),
                    ("CREATED", "/created_at"),
                ],
            );
        }
        AppsCommand::Destroy { name, yes } => {
            if !yes && !confirm(&format!("Destroy app {name} and everything in it?")) {
                anyhow::bail!("not destroyed: not confirmed (pass --yes to skip the question)");
            }
            client.delete(&format!("/apps/{name}")).await?;
            println!("Destroyed app {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
