//! SIP messages: parsing bytes into rsip's types, the few fields the transaction and
//! dialog layers key on, stream framing by Content-Length, and message building.
//!
//! Everything here is a pure function on bytes or values, so it can be fuzzed.

use std::fmt::Write as _;
use std::net::SocketAddr;

use rsip::{Header, Method, SipMessage};

use super::SipError;

/// The largest message we accept or send, over any transport. A UDP datagram larger
/// than this is dropped; a TCP stream that announces a larger message is closed.
pub const MAX_MESSAGE: usize = 65_535;

/// The magic cookie every RFC 3261 branch starts with.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// A parsed message with the fields the transaction and dialog layers key on.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub msg: SipMessage,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: Method,
    /// The top Via's branch.
    pub branch: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
}

impl Parsed {
    /// The status code of a response, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.msg {
            SipMessage::Response(r) => Some(r.status_code.code()),
            SipMessage::Request(_) => None,
        }
    }

    /// The method of a request, `None` for a response.
    pub fn method(&self) -> Option<Method> {
        match &self.msg {
            SipMessage::Request(r) => Some(r.method),
            SipMessage::Response(_) => None,
        }
    }

    pub fn headers(&self) -> &rsip::Headers {
        match &self.msg {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }

    pub fn body(&self) -> &[u8] {
        self.msg.body()
    }

    /// Every value of a header, in order, with compact forms (`v`, `i`, `m`, …) and
    /// comma-separated lists expanded (for the headers where a comma separates values).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        header_values(self.headers(), name)
    }

    /// The first value of a header.
    pub fn value<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.values(name).next()
    }
}

/// Compact header names (RFC 3261 §7.3.3) and the full name they stand for.
const COMPACT: &[(&str, &str)] = &[
    ("v", "via"),
    ("f", "from"),
    ("t", "to"),
    ("i", "call-id"),
    ("m", "contact"),
    ("l", "content-length"),
    ("c", "content-type"),
    ("k", "supported"),
    ("s", "subject"),
];

fn canonical(name: &str) -> &str {
    COMPACT
        .iter()
        .find(|(short, _)| name.eq_ignore_ascii_case(short))
        .map_or(name, |(_, long)| long)
}

fn header_values<'a>(headers: &'a rsip::Headers, name: &'a str) -> impl Iterator<Item = &'a str> {
    let want = canonical(name);
    let list = matches!(want, "via" | "route" | "record-route" | "contact");
    headers
        .iter()
        .filter_map(move |h| {
            let value = raw_value(h, want)?;
            Some(value)
        })
        .flat_map(move |v| {
            let parts: Vec<&str> = if list { split_list(v) } else { vec![v] };
            parts.into_iter()
        })
}

/// The value of `h` when it is the header `want` (lower-case canonical name).
fn raw_value<'a>(h: &'a Header, want: &str) -> Option<&'a str> {
    use rsip::headers::UntypedHeader;
    let value: &str = match h {
        Header::Via(v) if want == "via" => v.value(),
        Header::From(v) if want == "from" => v.value(),
        Header::To(v) if want == "to" => v.value(),
        Header::CallId(v) if want == "call-id" => v.value(),
        Header::CSeq(v) if want == "cseq" => v.value(),
        Header::Contact(v) if want == "contact" => v.value(),
        Header::ContentLength(v) if want == "content-length" => v.value(),
        Header::ContentType(v) if want == "content-type" => v.value(),
        Header::Route(v) if want == "route" => v.value(),
        Header::RecordRoute(v) if want == "record-route" => v.value(),
        Header::WwwAuthenticate(v) if want == "www-authenticate" => v.value(),
        Header::ProxyAuthenticate(v) if want == "proxy-authenticate" => v.value(),
        Header::RetryAfter(v) if want == "retry-after" => v.value(),
        Header::Expires(v) if want == "expires" => v.value(),
        Header::MinExpires(v) if want == "min-expires" => v.value(),
        Header::Supported(v) if want == "supported" => v.value(),
        Header::Other(n, v) if canonical(n).eq_ignore_ascii_case(want) => v.as_str(),
        _ => return None,
    };
    Some(value.trim())
}

/// Split a header value on commas that are outside quotes and angle brackets.
fn split_list(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// The value of a `;name=value` parameter in a header value (outside the `<…>` URI).
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let after_uri = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after_uri.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// The URI inside a name-addr (`"Name" <sip:a@b>;tag=x`) or an addr-spec (`sip:a@b;tag=x`).
pub fn uri_of(value: &str) -> &str {
    if let (Some(a), Some(b)) = (value.find('<'), value.rfind('>'))
        && a < b
    {
        return value[a + 1..b].trim();
    }
    value.split(';').next().unwrap_or(value).trim()
}

/// The host and port of a SIP URI (`sip:user@host:port;params`), with the port
/// defaulting to 5060. Returns `None` when the host is not an IP literal.
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split([';', '?']).next()?;
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, port) = v6.split_once(']')?;
        let port = port.strip_prefix(':').map_or(Ok(5060), str::parse).ok()?;
        return Some(SocketAddr::new(host.parse().ok()?, port));
    }
    let (host, port) = match hostport.split_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, 5060),
    };
    Some(SocketAddr::new(host.parse().ok()?, port))
}

