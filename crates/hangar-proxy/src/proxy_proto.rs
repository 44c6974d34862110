//! PROXY protocol headers (v1 text, v2 binary) the proxy sends to machines
//! before a client's bytes, so they learn the client's address.

use std::net::SocketAddr;

use crate::catalog::ProxyProtoVersion;

const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// The header for a connection from `src` to `dst`.
pub fn header(version: ProxyProtoVersion, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(src, dst);
    match version {
        ProxyProtoVersion::V1 => v1(src, dst),
        ProxyProtoVersion::V2 => v2(src, dst),
    }
}

/// Both addresses in one family (IPv4 when both are IPv4 or mapped IPv4).
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let src = crate::conn::canonical(src);
    let dst = crate::conn::canonical(dst);
    match (src, dst) {
        (SocketAddr::V4(_), SocketAddr::V6(d)) => (
            SocketAddr::new(
                match src.ip() {
                    std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().into(),
                    ip => ip,
                },
                src.port(),
            ),
            SocketAddr::V6(d),
        ),
        (SocketAddr::V6(s), SocketAddr::V4(d)) => (
            SocketAddr::V6(s),
            SocketAddr::new(d.ip().to_ipv6_mapped().into(), d.port()),
        ),
        other => other,
    }
}

fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {fam} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

fn v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, PROXY command
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11); // TCP over IPv4
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let ip6 = |a: SocketAddr| match a.ip() {
                std::net::IpAddr::V6(v6) => v6.octets(),
                std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            };
            out.push(0x21); // TCP over IPv6
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&ip6(s));
            out.extend_from_slice(&ip6(d));
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_ipv4() {
        let h = header(
            ProxyProtoVersion::V1,
            "192.0.2.1:5000".parse().unwrap(),
            "127.0.0.1:443".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 443\r\n");
    }

    #[test]
    fn v1_mixed_families_become_ipv6() {
        let h = header(
            ProxyProtoVersion::V1,
            "192.0.2.1:5000".parse().unwrap(),
            "[fd00::1]:443".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP6 ::ffff:192.0.2.1 fd00::1 5000 443\r\n");
    }

    #[test]
    fn v2_ipv4_layout() {
        let h = header(
            ProxyProtoVersion::V2,
            "[::ffff:10.0.0.2]:40000".parse().unwrap(),
            "10.0.0.1:8080".parse().unwrap(),
        );
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[10, 0, 0, 2]);
        assert_eq!(&h[20..24], &[10, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 40000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 8080);
        assert_eq!(h.len(), 28);
    }

    #[test]
    fn v2_ipv6_layout() {
        let h = header(
            ProxyProtoVersion::V2,
            "[fd00::2]:1".parse().unwrap(),
            "[fd00::1]:2".parse().unwrap(),
        );
        assert_eq!(h[13], 0x21);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 36);
        assert_eq!(h.len(), 16 + 36);
    }
}
