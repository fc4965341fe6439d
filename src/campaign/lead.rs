//! Leads: one person to reach, with a phone number normalised to E.164, custom fields,
//! a priority, a time zone, and where it stands (`LeadState`).
//!
//! ```text
//!   new ──dial──▶ dialing ──answer──▶ in_call ──▶ done
//!    ▲              │                               │ callback
//!    │              ▼ busy / no answer / machine    ▼
//!    └──────────── due ◀────────────────────────────┘
//!  (any) ─▶ dnc | invalid | max_attempts   (final)
//! ```

use rlibphonenumber::enums::Region;
use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::window::{single_zone_of_country, zone};
use crate::ids::{AgentId, CallId, CampaignId, LeadId};
use crate::outcome::Outcome;
use crate::time::Time;

/// Largest custom-field object, in bytes of JSON.
pub const MAX_FIELDS_BYTES: usize = 8 * 1024;
/// Priorities run 0 (last) to 9 (first); new leads get 5.
pub const MAX_PRIORITY: u8 = 9;
pub const DEFAULT_PRIORITY: u8 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadState {
    /// Imported, never dialled.
    New,
    /// Dialled before; due again at `due_at`.
    Due,
    /// A call is being placed.
    Dialing,
    /// Answered and with an agent.
    InCall,
    /// Finished (connected and dispositioned, or a final outcome).
    Done,
    /// On a do-not-call list.
    Dnc,
    /// The number is not a valid phone number.
    Invalid,
    /// Every attempt its retry rule allows has been used.
    MaxAttempts,
}

impl LeadState {
    pub const fn code(self) -> &'static str {
        match self {
            LeadState::New => "new",
            LeadState::Due => "due",
            LeadState::Dialing => "dialing",
            LeadState::InCall => "in_call",
            LeadState::Done => "done",
            LeadState::Dnc => "dnc",
            LeadState::Invalid => "invalid",
            LeadState::MaxAttempts => "max_attempts",
        }
    }

    /// Waiting in the due index.
    pub const fn is_queued(self) -> bool {
        matches!(self, LeadState::New | LeadState::Due)
    }

    /// A call is up for it: it may not be changed or deleted.
    pub const fn is_active(self) -> bool {
        matches!(self, LeadState::Dialing | LeadState::InCall)
    }
}

/// A lead as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: LeadId,
    pub campaign: CampaignId,
    /// E.164 (`+441632960000`); the number as given when it is invalid.
    pub number: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
    pub priority: u8,
    /// IANA zone the calling window is checked in.
    pub time_zone: String,
    pub state: LeadState,
    /// When it may next be dialled (queued leads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Time>,
    /// Attempts consumed (network failures and cancels consume none).
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<Outcome>,
    /// The call in progress, or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_call: Option<CallId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    /// A callback reserved for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    /// No call before this time: the abandon lockout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<Time>,
    pub created_at: Time,
}

/// A lead as a CRM submits it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadInput {
    pub number: String,
    #[serde(default)]
    pub fields: Option<Value>,
    #[serde(default)]
    pub priority: Option<u8>,
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// Why a lead was not taken as given; `code()` is the stable error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeadError {
    #[error("`{number}` is not a valid phone number: {why}")]
    InvalidNumber { number: String, why: String },
    #[error("fields must be a JSON object")]
    FieldsNotObject,
    #[error("fields take {len} bytes, more than {max}")]
    FieldsTooLarge { max: usize, len: usize },
    #[error("priority {got} is above {max}")]
    BadPriority { max: u8, got: u8 },
    #[error("unknown time zone `{zone}`")]
    UnknownTimeZone { zone: String },
    #[error("{number} is already lead {existing} of this campaign")]
    Duplicate { number: String, existing: LeadId },
    #[error("{number} is on a do-not-call list")]
    Dnc { number: String },
}

