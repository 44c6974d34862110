//! The rtnetlink wire format: constants, message bodies under construction,
//! and parsing of the link and address messages the kernel answers with.

use std::net::IpAddr;

pub(super) const NLMSG_HDRLEN: usize = 16;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;

pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_ACK: u16 = 0x4;
pub(super) const NLM_F_DUMP: u16 = 0x300;
pub(super) const NLM_F_REPLACE: u16 = 0x100;
pub(super) const NLM_F_EXCL: u16 = 0x200;
pub(super) const NLM_F_CREATE: u16 = 0x400;

pub(super) const RTM_NEWLINK: u16 = 16;
pub(super) const RTM_DELLINK: u16 = 17;
pub(super) const RTM_GETLINK: u16 = 18;
pub(super) const RTM_NEWADDR: u16 = 20;
pub(super) const RTM_GETADDR: u16 = 22;
pub(super) const RTM_NEWROUTE: u16 = 24;

pub(super) const AF_UNSPEC: u8 = 0;
pub(super) const AF_INET: u8 = 2;
pub(super) const AF_INET6: u8 = 10;

pub(super) const IFF_UP: u32 = 0x1;

pub(super) const IFLA_ADDRESS: u16 = 1;
pub(super) const IFLA_IFNAME: u16 = 3;
pub(super) const IFLA_MTU: u16 = 4;
pub(super) const IFLA_MASTER: u16 = 10;
pub(super) const IFLA_LINKINFO: u16 = 18;
pub(super) const IFLA_NET_NS_FD: u16 = 28;
pub(super) const IFLA_INFO_KIND: u16 = 1;
pub(super) const IFLA_INFO_DATA: u16 = 2;
pub(super) const VETH_INFO_PEER: u16 = 1;

pub(super) const IFA_ADDRESS: u16 = 1;
pub(super) const IFA_LOCAL: u16 = 2;
pub(super) const IFA_FLAGS: u16 = 8;
pub(super) const IFA_F_NODAD: u32 = 0x02;

pub(super) const RTA_OIF: u16 = 4;
pub(super) const RTA_GATEWAY: u16 = 5;
pub(super) const RT_TABLE_MAIN: u8 = 254;
pub(super) const RTPROT_STATIC: u8 = 4;
pub(super) const RT_SCOPE_UNIVERSE: u8 = 0;
pub(super) const RTN_UNICAST: u8 = 1;

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    pub up: bool,
    pub master: Option<u32>,
    /// `IFLA_INFO_KIND`: "bridge", "veth", ... (empty for devices without one).
    pub kind: String,
    pub mtu: Option<u32>,
}

/// An address of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkAddr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// A message body under construction: fixed header, then attributes.
pub(super) struct Body {
    pub(super) buf: Vec<u8>,
}

impl Body {
    pub(super) fn new(fixed: &[u8]) -> Self {
        Self {
            buf: fixed.to_vec(),
        }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub(super) fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        self.pad();
        let len = u16::try_from(4 + data.len()).expect("attribute fits in u16");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    pub(super) fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    pub(super) fn attr_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(ty, &data)
    }

    pub(super) fn nest_start(&mut self, ty: u16) -> usize {
        self.pad();
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        at
    }

    pub(super) fn nest_end(&mut self, at: usize) {
        self.pad();
        let len = u16::try_from(self.buf.len() - at).expect("nest fits in u16");
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

pub(super) fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = AF_UNSPEC;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

pub(super) fn ifaddrmsg(family: u8, prefix_len: u8, index: u32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[0] = family;
    m[1] = prefix_len;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m
}

pub(super) fn ip_bytes(addr: IpAddr) -> (u8, Vec<u8>) {
    match addr {
        IpAddr::V4(a) => (AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (AF_INET6, a.octets().to_vec()),
    }
}

/// Iterates the attributes of `data`: (type without flags, payload).
fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let ty = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            return None;
        }
        let payload = &data[4..len];
        let advance = (len + 3) & !3;
        data = data.get(advance..).unwrap_or(&[]);
        Some((ty, payload))
    })
}

fn cstr(data: &[u8]) -> String {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

fn u32_of(data: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(data.get(..4)?.try_into().ok()?))
}

pub(super) fn parse_link(body: &[u8]) -> Option<Link> {
    let fixed = body.get(..16)?;
    let index = u32::from_ne_bytes(fixed[4..8].try_into().ok()?);
    let flags = u32::from_ne_bytes(fixed[8..12].try_into().ok()?);
    let mut link = Link {
        index,
        name: String::new(),
        up: flags & IFF_UP != 0,
        master: None,
        kind: String::new(),
        mtu: None,
    };
    for (ty, payload) in attrs(&body[16..]) {
        match ty {
            IFLA_IFNAME => link.name = cstr(payload),
            IFLA_MASTER => link.master = u32_of(payload),
            IFLA_MTU => link.mtu = u32_of(payload),
            IFLA_LINKINFO => {
                for (ity, ipayload) in attrs(payload) {
                    if ity == IFLA_INFO_KIND {
                        link.kind = cstr(ipayload);
                    }
                }
            }
            _ => {}
        }
    }
    Some(link)
}

pub(super) fn parse_addr(body: &[u8]) -> Option<LinkAddr> {
    let fixed = body.get(..8)?;
    let family = fixed[0];
    let prefix_len = fixed[1];
    let index = u32::from_ne_bytes(fixed[4..8].try_into().ok()?);
    let mut local = None;
    let mut address = None;
    for (ty, payload) in attrs(&body[8..]) {
        let ip = match (family, payload.len()) {
            (AF_INET, 4) => IpAddr::from(<[u8; 4]>::try_from(payload).ok()?),
            (AF_INET6, 16) => IpAddr::from(<[u8; 16]>::try_from(payload).ok()?),
            _ => continue,
        };
        match ty {
            IFA_LOCAL => local = Some(ip),
            IFA_ADDRESS => address = Some(ip),
            _ => {}
        }
    }
    Some(LinkAddr {
        index,
        addr: local.or(address)?,
        prefix_len,
    })
}
