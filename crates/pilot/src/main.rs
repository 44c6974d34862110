//! The pilot binary: dispatches to the runtime's internal stages or the CLI.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Internal stages run before anything else (no threads, no runtime).
    if let Some(code) = pilot::runtime::internal_main(&args) {
        return code;
    }
    pilot::cli::main(args)
}
