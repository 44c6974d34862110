//! Machine networking against the real kernel (run as root): bridges, persistent
//! network namespaces, veths, addresses and routes, checked with `ip`, ping and
//! TCP from inside the namespaces. Every test uses its own bridge, subnet and
//! name prefixes, and removes what it made even when it fails. Traffic stays
//! inside namespaces the tests made; NAT stays off except in the test that only
//! checks the rules are installed and removed.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hangar_agent::network::{
    HostNetwork, Ipv6Prefix, MachineAddrs, MachineNetwork, NetworkConfig, NetworkError, allocate,
    list_managed, remove_orphans, veth_name,
};
use nix::sched::{CloneFlags, setns};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    u32::from_ne_bytes(b)
}

/// A unique test network; its `Drop` removes every namespace and veth with its
/// prefixes, its firewall rules and its bridge.
struct TestNet {
    config: NetworkConfig,
}

impl TestNet {
    fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let r = random_u32();
        // A third octet per test: random per process, distinct within it.
        let x = (r % 200 + n * 7) % 250 + 1;
        let tag = format!("{:05x}", (r >> 8) & 0xfffff);
        let letters: String = (0..3)
            .map(|i| char::from(b'a' + ((r >> (i * 5)) % 26) as u8))
            .collect();
        let mut config = NetworkConfig::new(Ipv6Prefix::generate().unwrap());
        config.bridge = format!("hgtb{tag}{n}");
        config.ipv4_subnet = format!("10.200.{x}.0/24").parse().unwrap();
        config.nat = false;
        config.netns_prefix = format!("hgt-{tag}{n}-");
        config.veth_prefix = format!("t{letters}");
        Self { config }
    }

    fn ensure(&self) -> HostNetwork {
        HostNetwork::ensure(&self.config).unwrap()
    }

    fn machine(
        &self,
        host: &HostNetwork,
        id: &str,
        used: &mut Vec<MachineAddrs>,
    ) -> MachineNetwork {
        let addrs = allocate(&self.config, id, used.iter()).unwrap();
        used.push(addrs);
        MachineNetwork::create(host, id, addrs).unwrap()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = remove_orphans(&self.config, &HashSet::new());
        let _ = HostNetwork::teardown(&self.config);
    }
}

fn ip(args: &[&str]) -> (bool, String) {
    let out = Command::new("ip").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// One ping from inside namespace `netns` (through `ip netns exec`).
/// One echo request from inside `netns`; true when it was answered.
fn ping_once(netns: &str, addr: IpAddr) -> bool {
    Command::new("ip")
        .args(["netns", "exec", netns, "busybox", "ping", "-c1", "-W2"])
        .arg(addr.to_string())
        .output()
        .unwrap()
        .status
        .success()
}

/// True when `addr` answers from inside `netns` within three tries. A single
/// echo can be lost right after a link comes up: the neighbour entry left by
/// an earlier failed attempt may still be resolving (and then fail, dropping
/// the queued packet) when the link is back.
fn ping(netns: &str, addr: IpAddr) -> bool {
    (0..3).any(|_| ping_once(netns, addr))
}

/// Runs `f` on a fresh thread that joined the network namespace at `path`.
fn in_netns<T: Send + 'static>(path: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(path).unwrap();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// A TCP connection from machine `from` to `to_addr` where machine `to` listens.
fn tcp_roundtrip(from: &MachineNetwork, to: &MachineNetwork, to_addr: IpAddr) {
    let listener = in_netns(&to.netns_path, move || {
        TcpListener::bind(SocketAddr::new(to_addr, 0)).unwrap()
    });
    let target = listener.local_addr().unwrap();
    let peer = in_netns(&from.netns_path, move || {
        let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(2)).unwrap();
        s.write_all(b"hello").unwrap();
        s.local_addr().unwrap().ip()
    });
    let (mut conn, seen) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 5];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    assert_eq!(seen.ip(), peer);
}

fn mounted_at(path: &str) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path))
}

fn link_exists(name: &str) -> bool {
    ip(&["-o", "link", "show"])
        .1
        .lines()
        .any(|l| l.split(':').nth(1).map(|s| s.trim().split('@').next()) == Some(Some(name)))
}

