//! The streaming HTML rewriter: neutralises third-party `<script>`,
//! `<iframe>`, tracking `<img>`, `<link rel=preload…>`, `<embed>`/`<object>`
//! and `<noscript>` payloads of refused categories while the page streams.
//!
//! # Design: lol_html finds, consentry edits
//!
//! lol_html (non-strict, `Settings::new_send()`) is used as a tokenizer and
//! selector matcher only: its handlers never mutate a token and never
//! capture text, so its output is always a byte-exact copy of its input
//! (raw slices of what it was fed). Each handler instead records *edits*
//! against absolute input offsets, which lol_html gives for every element
//! and attribute (`source_location`). The output sink receives lol_html's
//! raw output in order and applies the edits as the bytes go by ([`Applier`]).
//! Neutralising is then a handful of insertions into the original bytes
//! (` type="text/plain" data-category="analytics"` after the tag name,
//! `data-` before `src`), never a re-serialisation: everything consentry does
//! not change stays byte for byte, whatever the quoting, case or encoding.
//!
//! This buys three things:
//!
//! 1. **Integrity on failure.** Because the sink has received exactly the
//!    first `recv` bytes of the input, the unemitted rest is known precisely:
//!    it is the last `fed - recv` bytes fed (lol_html's internal buffer plus
//!    whatever it had not flushed when it failed). [`PageRewriter`] keeps
//!    just that tail (bounded by lol_html's memory limit plus one chunk). On
//!    any rewriter error, memory-limit bail-out or even a panic inside
//!    lol_html, held bytes are released unmodified, the tail goes out through
//!    the edit applier, and the rest of the body passes through: the visitor
//!    never gets a truncated page.
//! 2. **Byte identity** when nothing matches, including invalid UTF-8
//!    inside scripts (captured lol_html text is decoded and re-encoded, which
//!    would replace it with U+FFFD; consentry never captures text).
//! 3. **Inline scripts decided after their start tag has passed.** lol_html
//!    emits the start tag before the script text arrives. An inline
//!    JavaScript `<script>` is therefore *held* at the sink: its start tag
//!    and text are buffered (up to [`SCRIPT_WINDOW`]) while the text is
//!    searched for signatures with the policy's Aho-Corasick automaton,
//!    carrying the last `max_pattern_len - 1` bytes across chunks so a
//!    signature split between chunks is found. As soon as a refused
//!    signature is seen the script is neutralised and released; otherwise it
//!    is released unchanged at `</script>`. A script larger than the window
//!    is released unchanged once the window is full (a signature found later
//!    is logged and recorded, but can no longer be neutralised); tracker
//!    snippets are a few kilobytes, so in practice the window holds the
//!    whole script. Only start tag + text are held, never the rest of the
//!    page, and only for inline JavaScript.
//!
//! `<noscript>` content is raw text to lol_html (scripting is on), so it is
//! held the same way (up to [`NOSCRIPT_WINDOW`]) and rewritten at
//! `</noscript>` by a nested [`PageRewriter`] over the fragment, whose
//! decisions are recorded as [`Item::Noscript`].
//!
//! # What is neutralised, and how
//!
//! | element | URL | unknown third party | inert (default) |
//! |---|---|---|---|
//! | `<script src>` | `src` | policy default | `type="text/plain" data-category`, old `type` → `data-type`, `src` kept |
//! | inline `<script>` (JS types only) | signatures | not blocked | same |
//! | `<iframe>` | `src` | policy default | `src` → `data-src`, `data-category` |
//! | `<img>` | `src`, `srcset` | blocked only if 1×1 or smaller | `src`/`srcset` → `data-src`/`data-srcset` |
//! | `<link rel=preload\|prefetch\|preconnect\|dns-prefetch\|modulepreload>` | `href` | policy default for `modulepreload` and script preloads, else allowed | `href` → `data-href` |
//! | `<embed>` / `<object>` | `src` / `data` | policy default | `src` → `data-src` / `data` → `data-data` |
//!
//! Unknown third-party images and resource hints are content (image CDNs,
//! font preconnects), not trackers: blocking every one of them would break
//! pages, so only rule matches and pixel-sized images are decided for them.
//! With `neutralise = "remove"` the element is removed instead (an
//! `<object>` keeps its fallback content, as a browser would show it).
//! Scripts of non-JavaScript types (JSON-LD, `text/plain` left by a consent
//! manager, templates, import maps) are never touched; elements without a
//! network URL (`data-src` only, `about:blank`) are left as they are, which
//! is how markup a consent manager already neutralised stays alone.
//!
//! URLs resolve against the page URL or the first `<base href>`; relative
//! URLs under a first-party base take a fast path without URL parsing.
//! Decisions name the URL without its query (tracking parameters and
//! personal data stay out of logs).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use compact_str::CompactString;
use encoding_rs::Encoding;
use lol_html::html_content::EndTag;
use lol_html::send::{ElementContentHandlers, EndTagHandler};
use lol_html::{AsciiCompatibleEncoding, MemorySettings, OutputSink, Selector};
use url::Url;

use crate::category::{CategoryId, CategorySet};
use crate::consent::GPC_NOTE;
use crate::decision::{Action, Decision, Decisions, Item};
use crate::policy::{InlineSearcher, Mode, Neutralise, Policy, ResourceRule};
use crate::response_body::{Passthrough, record_passthrough};
use crate::route::Site;

/// Most bytes of one inline script (start tag + text) held back while its
/// signatures are searched.
pub const SCRIPT_WINDOW: usize = 128 * 1024;

/// Most bytes of one `<noscript>` held back to be rewritten.
pub const NOSCRIPT_WINDOW: usize = 64 * 1024;

/// lol_html's memory limit (parser buffer for a token split across chunks,
/// open-element stack). A larger single tag (a multi-megabyte `data:` URL)
/// makes the rewriter bail out and the rest of the page pass through.
pub const PARSER_MEMORY: usize = 8 * 1024 * 1024;

/// Most decisions kept per page; a pathological page with thousands of
/// trackers must not grow memory without bound. The rest are still acted
/// on, counted, and logged at the end of the page.
pub const MAX_DECISIONS: usize = 4096;

/// Initial capacity of a hold buffer: most inline scripts fit.
const HELD_CAPACITY: usize = 4096;

/// First-party URL prefixes remembered per page.
const FIRST_PARTY_PREFIXES: usize = 4;

/// Hosts whose first-party status is remembered per page.
const HOST_CACHE: usize = 16;

/// The rule text of decisions on unknown third parties (shared, as rule
/// texts are).
static UNKNOWN_THIRD_PARTY: LazyLock<Arc<str>> = LazyLock::new(|| "unknown_third_party default".into());

/// An edit end that is not known yet (a removed element whose end tag has
/// not arrived).
const OPEN: usize = usize::MAX;

/// What a page rewriter needs to know.
#[derive(Clone)]
pub struct PageOptions {
    /// The site: its hosts are first party, its policy has the rules.
    pub site: Arc<Site>,
    /// Categories the visitor granted.
    pub granted: CategorySet,
    /// Categories refused only because the browser sent `Sec-GPC: 1`
    /// ([`crate::consent::Consent::gpc_refused`]): decisions blocking an
    /// item of one of them say so ([`crate::consent::GPC_NOTE`]).
    pub gpc_refused: CategorySet,
    /// The page URL, to resolve relative URLs (None: relative URLs are first party).
    pub page_url: Option<Url>,
    /// HTML inserted before `</body>` (or at the end), UTF-8; it is encoded
    /// into the page's encoding.
    pub banner: Option<Bytes>,
    /// CSP nonce added to the inline scripts that are allowed to run (only
    /// when the CSP header carries the same nonce).
    pub nonce: Option<String>,
    /// Encoding from `Content-Type`; None: UTF-8 until a `<meta charset>`.
    /// Must be ASCII-compatible (the caller passes the rest through).
    pub charset: Option<&'static Encoding>,
}

impl std::fmt::Debug for PageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageOptions")
            .field("site", &self.site.name)
            .field("granted", &self.granted)
            .field("page_url", &self.page_url.as_ref().map(Url::as_str))
            .field("banner", &self.banner.as_ref().map(Bytes::len))
            .field("charset", &self.charset.map(Encoding::name))
            .finish_non_exhaustive()
    }
}

/// Immutable per-page settings shared by every handler.
struct Config {
    site: Arc<Site>,
    granted: CategorySet,
    gpc_refused: CategorySet,
    enforce: bool,
    nonce: Option<String>,
    page_url: Option<Url>,
    /// The page's host (always first party).
    page_host: Option<String>,
    /// Decisions are recorded with this item instead (noscript fragments).
    item_override: Option<Item>,
}

impl Config {
    fn policy(&self) -> &Policy {
        &self.site.policy
    }
}

// ---------------------------------------------------------------------------
// Edits

/// Replace input bytes `at..end` by `insert` (`end == at`: pure insertion).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edit {
    at: usize,
    end: usize,
    insert: Cow<'static, [u8]>,
    /// Set on removals whose end is only known at the end tag.
    drop_id: Option<u32>,
}

impl Edit {
    fn insert(at: usize, text: impl Into<Cow<'static, [u8]>>) -> Edit {
        Edit { at, end: at, insert: text.into(), drop_id: None }
    }

    fn delete(range: Range<usize>) -> Edit {
        Edit { at: range.start, end: range.end, insert: Cow::Borrowed(b""), drop_id: None }
    }
}

#[derive(Debug, Clone, Copy)]
struct Skip {
    end: usize,
    drop_id: Option<u32>,
}

/// Applies edits to a stream of original bytes given in order.
#[derive(Debug, Default)]
struct Applier {
    out: Vec<u8>,
    /// Absolute input offset of the next byte fed.
    pos: usize,
    edits: VecDeque<Edit>,
    skip: Option<Skip>,
}

