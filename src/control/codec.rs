//! The JSON-lines protocol as pure functions on bytes: splitting a stream into lines
//! (refusing lines over [`MAX_LINE`]), reading requests, writing responses.
//!
//! Request:  `{"id": <any>, "cmd": "<name>", "args": {...}}`
//! Response: `{"id": ..., "ok": true, "data": ...}` or
//!           `{"id": ..., "ok": false, "error": {"code", "message", "field"}}`
//! Event:    `{"event": "<name>", ...}`

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Longest request line, newline excluded.
pub const MAX_LINE: usize = 1 << 20;

/// A protocol error: a stable code, a message for people, the argument at fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// One thing read from the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Line(Vec<u8>),
    /// A line longer than [`MAX_LINE`] was skipped up to its newline.
    TooLong,
}

/// Splits bytes into lines; never holds more than `MAX_LINE` bytes of one line.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
    /// Inside an over-long line: drop bytes up to the next newline.
    skipping: bool,
    ready: std::collections::VecDeque<Frame>,
}

impl LineBuffer {
    pub fn push(&mut self, bytes: &[u8]) {
        let mut parts = bytes.split(|&b| b == b'\n').peekable();
        while let Some(part) = parts.next() {
            let complete = parts.peek().is_some();
            if !self.skipping {
                if self.partial.len() + part.len() > MAX_LINE {
                    self.partial = Vec::new();
                    self.skipping = true;
                    self.ready.push_back(Frame::TooLong);
                } else {
                    self.partial.extend_from_slice(part);
                }
            }
            if complete {
                if self.skipping {
                    self.skipping = false;
                } else {
                    let mut line = std::mem::take(&mut self.partial);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    self.ready.push_back(Frame::Line(line));
                }
            }
        }
    }

    pub fn next_frame(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// Bytes held for the line being read.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// A request, its `args` always an object (`{}` when absent).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub id: Value,
    pub cmd: String,
    pub args: Value,
}

/// Read a request line. On error, the `id` (when one could be read) and the error.
pub fn parse_request(line: &[u8]) -> Result<Request, (Value, ErrorBody)> {
    let v: Value = serde_json::from_slice(line).map_err(|e| {
        (
            Value::Null,
            ErrorBody::new("bad_json", format!("not JSON: {e}")),
        )
    })?;
    let Value::Object(mut m) = v else {
        return Err((
            Value::Null,
            ErrorBody::new("bad_request", "a request is a JSON object"),
        ));
    };
    let id = m.remove("id").unwrap_or(Value::Null);
    let cmd = match m.remove("cmd") {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err((
                id,
                ErrorBody::new("bad_request", "`cmd` must be a string").with_field("cmd"),
            ));
        }
        None => {
            return Err((
                id,
                ErrorBody::new("bad_request", "missing `cmd`").with_field("cmd"),
            ));
        }
    };
    let args = match m.remove("args") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(a @ Value::Object(_)) => a,
        Some(_) => {
            return Err((
                id,
                ErrorBody::new("bad_args", "`args` must be an object").with_field("args"),
            ));
        }
    };
    if let Some(k) = m.keys().next() {
        return Err((
            id,
            ErrorBody::new("bad_request", format!("unknown request member `{k}`"))
                .with_field(k.clone()),
        ));
    }
    Ok(Request { id, cmd, args })
}

/// Decode a command's arguments; the error names the argument at fault.
pub fn args<T: DeserializeOwned>(args: Value) -> Result<T, ErrorBody> {
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path == "." {
            // Missing and unknown fields name themselves in the message.
            inner.split('`').nth(1).unwrap_or("").to_owned()
        } else {
            path
        };
        let body = ErrorBody::new("bad_args", inner);
        if field.is_empty() {
            body
        } else {
            body.with_field(field)
        }
    })
}

pub fn ok_line(id: &Value, data: &impl Serialize) -> String {
    #[derive(Serialize)]
    struct Ok<'a, T> {
        id: &'a Value,
        ok: bool,
        data: &'a T,
    }
    let mut s = serde_json::to_string(&Ok { id, ok: true, data }).expect("responses serialize");
    s.push('\n');
    s
}

pub fn error_line(id: &Value, error: &ErrorBody) -> String {
    let mut s = serde_json::json!({ "id": id, "ok": false, "error": error }).to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(b: &mut LineBuffer) -> Vec<Frame> {
        std::iter::from_fn(|| b.next_frame()).collect()
    }

    #[test]
    fn lines_split_across_pushes() {
        let mut b = LineBuffer::default();
        b.push(b"{\"a\":1}\n{\"b\"");
        assert_eq!(frames(&mut b), vec![Frame::Line(b"{\"a\":1}".to_vec())]);
        b.push(b":2}\r\n");
        assert_eq!(frames(&mut b), vec![Frame::Line(b"{\"b\":2}".to_vec())]);
    }

    #[test]
    fn over_long_lines_are_skipped_and_reported_in_order() {
        let mut b = LineBuffer::default();
        b.push(b"first\n");
        let big = vec![b'x'; MAX_LINE + 10];
        for chunk in big.chunks(4096) {
            b.push(chunk);
        }
        b.push(b"still the long line\nnext\n");
        assert_eq!(
            frames(&mut b),
            vec![
                Frame::Line(b"first".to_vec()),
                Frame::TooLong,
                Frame::Line(b"next".to_vec())
            ]
        );
        assert_eq!(b.pending(), 0);
        // Exactly MAX_LINE is allowed.
        let mut line = vec![b'y'; MAX_LINE];
        line.push(b'\n');
        b.push(&line);
        assert!(matches!(b.next_frame(), Some(Frame::Line(l)) if l.len() == MAX_LINE));
    }

    #[test]
    fn requests_are_checked() {
        let r = parse_request(br#"{"id":7,"cmd":"campaign.list"}"#).unwrap();
        assert_eq!(
            (r.id, r.cmd.as_str()),
            (serde_json::json!(7), "campaign.list")
        );
        assert!(r.args.is_object());
        let code = |l: &[u8]| parse_request(l).unwrap_err().1.code;
        assert_eq!(code(b"{nope"), "bad_json");
        assert_eq!(code(b"[1]"), "bad_request");
        assert_eq!(code(br#"{"id":1}"#), "bad_request");
        assert_eq!(code(br#"{"id":1,"cmd":"x","args":[1]}"#), "bad_args");
        assert_eq!(code(br#"{"id":1,"cmd":"x","arg":{}}"#), "bad_request");
        let (id, _) = parse_request(br#"{"id":"a","cmd":5}"#).unwrap_err();
        assert_eq!(id, serde_json::json!("a"));
    }

    #[test]
    fn argument_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct A {
            campaign: u32,
            #[serde(default)]
            limit: Option<usize>,
        }
        let e = args::<A>(serde_json::json!({"campaign": "x"})).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("bad_args", Some("campaign")));
        let e = args::<A>(serde_json::json!({})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("campaign"));
        let e = args::<A>(serde_json::json!({"campaign": 1, "limt": 2})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limt"));
        let line = error_line(&serde_json::json!(1), &e);
        assert!(line.ends_with('\n') && line.contains("\"ok\":false"));
    }
}
