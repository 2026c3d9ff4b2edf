//! A sample "legacy site" to put consentry in front of: `consentry demo`
//! (origin and proxy together), `consentry demo-origin` (the origin alone,
//! for docker-compose), and the fixture the integration tests reuse.
//! `consentry demo-tracker` is a stand-in third-party tracker on a host of
//! its own, which the origin loads with `--tracker-url` (docker-compose
//! does): unlike the real services the page names, it answers without
//! Internet access, so blocking it (or not) is visible.
//!
//! The home page loads what real marketing sites load — Google Analytics
//! (gtag via googletagmanager.com), the Meta Pixel (`fbq` plus its
//! `<noscript>` image), HubSpot, a YouTube embed, Stripe.js — next to a
//! first-party script, and the server sets the usual mix of cookies: a
//! session and CSRF token (necessary), a language preference (functional),
//! Google Analytics, HubSpot and Application Insights cookies (analytics),
//! the site's own server-side visit counter `visitor_stats` (analytics, and
//! `HttpOnly`: no script, so no client-side banner, can delete it),
//! Meta and DoubleClick cookies (advertising) and one cookie nobody
//! declared. `/echo` answers with the request as the origin received it,
//! which shows what consentry let through.
//!
//! The tracker serves [`TRACKER_JS`] at `/tracker.js`: it sets the
//! first-party cookie [`TRACKER_COOKIE`] (as analytics tags do), reports to
//! `/collect` on its own host (logged, counted at `/`), and adds a
//! paragraph with id `demo-tracker-ran` to the page.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, SET_COOKIE};
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
    "visitor_stats=v1.5f2c9a71; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax",
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
    respond_with(request, None)
}

/// Answers one request of the demo site whose home page also loads the
/// script at `tracker` (a URL checked by [`tracker_url`]).
pub fn respond_with<B>(request: &Request<B>, tracker: Option<&str>) -> Response<Body> {
    match request.uri().path() {
        "/" | "/index.html" => {
            let page = home_page(tracker).into_owned();
            let mut response = text(StatusCode::OK, "text/html; charset=utf-8", page);
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

/// The home page, loading the script at `tracker` (if any) just before
/// `</body>`, where sites put their tag snippets.
pub fn home_page(tracker: Option<&str>) -> Cow<'static, str> {
    match tracker {
        None => Cow::Borrowed(HOME_PAGE),
        Some(url) => {
            let escaped = url.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
            let tag = format!(
                "<!-- Demo tracker (a third party on its own host) -->\n<script async src=\"{escaped}\"></script>\n</body>"
            );
            Cow::Owned(HOME_PAGE.replacen("</body>", &tag, 1))
        }
    }
}

/// Checks a `--tracker-url`: an absolute http(s) URL.
pub fn tracker_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected an http:// or https:// URL with a host".into());
    }
    Ok(url.to_string())
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
    serve_origin_with(listener, None).await;
}

/// Serves the demo site, its home page loading `tracker`, on `listener`
/// until the task is dropped.
pub async fn serve_origin_with(listener: TcpListener, tracker: Option<String>) {
    let tracker: Option<Arc<str>> = tracker.map(Arc::from);
    serve(listener, move |request| respond_with(&request, tracker.as_deref())).await;
}

/// Binds `addr` and serves the demo site there in a new task.
pub async fn spawn_origin(addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    spawn_origin_with(addr, None).await
}

/// Binds `addr` and serves the demo site, its home page loading
/// `tracker`, there in a new task.
pub async fn spawn_origin_with(
    addr: SocketAddr,
    tracker: Option<String>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(serve_origin_with(listener, tracker))))
}

/// The cookie the demo tracker's script sets on the page's own host.
pub const TRACKER_COOKIE: &str = "_demo_trk";

/// The demo tracker's script: what an analytics tag does, visibly.
pub const TRACKER_JS: &str = r#"// consentry demo tracker: a third-party script, as analytics tags are.
(function () {
  var id = Math.random().toString(36).slice(2, 12);
  // A first-party cookie set from script, as _ga is.
  document.cookie = "_demo_trk=" + id + "; Path=/; Max-Age=31536000; SameSite=Lax";
  // Report home, to the host the script came from.
  var me = document.currentScript && document.currentScript.src;
  if (me) {
    new Image().src = new URL("/collect", me).href + "?id=" + id + "&page=" + encodeURIComponent(location.href);
  }
  var note = document.createElement("p");
  note.id = "demo-tracker-ran";
  note.textContent = "The third-party demo tracker ran and set the cookie _demo_trk.";
  note.setAttribute("style", "background:#fde8e8;border:1px solid #c81e1e;padding:.5em 1em");
  (document.querySelector("main") || document.body || document.documentElement).appendChild(note);
})();
"#;