impl Applier {
    /// Adds an edit (kept sorted by offset, stable for equal offsets).
    fn push(&mut self, edit: Edit) {
        let i = self.edits.partition_point(|e| e.at <= edit.at);
        self.edits.insert(i, edit);
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if let Some(skip) = self.skip {
                let n = (skip.end - self.pos).min(data.len());
                self.pos += n;
                data = &data[n..];
                if self.pos >= skip.end {
                    self.skip = None;
                }
                continue;
            }
            // Edits inside a region that was skipped are moot.
            while self.edits.front().is_some_and(|e| e.at < self.pos) {
                self.edits.pop_front();
            }
            match self.edits.front() {
                Some(e) if e.at < self.pos + data.len() => {
                    let k = e.at - self.pos;
                    self.out.extend_from_slice(&data[..k]);
                    self.pos += k;
                    data = &data[k..];
                    if let Some(e) = self.edits.pop_front() {
                        self.out.extend_from_slice(&e.insert);
                        if e.end > e.at {
                            self.skip = Some(Skip { end: e.end, drop_id: e.drop_id });
                        }
                    }
                }
                _ => {
                    self.out.extend_from_slice(data);
                    self.pos += data.len();
                    data = &[];
                }
            }
        }
    }

    /// Sets the end of an open removal.
    fn close_drop(&mut self, id: u32, end: usize) {
        if let Some(skip) = &mut self.skip
            && skip.drop_id == Some(id)
        {
            if end <= self.pos {
                self.skip = None;
            } else {
                skip.end = end;
            }
            return;
        }
        if let Some(e) = self.edits.iter_mut().find(|e| e.drop_id == Some(id)) {
            e.end = end.max(e.at);
        }
    }

    /// Ends an open removal here (the rewriter stopped before its end tag):
    /// returns whether it was in progress.
    fn cut_drop(&mut self, id: u32) -> bool {
        if self.skip.is_some_and(|s| s.drop_id == Some(id)) {
            self.skip = None;
            return true;
        }
        self.edits.retain(|e| e.drop_id != Some(id));
        false
    }

    /// End of input: insertions at the very end still happen.
    fn finish(&mut self) {
        while let Some(e) = self.edits.pop_front() {
            if e.at >= self.pos {
                self.out.extend_from_slice(&e.insert);
            }
        }
        self.skip = None;
    }
}

// ---------------------------------------------------------------------------
// Signature search across chunks

/// Finds signatures in text given chunk by chunk: the last
/// `max_pattern_len - 1` bytes are carried over, and a match is reported
/// only if it ends in the new chunk, so none is missed or reported twice.
#[derive(Debug, Default)]
struct Scanner {
    carry: Vec<u8>,
    hay: Vec<u8>,
}

impl Scanner {
    fn feed(&mut self, ac: &InlineSearcher, data: &[u8], mut found: impl FnMut(usize)) {
        if data.is_empty() {
            return;
        }
        let keep = ac.max_pattern_len().saturating_sub(1);
        // Matches that start in the carried bytes and end in this chunk:
        // they end within its first `keep` bytes.
        if !self.carry.is_empty() {
            self.hay.clear();
            self.hay.extend_from_slice(&self.carry);
            self.hay.extend_from_slice(&data[..keep.min(data.len())]);
            let old = self.carry.len();
            ac.for_each_match(&self.hay, |pattern, start, end| {
                if start < old && end > old {
                    found(pattern);
                }
            });
        }
        // Matches inside this chunk, searched in place.
        ac.for_each_match(data, |pattern, _, _| found(pattern));
        if data.len() >= keep {
            self.carry.clear();
            self.carry.extend_from_slice(&data[data.len() - keep..]);
        } else {
            self.carry.extend_from_slice(data);
            let excess = self.carry.len().saturating_sub(keep);
            self.carry.drain(..excess);
        }
    }
}

// ---------------------------------------------------------------------------
// Per-element state

/// An inline script being classified.
struct ScriptState {
    id: u32,
    start: usize,
    /// Absolute offset where its text begins.
    text_start: usize,
    /// Absolute offset just after the tag name (where attributes are inserted).
    name_end: usize,
    /// Offsets of its `type` attribute names (renamed to `data-type`).
    type_names: Vec<usize>,
    has_nonce: bool,
    /// Bytes held back (from `start`), while undecided and enforcing.
    held: Option<Vec<u8>>,
    /// Bytes of `held` already searched for signatures. Held text is
    /// searched in one go when something waits for the answer (the end of
    /// a `write`, `</script>`, a full window, a bail-out), not per piece
    /// lol_html emits: a page's inline scripts come in a few hundred pieces
    /// of a few bytes, and each search has a fixed cost.
    searched: usize,
    /// Bytes of the element received so far, from `start`.
    seen: usize,
    scanner: Scanner,
    /// Indices of matched rules, in order of first match.
    matched: Vec<usize>,
    /// The first refused rule matched.
    refused: Option<usize>,
    /// A refused match came after the window was released.
    late: bool,
    /// Decided and neutralised early; nothing more to do but close a removal.
    decided: bool,
}

impl ScriptState {
    /// Searches text for signatures (after what was searched before),
    /// recording matched rules and the first refused one.
    /// `late`: the text is no longer held (a refusal can only be logged).
    fn search(&mut self, cfg: &Config, text: &[u8], late: bool) {
        if self.decided || text.is_empty() {
            return;
        }
        let Some((ac, rule_of)) = cfg.policy().resources.inline_automaton() else { return };
        let policy = cfg.policy();
        let (matched, refused, was_late) = (&mut self.matched, &mut self.refused, &mut self.late);
        self.scanner.feed(ac, text, |p| {
            let idx = rule_of[p];
            if !matched.contains(&idx) {
                matched.push(idx);
            }
            if refused.is_none()
                && !policy.resource_allowed(Some(policy.resources.rule(idx).category), cfg.granted)
            {
                *refused = Some(idx);
                *was_late = late;
            }
        });
    }

    /// Searches the held text not searched yet.
    fn search_held(&mut self, cfg: &Config) {
        let Some(held) = self.held.take() else { return };
        // The start tag is not searched.
        let from = self.searched.max(self.text_start - self.start).min(held.len());
        self.search(cfg, &held[from..], false);
        self.searched = held.len();
        self.held = Some(held);
    }
}

/// A `<noscript>` being held for rewriting.
struct NoscriptHold {
    id: u32,
    content_start: usize,
    held: Vec<u8>,
    held_from: usize,
}

/// What the end tag of an element must do.
#[derive(Debug, Clone, Copy)]
enum EndAction {
    FinishScript(u32),
    CloseDrop(u32),
    DeleteEndTag,
    FinishNoscript(u32),
    Banner,
}

/// What to put back if a removal is cut short by a bail-out: an opening tag
/// of the same element, inert, so the rest of its content stays content of
/// an inert element and its end tag still closes it.
struct OpenDrop {
    id: u32,
    reopen: String,
}

/// Kinds of URL-bearing elements, for unknown third parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Executes or embeds: the policy's `unknown_third_party` decides.
    Active,
    /// Content (images, hints): unknown hosts are not decided.
    Passive,
}

/// The outcome for one URL.
struct Verdict {
    url: String,
    /// Inline: hosts fit in 24 bytes.
    host: CompactString,
    category: Option<CategoryId>,
    allowed: bool,
    rule: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BannerState {
    None,
    Pending,
    AtBodyEnd,
    Done,
}

/// State shared by lol_html's handlers and the output sink (both run
/// synchronously inside `write`; the mutex is never contended).
struct Shared {
    cfg: Arc<Config>,
    base: Option<Url>,
    base_seen: bool,
    /// Relative URLs resolve to a first-party host.
    relative_first_party: bool,
    /// Recent first-party answers by host.
    first_party_cache: std::cell::RefCell<Vec<(Box<str>, bool)>>,
    /// `scheme://host/` of recent first-party absolute URLs.
    first_party_prefixes: std::cell::RefCell<Vec<Box<str>>>,
    encoding: &'static Encoding,
    /// The chunk being written.
    input: Input,
    /// Bytes received from lol_html (= input offset of its output so far).
    recv: usize,
    applier: Applier,
    script: Option<ScriptState>,
    noscript: Option<NoscriptHold>,
    open_drops: Vec<OpenDrop>,
    next_id: u32,
    decisions: Decisions,
    /// Decisions beyond [`MAX_DECISIONS`], not kept.
    decisions_dropped: u64,
    banner: Option<Bytes>,
    banner_state: BannerState,
    /// An `<html>` or `<body>` start tag was seen: this is a document, not
    /// a fragment (which never gets the banner).
    document_seen: bool,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The chunk being written, where lol_html's handlers read attribute
/// names and values in place.
///
/// lol_html's `get_attribute` allocates the name asked for (twice: lower-cased,
/// then encoded) and the value on every call, and its attributes offer no
/// borrowed accessor; but every attribute has an absolute
/// `source_location`, and a tag lies inside the chunk being written unless
/// it started in an earlier one (at most one tag per chunk). Such a tag, and
/// a non-ASCII value (whose decoding depends on the page's encoding), are
/// read through lol_html instead, so the answers are lol_html's exactly.
#[derive(Debug, Default)]
struct Input {
    bytes: Bytes,
    /// Input offset of `bytes[0]`.
    at: usize,
}

type Attribute<'a> = lol_html::html_content::Attribute<'a>;

impl Input {
    fn slice(&self, location: Option<lol_html::html_content::SourceLocation>) -> Option<&[u8]> {
        let range = location?.bytes();
        let start = range.start.checked_sub(self.at)?;
        self.bytes.get(start..start + range.len())
    }

    /// The attribute is called `name` (lower case), in any case.
    fn name_is(&self, a: &Attribute<'_>, name: &str) -> bool {
        let location = a.name_source_location();
        match self.slice(location.clone()) {
            Some(bytes) => bytes.eq_ignore_ascii_case(name.as_bytes()),
            // Reading a name allocates: only names of the right length.
            None => location.is_none_or(|l| l.bytes().len() == name.len()) && a.name() == name,
        }
    }

    /// The value, as lol_html would give it.
    fn value<'a>(&'a self, a: &Attribute<'_>) -> Cow<'a, str> {
        match self.slice(a.value_source_location()).filter(|b| b.is_ascii()).map(std::str::from_utf8) {
            Some(Ok(value)) => Cow::Borrowed(value),
            _ => Cow::Owned(a.value()),
        }
    }

    /// The value of the first attribute called `name` (lower case), as
    /// lol_html's `get_attribute` would give it.
    fn get<'a>(&'a self, el: &lol_html::send::Element<'_, '_>, name: &str) -> Option<Cow<'a, str>> {
        el.attributes().iter().find(|a| self.name_is(a, name)).map(|a| self.value(a))
    }
}

/// What the rewriter reads of a `<script>` start tag besides `src`, in one
/// pass over its attributes.
#[derive(Debug, Default)]
struct ScriptAttrs {
    /// Its `type` and `language` make it JavaScript.
    javascript: bool,
    has_nonce: bool,
    /// Offsets of every `type` attribute name (renamed to `data-type`).
    type_names: Vec<usize>,
}

