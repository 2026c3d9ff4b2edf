//! The built-in consent banner: its assets, its texts and the HTML snippet
//! the body stage injects before `</body>`.
//!
//! Legacy sites often have no consent manager at all. With
//! `[policy.NAME.banner] enabled = true`, consentry supplies one, so the
//! whole consent loop (ask → cookie → enforcement → receipt) works without
//! touching the site.
//!
//! # What [`snippet`] renders
//! Depending on the visitor's consent, as the issue asks (the page carries
//! the dialog only when it has to ask):
//! - **no valid consent** (none, invalid, expired, older revision): the
//!   short dialog, open: title, text, "Refuse all", "Accept all" and a
//!   "Customise" link; plus the "Manage my cookies" link (hidden by CSS
//!   while the dialog shows) and the assets;
//! - **valid consent**: only the small "Manage my cookies" link and the
//!   assets (under 600 bytes).
//!
//! Both links point at the preferences page `/.consentry/preferences`
//! ([`preferences_page`], served by [`crate::consent_endpoint`]): the full
//! dialog with a switch, description and cookie table per category, Save
//! and Close. Without JavaScript the visitor simply follows the link and
//! posts that page's form; with it, `banner.js` fetches the page and puts
//! its panel (Customise) or its whole dialog (Manage my cookies) in place,
//! following the link instead if the fetch fails. Keeping the cookie
//! tables out of the page is what keeps the banner within its budget
//! (below).
//!
//! Every form is a plain `<form method="post" action="/.consentry/consent">`
//! with `<button name="choice" value="refuse-all|accept-all|custom">` and a
//! checkbox `name="category"` per optional category, so it works without
//! JavaScript; "Customise" on the preferences page is a `<details open>`.
//! `banner.js` only enhances it (fetch instead of navigation, focus
//! management, reviving newly allowed elements). "Refuse all" comes first in
//! the DOM, so implicit form submission (Enter) can never accept.
//!
//! Stable ids for tests and site stylesheets: `consentry-root`,
//! `consentry-banner` (overlay), `consentry-dialog`, `consentry-form`,
//! `consentry-title`, `consentry-desc`, `consentry-actions` (the row of
//! Refuse all / Accept all), `consentry-refuse-all`,
//! `consentry-accept-all`, `consentry-customise` (the link, or the
//! summary of the `consentry-prefs` `<details>`), `consentry-cat-NAME` (one
//! category), `consentry-cat-NAME-box` (its checkbox), `consentry-save`,
//! `consentry-close`, `consentry-manage`. The markup carries no classes:
//! `banner.css` picks elements by these ids and by structure under
//! `#consentry-root`, which keeps class names out of every page.
//!
//! # Texts
//! Built-in English, French, German, Italian and Spanish, chosen from
//! `Accept-Language` by [`negotiate_language`]. A policy overrides any of
//! them with `texts.LANG.KEY` (keys: [`TEXT_KEYS`], plus
//! `category.NAME` and `category.NAME.description`). Every text and every
//! value taken from the policy is HTML-escaped.
//!
//! # Assets
//! `banner.css` and `banner.js` (in `assets/banner/`) are embedded in the
//! binary and served under `/.consentry/` by [`crate::consent_endpoint`]
//! with a content-hash `ETag`; the snippet links them with `?v=HASH` so they
//! can be cached for a year. They are served minified ([`minify_css`]:
//! comments and line breaks out; [`minify_js`]: comments and needless
//! whitespace out, the script's own bindings renamed to short names,
//! declarations joined; the readable sources stay in the repository and
//! no JavaScript toolchain is needed to build). The banner's bytes stay
//! under 15 000 for the shipped demo policy (the most categories and
//! cookies), in its worst language: the injected HTML, both assets, and
//! the panel's markup on the preferences page, all counted except the
//! texts the policy supplies there (its cookie list, its category
//! descriptions). A test, `assets_fit_the_budget_and_stay_scoped`, counts
//! them. Nothing makes a third-party request. The CSS is scoped by
//! `#consentry-root` and the other `consentry-` ids; the JS is one IIFE
//! whose only global is `window.consentry`.
//!
//! # Phones and legacy pages
//! A page without `<meta name="viewport">` (most legacy sites) is laid out
//! about 980 px wide and shown zoomed out on a phone, which would shrink the
//! banner to unreadable text and buttons too small to tap, and the site
//! cannot be changed. So the overlay and the "Manage my cookies" link take
//! CSS `zoom: var(--cy-zoom)`: `banner.js` sets it to the inverse of
//! the page's zoom when the dialog opens (not afterwards, so pinch-zooming
//! in still enlarges it); without JavaScript, a media query estimates it for
//! portrait phones. On a page made for phones it stays 1. The browser tests
//! (`tests/browser.rs`) measure both cases in screen pixels.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::LazyLock;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::category::{CategoryId, NECESSARY};
use crate::consent::{Consent, Format};
use crate::policy::Policy;

/// The path prefix consentry reserves on every site it fronts.
pub const PREFIX: &str = "/.consentry/";
/// Where the banner form posts the visitor's choice.
pub const CONSENT_PATH: &str = "/.consentry/consent";
/// The banner stylesheet.
pub const CSS_PATH: &str = "/.consentry/banner.css";
/// The banner script.
pub const JS_PATH: &str = "/.consentry/banner.js";
/// The full dialog as a page of its own (works without JavaScript).
pub const PREFERENCES_PATH: &str = "/.consentry/preferences";

/// A static file served under [`PREFIX`].
#[derive(Debug)]
pub struct Asset {
    /// Its path (`/.consentry/banner.css`).
    pub path: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The text served: the source without its comments and indentation.
    pub body: String,
    /// A short hash of `body`: the `?v=` in the snippet's URLs.
    pub version: String,
    /// Strong `ETag` (`"HASH"`).
    pub etag: String,
}

impl Asset {
    fn new(path: &'static str, content_type: &'static str, body: String) -> Asset {
        let digest = Sha256::digest(body.as_bytes());
        let version: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let etag = format!("\"{version}\"");
        Asset { path, content_type, body, version, etag }
    }
}

/// The served stylesheet: the source without its `/* … */` comments (none
/// of our strings contain `/*`), indentation and line breaks. The source
/// keeps one rule per line, so joining the lines changes nothing.
fn minify_css(source: &str) -> String {
    let mut text = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        rest = rest[start..].find("*/").map_or("", |end| &rest[start + end + 2..]);
    }
    text.push_str(rest);
    text.lines().map(str::trim).collect()
}

/// A token of the banner script, as [`minify_js`] sees it.
#[derive(Debug, Clone, PartialEq)]
enum JsToken {
    /// An identifier or keyword.
    Word(String),
    /// A number (`0.9`, `100`).
    Number(String),
    /// A string literal, quotes and escapes as written.
    Str(String),
    /// One punctuation character (`=>` is two).
    Punct(char),
}

/// Splits the script into tokens, dropping whitespace and comments.
fn js_tokens(source: &str) -> Vec<JsToken> {
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\'' || c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() {
                let d = chars[i];
                i += 1;
                if d == '\\' {
                    i += 1;
                } else if d == c {
                    break;
                }
            }
            tokens.push(JsToken::Str(chars[start..i.min(chars.len())].iter().collect()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
            tokens.push(JsToken::Number(chars[start..i].iter().collect()));
        } else if ident(c) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            tokens.push(JsToken::Word(chars[start..i].iter().collect()));
        } else {
            tokens.push(JsToken::Punct(c));
            i += 1;
        }
    }
    tokens
}

/// The script's own bindings: names after `const`, `let`, `var` and
/// `function`, and the parameters of functions and arrow functions
/// (`x =>`, `(a, b) =>`, `function (a, b)`).
fn js_declared(tokens: &[JsToken]) -> std::collections::HashSet<String> {
    let word = |t: Option<&JsToken>| match t {
        Some(JsToken::Word(w)) => Some(w.clone()),
        _ => None,
    };
    let punct = |t: Option<&JsToken>, c: char| t == Some(&JsToken::Punct(c));
    let mut names = std::collections::HashSet::new();
    let params = |open: usize, names: &mut std::collections::HashSet<String>| {
        let mut j = open + 1;
        while let Some(t) = tokens.get(j) {
            match t {
                JsToken::Punct(')') => break,
                JsToken::Word(w) => {
                    names.insert(w.clone());
                }
                _ => {}
            }
            j += 1;
        }
    };
    for (i, t) in tokens.iter().enumerate() {
        match t {
            JsToken::Word(w) if matches!(w.as_str(), "const" | "let" | "var") => {
                if let Some(name) = word(tokens.get(i + 1)) {
                    names.insert(name);
                }
                // Further declarators: `, name =` outside any bracket, up
                // to the end of the statement (or of a `for` head).
                let mut depth = 0usize;
                for j in i + 2..tokens.len() {
                    match &tokens[j] {
                        JsToken::Punct('(' | '[' | '{') => depth += 1,
                        JsToken::Punct(')' | ']' | '}') if depth == 0 => break,
                        JsToken::Punct(')' | ']' | '}') => depth -= 1,
                        JsToken::Punct(';') if depth == 0 => break,
                        JsToken::Punct(',') if depth == 0 => {
                            if let Some(name) = word(tokens.get(j + 1))
                                && matches!(tokens.get(j + 2), Some(JsToken::Punct('=' | ',' | ';')))
                            {
                                names.insert(name);
                            }
                        }
                        _ => {}
                    }
                }
            }
            JsToken::Word(w) if w == "function" => {
                let mut open = i + 1;
                if let Some(name) = word(tokens.get(open)) {
                    names.insert(name);
                    open += 1;
                }
                if punct(tokens.get(open), '(') {
                    params(open, &mut names);
                }
            }
            JsToken::Punct('=') if punct(tokens.get(i + 1), '>') && i > 0 => {
                if let Some(name) = word(tokens.get(i - 1)) {
                    names.insert(name);
                } else if punct(tokens.get(i - 1), ')') {
                    let mut open = i - 1;
                    while open > 0 && !punct(tokens.get(open), '(') {
                        open -= 1;
                    }
                    params(open, &mut names);
                }
            }
            _ => {}
        }
    }
    names
}

