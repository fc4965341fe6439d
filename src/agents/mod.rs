//! Agents: the state machine of each logged-in seat, and the queue of answered calls
//! waiting for one.
//!
//! ```text
//!   login ──► Paused ◄──── pause ────┐
//!               │ ready              │
//!               ▼                    │
//!   ┌──────►  Ready ── take ──► OnCall ── call ends ──► WrapUp
//!   │                                                    │
//!   └──────────────── disposition / ready ───────────────┘
//!   logout: from any state; an agent on a call is logged out when the call ends.
//! ```
//!
//! Ready agents are kept ordered by when they became ready, so the longest-idle agent
//! takes the next call.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::ids::{AgentId, CallId, CampaignId};
use crate::pacing::{AgentCounts, BusyAgent, BusyPhase};
use crate::time::Time;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentState {
    Paused,
    Ready,
    OnCall { call: CallId },
    WrapUp { call: CallId },
}

impl AgentState {
    /// Stable code for events and reports.
    pub const fn code(self) -> &'static str {
        match self {
            AgentState::Paused => "paused",
            AgentState::Ready => "ready",
            AgentState::OnCall { .. } => "on_call",
            AgentState::WrapUp { .. } => "wrap_up",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    #[error("agent {agent} is not logged in")]
    NotLoggedIn { agent: AgentId },
    #[error("agent {agent} is already logged in")]
    AlreadyLoggedIn { agent: AgentId },
    #[error("agent {agent} cannot go from {from} to {to}")]
    Transition {
        agent: AgentId,
        from: &'static str,
        to: &'static str,
    },
}

#[derive(Clone, Debug)]
pub struct Agent {
    pub id: AgentId,
    pub campaign: CampaignId,
    pub state: AgentState,
    /// When the agent entered `state`.
    pub since: Time,
    /// Log out as soon as the current call ends.
    pub logout_pending: bool,
}

/// All logged-in agents.
#[derive(Debug, Default)]
pub struct Agents {
    agents: BTreeMap<AgentId, Agent>,
    /// Ready agents per campaign, longest idle first.
    ready: HashMap<CampaignId, BTreeSet<(Time, AgentId)>>,
    counts: HashMap<CampaignId, AgentCounts>,
}

impl Agents {
    pub fn get(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(&id)
    }

    pub fn counts(&self, campaign: CampaignId) -> AgentCounts {
        self.counts.get(&campaign).copied().unwrap_or_default()
    }

    /// Busy agents (talking or wrapping up) of a campaign, into `out`.
    pub fn busy(&self, campaign: CampaignId, out: &mut Vec<BusyAgent>) {
        out.clear();
        out.extend(
            self.agents
                .values()
                .filter(|a| a.campaign == campaign)
                .filter_map(|a| {
                    let phase = match a.state {
                        AgentState::OnCall { .. } => BusyPhase::Talking,
                        AgentState::WrapUp { .. } => BusyPhase::WrapUp,
                        _ => return None,
                    };
                    Some(BusyAgent {
                        phase,
                        since: a.since,
                    })
                }),
        );
    }

