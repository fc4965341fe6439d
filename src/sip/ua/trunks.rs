//! Trunk upkeep: OPTIONS pings that mark a trunk down and up, and REGISTER with
//! digest answers, refreshed at 80 % of the granted time.

use rsip::Method;

use super::*;

impl UserAgent {
    pub(super) fn trunk_timer(&mut self, now: Time, i: usize) {
        let Some(t) = self.trunks.get(i) else { return };
        if t.next_ping.is_some_and(|at| at <= now) {
            self.ping(now, i);
        }
        if matches!(self.trunks[i].registration, Registration::Due(at) if at <= now) {
            self.register(now, i);
        }
        if let Some(at) = self.trunks[i].deadline() {
            self.schedule(at, Wake::Trunk(i));
        }
    }

    pub(super) fn trunk_request(
        &mut self,
        i: usize,
        method: Method,
        branch: &str,
        cseq: u32,
        call_id: String,
    ) -> Builder {
        let t = &self.trunks[i];
        let user = t.cfg.username.clone().unwrap_or_else(|| "dialerd".into());
        let aor = format!("<sip:{user}@{}>", t.domain);
        let tag = self.token(8);
        let tp = self.trunks[i].peer.transport;
        Builder::new()
            .header("Via", self.local.via(tp, branch))
            .header("Max-Forwards", "70")
            .header("From", format!("{aor};tag={tag}"))
            .header("To", aor)
            .header("Call-ID", call_id)
            .header("CSeq", format!("{cseq} {method}"))
            .header("User-Agent", self.local.user_agent.clone())
    }

    pub(super) fn ping(&mut self, now: Time, i: usize) {
        let interval = self.trunks[i].cfg.options_interval_s * 1000;
        self.trunks[i].next_ping = Some(now + Duration::from_millis(interval));
        let branch = self.branch();
        self.trunks[i].register_cseq += 1;
        let cseq = self.trunks[i].register_cseq;
        let ruri = format!("sip:{}", self.trunks[i].domain);
        let peer = self.trunks[i].peer;
        let call_id = format!("{}@dialerd", self.token(16));
        match self
            .trunk_request(i, Method::Options, &branch, cseq, call_id)
            .request(Method::Options, &ruri)
        {
            Ok(bytes) => self.start_client(
                now,
                key(&branch, Method::Options),
                Owner::Options(i),
                peer,
                bytes,
            ),
            Err(e) => self.unmatched(peer, &format!("cannot build OPTIONS: {e}")),
        }
    }

    pub(super) fn ping_result(&mut self, i: usize, ok: bool) {
        let t = &mut self.trunks[i];
        let state = match ok {
            true => t.answered().then_some(TrunkState::Up),
            false => t.failed().then_some(TrunkState::Down),
        };
        if let Some(state) = state {
            self.events.push_back(Event::Trunk { trunk: i, state });
        }
    }

    pub(super) fn register(&mut self, now: Time, i: usize) {
        self.trunks[i].registration = Registration::Pending;
        let branch = self.branch();
        let cnonce = self.token(16);
        let t = &mut self.trunks[i];
        t.register_cseq += 1;
        let cseq = t.register_cseq;
        let ruri = format!("sip:{}", t.domain);
        let expires = t.cfg.register_expires_s;
        let auth = match (&t.challenge, &t.cfg.username, &t.cfg.password) {
            (Some((ch, name)), Some(u), Some(p)) => {
                t.nonce_count += 1;
                Some((
                    *name,
                    ch.answer(u, p, "REGISTER", &ruri, t.nonce_count, &cnonce),
                ))
            }
            _ => None,
        };
        let (peer, call_id) = (t.peer, t.register_call_id.clone());
        let mut b = self
            .trunk_request(i, Method::Register, &branch, cseq, call_id)
            .header("Contact", self.local.contact(peer.transport))
            .header("Expires", expires.to_string());
        if let Some((name, value)) = auth {
            b.push(name, value);
        }
        match b.request(Method::Register, &ruri) {
            Ok(bytes) => self.start_client(
                now,
                key(&branch, Method::Register),
                Owner::Register(i),
                peer,
                bytes,
            ),
            Err(e) => self.unmatched(peer, &format!("cannot build REGISTER: {e}")),
        }
    }

    pub(super) fn register_response(&mut self, now: Time, i: usize, p: &Parsed) {
        let status = p.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        let t = &mut self.trunks[i];
        if (200..300).contains(&status) {
            let granted = p
                .values("contact")
                .find_map(|c| message::param(c, "expires"))
                .or_else(|| p.value("expires"))
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(t.cfg.register_expires_s)
                .max(1);
            t.auth_retries = 0;
            // Refresh at 80 % of the granted time.
            t.registration =
                Registration::Due(now + Duration::from_millis(u64::from(granted) * 800));
            let at = now + Duration::from_millis(u64::from(granted) * 800);
            self.schedule(at, Wake::Trunk(i));
            self.events.push_back(Event::Trunk {
                trunk: i,
                state: TrunkState::Registered { expires_s: granted },
            });
            return;
        }
        if let Some(challenge) = challenge_in(p) {
            // A first challenge, a stale nonce, or a new nonce on a refresh is
            // answered; two in a row without success means the credentials fail.
            let retry = t.auth_retries < 2;
            t.auth_retries += 1;
            t.challenge = Some(challenge);
            t.nonce_count = 0;
            if retry {
                self.register(now, i);
                return;
            }
        }
        if status == 423
            && let Some(min) = p.value("min-expires").and_then(|v| v.parse::<u32>().ok())
        {
            t.cfg.register_expires_s = min;
            self.register(now, i);
            return;
        }
        self.registration_failed(now, i, Some(status));
    }

    pub(super) fn registration_failed(&mut self, now: Time, i: usize, status: Option<u16>) {
        let t = &mut self.trunks[i];
        t.challenge = None;
        t.auth_retries = 0;
        let at = now + Duration::from_millis(30_000);
        t.registration = Registration::Due(at);
        self.schedule(at, Wake::Trunk(i));
        self.events.push_back(Event::Trunk {
            trunk: i,
            state: TrunkState::RegistrationFailed { status },
        });
    }
}
