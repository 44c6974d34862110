//! The agent API: newline-delimited JSON over a unix socket (see the crate docs for
//! the protocol). [`protocol`] holds the messages, [`server`] serves them from the
//! supervisor, and [`crate::client`] is the agent's typed client.
#![forbid(unsafe_code)]

pub mod protocol;
pub mod server;