/// The `transport=` parameter of a URI, lower-cased.
pub fn uri_transport(uri: &str) -> Option<String> {
    uri.split(';')
        .skip(1)
        .find_map(|p| p.strip_prefix("transport="))
        .map(|t| t.to_ascii_lowercase())
}

/// Parse one whole message. For datagrams the body is cut to Content-Length.
pub fn parse(bytes: &[u8]) -> Result<Parsed, SipError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(SipError::TooLarge { len: bytes.len() });
    }
    let mut msg = match SipMessage::try_from(bytes) {
        Ok(m) => m,
        Err(e) => match without_v6_request_uri(bytes) {
            // rsip 0.4 cannot read IPv6 references ([::1]) in URIs. We never route on
            // the Request-URI of a request we receive, so it is parsed without it.
            Some(fixed) => SipMessage::try_from(&fixed[..]),
            None => Err(e),
        }
        .map_err(|e| SipError::Malformed {
            reason: short(&e.to_string()),
        })?,
    };
    let fields = {
        let headers = match &msg {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        };
        key_fields(headers)?
    };
    if let Some(len) = fields.content_length {
        let body = msg.body_mut();
        if body.len() < len {
            return Err(SipError::Truncated);
        }
        body.truncate(len);
    }
    let KeyFields {
        call_id,
        cseq,
        cseq_method,
        branch,
        from_tag,
        to_tag,
        ..
    } = fields;
    Ok(Parsed {
        msg,
        call_id,
        cseq,
        cseq_method,
        branch,
        from_tag,
        to_tag,
    })
}

/// The message with an IPv6 Request-URI replaced by a placeholder, when it has one.
fn without_v6_request_uri(bytes: &[u8]) -> Option<Vec<u8>> {
    let end = bytes.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let line = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut parts = line.split(' ');
    let (method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !uri.contains('[') || !version.starts_with("SIP/") {
        return None;
    }
    let mut out = format!("{method} sip:ipv6-request-uri.invalid {version}").into_bytes();
    out.extend_from_slice(&bytes[end..]);
    Some(out)
}

/// Whether `uri` is a SIP URI we can put on a request line: `sip:`/`sips:`, no
/// spaces or control characters.
pub fn check_uri(uri: &str) -> Result<(), SipError> {
    let scheme = uri.starts_with("sip:") || uri.starts_with("sips:");
    let clean = !uri.bytes().any(|b| b <= b' ' || b == 0x7f);
    if scheme && clean && uri.len() > 4 && uri.len() < 1024 {
        Ok(())
    } else {
        Err(SipError::BadUri { uri: short(uri) })
    }
}

struct KeyFields {
    call_id: String,
    cseq: u32,
    cseq_method: Method,
    branch: String,
    from_tag: Option<String>,
    to_tag: Option<String>,
    content_length: Option<usize>,
}

fn key_fields(headers: &rsip::Headers) -> Result<KeyFields, SipError> {
    let first = |name: &'static str| {
        header_values(headers, name)
            .next()
            .ok_or(SipError::MissingHeader { name })
    };
    let bad = |name: &'static str| SipError::BadHeader { name };
    let (num, method) = first("cseq")?
        .split_once(char::is_whitespace)
        .ok_or(bad("CSeq"))?;
    let content_length = match header_values(headers, "content-length").next() {
        Some(v) => Some(v.parse().map_err(|_| bad("Content-Length"))?),
        None => None,
    };
    Ok(KeyFields {
        call_id: first("call-id")?.to_string(),
        cseq: num.trim().parse().map_err(|_| bad("CSeq"))?,
        cseq_method: method.trim().parse().map_err(|_| bad("CSeq"))?,
        branch: param(first("via")?, "branch")
            .unwrap_or_default()
            .to_string(),
        from_tag: param(first("from")?, "tag").map(str::to_string),
        to_tag: param(first("to")?, "tag").map(str::to_string),
        content_length,
    })
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

/// What a stream buffer holds at its start.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of this many bytes (after `skip` bytes of keep-alive CRLFs).
    Message { skip: usize, len: usize },
    /// Only keep-alive CRLFs: drop this many bytes.
    KeepAlive(usize),
    /// Not enough bytes yet.
    Incomplete,
    /// The stream cannot be framed (no or bad Content-Length, too large): close it.
    Invalid(&'static str),
}

/// Frame a stream (TCP) buffer by its Content-Length (RFC 3261 §18.3).
pub fn frame(buf: &[u8]) -> Frame {
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip == buf.len() {
        return if skip == 0 {
            Frame::Incomplete
        } else {
            Frame::KeepAlive(skip)
        };
    }
    let rest = &buf[skip..];
    let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if rest.len() > MAX_MESSAGE {
            Frame::Invalid("header section too large")
        } else {
            Frame::Incomplete
        };
    };
    let head = &rest[..end];
    let mut length = None;
    for line in head.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        if let Some((name, value)) = line.split_once(':')
            && matches!(canonical(name.trim()), n if n.eq_ignore_ascii_case("content-length"))
        {
            match value.trim().parse::<usize>() {
                Ok(n) => length = Some(n),
                Err(_) => return Frame::Invalid("bad Content-Length"),
            }
        }
    }
    let Some(body) = length else {
        return Frame::Invalid("no Content-Length on a stream");
    };
    let len = end + 4 + body;
    if len > MAX_MESSAGE {
        return Frame::Invalid("message too large");
    }
    if rest.len() < len {
        return Frame::Incomplete;
    }
    Frame::Message { skip, len }
}

