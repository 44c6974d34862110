//! Configuration of a host's machine network: the bridge, the IPv4 subnet, the
//! per-host IPv6 ULA /64, NAT, and the name prefixes that mark what Hangar made.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::{NetworkError, Result};

/// Default bridge name.
pub const DEFAULT_BRIDGE: &str = "hangar0";
/// Default IPv4 subnet for machines.
///
/// 10.209.0.0/16 stays clear of the ranges other tools on a typical host hand
/// out: Docker's pools (172.17–172.31/16, 192.168/16), Podman (10.88/16), k3s
/// (10.42/16, 10.43/16), flannel (10.244/16), Kubernetes services (10.96/12),
/// Parallels (10.211.55/24) and Tailscale's CGNAT range (100.64/10).
pub const DEFAULT_IPV4_SUBNET: &str = "10.209.0.0/16";
/// Default prefix of the network namespaces Hangar makes (`/run/netns/hangar-<id>`).
pub const DEFAULT_NETNS_PREFIX: &str = "hangar-";
/// Default prefix of the host side of machine veths (`hg<hash>`).
pub const DEFAULT_VETH_PREFIX: &str = "hg";

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;
/// Longest veth prefix: leaves at least 11 hex digits (44 bits) of machine hash.
pub const VETH_PREFIX_MAX: usize = 4;

/// An IPv4 network, e.g. `10.209.0.0/16` (prefix length 8..=30).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Subnet {
    network: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Subnet {
    /// A subnet from its network address and prefix length; host bits must be zero.
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<Self> {
        if !(8..=30).contains(&prefix_len) {
            return Err(NetworkError::invalid(
                "ipv4_subnet",
                format!("prefix length /{prefix_len} must be between /8 and /30"),
            ));
        }
        let mask = Self::mask_of(prefix_len);
        if u32::from(network) & !mask != 0 {
            return Err(NetworkError::invalid(
                "ipv4_subnet",
                format!("{network}/{prefix_len} has host bits set"),
            ));
        }
        Ok(Self {
            network,
            prefix_len,
        })
    }

    fn mask_of(prefix_len: u8) -> u32 {
        u32::MAX << (32 - u32::from(prefix_len))
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The broadcast address (last of the subnet).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !Self::mask_of(self.prefix_len))
    }

    /// The gateway: the bridge's address, first host of the subnet (`.1`).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Whether `addr` lies inside the subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & Self::mask_of(self.prefix_len) == u32::from(self.network)
    }

    /// First address a machine may get (after the gateway); with
    /// [`Ipv4Subnet::last_host`], the range of an address pool.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 2)
    }

    /// Last address a machine may get (before the broadcast address).
    pub fn last_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.broadcast()) - 1)
    }
}

impl fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Ipv4Subnet {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self> {
        let (addr, len) = s.split_once('/').ok_or_else(|| {
            NetworkError::invalid("ipv4_subnet", format!("{s:?} is not of the form A.B.C.D/N"))
        })?;
        let network = addr.parse::<Ipv4Addr>().map_err(|e| {
            NetworkError::invalid(
                "ipv4_subnet",
                format!("{addr:?} is not an IPv4 address: {e}"),
            )
        })?;
        let prefix_len = len.parse::<u8>().map_err(|e| {
            NetworkError::invalid(
                "ipv4_subnet",
                format!("{len:?} is not a prefix length: {e}"),
            )
        })?;
        Self::new(network, prefix_len)
    }
}

/// A unique-local IPv6 /64 (`fdXX:XXXX:XXXX:XXXX::/64`), the host's share of the
/// private network machines talk over (Fly's 6PN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    network: Ipv6Addr,
}

impl Ipv6Prefix {
    /// A /64 from its network address; it must be a ULA (fc00::/7) with zero host bits.
    pub fn new(network: Ipv6Addr) -> Result<Self> {
        let bits = u128::from(network);
        if bits & u128::from(u64::MAX) != 0 {
            return Err(NetworkError::invalid(
                "ipv6_prefix",
                format!("{network}/64 has host bits set"),
            ));
        }
        if network.segments()[0] & 0xfe00 != 0xfc00 {
            return Err(NetworkError::invalid(
                "ipv6_prefix",
                format!("{network}/64 is not a unique local address (fc00::/7)"),
            ));
        }
        Ok(Self { network })
    }

    /// A new random ULA /64 (`fd` + 40-bit random global id + 16-bit random subnet,
    /// as RFC 4193 suggests). The caller persists it, e.g. in its data dir.
    pub fn generate() -> Result<Self> {
        let mut random = [0u8; 7];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .map_err(|source| NetworkError::Io {
                op: "read",
                path: "/dev/urandom".into(),
                source,
            })?;
        let mut bytes = [0u8; 16];
        bytes[0] = 0xfd;
        bytes[1..8].copy_from_slice(&random);
        Self::new(Ipv6Addr::from(bytes))
    }