#[test]
fn machines_reach_each_other_over_ipv4_and_ipv6() {
    let net = TestNet::new();
    let host = net.ensure();
    let mut used = Vec::new();
    let a = net.machine(&host, "mach-a", &mut used);
    let b = net.machine(&host, "mach-b", &mut used);

    for (from, to) in [(&a, &b), (&b, &a)] {
        assert!(
            ping(&from.netns, IpAddr::V4(to.addrs.ipv4)),
            "v4 {} -> {}",
            from.machine_id,
            to.machine_id
        );
        assert!(
            ping(&from.netns, IpAddr::V6(to.addrs.ipv6)),
            "v6 {} -> {}",
            from.machine_id,
            to.machine_id
        );
    }
    // The bridge answers as the gateway on both families.
    assert!(ping(&a.netns, IpAddr::V4(net.config.ipv4_subnet.gateway())));
    assert!(ping(&a.netns, IpAddr::V6(net.config.ipv6_prefix.gateway())));

    tcp_roundtrip(&a, &b, IpAddr::V6(b.addrs.ipv6));
    tcp_roundtrip(&b, &a, IpAddr::V4(a.addrs.ipv4));

    // The host (where the proxy runs) reaches a machine's port on both families.
    for addr in [IpAddr::V4(a.addrs.ipv4), IpAddr::V6(a.addrs.ipv6)] {
        let listener = in_netns(&a.netns_path, move || {
            TcpListener::bind(SocketAddr::new(addr, 0)).unwrap()
        });
        let target = listener.local_addr().unwrap();
        let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(2)).unwrap();
        s.write_all(b"hi").unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 2];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    // Loopback works inside, and default routes point at the bridge.
    assert!(ping(&a.netns, "127.0.0.1".parse().unwrap()));
    let (_, routes) = ip(&["-n", &a.netns, "route", "show", "default"]);
    assert!(
        routes.contains(&format!(
            "via {} dev eth0",
            net.config.ipv4_subnet.gateway()
        )),
        "{routes}"
    );
    let (_, routes6) = ip(&["-n", &a.netns, "-6", "route", "show", "default"]);
    assert!(
        routes6.contains(&format!(
            "via {} dev eth0",
            net.config.ipv6_prefix.gateway()
        )),
        "{routes6}"
    );
}

#[test]
fn namespace_persists_as_a_bind_mount_and_is_joined_by_path() {
    let net = TestNet::new();
    let host = net.ensure();
    let mut used = Vec::new();
    let m = net.machine(&host, "persist1", &mut used);

    assert_eq!(m.netns_path, format!("/run/netns/{}", m.netns));
    assert!(mounted_at(&m.netns_path), "no mount at {}", m.netns_path);
    let (_, list) = ip(&["netns", "list"]);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().next() == Some(m.netns.as_str())),
        "{list}"
    );

    // A thread that joins by path is in that namespace: same inode, sees eth0 with our addresses.
    let ino = fs::metadata(&m.netns_path).unwrap().ino();
    let (joined_ino, eth0) = in_netns(&m.netns_path, || {
        let ino = fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
        let eth0 = fs::read_dir("/proc/sys/net/ipv4/conf")
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name() == "eth0");
        (ino, eth0)
    });
    assert_eq!(joined_ino, ino);
    assert!(eth0);
    assert_ne!(fs::metadata("/proc/self/ns/net").unwrap().ino(), ino);

    let state = MachineNetwork::inspect(&net.config, "persist1")
        .unwrap()
        .unwrap();
    assert!(
        state.netns_mounted && state.veth_present && state.veth_on_bridge && state.eth0_up,
        "{state:?}"
    );
    let mut addrs = state.addrs.clone();
    addrs.sort();
    let mut want = vec![IpAddr::V4(m.addrs.ipv4), IpAddr::V6(m.addrs.ipv6)];
    want.sort();
    assert_eq!(addrs, want);
    assert!(MachineNetwork::exists(&net.config, "persist1").unwrap());
    assert!(!MachineNetwork::exists(&net.config, "persist2").unwrap());
    assert_eq!(
        MachineNetwork::inspect(&net.config, "persist2").unwrap(),
        None
    );

    // The host side is a port of the bridge.
    let (_, link) = ip(&["-o", "link", "show", &m.veth]);
    assert!(
        link.contains(&format!("master {}", net.config.bridge)),
        "{link}"
    );
}

