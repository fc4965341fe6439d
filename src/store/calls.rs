//! Calls in the store: a lead going to `dialing`, call records (CDRs), dispositions,
//! closing calls a crash left open, and the abandon figures over 24 hours and 30 days.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::leads::LeadSlot;
use super::{Result, Store, StoreError, decode, encode, keys};
use crate::campaign::{self, Callback, Lead, LeadState};
use crate::engine::{CallRecord, PastAnswer};
use crate::ids::{CallId, CampaignId, LeadId};
use crate::outcome::Outcome;
use crate::time::Time;

type Abort = ConflictableTransactionError<StoreError>;

/// Hourly counters behind the abandon figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Hour {
    /// Live answers (persons) on calls the dialer placed.
    lives: u64,
    abandoned: u64,
    /// Of the live answers, those that reached an agent through AMD.
    amd_lives: u64,
}

/// The abandon rate over one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct AbandonFigures {
    pub live_answers: u64,
    pub abandoned: u64,
    /// Abandoned over live answers, with the estimated AMD false positives counted
    /// as abandoned (Ofcom's method).
    pub rate: f64,
}

/// `stats.campaign`'s abandon figures: the last 24 hours and the last 30 days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct AbandonReport {
    pub last_24h: AbandonFigures,
    pub last_30d: AbandonFigures,
}

fn tx_get_lead(t: &TransactionalTree, id: LeadId) -> Result<Lead, Abort> {
    let v = t
        .get(keys::lead(id))?
        .ok_or(Abort::Abort(StoreError::UnknownLead { lead: id }))?;
    decode("leads", &v).map_err(Abort::Abort)
}

/// Write `new` in a transaction, moving its index entry from where `old` had it.
fn tx_rewrite(
    leads: &TransactionalTree,
    due: &TransactionalTree,
    callbacks: &TransactionalTree,
    old: &Lead,
    new: &Lead,
) -> Result<(), Abort> {
    for (lead, insert) in [(old, false), (new, true)] {
        let Some(slot) = LeadSlot::of(lead) else {
            continue;
        };
        let tree = match slot {
            LeadSlot::Due(_) => due,
            LeadSlot::Callback(_) => callbacks,
        };
        if insert {
            tree.insert(slot.key(), &[])?;
        } else {
            tree.remove(slot.key())?;
        }
    }
    leads.insert(&keys::lead(new.id), encode(new))?;
    Ok(())
}

impl Store {
    /// A lead is about to be dialled on `call`. Flush before originating.
    pub fn dialing(&mut self, call: CallId, lead: LeadId) -> Result<()> {
        self.taken.remove(&lead);
        (
            &self.leads,
            &self.due,
            &self.callbacks,
            &self.active,
            &self.meta,
        )
            .transaction(|(leads, due, callbacks, active, meta)| {
                let old = tx_get_lead(leads, lead)?;
                let mut l = old.clone();
                l.state = LeadState::Dialing;
                l.last_call = Some(call);
                l.due_at = None;
                tx_rewrite(leads, due, callbacks, &old, &l)?;
                active.insert(&keys::lead(lead), &call.0.to_be_bytes())?;
                let seq = meta.get(super::CALL_SEQ)?.map_or(0, |v| keys::u64_from(&v));
                if call.0 > seq {
                    meta.insert(super::CALL_SEQ, &call.0.to_be_bytes())?;
                }
                Ok(())
            })?;
        Ok(())
    }

    /// A person on the lead's call was given to an agent.
    pub fn offered(&mut self, lead: LeadId) -> Result<()> {
        let old = self.get_lead(lead)?;
        if old.state == LeadState::Dialing {
            let mut l = old.clone();
            l.state = LeadState::InCall;
            self.rewrite(&old, &l)?;
        }
        Ok(())
    }

