//! Durations as the Machines API writes them: an integer or float number of
//! seconds (`10`, `0.5`) or a Go-style duration string (`"10s"`, `"500ms"`,
//! `"1m30s"`).
//!
//! A [`Duration`] remembers the form it arrived in, so serializing it gives back
//! exactly what the client sent. Comparison, ordering and hashing use the length
//! of time only: `10`, `"10s"` and `"10000ms"` are equal.
//!
//! Integers are always seconds. This is what the OpenAPI spec says for every
//! integer duration (`fly.ContainerHealthcheck.interval`: "the time in seconds")
//! and what the newer multi-container guide says. No guessing from magnitude:
//! the older guide's LiteFS example (`"interval": 1000`) therefore means 1000
//! seconds, which is a valid (if slow) interval.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A length of time plus the spelling it was written in.
#[derive(Debug, Clone)]
pub struct Duration {
    value: std::time::Duration,
    form: Form,
}

/// How a duration was written on the wire.
#[derive(Debug, Clone, PartialEq)]
enum Form {
    /// A JSON number of seconds, echoed as the same number.
    Number(serde_json::Number),
    /// A duration string, echoed verbatim.
    Text(String),
}

/// Why a duration string or number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}: empty")]
    Empty(String),
    #[error("invalid duration {0:?}: negative durations are not allowed")]
    Negative(String),
    #[error("invalid duration {input:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit { input: String, unit: String },
    #[error(
        "invalid duration {0:?}: expected a number followed by a unit, like \"10s\" or \"1m30s\""
    )]
    Malformed(String),
    #[error("invalid duration {0:?}: too long")]
    Overflow(String),
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

impl Duration {
    /// Whole seconds, written as a JSON integer.
    pub fn from_secs(secs: u64) -> Self {
        Duration {
            value: std::time::Duration::from_secs(secs),
            form: Form::Number(secs.into()),
        }
    }

    /// Milliseconds, written as a string like `"500ms"`.
    pub fn from_millis(ms: u64) -> Self {
        Duration {
            value: std::time::Duration::from_millis(ms),
            form: Form::Text(format!("{ms}ms")),
        }
    }

    /// Any length of time, written as a Go-style string (`"1m30s"`, `"250ms"`).
    pub fn from_std(d: std::time::Duration) -> Self {
        Duration {
            value: d,
            form: Form::Text(format_go(d)),
        }
    }

    /// Parse a duration string: Go syntax (`"1h2m3.5s"`, `"500ms"`, `"0"`), or a
    /// plain number of seconds (`"10"`, `"1.5"`). The text is kept as written.
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        Ok(Duration {
            value: parse_text(s)?,
            form: Form::Text(s.to_owned()),
        })
    }

    /// A JSON number of seconds (integer or fraction).
    pub fn from_number(n: &serde_json::Number) -> Result<Self, DurationError> {
        let value = if let Some(u) = n.as_u64() {
            std::time::Duration::from_secs(u)
        } else if n.as_i64().is_some() {
            return Err(DurationError::Negative(n.to_string()));
        } else {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f < 0.0 {
                return Err(DurationError::Negative(n.to_string()));
            }
            std::time::Duration::try_from_secs_f64(f)
                .map_err(|_| DurationError::Overflow(n.to_string()))?
        };
        Ok(Duration {
            value,
            form: Form::Number(n.clone()),
        })
    }

    /// The length of time.
    pub fn as_std(&self) -> std::time::Duration {
        self.value
    }

    /// True when the duration was written as a JSON number.
    pub fn is_number(&self) -> bool {
        matches!(self.form, Form::Number(_))
    }

    pub fn is_zero(&self) -> bool {
        self.value.is_zero()
    }
}

impl Default for Duration {
    fn default() -> Self {
        Duration::from_secs(0)
    }
}

impl PartialEq for Duration {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl Eq for Duration {}
impl PartialOrd for Duration {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Duration {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}
impl Hash for Duration {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration::from_std(d)
    }
}

impl std::str::FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Duration::parse(s)
    }
}

/// Shows the duration as it was written (`10s`, `500ms`, or `10s` for the integer 10).
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.form {
            Form::Text(t) => f.write_str(t),
            Form::Number(n) => write!(f, "{n}s"),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.form {
            Form::Text(t) => s.serialize_str(t),
            Form::Number(n) => n.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration: seconds as a number, or a string like \"10s\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                if v < 0 {
                    Err(E::custom(DurationError::Negative(v.to_string())))
                } else {
                    Ok(Duration::from_secs(v as u64))
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                let n = serde_json::Number::from_f64(v)
                    .ok_or_else(|| E::custom("invalid duration: not a finite number"))?;
                Duration::from_number(&n).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Go's `time.ParseDuration` grammar, non-negative only, plus a bare number of seconds.
fn parse_text(input: &str) -> Result<std::time::Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty(input.to_owned()));
    }
    let s = match s.strip_prefix('+') {
        Some(rest) => rest,
        None if s.starts_with('-') => {
            let rest = &s[1..];
            // "-0" is zero in Go; anything else negative is refused.
            if rest.chars().all(|c| c == '0') && !rest.is_empty() {
                return Ok(std::time::Duration::ZERO);
            }
            return Err(DurationError::Negative(input.to_owned()));
        }
        None => s,
    };
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    // A bare number means seconds, the same as a JSON number.
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let f: f64 = s
            .parse()
            .map_err(|_| DurationError::Malformed(input.to_owned()))?;
        return std::time::Duration::try_from_secs_f64(f)
            .map_err(|_| DurationError::Overflow(input.to_owned()));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(DurationError::Malformed(input.to_owned()));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            "" => return Err(DurationError::Malformed(input.to_owned())),
            other => {
                return Err(DurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: other.to_owned(),
                });
            }
        };
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let overflow = || DurationError::Overflow(input.to_owned());
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut nanos = int.checked_mul(per_unit).ok_or_else(overflow)?;
        // Fractions: take up to 30 digits, which is more precision than nanoseconds need.
        let mut scale = per_unit;
        for d in frac_part.bytes().take(30) {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos = nanos
                .checked_add(u128::from(d - b'0') * scale)
                .ok_or_else(overflow)?;
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        rest = next;
    }
    let secs = u64::try_from(total / NANOS_PER_SEC)
        .map_err(|_| DurationError::Overflow(input.to_owned()))?;
    Ok(std::time::Duration::new(
        secs,
        (total % NANOS_PER_SEC) as u32,
    ))
}

/// Format like Go's `Duration.String` (`1h2m3s`, `1.5s`, `250ms`), used when Hangar
/// itself makes a duration.
fn format_go(d: std::time::Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".into();
    }
    if total < 1_000 {
        return format!("{total}ns");
    }
    if total < 1_000_000 {
        return format!("{}us", trim_frac(total, 1_000));
    }
    if total < NANOS_PER_SEC {
        return format!("{}ms", trim_frac(total, 1_000_000));
    }
    let h = total / (3600 * NANOS_PER_SEC);
    let m = (total / (60 * NANOS_PER_SEC)) % 60;
    let s = total % (60 * NANOS_PER_SEC);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_frac(s, NANOS_PER_SEC)));
    out
}

/// `value / unit` as a decimal without trailing zeros.
fn trim_frac(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}
