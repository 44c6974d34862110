//! Service checks (`services[].checks`, tcp or http) run by the proxy
//! against each running machine: a machine whose checks fail leaves the
//! pool until they pass again. A machine counts as passing from its start
//! until a check says otherwise (the autostart path already waited for its
//! port), and during the check's grace period.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hangar_types::config::Check;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::catalog::LiveKey;
use crate::live::Live;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// One check, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe {
    pub http: bool,
    pub port: u16,
    pub path: String,
    pub method: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub grace: Duration,
}

impl Probe {
    /// The probe of `check` for a service on `internal_port`; `None` for a
    /// type the proxy does not run.
    pub fn of(check: &Check, internal_port: u16) -> Option<Probe> {
        let http = match check.check_type.as_deref().unwrap_or("tcp") {
            "tcp" => false,
            "http" => true,
            _ => return None,
        };
        let nonzero = |d: &hangar_types::Duration| Some(d.as_std()).filter(|d| !d.is_zero());
        Some(Probe {
            http,
            port: check
                .port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .unwrap_or(internal_port),
            path: check.path.clone().unwrap_or_else(|| "/".into()),
            method: check.method.clone().unwrap_or_else(|| "GET".into()),
            interval: check
                .interval
                .as_ref()
                .and_then(nonzero)
                .unwrap_or(DEFAULT_INTERVAL)
                .max(Duration::from_millis(100)),
            timeout: check
                .timeout
                .as_ref()
                .and_then(nonzero)
                .unwrap_or(DEFAULT_TIMEOUT),
            grace: check
                .grace_period
                .as_ref()
                .map(|d| d.as_std())
                .unwrap_or_default(),
        })
    }

    /// Runs the probe once against `addr`'s host.
    pub async fn run(&self, addr: SocketAddr) -> Result<(), String> {
        let target = SocketAddr::new(addr.ip(), self.port);
        tokio::time::timeout(self.timeout, self.run_inner(target))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.timeout)))
    }

    async fn run_inner(&self, target: SocketAddr) -> Result<(), String> {
        let stream = TcpStream::connect(target)
            .await
            .map_err(|e| format!("connect {target}: {e}"))?;
        if !self.http {
            return Ok(());
        }
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = http::Request::builder()
            .method(self.method.as_str())
            .uri(self.path.as_str())
            .header(http::header::HOST, target.to_string())
            .header(http::header::USER_AGENT, "hangar-proxy-check")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            Err(format!("{} answered {status}", self.path))
        }
    }
}

/// Runs `probes` against `live` while it exists; sets its health.
async fn check_loop(live: std::sync::Weak<Live>, probes: Vec<Probe>) {
    let interval = probes
        .iter()
        .map(|p| p.interval)
        .min()
        .unwrap_or(DEFAULT_INTERVAL);
    let grace = probes.iter().map(|p| p.grace).max().unwrap_or_default();
    let mut was_running = false;
    let mut running_since = tokio::time::Instant::now();
    loop {
        let Some(l) = live.upgrade() else { return };
        let running = l.running();
        if running && !was_running {
            running_since = tokio::time::Instant::now();
        }
        was_running = running;
        if running && running_since.elapsed() >= grace {
            let addr = l.addr;
            drop(l);
            let mut failure = None;
            for p in &probes {
                if let Err(e) = p.run(addr).await {
                    failure = Some(e);
                    break;
                }
            }
            let Some(l) = live.upgrade() else { return };
            let healthy = failure.is_none();
            if healthy != l.healthy() {
                match &failure {
                    Some(e) => {
                        tracing::info!(app = %l.app, machine = %l.id, "service check failing, out of rotation: {e}")
                    }
                    None => {
                        tracing::info!(app = %l.app, machine = %l.id, "service checks pass, back in rotation")
                    }
                }
            }
            l.set_healthy(healthy);
        } else if !running {
            l.set_healthy(true);
        }
        tokio::time::sleep(interval).await;
    }
}

/// The check tasks, one per machine service with checks; restarted when
/// its checks change, stopped when it goes away.
#[derive(Default)]
pub struct Checkers(HashMap<LiveKey, (Vec<Probe>, JoinHandle<()>)>);

impl Checkers {
    pub fn sync(&mut self, wanted: Vec<(LiveKey, Arc<Live>, Vec<Probe>)>) {
        let mut next = HashMap::new();
        for (key, live, probes) in wanted {
            match self.0.remove(&key) {
                Some((old, task)) if old == probes && !task.is_finished() => {
                    next.insert(key, (old, task));
                }
                other => {
                    if let Some((_, task)) = other {
                        task.abort();
                    }
                    let task = tokio::spawn(check_loop(Arc::downgrade(&live), probes.clone()));
                    next.insert(key, (probes, task));
                }
            }
        }
        for (_, (_, task)) in self.0.drain() {
            task.abort();
        }
        self.0 = next;
    }
}

impl Drop for Checkers {
    fn drop(&mut self) {
        for (_, (_, task)) in self.0.drain() {
            task.abort();
        }
    }
}
