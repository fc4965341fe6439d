//! The user agent: a sans-IO core that owns every call, transaction and trunk.
//!
//! Bytes that arrive go in with [`UserAgent::handle`]; the caller sends what
//! [`UserAgent::poll_transmit`] returns, reads [`UserAgent::poll_event`], and calls
//! [`UserAgent::handle_timeout`] at [`UserAgent::poll_timeout`]. No clock, no socket.
//!
//! Matching: responses go to the client transaction of their top Via branch and CSeq
//! method; requests to the server transaction of their branch (retransmissions), an
//! ACK for a 2xx to the INVITE server transaction of its Call-ID and CSeq, other
//! requests with a To tag to the call of their Call-ID.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rsip::Method;

use super::auth::challenge_in;
use super::call::{self, Call, CancelWhy, Dial, Local, Phase};
use super::config::{MIN_RING_S, SipConfig};
use super::message::{self, Builder, Parsed};
use super::sdp;
use super::transaction::{ClientState, ClientTx, Fired, Kind, Rx, ServerTx, Timers};
use super::trunk::{Refusal, Registration, Trunk};
use super::{CallOutcome, End, Event, Peer, SipError, Transmit, TrunkState};
use crate::outcome::Outcome;
use crate::time::Time;

mod responses;
mod server;
mod trunks;

/// A transaction's key: branch and method (as its `u8` discriminant).
type TxKey = (String, u8);

fn key(branch: &str, m: Method) -> TxKey {
    (branch.to_string(), m as u8)
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    Client(TxKey),
    Server(TxKey),
    Call(u64),
    Trunk(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Invite(u64),
    Cancel(u64),
    Bye(u64),
    Register(usize),
    Options(usize),
    Stray,
}

struct Client {
    tx: ClientTx,
    owner: Owner,
    to: Peer,
    /// The request, kept for retransmission until a response stops them.
    request: Option<Bytes>,
    /// Where the stored ACK goes.
    ack_to: Peer,
}

/// A server transaction and where its request came from.
struct Served {
    tx: ServerTx,
    peer: Peer,
}

/// Why a call could not be started.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OriginateError {
    #[error("no trunk {trunk}")]
    UnknownTrunk { trunk: usize },
    #[error("call {call} is already up")]
    Duplicate { call: u64 },
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Sip(#[from] SipError),
}

/// Counters for metrics and load reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests and responses sent again by a timer (Timer A, E, G).
    pub retransmissions: u64,
    /// Messages that could not be parsed.
    pub malformed: u64,
    /// Messages no transaction, dialog or method took.
    pub unmatched: u64,
}

/// The SIP user agent core.
pub struct UserAgent {
    timers: Timers,
    local: Local,
    ring_timeout_ms: u64,
    trunks: Vec<Trunk>,
    calls: HashMap<u64, Call>,
    by_call_id: HashMap<String, u64>,
    client: HashMap<TxKey, Client>,
    server: HashMap<TxKey, Served>,
    /// (Call-ID, CSeq) of INVITEs we answered, to match the ACK of a 2xx.
    acks: HashMap<(String, u32), TxKey>,
    wake: BinaryHeap<Reverse<(Time, Wake)>>,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    rng: ChaCha8Rng,
    pub stats: Stats,
}

impl UserAgent {
    /// A user agent for `cfg`'s addresses, timers and trunks; `seed` makes its
    /// Call-IDs, tags and branches.
    pub fn new(cfg: &SipConfig, seed: u64, now: Time) -> UserAgent {
        let mut ua = UserAgent {
            timers: Timers {
                t1: cfg.t1_ms,
                t2: cfg.t2_ms,
                t4: cfg.t4_ms,
            },
            local: Local {
                udp: cfg.udp,
                tcp: cfg.tcp,
                user_agent: cfg.user_agent.clone(),
            },
            ring_timeout_ms: cfg.ring_timeout_s.max(MIN_RING_S) * 1000,
            trunks: Vec::new(),
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            client: HashMap::new(),
            server: HashMap::new(),
            acks: HashMap::new(),
            wake: BinaryHeap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            stats: Stats::default(),
        };
        for t in &cfg.trunks {
            let call_id = ua.token(16);
            let trunk = Trunk::new(t.clone(), now, call_id);
            ua.trunks.push(trunk);
        }
        for i in 0..ua.trunks.len() {
            if let Some(at) = ua.trunks[i].deadline() {
                ua.schedule(at, Wake::Trunk(i));
            }
        }
        ua
    }

    fn token(&mut self, len: usize) -> String {
        const HEX: &[u8] = b"0123456789abcdef";
        (0..len)
            .map(|_| HEX[self.rng.random_range(0..16)] as char)
            .collect()
    }

