//! `dialerd ctl`: send one command to a running daemon, print what comes back.

use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::cli::CtlArgs;

trait Duplex: std::io::Read + Write {}
impl<T: std::io::Read + Write> Duplex for T {}

fn connect(a: &CtlArgs) -> anyhow::Result<(Box<dyn Duplex>, Box<dyn Duplex>)> {
    Ok(match &a.tcp {
        Some(addr) => {
            let s = std::net::TcpStream::connect(addr)
                .with_context(|| format!("connecting to {addr}"))?;
            (Box::new(s.try_clone()?), Box::new(s))
        }
        None => {
            let s = std::os::unix::net::UnixStream::connect(&a.socket).with_context(|| {
                format!(
                    "connecting to {} (is the daemon running?)",
                    a.socket.display()
                )
            })?;
            (Box::new(s.try_clone()?), Box::new(s))
        }
    })
}

pub fn ctl(a: &CtlArgs) -> anyhow::Result<ExitCode> {
    let args: Value = match &a.args {
        Some(text) => serde_json::from_str(text).context("the arguments are not JSON")?,
        None => json!({}),
    };
    if !args.is_object() {
        bail!("the arguments must be a JSON object");
    }
    let (rd, mut wr) = connect(a)?;
    let mut lines = BufReader::new(rd).lines();
    let mut send = |cmd: &str, args: &Value, id: u64| -> anyhow::Result<()> {
        let line = json!({ "id": id, "cmd": cmd, "args": args }).to_string();
        wr.write_all(line.as_bytes())?;
        wr.write_all(b"\n")?;
        Ok(wr.flush()?)
    };
    let mut reply = |want: u64| -> anyhow::Result<Value> {
        for line in lines.by_ref() {
            let line = line?;
            let v: Value = serde_json::from_str(&line)
                .with_context(|| format!("bad line from the daemon: {line}"))?;
            if v.get("id") == Some(&json!(want)) {
                return Ok(v);
            }
        }
        bail!("the daemon closed the connection")
    };
    if let Some(token) = &a.token {
        send("auth", &json!({ "token": token }), 0)?;
        let r = reply(0)?;
        if r["ok"] != json!(true) {
            println!("{r}");
            return Ok(ExitCode::from(1));
        }
    }
    send(&a.cmd, &args, 1)?;
    let r = reply(1)?;
    println!("{r}");
    let ok = r["ok"] == json!(true);
    if a.follow && ok {
        for line in lines {
            println!("{}", line?);
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
