//! Challenges, retransmissions, requests from the far end, garbage, trunk health and
//! registration.

use std::net::SocketAddr;

use dialerd::sip::{Event, Transport, TrunkConfig, TrunkState};

use super::*;

async fn challenged(code_: &str, hdr: &str, t: Transport, password: &str) -> dialerd::sip::End {
    let verify = match code_ {
        "401" => r#"<verifyauth assign_to="authvalid" username="alice" password="secret"/>"#.to_string(),
        _ => concat!(
            r#"<ereg regexp=".*" search_in="hdr" header="Proxy-Authorization:" check_it="true" assign_to="pa"/>"#,
            r#"<ereg regexp=".*" search_in="hdr" header="Proxy-Authorization:" check_it="true" assign_to="authvalid"/>"#,
            r#"<log message="[$pa]"/>"#
        )
        .to_string(),
    };
    let fill = [
        ("CODE", code_.to_string()),
        ("HDR", hdr.to_string()),
        ("VERIFY", verify),
    ];
    let far = Sipp::start_filled("auth", LOOP4, t, 1, &fill);
    let mut cfg = config(far.addr, t, 500);
    cfg.trunks[0].username = Some("alice".into());
    cfg.trunks[0].password = Some(password.into());
    let mut ua = Ua::start(cfg).await;
    ua.sip.originate(ua.dial(1, "4000")).await.unwrap();
    let end = match password {
        "secret" => {
            ua.answered(1).await;
            ua.sip.hangup(1).await;
            ua.until_end(1, 10).await.1
        }
        _ => ua.until_end(1, 10).await.1,
    };
    let log = far.log();
    let ok = far.finish();
    if password == "secret" {
        assert!(ok, "sipp verified our digest and saw the call through");
    }
    if code_ == "407" {
        let header = log
            .lines()
            .last()
            .expect("sipp logged the Proxy-Authorization header");
        assert_eq!(
            digest_response(header, "secret"),
            field(header, "response"),
            "{header}"
        );
    }
    end
}

/// A digest parameter's value.
fn field<'a>(header: &'a str, name: &str) -> &'a str {
    let at = header
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {header}"));
    let v = &header[at + name.len() + 1..];
    match v.strip_prefix('"') {
        Some(q) => &q[..q.find('"').unwrap()],
        None => v.split([',', ' ']).next().unwrap(),
    }
}

/// The digest response for `header`'s parameters (RFC 2617 §3.2.2, qop=auth),
/// computed here independently of the user agent.
fn digest_response(header: &str, password: &str) -> String {
    use md5::{Digest, Md5};
    let h = |s: String| {
        Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ha1 = h(format!(
        "{}:{}:{password}",
        field(header, "username"),
        field(header, "realm")
    ));
    let ha2 = h(format!("INVITE:{}", field(header, "uri")));
    h(format!(
        "{ha1}:{}:{}:{}:auth:{ha2}",
        field(header, "nonce"),
        field(header, "nc"),
        field(header, "cnonce")
    ))
}

#[tokio::test]
async fn answers_a_401_challenge() {
    let end = challenged("401", "WWW-Authenticate", Transport::Udp, "secret").await;
    assert_eq!(code(&end), "answered");
}

#[tokio::test]
async fn answers_a_407_challenge_over_tcp() {
    let end = challenged("407", "Proxy-Authenticate", Transport::Tcp, "secret").await;
    assert_eq!(code(&end), "answered");
}

#[tokio::test]
async fn wrong_credentials_are_rejected_not_retried_forever() {
    let end = challenged("401", "WWW-Authenticate", Transport::Udp, "wrong").await;
    assert_eq!((code(&end), end.status), ("rejected", Some(403)));
}

#[tokio::test]
async fn retransmits_an_ignored_invite() {
    let far = Sipp::start("slow", LOOP4, Transport::Udp, 1);
    let mut ua = Ua::start(config(far.addr, Transport::Udp, 500)).await;
    ua.sip.originate(ua.dial(1, "5000")).await.unwrap();
    ua.answered(1).await;
    ua.sip.hangup(1).await;
    let (_, end) = ua.until_end(1, 10).await;
    assert_eq!(code(&end), "answered");
    let resent = ua.retransmissions().await;
    assert!(
        resent >= 1,
        "the ignored INVITE was sent again (Timer A): {resent}"
    );
    assert!(far.finish(), "sipp got the ACK and the BYE");
}

#[tokio::test]
async fn far_end_holds_refreshes_and_hangs_up() {
    holds_refreshes_and_hangs_up(Transport::Udp).await;
}

#[tokio::test]
async fn far_end_holds_refreshes_and_hangs_up_over_tcp() {
    holds_refreshes_and_hangs_up(Transport::Tcp).await;
}

async fn holds_refreshes_and_hangs_up(t: Transport) {
    let far = Sipp::start("remote", LOOP4, t, 1);
    let mut ua = Ua::start(config(far.addr, t, 500)).await;
    ua.sip.originate(ua.dial(1, "6000")).await.unwrap();
    ua.answered(1).await;
    let (seen, end) = ua.until_end(1, 15).await;
    let holds: Vec<bool> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Hold { held, .. } => Some(*held),
            _ => None,
        })
        .collect();
    assert_eq!(holds, [true, false], "{seen:?}");
    assert_eq!((code(&end), end.reason), ("answered", "remote_bye"));
    assert!(
        far.finish(),
        "sipp saw recvonly, then sendrecv, then our 200 to its BYE"
    );
}

