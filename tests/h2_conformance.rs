//! An h2spec-equivalent conformance run against the TLS listener (issue 9).
//!
//! h2spec (github.com/summerwind/h2spec) cannot be built here (no Go
//! module proxy), so its 146 default test cases — `generic` (44), `http2`
//! (95, RFC 7540 §3.5–§8.2) and `hpack` (7), the `Strict` ones left out as
//! h2spec leaves them out by default — are re-stated below, each sending
//! the bytes h2spec sends and judged the way h2spec's verifiers judge:
//!
//! - *connection error*: GOAWAY with one of the codes, or the connection
//!   closing (h2spec keeps reading after a GOAWAY with another code, so a
//!   close that follows it passes too);
//! - *stream error*: the same, or RST_STREAM with one of the codes;
//! - *event type*: a frame of that type arrives before a close or timeout.
//!
//! The test prints one line per case (`PASS`/`FAIL`, id, description, and
//! what was seen) and asserts at least 145 of the 146 pass.

mod common;
mod h2wire;

use std::time::Duration;

use common::*;
use h2wire::*;

/// What h2spec's `CommonHeaders` send: GET https://AUTH/ (literal fields).
fn common(method: &str) -> Vec<u8> {
    request(method, HOST, "/", &[])
}

/// `DummyHeaders(c, n)`: `x-dummyI: xxxx…` (h2spec's default 4000 bytes).
fn dummy(n: usize) -> Vec<u8> {
    let value = vec![b'x'; 4000];
    let names: Vec<String> = (0..n).map(|i| format!("x-dummy{i}")).collect();
    let fields: Vec<(&[u8], &[u8])> = names.iter().map(|n| (n.as_bytes(), &value[..])).collect();
    encode(&fields)
}

fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, value) in values {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &out)
}

fn priority(stream: u32, dep: u32, exclusive: bool, weight: u8) -> Vec<u8> {
    frame(PRIORITY, 0, stream, &priority_fields(dep, exclusive, weight))
}

fn priority_fields(dep: u32, exclusive: bool, weight: u8) -> Vec<u8> {
    let mut out = (dep | if exclusive { 0x8000_0000 } else { 0 }).to_be_bytes().to_vec();
    out.push(weight);
    out
}

fn headers(stream: u32, end_stream: bool, end_headers: bool, block: &[u8]) -> Vec<u8> {
    let flags = if end_stream { END_STREAM } else { 0 } | if end_headers { END_HEADERS } else { 0 };
    frame(HEADERS, flags, stream, block)
}

fn data(stream: u32, end: bool, bytes: &[u8]) -> Vec<u8> {
    frame(DATA, if end { END_STREAM } else { 0 }, stream, bytes)
}

fn continuation(stream: u32, end_headers: bool, block: &[u8]) -> Vec<u8> {
    frame(CONTINUATION, if end_headers { END_HEADERS } else { 0 }, stream, block)
}

fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

fn ping(ack: bool, data: &[u8; 8]) -> Vec<u8> {
    frame(PING, if ack { ACK } else { 0 }, 0, data)
}

fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

fn goaway(last: u32, code: u32, debug: &[u8]) -> Vec<u8> {
    let mut payload = last.to_be_bytes().to_vec();
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(debug);
    frame(GOAWAY, 0, 0, &payload)
}

/// A common GET block with `rep` appended (the HPACK cases).
fn with_rep(rep: &[u8]) -> Vec<u8> {
    let mut block = common("GET");
    block.extend_from_slice(rep);
    block
}

/// A common GET block with `rep` in front.
fn rep_first(rep: &[u8]) -> Vec<u8> {
    let mut block = rep.to_vec();
    block.extend(common("GET"));
    block
}

type Verdict = Result<String, String>;

const H2SPEC_WAIT: Duration = Duration::from_secs(5);

fn code_name(code: u32) -> String {
    let name = match code {
        NO_ERROR => "NO_ERROR",
        PROTOCOL_ERROR => "PROTOCOL_ERROR",
        INTERNAL_ERROR => "INTERNAL_ERROR",
        FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
        STREAM_CLOSED => "STREAM_CLOSED",
        FRAME_SIZE_ERROR => "FRAME_SIZE_ERROR",
        REFUSED_STREAM => "REFUSED_STREAM",
        CANCEL => "CANCEL",
        COMPRESSION_ERROR => "COMPRESSION_ERROR",
        ENHANCE_YOUR_CALM => "ENHANCE_YOUR_CALM",
        _ => return format!("0x{code:x}"),
    };
    name.to_string()
}

/// h2spec's `VerifyConnectionError` (with `rst`: `VerifyStreamError`).
async fn error(c: &mut Conn, codes: &[u32], rst: bool) -> Verdict {
    let mut seen = Vec::new();
    loop {
        match c.next(H2SPEC_WAIT).await {
            Event::Closed => {
                seen.push("closed".to_string());
                return Ok(seen.join(", "));
            }
            Event::Timeout => return Err(format!("timeout after [{}]", seen.join(", "))),
            Event::Frame(f) if f.kind == GOAWAY || (rst && f.kind == RST_STREAM) => {
                let code = f.code().unwrap_or(u32::MAX);
                let what = if f.kind == GOAWAY { "GOAWAY" } else { "RST_STREAM" };
                seen.push(format!("{what} {}", code_name(code)));
                if codes.contains(&code) {
                    return Ok(seen.join(", "));
                }
            }
            Event::Frame(_) => {}
        }
    }
}

async fn conn_error(c: &mut Conn, codes: &[u32]) -> Verdict {
    error(c, codes, false).await
}

async fn stream_error(c: &mut Conn, codes: &[u32]) -> Verdict {
    error(c, codes, true).await
}

/// h2spec's `VerifyConnectionClose`.
async fn closed(c: &mut Conn) -> Verdict {
    loop {
        match c.next(H2SPEC_WAIT).await {
            Event::Closed => return Ok("closed".into()),
            Event::Timeout => return Err("timeout, still open".into()),
            Event::Frame(_) => {}
        }
    }
}

/// h2spec's `WaitEventByType` / `VerifyEventType`: the first frame of
/// `kind` that `accept` likes (h2spec takes the first of the type and then
/// judges it; `first_only` keeps that).
async fn frame_of(c: &mut Conn, kind: u8, first_only: bool, accept: impl Fn(&Frame) -> bool) -> Verdict {
    loop {
        match c.next(H2SPEC_WAIT).await {
            Event::Frame(f) if f.kind == kind => {
                if accept(&f) {
                    return Ok(format!("frame {kind} len {} flags 0x{:02x}", f.payload.len(), f.flags));
                }
                if first_only {
                    return Err(format!("frame {kind} len {} flags 0x{:02x}", f.payload.len(), f.flags));
                }
            }
            Event::Frame(f) if f.kind == GOAWAY => {
                return Err(format!("GOAWAY {}", code_name(f.code().unwrap_or(u32::MAX))));
            }
            Event::Frame(_) => {}
            Event::Closed => return Err("closed".into()),
            Event::Timeout => return Err("timeout".into()),
        }
    }
}

