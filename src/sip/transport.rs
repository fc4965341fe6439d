//! The tokio shell around [`UserAgent`]: one task owns the user agent and the UDP
//! socket; TCP connections (ours and the far end's) each get a reader task that
//! frames messages by Content-Length and a writer fed by a channel.
//!
//! Callers talk to the task through a [`SipHandle`] and read [`Event`]s from a
//! channel. Time comes from the wall clock here and nowhere below.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};

use super::call::Dial;
use super::message::{self, Frame, MAX_MESSAGE};
use super::ua::{OriginateError, Stats, UserAgent};
use super::{Event, Peer, SipConfig, Transport};
use crate::time::{wait_until, wall_clock};

enum Command {
    Originate(Dial, oneshot::Sender<Result<(), OriginateError>>),
    Hangup(u64),
    Stats(oneshot::Sender<(Stats, usize, usize)>),
}

/// Sends commands to the SIP task.
#[derive(Clone)]
pub struct SipHandle {
    tx: mpsc::Sender<Command>,
    /// The addresses the task listens on (ports resolved when configured as 0).
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
}

impl SipHandle {
    /// Start a call; errors are the trunk's refusals and bad targets.
    pub async fn originate(&self, dial: Dial) -> Result<(), OriginateError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Originate(dial, tx)).await.is_err() {
            return Err(OriginateError::Refused(super::trunk::Refusal::Down));
        }
        rx.await
            .unwrap_or(Err(OriginateError::Refused(super::trunk::Refusal::Down)))
    }

    /// CANCEL or BYE a call.
    pub async fn hangup(&self, call: u64) {
        let _ = self.tx.send(Command::Hangup(call)).await;
    }

    /// The user agent's counters, calls and transactions alive.
    pub async fn stats(&self) -> Option<(Stats, usize, usize)> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Stats(tx)).await.ok()?;
        rx.await.ok()
    }
}

