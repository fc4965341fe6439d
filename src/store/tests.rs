use std::time::Duration;

use super::*;
use crate::campaign::{CallingWindow, LeadInput, LeadState};
use crate::engine::CallRecord;
use crate::ids::CallId;
use crate::outcome::Outcome;

/// 10:00 on Monday 2026-01-05, London (UTC in January).
fn ten() -> Time {
    Time::SIM_EPOCH + Duration::from_secs(10 * 3600)
}

fn store() -> (tempdir::Dir, Store) {
    let dir = tempdir::Dir::new("store");
    let s = Store::open(dir.path()).unwrap();
    (dir, s)
}

/// A temporary directory removed on drop (tests only).
mod tempdir {
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "dialerd-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn input(n: &str) -> LeadInput {
    LeadInput {
        number: n.into(),
        ..LeadInput::default()
    }
}

fn campaign(s: &mut Store) -> CampaignId {
    s.create_campaign(CampaignSettings::default(), ten())
        .unwrap()
        .id
}

fn cdr(call: CallId, c: CampaignId, lead: LeadId, outcome: Outcome, at: Time) -> CallRecord {
    CallRecord {
        call,
        campaign: c,
        lead,
        dialed_at: at,
        ringing_at: None,
        answered_at: matches!(outcome, Outcome::Connected | Outcome::Abandoned).then_some(at),
        amd_at: None,
        amd_verdict: None,
        bridged_at: None,
        ended_at: at,
        outcome,
        sip_status: None,
        agent: None,
        abandoned: outcome == Outcome::Abandoned,
        dialed_by: None,
        recovered: false,
    }
}

#[test]
fn leads_are_normalised_deduplicated_and_dnc_checked() {
    let (_d, mut s) = store();
    let c = campaign(&mut s);
    s.dnc_add(None, "020 7946 0999", None, ten()).unwrap();
    let r = s
        .add_leads(
            c,
            vec![
                input("020 7946 0001"),
                input("+44 20 7946 0001"),
                input("hello"),
                input("02079460999"),
                LeadInput {
                    priority: Some(42),
                    ..input("02079460002")
                },
            ],
            ten(),
        )
        .unwrap();
    assert_eq!(r[0].state, Some(LeadState::New));
    assert_eq!(r[1].error.as_ref().unwrap().code, "duplicate");
    assert_eq!(r[1].lead, r[0].lead, "points at the existing lead");
    assert_eq!(r[2].state, Some(LeadState::Invalid));
    assert_eq!(r[3].state, Some(LeadState::Dnc));
    assert_eq!(r[4].error.as_ref().unwrap().code, "bad_priority");
    assert_eq!(r[4].lead, None);
    let lead = s.lead(r[0].lead.unwrap()).unwrap();
    assert_eq!(lead.number, "+442079460001");
    assert_eq!(keys::campaign_of(lead.id), c);
    // Only the good lead is due.
    let due = s.take_due(c, ten(), 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, lead.id);
    assert!(
        s.take_due(c, ten(), 10).unwrap().is_empty(),
        "not handed out twice"
    );
    let err = s
        .add_leads(c, vec![input("1"); MAX_BATCH + 1], ten())
        .unwrap_err();
    assert!(matches!(err, StoreError::BatchTooLarge { .. }));
}

#[test]
fn due_leads_come_by_priority_then_age_inside_their_window() {
    let (_d, mut s) = store();
    let c = campaign(&mut s);
    let r = s
        .add_leads(
            c,
            vec![
                input("02079460001"),
                LeadInput {
                    priority: Some(9),
                    ..input("02079460002")
                },
                // New York: 10:00 London is 05:00 there, before its window.
                LeadInput {
                    time_zone: Some("America/New_York".into()),
                    ..input("02079460003")
                },
                input("02079460004"),
            ],
            ten(),
        )
        .unwrap();
    let ids: Vec<LeadId> = r.iter().map(|r| r.lead.unwrap()).collect();
    let due = s.take_due(c, ten(), 10).unwrap();
    let got: Vec<LeadId> = due.iter().map(|d| d.id).collect();
    assert_eq!(got, vec![ids[1], ids[0], ids[3]]);
    let ny = s.lead(ids[2]).unwrap();
    // 08:00 in New York is 13:00 UTC.
    assert_eq!(
        ny.due_at,
        Some(Time::SIM_EPOCH + Duration::from_secs(13 * 3600))
    );
    // A number put on the DNC list after import is caught when taken.
    s.release([ids[0]]);
    s.dnc
        .insert(keys::phone(c.0, "+442079460001"), encode(&"x"))
        .unwrap();
    assert!(s.take_due(c, ten(), 10).unwrap().is_empty());
    assert_eq!(s.lead(ids[0]).unwrap().state, LeadState::Dnc);
}