/// `const a = 1; const b = 2;` → `const a = 1, b = 2;`: consecutive
/// declarations with the same keyword in the same block become one. A
/// statement counts as a declaration when `const`/`let` starts it (after
/// `;`, `{` or `}` at the same depth), so `for (const x of …)` is left
/// alone.
fn join_declarations(tokens: Vec<JsToken>) -> Vec<JsToken> {
    let mut out: Vec<JsToken> = Vec::with_capacity(tokens.len());
    // Per open bracket: the keyword of the declaration statement in
    // progress at that depth, if the statement is one.
    let mut open: Vec<Option<String>> = vec![None];
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        match t {
            JsToken::Punct('{' | '(' | '[') => open.push(None),
            JsToken::Punct('}' | ')' | ']') if open.len() > 1 => {
                open.pop();
            }
            JsToken::Punct(';') => {
                let current = open.last_mut().expect("the outermost level is never popped");
                if let (Some(kw), Some(JsToken::Word(next))) = (current.as_ref(), tokens.get(i + 1))
                    && kw == next
                {
                    out.push(JsToken::Punct(','));
                    i += 2;
                    continue;
                }
                *current = None;
            }
            JsToken::Word(w) if matches!(w.as_str(), "const" | "let") => {
                let starts = matches!(out.last(), None | Some(JsToken::Punct(';' | '{' | '}')));
                if starts {
                    *open.last_mut().expect("the outermost level is never popped") = Some(w.clone());
                }
            }
            _ => {}
        }
        out.push(t.clone());
        i += 1;
    }
    out
}

/// The served script: the source without comments, without the
/// whitespace the grammar does not need (kept only between two identifier
/// characters, and between `+ +` / `- -`), and with the script's own
/// bindings renamed to the shortest names the source does not use
/// (`granted` → `a`, most used first). String literals are copied as
/// they are; so are properties (a name after `.`) and object keys (a
/// name between `{` or `,` and `:`). That is all a minifier like terser
/// would do that matters here, without a JavaScript toolchain in the
/// build; it is safe because the source keeps the rules stated at its
/// top: every statement ends with `;`, no regex or template literals, no
/// shorthand properties (`{ a }`), no spread, labels or `switch`, and no
/// name is both a binding of the script and a global it uses. The
/// readable source stays in the repository; no build tool is needed.
fn minify_js(source: &str) -> String {
    const KEYWORDS: [&str; 8] = ["do", "if", "in", "of", "as", "is", "to", "on"];
    let mut tokens = js_tokens(source);
    let declared = js_declared(&tokens);
    let is_binding = |tokens: &[JsToken], i: usize| {
        let at = |j: usize| tokens.get(j);
        let property = i > 0 && at(i - 1) == Some(&JsToken::Punct('.'));
        let key = i > 0
            && matches!(at(i - 1), Some(JsToken::Punct('{' | ',')))
            && at(i + 1) == Some(&JsToken::Punct(':'));
        !property && !key
    };
    // Names a new name must not take: every word that stays as it is in
    // a binding position (globals such as `document`, keywords). Property
    // names and keys cannot clash with a binding.
    let used: std::collections::HashSet<String> = (0..tokens.len())
        .filter_map(|i| match &tokens[i] {
            JsToken::Word(w) if !declared.contains(w) && is_binding(&tokens, i) => Some(w.clone()),
            _ => None,
        })
        .collect();
    // Most used first, ties by name, so that the output is deterministic.
    let mut counts: Vec<(usize, String)> = declared
        .iter()
        .map(|name| {
            let n = (0..tokens.len())
                .filter(|&i| tokens[i] == JsToken::Word(name.clone()) && is_binding(&tokens, i))
                .count();
            (n, name.clone())
        })
        .collect();
    counts.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
    let fresh = letters
        .iter()
        .map(|c| c.to_string())
        .chain(letters.iter().flat_map(|a| letters.iter().map(move |b| format!("{a}{b}"))))
        .filter(|name| !used.contains(name) && !KEYWORDS.contains(&name.as_str()));
    let renames: std::collections::HashMap<String, String> =
        counts.into_iter().map(|(_, name)| name).zip(fresh).collect();
    for i in 0..tokens.len() {
        if let JsToken::Word(w) = &tokens[i]
            && let Some(short) = renames.get(w)
            && is_binding(&tokens, i)
        {
            tokens[i] = JsToken::Word(short.clone());
        }
    }
    let tokens = join_declarations(tokens);
    let mut out = String::with_capacity(source.len());
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    for (i, t) in tokens.iter().enumerate() {
        // `;` right before `}` is what automatic semicolon insertion puts
        // back: `return x}`.
        if *t == JsToken::Punct(';') && tokens.get(i + 1) == Some(&JsToken::Punct('}')) {
            continue;
        }
        let text: std::borrow::Cow<'_, str> = match t {
            JsToken::Word(w) | JsToken::Number(w) | JsToken::Str(w) => w.as_str().into(),
            JsToken::Punct(c) => c.to_string().into(),
        };
        if let (Some(last), Some(first)) = (out.chars().next_back(), text.chars().next())
            && ((ident(last) && ident(first)) || (last == first && (first == '+' || first == '-')))
        {
            out.push(' ');
        }
        out.push_str(&text);
    }
    out.push('\n');
    out
}

static CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(CSS_PATH, "text/css; charset=utf-8", minify_css(include_str!("../assets/banner/banner.css")))
});
static JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        JS_PATH,
        "text/javascript; charset=utf-8",
        minify_js(include_str!("../assets/banner/banner.js")),
    )
});

/// The asset served at `path` (without query), if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    match path {
        CSS_PATH => Some(&CSS),
        JS_PATH => Some(&JS),
        _ => None,
    }
}

/// The banner's stylesheet.
pub fn css() -> &'static Asset {
    &CSS
}

/// The banner's script.
pub fn js() -> &'static Asset {
    &JS
}

/// A language the banner has built-in texts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English (the default).
    En,
    /// French.
    Fr,
    /// German.
    De,
    /// Italian.
    It,
    /// Spanish.
    Es,
}

impl Lang {
    /// Every built-in language.
    pub const ALL: [Lang; 5] = [Lang::En, Lang::Fr, Lang::De, Lang::It, Lang::Es];

    /// The ISO 639-1 code (`fr`), as used in `texts.fr` and `lang="fr"`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::De => "de",
            Lang::It => "it",
            Lang::Es => "es",
        }
    }

    /// The language of a tag's primary subtag (`fr-CA` → French),
    /// case-insensitively.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        Lang::ALL.into_iter().find(|l| l.code().eq_ignore_ascii_case(primary))
    }

    fn texts(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::Fr => &FR,
            Lang::De => &DE,
            Lang::It => &IT,
            Lang::Es => &ES,
        }
    }
}

/// Longest `Accept-Language` value looked at, and most entries: real
/// browsers send well under this; anything longer is cut, not rejected.
const MAX_ACCEPT_LANGUAGE: usize = 1024;
const MAX_LANGUAGE_ENTRIES: usize = 32;

/// Picks the built-in language the visitor prefers from `Accept-Language`
/// (RFC 9110 §12.5.4): the highest `q` wins, the earlier entry on a tie;
/// `q=0` means "not this one"; `*` stands for English; a malformed entry is
/// skipped. English when nothing matches.
pub fn negotiate_language(accept_language: Option<&str>) -> Lang {
    let Some(header) = accept_language else {
        return Lang::En;
    };
    let header = match header.char_indices().nth(MAX_ACCEPT_LANGUAGE) {
        Some((cut, _)) => &header[..cut],
        None => header,
    };
    let mut best: Option<(u16, Lang)> = None;
    for entry in header.split(',').take(MAX_LANGUAGE_ENTRIES) {
        let mut parts = entry.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let mut q = 1000;
        let mut malformed = false;
        for param in parts {
            let param = param.trim();
            match param.split_once('=') {
                Some((k, v)) if k.trim().eq_ignore_ascii_case("q") => match parse_qvalue(v.trim()) {
                    Some(v) => q = v,
                    None => malformed = true,
                },
                _ => {}
            }
        }
        if malformed || tag.is_empty() || q == 0 {
            continue;
        }
        let lang = if tag == "*" { Some(Lang::En) } else { Lang::from_tag(tag) };
        if let Some(lang) = lang
            && best.is_none_or(|(bq, _)| q > bq)
        {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, l)| l)
}