impl ScriptAttrs {
    fn read(input: &Input, el: &lol_html::send::Element<'_, '_>) -> ScriptAttrs {
        let mut out = ScriptAttrs::default();
        let mut type_value: Option<Cow<'_, str>> = None;
        let mut language: Option<Cow<'_, str>> = None;
        for a in el.attributes() {
            if input.name_is(a, "type") {
                if type_value.is_none() {
                    type_value = Some(input.value(a));
                }
                if let Some(l) = a.name_source_location() {
                    out.type_names.push(l.bytes().start);
                }
            } else if input.name_is(a, "language") {
                if language.is_none() {
                    language = Some(input.value(a));
                }
            } else if input.name_is(a, "nonce") {
                out.has_nonce = true;
            }
        }
        out.javascript = is_javascript(type_value.as_deref(), language.as_deref());
        out
    }
}

/// Whether a `<script>` with this `type` / `language` runs as JavaScript
/// (classic or module), per the HTML standard's "prepare the script
/// element".
pub fn is_javascript(type_attr: Option<&str>, language: Option<&str>) -> bool {
    const JS: [&str; 16] = [
        "application/ecmascript",
        "application/javascript",
        "application/x-ecmascript",
        "application/x-javascript",
        "text/ecmascript",
        "text/javascript",
        "text/javascript1.0",
        "text/javascript1.1",
        "text/javascript1.2",
        "text/javascript1.3",
        "text/javascript1.4",
        "text/javascript1.5",
        "text/jscript",
        "text/livescript",
        "text/x-ecmascript",
        "text/x-javascript",
    ];
    let html_ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r');
    match (type_attr, language) {
        (Some(t), _) if !t.is_empty() => {
            let t = t.trim_matches(html_ws);
            t.eq_ignore_ascii_case("module") || JS.iter().any(|j| j.eq_ignore_ascii_case(t))
        }
        (Some(_), _) | (None, None) => true,
        (None, Some("")) => true,
        (None, Some(l)) => {
            let l = l.to_ascii_lowercase();
            JS.iter().any(|j| j.strip_prefix("text/") == Some(l.as_str()))
        }
    }
}

/// Trims what the URL parser strips (C0 controls and space).
fn trim_url(value: &str) -> &str {
    let b = value.as_bytes();
    let start = b.iter().position(|&c| c > b' ').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c > b' ').map_or(start, |i| i + 1);
    // Both ends sit next to ASCII bytes, so they are char boundaries.
    &value[start..end.max(start)]
}

/// Whether a (trimmed) URL is relative to the base's host: no scheme, not
/// network-path (`//`, and `\` which the URL parser treats as `/`), and no
/// tab/newline the parser would remove.
fn is_host_relative(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() >= 2 && matches!(b[0], b'/' | b'\\') && matches!(b[1], b'/' | b'\\') {
        return false;
    }
    // A scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"
    if b.first().is_some_and(u8::is_ascii_alphabetic) {
        for &c in &b[1..] {
            if c == b':' {
                return false;
            }
            if !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')) {
                break;
            }
        }
    }
    // Last: the whole value is scanned, and absolute URLs (most of a
    // page's) were already answered above.
    memchr::memchr3(b'\t', b'\n', b'\r', b).is_none()
}

/// Whether bytes contain `src`, `href` or `data` (any case): the
/// attributes whose elements the rewriter looks at.
fn mentions_url_attribute(bytes: &[u8]) -> bool {
    bytes.windows(3).enumerate().any(|(i, w)| {
        (w.eq_ignore_ascii_case(b"src"))
            || (w.eq_ignore_ascii_case(b"hre")
                && bytes.get(i + 3).is_some_and(|b| b.eq_ignore_ascii_case(&b'f')))
            || (w.eq_ignore_ascii_case(b"dat")
                && bytes.get(i + 3).is_some_and(|b| b.eq_ignore_ascii_case(&b'a')))
    })
}

/// The URL-bearing elements a fragment's handlers look at, as bits of a
/// [`Tags`] set, in the order of [`build_handlers`].
const FRAGMENT_TAGS: [&[u8]; 6] = [b"script", b"iframe", b"img", b"link", b"embed", b"object"];

/// A set of [`FRAGMENT_TAGS`] (bit `i` is `FRAGMENT_TAGS[i]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tags(u8);

impl Tags {
    const ALL: Tags = Tags(0b11_1111);

    fn has(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }
}

/// Which of [`FRAGMENT_TAGS`] may start a tag in `bytes` (`<` then the
/// name, any case). A superset (`<imgx` counts as `img`) is harmless; a
/// tag it misses cannot exist, as lol_html only reports elements whose
/// `<name` is in the source. A `<noscript>` fragment then gets a rewriter
/// with only the selectors it can use, each of which costs a compile.
fn tags_mentioned(bytes: &[u8]) -> Tags {
    let mut tags = Tags(0);
    for i in memchr::memchr_iter(b'<', bytes) {
        let rest = &bytes[i + 1..];
        for (bit, name) in FRAGMENT_TAGS.iter().enumerate() {
            if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name) {
                tags.0 |= 1 << bit;
            }
        }
        if tags == Tags::ALL {
            break;
        }
    }
    tags
}

/// The host of a URL for rule lookup: lower case, no trailing dot.
fn url_host(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// The URL without query and fragment, for decisions and logs.
fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Both halves of the quick split, for tests.
#[cfg(test)]
struct QuickUrl<'a> {
    scheme: &'a str,
    /// Lower case, no trailing dot.
    host: Cow<'a, str>,
    /// Never empty.
    path: &'a str,
}

/// Scheme, lower-case host and the offset where the path starts, for an
/// absolute or protocol-relative http(s) URL, split without the URL parser.
/// Only URLs already in the form the parser would produce qualify (plain
/// ASCII host that is not numeric, optional port; [`quick_path`] then
/// checks the path has no dot segments, backslashes or bytes the parser
/// would percent-encode); anything else goes to the full parser. This
/// keeps the common case allocation-free, and a first-party URL never
/// needs its path looked at.
fn quick_host<'a>(value: &'a str, default_scheme: &'a str) -> Option<(&'a str, Cow<'a, str>, usize)> {
    // One pass over the bytes: this runs for every absolute URL on a page.
    let b = value.as_bytes();
    let (scheme, start) = if b.len() >= 8 && b[..8].eq_ignore_ascii_case(b"https://") {
        ("https", 8)
    } else if b.len() >= 7 && b[..7].eq_ignore_ascii_case(b"http://") {
        ("http", 7)
    } else if b.starts_with(b"//") {
        (default_scheme, 2)
    } else {
        return None;
    };
    let mut i = start;
    let mut colon = None;
    let mut upper = false;
    while i < b.len() {
        match b[i] {
            b'/' | b'?' | b'#' => break,
            b':' if colon.is_none() => colon = Some(i),
            c if c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.' => {}
            c if c.is_ascii_uppercase() => upper = true,
            // `\`, `@`, `%`, `[`, non-ASCII...: the parser's business.
            _ => return None,
        }
        i += 1;
    }
    let host_end = match colon {
        Some(c) if c + 1 < i && b[c + 1..i].iter().all(u8::is_ascii_digit) => c,
        Some(_) => return None,
        None => i,
    };
    let mut host = &value[start..host_end];
    if let Some(h) = host.strip_suffix('.') {
        host = h;
    }
    // Numeric last labels are IPv4 forms the parser rewrites.
    let last = host.rsplit('.').next().unwrap_or(host);
    if last.is_empty() || last.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let host = if upper { Cow::Owned(host.to_ascii_lowercase()) } else { Cow::Borrowed(host) };
    Some((scheme, host, i))
}

/// The path of a URL whose authority [`quick_host`] split off, if it is
/// already in normal form.
fn quick_path(value: &str, path_start: usize) -> Option<&str> {
    let b = value.as_bytes();
    let mut i = path_start;
    let mut prev = 0u8;
    while i < b.len() {
        let c = b[i];
        if c == b'?' || c == b'#' {
            break;
        }
        let plain = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'%'
            );
        // A dot right after a slash may be a dot segment the parser removes.
        if !plain || (c == b'.' && prev == b'/') {
            return None;
        }
        prev = c;
        i += 1;
    }
    let path = &value[path_start..i];
    Some(if path.is_empty() { "/" } else { path })
}

#[cfg(test)]
fn quick_split<'a>(value: &'a str, default_scheme: &'a str) -> Option<QuickUrl<'a>> {
    let (scheme, host, at) = quick_host(value, default_scheme)?;
    Some(QuickUrl { scheme, host, path: quick_path(value, at)? })
}

impl Shared {
    fn policy(&self) -> &Policy {
        self.cfg.policy()
    }

    fn category_name(&self, category: Option<CategoryId>) -> &str {
        match category {
            Some(c) if c.index() < self.policy().categories.len() => self.policy().categories.name(c),
            _ => "unclassified",
        }
    }

    /// `pattern (origin)` of a rule.
    fn rule_text(&self, rule: &ResourceRule) -> Arc<str> {
        rule.basis.clone()
    }

    fn is_first_party(&self, host: &str) -> bool {
        if self.cfg.page_host.as_deref() == Some(host) {
            return true;
        }
        // Pages name the same few hosts again and again; the host sets
        // hash every parent domain, so remember the last answers.
        let mut cache = self.first_party_cache.borrow_mut();
        if let Some((_, yes)) = cache.iter().find(|(h, _)| &**h == host) {
            return *yes;
        }
        let yes = self.cfg.site.is_first_party(host);
        if cache.len() >= HOST_CACHE {
            cache.remove(0);
        }
        cache.push((host.into(), yes));
        yes
    }

    fn set_base(&mut self, href: &str) {
        if self.base_seen {
            return;
        }
        self.base_seen = true;
        let href = trim_url(href);
        let base = match &self.cfg.page_url {
            Some(page) => page.join(href).ok(),
            None => Url::parse(href).ok(),
        };
        if let Some(base) = base {
            self.relative_first_party = url_host(&base).is_none_or(|h| self.is_first_party(&h));
            self.base = Some(base);
        }
    }

