//! The user agent driven by hand, without sockets: what sipp cannot show.

use super::call::Dial;
use super::message::{self, Parsed};
use super::{Event, Peer, SipConfig, Transport, TrunkConfig, UserAgent};
use crate::time::Time;

const FAR: &str = "127.0.0.1:5070";

fn ua() -> UserAgent {
    let far = FAR.parse().unwrap();
    let cfg = SipConfig {
        trunks: vec![TrunkConfig::new("far", far, Transport::Udp)],
        ..SipConfig::default()
    };
    UserAgent::new(&cfg, 1, Time::from_millis(0))
}

fn far() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: FAR.parse().unwrap(),
    }
}

fn dial(id: u64) -> Dial {
    Dial {
        id,
        trunk: 0,
        target: "+441632960001".into(),
        caller_id: "+441632960999".into(),
        display_name: None,
        rtp: "127.0.0.1:40000".parse().unwrap(),
        ring_timeout_ms: 25_000,
    }
}

fn sent(ua: &mut UserAgent) -> Vec<Parsed> {
    std::iter::from_fn(|| ua.poll_transmit())
        .map(|t| message::parse(&t.bytes).unwrap())
        .collect()
}

fn ok_200(invite: &Parsed, tag: &str) -> Vec<u8> {
    let body = super::sdp::offer(
        9,
        1,
        "127.0.0.1:6000".parse().unwrap(),
        super::sdp::Direction::SendRecv,
    );
    message::response_to(invite, Some(tag))
        .header("Contact", "<sip:far@127.0.0.1:5070>")
        .body("application/sdp", body)
        .response(200, "OK")
}

#[test]
fn a_retransmitted_200_gets_the_same_ack_and_a_forked_200_is_byed() {
    let mut ua = ua();
    let t0 = Time::from_millis(1000);
    ua.originate(t0, dial(1)).unwrap();
    let invite = sent(&mut ua).remove(0);
    assert_eq!(invite.method(), Some(rsip::Method::Invite));
    let ok = ok_200(&invite, "a");
    ua.handle(t0, far(), &ok);
    let first = sent(&mut ua);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].method(), Some(rsip::Method::Ack));
    assert!(matches!(
        ua.poll_event(),
        Some(Event::Answered { call: 1, .. })
    ));
    ua.handle(t0, far(), &ok);
    let again = sent(&mut ua);
    assert_eq!(again.len(), 1, "one ACK for the retransmitted 200");
    assert_eq!(again[0].branch, first[0].branch, "the same ACK");
    assert_eq!(ua.poll_event(), None, "no second answer");
    // A 200 from another fork (another To tag): ACK and BYE it.
    ua.handle(t0, far(), &ok_200(&invite, "b"));
    let fork: Vec<_> = sent(&mut ua).iter().map(|p| p.method()).collect();
    assert_eq!(fork, [Some(rsip::Method::Ack), Some(rsip::Method::Bye)]);
    assert_eq!(ua.poll_event(), None);
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let mut ua = ua();
    let t0 = Time::from_millis(0);
    ua.originate(t0, dial(1)).unwrap();
    let invite = sent(&mut ua).remove(0);
    ua.hangup(t0, 1);
    assert!(
        sent(&mut ua).is_empty(),
        "no CANCEL before a 1xx (RFC 3261 §9.1)"
    );
    let trying = message::response_to(&invite, None).response(100, "Trying");
    ua.handle(t0, far(), &trying);
    let cancel = sent(&mut ua);
    assert_eq!(cancel.len(), 1);
    assert_eq!(cancel[0].method(), Some(rsip::Method::Cancel));
    assert_eq!(
        cancel[0].branch, invite.branch,
        "CANCEL shares the INVITE's branch"
    );
}

#[test]
fn ring_timeout_is_never_below_fifteen_seconds() {
    let mut ua = ua();
    let mut d = dial(1);
    d.ring_timeout_ms = 3_000;
    ua.originate(Time::from_millis(0), d).unwrap();
    let invite = sent(&mut ua).remove(0);
    let ringing = message::response_to(&invite, Some("a")).response(180, "Ringing");
    ua.handle(Time::from_millis(100), far(), &ringing);
    let mut cancelled_at = None;
    let mut now = Time::from_millis(100);
    for _ in 0..100 {
        let Some(at) = ua.poll_timeout() else { break };
        now = at.max(now);
        ua.handle_timeout(now);
        if sent(&mut ua)
            .iter()
            .any(|p| p.method() == Some(rsip::Method::Cancel))
        {
            cancelled_at = Some(now);
            break;
        }
    }
    assert_eq!(cancelled_at, Some(Time::from_millis(15_000)));
}

/// A bounded, seeded mutation run in the test suite (the open-ended one is the
/// `sip_message` cargo-fuzz target): flipped, cut and spliced messages into a user
/// agent with a call ringing must never panic, and every input is accounted for.
#[test]
fn mutated_messages_never_panic() {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut ua = ua();
    ua.originate(Time::from_millis(0), dial(1)).unwrap();
    let invite = sent(&mut ua).remove(0);
    let seeds = [
        message::response_to(&invite, Some("a")).response(180, "Ringing"),
        ok_200(&invite, "a"),
        message::response_to(&invite, Some("a")).response(486, "Busy Here"),
    ];
    for i in 0..20_000u64 {
        let mut m = seeds[i as usize % seeds.len()].clone();
        for _ in 0..rng.random_range(1..6) {
            let at = rng.random_range(0..m.len());
            match rng.random_range(0..4) {
                0 => m[at] = rng.random(),
                1 => m.truncate(at),
                2 => m.insert(at, b"\r\n:;<>\"[]"[rng.random_range(0..9)]),
                _ => m
                    .splice(at..at, b"Via: x\r\n".iter().copied())
                    .for_each(drop),
            }
            if m.is_empty() {
                m.push(b'S');
            }
        }
        let before = ua.stats;
        ua.handle(Time::from_millis(i), far(), &m);
        while ua.poll_transmit().is_some() || ua.poll_event().is_some() {}
        let after = ua.stats;
        let accounted = after.malformed + after.unmatched > before.malformed + before.unmatched
            || message::parse(&m).is_ok();
        assert!(
            accounted,
            "input {i} was neither used nor counted as dropped"
        );
    }
    assert!(ua.stats.malformed > 1_000, "{:?}", ua.stats);
}