#[test]
fn destroy_leaves_no_netns_veth_or_mount_and_is_idempotent() {
    let net = TestNet::new();
    let host = net.ensure();
    let mut used = Vec::new();
    let m = net.machine(&host, "gone1", &mut used);
    assert!(link_exists(&m.veth));

    assert!(MachineNetwork::destroy(&net.config, "gone1").unwrap());
    assert!(!link_exists(&m.veth), "veth {} still there", m.veth);
    assert!(
        !mounted_at(&m.netns_path),
        "mount {} still there",
        m.netns_path
    );
    assert!(
        !fs::exists(&m.netns_path).unwrap(),
        "{} still there",
        m.netns_path
    );
    let (_, list) = ip(&["netns", "list"]);
    assert!(!list.contains(&m.netns), "{list}");
    assert!(!MachineNetwork::exists(&net.config, "gone1").unwrap());
    assert_eq!(MachineNetwork::inspect(&net.config, "gone1").unwrap(), None);

    // Nothing there is success, and the name can be used again.
    assert!(!MachineNetwork::destroy(&net.config, "gone1").unwrap());
    let again = MachineNetwork::create(&host, "gone1", m.addrs).unwrap();
    assert!(MachineNetwork::exists(&net.config, "gone1").unwrap());
    assert_eq!(again, m);
}

#[test]
fn ensure_is_idempotent_and_repairs_the_bridge() {
    let net = TestNet::new();
    let host = net.ensure();
    let mut used = Vec::new();
    let m = net.machine(&host, "keep1", &mut used);
    let br = net.config.bridge.clone();
    let gw4 = format!("inet {}/24", net.config.ipv4_subnet.gateway());
    let gw6 = format!("inet6 {}/64", net.config.ipv6_prefix.gateway());

    for _ in 0..3 {
        HostNetwork::ensure(&net.config).unwrap();
    }
    let (_, addrs) = ip(&["-o", "addr", "show", "dev", &br]);
    assert_eq!(addrs.matches(&gw4).count(), 1, "{addrs}");
    assert_eq!(addrs.matches(&gw6).count(), 1, "{addrs}");
    let (_, links) = ip(&["-o", "link", "show", "type", "bridge"]);
    assert_eq!(links.matches(&format!(": {br}:")).count(), 1, "{links}");

    // Drift: gateway address gone and bridge down. ensure puts both back.
    assert!(
        ip(&[
            "addr",
            "del",
            &format!("{}/24", net.config.ipv4_subnet.gateway()),
            "dev",
            &br
        ])
        .0
    );
    assert!(ip(&["link", "set", &br, "down"]).0);
    assert!(!ping_once(
        &m.netns,
        IpAddr::V4(net.config.ipv4_subnet.gateway())
    ));
    HostNetwork::ensure(&net.config).unwrap();
    let (_, addrs) = ip(&["-o", "addr", "show", "dev", &br]);
    assert_eq!(addrs.matches(&gw4).count(), 1, "{addrs}");
    let (_, link) = ip(&["-o", "link", "show", &br]);
    assert!(link.contains(",UP"), "{link}");
    // The machine made before is still attached and reaches the gateway again.
    assert!(ping(&m.netns, IpAddr::V4(net.config.ipv4_subnet.gateway())));
    assert!(ping(&m.netns, IpAddr::V6(net.config.ipv6_prefix.gateway())));
}

