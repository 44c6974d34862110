//! Machines API wire types, their validation, and the container start order.
//!
//! This crate does no I/O: every other Hangar crate speaks in these types.
#![forbid(unsafe_code)]
