//! Signals as clients write them: a name (`"SIGTERM"`, `"TERM"`, `"sigterm"`), a
//! number (`15`) or a number in a string (`"15"`). The spelling is kept for the
//! echo; [`Signal::number`] resolves it. Unknown signals parse fine and are
//! reported by validation, so the error can name the field.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A signal, as written by the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Written as a string: a name, with or without `SIG`, any case, or digits.
    Name(String),
    /// Written as a JSON number.
    Number(i64),
}

/// Linux signal names and numbers (x86_64 and aarch64 agree on all of these).
const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGIOT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPOLL", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// Realtime signals a number may name (`SIGRTMIN`..`SIGRTMAX` as glibc sees them).
const REALTIME: std::ops::RangeInclusive<i64> = 34..=64;

impl Signal {
    pub const SIGTERM: i32 = 15;
    pub const SIGINT: i32 = 2;
    pub const SIGKILL: i32 = 9;

    /// A signal by name, like `"SIGTERM"`.
    pub fn named(name: &str) -> Self {
        Signal::Name(name.to_owned())
    }

    /// The signal number, or `None` for an unknown signal.
    pub fn number(&self) -> Option<i32> {
        match self {
            Signal::Number(n) => valid_number(*n),
            Signal::Name(s) => {
                let t = s.trim();
                if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                    return t.parse::<i64>().ok().and_then(valid_number);
                }
                let upper = t.to_ascii_uppercase();
                let full = if upper.starts_with("SIG") {
                    upper
                } else {
                    format!("SIG{upper}")
                };
                SIGNALS
                    .iter()
                    .find(|(name, _)| *name == full)
                    .map(|(_, n)| *n)
            }
        }
    }

    /// The canonical name (`"SIGTERM"`) when the signal is a classic one.
    pub fn name(&self) -> Option<&'static str> {
        let n = self.number()?;
        SIGNALS.iter().find(|(_, num)| *num == n).map(|(s, _)| *s)
    }
}

fn valid_number(n: i64) -> Option<i32> {
    if (1..=31).contains(&n) || REALTIME.contains(&n) {
        Some(n as i32)
    } else {
        None
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::Name(s) => f.write_str(s),
            Signal::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Signal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Signal::Name(n) => s.serialize_str(n),
            Signal::Number(n) => s.serialize_i64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Signal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a signal name like \"SIGTERM\" or a signal number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Signal, E> {
                Ok(Signal::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Signal, E> {
                i64::try_from(v)
                    .map(Signal::Number)
                    .map_err(|_| E::custom(format!("signal number {v} is too large")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Signal, E> {
                Ok(Signal::Name(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
