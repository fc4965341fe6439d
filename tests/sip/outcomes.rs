//! Every call outcome, told apart from what a real far end sends.

use std::time::Instant;

use dialerd::sip::sdp::Codec;
use dialerd::sip::{Event, Transport, TrunkState};

use super::*;

async fn answered_and_hung_up(ip: std::net::IpAddr, t: Transport) {
    let far = Sipp::start("answer", ip, t, 2);
    let mut ua = Ua::start(config(far.addr, t, 500)).await;
    for id in 1..=2 {
        ua.sip.originate(ua.dial(id, "1000")).await.unwrap();
        let ring = ua.next(10).await;
        assert!(
            matches!(ring, Event::Ringing { call, status: 180, .. } if call == id),
            "{ring:?}"
        );
        let media = ua.answered(id).await;
        assert_eq!(media.codec, Codec::Pcma, "the far end chose PCMA");
        assert_eq!(media.dtmf_pt, Some(101));
        assert_eq!(media.addr.ip(), ip);
        ua.sip.hangup(id).await;
        let (_, end) = ua.until_end(id, 10).await;
        assert_eq!(
            (code(&end), end.reason, end.rang),
            ("answered", "local_bye", true)
        );
    }
    assert!(far.finish(), "sipp saw the whole call: ACK and BYE");
    assert_eq!(ua.retransmissions().await, 0, "a clean loopback needs none");
}

#[tokio::test]
async fn answered_over_udp() {
    answered_and_hung_up(LOOP4, Transport::Udp).await;
}

#[tokio::test]
async fn answered_over_tcp() {
    answered_and_hung_up(LOOP4, Transport::Tcp).await;
}

#[tokio::test]
async fn answered_over_ipv6() {
    let v6: std::net::IpAddr = "::1".parse().unwrap();
    if std::net::UdpSocket::bind((v6, 0)).is_err() {
        eprintln!("no IPv6 loopback on this machine: IPv6 not tested");
        return;
    }
    answered_and_hung_up(v6, Transport::Udp).await;
}

/// Every final status the issue names, with the outcome code it must give.
const STATUSES: &[(u16, &str)] = &[
    (486, "busy"),
    (600, "busy"),
    (480, "no_answer"),
    (408, "no_answer"),
    (404, "invalid_number"),
    (484, "invalid_number"),
    (604, "invalid_number"),
    (403, "rejected"),
    (603, "rejected"),
    (488, "rejected"),
    (500, "network"),
    (502, "network"),
    (504, "network"),
    (503, "network"),
];

async fn statuses(t: Transport, cases: &[(u16, &str)]) {
    let codes: Vec<u16> = cases.iter().map(|c| c.0).collect();
    let far = Sipp::statuses(LOOP4, t, cases.len() as u32, &codes);
    let mut ua = Ua::start(config(far.addr, t, 500)).await;
    let mut paused = false;
    for (i, (status, want)) in cases.iter().enumerate() {
        let id = i as u64 + 1;
        ua.sip
            .originate(ua.dial(id, &status.to_string()))
            .await
            .unwrap();
        let (seen, end) = ua.until_end(id, 10).await;
        assert_eq!(end.status, Some(*status));
        assert_eq!(code(&end), *want, "status {status}: {seen:?}");
        assert!(end.rang, "the far end rang first");
        if *status == 503 {
            paused = seen.iter().any(|e| {
                matches!(
                    e,
                    Event::Trunk {
                        state: TrunkState::Paused { .. },
                        ..
                    }
                )
            });
        }
    }
    if cases.iter().any(|c| c.0 == 503) {
        assert!(paused, "503 with Retry-After pauses the trunk");
        // The trunk refuses new calls while paused.
        let refused = ua.sip.originate(ua.dial(99, "486")).await;
        assert!(refused.is_err(), "{refused:?}");
    }
    assert!(far.finish(), "sipp got an ACK for every final response");
}

#[tokio::test]
async fn every_final_status_over_udp() {
    statuses(Transport::Udp, STATUSES).await;
}

