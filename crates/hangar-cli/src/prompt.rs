//! Yes/no questions before changes (`--yes` answers them): asked on stderr,
//! answered on stdin; end of input means no.

use std::io::{BufRead, Write};

/// Asks `question`; true only for an answer starting with `y`.
pub fn confirm(question: &str) -> bool {
    eprint!("? {question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => {
            eprintln!();
            false
        }
        Ok(_) => line.trim().to_ascii_lowercase().starts_with('y'),
    }
}