#[test]
fn concurrent_creates_and_destroys_do_not_interfere() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 4;
    let net = TestNet::new();
    let host = net.ensure();
    // Addresses allocated up front, as the store hands them out one at a time.
    let mut used = Vec::new();
    let mut plan = Vec::new();
    for i in 0..THREADS * PER_THREAD {
        let id = format!("par{i}");
        let a = allocate(&net.config, &id, used.iter()).unwrap();
        used.push(a);
        plan.push((id, a));
    }
    let made: Vec<MachineNetwork> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .chunks(PER_THREAD)
            .map(|chunk| {
                let host = &host;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|(id, a)| MachineNetwork::create(host, id, *a).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(made.len(), THREADS * PER_THREAD);
    let managed = list_managed(&net.config).unwrap();
    assert_eq!(managed.machines.len(), THREADS * PER_THREAD);
    assert_eq!(managed.veths.len(), THREADS * PER_THREAD);
    assert!(ping(
        &made[0].netns,
        IpAddr::V6(made[made.len() - 1].addrs.ipv6)
    ));

    std::thread::scope(|s| {
        for chunk in made.chunks(PER_THREAD) {
            let config = &net.config;
            s.spawn(move || {
                for m in chunk {
                    assert!(MachineNetwork::destroy(config, &m.machine_id).unwrap());
                }
            });
        }
    });
    let managed = list_managed(&net.config).unwrap();
    assert!(
        managed.netns.is_empty() && managed.veths.is_empty(),
        "{managed:?}"
    );
}

#[test]
fn ensure_refuses_a_link_that_is_not_a_bridge() {
    let net = TestNet::new();
    let squatter = net.config.bridge.clone();
    let peer = squatter.replacen("hgtb", "hgtp", 1);
    assert!(
        ip(&[
            "link", "add", &squatter, "type", "veth", "peer", "name", &peer
        ])
        .0
    );
    let err = HostNetwork::ensure(&net.config).unwrap_err();
    assert!(
        matches!(err, NetworkError::NotABridge { ref kind, .. } if kind == "veth"),
        "{err}"
    );
    // Teardown must not delete someone else's link either.
    HostNetwork::teardown(&net.config).unwrap_err();
    assert!(link_exists(&squatter));
    assert!(ip(&["link", "del", &squatter]).0);
}

#[test]
fn create_fails_cleanly_and_leaves_nothing_half_made() {
    let net = TestNet::new();
    let host = net.ensure();
    let mut used = Vec::new();
    let m = net.machine(&host, "dup1", &mut used);

    // Twice the same machine: refused, the first one untouched.
    let err = MachineNetwork::create(&host, "dup1", m.addrs).unwrap_err();
    assert!(matches!(err, NetworkError::AlreadyExists(_)), "{err}");
    assert!(
        MachineNetwork::inspect(&net.config, "dup1")
            .unwrap()
            .unwrap()
            .veth_on_bridge
    );

    // Addresses outside the networks, bad ids: refused before anything is made.
    let outside = MachineAddrs {
        ipv4: Ipv4Addr::new(192, 0, 2, 9),
        ..m.addrs
    };
    let err = MachineNetwork::create(&host, "bad1", outside).unwrap_err();
    assert!(err.to_string().contains("192.0.2.9"), "{err}");
    let err = MachineNetwork::create(&host, "../x", m.addrs).unwrap_err();
    assert!(err.to_string().starts_with("machine_id: "), "{err}");
    assert!(!MachineNetwork::exists(&net.config, "bad1").unwrap());

    // No bridge: the namespace made before the failure is removed again.
    HostNetwork::teardown(&net.config).unwrap();
    let addrs = allocate(&net.config, "late1", used.iter()).unwrap();
    let err = MachineNetwork::create(&host, "late1", addrs).unwrap_err();
    assert!(matches!(err, NetworkError::NoBridge(_)), "{err}");
    assert_eq!(MachineNetwork::inspect(&net.config, "late1").unwrap(), None);
    assert!(!fs::exists(format!("/run/netns/{}late1", net.config.netns_prefix)).unwrap());
}

#[test]
fn orphan_removal_removes_exactly_the_unknown_ones() {
    let net = TestNet::new();
    let other = TestNet::new();
    let host = net.ensure();
    let other_host = other.ensure();
    let mut used = Vec::new();
    let keep = net.machine(&host, "known1", &mut used);
    let lost1 = net.machine(&host, "lost1", &mut used);
    let lost2 = net.machine(&host, "lost2", &mut used);
    let mut other_used = Vec::new();
    let foreign = other.machine(&other_host, "known1", &mut other_used);

    // Crash leftovers: a veth whose namespace is gone, a namespace file never mounted.
    let stray_veth = veth_name(&net.config, "lost3");
    let stray_peer = format!("{}p", &stray_veth[..14]).replacen(&net.config.veth_prefix, "hgtq", 1);
    assert!(
        ip(&[
            "link",
            "add",
            &stray_veth,
            "type",
            "veth",
            "peer",
            "name",
            &stray_peer
        ])
        .0
    );
    let stray_file = format!("/run/netns/{}lost4", net.config.netns_prefix);
    fs::write(&stray_file, "").unwrap();

    let found = list_managed(&net.config).unwrap();
    let ids: Vec<&str> = found.machines.iter().map(String::as_str).collect();
    assert_eq!(ids, ["known1", "lost1", "lost2", "lost4"]);
    assert_eq!(found.veths.len(), 4, "{found:?}");

    let keep_ids: HashSet<String> = ["known1".to_string()].into();
    let removed = remove_orphans(&net.config, &keep_ids).unwrap();
    let removed_ids: Vec<&str> = removed.machines.iter().map(String::as_str).collect();
    assert_eq!(removed_ids, ["lost1", "lost2", "lost4"]);
    assert_eq!(
        removed.veths,
        [lost1.veth.clone(), lost2.veth.clone(), stray_veth.clone()].into()
    );
    assert!(!link_exists(&stray_veth) && !link_exists(&stray_peer));
    assert!(!fs::exists(&stray_file).unwrap());

    for gone in [&lost1, &lost2] {
        assert!(!link_exists(&gone.veth));
        assert!(!mounted_at(&gone.netns_path));
        assert!(!fs::exists(&gone.netns_path).unwrap());
    }
    // The known machine and the other network's machine are untouched and work.
    assert!(
        MachineNetwork::inspect(&net.config, "known1")
            .unwrap()
            .unwrap()
            .veth_on_bridge
    );
    assert!(ping(
        &keep.netns,
        IpAddr::V4(net.config.ipv4_subnet.gateway())
    ));
    assert!(MachineNetwork::exists(&other.config, "known1").unwrap());
    assert!(link_exists(&foreign.veth));

    let after = list_managed(&net.config).unwrap();
    assert_eq!(after.machines.len(), 1);
    assert_eq!(after.veths.len(), 1);
    assert!(
        remove_orphans(&net.config, &keep_ids)
            .unwrap()
            .netns
            .is_empty()
    );
}

fn rules(tool: &str, table: &str, tag: &str) -> Vec<String> {
    let out = Command::new(tool)
        .args(["-w", "5", "-t", table, "-S"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(tag))
        .map(str::to_string)
        .collect()
}

/// Restores the forwarding sysctls `ensure` with NAT turns on.
struct SysctlGuard(Vec<(&'static str, String)>);

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        for (path, value) in &self.0 {
            let _ = fs::write(path, value);
        }
    }
}

#[test]
fn nat_rules_are_installed_once_and_removed() {
    let _sysctls = SysctlGuard(
        [
            "/proc/sys/net/ipv4/ip_forward",
            "/proc/sys/net/ipv6/conf/all/forwarding",
        ]
        .map(|p| (p, fs::read_to_string(p).unwrap()))
        .to_vec(),
    );
    let mut net = TestNet::new();
    net.config.nat = true;
    let tag = format!("hangar:{}", net.config.bridge);
    let subnet = net.config.ipv4_subnet.to_string();
    let prefix = net.config.ipv6_prefix.to_string();

    net.ensure();
    net.ensure();
    let nat4 = rules("iptables", "nat", &tag);
    assert_eq!(nat4.len(), 1, "{nat4:?}");
    assert!(
        nat4[0].contains(&format!("-s {subnet}")) && nat4[0].contains("-j MASQUERADE"),
        "{nat4:?}"
    );
    let nat6 = rules("ip6tables", "nat", &tag);
    assert_eq!(nat6.len(), 1, "{nat6:?}");
    assert!(nat6[0].contains(&format!("-s {prefix}")), "{nat6:?}");
    assert_eq!(rules("iptables", "filter", &tag).len(), 3);
    assert_eq!(rules("ip6tables", "filter", &tag).len(), 3);
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );

    // NAT switched off: only the bridge-internal forward rule stays.
    net.config.nat = false;
    net.ensure();
    assert!(rules("iptables", "nat", &tag).is_empty());
    assert!(rules("ip6tables", "nat", &tag).is_empty());
    assert_eq!(rules("iptables", "filter", &tag).len(), 1);

    net.config.nat = true;
    net.ensure();
    HostNetwork::teardown(&net.config).unwrap();
    for (tool, table) in [
        ("iptables", "nat"),
        ("iptables", "filter"),
        ("ip6tables", "nat"),
        ("ip6tables", "filter"),
    ] {
        assert!(rules(tool, table, &tag).is_empty(), "{tool} {table}");
    }
    assert!(!link_exists(&net.config.bridge));
    HostNetwork::teardown(&net.config).unwrap();
}

// ---------------------------------------------------------------------------
// Benchmark (ignored by default). Writes bench/results/agent-network.md:
//   cargo test -p hangar-agent --release --test network -- --ignored --nocapture bench_
// ---------------------------------------------------------------------------

const BENCH_ITERATIONS: usize = 50;
const BENCH_BATCH: usize = 100;
const BASELINE_ITERATIONS: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn row(name: &str, samples: &mut [Duration]) -> String {
    samples.sort();
    format!(
        "| {name} | {} | {} | {} | {} | {} |\n",
        samples.len(),
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.9)),
        ms(*samples.last().unwrap()),
        ms(samples.iter().sum::<Duration>() / samples.len() as u32),
    )
}

