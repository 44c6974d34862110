//! One UDP service port: receives client datagrams and hands each to its
//! client's flow, opening a flow for a new client address. The flows are
//! tasks of this one: closing the port ends them.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::budget::FlowBudget;
use super::flow::{self, FlowCtx};
use super::flows::{Delivery, Flow, FlowTable};
use crate::shared::Shared;

/// Flows per UDP port; the flow idle the longest makes room for a new one.
pub const MAX_FLOWS: usize = 65_536;
/// Datagrams a flow holds while its machine starts; more are dropped.
pub const FLOW_QUEUE: usize = 64;
/// The largest UDP payload.
pub const MAX_DATAGRAM: usize = 65_535;

pub async fn serve(shared: Arc<Shared>, port: u16, socket: UdpSocket, budget: Arc<FlowBudget>) {
    let public = Arc::new(socket);
    let mut flows = FlowTable::new(MAX_FLOWS);
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = match public.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // Out of memory and the like: back off instead of spinning.
                tracing::debug!(port, "proxy: UDP receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let udp = &shared.metrics.udp;
        udp.datagrams_in.inc();
        // Forget the flows that ended.
        while tasks.try_join_next().is_some() {}
        let datagram = Bytes::copy_from_slice(&buf[..n]);
        let datagram = match flows.deliver(client, datagram) {
            Delivery::Queued => continue,
            Delivery::QueueFull => {
                udp.dropped_queue_full.inc();
                continue;
            }
            Delivery::NoFlow(d) => d,
        };
        if !budget.has_room() {
            // Every flow socket the process may open is in use: this port's
            // longest idle flow makes room, if it has one.
            if flows.evict_oldest() {
                udp.flows_evicted.inc();
            } else {
                udp.dropped_flow_limit.inc();
                continue;
            }
        }
        let ticket = budget.take();
        let (queue, rx) = mpsc::channel(FLOW_QUEUE);
        // A new queue has room.
        let _ = queue.try_send(datagram);
        let activity = Arc::new(AtomicU64::new(crate::clock::now_ms()));
        if flows.insert(client, Flow::new(queue, activity.clone())) {
            udp.flows_evicted.inc();
        }
        udp.flows.inc();
        let ctx = FlowCtx {
            shared: shared.clone(),
            port,
            public: public.clone(),
            client,
            activity,
            _ticket: ticket,
        };
        tasks.spawn(flow::run(ctx, rx));
    }
}
