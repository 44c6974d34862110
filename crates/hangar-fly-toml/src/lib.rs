//! fly.toml: the app configuration `hangar deploy` reads, parsed with errors that
//! name file, line and key, and turned into the machine configs of each process
//! group.
#![forbid(unsafe_code)]
