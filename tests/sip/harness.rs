//! sipp processes and a user agent under test, both on loopback.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dialerd::sip::call::Dial;
use dialerd::sip::transport::{self, SipHandle};
use dialerd::sip::{End, Event, SipConfig, Transport, TrunkConfig};
use tokio::sync::{mpsc, watch};

pub const LOOP4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A free port on `ip` for `transport` (bound then released).
pub fn free_port(ip: IpAddr, t: Transport) -> u16 {
    match t {
        Transport::Udp => UdpSocket::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        Transport::Tcp => TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    }
}

/// Whether something holds `port` (sipp has bound it).
fn bound(ip: IpAddr, port: u16, t: Transport) -> bool {
    match t {
        Transport::Udp => UdpSocket::bind((ip, port)).is_err(),
        Transport::Tcp => TcpListener::bind((ip, port)).is_err(),
    }
}

/// A sipp far end running one scenario.
pub struct Sipp {
    child: Child,
    pub addr: SocketAddr,
    name: String,
    errors: PathBuf,
}

impl Sipp {
    /// Start sipp as a UAS with `scenario` (a file in tests/sipp) for `calls` calls.
    pub fn start(scenario: &str, ip: IpAddr, t: Transport, calls: u32) -> Sipp {
        Self::start_filled(scenario, ip, t, calls, &[])
    }

    /// Start sipp with a scenario whose placeholders are filled in first (sipp checks
    /// status codes when it loads a scenario, so they cannot be sipp variables).
    pub fn start_filled(
        scenario: &str,
        ip: IpAddr,
        t: Transport,
        calls: u32,
        fill: &[(&str, String)],
    ) -> Sipp {
        let addr = SocketAddr::new(ip, free_port(ip, t));
        Self::start_with(scenario, addr, t, calls, fill)
    }

    /// The status scenario answering each status in `statuses` to `sip:<status>@…`.
    pub fn statuses(ip: IpAddr, t: Transport, calls: u32, statuses: &[u16]) -> Sipp {
        let ereg: String = statuses
            .iter()
            .map(|s| format!("      <ereg regexp=\"^INVITE sip:{s}@\" search_in=\"msg\" assign_to=\"c{s}\"/>\n"))
            .collect();
        let test: String = statuses
            .iter()
            .map(|s| format!("  <nop hide=\"true\" test=\"c{s}\" next=\"s{s}\"/>\n"))
            .collect();
        let finals: String = statuses
            .iter()
            .map(|s| {
                format!(
                    "  <label id=\"s{s}\"/>\n  <send next=\"acked\"><![CDATA[\nSIP/2.0 {s} Final\n[last_Via:]\n\
                     [last_From:]\n[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n\
                     [last_CSeq:]\nRetry-After: 7\nContent-Length: 0\n\n]]></send>\n"
                )
            })
            .collect();
        let fill = [
            ("BRANCHES_EREG", ereg),
            ("BRANCHES_TEST", test),
            ("FINALS", finals),
        ];
        Self::start_filled("status", ip, t, calls, &fill)
    }

    /// Start sipp on a given address.
    pub fn start_on(scenario: &str, addr: SocketAddr, t: Transport, calls: u32) -> Sipp {
        Self::start_with(scenario, addr, t, calls, &[])
    }

