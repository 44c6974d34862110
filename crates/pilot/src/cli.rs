//! pilot's command line (`pilot run ...`).

use std::process::ExitCode;

/// Runs pilot's public subcommands.
pub fn main(args: Vec<String>) -> ExitCode {
    eprintln!("usage: pilot run --spec FILE --socket PATH (got {args:?})");
    ExitCode::from(2)
}
