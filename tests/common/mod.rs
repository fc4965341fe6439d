//! A real daemon for integration tests: spawned from the built binary with a config
//! in a temporary folder, driven over its Unix socket and TCP listener on 127.0.0.1.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CRM: &str = "crm-token-0123456789abcdef";
pub const SUPERVISOR: &str = "supervisor-token-0123456789";

pub fn agent_token(n: u32) -> String {
    format!("agent-token-{n:04}-0123456789")
}

/// A temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "dialerd-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon process.
pub struct Daemon {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub tcp: String,
    child: Option<Child>,
}

impl Daemon {
    /// Write a config into `dir` (with `extra` TOML appended) and start the daemon.
    pub fn start(dir: &Path, extra: &str) -> Daemon {
        let tcp = format!("127.0.0.1:{}", free_port());
        let mut tokens = format!(
            "[[control.tokens]]\ntoken = \"{CRM}\"\nrole = \"crm\"\n[[control.tokens]]\ntoken = \"{SUPERVISOR}\"\nrole = \"supervisor\"\n"
        );
        for n in 1..=30 {
            tokens.push_str(&format!(
                "[[control.tokens]]\ntoken = \"{}\"\nrole = \"agent\"\nagent = {n}\n",
                agent_token(n)
            ));
        }
        let cfg = format!(
            "[daemon]\ndata_dir = \"{}\"\nshutdown_grace_s = 2\n[control]\nsocket = \"{}\"\ntcp = \"{tcp}\"\n{tokens}\n{extra}\n",
            dir.join("data").display(),
            dir.join("d.sock").display(),
        );
        let cfg_path = dir.join("dialerd.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut d = Daemon {
            dir: dir.to_owned(),
            socket: dir.join("d.sock"),
            tcp,
            child: None,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dialerd"))
            .arg("run")
            .arg("--config")
            .arg(self.dir.join("dialerd.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the daemon starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
                && std::net::TcpStream::connect(&self.tcp).is_ok()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited: {status}; log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Reap a daemon killed from elsewhere (by pid).
    pub fn reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        send_signal(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }

    pub fn unix(&self) -> Client {
        Client::unix(&self.socket)
    }

    /// A TCP client authenticated with `token`.
    pub fn tcp(&self, token: &str) -> Client {
        let mut c = Client::tcp(&self.tcp);
        let r = c.req("auth", json!({ "token": token }));
        assert_eq!(r["ok"], json!(true), "{r}");
        c
    }
}

/// Send a signal (`"TERM"` or `"KILL"`) to a process.
pub fn send_signal(pid: u32, sig: &str) {
    let sig = match sig {
        "TERM" => libc::SIGTERM,
        "KILL" => libc::SIGKILL,
        other => panic!("no signal {other}"),
    };
    // SAFETY: kill(2) with a pid we spawned; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A control connection that keeps events aside while waiting for responses.
pub struct Client {
    rd: BufReader<Box<dyn std::io::Read + Send>>,
    wr: Box<dyn Write + Send>,
    next_id: u64,
    pub events: VecDeque<Value>,
}

impl Client {
    pub fn unix(path: &Path) -> Client {
        let s = std::os::unix::net::UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client::from(Box::new(s.try_clone().unwrap()), Box::new(s))
    }

    pub fn tcp(addr: &str) -> Client {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client::from(Box::new(s.try_clone().unwrap()), Box::new(s))
    }

    fn from(rd: Box<dyn std::io::Read + Send>, wr: Box<dyn Write + Send>) -> Client {
        Client {
            rd: BufReader::new(rd),
            wr,
            next_id: 100,
            events: VecDeque::new(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).unwrap();
        self.wr.flush().unwrap();
    }

    /// The next line, or `None` at EOF or timeout.
    pub fn line(&mut self) -> Option<Value> {
        let mut s = String::new();
        match self.rd.read_line(&mut s) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                Some(serde_json::from_str(&s).unwrap_or_else(|e| panic!("bad line {s:?}: {e}")))
            }
        }
    }

    /// The next response (events are kept in `events`).
    pub fn response(&mut self) -> Value {
        loop {
            let v = self.line().expect("a response");
            if v.get("event").is_some() {
                self.events.push_back(v);
            } else {
                return v;
            }
        }
    }

    /// Send a request; `None` when the daemon is gone.
    pub fn try_req(&mut self, cmd: &str, args: Value) -> Option<Value> {
        self.next_id += 1;
        let line = json!({ "id": self.next_id, "cmd": cmd, "args": args }).to_string();
        self.wr.write_all(format!("{line}\n").as_bytes()).ok()?;
        self.wr.flush().ok()?;
        loop {
            let v = self.line()?;
            if v.get("event").is_none() {
                return Some(v);
            }
        }
    }

    pub fn req(&mut self, cmd: &str, args: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let line = json!({ "id": id, "cmd": cmd, "args": args }).to_string();
        self.send_raw(format!("{line}\n").as_bytes());
        let r = self.response();
        assert_eq!(r["id"], json!(id), "responses come in order: {r}");
        r
    }

    /// `req` that must succeed; its data.
    pub fn ok(&mut self, cmd: &str, args: Value) -> Value {
        let r = self.req(cmd, args.clone());
        assert_eq!(r["ok"], json!(true), "{cmd} {args}: {r}");
        r["data"].clone()
    }

    /// `req` that must fail; its error code.
    pub fn err(&mut self, cmd: &str, args: Value) -> String {
        let r = self.req(cmd, args.clone());
        assert_eq!(r["ok"], json!(false), "{cmd} {args} should fail: {r}");
        r["error"]["code"].as_str().unwrap().to_owned()
    }

    /// Wait for an event matching `pred` (bounded).
    pub fn wait_event(&mut self, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        if let Some(i) = self.events.iter().position(&mut pred) {
            return self.events.remove(i).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            let v = self
                .line()
                .unwrap_or_else(|| panic!("no {what} before EOF/timeout"));
            if pred(&v) {
                return v;
            }
            self.events.push_back(v);
        }
        panic!("no {what} in time");
    }
}

/// Settings for a fast campaign: progressive, no AMD wait beyond the trunk's, calls all
/// day every day.
pub fn fast_campaign(extra: Value) -> Value {
    let mut s = json!({
        "name": "test",
        "pacing": { "policy": "progressive" },
        "calling_window": { "start_hhmm": 0, "end_hhmm": 2400 },
        "time_zone": "UTC",
        "retry": {
            "busy": { "delay_min": 1.0, "max_attempts": 5 },
            "no_answer": { "delay_min": 1.0, "max_attempts": 5 },
            "machine": { "delay_min": 1.0, "max_attempts": 5 },
            "network": { "delay_min": 1.0, "max_attempts": 0 },
            "abandoned": { "delay_min": 1.0, "max_attempts": 5 }
        }
    });
    if let (Value::Object(s), Value::Object(e)) = (&mut s, extra) {
        s.extend(e);
    }
    s
}

/// A fast simulated trunk.
pub const FAST_TRUNK: &str = "[simulated_trunk]\nanswer_rate = 0.6\nbusy_rate = 0.2\nmachine_rate = 0.3\nring_s = 0.5\ntalk_s = 1.0\namd_s = 0.3\n";
