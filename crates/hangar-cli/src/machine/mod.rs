//! `hangar machine ...`: run, create, list, status, start, stop, suspend,
//! restart, destroy, clone, update, exec, cordon, uncordon, lease, logs.

mod ops;
mod run;
mod shell;
mod update;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::client::Client;
use crate::flags::ConfigFlags;
use crate::target::AppArgs;

pub use ops::{MACHINE_HEADER, clone_body, machine_row};
pub use run::create_machine;

/// `--image-rewrite FROM=TO`, shared by the commands that send configs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RewriteArgs {
    /// Use image TO wherever a config names image FROM (repeatable; also
    /// HANGAR_IMAGE_REWRITE="from=to,from2=to2"). Files are not changed.
    #[arg(long = "image-rewrite", value_name = "FROM=TO")]
    pub image_rewrite: Vec<String>,
}

/// `hangar machine ...`
#[derive(Debug, clap::Subcommand)]
pub enum MachineCommand {
    /// Create and start a machine from an image (or --machine-config).
    #[command(after_help = concat!("Examples:\n  hangar machine run -a my-app nginx:latest --port 80:8080/tcp:http --vm-memory 256\n  hangar machine run -a my-app --machine-config cli-config.json --autostart=true --autostop=suspend \\\n    --port 80:8080/tcp:http --port 443:8080/tcp:http:tls --vm-cpu-kind shared --vm-cpus 1 --vm-memory 256\n  hangar machine run -a my-app busybox --rm -- echo hello\n  hangar machine run --shell busybox\n\n", exit_codes!()))]
    Run(Box<run::RunArgs>),
    /// Create a machine from a JSON file without starting it.
    #[command(after_help = concat!("The file is a machine config, or an API request body with the config under\n\"config\" (both forms of the seeds' cli-config.json). files[].local_path is read\nrelative to the file.\n\nExamples:\n  hangar machine create -a my-app -f machine-config.json\n  hangar machine create -a my-app -f cli-config.json --image-rewrite nginx:latest=localhost:5000/nginx:1\n\n", exit_codes!()))]
    Create(run::CreateArgs),
    /// List an app's machines.
    #[command(alias = "ls", after_help = concat!("Examples:\n  hangar machine list -a my-app\n  hangar machine list -a my-app --json\n\n", exit_codes!()))]
    List {
        #[command(flatten)]
        app: AppArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one machine: state, image, config summary and recent events.
    #[command(after_help = concat!("Examples:\n  hangar machine status -a my-app 3d8d9014b32e89\n  hangar machine status -a my-app 3d8d9014b32e89 --json\n\n", exit_codes!()))]
    Status {
        #[command(flatten)]
        app: AppArgs,
        /// The machine's id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start stopped machines (resumes suspended ones).
    #[command(after_help = concat!("Examples:\n  hangar machine start -a my-app 3d8d9014b32e89\n\n", exit_codes!()))]
    Start {
        #[command(flatten)]
        app: AppArgs,
        /// Machine ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Stop machines.
    #[command(after_help = concat!("Examples:\n  hangar machine stop -a my-app 3d8d9014b32e89\n  hangar machine stop -a my-app 3d8d9014b32e89 --signal SIGINT --timeout 30s\n\n", exit_codes!()))]
    Stop {
        #[command(flatten)]
        app: AppArgs,
        /// Machine ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Signal to send first (default: the machine's stop signal).
        #[arg(short = 's', long)]
        signal: Option<String>,
        /// How long to wait before killing (e.g. 30s).
        #[arg(long)]
        timeout: Option<String>,
    },
    /// Suspend machines: freeze them in place, memory kept; `start` resumes them.
    #[command(after_help = concat!("Examples:\n  hangar machine suspend -a my-app 3d8d9014b32e89\n  hangar machine start -a my-app 3d8d9014b32e89   # resumes it\n\n", exit_codes!()))]
    Suspend {
        #[command(flatten)]
        app: AppArgs,
        /// Machine ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Restart machines.
    #[command(after_help = concat!("Examples:\n  hangar machine restart -a my-app 3d8d9014b32e89\n\n", exit_codes!()))]
    Restart {
        #[command(flatten)]
        app: AppArgs,
        /// Machine ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Destroy machines (--force also destroys running ones).
    #[command(alias = "rm", after_help = concat!("Examples:\n  hangar machine destroy -a my-app 3d8d9014b32e89\n  hangar machine destroy -a my-app 3d8d9014b32e89 --force\n\n", exit_codes!()))]
    Destroy {
        #[command(flatten)]
        app: AppArgs,
        /// Machine ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Kill a running machine instead of refusing.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Create a copy of a machine (in another region, or as its standby).
    #[command(after_help = concat!("Examples:\n  hangar machine clone -a my-app --region ord 7811373c095228\n  hangar machine clone -a my-app 7811373c095228 --standby-for 7811373c095228\n\n", exit_codes!()))]
    Clone {
        #[command(flatten)]
        app: AppArgs,
        /// The machine to copy.
        id: String,
        /// Region of the copy (default: the source's).
        #[arg(short = 'r', long)]
        region: Option<String>,
        /// Name of the copy.
        #[arg(long)]
        name: Option<String>,
        /// Make the copy a stopped standby for these machines (comma-separated).
        #[arg(long = "standby-for", value_delimiter = ',')]
        standby_for: Vec<String>,
        /// Do not wait for the copy to start.
        #[arg(short = 'd', long)]
        detach: bool,
    },
    /// Change a machine's config: shows the diff and asks (--yes does not).
    #[command(after_help = concat!("Examples:\n  hangar machine update -a my-app --vm-memory 512M 7811373c095228\n  hangar machine update -a my-app --image registry.local/app:v2 --yes 7811373c095228\n\n", exit_codes!()))]
    Update(Box<update::UpdateArgs>),
    /// Run a command in a machine and print its output.
    #[command(after_help = concat!("The exit code is the command's own (1 for errors reaching it).\n\nExamples:\n  hangar machine exec -a my-app 3d8d9014b32e89 -- ls -l /\n  hangar machine exec -a my-app 3d8d9014b32e89 --container echo -- env\n\n", exit_codes!()))]
    Exec {
        #[command(flatten)]
        app: AppArgs,
        /// The machine's id.
        id: String,
        /// The container to run in (needed when the machine has several).
        #[arg(long)]
        container: Option<String>,
        /// Seconds to wait for the command.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Print the API's answer as JSON.
        #[arg(long)]
        json: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Keep the proxy from routing to machines.
    #[command(after_help = concat!("Examples:\n  hangar machine cordon -a my-app 3d8d9014b32e89\n\n", exit_codes!()))]
    Cordon {
        #[command(flatten)]
        app: AppArgs,
        /// Machine ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Let the proxy route to machines again.
    #[command(after_help = concat!("Examples:\n  hangar machine uncordon -a my-app 3d8d9014b32e89\n\n", exit_codes!()))]
    Uncordon {
        #[command(flatten)]
        app: AppArgs,
        /// Machine ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Show, take or release a machine's lease.
    #[command(subcommand, after_help = concat!("Examples:\n  hangar machine lease acquire -a my-app 3d8d9014b32e89 --ttl 60\n  hangar machine lease show -a my-app 3d8d9014b32e89\n\n", exit_codes!()))]
    Lease(ops::LeaseCommand),
    /// Show a running machine's output (stdout and stderr of its containers).
    #[command(after_help = concat!("A machine's init keeps the last lines of each container while the machine runs.\n\nExamples:\n  hangar machine logs -a my-app 3d8d9014b32e89\n  hangar machine logs -a my-app 3d8d9014b32e89 -f --container web\n  hangar machine logs -a my-app 3d8d9014b32e89 --tail 20 --json\n\n", exit_codes!()))]
    Logs {
        #[command(flatten)]
        app: AppArgs,
        /// The machine's id.
        id: String,
        /// Follow new lines until the machine stops (Ctrl-C ends it).
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only this container's lines.
        #[arg(long)]
        container: Option<String>,
        /// Only the last N kept lines.
        #[arg(long, value_name = "N")]
        tail: Option<u64>,
        /// One JSON object a line (timestamp, container, stream, message).
        #[arg(long)]
        json: bool,
    },
}

/// The config flags of `run` and `update`, shared so both read the same way.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonConfig {
    #[command(flatten)]
    pub flags: ConfigFlags,
    /// A machine config: a JSON file, or inline JSON starting with `{`.
    #[arg(long = "machine-config", value_name = "FILE|JSON")]
    pub machine_config: Option<String>,
    #[command(flatten)]
    pub rewrite: RewriteArgs,
}

/// Where a `-f` file lives, for `files[].local_path`.
pub fn file_dir(path: &std::path::Path) -> PathBuf {
    path.parent().map(PathBuf::from).unwrap_or_default()
}

pub async fn run(client: &Client, cmd: MachineCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        MachineCommand::Run(args) => run::run(client, *args).await,
        MachineCommand::Create(args) => run::create(client, args).await,
        MachineCommand::List { app, json } => ops::list(client, &app.resolve()?, json).await,
        MachineCommand::Status { app, id, json } => {
            ops::status(client, &app.resolve()?, &id, json).await
        }
        MachineCommand::Start { app, ids } => ops::start(client, &app.resolve()?, &ids).await,
        MachineCommand::Stop {
            app,
            ids,
            signal,
            timeout,
        } => ops::stop(client, &app.resolve()?, &ids, signal, timeout).await,
        MachineCommand::Suspend { app, ids } => ops::suspend(client, &app.resolve()?, &ids).await,
        MachineCommand::Restart { app, ids } => {
            ops::simple(client, &app.resolve()?, &ids, "restart", "Restarted").await
        }
        MachineCommand::Destroy { app, ids, force } => {
            ops::destroy(client, &app.resolve()?, &ids, force).await
        }
        MachineCommand::Clone {
            app,
            id,
            region,
            name,
            standby_for,
            detach,
        } => {
            let app = app.resolve()?;
            ops::clone(client, &app, &id, region, name, standby_for, detach).await
        }
        MachineCommand::Update(args) => update::run(client, *args).await,
        MachineCommand::Exec {
            app,
            id,
            container,
            timeout,
            json,
            command,
        } => {
            ops::exec(
                client,
                &app.resolve()?,
                &id,
                container,
                timeout,
                json,
                command,
            )
            .await
        }
        MachineCommand::Cordon { app, ids } => {
            ops::simple(client, &app.resolve()?, &ids, "cordon", "Cordoned").await
        }
        MachineCommand::Uncordon { app, ids } => {
            ops::simple(client, &app.resolve()?, &ids, "uncordon", "Uncordoned").await
        }
        MachineCommand::Lease(cmd) => ops::lease(client, cmd).await,
        MachineCommand::Logs {
            app,
            id,
            follow,
            container,
            tail,
            json,
        } => {
            ops::logs(
                client,
                &app.resolve()?,
                &id,
                ops::LogsArgs {
                    follow,
                    container,
                    tail,
                    json,
                },
            )
            .await
        }
    }
}
