//! The `hangar` command: `hangar serve` runs the Machines API and the host agent;
//! the other subcommands manage what a host holds.

mod backend;
mod image;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the proxy allocates per request (headers, bodies, tasks) from
/// several threads, where glibc's malloc showed up in its profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "hangar", version, about = "Self-hosted Fly.io Machines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Machines API and the host agent.
    ///
    /// Example: hangar serve --data-dir /var/lib/hangar --listen 127.0.0.1:4280
    Serve(serve::ServeArgs),
    /// Manage the host's images.
    Image {
        /// Where Hangar keeps its data.
        #[arg(
            long,
            env = "HANGAR_DATA_DIR",
            default_value = "/var/lib/hangar",
            global = true
        )]
        data_dir: PathBuf,
        #[command(subcommand)]
        command: image::ImageCommand,
    },
    /// Run the proxy on its own, in front of a Machines API.
    ///
    /// `hangar serve` runs the same proxy inside it.
    Proxy(hangar_proxy::ProxyArgs),
    #[command(flatten)]
    Client(hangar_cli::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HANGAR_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hangar: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Image { data_dir, command } => image::run(data_dir, command)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Proxy(args) => hangar_proxy::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Client(command) => hangar_cli::run(command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hangar: {e:#}");
            ExitCode::FAILURE
        }
    }
}