    fn branch(&mut self) -> String {
        format!("{}{}", message::BRANCH_COOKIE, self.token(16))
    }

    fn schedule(&mut self, at: Time, w: Wake) {
        self.wake.push(Reverse((at, w)));
    }

    fn send(&mut self, to: Peer, bytes: impl Into<Bytes>) -> Bytes {
        let bytes = bytes.into();
        self.out.push_back(Transmit {
            to,
            bytes: bytes.clone(),
        });
        bytes
    }

    fn start_client(&mut self, now: Time, k: TxKey, owner: Owner, to: Peer, bytes: Vec<u8>) {
        let kind = if k.1 == Method::Invite as u8 {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let request = self.send(to, bytes);
        let tx = ClientTx::new(kind, to.transport.reliable(), now, &self.timers);
        if let Some(at) = tx.deadline() {
            self.schedule(at, Wake::Client(k.clone()));
        }
        self.client.insert(
            k,
            Client {
                tx,
                owner,
                to,
                request: Some(request),
                ack_to: to,
            },
        );
    }

    /// The trunks, in configuration order.
    pub fn trunks(&self) -> &[Trunk] {
        &self.trunks
    }

    pub fn trunk_index(&self, name: &str) -> Option<usize> {
        self.trunks.iter().position(|t| t.cfg.name == name)
    }

    /// Calls not yet forgotten (ringing, up, or closing).
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Transactions alive, client and server.
    pub fn transactions(&self) -> usize {
        self.client.len() + self.server.len()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest time [`UserAgent::handle_timeout`] has work (may be early).
    pub fn poll_timeout(&self) -> Option<Time> {
        self.wake.peek().map(|Reverse((t, _))| *t)
    }

    /// Start a call. The trunk's limits are checked first.
    pub fn originate(&mut self, now: Time, dial: Dial) -> Result<(), OriginateError> {
        if self.calls.contains_key(&dial.id) {
            return Err(OriginateError::Duplicate { call: dial.id });
        }
        let trunk = self
            .trunks
            .get(dial.trunk)
            .ok_or(OriginateError::UnknownTrunk { trunk: dial.trunk })?;
        let (peer, domain, asserted) = (
            trunk.peer,
            trunk.domain.clone(),
            trunk.cfg.asserted_identity,
        );
        let ring = dial.ring_timeout_ms.max(MIN_RING_S * 1000);
        let ids = (
            format!("{}@dialerd", self.token(20)),
            self.token(10),
            self.branch(),
        );
        let call = Call::new(&dial, peer, &domain, asserted, ids, now, ring)?;
        let invite = call.invite(&self.local)?;
        self.trunks[dial.trunk].admit(now)?;
        let k = key(&call.invite_branch, Method::Invite);
        self.by_call_id.insert(call.call_id.clone(), call.id);
        self.schedule(call.ring_at, Wake::Call(call.id));
        self.calls.insert(call.id, call);
        self.start_client(now, k, Owner::Invite(dial.id), peer, invite);
        Ok(())
    }

    /// The ring timeout used when a [`Dial`] does not set a longer one.
    pub fn ring_timeout_ms(&self) -> u64 {
        self.ring_timeout_ms
    }

    /// End a call: CANCEL it while it rings, BYE it once answered.
    pub fn hangup(&mut self, now: Time, id: u64) {
        match self.calls.get(&id).map(|c| c.phase) {
            Some(Phase::Inviting) => self.request_cancel(now, id, CancelWhy::Request),
            Some(Phase::Confirmed) => {
                self.send_bye(now, id, None);
                self.end_call(
                    now,
                    id,
                    End {
                        outcome: CallOutcome::Answered,
                        status: None,
                        reason: "local_bye",
                        rang: self.calls[&id].rang,
                    },
                );
            }
            _ => {}
        }
    }

    fn request_cancel(&mut self, now: Time, id: u64, why: CancelWhy) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.phase != Phase::Inviting {
            return;
        }
        c.cancel.get_or_insert(why);
        if !c.provisional || c.cancel_sent {
            // RFC 3261 §9.1: no CANCEL before a provisional response; sent on the first.
            return;
        }
        c.cancel_sent = true;
        let at = now + Duration::from_millis(self.timers.transaction_timeout());
        c.cancel_at = Some(at);
        let (peer, k) = (c.dest, key(&c.invite_branch, Method::Cancel));
        match c.cancel_request(&self.local) {
            Ok(bytes) => self.start_client(now, k, Owner::Cancel(id), peer, bytes),
            Err(e) => self.events.push_back(Event::Dropped {
                from: peer,
                reason: format!("cannot build CANCEL: {e}"),
            }),
        }
        self.schedule(at, Wake::Call(id));
    }

    fn send_bye(&mut self, now: Time, id: u64, auth: Option<(&'static str, String)>) {
        let branch = self.branch();
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        c.cseq += 1;
        c.phase = Phase::Closing;
        let peer = c.dialog_peer();
        match c.in_dialog(&self.local, Method::Bye, &branch, c.cseq, auth.as_ref()) {
            Ok(bytes) => {
                self.start_client(now, key(&branch, Method::Bye), Owner::Bye(id), peer, bytes);
            }
            Err(e) => {
                self.events.push_back(Event::Dropped {
                    from: peer,
                    reason: format!("cannot build BYE: {e}"),
                });
                self.forget(id);
            }
        }
    }

    /// Report a call's end (once) and release its trunk slot.
    fn end_call(&mut self, now: Time, id: u64, end: End) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        c.phase = Phase::Closing;
        if std::mem::replace(&mut c.ended, true) {
            return;
        }
        let trunk = c.trunk;
        if let Some(t) = self.trunks.get_mut(trunk) {
            t.release();
        }
        self.events.push_back(Event::Ended {
            call: id,
            end,
            at: now,
        });
    }

    /// Forget a call entirely (its transactions live on by their own timers).
    fn forget(&mut self, id: u64) {
        if let Some(c) = self.calls.remove(&id) {
            self.by_call_id.remove(&c.call_id);
        }
    }

    /// A transport could not reach `peer` (TCP connect or write failed, ICMP error):
    /// calls still being set up through it end as network failures.
    pub fn transport_failed(&mut self, now: Time, peer: Peer) {
        let failed: Vec<u64> = self
            .calls
            .values()
            .filter(|c| c.phase == Phase::Inviting && c.dest == peer)
            .map(|c| c.id)
            .collect();
        for id in failed {
            let rang = self.calls[&id].rang;
            self.end_call(
                now,
                id,
                End {
                    outcome: CallOutcome::Failed(Outcome::Network),
                    status: None,
                    reason: "transport",
                    rang,
                },
            );
            self.forget(id);
        }
        for i in 0..self.trunks.len() {
            if self.trunks[i].peer == peer && self.trunks[i].failed() {
                self.events.push_back(Event::Trunk {
                    trunk: i,
                    state: TrunkState::Down,
                });
            }
        }
    }

    /// Bytes that arrived from `from`.
    pub fn handle(&mut self, now: Time, from: Peer, bytes: &[u8]) {
        let p = match message::parse(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.malformed(from, format!("{e} ({})", message::describe(bytes)));
                return;
            }
        };
        if p.status().is_some() {
            self.on_response(now, from, p);
        } else {
            self.on_request(now, from, p);
        }
    }

