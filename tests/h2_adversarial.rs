//! Adversarial HTTP/2 over the TLS listener (issue 9): malformed requests
//! are reset and never reach the origin; floods of frames that ask for
//! nothing end in GOAWAY with CPU and memory bounded, and the proxy keeps
//! serving everyone else.

mod common;
mod h2wire;

use std::time::Duration;

use common::*;
use h2wire::*;

struct Setup {
    proxy: Proxy,
    cert: TestCert,
    origin: Counting,
}

async fn setup() -> Setup {
    let cert = test_cert(&[HOST]);
    let origin = h2_counting_origin().await;
    let proxy = proxy().origin(&origin.origin).https(&[&cert]).run().await;
    Setup { proxy, cert, origin }
}

impl Setup {
    async fn conn(&self) -> Conn {
        Conn::open(self.proxy.https.unwrap(), HOST, &self.cert.der).await
    }
}

/// Malformed request heads: each must be reset (RST_STREAM
/// PROTOCOL_ERROR: a stream error, RFC 9113 §8.1.1, the connection goes on)
/// and the origin must see nothing. CR, LF, NUL and uppercase names were a
/// GOAWAY before h2 was patched (vendor/h2/README.consentry.md).
#[tokio::test]
async fn malformed_requests_are_reset_and_never_forwarded() {
    within(async {
        let s = setup().await;
        // The control: a well-formed request is forwarded (so a zero below
        // means refused, not "the origin is unreachable").
        let mut conn = s.conn().await;
        conn.get(1, HOST).await;
        assert_eq!(conn.response(1).await.as_deref(), Ok("200"));
        assert_eq!(s.origin.seen(), 1);

        let a: &[u8] = HOST.as_bytes();
        type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;
        let base = |path: &'static [u8], method: &'static [u8]| -> Fields<'static> {
            vec![
                (b":method", method),
                (b":scheme", b"https"),
                (b":authority", HOST.as_bytes()),
                (b":path", path),
            ]
        };
        let with = |extra: &[(&'static [u8], &'static [u8])]| {
            let mut f = base(b"/", b"GET");
            f.extend_from_slice(extra);
            f
        };
        let cases: Vec<(&str, Fields)> = vec![
            ("CR in a value", with(&[(b"x-a", b"1\rx-b: 2")])),
            ("LF in a value", with(&[(b"x-a", b"1\nx-b: 2")])),
            ("CRLF in a value", with(&[(b"cookie", b"a=1\r\nx-smuggled: 1")])),
            ("NUL in a value", with(&[(b"x-a", b"1\0")])),
            ("leading space", with(&[(b"x-a", b" 1")])),
            ("trailing tab", with(&[(b"x-a", b"1\t")])),
            ("uppercase name", with(&[(b"X-Upper", b"1")])),
            ("connection", with(&[(b"connection", b"keep-alive")])),
            ("keep-alive", with(&[(b"keep-alive", b"timeout=5")])),
            ("proxy-connection", with(&[(b"proxy-connection", b"keep-alive")])),
            ("transfer-encoding", with(&[(b"transfer-encoding", b"chunked")])),
            ("upgrade", with(&[(b"upgrade", b"websocket")])),
            ("te: gzip", with(&[(b"te", b"gzip")])),
            ("host differs from :authority", with(&[(b"host", b"evil.test")])),
            ("empty :path", base(b"", b"GET")),
            ("relative :path", base(b"index.html", b"GET")),
            ("absolute-form :path", base(b"http://evil.test/", b"GET")),
            ("* :path on GET", base(b"*", b"GET")),
            ("no :path", vec![(b":method", b"GET"), (b":scheme", b"https"), (b":authority", a)]),
            (
                "userinfo in :authority",
                vec![
                    (b":method", b"GET"),
                    (b":scheme", b"https"),
                    (b":authority", b"u:p@demo.test"),
                    (b":path", b"/"),
                ],
            ),
            ("space in :path", base(b"/a b", b"GET")),
            ("bad content-length", with(&[(b"content-length", b"+1")])),
        ];
        let mut failures = Vec::new();
        for (name, fields) in &cases {
            let mut conn = s.conn().await;
            conn.headers(1, &encode(fields), true).await;
            match conn.stream_error(1, &[PROTOCOL_ERROR]).await {
                Ok(how) if how.starts_with("RST_STREAM") && conn.alive().await => println!("{name}: {how}"),
                Ok(how) => failures.push(format!("{name}: {how}, not a stream reset on a live connection")),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        assert!(failures.is_empty(), "not reset: {failures:#?}");
        assert_eq!(s.origin.seen(), 1, "a malformed request reached the origin");
    })
    .await;
}

/// A literal field with incremental indexing (new name).
fn indexed_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x40);
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name);
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

