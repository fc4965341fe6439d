//! What goes into the engine and what comes out.

use std::time::Duration;

use serde::Serialize;

use crate::campaign::{CampaignSettings, DialableLead};
use crate::ids::{AgentId, CallId, CampaignId, LeadId};
use crate::outcome::Outcome;
use crate::time::Time;

/// Something that happened, given to [`Engine::handle`](super::Engine::handle) with
/// the time it happened.
#[derive(Clone, Debug)]
pub enum Input {
    /// Time passed; due timers fire.
    Tick,
    /// Progress of an originated call, from the SIP layer.
    Progress {
        call: CallId,
        progress: Progress,
    },
    /// The answering-machine detector's verdict on an answered call.
    Amd {
        call: CallId,
        verdict: AmdVerdict,
    },
    /// An answered call ended: the customer or the agent hung up.
    Hangup {
        call: CallId,
    },
    /// An agent dials a lead itself (click-to-dial, or a callback reserved for it):
    /// the agent is held for the call, and an answer is bridged to it at once.
    Dial {
        agent: AgentId,
        lead: DialableLead,
    },
    /// End a call on request (agent or CRM): CANCEL before answer, BYE after.
    Drop {
        call: CallId,
    },
    Agent(AgentCommand),
    Campaign(CampaignCommand),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// 180/183: the far end is ringing.
    Ringing,
    /// 200 OK: answered (by a person or a machine).
    Answered,
    /// The call ended before answer.
    Failed {
        outcome: Outcome,
        sip_status: Option<u16>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmdVerdict {
    Human,
    Machine,
    NotSure,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AgentCommand {
    Login {
        agent: AgentId,
        campaign: CampaignId,
    },
    Ready {
        agent: AgentId,
    },
    Pause {
        agent: AgentId,
    },
    Logout {
        agent: AgentId,
    },
    /// Ends wrap-up: the agent's verdict on its last call; `then_ready` or pause.
    Disposition {
        agent: AgentId,
        code: String,
        then_ready: bool,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum CampaignCommand {
    Create {
        campaign: CampaignId,
        settings: Box<CampaignSettings>,
    },
    Start {
        campaign: CampaignId,
    },
    Pause {
        campaign: CampaignId,
    },
    Stop {
        campaign: CampaignId,
    },
    /// Leads due now, in dialing order; answers `Output::LeadsWanted`.
    AddLeads {
        campaign: CampaignId,
        leads: Vec<DialableLead>,
    },
    /// Remove a campaign that is not running, has no call up and no agent.
    Delete {
        campaign: CampaignId,
    },
    /// Take a buffered lead back (it went on a DNC list, was deleted or changed).
    Withdraw {
        campaign: CampaignId,
        lead: LeadId,
    },
    /// New settings for a campaign that is not running. The pacing model restarts
    /// when the pacing settings change; the abandon history is kept.
    Update {
        campaign: CampaignId,
        settings: Box<CampaignSettings>,
    },
    /// Live answers from before a restart, oldest first, so the abandon rate covers
    /// its whole window (given right after `Create`).
    Seed {
        campaign: CampaignId,
        answers: Vec<PastAnswer>,
    },
}

/// A live answer from the call records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PastAnswer {
    pub at: Time,
    pub after_amd: bool,
    pub abandoned: bool,
}

/// What the engine asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Persist before anything else: a lead goes to `dialing`, a CDR, a disposition.
    Persist(Record),
    /// Place a call. The driver reports `Progress` for it.
    Originate {
        call: CallId,
        campaign: CampaignId,
        lead: LeadId,
        number: String,
        caller_id: String,
        ring_timeout: Duration,
        /// The agent that dialled it (click-to-dial, reserved callback).
        agent: Option<AgentId>,
    },
    /// End a call (CANCEL before answer, BYE after), optionally after a prompt.
    Hangup {
        call: CallId,
        outcome: Outcome,
        prompt: Option<String>,
    },
    /// Connect an answered call's media to an agent's leg.
    Bridge { call: CallId, agent: AgentId },
    /// The campaign's lead buffer runs low: send up to `count` due leads.
    LeadsWanted { campaign: CampaignId, count: usize },
    /// For control-socket subscribers.
    Event(Event),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    #[serde(rename = "call.offered")]
    CallOffered {
        call: CallId,
        campaign: CampaignId,
        lead: LeadId,
        agent: AgentId,
    },
    #[serde(rename = "call.ended")]
    CallEnded {
        call: CallId,
        campaign: CampaignId,
        lead: LeadId,
        outcome: Outcome,
        agent: Option<AgentId>,
    },
    #[serde(rename = "agent.state")]
    AgentState {
        agent: AgentId,
        campaign: CampaignId,
        state: &'static str,
    },
    #[serde(rename = "campaign.state")]
    CampaignState {
        campaign: CampaignId,
        state: &'static str,
    },
    #[serde(rename = "campaign.stats")]
    CampaignStats(CampaignStats),
}

/// A campaign's figures as of `at`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CampaignStats {
    pub campaign: CampaignId,
    pub at: Time,
    pub dials: u64,
    pub live_answers: u64,
    pub abandoned: u64,
    pub machines: u64,
    /// Ofcom rate over the window (estimated AMD false positives included).
    pub abandon_rate: f64,
    pub abandon_upper: f64,
    pub in_flight: usize,
    pub waiting: usize,
    pub connected: usize,
    pub agents_ready: usize,
    pub agents_busy: usize,
    pub dial_level: f64,
}

/// Records the store must keep.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// A lead is about to be dialled (durable before the `Originate` that follows).
    Dialing {
        call: CallId,
        campaign: CampaignId,
        lead: LeadId,
        at: Time,
    },
    /// A call ended: its CDR.
    Call(CallRecord),
    /// An agent's disposition of a call.
    Disposition {
        call: CallId,
        lead: LeadId,
        agent: AgentId,
        code: String,
        at: Time,
        /// The disposition took a live answer back out of the abandon figures
        /// (`machine`); `after_amd` says whether it had passed AMD.
        retracted: Option<bool>,
    },
}

/// One call attempt with every timestamp.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct CallRecord {
    pub call: CallId,
    pub campaign: CampaignId,
    pub lead: LeadId,
    pub dialed_at: Time,
    pub ringing_at: Option<Time>,
    pub answered_at: Option<Time>,
    pub amd_at: Option<Time>,
    pub amd_verdict: Option<AmdVerdict>,
    pub bridged_at: Option<Time>,
    pub ended_at: Time,
    pub outcome: Outcome,
    pub sip_status: Option<u16>,
    pub agent: Option<AgentId>,
    pub abandoned: bool,
    /// The agent that dialled the call itself (outside pacing and the abandon rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialed_by: Option<AgentId>,
    /// Closed at restart: the daemon stopped while the call was up, so the real
    /// outcome is unknown (recorded as `network`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("unknown campaign {campaign}")]
    UnknownCampaign { campaign: CampaignId },
    #[error("campaign {campaign} already exists")]
    CampaignExists { campaign: CampaignId },
    #[error("unknown call {call}")]
    UnknownCall { call: CallId },
    #[error("invalid campaign settings: {why}")]
    InvalidSettings { why: String },
    #[error("agent {agent} has no call to disposition")]
    NoCallToDisposition { agent: AgentId },
    #[error("campaign {campaign} has calls or agents: stop it and log its agents out first")]
    CampaignInUse { campaign: CampaignId },
    #[error("campaign {campaign} is running: pause or stop it first")]
    CampaignRunning { campaign: CampaignId },
    #[error("campaign {campaign} is outside its calling window")]
    OutsideCallingWindow { campaign: CampaignId },
    #[error("agent {agent} is {state}: it cannot dial now")]
    AgentBusy { agent: AgentId, state: &'static str },
    #[error("{calls} calls are up: the daemon's limit")]
    TooManyCalls { calls: usize },
    #[error(transparent)]
    Agent(#[from] crate::agents::AgentError),
}
