//! Unit tests of the UDP parts: the routing table's UDP ports, the flow
//! table's bound and eviction, and the choice of a flow's machine.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use hangar_types::config::MachineService;
use tokio::sync::mpsc;

use super::budget::{FlowBudget, open_file_limit};
use super::flows::{Delivery, Flow, FlowTable};
use super::pick::{least_loaded, startable};
use crate::catalog::{UdpConflict, build};
use crate::fleet::{MachineInfo, MachineState};
use crate::live::Live;

fn service(json: serde_json::Value) -> MachineService {
    serde_json::from_value(json).expect("service")
}

fn machine(app: &str, id: &str, last_octet: u8, services: Vec<MachineService>) -> MachineInfo {
    MachineInfo {
        app: app.into(),
        id: id.into(),
        state: MachineState::Started,
        region: "local".into(),
        private_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last_octet))),
        cordoned: false,
        services,
    }
}

fn udp_service(internal: u16, public: u16) -> MachineService {
    service(
        serde_json::json!({"protocol": "udp", "internal_port": internal,
        "ports": [{"port": public}]}),
    )
}

#[test]
fn udp_and_tcp_ports_of_the_same_number_are_separate_routes() {
    let tcp = service(serde_json::json!({"protocol": "tcp", "internal_port": 8080,
        "ports": [{"port": 53, "handlers": ["http"]}]}));
    let machines = vec![
        machine("web", "m-web", 1, vec![tcp]),
        machine("dns", "m-dns", 2, vec![udp_service(5353, 53)]),
    ];
    let cat = build(&machines, 1, &mut HashMap::new());
    let tcp_route = cat.ports.get(&53).expect("53/tcp");
    assert_eq!(tcp_route.apps.keys().collect::<Vec<_>>(), ["web"]);
    assert!(tcp_route.handlers.http);
    let udp_route = cat.udp_ports.get(&53).expect("53/udp");
    let group = &udp_route.apps["dns"];
    assert_eq!(udp_route.apps.len(), 1);
    assert_eq!(group.internal_port, 5353);
    assert_eq!(group.machines.len(), 1);
    assert_eq!(group.machines[0].addr, "10.0.0.2:5353".parse().unwrap());
    assert!(cat.udp_conflicts.is_empty());
    // Both machine services are live (metrics, autostop, checks).
    assert_eq!(cat.lives.len(), 2);
}

#[test]
fn unknown_protocols_are_not_routed() {
    let quic = service(serde_json::json!({"protocol": "sctp", "internal_port": 9,
        "ports": [{"port": 9}]}));
    let cat = build(&[machine("a", "m1", 1, vec![quic])], 1, &mut HashMap::new());
    assert!(cat.ports.is_empty() && cat.udp_ports.is_empty());
}

#[test]
fn a_udp_port_claimed_by_two_apps_goes_to_the_lowest_machine_id_whatever_the_order() {
    let a = || machine("zeta", "m0001", 1, vec![udp_service(7000, 7000)]);
    let b = || machine("alpha", "m0002", 2, vec![udp_service(7000, 7000)]);
    let b2 = || machine("alpha", "m0000x", 3, vec![udp_service(7001, 7001)]);
    for machines in [vec![a(), b(), b2()], vec![b2(), b(), a()]] {
        let cat = build(&machines, 1, &mut HashMap::new());
        let route = cat.udp_ports.get(&7000).expect("7000/udp");
        assert_eq!(route.apps.keys().collect::<Vec<_>>(), ["zeta"]);
        assert_eq!(
            cat.udp_conflicts,
            vec![UdpConflict {
                port: 7000,
                winner: "zeta".into(),
                losers: vec!["alpha".into()],
            }]
        );
        // The other port of "alpha" is not affected.
        assert_eq!(
            cat.udp_ports[&7001].apps.keys().collect::<Vec<_>>(),
            ["alpha"]
        );
    }
}

#[test]
fn several_machines_of_one_app_share_its_udp_port() {
    let machines = vec![
        machine("dns", "m1", 1, vec![udp_service(53, 53)]),
        machine("dns", "m2", 2, vec![udp_service(53, 53)]),
    ];
    let cat = build(&machines, 1, &mut HashMap::new());
    assert_eq!(cat.udp_ports[&53].apps["dns"].machines.len(), 2);
    assert!(cat.udp_conflicts.is_empty());
}

fn flow(last_active: u64) -> (Flow, mpsc::Receiver<Bytes>) {
    let (tx, rx) = mpsc::channel(2);
    (Flow::new(tx, Arc::new(AtomicU64::new(last_active))), rx)
}

fn client(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn a_flow_queue_holds_a_bounded_number_of_datagrams() {
    let mut table = FlowTable::new(4);
    assert!(matches!(
        table.deliver(client(1), Bytes::from_static(b"x")),
        Delivery::NoFlow(_)
    ));
    let (f, mut rx) = flow(1);
    assert!(!table.insert(client(1), f));
    assert!(matches!(
        table.deliver(client(1), Bytes::from_static(b"a")),
        Delivery::Queued
    ));
    assert!(matches!(
        table.deliver(client(1), Bytes::from_static(b"b")),
        Delivery::Queued
    ));
    assert!(matches!(
        table.deliver(client(1), Bytes::from_static(b"c")),
        Delivery::QueueFull
    ));
    assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"a"));
    // A flow that ended is replaced, and the datagram handed back.
    drop(rx);
    match table.deliver(client(1), Bytes::from_static(b"d")) {
        Delivery::NoFlow(d) => assert_eq!(d, Bytes::from_static(b"d")),
        other => panic!("expected NoFlow, got {other:?}"),
    }
    assert!(!table.contains(&client(1)));
}

