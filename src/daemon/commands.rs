//! Control commands, carried out by the core: each maps to the store and the engine,
//! and every error to a stable code.

use serde::Deserialize;
use serde_json::{Value, json};

use super::core::Core;
use crate::agents::AgentError;
use crate::campaign::{Callback, CampaignSettings, DialableLead, LeadInput, LeadState};
use crate::config::{ConfigError, Role};
use crate::control::codec::args;
use crate::control::{ErrorBody, Request, Session};
use crate::engine::{AgentCommand, CampaignCommand, EngineError, Input};
use crate::ids::{AgentId, CallId, CampaignId, LeadId};
use crate::store::{ImportMapping, LeadFilter, LeadPatch, StoreError};
use crate::time::Time;

type Reply = Result<Value, ErrorBody>;

impl From<EngineError> for ErrorBody {
    fn from(e: EngineError) -> Self {
        let code = match &e {
            EngineError::UnknownCampaign { .. } => "unknown_campaign",
            EngineError::CampaignExists { .. } => "campaign_exists",
            EngineError::UnknownCall { .. } => "unknown_call",
            EngineError::InvalidSettings { .. } => "invalid_settings",
            EngineError::NoCallToDisposition { .. } => "no_call_to_disposition",
            EngineError::CampaignInUse { .. } => "campaign_in_use",
            EngineError::CampaignRunning { .. } => "campaign_running",
            EngineError::OutsideCallingWindow { .. } => "outside_calling_window",
            EngineError::AgentBusy { .. } => "agent_busy",
            EngineError::TooManyCalls { .. } => "too_many_calls",
            EngineError::Agent(AgentError::NotLoggedIn { .. }) => "not_logged_in",
            EngineError::Agent(AgentError::AlreadyLoggedIn { .. }) => "already_logged_in",
            EngineError::Agent(AgentError::Transition { .. }) => "bad_transition",
        };
        ErrorBody::new(code, e.to_string())
    }
}

impl From<StoreError> for ErrorBody {
    fn from(e: StoreError) -> Self {
        let (code, field) = match &e {
            StoreError::Db(_) | StoreError::Corrupt { .. } => ("storage", None),
            StoreError::UnknownCampaign { .. } => ("unknown_campaign", Some("campaign")),
            StoreError::UnknownLead { .. } => ("unknown_lead", Some("lead")),
            StoreError::LeadBusy { .. } => ("lead_busy", Some("lead")),
            StoreError::BatchTooLarge { .. } => ("batch_too_large", Some("leads")),
            StoreError::Import { .. } => ("import_failed", Some("path")),
            StoreError::Lead(l) => (l.code(), Some(l.field())),
        };
        let body = ErrorBody::new(code, e.to_string());
        match field {
            Some(f) => body.with_field(f),
            None => body,
        }
    }
}

fn invalid(e: ConfigError) -> ErrorBody {
    let field = match &e {
        ConfigError::Invalid { field, .. } | ConfigError::InvalidIn { field, .. } => Some(*field),
        _ => None,
    };
    let body = ErrorBody::new("invalid_settings", e.to_string());
    match field {
        Some(f) => body.with_field(format!("settings.{f}")),
        None => body,
    }
}

/// Lay `patch` over `base`, object by object.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, p) => *b = p,
    }
}

