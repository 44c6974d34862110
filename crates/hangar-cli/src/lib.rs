//! The `hangar` client commands (Hangar's flyctl): apps, machines, deploys from
//! fly.toml. They talk to the Machines API over HTTP only.

use std::process::ExitCode;

/// The client subcommands of `hangar`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Manage apps.
    #[command(subcommand)]
    Apps(AppsCommand),
}

/// `hangar apps ...`
#[derive(Debug, clap::Subcommand)]
pub enum AppsCommand {
    /// List apps.
    List,
}

/// Runs one client command; the exit code is what scripts see.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Apps(AppsCommand::List) => anyhow::bail!("hangar apps list: not built yet"),
    }
}