/// A qvalue (`0`, `0.8`, `1.000`) in thousandths.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The built-in texts of one language.
struct Texts {
    title: &'static str,
    description: &'static str,
    accept_all: &'static str,
    refuse_all: &'static str,
    customise: &'static str,
    save: &'static str,
    manage: &'static str,
    close: &'static str,
    always_active: &'static str,
    cookies: &'static str,
    cookie: &'static str,
    provider: &'static str,
    purpose: &'static str,
    duration: &'static str,
    policy_link: &'static str,
    this_site: &'static str,
    consent_cookie: &'static str,
    days: &'static str,
    /// The usual four categories: (name, label, description used when the
    /// policy kept the built-in English description).
    categories: [(&'static str, &'static str, &'static str); 4],
}

/// The keys a policy may override in `texts.LANG` (besides
/// `category.NAME` and `category.NAME.description`).
pub const TEXT_KEYS: [&str; 18] = [
    "title",
    "description",
    "accept_all",
    "refuse_all",
    "customise",
    "save",
    "manage",
    "close",
    "always_active",
    "cookies",
    "cookie",
    "provider",
    "purpose",
    "duration",
    "policy_link",
    "this_site",
    "consent_cookie",
    "days",
];

impl Texts {
    fn get(&self, key: &str) -> Option<&'static str> {
        Some(match key {
            "title" => self.title,
            "description" => self.description,
            "accept_all" => self.accept_all,
            "refuse_all" => self.refuse_all,
            "customise" => self.customise,
            "save" => self.save,
            "manage" => self.manage,
            "close" => self.close,
            "always_active" => self.always_active,
            "cookies" => self.cookies,
            "cookie" => self.cookie,
            "provider" => self.provider,
            "purpose" => self.purpose,
            "duration" => self.duration,
            "policy_link" => self.policy_link,
            "this_site" => self.this_site,
            "consent_cookie" => self.consent_cookie,
            "days" => self.days,
            _ => return None,
        })
    }
}

/// The English descriptions [`crate::policy::compile`] gives the default
/// categories; when a policy kept them, the banner shows its own
/// translation instead (a test keeps the two lists in step).
const DEFAULT_DESCRIPTIONS: [(&str, &str); 4] = [
    (NECESSARY, "Strictly necessary: sign-in, security, load balancing and your consent choice."),
    ("functional", "Preferences such as language or region."),
    ("analytics", "Audience measurement and performance statistics."),
    ("advertising", "Advertising, retargeting and social media tracking."),
];

static EN: Texts = Texts {
    title: "Cookies on this site",
    description: "We use cookies that are strictly necessary for this site to work. With your consent, we would also use optional cookies, described under “Customise”. You can accept or refuse them all, choose by purpose, and change your choice at any time with “Manage my cookies”.",
    accept_all: "Accept all",
    refuse_all: "Refuse all",
    customise: "Customise",
    save: "Save my choices",
    manage: "Manage my cookies",
    close: "Close",
    always_active: "Always active",
    cookies: "Cookies",
    cookie: "Cookie",
    provider: "Provider",
    purpose: "Purpose",
    duration: "Duration",
    policy_link: "Cookie policy",
    this_site: "This site",
    consent_cookie: "Remembers your cookie choices",
    days: "days",
    categories: [
        (NECESSARY, "Strictly necessary", DEFAULT_DESCRIPTIONS[0].1),
        ("functional", "Functional", DEFAULT_DESCRIPTIONS[1].1),
        ("analytics", "Analytics", DEFAULT_DESCRIPTIONS[2].1),
        ("advertising", "Advertising", DEFAULT_DESCRIPTIONS[3].1),
    ],
};

static FR: Texts = Texts {
    title: "Les cookies sur ce site",
    description: "Nous utilisons des cookies strictement nécessaires au fonctionnement de ce site. Avec votre accord, nous utiliserions aussi des cookies facultatifs, décrits sous « Personnaliser ». Vous pouvez tous les accepter ou tous les refuser, choisir par finalité, et modifier votre choix à tout moment via « Gérer mes cookies ».",
    accept_all: "Tout accepter",
    refuse_all: "Tout refuser",
    customise: "Personnaliser",
    save: "Enregistrer mes choix",
    manage: "Gérer mes cookies",
    close: "Fermer",
    always_active: "Toujours actifs",
    cookies: "Cookies",
    cookie: "Cookie",
    provider: "Fournisseur",
    purpose: "Finalité",
    duration: "Durée",
    policy_link: "Politique de cookies",
    this_site: "Ce site",
    consent_cookie: "Mémorise vos choix en matière de cookies",
    days: "jours",
    categories: [
        (
            NECESSARY,
            "Strictement nécessaires",
            "Strictement nécessaires : connexion, sécurité, répartition de charge et mémorisation de votre choix.",
        ),
        ("functional", "Fonctionnels", "Préférences telles que la langue ou la région."),
        ("analytics", "Mesure d’audience", "Mesure d’audience et statistiques de performance."),
        ("advertising", "Publicité", "Publicité, reciblage et suivi par les réseaux sociaux."),
    ],
};

static DE: Texts = Texts {
    title: "Cookies auf dieser Website",
    description: "Wir verwenden Cookies, die für den Betrieb dieser Website unbedingt erforderlich sind. Mit Ihrer Einwilligung würden wir auch optionale Cookies verwenden, die unter „Anpassen“ beschrieben sind. Sie können alle akzeptieren oder alle ablehnen, nach Zweck auswählen und Ihre Wahl jederzeit über „Meine Cookies verwalten“ ändern.",
    accept_all: "Alle akzeptieren",
    refuse_all: "Alle ablehnen",
    customise: "Anpassen",
    save: "Auswahl speichern",
    manage: "Meine Cookies verwalten",
    close: "Schließen",
    always_active: "Immer aktiv",
    cookies: "Cookies",
    cookie: "Cookie",
    provider: "Anbieter",
    purpose: "Zweck",
    duration: "Speicherdauer",
    policy_link: "Cookie-Richtlinie",
    this_site: "Diese Website",
    consent_cookie: "Speichert Ihre Cookie-Auswahl",
    days: "Tage",
    categories: [
        (
            NECESSARY,
            "Unbedingt erforderlich",
            "Unbedingt erforderlich: Anmeldung, Sicherheit, Lastverteilung und Ihre Cookie-Auswahl.",
        ),
        ("functional", "Funktional", "Einstellungen wie Sprache oder Region."),
        ("analytics", "Statistik", "Reichweitenmessung und Leistungsstatistiken."),
        ("advertising", "Werbung", "Werbung, Retargeting und Tracking durch soziale Netzwerke."),
    ],
};

static IT: Texts = Texts {
    title: "I cookie su questo sito",
    description: "Utilizziamo cookie strettamente necessari al funzionamento di questo sito. Con il tuo consenso, utilizzeremmo anche cookie facoltativi, descritti in «Personalizza». Puoi accettarli o rifiutarli tutti, scegliere per finalità e modificare la tua scelta in qualsiasi momento con «Gestisci i miei cookie».",
    accept_all: "Accetta tutti",
    refuse_all: "Rifiuta tutti",
    customise: "Personalizza",
    save: "Salva le mie scelte",
    manage: "Gestisci i miei cookie",
    close: "Chiudi",
    always_active: "Sempre attivi",
    cookies: "Cookie",
    cookie: "Cookie",
    provider: "Fornitore",
    purpose: "Finalità",
    duration: "Durata",
    policy_link: "Informativa sui cookie",
    this_site: "Questo sito",
    consent_cookie: "Memorizza le tue scelte sui cookie",
    days: "giorni",
    categories: [
        (
            NECESSARY,
            "Strettamente necessari",
            "Strettamente necessari: accesso, sicurezza, bilanciamento del carico e la tua scelta sui cookie.",
        ),
        ("functional", "Funzionali", "Preferenze come la lingua o la regione."),
        ("analytics", "Statistiche", "Misurazione del pubblico e statistiche sulle prestazioni."),
        ("advertising", "Pubblicità", "Pubblicità, retargeting e tracciamento dei social network."),
    ],
};

static ES: Texts = Texts {
    title: "Cookies en este sitio",
    description: "Utilizamos cookies estrictamente necesarias para el funcionamiento de este sitio. Con su consentimiento, también utilizaríamos cookies opcionales, descritas en «Personalizar». Puede aceptarlas o rechazarlas todas, elegir por finalidad y cambiar su elección en cualquier momento con «Gestionar mis cookies».",
    accept_all: "Aceptar todas",
    refuse_all: "Rechazar todas",
    customise: "Personalizar",
    save: "Guardar mis preferencias",
    manage: "Gestionar mis cookies",
    close: "Cerrar",
    always_active: "Siempre activas",
    cookies: "Cookies",
    cookie: "Cookie",
    provider: "Proveedor",
    purpose: "Finalidad",
    duration: "Duración",
    policy_link: "Política de cookies",
    this_site: "Este sitio",
    consent_cookie: "Recuerda sus preferencias de cookies",
    days: "días",
    categories: [
        (
            NECESSARY,
            "Estrictamente necesarias",
            "Estrictamente necesarias: inicio de sesión, seguridad, equilibrio de carga y su elección sobre cookies.",
        ),
        ("functional", "Funcionales", "Preferencias como el idioma o la región."),
        ("analytics", "Analíticas", "Medición de audiencia y estadísticas de rendimiento."),
        ("advertising", "Publicidad", "Publicidad, retargeting y seguimiento de redes sociales."),
    ],
};

/// Texts for one policy and language: the policy's overrides, then the
/// built-in ones.
struct Ui<'a> {
    policy: &'a Policy,
    lang: Lang,
}

impl<'a> Ui<'a> {
    fn text(&self, key: &str) -> &'a str {
        if let Some(s) = self.policy.banner.texts.get(self.lang.code()).and_then(|t| t.get(key)) {
            return s;
        }
        self.lang.texts().get(key).or_else(|| EN.get(key)).unwrap_or("")
    }

    fn category_label(&self, name: &str) -> Cow<'a, str> {
        if let Some(s) = self.override_text(&format!("category.{name}")) {
            return Cow::Borrowed(s);
        }
        if let Some((_, label, _)) = self.lang.texts().categories.iter().find(|(n, _, _)| *n == name) {
            return Cow::Borrowed(label);
        }
        let mut chars = name.chars();
        match chars.next() {
            Some(first) => {
                Cow::Owned(first.to_uppercase().chain(chars).collect::<String>().replace('_', " "))
            }
            None => Cow::Borrowed(""),
        }
    }

    fn category_description(&self, name: &str, configured: &'a str) -> &'a str {
        if let Some(s) = self.override_text(&format!("category.{name}.description")) {
            return s;
        }
        let kept_default =
            configured.is_empty() || DEFAULT_DESCRIPTIONS.iter().any(|(n, d)| *n == name && *d == configured);
        if kept_default
            && let Some((_, _, d)) = self.lang.texts().categories.iter().find(|(n, _, _)| *n == name)
        {
            return d;
        }
        configured
    }

    fn override_text(&self, key: &str) -> Option<&'a str> {
        self.policy.banner.texts.get(self.lang.code()).and_then(|t| t.get(key)).map(String::as_str)
    }
}

/// The request headers [`is_top_level_request`] reads (for `Vary`).
pub const REQUEST_HEADERS: [&str; 3] = ["Sec-Fetch-Dest", "HX-Request", "X-Requested-With"];

