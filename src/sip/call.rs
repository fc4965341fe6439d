//! One outgoing call: the INVITE and its dialog (RFC 3261 §12–§15).
//!
//! ```text
//!  Inviting --1xx--> (rang) --2xx--> Confirmed --BYE either way--> Closing --> gone
//!     |  ring timeout / cancel: CANCEL once a 1xx came (never before one)
//!     |--401/407--> ACK, INVITE again with credentials (CSeq+1, new branch)
//!     |--3xx-6xx--> ended (outcome from the status)
//!     |--2xx after CANCEL--> ACK, BYE, ended as the cancel's outcome (race)
//!     '--Timer B / transport error--> ended as network
//! ```
//!
//! This file builds the call's messages; [`super::ua`] decides when to send them.

use std::net::SocketAddr;

use rsip::Method;

use super::message::{self, Builder, Parsed};
use super::sdp::{self, Direction};
use super::{Peer, SipError, Transport};
use crate::time::Time;

/// What to dial.
#[derive(Clone, Debug)]
pub struct Dial {
    /// The caller's id for this call; events carry it.
    pub id: u64,
    /// Index of the trunk in the configuration.
    pub trunk: usize,
    /// A SIP URI, or a number sent as `sip:NUMBER@<trunk domain>`.
    pub target: String,
    /// The number presented (From, and P-Asserted-Identity when the trunk wants it).
    pub caller_id: String,
    pub display_name: Option<String>,
    /// Where we receive RTP.
    pub rtp: SocketAddr,
    /// How long to ring before CANCEL (raised to the 15 s minimum).
    pub ring_timeout_ms: u64,
}

/// Where the call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Inviting,
    Confirmed,
    /// Ended; a BYE may still be in flight.
    Closing,
}

/// Why we cancel an unanswered call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelWhy {
    RingTimeout,
    Request,
}

/// Our own addresses, for Via and Contact.
#[derive(Clone, Debug)]
pub struct Local {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub user_agent: String,
}

impl Local {
    pub fn addr(&self, t: Transport) -> SocketAddr {
        match t {
            Transport::Udp => self.udp.or(self.tcp),
            Transport::Tcp => self.tcp.or(self.udp),
        }
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
    }

    pub fn host_port(&self, t: Transport) -> String {
        host_port(self.addr(t))
    }

    pub fn contact(&self, t: Transport) -> String {
        let tp = match t {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
        };
        format!("<sip:dialerd@{}{tp}>", self.host_port(t))
    }

    pub fn via(&self, t: Transport, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            t.via(),
            self.host_port(t)
        )
    }
}

