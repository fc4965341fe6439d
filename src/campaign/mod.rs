//! Campaigns and leads: what a campaign is allowed to do (its settings), the leads it
//! dials and the rules that move a lead on after each call.
//!
//! The engine holds a short buffer of leads that are due now for each running campaign
//! and asks its driver for more (`Output::LeadsWanted`); where the leads come from (the
//! store in the daemon, a generator in the simulator) is the driver's business.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`CampaignSettings`] and their validation |
//! | `window.rs` | calling windows (days, hours) in a time zone |
//! | `lead.rs` | the lead model, E.164 normalisation, lead states |
//! | `retry.rs` | retry rules per outcome, abandon lockout, dispositions |

mod lead;
mod retry;
mod window;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::ids::LeadId;
use crate::pacing::PacingConfig;
pub use lead::{
    Country, DEFAULT_PRIORITY, Lead, LeadError, LeadInput, LeadState, MAX_FIELDS_BYTES,
    MAX_PRIORITY, Normalised, build as build_lead, check_fields, check_priority, check_zone,
    country_id, normalise,
};
pub use retry::{
    CALLBACK, Callback, DNC, Retry, RetryRules, WRONG_NUMBER, after_call, after_disposition,
};
pub use window::{CallingWindow, Day, Zones, single_zone_of_country, zone};

/// The least ring time before giving up on an unanswered call (a rule of the trade:
/// shorter rings make "no answer" out of people walking to the phone).
pub const MIN_RING_TIMEOUT_S: f64 = 15.0;

/// A lead ready to dial now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialableLead {
    pub id: LeadId,
    /// E.164 number.
    pub number: String,
}

/// Rules and parameters of one campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignSettings {
    pub name: String,
    /// Caller ID presented on every call (E.164). Always presented.
    pub caller_id: String,
    /// More caller IDs to rotate through, call by call, with `caller_id`.
    pub caller_ids: Vec<String>,
    /// The SIP trunk this campaign dials through (a name from the config).
    pub trunk: String,
    pub pacing: PacingConfig,
    /// Seconds a person may wait for an agent after AMD says human before the call
    /// counts as abandoned.
    pub max_wait_s: f64,
    /// Seconds to ring before giving up (at least 15).
    pub ring_timeout_s: f64,
    /// Answering-machine detection on answered calls.
    pub amd: bool,
    /// Seconds to wait for an AMD verdict before treating the call as a person.
    pub amd_timeout_s: f64,
    /// Known share of persons the AMD judges machines (the Ofcom estimate added to
    /// abandoned calls). 0 when unknown.
    pub amd_false_positive: f64,
    /// Window of the abandon-rate rule, in hours (24 for Ofcom, 720 for 30 days).
    pub abandon_window_h: f64,
    /// Prompt played to an abandoned person before hang-up.
    pub abandon_prompt: Option<String>,
    /// Days and hours the campaign may dial, in each lead's time zone.
    pub calling_window: CallingWindow,
    /// The campaign's time zone: the default for leads whose zone is neither given nor
    /// known from their number, and the clock the pacing plans its day on.
    pub time_zone: String,
    /// Country (ISO 3166) of national-format numbers.
    pub default_country: String,
    /// Retry rules per outcome.
    pub retry: RetryRules,
    /// Hours an abandoned number is not called again unless an agent is reserved.
    pub abandon_lockout_h: f64,
    /// Never show agents the phone number (`call.offered` leaves it out).
    pub mask_numbers: bool,
    /// Record bridged calls.
    pub recording: bool,
    /// Disposition codes agents may give.
    pub dispositions: Vec<String>,
}