/// Whether an HTML response to this request may get the banner: only a
/// top-level document does. Not when `Sec-Fetch-Dest` says anything but
/// `document` (an `<iframe>`, a `fetch()`), nor for htmx (`HX-Request`)
/// or jQuery-style XHR (`X-Requested-With: XMLHttpRequest`) fetches, whose
/// HTML is a fragment put into a page that already has the banner.
/// Requests without these headers (older browsers, curl) are treated as
/// documents; the body stage still skips a response with neither `<html>`
/// nor `<body>` (a fragment).
pub fn is_top_level_request(headers: &http::HeaderMap) -> bool {
    if headers.get("sec-fetch-dest").is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"document")) {
        return false;
    }
    if headers.contains_key("hx-request") {
        return false;
    }
    !headers
        .get_all("x-requested-with")
        .iter()
        .any(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"XMLHttpRequest"))
}

/// Whether the built-in banner is on for this policy.
pub fn enabled(policy: &Policy) -> bool {
    policy.banner.enabled
}

/// Problems with a policy's banner settings, one message each, for the
/// config check (the policy compiler may turn them into errors): a banner
/// on a policy that does not read consentry's own cookie, text overrides
/// for unknown languages or keys, a `policy_url` that is not http(s) or a
/// site path.
pub fn check(policy: &Policy) -> Vec<String> {
    let mut problems = Vec::new();
    if policy.banner.enabled && policy.consent.format != Format::Consentry {
        problems.push(format!(
            "policy {}: the built-in banner stores consent in consentry's own cookie, but consent.format is {:?}; set format = \"consentry\" or disable the banner",
            policy.name,
            policy.consent.format.name()
        ));
    }
    for (lang, texts) in &policy.banner.texts {
        if Lang::ALL.iter().all(|l| l.code() != lang) {
            problems.push(format!(
                "policy {}: banner.texts.{lang}: unknown language (built-in: en, fr, de, it, es)",
                policy.name
            ));
        }
        for key in texts.keys() {
            let category_key = key
                .strip_prefix("category.")
                .map(|rest| rest.strip_suffix(".description").unwrap_or(rest))
                .is_some_and(|cat| policy.categories.id(cat).is_some());
            if !category_key && !TEXT_KEYS.contains(&key.as_str()) {
                problems.push(format!(
                    "policy {}: banner.texts.{lang}.{key}: unknown key (known: {}, category.NAME, category.NAME.description)",
                    policy.name,
                    TEXT_KEYS.join(", ")
                ));
            }
        }
    }
    if let Some(url) = &policy.banner.policy_url
        && safe_link(url).is_none()
    {
        problems.push(format!(
            "policy {}: banner.policy_url {url:?} must be an http(s) URL or a path starting with /",
            policy.name
        ));
    }
    problems
}

/// The link target if it is safe to put in `href`: http(s) URLs and
/// site-relative paths, never `javascript:` and the like.
fn safe_link(url: &str) -> Option<&str> {
    let url = url.trim();
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let ok = lower.starts_with("https://")
        || lower.starts_with("http://")
        || (url.starts_with('/') && !url.starts_with("//"));
    (ok && !url.bytes().any(|b| b.is_ascii_control() || b == b'\\')).then_some(url)
}

pub use crate::html::escape;

/// One row of a category's cookie table.
struct Row<'a> {
    name: Cow<'a, str>,
    provider: Cow<'a, str>,
    purpose: Cow<'a, str>,
    duration: Cow<'a, str>,
}

/// The cookies a category covers, from the policy's rules (config first,
/// then presets; a pattern shadowed by an earlier rule is listed once).
/// `necessary` also lists the consent cookie itself.
fn rows<'a>(ui: &Ui<'a>, id: CategoryId) -> Vec<Row<'a>> {
    let policy = ui.policy;
    let mut out = Vec::new();
    if id == CategoryId::NECESSARY {
        let days = policy.consent.max_age.map_or(180, |d| d.as_secs() / 86_400);
        out.push(Row {
            name: Cow::Borrowed(policy.consent.cookie.as_str()),
            provider: Cow::Borrowed(ui.text("this_site")),
            purpose: Cow::Borrowed(ui.text("consent_cookie")),
            duration: Cow::Owned(format!("{days} {}", ui.text("days"))),
        });
    }
    let mut seen: Vec<(&str, Option<&str>)> = Vec::new();
    for rule in policy.cookies.rules() {
        let key = (rule.pattern.as_str(), rule.domain.as_deref());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        if rule.category != id {
            continue;
        }
        out.push(Row {
            name: Cow::Borrowed(rule.pattern.as_str()),
            provider: Cow::Borrowed(rule.provider.as_str()),
            purpose: Cow::Borrowed(rule.purpose.as_str()),
            duration: Cow::Borrowed(rule.duration.as_str()),
        });
    }
    out
}

/// `/.consentry/preferences?return_to=PATH`, escaped for an attribute.
fn preferences_href(return_to: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    format!("{PREFERENCES_PATH}?return_to={encoded}")
}

/// Which dialog [`dialog`] renders.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialog {
    /// Injected into a page: title, text, Refuse all / Accept all and a
    /// "Customise" link to the preferences page.
    Short,
    /// The preferences page: the same, with the per-category switches,
    /// descriptions and cookie tables, Save, and Close.
    Full,
}

/// Renders the overlay (`#consentry-banner`) with its dialog and form.
fn dialog(h: &mut String, ui: &Ui<'_>, consent: &Consent, return_to: &str, kind: Dialog) {
    let policy = ui.policy;
    let valid = consent.is_valid();
    let granted = if valid { consent.granted } else { crate::category::CategorySet::NECESSARY_ONLY };
    let t = |key: &str| escape(ui.text(key));
    h.push_str(
        "<div id=\"consentry-banner\"><div id=\"consentry-dialog\" role=\"dialog\" aria-modal=\"true\" aria-labelledby=\"consentry-title\" aria-describedby=\"consentry-desc\" tabindex=\"-1\">",
    );
    let _ = write!(
        h,
        "<form id=\"consentry-form\" method=\"post\" action=\"{CONSENT_PATH}\"><input type=\"hidden\" name=\"return_to\" value=\"{}\"><h2 id=\"consentry-title\">{}</h2><p id=\"consentry-desc\">{}",
        escape(return_to),
        t("title"),
        t("description")
    );
    if let Some(url) = policy.banner.policy_url.as_deref().and_then(safe_link) {
        let _ = write!(h, " <a href=\"{}\">{}</a>", escape(url), t("policy_link"));
    }
    // Same element, same container, no class: equal prominence. Refuse
    // first so that implicit submission (Enter) never accepts.
    let _ = write!(
        h,
        "</p><div id=\"consentry-actions\"><button name=\"choice\" value=\"refuse-all\" id=\"consentry-refuse-all\">{}</button><button name=\"choice\" value=\"accept-all\" id=\"consentry-accept-all\">{}</button></div>",
        t("refuse_all"),
        t("accept_all")
    );
    if kind == Dialog::Short {
        // Without JavaScript a link to the preferences page; banner.js
        // fetches that page and puts its panel here instead.
        let _ = write!(
            h,
            "<a id=\"consentry-customise\" href=\"{}\">{}</a></form></div></div>",
            escape(&preferences_href(return_to)),
            t("customise")
        );
        return;
    }
    let _ = write!(
        h,
        "<details open id=\"consentry-prefs\"><summary id=\"consentry-customise\">{}</summary>",
        t("customise")
    );
    for (id, category) in policy.categories.iter() {
        let name = escape(&category.name);
        let necessary = id == CategoryId::NECESSARY;
        // The label holds its switch (no `for`, no wrapper): its text is
        // the switch's name, "Always active" included for necessary.
        let _ = write!(
            h,
            "<div id=\"consentry-cat-{name}\"><label>{}",
            escape(&ui.category_label(&category.name))
        );
        if necessary {
            let _ = write!(
                h,
                "<span>{}</span><input type=\"checkbox\" id=\"consentry-cat-{name}-box\" value=\"{name}\" checked disabled",
                t("always_active")
            );
        } else {
            let _ = write!(
                h,
                "<input type=\"checkbox\" id=\"consentry-cat-{name}-box\" name=\"category\" value=\"{name}\"{}",
                if valid && granted.contains(id) { " checked" } else { "" }
            );
        }
        let _ = write!(
            h,
            " aria-describedby=\"consentry-cat-{name}-desc\"></label><p id=\"consentry-cat-{name}-desc\">{}</p>",
            escape(ui.category_description(&category.name, &category.description))
        );
        let rows = rows(ui, id);
        if !rows.is_empty() {
            let _ = write!(
                h,
                "<details><summary>{} ({})</summary><div><table><tr><th>{}<th>{}<th>{}<th>{}",
                t("cookies"),
                rows.len(),
                t("cookie"),
                t("provider"),
                t("purpose"),
                t("duration")
            );
            for row in &rows {
                let _ = write!(
                    h,
                    "<tr><td>{}<td>{}<td>{}<td>{}",
                    escape(&row.name),
                    escape(&row.provider),
                    escape(&row.purpose),
                    escape(&row.duration)
                );
            }
            h.push_str("</table></div></details>");
        }
        h.push_str("</div>");
    }
    // Close goes back to the page without a new choice (banner.js hides
    // it until a choice exists: closing is not choosing).
    let _ = write!(
        h,
        "<button name=\"choice\" value=\"custom\" id=\"consentry-save\">{}</button></details></form><a id=\"consentry-close\" href=\"{}\" role=\"button\" aria-label=\"{}\">&times;</a></div></div>",
        t("save"),
        escape(return_to),
        t("close")
    );
}