/// `ip:port`, with brackets for IPv6.
pub fn host_port(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// An outgoing call and its dialog.
#[derive(Debug)]
pub struct Call {
    pub id: u64,
    pub trunk: usize,
    pub phase: Phase,
    /// Where the INVITE went (the trunk).
    pub dest: Peer,
    pub call_id: String,
    pub from: String,
    pub local_tag: String,
    pub to: String,
    pub remote_tag: Option<String>,
    pub request_uri: String,
    /// The INVITE's CSeq and branch (they change when we answer a challenge).
    pub invite_cseq: u32,
    pub invite_branch: String,
    /// The last CSeq we used in this dialog.
    pub cseq: u32,
    pub remote_target: Option<String>,
    /// Record-Route of the 2xx, reversed (§12.1.2).
    pub route_set: Vec<String>,
    pub rtp: SocketAddr,
    pub session_id: u64,
    pub sdp_version: u64,
    pub asserted: Option<String>,
    /// Authorization header of the last INVITE, and its name.
    pub authorization: Option<(&'static str, String)>,
    pub auth_tries: u8,
    /// A BYE of this call was challenged and answered once already.
    pub bye_challenged: bool,
    pub rang: bool,
    pub provisional: bool,
    pub cancel: Option<CancelWhy>,
    pub cancel_sent: bool,
    /// When the ring timeout fires.
    pub ring_at: Time,
    /// After a CANCEL: when we stop waiting for the INVITE's final response.
    pub cancel_at: Option<Time>,
    pub started: Time,
    /// The far end has put us on hold.
    pub held: bool,
    /// `Ended` has been reported.
    pub ended: bool,
}

impl Call {
    pub fn new(
        d: &Dial,
        dest: Peer,
        domain: &str,
        asserted: bool,
        ids: (String, String, String),
        now: Time,
        ring_ms: u64,
    ) -> Result<Call, SipError> {
        let (call_id, tag, branch) = ids;
        let request_uri = if d.target.starts_with("sip:") || d.target.starts_with("sips:") {
            d.target.clone()
        } else {
            format!("sip:{}@{domain}", d.target)
        };
        message::check_uri(&request_uri)?;
        let who = format!("sip:{}@{domain}", d.caller_id);
        let from = match &d.display_name {
            Some(n) => format!("\"{}\" <{who}>;tag={tag}", n.replace('"', "")),
            None => format!("<{who}>;tag={tag}"),
        };
        Ok(Call {
            id: d.id,
            trunk: d.trunk,
            phase: Phase::Inviting,
            dest,
            call_id,
            to: format!("<{request_uri}>"),
            from,
            local_tag: tag,
            remote_tag: None,
            request_uri,
            invite_cseq: 1,
            invite_branch: branch,
            cseq: 1,
            remote_target: None,
            route_set: Vec::new(),
            rtp: d.rtp,
            session_id: d.id,
            sdp_version: 1,
            asserted: asserted.then(|| format!("<{who}>")),
            authorization: None,
            auth_tries: 0,
            bye_challenged: false,
            rang: false,
            provisional: false,
            cancel: None,
            cancel_sent: false,
            ring_at: now + std::time::Duration::from_millis(ring_ms),
            cancel_at: None,
            started: now,
            held: false,
            ended: false,
        })
    }

    fn base(&self, local: &Local, branch: &str, cseq: u32, method: Method, to: &str) -> Builder {
        let t = self.dest.transport;
        Builder::new()
            .header("Via", local.via(t, branch))
            .header("Max-Forwards", "70")
            .header("From", self.from.as_str())
            .header("To", to)
            .header("Call-ID", self.call_id.as_str())
            .header("CSeq", format!("{cseq} {method}"))
    }

    /// The INVITE (again, after a challenge: with the current CSeq and branch).
    pub fn invite(&self, local: &Local) -> Result<Vec<u8>, SipError> {
        let t = self.dest.transport;
        let mut b = self
            .base(
                local,
                &self.invite_branch,
                self.invite_cseq,
                Method::Invite,
                &self.to,
            )
            .header("Contact", local.contact(t))
            .header("Allow", ALLOW)
            .header("User-Agent", local.user_agent.as_str());
        if let Some(pai) = &self.asserted {
            b.push("P-Asserted-Identity", pai.as_str());
        }
        if let Some((name, value)) = &self.authorization {
            b.push(name, value.as_str());
        }
        let body = sdp::offer(
            self.session_id,
            self.sdp_version,
            self.rtp,
            Direction::SendRecv,
        );
        b.body("application/sdp", body)
            .request(Method::Invite, &self.request_uri)
    }

    /// ACK for a non-2xx final response: same branch, the response's To (§17.1.1.3).
    pub fn ack_failure(&self, local: &Local, resp: &Parsed) -> Result<Vec<u8>, SipError> {
        let to = resp.value("to").unwrap_or(&self.to);
        self.base(
            local,
            &self.invite_branch,
            self.invite_cseq,
            Method::Ack,
            to,
        )
        .request(Method::Ack, &self.request_uri)
    }

    /// CANCEL for the pending INVITE (§9.1).
    pub fn cancel_request(&self, local: &Local) -> Result<Vec<u8>, SipError> {
        self.base(
            local,
            &self.invite_branch,
            self.invite_cseq,
            Method::Cancel,
            &self.to,
        )
        .request(Method::Cancel, &self.request_uri)
    }

    /// Take the dialog's state from a 2xx to the INVITE (§12.1.2).
    pub fn confirm(&mut self, resp: &Parsed) {
        self.remote_tag = resp.to_tag.clone();
        self.remote_target = resp
            .value("contact")
            .map(|c| message::uri_of(c).to_string());
        let mut routes: Vec<String> = resp.values("record-route").map(str::to_string).collect();
        routes.reverse();
        self.route_set = routes;
    }

    fn dialog_to(&self) -> String {
        match &self.remote_tag {
            Some(tag) => format!("{};tag={tag}", self.to),
            None => self.to.clone(),
        }
    }

    /// Where in-dialog requests go: the first route if any (loose routing), else the
    /// remote target; hosts that are not IP literals fall back to the trunk.
    pub fn dialog_peer(&self) -> Peer {
        let next = self
            .route_set
            .first()
            .map(|r| message::uri_of(r))
            .or(self.remote_target.as_deref());
        let addr = next.and_then(message::uri_addr).unwrap_or(self.dest.addr);
        Peer {
            transport: self.dest.transport,
            addr,
        }
    }

    /// An in-dialog request (ACK for a 2xx, BYE): remote target as Request-URI,
    /// route set as Route headers.
    pub fn in_dialog(
        &self,
        local: &Local,
        method: Method,
        branch: &str,
        cseq: u32,
        extra: Option<&(&'static str, String)>,
    ) -> Result<Vec<u8>, SipError> {
        let ruri = self.remote_target.as_deref().unwrap_or(&self.request_uri);
        let mut b = self.base(local, branch, cseq, method, &self.dialog_to());
        for r in &self.route_set {
            b.push("Route", r.as_str());
        }
        if let Some((name, value)) = extra {
            b.push(name, value.as_str());
        }
        if method == Method::Bye {
            b.push("User-Agent", local.user_agent.as_str());
        }
        b.request(method, ruri)
    }

    /// Our answer to a re-INVITE or UPDATE offer: same address, direction answered,
    /// session version bumped.
    pub fn answer_offer(&mut self, offer: &sdp::Media) -> Vec<u8> {
        self.sdp_version += 1;
        sdp::offer(
            self.session_id,
            self.sdp_version,
            self.rtp,
            offer.direction.answer(),
        )
    }
}

/// The methods we take inside a dialog.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, NOTIFY";

/// ACK and BYE for a 2xx that has no call any more (a fork, or a 200 after we gave
/// up): built from the response alone (§13.2.2.4).
pub fn ack_and_bye_stray(
    local: &Local,
    from: Peer,
    resp: &Parsed,
    branches: (&str, &str),
) -> Result<(Vec<u8>, Vec<u8>, Peer), SipError> {
    let target = resp
        .value("contact")
        .map(message::uri_of)
        .ok_or(SipError::MissingHeader { name: "contact" })?;
    let mut routes: Vec<&str> = resp.values("record-route").collect();
    routes.reverse();
    let peer = Peer {
        transport: from.transport,
        addr: routes
            .first()
            .map(|r| message::uri_of(r))
            .and_then(message::uri_addr)
            .or_else(|| message::uri_addr(target))
            .unwrap_or(from.addr),
    };
    let build = |method: Method, branch: &str, cseq: u32| {
        let mut b = Builder::new()
            .header("Via", local.via(from.transport, branch))
            .header("Max-Forwards", "70")
            .header("From", resp.value("from").unwrap_or_default())
            .header("To", resp.value("to").unwrap_or_default())
            .header("Call-ID", resp.call_id.as_str())
            .header("CSeq", format!("{cseq} {method}"));
        for r in &routes {
            b.push("Route", *r);
        }
        b.request(method, target)
    };
    let ack = build(Method::Ack, branches.0, resp.cseq)?;
    let bye = build(Method::Bye, branches.1, resp.cseq + 1)?;
    Ok((ack, bye, peer))
}