    /// A call ended: write its CDR, update the abandon counters, and move the lead
    /// on by its campaign's retry rules. Flush before acting on it.
    pub fn call_ended(&mut self, rec: &CallRecord) -> Result<Lead> {
        let settings = &self.campaign(rec.campaign)?.settings;
        let (rules, lockout) = (settings.retry.clone(), settings.abandon_lockout_h);
        self.taken.remove(&rec.lead);
        let lead = (
            &self.leads,
            &self.due,
            &self.callbacks,
            &self.active,
            &self.calls,
            &self.stats,
        )
            .transaction(|(leads, due, callbacks, active, calls, stats)| {
                calls.insert(
                    &keys::call(rec.campaign, rec.ended_at, rec.call),
                    encode(rec),
                )?;
                let counted = rec.dialed_by.is_none()
                    && matches!(rec.outcome, Outcome::Connected | Outcome::Abandoned);
                if counted {
                    let k = keys::stats(rec.campaign, rec.answered_at.unwrap_or(rec.ended_at));
                    let mut h: Hour = match stats.get(k)? {
                        Some(v) => decode("stats", &v).map_err(Abort::Abort)?,
                        None => Hour::default(),
                    };
                    h.lives += 1;
                    h.abandoned += u64::from(rec.outcome == Outcome::Abandoned);
                    h.amd_lives += u64::from(rec.amd_verdict.is_some());
                    stats.insert(&k, encode(&h))?;
                }
                let old = match tx_get_lead(leads, rec.lead) {
                    Ok(l) => l,
                    // The lead was deleted meanwhile: the CDR alone is kept.
                    Err(Abort::Abort(StoreError::UnknownLead { .. })) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let mut l = old.clone();
                l.last_call = Some(rec.call);
                campaign::after_call(&mut l, rec.outcome, &rules, lockout, rec.ended_at);
                if rec.dialed_by.is_some() && rec.outcome == Outcome::Abandoned {
                    l.locked_until = None;
                }
                tx_rewrite(leads, due, callbacks, &old, &l)?;
                active.remove(&keys::lead(rec.lead))?;
                Ok(Some(l))
            })?;
        lead.ok_or(StoreError::UnknownLead { lead: rec.lead })
    }

    /// An agent's disposition of the lead's last call. `retracted` (from the engine)
    /// takes a live answer back out of the counters: `Some(after_amd)`.
    pub fn disposition(
        &mut self,
        lead: LeadId,
        code: &str,
        callback: Option<Callback>,
        retracted: Option<bool>,
        now: Time,
    ) -> Result<Lead> {
        let old = self.get_lead(lead)?;
        let rules = self.campaign(old.campaign)?.settings.retry.clone();
        if let Some(after_amd) = retracted {
            // The live answer was counted in the hour it was answered; near enough,
            // take it back from the hour of the disposition's call record.
            let k = keys::stats(old.campaign, now);
            let mut h: Hour = match self.stats.get(k)? {
                Some(v) => decode("stats", &v)?,
                None => Hour::default(),
            };
            h.lives = h.lives.saturating_sub(1);
            h.amd_lives = h.amd_lives.saturating_sub(u64::from(after_amd));
            self.stats.insert(k, encode(&h))?;
        }
        let mut l = old.clone();
        campaign::after_disposition(&mut l, code, callback, &rules, now);
        self.rewrite(&old, &l)?;
        if l.state == LeadState::Dnc {
            self.dnc.insert(
                keys::phone(l.campaign.0, &l.number),
                encode(&super::DncEntry {
                    number: l.number.clone(),
                    campaign: Some(l.campaign),
                    added_at: now,
                    reason: Some("disposition".into()),
                }),
            )?;
        }
        Ok(l)
    }

    /// Close a call a crash left open as `network`, outcome unknown.
    pub(super) fn close_unknown(&mut self, lead: LeadId, call: CallId, now: Time) -> Result<()> {
        let l = match self.get_lead(lead) {
            Ok(l) => l,
            Err(StoreError::UnknownLead { .. }) => {
                self.active.remove(keys::lead(lead))?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let rec = CallRecord {
            call,
            campaign: l.campaign,
            lead,
            dialed_at: now,
            ringing_at: None,
            answered_at: None,
            amd_at: None,
            amd_verdict: None,
            bridged_at: None,
            ended_at: now,
            outcome: Outcome::Network,
            sip_status: None,
            agent: None,
            abandoned: false,
            dialed_by: None,
            recovered: true,
        };
        if self.cache.contains_key(&l.campaign) {
            self.call_ended(&rec)?;
        } else {
            self.active.remove(keys::lead(lead))?;
        }
        Ok(())
    }

    fn hours(&self, campaign: CampaignId, since: Time, now: Time) -> Result<Hour> {
        let mut sum = Hour::default();
        for kv in self
            .stats
            .range(keys::stats(campaign, since)..=keys::stats(campaign, now))
        {
            let h: Hour = decode("stats", &kv?.1)?;
            sum.lives += h.lives;
            sum.abandoned += h.abandoned;
            sum.amd_lives += h.amd_lives;
        }
        Ok(sum)
    }

    /// The abandon rate over the last 24 hours and 30 days, from the call records
    /// (hour by hour), with the campaign's AMD false-positive estimate.
    pub fn abandon_report(&self, campaign: CampaignId, now: Time) -> Result<AbandonReport> {
        let s = &self.campaign(campaign)?.settings;
        let f = s.counted_false_positive();
        let fp = if f > 0.0 { f / (1.0 - f) } else { 0.0 };
        let figures = |h: Hour| {
            let est = fp * h.amd_lives as f64;
            let lives = h.lives as f64 + est;
            AbandonFigures {
                live_answers: h.lives,
                abandoned: h.abandoned,
                rate: if lives > 0.0 {
                    (h.abandoned as f64 + est) / lives
                } else {
                    0.0
                },
            }
        };
        let day = std::time::Duration::from_secs(86_400);
        Ok(AbandonReport {
            last_24h: figures(self.hours(campaign, now - day, now)?),
            last_30d: figures(self.hours(campaign, now - day * 30, now)?),
        })
    }

    /// Live answers since `since`, oldest first: seeds the engine's abandon ledger
    /// after a restart.
    pub fn past_answers(&self, campaign: CampaignId, since: Time) -> Result<Vec<PastAnswer>> {
        let mut out = Vec::new();
        for kv in self
            .calls
            .range(keys::call_since(campaign, since)..keys::call_since(campaign, Time(u64::MAX)))
        {
            let rec: CallRecord = decode("calls", &kv?.1)?;
            if rec.dialed_by.is_none()
                && matches!(rec.outcome, Outcome::Connected | Outcome::Abandoned)
            {
                out.push(PastAnswer {
                    at: rec.answered_at.unwrap_or(rec.ended_at),
                    after_amd: rec.amd_verdict.is_some(),
                    abandoned: rec.outcome == Outcome::Abandoned,
                });
            }
        }
        out.sort_by_key(|a| a.at);
        Ok(out)
    }

    /// Call records of a campaign that ended at or after `since`, oldest first.
    pub fn cdrs(&self, campaign: CampaignId, since: Time, limit: usize) -> Result<Vec<CallRecord>> {
        self.calls
            .range(keys::call_since(campaign, since)..keys::call_since(campaign, Time(u64::MAX)))
            .take(limit)
            .map(|kv| decode("calls", &kv?.1))
            .collect()
    }

    /// Number of call records of a campaign (all time).
    pub fn cdr_count(&self, campaign: CampaignId) -> usize {
        self.calls.scan_prefix(keys::campaign(campaign)).count()
    }
}
