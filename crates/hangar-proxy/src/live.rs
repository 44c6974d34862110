//! [`Live`]: the runtime state of one machine's service as the proxy sees it
//! (state, health, load, pooled upstream connections), kept across machine
//! list refreshes so counters and pools survive them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use crate::clock;
use crate::fleet::MachineState;
use crate::workers::{POOL_SLOTS, current};

/// One machine's service (machine id + internal port + address).
#[derive(Debug)]
pub struct Live {
    pub app: String,
    pub id: String,
    pub region: String,
    pub addr: SocketAddr,
    state: AtomicU8,
    /// When (clock ms) the machine list that set `state` was asked for.
    state_asked: AtomicU64,
    /// When (clock ms) the proxy saw the port accept after starting it.
    proxy_started: AtomicU64,
    cordoned: AtomicBool,
    healthy: AtomicBool,
    load: AtomicU32,
    /// Clock ms of the last request's end (or start).
    last_active: AtomicU64,
    /// Clock ms until which the machine asked not to be stopped.
    busy_until: AtomicU64,
    /// Serializes starts: concurrent cold requests share one.
    pub start_lock: tokio::sync::Mutex<()>,
    /// Idle HTTP/1.1 upstream connections, one pool per worker thread: a
    /// connection is driven by a task on the thread that made it.
    pools: [Mutex<Vec<SendRequest<Incoming>>>; POOL_SLOTS],
    /// The shared HTTP/2 (h2c) upstream connection, for `h2_backend`.
    pub h2: Mutex<Option<hyper::client::conn::http2::SendRequest<Incoming>>>,
}

impl Live {
    pub fn new(app: &str, id: &str, region: &str, addr: SocketAddr) -> Live {
        Live {
            app: app.to_owned(),
            id: id.to_owned(),
            region: region.to_owned(),
            addr,
            state: AtomicU8::new(MachineState::Other as u8),
            state_asked: AtomicU64::new(0),
            proxy_started: AtomicU64::new(0),
            cordoned: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            load: AtomicU32::new(0),
            last_active: AtomicU64::new(clock::now_ms()),
            busy_until: AtomicU64::new(0),
            start_lock: tokio::sync::Mutex::new(()),
            pools: std::array::from_fn(|_| Mutex::new(Vec::new())),
            h2: Mutex::new(None),
        }
    }

    /// Records the state from a machine list asked for at `asked` (clock ms).
    pub fn set_api_state(&self, state: MachineState, cordoned: bool, asked: u64) {
        self.state.store(state as u8, Ordering::Relaxed);
        self.state_asked.store(asked, Ordering::Relaxed);
        self.cordoned.store(cordoned, Ordering::Relaxed);
        if state != MachineState::Started && state != MachineState::Starting {
            self.clear_pools();
            self.h2.lock().expect("h2 lock").take();
        }
    }

    pub fn api_state(&self) -> MachineState {
        MachineState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Marks the machine running: the proxy started it and its port accepts.
    pub fn mark_started(&self) {
        self.proxy_started
            .store(clock::now_ms().max(1), Ordering::Relaxed);
        self.touch();
    }

    /// Marks the machine stopping (the proxy asked for it).
    pub fn mark_stopping(&self) {
        self.proxy_started.store(0, Ordering::Relaxed);
        self.state
            .store(MachineState::Stopping as u8, Ordering::Relaxed);
        self.clear_pools();
    }

    fn clear_pools(&self) {
        for pool in &self.pools {
            pool.lock().expect("pool lock").clear();
        }
    }

    /// This thread's pool of idle connections.
    fn pool(&self) -> &Mutex<Vec<SendRequest<Incoming>>> {
        &self.pools[current() % POOL_SLOTS]
    }

    /// Whether requests may go to the machine now (before health and load).
    pub fn running(&self) -> bool {
        match self.api_state() {
            MachineState::Started => true,
            MachineState::Stopping | MachineState::Other => false,
            MachineState::Starting => self.proxy_started.load(Ordering::Relaxed) != 0,
            // The list may predate the start the proxy made.
            _ => {
                self.proxy_started.load(Ordering::Relaxed)
                    > self.state_asked.load(Ordering::Relaxed)
            }
        }
    }

    pub fn cordoned(&self) -> bool {
        self.cordoned.load(Ordering::Relaxed)
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub fn load(&self) -> u32 {
        self.load.load(Ordering::Relaxed)
    }

    pub fn touch(&self) {
        self.last_active.store(clock::now_ms(), Ordering::Relaxed);
    }

    pub fn idle_ms(&self) -> u64 {
        clock::now_ms().saturating_sub(self.last_active.load(Ordering::Relaxed))
    }

    pub fn set_busy_until(&self, ms: u64) {
        self.busy_until.fetch_max(ms, Ordering::Relaxed);
    }

    pub fn busy(&self) -> bool {
        self.busy_until.load(Ordering::Relaxed) > clock::now_ms()
    }

    /// Takes one unit of load if the machine is under `limit`.
    pub fn try_acquire(self: &Arc<Self>, limit: u32) -> Option<LoadGuard> {
        let mut cur = self.load.load(Ordering::Relaxed);
        loop {
            if cur >= limit {
                return None;
            }
            match self
                .load
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Some(LoadGuard { live: self.clone() });
                }
                Err(now) => cur = now,
            }
        }
    }

    /// An idle pooled connection, if one is ready.
    pub fn checkout(&self) -> Option<SendRequest<Incoming>> {
        let mut pool = self.pool().lock().expect("pool lock");
        while let Some(s) = pool.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    /// Returns a connection to the pool (at most 256 idle are kept).
    pub fn checkin(&self, sender: SendRequest<Incoming>) {
        if sender.is_closed() || !self.running() {
            return;
        }
        let mut pool = self.pool().lock().expect("pool lock");
        if pool.len() < 256 {
            pool.push(sender);
        }
    }
}

/// One unit of a machine's load, given back when dropped.
#[derive(Debug)]
pub struct LoadGuard {
    live: Arc<Live>,
}

impl LoadGuard {
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.live.load.fetch_sub(1, Ordering::AcqRel);
        self.live.touch();
    }
}

/// The load unit a request counts against: its own (concurrency type
/// `requests`), or its client connection's, shared by every request the
/// connection sends (type `connections`).
#[derive(Debug)]
pub enum Held {
    Own(LoadGuard),
    Conn(Arc<LoadGuard>),
}

impl Held {
    pub fn live(&self) -> &Arc<Live> {
        match self {
            Held::Own(g) => g.live(),
            Held::Conn(g) => g.live(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // The connection's unit outlives the request: the machine was still
        // active until now.
        if let Held::Conn(g) = self {
            g.live.touch();
        }
    }
}