/// The same machine network made with `ip` commands, as a shell script would.
fn create_with_ip(net: &NetworkConfig, ns: &str, veth: &str, a: &MachineAddrs) {
    let run = |args: &[&str]| assert!(ip(args).0, "ip {args:?}");
    run(&["netns", "add", ns]);
    run(&[
        "link",
        "add",
        veth,
        "master",
        &net.bridge,
        "up",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns,
    ]);
    let script = format!(
        "link set lo up\nlink set eth0 up\naddr add {}/24 dev eth0\naddr add {}/64 dev eth0 nodad\n\
         route add default via {}\nroute add default via {}\n",
        a.ipv4,
        a.ipv6,
        net.ipv4_subnet.gateway(),
        net.ipv6_prefix.gateway()
    );
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
#[ignore = "benchmark: run explicitly, it writes bench/results/agent-network.md"]
fn bench_machine_network_create_destroy() {
    use std::time::Instant;
    let net = TestNet::new();
    let host = net.ensure();
    let c = &net.config;
    let addrs = allocate(c, "bench0", []).unwrap();
    for _ in 0..3 {
        MachineNetwork::create(&host, "bench0", addrs).unwrap();
        MachineNetwork::destroy(c, "bench0").unwrap();
    }

    let (mut create, mut destroy, mut both) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..BENCH_ITERATIONS {
        let t0 = Instant::now();
        MachineNetwork::create(&host, "bench0", addrs).unwrap();
        let t1 = Instant::now();
        assert!(MachineNetwork::destroy(c, "bench0").unwrap());
        let t2 = Instant::now();
        create.push(t1 - t0);
        destroy.push(t2 - t1);
        both.push(t2 - t0);
    }

    let mut used = Vec::new();
    let t0 = Instant::now();
    for i in 0..BENCH_BATCH {
        let id = format!("batch{i}");
        let a = allocate(c, &id, used.iter()).unwrap();
        used.push(a);
        MachineNetwork::create(&host, &id, a).unwrap();
    }
    let batch_create = t0.elapsed();
    let t0 = Instant::now();
    for i in 0..BENCH_BATCH {
        MachineNetwork::destroy(c, &format!("batch{i}")).unwrap();
    }
    let batch_destroy = t0.elapsed();

    let (mut baseline, mut baseline_destroy) = (Vec::new(), Vec::new());
    let ns = format!("{}ipcmd", c.netns_prefix);
    let veth = veth_name(c, "ipcmd");
    for _ in 0..BASELINE_ITERATIONS {
        let t0 = Instant::now();
        create_with_ip(c, &ns, &veth, &addrs);
        let t1 = Instant::now();
        assert!(ip(&["link", "del", &veth]).0);
        assert!(ip(&["netns", "del", &ns]).0);
        baseline.push(t1 - t0);
        baseline_destroy.push(t1.elapsed());
    }

    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut md = String::from("# Agent: machine network create/destroy\n\n");
    md.push_str(
        "Command: `cargo test -p hangar-agent --release --test network -- --ignored --nocapture bench_`\n\n",
    );
    md.push_str(&format!(
        "Host: Linux {}, {cpus} CPUs. One machine network = persistent netns bind-mounted under \
         /run/netns, veth pair on the bridge, `lo` and `eth0` up, IPv4 + IPv6 address, two default \
         routes (all over netlink, no subprocess). Times in milliseconds.\n\n",
        kernel.trim()
    ));
    md.push_str("| operation | n | p50 | p90 | max | mean |\n|---|---|---|---|---|---|\n");
    md.push_str(&row("create", &mut create));
    md.push_str(&row("destroy", &mut destroy));
    md.push_str(&row("create + destroy", &mut both));
    md.push_str(&row("create with `ip` commands (baseline)", &mut baseline));
    md.push_str(&row(
        "destroy with `ip link del` + `ip netns del` (baseline)",
        &mut baseline_destroy,
    ));
    md.push_str(&format!(
        "\n{BENCH_BATCH} machine networks created one after another: {} ms in total; destroyed: {} ms.\n",
        ms(batch_create),
        ms(batch_destroy)
    ));
    md.push_str(
        "\nDestroy returns once the veth is deleted and the namespace unmounted (the kernel frees \
         the namespace itself asynchronously). Its cost is the kernel's: deleting a network device \
         waits for an RCU grace period under the RTNL lock, which `ip link del` pays as well \
         (baseline row). Create is the hot path (machine create); destroy is not.\n",
    );
    print!("{md}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../bench/results/agent-network.md");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, md).unwrap();
}

