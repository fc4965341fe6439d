//! Call outcomes with stable string codes.
//!
//! Reports, CDRs, control-socket events and metrics all use these codes; they never
//! change meaning once published.

use serde::{Deserialize, Serialize};

/// How a call attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A person answered and was connected to an agent.
    Connected,
    /// A person answered and was not connected to an agent within the allowed wait.
    Abandoned,
    /// An answering machine answered (AMD verdict), and the call was hung up.
    Machine,
    /// The line was busy (SIP 486, 600).
    Busy,
    /// Nobody answered before the ring timeout (or SIP 480, 408 after ringing).
    NoAnswer,
    /// The number does not exist (SIP 404, 484, 604).
    InvalidNumber,
    /// The far end refused the call (SIP 403, 603, 488).
    Rejected,
    /// Trunk or network failure (SIP 5xx, timeout before any response, transport
    /// error). Never consumes a lead's attempt.
    Network,
    /// We ended the call before it was answered for a reason other than the ring
    /// timeout (campaign stopped, shutdown).
    Canceled,
}

impl Outcome {
    /// The stable code used in reports, CDRs and events.
    pub const fn code(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::Abandoned => "abandoned",
            Outcome::Machine => "machine",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::InvalidNumber => "invalid_number",
            Outcome::Rejected => "rejected",
            Outcome::Network => "network",
            Outcome::Canceled => "canceled",
        }
    }

    /// Classify a final SIP response status into an outcome (2xx is `Connected` only
    /// once an agent takes the call, so it is not mapped here).
    pub fn from_sip_status(status: u16, rang: bool) -> Option<Outcome> {
        Some(match status {
            486 | 600 => Outcome::Busy,
            480 => Outcome::NoAnswer,
            408 if rang => Outcome::NoAnswer,
            404 | 484 | 604 => Outcome::InvalidNumber,
            403 | 603 | 488 => Outcome::Rejected,
            487 => Outcome::Canceled,
            408 | 500..=599 => Outcome::Network,
            400..=499 => Outcome::Rejected,
            _ => return None,
        })
    }

    /// Whether this outcome counts as an attempt on the lead (network failures do not).
    pub const fn consumes_attempt(self) -> bool {
        !matches!(self, Outcome::Network | Outcome::Canceled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_statuses_classify() {
        assert_eq!(Outcome::from_sip_status(486, false), Some(Outcome::Busy));
        assert_eq!(Outcome::from_sip_status(600, false), Some(Outcome::Busy));
        assert_eq!(Outcome::from_sip_status(408, true), Some(Outcome::NoAnswer));
        assert_eq!(Outcome::from_sip_status(408, false), Some(Outcome::Network));
        assert_eq!(
            Outcome::from_sip_status(404, false),
            Some(Outcome::InvalidNumber)
        );
        assert_eq!(
            Outcome::from_sip_status(603, false),
            Some(Outcome::Rejected)
        );
        assert_eq!(Outcome::from_sip_status(503, false), Some(Outcome::Network));
        assert_eq!(Outcome::from_sip_status(200, false), None);
        assert!(!Outcome::Network.consumes_attempt());
        assert!(Outcome::Busy.consumes_attempt());
    }

    #[test]
    fn codes_are_stable() {
        let json = serde_json::to_string(&Outcome::NoAnswer).unwrap();
        assert_eq!(json, "\"no_answer\"");
        assert_eq!(Outcome::NoAnswer.code(), "no_answer");
    }
}
