//! Where a machine's files live on the host.
//!
//! ```text
//! <data>/machines/<id>/spec.json    what pilot runs (rewritten at every start)
//! <data>/machines/<id>/pilot.sock   pilot's API socket
//! <data>/machines/<id>/pilot.pid    pilot's host pid (written by `pilot sandbox`)
//! <data>/machines/<id>/pilot.log    pilot's own stdout/stderr
//! <data>/machines/<id>/state/       pilot's state dir (container upper dirs, status.json)
//! ```

use std::path::{Path, PathBuf};

/// The files of one machine.
#[derive(Debug, Clone)]
pub struct MachinePaths {
    dir: PathBuf,
}

impl MachinePaths {
    pub fn new(data_dir: &Path, machine_id: &str) -> Self {
        Self {
            dir: data_dir.join("machines").join(machine_id),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn spec(&self) -> PathBuf {
        self.dir.join("spec.json")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("pilot.sock")
    }

    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("pilot.pid")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("pilot.log")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The status pilot writes before it exits.
    pub fn final_status(&self) -> PathBuf {
        self.state_dir().join("status.json")
    }
}

/// The machine's cgroup, as a path inside every hierarchy.
pub fn cgroup_path(prefix: &str, machine_id: &str) -> String {
    format!("{}/{machine_id}", prefix.trim_matches('/'))
}
