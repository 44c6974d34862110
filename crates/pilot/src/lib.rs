//! pilot: PID 1 of every Hangar machine.
//!
//! Given a machine's spec it runs the machine's containers in dependency order,
//! health-checks them, restarts them by policy, reports to the agent over a unix
//! socket, and shuts them down cleanly.

pub mod cli;
pub mod runtime;
