//! The threads that serve client connections. Each runs a single-threaded
//! runtime: a connection, its requests and the pooled upstream connections
//! they use all live on one thread, so a request is handed between tasks
//! without waking another thread (the cost that dominated the proxy's
//! profile on a multi-threaded runtime). Accept loops stay on the caller's
//! runtime and deal connections to the workers in turn.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{mpsc, watch};

use crate::shared::Shared;

/// How many idle-connection pools a machine keeps: one per worker, worker
/// indexes beyond it share (see [`current`]).
pub const POOL_SLOTS: usize = 16;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running this code (0 off the workers).
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// A client connection on its way to a worker.
struct Job {
    shared: Arc<Shared>,
    port: u16,
    stream: std::net::TcpStream,
    peer: SocketAddr,
}

/// The way to the worker threads.
pub struct Workers {
    queues: Vec<mpsc::UnboundedSender<Job>>,
    next: AtomicUsize,
}

/// The worker threads end, closing their connections, when this is dropped.
pub struct WorkersGuard(#[allow(dead_code)] watch::Sender<bool>);

impl Workers {
    /// Starts `count` worker threads (at least one; 0 means one per CPU).
    pub fn start(count: usize) -> std::io::Result<(Workers, WorkersGuard)> {
        let count = match count {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (stop, _) = watch::channel(false);
        let mut queues = Vec::new();
        for index in 0..count {
            let (tx, rx) = mpsc::unbounded_channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let stopped = stop.subscribe();
            std::thread::Builder::new()
                .name(format!("proxy-{index}"))
                .spawn(move || {
                    WORKER.with(|w| w.set(index));
                    runtime.block_on(run(rx, stopped));
                    // Dropping the runtime here ends every connection task.
                })?;
            queues.push(tx);
        }
        Ok((
            Workers {
                queues,
                next: AtomicUsize::new(0),
            },
            WorkersGuard(stop),
        ))
    }

    /// Hands an accepted connection to the next worker.
    pub fn dispatch(
        &self,
        shared: Arc<Shared>,
        port: u16,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
    ) {
        let Ok(stream) = stream.into_std() else {
            return;
        };
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len();
        // A worker that is gone (shutting down) drops the connection.
        let _ = self.queues[i].send(Job {
            shared,
            port,
            stream,
            peer,
        });
    }
}

async fn run(mut jobs: mpsc::UnboundedReceiver<Job>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { return };
                match tokio::net::TcpStream::from_std(job.stream) {
                    Ok(stream) => {
                        tokio::spawn(crate::listener::handle(job.shared, job.port, stream, job.peer));
                    }
                    Err(e) => tracing::warn!(peer = %job.peer, "proxy: registering a connection: {e}"),
                }
            }
            // The guard is dropped: the proxy stops.
            _ = stop.changed() => return,
        }
    }
}
