//! The control server: a Unix socket (mode 0600) and, when configured, a TCP listener
//! with token auth. Each connection reads request lines, forwards them to the core,
//! writes the responses in order, and interleaves the events it subscribed to.
//! A bad line gets an error response; the connection and all others go on.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};

use super::codec::{self, ErrorBody, Frame, LineBuffer};
use super::{Filter, Published, Session, ToCore, allowed};
use crate::config::{ControlConfig, Role, Token};
use crate::ids::AgentId;

/// Unauthenticated TCP connections are closed after this long.
const AUTH_DEADLINE: Duration = Duration::from_secs(10);

/// The bound listeners.
pub struct Listeners {
    pub unix: UnixListener,
    pub tcp: Option<TcpListener>,
}

impl Listeners {
    /// Bind the Unix socket (replacing a stale one) with mode 0600, and the TCP
    /// listener when configured.
    pub async fn bind(cfg: &ControlConfig) -> std::io::Result<Listeners> {
        let unix = bind_unix(&cfg.socket)?;
        let tcp = match &cfg.tcp {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        Ok(Listeners { unix, tcp })
    }
}

fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        // A live daemon answers on it; a stale file from a crash does not.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running daemon", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accept connections until `shutdown` turns true.
pub async fn serve(
    cfg: ControlConfig,
    listeners: Listeners,
    to_core: mpsc::Sender<ToCore>,
    events: broadcast::Sender<Published>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let tokens = Arc::new(cfg.tokens);
    let mut next_conn = 0u64;
    let Listeners { unix, tcp } = listeners;
    loop {
        let accepted: Option<(Box<dyn Stream>, bool)> = tokio::select! {
            _ = shutdown.changed() => return,
            r = unix.accept() => r.ok().map(|(s, _)| (Box::new(s) as Box<dyn Stream>, true)),
            r = async { match &tcp { Some(l) => l.accept().await, None => std::future::pending().await } } => {
                r.ok().map(|(s, _)| {
                    let _ = s.set_nodelay(true);
                    (Box::new(s) as Box<dyn Stream>, false)
                })
            }
        };
        let Some((stream, unix)) = accepted else {
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            // Over the limit: say so and close.
            let mut stream = stream;
            let line = codec::error_line(
                &Value::Null,
                &ErrorBody::new("busy", "too many control connections"),
            );
            let _ = stream.write_all(line.as_bytes()).await;
            continue;
        };
        next_conn += 1;
        let conn = Conn {
            session: Session {
                conn: next_conn,
                roles: if unix {
                    vec![Role::Crm, Role::Supervisor]
                } else {
                    Vec::new()
                },
                agent: None,
            },
            tokens: tokens.clone(),
            to_core: to_core.clone(),
            events: events.clone(),
            sub: None,
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            conn.run(stream, shutdown).await;
            drop(permit);
        });
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Conn {
    session: Session,
    tokens: Arc<Vec<Token>>,
    to_core: mpsc::Sender<ToCore>,
    events: broadcast::Sender<Published>,
    sub: Option<(Filter, broadcast::Receiver<Published>)>,
}

async fn next_event(
    sub: &mut Option<(Filter, broadcast::Receiver<Published>)>,
) -> Result<Published, u64> {
    match sub {
        Some((_, rx)) => loop {
            match rx.recv().await {
                Ok(e) => return Ok(e),
                Err(broadcast::error::RecvError::Lagged(n)) => return Err(n),
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        },
        None => std::future::pending().await,
    }
}

impl Conn {
    async fn run(mut self, stream: Box<dyn Stream>, mut shutdown: watch::Receiver<bool>) {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut lines = LineBuffer::default();
        let mut buf = vec![0u8; 64 * 1024];
        let auth_deadline = tokio::time::Instant::now() + AUTH_DEADLINE;
        'conn: loop {
            while let Some(frame) = lines.next_frame() {
                let out = self.on_frame(frame).await;
                if wr.write_all(out.as_bytes()).await.is_err() {
                    break 'conn;
                }
            }
            let unauthenticated = self.session.roles.is_empty();
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep_until(auth_deadline), if unauthenticated => {
                    let line = codec::error_line(&Value::Null, &ErrorBody::new("auth_required", "no auth in time"));
                    let _ = wr.write_all(line.as_bytes()).await;
                    break;
                }
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => lines.push(&buf[..n]),
                },
                e = next_event(&mut self.sub) => {
                    let line = match e {
                        Ok(e) => {
                            let (filter, _) = self.sub.as_ref().expect("subscribed");
                            if !filter.admits(&e, &self.session) {
                                continue;
                            }
                            format!("{}\n", e.line)
                        }
                        Err(missed) => format!("{{\"event\":\"events.lost\",\"missed\":{missed}}}\n"),
                    };
                    if wr.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = self
            .to_core
            .send(ToCore::Closed {
                conn: self.session.conn,
            })
            .await;
    }

    async fn on_frame(&mut self, frame: Frame) -> String {
        let line = match frame {
            Frame::TooLong => {
                return codec::error_line(
                    &Value::Null,
                    &ErrorBody::new(
                        "line_too_long",
                        format!("request lines are at most {} bytes", codec::MAX_LINE),
                    ),
                );
            }
            Frame::Line(l) if l.iter().all(u8::is_ascii_whitespace) => return String::new(),
            Frame::Line(l) => l,
        };
        let req = match codec::parse_request(&line) {
            Ok(r) => r,
            Err((id, e)) => return codec::error_line(&id, &e),
        };
        let id = req.id.clone();
        match self.on_request(req).await {
            Ok(data) => codec::ok_line(&id, &data),
            Err(e) => codec::error_line(&id, &e),
        }
    }

    async fn on_request(&mut self, req: codec::Request) -> Result<Value, ErrorBody> {
        if req.cmd == "auth" {
            return self.auth(req.args);
        }
        if self.session.roles.is_empty() {
            return Err(ErrorBody::new(
                "auth_required",
                "send `auth` with a token first",
            ));
        }
        if !super::COMMANDS.contains(&req.cmd.as_str()) {
            return Err(
                ErrorBody::new("unknown_command", format!("no command `{}`", req.cmd))
                    .with_field("cmd"),
            );
        }
        if !allowed(&self.session.roles, &req.cmd) {
            return Err(ErrorBody::new(
                "forbidden",
                format!("`{}` is not allowed for this connection's role", req.cmd),
            ));
        }
        match req.cmd.as_str() {
            "ping" => Ok(serde_json::json!("pong")),
            "events.subscribe" => {
                let filter: Filter = codec::args(req.args)?;
                self.sub = Some((filter, self.events.subscribe()));
                Ok(serde_json::json!({ "subscribed": true }))
            }
            _ => {
                let (reply, rx) = oneshot::channel();
                let msg = ToCore::Request {
                    session: self.session.clone(),
                    req,
                    reply,
                };
                if self.to_core.send(msg).await.is_err() {
                    return Err(ErrorBody::new("shutting_down", "the daemon is stopping"));
                }
                rx.await.unwrap_or_else(|_| {
                    Err(ErrorBody::new("shutting_down", "the daemon is stopping"))
                })
            }
        }
    }

    fn auth(&mut self, args: Value) -> Result<Value, ErrorBody> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct A {
            token: String,
        }
        let a: A = codec::args(args)?;
        let found = self
            .tokens
            .iter()
            .find(|t| constant_time_eq(t.token.as_bytes(), a.token.as_bytes()));
        match found {
            Some(t) => {
                self.session.roles = vec![t.role];
                self.session.agent = t.agent.map(AgentId);
                Ok(serde_json::json!({ "roles": self.session.roles, "agent": self.session.agent }))
            }
            None => Err(ErrorBody::new("auth_failed", "unknown token").with_field("token")),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