    pub fn iter(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    fn count(&mut self, campaign: CampaignId, state: AgentState, delta: isize) {
        let c = self.counts.entry(campaign).or_default();
        let slot = match state {
            AgentState::Paused => &mut c.paused,
            AgentState::Ready => &mut c.ready,
            AgentState::OnCall { .. } => &mut c.on_call,
            AgentState::WrapUp { .. } => &mut c.wrap_up,
        };
        *slot = slot
            .checked_add_signed(delta)
            .expect("agent counts stay consistent");
    }

    fn set(&mut self, id: AgentId, state: AgentState, now: Time) {
        let a = self.agents.get_mut(&id).expect("caller checked");
        let (campaign, old, old_since) = (a.campaign, a.state, a.since);
        a.state = state;
        a.since = now;
        if old == AgentState::Ready {
            self.ready
                .entry(campaign)
                .or_default()
                .remove(&(old_since, id));
        }
        if state == AgentState::Ready {
            self.ready.entry(campaign).or_default().insert((now, id));
        }
        self.count(campaign, old, -1);
        self.count(campaign, state, 1);
    }

    /// Log an agent in to a campaign, paused until it says ready.
    pub fn login(
        &mut self,
        id: AgentId,
        campaign: CampaignId,
        now: Time,
    ) -> Result<(), AgentError> {
        if self.agents.contains_key(&id) {
            return Err(AgentError::AlreadyLoggedIn { agent: id });
        }
        self.agents.insert(
            id,
            Agent {
                id,
                campaign,
                state: AgentState::Paused,
                since: now,
                logout_pending: false,
            },
        );
        self.count(campaign, AgentState::Paused, 1);
        Ok(())
    }

    fn state(&self, id: AgentId) -> Result<AgentState, AgentError> {
        self.agents
            .get(&id)
            .map(|a| a.state)
            .ok_or(AgentError::NotLoggedIn { agent: id })
    }

    /// Ready from paused or wrap-up (the disposition ends wrap-up).
    pub fn ready(&mut self, id: AgentId, now: Time) -> Result<(), AgentError> {
        match self.state(id)? {
            AgentState::Ready => Ok(()),
            AgentState::Paused | AgentState::WrapUp { .. } => {
                self.set(id, AgentState::Ready, now);
                Ok(())
            }
            from @ AgentState::OnCall { .. } => Err(AgentError::Transition {
                agent: id,
                from: from.code(),
                to: "ready",
            }),
        }
    }

    /// Pause from ready or wrap-up.
    pub fn pause(&mut self, id: AgentId, now: Time) -> Result<(), AgentError> {
        match self.state(id)? {
            AgentState::Paused => Ok(()),
            AgentState::Ready | AgentState::WrapUp { .. } => {
                self.set(id, AgentState::Paused, now);
                Ok(())
            }
            from @ AgentState::OnCall { .. } => Err(AgentError::Transition {
                agent: id,
                from: from.code(),
                to: "paused",
            }),
        }
    }

    /// Hold an agent (ready, paused or wrapping up) for a call it dials itself.
    pub fn reserve(&mut self, id: AgentId, call: CallId, now: Time) -> Result<(), AgentError> {
        match self.state(id)? {
            from @ AgentState::OnCall { .. } => Err(AgentError::Transition {
                agent: id,
                from: from.code(),
                to: "on_call",
            }),
            _ => {
                self.set(id, AgentState::OnCall { call }, now);
                Ok(())
            }
        }
    }

    /// An agent's own call was not answered: back to ready or paused (or out, if it
    /// asked to leave). Returns the new state, `None` when logged out.
    pub fn release(&mut self, id: AgentId, ready: bool, now: Time) -> Option<AgentState> {
        let a = self.agents.get(&id)?;
        if !matches!(a.state, AgentState::OnCall { .. }) {
            return Some(a.state);
        }
        if a.logout_pending {
            self.remove(id);
            return None;
        }
        let state = if ready {
            AgentState::Ready
        } else {
            AgentState::Paused
        };
        self.set(id, state, now);
        Some(state)
    }

    /// Take the longest-idle ready agent of a campaign for `call`.
    pub fn take_longest_idle(
        &mut self,
        campaign: CampaignId,
        call: CallId,
        now: Time,
    ) -> Option<AgentId> {
        let &(since, id) = self.ready.get(&campaign)?.first()?;
        debug_assert_eq!(self.agents[&id].since, since);
        self.set(id, AgentState::OnCall { call }, now);
        Some(id)
    }

    /// The agent's call ended: wrap-up starts, or the agent leaves if it asked to.
    /// Returns the agent's campaign, or `None` if it was logged out.
    pub fn call_ended(&mut self, id: AgentId, now: Time) -> Option<CampaignId> {
        let a = self.agents.get(&id)?;
        let AgentState::OnCall { call } = a.state else {
            return Some(a.campaign);
        };
        if a.logout_pending {
            self.remove(id);
            return None;
        }
        let campaign = a.campaign;
        self.set(id, AgentState::WrapUp { call }, now);
        Some(campaign)
    }

    /// Log out. An agent on a call leaves when the call ends (returns `Ok(false)`).
    pub fn logout(&mut self, id: AgentId) -> Result<bool, AgentError> {
        match self.state(id)? {
            AgentState::OnCall { .. } => {
                self.agents.get_mut(&id).expect("checked").logout_pending = true;
                Ok(false)
            }
            _ => {
                self.remove(id);
                Ok(true)
            }
        }
    }

    fn remove(&mut self, id: AgentId) {
        if let Some(a) = self.agents.remove(&id) {
            if a.state == AgentState::Ready {
                self.ready
                    .entry(a.campaign)
                    .or_default()
                    .remove(&(a.since, id));
            }
            self.count(a.campaign, a.state, -1);
        }
    }
}

/// Persons answered and waiting for an agent, first come first served.
#[derive(Debug, Default)]
pub struct WaitQueue {
    calls: VecDeque<CallId>,
}

impl WaitQueue {
    pub fn push(&mut self, call: CallId) {
        self.calls.push_back(call);
    }

