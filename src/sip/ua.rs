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

use bytes::Bytes;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rsip::Method;

use super::auth::Challenge;
use super::call::{self, Call, CancelWhy, Dial, Local, Phase};
use super::config::{MIN_RING_S, SipConfig};
use super::message::{self, Builder, Parsed};
use super::sdp;
use super::transaction::{ClientState, ClientTx, Fired, Kind, Rx, ServerTx, Timers};
use super::trunk::{Refusal, Registration, Trunk};
use super::{CallOutcome, End, Event, Peer, SipError, Transmit, TrunkState};
use crate::outcome::Outcome;
use crate::time::Time;

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

fn later(now: Time, ms: u64) -> Time {
    Time::from_millis(now.as_millis() + ms)
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
        let at = later(now, self.timers.transaction_timeout());
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
                self.stats.malformed += 1;
                self.events.push_back(Event::Dropped {
                    from,
                    reason: format!("{e} ({})", message::describe(bytes)),
                });
                return;
            }
        };
        if p.status().is_some() {
            self.on_response(now, from, p);
        } else {
            self.on_request(now, from, p);
        }
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

    /// ACK and BYE a 2xx that belongs to no live call.
    fn stray_2xx(&mut self, now: Time, from: Peer, p: &Parsed) {
        let (b1, b2) = (self.branch(), self.branch());
        match call::ack_and_bye_stray(&self.local, from, p, (&b1, &b2)) {
            Ok((ack, bye, peer)) => {
                self.send(peer, ack);
                self.start_client(now, key(&b2, Method::Bye), Owner::Stray, peer, bye);
            }
            Err(e) => self.unmatched(from, &format!("stray 2xx: {e}")),
        }
    }

    fn invite_response(&mut self, now: Time, from: Peer, id: u64, k: &TxKey, p: &Parsed) {
        let status = p.status().unwrap_or(0);
        let Some(c) = self.calls.get_mut(&id) else {
            if (200..300).contains(&status) {
                self.stray_2xx(now, from, p);
            }
            return;
        };
        if k.0 != c.invite_branch {
            // A response to an INVITE we already replaced (after a challenge).
            if (200..300).contains(&status) {
                self.stray_2xx(now, from, p);
            }
            return;
        }
        if status < 200 {
            c.provisional = true;
            if (180..=183).contains(&status) && !c.rang {
                c.rang = true;
                self.events.push_back(Event::Ringing {
                    call: id,
                    status,
                    at: now,
                });
            }
            if let Some(why) = c.cancel
                && !c.cancel_sent
            {
                self.request_cancel(now, id, why);
            }
            return;
        }
        if status < 300 {
            self.invite_answered(now, from, id, k, p);
            return;
        }
        // 3xx–6xx: the transaction needs its ACK.
        let ack = c.ack_failure(&self.local, p);
        if let (Ok(ack), Some(cl)) = (ack, self.client.get_mut(k)) {
            cl.tx.set_ack(ack.clone());
            let to = cl.to;
            self.send(to, ack);
        }
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.phase != Phase::Inviting {
            return;
        }
        if (status == 401 || status == 407)
            && c.cancel.is_none()
            && self.retry_with_auth(now, id, p)
        {
            return;
        }
        let c = &self.calls[&id];
        if status == 503
            && let Some(ra) = p.value("retry-after").and_then(retry_after_s)
        {
            let until = later(now, ra * 1000);
            self.trunks[c.trunk].paused_until = Some(until);
            self.events.push_back(Event::Trunk {
                trunk: c.trunk,
                state: TrunkState::Paused { until },
            });
        }
        let outcome = match (c.cancel, status) {
            (Some(why), 487) => cancel_outcome(why),
            _ => Outcome::from_sip_status(status, c.rang).unwrap_or(Outcome::Rejected),
        };
        let end = End {
            outcome: CallOutcome::Failed(outcome),
            status: Some(status),
            reason: "final_response",
            rang: c.rang,
        };
        self.end_call(now, id, end);
        self.forget(id);
    }

    fn invite_answered(&mut self, now: Time, from: Peer, id: u64, k: &TxKey, p: &Parsed) {
        let branch = self.branch();
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.phase != Phase::Inviting {
            if p.to_tag != c.remote_tag {
                self.stray_2xx(now, from, p);
            }
            return;
        }
        c.confirm(p);
        let peer = c.dialog_peer();
        let ack = c.in_dialog(&self.local, Method::Ack, &branch, c.invite_cseq, None);
        let (rang, cancel) = (c.rang, c.cancel);
        match ack {
            Ok(ack) => {
                if let Some(cl) = self.client.get_mut(k) {
                    cl.tx.set_ack(ack.clone());
                    cl.ack_to = peer;
                }
                self.send(peer, ack);
            }
            Err(e) => self.unmatched(from, &format!("cannot ACK: {e}")),
        }
        let media = sdp::parse(p.body());
        let fail = |outcome, status, reason| End {
            outcome: CallOutcome::Failed(outcome),
            status: Some(status),
            reason,
            rang,
        };
        if let Some(why) = cancel {
            // The 200 crossed our CANCEL: the call is up, so end it with a BYE.
            self.send_bye(now, id, None);
            self.end_call(
                now,
                id,
                fail(cancel_outcome(why), 200, "answered_after_cancel"),
            );
            return;
        }
        match media {
            Ok(m) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.phase = Phase::Confirmed;
                }
                self.events.push_back(Event::Answered {
                    call: id,
                    media: Some(m),
                    at: now,
                });
            }
            Err(sdp::SdpError::NoAudio) if p.body().is_empty() => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.phase = Phase::Confirmed;
                }
                self.events.push_back(Event::Answered {
                    call: id,
                    media: None,
                    at: now,
                });
            }
            Err(_) => {
                // RFC 3264 §5: an unusable answer: ACK, then BYE.
                self.send_bye(now, id, None);
                self.end_call(now, id, fail(Outcome::Rejected, 488, "unusable_sdp_answer"));
            }
        }
    }

    /// Answer a 401/407 to the INVITE. False when we cannot (no credentials, bad
    /// challenge, or the same credentials were already refused).
    fn retry_with_auth(&mut self, now: Time, id: u64, p: &Parsed) -> bool {
        let status = p.status().unwrap_or(0);
        let (hdr, answer_name) = if status == 407 {
            ("proxy-authenticate", "Proxy-Authorization")
        } else {
            ("www-authenticate", "Authorization")
        };
        let Some(challenge) = p.values(hdr).find_map(|v| Challenge::parse(v).ok()) else {
            return false;
        };
        let cnonce = self.token(16);
        let branch = self.branch();
        let c = &self.calls[&id];
        let trunk = &self.trunks[c.trunk].cfg;
        let (Some(user), Some(pass)) = (&trunk.username, &trunk.password) else {
            return false;
        };
        if c.auth_tries >= 1 && !challenge.stale {
            return false;
        }
        if c.auth_tries >= 3 {
            return false;
        }
        let value = challenge.answer(user, pass, "INVITE", &c.request_uri, 1, &cnonce);
        let c = self.calls.get_mut(&id).expect("call checked above");
        c.auth_tries += 1;
        c.authorization = Some((answer_name, value));
        c.invite_cseq = c.cseq + 1;
        c.cseq = c.invite_cseq;
        c.invite_branch = branch.clone();
        c.provisional = false;
        let peer = c.dest;
        match c.invite(&self.local) {
            Ok(bytes) => {
                self.start_client(
                    now,
                    key(&branch, Method::Invite),
                    Owner::Invite(id),
                    peer,
                    bytes,
                );
                true
            }
            Err(_) => false,
        }
    }

    fn bye_response(&mut self, now: Time, id: u64, p: &Parsed) {
        let status = p.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        if (status == 401 || status == 407)
            && let Some(c) = self.calls.get_mut(&id)
            && c.auth_tries < 4
        {
            c.auth_tries = 4;
            let hdr = if status == 407 {
                "proxy-authenticate"
            } else {
                "www-authenticate"
            };
            let name = if status == 407 {
                "Proxy-Authorization"
            } else {
                "Authorization"
            };
            let trunk = &self.trunks[c.trunk].cfg;
            if let (Some(ch), Some(user), Some(pass)) = (
                p.values(hdr).find_map(|v| Challenge::parse(v).ok()),
                trunk.username.clone(),
                trunk.password.clone(),
            ) {
                let ruri = c
                    .remote_target
                    .clone()
                    .unwrap_or_else(|| c.request_uri.clone());
                let cnonce = self.token(16);
                let value = ch.answer(&user, &pass, "BYE", &ruri, 1, &cnonce);
                self.send_bye(now, id, Some((name, value)));
                return;
            }
        }
        self.forget(id);
    }

    fn on_request(&mut self, now: Time, from: Peer, p: Parsed) {
        let Some(method) = p.method() else { return };
        if method == Method::Ack {
            let k = match self.server.contains_key(&key(&p.branch, Method::Invite)) {
                true => Some(key(&p.branch, Method::Invite)),
                false => self.acks.get(&(p.call_id.clone(), p.cseq)).cloned(),
            };
            match k.and_then(|k| self.server.get_mut(&k)) {
                Some(s) => s.tx.on_ack(now, &self.timers),
                None => self.stats.unmatched += 1,
            }
            return;
        }
        let k = key(&p.branch, method);
        if let Some(s) = self.server.get(&k) {
            let resp = Bytes::copy_from_slice(s.tx.response());
            self.send(from, resp);
            return;
        }
        if method == Method::Cancel {
            let status = if self.server.contains_key(&key(&p.branch, Method::Invite)) {
                200
            } else {
                481
            };
            self.respond(now, from, &p, status, None, None);
            return;
        }
        if p.to_tag.is_some() {
            self.in_dialog_request(now, from, method, &p);
            return;
        }
        match method {
            Method::Options => {
                let b = message::response_to(&p, Some(&self.token(8)))
                    .header("Allow", call::ALLOW)
                    .header("Accept", "application/sdp");
                self.respond(now, from, &p, 200, Some(b), None);
            }
            // dialerd places calls; it does not take them.
            Method::Invite => self.respond(now, from, &p, 603, None, None),
            _ => {
                let b = message::response_to(&p, Some(&self.token(8))).header("Allow", call::ALLOW);
                self.respond(now, from, &p, 405, Some(b), None);
            }
        }
    }

    /// Send a final response and keep it in a server transaction.
    fn respond(
        &mut self,
        now: Time,
        from: Peer,
        p: &Parsed,
        status: u16,
        builder: Option<Builder>,
        call_tag: Option<&str>,
    ) {
        let builder = match builder {
            Some(b) => b,
            None => {
                let tag = call_tag.map_or_else(|| self.token(8), str::to_string);
                message::response_to(p, Some(&tag))
            }
        };
        let bytes = builder.response(status, reason(status));
        let method = p.method().unwrap_or(Method::Options);
        let kind = if method == Method::Invite {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let response = self.send(from, bytes);
        let tx = ServerTx::new(
            kind,
            from.transport.reliable(),
            response.to_vec(),
            now,
            &self.timers,
        );
        let k = key(&p.branch, method);
        if let Some(at) = tx.deadline() {
            self.schedule(at, Wake::Server(k.clone()));
        }
        if kind == Kind::Invite {
            self.acks.insert((p.call_id.clone(), p.cseq), k.clone());
        }
        self.server.insert(k, Served { tx, peer: from });
    }

    fn in_dialog_request(&mut self, now: Time, from: Peer, method: Method, p: &Parsed) {
        let id = self.by_call_id.get(&p.call_id).copied();
        let Some(c) = id.and_then(|id| self.calls.get_mut(&id)) else {
            self.respond(now, from, p, 481, None, None);
            return;
        };
        if p.to_tag.as_deref() != Some(c.local_tag.as_str()) {
            self.respond(now, from, p, 481, None, None);
            return;
        }
        let id = c.id;
        let tag = c.local_tag.clone();
        let base = || message::response_to(p, Some(&tag));
        match method {
            Method::Bye => {
                let (phase, rang) = (c.phase, c.rang);
                self.respond(now, from, p, 200, Some(base()), None);
                let outcome = match phase {
                    Phase::Inviting => CallOutcome::Failed(Outcome::Network),
                    _ => CallOutcome::Answered,
                };
                let end = End {
                    outcome,
                    status: None,
                    reason: "remote_bye",
                    rang,
                };
                self.end_call(now, id, end);
                self.forget(id);
            }
            Method::Invite | Method::Update => {
                let offer = (!p.body().is_empty()).then(|| sdp::parse(p.body()));
                match offer {
                    Some(Err(_)) => {
                        self.respond(now, from, p, 488, Some(base()), None);
                    }
                    Some(Ok(m)) => {
                        let held = m.direction.is_hold();
                        let changed = c.held != held;
                        c.held = held;
                        let body = c.answer_offer(&m);
                        let t = from.transport;
                        let b = base()
                            .header("Contact", self.local.contact(t))
                            .header("Allow", call::ALLOW)
                            .body("application/sdp", body);
                        self.respond(now, from, p, 200, Some(b), None);
                        if changed {
                            self.events.push_back(Event::Hold { call: id, held });
                        }
                    }
                    None => {
                        // A session refresh without an offer: answer with ours.
                        let t = from.transport;
                        let body = sdp::offer(
                            c.session_id,
                            c.sdp_version,
                            c.rtp,
                            sdp::Direction::SendRecv,
                        );
                        let mut b = base()
                            .header("Contact", self.local.contact(t))
                            .header("Allow", call::ALLOW);
                        if method == Method::Invite {
                            b = b.body("application/sdp", body);
                        }
                        self.respond(now, from, p, 200, Some(b), None);
                    }
                }
            }
            Method::Options | Method::Info | Method::Notify => {
                self.respond(now, from, p, 200, Some(base()), None);
            }
            _ => {
                self.respond(now, from, p, 501, Some(base()), None);
            }
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
            Some(Fired::TimedOut) => {
                self.client.remove(&k);
                self.client_timed_out(now, owner, &k);
            }
            Some(Fired::Done) => {
                self.client.remove(&k);
            }
            None => {}
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

    fn trunk_timer(&mut self, now: Time, i: usize) {
        let Some(t) = self.trunks.get(i) else { return };
        if t.next_ping.is_some_and(|at| at <= now) {
            self.ping(now, i);
        }
        if matches!(self.trunks[i].registration, Registration::Due(at) if at <= now) {
            self.register(now, i);
        }
        if let Some(at) = self.trunks[i].deadline() {
            self.schedule(at, Wake::Trunk(i));
        }
    }

    fn trunk_request(
        &mut self,
        i: usize,
        method: Method,
        branch: &str,
        cseq: u32,
        call_id: String,
    ) -> Builder {
        let t = &self.trunks[i];
        let user = t.cfg.username.clone().unwrap_or_else(|| "dialerd".into());
        let aor = format!("<sip:{user}@{}>", t.domain);
        let tag = self.token(8);
        let tp = self.trunks[i].peer.transport;
        Builder::new()
            .header("Via", self.local.via(tp, branch))
            .header("Max-Forwards", "70")
            .header("From", format!("{aor};tag={tag}"))
            .header("To", aor)
            .header("Call-ID", call_id)
            .header("CSeq", format!("{cseq} {method}"))
            .header("User-Agent", self.local.user_agent.clone())
    }

    fn ping(&mut self, now: Time, i: usize) {
        let interval = self.trunks[i].cfg.options_interval_s * 1000;
        self.trunks[i].next_ping = Some(later(now, interval));
        let branch = self.branch();
        self.trunks[i].register_cseq += 1;
        let cseq = self.trunks[i].register_cseq;
        let ruri = format!("sip:{}", self.trunks[i].domain);
        let peer = self.trunks[i].peer;
        let call_id = format!("{}@dialerd", self.token(16));
        match self
            .trunk_request(i, Method::Options, &branch, cseq, call_id)
            .request(Method::Options, &ruri)
        {
            Ok(bytes) => self.start_client(
                now,
                key(&branch, Method::Options),
                Owner::Options(i),
                peer,
                bytes,
            ),
            Err(e) => self.unmatched(peer, &format!("cannot build OPTIONS: {e}")),
        }
    }

    fn ping_result(&mut self, i: usize, ok: bool) {
        let t = &mut self.trunks[i];
        let state = match ok {
            true => t.answered().then_some(TrunkState::Up),
            false => t.failed().then_some(TrunkState::Down),
        };
        if let Some(state) = state {
            self.events.push_back(Event::Trunk { trunk: i, state });
        }
    }

    fn register(&mut self, now: Time, i: usize) {
        self.trunks[i].registration = Registration::Pending;
        let branch = self.branch();
        let cnonce = self.token(16);
        let t = &mut self.trunks[i];
        t.register_cseq += 1;
        let cseq = t.register_cseq;
        let ruri = format!("sip:{}", t.domain);
        let expires = t.cfg.register_expires_s;
        let auth = match (&t.challenge, &t.cfg.username, &t.cfg.password) {
            (Some(ch), Some(u), Some(p)) => {
                t.nonce_count += 1;
                Some(ch.answer(u, p, "REGISTER", &ruri, t.nonce_count, &cnonce))
            }
            _ => None,
        };
        let (peer, call_id) = (t.peer, t.register_call_id.clone());
        let mut b = self
            .trunk_request(i, Method::Register, &branch, cseq, call_id)
            .header("Contact", self.local.contact(peer.transport))
            .header("Expires", expires.to_string());
        if let Some(a) = auth {
            b.push("Authorization", a);
        }
        match b.request(Method::Register, &ruri) {
            Ok(bytes) => self.start_client(
                now,
                key(&branch, Method::Register),
                Owner::Register(i),
                peer,
                bytes,
            ),
            Err(e) => self.unmatched(peer, &format!("cannot build REGISTER: {e}")),
        }
    }

    fn register_response(&mut self, now: Time, i: usize, p: &Parsed) {
        let status = p.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        let t = &mut self.trunks[i];
        if (200..300).contains(&status) {
            let granted = p
                .values("contact")
                .find_map(|c| message::param(c, "expires"))
                .or_else(|| p.value("expires"))
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(t.cfg.register_expires_s)
                .max(1);
            // Refresh at 80 % of the granted time.
            t.registration = Registration::Due(later(now, u64::from(granted) * 800));
            let at = later(now, u64::from(granted) * 800);
            self.schedule(at, Wake::Trunk(i));
            self.events.push_back(Event::Trunk {
                trunk: i,
                state: TrunkState::Registered { expires_s: granted },
            });
            return;
        }
        if status == 401 || status == 407 {
            let hdr = if status == 407 {
                "proxy-authenticate"
            } else {
                "www-authenticate"
            };
            if let Some(ch) = p.values(hdr).find_map(|v| Challenge::parse(v).ok()) {
                let retry = t
                    .challenge
                    .as_ref()
                    .is_none_or(|old| ch.stale || old.nonce != ch.nonce)
                    && t.challenge.as_ref().is_none_or(|_| ch.stale);
                t.challenge = Some(ch);
                t.nonce_count = 0;
                if retry {
                    self.register(now, i);
                    return;
                }
            }
        }
        if status == 423
            && let Some(min) = p.value("min-expires").and_then(|v| v.parse::<u32>().ok())
        {
            t.cfg.register_expires_s = min;
            self.register(now, i);
            return;
        }
        self.registration_failed(now, i, Some(status));
    }

    fn registration_failed(&mut self, now: Time, i: usize, status: Option<u16>) {
        let t = &mut self.trunks[i];
        t.challenge = None;
        let at = later(now, 30_000);
        t.registration = Registration::Due(at);
        self.schedule(at, Wake::Trunk(i));
        self.events.push_back(Event::Trunk {
            trunk: i,
            state: TrunkState::RegistrationFailed { status },
        });
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