impl LeadError {
    pub const fn code(&self) -> &'static str {
        match self {
            LeadError::InvalidNumber { .. } => "invalid_number",
            LeadError::FieldsNotObject => "fields_not_object",
            LeadError::FieldsTooLarge { .. } => "fields_too_large",
            LeadError::BadPriority { .. } => "bad_priority",
            LeadError::UnknownTimeZone { .. } => "unknown_time_zone",
            LeadError::Duplicate { .. } => "duplicate",
            LeadError::Dnc { .. } => "dnc",
        }
    }

    /// The input field the error is about.
    pub const fn field(&self) -> &'static str {
        match self {
            LeadError::InvalidNumber { .. }
            | LeadError::Duplicate { .. }
            | LeadError::Dnc { .. } => "number",
            LeadError::FieldsNotObject | LeadError::FieldsTooLarge { .. } => "fields",
            LeadError::BadPriority { .. } => "priority",
            LeadError::UnknownTimeZone { .. } => "time_zone",
        }
    }
}

/// A country (ISO 3166 region) of the numbering plan.
pub type Country = Region;

/// A number in E.164 with the country it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalised {
    pub e164: String,
    pub region: Option<Country>,
}

/// Parse and validate `raw` (national numbers are read as `default_country`'s) and
/// give it in E.164. Validation uses libphonenumber's metadata: the number must be a
/// real, assignable number of its country, not merely the right length.
pub fn normalise(raw: &str, default_country: Country) -> Result<Normalised, LeadError> {
    let invalid = |why: &str| LeadError::InvalidNumber {
        number: raw.chars().take(64).collect(),
        why: why.into(),
    };
    if raw.len() > 64 {
        return Err(invalid("longer than 64 characters"));
    }
    let parsed = PHONE_NUMBER_UTIL
        .parse(raw, Some(default_country))
        .map_err(|e| invalid(&e.to_string()))?;
    if !parsed.is_valid() {
        return Err(invalid("no such number in its numbering plan"));
    }
    Ok(Normalised {
        e164: parsed.format_as(PhoneNumberFormat::E164).to_string(),
        region: parsed.get_region_code(),
    })
}

/// Parse an ISO 3166 country code (`GB`).
pub fn country_id(code: &str) -> Option<Country> {
    code.parse().ok()
}

/// A lead's custom fields: a JSON object (or nothing) of at most
/// [`MAX_FIELDS_BYTES`].
pub fn check_fields(fields: Option<Value>) -> Result<Map<String, Value>, LeadError> {
    let fields = match fields {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(LeadError::FieldsNotObject),
    };
    if !fields.is_empty() {
        let len = serde_json::to_string(&fields).map_or(usize::MAX, |s| s.len());
        if len > MAX_FIELDS_BYTES {
            return Err(LeadError::FieldsTooLarge {
                max: MAX_FIELDS_BYTES,
                len,
            });
        }
    }
    Ok(fields)
}

/// A lead's priority, [`DEFAULT_PRIORITY`] when not given.
pub fn check_priority(priority: Option<u8>) -> Result<u8, LeadError> {
    match priority.unwrap_or(DEFAULT_PRIORITY) {
        p if p > MAX_PRIORITY => Err(LeadError::BadPriority {
            max: MAX_PRIORITY,
            got: p,
        }),
        p => Ok(p),
    }
}

/// A lead's time zone must be a known IANA name.
pub fn check_zone(name: &str) -> Result<(), LeadError> {
    match zone(name) {
        Some(_) => Ok(()),
        None => Err(LeadError::UnknownTimeZone {
            zone: name.to_owned(),
        }),
    }
}