    fn start_with(
        scenario: &str,
        addr: SocketAddr,
        t: Transport,
        calls: u32,
        fill: &[(&str, String)],
    ) -> Sipp {
        let (ip, port) = (addr.ip(), addr.port());
        let dir = std::env::temp_dir().join(format!("dialerd-sipp-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let errors = dir.join("errors.log");
        let source = format!("{}/tests/sipp/{scenario}.xml", env!("CARGO_MANIFEST_DIR"));
        let mut xml = std::fs::read_to_string(&source).unwrap();
        for (k, v) in fill {
            xml = xml.replace(k, v);
        }
        let file = dir.join(format!("{scenario}.xml"));
        std::fs::write(&file, xml).unwrap();
        let file = file.to_str().unwrap().to_string();
        let mut cmd = Command::new("sipp");
        cmd.current_dir(&dir)
            .args(["-sf", &file, "-i", &ip.to_string(), "-p", &port.to_string()])
            .args(["-m", &calls.to_string(), "-nostdin", "-bind_local"])
            .args([
                "-timeout",
                "60s",
                "-timeout_error",
                "-trace_err",
                "-trace_logs",
            ])
            .args(["-log_file", dir.join("log.txt").to_str().unwrap()])
            .args(["-error_file", errors.to_str().unwrap()])
            .args(["-mp", &free_port(ip, Transport::Udp).to_string()])
            .args(["-t", if t == Transport::Tcp { "t1" } else { "u1" }]);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp is installed (Debian package sip-tester; .ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !bound(ip, port, t) {
            assert!(Instant::now() < deadline, "sipp did not bind {ip}:{port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sipp {
            child,
            addr: SocketAddr::new(ip, port),

            name: scenario.into(),
            errors,
        }
    }

    /// What the scenario's `<log>` actions wrote.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.errors.with_file_name("log.txt")).unwrap_or_default()
    }

    /// Wait for sipp to finish and return whether every call passed its scenario.
    pub fn finish(mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if !status.success() {
                    let log = std::fs::read_to_string(&self.errors).unwrap_or_default();
                    eprintln!("sipp {} failed ({status}):\n{log}", self.name);
                }
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                eprintln!("sipp {} did not finish", self.name);
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user agent with one trunk pointing at `far`.
pub struct Ua {
    pub sip: SipHandle,
    pub events: mpsc::Receiver<Event>,
    _stop: watch::Sender<bool>,
}

pub fn config(far: SocketAddr, t: Transport, t1_ms: u64) -> SipConfig {
    let local = SocketAddr::new(far.ip(), 0);
    SipConfig {
        udp: (t == Transport::Udp).then_some(local),
        tcp: (t == Transport::Tcp).then_some(local),
        t1_ms,
        trunks: vec![TrunkConfig::new("far", far, t)],
        ..SipConfig::default()
    }
}

impl Ua {
    pub async fn start(cfg: SipConfig) -> Ua {
        let (stop, rx) = watch::channel(false);
        let (sip, events) = transport::start(cfg, 7, rx).await.unwrap();
        Ua {
            sip,
            events,
            _stop: stop,
        }
    }

    pub fn dial(&self, id: u64, target: &str) -> Dial {
        let ip = self.sip.udp.or(self.sip.tcp).unwrap().ip();
        Dial {
            id,
            trunk: 0,
            target: target.into(),
            caller_id: "+441632960999".into(),
            display_name: Some("Sales".into()),
            rtp: SocketAddr::new(ip, 40_000),
            ring_timeout_ms: 25_000,
        }
    }

    /// The next event, or panic after `secs`.
    pub async fn next(&mut self, secs: u64) -> Event {
        tokio::time::timeout(Duration::from_secs(secs), self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no event within {secs} s"))
            .expect("the SIP task is running")
    }

    /// Events up to and including the call's `Ended`, and the end.
    pub async fn until_end(&mut self, call: u64, secs: u64) -> (Vec<Event>, End) {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1);
            let ev = self.next(left).await;
            if let Event::Ended { call: c, end, .. } = &ev
                && *c == call
            {
                let end = end.clone();
                seen.push(ev);
                return (seen, end);
            }
            seen.push(ev);
            assert!(
                Instant::now() < deadline,
                "call {call} did not end: {seen:?}"
            );
        }
    }

    /// Wait for the call to be answered (or panic with what came instead).
    pub async fn answered(&mut self, call: u64) -> dialerd::sip::sdp::Media {
        let mut seen = Vec::new();
        loop {
            let ev = self.next(20).await;
            match ev {
                Event::Answered { call: c, media, .. } if c == call => {
                    return media.expect("the far end's answer has SDP");
                }
                Event::Ended { call: c, .. } if c == call => {
                    panic!("call ended before an answer: {seen:?} {ev:?}")
                }
                other => seen.push(other),
            }
        }
    }

    pub async fn retransmissions(&self) -> u64 {
        self.sip.stats().await.unwrap().0.retransmissions
    }
}

/// Outcome code of an end.
pub fn code(end: &End) -> &'static str {
    end.outcome.code()
}
