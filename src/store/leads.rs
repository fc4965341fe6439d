//! Leads in the store: batches and CSV imports with dedup and DNC checks, lookups,
//! changes, and picking the next due leads for the engine.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Result, Store, StoreError, decode, encode, keys};
use crate::campaign::{self, DialableLead, Lead, LeadError, LeadInput, LeadState, MAX_PRIORITY};
use crate::ids::{AgentId, CampaignId, LeadId};
use crate::time::Time;

/// Most leads in one `lead.add` batch.
pub const MAX_BATCH: usize = 10_000;
/// Leads written under one import journal entry during a CSV import.
const IMPORT_CHUNK: usize = 50_000;
/// Due entries looked at per lead wanted before `take_due` gives up for now.
const SCAN_FACTOR: usize = 20;

/// The result for one lead of a batch, in input order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeadResult {
    pub index: usize,
    /// The new lead (also for leads stored as `invalid` or `dnc`), or the existing
    /// lead for a duplicate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead: Option<LeadId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<LeadState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<LeadErrorBody>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeadErrorBody {
    pub code: &'static str,
    pub message: String,
    pub field: &'static str,
}

impl From<&LeadError> for LeadErrorBody {
    fn from(e: &LeadError) -> Self {
        LeadErrorBody {
            code: e.code(),
            message: e.to_string(),
            field: e.field(),
        }
    }
}

