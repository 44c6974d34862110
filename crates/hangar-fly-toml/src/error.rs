//! The error every fly.toml problem becomes (file, line, column, dotted key,
//! message) and the warnings collected for keys Hangar does not use.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in the fly.toml text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A fly.toml that cannot be read, parsed or planned.
///
/// Displays as `fly.toml:12:3: services[0].internal_port: expected an integer,
/// found a string` (the file as it was given; line and column left out when
/// unknown; the key left out when the problem is not about one key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FlyTomlError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key path, like `services[0].ports[1].handlers[0]`.
    pub key: String,
    pub message: String,
}

impl FlyTomlError {
    pub(crate) fn at(file: &Path, pos: Option<Pos>, key: &str, message: impl Into<String>) -> Self {
        FlyTomlError {
            file: file.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FlyTomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

/// Something in the fly.toml Hangar reads past: an unknown key, or a known one
/// it does not act on. Displays like an error: `fly.toml:3:1: swap_size: unknown key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.key,
            self.message
        )
    }
}
