//! The SIP user agent: dialerd originates calls itself, over UDP or TCP, IPv4 or IPv6.
//!
//! The protocol lives in sans-IO cores that take `now` and bytes and hand back bytes
//! to send, events and their next deadline; [`transport`] is the tokio shell that
//! moves the bytes. rsip provides the message types.
//!
//! | file | owns |
//! |---|---|
//! | [`message`] | parsing (compact forms, lists), stream framing, building messages |
//! | [`sdp`] | our audio offer and reading the answer |
//! | [`auth`] | digest challenges and answers (MD5, qop=auth) |
//! | [`transaction`] | RFC 3261 client and server transactions with their timers |
//! | [`call`] | one outgoing call: its INVITE, dialog, CANCEL, ACK, BYE |
//! | [`trunk`] | a trunk's limits, health (OPTIONS) and registration |
//! | [`ua`] | the user agent: routes messages to transactions, calls and trunks (`ua/responses.rs`: answers to our requests; `ua/server.rs`: requests from the far end; `ua/trunks.rs`: pings and registration) |
//! | [`transport`] | UDP and TCP sockets driving a [`ua::UserAgent`] |
//! | [`config`] | the `[sip]` configuration |
//! | [`load`] | `dialerd call`: place calls through a trunk and report |

pub mod auth;
pub mod call;
pub mod config;
pub mod load;
pub mod message;
pub mod sdp;
#[cfg(test)]
mod tests;
pub mod transaction;
pub mod transport;
pub mod trunk;
pub mod ua;

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;
use crate::time::Time;

pub use config::{SipConfig, TrunkConfig};
pub use ua::UserAgent;

/// Why a message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error("malformed message: {reason}")]
    Malformed { reason: String },
    #[error("message of {len} bytes is too large")]
    TooLarge { len: usize },
    #[error("missing {name} header")]
    MissingHeader { name: &'static str },
    #[error("bad {name} header")]
    BadHeader { name: &'static str },
    #[error("body shorter than Content-Length")]
    Truncated,
    #[error("bad URI {uri}")]
    BadUri { uri: String },
}

/// A SIP transport.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

impl Transport {
    /// Whether the transport retransmits for us (no Timer A/E/G).
    pub const fn reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    pub const fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// A remote end: transport and address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Bytes to send.
#[derive(Clone, Debug)]
pub struct Transmit {
    pub to: Peer,
    pub bytes: bytes::Bytes,
}

/// How a call attempt ended, with the stable codes of [`Outcome`] plus `answered`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Answered,
    Failed(Outcome),
}

impl CallOutcome {
    pub const fn code(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Failed(o) => o.code(),
        }
    }
}

/// Why and how a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    pub outcome: CallOutcome,
    /// The final SIP status that decided it, when there was one.
    pub status: Option<u16>,
    /// What happened, in a word: `remote_bye`, `local_bye`, `ring_timeout`,
    /// `final_response`, `no_response`, `answered_after_cancel`, `transport`, …
    pub reason: &'static str,
    /// The far end rang (180/183) before the end.
    pub rang: bool,
}

/// What the user agent reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// 180 or 183 (first one only).
    Ringing { call: u64, status: u16, at: Time },
    /// 200 OK to the INVITE, ACKed.
    Answered {
        call: u64,
        media: Option<sdp::Media>,
        at: Time,
    },
    /// The far end put the call on hold (or took it off) with a re-INVITE or UPDATE.
    Hold { call: u64, held: bool },
    /// The call is over. Emitted once per call.
    Ended { call: u64, end: End, at: Time },
    /// A trunk went up or down, registered or failed to.
    Trunk { trunk: usize, state: TrunkState },
    /// A message was dropped: malformed, or nothing we could match it to.
    Dropped { from: Peer, reason: String },
}

/// A trunk's state change.
#[derive(Clone, Debug, PartialEq)]
pub enum TrunkState {
    Up,
    Down,
    /// 503 with Retry-After: no new calls until then.
    Paused {
        until: Time,
    },
    Registered {
        expires_s: u32,
    },
    RegistrationFailed {
        status: Option<u16>,
    },
}