/// A message under construction: start line, headers, body. Serialised through
/// rsip's types so what we send is what rsip would parse back.
#[derive(Debug, Clone)]
pub struct Builder {
    headers: Vec<Header>,
    body: Vec<u8>,
    content_type: Option<&'static str>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            headers: Vec::with_capacity(12),
            body: Vec::new(),
            content_type: None,
        }
    }

    /// Add a header by name (values are written as given).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.push(name, value);
        self
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        let h = match name {
            "Via" => Header::Via(rsip::headers::Via::from(value)),
            "From" => Header::From(rsip::headers::From::from(value)),
            "To" => Header::To(rsip::headers::To::from(value)),
            "Call-ID" => Header::CallId(rsip::headers::CallId::from(value)),
            "CSeq" => Header::CSeq(rsip::headers::CSeq::from(value)),
            "Contact" => Header::Contact(rsip::headers::Contact::from(value)),
            "Max-Forwards" => Header::MaxForwards(rsip::headers::MaxForwards::from(value)),
            "Route" => Header::Route(rsip::headers::Route::from(value)),
            _ => Header::Other(name.to_string(), value),
        };
        self.headers.push(h);
    }

    pub fn body(mut self, content_type: &'static str, body: Vec<u8>) -> Self {
        self.content_type = Some(content_type);
        self.body = body;
        self
    }

    fn finish_headers(&mut self) -> rsip::Headers {
        if let Some(ct) = self.content_type {
            self.push("Content-Type", ct);
        }
        let len = self.body.len().to_string();
        self.push("Content-Length", len);
        std::mem::take(&mut self.headers).into()
    }

    /// Serialise a request. The URI is written as given (rsip 0.4 cannot represent
    /// IPv6 references), after [`check_uri`].
    pub fn request(mut self, method: Method, uri: &str) -> Result<Vec<u8>, SipError> {
        check_uri(uri)?;
        let headers = self.finish_headers();
        Ok(serialise(&headers, &self.body, |s| {
            let _ = write!(s, "{method} {uri} SIP/2.0\r\n");
        }))
    }

    /// Serialise a response.
    pub fn response(mut self, status: u16, reason: &str) -> Vec<u8> {
        let headers = self.finish_headers();
        serialise(&headers, &self.body, |s| {
            let _ = write!(s, "SIP/2.0 {status} {reason}\r\n");
        })
    }
}

