//! Persistence in sled: campaigns, leads, the due-time index, the phone index (dedup),
//! DNC lists, call records, callbacks, agents, and recovery after a crash.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `campaigns` | campaign | [`StoredCampaign`] |
//! | `leads` | lead id (campaign in the top 24 bits) | [`Lead`] |
//! | `due` | campaign, 255 − priority, due time, lead | – |
//! | `phones` | campaign, E.164 | lead id |
//! | `dnc` | scope (0 = global, else campaign), E.164 | [`DncEntry`] |
//! | `calls` | campaign, end time, call | [`CallRecord`] |
//! | `active` | lead | call: leads in `dialing` or `in_call` |
//! | `callbacks` | agent, due time, lead | – : callbacks reserved for an agent |
//! | `stats` | campaign, hour | hourly live/abandon counters |
//! | `agents` | agent | [`AgentProfile`] |
//! | `meta` | name | counters, the import journal |
//!
//! Durability: changes that span trees are sled transactions; [`Store::flush`] makes
//! everything written so far durable, and the daemon calls it before acting on a
//! write that must not be lost (a lead going to `dialing`, a CDR, a disposition) and
//! before answering a CRM. A lead batch is written under a journal entry, flushed
//! first, so a crash in the middle of a batch is rolled back whole at the next open.
//!
//! The store keeps no business rules of its own: lead transitions come from
//! `campaign` (`after_call`, `after_disposition`).

mod calls;
mod dnc;
pub mod keys;
mod leads;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::campaign::{CampaignSettings, Lead, LeadError, Zones};
use crate::ids::{AgentId, CampaignId, LeadId};
use crate::time::Time;
pub use calls::{AbandonFigures, AbandonReport};
pub use dnc::DncEntry;
pub use leads::{ImportMapping, ImportSummary, LeadFilter, LeadPatch, LeadResult, MAX_BATCH};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failed: {0}")]
    Db(#[from] sled::Error),
    #[error("corrupt record in `{tree}`: {why}")]
    Corrupt { tree: &'static str, why: String },
    #[error("unknown campaign {campaign}")]
    UnknownCampaign { campaign: CampaignId },
    #[error("unknown lead {lead}")]
    UnknownLead { lead: LeadId },
    #[error("lead {lead} has a call up")]
    LeadBusy { lead: LeadId },
    #[error("a batch of {len} leads is more than {max}")]
    BatchTooLarge { max: usize, len: usize },
    #[error("cannot import {path}: {why}")]
    Import { path: String, why: String },
    #[error(transparent)]
    Lead(#[from] LeadError),
}

impl StoreError {
    pub(crate) fn corrupt(tree: &'static str, e: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            tree,
            why: e.to_string(),
        }
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => StoreError::Db(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A campaign as stored: its settings and whether it was running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredCampaign {
    pub id: CampaignId,
    pub settings: CampaignSettings,
    /// `idle`, `running`, `paused` or `stopped`.
    pub state: String,
    pub created_at: Time,
}

/// What the store remembers of an agent between sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentProfile {
    pub id: AgentId,
    pub campaign: CampaignId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub last_login: Time,
}

/// What [`Store::recover`] found and fixed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Recovery {
    /// Leads whose call was up at the crash, closed as `network` and rescheduled.
    pub calls_closed: usize,
    /// Leads of a lead batch that was being written at the crash, rolled back.
    pub leads_rolled_back: usize,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

pub(crate) fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::corrupt(tree, e))
}

/// The store. One owner (the daemon's engine task) drives it.
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    campaigns: sled::Tree,
    leads: sled::Tree,
    due: sled::Tree,
    phones: sled::Tree,
    dnc: sled::Tree,
    calls: sled::Tree,
    active: sled::Tree,
    callbacks: sled::Tree,
    stats: sled::Tree,
    agents: sled::Tree,
    /// Campaign records, read once.
    cache: HashMap<CampaignId, StoredCampaign>,
    zones: Zones,
    /// Leads handed to the engine's buffer and not dialled yet (memory only: after a
    /// restart they are simply due again).
    taken: HashSet<LeadId>,
}

const CAMPAIGN_SEQ: &[u8] = b"campaign_seq";
const CALL_SEQ: &[u8] = b"call_seq";
const IMPORT_JOURNAL: &[u8] = b"import";

fn lead_seq_key(c: CampaignId) -> Vec<u8> {
    [b"lead_seq/".as_slice(), &keys::campaign(c)].concat()
}

