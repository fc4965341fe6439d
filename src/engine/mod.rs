//! The sans-IO engine: campaigns' dial loop, the call lifecycle, abandon accounting
//! and routing of answered calls to agents.
//!
//! The driver (the daemon's tokio shell, or the simulator) calls
//! [`Engine::handle`] with the time and an [`Input`], drains [`Engine::poll_output`],
//! and wakes the engine again at [`Engine::poll_timeout`] with [`Input::Tick`]. The
//! engine never reads the clock and never does IO, so every rule has one
//! implementation that both worlds run.
//!
//! Rules kept here:
//! - no call is originated unless the campaign has an agent logged in and not paused;
//! - a person (AMD verdict human or not sure, or any answer without AMD) who is not
//!   bridged to an agent within `max_wait_s` hears the abandon prompt, is hung up, and
//!   counts as abandoned; a person who hangs up while waiting also counts;
//! - AMD false positives are added to the abandon ledger at the campaign's known rate;
//! - unanswered calls ring `ring_timeout_s` (never under 15 s) before the engine gives up.

mod call;
pub mod io;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use jiff::tz::TimeZone;

use crate::agents::{AgentState, Agents, WaitQueue};
use crate::campaign::{CampaignSettings, DialableLead, zone};
use crate::config::EngineConfig;
use crate::ids::{AgentId, CallId, CampaignId, DetMap};
use crate::outcome::Outcome;
use crate::pacing::{AbandonLedger, BusyAgent, FlightCall, Observation, Pacer, View};
use crate::time::Time;
pub use call::{Call, CallState, Reserved};
pub use io::{
    AgentCommand, AmdVerdict, CallRecord, CampaignCommand, CampaignStats, EngineError, Event,
    Input, Output, PastAnswer, Progress, Record,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Created, not dialing yet.
    Idle,
    Running,
    Paused,
    Stopped,
}

impl RunState {
    pub const fn code(self) -> &'static str {
        match self {
            RunState::Idle => "idle",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Stopped => "stopped",
        }
    }
}

/// A campaign as the engine runs it.
struct Campaign {
    settings: CampaignSettings,
    /// `settings.time_zone`, resolved.
    zone: TimeZone,
    state: RunState,
    leads: VecDeque<DialableLead>,
    leads_requested: bool,
    /// The last decision wanted more calls than there were leads: new leads are dialled
    /// at once rather than at the next decision slot.
    starved: bool,
    pacer: Box<dyn Pacer>,
    ledger: AbandonLedger,
    waiting: WaitQueue,
    in_flight: usize,
    connected: usize,
    last_decision: Option<Time>,
    decision_due: Option<Time>,
    dirty: bool,
    stats: CampaignStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    RingTimeout(CallId),
    AmdTimeout(CallId),
    WaitTimeout(CallId),
    Decide(CampaignId),
    Stats(CampaignId),
}