fn settings_over(
    base: &CampaignSettings,
    patch: Option<Value>,
) -> Result<CampaignSettings, ErrorBody> {
    let mut v = serde_json::to_value(base).expect("settings serialize");
    if let Some(p) = patch {
        if !p.is_object() {
            return Err(
                ErrorBody::new("bad_args", "`settings` must be an object").with_field("settings")
            );
        }
        merge(&mut v, p);
    }
    let s: CampaignSettings = args(v).map_err(|mut e| {
        e.field = e.field.map(|f| format!("settings.{f}"));
        e
    })?;
    s.validate().map_err(invalid)?;
    Ok(s)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignArg {
    campaign: CampaignId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl Core {
    /// Carry out one request at `now`.
    pub fn command(&mut self, s: &Session, req: Request, now: Time) -> Reply {
        let r = self.dispatch(s, &req.cmd, req.args, now);
        self.pump(now);
        r
    }

    fn me(&self, s: &Session, given: Option<AgentId>) -> Result<AgentId, ErrorBody> {
        match (s.agent, given) {
            (Some(me), Some(a)) if a != me => {
                Err(ErrorBody::new("forbidden", "an agent acts only for itself")
                    .with_field("agent"))
            }
            (Some(me), _) => Ok(me),
            (None, Some(a)) if s.has(Role::Crm) => Ok(a),
            (None, _) => Err(ErrorBody::new("bad_args", "name the agent").with_field("agent")),
        }
    }

    /// The campaign a logged-in agent works on.
    fn agent_campaign(&self, agent: AgentId) -> Result<CampaignId, ErrorBody> {
        self.engine
            .agents()
            .get(agent)
            .map(|x| x.campaign)
            .ok_or_else(|| EngineError::Agent(AgentError::NotLoggedIn { agent }).into())
    }

    fn dispatch(&mut self, s: &Session, cmd: &str, a: Value, now: Time) -> Reply {
        match cmd {
            "campaign.create" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    #[serde(default)]
                    settings: Option<Value>,
                }
                let a: A = args(a)?;
                let settings = settings_over(&self.cfg.campaign, a.settings)?;
                let c = self.store.create_campaign(settings.clone(), now)?;
                self.engine.handle(
                    now,
                    Input::Campaign(CampaignCommand::Create {
                        campaign: c.id,
                        settings: Box::new(settings),
                    }),
                )?;
                self.store.flush()?;
                Ok(json!(c))
            }
            "campaign.update" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    campaign: CampaignId,
                    settings: Value,
                }
                let a: A = args(a)?;
                let mut c = self.store.campaign(a.campaign)?.clone();
                let settings = settings_over(&c.settings, Some(a.settings))?;
                self.engine.handle(
                    now,
                    Input::Campaign(CampaignCommand::Update {
                        campaign: a.campaign,
                        settings: Box::new(settings.clone()),
                    }),
                )?;
                c.settings = settings;
                self.store.put_campaign(c.clone())?;
                self.store.flush()?;
                Ok(json!(c))
            }
            "campaign.get" => {
                let a: CampaignArg = args(a)?;
                let c = self.store.campaign(a.campaign)?.clone();
                Ok(json!({ "campaign": c, "stats": self.engine.stats(a.campaign) }))
            }
            "campaign.list" => {
                let _: Empty = args(a)?;
                let list: Vec<Value> = self
                    .store
                    .campaigns()
                    .map(|c| json!({ "id": c.id, "name": c.settings.name, "state": c.state }))
                    .collect();
                Ok(json!(list))
            }
            "campaign.start" | "campaign.pause" | "campaign.stop" => {
                let a: CampaignArg = args(a)?;
                let (cmd, state) = match cmd {
                    "campaign.start" => (
                        CampaignCommand::Start {
                            campaign: a.campaign,
                        },
                        "running",
                    ),
                    "campaign.pause" => (
                        CampaignCommand::Pause {
                            campaign: a.campaign,
                        },
                        "paused",
                    ),
                    _ => (
                        CampaignCommand::Stop {
                            campaign: a.campaign,
                        },
                        "stopped",
                    ),
                };
                let mut c = self.store.campaign(a.campaign)?.clone();
                self.engine.handle(now, Input::Campaign(cmd))?;
                if state != "running" {
                    self.store.release_campaign(a.campaign);
                }
                c.state = state.into();
                self.store.put_campaign(c)?;
                self.store.flush()?;
                Ok(json!({ "campaign": a.campaign, "state": state }))
            }
            "campaign.delete" => {
                let a: CampaignArg = args(a)?;
                self.store.campaign(a.campaign)?;
                self.engine.handle(
                    now,
                    Input::Campaign(CampaignCommand::Delete {
                        campaign: a.campaign,
                    }),
                )?;
                let leads = self.store.delete_campaign(a.campaign)?;
                self.store.flush()?;
                Ok(json!({ "campaign": a.campaign, "leads_deleted": leads }))
            }
            "lead.add" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    campaign: CampaignId,
                    leads: Vec<LeadInput>,
                }
                let a: A = args(a)?;
                let results = self.store.add_leads(a.campaign, a.leads, now)?;
                let added = results
                    .iter()
                    .filter(|r| r.state == Some(LeadState::New))
                    .count();
                Ok(json!({ "added": added, "results": results }))
            }
            "lead.import" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    campaign: CampaignId,
                    path: String,
                    mapping: ImportMapping,
                }
                let a: A = args(a)?;
                let summary =
                    self.store
                        .import_csv(a.campaign, a.path.as_ref(), &a.mapping, now)?;
                Ok(json!(summary))
            }
            "lead.get" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    #[serde(default)]
                    lead: Option<LeadId>,
                    #[serde(default)]
                    campaign: Option<CampaignId>,
                    #[serde(default)]
                    number: Option<String>,
                }
                let a: A = args(a)?;
                match (a.lead, a.campaign, a.number) {
                    (Some(l), None, None) => Ok(json!(self.store.lead(l)?)),
                    (None, Some(c), Some(n)) => match self.store.lead_by_number(c, &n)? {
                        Some(l) => Ok(json!(l)),
                        None => Err(ErrorBody::new(
                            "unknown_lead",
                            format!("no lead with number {n}"),
                        )
                        .with_field("number")),
                    },
                    _ => Err(
                        ErrorBody::new("bad_args", "give `lead`, or `campaign` and `number`")
                            .with_field("lead"),
                    ),
                }
            }
            "lead.list" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    campaign: CampaignId,
                    #[serde(flatten)]
                    filter: LeadFilter,
                }
                let a: A = args(a)?;
                Ok(json!(self.store.leads(a.campaign, &a.filter)?))
            }
            "lead.update" => {
                #[derive(Deserialize)]
                struct A {
                    lead: LeadId,
                    #[serde(flatten)]
                    patch: Value,
                }
                let a: A = args(a)?;
                let patch: LeadPatch = args(a.patch)?;
                self.withdraw(a.lead, now);
                Ok(json!(self.store.update_lead(a.lead, patch)?))
            }
            "lead.delete" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    lead: LeadId,
                }
                let a: A = args(a)?;
                let lead = self.store.delete_lead(a.lead)?;
                self.withdraw(a.lead, now);
                Ok(json!({ "deleted": lead.id }))
            }
            "dnc.add" | "dnc.remove" | "dnc.check" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    number: String,
                    #[serde(default)]
                    campaign: Option<CampaignId>,
                    #[serde(default)]
                    reason: Option<String>,
                }
                let a: A = args(a)?;
                match cmd {
                    "dnc.add" => {
                        let (entry, closed) =
                            self.store.dnc_add(a.campaign, &a.number, a.reason, now)?;
                        for l in &closed {
                            self.withdraw(*l, now);
                        }
                        Ok(json!({ "entry": entry, "leads_closed": closed }))
                    }
                    "dnc.remove" => {
                        Ok(json!({ "removed": self.store.dnc_remove(a.campaign, &a.number)? }))
                    }
                    _ => {
                        let entries = self.store.dnc_check(a.campaign, &a.number)?;
                        Ok(json!({ "listed": !entries.is_empty(), "entries": entries }))
                    }
                }
            }
            "dnc.import" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    path: String,
                    #[serde(default)]
                    campaign: Option<CampaignId>,
                }
                let a: A = args(a)?;
                let (summary, closed) = self.store.dnc_import(a.campaign, a.path.as_ref(), now)?;
                for l in closed {
                    self.withdraw(l, now);
                }
                Ok(json!(summary))
            }
            "agent.login" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    campaign: CampaignId,
                    #[serde(default)]
                    agent: Option<AgentId>,
                    #[serde(default)]
                    contact: Option<String>,
                }
                let a: A = args(a)?;
                let agent = self.me(s, a.agent)?;
                self.store.campaign(a.campaign)?;
                self.engine.handle(
                    now,
                    Input::Agent(AgentCommand::Login {
                        agent,
                        campaign: a.campaign,
                    }),
                )?;
                self.agents.insert(agent, s.conn);
                self.store.put_agent(&crate::store::AgentProfile {
                    id: agent,
                    campaign: a.campaign,
                    contact: a.contact,
                    last_login: now,
                })?;
                Ok(json!({ "agent": agent, "campaign": a.campaign, "state": "paused" }))
            }
            "agent.ready" | "agent.pause" | "agent.logout" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    #[serde(default)]
                    agent: Option<AgentId>,
                }
                let a: A = args(a)?;
                let agent = self.me(s, a.agent)?;
                let c = match cmd {
                    "agent.ready" => AgentCommand::Ready { agent },
                    "agent.pause" => AgentCommand::Pause { agent },
                    _ => AgentCommand::Logout { agent },
                };
                self.engine.handle(now, Input::Agent(c))?;
                if cmd == "agent.logout" {
                    self.agents.remove(&agent);
                } else if cmd == "agent.ready" {
                    self.dial_due_callbacks(now);
                }
                let state = self
                    .engine
                    .agents()
                    .get(agent)
                    .map_or("logged_out", |x| x.state.code());
                Ok(json!({ "agent": agent, "state": state }))
            }
            "agent.disposition" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    #[serde(default)]
                    agent: Option<AgentId>,
                    code: String,
                    /// `ready` (default) or `pause` afterwards.
                    #[serde(default)]
                    then: Option<String>,
                    #[serde(default)]
                    callback_at: Option<Time>,
                    #[serde(default)]
                    same_agent: bool,
                }
                let a: A = args(a)?;
                let agent = self.me(s, a.agent)?;
                let campaign = self.agent_campaign(agent)?;
                let settings = &self.store.campaign(campaign)?.settings;
                if !settings.dispositions.contains(&a.code) {
                    return Err(ErrorBody::new(
                        "bad_disposition",
                        format!("`{}` is not one of {:?}", a.code, settings.dispositions),
                    )
                    .with_field("code"));
                }
                let then_ready = match a.then.as_deref() {
                    None | Some("ready") => true,
                    Some("pause") => false,
                    Some(x) => {
                        return Err(ErrorBody::new(
                            "bad_args",
                            format!("`then` is ready or pause, not {x}"),
                        )
                        .with_field("then"));
                    }
                };
                match (a.code.as_str(), a.callback_at) {
                    (crate::campaign::CALLBACK, Some(at)) => {
                        self.pending_callbacks.insert(
                            agent,
                            Callback {
                                at,
                                agent: a.same_agent.then_some(agent),
                            },
                        );
                    }
                    (crate::campaign::CALLBACK, None) => {
                        return Err(ErrorBody::new("bad_args", "a callback needs `callback_at`")
                            .with_field("callback_at"));
                    }
                    (_, Some(_)) => {
                        return Err(ErrorBody::new(
                            "bad_args",
                            "`callback_at` goes with the callback code",
                        )
                        .with_field("callback_at"));
                    }
                    _ => {}
                }
                let r = self.engine.handle(
                    now,
                    Input::Agent(AgentCommand::Disposition {
                        agent,
                        code: a.code.clone(),
                        then_ready,
                    }),
                );
                if r.is_err() {
                    self.pending_callbacks.remove(&agent);
                }
                r?;
                self.pump(now);
                self.store.flush()?;
                if then_ready {
                    self.dial_due_callbacks(now);
                }
                Ok(json!({ "agent": agent, "code": a.code }))
            }
            "agent.callback" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    #[serde(default)]
                    agent: Option<AgentId>,
                    lead: LeadId,
                    at: Time,
                    #[serde(default)]
                    same_agent: bool,
                }
                let a: A = args(a)?;
                let agent = self.me(s, a.agent)?;
                self.withdraw(a.lead, now);
                let patch = LeadPatch {
                    due_at: Some(a.at),
                    agent: Some(a.same_agent.then_some(agent)),
                    ..LeadPatch::default()
                };
                Ok(json!(self.store.update_lead(a.lead, patch)?))
            }
            "call.dial" => self.call_dial(s, a, now),
            "call.hangup" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    call: CallId,
                }
                let a: A = args(a)?;
                if let Some(me) = s.agent {
                    let mine = self.engine.call(a.call).is_some_and(|c| {
                        c.agent() == Some(me) || c.reserved.is_some_and(|r| r.agent == me)
                    });
                    if !mine {
                        return Err(ErrorBody::new(
                            "forbidden",
                            "an agent hangs up only its own call",
                        )
                        .with_field("call"));
                    }
                }
                self.engine.handle(now, Input::Drop { call: a.call })?;
                Ok(json!({ "call": a.call }))
            }
            "cdr.list" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    campaign: CampaignId,
                    #[serde(default)]
                    since: Option<Time>,
                    #[serde(default)]
                    limit: Option<usize>,
                }
                let a: A = args(a)?;
                self.store.campaign(a.campaign)?;
                let limit = a.limit.unwrap_or(100).clamp(1, 10_000);
                Ok(json!(self.store.cdrs(
                    a.campaign,
                    a.since.unwrap_or(Time(0)),
                    limit
                )?))
            }
            "stats.campaign" => {
                let a: CampaignArg = args(a)?;
                let c = self.store.campaign(a.campaign)?;
                let state = c.state.clone();
                let report = self.store.abandon_report(a.campaign, now)?;
                Ok(json!({
                    "campaign": a.campaign,
                    "state": state,
                    "now": self.engine.stats(a.campaign),
                    "abandon": report,
                }))
            }
            "stats.agents" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct A {
                    #[serde(default)]
                    campaign: Option<CampaignId>,
                }
                let a: A = args(a)?;
                let list: Vec<Value> = self
                    .engine
                    .agents()
                    .iter()
                    .filter(|x| a.campaign.is_none_or(|c| c == x.campaign))
                    .map(|x| json!({ "agent": x.id, "campaign": x.campaign, "state": x.state.code(), "since": x.since }))
                    .collect();
                Ok(json!(list))
            }
            other => Err(
                ErrorBody::new("unknown_command", format!("no command `{other}`"))
                    .with_field("cmd"),
            ),
        }
    }

    /// Take a lead out of the engine's buffer (it changed, was deleted, went DNC).
    fn withdraw(&mut self, lead: LeadId, now: Time) {
        let campaign = crate::store::keys::campaign_of(lead);
        let _ = self.engine.handle(
            now,
            Input::Campaign(CampaignCommand::Withdraw { campaign, lead }),
        );
        self.store.release([lead]);
    }

    fn call_dial(&mut self, s: &Session, a: Value, now: Time) -> Reply {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct A {
            #[serde(default)]
            agent: Option<AgentId>,
            #[serde(default)]
            lead: Option<LeadId>,
            #[serde(default)]
            number: Option<String>,
        }
        let a: A = args(a)?;
        let agent = self.me(s, a.agent)?;
        let campaign = self.agent_campaign(agent)?;
        let lead = match (a.lead, a.number) {
            (Some(l), None) => self.store.lead(l)?,
            (None, Some(n)) => match self.store.lead_by_number(campaign, &n)? {
                Some(l) => l,
                None => {
                    // A number not in the list becomes a lead of the agent's campaign.
                    let r = self.store.add_leads(
                        campaign,
                        vec![LeadInput {
                            number: n,
                            ..LeadInput::default()
                        }],
                        now,
                    )?;
                    let r = &r[0];
                    if let Some(e) = &r.error {
                        return Err(ErrorBody::new(e.code, e.message.clone()).with_field("number"));
                    }
                    self.store.lead(r.lead.expect("added"))?
                }
            },
            _ => {
                return Err(
                    ErrorBody::new("bad_args", "give `lead` or `number`").with_field("lead")
                );
            }
        };
        if lead.campaign != campaign {
            return Err(
                ErrorBody::new("bad_args", "the lead is not in the agent's campaign")
                    .with_field("lead"),
            );
        }
        match lead.state {
            LeadState::Dialing | LeadState::InCall => {
                return Err(StoreError::LeadBusy { lead: lead.id }.into());
            }
            LeadState::Invalid => {
                return Err(ErrorBody::new(
                    "invalid_number",
                    format!("{} is not a valid number", lead.number),
                )
                .with_field("lead"));
            }
            _ => {}
        }
        if !self
            .store
            .dnc_check(Some(campaign), &lead.number)?
            .is_empty()
        {
            return Err(
                ErrorBody::new("dnc", format!("{} is on a do-not-call list", lead.number))
                    .with_field("lead"),
            );
        }
        // An agent is reserved for this call, so the abandon lockout does not apply.
        self.withdraw(lead.id, now);
        self.store.take(lead.id);
        let dialable = DialableLead {
            id: lead.id,
            number: lead.number.clone(),
        };
        match self.engine.dial(now, agent, dialable) {
            Ok(call) => Ok(json!({ "call": call, "lead": lead.id, "agent": agent })),
            Err(e) => {
                self.store.release([lead.id]);
                Err(e.into())
            }
        }
    }
}
