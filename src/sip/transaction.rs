//! RFC 3261 §17 transactions as sans-IO state machines: a request (or response) goes
//! in with `now`, the caller asks what to send and when to wake up next.
//!
//! Client transactions (we sent the request):
//!
//! ```text
//!  INVITE (§17.1.1, RFC 6026)              non-INVITE (§17.1.2)
//!
//!  Calling --1xx--> Proceeding              Trying --1xx--> Proceeding
//!    |  A: resend (UDP), T1, 2T1, 4T1 …      |  E: resend (UDP), T1 … T2   | E: T2
//!    |  B: 64*T1 -> TimedOut                 |  F: 64*T1 -> TimedOut       | F
//!    |--2xx--> Accepted  (M: 64*T1, 2xx      |--final--> Completed (K: T4 UDP, 0 TCP)
//!    |          retransmissions get the ACK  |            absorbs retransmissions
//!    |          again)                       v
//!    |--300-699--> Completed (ACK sent,     Terminated
//!    |          D: 32 s UDP / 0 TCP, a
//!    v          resent final gets the ACK)
//!  Terminated
//! ```
//!
//! Server transactions (the far end sent the request) answer at once, so they only
//! keep the response: a retransmitted request gets it again; an INVITE's response is
//! resent over UDP (T1 doubling to T2) until the ACK, for at most 64*T1.

use std::time::Duration;

use crate::time::Time;

/// RFC 3261's timer base values, in milliseconds (§17.1.1.1; defaults 500, 4000, 5000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub t1: u64,
    pub t2: u64,
    pub t4: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: 500,
            t2: 4000,
            t4: 5000,
        }
    }
}

impl Timers {
    /// Timer B, F, H, J and M: 64*T1.
    pub const fn transaction_timeout(&self) -> u64 {
        64 * self.t1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invite,
    NonInvite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE "Calling" or non-INVITE "Trying": no response yet.
    Calling,
    Proceeding,
    /// INVITE only: a 2xx arrived (RFC 6026).
    Accepted,
    Completed,
    Terminated,
}

/// What the caller does with a response the transaction was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    /// Pass it up (to the call or registration).
    Deliver,
    /// A retransmission the transaction has already handled: drop it.
    Absorb,
    /// A retransmitted final response: send the stored ACK again.
    ResendAck,
}

/// What a timer asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired {
    /// Send the request again (UDP).
    Retransmit,
    /// No final response in time (Timer B or F).
    TimedOut,
    /// The transaction is over and can be forgotten.
    Done,
}

/// A client transaction.
#[derive(Debug)]
pub struct ClientTx {
    kind: Kind,
    state: ClientState,
    reliable: bool,
    /// The ACK for a non-2xx final response (same branch), or for the 2xx (new
    /// branch, end to end) once the call has sent it; resent on retransmissions.
    ack: Option<Vec<u8>>,
    /// The To tag of the accepted 2xx: a 2xx with another tag is a fork.
    accepted_tag: Option<String>,
    retransmit_at: Option<Time>,
    interval: u64,
    timeout_at: Option<Time>,
    /// How many times the request was sent again.
    pub retransmissions: u32,
}