#[tokio::test]
async fn final_statuses_over_tcp() {
    statuses(
        Transport::Tcp,
        &[
            (486, "busy"),
            (404, "invalid_number"),
            (603, "rejected"),
            (503, "network"),
        ],
    )
    .await;
}

#[tokio::test]
async fn ring_timeout_cancels_after_fifteen_seconds() {
    let far = Sipp::start("cancel", LOOP4, Transport::Udp, 1);
    let mut ua = Ua::start(config(far.addr, Transport::Udp, 500)).await;
    let mut dial = ua.dial(1, "2000");
    dial.ring_timeout_ms = 1_000; // raised to the 15 s minimum
    let started = Instant::now();
    ua.sip.originate(dial).await.unwrap();
    let (_, end) = ua.until_end(1, 30).await;
    let rang_for = started.elapsed().as_secs_f64();
    assert_eq!((code(&end), end.status), ("no_answer", Some(487)));
    assert!(rang_for >= 15.0, "cancelled after {rang_for:.1} s");
    assert!(far.finish(), "sipp got the CANCEL and the ACK for 487");
}

#[tokio::test]
async fn cancel_on_request() {
    let far = Sipp::start("cancel", LOOP4, Transport::Tcp, 1);
    let mut ua = Ua::start(config(far.addr, Transport::Tcp, 500)).await;
    ua.sip.originate(ua.dial(1, "2000")).await.unwrap();
    assert!(matches!(ua.next(10).await, Event::Ringing { .. }));
    ua.sip.hangup(1).await;
    let (_, end) = ua.until_end(1, 10).await;
    assert_eq!((code(&end), end.status), ("canceled", Some(487)));
    assert!(far.finish());
}

#[tokio::test]
async fn a_200_crossing_the_cancel_is_acked_byed_and_reported() {
    let far = Sipp::start("race", LOOP4, Transport::Udp, 1);
    let mut ua = Ua::start(config(far.addr, Transport::Udp, 500)).await;
    ua.sip.originate(ua.dial(1, "2000")).await.unwrap();
    assert!(matches!(ua.next(10).await, Event::Ringing { .. }));
    ua.sip.hangup(1).await;
    let (seen, end) = ua.until_end(1, 10).await;
    assert_eq!(
        (code(&end), end.status, end.reason),
        ("canceled", Some(200), "answered_after_cancel")
    );
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Answered { .. })),
        "a crossed 200 is not reported as a live answer: {seen:?}"
    );
    assert!(far.finish(), "sipp got the ACK and the BYE for its 200");
}

#[tokio::test]
async fn no_response_at_all_is_a_network_failure() {
    let far = Sipp::start("silent", LOOP4, Transport::Udp, 1);
    // T1 = 50 ms: Timer B fires after 3.2 s.
    let mut ua = Ua::start(config(far.addr, Transport::Udp, 50)).await;
    ua.sip.originate(ua.dial(1, "3000")).await.unwrap();
    let (_, end) = ua.until_end(1, 10).await;
    assert_eq!(
        (code(&end), end.status, end.reason),
        ("network", None, "no_response")
    );
    assert!(!end.rang);
    // Timer A: 50, 100, 200, 400, 800, 1600 ms.
    assert_eq!(ua.retransmissions().await, 6);
}

#[tokio::test]
async fn dialerd_call_prints_each_call_and_a_summary() {
    let far = Sipp::statuses(LOOP4, Transport::Udp, 3, &[486]);
    let target = format!("sip:486@{}", far.addr);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialerd"))
        .args(["call", &target, "--count", "3", "--rate", "20"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    for l in &lines[..3] {
        assert_eq!(l["outcome"], "busy");
        assert_eq!(l["status"], 486);
        assert!(l["ring_ms"].is_u64());
    }
    let s = &lines[3]["summary"];
    assert_eq!(s["calls"], 3);
    assert_eq!(s["outcomes"]["busy"], 3);
    assert!(far.finish());
}
