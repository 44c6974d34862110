//! State every task of one proxy shares: options, the fleet, the current
//! routing table, metrics; and the refresh loop that rebuilds the table and
//! opens or closes the service ports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::catalog::{self, Catalog, LiveKey};
use crate::fleet::Fleet;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::options::ProxyOptions;

/// Numbers every routing table made in this process, so a thread's cached
/// copy is known to be current with one atomic load (see
/// [`Shared::with_catalog`]).
static TABLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// This thread's copy of the newest routing table it has used.
    static CACHED: std::cell::RefCell<Option<(u64, Arc<Catalog>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The shortest time between two machine list reads.
const MIN_REFRESH_GAP_MS: u64 = 10;

pub struct Shared {
    pub opts: ProxyOptions,
    pub region: String,
    /// `region` as a `Fly-Region` value (none if it is not a valid one).
    pub region_header: Option<http::HeaderValue>,
    pub fleet: Arc<dyn Fleet>,
    pub metrics: Metrics,
    /// Server configs of `tls` ports, per port settings.
    pub tls: Option<Arc<crate::tls::TlsConfigs>>,
    /// The threads client connections are served on.
    pub workers: crate::workers::Workers,
    /// The runtime the proxy was started on: calls to the fleet run there,
    /// not on a worker thread, so what they spawn outlives no worker.
    pub main: tokio::runtime::Handle,
    catalog: RwLock<Arc<Catalog>>,
    /// The number (from `TABLES`) of the table in `catalog`.
    current_table: std::sync::atomic::AtomicU64,
    rotation: std::sync::atomic::AtomicUsize,
    refresh_now: Notify,
    generation: watch::Sender<u64>,
}

impl Shared {
    pub fn new(
        opts: ProxyOptions,
        region: String,
        fleet: Arc<dyn Fleet>,
        tls: Option<Arc<crate::tls::TlsConfigs>>,
        workers: crate::workers::Workers,
    ) -> Shared {
        Shared {
            opts,
            region_header: http::HeaderValue::from_str(&region).ok(),
            region,
            fleet,
            metrics: Metrics::default(),
            tls,
            workers,
            main: tokio::runtime::Handle::current(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            current_table: std::sync::atomic::AtomicU64::new(0),
            rotation: std::sync::atomic::AtomicUsize::new(0),
            refresh_now: Notify::new(),
            generation: watch::channel(0).0,
        }
    }

    /// The current routing table.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("catalog lock").clone()
    }

    /// Runs `f` on the current routing table without touching the lock or
    /// the table's reference count, which every request on every thread
    /// would otherwise share: each thread keeps its own reference and takes
    /// a new one only when the table changed. `f` must not call this again.
    pub fn with_catalog<R>(&self, f: impl FnOnce(&Catalog) -> R) -> R {
        let current = self
            .current_table
            .load(std::sync::atomic::Ordering::Acquire);
        CACHED.with(|cached| {
            let mut cached = cached.borrow_mut();
            if !matches!(&*cached, Some((n, _)) if *n == current) {
                *cached = Some((current, self.catalog()));
            }
            let (_, catalog) = cached.as_ref().expect("cached just above");
            f(catalog)
        })
    }

    /// A counter for round-robin tie breaks.
    pub fn next_rotation(&self) -> usize {
        self.rotation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks the refresh loop to re-read the machine list now.
    pub fn request_refresh(&self) {
        self.refresh_now.notify_one();
    }

    /// Asks for a refresh and waits (at most `limit`) until one completes.
    pub async fn refresh_and_wait(&self, limit: Duration) {
        let mut rx = self.generation.subscribe();
        rx.borrow_and_update();
        self.request_refresh();
        let _ = tokio::time::timeout(limit, rx.changed()).await;
    }

    /// Every live service of machine `id`.
    pub fn lives_of(&self, id: &str) -> Vec<Arc<Live>> {
        self.catalog()
            .lives
            .iter()
            .filter(|l| l.id == id)
            .cloned()
            .collect()
    }
}

/// Re-reads the machine list every `opts.refresh`, on request, and on each
/// `changes` bump; rebuilds the routing table and keeps one listener per
/// public port.
pub async fn refresh_loop(shared: Arc<Shared>, mut changes: Option<watch::Receiver<i64>>) {
    let mut registry: HashMap<LiveKey, Arc<Live>> = HashMap::new();
    let mut listeners = Listeners(HashMap::new());
    let mut udp_ports = crate::udp::UdpPorts::default();
    let mut failed_ports: HashMap<u16, u64> = HashMap::new();
    let mut checkers = crate::checks::Checkers::default();
    let mut warned_unreachable = false;
    let mut last_error: Option<String> = None;
    loop {
        let asked = crate::clock::now_ms();
        match shared.fleet.machines().await {
            Ok(machines) => {
                last_error = None;
                let mut cat = catalog::build(&machines, asked, &mut registry);
                checkers.sync(std::mem::take(&mut cat.checks));
                if cat.unreachable > 0 && !warned_unreachable {
                    warned_unreachable = true;
                    tracing::warn!(
                        machines = cat.unreachable,
                        "machines with services have no address the host reaches (hangar serve --network none?): the proxy cannot route to them"
                    );
                }
                sync_listeners(&shared, &cat, &mut listeners.0, &mut failed_ports);
                udp_ports.sync(&shared, &cat);
                crate::frozen::resume_caught(&shared, &cat);
                *shared.catalog.write().expect("catalog lock") = Arc::new(cat);
                shared.current_table.store(
                    TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    std::sync::atomic::Ordering::Release,
                );
                shared.generation.send_modify(|g| *g += 1);
            }
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!("proxy: reading the machine list: {msg}");
                    last_error = Some(msg);
                }
            }
        }
        let changed = async {
            match changes.as_mut() {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(shared.opts.refresh) => {}
            _ = shared.refresh_now.notified() => {}
            _ = changed => {}
        }
        // A burst of changes (a start writes several events) makes one
        // refresh, not one each.
        let since = crate::clock::now_ms().saturating_sub(asked);
        if since < MIN_REFRESH_GAP_MS {
            tokio::time::sleep(Duration::from_millis(MIN_REFRESH_GAP_MS - since)).await;
        }
    }
}

/// The listener tasks, stopped when the refresh loop ends.
struct Listeners(HashMap<u16, JoinHandle<()>>);

impl Drop for Listeners {
    fn drop(&mut self) {
        for (_, t) in self.0.drain() {
            t.abort();
        }
    }
}

fn sync_listeners(
    shared: &Arc<Shared>,
    cat: &Catalog,
    listeners: &mut HashMap<u16, JoinHandle<()>>,
    failed: &mut HashMap<u16, u64>,
) {
    listeners.retain(|port, task| {
        let keep = cat.ports.contains_key(port) && !task.is_finished();
        if !keep {
            task.abort();
            tracing::info!(port, "proxy: closed service port");
        }
        keep
    });
    failed.retain(|port, _| cat.ports.contains_key(port));
    for port in cat.ports.keys() {
        if listeners.contains_key(port) {
            continue;
        }
        // A port that failed to bind is retried every 5 s, not every refresh.
        if let Some(at) = failed.get(port)
            && crate::clock::now_ms().saturating_sub(*at) < 5_000
        {
            continue;
        }
        let addr = SocketAddr::new(shared.opts.bind, *port);
        match bind(addr) {
            Ok(l) => {
                failed.remove(port);
                tracing::info!(%addr, "proxy: listening on service port");
                let task = tokio::spawn(crate::listener::accept_loop(shared.clone(), *port, l));
                listeners.insert(*port, task);
            }
            Err(e) => {
                if !failed.contains_key(port) {
                    tracing::warn!(%addr, "proxy: cannot listen on service port: {e}");
                }
                failed.insert(*port, crate::clock::now_ms());
            }
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Keeps tasks alive and the shared state reachable; see [`crate::Proxy`].
pub struct Tasks(pub Mutex<Vec<JoinHandle<()>>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in self.0.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
    }
}