    /// Classifies a URL attribute value; None when first party, not a
    /// network URL, or (for passive kinds) an unknown third party.
    fn classify(&self, raw: &str, kind: Kind) -> Option<Verdict> {
        let value = trim_url(raw);
        if value.is_empty() {
            return None;
        }
        if self.relative_first_party && is_host_relative(value) {
            return None;
        }
        // Pages repeat the same first-party origins (image CDNs): a URL
        // that starts with one seen before, up to the slash after its
        // host, has that host.
        if self.first_party_prefixes.borrow().iter().any(|p| value.as_bytes().starts_with(p.as_bytes())) {
            return None;
        }
        let default_scheme = self.base.as_ref().map_or("https", Url::scheme);
        let fast = quick_host(value, default_scheme);
        // First party needs no path: decide before looking at it.
        if let Some((_, host, at)) = &fast
            && self.is_first_party(host)
        {
            if value.as_bytes().get(*at) == Some(&b'/') {
                let mut prefixes = self.first_party_prefixes.borrow_mut();
                if prefixes.len() >= FIRST_PARTY_PREFIXES {
                    prefixes.remove(0);
                }
                prefixes.push(value[..=*at].into());
            }
            return None;
        }
        let parsed;
        // The quick split's host was found third party above (the URL
        // parser agrees on it when only the path needs parsing).
        let host_checked = fast.is_some();
        // `display` is None on the fast path: built only for third parties.
        let fast = fast.and_then(|(scheme, host, at)| Some((scheme, host, quick_path(value, at)?)));
        let (scheme, host, path, display): (&str, Cow<'_, str>, &str, Option<String>) = match fast {
            Some((scheme, host, path)) => (scheme, host, path, None),
            None => {
                parsed = match &self.base {
                    Some(base) => base.join(value).ok()?,
                    None => Url::parse(value).ok()?,
                };
                if !matches!(parsed.scheme(), "http" | "https") {
                    return None;
                }
                (parsed.scheme(), Cow::Owned(url_host(&parsed)?), parsed.path(), Some(display_url(&parsed)))
            }
        };
        if !host_checked && self.is_first_party(&host) {
            return None;
        }
        let display = |host: &str| {
            display.unwrap_or_else(|| {
                let mut d = String::with_capacity(scheme.len() + 3 + host.len() + path.len());
                d.push_str(scheme);
                d.push_str("://");
                d.push_str(host);
                d.push_str(path);
                d
            })
        };
        let policy = self.policy();
        match policy.resources.classify_url(&host, path) {
            Some(rule) => Some(Verdict {
                url: display(&host),
                host: CompactString::from(&*host),
                category: Some(rule.category),
                allowed: policy.resource_allowed(Some(rule.category), self.cfg.granted),
                rule: self.rule_text(rule),
            }),
            None if kind == Kind::Active => Some(Verdict {
                url: display(&host),
                host: CompactString::from(&*host),
                category: None,
                allowed: policy.resource_allowed(None, self.cfg.granted),
                rule: UNKNOWN_THIRD_PARTY.clone(),
            }),
            None => None,
        }
    }

    fn record(
        &mut self,
        item: Item,
        name: String,
        domain: CompactString,
        category: Option<CategoryId>,
        allowed: bool,
        rule: Arc<str>,
    ) {
        let item = self.cfg.item_override.unwrap_or(item);
        let action = if allowed { Action::Allow } else { Action::Block };
        // As for cookies: a refusal that only `Sec-GPC: 1` caused says so.
        let rule = if !allowed && category.is_some_and(|c| self.cfg.gpc_refused.contains(c)) {
            format!("{GPC_NOTE}{rule}").into()
        } else {
            rule
        };
        tracing::debug!(
            item = item.name(),
            resource = %name,
            host = %domain,
            category = %self.category_name(category),
            action = action.name(),
            enforced = self.cfg.enforce,
            rule = %rule,
            "html decision"
        );
        self.push_decision(Decision { item, name: name.into(), domain, category, action, rule });
    }

    fn push_decision(&mut self, decision: Decision) {
        if self.decisions.len() < MAX_DECISIONS {
            self.decisions.push(decision);
        } else {
            self.decisions_dropped += 1;
        }
    }

    /// Records a verdict, keeping what neutralising needs.
    fn record_verdict(&mut self, item: Item, v: Verdict) -> (Option<CategoryId>, bool) {
        let kept = (v.category, v.allowed);
        self.record(item, v.url, v.host, v.category, v.allowed, v.rule);
        kept
    }

    fn new_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// The attributes marking an element inert, inserted after its name.
    fn inert_attrs(&self, category: Option<CategoryId>, script: bool) -> String {
        // Built by hand: `format!` costs more than the copying.
        const SCRIPT: &str = " type=\"text/plain\"";
        let cat = self.category_name(category);
        let mut out = String::with_capacity(SCRIPT.len() + 17 + cat.len());
        if script {
            out.push_str(SCRIPT);
        }
        out.push_str(" data-category=\"");
        out.push_str(cat);
        out.push('"');
        out
    }

    /// Inert edits: attributes after the name, `data-` before each name in
    /// `renames`.
    fn push_inert(&mut self, name_end: usize, attrs: String, renames: &[usize]) {
        self.applier.push(Edit::insert(name_end, attrs.into_bytes()));
        for &at in renames {
            self.applier.push(Edit::insert(at, &b"data-"[..]));
        }
    }

    // -- the sink -------------------------------------------------------

    /// Raw output of lol_html (= the next input bytes, in order).
    fn received(&mut self, data: &[u8]) {
        let at = self.recv;
        self.recv += data.len();
        if self.script.is_some() {
            self.script_bytes(at, data);
        } else if let Some(ns) = &mut self.noscript {
            ns.held.extend_from_slice(data);
            if ns.held.len() > NOSCRIPT_WINDOW {
                // Too large to hold: it passes unrewritten.
                let ns = self.noscript.take();
                if let Some(ns) = ns {
                    tracing::debug!(
                        bytes = ns.held.len(),
                        "noscript larger than the window, passed unrewritten"
                    );
                    self.applier.feed(&ns.held);
                }
            }
        } else {
            self.applier.feed(data);
        }
    }

    fn script_bytes(&mut self, at: usize, data: &[u8]) {
        let cfg = self.cfg.clone();
        let Some(st) = &mut self.script else { return };
        st.seen += data.len();
        enum Next {
            Hold,
            Early,
            Release(Vec<u8>),
            Pass,
        }
        let next = match &mut st.held {
            Some(buf) => {
                buf.extend_from_slice(data);
                if buf.len() > SCRIPT_WINDOW {
                    // The window is full: what was held is searched before
                    // it goes (the scanner then carries its last bytes
                    // over to the text that follows).
                    st.search_held(&cfg);
                    match (st.refused, &mut st.held) {
                        (None, Some(buf)) => Next::Release(std::mem::take(buf)),
                        _ => Next::Early,
                    }
                } else {
                    Next::Hold
                }
            }
            None => {
                // Not held (monitoring, or released): searched as it passes.
                let text_from = st.text_start.saturating_sub(at).min(data.len());
                st.search(&cfg, &data[text_from..], cfg.enforce);
                Next::Pass
            }
        };
        match next {
            Next::Hold => {}
            Next::Early => self.decide_script_early(),
            Next::Release(buf) => {
                if let Some(st) = &mut self.script {
                    st.held = None;
                }
                tracing::debug!(
                    bytes = buf.len(),
                    "inline script larger than the window, released unclassified"
                );
                self.applier.feed(&buf);
            }
            Next::Pass => self.applier.feed(data),
        }
    }

    /// Searches what is held of an inline script and, if a refused
    /// signature is in it, neutralises it and releases it now.
    fn search_held_script(&mut self) {
        let cfg = self.cfg.clone();
        let Some(st) = &mut self.script else { return };
        if st.held.is_none() {
            return;
        }
        st.search_held(&cfg);
        if st.refused.is_some() && !st.decided {
            self.decide_script_early();
        }
    }

    /// A refused signature was found while holding: neutralise now.
    fn decide_script_early(&mut self) {
        let Some(mut st) = self.script.take() else { return };
        self.record_script(&st, None);
        st.decided = true;
        self.neutralise_script(&st, None);
        if let Some(buf) = st.held.take() {
            self.applier.feed(&buf);
        }
        self.script = Some(st);
    }

    fn record_script(&mut self, st: &ScriptState, late_note: Option<&str>) {
        let Some(idx) = st.refused.or_else(|| st.matched.first().copied()) else { return };
        let rule = self.policy().resources.rule(idx);
        let (signature, category, basis) = (
            match &rule.matcher {
                crate::policy::ResourceMatch::Inline(sig) => sig.clone(),
                _ => rule.pattern.clone(),
            },
            rule.category,
            self.rule_text(rule),
        );
        let allowed = st.refused.is_none() || st.late;
        let basis = match late_note {
            Some(note) => format!("{basis}; {note}").into(),
            None => basis,
        };
        let host = self.cfg.page_host.as_deref().map(CompactString::from).unwrap_or_default();
        self.record(Item::InlineScript, signature, host, Some(category), allowed, basis);
    }

    /// Edits neutralising a held script (`end`: end of its end tag, if known).
    fn neutralise_script(&mut self, st: &ScriptState, end: Option<usize>) {
        if !self.cfg.enforce {
            return;
        }
        let category = st.refused.map(|i| self.policy().resources.rule(i).category);
        match self.policy().neutralise {
            Neutralise::Inert => {
                let attrs = self.inert_attrs(category, true);
                self.push_inert(st.name_end, attrs, &st.type_names);
            }
            Neutralise::Remove => {
                let id = st.id;
                self.applier.push(Edit {
                    at: st.start,
                    end: end.unwrap_or(OPEN),
                    insert: Cow::Borrowed(b""),
                    drop_id: Some(id),
                });
                if end.is_none() {
                    let reopen = format!("<script{}>", self.inert_attrs(category, true));
                    self.open_drops.push(OpenDrop { id, reopen });
                }
            }
        }
    }

    /// `</script>` (or end of input, `end` None) of a classified inline script.
    fn finish_script(&mut self, id: u32, end: Option<Range<usize>>) {
        if self.script.as_ref().is_some_and(|s| s.id == id) {
            self.search_held_script();
        }
        let Some(st) = self.script.take_if(|s| s.id == id) else { return };
        if st.decided {
            if let Some(end) = end {
                self.close_drop(id, end.end);
            }
            return;
        }
        if st.late {
            tracing::warn!(
                bytes = st.seen,
                "refused signature found in an inline script after the classification window; not neutralised"
            );
            self.record_script(&st, Some("matched after the classification window, not neutralised"));
        } else {
            self.record_script(&st, None);
        }
        if st.refused.is_some() && !st.late {
            self.neutralise_script(&st, end.map(|r| r.end));
        } else if self.cfg.enforce
            && !st.has_nonce
            && let Some(nonce) = &self.cfg.nonce
        {
            let text = format!(" nonce=\"{nonce}\"");
            self.applier.push(Edit::insert(st.name_end, text.into_bytes()));
        }
        if let Some(buf) = st.held {
            self.applier.feed(&buf);
        }
    }

    fn close_drop(&mut self, id: u32, end: usize) {
        self.applier.close_drop(id, end);
        self.open_drops.retain(|d| d.id != id);
    }