#[tokio::test]
async fn malformed_messages_are_dropped_and_the_call_goes_on() {
    let far = Sipp::start("malformed", LOOP4, Transport::Udp, 1);
    let mut ua = Ua::start(config(far.addr, Transport::Udp, 500)).await;
    // Garbage from another peer, straight at the user agent's socket.
    let ours = ua.sip.udp.unwrap();
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    junk.send_to(b"\x00\x01garbage\r\n\r\n", ours).unwrap();
    junk.send_to(&vec![b'A'; 70_000][..65_000], ours).unwrap();
    ua.sip.originate(ua.dial(1, "7000")).await.unwrap();
    let mut dropped = 0;
    loop {
        match ua.next(10).await {
            Event::Dropped { .. } => dropped += 1,
            Event::Answered { call: 1, .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    ua.sip.hangup(1).await;
    let (_, end) = ua.until_end(1, 10).await;
    assert_eq!(code(&end), "answered");
    assert!(
        dropped >= 3,
        "junk, the broken 180 and the non-SIP text: {dropped}"
    );
    assert!(ua.sip.stats().await.unwrap().0.malformed >= 3);
    assert!(far.finish());
}

#[tokio::test]
async fn garbage_on_a_tcp_connection_closes_only_that_connection() {
    let far = Sipp::start("answer", LOOP4, Transport::Tcp, 1);
    let cfg = config(far.addr, Transport::Tcp, 500);
    let mut ua = Ua::start(cfg).await;
    let ours: SocketAddr = ua.sip.tcp.unwrap();
    let mut s = tokio::net::TcpStream::connect(ours).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut s,
        b"INVITE sip:x SIP/2.0\r\nContent-Length: nope\r\n\r\n",
    )
    .await
    .unwrap();
    match ua.next(5).await {
        Event::Dropped { reason, .. } => assert!(reason.contains("malformed"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
    ua.sip.originate(ua.dial(1, "1000")).await.unwrap();
    ua.answered(1).await;
    ua.sip.hangup(1).await;
    assert_eq!(code(&ua.until_end(1, 10).await.1), "answered");
    assert!(far.finish());
}

#[tokio::test]
async fn registers_with_digest_and_reports_the_granted_time() {
    let far = Sipp::start("registrar", LOOP4, Transport::Udp, 1);
    let mut cfg = config(far.addr, Transport::Udp, 500);
    let t = &mut cfg.trunks[0];
    t.username = Some("alice".into());
    t.password = Some("secret".into());
    t.register = true;
    t.register_expires_s = 300;
    let mut ua = Ua::start(cfg).await;
    loop {
        match ua.next(10).await {
            Event::Trunk {
                state: TrunkState::Registered { expires_s },
                ..
            } => {
                assert_eq!(expires_s, 60, "the registrar's grant, not our ask");
                break;
            }
            Event::Trunk { state, .. } => panic!("registration: {state:?}"),
            _ => {}
        }
    }
    assert!(far.finish(), "sipp verified the REGISTER's digest");
}

#[tokio::test]
async fn options_pings_mark_a_trunk_down_and_up_again() {
    let port = free_port(LOOP4, Transport::Udp);
    let far_addr = SocketAddr::new(LOOP4, port);
    let mut trunk = TrunkConfig::new("far", far_addr, Transport::Udp);
    trunk.options_interval_s = 1;
    trunk.down_after = 2;
    let mut cfg = config(far_addr, Transport::Udp, 50);
    cfg.trunks = vec![trunk];
    let mut ua = Ua::start(cfg).await;
    // Nobody answers: two pings time out (64*T1 = 3.2 s each).
    loop {
        if let Event::Trunk { state, .. } = ua.next(15).await {
            assert_eq!(state, TrunkState::Down);
            break;
        }
    }
    let refused = ua.sip.originate(ua.dial(1, "1000")).await;
    assert!(refused.is_err(), "a down trunk takes no calls: {refused:?}");
    // sipp on the same port answers the next ping.
    let far = Sipp::start_on("options", far_addr, Transport::Udp, 1);
    loop {
        if let Event::Trunk { state, .. } = ua.next(15).await {
            assert_eq!(state, TrunkState::Up);
            break;
        }
    }
    assert!(far.finish());
}
