//! What happens to a lead after a call and after an agent's disposition: retry rules
//! per outcome, the abandon lockout, callbacks, final states.

use serde::{Deserialize, Serialize};

use super::lead::{Lead, LeadState};
use crate::config::ConfigError;
use crate::ids::AgentId;
use crate::outcome::Outcome;
use crate::time::{Time, secs};

/// When to call again after one outcome, and how many attempts in all.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Minutes before the next attempt.
    pub delay_min: f64,
    /// Attempts after which the lead is closed as `max_attempts`.
    pub max_attempts: u32,
}

/// Retry rules per outcome. Network failures never consume an attempt, so their
/// `max_attempts` is not used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryRules {
    pub busy: Retry,
    pub no_answer: Retry,
    pub machine: Retry,
    pub network: Retry,
    /// After an abandoned call; the delay is never shorter than the abandon lockout.
    pub abandoned: Retry,
}

impl Default for RetryRules {
    fn default() -> Self {
        let r = |delay_min, max_attempts| Retry {
            delay_min,
            max_attempts,
        };
        RetryRules {
            busy: r(15.0, 6),
            no_answer: r(120.0, 6),
            machine: r(240.0, 4),
            network: r(5.0, 0),
            abandoned: r(0.0, 4),
        }
    }
}

impl RetryRules {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, r, needs_max) in [
            ("retry.busy", self.busy, true),
            ("retry.no_answer", self.no_answer, true),
            ("retry.machine", self.machine, true),
            ("retry.network", self.network, false),
            ("retry.abandoned", self.abandoned, true),
        ] {
            if !(r.delay_min >= 0.0 && r.delay_min <= 60.0 * 24.0 * 365.0) {
                return Err(ConfigError::Invalid {
                    field,
                    why: format!("delay_min {} is outside 0..=525600", r.delay_min),
                });
            }
            if needs_max && r.max_attempts == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    why: "max_attempts must be at least 1".into(),
                });
            }
        }
        if self.network.delay_min < 1.0 {
            return Err(ConfigError::Invalid {
                field: "retry.network",
                why: "delay_min must be at least 1: a failing trunk is not hammered".into(),
            });
        }
        Ok(())
    }
}

/// Dispositions with a meaning to the dialer; campaigns may list others.
pub const CALLBACK: &str = "callback";
pub const DNC: &str = "dnc";
pub const WRONG_NUMBER: &str = "wrong_number";

fn after(now: Time, minutes: f64) -> Time {
    now + secs(minutes * 60.0)
}

/// Move `lead` on after a call ended with `outcome` at `now`.
pub fn after_call(
    lead: &mut Lead,
    outcome: Outcome,
    rules: &RetryRules,
    lockout_h: f64,
    now: Time,
) {
    if outcome.consumes_attempt() {
        lead.attempts += 1;
    }
    lead.last_outcome = Some(outcome);
    lead.agent = None;
    let retry = |lead: &mut Lead, r: Retry, earliest: Time| {
        if lead.attempts >= r.max_attempts {
            lead.state = LeadState::MaxAttempts;
            lead.due_at = None;
        } else {
            lead.state = LeadState::Due;
            lead.due_at = Some(after(now, r.delay_min).max(earliest));
        }
    };
    match outcome {
        Outcome::Connected => {
            lead.state = LeadState::Done;
            lead.due_at = None;
        }
        Outcome::Abandoned => {
            let until = after(now, lockout_h * 60.0);
            lead.locked_until = Some(until);
            retry(lead, rules.abandoned, until);
        }
        Outcome::Busy => retry(lead, rules.busy, now),
        Outcome::NoAnswer => retry(lead, rules.no_answer, now),
        Outcome::Machine => retry(lead, rules.machine, now),
        Outcome::Network => {
            lead.state = LeadState::Due;
            lead.due_at = Some(after(now, rules.network.delay_min));
        }
        Outcome::Canceled => {
            lead.state = LeadState::Due;
            lead.due_at = Some(now);
        }
        Outcome::InvalidNumber => {
            lead.state = LeadState::Invalid;
            lead.due_at = None;
        }
        Outcome::Rejected => {
            lead.state = LeadState::Done;
            lead.due_at = None;
        }
    }
}

/// A callback an agent asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Callback {
    pub at: Time,
    /// Reserve the call for this agent.
    pub agent: Option<AgentId>,
}

