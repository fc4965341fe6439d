//! The core task's state: the engine, the store and the trunk, and the pump that
//! carries the engine's outputs out in order: persist (and flush) first, then act.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::simtrunk::SimTrunk;
use crate::campaign::Callback;
use crate::config::Config;
use crate::control::Published;
use crate::engine::{
    AgentCommand, CampaignCommand, Engine, Event, Input, Output, Progress, Record,
};
use crate::ids::{AgentId, CallId, CampaignId};
use crate::outcome::Outcome;
use crate::store::Store;
use crate::time::Time;

pub struct Core {
    pub(super) cfg: Config,
    pub(super) engine: Engine,
    pub(super) store: Store,
    pub(super) trunk: SimTrunk,
    pub(super) events: broadcast::Sender<Published>,
    /// Logged-in agents and the control connection that logged each in.
    pub(super) agents: HashMap<AgentId, u64>,
    /// Callbacks asked for with a disposition, until the engine's record of it.
    pub(super) pending_callbacks: HashMap<AgentId, Callback>,
    /// Store errors seen (disk full, …): the daemon stops dialing while they last.
    pub(super) storage_errors: u64,
}

impl Core {
    pub fn new(
        cfg: Config,
        store: Store,
        events: broadcast::Sender<Published>,
    ) -> Result<Core, crate::store::StoreError> {
        let mut engine = Engine::new(cfg.engine.clone());
        // Never reuse a call id: an unreadable counter stops the start.
        engine.set_next_call_id(store.last_call_id()? + 1);
        let trunk = SimTrunk::new(cfg.simulated_trunk.clone(), cfg.daemon.seed);
        Ok(Core {
            cfg,
            engine,
            store,
            trunk,
            events,
            agents: HashMap::new(),
            pending_callbacks: HashMap::new(),
            storage_errors: 0,
        })
    }

    /// Give the engine every stored campaign, seeded with its abandon history, in the
    /// state it was left in.
    pub fn restore(&mut self, now: Time) -> anyhow::Result<()> {
        let campaigns: Vec<_> = self.store.campaigns().cloned().collect();
        for c in campaigns {
            self.engine.handle(
                now,
                Input::Campaign(CampaignCommand::Create {
                    campaign: c.id,
                    settings: Box::new(c.settings.clone()),
                }),
            )?;
            let since = now - c.settings.abandon_window();
            let answers = self.store.past_answers(c.id, since)?;
            self.engine.handle(
                now,
                Input::Campaign(CampaignCommand::Seed {
                    campaign: c.id,
                    answers,
                }),
            )?;
            let cmd = match c.state.as_str() {
                "running" => Some(CampaignCommand::Start { campaign: c.id }),
                "paused" => Some(CampaignCommand::Pause { campaign: c.id }),
                "stopped" => Some(CampaignCommand::Stop { campaign: c.id }),
                _ => None,
            };
            if let Some(cmd) = cmd {
                self.engine.handle(now, Input::Campaign(cmd))?;
            }
        }
        self.pump(now);
        Ok(())
    }