impl Store {
    /// Open (or create) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(200))
            .open()?;
        let tree = |name: &str| db.open_tree(name);
        let mut store = Store {
            meta: tree("meta")?,
            campaigns: tree("campaigns")?,
            leads: tree("leads")?,
            due: tree("due")?,
            phones: tree("phones")?,
            dnc: tree("dnc")?,
            calls: tree("calls")?,
            active: tree("active")?,
            callbacks: tree("callbacks")?,
            stats: tree("stats")?,
            agents: tree("agents")?,
            db,
            cache: HashMap::new(),
            zones: Zones::default(),
            taken: HashSet::new(),
        };
        for kv in store.campaigns.iter() {
            let (_, v) = kv?;
            let c: StoredCampaign = decode("campaigns", &v)?;
            store.cache.insert(c.id, c);
        }
        Ok(store)
    }

    /// Make every write so far durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Bytes the store takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    fn counter(&self, key: &[u8]) -> Result<u64> {
        Ok(self.meta.get(key)?.map_or(0, |v| keys::u64_from(&v)))
    }

    /// Fix what a crash left behind: roll back a half-written lead batch, and close
    /// every call that was up as `network` (outcome unknown), rescheduled by the
    /// campaign's network retry rule rather than dialled again at once.
    pub fn recover(&mut self, now: Time) -> Result<Recovery> {
        let mut report = Recovery {
            leads_rolled_back: self.roll_back_import()?,
            ..Recovery::default()
        };
        let active: Vec<(LeadId, u64)> = self
            .active
            .iter()
            .map(|kv| kv.map(|(k, v)| (keys::lead_from(&k), keys::u64_from(&v))))
            .collect::<Result<_, _>>()?;
        for (lead, call) in active {
            self.close_unknown(lead, crate::ids::CallId(call), now)?;
            report.calls_closed += 1;
        }
        self.flush()?;
        Ok(report)
    }

    /// The highest call id ever used: the engine numbers new calls after it.
    pub fn last_call_id(&self) -> Result<u64> {
        self.counter(CALL_SEQ)
    }

    // ----- campaigns -----

    pub fn create_campaign(
        &mut self,
        settings: CampaignSettings,
        now: Time,
    ) -> Result<StoredCampaign> {
        let next = self.counter(CAMPAIGN_SEQ)? + 1;
        if next >= 1 << 24 {
            return Err(StoreError::Corrupt {
                tree: "meta",
                why: "campaign ids exhausted".into(),
            });
        }
        let c = StoredCampaign {
            id: CampaignId(next as u32),
            settings,
            state: "idle".into(),
            created_at: now,
        };
        self.meta.insert(CAMPAIGN_SEQ, &next.to_be_bytes())?;
        self.put_campaign(c.clone())?;
        Ok(c)
    }

    pub fn put_campaign(&mut self, c: StoredCampaign) -> Result<()> {
        self.campaigns.insert(keys::campaign(c.id), encode(&c))?;
        self.cache.insert(c.id, c);
        Ok(())
    }

    pub fn campaign(&self, id: CampaignId) -> Result<&StoredCampaign> {
        self.cache
            .get(&id)
            .ok_or(StoreError::UnknownCampaign { campaign: id })
    }

    pub fn campaigns(&self) -> impl Iterator<Item = &StoredCampaign> {
        let mut v: Vec<&StoredCampaign> = self.cache.values().collect();
        v.sort_by_key(|c| c.id);
        v.into_iter()
    }

    /// Delete a campaign with its leads, indexes and DNC list. Call records stay.
    /// Returns the number of leads removed.
    pub fn delete_campaign(&mut self, id: CampaignId) -> Result<u64> {
        self.campaign(id)?;
        let (lo, hi) = keys::lead_range(id);
        let mut removed = 0;
        let mut batch = sled::Batch::default();
        for kv in self.leads.range(lo..hi) {
            batch.remove(kv?.0);
            removed += 1;
        }
        self.leads.apply_batch(batch)?;
        for tree in [&self.due, &self.phones] {
            let mut batch = sled::Batch::default();
            for kv in tree.scan_prefix(keys::campaign(id)) {
                batch.remove(kv?.0);
            }
            tree.apply_batch(batch)?;
        }
        let mut batch = sled::Batch::default();
        for kv in self.dnc.scan_prefix(keys::campaign(id)) {
            batch.remove(kv?.0);
        }
        self.dnc.apply_batch(batch)?;
        self.campaigns.remove(keys::campaign(id))?;
        self.cache.remove(&id);
        self.taken.retain(|l| keys::campaign_of(*l) != id);
        Ok(removed)
    }

    // ----- agents -----

    pub fn put_agent(&self, a: &AgentProfile) -> Result<()> {
        self.agents.insert(a.id.0.to_be_bytes(), encode(a))?;
        Ok(())
    }

    pub fn agent(&self, id: AgentId) -> Result<Option<AgentProfile>> {
        self.agents
            .get(id.0.to_be_bytes())?
            .map(|v| decode("agents", &v))
            .transpose()
    }

    fn get_lead(&self, id: LeadId) -> Result<Lead> {
        let v = self
            .leads
            .get(keys::lead(id))?
            .ok_or(StoreError::UnknownLead { lead: id })?;
        decode("leads", &v)
    }
}

#[cfg(test)]
mod tests;