#[test]
fn a_full_flow_table_forgets_ended_flows_then_evicts_the_longest_idle() {
    let mut table = FlowTable::new(3);
    let (f1, rx1) = flow(30);
    let (f2, rx2) = flow(10);
    let (f3, rx3) = flow(20);
    table.insert(client(1), f1);
    table.insert(client(2), f2);
    table.insert(client(3), f3);
    // Client 3's flow ended: it makes room, nothing is evicted.
    drop(rx3);
    let (f4, _rx4) = flow(40);
    assert!(!table.insert(client(4), f4));
    assert_eq!(table.len(), 3);
    assert!(!table.contains(&client(3)));
    // Full again: client 2, idle the longest, is evicted; its flow sees
    // its queue close.
    let (f5, _rx5) = flow(50);
    assert!(table.insert(client(5), f5));
    assert_eq!(table.len(), 3);
    assert!(!table.contains(&client(2)));
    assert!(table.contains(&client(1)) && table.contains(&client(4)));
    let mut rx2 = rx2;
    assert!(rx2.try_recv().is_err() && rx2.is_closed());
    drop(rx1);
}

fn live(id: &str, state: MachineState) -> Arc<Live> {
    let l = Arc::new(Live::new("app", id, "local", client(9)));
    l.set_api_state(state, false, 1);
    l
}

#[test]
fn a_new_flow_goes_to_the_running_machine_with_the_fewest_flows() {
    let a = live("a", MachineState::Started);
    let b = live("b", MachineState::Started);
    let c = live("c", MachineState::Stopped);
    let machines = vec![a.clone(), b.clone(), c.clone()];
    let _g1 = a.try_acquire(u32::MAX).unwrap();
    for rotation in 0..6 {
        assert_eq!(least_loaded(&machines, rotation).unwrap().id, "b");
    }
    let _g2 = b.try_acquire(u32::MAX).unwrap();
    // Equal loads: the rotation decides, and both are picked.
    let picks: std::collections::HashSet<_> = (0..6)
        .map(|r| least_loaded(&machines, r).unwrap().id.clone())
        .collect();
    assert_eq!(picks.len(), 2, "{picks:?}");
    assert!(!picks.contains("c"));
    // Unhealthy and cordoned machines take no flows.
    a.set_healthy(false);
    b.set_api_state(MachineState::Started, true, 1);
    assert!(least_loaded(&machines, 0).is_none());
}

#[test]
fn the_machine_started_for_a_flow_is_a_stopped_one_of_this_region_first() {
    let far = Arc::new(Live::new("app", "a-far", "ams", client(9)));
    far.set_api_state(MachineState::Stopped, false, 1);
    let near = Arc::new(Live::new("app", "z-near", "local", client(9)));
    near.set_api_state(MachineState::Stopped, false, 1);
    let running = live("b", MachineState::Started);
    let destroyed = live("0", MachineState::Other);
    let machines = vec![far.clone(), running, destroyed, near.clone()];
    assert_eq!(startable(&machines, "local").unwrap().id, "z-near");
    assert_eq!(startable(&machines, "ams").unwrap().id, "a-far");
    near.set_api_state(MachineState::Stopped, true, 1);
    assert_eq!(startable(&machines, "local").unwrap().id, "a-far");
}

#[test]
fn the_flow_budget_counts_live_flows_until_their_tickets_drop() {
    let budget = FlowBudget::new(2);
    let a = budget.take();
    assert!(budget.has_room());
    let b = budget.take();
    assert!(!budget.has_room());
    assert_eq!(budget.live(), 2);
    drop(a);
    assert!(budget.has_room());
    drop(b);
    assert_eq!(budget.live(), 0);
}

#[test]
fn the_open_file_limit_is_read_from_proc_limits() {
    let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max processes             95704                95704                processes \n\
Max open files            1024                 524288               files     \n";
    assert_eq!(open_file_limit(limits), Some(1024));
    let unlimited =
        "Max open files            unlimited            unlimited            files     \n";
    assert_eq!(open_file_limit(unlimited), Some(usize::MAX));
    assert_eq!(open_file_limit("Max processes 10 10 processes\n"), None);
}

#[test]
fn evicting_the_oldest_flow_skips_flows_that_ended() {
    let mut table = FlowTable::new(10);
    let (f1, rx1) = flow(5);
    let (f2, _rx2) = flow(7);
    table.insert(client(1), f1);
    table.insert(client(2), f2);
    drop(rx1);
    // Client 1's flow ended on its own: client 2's is the one evicted.
    assert!(table.evict_oldest());
    assert_eq!(table.len(), 0);
    assert!(!table.evict_oldest());
}
