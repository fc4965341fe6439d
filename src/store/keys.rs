//! Key layouts of the sled trees. Big-endian integers so that keys sort the way the
//! store scans them.

use crate::ids::{AgentId, CallId, CampaignId, LeadId};
use crate::time::Time;

/// Lead ids carry their campaign in the top 24 bits: a campaign's leads are one
/// contiguous key range, and a lead id alone finds its campaign.
pub const LEAD_SEQ_BITS: u32 = 40;

pub fn lead_id(campaign: CampaignId, seq: u64) -> LeadId {
    LeadId((u64::from(campaign.0) << LEAD_SEQ_BITS) | seq)
}

pub fn campaign_of(lead: LeadId) -> CampaignId {
    CampaignId((lead.0 >> LEAD_SEQ_BITS) as u32)
}

pub fn campaign(c: CampaignId) -> [u8; 4] {
    c.0.to_be_bytes()
}

pub fn lead(l: LeadId) -> [u8; 8] {
    l.0.to_be_bytes()
}

pub fn lead_from(k: &[u8]) -> LeadId {
    LeadId(u64::from_be_bytes(
        k[k.len() - 8..].try_into().expect("8 bytes"),
    ))
}

pub fn u64_from(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// The first and one-past-last lead keys of a campaign.
pub fn lead_range(c: CampaignId) -> ([u8; 8], [u8; 8]) {
    (
        lead(lead_id(c, 0)),
        (u64::from(c.0 + 1) << LEAD_SEQ_BITS).to_be_bytes(),
    )
}

/// Due index: campaign | inverted priority | due time | lead. Higher priorities
/// sort first, then the longest overdue.
pub fn due(c: CampaignId, priority: u8, at: Time, l: LeadId) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[..4].copy_from_slice(&campaign(c));
    k[4] = u8::MAX - priority;
    k[5..13].copy_from_slice(&at.as_millis().to_be_bytes());
    k[13..].copy_from_slice(&lead(l));
    k
}

/// Start and end (exclusive) of the due entries of one priority up to `now`.
pub fn due_range(c: CampaignId, priority: u8, now: Time) -> ([u8; 5], [u8; 13]) {
    let mut lo = [0u8; 5];
    lo[..4].copy_from_slice(&campaign(c));
    lo[4] = u8::MAX - priority;
    let mut hi = [0u8; 13];
    hi[..5].copy_from_slice(&lo);
    hi[5..].copy_from_slice(&(now.as_millis() + 1).to_be_bytes());
    (lo, hi)
}

/// Phone index and DNC lists: scope | E.164. Scope 0 is the global DNC list.
pub fn phone(scope: u32, e164: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + e164.len());
    k.extend_from_slice(&scope.to_be_bytes());
    k.extend_from_slice(e164.as_bytes());
    k
}

/// Call records: campaign | end time | call.
pub fn call(c: CampaignId, ended: Time, id: CallId) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&campaign(c));
    k[4..12].copy_from_slice(&ended.as_millis().to_be_bytes());
    k[12..].copy_from_slice(&id.0.to_be_bytes());
    k
}

pub fn call_since(c: CampaignId, since: Time) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&campaign(c));
    k[4..].copy_from_slice(&since.as_millis().to_be_bytes());
    k
}

/// Callbacks reserved for an agent: agent | due time | lead.
pub fn callback(a: AgentId, at: Time, l: LeadId) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..4].copy_from_slice(&a.0.to_be_bytes());
    k[4..12].copy_from_slice(&at.as_millis().to_be_bytes());
    k[12..].copy_from_slice(&lead(l));
    k
}

/// Hourly abandon-rate counters: campaign | hour since the epoch.
pub fn stats(c: CampaignId, at: Time) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&campaign(c));
    k[4..].copy_from_slice(&(at.as_millis() / 3_600_000).to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_scanned() {
        let c = CampaignId(3);
        let l = lead_id(c, 42);
        assert_eq!(campaign_of(l), c);
        assert_eq!(lead_from(&lead(l)), l);
        // Higher priority first, then earlier due time.
        let a = due(c, 9, Time(500), lead_id(c, 2));
        let b = due(c, 5, Time(100), lead_id(c, 1));
        let d = due(c, 5, Time(200), lead_id(c, 0));
        assert!(a < b && b < d);
        let (lo, hi) = due_range(c, 5, Time(150));
        assert!(b.as_slice() >= lo.as_slice() && b.as_slice() < hi.as_slice());
        assert!(d.as_slice() >= hi.as_slice());
        let (first, end) = lead_range(c);
        assert!(lead(l) >= first && lead(l) < end);
        assert!(lead(lead_id(CampaignId(4), 0)) >= end);
    }
}