impl Default for CampaignSettings {
    fn default() -> Self {
        CampaignSettings {
            name: "default".into(),
            caller_id: "+441000000000".into(),
            caller_ids: Vec::new(),
            trunk: "default".into(),
            pacing: PacingConfig::default(),
            max_wait_s: 2.0,
            ring_timeout_s: 25.0,
            amd: true,
            amd_timeout_s: 5.0,
            amd_false_positive: 0.02,
            abandon_window_h: 24.0,
            abandon_prompt: Some("abandon".into()),
            calling_window: CallingWindow::default(),
            time_zone: "Europe/London".into(),
            default_country: "GB".into(),
            retry: RetryRules::default(),
            abandon_lockout_h: 72.0,
            mask_numbers: false,
            recording: false,
            dispositions: [
                "sale",
                "not_interested",
                CALLBACK,
                WRONG_NUMBER,
                DNC,
                crate::engine::MACHINE_DISPOSITION,
                "no_contact",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl CampaignSettings {
    /// Check every value; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, why: String| Err(ConfigError::Invalid { field, why });
        if self.name.trim().is_empty() {
            return bad("name", "is empty".into());
        }
        if self.caller_id.trim().is_empty() {
            return bad(
                "caller_id",
                "is empty: caller ID is always presented".into(),
            );
        }
        if !(self.max_wait_s > 0.0 && self.max_wait_s <= 60.0) {
            return bad(
                "max_wait_s",
                format!("{} is outside (0, 60]", self.max_wait_s),
            );
        }
        if !(self.ring_timeout_s >= MIN_RING_TIMEOUT_S && self.ring_timeout_s <= 120.0) {
            return bad(
                "ring_timeout_s",
                format!(
                    "{} is outside {MIN_RING_TIMEOUT_S}..=120",
                    self.ring_timeout_s
                ),
            );
        }
        if !(self.amd_timeout_s > 0.0 && self.amd_timeout_s <= 30.0) {
            return bad(
                "amd_timeout_s",
                format!("{} is outside (0, 30]", self.amd_timeout_s),
            );
        }
        if !(0.0..0.5).contains(&self.amd_false_positive) {
            return bad(
                "amd_false_positive",
                format!("{} is outside [0, 0.5)", self.amd_false_positive),
            );
        }
        if !(self.abandon_window_h >= 1.0 && self.abandon_window_h <= 24.0 * 31.0) {
            return bad(
                "abandon_window_h",
                format!("{} is outside 1..=744", self.abandon_window_h),
            );
        }
        for (i, id) in std::iter::once(&self.caller_id)
            .chain(&self.caller_ids)
            .enumerate()
        {
            let digits = id.strip_prefix('+').unwrap_or("");
            if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return bad(
                    if i == 0 { "caller_id" } else { "caller_ids" },
                    format!("`{id}` is not an E.164 number (+ and 7 to 15 digits)"),
                );
            }
        }
        if self.trunk.trim().is_empty() {
            return bad("trunk", "is empty".into());
        }
        if zone(&self.time_zone).is_none() {
            return bad(
                "time_zone",
                format!("unknown time zone `{}`", self.time_zone),
            );
        }
        if country_id(&self.default_country).is_none() {
            return bad(
                "default_country",
                format!("`{}` is not an ISO 3166 country code", self.default_country),
            );
        }
        if !(self.abandon_lockout_h >= 0.0 && self.abandon_lockout_h <= 24.0 * 365.0) {
            return bad(
                "abandon_lockout_h",
                format!("{} is outside 0..=8760", self.abandon_lockout_h),
            );
        }
        if self.dispositions.is_empty()
            || self
                .dispositions
                .iter()
                .any(|d| d.trim().is_empty() || d.len() > 64)
        {
            return bad(
                "dispositions",
                "must be a non-empty list of codes of 1..=64 characters".into(),
            );
        }
        self.retry.validate()?;
        self.calling_window.validate()?;
        self.pacing.validate()
    }

    /// The caller ID for the `n`th call: rotates through `caller_id` and `caller_ids`.
    pub fn caller_id_for(&self, n: u64) -> &str {
        let k = n % (self.caller_ids.len() as u64 + 1);
        if k == 0 {
            &self.caller_id
        } else {
            &self.caller_ids[k as usize - 1]
        }
    }

    pub fn max_wait(&self) -> Duration {
        crate::time::secs(self.max_wait_s)
    }

    pub fn ring_timeout(&self) -> Duration {
        crate::time::secs(self.ring_timeout_s)
    }

    pub fn amd_timeout(&self) -> Duration {
        crate::time::secs(self.amd_timeout_s)
    }

    pub fn abandon_window(&self) -> Duration {
        crate::time::secs(self.abandon_window_h * 3600.0)
    }

    /// The false-positive share the abandon ledger adds (0 when AMD is off).
    pub fn counted_false_positive(&self) -> f64 {
        if self.amd {
            self.amd_false_positive
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_rules_are_enforced() {
        let s = CampaignSettings::default();
        s.validate().unwrap();
        let short = CampaignSettings {
            ring_timeout_s: 10.0,
            ..s.clone()
        };
        let err = short.validate().unwrap_err().to_string();
        assert!(err.contains("ring_timeout_s"), "{err}");
        let no_cli = CampaignSettings {
            caller_id: String::new(),
            ..s
        };
        assert!(
            no_cli
                .validate()
                .unwrap_err()
                .to_string()
                .contains("caller_id")
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err =
            toml::from_str::<CampaignSettings>("name = \"x\"\nring_timout_s = 20").unwrap_err();
        assert!(err.to_string().contains("ring_timout_s"), "{err}");
    }
}