async fn event(c: &mut Conn, kind: u8) -> Verdict {
    frame_of(c, kind, false, |_| true).await
}

/// `VerifyHeadersFrame(conn, stream)`.
async fn response(c: &mut Conn, stream: u32) -> Verdict {
    frame_of(c, HEADERS, false, |f| f.stream == stream).await
}

/// `VerifyPingFrameWithAck`.
async fn ping_ack(c: &mut Conn, data: &[u8; 8]) -> Verdict {
    frame_of(c, PING, false, |f| f.flags & ACK != 0 && f.payload == data).await
}

/// `VerifyPingFrameOrConnectionClose`.
async fn ping_or_close(c: &mut Conn, data: &[u8; 8]) -> Verdict {
    match ping_ack(c, data).await {
        Err(e) if e == "closed" => Ok("closed".into()),
        other => other,
    }
}

/// `VerifyStreamClose`: END_STREAM on DATA or HEADERS.
async fn stream_closed(c: &mut Conn) -> Verdict {
    loop {
        match c.next(H2SPEC_WAIT).await {
            Event::Frame(f) if matches!(f.kind, DATA | HEADERS) && f.flags & END_STREAM != 0 => {
                return Ok("stream ended".into());
            }
            Event::Frame(_) => {}
            other => return Err(format!("{other:?}")),
        }
    }
}

/// A DATA frame of exactly one byte (the flow-control cases).
async fn one_byte_data(c: &mut Conn) -> Verdict {
    frame_of(c, DATA, true, |f| f.payload.len() == 1).await
}

