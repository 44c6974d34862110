//! `hangar tokens create | list | revoke` (needs an admin token).

use std::process::ExitCode;

use serde_json::json;

use crate::client::Client;
use crate::output::{field, print_json, print_list};

/// `hangar tokens ...`
#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Create a token; it is printed once and cannot be shown again.
    #[command(after_help = concat!("Examples:\n  hangar tokens create --name ci\n  hangar tokens create --name ops --admin --json\n\n", exit_codes!()))]
    Create {
        /// A name to recognise the token by.
        #[arg(short = 'n', long)]
        name: String,
        /// The token may manage tokens too.
        #[arg(long)]
        admin: bool,
        /// Print the API's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (ids and names; never the tokens).
    #[command(alias = "ls", after_help = concat!("Examples:\n  hangar tokens list\n  hangar tokens list --json\n\n", exit_codes!()))]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    #[command(after_help = concat!("Examples:\n  hangar tokens revoke tok_123\n\n", exit_codes!()))]
    Revoke {
        /// The token's id (see `hangar tokens list`).
        id: String,
    },
}

pub async fn run(client: &Client, cmd: TokensCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokensCommand::Create { name, admin, json } => {
            let t = client
                .post("/tokens", &json!({"name": name, "admin": admin}))
                .await?;
            if json {
                print_json(&t);
            } else {
                println!("{}", field(&t, "/token"));
                eprintln!(
                    "Token {} ({name}) created; keep it, it is not shown again.",
                    field(&t, "/id")
                );
            }
        }
        TokensCommand::List { json } => {
            let t = client.get("/tokens").await?;
            print_list(
                &t,
                "tokens",
                json,
                &[
                    ("ID", "/id"),
                    ("NAME", "/name"),
                    ("ADMIN", "/admin"),
                    ("REVOKED", "/revoked"),
                    ("CREATED", "/created_at"),
                ],
            );
        }
        TokensCommand::Revoke { id } => {
            client.delete(&format!("/tokens/{id}")).await?;
            println!("Revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
