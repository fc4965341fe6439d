//! Do-not-call lists: one global, one per campaign. Numbers are kept in E.164 and
//! checked at import and again when a lead is taken for dialing.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Result, Store, StoreError, decode, encode, keys};
use crate::campaign::{self, Country, Lead, LeadState, country_id};
use crate::ids::{CampaignId, LeadId};
use crate::time::Time;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DncEntry {
    pub number: String,
    /// The campaign whose list it is on; none for the global list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignId>,
    pub added_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DncImportSummary {
    pub rows: u64,
    pub added: u64,
    pub invalid: u64,
    /// Queued leads closed as `dnc`.
    pub leads_closed: u64,
}

fn scope(c: Option<CampaignId>) -> u32 {
    c.map_or(0, |c| c.0)
}

impl Store {
    /// A number in E.164 as the list's campaign reads it (GB for the global list
    /// unless written with a country code).
    pub fn normalise_for(&self, campaign: Option<CampaignId>, raw: &str) -> Result<String> {
        Ok(campaign::normalise(raw, self.country(campaign)?)?.e164)
    }

    /// The country national numbers are read as: the campaign's, or GB for the
    /// global list.
    pub(super) fn country(&self, campaign: Option<CampaignId>) -> Result<Country> {
        let code = match campaign {
            Some(c) => Some(&self.campaign(c)?.settings.default_country),
            None => None,
        };
        // Settings are validated, so the code parses.
        Ok(code.and_then(|c| country_id(c)).unwrap_or(Country::GB))
    }

    pub(crate) fn is_dnc(&self, campaign: CampaignId, e164: &str) -> Result<bool> {
        Ok(self.dnc.contains_key(keys::phone(0, e164))?
            || self.dnc.contains_key(keys::phone(campaign.0, e164))?)
    }

    /// Put a number on a list. Queued leads with that number (in the campaign, or in
    /// every campaign for the global list) are closed as `dnc`; their ids are
    /// returned so the engine can drop them from its buffer.
    pub fn dnc_add(
        &mut self,
        campaign: Option<CampaignId>,
        raw: &str,
        reason: Option<String>,
        now: Time,
    ) -> Result<(DncEntry, Vec<LeadId>)> {
        let number = self.normalise_for(campaign, raw)?;
        let entry = DncEntry {
            number: number.clone(),
            campaign,
            added_at: now,
            reason,
        };
        self.dnc
            .insert(keys::phone(scope(campaign), &number), encode(&entry))?;
        let closed = self.close_dnc_leads(campaign, &number)?;
        self.flush()?;
        Ok((entry, closed))
    }

    fn close_dnc_leads(&mut self, campaign: Option<CampaignId>, e164: &str) -> Result<Vec<LeadId>> {
        let campaigns: Vec<CampaignId> = match campaign {
            Some(c) => vec![c],
            None => self.campaigns().map(|c| c.id).collect(),
        };
        let mut closed = Vec::new();
        for c in campaigns {
            let Some(v) = self.phones.get(keys::phone(c.0, e164))? else {
                continue;
            };
            let lead: Lead = self.get_lead(keys::lead_from(&v))?;
            if lead.state.is_queued() {
                let mut l = lead.clone();
                l.state = LeadState::Dnc;
                l.due_at = None;
                self.rewrite(&lead, &l)?;
                self.taken.remove(&l.id);
                closed.push(l.id);
            }
        }
        Ok(closed)
    }

    /// Take a number off a list; `false` when it was not on it. Leads closed as
    /// `dnc` stay closed (reopen them with `lead.update`).
    pub fn dnc_remove(&mut self, campaign: Option<CampaignId>, raw: &str) -> Result<bool> {
        let number = self.normalise_for(campaign, raw)?;
        let was = self
            .dnc
            .remove(keys::phone(scope(campaign), &number))?
            .is_some();
        self.flush()?;
        Ok(was)
    }

    /// The entries that stop `raw` from being dialled in `campaign` (global and the
    /// campaign's own list), or on the global list alone.
    pub fn dnc_check(&self, campaign: Option<CampaignId>, raw: &str) -> Result<Vec<DncEntry>> {
        let number = self.normalise_for(campaign, raw)?;
        let mut out = Vec::new();
        let mut scopes = vec![0];
        if let Some(c) = campaign {
            scopes.push(c.0);
        }
        for s in scopes {
            if let Some(v) = self.dnc.get(keys::phone(s, &number))? {
                out.push(decode("dnc", &v)?);
            }
        }
        Ok(out)
    }

    /// Import numbers from a file: the first column of each line (CSV; a header
    /// line that is not a number is counted invalid).
    /// Returns the summary and the leads closed as `dnc`.
    pub fn dnc_import(
        &mut self,
        campaign: Option<CampaignId>,
        path: &Path,
        now: Time,
    ) -> Result<(DncImportSummary, Vec<LeadId>)> {
        if let Some(c) = campaign {
            self.campaign(c)?;
        }
        let err = |why: String| StoreError::Import {
            path: path.display().to_string(),
            why,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(path)
            .map_err(|e| err(e.to_string()))?;
        let mut summary = DncImportSummary::default();
        let mut batch = sled::Batch::default();
        let mut numbers = Vec::new();
        for rec in reader.records() {
            let rec = rec.map_err(|e| err(e.to_string()))?;
            summary.rows += 1;
            let raw = rec.get(0).unwrap_or("").trim();
            match self.normalise_for(campaign, raw) {
                Ok(number) => {
                    let entry = DncEntry {
                        number: number.clone(),
                        campaign,
                        added_at: now,
                        reason: Some("import".into()),
                    };
                    batch.insert(keys::phone(scope(campaign), &number), encode(&entry));
                    numbers.push(number);
                    summary.added += 1;
                }
                Err(_) => summary.invalid += 1,
            }
        }
        self.dnc.apply_batch(batch)?;
        let mut closed = Vec::new();
        for n in numbers {
            closed.extend(self.close_dnc_leads(campaign, &n)?);
        }
        summary.leads_closed = closed.len() as u64;
        self.flush()?;
        Ok((summary, closed))
    }
}