/// The 146 cases: (id, description), ids as h2spec numbers them.
const CASES: &[(&str, &str)] = &[
    ("generic/1/1", "Sends a client connection preface"),
    ("generic/2/1", "Sends a PRIORITY frame on idle stream"),
    ("generic/2/2", "Sends a WINDOW_UPDATE frame on half-closed (remote) stream"),
    ("generic/2/3", "Sends a PRIORITY frame on half-closed (remote) stream"),
    ("generic/2/4", "Sends a RST_STREAM frame on half-closed (remote) stream"),
    ("generic/2/5", "Sends a PRIORITY frame on closed stream"),
    ("generic/3.1/1", "Sends a DATA frame"),
    ("generic/3.1/2", "Sends multiple DATA frames"),
    ("generic/3.1/3", "Sends a DATA frame with padding"),
    ("generic/3.2/1", "Sends a HEADERS frame"),
    ("generic/3.2/2", "Sends a HEADERS frame with padding"),
    ("generic/3.2/3", "Sends a HEADERS frame with priority"),
    ("generic/3.3/1", "Sends a PRIORITY frame with priority 1"),
    ("generic/3.3/2", "Sends a PRIORITY frame with priority 256"),
    ("generic/3.3/3", "Sends a PRIORITY frame with stream dependency"),
    ("generic/3.3/4", "Sends a PRIORITY frame with exclusive"),
    (
        "generic/3.3/5",
        "Sends a PRIORITY frame for an idle stream, then a HEADERS frame for a lower stream ID",
    ),
    ("generic/3.4/1", "Sends a RST_STREAM frame"),
    ("generic/3.5/1", "Sends a SETTINGS frame"),
    ("generic/3.7/1", "Sends a PING frame"),
    ("generic/3.8/1", "Sends a GOAWAY frame"),
    ("generic/3.9/1", "Sends a WINDOW_UPDATE frame with stream ID 0"),
    ("generic/3.9/2", "Sends a WINDOW_UPDATE frame with stream ID 1"),
    ("generic/3.10/1", "Sends a CONTINUATION frame"),
    ("generic/3.10/2", "Sends multiple CONTINUATION frames"),
    ("generic/4/1", "Sends a GET request"),
    ("generic/4/2", "Sends a HEAD request"),
    ("generic/4/3", "Sends a POST request"),
    ("generic/4/4", "Sends a POST request with trailers"),
    ("generic/5/1", "Sends a indexed header field representation"),
    ("generic/5/2", "Sends a literal header field with incremental indexing - indexed name"),
    (
        "generic/5/3",
        "Sends a literal header field with incremental indexing - indexed name (with Huffman coding)",
    ),
    ("generic/5/4", "Sends a literal header field with incremental indexing - new name"),
    (
        "generic/5/5",
        "Sends a literal header field with incremental indexing - new name (with Huffman coding)",
    ),
    ("generic/5/6", "Sends a literal header field without indexing - indexed name"),
    ("generic/5/7", "Sends a literal header field without indexing - indexed name (with Huffman coding)"),
    ("generic/5/8", "Sends a literal header field without indexing - new name"),
    ("generic/5/9", "Sends a literal header field without indexing - new name (huffman encoded)"),
    ("generic/5/10", "Sends a literal header field never indexed - indexed name"),
    ("generic/5/11", "Sends a literal header field never indexed - indexed name (huffman encoded)"),
    ("generic/5/12", "Sends a literal header field never indexed - new name"),
    ("generic/5/13", "Sends a literal header field never indexed - new name (huffman encoded)"),
    ("generic/5/14", "Sends a dynamic table size update"),
    ("generic/5/15", "Sends multiple dynamic table size update"),
    ("http2/3.5/1", "Sends client connection preface"),
    ("http2/3.5/2", "Sends invalid connection preface"),
    ("http2/4.1/1", "Sends a frame with unknown type"),
    ("http2/4.1/2", "Sends a frame with undefined flag"),
    ("http2/4.1/3", "Sends a frame with reserved field bit"),
    ("http2/4.2/1", "Sends a DATA frame with 2^14 octets in length"),
    ("http2/4.2/2", "Sends a large size DATA frame that exceeds the SETTINGS_MAX_FRAME_SIZE"),
    ("http2/4.2/3", "Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE"),
    ("http2/4.3/1", "Sends invalid header block fragment"),
    ("http2/4.3/2", "Sends a PRIORITY frame while sending the header blocks"),
    ("http2/4.3/3", "Sends a HEADERS frame to another stream while sending the header blocks"),
    ("http2/5.1/1", "idle: Sends a DATA frame"),
    ("http2/5.1/2", "idle: Sends a RST_STREAM frame"),
    ("http2/5.1/3", "idle: Sends a WINDOW_UPDATE frame"),
    ("http2/5.1/4", "idle: Sends a CONTINUATION frame"),
    ("http2/5.1/5", "half closed (remote): Sends a DATA frame"),
    ("http2/5.1/6", "half closed (remote): Sends a HEADERS frame"),
    ("http2/5.1/7", "half closed (remote): Sends a CONTINUATION frame"),
    ("http2/5.1/8", "closed: Sends a DATA frame after sending RST_STREAM frame"),
    ("http2/5.1/9", "closed: Sends a HEADERS frame after sending RST_STREAM frame"),
    ("http2/5.1/10", "closed: Sends a CONTINUATION frame after sending RST_STREAM frame"),
    ("http2/5.1/11", "closed: Sends a DATA frame"),
    ("http2/5.1/12", "closed: Sends a HEADERS frame"),
    ("http2/5.1/13", "closed: Sends a CONTINUATION frame"),
    ("http2/5.1.1/1", "Sends even-numbered stream identifier"),
    ("http2/5.1.1/2", "Sends stream identifier that is numerically smaller than previous"),
    ("http2/5.1.1/3", "Sends HEADERS frame with the stream which is in half-closed (remote) state"),
    (
        "http2/5.1.2/1",
        "Sends HEADERS frames that causes their advertised concurrent stream limit to be exceeded",
    ),
    ("http2/5.3.1/1", "Sends HEADERS frame that depends on itself"),
    ("http2/5.3.1/2", "Sends PRIORITY frame that depend on itself"),
    ("http2/5.4.1/1", "Sends an invalid PING frame for connection close"),
    ("http2/5.5/1", "Sends an unknown extension frame"),
    ("http2/5.5/2", "Sends an unknown extension frame in the middle of a header block"),
    ("http2/6.1/1", "Sends a DATA frame with 0x0 stream identifier"),
    (
        "http2/6.1/2",
        "Sends a DATA frame on the stream that is not in \"open\" or \"half-closed (local)\" state",
    ),
    ("http2/6.1/3", "Sends a DATA frame with invalid pad length"),
    ("http2/6.2/1", "Sends a HEADERS frame without the END_HEADERS flag, and a PRIORITY frame"),
    ("http2/6.2/2", "Sends a HEADERS frame to another stream while sending a HEADERS frame"),
    ("http2/6.2/3", "Sends a HEADERS frame with 0x0 stream identifier"),
    ("http2/6.2/4", "Sends a HEADERS frame with invalid pad length"),
    ("http2/6.3/1", "Sends a PRIORITY frame with 0x0 stream identifier"),
    ("http2/6.3/2", "Sends a PRIORITY frame with a length other than 5 octets"),
    ("http2/6.4/1", "Sends a RST_STREAM frame with 0x0 stream identifier"),
    ("http2/6.4/2", "Sends a RST_STREAM frame on a idle stream"),
    ("http2/6.4/3", "Sends a RST_STREAM frame with a length other than 4 octets"),
    ("http2/6.5/1", "Sends a SETTINGS frame with ACK flag and payload"),
    ("http2/6.5/2", "Sends a SETTINGS frame with a stream identifier other than 0x0"),
    ("http2/6.5/3", "Sends a SETTINGS frame with a length other than a multiple of 6 octets"),
    ("http2/6.5.2/1", "SETTINGS_ENABLE_PUSH (0x2): Sends the value other than 0 or 1"),
    (
        "http2/6.5.2/2",
        "SETTINGS_INITIAL_WINDOW_SIZE (0x4): Sends the value above the maximum flow control window size",
    ),
    ("http2/6.5.2/3", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value below the initial value"),
    ("http2/6.5.2/4", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value above the maximum allowed frame size"),
    ("http2/6.5.2/5", "Sends a SETTINGS frame with unknown identifier"),
    ("http2/6.5.3/1", "Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE"),
    ("http2/6.5.3/2", "Sends a SETTINGS frame without ACK flag"),
    ("http2/6.7/1", "Sends a PING frame"),
    ("http2/6.7/2", "Sends a PING frame with ACK"),
    ("http2/6.7/3", "Sends a PING frame with a stream identifier field value other than 0x0"),
    ("http2/6.7/4", "Sends a PING frame with a length field value other than 8"),
    ("http2/6.8/1", "Sends a GOAWAY frame with a stream identifier other than 0x0"),
    ("http2/6.9/1", "Sends a WINDOW_UPDATE frame with a flow control window increment of 0"),
    ("http2/6.9/2", "Sends a WINDOW_UPDATE frame with a flow control window increment of 0 on a stream"),
    ("http2/6.9/3", "Sends a WINDOW_UPDATE frame with a length other than 4 octets"),
    ("http2/6.9.1/1", "Sends SETTINGS frame to set the initial window size to 1 and sends HEADERS frame"),
    (
        "http2/6.9.1/2",
        "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above 2^31-1",
    ),
    (
        "http2/6.9.1/3",
        "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above 2^31-1 on a stream",
    ),
    ("http2/6.9.2/1", "Changes SETTINGS_INITIAL_WINDOW_SIZE after sending HEADERS frame"),
    ("http2/6.9.2/2", "Sends a SETTINGS frame for window size to be negative"),
    (
        "http2/6.9.2/3",
        "Sends a SETTINGS_INITIAL_WINDOW_SIZE settings with an exceeded maximum window size value",
    ),
    ("http2/6.10/1", "Sends multiple CONTINUATION frames preceded by a HEADERS frame"),
    ("http2/6.10/2", "Sends a CONTINUATION frame followed by any frame other than CONTINUATION"),
    ("http2/6.10/3", "Sends a CONTINUATION frame with 0x0 stream identifier"),
    ("http2/6.10/4", "Sends a CONTINUATION frame preceded by a HEADERS frame with END_HEADERS flag"),
    ("http2/6.10/5", "Sends a CONTINUATION frame preceded by a CONTINUATION frame with END_HEADERS flag"),
    ("http2/6.10/6", "Sends a CONTINUATION frame preceded by a DATA frame"),
    ("http2/7/1", "Sends a GOAWAY frame with unknown error code"),
    ("http2/7/2", "Sends a RST_STREAM frame with unknown error code"),
    ("http2/8.1/1", "Sends a second HEADERS frame without the END_STREAM flag"),
    ("http2/8.1.2/1", "Sends a HEADERS frame that contains the header field name in uppercase letters"),
    ("http2/8.1.2.1/1", "Sends a HEADERS frame that contains a unknown pseudo-header field"),
    ("http2/8.1.2.1/2", "Sends a HEADERS frame that contains the pseudo-header field defined for response"),
    ("http2/8.1.2.1/3", "Sends a HEADERS frame that contains a pseudo-header field as trailers"),
    (
        "http2/8.1.2.1/4",
        "Sends a HEADERS frame that contains a pseudo-header field that appears after a regular header field",
    ),
    ("http2/8.1.2.2/1", "Sends a HEADERS frame that contains the connection-specific header field"),
    (
        "http2/8.1.2.2/2",
        "Sends a HEADERS frame that contains the TE header field with any value other than \"trailers\"",
    ),
    ("http2/8.1.2.3/1", "Sends a HEADERS frame with empty \":path\" pseudo-header field"),
    ("http2/8.1.2.3/2", "Sends a HEADERS frame that omits \":method\" pseudo-header field"),
    ("http2/8.1.2.3/3", "Sends a HEADERS frame that omits \":scheme\" pseudo-header field"),
    ("http2/8.1.2.3/4", "Sends a HEADERS frame that omits \":path\" pseudo-header field"),
    ("http2/8.1.2.3/5", "Sends a HEADERS frame with duplicated \":method\" pseudo-header field"),
    ("http2/8.1.2.3/6", "Sends a HEADERS frame with duplicated \":scheme\" pseudo-header field"),
    ("http2/8.1.2.3/7", "Sends a HEADERS frame with duplicated \":path\" pseudo-header field"),
    (
        "http2/8.1.2.6/1",
        "Sends a HEADERS frame with the \"content-length\" header field which does not equal the DATA frame payload length",
    ),
    (
        "http2/8.1.2.6/2",
        "Sends a HEADERS frame with the \"content-length\" header field which does not equal the sum of the multiple DATA frames payload length",
    ),
    ("http2/8.2/1", "Sends a PUSH_PROMISE frame"),
    ("hpack/2.3.3/1", "Sends a header field representation with invalid index"),
    ("hpack/4.2/1", "Sends a dynamic table size update at the end of header block"),
    ("hpack/5.2/1", "Sends a Huffman-encoded string literal representation with padding longer than 7 bits"),
    ("hpack/5.2/2", "Sends a Huffman-encoded string literal representation padded by zero"),
    ("hpack/5.2/3", "Sends a Huffman-encoded string literal representation containing the EOS symbol"),
    ("hpack/6.1/1", "Sends a indexed header field representation with index 0"),
    ("hpack/6.3/1", "Sends a dynamic table size update larger than the value of SETTINGS_HEADER_TABLE_SIZE"),
];

/// Pseudo-fields for the 8.1.2.3 cases, in h2spec's order.
fn fields<'a>(list: &[(&'a str, &'a str)]) -> Vec<u8> {
    let fields: Vec<(&[u8], &[u8])> = list.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
    encode(&fields)
}

/// Runs one case on `c` (already past h2spec's handshake unless the case
/// is one of the two that send their own preface).
async fn run(id: &str, c: &mut Conn) -> Verdict {
    let zero = [0u8; 8];
    let h2spec = *b"h2spec\0\0";
    let get = common("GET");
    let post = common("POST");
    match id {
        "generic/1/1" | "http2/3.5/1" => {
            c.send(PREFACE).await;
            c.send(&settings(&[(4, 65_535)])).await;
            frame_of(c, SETTINGS, id == "generic/1/1", |f| f.flags & ACK == 0).await
        }
        "http2/3.5/2" => {
            c.send(b"INVALID CONNECTION PREFACE\r\n\r\n").await;
            closed(c).await
        }
        "generic/2/1" => {
            c.send(&priority(1, 0, false, 255)).await;
            c.send(&ping(false, &zero)).await;
            ping_ack(c, &zero).await
        }
        "generic/2/2" | "generic/2/3" => {
            c.send(&settings(&[(4, 0)])).await;
            c.send(&headers(1, true, true, &get)).await;
            if id == "generic/2/3" {
                c.send(&priority(1, 0, false, 255)).await;
            }
            c.send(&window_update(1, 1)).await;
            event(c, DATA).await
        }
        "generic/2/4" => {
            c.send(&headers(1, true, true, &get)).await;
            c.send(&rst(1, CANCEL)).await;
            c.send(&ping(false, &zero)).await;
            ping_or_close(c, &zero).await
        }
        "generic/2/5" => {
            c.send(&headers(1, true, true, &get)).await;
            stream_closed(c).await?;
            c.send(&priority(1, 0, false, 255)).await;
            c.send(&ping(false, &zero)).await;
            ping_ack(c, &zero).await
        }
        "generic/3.1/1" | "generic/4/3" => {
            c.send(&headers(1, false, true, &post)).await;
            c.send(&data(1, true, b"test")).await;
            response(c, 1).await
        }
        "generic/3.1/2" => {
            c.send(&headers(1, false, true, &post)).await;
            c.send(&data(1, false, b"test")).await;
            c.send(&data(1, true, b"test")).await;
            response(c, 1).await
        }
        "generic/3.1/3" => {
            c.send(&headers(1, false, true, &post)).await;
            let mut payload = vec![6u8];
            payload.extend_from_slice(b"testpadded");
            c.send(&frame(DATA, END_STREAM | PADDED, 1, &payload)).await;
            response(c, 1).await
        }
        "generic/3.2/1" | "generic/4/1" => {
            c.send(&headers(1, true, true, &get)).await;
            response(c, 1).await
        }
        "generic/3.2/2" => {
            let mut payload = vec![8u8];
            payload.extend_from_slice(&get);
            payload.extend_from_slice(&[0; 8]);
            c.send(&frame(HEADERS, END_STREAM | END_HEADERS | PADDED, 1, &payload)).await;
            response(c, 1).await
        }
        "generic/3.2/3" => {
            let mut payload = priority_fields(0, false, 255);
            payload.extend_from_slice(&get);
            c.send(&frame(HEADERS, END_STREAM | END_HEADERS | PRIORITY_FLAG, 1, &payload)).await;
            response(c, 1).await
        }
        "generic/3.3/1" | "generic/3.3/2" | "generic/3.3/3" | "generic/3.3/4" | "generic/3.3/5" => {
            let p = match id {
                "generic/3.3/1" => priority(1, 0, false, 0),
                "generic/3.3/2" => priority(1, 0, false, 255),
                "generic/3.3/3" => priority(3, 1, false, 0),
                "generic/3.3/4" => priority(1, 0, true, 0),
                _ => priority(3, 0, false, 255),
            };
            c.send(&p).await;
            c.send(&headers(1, true, true, &get)).await;
            response(c, 1).await
        }
        "generic/3.4/1" => {
            c.send(&headers(1, false, true, &get)).await;
            c.send(&rst(1, CANCEL)).await;
            c.send(&ping(false, &zero)).await;
            ping_or_close(c, &zero).await
        }
        "generic/3.5/1" => {
            c.send(&settings(&[(1, 4096), (2, 1), (3, 100), (4, 65_535), (5, 16_384), (6, 100)])).await;
            frame_of(c, SETTINGS, true, |f| f.flags & ACK != 0).await
        }
        "generic/3.7/1" | "http2/6.7/1" => {
            c.send(&ping(false, &h2spec)).await;
            ping_ack(c, &h2spec).await
        }
        "generic/3.8/1" => {
            c.send(&goaway(0, NO_ERROR, b"h2spec")).await;
            closed(c).await
        }
        "generic/3.9/1" => {
            c.send(&window_update(0, 1)).await;
            c.send(&ping(false, &zero)).await;
            event(c, PING).await
        }
        "generic/3.9/2" => {
            c.send(&headers(1, true, true, &get)).await;
            c.send(&window_update(1, 1)).await;
            event(c, HEADERS).await
        }
        "generic/3.10/1" => {
            c.send(&headers(1, true, false, &get[..5])).await;
            c.send(&continuation(1, true, &get[5..])).await;
            frame_of(c, HEADERS, true, |f| f.stream == 1).await
        }
        "generic/3.10/2" => {
            c.send(&headers(1, true, false, &get[..5])).await;
            c.send(&continuation(1, false, &get[5..10])).await;
            c.send(&continuation(1, true, &get[10..])).await;
            frame_of(c, HEADERS, true, |f| f.stream == 1).await
        }
        "generic/4/2" => {
            c.send(&headers(1, true, true, &common("HEAD"))).await;
            response(c, 1).await
        }
        "generic/4/4" => {
            let block = request("POST", HOST, "/", &[("trailer", "x-test")]);
            c.send(&headers(1, false, true, &block)).await;
            c.send(&data(1, false, b"test")).await;
            c.send(&headers(1, true, true, &encode(&[(b"x-test", b"ok")]))).await;
            response(c, 1).await
        }
        "generic/5/1" | "generic/5/2" | "generic/5/3" | "generic/5/4" | "generic/5/5" | "generic/5/6"
        | "generic/5/7" | "generic/5/8" | "generic/5/9" | "generic/5/10" | "generic/5/11"
        | "generic/5/12" | "generic/5/13" => {
            let rep: &[u8] = match id {
                "generic/5/1" => b"\xba",
                "generic/5/2" => b"\x40\x87\xb5\x05\xb1\x61\xcc\x5a\x93\x84\x9c\x48\xac\xa4",
                "generic/5/3" => {
                    b"\x40\x0a\x75\x73\x65\x72\x2d\x61\x67\x65\x6e\x74\x06\x68\x32\x73\x70\x65\x63"
                }
                "generic/5/4" => b"\x40\x06\x78\x2d\x74\x65\x73\x74\x06\x68\x32\x73\x70\x65\x63",
                "generic/5/5" => b"\x40\x85\xf2\xb2\x4a\x84\xff\x84\x9c\x48\xac\xa4",
                "generic/5/6" => {
                    b"\x00\x0a\x75\x73\x65\x72\x2d\x61\x67\x65\x6e\x74\x06\x68\x32\x73\x70\x65\x63"
                }
                "generic/5/7" => b"\x00\x87\xb5\x05\xb1\x61\xcc\x5a\x93\x84\x9c\x48\xac\xa4",
                "generic/5/8" => b"\x00\x06\x78\x2d\x74\x65\x73\x74\x06\x68\x32\x73\x70\x65\x63",
                "generic/5/9" => b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x9c\x48\xac\xa4",
                "generic/5/10" => {
                    b"\x10\x0a\x75\x73\x65\x72\x2d\x61\x67\x65\x6e\x74\x06\x68\x32\x73\x70\x65\x63"
                }
                "generic/5/11" => b"\x10\x87\xb5\x05\xb1\x61\xcc\x5a\x93\x84\x9c\x48\xac\xa4",
                _ => b"\x10\x85\xf2\xb2\x4a\x84\xff\x84\x9c\x48\xac\xa4",
            };
            c.send(&headers(1, true, true, &with_rep(rep))).await;
            response(c, 1).await
        }
        "generic/5/14" | "generic/5/15" => {
            let update: &[u8] = if id == "generic/5/14" { b"\x20" } else { b"\x20\x3f\xe1\x1f" };
            c.send(&headers(1, true, true, &rep_first(update))).await;
            response(c, 1).await
        }
        "http2/4.1/1" | "http2/5.5/1" => {
            c.send(b"\x00\x00\x08\x16\x00\x00\x00\x00\x00").await;
            c.send(&[0; 8]).await;
            c.send(&ping(false, &zero)).await;
            event(c, PING).await
        }
        "http2/4.1/2" => {
            c.send(b"\x00\x00\x08\x06\x16\x00\x00\x00\x00").await;
            c.send(&[0; 8]).await;
            event(c, PING).await
        }
        "http2/4.1/3" => {
            c.send(b"\x00\x00\x08\x06\x16\x80\x00\x00\x00").await;
            c.send(&[0; 8]).await;
            event(c, PING).await
        }
        "http2/4.2/1" => {
            c.send(&headers(1, false, true, &post)).await;
            c.send(&data(1, true, &vec![b'x'; c.max_frame_size])).await;
            event(c, HEADERS).await
        }
        "http2/4.2/2" => {
            c.send(&headers(1, false, true, &post)).await;
            c.send(&data(1, true, &vec![b'x'; c.max_frame_size + 1])).await;
            stream_error(c, &[FRAME_SIZE_ERROR]).await
        }
        "http2/4.2/3" => {
            let mut block = get.clone();
            block.extend(dummy(5));
            c.send(&headers(1, true, true, &block)).await;
            conn_error(c, &[FRAME_SIZE_ERROR]).await
        }
        "http2/4.3/1" => {
            c.send(b"\x00\x00\x01\x01\x05\x00\x00\x00\x01\x40").await;
            conn_error(c, &[COMPRESSION_ERROR]).await
        }
        "http2/4.3/2" | "http2/6.2/1" => {
            c.send(&headers(1, false, false, &get)).await;
            c.send(&priority(1, 0, false, 255)).await;
            c.send(&continuation(1, true, &dummy(1))).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/4.3/3" | "http2/6.2/2" => {
            c.send(&headers(1, false, false, &get)).await;
            c.send(&headers(3, true, true, &get)).await;
            c.send(&continuation(1, true, &dummy(1))).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/5.1/1" => {
            c.send(&data(1, true, b"test")).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/5.1/2" | "http2/6.4/2" => {
            c.send(&rst(1, CANCEL)).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/5.1/3" => {
            c.send(&window_update(1, 100)).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/5.1/4" => {
            c.send(&continuation(1, true, &get)).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/5.1/5" => {
            c.send(&headers(1, true, true, &get)).await;
            c.send(&data(1, true, b"test")).await;
            stream_error(c, &[STREAM_CLOSED]).await
        }
        "http2/6.1/2" => {
            c.send(&headers(1, true, true, &post)).await;
            c.send(&data(1, true, b"test")).await;
            stream_error(c, &[STREAM_CLOSED]).await
        }
        "http2/5.1/6" => {
            c.send(&headers(1, true, true, &get)).await;
            c.send(&headers(1, true, true, &get)).await;
            stream_error(c, &[STREAM_CLOSED]).await
        }
        "http2/5.1/7" => {
            c.send(&headers(1, true, true, &get)).await;
            c.send(&continuation(1, true, &get)).await;
            stream_error(c, &[STREAM_CLOSED, PROTOCOL_ERROR]).await
        }
        "http2/5.1/8" => {
            c.send(&headers(1, false, true, &get)).await;
            c.send(&rst(1, CANCEL)).await;
            c.send(&data(1, true, b"test")).await;
            stream_error(c, &[STREAM_CLOSED]).await
        }
        "http2/5.1/9" => {
            c.send(&headers(1, false, true, &get)).await;
            c.send(&rst(1, CANCEL)).await;
            c.send(&headers(1, true, true, &get)).await;
            stream_error(c, &[STREAM_CLOSED]).await
        }
        "http2/5.1/10" => {
            c.send(&headers(1, false, true, &get)).await;
            c.send(&rst(1, CANCEL)).await;
            c.send(&continuation(1, true, &dummy(1))).await;
            stream_error(c, &[STREAM_CLOSED, PROTOCOL_ERROR]).await
        }
        "http2/5.1/11" | "http2/5.1/12" | "http2/5.1/13" => {
            c.send(&headers(1, true, true, &get)).await;
            stream_closed(c).await?;
            match id {
                "http2/5.1/11" => {
                    c.send(&data(1, true, b"test")).await;
                    conn_error(c, &[STREAM_CLOSED]).await
                }
                "http2/5.1/12" => {
                    c.send(&headers(1, true, true, &get)).await;
                    conn_error(c, &[STREAM_CLOSED]).await
                }
                _ => {
                    c.send(&continuation(1, true, &dummy(1))).await;
                    conn_error(c, &[STREAM_CLOSED, PROTOCOL_ERROR]).await
                }
            }
        }
        "http2/5.1.1/1" => {
            c.send(&headers(2, true, true, &get)).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/5.1.1/2" => {
            c.send(&headers(5, true, true, &get)).await;
            c.send(&headers(3, true, true, &get)).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/5.1.1/3" => {
            c.send(&headers(5, true, true, &get)).await;
            c.send(&headers(5, true, true, &get)).await;
            stream_error(c, &[STREAM_CLOSED]).await
        }
        "http2/5.1.2/1" => {
            let Some(&(_, max)) = c.settings.iter().find(|(id, _)| *id == 3) else {
                return Err("SETTINGS_MAX_CONCURRENT_STREAMS not advertised (h2spec skips)".into());
            };
            c.send(&settings(&[(4, 0)])).await;
            let mut all = Vec::new();
            for i in 0..=max {
                all.extend(headers(1 + 2 * i, true, true, &get));
            }
            c.send(&all).await;
            stream_error(c, &[PROTOCOL_ERROR, REFUSED_STREAM]).await
        }
        "http2/5.3.1/1" => {
            let mut payload = priority_fields(1, false, 255);
            payload.extend_from_slice(&get);
            c.send(&frame(HEADERS, END_STREAM | END_HEADERS | PRIORITY_FLAG, 1, &payload)).await;
            stream_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/5.3.1/2" => {
            c.send(&priority(1, 1, false, 255)).await;
            stream_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/5.4.1/1" => {
            c.send(b"\x00\x00\x08\x06\x00\x00\x00\x00\x03").await;
            c.send(&[0; 8]).await;
            closed(c).await
        }
        "http2/5.5/2" => {
            c.send(&headers(1, true, false, &get)).await;
            c.send(b"\x00\x00\x08\x16\x00\x00\x00\x00\x00").await;
            c.send(&[0; 8]).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.1/1" => {
            c.send(&data(0, true, b"test")).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.1/3" => {
            c.send(&headers(1, false, true, &request("POST", HOST, "/", &[("content-length", "4")]))).await;
            c.send(b"\x00\x00\x05\x00\x09\x00\x00\x00\x01").await;
            c.send(b"\x06\x54\x65\x73\x74").await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.2/3" => {
            c.send(&headers(0, true, true, &get)).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.2/4" => {
            let mut out = vec![0, 0, (get.len() + 1) as u8, HEADERS, 0x0d, 0, 0, 0, 1];
            out.push((get.len() + 2) as u8);
            out.extend_from_slice(&get);
            c.send(&out).await;
            stream_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.3/1" => {
            c.send(&priority(0, 0, false, 255)).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.3/2" => {
            c.send(&headers(1, true, true, &get)).await;
            c.send(b"\x00\x00\x04\x02\x00\x00\x00\x00\x01").await;
            c.send(b"\x80\x00\x00\x01").await;
            stream_error(c, &[FRAME_SIZE_ERROR]).await
        }
        "http2/6.4/1" => {
            c.send(&rst(0, CANCEL)).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.4/3" => {
            c.send(&headers(1, true, true, &get)).await;
            c.send(b"\x00\x00\x03\x03\x00\x00\x00\x00\x01").await;
            c.send(b"\x00\x00\x00").await;
            stream_error(c, &[FRAME_SIZE_ERROR]).await
        }
        "http2/6.5/1" => {
            c.send(b"\x00\x00\x01\x04\x01\x00\x00\x00\x00").await;
            c.send(b"\x00").await;
            conn_error(c, &[FRAME_SIZE_ERROR]).await
        }
        "http2/6.5/2" => {
            c.send(b"\x00\x00\x06\x04\x00\x00\x00\x00\x01").await;
            c.send(b"\x00\x03\x00\x00\x00\x64").await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.5/3" => {
            c.send(b"\x00\x00\x09\x04\x00\x00\x00\x00\x00").await;
            c.send(b"\x00\x03\x00\x00\x00\x64\x00\x02").await;
            stream_error(c, &[PROTOCOL_ERROR, FRAME_SIZE_ERROR]).await
        }
        "http2/6.5.2/1" => {
            c.send(&settings(&[(2, 2)])).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.5.2/2" => {
            c.send(&settings(&[(4, 2_147_483_648)])).await;
            conn_error(c, &[FLOW_CONTROL_ERROR]).await
        }
        "http2/6.5.2/3" => {
            c.send(&settings(&[(5, 16_383)])).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.5.2/4" => {
            c.send(&settings(&[(5, 16_777_216)])).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.5.2/5" => {
            c.send(&settings(&[(0xff, 1)])).await;
            c.send(&ping(false, &zero)).await;
            event(c, PING).await
        }
        "http2/6.5.3/1" => {
            c.send(&settings(&[(4, 100), (4, 1)])).await;
            event(c, SETTINGS).await?;
            c.send(&headers(1, true, true, &get)).await;
            one_byte_data(c).await
        }
        "http2/6.5.3/2" => {
            c.send(&settings(&[(2, 0)])).await;
            frame_of(c, SETTINGS, true, |f| f.flags & ACK != 0).await
        }
        "http2/6.7/2" => {
            let invalid = *b"invalid\0";
            c.send(&ping(true, &invalid)).await;
            c.send(&ping(false, &h2spec)).await;
            loop {
                match c.next(H2SPEC_WAIT).await {
                    Event::Frame(f) if f.kind == PING && f.payload == invalid => {
                        return Err("answered a PING ACK".into());
                    }
                    Event::Frame(f) if f.kind == PING && f.flags & ACK != 0 && f.payload == h2spec => {
                        return Ok("only the real PING answered".into());
                    }
                    Event::Frame(_) => {}
                    other => return Err(format!("{other:?}")),
                }
            }
        }
        "http2/6.7/3" => {
            c.send(b"\x00\x00\x08\x06\x00\x00\x00\x00\x01").await;
            c.send(&[0; 8]).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.7/4" => {
            c.send(b"\x00\x00\x06\x06\x00\x00\x00\x00\x01").await;
            c.send(&[0; 6]).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.8/1" => {
            c.send(b"\x00\x00\x08\x07\x00\x00\x00\x00\x01").await;
            c.send(&[0; 8]).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.9/1" => {
            c.send(&window_update(0, 0)).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.9/2" => {
            c.send(&headers(1, false, true, &get)).await;
            c.send(&window_update(1, 0)).await;
            stream_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.9/3" => {
            c.send(b"\x00\x00\x03\x08\x00\x00\x00\x00\x00").await;
            c.send(b"\x00\x00\x01").await;
            conn_error(c, &[FRAME_SIZE_ERROR]).await
        }
        "http2/6.9.1/1" => {
            c.send(&settings(&[(4, 1)])).await;
            event(c, SETTINGS).await?;
            c.send(&headers(1, true, true, &get)).await;
            one_byte_data(c).await
        }
        "http2/6.9.1/2" => {
            c.send(&window_update(0, 2_147_483_647)).await;
            c.send(&window_update(0, 2_147_483_647)).await;
            frame_of(c, GOAWAY, true, |f| f.code() == Some(FLOW_CONTROL_ERROR)).await
        }
        "http2/6.9.1/3" => {
            c.send(&headers(1, false, true, &get)).await;
            c.send(&window_update(1, 2_147_483_647)).await;
            c.send(&window_update(1, 2_147_483_647)).await;
            frame_of(c, RST_STREAM, true, |f| f.stream == 1 && f.code() == Some(FLOW_CONTROL_ERROR)).await
        }
        "http2/6.9.2/1" => {
            c.send(&settings(&[(4, 0)])).await;
            event(c, SETTINGS).await?;
            c.send(&headers(1, true, true, &get)).await;
            c.send(&settings(&[(4, 1)])).await;
            event(c, SETTINGS).await?;
            one_byte_data(c).await
        }
        "http2/6.9.2/2" => {
            c.send(&settings(&[(4, 3)])).await;
            event(c, SETTINGS).await?;
            c.send(&headers(1, true, true, &get)).await;
            event(c, DATA).await?;
            c.send(&settings(&[(4, 2)])).await;
            event(c, SETTINGS).await?;
            c.send(&window_update(1, 2)).await;
            one_byte_data(c).await
        }
        "http2/6.9.2/3" => {
            c.send(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00").await;
            c.send(b"\x00\x04\x80\x00\x00\x00").await;
            conn_error(c, &[FLOW_CONTROL_ERROR]).await
        }
        "http2/6.10/1" => {
            c.send(&headers(1, true, false, &get)).await;
            c.send(&continuation(1, false, &dummy(1))).await;
            c.send(&continuation(1, true, &dummy(1))).await;
            event(c, HEADERS).await
        }
        "http2/6.10/2" => {
            c.send(&headers(1, false, false, &post)).await;
            c.send(&continuation(1, false, &dummy(1))).await;
            c.send(&data(1, true, b"test")).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.10/3" => {
            c.send(&headers(1, true, false, &get)).await;
            c.send(&continuation(0, true, &dummy(1))).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.10/4" => {
            c.send(&headers(1, true, true, &get)).await;
            c.send(&continuation(1, true, &dummy(1))).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.10/5" => {
            c.send(&headers(1, true, false, &get)).await;
            c.send(&continuation(1, true, &dummy(1))).await;
            c.send(&continuation(1, true, &dummy(1))).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/6.10/6" => {
            c.send(&headers(1, false, false, &post)).await;
            c.send(&data(1, true, b"test")).await;
            c.send(&continuation(1, false, &dummy(1))).await;
            c.send(&continuation(0, true, &dummy(1))).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/7/1" => {
            c.send(&goaway(0, 0xff, b"")).await;
            closed(c).await
        }
        "http2/7/2" => {
            c.send(&headers(1, false, true, &post)).await;
            c.send(&rst(1, 0xff)).await;
            c.send(&ping(false, &zero)).await;
            event(c, PING).await
        }
        "http2/8.1/1" | "http2/8.1.2.1/3" => {
            c.send(&headers(1, false, true, &post)).await;
            c.send(&data(1, false, b"test")).await;
            let trailers = if id == "http2/8.1/1" {
                encode(&[(b"x-test", b"ok")])
            } else {
                encode(&[(b":method", b"POST")])
            };
            c.send(&headers(1, false, true, &trailers)).await;
            stream_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/8.1.2/1" | "http2/8.1.2.1/1" | "http2/8.1.2.1/2" | "http2/8.1.2.2/1" | "http2/8.1.2.2/2" => {
            let extra: &[(&str, &str)] = match id {
                "http2/8.1.2/1" => &[("X-TEST", "ok")],
                "http2/8.1.2.1/1" => &[(":test", "ok")],
                "http2/8.1.2.1/2" => &[(":status", "200")],
                "http2/8.1.2.2/1" => &[("connection", "keep-alive")],
                _ => &[("trailers", "test"), ("te", "trailers, deflate")],
            };
            c.send(&headers(1, true, true, &request("GET", HOST, "/", extra))).await;
            stream_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/8.1.2.1/4" => {
            let mut block = encode(&[(b"x-test", b"ok")]);
            block.extend(get.clone());
            c.send(&headers(1, true, true, &block)).await;
            stream_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/8.1.2.3/1" | "http2/8.1.2.3/2" | "http2/8.1.2.3/3" | "http2/8.1.2.3/4" | "http2/8.1.2.3/5"
        | "http2/8.1.2.3/6" | "http2/8.1.2.3/7" => {
            let (m, s, p, a) =
                ((":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", HOST));
            let block = match id {
                "http2/8.1.2.3/1" => fields(&[m, s, (":path", ""), a]),
                // h2spec drops the first of (scheme, path, authority) too.
                "http2/8.1.2.3/2" => fields(&[p, a]),
                "http2/8.1.2.3/3" => fields(&[m, p, a]),
                "http2/8.1.2.3/4" => fields(&[m, s, a]),
                "http2/8.1.2.3/5" => fields(&[m, s, p, a, m]),
                "http2/8.1.2.3/6" => fields(&[m, s, p, a, s]),
                _ => fields(&[m, s, p, a, (":method", "/")]),
            };
            c.send(&headers(1, true, true, &block)).await;
            stream_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/8.1.2.6/1" | "http2/8.1.2.6/2" => {
            c.send(&headers(1, false, true, &request("POST", HOST, "/", &[("content-length", "1")]))).await;
            if id == "http2/8.1.2.6/2" {
                c.send(&data(1, false, b"test")).await;
            }
            c.send(&data(1, true, b"test")).await;
            stream_error(c, &[PROTOCOL_ERROR]).await
        }
        "http2/8.2/1" => {
            let mut payload = 3u32.to_be_bytes().to_vec();
            payload.extend_from_slice(&get);
            c.send(&frame(PUSH_PROMISE, END_HEADERS, 1, &payload)).await;
            conn_error(c, &[PROTOCOL_ERROR]).await
        }
        "hpack/2.3.3/1" | "hpack/4.2/1" | "hpack/5.2/1" | "hpack/5.2/2" | "hpack/5.2/3" | "hpack/6.1/1" => {
            let rep: &[u8] = match id {
                "hpack/2.3.3/1" => b"\xfe",
                "hpack/4.2/1" => b"\x21",
                "hpack/5.2/1" => b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff",
                "hpack/5.2/2" => b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90",
                "hpack/5.2/3" => b"\x00\x85\xf2\xb2\x4a\x87\xff\xff\xff\xfd\x25\x42\x7f",
                _ => b"\x80",
            };
            c.send(&headers(1, true, true, &with_rep(rep))).await;
            conn_error(c, &[COMPRESSION_ERROR]).await
        }
        "hpack/6.3/1" => {
            let max = c.settings.iter().find(|(id, _)| *id == 1).map_or(4096, |(_, v)| *v);
            let mut rep = Vec::new();
            hpack_int(&mut rep, 0x20, 5, max as usize + 1);
            c.send(&headers(1, true, true, &rep_first(&rep))).await;
            conn_error(c, &[COMPRESSION_ERROR]).await
        }
        other => Err(format!("no such case {other}")),
    }
}

/// The origin behind the proxy: `/` answers 200 with a plain-text body
/// long enough for the flow-control cases (h2spec skips them below 5
/// bytes; none is skipped here).
async fn conformance_origin() -> Origin {
    origin()
        .fallback_fn(|request| async move {
            use http_body_util::BodyExt as _;
            let _ = request.into_body().collect().await;
            http::Response::builder()
                .header("content-type", "text/plain")
                .body(consentry::body::full("hello from the h2spec origin\n"))
                .unwrap()
        })
        .run()
        .await
}

#[test]
fn h2spec_equivalent_conformance() {
    // The debug build's state machine for 146 cases wants more than a
    // test thread's 2 MiB of stack.
    let runner = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(16 << 20)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(conformance());
        })
        .unwrap();
    if let Err(panic) = runner.join() {
        std::panic::resume_unwind(panic);
    }
}

async fn conformance() {
    let cert = test_cert(&[HOST]);
    let origin = conformance_origin().await;
    let proxy = proxy().origin(&origin).https(&[&cert]).run().await;
    let addr = proxy.https.unwrap();
    assert_eq!(CASES.len(), 146);

    let mut passed = 0;
    let mut failed = Vec::new();
    for (id, desc) in CASES {
        let own_preface = matches!(*id, "generic/1/1" | "http2/3.5/1" | "http2/3.5/2");
        let verdict = tokio::time::timeout(Duration::from_secs(30), async {
            let mut conn = if own_preface {
                Conn::tls(addr, HOST, &cert.der).await
            } else {
                Conn::open(addr, HOST, &cert.der).await
            };
            // Boxed: the state machine of 146 arms is too big for a debug stack.
            Box::pin(run(id, &mut conn)).await
        })
        .await
        .unwrap_or_else(|_| Err("case hung for 30 s".into()));
        match verdict {
            Ok(seen) => {
                passed += 1;
                println!("PASS {id:<16} {desc} [{seen}]");
            }
            Err(why) => {
                println!("FAIL {id:<16} {desc} [{why}]");
                failed.push(format!("{id} {desc}: {why}"));
            }
        }
    }
    println!("h2spec-equivalent: {passed}/{} passed", CASES.len());
    // The proxy still serves after all of it.
    let mut conn = Conn::open(addr, HOST, &cert.der).await;
    conn.get(1, HOST).await;
    assert_eq!(conn.response(1).await.as_deref(), Ok("200"));
    assert!(passed >= 145, "{passed}/146 passed; failures: {failed:#?}");
}