/// A stopped machine holds no bridge port (a Linux bridge takes at most 1024):
/// its veth goes on the bridge when it starts and off when it stops, and the
/// machine is reachable exactly while it is on.
#[test]
fn a_detached_machine_is_off_the_bridge_until_attached() {
    let net = TestNet::new();
    let host = net.ensure();
    let mut used = Vec::new();
    let a = net.machine(&host, "mach-a", &mut used);
    let addrs = allocate(&net.config, "mach-b", used.iter()).unwrap();
    let b = MachineNetwork::create_detached(&host, "mach-b", addrs).unwrap();
    let on_bridge = |id: &str| {
        MachineNetwork::inspect(&net.config, id)
            .unwrap()
            .expect("network exists")
            .veth_on_bridge
    };
    assert!(!on_bridge("mach-b"));
    assert!(
        !ping_once(&a.netns, IpAddr::V4(b.addrs.ipv4)),
        "unreachable while detached"
    );

    MachineNetwork::attach(&net.config, "mach-b").unwrap();
    MachineNetwork::attach(&net.config, "mach-b").unwrap(); // idempotent
    assert!(on_bridge("mach-b"));
    assert!(ping(&a.netns, IpAddr::V4(b.addrs.ipv4)));
    assert!(ping(&a.netns, IpAddr::V6(b.addrs.ipv6)));

    MachineNetwork::detach(&net.config, "mach-b").unwrap();
    MachineNetwork::detach(&net.config, "mach-b").unwrap(); // idempotent
    assert!(!on_bridge("mach-b"));
    MachineNetwork::attach(&net.config, "mach-b").unwrap();
    assert!(ping(&a.netns, IpAddr::V6(b.addrs.ipv6)), "reachable again");

    // Without a veth: detaching is fine, attaching says what is missing.
    MachineNetwork::destroy(&net.config, "mach-b").unwrap();
    MachineNetwork::detach(&net.config, "mach-b").unwrap();
    let err = MachineNetwork::attach(&net.config, "mach-b").unwrap_err();
    assert!(err.to_string().contains("has no veth"), "{err}");
}