    /// Bytes from `from` that are not SIP, or a stream that cannot be framed: count
    /// and report them.
    pub fn malformed(&mut self, from: Peer, reason: String) {
        self.stats.malformed += 1;
        self.events.push_back(Event::Dropped { from, reason });
    }

    fn unmatched(&mut self, from: Peer, what: &str) {
        self.stats.unmatched += 1;
        self.events.push_back(Event::Dropped {
            from,
            reason: what.to_string(),
        });
    }

    fn on_response(&mut self, now: Time, from: Peer, p: Parsed) {
        let status = p.status().unwrap_or(0);
        let k = key(&p.branch, p.cseq_method);
        let Some(c) = self.client.get_mut(&k) else {
            if p.cseq_method == Method::Invite && (200..300).contains(&status) {
                self.stray_2xx(now, from, &p);
            } else {
                self.unmatched(from, &format!("response {status} matches no transaction"));
            }
            return;
        };
        let rx =
            c.tx.on_response(status, p.to_tag.as_deref(), now, &self.timers);
        if status >= 200 {
            c.request = None;
        }
        let (owner, deadline) = (c.owner, c.tx.deadline());
        let (to, ack) = (c.ack_to, c.tx.ack().map(Bytes::copy_from_slice));
        if let Some(at) = deadline {
            self.schedule(at, Wake::Client(k.clone()));
        }
        match rx {
            Rx::Absorb => {}
            Rx::ResendAck => {
                if let Some(ack) = ack {
                    self.send(to, ack);
                }
            }
            Rx::Deliver => match owner {
                Owner::Invite(id) => self.invite_response(now, from, id, &k, &p),
                Owner::Bye(id) => self.bye_response(now, id, &p),
                Owner::Register(t) => self.register_response(now, t, &p),
                Owner::Options(t) if status >= 200 => self.ping_result(t, status != 503),
                Owner::Options(_) | Owner::Cancel(_) | Owner::Stray => {}
            },
        }
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(Reverse((at, _))) = self.wake.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, w))) = self.wake.pop() else {
                break;
            };
            match w {
                Wake::Client(k) => self.client_timer(now, k),
                Wake::Server(k) => self.server_timer(now, k),
                Wake::Call(id) => self.call_timer(now, id),
                Wake::Trunk(t) => self.trunk_timer(now, t),
            }
        }
    }

    fn client_timer(&mut self, now: Time, k: TxKey) {
        let Some(c) = self.client.get_mut(&k) else {
            return;
        };
        if c.tx.deadline().is_none_or(|d| d > now) {
            return;
        }
        let fired = c.tx.on_timeout(now, &self.timers);
        let (owner, to, request) = (c.owner, c.to, c.request.clone());
        match c.tx.deadline() {
            Some(at) => self.schedule(at, Wake::Client(k.clone())),
            None if c.tx.state() == ClientState::Terminated => {
                self.client.remove(&k);
            }
            None => {}
        }
        match fired {
            Some(Fired::Retransmit) => {
                if let Some(r) = request {
                    self.stats.retransmissions += 1;
                    self.send(to, r);
                }
            }
            // A transaction that timed out or is done is terminated: removed above.
            Some(Fired::TimedOut) => self.client_timed_out(now, owner, &k),
            Some(Fired::Done) | None => {}
        }
    }

    fn client_timed_out(&mut self, now: Time, owner: Owner, k: &TxKey) {
        match owner {
            Owner::Invite(id) => {
                let Some(c) = self.calls.get(&id) else { return };
                if c.invite_branch != k.0 || c.phase != Phase::Inviting {
                    return;
                }
                let end = End {
                    outcome: CallOutcome::Failed(Outcome::Network),
                    status: None,
                    reason: "no_response",
                    rang: c.rang,
                };
                self.end_call(now, id, end);
                self.forget(id);
            }
            Owner::Bye(id) => self.forget(id),
            Owner::Register(t) => {
                self.registration_failed(now, t, None);
            }
            Owner::Options(t) => self.ping_result(t, false),
            Owner::Cancel(_) | Owner::Stray => {}
        }
    }

    fn server_timer(&mut self, now: Time, k: TxKey) {
        let Some(Served { tx, peer }) = self.server.get_mut(&k) else {
            return;
        };
        let peer = *peer;
        if tx.deadline().is_none_or(|d| d > now) {
            return;
        }
        match tx.on_timeout(now, &self.timers) {
            Some(Fired::Retransmit) => {
                let (resp, at) = (Bytes::copy_from_slice(tx.response()), tx.deadline());
                self.stats.retransmissions += 1;
                if let Some(at) = at {
                    self.schedule(at, Wake::Server(k.clone()));
                }
                self.send(peer, resp);
            }
            Some(_) => {
                self.server.remove(&k);
                self.acks.retain(|_, v| *v != k);
            }
            None => {
                if let Some(at) = tx.deadline() {
                    self.schedule(at, Wake::Server(k));
                }
            }
        }
    }

    fn call_timer(&mut self, now: Time, id: u64) {
        let Some(c) = self.calls.get(&id) else { return };
        if c.phase != Phase::Inviting {
            return;
        }
        if let Some(at) = c.cancel_at
            && at <= now
        {
            // No final response to the INVITE 64*T1 after the CANCEL (§9.1).
            let why = c.cancel.unwrap_or(CancelWhy::Request);
            let end = End {
                outcome: CallOutcome::Failed(cancel_outcome(why)),
                status: None,
                reason: "no_final_after_cancel",
                rang: c.rang,
            };
            self.end_call(now, id, end);
            self.forget(id);
            return;
        }
        if c.cancel.is_none() && c.ring_at <= now {
            self.request_cancel(now, id, CancelWhy::RingTimeout);
        }
    }
}

fn cancel_outcome(why: CancelWhy) -> Outcome {
    match why {
        CancelWhy::RingTimeout => Outcome::NoAnswer,
        CancelWhy::Request => Outcome::Canceled,
    }
}

/// Seconds of a Retry-After value (`120 (maintenance);duration=60`), capped at a day.
fn retry_after_s(v: &str) -> Option<u64> {
    let n: u64 = v.split([' ', ';', '(']).next()?.trim().parse().ok()?;
    Some(n.min(86_400))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        405 => "Method Not Allowed",
        481 => "Call/Transaction Does Not Exist",
        488 => "Not Acceptable Here",
        501 => "Not Implemented",
        603 => "Decline",
        _ => "Unknown",
    }
}
