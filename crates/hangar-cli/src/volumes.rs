//! `hangar volumes create | list | show | extend | destroy`.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::client::Client;
use crate::output::{Table, field, print_json};
use crate::prompt::confirm;
use crate::target::AppArgs;

/// `hangar volumes ...`
#[derive(Debug, clap::Subcommand)]
pub enum VolumesCommand {
    /// Create a volume.
    #[command(after_help = concat!("Examples:\n  hangar volumes create data -a my-app --size 1\n  hangar volumes create data -a my-app --size 3 --region local --json\n\n", exit_codes!()))]
    Create {
        #[command(flatten)]
        app: AppArgs,
        /// The volume's name (mounts refer to it).
        name: String,
        /// Size in GB.
        #[arg(short = 's', long = "size", default_value_t = 1)]
        size_gb: u64,
        /// Region.
        #[arg(short = 'r', long)]
        region: Option<String>,
        /// Print the API's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List volumes.
    #[command(alias = "ls", after_help = concat!("Examples:\n  hangar volumes list -a my-app\n  hangar volumes list -a my-app --json\n\n", exit_codes!()))]
    List {
        #[command(flatten)]
        app: AppArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one volume.
    #[command(after_help = concat!("Examples:\n  hangar volumes show -a my-app vol_123 --json\n\n", exit_codes!()))]
    Show {
        #[command(flatten)]
        app: AppArgs,
        /// The volume's id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Grow a volume to a new size.
    #[command(after_help = concat!("Examples:\n  hangar volumes extend -a my-app vol_123 --size 5\n\n", exit_codes!()))]
    Extend {
        #[command(flatten)]
        app: AppArgs,
        /// The volume's id.
        id: String,
        /// The new size in GB.
        #[arg(short = 's', long = "size")]
        size_gb: u64,
    },
    /// Destroy a volume and its data (asks first; --yes does not).
    #[command(alias = "rm", after_help = concat!("Examples:\n  hangar volumes destroy -a my-app vol_123 --yes\n\n", exit_codes!()))]
    Destroy {
        #[command(flatten)]
        app: AppArgs,
        /// The volume's id.
        id: String,
        /// Do not ask.
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

fn row(v: &Value) -> Vec<String> {
    vec![
        field(v, "/id"),
        field(v, "/name"),
        field(v, "/state"),
        format!("{}GB", field(v, "/size_gb")),
        field(v, "/region"),
        field(v, "/attached_machine_id"),
        field(v, "/created_at"),
    ]
}

const HEADER: &[&str] = &[
    "ID", "NAME", "STATE", "SIZE", "REGION", "ATTACHED", "CREATED",
];

pub async fn run(client: &Client, cmd: VolumesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VolumesCommand::Create {
            app,
            name,
            size_gb,
            region,
            json,
        } => {
            let app = app.resolve()?;
            let mut body = json!({"name": name, "size_gb": size_gb});
            if let Some(r) = region {
                body["region"] = json!(r);
            }
            let v = client.post(&format!("/apps/{app}/volumes"), &body).await?;
            if json {
                print_json(&v);
            } else {
                println!("Created volume {} ({name}, {size_gb}GB)", field(&v, "/id"));
            }
        }
        VolumesCommand::List { app, json } => {
            let app = app.resolve()?;
            let v = client.get(&format!("/apps/{app}/volumes")).await?;
            if json {
                print_json(&v);
            } else {
                let mut t = Table::new(HEADER);
                for x in v.as_array().into_iter().flatten() {
                    t.row(row(x));
                }
                t.print();
            }
        }
        VolumesCommand::Show { app, id, json } => {
            let app = app.resolve()?;
            let v = client.get(&format!("/apps/{app}/volumes/{id}")).await?;
            if json {
                print_json(&v);
            } else {
                let mut t = Table::new(HEADER);
                t.row(row(&v));
                t.print();
            }
        }
        VolumesCommand::Extend { app, id, size_gb } => {
            let app = app.resolve()?;
            client
                .call(
                    reqwest::Method::PUT,
                    &format!("/apps/{app}/volumes/{id}/extend"),
                    Some(&json!({"size_gb": size_gb})),
                )
                .await?;
            println!("Extended volume {id} to {size_gb}GB");
        }
        VolumesCommand::Destroy { app, id, yes } => {
            let app = app.resolve()?;
            if !yes && !confirm(&format!("Destroy volume {id} and its data?")) {
                anyhow::bail!("not destroyed: not confirmed (pass --yes to skip the question)");
            }
            client.delete(&format!("/apps/{app}/volumes/{id}")).await?;
            println!("Destroyed volume {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
