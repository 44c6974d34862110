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
    /// HTTP requests sent to the machine whose answer has not arrived yet.
    waiting: AtomicU32,
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
            waiting: AtomicU32::new(0),
            start_lock: tokio::sync::Mutex::new(()),
            pools: std::array::from_fn(|_| Mutex::new(Vec::new())),
            h2: Mutex::new(None),
        }
    }

    /// Records the state from a machine list asked for at `asked` (clock ms).
    pub fn set_api_state(&self, state: MachineState, cordoned: bool, asked: u64) {
        // SeqCst: see [`Live::begin_exchange`].
        self.state.store(state as u8, Ordering::SeqCst);
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

    /// Marks the machine stopping (the proxy is about to stop or suspend it),
    /// unless a unit of its load is taken: then it is left as it was and
    /// `None` returned. With [`Live::try_acquire`] (which gives the unit back
    /// when it finds the machine stopping) this keeps a request from being
    /// sent to a machine that is stopped or frozen under it: each side writes
    /// before it reads the other's word, in one order for both (`SeqCst`).
    pub fn try_mark_stopping(&self) -> Option<StopMark> {
        let mark = StopMark {
            state: self.state.load(Ordering::SeqCst),
            proxy_started: self.proxy_started.load(Ordering::Relaxed),
        };
        self.proxy_started.store(0, Ordering::Relaxed);
        self.state
            .store(MachineState::Stopping as u8, Ordering::SeqCst);
        if self.load.load(Ordering::SeqCst) > 0 {
            self.unmark_stopping(mark);
            return None;
        }
        self.clear_pools();
        Some(mark)
    }

    /// Undoes [`Live::try_mark_stopping`].
    pub fn unmark_stopping(&self, mark: StopMark) {
        self.proxy_started
            .store(mark.proxy_started, Ordering::Relaxed);
        self.state.store(mark.state, Ordering::SeqCst);
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
                .compare_exchange_weak(cur, cur + 1, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    let guard = LoadGuard { live: self.clone() };
                    if self.state.load(Ordering::SeqCst) == MachineState::Stopping as u8 {
                        // Being stopped or suspended since it was picked.
                        return None;
                    }
                    return Some(guard);
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Counts a request about to be sent until [`Live::end_exchange`];
    /// returns whether the machine is suspended. The state is written before
    /// the count is read on a refresh, and the count before the state here,
    /// in one order for both (`SeqCst`): a request is either seen waiting by
    /// the refresh that records the suspend, or sees the suspend itself.
    pub fn begin_exchange(&self) -> bool {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.state.load(Ordering::SeqCst) == MachineState::Suspended as u8
    }

    pub fn end_exchange(&self) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// Requests sent to the machine and not answered yet.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::SeqCst)
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

/// What [`Live::try_mark_stopping`] changed, to undo it.
#[derive(Debug, Clone, Copy)]
pub struct StopMark {
    state: u8,
    proxy_started: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Arc<Live> {
        let l = Arc::new(Live::new(
            "a",
            "m1",
            "local",
            "127.0.0.1:1".parse().unwrap(),
        ));
        l.set_api_state(MachineState::Started, false, 0);
        l
    }

    #[test]
    fn a_machine_with_load_is_not_marked_stopping() {
        let l = started();
        let g = l.try_acquire(10).expect("a unit");
        assert!(l.try_mark_stopping().is_none(), "a request holds it");
        assert!(l.running(), "left as it was");
        assert_eq!(l.api_state(), MachineState::Started);
        drop(g);
        let mark = l.try_mark_stopping().expect("idle now");
        assert!(!l.running());
        assert!(l.try_acquire(10).is_none(), "no unit of a stopping machine");
        assert_eq!(l.load(), 0, "the refused unit was given back");
        l.unmark_stopping(mark);
        assert!(l.running());
        assert!(l.try_acquire(10).is_some());
    }
}