/// The HTML injected before `</body>` on a page of a banner-enabled policy.
///
/// - No valid consent (none, expired, older revision): the open dialog
///   ([`Dialog::Short`]: title, text, Refuse all, Accept all, a Customise
///   link), the "Manage my cookies" link (hidden while the dialog shows)
///   and the assets.
/// - Valid consent: only the "Manage my cookies" link and the assets. The
///   link points at the preferences page ([`preferences_page`]), which
///   works without JavaScript; with it, `banner.js` fetches that page and
///   opens its dialog in place.
///
/// The `<link>`/`<script>` carry `nonce` when the response has a CSP.
/// `return_to` is the page's path and query, where the form returns
/// after a choice without JavaScript; anything but a same-origin path is
/// replaced by `/`.
pub fn snippet(
    policy: &Policy,
    lang: Lang,
    consent: &Consent,
    nonce: Option<&str>,
    return_to: &str,
) -> Bytes {
    let ui = Ui { policy, lang };
    let valid = consent.is_valid();
    let granted = if valid { consent.granted } else { crate::category::CategorySet::NECESSARY_ONLY };
    let return_to = crate::consent_endpoint::safe_return_to(return_to).unwrap_or("/");
    let nonce_attr = nonce.map(|n| format!(" nonce=\"{}\"", escape(n))).unwrap_or_default();

    let mut h = String::with_capacity(2048);
    let _ = write!(
        h,
        "<div id=\"consentry-root\" lang=\"{lang}\" data-granted=\"{granted}\" data-valid=\"{valid}\"{csp}><link rel=\"stylesheet\" href=\"{CSS_PATH}?v={v}\"{nonce_attr}>",
        lang = lang.code(),
        granted = escape(&policy.categories.names(granted)),
        valid = u8::from(valid),
        csp = if nonce.is_some() { " data-csp" } else { "" },
        v = CSS.version,
    );
    if !valid {
        dialog(&mut h, &ui, consent, return_to, Dialog::Short);
    }
    let _ = write!(
        h,
        "<a id=\"consentry-manage\" href=\"{}\" aria-haspopup=\"dialog\">{}</a><script src=\"{JS_PATH}?v={}\" defer{nonce_attr}></script></div>",
        escape(&preferences_href(return_to)),
        escape(ui.text("manage")),
        JS.version
    );
    tracing::debug!(
        policy = %policy.name,
        lang = lang.code(),
        open = !valid,
        bytes = h.len(),
        "banner snippet rendered"
    );
    Bytes::from(h)
}