    fn finish_noscript(&mut self, id: u32) {
        let Some(ns) = self.noscript.take_if(|n| n.id == id) else { return };
        let content_from = ns.content_start.saturating_sub(ns.held_from).min(ns.held.len());
        let content = &ns.held[content_from..];
        // Most noscripts are a sentence ("please enable JavaScript"): only
        // markup with a URL attribute is worth a parse.
        let tags = tags_mentioned(content);
        if tags.0 == 0 || !mentions_url_attribute(content) {
            self.applier.feed(&ns.held);
            return;
        }
        let options = PageOptions {
            site: self.cfg.site.clone(),
            granted: self.cfg.granted,
            gpc_refused: self.cfg.gpc_refused,
            page_url: self.cfg.page_url.clone(),
            banner: None,
            nonce: self.cfg.nonce.clone(),
            charset: Some(self.encoding),
        };
        let mut inner = PageRewriter::build(options, Some(Item::Noscript), self.cfg.enforce);
        inner.tags = tags;
        {
            // The fragment resolves URLs against this page's base.
            let mut s = lock(&inner.shared);
            s.base.clone_from(&self.base);
            s.base_seen = true;
            s.relative_first_party = self.relative_first_party;
        }
        let mut rewritten = Vec::with_capacity(content.len());
        inner.write(content, &mut rewritten);
        inner.finish(&mut rewritten);
        self.decisions_dropped += inner.decisions_dropped();
        for d in inner.take_decisions() {
            self.push_decision(d);
        }
        if self.cfg.enforce && rewritten != content {
            let at = ns.held_from + content_from;
            self.applier.push(Edit {
                at,
                end: at + content.len(),
                insert: Cow::Owned(rewritten),
                drop_id: None,
            });
        }
        self.applier.feed(&ns.held);
    }

    fn insert_banner(&mut self, at: usize) {
        if self.banner_state == BannerState::Done {
            return;
        }
        if let Some(banner) = self.encoded_banner() {
            self.applier.push(Edit::insert(at, banner));
        }
        self.banner_state = BannerState::Done;
    }

    fn encoded_banner(&self) -> Option<Cow<'static, [u8]>> {
        let banner = self.banner.as_ref()?;
        if self.encoding == encoding_rs::UTF_8 {
            return Some(Cow::Owned(banner.to_vec()));
        }
        Some(match std::str::from_utf8(banner) {
            // Characters the page's encoding lacks become numeric character
            // references, which HTML text accepts.
            Ok(text) => Cow::Owned(self.encoding.encode(text).0.into_owned()),
            Err(_) => Cow::Owned(banner.to_vec()),
        })
    }

    /// The rewriter stopped (error, limit): release everything held as it
    /// was; cut removals short with an inert opening tag.
    fn bail(&mut self) {
        // A refusal already in the held text is acted on, as it would have
        // been had the search run piece by piece.
        self.search_held_script();
        if let Some(st) = self.script.take()
            && let Some(buf) = st.held
        {
            self.applier.feed(&buf);
        }
        if let Some(ns) = self.noscript.take() {
            self.applier.feed(&ns.held);
        }
        for drop in std::mem::take(&mut self.open_drops) {
            if self.applier.cut_drop(drop.id) {
                self.applier.out.extend_from_slice(drop.reopen.as_bytes());
            }
        }
    }

    /// End of input after a successful `end()`.
    fn finish(&mut self) {
        if let Some(id) = self.script.as_ref().map(|s| s.id) {
            self.finish_script(id, None);
        }
        if let Some(id) = self.noscript.as_ref().map(|n| n.id) {
            self.finish_noscript(id);
        }
    }

    // -- element handlers -----------------------------------------------

    /// Offsets of the names of attributes called `names` (lower case).
    fn attr_offsets(&self, el: &lol_html::send::Element<'_, '_>, names: &[&str]) -> Vec<usize> {
        el.attributes()
            .iter()
            .filter(|a| names.iter().any(|n| self.input.name_is(a, n)))
            .filter_map(|a| Some(a.name_source_location()?.bytes().start))
            .collect()
    }

    fn on_script(&mut self, el: &mut lol_html::send::Element<'_, '_>) -> Option<EndAction> {
        let loc = el.source_location().bytes();
        let name_end = loc.start + 1 + "script".len();
        if let Some(src) = self.input.get(el, "src") {
            // Most scripts are first party: classify before reading more.
            let verdict = self.classify(&src, Kind::Active)?;
            let attrs = ScriptAttrs::read(&self.input, el);
            if !attrs.javascript {
                return None;
            }
            let (category, allowed) = self.record_verdict(Item::Script, verdict);
            if allowed || !self.cfg.enforce {
                return None;
            }
            return match self.policy().neutralise {
                Neutralise::Inert => {
                    let inert = self.inert_attrs(category, true);
                    self.push_inert(name_end, inert, &attrs.type_names);
                    None
                }
                Neutralise::Remove => {
                    let reopen = format!("<script{}>", self.inert_attrs(category, true));
                    self.remove_element(el, loc, reopen)
                }
            };
        }
        if !el.can_have_content() || self.script.is_some() || self.noscript.is_some() {
            return None;
        }
        let attrs = ScriptAttrs::read(&self.input, el);
        if !attrs.javascript {
            return None;
        }
        let has_nonce = attrs.has_nonce;
        if self.policy().resources.inline_automaton().is_none() {
            if self.cfg.enforce
                && !has_nonce
                && let Some(nonce) = &self.cfg.nonce
            {
                let text = format!(" nonce=\"{nonce}\"");
                self.applier.push(Edit::insert(name_end, text.into_bytes()));
            }
            return None;
        }
        let id = self.new_id();
        self.script = Some(ScriptState {
            id,
            start: loc.start,
            text_start: loc.end,
            name_end,
            type_names: attrs.type_names,
            has_nonce,
            held: self.cfg.enforce.then(|| Vec::with_capacity(HELD_CAPACITY)),
            searched: 0,
            seen: 0,
            scanner: Scanner::default(),
            matched: Vec::new(),
            refused: None,
            late: false,
            decided: false,
        });
        Some(EndAction::FinishScript(id))
    }

    /// Removes an element: void → its tag; with content → up to its end tag.
    fn remove_element(
        &mut self,
        el: &lol_html::send::Element<'_, '_>,
        loc: Range<usize>,
        reopen: String,
    ) -> Option<EndAction> {
        if el.can_have_content() {
            let id = self.new_id();
            self.applier.push(Edit {
                at: loc.start,
                end: OPEN,
                insert: Cow::Borrowed(b""),
                drop_id: Some(id),
            });
            self.open_drops.push(OpenDrop { id, reopen });
            Some(EndAction::CloseDrop(id))
        } else {
            self.applier.push(Edit::delete(loc));
            None
        }
    }

    /// `<iframe>`, `<embed>`, `<object>`, `<link>`, `<img>`: one URL-bearing
    /// element decided at its start tag.
    fn on_resource(
        &mut self,
        el: &mut lol_html::send::Element<'_, '_>,
        tag: &'static str,
    ) -> Option<EndAction> {
        let loc = el.source_location().bytes();
        let name_end = loc.start + 1 + tag.len();
        let (item, verdict, renames): (Item, Verdict, &[&str]) = match tag {
            "iframe" => (Item::Iframe, self.classify(&self.input.get(el, "src")?, Kind::Active)?, &["src"]),
            "embed" => (Item::Embed, self.classify(&self.input.get(el, "src")?, Kind::Active)?, &["src"]),
            "object" => (Item::Embed, self.classify(&self.input.get(el, "data")?, Kind::Active)?, &["data"]),
            "link" => {
                let rel = self.input.get(el, "rel")?.to_ascii_lowercase();
                let rels: Vec<&str> = rel.split_ascii_whitespace().collect();
                if rels.contains(&"stylesheet")
                    || !rels.iter().any(|r| {
                        matches!(*r, "preload" | "prefetch" | "preconnect" | "dns-prefetch" | "modulepreload")
                    })
                {
                    return None;
                }
                let as_script = self.input.get(el, "as").is_some_and(|a| {
                    matches!(
                        a.trim().to_ascii_lowercase().as_str(),
                        "script" | "worker" | "sharedworker" | "document"
                    )
                });
                let kind = if rels.contains(&"modulepreload") || (rels.contains(&"preload") && as_script) {
                    Kind::Active
                } else {
                    Kind::Passive
                };
                (Item::Link, self.classify(&self.input.get(el, "href")?, kind)?, &["href"])
            }
            "img" => (Item::Image, self.classify_img(el)?, &["src", "srcset"]),
            _ => return None,
        };
        let (category, allowed) = self.record_verdict(item, verdict);
        if allowed || !self.cfg.enforce {
            return None;
        }
        match self.policy().neutralise {
            Neutralise::Inert => {
                let attrs = self.inert_attrs(category, false);
                let offsets = self.attr_offsets(el, renames);
                self.push_inert(name_end, attrs, &offsets);
                None
            }
            Neutralise::Remove if tag == "object" => {
                // The fallback content stays, as if the object failed.
                self.applier.push(Edit::delete(loc));
                el.can_have_content().then_some(EndAction::DeleteEndTag)
            }
            Neutralise::Remove => {
                let reopen = format!("<{tag} hidden{}>", self.inert_attrs(category, false));
                self.remove_element(el, loc, reopen)
            }
        }
    }

    /// An image's verdict: the first refused URL of `src` and `srcset`,
    /// else the first classified one. Unknown hosts count only for pixels.
    fn classify_img(&self, el: &lol_html::send::Element<'_, '_>) -> Option<Verdict> {
        let src = self.input.get(el, "src");
        let srcset = self.input.get(el, "srcset");
        let candidates = src.as_deref().into_iter().chain(
            srcset
                .as_deref()
                .into_iter()
                .flat_map(|s| s.split(','))
                .filter_map(|c| c.split_ascii_whitespace().next()),
        );
        // Read only when an unknown third party needs it.
        let mut pixel: Option<bool> = None;
        let mut is_pixel = || {
            *pixel.get_or_insert_with(|| {
                let small = |name: &str| {
                    self.input.get(el, name).is_some_and(|v| {
                        v.trim().trim_end_matches("px").parse::<f32>().is_ok_and(|n| n <= 1.0)
                    })
                };
                small("width") && small("height")
            })
        };
        let mut first: Option<Verdict> = None;
        for url in candidates {
            let Some(v) = self.classify(url, Kind::Active) else { continue };
            if v.category.is_none() && !is_pixel() {
                // An unknown host's picture is content, not a pixel.
                continue;
            }
            if !v.allowed {
                return Some(v);
            }
            first.get_or_insert(v);
        }
        first
    }

    fn on_noscript(&mut self, el: &mut lol_html::send::Element<'_, '_>) -> Option<EndAction> {
        if !el.can_have_content() || self.script.is_some() || self.noscript.is_some() {
            return None;
        }
        let id = self.new_id();
        self.noscript = Some(NoscriptHold {
            id,
            content_start: el.source_location().bytes().end,
            held: Vec::with_capacity(HELD_CAPACITY),
            held_from: self.recv,
        });
        Some(EndAction::FinishNoscript(id))
    }

    fn on_body(&mut self, el: &mut lol_html::send::Element<'_, '_>) -> Option<EndAction> {
        if self.banner_state != BannerState::Pending || !el.can_have_content() {
            return None;
        }
        self.banner_state = BannerState::AtBodyEnd;
        self.document_seen = true;
        Some(EndAction::Banner)
    }

    /// The end tag of an element cannot be watched: release what waits
    /// for it. A removal shrinks to the start tag alone.
    fn abandon(&mut self, action: EndAction, start_tag: Range<usize>) {
        tracing::debug!(?action, "end tag cannot be watched");
        match action {
            EndAction::FinishScript(id) => {
                if let Some(st) = self.script.take_if(|s| s.id == id)
                    && let Some(buf) = st.held
                {
                    self.applier.feed(&buf);
                }
            }
            EndAction::FinishNoscript(id) => {
                if let Some(ns) = self.noscript.take_if(|n| n.id == id) {
                    self.applier.feed(&ns.held);
                }
            }
            EndAction::CloseDrop(id) => self.close_drop(id, start_tag.end),
            EndAction::DeleteEndTag => {}
            EndAction::Banner => self.banner_state = BannerState::Pending,
        }
    }

    fn on_end(&mut self, action: EndAction, end: &EndTag<'_>) {
        let loc = end.source_location().bytes();
        match action {
            EndAction::FinishScript(id) => self.finish_script(id, Some(loc)),
            EndAction::CloseDrop(id) => self.close_drop(id, loc.end),
            EndAction::DeleteEndTag => self.applier.push(Edit::delete(loc)),
            EndAction::FinishNoscript(id) => self.finish_noscript(id),
            EndAction::Banner => self.insert_banner(loc.start),
        }
    }
}

