//! The `hangar` client commands (Hangar's flyctl): apps, machines, volumes,
//! secrets, tokens, scaling. They talk to the Machines API over HTTP only:
//! the API at `HANGAR_API_URL` (default `http://127.0.0.1:4280`), the token
//! from `HANGAR_API_TOKEN`, `FLY_API_TOKEN`, or the admin-token file that
//! `hangar serve` writes in its data dir (`HANGAR_DATA_DIR`).
//!
//! Exit codes, the same for every command: 0 success; 1 error (the API
//! refused, could not be reached, or the input is wrong); 2 usage error;
//! 3 not found (the API answered 404). `machine exec` exits with the
//! command's own code.

#![forbid(unsafe_code)]

/// The exit codes paragraph at the end of every command's help.
macro_rules! exit_codes {
    () => {
        "Exit codes: 0 ok; 1 error (API refused or unreachable, bad input); 2 usage; 3 not found (API 404)."
    };
}

mod apps;
pub mod client;
mod deploy;
mod diff;
mod flags;
mod machine;
mod output;
mod prompt;
pub mod rewrite;
mod scale;
mod secrets;
mod status;
pub mod target;
mod tokens;
mod volumes;

use std::process::ExitCode;

use client::{Client, ClientError};

/// The exit code of "the API has no such thing".
pub const EXIT_NOT_FOUND: u8 = 3;

/// The client subcommands of `hangar`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Manage apps.
    #[command(subcommand, after_help = concat!("Examples:\n  hangar apps create my-app\n  hangar apps list --json\n  hangar apps destroy my-app --yes\n\n", exit_codes!()))]
    Apps(apps::AppsCommand),
    /// Show an app and its machines.
    #[command(after_help = concat!("Examples:\n  hangar status -a my-app\n  hangar status --json   (app from fly.toml)\n\n", exit_codes!()))]
    Status(status::StatusArgs),
    /// Manage machines.
    #[command(subcommand, visible_alias = "machines", after_help = concat!("Examples:\n  hangar machine run -a my-app nginx:latest --port 80:8080/tcp:http\n  hangar machine list -a my-app --json\n  hangar machine update -a my-app --vm-memory 512 3d8d9014b32e89\n\n", exit_codes!()))]
    Machine(machine::MachineCommand),
    /// Manage volumes.
    #[command(subcommand, visible_alias = "volume", after_help = concat!("Examples:\n  hangar volumes create data -a my-app --size 1\n  hangar volumes list -a my-app --json\n\n", exit_codes!()))]
    Volumes(volumes::VolumesCommand),
    /// Manage an app's secrets (values are never shown).
    #[command(subcommand, visible_alias = "secret", after_help = concat!("Examples:\n  hangar secrets set -a my-app API_KEY=abc\n  hangar secrets list -a my-app\n\n", exit_codes!()))]
    Secrets(secrets::SecretsCommand),
    /// Manage API tokens.
    #[command(subcommand, visible_alias = "token", after_help = concat!("Examples:\n  hangar tokens create --name ci\n  hangar tokens list --json\n\n", exit_codes!()))]
    Tokens(tokens::TokensCommand),
    /// Scale an app's machines.
    #[command(subcommand, after_help = concat!("Examples:\n  hangar scale count 6 -a my-app --region ams,ewr,syd\n  hangar scale show -a my-app\n\n", exit_codes!()))]
    Scale(scale::ScaleCommand),
    /// Deploy the app described by fly.toml (an image; hangar does not build).
    #[command(after_help = concat!("The first deploy of a process group creates two machines (autostop/autostart)\nwhen it has services, one plus a stopped standby when it has none, one when it\nmounts a volume. Later deploys update the machines in place: rolling (one at a\ntime, waiting for started and checks) or immediate (all at once).\n\nExamples:\n  hangar deploy\n  hangar deploy -c path/to/fly.toml --image registry.local/app:v2\n  hangar deploy --image-rewrite nginx:latest=127.0.0.1:5000/nginx:1 --yes\n\n", exit_codes!()))]
    Deploy(Box<deploy::DeployArgs>),
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    let client = Client::from_env()?;
    match command {
        Command::Apps(c) => apps::run(&client, c).await,
        Command::Status(a) => status::run(&client, a).await,
        Command::Machine(c) => machine::run(&client, c).await,
        Command::Volumes(c) => volumes::run(&client, c).await,
        Command::Secrets(c) => secrets::run(&client, c).await,
        Command::Tokens(c) => tokens::run(&client, c).await,
        Command::Scale(c) => scale::run(&client, c).await,
        Command::Deploy(a) => deploy::run(&client, *a).await,
    }
}

/// Runs one client command; the exit code is what scripts see (see the
/// crate docs). Errors other than "not found" are returned for the binary to
/// print (exit code 1).
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match dispatch(command).await {
        Ok(code) => Ok(code),
        Err(e) => {
            let not_found = e.chain().any(|c| {
                c.downcast_ref::<ClientError>()
                    .is_some_and(ClientError::is_not_found)
            });
            if not_found {
                eprintln!("hangar: {e:#}");
                Ok(ExitCode::from(EXIT_NOT_FOUND))
            } else {
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: super::Command,
    }

    /// Every command and command group, at every depth, shows examples and
    /// the exit codes in its help.
    #[test]
    fn every_command_has_examples_and_exit_codes() {
        fn walk(
            cmd: &clap::Command,
            path: &str,
            missing: &mut Vec<String>,
            seen: &mut Vec<String>,
        ) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                seen.push(path.clone());
                let help = sub
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if !help.contains("Examples:\n  hangar ") || !help.contains("Exit codes:") {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing, seen);
            }
        }
        let (mut missing, mut seen) = (Vec::new(), Vec::new());
        walk(&Cli::command(), "hangar", &mut missing, &mut seen);
        assert!(
            seen.contains(&"hangar machine lease release".to_owned()),
            "{seen:?}"
        );
        assert!(seen.contains(&"hangar deploy".to_owned()), "{seen:?}");
        assert!(
            missing.is_empty(),
            "no examples in the help of: {missing:?}"
        );
    }

    #[test]
    fn the_seed_000_run_line_parses() {
        let cli = Cli::try_parse_from([
            "hangar",
            "machine",
            "run",
            "--machine-config",
            "cli-config.json",
            "--autostart=true",
            "--autostop=suspend",
            "--port",
            "80:8080/tcp:http",
            "--port",
            "443:8080/tcp:http:tls",
            "--vm-cpu-kind",
            "shared",
            "--vm-cpus",
            "1",
            "--vm-memory",
            "256",
        ]);
        assert!(cli.is_ok(), "{cli:?}");
        let cli = Cli::try_parse_from([
            "hangar",
            "machine",
            "update",
            "-a",
            "my-app",
            "--vm-memory",
            "512M",
            "7811373c095228",
        ]);
        assert!(cli.is_ok(), "{cli:?}");
        let cli = Cli::try_parse_from(["hangar", "scale", "count", "6", "--region", "ams,ewr,syd"]);
        assert!(cli.is_ok(), "{cli:?}");
    }
}
