//! The error type of machine networking: every variant names what was being done
//! and to which object, so a log line alone tells what failed.

use std::io;
use std::net::IpAddr;

/// What went wrong while setting up or tearing down machine networking.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A configuration value or an argument is not acceptable.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field or argument, e.g. `config.ipv4_subnet` or `machine_id`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The kernel refused a netlink request.
    #[error("netlink {op} {object}: {source}")]
    Netlink {
        /// The operation, e.g. `add veth`.
        op: &'static str,
        /// The link, address or route it concerned.
        object: String,
        /// The errno the kernel answered with.
        source: nix::Error,
    },
    /// A netlink answer could not be parsed.
    #[error("netlink {op}: malformed answer: {problem}")]
    Protocol {
        /// The operation whose answer was malformed.
        op: &'static str,
        /// What was wrong with it.
        problem: String,
    },
    /// A system call on a namespace, mount or file failed.
    #[error("{op} {path}: {source}")]
    Sys {
        /// The operation, e.g. `bind-mount netns`.
        op: &'static str,
        /// The path or name it concerned.
        path: String,
        /// The errno.
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation, e.g. `write sysctl`.
        op: &'static str,
        /// The path it concerned.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A link with the bridge's name exists and is not a bridge.
    #[error("link {name} exists and is a {kind:?}, not a bridge")]
    NotABridge {
        /// The bridge name of the configuration.
        name: String,
        /// The kind the existing link reports (empty for a physical device).
        kind: String,
    },
    /// The bridge a machine should be attached to does not exist.
    #[error("bridge {0} does not exist: run HostNetwork::ensure first")]
    NoBridge(String),
    /// `iptables`/`ip6tables` failed.
    #[error("{tool} {args}: {problem}")]
    Firewall {
        /// `iptables` or `ip6tables`.
        tool: &'static str,
        /// The arguments it was run with.
        args: String,
        /// Its exit status and stderr, or the spawn error.
        problem: String,
    },
    /// Every address of the subnet is in use.
    #[error("no free IPv4 address left in {0}")]
    SubnetFull(String),
    /// An address given for a machine lies outside the configured networks.
    #[error("address {addr} is not inside {network}")]
    OutsideNetwork {
        /// The address.
        addr: IpAddr,
        /// The network it should have been in.
        network: String,
    },
    /// A network namespace of that name already exists.
    #[error("network namespace {0} already exists")]
    AlreadyExists(String),
    /// A helper thread panicked.
    #[error("{0}: helper thread panicked")]
    ThreadPanicked(&'static str),
}

impl NetworkError {
    pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            problem: problem.into(),
        }
    }
}

/// Result of machine-networking operations.
pub type Result<T, E = NetworkError> = std::result::Result<T, E>;