enum Inbound {
    Message(Peer, Bytes),
    /// A stream whose next message cannot be framed; the connection is closed.
    Unframeable(Peer, &'static str),
    /// A connection could not be made or broke while we had something to send.
    Failed(Peer),
    Closed(SocketAddr),
}

/// Bind the configured sockets and start the SIP task. The task ends when
/// `shutdown` turns true or every handle is dropped.
pub async fn start(
    mut cfg: SipConfig,
    seed: u64,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<(SipHandle, mpsc::Receiver<Event>)> {
    let udp = match cfg.udp {
        Some(a) => Some(UdpSocket::bind(a).await?),
        None => None,
    };
    let tcp = match cfg.tcp {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    cfg.udp = udp.as_ref().map(|s| s.local_addr()).transpose()?;
    cfg.tcp = tcp.as_ref().map(|s| s.local_addr()).transpose()?;
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(1024);
    let (ev_tx, ev_rx) = mpsc::channel::<Event>(65_536);
    let (in_tx, mut in_rx) = mpsc::channel::<Inbound>(65_536);
    let handle = SipHandle {
        tx: cmd_tx,
        udp: cfg.udp,
        tcp: cfg.tcp,
    };
    let mut ua = UserAgent::new(&cfg, seed, wall_clock());
    tokio::spawn(async move {
        let mut conns: HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>> = HashMap::new();
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        loop {
            flush(&mut ua, udp.as_ref(), &mut conns, &in_tx).await;
            while let Some(ev) = ua.poll_event() {
                if ev_tx.send(ev).await.is_err() {
                    return;
                }
            }
            let sleep = ua
                .poll_timeout()
                .map_or(Duration::from_secs(3600), wait_until);
            tokio::select! {
                r = recv_udp(udp.as_ref(), &mut buf) => {
                    // An error here is an ICMP report on some systems; the datagram is gone.
                    if let Ok((n, from)) = r {
                        let peer = Peer { transport: Transport::Udp, addr: from };
                        // A datagram longer than MAX_MESSAGE arrives cut to
                        // MAX_MESSAGE + 1 bytes, which the parser refuses as too large.
                        ua.handle(wall_clock(), peer, &buf[..n]);
                    }
                },
                Some(inb) = in_rx.recv() => match inb {
                    Inbound::Message(peer, bytes) => ua.handle(wall_clock(), peer, &bytes),
                    Inbound::Unframeable(peer, why) => {
                        ua.malformed(peer, format!("malformed stream, connection closed: {why}"));
                    }
                    Inbound::Failed(peer) => {
                        conns.remove(&peer.addr);
                        ua.transport_failed(wall_clock(), peer);
                    }
                    Inbound::Closed(addr) => { conns.remove(&addr); }
                },
                accepted = accept(tcp.as_ref()) => {
                    if let Ok((stream, addr)) = accepted {
                        let w = spawn_conn(stream, addr, in_tx.clone());
                        conns.insert(addr, w);
                    }
                },
                cmd = cmd_rx.recv() => match cmd {
                    Some(Command::Originate(dial, reply)) => {
                        let _ = reply.send(ua.originate(wall_clock(), dial));
                    }
                    Some(Command::Hangup(id)) => ua.hangup(wall_clock(), id),
                    Some(Command::Stats(reply)) => {
                        let _ = reply.send((ua.stats, ua.calls(), ua.transactions()));
                    }
                    None => return,
                },
                _ = tokio::time::sleep(sleep) => ua.handle_timeout(wall_clock()),
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    });
    Ok((handle, ev_rx))
}

async fn recv_udp(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn accept(l: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Send everything the user agent has queued.
async fn flush(
    ua: &mut UserAgent,
    udp: Option<&UdpSocket>,
    conns: &mut HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>>,
    in_tx: &mpsc::Sender<Inbound>,
) {
    while let Some(t) = ua.poll_transmit() {
        match t.to.transport {
            Transport::Udp => {
                let sent = match udp {
                    Some(s) => s.send_to(&t.bytes, t.to.addr).await.is_ok(),
                    None => false,
                };
                if !sent {
                    ua.transport_failed(wall_clock(), t.to);
                }
            }
            Transport::Tcp => {
                let w = conns
                    .entry(t.to.addr)
                    .or_insert_with(|| connect(t.to.addr, in_tx.clone()));
                if w.send(t.bytes.clone()).is_err() {
                    let w = connect(t.to.addr, in_tx.clone());
                    let _ = w.send(t.bytes);
                    conns.insert(t.to.addr, w);
                }
            }
        }
    }
}

/// Open a connection in the background; what is sent before it is up waits in the
/// channel.
fn connect(addr: SocketAddr, in_tx: mpsc::Sender<Inbound>) -> mpsc::UnboundedSender<Bytes> {
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let peer = Peer {
            transport: Transport::Tcp,
            addr,
        };
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await;
        match stream {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                run_conn(s, addr, rx, in_tx).await;
            }
            _ => {
                let _ = in_tx.send(Inbound::Failed(peer)).await;
            }
        }
    });
    tx
}

fn spawn_conn(
    stream: TcpStream,
    addr: SocketAddr,
    in_tx: mpsc::Sender<Inbound>,
) -> mpsc::UnboundedSender<Bytes> {
    let _ = stream.set_nodelay(true);
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(run_conn(stream, addr, rx, in_tx));
    tx
}

async fn run_conn(
    stream: TcpStream,
    addr: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    in_tx: mpsc::Sender<Inbound>,
) {
    let peer = Peer {
        transport: Transport::Tcp,
        addr,
    };
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                return false;
            }
        }
        true
    });
    let mut buf = BytesMut::with_capacity(8192);
    'read: loop {
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            match message::frame(&buf) {
                Frame::Message { skip, len } => {
                    let _ = buf.split_to(skip);
                    let msg = buf.split_to(len).freeze();
                    if in_tx.send(Inbound::Message(peer, msg)).await.is_err() {
                        break 'read;
                    }
                }
                Frame::KeepAlive(n) => {
                    let _ = buf.split_to(n);
                }
                Frame::Incomplete => break,
                Frame::Invalid(why) => {
                    // Cannot find the next message boundary: the stream is lost.
                    let _ = in_tx.send(Inbound::Unframeable(peer, why)).await;
                    break 'read;
                }
            }
        }
    }
    writer.abort();
    let _ = in_tx.send(Inbound::Closed(addr)).await;
}
