//! The body adapter: content codings round trip, headers are adjusted,
//! unsupported bodies pass through untouched, decisions are reported
//! exactly once, and a rewritten page streams over a real socket before
//! the origin has finished.

mod html_common;

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use consentry::body::{self, Body};
use consentry::codec::{Coding, Decoder};
use consentry::decision::{Action, Decisions};
use consentry::response_body::{self, BodyContext, Passthrough, passthrough_count};
use html_common::*;
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

const POLICY: &str = r#"
[policy.default]
[[policy.default.resource]]
match = "connect.facebook.net"
category = "advertising"
[[policy.default.resource]]
match = "inline:fbq("
category = "advertising"
"#;

fn page() -> String {
    let filler = "<p>Some article text, long enough to compress a little.</p>\n".repeat(50);
    format!(
        "<!doctype html><html><head><script src=\"https://connect.facebook.net/en_US/fbevents.js\"></script></head><body>{filler}<script>fbq('init','1')</script>{filler}</body></html>"
    )
}

fn expected() -> String {
    page()
        .replacen("<script src=", "<script type=\"text/plain\" data-category=\"advertising\" src=", 1)
        .replacen("<script>fbq", "<script type=\"text/plain\" data-category=\"advertising\">fbq", 1)
}

fn html_headers(encoding: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert("content-length", HeaderValue::from_static("1234"));
    h.insert("etag", HeaderValue::from_static("\"v1\""));
    h.insert("content-md5", HeaderValue::from_static("abc"));
    h.insert("accept-ranges", HeaderValue::from_static("bytes"));
    if let Some(e) = encoding {
        h.insert("content-encoding", HeaderValue::from_str(e).unwrap());
    }
    h
}

fn deflate_zlib(d: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(d).unwrap();
    e.finish().unwrap()
}
fn deflate_raw(d: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(d).unwrap();
    e.finish().unwrap()
}
fn inflate_zlib(d: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut o = Vec::new();
    flate2::read::ZlibDecoder::new(d).read_to_end(&mut o).unwrap();
    o
}
fn inflate_raw(d: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut o = Vec::new();
    flate2::read::DeflateDecoder::new(d).read_to_end(&mut o).unwrap();
    o
}
fn identity(d: &[u8]) -> Vec<u8> {
    d.to_vec()
}

type Codec = fn(&[u8]) -> Vec<u8>;

#[test]
fn every_coding_round_trips_rewritten_in_the_same_coding() {
    let site = site(POLICY);
    let input = page();
    let codings: [(Option<&str>, Codec, Codec); 6] = [
        (None, identity, identity),
        (Some("gzip"), gzip, gunzip),
        (Some("deflate"), deflate_zlib, inflate_zlib),
        (Some("deflate"), deflate_raw, inflate_raw),
        (Some("br"), brotli, unbrotli),
        (Some("zstd"), zstd_encode, zstd_decode),
    ];
    for (name, encode, decode) in codings {
        let encoded = encode(input.as_bytes());
        for frame in [1, 7, 512, usize::MAX] {
            let frames: Vec<Bytes> =
                encoded.chunks(frame.min(encoded.len())).map(Bytes::copy_from_slice).collect();
            let run = run_body(&site, granted(&site, &[]), html_headers(name), frames, None, 1 << 30);
            assert!(run.error.is_none(), "{name:?}: {:?}", run.error);
            let out = decode(&run.bytes());
            assert!(
                out == expected().as_bytes(),
                "{name:?} frame {frame}: {}",
                String::from_utf8_lossy(&out)
            );
            let h = &run.headers;
            assert_eq!(h.get("content-encoding").map(|v| v.to_str().unwrap()), name, "same coding out");
            assert!(h.get("content-length").is_none());
            assert!(h.get("content-md5").is_none());
            assert!(h.get("accept-ranges").is_none());
            assert_eq!(h.get("etag").unwrap(), "W/\"v1\"");
            assert_eq!(run.done_calls, 1);
            let d = run.decisions.as_ref().unwrap();
            assert_eq!(d.len(), 2);
            assert!(d.iter().all(|d| d.action == Action::Block));
        }
    }
}

#[test]
fn multi_member_gzip_from_the_origin() {
    let site = site(POLICY);
    let input = page();
    let (a, b) = input.split_at(input.len() / 3);
    let mut encoded = gzip(a.as_bytes());
    encoded.extend(gzip(b.as_bytes()));
    for frame in [3, 100, usize::MAX] {
        let frames = encoded.chunks(frame.min(encoded.len())).map(Bytes::copy_from_slice).collect();
        let run = run_body(&site, granted(&site, &[]), html_headers(Some("gzip")), frames, None, 1 << 30);
        assert!(gunzip(&run.bytes()) == expected().as_bytes(), "frame {frame}");
    }
}

