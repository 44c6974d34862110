//! A UDP port's flow table: client address → the queue of its flow task,
//! bounded in size (when full, the flow idle the longest is evicted).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// The port's side of one flow.
#[derive(Debug)]
pub struct Flow {
    queue: mpsc::Sender<Bytes>,
    /// Clock ms of the flow's last datagram either way (set by the flow).
    last_active: Arc<AtomicU64>,
}

impl Flow {
    pub fn new(queue: mpsc::Sender<Bytes>, last_active: Arc<AtomicU64>) -> Flow {
        Flow { queue, last_active }
    }
}

/// What became of a client datagram.
#[derive(Debug)]
pub enum Delivery {
    /// Queued for the client's flow.
    Queued,
    /// The flow's queue is full (its machine is starting): dropped.
    QueueFull,
    /// The client has no flow (or its flow ended): open one for it.
    NoFlow(Bytes),
}

#[derive(Debug)]
pub struct FlowTable {
    flows: HashMap<SocketAddr, Flow>,
    capacity: usize,
}

impl FlowTable {
    pub fn new(capacity: usize) -> FlowTable {
        FlowTable {
            flows: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Hands `datagram` to `client`'s flow.
    pub fn deliver(&mut self, client: SocketAddr, datagram: Bytes) -> Delivery {
        let Some(flow) = self.flows.get(&client) else {
            return Delivery::NoFlow(datagram);
        };
        match flow.queue.try_send(datagram) {
            Ok(()) => Delivery::Queued,
            Err(TrySendError::Full(_)) => Delivery::QueueFull,
            Err(TrySendError::Closed(datagram)) => {
                self.flows.remove(&client);
                Delivery::NoFlow(datagram)
            }
        }
    }

    /// Adds `client`'s flow. When the table is full, flows that ended are
    /// forgotten, then the flow idle the longest is evicted (its task ends
    /// once its queue drains); returns whether one was.
    pub fn insert(&mut self, client: SocketAddr, flow: Flow) -> bool {
        let mut evicted = false;
        if self.flows.len() >= self.capacity && !self.flows.contains_key(&client) {
            self.flows.retain(|_, f| !f.queue.is_closed());
        }
        if self.flows.len() >= self.capacity && !self.flows.contains_key(&client) {
            evicted = self.evict_oldest();
        }
        self.flows.insert(client, flow);
        evicted
    }

    /// Ends the flow idle the longest (its task ends once its queue
    /// drains); false when there is none.
    pub fn evict_oldest(&mut self) -> bool {
        self.flows.retain(|_, f| !f.queue.is_closed());
        let oldest = self
            .flows
            .iter()
            .min_by_key(|(_, f)| f.last_active.load(Ordering::Relaxed))
            .map(|(addr, _)| *addr);
        match oldest {
            Some(addr) => {
                self.flows.remove(&addr);
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    #[cfg(test)]
    pub fn contains(&self, client: &SocketAddr) -> bool {
        self.flows.contains_key(client)
    }
}