fn serialise(headers: &rsip::Headers, body: &[u8], start: impl FnOnce(&mut String)) -> Vec<u8> {
    let mut s = String::with_capacity(512 + body.len());
    start(&mut s);
    for h in headers.iter() {
        let _ = write!(s, "{h}\r\n");
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Copy the headers a response must echo from its request (RFC 3261 §8.2.6.2): every
/// Via, From, To (with our tag added when given and absent), Call-ID, CSeq, and for
/// dialog-creating responses the Record-Route set.
pub fn response_to(req: &Parsed, to_tag: Option<&str>) -> Builder {
    let mut b = Builder::new();
    for v in req.values("via") {
        b.push("Via", v);
    }
    if let Some(f) = req.value("from") {
        b.push("From", f);
    }
    if let Some(t) = req.value("to") {
        match (to_tag, &req.to_tag) {
            (Some(tag), None) => b.push("To", format!("{t};tag={tag}")),
            _ => b.push("To", t),
        }
    }
    b.push("Call-ID", req.call_id.as_str());
    b.push("CSeq", format!("{} {}", req.cseq, req.cseq_method));
    b
}

/// A short description of a message for logs: start line and Call-ID.
pub fn describe(bytes: &[u8]) -> String {
    let line = bytes
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(b"");
    short(&String::from_utf8_lossy(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+441632960001@127.0.0.1:5070 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKold\r\n\
Max-Forwards: 70\r\n\
f: \"Sales\" <sip:+441632960999@dialer>;tag=ft1\r\n\
t: <sip:+441632960001@127.0.0.1>\r\n\
i: call-1@dialer\r\n\
CSeq: 7 INVITE\r\n\
m: <sip:dialerd@127.0.0.1:5060>\r\n\
Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n\
c: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\r\nextra";

    #[test]
    fn parses_compact_forms_and_lists() {
        let p = parse(INVITE.as_bytes()).unwrap();
        assert_eq!(p.call_id, "call-1@dialer");
        assert_eq!((p.cseq, p.cseq_method), (7, Method::Invite));
        assert_eq!(p.branch, "z9hG4bKabc");
        assert_eq!(p.from_tag.as_deref(), Some("ft1"));
        assert_eq!(p.to_tag, None);
        assert_eq!(p.values("via").count(), 2);
        assert_eq!(
            p.values("record-route").collect::<Vec<_>>(),
            ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
        );
        assert_eq!(p.body(), b"v=0\r");
        assert_eq!(p.method(), Some(Method::Invite));
    }

    #[test]
    fn missing_headers_and_garbage_are_errors() {
        assert!(matches!(
            parse(b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n"),
            Err(SipError::MissingHeader { name: "call-id" })
        ));
        assert!(parse(b"\x00\xff garbage").is_err());
        let short_body = INVITE.replace("l: 4", "l: 400");
        assert!(matches!(
            parse(short_body.as_bytes()),
            Err(SipError::Truncated)
        ));
    }

    #[test]
    fn frames_streams_by_content_length() {
        let msg = INVITE.replace("\r\nextra", "\r");
        let mut buf = b"\r\n\r\n".to_vec();
        buf.extend_from_slice(msg.as_bytes());
        assert_eq!(
            frame(&buf),
            Frame::Message {
                skip: 4,
                len: msg.len()
            }
        );
        assert_eq!(frame(&buf[..20]), Frame::Incomplete);
        assert_eq!(frame(b"\r\n\r\n"), Frame::KeepAlive(4));
        assert_eq!(
            frame(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n"),
            Frame::Invalid("no Content-Length on a stream")
        );
        let huge = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 900000\r\n\r\n";
        assert_eq!(frame(huge), Frame::Invalid("message too large"));
    }

    #[test]
    fn uris_and_params() {
        assert_eq!(
            uri_addr("sip:+44@127.0.0.1:5070;transport=tcp"),
            Some("127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(
            uri_addr("sip:[::1]:5080"),
            Some("[::1]:5080".parse().unwrap())
        );
        assert_eq!(uri_addr("sip:a@host.example"), None);
        assert_eq!(uri_of("\"A, B\" <sip:x@y;lr>;tag=1"), "sip:x@y;lr");
        assert_eq!(param("\"A\" <sip:x@y;tag=no>;tag=yes", "tag"), Some("yes"));
        assert_eq!(
            uri_transport("sip:a@b;transport=TCP").as_deref(),
            Some("tcp")
        );
    }

    #[test]
    fn built_messages_parse_back() {
        let bytes = Builder::new()
            .header("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx")
            .header("From", "<sip:a@b>;tag=1")
            .header("To", "<sip:c@d>")
            .header("Call-ID", "c1")
            .header("CSeq", "1 OPTIONS")
            .header("Max-Forwards", "70")
            .request(Method::Options, "sip:c@127.0.0.1:5070")
            .unwrap();
        let p = parse(&bytes).unwrap();
        assert_eq!(p.cseq_method, Method::Options);
        let resp = response_to(&p, Some("tt")).response(200, "OK");
        let r = parse(&resp).unwrap();
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.to_tag.as_deref(), Some("tt"));
        assert_eq!(r.branch, "z9hG4bKx");
    }

    #[test]
    fn ipv6_request_uris() {
        let bye = b"BYE sip:far@[::1]:5070 SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5070;branch=z9hG4bKx\r\n\
Call-ID: a\r\nCSeq: 2 BYE\r\nFrom: <sip:a@[::1]>;tag=1\r\nTo: <sip:b@[::1]>;tag=2\r\nContent-Length: 0\r\n\r\n";
        let p = parse(bye).unwrap();
        assert_eq!((p.method(), p.cseq), (Some(Method::Bye), 2));
        let built = Builder::new()
            .header("Call-ID", "c")
            .request(Method::Options, "sip:[::1]:5070")
            .unwrap();
        assert!(built.starts_with(b"OPTIONS sip:[::1]:5070 SIP/2.0\r\n"));
        assert!(check_uri("sip:a b@c").is_err());
        assert!(check_uri("http://x").is_err());
    }
}
