//! Machine states as the Machines API names them, and the one table of
//! allowed transitions between them.
//!
//! ```text
//!  created ──► starting ──► started ──► stopping ──► stopped
//!     │           │  ▲         │  ▲ │                   │
//!     │           │  └─────────┼──┼─┼───────────────────┘ (start again)
//!     │           ▼            ▼  │ └─► suspending ─► suspended
//!     │         failed      replacing (update) ─► created / starting / stopped
//!     └────────────┴────────────┴─────► destroying ──► destroyed
//! ```
//!
//! A suspended machine resumes through `starting`; it can also stop (thawed
//! first) or be replaced. A suspend that could not freeze the machine goes
//! back from `suspending` to `started`.

use std::fmt;
use std::str::FromStr;

/// The state of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineState {
    Created,
    Starting,
    Started,
    Stopping,
    Stopped,
    Suspending,
    Suspended,
    Replacing,
    Destroying,
    Destroyed,
    Failed,
}

/// Every state, in the order above.
pub const ALL_STATES: [MachineState; 11] = [
    MachineState::Created,
    MachineState::Starting,
    MachineState::Started,
    MachineState::Stopping,
    MachineState::Stopped,
    MachineState::Suspending,
    MachineState::Suspended,
    MachineState::Replacing,
    MachineState::Destroying,
    MachineState::Destroyed,
    MachineState::Failed,
];

impl MachineState {
    pub fn as_str(&self) -> &'static str {
        match self {
            MachineState::Created => "created",
            MachineState::Starting => "starting",
            MachineState::Started => "started",
            MachineState::Stopping => "stopping",
            MachineState::Stopped => "stopped",
            MachineState::Suspending => "suspending",
            MachineState::Suspended => "suspended",
            MachineState::Replacing => "replacing",
            MachineState::Destroying => "destroying",
            MachineState::Destroyed => "destroyed",
            MachineState::Failed => "failed",
        }
    }

    /// A state the machine stays in until someone acts (not a transient one).
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            MachineState::Created
                | MachineState::Started
                | MachineState::Stopped
                | MachineState::Suspended
                | MachineState::Destroyed
                | MachineState::Failed
        )
    }

    /// Whether a machine in `self` may move to `to`. This is the only place
    /// that decides it.
    pub fn can_become(&self, to: MachineState) -> bool {
        use MachineState::*;
        match (*self, to) {
            (Destroyed, _) => false,
            (_, Destroying) => !matches!(self, Destroying),
            (Destroying, Destroyed | Failed) => true,
            (Destroying, _) => false,
            (_, Failed) => !matches!(self, Failed),
            (Created, Starting | Replacing | Stopped) => true,
            (Starting, Started | Stopping | Stopped) => true,
            (Started, Stopping | Stopped | Suspending | Replacing) => true,
            (Stopping, Stopped) => true,
            (Stopped, Starting | Replacing) => true,
            (Suspending, Suspended | Started | Stopped) => true,
            (Suspended, Starting | Stopping | Stopped | Replacing) => true,
            (Replacing, Created | Starting | Stopped) => true,
            (Failed, Starting | Stopped | Replacing) => true,
            _ => false,
        }
    }
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown state name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown machine state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for MachineState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        ALL_STATES
            .iter()
            .find(|st| st.as_str() == s)
            .copied()
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// The same state as the wire type.
impl From<MachineState> for hangar_types::machine::MachineState {
    fn from(s: MachineState) -> Self {
        s.as_str()
            .parse()
            .expect("every stored state has a wire name")
    }
}

/// The stored state of a wire state; `replaced` and `launch_failed` name
/// versions and launch outcomes, not states a machine is stored in.
impl TryFrom<hangar_types::machine::MachineState> for MachineState {
    type Error = UnknownState;
    fn try_from(s: hangar_types::machine::MachineState) -> Result<Self, UnknownState> {
        s.as_str().parse()
    }
}

#[cfg(test)]
mod tests {
    use super::MachineState::*;
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ALL_STATES {
            assert_eq!(s.as_str().parse::<MachineState>().unwrap(), s);
        }
        assert!("running".parse::<MachineState>().is_err());
        for s in ALL_STATES {
            let wire: hangar_types::machine::MachineState = s.into();
            assert_eq!(wire.as_str(), s.as_str());
            assert_eq!(MachineState::try_from(wire), Ok(s));
        }
    }

    #[test]
    fn lifecycle_paths_are_allowed_and_shortcuts_are_not() {
        assert!(Created.can_become(Starting));
        assert!(Starting.can_become(Started));
        assert!(Started.can_become(Stopping));
        assert!(Stopping.can_become(Stopped));
        assert!(Stopped.can_become(Starting));
        assert!(Started.can_become(Destroying));
        assert!(Destroying.can_become(Destroyed));
        assert!(!Stopped.can_become(Started));
        assert!(!Destroyed.can_become(Starting));
        assert!(!Destroying.can_become(Started));
        assert!(!Started.can_become(Started));
    }

    #[test]
    fn suspend_and_resume_paths() {
        assert!(Started.can_become(Suspending));
        assert!(Suspending.can_become(Suspended));
        // A freeze that failed: the machine runs on.
        assert!(Suspending.can_become(Started));
        // Resume goes through starting, like any start.
        assert!(Suspended.can_become(Starting));
        assert!(!Suspended.can_become(Started));
        assert!(Suspended.can_become(Stopping));
        assert!(Suspended.can_become(Destroying));
        // Only a started machine suspends.
        for s in [
            Created, Starting, Stopping, Stopped, Suspended, Failed, Destroyed,
        ] {
            assert!(!s.can_become(Suspending), "{s} must not suspend");
        }
    }
}
