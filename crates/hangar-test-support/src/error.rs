//! The error type of the test-support helpers.

use std::path::PathBuf;

/// What went wrong in a test-support helper; each variant names its subject.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building testapp failed: {0}")]
    TestappBuild(String),
    #[error("registry: {0}")]
    Registry(String),
    #[error("registry request {what}: {source}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("image: {0}")]
    Image(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps an `io::Error` to [`Error::Io`] naming `path`.
pub(crate) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