impl ClientTx {
    /// A transaction whose request has just been sent.
    pub fn new(kind: Kind, reliable: bool, now: Time, t: &Timers) -> Self {
        ClientTx {
            kind,
            state: ClientState::Calling,
            reliable,
            ack: None,
            accepted_tag: None,
            retransmit_at: (!reliable).then(|| now + Duration::from_millis(t.t1)),
            interval: t.t1,
            timeout_at: Some(now + Duration::from_millis(t.transaction_timeout())),
            retransmissions: 0,
        }
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The ACK to send (again) for a final response.
    pub fn ack(&self) -> Option<&[u8]> {
        self.ack.as_deref()
    }

    /// Store the ACK sent for the final response, to answer its retransmissions.
    pub fn set_ack(&mut self, ack: Vec<u8>) {
        self.ack = Some(ack);
    }

    /// The earliest time this transaction needs `on_timeout`.
    pub fn deadline(&self) -> Option<Time> {
        match (self.retransmit_at, self.timeout_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A response matched to this transaction (by branch and CSeq method).
    pub fn on_response(&mut self, status: u16, to_tag: Option<&str>, now: Time, t: &Timers) -> Rx {
        use ClientState::*;
        let provisional = status < 200;
        match (self.kind, self.state) {
            (_, Terminated) => Rx::Absorb,
            (Kind::Invite, Calling | Proceeding) if provisional => {
                self.state = Proceeding;
                self.retransmit_at = None;
                self.timeout_at = None;
                Rx::Deliver
            }
            (Kind::Invite, Calling | Proceeding) if status < 300 => {
                self.state = Accepted;
                self.accepted_tag = to_tag.map(str::to_string);
                self.retransmit_at = None;
                self.timeout_at = Some(now + Duration::from_millis(t.transaction_timeout()));
                Rx::Deliver
            }
            (Kind::Invite, Calling | Proceeding) => {
                self.state = Completed;
                self.retransmit_at = None;
                let d = if self.reliable {
                    0
                } else {
                    32_000.max(t.transaction_timeout() / 2)
                };
                self.timeout_at = Some(now + Duration::from_millis(d));
                Rx::Deliver
            }
            (Kind::Invite, Accepted) if (200..300).contains(&status) => {
                if self.ack.is_some() && to_tag == self.accepted_tag.as_deref() {
                    Rx::ResendAck
                } else {
                    Rx::Deliver
                }
            }
            (Kind::Invite, Completed) if status >= 300 => Rx::ResendAck,
            (Kind::Invite, _) => Rx::Absorb,
            (Kind::NonInvite, Calling | Proceeding) if provisional => {
                self.state = Proceeding;
                if !self.reliable {
                    self.interval = t.t2;
                    self.retransmit_at = Some(now + Duration::from_millis(t.t2));
                }
                Rx::Deliver
            }
            (Kind::NonInvite, Calling | Proceeding) => {
                self.state = Completed;
                self.retransmit_at = None;
                let k = if self.reliable { 0 } else { t.t4 };
                self.timeout_at = Some(now + Duration::from_millis(k));
                Rx::Deliver
            }
            (Kind::NonInvite, _) => Rx::Absorb,
        }
    }

    /// Run the timers that are due at `now`.
    pub fn on_timeout(&mut self, now: Time, t: &Timers) -> Option<Fired> {
        if let Some(at) = self.timeout_at
            && at <= now
        {
            let timed_out = matches!(self.state, ClientState::Calling | ClientState::Proceeding);
            self.state = ClientState::Terminated;
            self.retransmit_at = None;
            self.timeout_at = None;
            return Some(if timed_out {
                Fired::TimedOut
            } else {
                Fired::Done
            });
        }
        if let Some(at) = self.retransmit_at
            && at <= now
        {
            self.interval = match self.kind {
                Kind::Invite => self.interval * 2,
                Kind::NonInvite => (self.interval * 2).min(t.t2),
            };
            self.retransmit_at = Some(now + Duration::from_millis(self.interval));
            self.retransmissions += 1;
            return Some(Fired::Retransmit);
        }
        None
    }
}

/// A server transaction: the response we gave, resent on retransmissions.
#[derive(Debug)]
pub struct ServerTx {
    kind: Kind,
    reliable: bool,
    response: Vec<u8>,
    acked: bool,
    retransmit_at: Option<Time>,
    interval: u64,
    expires_at: Time,
    /// How many times the response was sent again.
    pub retransmissions: u32,
}

impl ServerTx {
    /// A transaction whose final response has just been sent.
    pub fn new(kind: Kind, reliable: bool, response: Vec<u8>, now: Time, t: &Timers) -> Self {
        let resend = kind == Kind::Invite && !reliable;
        let linger = if reliable && kind == Kind::NonInvite {
            0
        } else {
            t.transaction_timeout()
        };
        ServerTx {
            kind,
            reliable,
            response,
            acked: false,
            retransmit_at: resend.then(|| now + Duration::from_millis(t.t1)),
            interval: t.t1,
            expires_at: now + Duration::from_millis(linger),
            retransmissions: 0,
        }
    }

    /// The response to send again for a retransmitted request.
    pub fn response(&self) -> &[u8] {
        &self.response
    }

    /// The ACK for an INVITE response arrived: stop resending, linger T4 to absorb
    /// the ACK's own retransmissions.
    pub fn on_ack(&mut self, now: Time, t: &Timers) {
        if !self.acked {
            self.acked = true;
            self.retransmit_at = None;
            let i = if self.reliable { 0 } else { t.t4 };
            self.expires_at = self.expires_at.min(now + Duration::from_millis(i));
        }
    }

    /// Whether the ACK arrived (always true for non-INVITE).
    pub fn acked(&self) -> bool {
        self.acked || self.kind == Kind::NonInvite
    }

    pub fn deadline(&self) -> Option<Time> {
        Some(
            self.retransmit_at
                .map_or(self.expires_at, |r| r.min(self.expires_at)),
        )
    }

    pub fn on_timeout(&mut self, now: Time, t: &Timers) -> Option<Fired> {
        if self.expires_at <= now {
            self.retransmit_at = None;
            return Some(Fired::Done);
        }
        if let Some(at) = self.retransmit_at
            && at <= now
        {
            self.interval = (self.interval * 2).min(t.t2);
            self.retransmit_at = Some(now + Duration::from_millis(self.interval));
            self.retransmissions += 1;
            return Some(Fired::Retransmit);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    /// Step a client transaction through its wake-ups until `until`, collecting what fired.
    fn run(tx: &mut ClientTx, until: u64, t: &Timers) -> Vec<(u64, Fired)> {
        let mut out = Vec::new();
        for _ in 0..100 {
            let Some(d) = tx.deadline() else { break };
            if d.as_millis() > until {
                break;
            }
            if let Some(f) = tx.on_timeout(d, t) {
                out.push((d.as_millis(), f));
            }
        }
        out
    }

    #[test]
    fn invite_over_udp_doubles_timer_a_until_timer_b() {
        let t = Timers::default();
        let mut tx = ClientTx::new(Kind::Invite, false, at(0), &t);
        let fired = run(&mut tx, 40_000, &t);
        let resends: Vec<u64> = fired
            .iter()
            .filter(|(_, f)| *f == Fired::Retransmit)
            .map(|(ms, _)| *ms)
            .collect();
        assert_eq!(resends, [500, 1500, 3500, 7500, 15_500, 31_500]);
        assert_eq!(fired.last(), Some(&(32_000, Fired::TimedOut)));
        assert_eq!(tx.state(), ClientState::Terminated);
    }

    #[test]
    fn invite_provisional_stops_timers_and_final_needs_ack() {
        let t = Timers::default();
        let mut tx = ClientTx::new(Kind::Invite, false, at(0), &t);
        assert_eq!(tx.on_response(180, Some("a"), at(100), &t), Rx::Deliver);
        assert_eq!(tx.deadline(), None, "no timer while ringing");
        assert_eq!(tx.on_response(486, Some("a"), at(200), &t), Rx::Deliver);
        tx.set_ack(b"ACK".to_vec());
        assert_eq!(tx.on_response(486, Some("a"), at(300), &t), Rx::ResendAck);
        assert_eq!(run(&mut tx, 100_000, &t), [(32_200, Fired::Done)]);
    }

    #[test]
    fn invite_2xx_is_accepted_and_forks_are_delivered() {
        let t = Timers::default();
        let mut tx = ClientTx::new(Kind::Invite, true, at(0), &t);
        assert_eq!(tx.deadline(), Some(at(32_000)), "no Timer A over TCP");
        assert_eq!(tx.on_response(200, Some("a"), at(10), &t), Rx::Deliver);
        assert_eq!(tx.on_response(200, Some("a"), at(20), &t), Rx::Deliver);
        tx.set_ack(b"ACK".to_vec());
        assert_eq!(tx.on_response(200, Some("a"), at(30), &t), Rx::ResendAck);
        assert_eq!(tx.on_response(200, Some("b"), at(40), &t), Rx::Deliver);
        assert_eq!(tx.on_response(180, Some("a"), at(50), &t), Rx::Absorb);
    }

    #[test]
    fn non_invite_caps_at_t2_and_times_out() {
        let t = Timers::default();
        let mut tx = ClientTx::new(Kind::NonInvite, false, at(0), &t);
        let fired = run(&mut tx, 40_000, &t);
        let resends: Vec<u64> = fired.iter().map(|(ms, _)| *ms).take(7).collect();
        assert_eq!(resends, [500, 1500, 3500, 7500, 11_500, 15_500, 19_500]);
        assert_eq!(fired.last(), Some(&(32_000, Fired::TimedOut)));

        let mut tx = ClientTx::new(Kind::NonInvite, false, at(0), &t);
        assert_eq!(tx.on_response(200, None, at(700), &t), Rx::Deliver);
        assert_eq!(tx.on_response(200, None, at(800), &t), Rx::Absorb);
        assert_eq!(run(&mut tx, 100_000, &t), [(5_700, Fired::Done)]);
    }

    #[test]
    fn server_invite_resends_until_ack() {
        let t = Timers::default();
        let mut tx = ServerTx::new(Kind::Invite, false, b"200".to_vec(), at(0), &t);
        assert_eq!(tx.on_timeout(at(500), &t), Some(Fired::Retransmit));
        assert_eq!(tx.on_timeout(at(1500), &t), Some(Fired::Retransmit));
        assert!(!tx.acked());
        tx.on_ack(at(1600), &t);
        assert!(tx.acked());
        assert_eq!(tx.deadline(), Some(at(6600)));
        assert_eq!(tx.on_timeout(at(6600), &t), Some(Fired::Done));

        let mut bye = ServerTx::new(Kind::NonInvite, true, b"200".to_vec(), at(0), &t);
        assert_eq!(
            bye.on_timeout(at(0), &t),
            Some(Fired::Done),
            "TCP: no Timer J"
        );
    }
}