// ---------------------------------------------------------------------------
// lol_html wiring

/// Element selectors, parsed once per process.
struct Selectors {
    base: Selector,
    script: Selector,
    iframe: Selector,
    img: Selector,
    link: Selector,
    embed: Selector,
    object: Selector,
    noscript: Selector,
    body: Selector,
    html: Selector,
}

#[allow(clippy::expect_used)]
static SELECTORS: LazyLock<Selectors> = LazyLock::new(|| {
    let parse = |s: &str| s.parse::<Selector>().expect("static selector parses");
    Selectors {
        base: parse("base[href]"),
        script: parse("script"),
        iframe: parse("iframe[src]"),
        img: parse("img"),
        link: parse("link[rel][href]"),
        embed: parse("embed[src]"),
        object: parse("object[data]"),
        noscript: parse("noscript"),
        body: parse("body"),
        html: parse("html"),
    }
});

/// The sink: lol_html's raw output goes through the edit applier.
struct Sink(Arc<Mutex<Shared>>);

impl OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        if !chunk.is_empty() {
            lock(&self.0).received(chunk);
        }
    }

    fn set_encoding(&mut self, encoding: AsciiCompatibleEncoding) {
        lock(&self.0).encoding = encoding.into();
    }
}

type Handlers = Vec<(Cow<'static, Selector>, ElementContentHandlers<'static>)>;

fn handler(
    shared: &Arc<Mutex<Shared>>,
    selector: &'static Selector,
    on: fn(&mut Shared, &mut lol_html::send::Element<'_, '_>) -> Option<EndAction>,
) -> (Cow<'static, Selector>, ElementContentHandlers<'static>) {
    let shared = shared.clone();
    let handlers =
        ElementContentHandlers::default().element(move |el: &mut lol_html::send::Element<'_, '_>| {
            let action = on(&mut lock(&shared), el);
            if let Some(action) = action {
                let for_end = shared.clone();
                let end: EndTagHandler<'static> = Box::new(move |end: &mut EndTag<'_>| {
                    lock(&for_end).on_end(action, end);
                    Ok(())
                });
                // Elements that cannot have an end tag were filtered out
                // above; should lol_html still refuse, nothing may wait for
                // an end tag that will never be reported.
                if el.on_end_tag(end).is_err() {
                    lock(&shared).abandon(action, el.source_location().bytes());
                }
            }
            Ok(())
        });
    (Cow::Borrowed(selector), handlers)
}

/// The handlers of a page, or of a fragment (only for the `tags` it can
/// contain); `banner`: the page gets one.
fn build_handlers(shared: &Arc<Mutex<Shared>>, fragment: bool, tags: Tags, banner: bool) -> Handlers {
    let s = &*SELECTORS;
    type On = fn(&mut Shared, &mut lol_html::send::Element<'_, '_>) -> Option<EndAction>;
    // In the order of FRAGMENT_TAGS.
    let all: [(&'static Selector, On); 6] = [
        (&s.script, Shared::on_script),
        (&s.iframe, |sh, el| sh.on_resource(el, "iframe")),
        (&s.img, |sh, el| sh.on_resource(el, "img")),
        (&s.link, |sh, el| sh.on_resource(el, "link")),
        (&s.embed, |sh, el| sh.on_resource(el, "embed")),
        (&s.object, |sh, el| sh.on_resource(el, "object")),
    ];
    let mut list: Handlers = all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| tags.has(*i))
        .map(|(_, (selector, on))| handler(shared, selector, on))
        .collect();
    if !fragment {
        list.push(handler(shared, &s.base, |sh, el| {
            if let Some(href) = sh.input.get(el, "href").map(Cow::into_owned) {
                sh.set_base(&href);
            }
            None
        }));
        list.push(handler(shared, &s.noscript, Shared::on_noscript));
        list.push(handler(shared, &s.body, Shared::on_body));
        // `<html>` only tells a document from a fragment, which only the
        // banner needs; every selector costs a match per start tag.
        if banner {
            list.push(handler(shared, &s.html, |sh, _| {
                sh.document_seen = true;
                None
            }));
        }
    }
    list
}

// ---------------------------------------------------------------------------
// The page rewriter

enum Stage {
    /// Waiting for the first three bytes (byte order mark).
    Sniff(Vec<u8>),
    Running(Box<lol_html::send::HtmlRewriter<'static, Sink>>),
    /// Everything goes through unrewritten (after a bail-out).
    Passthrough,
    Done,
}

/// Rewrites one HTML document given chunk by chunk.
///
/// `write` appends to `out` everything that can be emitted so far; nothing
/// is held except a partial tag inside lol_html, an inline script being
/// classified or a `<noscript>` being rewritten.
pub struct PageRewriter {
    shared: Arc<Mutex<Shared>>,
    stage: Stage,
    charset: Option<&'static Encoding>,
    fragment: bool,
    /// The elements handled (all, but a fragment's own).
    tags: Tags,
    /// Bytes fed to lol_html.
    fed: usize,
    /// The last `fed - recv` bytes fed: what lol_html has not emitted yet.
    tail: Vec<u8>,
    fallback: Option<Passthrough>,
}

impl std::fmt::Debug for PageRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageRewriter")
            .field("fed", &self.fed)
            .field("tail", &self.tail.len())
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl PageRewriter {
    /// A rewriter for one page.
    pub fn new(options: PageOptions) -> PageRewriter {
        let enforce = options.site.policy.mode == Mode::Enforce;
        PageRewriter::build(options, None, enforce)
    }

    fn build(options: PageOptions, item_override: Option<Item>, enforce: bool) -> PageRewriter {
        let fragment = item_override.is_some();
        let page_url = options.page_url;
        let cfg = Arc::new(Config {
            site: options.site,
            granted: options.granted,
            gpc_refused: options.gpc_refused,
            enforce,
            nonce: options.nonce.filter(|n| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
            }),
            page_host: page_url.as_ref().and_then(url_host),
            page_url: page_url.clone(),
            item_override,
        });
        let banner_state = if options.banner.is_some() { BannerState::Pending } else { BannerState::None };
        let shared = Shared {
            cfg,
            base: page_url,
            base_seen: false,
            // Relative URLs resolve to the page's own host until a <base>.
            relative_first_party: true,
            first_party_cache: std::cell::RefCell::new(Vec::with_capacity(HOST_CACHE)),
            first_party_prefixes: std::cell::RefCell::new(Vec::new()),
            encoding: options.charset.unwrap_or(encoding_rs::UTF_8),
            input: Input::default(),
            recv: 0,
            applier: Applier::default(),
            script: None,
            noscript: None,
            open_drops: Vec::new(),
            next_id: 0,
            decisions: Vec::new(),
            decisions_dropped: 0,
            banner: options.banner,
            banner_state,
            document_seen: false,
        };
        PageRewriter {
            shared: Arc::new(Mutex::new(shared)),
            stage: Stage::Sniff(Vec::new()),
            charset: options.charset,
            fragment,
            tags: Tags::ALL,
            fed: 0,
            tail: Vec::new(),
            fallback: None,
        }
    }

    /// Why the page passed through unrewritten (in whole or from some point),
    /// if it did.
    pub fn fallback(&self) -> Option<Passthrough> {
        self.fallback
    }

    /// The decisions made so far (moved out), at most [`MAX_DECISIONS`].
    pub fn take_decisions(&mut self) -> Decisions {
        let mut s = lock(&self.shared);
        if s.decisions_dropped > 0 {
            tracing::debug!(
                kept = s.decisions.len(),
                dropped = s.decisions_dropped,
                "page had more decisions than recorded"
            );
        }
        std::mem::take(&mut s.decisions)
    }

    /// Decisions made but not kept (beyond [`MAX_DECISIONS`]).
    pub fn decisions_dropped(&self) -> u64 {
        lock(&self.shared).decisions_dropped
    }

    /// Rewrites the next chunk, appending what can be emitted to `out`.
    /// Copies the chunk while lol_html runs (its handlers read the chunk
    /// in place); [`PageRewriter::write_bytes`] does not.
    pub fn write(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if matches!(self.stage, Stage::Passthrough | Stage::Done) {
            // After a bail-out or the decoded-size limit: no copy per chunk.
            self.lend(out);
            if matches!(self.stage, Stage::Passthrough) {
                lock(&self.shared).applier.feed(chunk);
            }
            self.drain(out);
            return;
        }
        self.write_bytes(Bytes::copy_from_slice(chunk), out);
    }