/// Answers one request of the demo tracker; `hits` counts `/collect`.
pub fn respond_tracker<B>(request: &Request<B>, hits: &AtomicU64) -> Response<Body> {
    match request.uri().path() {
        "/tracker.js" => {
            let mut response = text(StatusCode::OK, "text/javascript; charset=utf-8", TRACKER_JS);
            // Each page view fetches it again, as a demo should show.
            response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        "/collect" => {
            let count = hits.fetch_add(1, Ordering::Relaxed) + 1;
            let query = request.uri().query().unwrap_or("");
            tracing::info!(hits = count, query, "demo tracker ran in a browser");
            let mut response = Response::new(body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        "/" => text(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!("consentry demo tracker: ran {} time(s)\n", hits.load(Ordering::Relaxed)),
        ),
        _ => text(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n"),
    }
}

/// Binds `addr` and serves the demo tracker there in a new task.
pub async fn spawn_tracker(addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let hits = Arc::new(AtomicU64::new(0));
    Ok((bound, tokio::spawn(serve(listener, move |request| respond_tracker(&request, &hits)))))
}

/// Accepts connections on `listener` and answers each request with
/// `respond`, until the task is dropped.
async fn serve<F>(listener: TcpListener, respond: F)
where
    F: Fn(Request<Incoming>) -> Response<Body> + Clone + Send + Sync + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let respond = respond.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(request);
                async move { Ok::<_, Infallible>(response) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
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
        for name in [
            "sessionid",
            "csrftoken",
            "lang",
            "_ga",
            "_ga_DEMO1234",
            "hubspotutk",
            "visitor_stats",
            "_fbp",
            "_gcl_au",
        ] {
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
    fn the_home_page_loads_the_tracker_once_before_the_body_ends() {
        assert_eq!(home_page(None), HOME_PAGE);
        let page = home_page(Some("http://127.0.0.1:8082/tracker.js?a=1&b=\"2\""));
        let tag = r#"<script async src="http://127.0.0.1:8082/tracker.js?a=1&amp;b=&quot;2&quot;"></script>"#;
        assert_eq!(page.matches(tag).count(), 1, "{page}");
        assert!(page.find(tag).unwrap() < page.find("</body>").unwrap());
        assert!(page.trim_end().ends_with("</html>"));
        // Served through `respond_with`.
        let request = Request::get("/").body(()).unwrap();
        assert_eq!(
            respond_with(&request, Some("http://t.test/x.js")).headers().get_all(SET_COOKIE).iter().count(),
            COOKIES.len()
        );
    }

    #[test]
    fn tracker_urls_must_be_absolute_http() {
        assert_eq!(
            tracker_url("http://127.0.0.1:8082/tracker.js").unwrap(),
            "http://127.0.0.1:8082/tracker.js"
        );
        assert!(tracker_url("https://tracker.localhost/t.js").is_ok());
        for bad in ["/tracker.js", "javascript:alert(1)", "ftp://x/t.js", "data:text/javascript,1", ""] {
            assert!(tracker_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_tracker_serves_its_script_and_counts_reports() {
        let hits = AtomicU64::new(0);
        let script = respond_tracker(&Request::get("/tracker.js").body(()).unwrap(), &hits);
        assert_eq!(script.status(), StatusCode::OK);
        assert_eq!(script.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(script.headers()[CACHE_CONTROL], "no-store");
        let js = script.into_body().collect().await.unwrap().to_bytes();
        let js = std::str::from_utf8(&js).unwrap();
        assert!(js.contains(&format!("document.cookie = \"{TRACKER_COOKIE}=")), "{js}");
        assert!(js.contains("\"/collect\"") && js.contains("demo-tracker-ran"));

        for _ in 0..2 {
            let report = respond_tracker(&Request::get("/collect?id=x&page=p").body(()).unwrap(), &hits);
            assert_eq!(report.status(), StatusCode::NO_CONTENT);
        }
        assert_eq!(hits.load(Ordering::Relaxed), 2);
        let status = respond_tracker(&Request::get("/").body(()).unwrap(), &hits);
        let text = status.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&text[..], b"consentry demo tracker: ran 2 time(s)\n");
        let missing = respond_tracker(&Request::get("/nope").body(()).unwrap(), &hits);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn spawned_origin_and_tracker_answer_on_sockets() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        async fn get(addr: SocketAddr, path: &str) -> String {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut out = String::new();
            stream.read_to_string(&mut out).await.unwrap();
            out
        }
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (tracker, _t) = spawn_tracker(any).await.unwrap();
        let url = format!("http://{tracker}/tracker.js");
        let (origin, _o) = spawn_origin_with(any, Some(url.clone())).await.unwrap();
        assert!(get(origin, "/").await.contains(&format!("<script async src=\"{url}\">")));
        assert!(get(tracker, "/tracker.js").await.contains(TRACKER_COOKIE));
        assert!(get(tracker, "/collect?id=1").await.starts_with("HTTP/1.1 204"));
        assert!(get(tracker, "/").await.ends_with("ran 1 time(s)\n"));
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