    /// The prefix stored in the file at `path`, or a new one generated and stored
    /// there (written to a temporary file, synced, then renamed into place), so a
    /// host keeps its prefix across restarts.
    pub fn load_or_generate(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        match fs::read_to_string(path) {
            Ok(text) => return text.trim().parse(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(NetworkError::Io {
                    op: "read",
                    path: shown,
                    source,
                });
            }
        }
        let prefix = Self::generate()?;
        let tmp = path.with_extension("tmp");
        let io_err = |op: &'static str| {
            let shown = shown.clone();
            move |source| NetworkError::Io {
                op,
                path: shown,
                source,
            }
        };
        let mut f = fs::File::create(&tmp).map_err(io_err("create"))?;
        f.write_all(format!("{prefix}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err("write"))?;
        fs::rename(&tmp, path).map_err(io_err("rename into place"))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("sync dir of"))?;
        }
        Ok(prefix)
    }

    /// The network address (`fdXX:...::`).
    pub fn network(&self) -> Ipv6Addr {
        self.network
    }

    /// The gateway: the bridge's address (`prefix::1`).
    pub fn gateway(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network) | 1)
    }

    /// The address with interface id `iid` inside the prefix.
    pub fn with_interface_id(&self, iid: u64) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network) | u128::from(iid))
    }

    /// Whether `addr` lies inside the /64.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        u128::from(addr) >> 64 == u128::from(self.network) >> 64
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/64", self.network)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self> {
        let addr = s.strip_suffix("/64").ok_or_else(|| {
            NetworkError::invalid(
                "ipv6_prefix",
                format!("{s:?} is not of the form fdXX:...::/64"),
            )
        })?;
        let network = addr.parse::<Ipv6Addr>().map_err(|e| {
            NetworkError::invalid(
                "ipv6_prefix",
                format!("{addr:?} is not an IPv6 address: {e}"),
            )
        })?;
        Self::new(network)
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(Ipv4Subnet);
string_serde!(Ipv6Prefix);

/// How a host's machine network is laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The bridge every machine's veth is attached to (default `hangar0`).
    pub bridge: String,
    /// Machines' IPv4 addresses come from here; the bridge holds `.1`.
    pub ipv4_subnet: Ipv4Subnet,
    /// Machines' IPv6 addresses (their `private_ip`); the bridge holds `::1`.
    pub ipv6_prefix: Ipv6Prefix,
    /// Masquerade machines' traffic leaving the host (iptables and ip6tables), and
    /// turn on IP forwarding. Off, machines reach only each other and the host.
    pub nat: bool,
    /// Prefix of the network namespaces' names under `/run/netns`.
    pub netns_prefix: String,
    /// Prefix of the host side of machine veths (at most 4 characters).
    pub veth_prefix: String,
    /// MTU of the bridge and the veths (default 1500).
    pub mtu: u32,
}

impl NetworkConfig {
    /// The defaults, with the host's IPv6 prefix (generated once with
    /// [`Ipv6Prefix::generate`] and persisted by the caller).
    pub fn new(ipv6_prefix: Ipv6Prefix) -> Self {
        Self {
            bridge: DEFAULT_BRIDGE.into(),
            ipv4_subnet: DEFAULT_IPV4_SUBNET
                .parse()
                .expect("default subnet is valid"),
            ipv6_prefix,
            nat: true,
            netns_prefix: DEFAULT_NETNS_PREFIX.into(),
            veth_prefix: DEFAULT_VETH_PREFIX.into(),
            mtu: 1500,
        }
    }

    /// Uses `bridge`. Any bridge but the default also gets name prefixes of
    /// its own (`<bridge>-` for namespaces, `v` and three hex digits of the
    /// bridge name's hash for veths), so servers with different bridges on
    /// one host never take each other's machine networks for leftovers.
    pub fn set_bridge(&mut self, bridge: &str) {
        self.bridge = bridge.to_owned();
        if bridge == DEFAULT_BRIDGE {
            self.netns_prefix = DEFAULT_NETNS_PREFIX.into();
            self.veth_prefix = DEFAULT_VETH_PREFIX.into();
        } else {
            self.netns_prefix = format!("{bridge}-");
            self.veth_prefix = format!(
                "v{:03x}",
                super::names::stable_hash(bridge.as_bytes()) & 0xfff
            );
        }
    }

    /// Checks every field; returns the first problem, naming the field.
    pub fn validate(&self) -> Result<()> {
        check_ifname("config.bridge", &self.bridge)?;
        if self.veth_prefix.is_empty() || self.veth_prefix.len() > VETH_PREFIX_MAX {
            return Err(NetworkError::invalid(
                "config.veth_prefix",
                format!(
                    "{:?} must be 1 to {VETH_PREFIX_MAX} characters",
                    self.veth_prefix
                ),
            ));
        }
        check_chars("config.veth_prefix", &self.veth_prefix)?;
        if self.bridge.starts_with(&self.veth_prefix) {
            return Err(NetworkError::invalid(
                "config.bridge",
                format!(
                    "{:?} starts with the veth prefix {:?}",
                    self.bridge, self.veth_prefix
                ),
            ));
        }
        if self.netns_prefix.is_empty() || self.netns_prefix.len() > 32 {
            return Err(NetworkError::invalid(
                "config.netns_prefix",
                format!("{:?} must be 1 to 32 characters", self.netns_prefix),
            ));
        }
        check_chars("config.netns_prefix", &self.netns_prefix)?;
        if !(1280..=65535).contains(&self.mtu) {
            return Err(NetworkError::invalid(
                "config.mtu",
                format!(
                    "{} must be between 1280 (the IPv6 minimum) and 65535",
                    self.mtu
                ),
            ));
        }
        Ok(())
    }
}

/// Interface names: 1..=15 characters of `[A-Za-z0-9_.-]`.
pub(crate) fn check_ifname(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > IFNAME_MAX {
        return Err(NetworkError::invalid(
            field,
            format!("{name:?} must be 1 to {IFNAME_MAX} characters"),
        ));
    }
    check_chars(field, name)
}

/// Names that become file names or interface names: `[A-Za-z0-9_.-]`, not `.`/`..`.
pub(crate) fn check_chars(field: &'static str, name: &str) -> Result<()> {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(NetworkError::invalid(
            field,
            format!("{name:?} contains {c:?}; only letters, digits, '_', '-' and '.' are allowed"),
        ));
    }
    if name == "." || name == ".." {
        return Err(NetworkError::invalid(
            field,
            format!("{name:?} is not a valid name"),
        ));
    }
    Ok(())
}
