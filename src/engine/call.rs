//! The lifecycle of one call attempt.
//!
//! ```text
//!  Originate ─► Dialing ─180─► Ringing ─200─► Detecting ─human─► Waiting ─agent─► Bridged
//!                 │              │    (AMD on)  │ machine          │ max_wait        │ hang-up
//!                 └── busy, no answer, failure ─┴──► ended         └──► abandoned     └──► ended
//!  Without AMD, 200 goes straight to Waiting (or Bridged when an agent is ready).
//! ```

use super::io::{AmdVerdict, CallRecord};
use crate::ids::{AgentId, CallId, CampaignId, LeadId};
use crate::outcome::Outcome;
use crate::pacing::{FlightCall, FlightPhase};
use crate::time::Time;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    Dialing,
    Ringing,
    /// Answered; AMD is listening.
    Detecting,
    /// A person waits for an agent.
    Waiting,
    Bridged {
        agent: AgentId,
    },
}

#[derive(Clone, Debug)]
pub struct Call {
    pub id: CallId,
    pub campaign: CampaignId,
    pub lead: LeadId,
    pub state: CallState,
    pub dialed_at: Time,
    pub ringing_at: Option<Time>,
    pub answered_at: Option<Time>,
    pub amd_at: Option<Time>,
    pub amd_verdict: Option<AmdVerdict>,
    /// When the person started waiting for an agent.
    pub waiting_since: Option<Time>,
    pub bridged_at: Option<Time>,
    /// The agent that dialled this call and waits for it; such calls are outside
    /// pacing and the abandon ledger (they cannot be abandoned).
    pub reserved: Option<Reserved>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub agent: AgentId,
    /// The agent was ready (not paused) when it dialled: it goes back to ready if the
    /// call is not answered.
    pub was_ready: bool,
}

impl Call {
    pub fn new(id: CallId, campaign: CampaignId, lead: LeadId, now: Time) -> Self {
        Call {
            id,
            campaign,
            lead,
            state: CallState::Dialing,
            dialed_at: now,
            ringing_at: None,
            answered_at: None,
            amd_at: None,
            amd_verdict: None,
            waiting_since: None,
            bridged_at: None,
            reserved: None,
        }
    }

    /// Ringing or in AMD: what pacing counts as "in flight".
    pub fn in_flight(&self) -> bool {
        matches!(
            self.state,
            CallState::Dialing | CallState::Ringing | CallState::Detecting
        )
    }

    /// In flight and counted by the campaign's pacing (not an agent's own call).
    pub fn paced(&self) -> bool {
        self.reserved.is_none() && self.in_flight()
    }

    pub fn flight(&self) -> Option<FlightCall> {
        if self.reserved.is_some() {
            return None;
        }
        match self.state {
            CallState::Dialing | CallState::Ringing => Some(FlightCall {
                phase: FlightPhase::Ringing,
                since: self.dialed_at,
            }),
            CallState::Detecting => Some(FlightCall {
                phase: FlightPhase::Detecting,
                since: self.answered_at.unwrap_or(self.dialed_at),
            }),
            _ => None,
        }
    }

    pub fn agent(&self) -> Option<AgentId> {
        match self.state {
            CallState::Bridged { agent } => Some(agent),
            _ => None,
        }
    }

    pub fn record(&self, now: Time, outcome: Outcome, sip_status: Option<u16>) -> CallRecord {
        CallRecord {
            call: self.id,
            campaign: self.campaign,
            lead: self.lead,
            dialed_at: self.dialed_at,
            ringing_at: self.ringing_at,
            answered_at: self.answered_at,
            amd_at: self.amd_at,
            amd_verdict: self.amd_verdict,
            bridged_at: self.bridged_at,
            ended_at: now,
            outcome,
            sip_status,
            agent: self.agent(),
            abandoned: outcome == Outcome::Abandoned,
            dialed_by: self.reserved.map(|r| r.agent),
            recovered: false,
        }
    }
}
