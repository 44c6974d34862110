//! Small string enums of the config (restart policy, autostop, dependency
//! condition, health check kind). Each accepts any string when parsing and keeps
//! an unknown value in an `Unknown` variant, so validation can report it with its
//! JSON path instead of the parser failing without one.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! open_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A value Hangar does not know, kept as written.
            Unknown(String),
        }

        impl $name {
            /// Every known spelling.
            pub const KNOWN: &'static [&'static str] = &[$($text),+];

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(s) => s,
                }
            }

            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Unknown(_))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)+
                    other => $name::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok($name::from(s.as_str()))
            }
        }
    };
}

open_enum!(
    /// What a container waits for before its dependent starts.
    DependencyCondition {
        /// The dependency's process has been started.
        Started = "started",
        /// The dependency's health checks pass.
        Healthy = "healthy",
        /// The dependency exited with status 0.
        ExitedSuccessfully = "exited_successfully",
    }
);

impl Default for DependencyCondition {
    /// A dependency without a condition waits for `started`.
    fn default() -> Self {
        DependencyCondition::Started
    }
}

open_enum!(
    /// `policy` of a restart policy. `never` is fly.toml's spelling of `no`.
    RestartMode {
        No = "no",
        Never = "never",
        Always = "always",
        OnFailure = "on-failure",
    }
);

impl RestartMode {
    /// `no` and `never` both mean: do not restart.
    pub fn is_no(&self) -> bool {
        matches!(self, RestartMode::No | RestartMode::Never)
    }
}

open_enum!(
    /// Kind of a container health check.
    HealthCheckKind {
        Readiness = "readiness",
        Liveness = "liveness",
    }
);

open_enum!(
    /// What to do with a container that is deemed unhealthy.
    UnhealthyPolicy {
        Stop = "stop",
    }
);

/// What autostop does with a machine, once the spelling is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AutostopMode {
    Off,
    Stop,
    Suspend,
}

/// `autostop` of a service, as written: `true`/`false` (old clients) or
/// `"off"`/`"stop"`/`"suspend"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Autostop {
    /// `true` (= stop) or `false` (= off).
    Bool(bool),
    Off,
    Stop,
    Suspend,
    /// A string Hangar does not know, kept as written.
    Unknown(String),
}

impl Autostop {
    pub const KNOWN: &'static [&'static str] = &["off", "stop", "suspend"];

    /// The resolved mode, `None` for an unknown spelling.
    pub fn mode(&self) -> Option<AutostopMode> {
        match self {
            Autostop::Bool(false) | Autostop::Off => Some(AutostopMode::Off),
            Autostop::Bool(true) | Autostop::Stop => Some(AutostopMode::Stop),
            Autostop::Suspend => Some(AutostopMode::Suspend),
            Autostop::Unknown(_) => None,
        }
    }
}

impl fmt::Display for Autostop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Autostop::Bool(b) => write!(f, "{b}"),
            Autostop::Off => f.write_str("off"),
            Autostop::Stop => f.write_str("stop"),
            Autostop::Suspend => f.write_str("suspend"),
            Autostop::Unknown(s) => f.write_str(s),
        }
    }
}

impl Serialize for Autostop {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Autostop::Bool(b) => s.serialize_bool(*b),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Autostop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Autostop;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, \"off\", \"stop\" or \"suspend\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Autostop, E> {
                Ok(Autostop::Bool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Autostop, E> {
                Ok(match v {
                    "off" => Autostop::Off,
                    "stop" => Autostop::Stop,
                    "suspend" => Autostop::Suspend,
                    other => Autostop::Unknown(other.to_owned()),
                })
            }
        }
        d.deserialize_any(V)
    }
}
