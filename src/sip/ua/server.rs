//! Requests from the far end: ACKs, retransmissions, CANCEL, and in-dialog BYE,
//! re-INVITE, UPDATE, OPTIONS, INFO and NOTIFY; out-of-dialog OPTIONS are answered,
//! INVITEs declined.

use rsip::Method;

use super::*;

impl UserAgent {
    pub(super) fn on_request(&mut self, now: Time, from: Peer, p: Parsed) {
        let Some(method) = p.method() else { return };
        if method == Method::Ack {
            let k = match self.server.contains_key(&key(&p.branch, Method::Invite)) {
                true => Some(key(&p.branch, Method::Invite)),
                false => self.acks.get(&(p.call_id.clone(), p.cseq)).cloned(),
            };
            match k.and_then(|k| self.server.get_mut(&k)) {
                Some(s) => s.tx.on_ack(now, &self.timers),
                None => self.stats.unmatched += 1,
            }
            return;
        }
        let k = key(&p.branch, method);
        if let Some(s) = self.server.get(&k) {
            let resp = Bytes::copy_from_slice(s.tx.response());
            self.send(from, resp);
            return;
        }
        if method == Method::Cancel {
            let status = if self.server.contains_key(&key(&p.branch, Method::Invite)) {
                200
            } else {
                481
            };
            self.respond(now, from, &p, status, None);
            return;
        }
        if p.to_tag.is_some() {
            self.in_dialog_request(now, from, method, &p);
            return;
        }
        match method {
            Method::Options => {
                let b = message::response_to(&p, Some(&self.token(8)))
                    .header("Allow", call::ALLOW)
                    .header("Accept", "application/sdp");
                self.respond(now, from, &p, 200, Some(b));
            }
            // dialerd places calls; it does not take them.
            Method::Invite => self.respond(now, from, &p, 603, None),
            _ => {
                let b = message::response_to(&p, Some(&self.token(8))).header("Allow", call::ALLOW);
                self.respond(now, from, &p, 405, Some(b));
            }
        }
    }

    /// Send a final response and keep it in a server transaction.
    pub(super) fn respond(
        &mut self,
        now: Time,
        from: Peer,
        p: &Parsed,
        status: u16,
        builder: Option<Builder>,
    ) {
        let builder = match builder {
            Some(b) => b,
            None => message::response_to(p, Some(&self.token(8))),
        };
        let bytes = builder.response(status, reason(status));
        let method = p.method().unwrap_or(Method::Options);
        let kind = if method == Method::Invite {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let response = self.send(from, bytes);
        let tx = ServerTx::new(
            kind,
            from.transport.reliable(),
            response.to_vec(),
            now,
            &self.timers,
        );
        let k = key(&p.branch, method);
        if let Some(at) = tx.deadline() {
            self.schedule(at, Wake::Server(k.clone()));
        }
        if kind == Kind::Invite {
            self.acks.insert((p.call_id.clone(), p.cseq), k.clone());
        }
        self.server.insert(k, Served { tx, peer: from });
    }

    pub(super) fn in_dialog_request(&mut self, now: Time, from: Peer, method: Method, p: &Parsed) {
        let id = self.by_call_id.get(&p.call_id).copied();
        let Some(c) = id.and_then(|id| self.calls.get_mut(&id)) else {
            self.respond(now, from, p, 481, None);
            return;
        };
        if p.to_tag.as_deref() != Some(c.local_tag.as_str()) {
            self.respond(now, from, p, 481, None);
            return;
        }
        let id = c.id;
        let tag = c.local_tag.clone();
        let base = || message::response_to(p, Some(&tag));
        match method {
            Method::Bye => {
                let (phase, rang) = (c.phase, c.rang);
                self.respond(now, from, p, 200, Some(base()));
                let outcome = match phase {
                    Phase::Inviting => CallOutcome::Failed(Outcome::Network),
                    _ => CallOutcome::Answered,
                };
                let end = End {
                    outcome,
                    status: None,
                    reason: "remote_bye",
                    rang,
                };
                self.end_call(now, id, end);
                self.forget(id);
            }
            Method::Invite | Method::Update => {
                let offer = (!p.body().is_empty()).then(|| sdp::parse(p.body()));
                match offer {
                    Some(Err(_)) => {
                        self.respond(now, from, p, 488, Some(base()));
                    }
                    Some(Ok(m)) => {
                        let held = m.direction.is_hold();
                        let changed = c.held != held;
                        c.held = held;
                        let body = c.answer_offer(&m);
                        let t = from.transport;
                        let b = base()
                            .header("Contact", self.local.contact(t))
                            .header("Allow", call::ALLOW)
                            .body("application/sdp", body);
                        self.respond(now, from, p, 200, Some(b));
                        if changed {
                            self.events.push_back(Event::Hold { call: id, held });
                        }
                    }
                    None => {
                        // A session refresh without an offer: a re-INVITE gets our
                        // offer, an UPDATE none.
                        let mut b = base()
                            .header("Contact", self.local.contact(from.transport))
                            .header("Allow", call::ALLOW);
                        if method == Method::Invite {
                            let dir = sdp::Direction::SendRecv;
                            let body = sdp::offer(c.session_id, c.sdp_version, c.rtp, dir);
                            b = b.body("application/sdp", body);
                        }
                        self.respond(now, from, p, 200, Some(b));
                    }
                }
            }
            Method::Options | Method::Info | Method::Notify => {
                self.respond(now, from, p, 200, Some(base()));
            }
            _ => {
                self.respond(now, from, p, 501, Some(base()));
            }
        }
    }
}
