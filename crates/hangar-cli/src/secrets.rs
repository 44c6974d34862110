//! `hangar secrets set | list | unset`: values go to the API and are never
//! printed; lists show names, digests and times.

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use crate::client::Client;
use crate::output::print_list;
use crate::target::AppArgs;

/// `hangar secrets ...`
#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Set secrets (NAME=VALUE; VALUE `-` reads it from stdin).
    #[command(after_help = concat!("Examples:\n  hangar secrets set -a my-app DATABASE_URL=postgres://db/x API_KEY=abc\n  printf %s \"$KEY\" | hangar secrets set -a my-app API_KEY=-\n\n", exit_codes!()))]
    Set {
        #[command(flatten)]
        app: AppArgs,
        /// NAME=VALUE pairs.
        #[arg(required = true, value_name = "NAME=VALUE")]
        pairs: Vec<String>,
    },
    /// List secret names and digests (never values).
    #[command(alias = "ls", after_help = concat!("Examples:\n  hangar secrets list -a my-app\n  hangar secrets list -a my-app --json\n\n", exit_codes!()))]
    List {
        #[command(flatten)]
        app: AppArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove secrets.
    #[command(after_help = concat!("Examples:\n  hangar secrets unset -a my-app API_KEY OLD_TOKEN\n\n", exit_codes!()))]
    Unset {
        #[command(flatten)]
        app: AppArgs,
        /// Secret names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn parse_pairs(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut values = Map::new();
    for p in pairs {
        let Some((name, value)) = p.split_once('=') else {
            anyhow::bail!("{p:?}: expected NAME=VALUE");
        };
        if name.trim().is_empty() {
            anyhow::bail!("{p:?}: the name is empty");
        }
        let value = if value == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s.strip_suffix('\n').unwrap_or(&s).to_owned()
        } else {
            value.to_owned()
        };
        values.insert(name.trim().to_owned(), json!(value));
    }
    Ok(values)
}

pub async fn run(client: &Client, cmd: SecretsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SecretsCommand::Set { app, pairs } => {
            let app = app.resolve()?;
            let values = parse_pairs(&pairs)?;
            let names: Vec<String> = values.keys().cloned().collect();
            client
                .post(
                    &format!("/apps/{app}/secrets"),
                    &json!({"values": Value::Object(values)}),
                )
                .await?;
            println!("Set secrets in {app}: {}", names.join(", "));
        }
        SecretsCommand::List { app, json } => {
            let app = app.resolve()?;
            let s = client.get(&format!("/apps/{app}/secrets")).await?;
            print_list(
                &s,
                "secrets",
                json,
                &[
                    ("NAME", "/name"),
                    ("DIGEST", "/digest"),
                    ("UPDATED", "/updated_at"),
                ],
            );
        }
        SecretsCommand::Unset { app, names } => {
            let app = app.resolve()?;
            for n in &names {
                client.delete(&format!("/apps/{app}/secrets/{n}")).await?;
            }
            println!("Unset secrets in {app}: {}", names.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