/// The engine. See the module documentation.
pub struct Engine {
    cfg: EngineConfig,
    now: Time,
    campaigns: BTreeMap<CampaignId, Campaign>,
    agents: Agents,
    calls: DetMap<CallId, Call>,
    next_call: u64,
    total_in_flight: usize,
    timers: BinaryHeap<Reverse<(Time, Timer)>>,
    out: VecDeque<Output>,
    busy_scratch: Vec<BusyAgent>,
    flight_scratch: Vec<FlightCall>,
    wrapping: BTreeMap<AgentId, Wrap>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            cfg,
            now: Time(0),
            campaigns: BTreeMap::new(),
            agents: Agents::default(),
            calls: DetMap::default(),
            next_call: 1,
            total_in_flight: 0,
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            busy_scratch: Vec::new(),
            flight_scratch: Vec::new(),
            wrapping: BTreeMap::new(),
        }
    }

    /// Start numbering calls after `last` (the store's highest call id on restart).
    pub fn set_next_call_id(&mut self, next: u64) {
        self.next_call = self.next_call.max(next);
    }

    /// Feed one input that happened at `now`. Times never go backwards: an earlier
    /// `now` is treated as the latest time seen.
    pub fn handle(&mut self, now: Time, input: Input) -> Result<(), EngineError> {
        self.now = self.now.max(now);
        self.fire_timers();
        let result = match input {
            Input::Tick => Ok(()),
            Input::Progress { call, progress } => self.on_progress(call, progress),
            Input::Amd { call, verdict } => self.on_amd(call, verdict),
            Input::Hangup { call } => self.on_hangup(call),
            Input::Dial { agent, lead } => self.on_dial(agent, lead).map(|_| ()),
            Input::Drop { call } => self.on_drop(call),
            Input::Agent(cmd) => self.on_agent(cmd),
            Input::Campaign(cmd) => self.on_campaign(cmd),
        };
        self.run_decisions();
        result
    }

    /// [`Input::Dial`], returning the new call's id.
    pub fn dial(
        &mut self,
        now: Time,
        agent: AgentId,
        lead: DialableLead,
    ) -> Result<CallId, EngineError> {
        self.now = self.now.max(now);
        self.fire_timers();
        let r = self.on_dial(agent, lead);
        self.run_decisions();
        r
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest time the engine wants a `Tick`.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn agents(&self) -> &Agents {
        &self.agents
    }

    pub fn call(&self, id: CallId) -> Option<&Call> {
        self.calls.get(&id)
    }

    /// Every call up, in id order.
    pub fn call_ids(&self) -> Vec<CallId> {
        let mut v: Vec<CallId> = self.calls.keys().copied().collect();
        v.sort();
        v
    }

    pub fn calls_in_flight(&self) -> usize {
        self.total_in_flight
    }

    /// A campaign's figures now.
    pub fn stats(&mut self, campaign: CampaignId) -> Option<CampaignStats> {
        let now = self.now;
        let counts = self.agents.counts(campaign);
        let c = self.campaigns.get_mut(&campaign)?;
        let a = c.ledger.status(now);
        Some(CampaignStats {
            at: now,
            abandon_rate: a.rate,
            abandon_upper: c.ledger.upper(now),
            in_flight: c.in_flight,
            waiting: c.waiting.len(),
            connected: c.connected,
            agents_ready: counts.ready,
            agents_busy: counts.on_call + counts.wrap_up,
            dial_level: c.pacer.dial_level(),
            ..c.stats
        })
    }

    pub fn campaign_state(&self, campaign: CampaignId) -> Option<RunState> {
        self.campaigns.get(&campaign).map(|c| c.state)
    }

    fn timer(&mut self, at: Time, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    fn emit(&mut self, o: Output) {
        self.out.push_back(o);
    }

    fn fire_timers(&mut self) {
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if at > self.now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::RingTimeout(call) => {
                    if self
                        .calls
                        .get(&call)
                        .is_some_and(|c| matches!(c.state, CallState::Dialing | CallState::Ringing))
                    {
                        self.end_unanswered(call, Outcome::NoAnswer, None, true);
                    }
                }
                Timer::AmdTimeout(call) => {
                    if self
                        .calls
                        .get(&call)
                        .is_some_and(|c| c.state == CallState::Detecting)
                    {
                        // No verdict in time: treat as a person, as the rules require.
                        let _ = self.on_amd(call, AmdVerdict::NotSure);
                    }
                }
                Timer::WaitTimeout(call) => {
                    if self
                        .calls
                        .get(&call)
                        .is_some_and(|c| c.state == CallState::Waiting)
                    {
                        self.abandon(call, true);
                    }
                }
                Timer::Decide(campaign) => {
                    if let Some(c) = self.campaigns.get_mut(&campaign)
                        && c.decision_due.is_some_and(|d| d <= at)
                    {
                        c.decision_due = None;
                        c.dirty = true;
                    }
                }
                Timer::Stats(campaign) => self.emit_stats(campaign),
            }
        }
    }

    fn emit_stats(&mut self, campaign: CampaignId) {
        let Some(stats) = self.stats(campaign) else {
            return;
        };
        let running = self
            .campaigns
            .get(&campaign)
            .is_some_and(|c| c.state == RunState::Running);
        self.emit(Output::Event(Event::CampaignStats(stats)));
        if running {
            let at = self.now + std::time::Duration::from_secs(self.cfg.stats_interval_s);
            self.timer(at, Timer::Stats(campaign));
        }
    }

    fn observe(&mut self, campaign: CampaignId, obs: Observation) {
        let now = self.now;
        if let Some(c) = self.campaigns.get_mut(&campaign) {
            c.pacer.observe(now, obs);
            c.dirty = true;
        }
    }

    fn campaign_mut(&mut self, campaign: CampaignId) -> Result<&mut Campaign, EngineError> {
        self.campaigns
            .get_mut(&campaign)
            .ok_or(EngineError::UnknownCampaign { campaign })
    }

    // ----- calls -----

    fn on_progress(&mut self, id: CallId, progress: Progress) -> Result<(), EngineError> {
        let now = self.now;
        let call = self
            .calls
            .get_mut(&id)
            .ok_or(EngineError::UnknownCall { call: id })?;
        let campaign = call.campaign;
        match (progress, call.state) {
            (Progress::Ringing, CallState::Dialing) => {
                call.state = CallState::Ringing;
                call.ringing_at = Some(now);
            }
            (Progress::Ringing, _) => {}
            (Progress::Answered, CallState::Dialing | CallState::Ringing)
                if call.reserved.is_some() =>
            {
                let agent = call.reserved.expect("guarded").agent;
                call.answered_at = Some(now);
                self.total_in_flight -= 1;
                self.bridge(id, agent);
            }
            (Progress::Answered, CallState::Dialing | CallState::Ringing) => {
                call.answered_at = Some(now);
                let ring_s = now.secs_since(call.dialed_at);
                self.observe(
                    campaign,
                    Observation::RingEnded {
                        ring_s,
                        answered: true,
                    },
                );
                let amd = self
                    .campaigns
                    .get(&campaign)
                    .is_some_and(|c| c.settings.amd);
                if amd {
                    let timeout = self.campaigns[&campaign].settings.amd_timeout();
                    self.calls.get_mut(&id).expect("present").state = CallState::Detecting;
                    self.timer(now + timeout, Timer::AmdTimeout(id));
                } else {
                    self.observe(
                        campaign,
                        Observation::AmdDecided {
                            amd_s: 0.0,
                            to_agent: true,
                        },
                    );
                    self.person_answered(id, false);
                }
            }
            (Progress::Answered, _) => {}
            (
                Progress::Failed {
                    outcome,
                    sip_status,
                },
                CallState::Dialing | CallState::Ringing,
            ) => {
                self.end_unanswered(id, outcome, sip_status, false);
            }
            (Progress::Failed { .. }, _) => {
                // The leg failed after answer: as if the far end hung up.
                self.on_hangup(id)?;
            }
        }
        Ok(())
    }

    /// A call that was never answered ends: busy, no answer, failure.
    fn end_unanswered(
        &mut self,
        id: CallId,
        outcome: Outcome,
        sip_status: Option<u16>,
        hangup: bool,
    ) {
        let now = self.now;
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let ring_s = now.secs_since(call.dialed_at);
        let campaign = call.campaign;
        let reserved = call.reserved;
        if hangup {
            self.emit(Output::Hangup {
                call: id,
                outcome,
                prompt: None,
            });
        }
        if let Some(r) = reserved {
            self.finish(id, outcome, sip_status);
            let state = self
                .agents
                .release(r.agent, r.was_ready, now)
                .map_or("logged_out", AgentState::code);
            self.emit(Output::Event(Event::AgentState {
                agent: r.agent,
                campaign,
                state,
            }));
            if state == "ready" {
                self.serve_waiting(campaign);
            }
            self.mark_dirty(campaign);
            return;
        }
        self.observe(
            campaign,
            Observation::RingEnded {
                ring_s,
                answered: false,
            },
        );
        self.finish(id, outcome, sip_status);
    }

    fn on_amd(&mut self, id: CallId, verdict: AmdVerdict) -> Result<(), EngineError> {
        let now = self.now;
        let call = self
            .calls
            .get_mut(&id)
            .ok_or(EngineError::UnknownCall { call: id })?;
        if call.state != CallState::Detecting {
            return Ok(());
        }
        call.amd_at = Some(now);
        call.amd_verdict = Some(verdict);
        let campaign = call.campaign;
        let amd_s = now.secs_since(call.answered_at.unwrap_or(now));
        let to_agent = verdict != AmdVerdict::Machine;
        self.observe(campaign, Observation::AmdDecided { amd_s, to_agent });
        if to_agent {
            self.person_answered(id, true);
        } else {
            if let Some(c) = self.campaigns.get_mut(&campaign) {
                c.stats.machines += 1;
            }
            self.emit(Output::Hangup {
                call: id,
                outcome: Outcome::Machine,
                prompt: None,
            });
            self.finish(id, Outcome::Machine, None);
        }
        Ok(())
    }

    /// A person is on the line: bridge to the longest-idle agent, or queue.
    fn person_answered(&mut self, id: CallId, after_amd: bool) {
        let now = self.now;
        let call = self.calls.get_mut(&id).expect("caller checked");
        call.state = CallState::Waiting;
        call.waiting_since = Some(now);
        let campaign = call.campaign;
        let c = self
            .campaigns
            .get_mut(&campaign)
            .expect("calls belong to campaigns");
        c.in_flight -= 1;
        self.total_in_flight -= 1;
        c.ledger.record_live(now, after_amd);
        c.stats.live_answers += 1;
        if let Some(agent) = self.agents.take_longest_idle(campaign, id, now) {
            self.bridge(id, agent);
        } else {
            let max_wait = c.settings.max_wait();
            c.waiting.push(id);
            self.timer(now + max_wait, Timer::WaitTimeout(id));
        }
    }

    fn bridge(&mut self, id: CallId, agent: AgentId) {
        let now = self.now;
        let call = self.calls.get_mut(&id).expect("caller checked");
        call.state = CallState::Bridged { agent };
        call.bridged_at = Some(now);
        let (campaign, lead) = (call.campaign, call.lead);
        if let Some(c) = self.campaigns.get_mut(&campaign) {
            c.connected += 1;
            c.dirty = true;
        }
        self.emit(Output::Bridge { call: id, agent });
        self.emit(Output::Event(Event::CallOffered {
            call: id,
            campaign,
            lead,
            agent,
        }));
        self.emit(Output::Event(Event::AgentState {
            agent,
            campaign,
            state: "on_call",
        }));
    }

    /// A waiting person is abandoned: by us at the deadline (`hang_up`, with the
    /// prompt), or because they hung up first.
    fn abandon(&mut self, id: CallId, hang_up: bool) {
        let now = self.now;
        let campaign = self.calls[&id].campaign;
        let c = self
            .campaigns
            .get_mut(&campaign)
            .expect("calls belong to campaigns");
        c.waiting.remove(id);
        c.ledger.record_abandon(now);
        c.stats.abandoned += 1;
        let prompt = c.settings.abandon_prompt.clone();
        self.observe(campaign, Observation::Abandoned);
        if hang_up {
            self.emit(Output::Hangup {
                call: id,
                outcome: Outcome::Abandoned,
                prompt,
            });
        }
        self.finish(id, Outcome::Abandoned, None);
    }

    fn on_hangup(&mut self, id: CallId) -> Result<(), EngineError> {
        let now = self.now;
        let call = self
            .calls
            .get(&id)
            .ok_or(EngineError::UnknownCall { call: id })?;
        match call.state {
            CallState::Dialing | CallState::Ringing => {
                self.end_unanswered(id, Outcome::Network, None, false);
            }
            CallState::Detecting => {
                // Hung up before the verdict: answered by someone who did not wait for
                // us. Counted as a live answer abandoned, the cautious reading.
                let campaign = call.campaign;
                let c = self
                    .campaigns
                    .get_mut(&campaign)
                    .expect("calls belong to campaigns");
                c.in_flight -= 1;
                self.total_in_flight -= 1;
                c.ledger.record_live(now, false);
                c.ledger.record_abandon(now);
                c.stats.live_answers += 1;
                c.stats.abandoned += 1;
                self.calls.get_mut(&id).expect("present").state = CallState::Waiting;
                self.observe(campaign, Observation::Abandoned);
                self.finish(id, Outcome::Abandoned, None);
            }
            CallState::Waiting => self.abandon(id, false),
            CallState::Bridged { agent } => {
                let talk_s = now.secs_since(call.bridged_at.unwrap_or(now));
                let (campaign, lead) = (call.campaign, call.lead);
                let after_amd = call.amd_verdict.is_some();
                let counted = call.reserved.is_none();
                self.finish(id, Outcome::Connected, None);
                let wrap = Wrap {
                    campaign,
                    lead,
                    since: now,
                    after_amd,
                    counted,
                };
                self.wrapping.insert(agent, wrap);
                self.observe(campaign, Observation::TalkEnded { talk_s });
                if let Some(c) = self.campaigns.get_mut(&campaign) {
                    c.connected -= 1;
                }
                let state = match self.agents.call_ended(agent, now) {
                    Some(_) => "wrap_up",
                    None => {
                        self.wrap_done(agent);
                        "logged_out"
                    }
                };
                self.emit(Output::Event(Event::AgentState {
                    agent,
                    campaign,
                    state,
                }));
            }
        }
        Ok(())
    }

    /// Remove a call and write its CDR.
    fn finish(&mut self, id: CallId, outcome: Outcome, sip_status: Option<u16>) {
        let now = self.now;
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        if call.paced()
            && let Some(c) = self.campaigns.get_mut(&call.campaign)
        {
            c.in_flight -= 1;
        }
        if call.in_flight() {
            self.total_in_flight -= 1;
        }
        let record = call.record(now, outcome, sip_status);
        let agent = record.agent;
        self.emit(Output::Persist(Record::Call(record)));
        self.emit(Output::Event(Event::CallEnded {
            call: id,
            campaign: call.campaign,
            lead: call.lead,
            outcome,
            agent,
        }));
    }

    /// An agent dials a lead itself.
    fn on_dial(&mut self, agent: AgentId, lead: DialableLead) -> Result<CallId, EngineError> {
        let now = self.now;
        let a = self
            .agents
            .get(agent)
            .ok_or(crate::agents::AgentError::NotLoggedIn { agent })?;
        let (campaign, before) = (a.campaign, a.state);
        if let AgentState::OnCall { .. } = before {
            return Err(EngineError::AgentBusy {
                agent,
                state: before.code(),
            });
        }
        if self.total_in_flight >= self.cfg.max_calls {
            return Err(EngineError::TooManyCalls {
                calls: self.total_in_flight,
            });
        }
        let c = self.campaign_mut(campaign)?;
        if c.settings.calling_window.left_s(now, &c.zone).is_none() {
            return Err(EngineError::OutsideCallingWindow { campaign });
        }
        let id = CallId(self.next_call);
        self.agents.reserve(agent, id, now)?;
        if matches!(before, AgentState::WrapUp { .. }) {
            self.wrap_done(agent);
        }
        self.emit(Output::Event(Event::AgentState {
            agent,
            campaign,
            state: "on_call",
        }));
        self.place_call(
            campaign,
            lead,
            Some(Reserved {
                agent,
                was_ready: before == AgentState::Ready,
            }),
        );
        self.mark_dirty(campaign);
        Ok(id)
    }

    /// End a call on request.
    fn on_drop(&mut self, id: CallId) -> Result<(), EngineError> {
        let call = self
            .calls
            .get(&id)
            .ok_or(EngineError::UnknownCall { call: id })?;
        match call.state {
            CallState::Dialing | CallState::Ringing => {
                self.end_unanswered(id, Outcome::Canceled, None, true);
                Ok(())
            }
            CallState::Detecting | CallState::Waiting => {
                // Hanging up on a person nobody is talking to is an abandon.
                self.emit(Output::Hangup {
                    call: id,
                    outcome: Outcome::Abandoned,
                    prompt: None,
                });
                self.on_hangup(id)
            }
            CallState::Bridged { .. } => {
                self.emit(Output::Hangup {
                    call: id,
                    outcome: Outcome::Connected,
                    prompt: None,
                });
                self.on_hangup(id)
            }
        }
    }

    // ----- agents -----

    fn on_agent(&mut self, cmd: AgentCommand) -> Result<(), EngineError> {
        let now = self.now;
        let agent = match &cmd {
            AgentCommand::Login { agent, .. }
            | AgentCommand::Ready { agent }
            | AgentCommand::Pause { agent }
            | AgentCommand::Logout { agent }
            | AgentCommand::Disposition { agent, .. } => *agent,
        };
        let before = self.agents.get(agent).map(|a| a.state);
        match cmd {
            AgentCommand::Login { campaign, .. } => {
                if !self.campaigns.contains_key(&campaign) {
                    return Err(EngineError::UnknownCampaign { campaign });
                }
                self.agents.login(agent, campaign, now)?;
            }
            AgentCommand::Ready { .. } => self.agents.ready(agent, now)?,
            AgentCommand::Pause { .. } => self.agents.pause(agent, now)?,
            AgentCommand::Logout { .. } => {
                let campaign = self.agents.get(agent).map(|a| a.campaign);
                if self.agents.logout(agent)? {
                    self.wrap_done(agent);
                    if let Some(campaign) = campaign {
                        self.emit(Output::Event(Event::AgentState {
                            agent,
                            campaign,
                            state: "logged_out",
                        }));
                        self.mark_dirty(campaign);
                    }
                }
                return Ok(());
            }
            AgentCommand::Disposition {
                code, then_ready, ..
            } => {
                let (Some(AgentState::WrapUp { call }), Some(wrap)) =
                    (before, self.wrapping.get(&agent))
                else {
                    return Err(EngineError::NoCallToDisposition { agent });
                };
                let (lead, after_amd, campaign, counted) =
                    (wrap.lead, wrap.after_amd, wrap.campaign, wrap.counted);
                let mut retracted = None;
                if code == MACHINE_DISPOSITION && counted {
                    // The agent found a machine that AMD let through: not a live answer.
                    if let Some(c) = self.campaigns.get_mut(&campaign) {
                        c.ledger.retract_live(now, after_amd);
                        c.stats.live_answers = c.stats.live_answers.saturating_sub(1);
                        c.stats.machines += 1;
                    }
                    retracted = Some(after_amd);
                }
                self.emit(Output::Persist(Record::Disposition {
                    call,
                    lead,
                    agent,
                    code,
                    at: now,
                    retracted,
                }));
                if then_ready {
                    self.agents.ready(agent, now)?;
                } else {
                    self.agents.pause(agent, now)?;
                }
            }
        }
        let a = self.agents.get(agent).expect("logged in");
        let (campaign, state) = (a.campaign, a.state);
        if matches!(before, Some(AgentState::WrapUp { .. }))
            && !matches!(state, AgentState::WrapUp { .. })
        {
            self.wrap_done(agent);
        }
        if before != Some(state) {
            self.emit(Output::Event(Event::AgentState {
                agent,
                campaign,
                state: state.code(),
            }));
        }
        if state == AgentState::Ready {
            self.serve_waiting(campaign);
        }
        self.mark_dirty(campaign);
        Ok(())
    }

    /// An agent left wrap-up: tell pacing how long it lasted.
    fn wrap_done(&mut self, agent: AgentId) {
        if let Some(w) = self.wrapping.remove(&agent) {
            let wrap_s = self.now.secs_since(w.since);
            self.observe(w.campaign, Observation::WrapEnded { wrap_s });
        }
    }

    /// A ready agent takes the person who has waited longest, if any.
    fn serve_waiting(&mut self, campaign: CampaignId) {
        let now = self.now;
        while let Some(c) = self.campaigns.get_mut(&campaign) {
            let Some(&call) = c.waiting.front() else {
                return;
            };
            let Some(agent) = self.agents.take_longest_idle(campaign, call, now) else {
                return;
            };
            c.waiting.pop();
            self.bridge(call, agent);
        }
    }

    fn mark_dirty(&mut self, campaign: CampaignId) {
        if let Some(c) = self.campaigns.get_mut(&campaign) {
            c.dirty = true;
        }
    }

    // ----- campaigns -----

    fn on_campaign(&mut self, cmd: CampaignCommand) -> Result<(), EngineError> {
        let now = self.now;
        match cmd {
            CampaignCommand::Create { campaign, settings } => {
                if self.campaigns.contains_key(&campaign) {
                    return Err(EngineError::CampaignExists { campaign });
                }
                settings
                    .validate()
                    .map_err(|e| EngineError::InvalidSettings { why: e.to_string() })?;
                let ledger = AbandonLedger::new(
                    settings.abandon_window(),
                    settings.pacing.confidence,
                    settings.counted_false_positive(),
                );
                let pacer = settings.pacing.build();
                let zone = zone(&settings.time_zone).unwrap_or(TimeZone::UTC);
                self.campaigns.insert(
                    campaign,
                    Campaign {
                        zone,
                        settings: *settings,
                        state: RunState::Idle,
                        leads: VecDeque::new(),
                        leads_requested: false,
                        starved: false,
                        pacer,
                        ledger,
                        waiting: WaitQueue::default(),
                        in_flight: 0,
                        connected: 0,
                        last_decision: None,
                        decision_due: None,
                        dirty: false,
                        stats: CampaignStats {
                            campaign,
                            ..CampaignStats::default()
                        },
                    },
                );
                self.emit(Output::Event(Event::CampaignState {
                    campaign,
                    state: RunState::Idle.code(),
                }));
            }
            CampaignCommand::Start { campaign } => {
                self.set_state(campaign, RunState::Running)?;
                let buffer = self.cfg.lead_buffer;
                let c = self.campaign_mut(campaign)?;
                if !c.leads_requested && c.leads.len() < buffer {
                    c.leads_requested = true;
                    let count = buffer - c.leads.len();
                    self.emit(Output::LeadsWanted { campaign, count });
                }
                let at = now + std::time::Duration::from_secs(self.cfg.stats_interval_s);
                self.timer(at, Timer::Stats(campaign));
            }
            CampaignCommand::Pause { campaign } => self.set_state(campaign, RunState::Paused)?,
            CampaignCommand::Stop { campaign } => {
                self.set_state(campaign, RunState::Stopped)?;
                // Calls still ringing are canceled; answered calls run their course.
                let ringing: Vec<CallId> = self
                    .calls
                    .values()
                    .filter(|c| {
                        c.campaign == campaign
                            && matches!(c.state, CallState::Dialing | CallState::Ringing)
                    })
                    .map(|c| c.id)
                    .collect();
                for call in ringing {
                    self.end_unanswered(call, Outcome::Canceled, None, true);
                }
                self.campaign_mut(campaign)?.leads.clear();
            }
            CampaignCommand::Delete { campaign } => {
                let c = self.campaign_mut(campaign)?;
                if c.state == RunState::Running {
                    return Err(EngineError::CampaignRunning { campaign });
                }
                let in_use = self.calls.values().any(|k| k.campaign == campaign)
                    || self.agents.counts(campaign).logged_in() > 0;
                if in_use {
                    return Err(EngineError::CampaignInUse { campaign });
                }
                self.campaigns.remove(&campaign);
            }
            CampaignCommand::Withdraw { campaign, lead } => {
                self.campaign_mut(campaign)?.leads.retain(|l| l.id != lead);
            }
            CampaignCommand::Update { campaign, settings } => {
                settings
                    .validate()
                    .map_err(|e| EngineError::InvalidSettings { why: e.to_string() })?;
                let c = self.campaign_mut(campaign)?;
                if c.state == RunState::Running {
                    return Err(EngineError::CampaignRunning { campaign });
                }
                if c.settings.pacing != settings.pacing {
                    c.pacer = settings.pacing.build();
                }
                if c.settings.abandon_window() != settings.abandon_window()
                    || c.settings.pacing.confidence != settings.pacing.confidence
                    || c.settings.counted_false_positive() != settings.counted_false_positive()
                {
                    // The ledger's rules changed; the daemon seeds it again from the
                    // call records.
                    c.ledger = AbandonLedger::new(
                        settings.abandon_window(),
                        settings.pacing.confidence,
                        settings.counted_false_positive(),
                    );
                }
                c.zone = zone(&settings.time_zone).unwrap_or(TimeZone::UTC);
                c.settings = *settings;
            }
            CampaignCommand::Seed { campaign, answers } => {
                let c = self.campaign_mut(campaign)?;
                for a in answers {
                    c.ledger.record_live(a.at, a.after_amd);
                    if a.abandoned {
                        c.ledger.record_abandon(a.at);
                    }
                    c.stats.live_answers += 1;
                    c.stats.abandoned += u64::from(a.abandoned);
                }
            }
            CampaignCommand::AddLeads { campaign, leads } => {
                let c = self.campaign_mut(campaign)?;
                c.leads.extend(leads);
                c.leads_requested = false;
                c.dirty = true;
                if std::mem::take(&mut c.starved) {
                    c.last_decision = None;
                }
            }
        }
        Ok(())
    }

    fn set_state(&mut self, campaign: CampaignId, state: RunState) -> Result<(), EngineError> {
        let c = self.campaign_mut(campaign)?;
        if c.state == state {
            return Ok(());
        }
        c.state = state;
        c.dirty = true;
        self.emit(Output::Event(Event::CampaignState {
            campaign,
            state: state.code(),
        }));
        Ok(())
    }

    // ----- pacing -----

    /// Run the pacing decision of every campaign that needs one now.
    fn run_decisions(&mut self) {
        let now = self.now;
        let gap = std::time::Duration::from_millis(self.cfg.decision_gap_ms);
        let ids: Vec<CampaignId> = self
            .campaigns
            .iter()
            .filter(|(_, c)| c.dirty && c.state == RunState::Running)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let c = self.campaigns.get_mut(&id).expect("listed");
            c.dirty = false;
            match c.last_decision {
                Some(last) if last + gap > now => {
                    let at = last + gap;
                    if c.decision_due.is_none_or(|d| d > at) {
                        c.decision_due = Some(at);
                        self.timer(at, Timer::Decide(id));
                    }
                }
                _ => self.decide(id),
            }
        }
    }

    fn decide(&mut self, id: CampaignId) {
        let now = self.now;
        let interval = std::time::Duration::from_millis(self.cfg.decision_interval_ms);
        let counts = self.agents.counts(id);
        let c = self.campaigns.get_mut(&id).expect("caller checked");
        c.last_decision = Some(now);
        // The periodic decision: time alone changes what predictive pacing expects.
        if c.decision_due.is_none_or(|d| d > now + interval) {
            c.decision_due = Some(now + interval);
            self.timers
                .push(Reverse((now + interval, Timer::Decide(id))));
        }
        if counts.active() == 0 {
            return; // Never dial without an agent able to take the call.
        }
        let window_left_s = c.settings.calling_window.left_s(now, &c.zone);
        if window_left_s.is_none() {
            return; // Outside the calling window.
        }
        let lines =
            (c.settings.pacing.max_lines_per_agent * counts.active() as f64).floor() as usize;
        let trunk_room = self.cfg.max_calls.saturating_sub(self.total_in_flight);
        let wants_detail = c.pacer.wants_detail();
        if wants_detail {
            self.agents.busy(id, &mut self.busy_scratch);
            self.flight_scratch.clear();
            self.flight_scratch.extend(
                self.calls
                    .values()
                    .filter(|k| k.campaign == id)
                    .filter_map(Call::flight),
            );
        }
        let c = self.campaigns.get_mut(&id).expect("caller checked");
        let view = View {
            now,
            agents: counts,
            busy: if wants_detail {
                &self.busy_scratch
            } else {
                &[]
            },
            calls: if wants_detail {
                &self.flight_scratch
            } else {
                &[]
            },
            in_flight: c.in_flight,
            waiting: c.waiting.len(),
            connected: c.connected,
            abandon: c.ledger.status(now),
            max_in_flight: lines.min(c.in_flight + trunk_room),
            window_left_s,
        };
        let wanted = c.pacer.decide(&view);
        let n = wanted.min(c.leads.len());
        c.starved = wanted > n;
        let leads: Vec<DialableLead> = c.leads.drain(..n).collect();
        for lead in leads {
            self.place_call(id, lead, None);
        }
        let buffer = self.cfg.lead_buffer;
        let c = self.campaigns.get_mut(&id).expect("caller checked");
        if !c.leads_requested && c.leads.len() < buffer / 2 + wanted.saturating_sub(n) {
            c.leads_requested = true;
            let count = buffer - c.leads.len().min(buffer);
            self.emit(Output::LeadsWanted {
                campaign: id,
                count: count.max(1),
            });
        }
    }

    fn place_call(&mut self, campaign: CampaignId, lead: DialableLead, reserved: Option<Reserved>) {
        let now = self.now;
        let id = CallId(self.next_call);
        self.next_call += 1;
        let c = self.campaigns.get_mut(&campaign).expect("caller checked");
        c.stats.dials += 1;
        self.total_in_flight += 1;
        let ring_timeout = c.settings.ring_timeout();
        let caller_id = c.settings.caller_id_for(c.stats.dials - 1).to_owned();
        if reserved.is_none() {
            c.in_flight += 1;
            c.pacer.observe(now, Observation::Dialed);
        }
        let mut call = Call::new(id, campaign, lead.id, now);
        call.reserved = reserved;
        self.calls.insert(id, call);
        self.emit(Output::Persist(Record::Dialing {
            call: id,
            campaign,
            lead: lead.id,
            at: now,
        }));
        self.emit(Output::Originate {
            call: id,
            campaign,
            lead: lead.id,
            number: lead.number,
            caller_id,
            ring_timeout,
            agent: reserved.map(|r| r.agent),
        });
        self.timer(now + ring_timeout, Timer::RingTimeout(id));
    }
}

/// The disposition an agent gives a call that an answering machine took: the call is
/// taken back out of the live answers.
pub const MACHINE_DISPOSITION: &str = "machine";

/// An agent in wrap-up: which lead it is wrapping, since when.
struct Wrap {
    campaign: CampaignId,
    lead: crate::ids::LeadId,
    since: Time,
    /// The call reached the agent on an AMD verdict.
    after_amd: bool,
    /// The call counted as a live answer (not the agent's own call).
    counted: bool,
}

// The daemon moves the engine into its own task: it must stay `Send`.
const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<Engine>();
};