#[test]
fn calls_move_leads_on_by_the_retry_rules() {
    let (_d, mut s) = store();
    let c = campaign(&mut s);
    let id = s.add_leads(c, vec![input("02079460001")], ten()).unwrap()[0]
        .lead
        .unwrap();
    s.take_due(c, ten(), 1).unwrap();
    s.dialing(CallId(7), id).unwrap();
    assert_eq!(s.lead(id).unwrap().state, LeadState::Dialing);
    assert_eq!(s.last_call_id().unwrap(), 7);
    assert!(s.take_due(c, ten(), 1).unwrap().is_empty());
    let l = s
        .call_ended(&cdr(CallId(7), c, id, Outcome::Busy, ten()))
        .unwrap();
    assert_eq!((l.state, l.attempts), (LeadState::Due, 1));
    assert_eq!(l.due_at, Some(ten() + Duration::from_secs(15 * 60)));
    assert!(
        s.take_due(c, ten(), 1).unwrap().is_empty(),
        "not before its retry time"
    );
    let later = ten() + Duration::from_secs(16 * 60);
    assert_eq!(s.take_due(c, later, 1).unwrap().len(), 1);
    s.dialing(CallId(8), id).unwrap();
    let l = s
        .call_ended(&cdr(CallId(8), c, id, Outcome::Abandoned, later))
        .unwrap();
    assert_eq!(
        l.due_at,
        Some(later + Duration::from_secs(72 * 3600)),
        "abandon lockout"
    );
    let report = s.abandon_report(c, later).unwrap();
    assert_eq!(
        (report.last_24h.live_answers, report.last_24h.abandoned),
        (1, 1)
    );
    assert_eq!(s.cdrs(c, Time(0), 10).unwrap().len(), 2);
    assert_eq!(s.past_answers(c, Time(0)).unwrap().len(), 1);
}

#[test]
fn dispositions_close_reschedule_or_reserve() {
    let (_d, mut s) = store();
    let c = campaign(&mut s);
    let id = s.add_leads(c, vec![input("02079460001")], ten()).unwrap()[0]
        .lead
        .unwrap();
    s.dialing(CallId(1), id).unwrap();
    s.offered(id).unwrap();
    assert_eq!(s.lead(id).unwrap().state, LeadState::InCall);
    s.call_ended(&cdr(CallId(1), c, id, Outcome::Connected, ten()))
        .unwrap();
    let at = ten() + Duration::from_secs(3600);
    let agent = crate::ids::AgentId(3);
    let l = s
        .disposition(
            id,
            "callback",
            Some(crate::campaign::Callback {
                at,
                agent: Some(agent),
            }),
            None,
            ten(),
        )
        .unwrap();
    assert_eq!((l.state, l.agent), (LeadState::Due, Some(agent)));
    assert!(
        s.take_due(c, at, 5).unwrap().is_empty(),
        "reserved for its agent"
    );
    assert!(s.due_callback(agent, ten()).unwrap().is_none());
    assert_eq!(s.due_callback(agent, at).unwrap().unwrap().id, id);
    let l = s.disposition(id, "dnc", None, None, at).unwrap();
    assert_eq!(l.state, LeadState::Dnc);
    assert_eq!(s.dnc_check(Some(c), "02079460001").unwrap().len(), 1);
    assert!(s.due_callback(agent, at).unwrap().is_none());
}

#[test]
fn recovery_closes_open_calls_without_redialling_at_once() {
    let dir = tempdir::Dir::new("recover");
    let (c, id) = {
        let mut s = Store::open(dir.path()).unwrap();
        let c = campaign(&mut s);
        let id = s.add_leads(c, vec![input("02079460001")], ten()).unwrap()[0]
            .lead
            .unwrap();
        s.dialing(CallId(5), id).unwrap();
        s.flush().unwrap();
        (c, id)
    };
    let mut s = Store::open(dir.path()).unwrap();
    let report = s.recover(ten()).unwrap();
    assert_eq!(report.calls_closed, 1);
    let l = s.lead(id).unwrap();
    assert_eq!(l.state, LeadState::Due);
    assert_eq!(l.attempts, 0, "network: no attempt consumed");
    assert_eq!(l.due_at, Some(ten() + Duration::from_secs(5 * 60)));
    let cdrs = s.cdrs(c, Time(0), 10).unwrap();
    assert!(cdrs[0].recovered && cdrs[0].outcome == Outcome::Network);
    assert!(s.take_due(c, ten(), 1).unwrap().is_empty());
    assert_eq!(s.last_call_id().unwrap(), 5);
}