/// A field that is not valid HTTP (CR in a value, an uppercase name) resets
/// its stream only, and still enters the HPACK dynamic table: later streams
/// that index the entries added alongside it decode as the client meant.
#[tokio::test]
async fn an_invalid_field_resets_its_stream_and_the_hpack_table_stays_in_sync() {
    within(async {
        let s = setup().await;
        let mut conn = s.conn().await;
        let get = request("GET", HOST, "/", &[]);

        // Stream 1: `x-good: 1` then `x: a\rb`, both indexed. Dynamic
        // table afterwards: 62 `x: a\rb`, 63 `x-good: 1`.
        let mut block = get.clone();
        indexed_literal(&mut block, b"x-good", b"1");
        indexed_literal(&mut block, b"x", b"a\rb");
        conn.headers(1, &block, true).await;
        assert_eq!(conn.stream_error(1, &[PROTOCOL_ERROR]).await.as_deref(), Ok("RST_STREAM 0x1"));

        // Stream 3 indexes entry 63: only there if both were inserted.
        let mut block = get.clone();
        block.push(0x80 | 63);
        conn.headers(3, &block, true).await;
        assert_eq!(conn.response(3).await.as_deref(), Ok("200"));
        conn.stream_end(3).await.unwrap();

        // Stream 5 indexes the invalid entry (62): malformed again.
        let mut block = get.clone();
        block.push(0x80 | 62);
        conn.headers(5, &block, true).await;
        assert_eq!(conn.stream_error(5, &[PROTOCOL_ERROR]).await.as_deref(), Ok("RST_STREAM 0x1"));

        // Stream 7: an uppercase name (indexed: table 62 `X-Upper: 1`,
        // 63 `x: a\rb`, 64 `x-good: 1`).
        let mut block = get.clone();
        indexed_literal(&mut block, b"X-Upper", b"1");
        conn.headers(7, &block, true).await;
        assert_eq!(conn.stream_error(7, &[PROTOCOL_ERROR]).await.as_deref(), Ok("RST_STREAM 0x1"));

        // Stream 9: entry 64 is `x-good: 1` now.
        let mut block = get.clone();
        block.push(0x80 | 64);
        conn.headers(9, &block, true).await;
        assert_eq!(conn.response(9).await.as_deref(), Ok("200"));
        assert!(conn.alive().await);
        assert_eq!(s.origin.seen(), 2, "only streams 3 and 9 reached the origin");
    })
    .await;
}

/// A body whose DATA frames disagree with its content-length never reaches
/// the origin as a complete request.
#[tokio::test]
async fn content_length_mismatch_is_reset_and_never_complete_at_the_origin() {
    within(async {
        let s = setup().await;
        let post = |cl: &'static str| request("POST", HOST, "/upload", &[("content-length", cl)]);
        // Shorter than declared.
        let mut conn = s.conn().await;
        conn.headers(1, &post("10"), false).await;
        conn.frame(DATA, END_STREAM, 1, b"12345").await;
        conn.stream_error(1, &[PROTOCOL_ERROR]).await.unwrap();
        // Longer than declared, the declared length arriving first in a
        // frame of its own: the origin must not get those 3 bytes as a
        // complete body.
        let mut conn = s.conn().await;
        conn.headers(1, &post("3"), false).await;
        conn.frame(DATA, 0, 1, b"abc").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        conn.frame(DATA, END_STREAM, 1, b"d").await;
        conn.stream_error(1, &[PROTOCOL_ERROR]).await.unwrap();
        // Longer in one frame.
        let mut conn = s.conn().await;
        conn.headers(1, &post("3"), false).await;
        conn.frame(DATA, END_STREAM, 1, b"abcdef").await;
        conn.stream_error(1, &[PROTOCOL_ERROR]).await.unwrap();
        // END_STREAM on HEADERS with a non-zero content-length.
        let mut conn = s.conn().await;
        conn.headers(1, &post("4"), true).await;
        conn.stream_error(1, &[PROTOCOL_ERROR]).await.unwrap();

        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(s.origin.bodies.lock().unwrap().is_empty(), "a complete body: {:?}", s.origin.bodies);

        // The control: a matching length arrives whole.
        let mut conn = s.conn().await;
        conn.headers(1, &post("3"), false).await;
        conn.frame(DATA, END_STREAM, 1, b"abc").await;
        assert_eq!(conn.response(1).await.as_deref(), Ok("200"));
        assert_eq!(*s.origin.bodies.lock().unwrap(), vec![b"abc".to_vec()]);
    })
    .await;
}

