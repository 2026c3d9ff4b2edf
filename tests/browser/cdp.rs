//! A small Chrome DevTools Protocol client for the browser tests: starts
//! Debian's headless Chromium, speaks CDP over one WebSocket, and offers
//! the dozen commands the consent-loop tests need (navigate, evaluate,
//! click, press a key, read every cookie, take a screenshot, switch
//! JavaScript off, watch network events).
//!
//! # Why hand-written
//! The well-kept crates were looked at first. `chromiumoxide` 0.9 pulls in
//! `reqwest` (not optional), a second `tungstenite` (through
//! `async-tungstenite` 0.32) and `chromiumoxide_cdp`, about 110,000 lines of
//! generated protocol types; `headless_chrome` 1.0 is synchronous, brings
//! its own older `tungstenite` and generates the protocol types in a build
//! script. CI compiles the test targets twice (`clippy --all-targets`, then
//! `cargo test`) on two cores, for some twelve protocol methods. CDP is
//! JSON over a WebSocket, and `tokio-tungstenite` is already a
//! dev-dependency, so the client is this file: each command is written as
//! the protocol documents it, which also keeps what the tests ask the
//! browser plain to read.
//!
//! # Shape
//! [`Chromium::launch`] starts the browser in its own process group with a
//! fresh profile and `--remote-debugging-port=0`, and reads the
//! `DevTools listening on ws://…` line from its stderr. [`Cdp`] owns the
//! socket: a task reads every message, hands replies to the caller waiting
//! on that id and keeps events for [`Page::wait_event`]. [`Page`] is one tab
//! attached in flattened-session mode (its commands carry a `sessionId`).
//! Every wait has a deadline ([`WAIT`]): a browser that does not do what a
//! test expects fails the test with what it saw, never hangs it.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// The longest any one wait (a DOM condition, an event, a command's reply)
/// may take: generous, because CI shares two cores with other work; a
/// condition that holds is seen within milliseconds.
pub const WAIT: Duration = Duration::from_secs(20);

/// How often a DOM condition is re-checked while waiting for it.
const POLL: Duration = Duration::from_millis(25);

/// Flags that make headless Chromium quiet, self-contained and offline:
/// no sandbox (CI runs as root in a container), no GPU, no QUIC, no
/// first-run UI, and none of the background services that call home.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    // Environment proxy settings must not take the loopback sites away.
    "--no-proxy-server",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--remote-debugging-port=0",
    // The HTTPS test serves a self-signed certificate made on the spot.
    "--ignore-certificate-errors",
];