    /// The earliest time the core wants to run again.
    pub fn poll_timeout(&self) -> Option<Time> {
        match (self.engine.poll_timeout(), self.trunk.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: the trunk's due events and the engine's timers.
    pub fn tick(&mut self, now: Time) {
        while let Some(input) = self.trunk.poll(now) {
            if let Err(e) = self.engine.handle(now, input) {
                eprintln!("dialerd: trunk event: {e}");
            }
            self.pump(now);
        }
        let _ = self.engine.handle(now, Input::Tick);
        self.pump(now);
    }

    fn publish(
        &self,
        event: &'static str,
        campaign: Option<CampaignId>,
        agent: Option<AgentId>,
        private: bool,
        body: Value,
    ) {
        let mut body = body;
        if let Value::Object(m) = &mut body {
            m.insert("event".into(), event.into());
        }
        let _ = self.events.send(Published {
            event,
            campaign,
            agent,
            private,
            line: Arc::from(body.to_string()),
        });
    }

    /// Carry out the engine's outputs: every record is written and flushed before
    /// any call is placed or any answer given.
    pub fn pump(&mut self, now: Time) {
        loop {
            let mut actions = Vec::new();
            let mut failed: Vec<CallId> = Vec::new();
            let mut wrote = false;
            while let Some(o) = self.engine.poll_output() {
                match o {
                    Output::Persist(rec) => {
                        wrote = true;
                        if let Err(call) = self.persist(rec, now) {
                            failed.extend(call);
                        }
                    }
                    Output::LeadsWanted { campaign, count } => {
                        let leads = if self.storage_errors > 0 {
                            Vec::new()
                        } else {
                            self.store
                                .take_due(campaign, now, count)
                                .unwrap_or_else(|e| {
                                    eprintln!("dialerd: leads for campaign {campaign}: {e}");
                                    Vec::new()
                                })
                        };
                        let _ = self.engine.handle(
                            now,
                            Input::Campaign(CampaignCommand::AddLeads { campaign, leads }),
                        );
                    }
                    other => actions.push(other),
                }
            }
            if wrote {
                if let Err(e) = self.store.flush() {
                    eprintln!("dialerd: storage: {e}: no call is placed until it recovers");
                    self.storage_errors += 1;
                    failed.extend(actions.iter().filter_map(|a| match a {
                        Output::Originate { call, .. } => Some(*call),
                        _ => None,
                    }));
                } else {
                    self.storage_errors = 0;
                }
            }
            if actions.is_empty() && failed.is_empty() {
                return;
            }
            for a in actions {
                self.act(a, &failed, now);
            }
            for call in failed {
                // Not durable: never dialled. Counts as a network failure (no attempt).
                let _ = self.engine.handle(
                    now,
                    Input::Progress {
                        call,
                        progress: Progress::Failed {
                            outcome: Outcome::Network,
                            sip_status: None,
                        },
                    },
                );
            }
        }
    }

    /// Write one record. `Err(Some(call))` when a dial could not be made durable.
    fn persist(&mut self, rec: Record, now: Time) -> Result<(), Option<CallId>> {
        let r = match &rec {
            Record::Dialing { call, lead, .. } => self
                .store
                .dialing(*call, *lead)
                .map_err(|e| (e, Some(*call))),
            Record::Call(cdr) => self
                .store
                .call_ended(cdr)
                .map(|_| ())
                .map_err(|e| (e, None)),
            Record::Disposition {
                lead,
                agent,
                code,
                retracted,
                ..
            } => {
                let callback = self.pending_callbacks.remove(agent);
                self.store
                    .disposition(*lead, code, callback, *retracted, now)
                    .map(|_| ())
                    .map_err(|e| (e, None))
            }
        };
        r.map_err(|(e, call)| {
            eprintln!("dialerd: storage: {e}");
            self.storage_errors += 1;
            call
        })
    }

    fn act(&mut self, a: Output, failed: &[CallId], now: Time) {
        match a {
            Output::Originate { call, .. } => {
                if !failed.contains(&call) {
                    self.trunk.originate(now, call);
                }
            }
            Output::Hangup { call, .. } => self.trunk.hangup(call),
            Output::Bridge { call, .. } => self.trunk.bridged(now, call),
            Output::Event(e) => self.on_event(e),
            Output::Persist(_) | Output::LeadsWanted { .. } => unreachable!("handled in pump"),
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::CallOffered {
                call,
                campaign,
                lead,
                agent,
            } => {
                let _ = self.store.offered(lead);
                let mask = self
                    .store
                    .campaign(campaign)
                    .map(|c| c.settings.mask_numbers)
                    .unwrap_or(true);
                let mut body = json!({ "call": call, "campaign": campaign, "lead": lead, "agent": agent });
                if let Ok(l) = self.store.lead(lead) {
                    body["fields"] = Value::Object(l.fields);
                    if !mask {
                        body["number"] = l.number.into();
                    }
                }
                self.publish("call.offered", Some(campaign), Some(agent), true, body);
                self.publish(
                    "call.connected",
                    Some(campaign),
                    Some(agent),
                    false,
                    json!({ "call": call, "campaign": campaign, "lead": lead, "agent": agent }),
                );
            }
            Event::CallEnded {
                call,
                campaign,
                lead,
                outcome,
                agent,
            } => self.publish(
                "call.ended",
                Some(campaign),
                agent,
                false,
                json!({ "call": call, "campaign": campaign, "lead": lead, "outcome": outcome, "agent": agent }),
            ),
            Event::AgentState { agent, campaign, state } => self.publish(
                "agent.state",
                Some(campaign),
                Some(agent),
                false,
                json!({ "agent": agent, "campaign": campaign, "state": state }),
            ),
            Event::CampaignState { campaign, state } => self.publish(
                "campaign.state",
                Some(campaign),
                None,
                false,
                json!({ "campaign": campaign, "state": state }),
            ),
            Event::CampaignStats(s) => {
                let body = serde_json::to_value(s).unwrap_or(Value::Null);
                self.publish("campaign.stats", Some(s.campaign), None, false, body);
            }
        }
    }

    /// A control connection closed: its agents are logged out.
    pub fn connection_closed(&mut self, conn: u64, now: Time) {
        let gone: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, c)| **c == conn)
            .map(|(a, _)| *a)
            .collect();
        for agent in gone {
            self.agents.remove(&agent);
            let _ = self
                .engine
                .handle(now, Input::Agent(AgentCommand::Logout { agent }));
        }
        self.pump(now);
    }

    /// Ready agents with a callback due: dial it for them.
    pub fn dial_due_callbacks(&mut self, now: Time) {
        let ready: Vec<AgentId> = self
            .engine
            .agents()
            .iter()
            .filter(|a| a.state == crate::agents::AgentState::Ready)
            .map(|a| a.id)
            .collect();
        for agent in ready {
            let Ok(Some(lead)) = self.store.due_callback(agent, now) else {
                continue;
            };
            self.store.take(lead.id);
            let dialable = crate::campaign::DialableLead {
                id: lead.id,
                number: lead.number.clone(),
            };
            if self.engine.dial(now, agent, dialable).is_err() {
                self.store.release([lead.id]);
            }
        }
        self.pump(now);
    }
}