#[test]
fn unknown_and_stacked_encodings_pass_through_untouched_and_are_counted() {
    let site = site(POLICY);
    for (enc, reason) in
        [("compress", Passthrough::UnknownEncoding), ("gzip, br", Passthrough::StackedEncoding)]
    {
        let before = passthrough_count(reason);
        let bytes = b"\x1f\x9d opaque compressed bytes".to_vec();
        let run = run_body(
            &site,
            granted(&site, &[]),
            html_headers(Some(enc)),
            vec![bytes.clone().into()],
            None,
            1 << 30,
        );
        assert_eq!(run.bytes(), bytes);
        assert_eq!(run.headers, html_headers(Some(enc)), "headers untouched");
        assert_eq!(run.done_calls, 1);
        assert_eq!(run.decisions, Some(Vec::new()));
        assert!(passthrough_count(reason) > before, "{enc}");
    }
    // Not HTML at all: untouched, not counted.
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/javascript"));
    let js = b"fbq('init')".to_vec();
    let run = run_body(&site, granted(&site, &[]), h.clone(), vec![js.clone().into()], None, 1 << 30);
    assert_eq!(run.bytes(), js);
    assert_eq!(run.headers, h);
    assert_eq!(run.done_calls, 1);
}

#[test]
fn report_only_forwards_the_origin_bytes_and_records() {
    let site = site(&POLICY.replace("[policy.default]\n", "[policy.default]\nmode = \"report-only\"\n"));
    let encoded = gzip(page().as_bytes());
    let frames: Vec<Bytes> = encoded.chunks(300).map(Bytes::copy_from_slice).collect();
    let run = run_body(&site, granted(&site, &[]), html_headers(Some("gzip")), frames, None, 1 << 30);
    assert_eq!(run.bytes(), encoded, "the origin's compressed bytes, as they were");
    assert_eq!(run.headers, html_headers(Some("gzip")), "headers untouched");
    let d = run.decisions.unwrap();
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|d| d.action == Action::Block), "what would have been done");
}

#[test]
fn a_corrupt_gzip_body_ends_cleanly_then_errors() {
    let site = site(POLICY);
    let mut encoded = gzip(page().as_bytes());
    let n = encoded.len();
    for b in &mut encoded[n / 2..n / 2 + 8] {
        *b ^= 0xa5;
    }
    let frames = encoded.chunks(64).map(Bytes::copy_from_slice).collect();
    let run = run_body(&site, granted(&site, &[]), html_headers(Some("gzip")), frames, None, 1 << 30);
    assert!(run.error.is_some(), "the body reports the origin's corruption");
    // What was sent is a complete gzip stream of a prefix of the page.
    let out = gunzip(&run.bytes());
    assert!(expected().as_bytes().starts_with(&out), "{}", String::from_utf8_lossy(&out));
    assert_eq!(run.done_calls, 1);
}

#[test]
fn trailers_follow_the_rewritten_data() {
    let site = site(POLICY);
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("1"));
    let frames =
        vec![Ok::<_, Infallible>(Frame::data(Bytes::from(page()))), Ok(Frame::trailers(trailers.clone()))];
    let origin = body::boxed(StreamBody::new(futures_util::stream::iter(frames)));
    let mut headers = html_headers(None);
    let cx = context(&site, Arc::default());
    let mut out = response_body::rewrite(&mut headers, origin, cx);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let collected = rt.block_on(async {
        out.frame().await;
        out.collect().await.unwrap()
    });
    assert_eq!(collected.trailers(), Some(&trailers));
}

#[test]
fn small_ready_frames_go_out_as_few_large_frames() {
    // An origin that flushes every 100 bytes (chunked encoding from a
    // template engine): what is ready at once is sent as frames of at least
    // MIN_FRAME bytes, not one tiny frame (and write) per origin frame.
    let site = site(POLICY);
    let filler: String = (0..4000u64)
        .map(|i| format!("<p id=\"p{i}\">Item {} costs {}.</p>\n", i * 7919 % 100_003, i * 31 % 977))
        .collect();
    let input = format!(
        "<html><head><script src=\"https://connect.facebook.net/en_US/fbevents.js\"></script></head><body>{filler}</body></html>"
    );
    let want =
        input.replacen("<script src=", "<script type=\"text/plain\" data-category=\"advertising\" src=", 1);
    for (name, encode, decode) in
        [(None, identity as Codec, identity as Codec), (Some("gzip"), gzip as Codec, gunzip as Codec)]
    {
        let encoded = encode(input.as_bytes());
        let frames: Vec<Bytes> = encoded.chunks(100).map(Bytes::copy_from_slice).collect();
        let count = frames.len();
        let run = run_body(&site, granted(&site, &[]), html_headers(name), frames, None, 1 << 30);
        assert!(run.error.is_none(), "{name:?}: {:?}", run.error);
        assert!(decode(&run.bytes()) == want.as_bytes(), "{name:?}: output differs");
        if name.is_none() {
            let (last, rest) = run.frames.split_last().unwrap();
            assert!(!last.is_empty());
            for f in rest {
                assert!(f.len() >= response_body::MIN_FRAME, "{name:?}: a frame of {} bytes", f.len());
            }
        }
        assert!(
            run.frames.len() * 20 < count,
            "{name:?}: {} input frames became {} output frames",
            count,
            run.frames.len()
        );
    }
}

