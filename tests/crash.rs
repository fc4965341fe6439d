//! Crash safety: the daemon is killed with SIGKILL at random moments during lead
//! imports and during dialing, restarted, and checked: no acknowledged lead lost, no
//! half batch, no CDR lost, no duplicate number, and no number dialled again before
//! its retry time.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{Client, Daemon, FAST_TRUNK, TempDir, agent_token, fast_campaign, send_signal};
use serde_json::{Value, json};

/// A small deterministic generator for kill times.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn kill_after(pid: u32, ms: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(ms));
        send_signal(pid, "KILL");
    })
}

fn all_leads(c: &mut Client, campaign: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let mut args = json!({ "campaign": campaign, "limit": 1000 });
        if !after.is_null() {
            args["after"] = after.clone();
        }
        let page = c.ok("lead.list", args);
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            return out;
        }
        after = page.last().unwrap()["id"].clone();
        out.extend(page);
    }
}

fn number(i: u64) -> String {
    assert!(i < 10_000_000);
    format!("+44207{i:07}")
}

#[test]
fn imports_survive_sigkill_whole_or_not_at_all() {
    let dir = TempDir::new("crash-import");
    let mut d = Daemon::start(dir.path(), FAST_TRUNK);
    let campaign = d.unix().ok(
        "campaign.create",
        json!({ "settings": fast_campaign(json!({})) }),
    )["id"]
        .as_u64()
        .unwrap();
    let mut rng = Rng(0x5eed_1234);
    let mut acked: Vec<String> = Vec::new();
    let mut next = 0u64;
    const BATCH: u64 = 500;
    for round in 0..12 {
        let mut c = d.unix();
        let killer = kill_after(d.pid(), 20 + rng.below(400));
        let mut in_flight: Vec<String>;
        loop {
            let batch: Vec<String> = (next..next + BATCH).map(number).collect();
            let leads: Vec<Value> = batch.iter().map(|n| json!({ "number": n })).collect();
            in_flight = batch.clone();
            next += BATCH;
            match c.try_req("lead.add", json!({ "campaign": campaign, "leads": leads })) {
                Some(r) => {
                    assert_eq!(r["ok"], json!(true), "{r}");
                    assert_eq!(r["data"]["added"], json!(BATCH));
                    acked.extend(batch);
                    in_flight.clear();
                }
                None => break,
            }
        }
        killer.join().unwrap();
        d.reap();
        d.restart();
        let mut c = d.unix();
        let leads = all_leads(&mut c, campaign);
        let numbers: HashSet<String> = leads
            .iter()
            .map(|l| l["number"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            numbers.len(),
            leads.len(),
            "round {round}: no duplicate number"
        );
        for n in &acked {
            assert!(
                numbers.contains(n),
                "round {round}: acknowledged lead {n} lost"
            );
        }
        let extra: Vec<&String> = in_flight.iter().filter(|n| numbers.contains(*n)).collect();
        assert!(
            extra.is_empty() || extra.len() == in_flight.len(),
            "round {round}: a batch was half written ({} of {})",
            extra.len(),
            in_flight.len()
        );
        // Whatever made it is now acknowledged state.
        acked.extend(extra.into_iter().cloned());
        assert_eq!(
            numbers.len(),
            acked.len(),
            "round {round}: nothing else appeared"
        );
    }
    let log = d.log();
    eprintln!(
        "{} restarts rolled back a half-written batch",
        log.matches("leads of an interrupted batch rolled back")
            .count()
    );
    assert_eq!(
        log.matches("dialerd: ready").count(),
        13,
        "12 restarts:\n{log}"
    );
}

/// An agent that takes calls and gives a disposition after each, until the daemon
/// goes away.
fn agent(tcp: String, n: u32, campaign: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = Client::tcp(&tcp);
        if c.try_req("auth", json!({ "token": agent_token(n) }))
            .is_none()
        {
            return;
        }
        for (cmd, args) in [
            ("events.subscribe", json!({})),
            ("agent.login", json!({ "campaign": campaign })),
            ("agent.ready", json!({})),
        ] {
            if c.try_req(cmd, args).is_none() {
                return;
            }
        }
        while let Some(line) = c.line() {
            if line["event"] == "agent.state" && line["state"] == "wrap_up" {
                let req =
                    json!({ "id": 1, "cmd": "agent.disposition", "args": { "code": "sale" } });
                c.send_raw(format!("{req}\n").as_bytes());
            }
        }
    })
}

