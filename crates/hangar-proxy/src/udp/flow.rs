//! One UDP flow (a client address on a UDP service port): its datagrams go
//! to one machine over a socket connected to the machine's service address,
//! the machine's answers go back out of the public socket. The flow ends
//! after the idle timeout, when evicted, or when no machine can take it; it
//! moves to another machine when its machine stops.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::pick::{Picked, pick};
use super::port::{FLOW_QUEUE, MAX_DATAGRAM};
use crate::shared::Shared;

/// How many times a flow may move to another machine (its machine stopped)
/// before it ends; the client's next datagram opens a new one.
const MAX_MOVES: usize = 4;
/// First and longest wait before resending to a machine whose port refused
/// (ICMP port unreachable is rate limited, so the waits grow).
const RESEND_FIRST: Duration = Duration::from_millis(10);
const RESEND_MAX: Duration = Duration::from_secs(1);

pub struct FlowCtx {
    pub shared: Arc<Shared>,
    pub port: u16,
    /// The UDP service port's socket: answers leave from it.
    pub public: Arc<UdpSocket>,
    pub client: SocketAddr,
    /// Clock ms of the last datagram either way (the flow table evicts the
    /// flow idle the longest).
    pub activity: Arc<AtomicU64>,
}

/// Why a flow left its machine.
enum Left {
    /// Idle timeout, eviction, or a failure: the flow ends.
    Ended,
    /// The machine is no longer running: this datagram goes to another.
    MachineGone(Bytes),
}

pub async fn run(ctx: FlowCtx, mut rx: mpsc::Receiver<Bytes>) {
    let mut carry = None;
    for _ in 0..MAX_MOVES {
        let picked = match pick(&ctx.shared, ctx.port).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(port = ctx.port, client = %ctx.client, "proxy: UDP flow: {e}");
                break;
            }
        };
        match relay(&ctx, &mut rx, picked, carry.take()).await {
            Left::Ended => return,
            Left::MachineGone(d) => carry = Some(d),
        }
    }
    // No machine: what the flow holds is dropped.
    rx.close();
    let mut dropped = u64::from(carry.is_some());
    while rx.try_recv().is_ok() {
        dropped += 1;
    }
    for _ in 0..dropped {
        ctx.shared.metrics.udp.dropped_no_machine.inc();
    }
}

/// The first datagrams sent to a machine the flow started, kept until the
/// machine answers (or the start timeout passes): they are sent again while
/// its port refuses them, as its app may not have bound the port yet.
struct Replay {
    kept: Vec<Bytes>,
    until: Instant,
    next_wait: Duration,
    resend_at: Option<Instant>,
}

impl Replay {
    fn new(until: Instant) -> Replay {
        Replay {
            kept: Vec::new(),
            until,
            next_wait: RESEND_FIRST,
            resend_at: None,
        }
    }

    fn keep(&mut self, d: &Bytes) {
        if self.kept.len() < FLOW_QUEUE {
            self.kept.push(d.clone());
        }
    }

    /// The port refused: schedule a resend (unless one is scheduled).
    fn refused(&mut self, now: Instant) {
        if self.resend_at.is_none() {
            self.resend_at = Some(now + self.next_wait);
            self.next_wait = (self.next_wait * 2).min(RESEND_MAX);
        }
    }
}

async fn relay(
    ctx: &FlowCtx,
    rx: &mut mpsc::Receiver<Bytes>,
    picked: Picked,
    carry: Option<Bytes>,
) -> Left {
    let live = picked.guard.live().clone();
    let udp = &ctx.shared.metrics.udp;
    let upstream = match connect(live.addr).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(machine = %live.id, addr = %live.addr, "proxy: UDP flow socket: {e}");
            udp.dropped_send_error.inc();
            return Left::Ended;
        }
    };
    let idle = ctx.shared.opts.udp_idle_timeout;
    let mut last = Instant::now();
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    let mut replay = picked
        .started
        .then(|| Replay::new(Instant::now() + ctx.shared.opts.start_timeout));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut pending = carry;
    loop {
        if replay.as_ref().is_some_and(|r| Instant::now() >= r.until) {
            replay = None;
        }
        if let Some(d) = pending.take() {
            last = Instant::now();
            ctx.activity
                .store(crate::clock::now_ms(), Ordering::Relaxed);
            if let Some(r) = replay.as_mut() {
                r.keep(&d);
            }
            match upstream.send(&d).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused && replay.is_some() => {
                    // An earlier datagram was refused; this one was not sent
                    // but is kept for the resend.
                    if let Some(r) = replay.as_mut() {
                        r.refused(Instant::now());
                    }
                }
                Err(_) => udp.dropped_send_error.inc(),
            }
        }
        let resend_at = replay.as_ref().and_then(|r| r.resend_at);
        tokio::select! {
            d = rx.recv() => {
                let Some(d) = d else {
                    return Left::Ended; // evicted
                };
                if !live.running() {
                    return Left::MachineGone(d);
                }
                pending = Some(d);
            }
            r = upstream.recv(&mut buf) => match r {
                Ok(n) => {
                    replay = None;
                    last = Instant::now();
                    ctx.activity.store(crate::clock::now_ms(), Ordering::Relaxed);
                    match ctx.public.send_to(&buf[..n], ctx.client).await {
                        Ok(_) => udp.datagrams_out.inc(),
                        Err(e) => {
                            tracing::debug!(client = %ctx.client, "proxy: UDP answer: {e}");
                            udp.dropped_send_error.inc();
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    // ICMP port unreachable: nothing listens there (yet).
                    let now = Instant::now();
                    match replay.as_mut() {
                        Some(r) if now < r.until => r.refused(now),
                        _ => replay = None,
                    }
                }
                Err(e) => {
                    tracing::debug!(machine = %live.id, "proxy: UDP flow receive: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            () = sleep_until_some(resend_at) => {
                if let Some(r) = replay.as_mut() {
                    r.resend_at = None;
                    for d in &r.kept {
                        if let Err(e) = upstream.send(d).await {
                            if e.kind() == io::ErrorKind::ConnectionRefused {
                                r.refused(Instant::now());
                            }
                            break;
                        }
                    }
                }
            }
            () = &mut timer => {
                if last.elapsed() >= idle {
                    return Left::Ended;
                }
                timer.as_mut().reset(last + idle);
            }
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A socket of the flow's own, connected to the machine's service address
/// (so only the machine's datagrams arrive on it, and ICMP errors show).
async fn connect(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local: IpAddr = if addr.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    socket.connect(addr).await?;
    Ok(socket)
}
