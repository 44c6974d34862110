//! The host agent (Fly's flyd): owns the machines of one host — images, root
//! filesystems, network, cgroups, volumes — and their lifecycle.

pub mod image;
pub mod machine;
pub mod network;
pub mod store;
pub mod volume;
