//! A small synchronous rtnetlink client: just the requests machine networking
//! needs (links, veths, bridges, addresses, default routes), with the kernel's
//! errno returned as a typed error. A socket belongs to the network namespace of
//! the thread that opened it, which is how requests reach inside a machine's.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use super::error::{NetworkError, Result};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

const IFF_UP: u32 = 0x1;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;

const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

const RECV_BUF: usize = 64 * 1024;

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
struct Body {
    buf: Vec<u8>,
}

impl Body {
    fn new(fixed: &[u8]) -> Self {
        Self {
            buf: fixed.to_vec(),
        }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        self.pad();
        let len = u16::try_from(4 + data.len()).expect("attribute fits in u16");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    fn attr_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(ty, &data)
    }

    fn nest_start(&mut self, ty: u16) -> usize {
        self.pad();
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        at
    }

    fn nest_end(&mut self, at: usize) {
        self.pad();
        let len = u16::try_from(self.buf.len() - at).expect("nest fits in u16");
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = AF_UNSPEC;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

fn ifaddrmsg(family: u8, prefix_len: u8, index: u32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[0] = family;
    m[1] = prefix_len;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m
}

fn ip_bytes(addr: IpAddr) -> (u8, Vec<u8>) {
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

fn parse_link(body: &[u8]) -> Option<Link> {
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

fn parse_addr(body: &[u8]) -> Option<LinkAddr> {
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

/// An rtnetlink socket in the network namespace of the thread that opened it.
pub(crate) struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let sys = |source| NetworkError::Sys {
            op: "open netlink socket",
            path: "NETLINK_ROUTE".into(),
            source,
        };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(sys)?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(sys)?;
        // The kernel answers at once; a bound wait keeps a bug from hanging the agent.
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(5, 0)).map_err(sys)?;
        Ok(Self { fd, seq: 0 })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_fd().as_raw_fd()
    }

    fn send(
        &mut self,
        op: &'static str,
        object: &str,
        ty: u16,
        flags: u16,
        body: &[u8],
    ) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let len = u32::try_from(NLMSG_HDRLEN + body.len()).expect("message fits in u32");
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        loop {
            match send(self.raw(), &msg, MsgFlags::empty()) {
                Ok(_) => return Ok(self.seq),
                Err(Errno::EINTR) => continue,
                Err(source) => {
                    return Err(NetworkError::Netlink {
                        op,
                        object: object.into(),
                        source,
                    });
                }
            }
        }
    }

    /// Receives answers to `seq` until the ack (or, for dumps, DONE); returns the
    /// (type, body) of each data message.
    fn receive(&mut self, op: &'static str, object: &str, seq: u32) -> Result<Vec<(u16, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let n = match recv(self.raw(), &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(source) => {
                    return Err(NetworkError::Netlink {
                        op,
                        object: object.into(),
                        source,
                    });
                }
            };
            let mut data = &buf[..n];
            while data.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
                let ty = u16::from_ne_bytes([data[4], data[5]]);
                let mseq = u32::from_ne_bytes(data[8..12].try_into().expect("4 bytes"));
                if len < NLMSG_HDRLEN || len > data.len() {
                    return Err(NetworkError::Protocol {
                        op,
                        problem: format!("message length {len} with {} bytes left", data.len()),
                    });
                }
                let body = &data[NLMSG_HDRLEN..len];
                data = data.get((len + 3) & !3..).unwrap_or(&[]);
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_ERROR | NLMSG_DONE => {
                        let code = body
                            .get(..4)
                            .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                            .unwrap_or(0);
                        if code < 0 {
                            return Err(NetworkError::Netlink {
                                op,
                                object: object.into(),
                                source: Errno::from_raw(-code),
                            });
                        }
                        return Ok(out);
                    }
                    _ => out.push((ty, body.to_vec())),
                }
            }
        }
    }

    fn request(
        &mut self,
        op: &'static str,
        object: &str,
        ty: u16,
        flags: u16,
        body: &Body,
    ) -> Result<()> {
        let seq = self.send(op, object, ty, flags | NLM_F_ACK, &body.buf)?;
        self.receive(op, object, seq).map(drop)
    }

    /// The link named `name`, if there is one.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        let mut body = Body::new(&ifinfomsg(0, 0, 0));
        body.attr_str(IFLA_IFNAME, name);
        let seq = self.send("get link", name, RTM_GETLINK, NLM_F_ACK, &body.buf)?;
        match self.receive("get link", name, seq) {
            Ok(msgs) => Ok(msgs
                .iter()
                .filter(|(ty, _)| *ty == RTM_NEWLINK)
                .find_map(|(_, b)| parse_link(b))),
            Err(NetworkError::Netlink {
                source: Errno::ENODEV,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let body = Body::new(&ifinfomsg(0, 0, 0));
        let seq = self.send("list links", "", RTM_GETLINK, NLM_F_DUMP, &body.buf)?;
        let msgs = self.receive("list links", "", seq)?;
        Ok(msgs
            .iter()
            .filter(|(ty, _)| *ty == RTM_NEWLINK)
            .filter_map(|(_, b)| parse_link(b))
            .collect())
    }

    /// Every address of the namespace (both families).
    pub fn addrs(&mut self) -> Result<Vec<LinkAddr>> {
        let body = Body::new(&ifaddrmsg(AF_UNSPEC, 0, 0));
        let seq = self.send("list addresses", "", RTM_GETADDR, NLM_F_DUMP, &body.buf)?;
        let msgs = self.receive("list addresses", "", seq)?;
        Ok(msgs
            .iter()
            .filter(|(ty, _)| *ty == RTM_NEWADDR)
            .filter_map(|(_, b)| parse_addr(b))
            .collect())
    }

    /// Creates a bridge, up, with a fixed MAC (so it does not change as ports come and go).
    pub fn add_bridge(&mut self, name: &str, mtu: u32, mac: [u8; 6]) -> Result<()> {
        let mut body = Body::new(&ifinfomsg(0, IFF_UP, IFF_UP));
        body.attr_str(IFLA_IFNAME, name)
            .attr_u32(IFLA_MTU, mtu)
            .attr(IFLA_ADDRESS, &mac);
        let info = body.nest_start(IFLA_LINKINFO);
        body.attr_str(IFLA_INFO_KIND, "bridge");
        body.nest_end(info);
        self.request(
            "add bridge",
            name,
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
        )
    }

    /// Creates a veth pair: `host` (up, attached to `master`) here, and `peer`
    /// (down) directly inside the network namespace open at `peer_netns`.
    pub fn add_veth(
        &mut self,
        host: &str,
        mtu: u32,
        master: u32,
        peer: &str,
        peer_netns: RawFd,
    ) -> Result<()> {
        let mut body = Body::new(&ifinfomsg(0, IFF_UP, IFF_UP));
        body.attr_str(IFLA_IFNAME, host)
            .attr_u32(IFLA_MTU, mtu)
            .attr_u32(IFLA_MASTER, master);
        let info = body.nest_start(IFLA_LINKINFO);
        body.attr_str(IFLA_INFO_KIND, "veth");
        let data = body.nest_start(IFLA_INFO_DATA);
        let peer_at = body.nest_start(VETH_INFO_PEER);
        // The peer is brought up from inside its namespace: asking for it here
        // fails (ENOTCONN) on some kernels.
        body.buf.extend_from_slice(&ifinfomsg(0, 0, 0));
        let fd = u32::try_from(peer_netns).expect("file descriptors are not negative");
        body.attr_str(IFLA_IFNAME, peer)
            .attr_u32(IFLA_MTU, mtu)
            .attr_u32(IFLA_NET_NS_FD, fd);
        body.nest_end(peer_at);
        body.nest_end(data);
        body.nest_end(info);
        self.request(
            "add veth",
            host,
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
        )
    }

    /// Brings a link up.
    pub fn set_up(&mut self, index: u32, name: &str) -> Result<()> {
        let body = Body::new(&ifinfomsg(index, IFF_UP, IFF_UP));
        self.request("set link up", name, RTM_NEWLINK, 0, &body)
    }

    /// Sets a link's MTU.
    pub fn set_mtu(&mut self, index: u32, name: &str, mtu: u32) -> Result<()> {
        let mut body = Body::new(&ifinfomsg(index, 0, 0));
        body.attr_u32(IFLA_MTU, mtu);
        self.request("set link mtu", name, RTM_NEWLINK, 0, &body)
    }

    /// Deletes a link by name; `Ok(false)` when there was none.
    pub fn del_link(&mut self, name: &str) -> Result<bool> {
        let mut body = Body::new(&ifinfomsg(0, 0, 0));
        body.attr_str(IFLA_IFNAME, name);
        match self.request("delete link", name, RTM_DELLINK, 0, &body) {
            Ok(()) => Ok(true),
            Err(NetworkError::Netlink {
                source: Errno::ENODEV,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds (or re-adds) an address; IPv6 addresses skip duplicate address
    /// detection so they are usable at once.
    pub fn add_addr(&mut self, index: u32, link: &str, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let (family, bytes) = ip_bytes(addr);
        let nodad = if family == AF_INET6 { IFA_F_NODAD } else { 0 };
        let mut fixed = ifaddrmsg(family, prefix_len, index);
        fixed[2] = nodad as u8;
        let mut body = Body::new(&fixed);
        body.attr(IFA_LOCAL, &bytes).attr(IFA_ADDRESS, &bytes);
        if nodad != 0 {
            body.attr_u32(IFA_FLAGS, nodad);
        }
        let object = format!("{addr}/{prefix_len} on {link}");
        self.request(
            "add address",
            &object,
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_REPLACE,
            &body,
        )
    }

    /// Adds (or replaces) the default route of `gateway`'s family through `index`.
    pub fn add_default_route(&mut self, index: u32, link: &str, gateway: IpAddr) -> Result<()> {
        let (family, bytes) = ip_bytes(gateway);
        let rtmsg = [
            family,
            0, // dst_len: default route
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_STATIC,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ];
        let mut body = Body::new(&rtmsg);
        body.attr(RTA_GATEWAY, &bytes).attr_u32(RTA_OIF, index);
        let object = format!("default via {gateway} dev {link}");
        self.request(
            "add route",
            &object,
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_REPLACE,
            &body,
        )
    }
}
