//! Why a lifecycle operation failed, in the terms the API maps to statuses.

use crate::image::ImageError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The machine is not in a state that allows the operation.
    #[error("{0}")]
    InvalidState(String),
    /// The request cannot be carried out as given (bad config, unknown container).
    #[error("{0}")]
    Invalid(String),
    /// The host cannot do it now (registry unreachable, no addresses left).
    #[error("{0}")]
    Unavailable(String),
    /// Something did not finish in time.
    #[error("{0}")]
    Timeout(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl From<ImageError> for AgentError {
    fn from(e: ImageError) -> Self {
        // Image problems are the request's (unknown image, bad reference) unless
        // the registry failed or the host could not store the image.
        match e {
            ImageError::Registry { .. } | ImageError::Io { .. } => {
                AgentError::Unavailable(e.to_string())
            }
            _ => AgentError::Invalid(e.to_string()),
        }
    }
}

impl From<pilot::client::ClientError> for AgentError {
    fn from(e: pilot::client::ClientError) -> Self {
        match e {
            pilot::client::ClientError::Api(api) => AgentError::Invalid(api.message),
            other => AgentError::Internal(other.to_string()),
        }
    }
}
