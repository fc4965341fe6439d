//! SDP offer/answer for audio (RFC 3264, RFC 4566): we offer PCMU, PCMA and
//! telephone-event; the answer picks the codec and says where to send RTP.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

/// A G.711 codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }
}

/// The telephone-event payload type we offer.
pub const DTMF_PT: u8 = 101;

/// What the far end's SDP says about its audio stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Media {
    /// Where to send RTP.
    pub addr: SocketAddr,
    pub codec: Codec,
    /// The far end's telephone-event payload type, when it takes RFC 4733 events.
    pub dtmf_pt: Option<u8>,
    pub direction: Direction,
}

/// The media direction attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    const fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Our direction in an answer to an offer with this direction.
    pub const fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether the far end has put us on hold.
    pub const fn is_hold(self) -> bool {
        matches!(self, Direction::SendOnly | Direction::Inactive)
    }
}

/// Our session description: the RTP address and the session version, bumped on
/// every change (RFC 3264 §8).
pub fn offer(session_id: u64, version: u64, rtp: SocketAddr, direction: Direction) -> Vec<u8> {
    let ip = match rtp.ip() {
        IpAddr::V4(ip) => format!("IP4 {ip}"),
        IpAddr::V6(ip) => format!("IP6 {ip}"),
    };
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "v=0\r\no=dialerd {session_id} {version} IN {ip}\r\ns=dialerd\r\nc=IN {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 {DTMF_PT}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:{DTMF_PT} telephone-event/8000\r\na=fmtp:{DTMF_PT} 0-16\r\na=ptime:20\r\na={dir}\r\n",
        port = rtp.port(),
        dir = direction.attr(),
    );
    s.into_bytes()
}

/// Why an SDP answer cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("no audio stream")]
    NoAudio,
    #[error("no connection address")]
    NoAddress,
    #[error("no codec in common (we offer PCMU and PCMA)")]
    NoCommonCodec,
    #[error("malformed line: {line}")]
    Malformed { line: String },
}

/// Read the far end's audio stream from an SDP body.
pub fn parse(body: &[u8]) -> Result<Media, SdpError> {
    let text = String::from_utf8_lossy(body);
    let (mut session_addr, mut media_addr, mut port, mut formats) = (None, None, None, Vec::new());
    let mut in_audio = false;
    let mut direction = Direction::SendRecv;
    let mut dtmf_pt = None;
    let mut rtpmap: Vec<(u8, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        let bad = || SdpError::Malformed {
            line: line.chars().take(80).collect(),
        };
        match kind {
            "m" => {
                let mut parts = value.split_whitespace();
                in_audio = parts.next() == Some("audio") && port.is_none();
                if in_audio {
                    port = Some(
                        parts
                            .next()
                            .and_then(|p| p.parse::<u16>().ok())
                            .ok_or_else(bad)?,
                    );
                    formats = parts.skip(1).filter_map(|f| f.parse::<u8>().ok()).collect();
                }
            }
            "c" => {
                let addr = value
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .ok_or_else(bad)?;
                if port.is_none() {
                    session_addr = Some(addr);
                } else if in_audio {
                    media_addr = Some(addr);
                }
            }
            "a" if in_audio => {
                if let Some(map) = value.strip_prefix("rtpmap:") {
                    let (pt, name) = map.split_once(' ').ok_or_else(bad)?;
                    let pt = pt.parse::<u8>().map_err(|_| bad())?;
                    rtpmap.push((pt, name.to_ascii_lowercase()));
                } else {
                    direction = match value {
                        "sendonly" => Direction::SendOnly,
                        "recvonly" => Direction::RecvOnly,
                        "inactive" => Direction::Inactive,
                        "sendrecv" => Direction::SendRecv,
                        _ => direction,
                    };
                }
            }
            _ => {}
        }
    }
    let port = port.ok_or(SdpError::NoAudio)?;
    let ip = media_addr.or(session_addr).ok_or(SdpError::NoAddress)?;
    for (pt, name) in &rtpmap {
        if name.starts_with("telephone-event/") && formats.contains(pt) {
            dtmf_pt = Some(*pt);
        }
    }
    // The answerer lists the formats it takes in order of preference.
    let codec = formats
        .iter()
        .find_map(|&pt| match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let direction = if port == 0 {
        Direction::Inactive
    } else {
        direction
    };
    Ok(Media {
        addr: SocketAddr::new(ip, port),
        codec,
        dtmf_pt,
        direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_offer_parses_back() {
        let o = offer(
            7,
            1,
            "127.0.0.1:40000".parse().unwrap(),
            Direction::SendRecv,
        );
        let m = parse(&o).unwrap();
        assert_eq!(m.addr, "127.0.0.1:40000".parse().unwrap());
        assert_eq!((m.codec, m.dtmf_pt), (Codec::Pcmu, Some(101)));
        let v6 = offer(7, 2, "[::1]:40002".parse().unwrap(), Direction::Inactive);
        let m = parse(&v6).unwrap();
        assert_eq!(m.addr, "[::1]:40002".parse().unwrap());
        assert_eq!(m.direction, Direction::Inactive);
    }

    #[test]
    fn answers_pick_codec_address_and_direction() {
        let a = b"v=0\r\no=x 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 96\r\nc=IN IP4 10.0.0.2\r\na=rtpmap:96 telephone-event/8000\r\na=sendonly\r\n";
        let m = parse(a).unwrap();
        assert_eq!(m.addr, "10.0.0.2:6000".parse().unwrap());
        assert_eq!((m.codec, m.dtmf_pt), (Codec::Pcma, Some(96)));
        assert!(m.direction.is_hold());
        assert_eq!(m.direction.answer(), Direction::RecvOnly);
        let g729 = b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 6000 RTP/AVP 18\r\n";
        assert_eq!(parse(g729), Err(SdpError::NoCommonCodec));
        assert_eq!(parse(b"v=0\r\n"), Err(SdpError::NoAudio));
        assert!(matches!(
            parse(b"m=audio x RTP/AVP 0\r\n"),
            Err(SdpError::Malformed { .. })
        ));
    }
}
