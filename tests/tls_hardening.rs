//! TLS hardening of the HTTPS listener (issue 9): TLS 1.0/1.1 refused with
//! a fatal alert (`protocol_version`, or `handshake_failure` for a hello
//! without `signature_algorithms`), TLS 1.2 and 1.3 served, a ClientHello split
//! into 1-byte writes or into many TLS records still served, garbage before
//! the ClientHello closed without harming anyone else, a stalled handshake
//! cut off; and Debian's `testssl` (when installed) finds no old protocol,
//! TLS 1.3 offered and no HIGH/CRITICAL vulnerability.

mod common;

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

/// A TLS record of `kind` with `payload`.
fn record(kind: u8, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn u16_prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend(u16_prefixed(body));
    out
}

/// A ClientHello as a TLS 1.0/1.1-only client sends it: `client_version`,
/// CBC suites of that era, SNI, and no `supported_versions` extension;
/// with `sigalgs`, also the `signature_algorithms` extension (which such
/// clients leave out: it came with TLS 1.2).
fn legacy_client_hello(client_version: u16, sigalgs: bool) -> Vec<u8> {
    let mut body = client_version.to_be_bytes().to_vec();
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, _256_CBC_SHA, TLS_RSA_WITH_AES_128_CBC_SHA.
    body.extend(u16_prefixed(&[0xc0, 0x13, 0xc0, 0x14, 0x00, 0x2f]));
    body.extend_from_slice(&[1, 0]); // compression: null
    let name = HOST.as_bytes();
    let mut sni = vec![0];
    sni.extend(u16_prefixed(name));
    let mut extensions = extension(0x0000, &u16_prefixed(&sni));
    extensions.extend(extension(0x000a, &u16_prefixed(&[0x00, 0x17]))); // secp256r1
    extensions.extend(extension(0x000b, &[1, 0])); // point formats: uncompressed
    if sigalgs {
        // rsa_pkcs1_sha256, ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256.
        extensions.extend(extension(0x000d, &u16_prefixed(&[0x04, 0x01, 0x04, 0x03, 0x08, 0x04])));
    }
    body.extend(u16_prefixed(&extensions));
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    record(22, 0x0301, &handshake)
}