fn context(site: &Arc<consentry::route::Site>, sink: Arc<Mutex<Vec<Decisions>>>) -> BodyContext {
    BodyContext {
        site: site.clone(),
        consent: consent(granted(site, &[])),
        page_url: "https://www.example.com/".into(),
        banner: None,
        csp_nonce: None,
        max_decoded_body: 1 << 30,
        on_done: Box::new(move |d| sink.lock().unwrap().push(d)),
    }
}

/// An origin body fed from a channel, so a test controls when bytes arrive.
fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    (tx, body::boxed(StreamBody::new(stream)))
}

#[tokio::test]
async fn decisions_are_reported_once_when_the_body_is_abandoned() {
    let site = site(POLICY);
    let reports: Arc<Mutex<Vec<Decisions>>> = Arc::default();
    let (tx, origin) = channel_body();
    let mut headers = html_headers(None);
    let mut out = response_body::rewrite(&mut headers, origin, context(&site, reports.clone()));
    tx.send(Bytes::from_static(b"<script src=\"https://connect.facebook.net/a.js\"></script><p>more"))
        .await
        .unwrap();
    let first = out.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"<script type=\"text/plain\""));
    assert!(reports.lock().unwrap().is_empty(), "not before the end");
    drop(out);
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "reported exactly once");
    assert_eq!(reports[0].len(), 1);
}

#[tokio::test]
async fn a_rewritten_page_streams_over_a_socket_before_the_origin_finishes() {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;

    let site = site(POLICY);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (origin_tx, origin_rx) = tokio::sync::oneshot::channel::<tokio::sync::mpsc::Sender<Bytes>>();
    let origin_tx = Arc::new(Mutex::new(Some(origin_tx)));
    let server_site = site.clone();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
            let site = server_site.clone();
            let origin_tx = origin_tx.clone();
            async move {
                let (tx, origin) = channel_body();
                if let Some(s) = origin_tx.lock().unwrap().take() {
                    let _ = s.send(tx);
                }
                let mut headers = html_headers(Some("gzip"));
                let body = response_body::rewrite(&mut headers, origin, context(&site, Arc::default()));
                let mut resp = http::Response::new(body);
                *resp.headers_mut() = headers;
                Ok::<_, Infallible>(resp)
            }
        });
        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
    });

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/").header("host", "www.example.com").body(body::empty()).unwrap();
    let resp_fut = tokio::spawn(async move { sender.send_request(req).await.unwrap() });
    let origin = origin_rx.await.unwrap();

    // The origin sends its first gzip bytes and then stalls.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"<html><head><script src=\"https://connect.facebook.net/en_US/fbevents.js\"></script></head><body><p>first</p>").unwrap();
    gz.flush().unwrap();
    origin.send(Bytes::from(std::mem::take(gz.get_mut()))).await.unwrap();

    let resp = resp_fut.await.unwrap();
    assert_eq!(resp.headers().get("content-encoding").unwrap(), "gzip");
    assert!(resp.headers().get("content-length").is_none());
    let mut body = resp.into_body();
    let mut decoder = Decoder::new(Coding::Gzip).unwrap().unwrap();
    let mut seen = Vec::new();
    while !seen.windows(12).any(|w| w == b"<p>first</p>") {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("rewritten bytes arrive while the origin is still sending")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            let mut rest = &data[..];
            while !rest.is_empty() || decoder.has_pending() {
                let n = decoder.decode(rest, &mut seen, usize::MAX).unwrap();
                rest = &rest[n..];
            }
        }
    }
    assert!(
        String::from_utf8_lossy(&seen)
            .contains("<script type=\"text/plain\" data-category=\"advertising\" src="),
        "{}",
        String::from_utf8_lossy(&seen)
    );

    // Now the origin finishes.
    gz.write_all(b"<p>second</p></body></html>").unwrap();
    let rest = gz.finish().unwrap();
    origin.send(Bytes::from(rest)).await.unwrap();
    drop(origin);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            let mut rest = &data[..];
            while !rest.is_empty() || decoder.has_pending() {
                let n = decoder.decode(rest, &mut seen, usize::MAX).unwrap();
                rest = &rest[n..];
            }
        }
    }
    assert!(seen.ends_with(b"<p>second</p></body></html>"), "{}", String::from_utf8_lossy(&seen));
    server.abort();
}