/// Move `lead` on after an agent's disposition `code`.
pub fn after_disposition(
    lead: &mut Lead,
    code: &str,
    callback: Option<Callback>,
    rules: &RetryRules,
    now: Time,
) {
    lead.disposition = Some(code.to_owned());
    match (code, callback) {
        (_, Some(cb)) => {
            lead.state = LeadState::Due;
            lead.due_at = Some(cb.at.max(now));
            lead.agent = cb.agent;
        }
        (DNC, _) => {
            lead.state = LeadState::Dnc;
            lead.due_at = None;
        }
        (WRONG_NUMBER, _) => {
            lead.state = LeadState::Invalid;
            lead.due_at = None;
        }
        (crate::engine::MACHINE_DISPOSITION, _) => {
            // AMD let a machine through: retry as a machine (the attempt is counted).
            lead.last_outcome = Some(Outcome::Machine);
            if lead.attempts >= rules.machine.max_attempts {
                lead.state = LeadState::MaxAttempts;
                lead.due_at = None;
            } else {
                lead.state = LeadState::Due;
                lead.due_at = Some(after(now, rules.machine.delay_min));
            }
        }
        _ => {
            lead.state = LeadState::Done;
            lead.due_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CampaignId, LeadId};

    fn lead() -> Lead {
        Lead {
            id: LeadId(1),
            campaign: CampaignId(1),
            number: "+442079460123".into(),
            fields: Default::default(),
            priority: 5,
            time_zone: "Europe/London".into(),
            state: LeadState::Dialing,
            due_at: None,
            attempts: 0,
            last_outcome: None,
            last_call: None,
            disposition: None,
            agent: None,
            locked_until: None,
            created_at: Time(0),
        }
    }

    const MIN: u64 = 60_000;

    #[test]
    fn outcomes_follow_their_rules() {
        let rules = RetryRules::default();
        let now = Time(1_000 * MIN);
        let mut l = lead();
        after_call(&mut l, Outcome::Busy, &rules, 72.0, now);
        assert_eq!((l.state, l.attempts), (LeadState::Due, 1));
        assert_eq!(l.due_at, Some(Time(1_015 * MIN)));
        // Network failures are retried but never use up an attempt.
        for _ in 0..20 {
            after_call(&mut l, Outcome::Network, &rules, 72.0, now);
        }
        assert_eq!((l.state, l.attempts), (LeadState::Due, 1));
        assert_eq!(l.due_at, Some(Time(1_005 * MIN)));
        for _ in 1..rules.busy.max_attempts {
            after_call(&mut l, Outcome::Busy, &rules, 72.0, now);
        }
        assert_eq!(l.state, LeadState::MaxAttempts);
        assert_eq!(l.due_at, None);
    }

    #[test]
    fn an_abandoned_lead_is_locked_out() {
        let rules = RetryRules::default();
        let now = Time(1_000 * MIN);
        let mut l = lead();
        after_call(&mut l, Outcome::Abandoned, &rules, 72.0, now);
        assert_eq!(l.state, LeadState::Due);
        assert_eq!(l.due_at, Some(Time((1_000 + 72 * 60) * MIN)));
        assert_eq!(l.locked_until, l.due_at);
    }

    #[test]
    fn dispositions_close_or_reschedule() {
        let rules = RetryRules::default();
        let now = Time(1_000 * MIN);
        let mut l = lead();
        after_call(&mut l, Outcome::Connected, &rules, 72.0, now);
        assert_eq!(l.state, LeadState::Done);
        after_disposition(
            &mut l,
            CALLBACK,
            Some(Callback {
                at: Time(2_000 * MIN),
                agent: Some(AgentId(7)),
            }),
            &rules,
            now,
        );
        assert_eq!(
            (l.state, l.due_at, l.agent),
            (LeadState::Due, Some(Time(2_000 * MIN)), Some(AgentId(7)))
        );
        after_disposition(&mut l, DNC, None, &rules, now);
        assert_eq!(l.state, LeadState::Dnc);
        after_disposition(&mut l, "sale", None, &rules, now);
        assert_eq!(
            (l.state, l.disposition.as_deref()),
            (LeadState::Done, Some("sale"))
        );
        assert!(RetryRules::default().validate().is_ok());
        let bad = RetryRules {
            network: Retry {
                delay_min: 0.0,
                max_attempts: 0,
            },
            ..RetryRules::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("retry.network")
        );
    }
}
