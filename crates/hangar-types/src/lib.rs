//! Machines API wire types, their validation, and the container start order.
//!
//! This crate does no I/O: every other Hangar crate speaks in these types.
//!
//! # Echoing what the client sent
//!
//! The wire structs keep every field as it was written so that a config
//! serializes back to the same JSON value it was parsed from:
//!
//! - optional fields are `Option`s, left out when `None` (an explicit `null` is
//!   read as absent and is not echoed);
//! - spellings that differ between the spec and the guides are separate fields
//!   (`healthchecks`/`health_checks`, `depends_on[].name`/`.container`, nested or
//!   flattened health checks), read through accessors such as
//!   [`config::ContainerConfig::health_checks`], [`config::DependsOn::target`] and
//!   [`config::HealthCheck::probe`];
//! - durations remember whether they were a number or a string
//!   ([`duration::Duration`]), signals whether they were a name or a number;
//! - **unknown keys are kept**: every wire struct has a flattened `extra` map
//!   that collects keys Hangar does not know. They are echoed back in responses
//!   (so clients that send newer fields see them again) and are otherwise
//!   ignored: no Hangar logic reads `extra`, and validation does not look at it.
//!
//! Integer durations are seconds, always (see [`duration`]).
//!
//! # Example
//!
//! ```
//! use hangar_types::{parse_machine_config_document, start_groups};
//!
//! let config = parse_machine_config_document(r#"{"containers": [
//!     {"image": "registry.fly.io/my-app:latest",
//!      "health_checks": [{"type": "http", "path": "/health", "interval": "10s"}]},
//!     {"name": "shipper", "image": "vector",
//!      "depends_on": [{"container": "my-app", "condition": "healthy"}]}
//! ]}"#).unwrap();
//! config.validate().unwrap();
//! assert_eq!(start_groups(config.containers()).unwrap(), [["my-app"], ["shipper"]]);
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod duration;
pub mod ids;

pub use config::{ContainerConfig, MachineConfig};
pub use duration::Duration;
pub use ids::{AppName, MachineId, VolumeId};
pub mod parse;

pub use parse::{ParseError, parse_machine_config_document};
pub mod app;
pub mod error;
pub mod lease;
pub mod machine;
pub mod order;
pub mod secret;
pub mod token;
pub mod validate;
pub mod volume;

pub use order::{CycleError, start_groups, stop_order};
pub use validate::{Problem, Problems};