/// A running headless Chromium; killed (its whole process group) when
/// dropped.
pub struct Chromium {
    child: Child,
    /// The DevTools WebSocket of the browser target.
    pub ws_url: String,
    /// The last lines Chromium wrote to stderr, for failure messages.
    log: Arc<Mutex<VecDeque<String>>>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts `binary` headless with a fresh profile. `resolver_rules` is
    /// passed as `--host-resolver-rules` (how the tests give loopback
    /// servers their own host names, and keep every other name from
    /// resolving).
    pub fn launch(binary: &Path, resolver_rules: &str) -> Chromium {
        use std::os::unix::process::CommandExt as _;
        let profile = tempfile::tempdir().unwrap();
        let mut command = Command::new(binary);
        command
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--host-resolver-rules={resolver_rules}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group, so that Drop can end the renderer and helper
            // processes with it.
            .process_group(0);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (found, url) = std::sync::mpsc::channel();
        let lines = log.clone();
        // Reads stderr to the end: the URL once, then keeps the pipe
        // drained (a full pipe would stall the browser) and the tail kept.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("DevTools listening on ")
                    && let Some(found) = found.take()
                {
                    let _ = found.send(rest.trim().to_string());
                }
                let mut lines = lines.lock().unwrap();
                if lines.len() == 40 {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        });
        let mut chromium = Chromium { child, ws_url: String::new(), log, _profile: profile };
        match url.recv_timeout(WAIT) {
            Ok(ws) => chromium.ws_url = ws,
            Err(_) => panic!("Chromium did not print its DevTools URL:\n{}", chromium.log_tail()),
        }
        chromium
    }

    /// The last lines of Chromium's stderr.
    pub fn log_tail(&self) -> String {
        self.log.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The group is the browser's own (process_group(0)): its pid.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// One CDP event: its method, params and the session it came from.
#[derive(Debug, Clone)]
pub struct Event {
    /// `Network.requestWillBeSent`...
    pub method: String,
    /// Its parameters.
    pub params: Value,
    /// The flattened session it belongs to (none for browser events).
    pub session: Option<String>,
}

/// The connection to the browser.
pub struct Cdp {
    outgoing: mpsc::UnboundedSender<Message>,
    pending: Pending,
    events: Arc<Mutex<Vec<Event>>>,
    arrived: Arc<Notify>,
    next_id: AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Cdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Cdp {
    /// Connects to the browser's DevTools WebSocket.
    pub async fn connect(ws_url: &str) -> Cdp {
        let (socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(ws_url))
            .await
            .expect("DevTools connection timed out")
            .unwrap_or_else(|e| panic!("cannot connect to {ws_url}: {e}"));
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Message>();
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let (p, e, n) = (pending.clone(), events.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = queue.recv() => match message {
                        Some(message) => if sink.send(message).await.is_err() { break },
                        None => break,
                    },
                    message = stream.next() => match message {
                        Some(Ok(Message::Text(text))) => dispatch(text.as_str(), &p, &e, &n),
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    },
                }
            }
            // The browser went away: every caller still waiting hears it.
            for (_, waiter) in p.lock().unwrap().drain() {
                let _ = waiter.send(Err("DevTools connection closed".into()));
            }
        });
        Cdp { outgoing, pending, events, arrived, next_id: AtomicU64::new(1), task }
    }

    /// Sends one command (to a page's session, or to the browser) and
    /// waits for its result.
    pub async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.outgoing.send(Message::Text(message.to_string().into())).map_err(|_| "connection closed")?;
        match tokio::time::timeout(WAIT, rx).await {
            Ok(Ok(result)) => result.map_err(|e| format!("{method}: {e}")),
            Ok(Err(_)) => Err(format!("{method}: connection closed")),
            Err(_) => {
                self.pending.lock().unwrap().remove(&id);
                Err(format!("{method}: no reply within {WAIT:?}"))
            }
        }
    }

    /// Every cookie the browser holds (HttpOnly ones included), as the
    /// cookie store has them.
    pub async fn cookies(&self) -> Vec<Cookie> {
        let result = self.call(None, "Storage.getCookies", json!({})).await.unwrap();
        let cookies = result["cookies"].as_array().cloned().unwrap_or_default();
        cookies
            .iter()
            .map(|c| Cookie {
                name: c["name"].as_str().unwrap_or_default().to_string(),
                value: c["value"].as_str().unwrap_or_default().to_string(),
                domain: c["domain"].as_str().unwrap_or_default().to_string(),
                path: c["path"].as_str().unwrap_or_default().to_string(),
                http_only: c["httpOnly"].as_bool().unwrap_or(false),
                secure: c["secure"].as_bool().unwrap_or(false),
            })
            .collect()
    }

    /// Opens a new tab and attaches to it.
    pub async fn new_page(&self) -> Page<'_> {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" })).await.unwrap();
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = self
            .call(None, "Target.attachToTarget", json!({ "targetId": target_id, "flatten": true }))
            .await
            .unwrap();
        let session = attached["sessionId"].as_str().unwrap().to_string();
        let page = Page { cdp: self, session };
        // A headless tab is not focused by default; focus events and
        // :focus-visible then behave as in a window the visitor looks at.
        page.call("Emulation.setFocusEmulationEnabled", json!({ "enabled": true })).await;
        // Uncaught exceptions arrive as Runtime.exceptionThrown events.
        page.call("Runtime.enable", json!({})).await;
        page
    }
}

/// Routes one message from the browser: a reply to its waiter, an event
/// to the list.
fn dispatch(text: &str, pending: &Pending, events: &Mutex<Vec<Event>>, arrived: &Notify) {
    let Ok(message) = serde_json::from_str::<Value>(text) else { return };
    if let Some(id) = message["id"].as_u64() {
        if let Some(waiter) = pending.lock().unwrap().remove(&id) {
            let result = match message.get("error") {
                Some(error) => Err(error.to_string()),
                None => Ok(message["result"].clone()),
            };
            let _ = waiter.send(result);
        }
    } else if let Some(method) = message["method"].as_str() {
        events.lock().unwrap().push(Event {
            method: method.to_string(),
            params: message["params"].clone(),
            session: message["sessionId"].as_str().map(str::to_string),
        });
        arrived.notify_waiters();
    }
}

