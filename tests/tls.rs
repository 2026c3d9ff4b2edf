//! HTTPS: HTTP/2 over TLS, certificates chosen by SNI and swapped by a
//! reload, HTTP/2 → HTTP/1.1 cookie joining, and https origins trusted
//! through `ca_file`.

mod common;

use common::*;
use consentry::snapshot::Snapshot;
use http::{Method, StatusCode};

#[tokio::test]
async fn h2_over_tls_round_trip() {
    within(async {
        let cert = test_cert(&[HOST]);
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).https(&[&cert]).run().await;
        let mut client = proxy.h2(HOST, &[&cert]).await;
        let page = client.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text().contains("Acme Hardware"));

        let echo = client.get("/echo").await.echo();
        assert_eq!(echo.one("host"), HOST, ":authority becomes Host for the HTTP/1.1 origin");
        assert_eq!(echo.one("x-forwarded-proto"), "https");
        assert_eq!(echo.one("via"), "2 consentry");
    })
    .await;
}

#[tokio::test]
async fn sni_picks_the_certificate() {
    within(async {
        let a = test_cert(&["a.test"]);
        let b = test_cert(&["b.test", "*.b.test"]);
        let origin = demo_origin().await;
        let proxy =
            proxy().origin(&origin).hosts(&["a.test", "b.test", "*.b.test"]).https(&[&a, &b]).run().await;
        let https = proxy.https.unwrap();
        for (name, want) in [("a.test", &a), ("b.test", &b), ("www.b.test", &b)] {
            let (mut client, presented) = Client::h2_tls(https, name, &[&a, &b]).await;
            assert_eq!(presented, want.der, "{name}");
            assert_eq!(client.get("/echo").await.echo().one("host"), name);
        }
    })
    .await;
}

#[tokio::test]
async fn a_reload_swaps_certificates_without_dropping_connections() {
    within(async {
        let old = test_cert(&[HOST]);
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).https(&[&old]).run().await;
        let https = proxy.https.unwrap();
        let (mut established, presented) = Client::h2_tls(https, HOST, &[&old]).await;
        assert_eq!(presented, old.der);

        // Same config, new certificate: compile and swap, as a reload does.
        let new = test_cert(&[HOST]);
        std::fs::copy(&new.cert_path, &old.cert_path).unwrap();
        std::fs::copy(&new.key_path, &old.key_path).unwrap();
        let store = &proxy.running().store;
        store.swap(Snapshot::load(&proxy.config_path, store.next_generation()).unwrap());

        let (_, presented) = Client::h2_tls(https, HOST, &[&new]).await;
        assert_eq!(presented, new.der, "new handshakes get the new certificate");
        assert_eq!(established.get("/echo").await.status, StatusCode::OK, "the old connection lives on");
    })
    .await;
}

#[tokio::test]
async fn a_bad_certificate_is_a_config_error() {
    let cert = test_cert(&[HOST]);
    let other = test_cert(&["other.test"]);
    let (_dir, path) = proxy().https(&[&cert]).write();
    let text = std::fs::read_to_string(&path).unwrap();
    // The key of another certificate.
    let text = text.replace(&format!("{:?}", cert.key_path), &format!("{:?}", other.key_path));
    std::fs::write(&path, text).unwrap();
    let errors = Snapshot::load(&path, 1).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].to_string().contains("do not go together"), "{}", errors[0]);
    assert!(errors[0].line > 0, "the error points at the [[listen.certificate]] entry");
}

#[tokio::test]
async fn h2_cookie_fields_are_joined_for_an_http1_origin() {
    within(async {
        let cert = test_cert(&[HOST]);
        let origin = demo_origin().await;
        let proxy = proxy().origin(&origin).https(&[&cert]).run().await;
        let mut client = proxy.h2(HOST, &[&cert]).await;
        let request = client
            .request(Method::GET, "/echo")
            .header("cookie", "sessionid=abc")
            .header("cookie", "lang=fr")
            .header("cookie", "_ga=GA1.1.1.1")
            .body(consentry::body::empty())
            .unwrap();
        let echo = client.fetch(request).await.echo();
        assert_eq!(echo.all("cookie"), vec!["sessionid=abc; lang=fr; _ga=GA1.1.1.1"]);
    })
    .await;
}

#[tokio::test]
async fn https_origins_are_trusted_through_ca_file() {
    within(async {
        let origin_cert = test_cert(&["localhost"]);
        let origin = origin().run_tls(&origin_cert).await;
        let ca = origin_cert.cert_path.display().to_string();

        let trusting = proxy().origin(&origin).site_toml(&format!("ca_file = {ca:?}")).run().await;
        let echo = trusting.http1().await.get("/echo").await.echo();
        assert_eq!(echo.one("host"), HOST);
        assert_eq!(echo.one("x-forwarded-proto"), "http");

        // Without the CA the origin's self-signed certificate is refused.
        let refusing = proxy().origin(&origin).run().await;
        assert_eq!(refusing.http1().await.get("/echo").await.status, StatusCode::BAD_GATEWAY);
    })
    .await;
}
