//! HTTP digest authentication for SIP (RFC 2617 / RFC 7616 with MD5, RFC 3261 §22):
//! read a `WWW-Authenticate` / `Proxy-Authenticate` challenge and answer it.

use md5::{Digest, Md5};

/// A digest challenge from a 401 or 407.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// Whether the server offers `qop=auth` (we then use it).
    pub qop_auth: bool,
    /// `MD5-sess` instead of `MD5`.
    pub sess: bool,
    /// The nonce was stale: the credentials were right, answer again with the new one.
    pub stale: bool,
}

/// Why a challenge cannot be answered.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("not a Digest challenge")]
    NotDigest,
    #[error("challenge without {field}")]
    Missing { field: &'static str },
    #[error("unsupported digest algorithm {algorithm}")]
    Algorithm { algorithm: String },
    #[error("only qop=auth-int offered")]
    Qop,
}

/// Split `k=v, k="v, w"` into pairs, honouring quotes.
fn pairs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            value = q[..end].to_string();
            rest = q.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.push((key, value));
    }
    out
}

impl Challenge {
    pub fn parse(header: &str) -> Result<Challenge, AuthError> {
        let header = header.trim();
        let (scheme, params) = header
            .split_once(char::is_whitespace)
            .ok_or(AuthError::NotDigest)?;
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(AuthError::NotDigest);
        }
        let (mut realm, mut nonce, mut opaque) = (None, None, None);
        let (mut qop, mut sess, mut stale) = (None, false, false);
        for (k, v) in pairs(params) {
            match k.as_str() {
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "opaque" => opaque = Some(v),
                "qop" => qop = Some(v),
                "stale" => stale = v.eq_ignore_ascii_case("true"),
                "algorithm" => {
                    if v.eq_ignore_ascii_case("md5-sess") {
                        sess = true;
                    } else if !v.eq_ignore_ascii_case("md5") {
                        return Err(AuthError::Algorithm { algorithm: v });
                    }
                }
                _ => {}
            }
        }
        let qop_auth = match qop {
            None => false,
            Some(q) => {
                if q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth")) {
                    true
                } else {
                    return Err(AuthError::Qop);
                }
            }
        };
        Ok(Challenge {
            realm: realm.ok_or(AuthError::Missing { field: "realm" })?,
            nonce: nonce.ok_or(AuthError::Missing { field: "nonce" })?,
            opaque,
            qop_auth,
            sess,
            stale,
        })
    }

    /// The `Authorization` / `Proxy-Authorization` value for a request.
    /// `nc` counts uses of this nonce; `cnonce` is a fresh random string.
    pub fn answer(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let mut ha1 = md5_hex(&format!("{user}:{}:{password}", self.realm));
        if self.sess {
            ha1 = md5_hex(&format!("{ha1}:{}:{cnonce}", self.nonce));
        }
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let response = if self.qop_auth {
            md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let algorithm = if self.sess { "MD5-sess" } else { "MD5" };
        let mut v = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm={algorithm}",
            self.realm, self.nonce
        );
        if self.qop_auth {
            v.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        v
    }
}

/// The digest challenge of a 401 or 407 response and the header our answer goes in
/// (`Authorization` or `Proxy-Authorization`).
pub fn challenge_in(resp: &super::message::Parsed) -> Option<(Challenge, &'static str)> {
    let (challenge, answer) = match resp.status()? {
        401 => ("www-authenticate", "Authorization"),
        407 => ("proxy-authenticate", "Proxy-Authorization"),
        _ => return None,
    };
    let c = resp
        .values(challenge)
        .find_map(|v| Challenge::parse(v).ok())?;
    Some((c, answer))
}

fn md5_hex(s: &str) -> String {
    let digest = Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5, with the method and URI of its example.
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(c.qop_auth);
        let a = c.answer(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(
            a.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{a}"
        );
        assert!(a.contains("nc=00000001"));
        assert!(a.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn without_qop_and_bad_challenges() {
        let c =
            Challenge::parse("Digest realm=\"r\",nonce=\"n\",algorithm=MD5,stale=TRUE").unwrap();
        assert!(!c.qop_auth && c.stale);
        // HA1=md5("u:r:p"), HA2=md5("INVITE:sip:x"), response=md5(HA1:n:HA2)
        let expect = md5_hex(&format!(
            "{}:n:{}",
            md5_hex("u:r:p"),
            md5_hex("INVITE:sip:x")
        ));
        assert!(
            c.answer("u", "p", "INVITE", "sip:x", 1, "c")
                .contains(&expect)
        );
        assert_eq!(
            Challenge::parse("Basic realm=\"r\""),
            Err(AuthError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(AuthError::Missing { field: "realm" })
        );
        assert!(matches!(
            Challenge::parse("Digest realm=r, nonce=n, algorithm=SHA-512-256"),
            Err(AuthError::Algorithm { .. })
        ));
    }
}