/// `GET /.consentry/preferences`: a page of its own with the full dialog
/// (every category's switch, description and cookies), for visitors
/// without JavaScript (the banner's Customise and "Manage my cookies"
/// links lead here) and for `banner.js`, which fetches it and takes the
/// dialog from it. Its switches show `consent`; the form returns to
/// `return_to` (a same-origin path, else `/`). No script.
pub fn preferences_page(policy: &Policy, lang: Lang, consent: &Consent, return_to: &str) -> String {
    let ui = Ui { policy, lang };
    let return_to = crate::consent_endpoint::safe_return_to(return_to).unwrap_or("/");
    let valid = consent.is_valid();
    let granted = if valid { consent.granted } else { crate::category::CategorySet::NECESSARY_ONLY };
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" content=\"noindex\"><title>{title}</title><link rel=\"stylesheet\" href=\"{CSS_PATH}?v={v}\"></head><body><div id=\"consentry-root\" lang=\"{lang}\" data-granted=\"{granted}\" data-valid=\"{valid}\">",
        lang = lang.code(),
        title = escape(ui.text("title")),
        v = CSS.version,
        granted = escape(&policy.categories.names(granted)),
        valid = u8::from(valid),
    );
    dialog(&mut h, &ui, consent, return_to, Dialog::Full);
    h.push_str("</div></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::CategorySet;
    use crate::config::Source;
    use crate::consent::State;
    use crate::presets::Presets;
    use std::path::PathBuf;

    pub(crate) fn policy(text: &str) -> Policy {
        let source = Source { path: PathBuf::from("t.toml"), text: text.to_string() };
        let file = source.parse().unwrap();
        crate::policy::compile("default", &source, &file.policy, &Presets::default()).unwrap()
    }

    const POLICY: &str = r#"
[policy.default]
[policy.default.consent]
revision = 3
[policy.default.banner]
enabled = true
policy_url = "/cookies"
[[policy.default.cookie]]
name = "_ga"
category = "analytics"
provider = "Google Analytics"
purpose = "Distinguishes visitors"
duration = "13 months"
[[policy.default.cookie]]
name = "_ga_*"
category = "analytics"
provider = "Google Analytics"
purpose = "Keeps session state"
duration = "13 months"
[[policy.default.cookie]]
name = "_fbp"
category = "advertising"
provider = "Meta"
purpose = "Ad delivery"
duration = "3 months"
"#;

    fn none() -> Consent {
        Consent::none(Format::Consentry, State::Missing)
    }

    fn valid(policy: &Policy, names: &[&str]) -> Consent {
        let granted: CategorySet = names.iter().map(|n| policy.categories.id(n).unwrap()).collect();
        Consent {
            granted: granted.union(CategorySet::NECESSARY_ONLY),
            state: State::Valid,
            format: Format::Consentry,
            revision: Some(3),
            given_at: None,
            gpc_refused: CategorySet::EMPTY,
        }
    }

    fn render(policy: &Policy, lang: Lang, consent: &Consent, nonce: Option<&str>) -> String {
        String::from_utf8(snippet(policy, lang, consent, nonce, "/page?a=1&b=2").to_vec()).unwrap()
    }

    fn page(policy: &Policy, lang: Lang, consent: &Consent) -> String {
        preferences_page(policy, lang, consent, "/page?a=1&b=2")
    }

    /// What a visitor may be shown: the injected snippet and the
    /// preferences page.
    fn both(policy: &Policy, lang: Lang, consent: &Consent) -> String {
        render(policy, lang, consent, None) + &page(policy, lang, consent)
    }

    /// The opening tag of the element with this id.
    fn tag<'a>(html: &'a str, id: &str) -> &'a str {
        let at = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
        let start = html[..at].rfind('<').unwrap();
        let end = at + html[at..].find('>').unwrap();
        &html[start..=end]
    }

    #[test]
    fn negotiates_language_with_qvalues() {
        assert_eq!(negotiate_language(None), Lang::En);
        assert_eq!(negotiate_language(Some("")), Lang::En);
        assert_eq!(negotiate_language(Some("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5")), Lang::Fr);
        assert_eq!(negotiate_language(Some("en;q=0.5, de")), Lang::De);
        assert_eq!(negotiate_language(Some("nl, it;q=0.3")), Lang::It);
        assert_eq!(negotiate_language(Some("nl, pt")), Lang::En);
        assert_eq!(negotiate_language(Some("ES-mx")), Lang::Es);
        assert_eq!(negotiate_language(Some("fr;q=0, es;q=0.1")), Lang::Es);
        // Equal q: the earlier entry wins.
        assert_eq!(negotiate_language(Some("it;q=0.8, fr;q=0.8")), Lang::It);
        // `*` is English, at its own q.
        assert_eq!(negotiate_language(Some("nl, *;q=0.9, de;q=0.8")), Lang::En);
        // Malformed q-values skip the entry; whitespace is tolerated.
        assert_eq!(negotiate_language(Some("fr;q=2, de;q=abc, es ; q=0.400")), Lang::Es);
        assert_eq!(negotiate_language(Some("fr;q=1.5")), Lang::En);
        assert_eq!(negotiate_language(Some("fr;q=0.1234")), Lang::En);
        assert_eq!(negotiate_language(Some("de;q=1.000")), Lang::De);
        // `frx` is not French; `fr_FR` (seen in the wild) is.
        assert_eq!(negotiate_language(Some("frx, fr_FR;q=0.5")), Lang::Fr);
        // Huge headers are cut, never a panic.
        let long = format!("{}de", "x,".repeat(5000));
        assert_eq!(negotiate_language(Some(&long)), Lang::En);
        assert_eq!(negotiate_language(Some(&"é".repeat(3000))), Lang::En);
    }

    #[test]
    fn qvalues_parse() {
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.05"), Some(50));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.0"), Some(1000));
        assert_eq!(parse_qvalue("1.001"), None);
        assert_eq!(parse_qvalue(".5"), None);
        assert_eq!(parse_qvalue("0.5x"), None);
    }

    #[test]
    fn escapes_html() {
        assert_eq!(escape("plain"), "plain");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn every_policy_text_is_escaped() {
        let evil = "<script>alert(1)</script>\"'&";
        let text = format!(
            r#"
[policy.default]
[policy.default.consent]
cookie = "consent"
[policy.default.categories]
necessary = {{ description = {evil:?} }}
stats = {{ description = {evil:?} }}
[policy.default.banner]
enabled = true
policy_url = "/p?a=<x>&b=\"y\""
[policy.default.banner.texts.en]
title = {evil:?}
description = {evil:?}
accept_all = {evil:?}
refuse_all = {evil:?}
customise = {evil:?}
save = {evil:?}
manage = {evil:?}
close = {evil:?}
always_active = {evil:?}
cookies = {evil:?}
cookie = {evil:?}
provider = {evil:?}
purpose = {evil:?}
duration = {evil:?}
policy_link = {evil:?}
this_site = {evil:?}
consent_cookie = {evil:?}
days = {evil:?}
"category.stats" = {evil:?}
[[policy.default.cookie]]
name = "<img src=x onerror=alert(1)>"
category = "stats"
provider = {evil:?}
purpose = {evil:?}
duration = {evil:?}
"#
        );
        let p = policy(&text);
        let consent = none();
        let html = String::from_utf8(
            snippet(&p, Lang::En, &consent, Some("n\"><script>"), "/x\"><script>alert(1)</script>").to_vec(),
        )
        .unwrap();
        // Exactly one real script element: ours.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        let prefs = preferences_page(&p, Lang::En, &consent, "/x\"><script>alert(1)</script>");
        assert_eq!(prefs.matches("<script").count(), 0, "{prefs}");
        assert!(!prefs.contains("<img") && !prefs.contains("\"'&<"), "{prefs}");
        assert!(prefs.contains("value=\"/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""));
        let html = html + &prefs;
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("\"'&<"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
        // Every text was overridden, so the evil string appears many times.
        assert!(html.matches("&lt;script&gt;alert(1)").count() >= 20, "{html}");
        assert!(html.contains("href=\"/p?a=&lt;x&gt;&amp;b=&quot;y&quot;\""));
        assert!(html.contains("nonce=\"n&quot;&gt;&lt;script&gt;\""));
        // A local path with markup characters is escaped into the form.
        assert!(
            html.contains("name=\"return_to\" value=\"/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\"")
        );
    }

    #[test]
    fn unsafe_policy_links_are_dropped() {
        let mut p = policy(POLICY);
        for bad in ["javascript:alert(1)", "//evil.example/", "JaVaScRiPt:x", "data:text/html,x", "/a\\b"] {
            p.banner.policy_url = Some(bad.to_string());
            let html = render(&p, Lang::En, &none(), None);
            assert!(!html.contains("Cookie policy</a>"), "{bad}: {html}");
            assert_eq!(check(&p).len(), 1, "{bad}");
        }
        p.banner.policy_url = Some("https://example.com/cookies".into());
        assert!(render(&p, Lang::En, &none(), None).contains("<a href=\"https://example.com/cookies\">"));
        assert!(page(&p, Lang::En, &none()).contains("<a href=\"https://example.com/cookies\">"));
        assert!(check(&p).is_empty());
    }

    /// Balanced markup.
    fn assert_balanced(html: &str) {
        for t in ["div", "details", "form", "table", "a", "p", "html", "body"] {
            assert_eq!(
                html.matches(&format!("<{t} ")).count() + html.matches(&format!("<{t}>")).count(),
                html.matches(&format!("</{t}>")).count(),
                "<{t}> in {html}"
            );
        }
    }

    #[test]
    fn no_consent_injects_the_short_open_dialog() {
        let p = policy(POLICY);
        let html = render(&p, Lang::En, &none(), None);
        let overlay = tag(&html, "consentry-banner");
        assert!(!overlay.contains("hidden"), "{overlay}");
        let dialog = tag(&html, "consentry-dialog");
        for attr in [
            "role=\"dialog\"",
            "aria-modal=\"true\"",
            "aria-labelledby=\"consentry-title\"",
            "aria-describedby=\"consentry-desc\"",
        ] {
            assert!(dialog.contains(attr), "{attr}");
        }
        assert!(html.contains("id=\"consentry-title\""));
        assert!(html.contains("id=\"consentry-desc\""));
        let form = tag(&html, "consentry-form");
        assert!(form.contains("method=\"post\"") && form.contains("action=\"/.consentry/consent\""));
        assert!(html.contains("<input type=\"hidden\" name=\"return_to\" value=\"/page?a=1&amp;b=2\">"));
        // Refuse before Accept, both submit buttons of the one form.
        assert!(html.find("consentry-refuse-all").unwrap() < html.find("consentry-accept-all").unwrap());
        // Customise is a link to the full dialog (no switches, no cookie
        // tables in the page: banner.js fetches them, or the visitor
        // without JavaScript follows the link).
        let customise = tag(&html, "consentry-customise");
        assert_eq!(
            customise,
            "<a id=\"consentry-customise\" href=\"/.consentry/preferences?return_to=%2Fpage%3Fa%3D1%26b%3D2\">"
        );
        assert!(
            !html.contains("type=\"checkbox\"") && !html.contains("<table") && !html.contains("<details")
        );
        assert!(html.contains("data-valid=\"0\"") && html.contains("data-granted=\"necessary\""));
        // Assets linked with their version; no nonce without CSP.
        assert!(html.contains(&format!("href=\"/.consentry/banner.css?v={}\"", css().version)));
        assert!(html.contains(&format!("<script src=\"/.consentry/banner.js?v={}\" defer>", js().version)));
        assert!(!html.contains("nonce") && !html.contains("data-csp"));
        assert!(html.contains("<a href=\"/cookies\">Cookie policy</a>"));
        // The control that reopens it after a choice (hidden by CSS while
        // the dialog shows).
        assert!(tag(&html, "consentry-manage").contains("href=\"/.consentry/preferences?return_to="));
        assert_balanced(&html);
    }

    #[test]
    fn the_preferences_page_has_the_full_dialog() {
        let p = policy(POLICY);
        let html = page(&p, Lang::En, &none());
        assert!(html.starts_with("<!doctype html><html lang=\"en\">"), "{html}");
        assert!(html.contains(&format!("href=\"/.consentry/banner.css?v={}\"", css().version)));
        assert!(!html.contains("<script"), "works without JavaScript, runs none");
        assert!(!tag(&html, "consentry-banner").contains("hidden"));
        assert!(tag(&html, "consentry-dialog").contains("role=\"dialog\""));
        let form = tag(&html, "consentry-form");
        assert!(form.contains("method=\"post\"") && form.contains("action=\"/.consentry/consent\""));
        assert!(html.contains("<input type=\"hidden\" name=\"return_to\" value=\"/page?a=1&amp;b=2\">"));
        assert!(tag(&html, "consentry-prefs").starts_with("<details open "));
        // Nothing is pre-ticked; necessary is locked on and not submitted.
        for cat in ["functional", "analytics", "advertising"] {
            let b = tag(&html, &format!("consentry-cat-{cat}-box"));
            assert!(!b.contains("checked"), "{b}");
            assert!(b.contains(&format!("name=\"category\" value=\"{cat}\"")), "{b}");
        }
        let necessary = tag(&html, "consentry-cat-necessary-box");
        assert!(necessary.contains("checked disabled") && !necessary.contains("name="), "{necessary}");
        assert!(tag(&html, "consentry-save").contains("value=\"custom\""));
        // Close goes back to the page.
        assert!(tag(&html, "consentry-close").contains("href=\"/page?a=1&amp;b=2\""));
        // Cookie tables: from the rules, plus the consent cookie itself.
        assert!(html.contains("<tr><td>_ga_*<td>Google Analytics<td>Keeps session state<td>13 months<"));
        assert!(
            html.contains("<tr><td>consentry<td>This site<td>Remembers your cookie choices<td>180 days<")
        );
        assert!(html.contains("<summary>Cookies (2)</summary>"));
        // Functional has no cookies: no empty table.
        let functional = &html[html.find("id=\"consentry-cat-functional\"").unwrap()..];
        let functional = &functional[..functional.find("id=\"consentry-cat-analytics\"").unwrap()];
        assert!(!functional.contains("<table"), "{functional}");
        assert_balanced(&html);
        // With consent, the switches show it.
        let html = page(&p, Lang::En, &valid(&p, &["analytics"]));
        assert!(tag(&html, "consentry-cat-analytics-box").contains("checked"));
        assert!(!tag(&html, "consentry-cat-advertising-box").contains("checked"));
        assert!(html.contains("data-granted=\"necessary,analytics\"") && html.contains("data-valid=\"1\""));
    }

    #[test]
    fn valid_consent_injects_only_the_manage_control() {
        let p = policy(POLICY);
        let consent = valid(&p, &["analytics"]);
        let html = render(&p, Lang::En, &consent, Some("abc123"));
        for id in ["consentry-banner", "consentry-dialog", "consentry-form", "consentry-refuse-all"] {
            assert!(!html.contains(id), "{id} injected with valid consent: {html}");
        }
        let manage = tag(&html, "consentry-manage");
        assert!(
            manage.contains("href=\"/.consentry/preferences?return_to=%2Fpage%3Fa%3D1%26b%3D2\""),
            "{manage}"
        );
        assert!(html.contains(">Manage my cookies</a>"));
        assert!(html.contains("data-granted=\"necessary,analytics\"") && html.contains("data-valid=\"1\""));
        // CSP: both assets carry the nonce and the script knows to reload.
        assert!(
            html.contains("<link rel=\"stylesheet\" href=\"/.consentry/banner.css?v=")
                && html.contains("nonce=\"abc123\">")
        );
        assert_eq!(html.matches("nonce=\"abc123\"").count(), 2);
        assert!(html.contains(" data-csp>"));
        assert!(html.len() < 600, "{} bytes: {html}", html.len());
        assert_balanced(&html);
        // Expired or older-revision consent asks again.
        for state in [State::Expired, State::OldRevision] {
            let old = Consent { state, ..consent };
            assert!(render(&p, Lang::En, &old, None).contains("id=\"consentry-dialog\""), "{state:?}");
        }
    }

    #[test]
    fn accept_and_refuse_look_the_same() {
        let p = policy(POLICY);
        let html = render(&p, Lang::En, &none(), None);
        let accept = tag(&html, "consentry-accept-all");
        let refuse = tag(&html, "consentry-refuse-all");
        // Identical but for value and id.
        let normal = |t: &str| t.replace("accept-all", "X").replace("refuse-all", "X");
        assert_eq!(normal(accept), normal(refuse));
        assert!(accept.starts_with("<button ") && !accept.contains("class="));
        // Siblings in the same container.
        let actions = &html[html.find("<div id=\"consentry-actions\">").unwrap()..];
        let actions = &actions[..actions.find("</div>").unwrap()];
        assert!(actions.contains(accept) && actions.contains(refuse));
        // No style rule can single one out: nothing in the CSS names either
        // button, and no rule about the buttons or their row picks one by
        // position or sibling.
        let css = css().body.as_str();
        for needle in ["accept", "refuse", "[value", "[name"] {
            assert!(!css.contains(needle), "banner.css contains {needle:?}");
        }
        for rule in css.split('}').filter(|r| r.contains("button") || r.contains("consentry-actions")) {
            let selector = rule.split('{').next().unwrap();
            for needle in ["first", "last", "nth-", "only-", "+", "~", ">"] {
                assert!(!selector.contains(needle), "{selector:?} contains {needle:?}");
            }
        }
    }

    #[test]
    fn texts_follow_language_and_overrides() {
        let mut p = policy(POLICY);
        let html = both(&p, Lang::Fr, &none());
        assert!(html.contains("lang=\"fr\""));
        assert!(html.contains(">Tout refuser</button>") && html.contains(">Tout accepter</button>"));
        assert!(html.contains(">Mesure d’audience<input"));
        // The default English description is translated.
        assert!(html.contains("Mesure d’audience et statistiques de performance."));
        let de = both(&p, Lang::De, &none());
        assert!(de.contains(">Alle ablehnen</button>") && de.contains(">Meine Cookies verwalten</a>"));
        assert!(render(&p, Lang::It, &none(), None).contains(">Rifiuta tutti</button>"));
        assert!(render(&p, Lang::Es, &none(), None).contains(">Rechazar todas</button>"));

        p.banner.texts.entry("fr".into()).or_default().insert("accept_all".into(), "J'accepte".into());
        p.banner.texts.entry("fr".into()).or_default().insert("category.analytics".into(), "Stats".into());
        p.banner
            .texts
            .entry("fr".into())
            .or_default()
            .insert("category.analytics.description".into(), "Statistiques".into());
        let html = both(&p, Lang::Fr, &none());
        assert!(html.contains(">J&#39;accepte</button>"));
        assert!(html.contains(">Stats<input") && html.contains(">Statistiques</p>"));
        // Overrides are per language.
        assert!(render(&p, Lang::En, &none(), None).contains(">Accept all</button>"));
    }

    #[test]
    fn configured_descriptions_and_unknown_categories() {
        let p = policy(
            r#"
[policy.default]
[policy.default.categories]
necessary = { description = "Needed." }
social_media = { description = "Share buttons." }
[policy.default.banner]
enabled = true
"#,
        );
        let html = both(&p, Lang::De, &none());
        assert!(html.contains(">Needed.</p>"), "a configured description is shown as written");
        assert!(html.contains(">Social media<input") && html.contains(">Share buttons.</p>"));
        assert!(html.contains("value=\"social_media\""));
    }

    #[test]
    fn default_descriptions_match_the_policy_compiler() {
        let p = policy("[policy.default]\n");
        for (name, description) in DEFAULT_DESCRIPTIONS {
            let id = p.categories.id(name).unwrap();
            assert_eq!(p.categories.get(id).description, description, "{name}");
        }
    }

    #[test]
    fn every_language_has_every_text() {
        for lang in Lang::ALL {
            for key in TEXT_KEYS {
                assert!(lang.texts().get(key).is_some_and(|t| !t.is_empty()), "{lang:?} {key}");
            }
            for (i, (name, label, description)) in lang.texts().categories.iter().enumerate() {
                assert_eq!(*name, DEFAULT_DESCRIPTIONS[i].0);
                assert!(!label.is_empty() && !description.is_empty());
            }
            assert_eq!(Lang::from_tag(lang.code()), Some(lang));
        }
    }

    #[test]
    fn check_reports_bad_settings() {
        let mut p = policy(POLICY);
        assert!(check(&p).is_empty());
        p.banner.texts.entry("nl".into()).or_default().insert("title".into(), "x".into());
        p.banner.texts.entry("fr".into()).or_default().insert("titel".into(), "x".into());
        p.banner.texts.entry("fr".into()).or_default().insert("category.analytics".into(), "x".into());
        p.banner.texts.entry("fr".into()).or_default().insert("category.nope".into(), "x".into());
        p.consent.format = Format::OneTrust;
        let problems = check(&p);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems.iter().any(|m| m.contains("consent.format")));
        assert!(problems.iter().any(|m| m.contains("texts.nl")));
        assert!(problems.iter().any(|m| m.contains("texts.fr.titel")));
        assert!(problems.iter().any(|m| m.contains("category.nope")));
    }

    #[test]
    fn assets_fit_the_budget_and_stay_scoped() {
        // The issue's budget: the banner's HTML, CSS and JS together under
        // 15 KB uncompressed. Counted on the shipped demo policy (the most
        // categories and cookies) with no consent, in its worst language:
        // the bytes injected into every page before a choice, both assets
        // as served, and the panel that Customise or "Manage my cookies"
        // fetches from the preferences page (its switches, table headings,
        // Save and Close). Left out are only the texts the policy itself
        // supplies there, its cookie list and category descriptions, which
        // grow with the site's policy, not with the banner.
        let source = Source { path: "config/demo.toml".into(), text: crate::demo::DEMO_CONFIG.to_string() };
        let snapshot = crate::snapshot::Snapshot::compile(&source, 1).unwrap();
        let demo = snapshot.router.route("localhost:8080").unwrap().policy.clone();
        let mut seen = Vec::new();
        let cookie_texts: usize = demo
            .cookies
            .rules()
            .iter()
            .filter(|r| {
                let key = (r.pattern.as_str(), r.domain.as_deref());
                let new = !seen.contains(&key);
                seen.push(key);
                new
            })
            .map(|r| {
                escape(&r.pattern).len()
                    + escape(&r.provider).len()
                    + escape(&r.purpose).len()
                    + escape(&r.duration).len()
            })
            .sum();
        let descriptions: usize = demo.categories.iter().map(|(_, c)| escape(&c.description).len()).sum();
        let mut worst = (0, Lang::En, 0, 0);
        for lang in Lang::ALL {
            let injected = snippet(&demo, lang, &none(), Some("0123456789abcdef0123456789abcdef"), "/").len();
            let page = preferences_page(&demo, lang, &none(), "/");
            let start = page.find("<details open id=\"consentry-prefs\"").unwrap();
            let end = page.find("&times;</a>").unwrap() + "&times;</a>".len();
            let panel = end - start - cookie_texts - descriptions;
            let total = injected + panel + css().body.len() + js().body.len();
            if total > worst.0 {
                worst = (total, lang, injected, panel);
            }
        }
        let (total, lang, injected, panel) = worst;
        eprintln!(
            "banner budget ({}): injected {injected} B + panel {panel} B + banner.css {} B + banner.js {} B = {total} B \
             (not counted: {cookie_texts} B of cookie-list and {descriptions} B of description texts from the policy)",
            lang.code(),
            css().body.len(),
            js().body.len()
        );
        assert!(total < 15_000, "banner HTML + CSS + JS = {total} bytes, budget 15 KB");
        // The preferences page as a whole: mostly the policy's own cookie
        // list, in compact rows (no closing tags, no classes).
        let page = preferences_page(&demo, Lang::En, &none(), "/");
        eprintln!("preferences page {} B", page.len());
        assert!(page.len() < 12 * 1024, "preferences page {} bytes", page.len());
        assert!(!page.contains("</td>") && !page.contains("class="), "compact rows");
        // Every CSS rule is scoped by one of consentry's ids (#consentry-root
        // or an element inside it).
        let css = &css().body;
        assert!(!css.contains("/*"), "comments are not served");
        let mut token = String::new();
        let mut rules = 0;
        for c in css.chars() {
            match c {
                '{' => {
                    let selector = token.trim();
                    if !selector.starts_with('@') {
                        rules += 1;
                        for part in selector.split(',') {
                            assert!(part.trim().starts_with("#consentry-"), "unscoped selector {part:?}");
                        }
                    }
                    token.clear();
                }
                '}' | ';' => token.clear(),
                c => token.push(c),
            }
        }
        assert!(rules > 20, "parsed {rules} rules");
        // No third-party requests: no absolute URL anywhere in the assets.
        for body in [css.as_str(), js().body.as_str()] {
            assert!(!body.contains("http:") && !body.contains("https:") && !body.contains("//cdn"));
            assert!(!body.contains("@import") && !body.contains("url("));
        }
        // One IIFE, one global.
        let js = js().body.as_str();
        let code: Vec<&str> = js.lines().collect();
        assert_eq!(code.len(), 1, "minified to one line");
        assert!(js.starts_with("(function(){'use strict';"), "{js}");
        assert!(js.ends_with("})();\n"), "{js}");
        // Assignments to window properties (not comparisons).
        let assign = regex::Regex::new(r"window\.[A-Za-z_$][\w$]*\s*=[^=]").unwrap();
        let globals: Vec<&str> = assign.find_iter(js).map(|m| m.as_str()).collect();
        assert_eq!(globals, vec!["window.consentry={"]);
        assert!(!js.contains("eval(") && !js.contains("innerHTML"));
        // Styles live in banner.css; the script sets one custom property
        // (the zoom that undoes a phone's zoomed-out legacy page).
        let styled: Vec<&str> = js.match_indices(".style.").map(|(at, _)| &js[at..]).collect();
        assert_eq!(styled.len(), 1, "{styled:?}");
        assert!(styled[0].starts_with(".style.setProperty('--cy-zoom',"), "{styled:?}");
    }

    #[test]
    fn only_top_level_documents_get_the_banner() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = http::HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, http::HeaderValue::from_static(v));
            }
            is_top_level_request(&m)
        };
        assert!(h(&[]));
        assert!(h(&[("sec-fetch-dest", "document"), ("sec-fetch-mode", "navigate")]));
        assert!(h(&[("sec-fetch-dest", "Document")]));
        assert!(!h(&[("sec-fetch-dest", "iframe")]));
        assert!(!h(&[("sec-fetch-dest", "frame")]));
        assert!(!h(&[("sec-fetch-dest", "empty")]));
        assert!(!h(&[("hx-request", "true")]));
        assert!(!h(&[("sec-fetch-dest", "document"), ("x-requested-with", "XMLHttpRequest")]));
        assert!(!h(&[("x-requested-with", "xmlhttprequest")]));
        assert!(h(&[("x-requested-with", "com.example.app")]), "Android WebViews send their app id");
    }

    #[test]
    fn the_js_minifier_keeps_meaning() {
        // Strings, comments and the spaces the grammar needs; undeclared
        // names (globals) stay as they are.
        let src = "/* c */\nfoo('x  // y' + \"  /* z */ \");\n// gone\nif (bar) { baz(bar); } // gone too\nqux(bar + +1, bar - -1, 'it\\'s  ');\n";
        assert_eq!(
            minify_js(src),
            "foo('x  // y'+\"  /* z */ \");if(bar){baz(bar)}qux(bar+ +1,bar- -1,'it\\'s  ');\n"
        );
        // Bindings are renamed, most used first, to names no global uses
        // (`a` is taken by the global `a` here); properties and object
        // keys keep their names; declarations in a row are joined; `for`
        // heads are left alone.
        let src = "const granted = [];\nconst add = (value, list) => { list.push(value); return { value: value, list: list }; };\nlet n = 0;\nfor (const item of granted) { n = n + item.value; }\na.granted = add(n, granted).value;\n";
        assert_eq!(
            minify_js(src),
            "const c=[],f=(e,d)=>{d.push(e);return{value:e,list:d}};let b=0;for(const g of c){b=b+g.value}a.granted=f(b,c).value;\n"
        );
        // A ternary's middle is not a key.
        assert_eq!(
            minify_js("const x = 1, y = 2;\nz(w ? x : y, { x: y });\n"),
            "const b=1,a=2;z(w?b:a,{x:a});\n"
        );
        // The real script: no comment survived, strings intact, and it
        // still names its one global.
        let js = js().body.as_str();
        assert!(js.contains("'input[name=\"category\"]'") && js.contains("'consentry-'"));
        assert!(!js.contains("/*"));
        assert!(js.contains("window.consentry={open:"));
    }

    /// WCAG 2.x relative luminance of an sRGB colour.
    fn luminance(hex: &str) -> f64 {
        let hex = hex.trim_start_matches('#');
        assert_eq!(hex.len(), 6, "{hex}");
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
    }

    /// WCAG contrast ratio, 1..=21.
    fn contrast(a: &str, b: &str) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    /// The value of a `--cy-NAME` custom property in banner.css.
    fn colour(name: &str) -> String {
        let css = css().body.as_str();
        let key = format!("--cy-{name}:");
        let at = css.find(&key).unwrap_or_else(|| panic!("no {key}")) + key.len();
        css[at..].split([';', '}']).next().unwrap().trim().to_string()
    }

    #[test]
    fn contrast_formula_matches_known_values() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
        assert!((contrast("#ffffff", "#ffffff") - 1.0).abs() < 1e-9);
        // #767676 on white is the well-known 4.54:1 AA threshold grey.
        assert!((contrast("#767676", "#ffffff") - 4.54).abs() < 0.01);
    }

    #[test]
    fn colours_meet_wcag_aa() {
        // Text pairs need 4.5:1 (AA, normal text).
        let text = [
            ("fg", "bg"),
            ("muted", "bg"),
            ("accent", "bg"),
            ("accent-fg", "accent"),
            ("accent-fg", "hover"),
            ("fg", "subtle"),
            ("muted", "subtle"),
            ("accent", "subtle"),
            ("bg", "fg"),
        ];
        for (fg, bg) in text {
            let ratio = contrast(&colour(fg), &colour(bg));
            assert!(ratio >= 4.5, "{fg} on {bg}: {ratio:.2}:1 < 4.5:1");
        }
        // Non-text: focus ring and switch states need 3:1 (WCAG 1.4.11).
        for (fg, bg) in [("focus", "bg"), ("off", "bg"), ("accent", "bg"), ("focus", "subtle")] {
            let ratio = contrast(&colour(fg), &colour(bg));
            assert!(ratio >= 3.0, "{fg} against {bg}: {ratio:.2}:1 < 3:1");
        }
        // The switch knob (bg) against both track colours.
        for track in ["off", "accent"] {
            assert!(contrast(&colour("bg"), &colour(track)) >= 3.0, "knob on {track}");
        }
    }

    #[test]
    fn focus_is_always_visible() {
        let css = css().body.as_str();
        assert!(css.contains("#consentry-root :focus-visible{outline:3px solid var(--cy-focus)"));
        // Nothing removes the outline except where :focus-visible restores it.
        for rule in css.split('}').filter(|r| r.contains("outline:none")) {
            assert!(rule.ends_with("consentry-dialog:focus{outline:none"), "{rule}");
        }
    }
}

