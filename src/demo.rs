//! A sample "legacy site" to put consentry in front of: `consentry demo`
//! (origin and proxy together), `consentry demo-origin` (the origin alone,
//! for docker-compose), and the fixture the integration tests reuse.
//!
//! The home page loads what real marketing sites load — Google Analytics
//! (gtag via googletagmanager.com), the Meta Pixel (`fbq` plus its
//! `<noscript>` image), HubSpot, a YouTube embed, Stripe.js — next to a
//! first-party script, and the server sets the usual mix of cookies: a
//! session and CSRF token (necessary), a language preference (functional),
//! Google Analytics, HubSpot and Application Insights cookies (analytics),
//! Meta and DoubleClick cookies (advertising) and one cookie nobody
//! declared. `/echo` answers with the request as the origin received it,
//! which shows what consentry let through.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::header::{CONTENT_TYPE, HeaderValue, SET_COOKIE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::body::{self, Body};

/// The demo configuration, as shipped in `config/demo.toml`; used when the
/// file is not found (the binary run from another directory).
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// The cookies the home page sets, as `Set-Cookie` values.
pub const COOKIES: &[&str] = &[
    "sessionid=8f14e45fceea167a5a36dedd4bea2543; Path=/; HttpOnly; SameSite=Lax",
    "csrftoken=Jq3vXjZ0Vw6mBzq2; Path=/; Max-Age=31449600; SameSite=Lax",
    "lang=en; Path=/; Max-Age=31536000; SameSite=Lax",
    "_ga=GA1.1.1804215117.1732464000; Path=/; Max-Age=63072000; SameSite=Lax",
    "_ga_DEMO1234=GS1.1.1732464000.1.0.1732464000.0.0.0; Path=/; Max-Age=63072000; SameSite=Lax",
    "__hstc=251652889.d5a4e8f3.1732464000.1732464000.1732464000.1; Path=/; Max-Age=15552000",
    "hubspotutk=d5a4e8f3c1b2a3948576a1b2c3d4e5f6; Path=/; Max-Age=15552000",
    "ai_user=Vw2xY|2024-11-24T16:00:00.000Z; Path=/; Max-Age=31536000; SameSite=None; Secure",
    "_fbp=fb.1.1732464000000.1804215117; Path=/; Max-Age=7776000; SameSite=Lax",
    "_gcl_au=1.1.1804215117.1732464000; Path=/; Max-Age=7776000; SameSite=Lax",
    "legacy_visitor=42; Path=/; Max-Age=31536000",
];

/// The home page.
pub const HOME_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Acme Hardware — since 1998</title>
<link rel="preconnect" href="https://www.googletagmanager.com">
<link rel="stylesheet" href="/static/site.css">
<!-- Google tag (gtag.js) -->
<script async src="https://www.googletagmanager.com/gtag/js?id=G-DEMO1234"></script>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){dataLayer.push(arguments);}
  gtag('js', new Date());
  gtag('config', 'G-DEMO1234');
</script>
<!-- Meta Pixel Code -->
<script>
!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){n.callMethod?
n.callMethod.apply(n,arguments):n.queue.push(arguments)};if(!f._fbq)f._fbq=n;
n.push=n;n.loaded=!0;n.version='2.0';n.queue=[];t=b.createElement(e);t.async=!0;
t.src=v;s=b.getElementsByTagName(e)[0];s.parentNode.insertBefore(t,s)}(window,
document,'script','https://connect.facebook.net/en_US/fbevents.js');
fbq('init', '000000000000000');
fbq('track', 'PageView');
</script>
<noscript><img height="1" width="1" style="display:none" src="https://www.facebook.com/tr?id=000000000000000&ev=PageView&noscript=1"/></noscript>
<!-- End Meta Pixel Code -->
<script src="https://js.stripe.com/v3/"></script>
<script src="/static/app.js" defer></script>
</head>
<body>
<header><h1>Acme Hardware</h1><nav><a href="/">Home</a> · <a href="/echo">What the server received</a></nav></header>
<main>
<p>Family-run since 1998. Watch our workshop tour:</p>
<iframe width="560" height="315" src="https://www.youtube.com/embed/dQw4w9WgXcQ" title="Workshop tour" frameborder="0" allow="accelerometer; autoplay; encrypted-media; gyroscope" allowfullscreen></iframe>
<form id="checkout"><div id="card-element"></div><button>Pay</button></form>
</main>
<footer>© Acme Hardware · <a href="/privacy">Privacy</a></footer>
<!-- Start of HubSpot Embed Code -->
<script type="text/javascript" id="hs-script-loader" async defer src="//js.hs-scripts.com/0000000.js"></script>
<!-- End of HubSpot Embed Code -->
</body>
</html>
"#;