fn cdrs(c: &mut Client, campaign: u64) -> Vec<Value> {
    c.ok("cdr.list", json!({ "campaign": campaign, "limit": 10000 }))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn dialing_survives_sigkill_without_early_redials() {
    let dir = TempDir::new("crash-dial");
    let mut d = Daemon::start(dir.path(), FAST_TRUNK);
    let settings = fast_campaign(json!({ "pacing": { "policy": "ratio", "ratio": 3.0 } }));
    let mut crm = d.unix();
    let campaign = crm.ok("campaign.create", json!({ "settings": settings }))["id"]
        .as_u64()
        .unwrap();
    let leads: Vec<Value> = (0..400).map(|i| json!({ "number": number(i) })).collect();
    crm.ok("lead.add", json!({ "campaign": campaign, "leads": leads }));
    crm.ok("campaign.start", json!({ "campaign": campaign }));
    drop(crm);
    let mut rng = Rng(0xdead_beef);
    let mut seen_cdrs = 0;
    for round in 0..10 {
        let agents: Vec<_> = (1..=5).map(|n| agent(d.tcp.clone(), n, campaign)).collect();
        let mut crm = d.unix();
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        let before = cdrs(&mut crm, campaign).len();
        send_signal(d.pid(), "KILL");
        d.reap();
        for a in agents {
            a.join().unwrap();
        }
        d.restart();
        let mut crm = d.unix();
        let after = cdrs(&mut crm, campaign);
        assert!(
            after.len() >= before,
            "round {round}: CDRs lost ({} < {before})",
            after.len()
        );
        assert!(before >= seen_cdrs, "round {round}");
        seen_cdrs = after.len();
        let leads = all_leads(&mut crm, campaign);
        assert_eq!(leads.len(), 400, "round {round}: leads lost");
        for l in &leads {
            assert!(
                !matches!(l["state"].as_str(), Some("dialing" | "in_call")),
                "round {round}: {l} still marked as up after recovery (no agents yet)"
            );
        }
    }
    // Stop cleanly so that every dial has its CDR, then check the retry times.
    assert!(d.terminate().success(), "{}", d.log());
    d.restart();
    let mut crm = d.unix();
    let all = cdrs(&mut crm, campaign);
    eprintln!("{} call records over 10 kills", all.len());
    assert!(
        all.len() > 40,
        "enough calls to mean something: {}",
        all.len()
    );
    assert!(
        all.iter().any(|r| r["recovered"] == json!(true)),
        "some calls were open at a kill"
    );
    let mut by_lead: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for r in &all {
        by_lead
            .entry(r["lead"].as_u64().unwrap())
            .or_default()
            .push(r);
    }
    for (lead, mut calls) in by_lead {
        calls.sort_by_key(|r| r["dialed_at"].as_u64());
        for pair in calls.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a["outcome"] == "canceled" {
                continue; // Canceled at shutdown: due again at once, no attempt used.
            }
            assert_ne!(
                a["outcome"], "connected",
                "lead {lead}: dialled again after a connected call: {b}"
            );
            let earliest = a["ended_at"].as_u64().unwrap() + 60_000;
            assert!(
                b["dialed_at"].as_u64().unwrap() >= earliest,
                "lead {lead}: redialled before its retry time:\n{a}\n{b}"
            );
        }
    }
}