/// Static pages with the snippet, for looking at the banner in a browser:
/// `cargo test --lib banner::fixtures -- --ignored` writes them under
/// `test-artifacts/banner/site/` (gitignored), assets under `.consentry/`,
/// so that any static file server rooted there shows them as a visitor
/// would see them.
#[cfg(test)]
mod fixtures {
    use super::*;
    use crate::category::CategorySet;
    use crate::consent::State;

    const DEMO: &str = r#"
[policy.default]
[policy.default.consent]
revision = 2
[policy.default.banner]
enabled = true
policy_url = "/cookie-policy"
[[policy.default.cookie]]
name = "lang"
category = "functional"
provider = "This site"
purpose = "Remembers your language"
duration = "1 year"
[[policy.default.cookie]]
name = "_ga"
category = "analytics"
provider = "Google Analytics"
purpose = "Distinguishes visitors"
duration = "13 months"
[[policy.default.cookie]]
name = "_ga_*"
category = "analytics"
provider = "Google Analytics"
purpose = "Keeps the session state"
duration = "13 months"
[[policy.default.cookie]]
name = "_hjSessionUser_*"
category = "analytics"
provider = "Hotjar"
purpose = "Keeps a visitor's id across sessions"
duration = "1 year"
[[policy.default.cookie]]
name = "_fbp"
category = "advertising"
provider = "Meta"
purpose = "Delivers and measures ads"
duration = "3 months"
[[policy.default.cookie]]
name = "IDE"
category = "advertising"
provider = "Google Ads"
purpose = "Retargeting"
duration = "13 months"
"#;