/// Build the stored lead from a CRM's input; errors that leave the lead storable
/// (an invalid number) give a lead in state `invalid` with the error.
pub fn build(
    input: LeadInput,
    id: LeadId,
    campaign: CampaignId,
    default_country: Country,
    default_zone: &str,
    now: Time,
) -> Result<(Lead, Option<LeadError>), LeadError> {
    let fields = check_fields(input.fields)?;
    let priority = check_priority(input.priority)?;
    if let Some(z) = &input.time_zone {
        check_zone(z)?;
    }
    let (number, region, state, problem) = match normalise(&input.number, default_country) {
        Ok(n) => (n.e164, n.region, LeadState::New, None),
        Err(e) => (
            input.number.chars().take(64).collect(),
            None,
            LeadState::Invalid,
            Some(e),
        ),
    };
    let time_zone = input
        .time_zone
        .or_else(|| {
            region
                .and_then(|r| single_zone_of_country(&r.to_string()))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| default_zone.to_owned());
    let lead = Lead {
        id,
        campaign,
        number,
        fields,
        priority,
        time_zone,
        state,
        due_at: (state == LeadState::New).then_some(now),
        attempts: 0,
        last_outcome: None,
        last_call: None,
        disposition: None,
        agent: None,
        locked_until: None,
        created_at: now,
    };
    Ok((lead, problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised_to_e164() {
        let gb = Country::GB;
        assert_eq!(
            normalise("020 7946 0123", gb).unwrap().e164,
            "+442079460123"
        );
        assert_eq!(
            normalise("+44 (0)20 7946-0123", gb).unwrap().e164,
            "+442079460123"
        );
        let us = normalise("+1 212-555-0123", gb).unwrap();
        assert_eq!(us.e164, "+12125550123");
        assert_eq!(us.region, Some(Country::US));
        for bad in ["12", "020 7946 01234567", "hello", "+44 99 1234", ""] {
            let e = normalise(bad, gb).unwrap_err();
            assert_eq!(e.code(), "invalid_number", "{bad}");
        }
    }

    #[test]
    fn building_checks_fields_priority_and_zone() {
        let gb = Country::GB;
        let mk = |input: LeadInput| {
            build(
                input,
                LeadId(1),
                CampaignId(1),
                gb,
                "Europe/London",
                Time(5),
            )
        };
        let (lead, problem) = mk(LeadInput {
            number: "+1 212 555 0123".into(),
            fields: Some(serde_json::json!({"name": "Ada"})),
            ..LeadInput::default()
        })
        .unwrap();
        assert!(problem.is_none());
        assert_eq!(lead.state, LeadState::New);
        assert_eq!(lead.due_at, Some(Time(5)));
        assert_eq!(
            lead.time_zone, "Europe/London",
            "US spans zones: campaign default"
        );
        assert_eq!(lead.priority, DEFAULT_PRIORITY);
        let (fr, _) = mk(LeadInput {
            number: "+33 1 23 45 67 89".into(),
            ..LeadInput::default()
        })
        .unwrap();
        assert_eq!(fr.time_zone, "Europe/Paris", "derived from the number");
        let (bad, problem) = mk(LeadInput {
            number: "123".into(),
            ..LeadInput::default()
        })
        .unwrap();
        assert_eq!(bad.state, LeadState::Invalid);
        assert_eq!(problem.unwrap().code(), "invalid_number");
        let big = "x".repeat(MAX_FIELDS_BYTES);
        let e = mk(LeadInput {
            number: "02079460123".into(),
            fields: Some(serde_json::json!({ "note": big })),
            ..LeadInput::default()
        })
        .unwrap_err();
        assert_eq!(e.code(), "fields_too_large");
        let e = mk(LeadInput {
            number: "02079460123".into(),
            fields: Some(serde_json::json!([1])),
            ..LeadInput::default()
        })
        .unwrap_err();
        assert_eq!(e.code(), "fields_not_object");
        let e = mk(LeadInput {
            number: "02079460123".into(),
            priority: Some(10),
            ..LeadInput::default()
        })
        .unwrap_err();
        assert_eq!(e.field(), "priority");
        let e = mk(LeadInput {
            number: "02079460123".into(),
            time_zone: Some("Nowhere/Land".into()),
            ..LeadInput::default()
        })
        .unwrap_err();
        assert_eq!(e.code(), "unknown_time_zone");
    }
}