#[test]
fn a_half_written_batch_is_rolled_back_whole() {
    let (_d, mut s) = store();
    let c = campaign(&mut s);
    s.add_leads(c, vec![input("02079460001")], ten()).unwrap();
    // As if the daemon died after the journal and part of the next batch.
    let ids = s
        .add_leads(c, vec![input("02079460002"), input("02079460003")], ten())
        .unwrap();
    let j = Journal2 {
        campaign: c,
        first: 2,
        next: 4,
    };
    s.meta.insert(IMPORT_JOURNAL, encode(&j)).unwrap();
    s.due.clear().unwrap();
    let report = s.recover(ten()).unwrap();
    assert_eq!(report.leads_rolled_back, 2);
    for r in ids {
        assert!(s.lead(r.lead.unwrap()).is_err());
    }
    assert!(s.lead_by_number(c, "02079460002").unwrap().is_none());
    // The numbers can be added again, under fresh ids.
    let again = s.add_leads(c, vec![input("02079460002")], ten()).unwrap();
    assert_eq!(again[0].state, Some(LeadState::New));
    // A complete batch under a stale journal is kept.
    let j = Journal2 {
        campaign: c,
        first: 2,
        next: 3,
    };
    s.meta.insert(IMPORT_JOURNAL, encode(&j)).unwrap();
    assert_eq!(s.recover(ten()).unwrap().leads_rolled_back, 0);
    assert!(s.lead(again[0].lead.unwrap()).is_ok());
}

#[derive(serde::Serialize)]
struct Journal2 {
    campaign: CampaignId,
    first: u64,
    next: u64,
}

#[test]
fn csv_imports_map_columns() {
    let (d, mut s) = store();
    let c = campaign(&mut s);
    std::fs::create_dir_all(d.path()).unwrap();
    let path = d.path().join("leads.csv");
    std::fs::write(
        &path,
        "phone,name,prio\n02079460001,Ada,7\n02079460001,Dup,1\nnope,Bad,1\n02079460002,Bob,99\n",
    )
    .unwrap();
    let mapping = ImportMapping {
        number: "phone".into(),
        priority: Some("prio".into()),
        ..ImportMapping::default()
    };
    let sum = s.import_csv(c, &path, &mapping, ten()).unwrap();
    assert_eq!(
        (
            sum.rows,
            sum.added,
            sum.duplicates,
            sum.invalid,
            sum.rejected
        ),
        (4, 1, 1, 1, 1)
    );
    let l = s.lead_by_number(c, "+442079460001").unwrap().unwrap();
    assert_eq!((l.priority, l.fields["name"].as_str()), (7, Some("Ada")));
    let bad = ImportMapping {
        number: "tel".into(),
        ..ImportMapping::default()
    };
    assert!(matches!(
        s.import_csv(c, &path, &bad, ten()),
        Err(StoreError::Import { .. })
    ));
}

#[test]
fn global_dnc_closes_queued_leads_everywhere() {
    let (_d, mut s) = store();
    let a = campaign(&mut s);
    let b = campaign(&mut s);
    let la = s.add_leads(a, vec![input("02079460001")], ten()).unwrap()[0]
        .lead
        .unwrap();
    let lb = s.add_leads(b, vec![input("02079460001")], ten()).unwrap()[0]
        .lead
        .unwrap();
    let (_, closed) = s.dnc_add(None, "+442079460001", None, ten()).unwrap();
    assert_eq!(closed, vec![la, lb]);
    assert!(s.dnc_remove(None, "02079460001").unwrap());
    assert!(!s.dnc_remove(None, "02079460001").unwrap());
    let window = CallingWindow::default();
    assert!(window.left_s(ten(), &jiff::tz::TimeZone::UTC).is_some());
    assert_eq!(s.delete_campaign(a).unwrap(), 1);
    assert!(s.campaign(a).is_err());
    assert!(s.lead(la).is_err());
}