/// This process's CPU time (user + system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 (1-based), 12 and 13 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Resident memory, from /proc/self/status.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends `flood` (all at once, as fast as TLS goes) and expects GOAWAY.
async fn flood_ends_in_goaway(s: &Setup, what: &str, flood: Vec<u8>) {
    let (cpu, rss) = (cpu_time(), rss_kib());
    let conn = s.conn().await;
    // Written from another task so a server that stops reading cannot
    // block the reader here.
    let (mut read, mut write) = tokio::io::split(conn.tls);
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        let _ = write.write_all(&flood).await;
        let _ = write.flush().await;
        write
    });
    // Read raw until GOAWAY or close; frames are parsed from the bytes.
    use tokio::io::AsyncReadExt as _;
    let mut bytes = Vec::new();
    let mut goaway = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut chunk = vec![0u8; 64 * 1024];
    'read: loop {
        match tokio::time::timeout_at(deadline, read.read(&mut chunk)).await {
            Err(_) => panic!("{what}: neither GOAWAY nor close within 30 s"),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
        }
        let mut at = 0;
        while bytes.len() >= at + 9 {
            let len = (usize::from(bytes[at]) << 16)
                | (usize::from(bytes[at + 1]) << 8)
                | usize::from(bytes[at + 2]);
            if bytes.len() < at + 9 + len {
                break;
            }
            if bytes[at + 3] == GOAWAY && len >= 8 {
                let p = &bytes[at + 9..at + 17];
                goaway = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
                break 'read;
            }
            at += 9 + len;
        }
    }
    writer.abort();
    let spent = cpu_time().saturating_sub(cpu);
    let grown = rss_kib().saturating_sub(rss);
    println!("{what}: GOAWAY {goaway:?}, {spent:?} CPU (whole test process), RSS +{grown} KiB");
    assert!(
        matches!(goaway, Some(ENHANCE_YOUR_CALM | PROTOCOL_ERROR)),
        "{what}: expected GOAWAY ENHANCE_YOUR_CALM, got {goaway:?}"
    );
    // Bounds, not speeds: the proxy must stop well before the flood does.
    assert!(spent < Duration::from_secs(20), "{what}: {spent:?} of CPU");
    assert!(grown < 128 * 1024, "{what}: RSS grew {grown} KiB");
}

#[tokio::test]
async fn floods_end_in_goaway_and_others_are_served() {
    within(async {
        let s = setup().await;
        let mut bystander = s.conn().await;
        const N: u32 = 20_000;

        let mut rapid_reset = Vec::new();
        for i in 0..N {
            let id = 2 * i + 1;
            rapid_reset.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &request("GET", HOST, "/", &[])));
            rapid_reset.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
        }
        flood_ends_in_goaway(&s, "HEADERS + RST_STREAM", rapid_reset).await;

        let mut empty_data = frame(HEADERS, END_HEADERS, 1, &request("POST", HOST, "/", &[]));
        for _ in 0..N {
            empty_data.extend(frame(DATA, 0, 1, &[]));
        }
        flood_ends_in_goaway(&s, "empty DATA", empty_data).await;

        // A header block that never ends: CONTINUATION frames, empty and
        // small, for ever.
        let mut continuation = frame(HEADERS, 0, 1, &request("GET", HOST, "/", &[]));
        for i in 0..N {
            let fragment: &[u8] = if i % 2 == 0 { &[] } else { &[0x00, 0x01, b'x', 0x00] };
            continuation.extend(frame(CONTINUATION, 0, 1, fragment));
        }
        flood_ends_in_goaway(&s, "CONTINUATION", continuation).await;

        let mut pings = Vec::new();
        for _ in 0..N {
            pings.extend(frame(PING, 0, 0, b"flooding"));
        }
        flood_ends_in_goaway(&s, "PING", pings).await;

        let mut settings = Vec::new();
        for _ in 0..N {
            settings.extend(frame(SETTINGS, 0, 0, &[]));
        }
        flood_ends_in_goaway(&s, "SETTINGS", settings).await;

        // The bystander's connection lived through all of it, and new ones
        // are served.
        bystander.get(1, HOST).await;
        assert_eq!(bystander.response(1).await.as_deref(), Ok("200"));
        let mut fresh = s.conn().await;
        fresh.get(1, HOST).await;
        assert_eq!(fresh.response(1).await.as_deref(), Ok("200"));
    })
    .await;
}

/// A browser-like client that cancels now and then is not a flood.
#[tokio::test]
async fn occasional_resets_are_not_a_flood() {
    within(async {
        let s = setup().await;
        let mut conn = s.conn().await;
        for i in 0..200u32 {
            let id = 2 * i + 1;
            conn.get(id, HOST).await;
            if i % 4 == 0 {
                conn.frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()).await;
            } else {
                conn.stream_end(id).await.unwrap();
            }
        }
        assert!(conn.alive().await, "the connection was closed");
    })
    .await;
}
