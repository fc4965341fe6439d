//! Responses to our requests once their transaction has passed them up: the INVITE's
//! provisional, 2xx (ACK, media, the CANCEL race, forks) and failure responses
//! (digest challenges, Retry-After, outcome), and the BYE's.

use rsip::Method;

use super::*;

impl UserAgent {
    /// ACK and BYE a 2xx that belongs to no live call.
    pub(super) fn stray_2xx(&mut self, now: Time, from: Peer, p: &Parsed) {
        let (b1, b2) = (self.branch(), self.branch());
        match call::ack_and_bye_stray(&self.local, from, p, (&b1, &b2)) {
            Ok((ack, bye, peer)) => {
                self.send(peer, ack);
                self.start_client(now, key(&b2, Method::Bye), Owner::Stray, peer, bye);
            }
            Err(e) => self.unmatched(from, &format!("stray 2xx: {e}")),
        }
    }

    pub(super) fn invite_response(
        &mut self,
        now: Time,
        from: Peer,
        id: u64,
        k: &TxKey,
        p: &Parsed,
    ) {
        let status = p.status().unwrap_or(0);
        let Some(c) = self.calls.get_mut(&id) else {
            if (200..300).contains(&status) {
                self.stray_2xx(now, from, p);
            }
            return;
        };
        if k.0 != c.invite_branch {
            // A response to an INVITE we already replaced (after a challenge).
            if (200..300).contains(&status) {
                self.stray_2xx(now, from, p);
            }
            return;
        }
        if status < 200 {
            c.provisional = true;
            if (180..=183).contains(&status) && !c.rang {
                c.rang = true;
                self.events.push_back(Event::Ringing {
                    call: id,
                    status,
                    at: now,
                });
            }
            if let Some(why) = c.cancel
                && !c.cancel_sent
            {
                self.request_cancel(now, id, why);
            }
            return;
        }
        if status < 300 {
            self.invite_answered(now, from, id, k, p);
            return;
        }
        // 3xx–6xx: the transaction needs its ACK.
        let ack = c.ack_failure(&self.local, p);
        if let (Ok(ack), Some(cl)) = (ack, self.client.get_mut(k)) {
            cl.tx.set_ack(ack.clone());
            let to = cl.to;
            self.send(to, ack);
        }
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.phase != Phase::Inviting {
            return;
        }
        if (status == 401 || status == 407)
            && c.cancel.is_none()
            && self.retry_with_auth(now, id, p)
        {
            return;
        }
        let c = &self.calls[&id];
        if status == 503
            && let Some(ra) = p.value("retry-after").and_then(retry_after_s)
        {
            let until = now + Duration::from_millis(ra * 1000);
            self.trunks[c.trunk].paused_until = Some(until);
            self.events.push_back(Event::Trunk {
                trunk: c.trunk,
                state: TrunkState::Paused { until },
            });
        }
        let outcome = match (c.cancel, status) {
            (Some(why), 487) => cancel_outcome(why),
            _ => Outcome::from_sip_status(status, c.rang).unwrap_or(Outcome::Rejected),
        };
        let end = End {
            outcome: CallOutcome::Failed(outcome),
            status: Some(status),
            reason: "final_response",
            rang: c.rang,
        };
        self.end_call(now, id, end);
        self.forget(id);
    }

    pub(super) fn invite_answered(
        &mut self,
        now: Time,
        from: Peer,
        id: u64,
        k: &TxKey,
        p: &Parsed,
    ) {
        let branch = self.branch();
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.phase != Phase::Inviting {
            if p.to_tag != c.remote_tag {
                self.stray_2xx(now, from, p);
            }
            return;
        }
        c.confirm(p);
        let peer = c.dialog_peer();
        let ack = c.in_dialog(&self.local, Method::Ack, &branch, c.invite_cseq, None);
        let (rang, cancel) = (c.rang, c.cancel);
        match ack {
            Ok(ack) => {
                if let Some(cl) = self.client.get_mut(k) {
                    cl.tx.set_ack(ack.clone());
                    cl.ack_to = peer;
                }
                self.send(peer, ack);
            }
            Err(e) => self.unmatched(from, &format!("cannot ACK: {e}")),
        }
        let media = sdp::parse(p.body());
        let fail = |outcome, status, reason| End {
            outcome: CallOutcome::Failed(outcome),
            status: Some(status),
            reason,
            rang,
        };
        if let Some(why) = cancel {
            // The 200 crossed our CANCEL: the call is up, so end it with a BYE.
            self.send_bye(now, id, None);
            self.end_call(
                now,
                id,
                fail(cancel_outcome(why), 200, "answered_after_cancel"),
            );
            return;
        }
        match media {
            Ok(m) => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.phase = Phase::Confirmed;
                }
                self.events.push_back(Event::Answered {
                    call: id,
                    media: Some(m),
                    at: now,
                });
            }
            Err(sdp::SdpError::NoAudio) if p.body().is_empty() => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.phase = Phase::Confirmed;
                }
                self.events.push_back(Event::Answered {
                    call: id,
                    media: None,
                    at: now,
                });
            }
            Err(_) => {
                // RFC 3264 §5: an unusable answer: ACK, then BYE.
                self.send_bye(now, id, None);
                self.end_call(now, id, fail(Outcome::Rejected, 488, "unusable_sdp_answer"));
            }
        }
    }

    /// Answer a 401/407 to the INVITE. False when we cannot (no credentials, bad
    /// challenge, or the same credentials were already refused).
    pub(super) fn retry_with_auth(&mut self, now: Time, id: u64, p: &Parsed) -> bool {
        let Some((challenge, answer_name)) = challenge_in(p) else {
            return false;
        };
        let cnonce = self.token(16);
        let branch = self.branch();
        let c = &self.calls[&id];
        let trunk = &self.trunks[c.trunk].cfg;
        let (Some(user), Some(pass)) = (&trunk.username, &trunk.password) else {
            return false;
        };
        if c.auth_tries >= 1 && !challenge.stale {
            return false;
        }
        if c.auth_tries >= 3 {
            return false;
        }
        let value = challenge.answer(user, pass, "INVITE", &c.request_uri, 1, &cnonce);
        let c = self.calls.get_mut(&id).expect("call checked above");
        c.auth_tries += 1;
        c.authorization = Some((answer_name, value));
        c.invite_cseq = c.cseq + 1;
        c.cseq = c.invite_cseq;
        c.invite_branch = branch.clone();
        c.provisional = false;
        let peer = c.dest;
        match c.invite(&self.local) {
            Ok(bytes) => {
                self.start_client(
                    now,
                    key(&branch, Method::Invite),
                    Owner::Invite(id),
                    peer,
                    bytes,
                );
                true
            }
            Err(_) => false,
        }
    }

    pub(super) fn bye_response(&mut self, now: Time, id: u64, p: &Parsed) {
        let status = p.status().unwrap_or(0);
        if status < 200 {
            return;
        }
        if let Some((ch, name)) = challenge_in(p)
            && let Some(c) = self.calls.get_mut(&id)
            && !std::mem::replace(&mut c.bye_challenged, true)
        {
            let trunk = &self.trunks[c.trunk].cfg;
            if let (Some(user), Some(pass)) = (trunk.username.clone(), trunk.password.clone()) {
                let ruri = c
                    .remote_target
                    .clone()
                    .unwrap_or_else(|| c.request_uri.clone());
                let cnonce = self.token(16);
                let value = ch.answer(&user, &pass, "BYE", &ruri, 1, &cnonce);
                self.send_bye(now, id, Some((name, value)));
                return;
            }
        }
        self.forget(id);
    }
}