    /// Rewrites the next chunk, appending what can be emitted to `out`.
    /// The handlers read attributes from the chunk in place (it is shared,
    /// not copied, for the duration of the call).
    pub fn write_bytes(&mut self, chunk: Bytes, out: &mut Vec<u8>) {
        self.lend(out);
        match &mut self.stage {
            // The first chunk holds the byte order mark (if any): lol_html
            // starts on it in place, without copying it.
            Stage::Sniff(prefix) if prefix.is_empty() && chunk.len() >= 3 => self.start(chunk),
            Stage::Sniff(prefix) => {
                prefix.extend_from_slice(&chunk);
                if prefix.len() >= 3 {
                    let prefix = std::mem::take(prefix);
                    self.start(prefix.into());
                }
            }
            Stage::Running(_) => self.feed(chunk),
            Stage::Passthrough => lock(&self.shared).applier.feed(&chunk),
            Stage::Done => {}
        }
        self.drain(out);
    }

    /// Ends the document, appending the rest to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.lend(out);
        if let Stage::Sniff(prefix) = &mut self.stage {
            let prefix = std::mem::take(prefix);
            self.start(prefix.into());
        }
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Running(rewriter) => match catch_unwind(AssertUnwindSafe(move || (*rewriter).end())) {
                Ok(Ok(())) => lock(&self.shared).finish(),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "lol_html failed at the end of the page");
                    self.bail_now(Passthrough::RewriterError);
                }
                Err(_) => self.bail_now(Passthrough::RewriterPanic),
            },
            Stage::Passthrough | Stage::Sniff(_) | Stage::Done => {}
        }
        self.stage = Stage::Done;
        {
            let mut s = lock(&self.shared);
            s.applier.finish();
            // No `</body>` came: append at the end, but only to a document.
            // A response with neither `<html>` nor `<body>` is a fragment
            // (htmx, an XHR, a server-side include) whatever its type; a
            // banner appended there would land inside the site's page.
            if matches!(s.banner_state, BannerState::Pending | BannerState::AtBodyEnd) {
                if !s.document_seen {
                    tracing::debug!("no <html> or <body>: a fragment, no banner");
                    s.banner_state = BannerState::Done;
                } else if let Some(banner) = s.encoded_banner() {
                    s.applier.out.extend_from_slice(&banner);
                    s.banner_state = BannerState::Done;
                }
            }
        }
        self.drain(out);
    }

    /// Stops rewriting from here on (decoded-size limit): what is held is
    /// released as it was, the rest of the page passes through.
    pub fn stop(&mut self, reason: Passthrough, out: &mut Vec<u8>) {
        self.lend(out);
        if let Stage::Sniff(prefix) = &mut self.stage {
            let prefix = std::mem::take(prefix);
            lock(&self.shared).applier.feed(&prefix);
            self.stage = Stage::Passthrough;
            self.note_fallback(reason);
        } else if matches!(self.stage, Stage::Running(_)) {
            self.bail_now(reason);
        }
        self.drain(out);
    }

    /// Lends the caller's buffer to the applier, so output is written
    /// once, straight where the caller wants it.
    fn lend(&mut self, out: &mut Vec<u8>) {
        let mut s = lock(&self.shared);
        std::mem::swap(out, &mut s.applier.out);
        // Output left undrained (not possible through the public API)
        // comes after what the caller already has.
        s.applier.out.append(out);
    }

    /// Gives the buffer back.
    fn drain(&mut self, out: &mut Vec<u8>) {
        let mut s = lock(&self.shared);
        std::mem::swap(out, &mut s.applier.out);
    }

    fn note_fallback(&mut self, reason: Passthrough) {
        if self.fallback.is_none() {
            self.fallback = Some(reason);
            if !self.fragment {
                record_passthrough(reason);
            }
        }
    }

    /// Starts lol_html once the byte order mark (if any) is known.
    fn start(&mut self, prefix: Bytes) {
        let mut encoding = self.charset;
        if prefix.starts_with(&[0xfe, 0xff]) || prefix.starts_with(&[0xff, 0xfe]) {
            // UTF-16: lol_html cannot parse it; pass it through untouched.
            tracing::debug!("UTF-16 byte order mark: page passed through");
            lock(&self.shared).applier.feed(&prefix);
            self.stage = Stage::Passthrough;
            self.note_fallback(Passthrough::AsciiIncompatibleCharset);
            return;
        }
        if prefix.starts_with(&[0xef, 0xbb, 0xbf]) {
            // The byte order mark beats Content-Type and <meta>.
            encoding = Some(encoding_rs::UTF_8);
        }
        let ascii =
            encoding.and_then(AsciiCompatibleEncoding::new).unwrap_or_else(AsciiCompatibleEncoding::utf_8);
        lock(&self.shared).encoding = ascii.into();
        let mut settings = lol_html::send::Settings::new_send();
        let banner = lock(&self.shared).banner.is_some();
        settings.element_content_handlers = build_handlers(&self.shared, self.fragment, self.tags, banner);
        settings.encoding = ascii;
        settings.adjust_charset_on_meta_tag = encoding.is_none();
        settings.strict = false;
        settings.memory_settings =
            MemorySettings { max_allowed_memory_usage: PARSER_MEMORY, ..MemorySettings::default() };
        let rewriter = lol_html::send::HtmlRewriter::new(settings, Sink(self.shared.clone()));
        self.stage = Stage::Running(Box::new(rewriter));
        self.feed(prefix);
    }

    fn feed(&mut self, chunk: Bytes) {
        let Stage::Running(rewriter) = &mut self.stage else { return };
        lock(&self.shared).input = Input { bytes: chunk.clone(), at: self.fed };
        self.fed += chunk.len();
        let result = catch_unwind(AssertUnwindSafe(|| rewriter.write(&chunk)));
        let recv = {
            let mut s = lock(&self.shared);
            s.input = Input::default();
            s.recv
        };
        let unreceived = self.fed - recv;
        if unreceived <= chunk.len() {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - unreceived..]);
        } else {
            let keep_old = unreceived - chunk.len();
            let drop = self.tail.len().saturating_sub(keep_old);
            self.tail.drain(..drop);
            self.tail.extend_from_slice(&chunk);
        }
        match result {
            // What this chunk brought of a held script is searched before
            // the output is handed over.
            Ok(Ok(())) => lock(&self.shared).search_held_script(),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, offset = recv, "lol_html bailed out; the rest of the page passes through");
                self.bail_now(if matches!(e, lol_html::errors::RewritingError::MemoryLimitExceeded(_)) {
                    Passthrough::RewriterMemory
                } else {
                    Passthrough::RewriterError
                });
            }
            Err(_) => {
                tracing::error!(offset = recv, "lol_html panicked; the rest of the page passes through");
                self.bail_now(Passthrough::RewriterPanic);
            }
        }
    }

    /// Drops lol_html and delivers what it had not emitted.
    fn bail_now(&mut self, reason: Passthrough) {
        self.stage = Stage::Passthrough;
        self.note_fallback(reason);
        let tail = std::mem::take(&mut self.tail);
        let mut s = lock(&self.shared);
        s.bail();
        s.applier.feed(&tail);
        s.recv += tail.len();
    }
}

