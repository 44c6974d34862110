//! Unit tests of the pure parts: configuration values, names, allocation, /etc files.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn config() -> NetworkConfig {
    NetworkConfig::new("fd12:3456:789a:1::/64".parse().unwrap())
}

#[test]
fn subnet_parses_and_knows_its_addresses() {
    let s: Ipv4Subnet = "10.200.7.0/24".parse().unwrap();
    assert_eq!(s.gateway(), Ipv4Addr::new(10, 200, 7, 1));
    assert_eq!(s.broadcast(), Ipv4Addr::new(10, 200, 7, 255));
    assert!(s.contains(Ipv4Addr::new(10, 200, 7, 99)));
    assert!(!s.contains(Ipv4Addr::new(10, 200, 8, 1)));
    assert_eq!(s.to_string(), "10.200.7.0/24");
}

#[test]
fn subnet_rejects_bad_values_naming_the_field() {
    for bad in [
        "10.200.7.1/24",
        "10.0.0.0/31",
        "10.0.0.0",
        "x/24",
        "10.0.0.0/a",
    ] {
        let err = bad.parse::<Ipv4Subnet>().unwrap_err().to_string();
        assert!(err.starts_with("ipv4_subnet: "), "{bad}: {err}");
    }
}

#[test]
fn ipv6_prefix_must_be_a_ula_64() {
    assert!("fd00:1:2:3::/64".parse::<Ipv6Prefix>().is_ok());
    for bad in ["2001:db8::/64", "fd00::1/64", "fd00::/48", "nope/64"] {
        let err = bad.parse::<Ipv6Prefix>().unwrap_err().to_string();
        assert!(err.starts_with("ipv6_prefix: "), "{bad}: {err}");
    }
}

#[test]
fn generated_prefixes_are_random_ulas() {
    let a = Ipv6Prefix::generate().unwrap();
    let b = Ipv6Prefix::generate().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.network().segments()[0] >> 8, 0xfd);
    assert_eq!(a.to_string().parse::<Ipv6Prefix>().unwrap(), a);
    assert_eq!(a.gateway().segments()[7], 1);
}

#[test]
fn config_round_trips_through_json_and_validates() {
    let c = config();
    let json = serde_json::to_string(&c).unwrap();
    assert!(json.contains("\"ipv4_subnet\":\"10.209.0.0/16\""), "{json}");
    let back: NetworkConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    c.validate().unwrap();

    let mut bad = config();
    bad.bridge = "a-very-long-bridge-name".into();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .starts_with("config.bridge: ")
    );
    let mut bad = config();
    bad.veth_prefix = "toolong".into();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .starts_with("config.veth_prefix: ")
    );
    let mut bad = config();
    bad.netns_prefix = "a/b".into();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .starts_with("config.netns_prefix: ")
    );
}

#[test]
fn names_are_deterministic_and_fit_interface_limits() {
    let c = config();
    let v = veth_name(&c, "3d8d9016b23489");
    assert_eq!(v.len(), 15);
    assert!(v.starts_with("hg"));
    assert_eq!(v, veth_name(&c, "3d8d9016b23489"));
    assert_ne!(v, veth_name(&c, "3d8d9016b23488"));
    assert_eq!(netns_path(&c, "abc"), "/run/netns/hangar-abc");
    assert!(check_machine_id("../etc").is_err());
    assert!(check_machine_id("").is_err());
    assert!(check_machine_id(&"a".repeat(65)).is_err());
}

#[test]
fn allocator_skips_network_gateway_and_broadcast_and_never_repeats() {
    let mut c = config();
    c.ipv4_subnet = "10.200.9.0/29".parse().unwrap(); // hosts .1 to .6; .1 is the gateway
    let mut used: Vec<MachineAddrs> = Vec::new();
    for i in 0..5 {
        let a = allocate(&c, &format!("m{i}"), &used).unwrap();
        assert!(!used.iter().any(|u| u.ipv4 == a.ipv4 || u.ipv6 == a.ipv6));
        used.push(a);
    }
    let v4: Vec<Ipv4Addr> = used.iter().map(|a| a.ipv4).collect();
    assert_eq!(
        v4,
        (2..=6)
            .map(|d| Ipv4Addr::new(10, 200, 9, d))
            .collect::<Vec<_>>()
    );
    let err = allocate(&c, "m5", &used).unwrap_err();
    assert!(matches!(err, NetworkError::SubnetFull(_)), "{err}");

    // A freed address is handed out again, the others are not.
    used.remove(2);
    let again = allocate(&c, "m6", &used).unwrap();
    assert_eq!(again.ipv4, Ipv4Addr::new(10, 200, 9, 4));
}

#[test]
fn ipv6_is_derived_from_the_machine_id_and_avoids_collisions() {
    let c = config();
    let a = allocate(&c, "3d8d9016b23489", []).unwrap();
    assert!(c.ipv6_prefix.contains(a.ipv6));
    assert_eq!(a.ipv6, ipv6_for(c.ipv6_prefix, "3d8d9016b23489", 0));
    // Another machine that already holds that address pushes this one to the next.
    let taken = MachineAddrs {
        ipv4: Ipv4Addr::new(10, 209, 0, 2),
        ipv6: a.ipv6,
    };
    let b = allocate(&c, "3d8d9016b23489", [&taken]).unwrap();
    assert_ne!(b.ipv6, a.ipv6);
    assert_eq!(b.ipv6, ipv6_for(c.ipv6_prefix, "3d8d9016b23489", 1));
    assert_eq!(b.ipv4, Ipv4Addr::new(10, 209, 0, 3));
}