/// The first-party script.
pub const APP_JS: &str = "document.getElementById('checkout').addEventListener('submit', function (e) {\n  e.preventDefault();\n  document.body.dataset.checkout = 'started';\n});\n";

const SITE_CSS: &str =
    "body{font-family:sans-serif;max-width:46rem;margin:2rem auto}iframe{max-width:100%}\n";

/// Answers one request of the demo site.
pub fn respond<B>(request: &Request<B>) -> Response<Body> {
    match request.uri().path() {
        "/" | "/index.html" => {
            let mut response = text(StatusCode::OK, "text/html; charset=utf-8", HOME_PAGE);
            for cookie in COOKIES {
                response.headers_mut().append(SET_COOKIE, HeaderValue::from_static(cookie));
            }
            response
        }
        "/static/app.js" => text(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS),
        "/static/site.css" => text(StatusCode::OK, "text/css; charset=utf-8", SITE_CSS),
        "/echo" => echo(request),
        _ => text(StatusCode::NOT_FOUND, "text/html; charset=utf-8", "<!DOCTYPE html><h1>Not found</h1>\n"),
    }
}

/// The request head as JSON: `{"method", "path", "query", "version",
/// "headers": [[name, value], ...]}` with every header field in order.
pub fn echo<B>(request: &Request<B>) -> Response<Body> {
    let headers: Vec<(&str, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let json = serde_json::json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query(),
        "version": format!("{:?}", request.version()),
        "headers": headers,
    });
    text(StatusCode::OK, "application/json", json.to_string())
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Serves the demo site on `listener` until the task is dropped.
pub async fn serve_origin(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let service =
                service_fn(
                    |request: Request<Incoming>| async move { Ok::<_, Infallible>(respond(&request)) },
                );
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Binds `addr` and serves the demo site there in a new task.
pub async fn spawn_origin(addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(serve_origin(listener))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn home_page_sets_the_cookie_mix_and_loads_the_trackers() {
        let response = respond(&Request::get("/").body(()).unwrap());
        assert_eq!(response.status(), StatusCode::OK);
        let cookies: Vec<&str> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split('=').next().unwrap())
            .collect();
        for name in ["sessionid", "csrftoken", "lang", "_ga", "_ga_DEMO1234", "hubspotutk", "_fbp", "_gcl_au"]
        {
            assert!(cookies.contains(&name), "{name} missing from {cookies:?}");
        }
        let page = response.into_body().collect().await.unwrap().to_bytes();
        let page = std::str::from_utf8(&page).unwrap();
        for needle in [
            "googletagmanager.com/gtag/js",
            "fbq('init'",
            "facebook.com/tr?",
            "js.hs-scripts.com",
            "youtube.com/embed/",
            "js.stripe.com",
            "/static/app.js",
        ] {
            assert!(page.contains(needle), "{needle}");
        }
    }

    #[tokio::test]
    async fn echo_shows_every_header_field() {
        let request =
            Request::post("/echo?x=1").header("cookie", "a=1").header("cookie", "b=2").body(()).unwrap();
        let body = respond(&request).into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["method"], "POST");
        assert_eq!(json["query"], "x=1");
        assert_eq!(json["headers"], serde_json::json!([["cookie", "a=1"], ["cookie", "b=2"]]));
    }

    #[test]
    fn the_shipped_demo_config_compiles() {
        let source = crate::config::Source { path: "config/demo.toml".into(), text: DEMO_CONFIG.to_string() };
        let snapshot = crate::snapshot::Snapshot::compile(&source, 1).unwrap();
        let site = snapshot.router.route("localhost:8080").unwrap();
        let policy = &site.policy;
        for cookie in COOKIES {
            let name = cookie.split('=').next().unwrap();
            let (category, _) = policy.classify_cookie(name, "localhost");
            if name == "legacy_visitor" {
                assert!(category.is_none(), "the demo keeps one undeclared cookie");
            } else {
                assert!(category.is_some(), "{name} has no rule in demo.toml");
            }
        }
    }
}