/// A cookie in the browser's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// Domain (a leading dot for domain cookies).
    pub domain: String,
    /// Path.
    pub path: String,
    /// Whether scripts cannot see it.
    pub http_only: bool,
    /// Whether it is sent over HTTPS only.
    pub secure: bool,
}

/// A key the tests press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Tab.
    Tab,
    /// Shift+Tab.
    ShiftTab,
    /// Enter (Return).
    Enter,
    /// The space bar.
    Space,
    /// Escape.
    Escape,
}

impl Key {
    /// `key`, `code`, Windows virtual key code, the text it types, and the
    /// modifier bits (8 = Shift), as `Input.dispatchKeyEvent` wants them.
    fn describe(self) -> (&'static str, &'static str, u32, Option<&'static str>, u32) {
        match self {
            Key::Tab => ("Tab", "Tab", 9, None, 0),
            Key::ShiftTab => ("Tab", "Tab", 9, None, 8),
            Key::Enter => ("Enter", "Enter", 13, Some("\r"), 0),
            Key::Space => (" ", "Space", 32, Some(" "), 0),
            Key::Escape => ("Escape", "Escape", 27, None, 0),
        }
    }
}

/// One tab.
pub struct Page<'a> {
    cdp: &'a Cdp,
    session: String,
}

impl Page<'_> {
    /// A command in this tab's session; a protocol error fails the test.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.cdp.call(Some(&self.session), method, params).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Evaluates a JavaScript expression in the page (promises awaited)
    /// and returns its value as JSON. An exception fails the test.
    pub async fn eval(&self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(details) = result.get("exceptionDetails") {
            panic!("{expression}\nthrew: {details}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy in the page; fails with `what`
    /// and the last value seen after [`WAIT`]. Evaluation errors while the
    /// page is being replaced (a navigation) count as "not yet".
    pub async fn wait_for(&self, what: &str, expression: &str) {
        let deadline = Instant::now() + WAIT;
        let probe =
            format!("(() => {{ try {{ return !!({expression}); }} catch (e) {{ return String(e); }} }})()");
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let result = self
                .cdp
                .call(
                    Some(&self.session),
                    "Runtime.evaluate",
                    json!({ "expression": probe, "returnByValue": true }),
                )
                .await;
            match result {
                Ok(r) if r["result"]["value"] == json!(true) => return,
                Ok(r) => last = r["result"]["value"].clone(),
                Err(e) => last = json!(e),
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("waited {WAIT:?} for {what}: `{expression}` is still {last}");
    }

    /// Loads `url` and waits until the new document has finished loading
    /// (its `load` event has fired, so every async script that was going
    /// to run has run).
    pub async fn goto(&self, url: &str) {
        let token = self.mark_document().await;
        let navigated = self.call("Page.navigate", json!({ "url": url })).await;
        if let Some(error) = navigated.get("errorText") {
            panic!("navigating to {url}: {error}");
        }
        self.wait_for_new_document(&token).await;
    }

    /// Reloads the page and waits for the new document to load.
    pub async fn reload(&self) {
        let token = self.mark_document().await;
        self.call("Page.reload", json!({})).await;
        self.wait_for_new_document(&token).await;
    }

    /// Leaves a mark on the current document, so that a later wait can
    /// tell it from the next one ([`Page::wait_for_new_document`]).
    pub async fn mark_document(&self) -> String {
        let token = format!("m{}", self.cdp.next_id.fetch_add(1, Ordering::Relaxed));
        self.eval(&format!("document.documentElement.dataset.cdpMark = '{token}'")).await;
        token
    }

    /// Waits until the document marked `token` was replaced and the new
    /// one has loaded.
    pub async fn wait_for_new_document(&self, token: &str) {
        self.wait_for(
            "the next page to load",
            &format!(
                "document.documentElement.dataset.cdpMark !== '{token}' && document.readyState === 'complete'"
            ),
        )
        .await;
    }

    /// Clicks the middle of the element `selector` with the mouse, as a
    /// visitor does: scrolled into view first, and only if it is the
    /// topmost element there (so a covered or zero-sized button fails).
    pub async fn click(&self, selector: &str) {
        let point = self
            .eval(&format!(
                r#"(() => {{
                    const el = document.querySelector({selector:?});
                    if (!el) return 'no element ' + {selector:?};
                    el.scrollIntoView({{ block: 'center', inline: 'center' }});
                    const r = el.getBoundingClientRect();
                    if (r.width < 1 || r.height < 1) return {selector:?} + ' has no size';
                    const x = r.left + r.width / 2, y = r.top + r.height / 2;
                    const top = document.elementFromPoint(x, y);
                    if (!top || !(top === el || el.contains(top) || (el.labels && [...el.labels].some(l => l.contains(top)))))
                        return {selector:?} + ' is covered by ' + (top ? top.outerHTML.slice(0, 120) : 'nothing');
                    return [x, y];
                }})()"#
            ))
            .await;
        let Some([x, y]) =
            point.as_array().map(|a| [a[0].as_f64().unwrap_or(0.0), a[1].as_f64().unwrap_or(0.0)])
        else {
            panic!("cannot click {selector}: {point}");
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Presses and releases a key, sent to whatever has focus.
    pub async fn press(&self, key: Key) {
        let (name, code, vk, text, modifiers) = key.describe();
        let mut down = json!({
            "type": if text.is_some() { "keyDown" } else { "rawKeyDown" },
            "key": name, "code": code,
            "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk,
            "modifiers": modifiers,
        });
        if let Some(text) = text {
            down["text"] = json!(text);
            down["unmodifiedText"] = json!(text);
        }
        self.call("Input.dispatchKeyEvent", down).await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": name, "code": code, "windowsVirtualKeyCode": vk,
                    "nativeVirtualKeyCode": vk, "modifiers": modifiers }),
        )
        .await;
    }

    /// The id (or, without one, a short description) of the focused
    /// element.
    pub async fn focused(&self) -> String {
        self.eval(
            "(() => { const a = document.activeElement; \
             return !a ? 'nothing' : a.id || (a === document.body ? 'body' : a.outerHTML.slice(0, 80)); })()",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Sets the viewport: CSS pixels, and whether it is a phone (touch,
    /// `<meta viewport>` honoured).
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
        self.call("Emulation.setTouchEmulationEnabled", json!({ "enabled": mobile })).await;
    }

    /// Saves a PNG of the viewport at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Turns the page's JavaScript off (or back on); DevTools evaluation
    /// keeps working.
    pub async fn javascript(&self, enabled: bool) {
        self.call("Emulation.setScriptExecutionDisabled", json!({ "value": !enabled })).await;
    }

    /// Runs `source` in every document this tab loads from now on, before
    /// the page's own scripts (DevTools runs it whatever the page's CSP).
    pub async fn init_script(&self, source: &str) {
        self.call("Page.enable", json!({})).await;
        self.call("Page.addScriptToEvaluateOnNewDocument", json!({ "source": source })).await;
    }

    /// Starts recording this tab's network events.
    pub async fn record_network(&self) {
        self.call("Network.enable", json!({})).await;
    }

    /// The uncaught JavaScript exceptions of this tab so far, one line each.
    pub fn exceptions(&self) -> Vec<String> {
        let events = self.cdp.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e.session.as_deref() == Some(&self.session) && e.method == "Runtime.exceptionThrown")
            .map(|e| {
                let d = &e.params["exceptionDetails"];
                let what = d["exception"]["description"].as_str().or(d["text"].as_str()).unwrap_or("?");
                format!("{what} at {}:{}", d["url"].as_str().unwrap_or("?"), d["lineNumber"])
            })
            .collect()
    }

    /// The URLs this tab has requested so far (with
    /// [`Page::record_network`] on), in order.
    pub fn requested(&self) -> Vec<String> {
        let events = self.cdp.events.lock().unwrap();
        events
            .iter()
            .filter(|e| {
                e.session.as_deref() == Some(&self.session) && e.method == "Network.requestWillBeSent"
            })
            .filter_map(|e| e.params["request"]["url"].as_str().map(str::to_string))
            .collect()
    }

    /// Waits for an event of this tab named `method` whose params satisfy
    /// `matches`, among those received so far and later.
    pub async fn wait_event(&self, method: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let arrived = self.cdp.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let events = self.cdp.events.lock().unwrap();
                let mine = events.iter().filter(|e| e.session.as_deref() == Some(&self.session));
                if let Some(event) = mine.clone().find(|e| e.method == method && matches(&e.params)) {
                    return event.params.clone();
                }
                if Instant::now() >= deadline {
                    let seen: Vec<&str> = mine.map(|e| e.method.as_str()).collect();
                    panic!("waited {WAIT:?} for {method}; this tab's events: {seen:?}");
                }
            }
            let _ = tokio::time::timeout_at(deadline.into(), arrived).await;
        }
    }
}
