//! The control socket, driven over its real Unix and TCP listeners: every command,
//! the error codes, roles, bad input, and agents whose connection drops.

mod common;

use common::{CRM, Client, Daemon, FAST_TRUNK, SUPERVISOR, TempDir, agent_token, fast_campaign};
use serde_json::{Value, json};

fn create(c: &mut Client, extra: Value) -> u64 {
    c.ok(
        "campaign.create",
        json!({ "settings": fast_campaign(extra) }),
    )["id"]
        .as_u64()
        .unwrap()
}

#[test]
fn campaigns_leads_and_dnc_through_every_command() {
    let dir = TempDir::new("commands");
    let d = Daemon::start(dir.path(), FAST_TRUNK);
    let mut c = d.unix();
    assert_eq!(c.ok("ping", json!({})), json!("pong"));

    // Campaigns, and bad settings named by field.
    let id = create(&mut c, json!({ "name": "Spring" }));
    let r = c.req(
        "campaign.create",
        json!({ "settings": { "ring_timeout_s": 5 } }),
    );
    assert_eq!(r["error"]["code"], "invalid_settings");
    assert_eq!(r["error"]["field"], "settings.ring_timeout_s");
    let r = c.req(
        "campaign.create",
        json!({ "settings": { "ring_timout_s": 20 } }),
    );
    assert_eq!(
        (r["error"]["code"].as_str(), r["error"]["field"].as_str()),
        (Some("bad_args"), Some("settings.ring_timout_s"))
    );
    let r = c.req(
        "campaign.create",
        json!({ "settings": { "max_wait_s": "two" } }),
    );
    assert_eq!(r["error"]["field"], "settings.max_wait_s");
    assert_eq!(
        c.err("campaign.get", json!({ "campaign": 99 })),
        "unknown_campaign"
    );
    assert_eq!(
        c.ok("campaign.get", json!({ "campaign": id }))["campaign"]["settings"]["name"],
        "Spring"
    );
    let list = c.ok("campaign.list", json!({}));
    assert_eq!(list[0]["name"], "Spring");
    let u = c.ok(
        "campaign.update",
        json!({ "campaign": id, "settings": { "max_wait_s": 1.5 } }),
    );
    assert_eq!(u["settings"]["max_wait_s"], 1.5);
    assert_eq!(
        u["settings"]["name"], "Spring",
        "update keeps what it does not name"
    );

    // Leads: normalised, deduplicated, checked against DNC; batches are bounded.
    c.ok("dnc.add", json!({ "number": "020 7946 0999" }));
    let r = c.ok(
        "lead.add",
        json!({ "campaign": id, "leads": [
            { "number": "020 7946 0001", "fields": { "name": "Ada" } },
            { "number": "+44 20 7946 0001" },
            { "number": "not a number" },
            { "number": "02079460999" },
            { "number": "02079460002", "priority": 12 },
            { "number": "02079460003", "fields": [1] },
        ] }),
    );
    let codes: Vec<Value> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["error"]["code"].clone())
        .collect();
    assert_eq!(
        codes,
        vec![
            Value::Null,
            json!("duplicate"),
            json!("invalid_number"),
            json!("dnc"),
            json!("bad_priority"),
            json!("fields_not_object")
        ]
    );
    let lead = r["results"][0]["lead"].as_u64().unwrap();
    let big: Vec<Value> = (0..10_001)
        .map(|i| json!({ "number": format!("0207946{i:04}") }))
        .collect();
    assert_eq!(
        c.err("lead.add", json!({ "campaign": id, "leads": big })),
        "batch_too_large"
    );
    assert_eq!(
        c.err("lead.add", json!({ "campaign": 42, "leads": [] })),
        "unknown_campaign"
    );
    let r = c.req("lead.add", json!({ "campaign": id, "leads": "x" }));
    assert_eq!(
        (r["error"]["code"].as_str(), r["error"]["field"].as_str()),
        (Some("bad_args"), Some("leads"))
    );

    let csv = dir.path().join("leads.csv");
    std::fs::write(
        &csv,
        "phone,name\n02079460010,Bo\n02079460011,Cy\n02079460001,Dup\n",
    )
    .unwrap();
    let s = c.ok(
        "lead.import",
        json!({ "campaign": id, "path": csv.display().to_string(), "mapping": { "number": "phone" } }),
    );
    assert_eq!(
        (s["added"].as_u64(), s["duplicates"].as_u64()),
        (Some(2), Some(1))
    );
    let r = c.req(
        "lead.import",
        json!({ "campaign": id, "path": "/nonexistent.csv", "mapping": { "number": "phone" } }),
    );
    assert_eq!(
        (r["error"]["code"].as_str(), r["error"]["field"].as_str()),
        (Some("import_failed"), Some("path"))
    );

    let l = c.ok("lead.get", json!({ "lead": lead }));
    assert_eq!(
        (l["number"].as_str(), l["state"].as_str()),
        (Some("+442079460001"), Some("new"))
    );
    assert_eq!(
        c.ok(
            "lead.get",
            json!({ "campaign": id, "number": "020 7946 0010" })
        )["fields"]["name"],
        "Bo"
    );
    assert_eq!(c.err("lead.get", json!({ "lead": 12345 })), "unknown_lead");
    assert_eq!(c.err("lead.get", json!({})), "bad_args");
    let page = c.ok("lead.list", json!({ "campaign": id, "limit": 2 }));
    assert_eq!(page.as_array().unwrap().len(), 2);
    let after = page[1]["id"].clone();
    let rest = c.ok("lead.list", json!({ "campaign": id, "after": after }));
    assert!(
        rest.as_array()
            .unwrap()
            .iter()
            .all(|l| l["id"].as_u64() > after.as_u64())
    );
    let invalid = c.ok("lead.list", json!({ "campaign": id, "state": "invalid" }));
    assert_eq!(invalid.as_array().unwrap().len(), 1);
    let up = c.ok(
        "lead.update",
        json!({ "lead": lead, "priority": 9, "fields": { "name": "Ada L." } }),
    );
    assert_eq!(
        (up["priority"].as_u64(), up["fields"]["name"].as_str()),
        (Some(9), Some("Ada L."))
    );
    assert_eq!(
        c.err("lead.update", json!({ "lead": lead, "priority": 10 })),
        "bad_priority"
    );
    assert_eq!(
        c.err(
            "lead.update",
            json!({ "lead": lead, "time_zone": "Mars/Base" })
        ),
        "unknown_time_zone"
    );
    assert_eq!(
        c.err("lead.update", json!({ "lead": lead, "colour": 1 })),
        "bad_args"
    );

    // DNC: campaign and global lists.
    let r = c.ok(
        "dnc.add",
        json!({ "number": "02079460010", "campaign": id, "reason": "asked" }),
    );
    assert_eq!(r["leads_closed"].as_array().unwrap().len(), 1);
    assert_eq!(
        c.ok(
            "dnc.check",
            json!({ "number": "+442079460010", "campaign": id })
        )["listed"],
        true
    );
    assert_eq!(
        c.ok("dnc.check", json!({ "number": "+442079460010" }))["listed"],
        false
    );
    assert_eq!(
        c.ok(
            "dnc.remove",
            json!({ "number": "02079460010", "campaign": id })
        )["removed"],
        true
    );
    assert_eq!(
        c.err("dnc.add", json!({ "number": "12" })),
        "invalid_number"
    );
    let dnc_file = dir.path().join("dnc.csv");
    std::fs::write(&dnc_file, "02079460011\nbogus\n").unwrap();
    let s = c.ok(
        "dnc.import",
        json!({ "path": dnc_file.display().to_string() }),
    );
    assert_eq!(
        (
            s["added"].as_u64(),
            s["invalid"].as_u64(),
            s["leads_closed"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );

    // Start, stats, and the rules on changing a running campaign.
    c.ok("campaign.start", json!({ "campaign": id }));
    assert_eq!(
        c.err(
            "campaign.update",
            json!({ "campaign": id, "settings": { "max_wait_s": 1 } })
        ),
        "campaign_running"
    );
    assert_eq!(
        c.err("campaign.delete", json!({ "campaign": id })),
        "campaign_running"
    );
    let st = c.ok("stats.campaign", json!({ "campaign": id }));
    assert_eq!(st["state"], "running");
    assert!(
        st["abandon"]["last_24h"]["rate"].is_number()
            && st["abandon"]["last_30d"]["rate"].is_number()
    );
    assert_eq!(c.ok("stats.agents", json!({})), json!([]));
    assert_eq!(c.ok("cdr.list", json!({ "campaign": id })), json!([]));
    c.ok("campaign.pause", json!({ "campaign": id }));
    c.ok("campaign.stop", json!({ "campaign": id }));
    assert_eq!(
        c.ok("lead.delete", json!({ "lead": lead }))["deleted"],
        json!(lead)
    );
    assert_eq!(
        c.err("lead.delete", json!({ "lead": lead })),
        "unknown_lead"
    );
    let del = c.ok("campaign.delete", json!({ "campaign": id }));
    assert_eq!(del["leads_deleted"], 4, "invalid, dnc and the two imported");
    assert_eq!(
        c.err("campaign.start", json!({ "campaign": id })),
        "unknown_campaign"
    );

    // Protocol errors.
    assert_eq!(c.err("campaign.explode", json!({})), "unknown_command");
    c.send_raw(b"{\"id\": 5, \"cmd\": 7}\n");
    assert_eq!(c.response()["error"]["code"], "bad_request");
    c.send_raw(b"[]\n");
    assert_eq!(c.response()["error"]["code"], "bad_request");
    c.send_raw(b"{\"id\": 6, \"cmd\": \"ping\", \"args\": 3}\n");
    assert_eq!(c.response()["error"]["code"], "bad_args");
}

#[test]
fn roles_and_tokens_are_enforced() {
    let dir = TempDir::new("roles");
    let d = Daemon::start(dir.path(), FAST_TRUNK);
    let mut crm = d.tcp(CRM);
    let id = create(&mut crm, json!({}));
    // No auth yet: only `auth` is served; a wrong token fails.
    let mut anon = Client::tcp(&d.tcp);
    assert_eq!(anon.err("campaign.list", json!({})), "auth_required");
    assert_eq!(
        anon.err("auth", json!({ "token": "wrong-token-wrong-token" })),
        "auth_failed"
    );
    // Supervisors read and pause, nothing else.
    let mut sup = d.tcp(SUPERVISOR);
    sup.ok("stats.campaign", json!({ "campaign": id }));
    sup.ok("campaign.list", json!({}));
    assert_eq!(
        sup.err("lead.add", json!({ "campaign": id, "leads": [] })),
        "forbidden"
    );
    assert_eq!(
        sup.err("campaign.start", json!({ "campaign": id })),
        "forbidden"
    );
    sup.ok("campaign.pause", json!({ "campaign": id }));
    // Agents act for themselves only.
    let mut a1 = d.tcp(&agent_token(1));
    assert_eq!(a1.err("campaign.list", json!({})), "forbidden");
    assert_eq!(
        a1.err("agent.login", json!({ "campaign": id, "agent": 2 })),
        "forbidden"
    );
    a1.ok("agent.login", json!({ "campaign": id }));
    assert_eq!(
        a1.err("agent.login", json!({ "campaign": id })),
        "already_logged_in"
    );
    // The Unix socket is crm + supervisor: no agent commands.
    let mut unix = d.unix();
    assert_eq!(unix.err("agent.ready", json!({ "agent": 1 })), "forbidden");
    assert_eq!(crm.err("agent.ready", json!({ "agent": 1 })), "forbidden");
    let agents = unix.ok("stats.agents", json!({ "campaign": id }));
    assert_eq!(agents[0]["agent"], 1);
}

#[test]
fn garbage_and_huge_lines_do_not_disturb_anyone() {
    let dir = TempDir::new("garbage");
    let d = Daemon::start(dir.path(), FAST_TRUNK);
    let mut bad = d.unix();
    let mut good = d.unix();
    good.ok("ping", json!({}));
    bad.send_raw(b"\x00\xff garbage {{{\n");
    assert_eq!(bad.response()["error"]["code"], "bad_json");
    // 2 MiB on one line, sent in pieces while the other client works.
    let chunk = vec![b'x'; 256 * 1024];
    for i in 0..8 {
        bad.send_raw(&chunk);
        if i % 2 == 0 {
            good.ok("campaign.list", json!({}));
        }
    }
    bad.send_raw(b"\n");
    let r = bad.response();
    assert_eq!(r["error"]["code"], "line_too_long", "{r}");
    // Both go on.
    bad.ok("ping", json!({}));
    good.ok("ping", json!({}));
    let id = create(&mut good, json!({}));
    assert_eq!(
        bad.ok("campaign.get", json!({ "campaign": id }))["campaign"]["id"],
        id
    );
}

#[test]
fn agents_take_calls_and_a_dropped_connection_logs_them_out() {
    let dir = TempDir::new("agents");
    let d = Daemon::start(dir.path(), FAST_TRUNK);
    let mut crm = d.unix();
    let id = create(&mut crm, json!({ "mask_numbers": true, "amd": true }));
    let leads: Vec<Value> = (0..40)
        .map(|i| json!({ "number": format!("0207946{i:04}"), "fields": { "n": i } }))
        .collect();
    crm.ok("lead.add", json!({ "campaign": id, "leads": leads }));
    crm.ok(
        "events.subscribe",
        json!({ "campaigns": [id], "events": ["call.ended", "call.connected"] }),
    );

    let mut agent = d.tcp(&agent_token(3));
    agent.ok("events.subscribe", json!({}));
    agent.ok(
        "agent.login",
        json!({ "campaign": id, "contact": "sip:agent3@127.0.0.1" }),
    );
    agent.ok("agent.ready", json!({}));
    crm.ok("campaign.start", json!({ "campaign": id }));

    // A person answers: the agent is offered the call with the lead's fields and
    // without the number (masked).
    let offered = agent.wait_event("call.offered", |e| e["event"] == "call.offered");
    assert_eq!(offered["agent"], 3);
    assert!(offered["fields"]["n"].is_number());
    assert!(
        offered.get("number").is_none(),
        "numbers are masked: {offered}"
    );
    let call = offered["call"].clone();
    crm.wait_event("call.connected", |e| {
        e["event"] == "call.connected" && e["call"] == call
    });
    let ended = crm.wait_event("call.ended", |e| {
        e["event"] == "call.ended" && e["call"] == call
    });
    assert_eq!(ended["outcome"], "connected");
    agent.wait_event("wrap-up", |e| {
        e["event"] == "agent.state" && e["state"] == "wrap_up"
    });
    assert_eq!(
        agent.err("agent.disposition", json!({ "code": "no_such_code" })),
        "bad_disposition"
    );
    assert_eq!(
        agent.err("agent.disposition", json!({ "code": "callback" })),
        "bad_args"
    );
    agent.ok(
        "agent.disposition",
        json!({ "code": "sale", "then": "pause" }),
    );
    assert_eq!(
        agent.err("agent.disposition", json!({ "code": "sale" })),
        "no_call_to_disposition"
    );
    let lead = offered["lead"].as_u64().unwrap();
    let l = crm.ok("lead.get", json!({ "lead": lead }));
    assert_eq!(
        (l["state"].as_str(), l["disposition"].as_str()),
        (Some("done"), Some("sale"))
    );
    let cdrs = crm.ok("cdr.list", json!({ "campaign": id, "limit": 1000 }));
    let cdr = cdrs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["call"] == call)
        .expect("the CDR")
        .clone();
    assert_eq!(
        (cdr["outcome"].as_str(), cdr["agent"].as_u64()),
        (Some("connected"), Some(3))
    );
    for t in [
        "dialed_at",
        "answered_at",
        "amd_at",
        "bridged_at",
        "ended_at",
    ] {
        assert!(cdr[t].is_number(), "{t} in {cdr}");
    }

    // Click-to-dial: the agent dials a number of its own; it can hang it up.
    let dial = agent.ok("call.dial", json!({ "number": "02079469999" }));
    let own = dial["call"].clone();
    assert_eq!(
        agent.err("call.dial", json!({ "number": "02079469998" })),
        "agent_busy"
    );
    assert_eq!(
        agent.err("call.hangup", json!({ "call": 999_999 })),
        "forbidden"
    );
    agent.ok("call.hangup", json!({ "call": own }));
    assert_eq!(
        agent.err("call.dial", json!({ "number": "nope" })),
        "invalid_number"
    );

    // A callback reserved for this agent; pause, ready, log out, back in.
    let other = crm.ok(
        "lead.get",
        json!({ "campaign": id, "number": "02079469999" }),
    );
    let at = other["created_at"].as_u64().unwrap() + 3_600_000;
    let cb = agent.ok(
        "agent.callback",
        json!({ "lead": other["id"], "at": at, "same_agent": true }),
    );
    assert_eq!(
        (cb["agent"].as_u64(), cb["due_at"].as_u64()),
        (Some(3), Some(at))
    );
    assert_eq!(agent.ok("agent.pause", json!({}))["state"], "paused");
    assert_eq!(agent.ok("agent.logout", json!({}))["state"], "logged_out");
    assert_eq!(agent.err("agent.ready", json!({})), "not_logged_in");
    agent.ok("agent.login", json!({ "campaign": id }));

    // The agent's connection drops: it is logged out.
    let before = crm.ok("stats.agents", json!({ "campaign": id }));
    assert_eq!(before.as_array().unwrap().len(), 1);
    drop(agent);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = crm.ok("stats.agents", json!({ "campaign": id }));
        if now.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still logged in: {now}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn sigterm_stops_cleanly_and_the_state_survives() {
    let dir = TempDir::new("restart");
    let mut d = Daemon::start(dir.path(), FAST_TRUNK);
    let mut c = d.unix();
    let id = create(&mut c, json!({ "name": "Kept" }));
    c.ok(
        "lead.add",
        json!({ "campaign": id, "leads": [{ "number": "02079460001" }] }),
    );
    c.ok("campaign.start", json!({ "campaign": id }));
    drop(c);
    assert!(d.terminate().success());
    assert!(!d.socket.exists(), "the socket is removed on exit");
    d.restart();
    let mut c = d.unix();
    let got = c.ok("campaign.get", json!({ "campaign": id }));
    assert_eq!(
        (
            got["campaign"]["settings"]["name"].as_str(),
            got["campaign"]["state"].as_str()
        ),
        (Some("Kept"), Some("running"))
    );
    assert_eq!(
        c.ok(
            "lead.get",
            json!({ "campaign": id, "number": "+442079460001" })
        )["state"],
        "new"
    );
}