#[test]
fn many_allocations_are_distinct() {
    let c = config();
    let mut used = Vec::new();
    let mut v6 = HashSet::new();
    for i in 0..600 {
        let a = allocate(&c, &format!("machine{i}"), &used).unwrap();
        assert!(v6.insert(a.ipv6));
        used.push(a);
    }
    let v4: HashSet<Ipv4Addr> = used.iter().map(|a| a.ipv4).collect();
    assert_eq!(v4.len(), 600);
}

#[test]
fn check_addrs_rejects_reserved_and_foreign_addresses() {
    let c = config();
    let good = MachineAddrs {
        ipv4: Ipv4Addr::new(10, 209, 0, 2),
        ipv6: "fd12:3456:789a:1::2".parse().unwrap(),
    };
    check_addrs(&c, &good).unwrap();
    for ipv4 in [
        Ipv4Addr::new(10, 209, 0, 0),
        Ipv4Addr::new(10, 209, 0, 1),
        Ipv4Addr::new(10, 209, 255, 255),
        Ipv4Addr::new(10, 210, 0, 2),
    ] {
        assert!(
            check_addrs(&c, &MachineAddrs { ipv4, ..good }).is_err(),
            "{ipv4}"
        );
    }
    for ipv6 in ["fd12:3456:789a:1::1", "fd12:3456:789a:2::2"] {
        let ipv6: Ipv6Addr = ipv6.parse().unwrap();
        assert!(
            check_addrs(&c, &MachineAddrs { ipv6, ..good }).is_err(),
            "{ipv6}"
        );
    }
}

#[test]
fn etc_files_name_the_machine_and_its_app() {
    let c = config();
    let me = MachineNetwork::describe(
        &c,
        "m1",
        MachineAddrs {
            ipv4: Ipv4Addr::new(10, 209, 0, 2),
            ipv6: "fd12:3456:789a:1::aa".parse().unwrap(),
        },
    );
    let peers = [
        Peer {
            machine_id: "m2".into(),
            ipv6: "fd12:3456:789a:1::bb".parse().unwrap(),
        },
        Peer {
            machine_id: "m1".into(),
            ipv6: "fd12:3456:789a:1::aa".parse().unwrap(),
        },
    ];
    let (servers, search) = host_resolvers(
        "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.com\noptions edns0\n",
    );
    assert_eq!(servers, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
    let files = me.etc_files("web", &peers, &servers, &search).unwrap();
    assert_eq!(files.hostname, "m1\n");
    assert!(
        files
            .hosts
            .contains("fd12:3456:789a:1::aa\tm1.vm.web.internal m1\n")
    );
    assert!(files.hosts.contains("10.209.0.2\tm1\n"));
    assert!(
        files
            .hosts
            .contains("fd12:3456:789a:1::bb\tm2.vm.web.internal\n")
    );
    assert!(files.hosts.contains("fd12:3456:789a:1::aa\tweb.internal\n"));
    assert!(files.hosts.contains("fd12:3456:789a:1::bb\tweb.internal\n"));
    assert_eq!(files.hosts.matches("m1.vm.web.internal").count(), 1);
    assert_eq!(
        files.resolv_conf,
        "# Written by Hangar.\nsearch vm.web.internal web.internal example.com\nnameserver 192.0.2.53\n"
    );
    assert!(me.etc_files("bad app", &[], &[], &[]).is_err());
}

#[test]
fn ipv6_prefix_is_generated_once_then_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipv6-prefix");
    let first = Ipv6Prefix::load_or_generate(&path).unwrap();
    let again = Ipv6Prefix::load_or_generate(&path).unwrap();
    assert_eq!(first, again);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{first}\n")
    );
    std::fs::write(&path, "2001:db8::/64\n").unwrap();
    let err = Ipv6Prefix::load_or_generate(&path).unwrap_err().to_string();
    assert!(err.contains("not a unique local address"), "{err}");
}

#[test]
fn a_bridge_other_than_the_default_gets_name_prefixes_of_its_own() {
    let prefix = Ipv6Prefix::generate().unwrap();
    let mut default = NetworkConfig::new(prefix);
    default.set_bridge(DEFAULT_BRIDGE);
    assert_eq!(default.netns_prefix, DEFAULT_NETNS_PREFIX);
    assert_eq!(default.veth_prefix, DEFAULT_VETH_PREFIX);
    let mut a = NetworkConfig::new(prefix);
    a.set_bridge("testbr1");
    let mut b = NetworkConfig::new(prefix);
    b.set_bridge("testbr2");
    for c in [&a, &b] {
        c.validate().unwrap();
        assert_ne!(c.veth_prefix, DEFAULT_VETH_PREFIX);
        assert_ne!(c.netns_prefix, DEFAULT_NETNS_PREFIX);
    }
    assert_eq!(a.netns_prefix, "testbr1-");
    assert_ne!(a.veth_prefix, b.veth_prefix);
    // The same machine gets different veth names on different bridges.
    assert_ne!(
        super::names::veth_name(&a, "0123456789abcd"),
        super::names::veth_name(&default, "0123456789abcd")
    );
}