/// Reads until the server closes (or 10 s pass); returns what it sent.
async fn read_until_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Err(_) => panic!("the server neither answered nor closed within 10 s (got {out:?})"),
            Ok(Ok(0) | Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn client_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
    cert: &TestCert,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(consentry::tls::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One HTTP/1.1 GET over `tls`; the status line.
async fn get_over<S: AsyncRead + AsyncWrite + Unpin>(tls: &mut S) -> String {
    let request = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_string()
}

async fn handshake(
    addr: SocketAddr,
    versions: &[&'static rustls::SupportedProtocolVersion],
    cert: &TestCert,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(client_config(versions, cert));
    let stream = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(HOST.to_string()).unwrap();
    connector.connect(name, stream).await.unwrap()
}

async fn setup() -> (Proxy, TestCert, Origin) {
    let cert = test_cert(&[HOST]);
    let origin = demo_origin().await;
    let proxy = proxy().origin(&origin).https(&[&cert]).limit("header_read_timeout", "\"2s\"").run().await;
    (proxy, cert, origin)
}

/// rustls checks for `signature_algorithms` before it negotiates the
/// version, so a hello as old clients send it gets `handshake_failure`
/// (40); one that carries the extension gets `protocol_version` (70).
/// Either is a fatal alert and never a ServerHello.
#[tokio::test]
async fn tls_1_0_and_1_1_are_refused_with_a_fatal_alert() {
    within(async {
        let (proxy, _cert, _origin) = setup().await;
        for (name, version) in [("TLS 1.0", 0x0301), ("TLS 1.1", 0x0302), ("SSL 3.0", 0x0300)] {
            for sigalgs in [false, true] {
                let mut stream = TcpStream::connect(proxy.https.unwrap()).await.unwrap();
                stream.write_all(&legacy_client_hello(version, sigalgs)).await.unwrap();
                let answer = read_until_close(&mut stream).await;
                // One fatal alert record (type 21, level 2), then close.
                assert_eq!(answer.len(), 7, "{name}: {answer:?}");
                assert_eq!((answer[0], answer[5]), (21, 2), "{name}: {answer:?}");
                let want = if sigalgs { 70 } else { 40 };
                assert_eq!(answer[6], want, "{name}, signature_algorithms {sigalgs}: {answer:?}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_served() {
    within(async {
        let (proxy, cert, _origin) = setup().await;
        let addr = proxy.https.unwrap();
        for (version, want) in [
            (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
            (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        ] {
            let mut tls = handshake(addr, &[version], &cert).await;
            assert_eq!(tls.get_ref().1.protocol_version(), Some(want));
            assert_eq!(get_over(&mut tls).await, "HTTP/1.1 200 OK", "{want:?}");
        }
        // Offered both, a client gets TLS 1.3.
        let tls = handshake(addr, &[&rustls::version::TLS13, &rustls::version::TLS12], &cert).await;
        assert_eq!(tls.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    })
    .await;
}

/// Writes at most one byte per call: every byte of the ClientHello (and
/// everything after) goes out in its own TCP segment.
struct OneByte(TcpStream);

impl AsyncRead for OneByte {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for OneByte {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(1);
        Pin::new(&mut self.0).poll_write(cx, &buf[..n])
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_client_hello_one_byte_per_write_is_served() {
    within(async {
        let (proxy, cert, _origin) = setup().await;
        let stream = TcpStream::connect(proxy.https.unwrap()).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let connector = tokio_rustls::TlsConnector::from(client_config(&[&rustls::version::TLS13], &cert));
        let name = rustls_pki_types::ServerName::try_from(HOST.to_string()).unwrap();
        let mut tls = connector.connect(name, OneByte(stream)).await.unwrap();
        assert_eq!(get_over(&mut tls).await, "HTTP/1.1 200 OK");
    })
    .await;
}

/// The client's first flight (its ClientHello record), re-framed so that
/// each TLS record carries at most `chunk` bytes of the handshake message.
fn refragment(flight: &[u8], chunk: usize) -> Vec<u8> {
    assert_eq!(flight[0], 22, "a handshake record");
    let len = usize::from(u16::from_be_bytes([flight[3], flight[4]]));
    assert_eq!(flight.len(), 5 + len, "one record");
    let version = u16::from_be_bytes([flight[1], flight[2]]);
    flight[5..].chunks(chunk).flat_map(|piece| record(22, version, piece)).collect()
}

#[tokio::test]
async fn a_client_hello_split_over_many_records_is_served() {
    within(async {
        let (proxy, cert, _origin) = setup().await;
        let addr = proxy.https.unwrap();
        // rustls without I/O, on a blocking socket in a blocking task.
        let config = client_config(&[&rustls::version::TLS13, &rustls::version::TLS12], &cert);
        let status = tokio::task::spawn_blocking(move || {
            let name = rustls_pki_types::ServerName::try_from(HOST.to_string()).unwrap();
            let mut conn = rustls::ClientConnection::new(config, name).unwrap();
            let mut sock = std::net::TcpStream::connect(addr).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut flight = Vec::new();
            conn.write_tls(&mut flight).unwrap();
            let records = refragment(&flight, 7);
            assert!(records.len() > flight.len() + 5 * 20, "split into many records");
            sock.write_all(&records).unwrap();
            let mut stream = rustls::Stream::new(&mut conn, &mut sock);
            let request = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).unwrap();
            let mut out = Vec::new();
            let _ = stream.read_to_end(&mut out);
            String::from_utf8_lossy(&out).lines().next().unwrap_or_default().to_string()
        })
        .await
        .unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
    })
    .await;
}

#[tokio::test]
async fn garbage_before_the_client_hello_is_closed_and_hurts_no_one_else() {
    within(async {
        let (proxy, cert, _origin) = setup().await;
        let addr = proxy.https.unwrap();
        // A bystander mid-connection, handshake done.
        let mut bystander = handshake(addr, &[&rustls::version::TLS13], &cert).await;

        let mut junk_then_hello = vec![0x17, 0xff, 0x00, 0x41, 0x00];
        junk_then_hello.extend(legacy_client_hello(0x0303, true));
        let garbage: Vec<(&str, Vec<u8>)> = vec![
            ("plain HTTP", format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n").into_bytes()),
            ("zeros", vec![0; 1024]),
            ("pseudo-random", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
            ("a huge record length", vec![22, 3, 1, 0xff, 0xff, 1]),
            ("junk then a ClientHello", junk_then_hello),
        ];
        for (name, bytes) in garbage {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let _ = stream.write_all(&bytes).await;
            let answer = read_until_close(&mut stream).await;
            // At most an alert; never a ServerHello (22) or HTTP.
            assert!(answer.is_empty() || answer[0] == 21, "{name}: {answer:?}");
        }
        assert_eq!(get_over(&mut bystander).await, "HTTP/1.1 200 OK", "the bystander is served");
        let mut fresh = handshake(addr, &[&rustls::version::TLS12], &cert).await;
        assert_eq!(get_over(&mut fresh).await, "HTTP/1.1 200 OK", "new clients are served");
    })
    .await;
}

#[tokio::test]
async fn a_stalled_handshake_is_cut_off() {
    within(async {
        let (proxy, _cert, _origin) = setup().await;
        let mut stream = TcpStream::connect(proxy.https.unwrap()).await.unwrap();
        // Half a ClientHello, then silence: header_read_timeout (2 s) ends it.
        let hello = legacy_client_hello(0x0303, true);
        stream.write_all(&hello[..hello.len() / 2]).await.unwrap();
        let started = tokio::time::Instant::now();
        let answer = read_until_close(&mut stream).await;
        assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");
        // Not a speed check: it must not have ended before the timeout.
        assert!(started.elapsed() >= Duration::from_millis(1500), "{:?}", started.elapsed());
    })
    .await;
}

/// Debian's testssl.sh against the listener: protocols, cipher categories,
/// forward secrecy and vulnerabilities. Skips when testssl is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testssl_finds_no_old_protocols_and_no_serious_vulnerability() {
    let testssl = std::path::Path::new("/usr/bin/testssl");
    if !testssl.exists() {
        println!("NOTICE: /usr/bin/testssl missing (Debian package testssl.sh); skipping");
        return;
    }
    let (proxy, _cert, _origin) = setup().await;
    let addr = proxy.https.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("testssl.json");
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new(testssl)
            .args(["--quiet", "--color", "0", "--warnings", "off", "--ip", "one", "-p", "-s", "-f", "-U"])
            .arg("--jsonfile")
            .arg(&json)
            .arg(format!("{addr}"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("testssl ran for 10 minutes")
    .unwrap();
    println!("testssl took {:?}, exit {:?}", started.elapsed(), output.status.code());
    println!("{}", String::from_utf8_lossy(&output.stdout));
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!("no JSON from testssl ({e}); stderr: {}", String::from_utf8_lossy(&output.stderr))
    });
    let findings: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let finding = |id: &str| {
        findings
            .iter()
            .find(|f| f["id"] == id)
            .and_then(|f| f["finding"].as_str())
            .unwrap_or_else(|| panic!("testssl reported nothing for {id}"))
            .to_string()
    };
    let mut by_severity = std::collections::BTreeMap::<String, usize>::new();
    for f in &findings {
        *by_severity.entry(f["severity"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    println!("testssl findings by severity: {by_severity:?}");
    for id in ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "FS", "ALPN_HTTP2"] {
        if let Some(f) = findings.iter().find(|f| f["id"] == id) {
            println!("  {id}: {}", f["finding"]);
        }
    }
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(finding(old).contains("not offered"), "{old}: {}", finding(old));
    }
    assert!(finding("TLS1_2").starts_with("offered"), "TLS1_2: {}", finding("TLS1_2"));
    assert!(finding("TLS1_3").starts_with("offered"), "TLS1_3: {}", finding("TLS1_3"));
    let serious: Vec<&serde_json::Value> =
        findings.iter().filter(|f| matches!(f["severity"].as_str(), Some("HIGH" | "CRITICAL"))).collect();
    assert!(serious.is_empty(), "HIGH/CRITICAL findings: {serious:#?}");
}
