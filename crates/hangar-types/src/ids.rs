//! Typed identifiers: machine ids, app names and volume ids. Each one checks its
//! format when it is made (from a string, from JSON, or from random bits), so a
//! value of these types is always well formed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Check `s` and wrap it.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                match $check(s) {
                    Ok(()) => Ok($name(s.to_owned())),
                    Err(reason) => Err(IdError { kind: $kind, value: s.to_owned(), reason }),
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                match $check(&s) {
                    Ok(()) => Ok($name(s)),
                    Err(reason) => Err(IdError { kind: $kind, value: s, reason }),
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                $name::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::try_from(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A machine id: 14 lowercase hex digits, like Fly's (`d8d9510a295118`).
    MachineId,
    "machine id",
    check_machine_id
);

string_id!(
    /// An app name: 1 to 63 characters of lowercase letters, digits and `-`,
    /// starting and ending with a letter or digit. App names become DNS labels
    /// (`<app>.internal`), hence the DNS label rules.
    AppName,
    "app name",
    check_app_name
);

string_id!(
    /// A volume id: `vol_` followed by 1 to 32 lowercase letters and digits
    /// (`vol_4y5mpg9ldnwzqe3v`).
    VolumeId,
    "volume id",
    check_volume_id
);

/// Length of a machine id.
pub const MACHINE_ID_LEN: usize = 14;
/// Longest app name.
pub const APP_NAME_MAX_LEN: usize = 63;
/// Longest volume id suffix (after `vol_`).
pub const VOLUME_ID_MAX_SUFFIX: usize = 32;

fn check_machine_id(s: &str) -> Result<(), &'static str> {
    if s.len() != MACHINE_ID_LEN {
        return Err("must be exactly 14 lowercase hex digits");
    }
    if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("must be exactly 14 lowercase hex digits");
    }
    Ok(())
}

fn check_app_name(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("must not be empty");
    }
    if s.len() > APP_NAME_MAX_LEN {
        return Err("must be at most 63 characters");
    }
    if !s
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
    {
        return Err("may only contain lowercase letters, digits and '-'");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

fn check_volume_id(s: &str) -> Result<(), &'static str> {
    let Some(rest) = s.strip_prefix("vol_") else {
        return Err("must start with \"vol_\"");
    };
    if rest.is_empty() || rest.len() > VOLUME_ID_MAX_SUFFIX {
        return Err("must have 1 to 32 characters after \"vol_\"");
    }
    if !rest.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9')) {
        return Err("may only contain lowercase letters and digits after \"vol_\"");
    }
    Ok(())
}

impl MachineId {
    /// A machine id from random bits (the low 56 bits are used). The caller
    /// supplies the randomness; this crate does no I/O.
    pub fn from_random(bits: u64) -> Self {
        MachineId(format!("{:014x}", bits & ((1u64 << 56) - 1)))
    }
}

impl VolumeId {
    /// A volume id from random bits: `vol_` + 16 base-36 characters.
    pub fn from_random(mut bits: u128) -> Self {
        const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut s = String::from("vol_");
        for _ in 0..16 {
            s.push(ALPHABET[(bits % 36) as usize] as char);
            bits /= 36;
        }
        VolumeId(s)
    }
}