/// Escapes text for HTML element content and quoted attribute values
/// (the banner, the declaration table, anything consentry writes into HTML).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn javascript_types() {
        assert!(is_javascript(None, None));
        assert!(is_javascript(Some(""), None));
        assert!(is_javascript(Some(" Text/JavaScript "), None));
        assert!(is_javascript(Some("module"), None));
        assert!(is_javascript(None, Some("JavaScript1.2")));
        assert!(is_javascript(None, Some("")));
        assert!(!is_javascript(None, Some("vbscript")));
        assert!(!is_javascript(Some("application/ld+json"), None));
        assert!(!is_javascript(Some("text/plain"), None));
        assert!(!is_javascript(Some("text/x-consent"), None));
        assert!(!is_javascript(Some("importmap"), None));
        assert!(!is_javascript(Some("text/javascript; charset=utf-8"), None));
    }

    #[test]
    fn url_attribute_prefilter() {
        assert!(mentions_url_attribute(b"<img SRC=x>"));
        assert!(mentions_url_attribute(b"<link hReF=x>"));
        assert!(mentions_url_attribute(b"<object data=x>"));
        assert!(!mentions_url_attribute(b"Please enable JavaScript to view this site."));
        assert!(!mentions_url_attribute(b"hre"));
    }

    #[test]
    fn fragment_tags_are_found_in_any_case() {
        assert_eq!(tags_mentioned(b"Please enable JavaScript to view this site."), Tags(0));
        assert_eq!(tags_mentioned(b"a < b, img"), Tags(0));
        let t = tags_mentioned(b"<p>x</p><IMG src=x><Iframe src=y>");
        assert!(t.has(1) && t.has(2), "{t:?}");
        assert!(!t.has(0) && !t.has(3) && !t.has(4) && !t.has(5), "{t:?}");
        assert_eq!(tags_mentioned(b"<script><link rel=x><embed><object><img><iframe>"), Tags::ALL);
        assert_eq!(tags_mentioned(b"<img"), Tags(1 << 2));
    }

    #[test]
    fn host_relative_urls() {
        assert!(is_host_relative("/a/b.js"));
        assert!(is_host_relative("a.js"));
        assert!(!is_host_relative("a:b/c.js?x"));
        assert!(is_host_relative("./x:y"));
        assert!(!is_host_relative("//cdn.example/x.js"));
        assert!(!is_host_relative("\\\\cdn.example/x.js"));
        assert!(!is_host_relative("/\\cdn.example/x.js"));
        assert!(!is_host_relative("https://x.example/"));
        assert!(!is_host_relative("/\t/x.example/"));
        assert_eq!(trim_url("  \u{1}//x \n"), "//x");
    }

    #[test]
    fn the_quick_url_split_agrees_with_the_url_parser() {
        let base = Url::parse("https://www.example.com/dir/page.html").unwrap();
        let urls = [
            "https://www.googletagmanager.com/gtag/js?id=G-1",
            "HTTPS://WWW.Example.COM./Path/To?x#y",
            "http://cdn.example.net:8080/a/b.js",
            "//connect.facebook.net/en_US/fbevents.js",
            "https://host.example",
            "https://host.example?q",
            "https://host.example#f",
            "https://a.b.example/x%20y/(z)/~u/@v:w;p=1,2",
            "https://user@host.example/",
            "https://host.example/a/../b",
            "https://host.example/a/./b",
            "https://host.example/a b",
            "https://host.example/a\\b",
            "https://host.example:/",
            "https://host.example:abc/",
            "https://127.0.0.1/x",
            "https://0x7f.1/x",
            "https://h\u{e9}.example/x",
            "https://host.example/\u{e9}",
            "https://host.example/a\"b",
            "https://[::1]/x",
            "https://xn--bcher-kva.example/x",
        ];
        let mut fast = 0;
        for u in urls {
            let Ok(expected) = base.join(u) else { continue };
            if let Some(q) = quick_split(u, "https") {
                fast += 1;
                assert_eq!(Some(q.host.to_string()), url_host(&expected), "{u}");
                assert_eq!(q.path, expected.path(), "{u}");
                assert_eq!(q.scheme, expected.scheme(), "{u}");
            }
        }
        assert!(quick_split("https://www.googletagmanager.com/gtag/js?id=G-1", "https").is_some());
        assert!(
            quick_split("//connect.facebook.net/en_US/fbevents.js", "http")
                .is_some_and(|q| q.scheme == "http")
        );
        assert!(fast >= 8, "{fast}");
    }

    #[test]
    fn applier_inserts_deletes_and_drops_across_chunks() {
        let input = b"0123456789abcdef";
        // The end of a removal is always known before its bytes arrive
        // (the end-tag handler runs before the end tag is emitted).
        for split in 1..=12 {
            let mut a = Applier::default();
            a.push(Edit::insert(2, &b"<I>"[..]));
            a.push(Edit::delete(4..6));
            a.push(Edit { at: 8, end: OPEN, insert: Cow::Borrowed(b"[D]"), drop_id: Some(7) });
            a.push(Edit::insert(16, &b"<END>"[..]));
            let (x, y) = input.split_at(split);
            a.feed(x);
            a.close_drop(7, 12);
            a.feed(y);
            a.finish();
            assert_eq!(String::from_utf8(a.out).unwrap(), "01<I>2367[D]cdef<END>", "split {split}");
        }
    }

    #[test]
    fn applier_sorts_late_edits_and_drops_moot_ones() {
        let mut a = Applier::default();
        a.push(Edit::insert(5, &b"B"[..]));
        a.push(Edit::insert(1, &b"A"[..]));
        a.push(Edit::delete(2..4));
        a.push(Edit::insert(3, &b"moot"[..]));
        a.feed(b"0123456");
        a.finish();
        assert_eq!(String::from_utf8(a.out).unwrap(), "0A14B56");
    }

    fn gpc_site() -> Arc<Site> {
        let text = "[listen]\nhttp = \"127.0.0.1:0\"\n[[site]]\nhosts = [\"www.example.com\"]\norigin = \"http://127.0.0.1:1\"\npolicy = \"default\"\n[policy.default]\npresets = [\"google-analytics\", \"meta-pixel\"]\n[policy.default.consent]\ngpc_refuses = [\"advertising\"]\n".to_string();
        let source = crate::config::Source { path: std::path::PathBuf::from("t.toml"), text };
        let snapshot = crate::snapshot::Snapshot::compile(&source, 1).unwrap();
        snapshot.router.route("www.example.com").unwrap().clone()
    }

    fn gpc_rules(
        granted: CategorySet,
        gpc_refused: CategorySet,
        page: &str,
    ) -> (String, Vec<(Item, Action, String)>) {
        let site = gpc_site();
        let mut r = PageRewriter::new(PageOptions {
            site,
            granted,
            gpc_refused,
            page_url: Some(Url::parse("https://www.example.com/").unwrap()),
            banner: None,
            nonce: None,
            charset: None,
        });
        let mut out = Vec::new();
        r.write(page.as_bytes(), &mut out);
        r.finish(&mut out);
        let d = r.take_decisions().into_iter().map(|d| (d.item, d.action, d.rule.to_string())).collect();
        (String::from_utf8(out).unwrap(), d)
    }

    /// An HTML resource blocked because `Sec-GPC: 1` took its category back
    /// says so, as cookie decisions do; one blocked for want of consent, and
    /// one allowed, do not.
    #[test]
    fn gpc_refusals_are_named_in_html_decisions() {
        let site = gpc_site();
        let cats = &site.policy.categories;
        let (analytics, advertising) = (cats.id("analytics").unwrap(), cats.id("advertising").unwrap());
        let mut granted = CategorySet::NECESSARY_ONLY;
        granted.insert(analytics);
        // What consent::read leaves: advertising was granted, GPC took it back.
        let gpc = CategorySet::only(advertising);
        let page = "<script src=\"https://connect.facebook.net/en_US/fbevents.js\"></script>\
            <script>fbq('init', '1');</script>\
            <noscript><img height=1 width=1 src=\"https://www.facebook.com/tr?id=1&ev=PageView\"></noscript>\
            <script src=\"https://www.googletagmanager.com/gtag/js?id=G-1\"></script>";
        let (out, d) = gpc_rules(granted, gpc, page);
        assert!(out.contains("data-category=\"advertising\""), "{out}");
        let blocked: Vec<_> = d.iter().filter(|(_, a, _)| *a == Action::Block).collect();
        assert_eq!(
            blocked.iter().map(|(i, _, _)| *i).collect::<Vec<_>>(),
            vec![Item::Script, Item::InlineScript, Item::Noscript],
            "{d:?}"
        );
        for (_, _, rule) in &blocked {
            assert!(rule.starts_with(GPC_NOTE), "{d:?}");
            assert!(rule.len() > GPC_NOTE.len(), "the rule is still named: {d:?}");
        }
        let allowed: Vec<_> = d.iter().filter(|(_, a, _)| *a == Action::Allow).collect();
        assert_eq!(allowed.len(), 1, "{d:?}");
        assert!(!allowed[0].2.contains("GPC"), "{d:?}");

        // Without GPC, the same refusals name only their rule.
        let (out2, d2) = gpc_rules(granted, CategorySet::EMPTY, page);
        assert_eq!(out2, out, "GPC changes the reason, not the rewrite");
        assert!(d2.iter().all(|(_, _, r)| !r.contains("GPC")), "{d2:?}");
        let strip = |d: &[(Item, Action, String)]| {
            d.iter().map(|(i, a, r)| (*i, *a, r.trim_start_matches(GPC_NOTE).to_string())).collect::<Vec<_>>()
        };
        assert_eq!(strip(&d), strip(&d2));
    }

    /// A category the visitor never granted is refused for want of consent
    /// even when GPC would also refuse it: `gpc_refused` only holds what GPC
    /// took back, so nothing is named.
    #[test]
    fn refusals_without_gpc_cause_do_not_name_it() {
        let (_, d) = gpc_rules(
            CategorySet::NECESSARY_ONLY,
            CategorySet::EMPTY,
            "<script src=\"https://connect.facebook.net/x.js\"></script>",
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].1, Action::Block);
        assert!(!d[0].2.contains("GPC"), "{d:?}");
    }

    /// Attribute values read in place from the chunk are lol_html's own,
    /// whatever the case, quoting, duplicates, missing values, non-ASCII
    /// bytes or encoding, and whether or not the tag lies in the chunk.
    #[test]
    fn attributes_read_in_place_equal_lol_htmls() {
        let page: &[u8] = b"<SCRIPT SRC=\"https://A.example/x.js\" TYPE='module' Type=x></SCRIPT>\
            <img src=/a.png srcset=\"a.png 1x, b.png 2x\" data-src=x>\
            <iframe src = \"https://e.example/?a=1&amp;b=2\" src=\"second\"></iframe>\
            <link rel=preload href=//cdn.example/x.js as=script>\
            <img src=\"https://\xc3\xa9.example/\xe9.png\" srcset=\"\xff\">\
            <object data=\"x\" data-x=y></object><img alt=\"a > b\" src='q'>\
            <embed src><p title=\"x\" =\"oops\" src=y/><img/src=\"slash\"><img src=\"a\"src=\"b\">\
            <base href=\"\thttps://base.example/ \"><script nonce language=JavaScript></script>";
        let names =
            ["src", "srcset", "type", "data", "href", "rel", "as", "language", "nonce", "title", "missing"];
        for encoding in [encoding_rs::UTF_8, encoding_rs::WINDOWS_1252] {
            for split in 0..=page.len() {
                let input = Arc::new(Mutex::new(Input::default()));
                let found = Arc::new(Mutex::new((0usize, 0usize, Vec::new())));
                let (i2, f2) = (input.clone(), found.clone());
                let mut settings = lol_html::send::Settings::new_send();
                settings.encoding = AsciiCompatibleEncoding::new(encoding).unwrap();
                settings.element_content_handlers = vec![lol_html::element!("*", move |el| {
                    let input = i2.lock().unwrap();
                    let mut f = f2.lock().unwrap();
                    for name in names {
                        let ours = input.get(el, name);
                        f.0 += usize::from(matches!(ours, Some(Cow::Borrowed(_))));
                        f.1 += 1;
                        let theirs = el.get_attribute(name);
                        if ours.as_deref() != theirs.as_deref() {
                            f.2.push(format!("{} {name}: {ours:?} != {theirs:?}", el.tag_name()));
                        }
                    }
                    let types: Vec<usize> = el
                        .attributes()
                        .iter()
                        .filter(|a| input.name_is(a, "type"))
                        .map(|a| a.name_source_location().unwrap().bytes().start)
                        .collect();
                    let expected: Vec<usize> = el
                        .attributes()
                        .iter()
                        .filter(|a| a.name() == "type")
                        .map(|a| a.name_source_location().unwrap().bytes().start)
                        .collect();
                    if types != expected {
                        f.2.push(format!("type names at {types:?} != {expected:?}"));
                    }
                    Ok(())
                })];
                let mut rewriter = lol_html::send::HtmlRewriter::new(settings, |_: &[u8]| {});
                let bytes = Bytes::from_static(page);
                for (at, chunk) in [(0, bytes.slice(..split)), (split, bytes.slice(split..))] {
                    *input.lock().unwrap() = Input { bytes: chunk.clone(), at };
                    rewriter.write(&chunk).unwrap();
                }
                rewriter.end().unwrap();
                let (borrowed, reads, mismatches) = &*found.lock().unwrap();
                assert!(mismatches.is_empty(), "{} split {split}: {mismatches:#?}", encoding.name());
                assert_eq!(*reads, 13 * names.len(), "every element was read");
                if split == 0 || split == page.len() {
                    // Whole: every ASCII value present was read in place.
                    assert!(*borrowed >= 15, "{borrowed} of {reads} read in place");
                }
            }
        }
    }

    #[test]
    fn scanner_finds_signatures_split_anywhere_once() {
        let ac = InlineSearcher::new(&["fbq(".to_string(), "gtag(".to_string()]).unwrap();
        let text = b"var a=1; fbq('init'); x; gtag('js'); fbq(1)";
        for split in 0..=text.len() {
            for split2 in split..=text.len() {
                let mut s = Scanner::default();
                let mut found = Vec::new();
                s.feed(&ac, &text[..split], |p| found.push(p));
                s.feed(&ac, &text[split..split2], |p| found.push(p));
                s.feed(&ac, &text[split2..], |p| found.push(p));
                assert_eq!(found, vec![0, 1, 0], "splits {split} {split2}");
            }
        }
    }
}