    pub fn front(&self) -> Option<&CallId> {
        self.calls.front()
    }

    pub fn pop(&mut self) -> Option<CallId> {
        self.calls.pop_front()
    }

    /// Remove a call that left the queue (abandoned, hung up).
    pub fn remove(&mut self, call: CallId) -> bool {
        match self.calls.iter().position(|c| *c == call) {
            Some(i) => {
                self.calls.remove(i);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const C: CampaignId = CampaignId(1);

    fn t(s: u64) -> Time {
        Time::SIM_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn longest_idle_agent_takes_the_call() {
        let mut a = Agents::default();
        for (i, at) in [(1, 5), (2, 1), (3, 3)] {
            a.login(AgentId(i), C, t(0)).unwrap();
            a.ready(AgentId(i), t(at)).unwrap();
        }
        assert_eq!(a.take_longest_idle(C, CallId(9), t(10)), Some(AgentId(2)));
        assert_eq!(a.take_longest_idle(C, CallId(10), t(10)), Some(AgentId(3)));
        let c = a.counts(C);
        assert_eq!((c.ready, c.on_call), (1, 2));
    }

    #[test]
    fn transitions_are_checked_and_counted() {
        let mut a = Agents::default();
        let id = AgentId(7);
        assert_eq!(
            a.ready(id, t(0)),
            Err(AgentError::NotLoggedIn { agent: id })
        );
        a.login(id, C, t(0)).unwrap();
        assert_eq!(
            a.login(id, C, t(0)),
            Err(AgentError::AlreadyLoggedIn { agent: id })
        );
        assert_eq!(
            a.take_longest_idle(C, CallId(1), t(1)),
            None,
            "paused agents take no calls"
        );
        a.ready(id, t(1)).unwrap();
        a.take_longest_idle(C, CallId(1), t(2)).unwrap();
        assert!(matches!(
            a.pause(id, t(3)),
            Err(AgentError::Transition { .. })
        ));
        assert_eq!(a.call_ended(id, t(4)), Some(C));
        assert_eq!(
            a.get(id).unwrap().state,
            AgentState::WrapUp { call: CallId(1) }
        );
        let mut busy = Vec::new();
        a.busy(C, &mut busy);
        assert_eq!(
            busy,
            vec![BusyAgent {
                phase: BusyPhase::WrapUp,
                since: t(4)
            }]
        );
        a.ready(id, t(5)).unwrap();
        assert_eq!(a.logout(id), Ok(true));
        assert_eq!(a.counts(C).logged_in(), 0);
    }

    #[test]
    fn logout_during_a_call_waits_for_its_end() {
        let mut a = Agents::default();
        let id = AgentId(1);
        a.login(id, C, t(0)).unwrap();
        a.ready(id, t(0)).unwrap();
        a.take_longest_idle(C, CallId(1), t(1)).unwrap();
        assert_eq!(a.logout(id), Ok(false));
        assert_eq!(a.call_ended(id, t(2)), None);
        assert!(a.get(id).is_none());
        assert_eq!(a.counts(C).logged_in(), 0);
    }

    #[test]
    fn wait_queue_is_fifo() {
        let mut q = WaitQueue::default();
        q.push(CallId(1));
        q.push(CallId(2));
        q.push(CallId(3));
        assert!(q.remove(CallId(2)));
        assert_eq!(q.pop(), Some(CallId(1)));
        assert_eq!(q.pop(), Some(CallId(3)));
        assert!(q.is_empty());
    }
}
