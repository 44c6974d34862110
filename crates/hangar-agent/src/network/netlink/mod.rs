//! A small synchronous rtnetlink client: just the requests machine networking
//! needs (links, veths, bridges, addresses, default routes), with the kernel's
//! errno returned as a typed error. A socket belongs to the network namespace of
//! the thread that opened it, which is how requests reach inside a machine's.

mod wire;

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use super::error::{NetworkError, Result};
use wire::*;

pub(crate) use wire::{Link, LinkAddr};

const RECV_BUF: usize = 64 * 1024;

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

    /// Creates a veth pair: `host` (up, attached to `master` if given) here,
    /// and `peer` (down) directly inside the network namespace open at
    /// `peer_netns`.
    pub fn add_veth(
        &mut self,
        host: &str,
        mtu: u32,
        master: Option<u32>,
        peer: &str,
        peer_netns: RawFd,
    ) -> Result<()> {
        let mut body = Body::new(&ifinfomsg(0, IFF_UP, IFF_UP));
        body.attr_str(IFLA_IFNAME, host).attr_u32(IFLA_MTU, mtu);
        if let Some(master) = master {
            body.attr_u32(IFLA_MASTER, master);
        }
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

    /// Attaches a link to a bridge (`master` is the bridge's index), or
    /// releases it from its bridge (`master` 0).
    pub fn set_master(&mut self, index: u32, name: &str, master: u32) -> Result<()> {
        let mut body = Body::new(&ifinfomsg(index, 0, 0));
        body.attr_u32(IFLA_MASTER, master);
        let op = if master == 0 {
            "release link from bridge"
        } else {
            "attach link to bridge"
        };
        self.request(op, name, RTM_NEWLINK, 0, &body)
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