    fn page(title: &str, extra_head: &str, snippet: &str) -> String {
        format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ margin: 0; font-family: Georgia, serif; color: #222; background: #fafaf7; }}
header {{ background: #0b3d2e; color: #fff; padding: 18px 32px; display: flex; gap: 24px; align-items: center; }}
header nav a {{ color: #d6f5e8; margin-right: 16px; }}
main {{ max-width: 860px; margin: 32px auto; padding: 0 24px; line-height: 1.6; }}
footer {{ padding: 24px 32px; background: #eee; }}
</style>{extra_head}</head>
<body>
<header><strong>Callora Networks</strong><nav><a href="/">Home</a><a href="/pricing">Pricing</a><a href="/contact">Contact</a></nav></header>
<main>
<h1>Business telephony that just works</h1>
<p>Cloud phone numbers in 60 countries, call routing, recording and analytics for teams of every size. Port your numbers in a day and keep your existing devices.</p>
<p><button>Start a free trial</button> <a href="/pricing">See pricing</a></p>
<h2>Why teams switch</h2>
<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit. Integer posuere erat a ante venenatis dapibus posuere velit aliquet. Cras mattis consectetur purus sit amet fermentum. Donec ullamcorper nulla non metus auctor fringilla.</p>
<table><tr><td>Plan</td><td>Price</td></tr><tr><td>Starter</td><td>€12</td></tr></table>
<p>Maecenas faucibus mollis interdum. Nullam quis risus eget urna mollis ornare vel eu leo. Aenean lacinia bibendum nulla sed consectetur.</p>
</main>
<footer>© 2026 Callora Networks · <a href="/cookie-policy">Cookie policy</a></footer>
{snippet}</body></html>
"#
        )
    }

    #[test]
    #[ignore = "writes fixture pages for a manual look; run with --ignored"]
    fn write_fixture_pages() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts/banner/site");
        std::fs::create_dir_all(dir.join(".consentry")).unwrap();
        std::fs::write(dir.join(".consentry/banner.css"), &css().body).unwrap();
        std::fs::write(dir.join(".consentry/banner.js"), &js().body).unwrap();
        let p = tests::policy(DEMO);
        let none = Consent::none(Format::Consentry, State::Missing);
        let analytics = p.categories.id("analytics").unwrap();
        let valid = Consent {
            granted: CategorySet::NECESSARY_ONLY.union(CategorySet::only(analytics)),
            state: State::Valid,
            format: Format::Consentry,
            revision: Some(2),
            given_at: None,
            gpc_refused: CategorySet::EMPTY,
        };
        let render = |lang, consent: &Consent| {
            String::from_utf8(snippet(&p, lang, consent, None, "/").to_vec()).unwrap()
        };
        // A site whose global styles would wreck an unscoped banner.
        let hostile = "<style>* { font-family: 'Comic Sans MS', cursive !important; } button { background: hotpink; padding: 30px; border: 5px dotted red; } p { color: red; font-size: 22px; } table td { border: 3px solid blue; padding: 20px; } a { color: orange; } input { width: 300px; height: 40px; } div { margin: 10px; }</style>";
        let pages = [
            ("open-en.html", page("Open", "", &render(Lang::En, &none))),
            ("open-fr.html", page("Ouvert", "", &render(Lang::Fr, &none))),
            ("open-de.html", page("Offen", "", &render(Lang::De, &none))),
            ("manage-en.html", page("Manage", "", &render(Lang::En, &valid))),
            ("preferences-en.html", preferences_page(&p, Lang::En, &valid, "/manage-en.html")),
            ("hostile-en.html", page("Hostile CSS", hostile, &render(Lang::En, &none))),
            // Elements neutralised the way the HTML stage leaves them, for
            // checking that a grant revives them without a reload.
            (
                "revive-en.html",
                page(
                    "Revive",
                    "",
                    &format!(
                        "{}{}",
                        r#"<script type="text/plain" data-category="analytics">window.inlineRan = (window.inlineRan || 0) + 1;</script>
<script type="text/plain" data-category="analytics" data-src="/tracker.js"></script>
<img data-category="analytics" data-src="/pixel.gif" id="pixel" alt="">
<iframe data-category="advertising" data-src="/ad.html" id="ad"></iframe>
<script type="text/plain" data-category="advertising">window.adsRan = true;</script>
"#,
                        render(Lang::En, &none)
                    ),
                ),
            ),
        ];
        std::fs::write(dir.join("tracker.js"), "window.trackerRan = (window.trackerRan || 0) + 1;\n")
            .unwrap();
        for (name, html) in pages {
            std::fs::write(dir.join(name), html).unwrap();
        }
        eprintln!("fixture pages in {}", dir.display());
    }
}
