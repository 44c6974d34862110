//! The agent's durable store on SQLite: apps, machines and their versions,
//! events, long operations, volumes, leases, secrets, tokens and IP
//! allocations.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, so a write that returned
//! survives a crash of the agent or the host. One dedicated thread owns the
//! connection; async callers send it closures and await the answer, which
//! keeps every write serialized and never blocks a tokio worker on disk I/O.
//!
//! Every change of a machine's state goes through [`Store::transition`],
//! which checks the transition, persists the new state and appends the event
//! in one transaction before it returns.

mod apps;
mod clock;
mod error;
mod events;
pub mod ids;
mod ips;
mod leases;
mod machines;
mod operations;
mod schema;
mod secrets;
mod state;
mod tokens;
mod volumes;

pub use apps::{AppRecord, NewApp};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::StoreError;
pub use events::{EventRecord, ExitInfo, NewEvent, seq_of_event_id};
pub use ips::{IpAllocation, IpPool};
pub use leases::{LeaseCheck, LeaseRecord};
pub use machines::{MachineFilter, MachineRecord, NewMachine, Transition, VersionRecord};
pub use operations::{OperationId, OperationRecord};
pub use secrets::{SecretInfo, SecretsVersion};
pub use state::{ALL_STATES, MachineState, UnknownState};
pub use tokens::{NewToken, TokenRecord};
pub use volumes::{NewVolume, VolumeRecord};

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle on the store. Cheap to clone; the connection thread ends when
/// the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Job>,
    clock: Arc<dyn Clock>,
    changes: watch::Sender<i64>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` with the system clock.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with_clock(path, Arc::new(SystemClock))
    }

    /// Opens the database at `path`, reading time from `clock` (tests pass a
    /// [`ManualClock`] to expire leases without sleeping).
    pub fn open_with_clock(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            source: e,
        })?;
        configure(&conn)?;
        schema::migrate(&mut conn)?;
        let last_event: i64 =
            conn.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("hangar-store".into())
            .spawn(move || {
                let mut conn = conn;
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .map_err(StoreError::Thread)?;
        let (changes, _) = watch::channel(last_event);
        Ok(Store {
            inner: Arc::new(Inner {
                tx,
                clock,
                changes,
                path,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Milliseconds since the epoch, from the store's clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// A receiver that changes whenever events are appended; its value is the
    /// id of the newest event. Waiters re-read the store when it changes.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.changes.subscribe()
    }

    pub(crate) fn notify(&self, last_event_id: i64) {
        self.inner.changes.send_if_modified(|v| {
            if last_event_id > *v {
                *v = last_event_id;
                true
            } else {
                false
            }
        });
    }

    /// Runs `f` on the connection thread and returns its result.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = done.send(f(conn));
        });
        self.inner.tx.send(job).map_err(|_| StoreError::Closed)?;
        wait.await.map_err(|_| StoreError::Closed)?
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "journal_mode: SQLite refused WAL and stayed in {mode}"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}
