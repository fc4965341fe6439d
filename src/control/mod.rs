//! The control socket: the JSON-lines protocol (pure, in `codec`) and the server that
//! carries requests to the daemon's core and events back (`server`). Business rules
//! live in the core (`daemon`); this layer knows roles, framing and subscriptions.
//!
//! Roles: the Unix socket is `crm` + `supervisor`; a TCP connection gets the role of
//! the token its first request (`auth`) presents. `agent` tokens act for one agent.

pub mod client;
pub mod codec;
pub mod server;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::config::Role;
use crate::ids::{AgentId, CampaignId};
pub use codec::{ErrorBody, Request};

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The connection (unique for the daemon's life).
    pub conn: u64,
    pub roles: Vec<Role>,
    /// For `agent` tokens: the agent this connection acts as.
    pub agent: Option<AgentId>,
}

impl Session {
    pub fn has(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }
}

/// A message from a connection to the core.
#[derive(Debug)]
pub enum ToCore {
    Request {
        session: Session,
        req: Request,
        reply: oneshot::Sender<Result<Value, ErrorBody>>,
    },
    /// The connection closed: its agent (if any) is logged out.
    Closed { conn: u64 },
}

/// An event as published to subscribers: what filters need, and the line to send.
#[derive(Clone, Debug)]
pub struct Published {
    pub event: &'static str,
    pub campaign: Option<CampaignId>,
    pub agent: Option<AgentId>,
    /// Sent only to this agent's connections (and to CRM/supervisors).
    pub private: bool,
    pub line: Arc<str>,
}

/// `events.subscribe` arguments: empty lists mean everything.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default)]
    pub campaigns: Vec<CampaignId>,
    #[serde(default)]
    pub agents: Vec<AgentId>,
    #[serde(default)]
    pub events: Vec<String>,
}

impl Filter {
    pub fn admits(&self, e: &Published, session: &Session) -> bool {
        if session.roles == [Role::Agent] {
            // Agents see their own events and their campaign's state, nothing else.
            let mine = e.agent.is_some() && e.agent == session.agent;
            if !(mine || e.event == "campaign.state") {
                return false;
            }
        }
        (self.campaigns.is_empty() || e.campaign.is_some_and(|c| self.campaigns.contains(&c)))
            && (self.agents.is_empty() || e.agent.is_some_and(|a| self.agents.contains(&a)))
            && (self.events.is_empty() || self.events.iter().any(|n| n == e.event))
    }
}

/// Every command, for `unknown_command` and the role table.
pub const COMMANDS: &[&str] = &[
    "auth",
    "ping",
    "campaign.create",
    "campaign.update",
    "campaign.get",
    "campaign.list",
    "campaign.start",
    "campaign.pause",
    "campaign.stop",
    "campaign.delete",
    "lead.add",
    "lead.import",
    "lead.get",
    "lead.list",
    "lead.update",
    "lead.delete",
    "dnc.add",
    "dnc.remove",
    "dnc.check",
    "dnc.import",
    "agent.login",
    "agent.ready",
    "agent.pause",
    "agent.logout",
    "agent.disposition",
    "agent.callback",
    "call.dial",
    "call.hangup",
    "cdr.list",
    "stats.campaign",
    "stats.agents",
    "events.subscribe",
];

/// Whether a session with `roles` may run `cmd` (agents are further held to their
/// own session by the core).
pub fn allowed(roles: &[Role], cmd: &str) -> bool {
    roles.iter().any(|r| allowed_for(*r, cmd))
}

fn allowed_for(role: Role, cmd: &str) -> bool {
    let read = matches!(
        cmd,
        "campaign.get"
            | "campaign.list"
            | "lead.get"
            | "lead.list"
            | "dnc.check"
            | "cdr.list"
            | "stats.campaign"
            | "stats.agents"
    );
    let always = matches!(cmd, "auth" | "ping" | "events.subscribe");
    always
        || match role {
            Role::Crm => !cmd.starts_with("agent."),
            Role::Supervisor => read || cmd == "campaign.pause",
            Role::Agent => cmd.starts_with("agent.") || cmd.starts_with("call."),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_limit_commands() {
        let crm = [Role::Crm];
        let sup = [Role::Supervisor];
        let agent = [Role::Agent];
        assert!(allowed(&crm, "lead.add") && allowed(&crm, "call.dial"));
        assert!(!allowed(&crm, "agent.ready"));
        assert!(allowed(&sup, "stats.agents") && allowed(&sup, "campaign.pause"));
        assert!(!allowed(&sup, "campaign.start") && !allowed(&sup, "lead.add"));
        assert!(allowed(&agent, "agent.disposition") && allowed(&agent, "call.hangup"));
        assert!(!allowed(&agent, "campaign.list") && !allowed(&agent, "lead.get"));
        for c in COMMANDS {
            assert!(
                allowed(&[Role::Crm, Role::Supervisor, Role::Agent], c),
                "{c}"
            );
        }
    }

    #[test]
    fn agents_only_see_their_own_events() {
        let e = |event, agent: Option<u32>| Published {
            event,
            campaign: Some(CampaignId(1)),
            agent: agent.map(AgentId),
            private: true,
            line: Arc::from(""),
        };
        let me = Session {
            conn: 1,
            roles: vec![Role::Agent],
            agent: Some(AgentId(7)),
        };
        let all = Filter::default();
        assert!(all.admits(&e("call.offered", Some(7)), &me));
        assert!(!all.admits(&e("call.offered", Some(8)), &me));
        assert!(!all.admits(&e("campaign.stats", None), &me));
        let crm = Session {
            conn: 2,
            roles: vec![Role::Crm],
            agent: None,
        };
        assert!(all.admits(&e("call.offered", Some(8)), &crm));
        let only = Filter {
            events: vec!["call.ended".into()],
            ..Filter::default()
        };
        assert!(!only.admits(&e("call.offered", Some(8)), &crm));
    }
}
