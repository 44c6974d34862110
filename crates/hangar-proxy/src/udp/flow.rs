//! One UDP flow (a client address on a UDP service port): its datagrams go
//! to one machine over a socket connected to the machine's service address,
//! the machine's answers go back out of the public socket. The flow ends
//! after the idle timeout, when evicted, or when no machine can take it; it
//! moves to another machine when its machine stops.

use std::cell::RefCell;
use std::collections::VecDeque;
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
/// First and longest wait before resending to a machine whose port refused.
/// Linux sends ICMP errors in a burst of six, then one a second: the waits
/// grow so that each resend may still be refused visibly.
const RESEND_FIRST: Duration = Duration::from_millis(10);
const RESEND_MAX: Duration = Duration::from_millis(1100);

pub struct FlowCtx {
    pub shared: Arc<Shared>,
    pub port: u16,
    /// The UDP service port's socket: answers leave from it.
    pub public: Arc<UdpSocket>,
    pub client: SocketAddr,
    /// Clock ms of the last datagram either way (the flow table evicts the
    /// flow idle the longest).
    pub activity: Arc<AtomicU64>,
    /// The flow's place among all UDP flows (its socket).
    pub _ticket: super::budget::FlowTicket,
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

/// A machine the flow started may not have bound its port yet, and a UDP
/// port cannot be asked whether it listens without sending it a datagram.
/// So the flow sends its first datagram alone, again and again with growing
/// waits while the port refuses it (ICMP port unreachable); the datagrams
/// behind it are held and follow once the port took one (it answered, or
/// did not refuse within [`PROBE_WINDOW`]). At most one datagram is in
/// flight while the port may refuse, so none is delivered twice.
struct Probe {
    /// `held[0]` is the datagram being tried.
    held: VecDeque<Bytes>,
    /// Give up (drop what is held) at this time.
    until: Instant,
    next_wait: Duration,
    /// When the current window (after a send) or wait (before a resend) ends.
    at: Option<Instant>,
    /// Whether `at` ends a window after a send (else a wait before one).
    sent: bool,
}

impl Probe {
    fn new(until: Instant) -> Probe {
        Probe {
            held: VecDeque::new(),
            until,
            next_wait: RESEND_FIRST,
            at: None,
            sent: false,
        }
    }

    /// The port refused the datagram: wait, then try it again.
    fn refused(&mut self, now: Instant) {
        self.sent = false;
        self.at = Some(now + self.next_wait);
        self.next_wait = (self.next_wait * 2).min(RESEND_MAX);
    }
}

/// How long after sending a datagram to a machine that may not listen yet
/// the flow waits for a refusal before taking the port as open.
const PROBE_WINDOW: Duration = Duration::from_millis(50);

/// Sends the datagram being tried and opens a window for its refusal.
async fn try_probe(upstream: &UdpSocket, probe: &mut Probe) {
    let Some(d) = probe.held.front() else {
        return;
    };
    let now = Instant::now();
    match upstream.send(d).await {
        Ok(_) => {
            probe.sent = true;
            probe.at = Some(now + PROBE_WINDOW);
        }
        // The refusal of an earlier try, reported now: this one was not sent.
        Err(_) => probe.refused(now),
    }
}

/// The port took a datagram: the held ones follow it.
async fn release(ctx: &FlowCtx, upstream: &UdpSocket, probe: Probe) {
    for d in probe.held.iter().skip(1) {
        if upstream.send(d).await.is_err() {
            ctx.shared.metrics.udp.dropped_send_error.inc();
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
    let mut probe = picked
        .started
        .then(|| Probe::new(Instant::now() + ctx.shared.opts.start_timeout));
    let mut pending = carry;
    loop {
        if let Some(d) = pending.take() {
            last = Instant::now();
            ctx.activity
                .store(crate::clock::now_ms(), Ordering::Relaxed);
            match probe.as_mut() {
                Some(p) if p.held.len() >= FLOW_QUEUE => udp.dropped_queue_full.inc(),
                Some(p) => {
                    p.held.push_back(d);
                    if p.held.len() == 1 {
                        try_probe(&upstream, p).await;
                    }
                }
                None => {
                    if upstream.send(&d).await.is_err() {
                        udp.dropped_send_error.inc();
                    }
                }
            }
        }
        let probe_at = probe.as_ref().and_then(|p| p.at);
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
            r = upstream.readable() => {
                if let Err(e) = r {
                    tracing::debug!(machine = %live.id, "proxy: UDP flow receive: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let mut answered = false;
                // Everything the machine sent, up to a batch.
                for _ in 0..64 {
                    match answer(ctx, &upstream) {
                        Ok(true) => answered = true,
                        Ok(false) => break,
                        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                            // ICMP port unreachable, reported ahead of a
                            // datagram: nothing listened there (yet).
                            if let Some(p) = probe.as_mut().filter(|p| p.sent) {
                                p.refused(Instant::now());
                            }
                        }
                        Err(e) => {
                            tracing::debug!(machine = %live.id, "proxy: UDP flow receive: {e}");
                            break;
                        }
                    }
                }
                if answered {
                    last = Instant::now();
                    ctx.activity.store(crate::clock::now_ms(), Ordering::Relaxed);
                    if let Some(p) = probe.take() {
                        release(ctx, &upstream, p).await;
                    }
                }
            }
            () = sleep_until_some(probe_at) => {
                if let Some(mut p) = probe.take() {
                    if p.sent {
                        // An ICMP error does not make the socket readable:
                        // ask for it once the window has passed.
                        match upstream.take_error() {
                            Ok(Some(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                                p.refused(Instant::now());
                                probe = Some(p);
                            }
                            // No refusal: the port took the datagram.
                            _ => release(ctx, &upstream, p).await,
                        }
                    } else if Instant::now() >= p.until {
                        tracing::debug!(machine = %live.id, "proxy: the machine's UDP port refused datagrams until the start timeout");
                        for _ in 0..p.held.len() {
                            udp.dropped_no_machine.inc();
                        }
                    } else {
                        try_probe(&upstream, &mut p).await;
                        probe = Some(p);
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

thread_local! {
    /// Where machines' datagrams are read: one buffer per thread, not one
    /// per flow (a port may hold 65536 flows).
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; MAX_DATAGRAM]);
}

/// Reads one datagram the machine sent, if one is there (`Ok(false)` when
/// none), and sends it to the client from the public port; dropped (and
/// counted) when the public socket cannot take it now, as UDP may.
fn answer(ctx: &FlowCtx, upstream: &UdpSocket) -> io::Result<bool> {
    BUF.with_borrow_mut(|buf| {
        let n = match upstream.try_recv(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        let udp = &ctx.shared.metrics.udp;
        match ctx.public.try_send_to(&buf[..n], ctx.client) {
            Ok(_) => udp.datagrams_out.inc(),
            Err(e) => {
                tracing::debug!(client = %ctx.client, "proxy: UDP answer: {e}");
                udp.dropped_send_error.inc();
            }
        }
        Ok(true)
    })
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
