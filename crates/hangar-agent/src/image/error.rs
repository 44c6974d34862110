//! The image store's errors; each names the reference (or path) it concerns.

use std::path::PathBuf;

use super::unpack::UnpackError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("image {reference}: not found")]
    NotFound { reference: String },
    #[error(
        "image {reference}: unauthorized (the registry refused the credentials, or they are needed)"
    )]
    Unauthorized { reference: String },
    #[error("image {reference}: bad digest for {what}: expected {expected}, got {actual}")]
    BadDigest {
        reference: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("image {reference}: unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    #[error("image {reference}: no linux/amd64 manifest in the image index")]
    NoMatchingPlatform { reference: String },
    #[error("image {reference}: invalid image: {reason}")]
    InvalidImage { reference: String, reason: String },
    #[error("image {reference}: registry error: {message}")]
    Registry { reference: String, message: String },
    #[error("image {reference}: layer {layer}: {source}")]
    Unpack {
        reference: String,
        layer: String,
        #[source]
        source: UnpackError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Maps an `io::Error` to [`ImageError::Io`] naming `path`.
pub(crate) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.into();
    move |source| ImageError::Io { path, source }
}