/// Which CSV columns hold what.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportMapping {
    /// Column with the phone number.
    pub number: String,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Columns copied into the lead's fields (all other columns when absent).
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImportSummary {
    pub rows: u64,
    pub added: u64,
    pub invalid: u64,
    pub dnc: u64,
    pub duplicates: u64,
    /// Rows refused (bad fields, priority, zone), with the first few reasons.
    pub rejected: u64,
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadFilter {
    #[serde(default)]
    pub state: Option<LeadState>,
    /// Leads after this id (paging).
    #[serde(default)]
    pub after: Option<LeadId>,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Changes to a lead; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadPatch {
    #[serde(default)]
    pub fields: Option<serde_json::Value>,
    #[serde(default)]
    pub priority: Option<u8>,
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Make the lead due at this time (ms since the epoch); reopens a finished lead.
    #[serde(default)]
    pub due_at: Option<Time>,
    /// Reserve (or, with `null`, release) the lead's callback for an agent.
    #[serde(default, with = "double_option")]
    pub agent: Option<Option<AgentId>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// The index entry a queued lead has: the due index, or its agent's callbacks.
pub(super) enum LeadSlot {
    Due([u8; 21]),
    Callback([u8; 20]),
}

impl LeadSlot {
    pub(super) fn of(l: &Lead) -> Option<LeadSlot> {
        match (l.state.is_queued(), l.due_at, l.agent) {
            (true, Some(at), None) => {
                Some(LeadSlot::Due(keys::due(l.campaign, l.priority, at, l.id)))
            }
            (true, Some(at), Some(a)) => Some(LeadSlot::Callback(keys::callback(a, at, l.id))),
            _ => None,
        }
    }

    pub(super) fn key(&self) -> &[u8] {
        match self {
            LeadSlot::Due(k) => k,
            LeadSlot::Callback(k) => k,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Journal {
    campaign: CampaignId,
    first: u64,
    next: u64,
}

impl Store {
    /// Add a batch of leads (at most [`MAX_BATCH`]); durable when this returns.
    pub fn add_leads(
        &mut self,
        campaign: CampaignId,
        inputs: Vec<LeadInput>,
        now: Time,
    ) -> Result<Vec<LeadResult>> {
        if inputs.len() > MAX_BATCH {
            return Err(StoreError::BatchTooLarge {
                max: MAX_BATCH,
                len: inputs.len(),
            });
        }
        let results = self.write_leads(campaign, inputs, now)?;
        self.flush()?;
        Ok(results)
    }

    /// Import a CSV file (with a header row) readable by the daemon.
    pub fn import_csv(
        &mut self,
        campaign: CampaignId,
        path: &Path,
        mapping: &ImportMapping,
        now: Time,
    ) -> Result<ImportSummary> {
        self.campaign(campaign)?;
        let err = |why: String| StoreError::Import {
            path: path.display().to_string(),
            why,
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .map_err(|e| err(e.to_string()))?;
        let headers = reader.headers().map_err(|e| err(e.to_string()))?.clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| err(format!("no column `{name}`")))
        };
        let number = col(&mapping.number)?;
        let priority = mapping.priority.as_deref().map(col).transpose()?;
        let time_zone = mapping.time_zone.as_deref().map(col).transpose()?;
        let fields: Vec<usize> = match &mapping.fields {
            Some(names) => names.iter().map(|n| col(n)).collect::<Result<_>>()?,
            None => (0..headers.len())
                .filter(|i| {
                    Some(*i) != Some(number) && Some(*i) != priority && Some(*i) != time_zone
                })
                .collect(),
        };
        let mut summary = ImportSummary::default();
        let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
        let mut record = csv::StringRecord::new();
        loop {
            let more = reader
                .read_record(&mut record)
                .map_err(|e| err(e.to_string()))?;
            if more {
                summary.rows += 1;
                let get = |i: usize| record.get(i).unwrap_or("").trim();
                let prio = match priority.map(get).filter(|s| !s.is_empty()) {
                    Some(p) => match p.parse::<u8>() {
                        Ok(p) => Some(p),
                        Err(_) => Some(u8::MAX),
                    },
                    None => None,
                };
                let mut map = serde_json::Map::new();
                for &i in &fields {
                    map.insert(headers[i].to_owned(), get(i).into());
                }
                chunk.push(LeadInput {
                    number: get(number).to_owned(),
                    fields: (!map.is_empty()).then_some(serde_json::Value::Object(map)),
                    priority: prio,
                    time_zone: time_zone
                        .map(get)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                });
            }
            if chunk.len() == IMPORT_CHUNK || (!more && !chunk.is_empty()) {
                for r in self.write_leads(campaign, std::mem::take(&mut chunk), now)? {
                    match (&r.error, r.state) {
                        (Some(e), _) if e.code == "duplicate" => summary.duplicates += 1,
                        (_, Some(LeadState::Invalid)) => summary.invalid += 1,
                        (_, Some(LeadState::Dnc)) => summary.dnc += 1,
                        (Some(e), None) => {
                            summary.rejected += 1;
                            if summary.errors.len() < 20 {
                                summary
                                    .errors
                                    .push(format!("row {}: {}", r.index + 1, e.message));
                            }
                        }
                        _ => summary.added += 1,
                    }
                }
            }
            if !more {
                break;
            }
        }
        self.flush()?;
        Ok(summary)
    }

    /// Validate, dedup, DNC-check and write leads under the import journal.
    fn write_leads(
        &mut self,
        campaign: CampaignId,
        inputs: Vec<LeadInput>,
        now: Time,
    ) -> Result<Vec<LeadResult>> {
        let country = self.country(Some(campaign))?;
        let zone = self.campaign(campaign)?.settings.time_zone.clone();
        // Phone numbers are the costly part: parse them on every core.
        let built = build_parallel(inputs, campaign, country, &zone, now);
        let seq_key = super::lead_seq_key(campaign);
        let first = self.counter(&seq_key)? + 1;
        let mut next = first;
        let mut results = Vec::with_capacity(built.len());
        let mut seen: HashMap<String, LeadId> = HashMap::new();
        let (mut leads, mut phones, mut due) = (
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        );
        for (index, b) in built.into_iter().enumerate() {
            let (mut lead, problem) = match b {
                Ok(x) => x,
                Err(e) => {
                    results.push(LeadResult {
                        index,
                        lead: None,
                        state: None,
                        error: Some((&e).into()),
                    });
                    continue;
                }
            };
            if lead.state != LeadState::Invalid {
                let pkey = keys::phone(campaign.0, &lead.number);
                let existing = match seen.get(&lead.number) {
                    Some(id) => Some(*id),
                    None => self.phones.get(&pkey)?.map(|v| keys::lead_from(&v)),
                };
                if let Some(existing) = existing {
                    let e = LeadError::Duplicate {
                        number: lead.number.clone(),
                        existing,
                    };
                    results.push(LeadResult {
                        index,
                        lead: Some(existing),
                        state: None,
                        error: Some((&e).into()),
                    });
                    continue;
                }
                lead.id = keys::lead_id(campaign, next);
                if self.is_dnc(campaign, &lead.number)? {
                    lead.state = LeadState::Dnc;
                    lead.due_at = None;
                }
                seen.insert(lead.number.clone(), lead.id);
                phones.insert(pkey, &keys::lead(lead.id));
            } else {
                lead.id = keys::lead_id(campaign, next);
            }
            next += 1;
            if let Some(LeadSlot::Due(k)) = LeadSlot::of(&lead) {
                due.insert(&k, &[]);
            }
            leads.insert(&keys::lead(lead.id), encode(&lead));
            let error = match (&problem, lead.state) {
                (Some(e), _) => Some(e.into()),
                (None, LeadState::Dnc) => Some(
                    (&LeadError::Dnc {
                        number: lead.number.clone(),
                    })
                        .into(),
                ),
                _ => None,
            };
            results.push(LeadResult {
                index,
                lead: Some(lead.id),
                state: Some(lead.state),
                error,
            });
        }
        if next == first {
            return Ok(results);
        }
        // The journal is durable before any lead: a crash from here on is rolled
        // back whole by `recover` unless every write of the batch made it.
        let journal = Journal {
            campaign,
            first,
            next,
        };
        self.meta.insert(super::IMPORT_JOURNAL, encode(&journal))?;
        self.flush()?;
        // The three trees are independent: write them side by side.
        let (lt, pt, dt) = (&self.leads, &self.phones, &self.due);
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| lt.apply_batch(leads));
            let b = pt.apply_batch(phones).and_then(|()| dt.apply_batch(due));
            (a.join().expect("batch writes do not panic"), b)
        });
        a?;
        b?;
        self.meta.insert(seq_key, &(next - 1).to_be_bytes())?;
        Ok(results)
    }

    /// Undo a lead batch that a crash interrupted (see [`Store::recover`]).
    pub(super) fn roll_back_import(&mut self) -> Result<usize> {
        let Some(v) = self.meta.get(super::IMPORT_JOURNAL)? else {
            return Ok(0);
        };
        let j: Journal = decode("meta", &v)?;
        let range = keys::lead(keys::lead_id(j.campaign, j.first))
            ..keys::lead(keys::lead_id(j.campaign, j.next));
        let complete = self.counter(&super::lead_seq_key(j.campaign))? == j.next - 1
            && self.batch_complete(&j)?;
        if complete {
            self.meta.remove(super::IMPORT_JOURNAL)?;
            return Ok(0);
        }
        let in_range = |id: LeadId| {
            id.0 >= keys::lead_id(j.campaign, j.first).0
                && id.0 < keys::lead_id(j.campaign, j.next).0
        };
        let mut removed = 0;
        let mut batch = sled::Batch::default();
        for kv in self.leads.range(range) {
            batch.remove(kv?.0);
            removed += 1;
        }
        self.leads.apply_batch(batch)?;
        for (tree, by_value) in [(&self.phones, true), (&self.due, false)] {
            let mut batch = sled::Batch::default();
            for kv in tree.scan_prefix(keys::campaign(j.campaign)) {
                let (k, v) = kv?;
                let id = keys::lead_from(if by_value { &v } else { &k });
                if in_range(id) {
                    batch.remove(k);
                }
            }
            tree.apply_batch(batch)?;
        }
        self.meta.insert(
            super::lead_seq_key(j.campaign),
            &(j.first - 1).to_be_bytes(),
        )?;
        self.meta.remove(super::IMPORT_JOURNAL)?;
        Ok(removed)
    }

    /// Every lead of the batch is there with its index entries.
    fn batch_complete(&self, j: &Journal) -> Result<bool> {
        for seq in j.first..j.next {
            let id = keys::lead_id(j.campaign, seq);
            let Some(v) = self.leads.get(keys::lead(id))? else {
                return Ok(false);
            };
            let lead: Lead = decode("leads", &v)?;
            if lead.state != LeadState::Invalid
                && self
                    .phones
                    .get(keys::phone(j.campaign.0, &lead.number))?
                    .is_none()
            {
                return Ok(false);
            }
            if let Some(LeadSlot::Due(k)) = LeadSlot::of(&lead)
                && !self.due.contains_key(k)?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub fn lead(&self, id: LeadId) -> Result<Lead> {
        self.get_lead(id)
    }

    /// The lead of a campaign with this number (any format the campaign accepts).
    pub fn lead_by_number(&self, campaign: CampaignId, number: &str) -> Result<Option<Lead>> {
        let e164 = self.normalise_for(Some(campaign), number)?;
        self.phones
            .get(keys::phone(campaign.0, &e164))?
            .map(|v| self.get_lead(keys::lead_from(&v)))
            .transpose()
    }

    /// A page of a campaign's leads in id order (at most 1000).
    pub fn leads(&self, campaign: CampaignId, filter: &LeadFilter) -> Result<Vec<Lead>> {
        self.campaign(campaign)?;
        let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
        let (lo, hi) = keys::lead_range(campaign);
        let start = filter
            .after
            .map_or(lo, |a| keys::lead(LeadId(a.0.saturating_add(1))));
        let mut out = Vec::new();
        for kv in self.leads.range(start..hi) {
            let lead: Lead = decode("leads", &kv?.1)?;
            if filter.state.is_none_or(|s| s == lead.state) {
                out.push(lead);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn slot_tree(&self, slot: &LeadSlot) -> &sled::Tree {
        match slot {
            LeadSlot::Due(_) => &self.due,
            LeadSlot::Callback(_) => &self.callbacks,
        }
    }

    /// Take a lead's index entry (if any) out.
    fn unindex(&self, lead: &Lead) -> Result<()> {
        if let Some(s) = LeadSlot::of(lead) {
            self.slot_tree(&s).remove(s.key())?;
        }
        Ok(())
    }

    /// Write a lead and move its index entry from where `old` had it.
    pub(super) fn rewrite(&self, old: &Lead, new: &Lead) -> Result<()> {
        self.unindex(old)?;
        if let Some(s) = LeadSlot::of(new) {
            self.slot_tree(&s).insert(s.key(), &[])?;
        }
        self.leads.insert(keys::lead(new.id), encode(new))?;
        Ok(())
    }

    pub fn update_lead(&mut self, id: LeadId, patch: LeadPatch) -> Result<Lead> {
        let old = self.get_lead(id)?;
        if old.state.is_active() {
            return Err(StoreError::LeadBusy { lead: id });
        }
        let mut lead = old.clone();
        if let Some(f) = patch.fields {
            lead.fields = campaign::check_fields(Some(f))?;
        }
        if let Some(p) = patch.priority {
            lead.priority = campaign::check_priority(Some(p))?;
        }
        if let Some(z) = patch.time_zone {
            campaign::check_zone(&z)?;
            lead.time_zone = z;
        }
        if let Some(agent) = patch.agent {
            lead.agent = agent;
        }
        if let Some(at) = patch.due_at {
            if matches!(lead.state, LeadState::Dnc | LeadState::Invalid) {
                return Err(StoreError::LeadBusy { lead: id });
            }
            lead.due_at = Some(at.max(lead.locked_until.unwrap_or(at)));
            if lead.state != LeadState::New {
                lead.state = LeadState::Due;
            }
        }
        self.rewrite(&old, &lead)?;
        self.taken.remove(&id);
        self.flush()?;
        Ok(lead)
    }

    pub fn delete_lead(&mut self, id: LeadId) -> Result<Lead> {
        let lead = self.get_lead(id)?;
        if lead.state.is_active() {
            return Err(StoreError::LeadBusy { lead: id });
        }
        self.unindex(&lead)?;
        let pkey = keys::phone(lead.campaign.0, &lead.number);
        if self
            .phones
            .get(&pkey)?
            .is_some_and(|v| keys::lead_from(&v) == id)
        {
            self.phones.remove(pkey)?;
        }
        self.leads.remove(keys::lead(id))?;
        self.taken.remove(&id);
        self.flush()?;
        Ok(lead)
    }

    /// Up to `count` leads of `campaign` due at `now`, highest priority first, whose
    /// local time is inside the calling window and that are on no DNC list. Leads
    /// outside their window move to its next opening; DNC leads are closed. The leads
    /// stay `new`/`due` until dialled (see [`Store::dialing`]) and are not handed out
    /// again meanwhile.
    pub fn take_due(
        &mut self,
        campaign: CampaignId,
        now: Time,
        count: usize,
    ) -> Result<Vec<DialableLead>> {
        let window = self.campaign(campaign)?.settings.calling_window.clone();
        let mut out = Vec::with_capacity(count);
        let mut budget = count.saturating_mul(SCAN_FACTOR).max(100);
        for priority in (0..=MAX_PRIORITY).rev() {
            let (lo, hi) = keys::due_range(campaign, priority, now);
            // Lazily: the iterator holds its own handle on the tree, and entries
            // moved or removed below lie outside the range still to be read.
            for k in self.due.range(lo.as_slice()..hi.as_slice()).keys() {
                if out.len() == count || budget == 0 {
                    return Ok(out);
                }
                let id = keys::lead_from(&k?);
                if self.taken.contains(&id) {
                    continue; // In the engine's buffer: cheap to pass over.
                }
                budget -= 1;
                let lead = self.get_lead(id)?;
                let tz = self.zones.get(&lead.time_zone).clone();
                if window.left_s(now, &tz).is_none() {
                    let mut moved = lead.clone();
                    moved.due_at = Some(
                        window
                            .next_open(now, &tz)
                            .unwrap_or(now + std::time::Duration::from_secs(86_400)),
                    );
                    self.rewrite(&lead, &moved)?;
                    continue;
                }
                if self.is_dnc(campaign, &lead.number)? {
                    let mut closed = lead.clone();
                    closed.state = LeadState::Dnc;
                    closed.due_at = None;
                    self.rewrite(&lead, &closed)?;
                    continue;
                }
                self.taken.insert(id);
                out.push(DialableLead {
                    id,
                    number: lead.number,
                });
            }
        }
        Ok(out)
    }

    /// The engine no longer holds these leads (campaign stopped, lead withdrawn).
    pub fn release(&mut self, leads: impl IntoIterator<Item = LeadId>) {
        for l in leads {
            self.taken.remove(&l);
        }
    }

    /// Forget every lead handed to the engine for `campaign`.
    pub fn release_campaign(&mut self, campaign: CampaignId) {
        self.taken.retain(|l| keys::campaign_of(*l) != campaign);
    }

    /// The earliest callback reserved for `agent` that is due at `now`.
    pub fn due_callback(&self, agent: AgentId, now: Time) -> Result<Option<Lead>> {
        for kv in self.callbacks.scan_prefix(agent.0.to_be_bytes()) {
            let (k, _) = kv?;
            let at = Time(keys::u64_from(&k[4..12]));
            if at > now {
                return Ok(None);
            }
            let id = keys::lead_from(&k);
            if !self.taken.contains(&id) {
                return Ok(Some(self.get_lead(id)?));
            }
        }
        Ok(None)
    }

    /// Mark a lead as handed to an agent's own call (before `dialing`).
    pub fn take(&mut self, lead: LeadId) {
        self.taken.insert(lead);
    }
}

fn build_parallel(
    inputs: Vec<LeadInput>,
    campaign: CampaignId,
    country: crate::campaign::Country,
    zone: &str,
    now: Time,
) -> Vec<Result<(Lead, Option<LeadError>), LeadError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let build =
        |input: LeadInput| campaign::build_lead(input, LeadId(0), campaign, country, zone, now);
    if threads == 1 || inputs.len() < 256 {
        return inputs.into_iter().map(build).collect();
    }
    let per = inputs.len().div_ceil(threads);
    let mut chunks: Vec<Vec<LeadInput>> = Vec::new();
    let mut it = inputs.into_iter();
    loop {
        let c: Vec<LeadInput> = it.by_ref().take(per).collect();
        if c.is_empty() {
            break;
        }
        chunks.push(c);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| s.spawn(move || c.into_iter().map(build).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("lead building does not panic"))
            .collect()
    })
}
