//! Identifier generation for stored records: machine ids (14 lowercase hex
//! characters, like Fly's), volume ids (`vol_` + 16 lowercase alphanumerics),
//! ULID-like version, instance and event ids, lease nonces and API tokens.

use std::time::{SystemTime, UNIX_EPOCH};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ALNUM: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) {
    // The kernel's getrandom(2) only fails on exotic systems without it; a
    // store that cannot produce ids cannot work at all.
    getrandom::fill(buf).expect("the operating system's random source is unavailable");
}

/// A new machine id: 14 lowercase hex characters.
pub fn machine_id() -> String {
    let mut b = [0u8; 7];
    random_bytes(&mut b);
    hex::encode(b)
}

/// A new volume id: `vol_` followed by 16 lowercase alphanumerics.
pub fn volume_id() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    let tail: String = b
        .iter()
        .map(|x| ALNUM[(*x as usize) % ALNUM.len()] as char)
        .collect();
    format!("vol_{tail}")
}

/// A new ULID-like id (26 Crockford base32 characters, sortable by time).
pub fn ulid_at(ms: i64) -> String {
    let mut r = [0u8; 10];
    random_bytes(&mut r);
    let mut low: u128 = 0;
    for x in r {
        low = (low << 8) | u128::from(x);
    }
    encode_ulid(ms, low)
}

/// A new ULID-like id for the current time.
pub fn ulid() -> String {
    ulid_at(now_ms())
}

/// Encodes a 48-bit millisecond timestamp and an 80-bit tail as 26 Crockford
/// base32 characters.
pub fn encode_ulid(ms: i64, tail: u128) -> String {
    let ts = (ms.max(0) as u128) & ((1u128 << 48) - 1);
    let v = (ts << 80) | (tail & ((1u128 << 80) - 1));
    let mut out = [0u8; 26];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (25 - i);
        *slot = CROCKFORD[((v >> shift) & 31) as usize];
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes a ULID-like id into its timestamp and 80-bit tail.
pub fn decode_ulid(s: &str) -> Option<(i64, u128)> {
    if s.len() != 26 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, c) in s.bytes().enumerate() {
        let c = c.to_ascii_uppercase();
        let d = CROCKFORD.iter().position(|x| *x == c)? as u128;
        if i == 0 && d > 7 {
            return None;
        }
        v = (v << 5) | d;
    }
    Some(((v >> 80) as i64, v & ((1u128 << 80) - 1)))
}

/// A generated machine name: `adjective-noun-1234`.
pub fn machine_name() -> String {
    const ADJ: [&str; 16] = [
        "quiet", "bold", "rapid", "calm", "bright", "sharp", "gentle", "lively", "polished",
        "steady", "silent", "misty", "ancient", "young", "frosty", "sunny",
    ];
    const NOUN: [&str; 16] = [
        "river", "cloud", "field", "forest", "meadow", "harbor", "summit", "canyon", "island",
        "valley", "glade", "ridge", "breeze", "comet", "willow", "falcon",
    ];
    let mut b = [0u8; 4];
    random_bytes(&mut b);
    let n = u16::from_le_bytes([b[2], b[3]]) % 10000;
    format!(
        "{}-{}-{n:04}",
        ADJ[(b[0] % 16) as usize],
        NOUN[(b[1] % 16) as usize]
    )
}

/// A new lease nonce: 32 lowercase hex characters.
pub fn nonce() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    hex::encode(b)
}

/// A new API token: `hgr_` followed by 64 hex characters (32 random bytes).
pub fn token() -> String {
    let mut b = [0u8; 32];
    random_bytes(&mut b);
    format!("hgr_{}", hex::encode(b))
}

/// Milliseconds since the Unix epoch from the system clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids_are_14_lowercase_hex() {
        let id = machine_id();
        assert_eq!(id.len(), 14);
        assert!(
            id.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(id, machine_id());
    }

    #[test]
    fn volume_ids_have_prefix_and_16_alphanumerics() {
        let id = volume_id();
        let tail = id.strip_prefix("vol_").unwrap();
        assert_eq!(tail.len(), 16);
        assert!(
            tail.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn ulids_round_trip_and_sort_by_time() {
        let a = encode_ulid(1_700_000_000_000, 42);
        let b = encode_ulid(1_700_000_000_001, 7);
        assert_eq!(a.len(), 26);
        assert!(a < b);
        assert_eq!(decode_ulid(&a), Some((1_700_000_000_000, 42)));
        assert_eq!(decode_ulid("not-a-ulid"), None);
    }
}
