//! One `Set-Cookie` header value, parsed the way browsers parse it, and the
//! few edits consentry makes to a kept cookie (lifetime cap, hardening).
//!
//! The parser follows RFC 6265bis §5.6 (the algorithm browsers implement)
//! and Chromium where the two differ in practice:
//!
//! - the name-value pair runs to the first `;`; without `=` the whole pair
//!   is the *value* of a cookie with an empty name; name and value are
//!   trimmed of spaces and tabs; both empty, or together over 4096 bytes,
//!   and the browser ignores the header;
//! - a control character other than HTAB anywhere makes the header invalid;
//! - attribute names are case-insensitive, values trimmed, a value over 1024
//!   bytes is ignored, and for each attribute the *last* valid one wins;
//! - `Max-Age` is digits with an optional leading `-`, anything else is
//!   ignored; huge values saturate instead of overflowing; it wins over
//!   `Expires`;
//! - `Expires` is read with the RFC 6265 §5.1.1 cookie-date algorithm
//!   ([`parse_cookie_date`]), which accepts every format browsers meet in
//!   the wild (Netscape, RFC 850, asctime, dashes, two-digit years, no
//!   `GMT`...); an unreadable date is ignored, as browsers do.
//!
//! Why not the `cookie` crate: it parses `Expires` with a handful of fixed
//! formats (so a cookie a browser keeps for a year would look like a session
//! cookie and escape the lifetime cap), rejects nameless cookies that
//! browsers accept, and builds owned values where consentry needs byte
//! ranges into the header, so that a kept cookie passes byte for byte.
//!
//! Nothing here allocates while parsing; [`SetCookie`] borrows the header
//! bytes. Only [`rewrite`] builds a new value, and only when a change is
//! required.

use std::ops::Range;

/// Longest name + value a browser stores (RFC 6265bis §5.6, Chromium).
pub const MAX_NAME_VALUE: usize = 4096;

/// Longest attribute value a browser reads; longer ones are ignored.
pub const MAX_ATTRIBUTE_VALUE: usize = 1024;

/// Why a `Set-Cookie` value is not a cookie any browser would store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A control character other than HTAB.
    ControlCharacter,
    /// Neither a name nor a value.
    Empty,
    /// Name and value together exceed [`MAX_NAME_VALUE`].
    TooLong,
}

impl Invalid {
    /// Lower-case reason for logs.
    pub fn name(self) -> &'static str {
        match self {
            Invalid::ControlCharacter => "control character",
            Invalid::Empty => "empty name and value",
            Invalid::TooLong => "name and value over 4096 bytes",
        }
    }
}

/// What the cookie's lifetime attributes make of it, at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// No (valid) `Max-Age` or `Expires`: gone when the browser closes.
    Session,
    /// `Max-Age<=0` or `Expires` not after now: the cookie is being deleted.
    Delete,
    /// Kept until this instant (Unix seconds, saturated).
    Until(i64),
}

/// One parsed `Set-Cookie` header value, borrowing its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie<'a> {
    raw: &'a [u8],
    name: &'a [u8],
    value: &'a [u8],
    domain: Option<&'a [u8]>,
    path: Option<&'a [u8]>,
    max_age: Option<i64>,
    expires: Option<i64>,
    /// The largest valid `Max-Age` and latest valid `Expires` among all
    /// occurrences: what a lifetime cap is checked against, without parsing
    /// the dates again.
    max_age_peak: Option<i64>,
    expires_peak: Option<i64>,
    secure: bool,
    http_only: bool,
    same_site: Option<&'a [u8]>,
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The range of `s[range]` without leading and trailing SP/HTAB.
fn trim(s: &[u8], mut range: Range<usize>) -> Range<usize> {
    while range.start < range.end && is_wsp(s[range.start]) {
        range.start += 1;
    }
    while range.end > range.start && is_wsp(s[range.end - 1]) {
        range.end -= 1;
    }
    range
}

/// A control character that invalidates a cookie: %x00-08 / %x0A-1F / %x7F.
const fn is_forbidden_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// What [`SetCookie::parse`]'s one pass stops at: the byte classes of
/// [`CLASS`]. Every other byte is part of a name or value.
const SEMICOLON: u8 = 1;
const EQUALS: u8 = 2;
const FORBIDDEN: u8 = 3;

/// The class of every byte, so the scan costs one table look-up per byte.
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b';' => SEMICOLON,
            b'=' => EQUALS,
            c if is_forbidden_ctl(c) => FORBIDDEN,
            _ => 0,
        };
        b += 1;
    }
    table
};

/// Bytes of `word` that may be `;`, `=` or a control character: the high
/// bit of each such byte is set, always for the first one (bytes after a
/// match may be flagged falsely, so each is looked up in [`CLASS`]).
fn candidates(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes below `n` (n <= 0x80), and bytes equal to `b`.
    let below = |n: u64| word.wrapping_sub(ONES * n) & !word & HIGH;
    let equal = |b: u8| {
        let x = word ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    below(0x20) | equal(b';') | equal(b'=') | equal(0x7f)
}

/// The segment of `raw` from `start` to the next `;` (or the end): where
/// it ends and where its first `=` is. `Err` at a forbidden control
/// character. Together with [`SetCookie::parse`]'s loop this looks at
/// every byte of the header once, and is the control-character check too:
/// eight bytes at a time, and only the bytes [`candidates`] flags one by
/// one.
fn scan_segment(raw: &[u8], start: usize) -> Result<(usize, Option<usize>), Invalid> {
    let mut eq = None;
    let mut at = start;
    let look = |i: usize, eq: &mut Option<usize>| match CLASS[usize::from(raw[i])] {
        0 => None,
        SEMICOLON => Some(Ok(i)),
        EQUALS => {
            if eq.is_none() {
                *eq = Some(i);
            }
            None
        }
        _ => Some(Err(Invalid::ControlCharacter)),
    };
    while let Some(chunk) = raw.get(at..at + 8) {
        let mut flagged = candidates(u64::from_le_bytes(chunk.try_into().unwrap()));
        while flagged != 0 {
            let i = at + flagged.trailing_zeros() as usize / 8;
            flagged &= flagged - 1;
            if let Some(end) = look(i, &mut eq) {
                return end.map(|end| (end, eq));
            }
        }
        at += 8;
    }
    for i in at..raw.len() {
        if let Some(end) = look(i, &mut eq) {
            return end.map(|end| (end, eq));
        }
    }
    Ok((raw.len(), eq))
}

/// One `; name=value` attribute, as byte ranges into the header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The trimmed name.
    pub name: Range<usize>,
    /// The trimmed value (empty range when there is no `=`).
    pub value: Range<usize>,
}

/// The index of the first `;` in `raw` at or after `pos`, or `raw.len()`,
/// for [`attributes`] (the edits walk a kept cookie's attributes again).
fn find_semicolon(raw: &[u8], pos: usize) -> usize {
    raw.get(pos..).and_then(|rest| memchr::memchr(b';', rest)).map_or(raw.len(), |i| pos + i)
}

/// The attributes after the name-value pair, in order (empty ones skipped).
pub fn attributes(raw: &[u8]) -> impl Iterator<Item = Attribute> + '_ {
    attributes_after(raw, find_semicolon(raw, 0))
}

/// [`attributes`], given where the name-value pair ends (its `;`, or
/// `raw.len()`).
fn attributes_after(raw: &[u8], pair_end: usize) -> impl Iterator<Item = Attribute> + '_ {
    let mut pos = pair_end.saturating_add(1).min(raw.len());
    std::iter::from_fn(move || {
        while pos < raw.len() {
            let seg_start = pos;
            let seg_end = find_semicolon(raw, pos);
            pos = seg_end + 1;
            // The first `=` splits name and value; it is within the first
            // few bytes (the attribute name).
            let eq = raw[seg_start..seg_end].iter().position(|&b| b == b'=').map(|i| seg_start + i);
            let (name, value) = match eq {
                Some(eq) => (trim(raw, seg_start..eq), trim(raw, eq + 1..seg_end)),
                None => {
                    let name = trim(raw, seg_start..seg_end);
                    (name.clone(), name.end..name.end)
                }
            };
            if name.is_empty() {
                // `;;` or `; =x`: browsers skip it (an empty name matches no
                // attribute).
                continue;
            }
            return Some(Attribute { name, value });
        }
        None
    })
}

/// Which attribute a name denotes (case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Expires,
    MaxAge,
    Domain,
    Path,
    Secure,
    HttpOnly,
    SameSite,
    Other,
}

/// `name` (at most eight bytes) as a little-endian word, each byte
/// `| 0x20`: an ASCII letter lower-cased, and never a zero byte, so names
/// of different lengths give different words.
const fn folded_word(name: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < name.len() {
        w |= ((name[i] | 0x20) as u64) << (8 * i);
        i += 1;
    }
    w
}

impl Known {
    /// `Secure` and `HttpOnly`: attributes without a value.
    fn is_flag(self) -> bool {
        matches!(self, Known::Secure | Known::HttpOnly)
    }
}

/// The attribute the segment at `start` names, when it is written the way
/// servers write them: blanks, then `Path=`, `Domain=`, `Expires=`,
/// `Max-Age=` or `SameSite=` (any case), or `Secure` or `HttpOnly` right
/// before the next `;` or the end. Then also where its value starts (for a
/// flag: where the segment ends). Any other spelling (`path =x`, a header
/// shorter than eight bytes) is `None`, and goes the general way, to the
/// same result (a property test holds the parse to one without this).
fn known_start(raw: &[u8], start: usize) -> Option<(Known, usize)> {
    /// A name as `(word, mask, fold)`: its bytes, which of the word's bytes
    /// they fill, and a `0x20` under each letter, so `(w | fold) & mask ==
    /// word` compares the letters in any case and `=` and `-` exactly
    /// (`| 0x20` would map control characters onto them). Built at compile
    /// time.
    const fn entry(name: &[u8]) -> (u64, u64, u64) {
        let (mut word, mut mask, mut fold) = (0u64, 0u64, 0u64);
        let mut i = 0;
        while i < name.len() {
            word |= (name[i] as u64) << (8 * i);
            mask |= 0xff << (8 * i);
            if name[i].is_ascii_lowercase() {
                fold |= 0x20 << (8 * i);
            }
            i += 1;
        }
        (word, mask, fold)
    }
    const NAMES: [(usize, (u64, u64, u64), Known); 7] = {
        const fn e(name: &[u8], known: Known) -> (usize, (u64, u64, u64), Known) {
            (name.len(), entry(name), known)
        }
        [
            e(b"path=", Known::Path),
            e(b"domain=", Known::Domain),
            e(b"expires=", Known::Expires),
            e(b"max-age=", Known::MaxAge),
            e(b"samesite", Known::SameSite),
            e(b"secure", Known::Secure),
            e(b"httponly", Known::HttpOnly),
        ]
    };
    let mut at = start;
    while raw.get(at).is_some_and(|&b| is_wsp(b)) {
        at += 1;
    }
    // Fewer than eight bytes left (`; Secure` often ends the header): zeros
    // after them, never a letter, `=` or `-`.
    let left = raw.len().checked_sub(at).filter(|&left| left > 0)?;
    let word = word_at(raw, at, left.min(8))?;
    for (len, (pattern, mask, fold), known) in NAMES {
        if (word | fold) & mask != pattern {
            continue;
        }
        let after = at + len;
        return match known {
            // `SameSite` is the one eight-letter name with a value.
            Known::SameSite => (raw.get(after) == Some(&b'=')).then_some((known, after + 1)),
            Known::Secure | Known::HttpOnly => match raw.get(after) {
                None | Some(b';') => Some((known, after)),
                _ => None,
            },
            _ => Some((known, after)),
        };
    }
    None
}

/// Which attribute the name `raw[name]` denotes (case-insensitively).
fn known_at(raw: &[u8], name: Range<usize>) -> Known {
    let len = name.len();
    if !(4..=8).contains(&len) {
        return Known::Other;
    }
    // The name's bytes as one word ([`word_at`]), else byte by byte.
    let Some(word) = word_at(raw, name.start, len) else {
        return known_word(folded_word(&raw[name.clone()]), &raw[name]);
    };
    let mask = u64::MAX >> (64 - 8 * len);
    known_word(word | (0x2020_2020_2020_2020 & mask), &raw[name])
}

/// The `len` (1 to 8) bytes of `raw` at `at` as the low bytes of a
/// little-endian word, zeros above: read with whatever follows them when
/// eight bytes are there (then masked off), else with what precedes them
/// (shifted off: the last attribute, `Secure` or `HttpOnly` often, ends the
/// header). `None` when `raw` is shorter than eight bytes.
fn word_at(raw: &[u8], at: usize, len: usize) -> Option<u64> {
    if let Some(eight) = raw.get(at..at + 8) {
        return Some(u64::from_le_bytes(eight.try_into().unwrap()) & (u64::MAX >> (64 - 8 * len)));
    }
    let eight = raw.get((at + len).checked_sub(8)?..at + len)?;
    Some(u64::from_le_bytes(eight.try_into().unwrap()) >> (64 - 8 * len))
}

fn known(name: &[u8]) -> Known {
    if !(4..=8).contains(&name.len()) {
        return Known::Other;
    }
    known_word(folded_word(name), name)
}

/// [`known`] of `name`, given its [`folded_word`].
fn known_word(word: u64, name: &[u8]) -> Known {
    const PATH: u64 = folded_word(b"path");
    const DOMAIN: u64 = folded_word(b"domain");
    const SECURE: u64 = folded_word(b"secure");
    const EXPIRES: u64 = folded_word(b"expires");
    const MAX_AGE: u64 = folded_word(b"max-age");
    const HTTPONLY: u64 = folded_word(b"httponly");
    const SAMESITE: u64 = folded_word(b"samesite");
    // One word compare instead of `eq_ignore_ascii_case`: `| 0x20` maps a
    // byte onto a letter only from that letter's two cases, so for the
    // letters this is exact; onto `-` it also maps CR, hence the check.
    match word {
        PATH => Known::Path,
        DOMAIN => Known::Domain,
        SECURE => Known::Secure,
        EXPIRES => Known::Expires,
        MAX_AGE if name[3] == b'-' => Known::MaxAge,
        HTTPONLY => Known::HttpOnly,
        SAMESITE => Known::SameSite,
        _ => Known::Other,
    }
}

/// `Max-Age` as RFC 6265bis §5.6.2 reads it: a DIGIT, or `-` and a DIGIT,
/// then only DIGITs. Saturates at `i64::MAX`/`-i64::MAX` rather than
/// overflow (a browser clamps such a cookie to its longest lifetime anyway).
pub fn parse_max_age(value: &[u8]) -> Option<i64> {
    let (negative, digits) = match value.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, value),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0i64, |n, d| n.saturating_mul(10).saturating_add(i64::from(d - b'0')));
    Some(if negative { -n } else { n })
}

impl<'a> SetCookie<'a> {
    /// A cookie with its name and value and no attribute yet.
    fn bare(raw: &'a [u8], name: &'a [u8], value: &'a [u8]) -> SetCookie<'a> {
        SetCookie {
            raw,
            name,
            value,
            domain: None,
            path: None,
            max_age: None,
            expires: None,
            max_age_peak: None,
            expires_peak: None,
            secure: false,
            http_only: false,
            same_site: None,
        }
    }

    /// Parses one header value. `Err` means a browser would ignore it.
    ///
    /// One pass over the bytes ([`scan_segment`] per `;`-separated
    /// segment), which splits the pair and the attributes as [`attributes`]
    /// does and finds control characters on the way (a property test holds
    /// it to the separate check and iterator it replaces).
    pub fn parse(raw: &'a [u8]) -> Result<SetCookie<'a>, Invalid> {
        let (pair_end, eq) = scan_segment(raw, 0)?;
        let (name, value) = match eq {
            Some(eq) => (trim(raw, 0..eq), trim(raw, eq + 1..pair_end)),
            // No `=`: a nameless cookie whose value is the whole pair.
            None => (0..0, trim(raw, 0..pair_end)),
        };
        let unusable = if name.is_empty() && value.is_empty() {
            Some(Invalid::Empty)
        } else if name.len() + value.len() > MAX_NAME_VALUE {
            Some(Invalid::TooLong)
        } else {
            None
        };
        if let Some(why) = unusable {
            // A control character anywhere is the reason given first.
            let ctl = raw[pair_end..].iter().any(|&b| is_forbidden_ctl(b));
            return Err(if ctl { Invalid::ControlCharacter } else { why });
        }
        let mut cookie = SetCookie::bare(raw, &raw[name], &raw[value]);
        // `pos` is at a `;` (or the end).
        let mut pos = pair_end;
        while pos < raw.len() {
            let start = pos + 1;
            if let Some((attribute, after)) = known_start(raw, start) {
                // The same segment end and control-character check as
                // below, from after the name: no `=` search, no name trim.
                let end = if attribute.is_flag() { after } else { scan_segment(raw, after)?.0 };
                pos = end;
                let value = trim(raw, after..end);
                if value.len() <= MAX_ATTRIBUTE_VALUE {
                    cookie.set(attribute, &raw[value]);
                }
                continue;
            }
            let (end, eq) = scan_segment(raw, start)?;
            pos = end;
            let (name, value) = match eq {
                Some(eq) => (trim(raw, start..eq), trim(raw, eq + 1..end)),
                None => {
                    let name = trim(raw, start..end);
                    (name.clone(), name.end..name.end)
                }
            };
            // An empty name (`;;`, `; =x`) matches no attribute.
            if name.is_empty() || value.len() > MAX_ATTRIBUTE_VALUE {
                continue;
            }
            cookie.set(known_at(raw, name), &raw[value]);
        }
        Ok(cookie)
    }

    /// Records one attribute: for each, the last valid one wins.
    fn set(&mut self, attribute: Known, value: &'a [u8]) {
        match attribute {
            Known::Expires => {
                if let Some(t) = parse_cookie_date(value) {
                    self.expires = Some(t);
                    self.expires_peak = self.expires_peak.max(Some(t));
                }
            }
            Known::MaxAge => {
                if let Some(n) = parse_max_age(value) {
                    self.max_age = Some(n);
                    self.max_age_peak = self.max_age_peak.max(Some(n));
                }
            }
            Known::Domain => self.domain = Some(value),
            Known::Path => self.path = Some(value),
            Known::Secure => self.secure = true,
            Known::HttpOnly => self.http_only = true,
            Known::SameSite => self.same_site = Some(value),
            Known::Other => {}
        }
    }

    /// The whole header value, as received.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The cookie name (empty for a nameless cookie).
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// The cookie value, quotes kept.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// The effective `Domain` without its leading dot; `None` for a
    /// host-only cookie (no `Domain`, or an empty one).
    pub fn domain(&self) -> Option<&'a [u8]> {
        let d = self.domain?;
        let d = d.strip_prefix(b".").unwrap_or(d);
        (!d.is_empty()).then_some(d)
    }

    /// The `Path` attribute as written, if any.
    pub fn path(&self) -> Option<&'a [u8]> {
        self.path
    }

    /// The last valid `Max-Age`, in seconds.
    pub fn max_age(&self) -> Option<i64> {
        self.max_age
    }

    /// The last valid `Expires`, as Unix seconds.
    pub fn expires(&self) -> Option<i64> {
        self.expires
    }

    /// Whether `Secure` is present.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Whether `HttpOnly` is present.
    pub fn http_only(&self) -> bool {
        self.http_only
    }

    /// The last `SameSite` value as written.
    pub fn same_site(&self) -> Option<&'a [u8]> {
        self.same_site
    }

    /// The lifetime at `now` (Unix seconds): `Max-Age` wins over `Expires`.
    pub fn lifetime(&self, now: i64) -> Lifetime {
        if let Some(n) = self.max_age {
            return if n <= 0 { Lifetime::Delete } else { Lifetime::Until(now.saturating_add(n)) };
        }
        match self.expires {
            Some(t) if t <= now => Lifetime::Delete,
            Some(t) => Lifetime::Until(t),
            None => Lifetime::Session,
        }
    }

    /// Whether this header deletes the cookie in the browser.
    pub fn is_deletion(&self, now: i64) -> bool {
        self.lifetime(now) == Lifetime::Delete
    }
}

/// The changes to make to a kept cookie. The default changes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Edit {
    /// Rewrite every valid `Max-Age` above this many seconds down to it.
    pub max_age: Option<i64>,
    /// Rewrite every valid `Expires` after this instant (Unix seconds) to it.
    pub expires: Option<i64>,
    /// Append `Secure` if missing.
    pub secure: bool,
    /// Append `HttpOnly` if missing.
    pub http_only: bool,
    /// Set `SameSite` to this value (rewriting a different one in place,
    /// appending it if missing).
    pub same_site: Option<&'static str>,
}

/// What [`plan`] found to change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Some lifetime attribute is over the cap.
    pub capped: bool,
    /// Some flag is missing or different.
    pub hardened: bool,
}

impl Changes {
    /// Whether anything changes.
    pub fn any(self) -> bool {
        self.capped || self.hardened
    }
}

/// What applying `edit` to `cookie` would change (nothing is built).
pub fn plan(cookie: &SetCookie<'_>, edit: &Edit) -> Changes {
    // `Some(x) > Some(cap)` only when x > cap; `None` is below everything.
    let capped = edit.max_age.is_some_and(|cap| cookie.max_age_peak > Some(cap))
        || edit.expires.is_some_and(|cap| cookie.expires_peak > Some(cap));
    // Every `SameSite` attribute, not only the last (the one browsers
    // obey): [`rewrite`] sets each to the wanted value, so an earlier
    // differing one is a change too (found by the `set_cookie` fuzz target).
    let same_site_differs = edit.same_site.is_some_and(|want| {
        cookie.same_site.is_none()
            || attributes(cookie.raw).any(|attr| {
                attr.value.len() <= MAX_ATTRIBUTE_VALUE
                    && matches!(known(&cookie.raw[attr.name.clone()]), Known::SameSite)
                    && !cookie.raw[attr.value.clone()].eq_ignore_ascii_case(want.as_bytes())
            })
    });
    let hardened =
        (edit.secure && !cookie.secure) || (edit.http_only && !cookie.http_only) || same_site_differs;
    Changes { capped, hardened }
}

/// The replacement value for an attribute over the cap, if it is one.
fn over_cap(raw: &[u8], attr: &Attribute, edit: &Edit) -> Option<String> {
    let value = &raw[attr.value.clone()];
    match known(&raw[attr.name.clone()]) {
        Known::MaxAge => {
            let cap = edit.max_age?;
            let n = parse_max_age(value)?;
            (n > cap).then(|| cap.to_string())
        }
        Known::Expires => {
            let cap = edit.expires?;
            let t = parse_cookie_date(value)?;
            (t > cap).then(|| format_cookie_date(cap))
        }
        _ => None,
    }
}

/// Applies `edit`: rewrites only the offending attribute values in place
/// and appends missing flags; every other byte is copied as received.
pub fn rewrite(cookie: &SetCookie<'_>, edit: &Edit) -> Vec<u8> {
    let raw = cookie.raw;
    let mut out = Vec::with_capacity(raw.len() + 40);
    let mut copied = 0;
    let mut same_site_seen = false;
    for attr in attributes(raw) {
        if attr.value.len() > MAX_ATTRIBUTE_VALUE {
            continue;
        }
        let replacement = match known(&raw[attr.name.clone()]) {
            Known::SameSite => match edit.same_site {
                Some(want) => {
                    same_site_seen = true;
                    (!raw[attr.value.clone()].eq_ignore_ascii_case(want.as_bytes())).then(|| want.to_string())
                }
                None => None,
            },
            _ => over_cap(raw, &attr, edit),
        };
        if let Some(new) = replacement {
            if attr.value.is_empty() {
                // `SameSite` with no `=`: give it one.
                out.extend_from_slice(&raw[copied..attr.name.end]);
                out.push(b'=');
            } else {
                out.extend_from_slice(&raw[copied..attr.value.start]);
            }
            out.extend_from_slice(new.as_bytes());
            copied = attr.value.end.max(attr.name.end);
        }
    }
    out.extend_from_slice(&raw[copied..]);
    let appending = (edit.secure && !cookie.secure)
        || (edit.http_only && !cookie.http_only)
        || (edit.same_site.is_some() && !same_site_seen);
    if appending {
        // Trailing `;` and blanks carry no meaning; drop them so the
        // appended attributes do not follow an empty one.
        while out.last().is_some_and(|&b| b == b';' || is_wsp(b)) {
            out.pop();
        }
    }
    if edit.secure && !cookie.secure {
        out.extend_from_slice(b"; Secure");
    }
    if edit.http_only && !cookie.http_only {
        out.extend_from_slice(b"; HttpOnly");
    }
    if let Some(want) = edit.same_site
        && !same_site_seen
    {
        out.extend_from_slice(b"; SameSite=");
        out.extend_from_slice(want.as_bytes());
    }
    out
}

// ---------------------------------------------------------------------------
// Dates

/// RFC 6265 §5.1.1 delimiter.
fn is_date_delimiter(b: u8) -> bool {
    b == 0x09
        || (0x20..=0x2f).contains(&b)
        || (0x3b..=0x40).contains(&b)
        || (0x5b..=0x60).contains(&b)
        || (0x7b..=0x7e).contains(&b)
}

/// `min*maxDIGIT ( non-digit *OCTET )`: the leading digits' value when there
/// are `min..=max` of them.
fn leading_number(token: &[u8], min: usize, max: usize) -> Option<u32> {
    let n = token.iter().take_while(|b| b.is_ascii_digit()).count();
    if n < min || n > max {
        return None;
    }
    Some(token[..n].iter().fold(0, |v, d| v * 10 + u32::from(d - b'0')))
}

/// `hms-time ( non-digit *OCTET )` with `time-field = 1*2DIGIT`.
fn parse_time(token: &[u8]) -> Option<(u32, u32, u32)> {
    let mut fields = [0u32; 3];
    let mut rest = token;
    for (i, field) in fields.iter_mut().enumerate() {
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=2).contains(&n) {
            return None;
        }
        *field = rest[..n].iter().fold(0, |v, d| v * 10 + u32::from(d - b'0'));
        rest = &rest[n..];
        if i < 2 {
            rest = rest.strip_prefix(b":")?;
        }
    }
    // Whatever follows the seconds starts with a non-digit (take_while
    // stopped there), which the grammar allows.
    Some((fields[0], fields[1], fields[2]))
}

fn parse_month(token: &[u8]) -> Option<u32> {
    let [a, b, c, ..] = *token else {
        return None;
    };
    // `| 0x20` lower-cases ASCII letters and maps no other byte onto one.
    Some(match [a | 0x20, b | 0x20, c | 0x20] {
        [b'j', b'a', b'n'] => 1,
        [b'f', b'e', b'b'] => 2,
        [b'm', b'a', b'r'] => 3,
        [b'a', b'p', b'r'] => 4,
        [b'm', b'a', b'y'] => 5,
        [b'j', b'u', b'n'] => 6,
        [b'j', b'u', b'l'] => 7,
        [b'a', b'u', b'g'] => 8,
        [b's', b'e', b'p'] => 9,
        [b'o', b'c', b't'] => 10,
        [b'n', b'o', b'v'] => 11,
        [b'd', b'e', b'c'] => 12,
        _ => return None,
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses a cookie date with the RFC 6265 §5.1.1 algorithm, as browsers
/// do: split into tokens at delimiters; the first token that is a time,
/// then a day of month, a month (by its first three letters) and a year
/// fill those fields in that order of precedence; two-digit years 70–99
/// are 19xx and 0–69 are 20xx; the date must exist. Returns Unix seconds
/// (negative before 1970), or `None` when a browser would ignore it.
pub fn parse_cookie_date(input: &[u8]) -> Option<i64> {
    match imf_fixdate(input) {
        Some(fields) => cookie_date_from(fields),
        None => parse_cookie_date_tokens(input),
    }
}

/// [`parse_cookie_date`]'s general algorithm, whatever the layout.
fn parse_cookie_date_tokens(input: &[u8]) -> Option<i64> {
    let mut time = None;
    let mut day = None;
    let mut month = None;
    let mut year = None;
    for token in input.split(|&b| is_date_delimiter(b)).filter(|t| !t.is_empty()) {
        if time.is_none()
            && let Some(t) = parse_time(token)
        {
            time = Some(t);
            continue;
        }
        if day.is_none()
            && let Some(d) = leading_number(token, 1, 2)
        {
            day = Some(d);
            continue;
        }
        if month.is_none()
            && let Some(m) = parse_month(token)
        {
            month = Some(m);
            continue;
        }
        if year.is_none()
            && let Some(y) = leading_number(token, 2, 4)
        {
            year = Some(y);
        }
    }
    cookie_date_from((time?, day?, month?, year?))
}

/// `((hour, minute, second), day of month, month, year as written)`.
type DateFields = ((u32, u32, u32), u32, u32, u32);

/// The fields the algorithm above finds (time, day of month, month, year
/// as written), when `input` is exactly an IMF-fixdate
/// (`Tue, 14 Nov 2023 22:13:20 GMT`, what nearly every server sends), or
/// the same with `-` around the month (`14-Nov-2023`, Netscape's form)
/// and/or a two-digit year (`Tue, 14-Nov-23 22:43:20 GMT`): read at fixed
/// positions instead of by tokenizing. It accepts only text whose tokens
/// the general algorithm reads the same way (a weekday name, which is no
/// month, number or time; `GMT`; the separators are delimiters), so both
/// give the same date; a property test holds them to that.
fn imf_fixdate(input: &[u8]) -> Option<DateFields> {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    let year_len = match input.len() {
        29 => 4,
        27 => 2,
        _ => return None,
    };
    let b = input;
    // Two ASCII digits at `at`, as a number (every field here is two or,
    // the year, two pairs): no loop, no fold over a sub-slice.
    let two = |at: usize| -> Option<u32> {
        let (tens, ones) = (b[at].wrapping_sub(b'0'), b[at + 1].wrapping_sub(b'0'));
        (tens < 10 && ones < 10).then(|| u32::from(tens) * 10 + u32::from(ones))
    };
    // Where the time starts: after `Www, DD-Mmm-` (12), the year and a space.
    let t = 13 + year_len;
    let fixed = b[3] == b','
        && b[4] == b' '
        && matches!(b[7], b' ' | b'-')
        && matches!(b[11], b' ' | b'-')
        && b[t - 1] == b' '
        && b[t + 2] == b':'
        && b[t + 5] == b':'
        && &b[t + 8..] == b" GMT";
    if !fixed || !WEEKDAYS.iter().any(|w| b[..3] == w[..]) {
        return None;
    }
    let month = parse_month(&b[8..11])?;
    let time = (two(t)?, two(t + 3)?, two(t + 6)?);
    let year = match year_len {
        4 => two(12)? * 100 + two(14)?,
        _ => two(12)?,
    };
    Some((time, two(5)?, month, year))
}

/// Unix seconds of the fields [`parse_cookie_date`] found, or `None` for
/// a date a browser would ignore.
fn cookie_date_from(fields: DateFields) -> Option<i64> {
    let ((hour, minute, second), day, month, year) = fields;
    let year = i64::from(match year {
        70..=99 => year + 1900,
        0..=69 => year + 2000,
        _ => year,
    });
    if !(1..=31).contains(&day) || year < 1601 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    if day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

/// Formats Unix seconds as an IMF-fixdate (`Thu, 01 Jan 1970 00:00:00 GMT`),
/// the form every browser reads. Years past 9999 are clamped to its end, so
/// this never fails.
pub fn format_cookie_date(secs: i64) -> String {
    const MAX: i64 = 253_402_300_799; // 9999-12-31 23:59:59
    const MIN: i64 = -11_644_473_600; // 1601-01-01 00:00:00
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = secs.clamp(MIN, MAX);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[month as usize - 1],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2021-06-09 10:18:14 UTC.
    const T: i64 = 1_623_233_894;

    #[test]
    fn browser_date_formats() {
        // (input, expected) — the formats met in real Set-Cookie headers.
        let table: &[(&str, Option<i64>)] = &[
            // IMF-fixdate / Netscape.
            ("Wed, 09 Jun 2021 10:18:14 GMT", Some(T)),
            // RFC 850 with two-digit year and dashes.
            ("Wednesday, 09-Jun-21 10:18:14 GMT", Some(T)),
            // Netscape's original dashes with four-digit year.
            ("Wed, 09-Jun-2021 10:18:14 GMT", Some(T)),
            // asctime (space-padded day, year last).
            ("Wed Jun  9 10:18:14 2021", Some(T)),
            // No weekday, no zone.
            ("09 Jun 2021 10:18:14", Some(T)),
            // Missing GMT.
            ("Wed, 09 Jun 2021 10:18:14", Some(T)),
            // Other zone names are ignored tokens (browsers treat all as UTC).
            ("Wed, 09 Jun 2021 10:18:14 UTC", Some(T)),
            ("Wed, 09 Jun 2021 10:18:14 +0000", Some(T)),
            // Lower case, full month name, odd delimiters.
            ("wed, 09 june 2021 10:18:14 gmt", Some(T)),
            ("Wed,09-Jun-2021 10:18:14 GMT", Some(T)),
            ("Wed, 09/Jun/2021 10:18:14 GMT", Some(T)),
            ("Wed, 9 Jun 2021 10:18:14 GMT", Some(T)),
            // Single-digit time fields.
            ("Wed, 09 Jun 2021 1:2:3 GMT", Some(1_623_200_523)),
            // Year before month, time first.
            ("10:18:14 2021 Jun 09", Some(T)),
            ("Jun 09 2021 10:18:14", Some(T)),
            // Digits glued to trailing text are still read.
            ("Wed, 09th Jun 2021 10:18:14GMT", Some(T)),
            // Two-digit years: 70–99 → 19xx, 00–69 → 20xx.
            ("Thu, 01-Jan-70 00:00:00 GMT", Some(0)),
            ("Fri, 31-Dec-99 23:59:59 GMT", Some(946_684_799)),
            ("Sat, 01-Jan-00 00:00:00 GMT", Some(946_684_800)),
            ("Sun, 31-Dec-69 23:59:59 GMT", Some(3_155_759_999)),
            // Leap day.
            ("Thu, 29 Feb 2024 00:00:00 GMT", Some(1_709_164_800)),
            // Extremes.
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(253_402_300_799)),
            ("Mon, 01 Jan 1601 00:00:00 GMT", Some(-11_644_473_600)),
            // Rejected: non-existent date, out of range fields, missing parts.
            ("Wed, 29 Feb 2023 00:00:00 GMT", None),
            ("Wed, 31 Apr 2021 00:00:00 GMT", None),
            ("Wed, 00 Jun 2021 10:18:14 GMT", None),
            ("Wed, 32 Jun 2021 10:18:14 GMT", None),
            ("Wed, 09 Jun 2021 24:00:00 GMT", None),
            ("Wed, 09 Jun 2021 10:60:00 GMT", None),
            ("Wed, 09 Jun 2021 10:18:60 GMT", None),
            ("Wed, 09 Jun 1600 10:18:14 GMT", None),
            ("Wed, 09 Jun 2021 GMT", None),
            ("Wed, 09 2021 10:18:14 GMT", None),
            ("Jun 2021 10:18:14", None),
            ("2021-06-09T10:18:14Z", None),
            ("", None),
            ("0", None),
            ("Session", None),
            // A 5-digit year is not a year; 3 digits for a day are not a day.
            ("09 Jun 20210 10:18:14", None),
            ("009 Jun 2021 10:18:14", None),
        ];
        for (input, expected) in table {
            assert_eq!(parse_cookie_date(input.as_bytes()), *expected, "{input:?}");
        }
    }

    #[test]
    fn month_names() {
        for (i, m) in
            ["jan", "FEB", "Mar", "aPr", "may", "june", "July", "AUGUST", "sep", "Oct", "nov", "December"]
                .iter()
                .enumerate()
        {
            assert_eq!(parse_month(m.as_bytes()), Some(i as u32 + 1), "{m}");
        }
        // `| 0x20` folds only letters onto letters.
        for bad in [&b"ja"[..], b"", b"j@n", b"\xcaan", b"J\x01N", b"-un"] {
            assert_eq!(parse_month(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn first_match_wins_per_field() {
        // The second number-like token is not a day (day already found),
        // not a month, and becomes the year.
        assert_eq!(parse_cookie_date(b"09 Jun 21 10:18:14"), Some(T));
        // Later duplicates are ignored.
        assert_eq!(parse_cookie_date(b"09 Jun 2021 10:18:14 11:00:00 Jul 1999"), Some(T));
    }

    #[test]
    fn date_format_round_trip() {
        for t in [0, T, 946_684_800, 1_709_164_800, -1, -11_644_473_600, 253_402_300_799] {
            let text = format_cookie_date(t);
            assert_eq!(parse_cookie_date(text.as_bytes()), Some(t), "{text}");
        }
        assert_eq!(format_cookie_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format_cookie_date(T), "Wed, 09 Jun 2021 10:18:14 GMT");
        assert_eq!(format_cookie_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(format_cookie_date(i64::MIN), "Mon, 01 Jan 1601 00:00:00 GMT");
    }

    fn parse(s: &str) -> SetCookie<'_> {
        SetCookie::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn name_value_as_browsers_split_it() {
        let c = parse(" _ga = GA1.2.3 ; Path=/");
        assert_eq!((c.name(), c.value()), (&b"_ga"[..], &b"GA1.2.3"[..]));
        // No `=`: empty name, the pair is the value (Chromium, 6265bis).
        let c = parse("justvalue; Path=/");
        assert_eq!((c.name(), c.value()), (&b""[..], &b"justvalue"[..]));
        // `=` first: empty name too.
        let c = parse("=v");
        assert_eq!((c.name(), c.value()), (&b""[..], &b"v"[..]));
        // Only the first `=` splits; quotes are part of the value.
        let c = parse("a=b=c; x");
        assert_eq!((c.name(), c.value()), (&b"a"[..], &b"b=c"[..]));
        let c = parse("a=\"q v\"");
        assert_eq!(c.value(), b"\"q v\"");
        // Empty value is fine.
        assert_eq!(parse("a=").name(), b"a");
        // A `;` ends the pair even inside quotes.
        assert_eq!(parse("a=\"x;y\"").value(), b"\"x");
        // Tabs are whitespace; HTAB is the one allowed control character.
        assert_eq!(parse("\ta\t=\tb\t").name(), b"a");
    }

    #[test]
    fn invalid_headers() {
        assert_eq!(SetCookie::parse(b""), Err(Invalid::Empty));
        assert_eq!(SetCookie::parse(b" ; Path=/"), Err(Invalid::Empty));
        assert_eq!(SetCookie::parse(b"="), Err(Invalid::Empty));
        assert_eq!(SetCookie::parse(b"a=b\x00"), Err(Invalid::ControlCharacter));
        assert_eq!(SetCookie::parse(b"a=b\r\nSet-Cookie: c=d"), Err(Invalid::ControlCharacter));
        assert_eq!(SetCookie::parse(b"a=b; Path=/\x7f"), Err(Invalid::ControlCharacter));
        assert_eq!(SetCookie::parse(b"a=b; Path=/\x1f"), Err(Invalid::ControlCharacter));
        // Name and value together: 4096 is the limit (the `=` not counted).
        let long = format!("a={}", "x".repeat(4096));
        assert_eq!(SetCookie::parse(long.as_bytes()).err(), Some(Invalid::TooLong));
        let fits = format!("a={}; Path=/", "x".repeat(4095));
        assert!(SetCookie::parse(fits.as_bytes()).is_ok());
        // Bytes above 0x7f are not control characters.
        assert!(SetCookie::parse("a=é".as_bytes()).is_ok());
    }

    #[test]
    fn attributes_case_insensitive_last_wins() {
        let c =
            parse("a=b; DOMAIN=.Example.COM; path=/x; secure; HTTPONLY; samesite=lax; Domain=.example.org");
        assert_eq!(c.domain(), Some(&b"example.org"[..]));
        assert_eq!(c.path(), Some(&b"/x"[..]));
        assert!(c.secure() && c.http_only());
        assert_eq!(c.same_site(), Some(&b"lax"[..]));
        // `Secure=anything` is still Secure.
        assert!(parse("a=b; Secure=no").secure());
        // Empty Domain (or a lone dot) means host-only.
        assert_eq!(parse("a=b; Domain=").domain(), None);
        assert_eq!(parse("a=b; Domain=.").domain(), None);
        assert_eq!(parse("a=b; Domain=.x.com; Domain=").domain(), None);
        // Unknown attributes and empty segments are skipped.
        let c = parse("a=b;; ; Priority=High; =x; Partitioned; Max-Age=5");
        assert_eq!(c.max_age(), Some(5));
        // An attribute value over 1024 bytes is ignored, the earlier one stays.
        let long = format!("a=b; Domain=keep.com; Domain={}", "d".repeat(1025));
        assert_eq!(SetCookie::parse(long.as_bytes()).unwrap().domain(), Some(&b"keep.com"[..]));
    }

    #[test]
    fn names_recognised_at_the_segment_start_and_otherwise() {
        // The usual spellings, flags mid-header and ending it (short tails).
        let c = parse("a=b;Secure;HttpOnly;PATH=/p;Max-Age=7;SameSite=Strict;Secure");
        assert!(c.secure() && c.http_only());
        assert_eq!((c.path(), c.max_age(), c.same_site()), (Some(&b"/p"[..]), Some(7), Some(&b"Strict"[..])));
        assert!(parse("a=b;Secure").secure());
        assert!(parse("a=b;\tHttpOnly").http_only());
        // Other spellings, the general way: blanks around the name, a flag
        // with a value, a longer name starting like a known one.
        let c = parse("a=b; path = /q ; secure =1; httponlyx; SameSite =Lax; Max-Agent=9");
        assert_eq!((c.path(), c.same_site(), c.max_age()), (Some(&b"/q"[..]), Some(&b"Lax"[..]), None));
        assert!(c.secure() && !c.http_only());
        // A control character where `-` or `=` would be is still one.
        assert_eq!(SetCookie::parse(b"a=b; Max\x0dAge=5").unwrap_err(), Invalid::ControlCharacter);
        assert_eq!(SetCookie::parse(b"a=b; path\x1d/x; Path=/").unwrap_err(), Invalid::ControlCharacter);
    }

    #[test]
    fn max_age_rules() {
        assert_eq!(parse_max_age(b"0"), Some(0));
        assert_eq!(parse_max_age(b"-1"), Some(-1));
        assert_eq!(parse_max_age(b"-0"), Some(0));
        assert_eq!(parse_max_age(b"0031"), Some(31));
        assert_eq!(parse_max_age(b"99999999999999999999999999"), Some(i64::MAX));
        assert_eq!(parse_max_age(b"-99999999999999999999999999"), Some(-i64::MAX));
        for bad in [&b""[..], b"-", b"+5", b"5s", b"1.5", b" 5", b"--1", b"0x10"] {
            assert_eq!(parse_max_age(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        // An invalid Max-Age is ignored; the last valid one wins.
        assert_eq!(parse("a=b; Max-Age=60; Max-Age=abc").max_age(), Some(60));
        assert_eq!(parse("a=b; Max-Age=60; Max-Age=10").max_age(), Some(10));
    }

    #[test]
    fn lifetime_max_age_wins() {
        let now = T;
        assert_eq!(parse("a=b").lifetime(now), Lifetime::Session);
        assert_eq!(parse("a=b; Max-Age=0").lifetime(now), Lifetime::Delete);
        assert_eq!(parse("a=b; Max-Age=-5").lifetime(now), Lifetime::Delete);
        assert_eq!(parse("a=b; Max-Age=10").lifetime(now), Lifetime::Until(now + 10));
        assert_eq!(parse("a=b; Max-Age=99999999999999999999").lifetime(now), Lifetime::Until(i64::MAX));
        // Max-Age wins over Expires in either order.
        assert_eq!(
            parse("a=b; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=10").lifetime(now),
            Lifetime::Until(now + 10)
        );
        assert_eq!(
            parse("a=b; Max-Age=0; Expires=Fri, 31 Dec 9999 23:59:59 GMT").lifetime(now),
            Lifetime::Delete
        );
        assert_eq!(parse("a=b; Expires=Thu, 01 Jan 1970 00:00:00 GMT").lifetime(now), Lifetime::Delete);
        assert_eq!(parse("a=b; Expires=Wed, 09 Jun 2021 10:18:14 GMT").lifetime(now), Lifetime::Delete);
        assert_eq!(
            parse("a=b; Expires=Wed, 09 Jun 2021 10:18:15 GMT").lifetime(now),
            Lifetime::Until(now + 1)
        );
        // An unreadable Expires is ignored: a session cookie.
        assert_eq!(parse("a=b; Expires=tomorrow").lifetime(now), Lifetime::Session);
    }

    fn edited(s: &str, edit: Edit) -> String {
        let c = parse(s);
        String::from_utf8(rewrite(&c, &edit)).unwrap()
    }

    #[test]
    fn cap_rewrites_only_offending_attributes() {
        let cap = Edit { max_age: Some(100), expires: Some(T + 100), ..Edit::default() };
        assert_eq!(edited("a=b; Max-Age=5000; Path=/", cap), "a=b; Max-Age=100; Path=/");
        assert_eq!(edited("a=b; max-age = 5000 ;Path=/", cap), "a=b; max-age = 100 ;Path=/");
        assert_eq!(
            edited("a=b; Expires=Wed, 09-Jun-2021 12:00:00 GMT; path=/", cap),
            "a=b; Expires=Wed, 09 Jun 2021 10:19:54 GMT; path=/"
        );
        assert_eq!(
            edited("a=b; Expires=Fri, 31 Dec 9999 23:59:59 GMT; Max-Age=99999999", cap),
            "a=b; Expires=Wed, 09 Jun 2021 10:19:54 GMT; Max-Age=100"
        );
        // Values under the cap are untouched, invalid ones too.
        assert_eq!(edited("a=b; Max-Age=50; Max-Age=x9", cap), "a=b; Max-Age=50; Max-Age=x9");
        let c = parse("a=b; Max-Age=50");
        assert!(!plan(&c, &cap).any());
        assert!(plan(&parse("a=b; Max-Age=101"), &cap).capped);
    }

    /// Fuzz regression (fuzz/regressions/set_cookie): two `SameSite`
    /// attributes, the first differing, the last as wanted. `plan` said
    /// "no change" while `rewrite` edited the first, so a header changed
    /// with no `Harden` decision recorded.
    #[test]
    fn plan_and_rewrite_agree_on_an_earlier_differing_samesite() {
        let edit = Edit { same_site: Some("Lax"), ..Edit::default() };
        let c = parse("_ga=1; SameSite=L_ga=2; Path=/; SameSite=Lax");
        let out = rewrite(&c, &edit);
        assert_ne!(out, c.raw, "the first SameSite is rewritten");
        assert!(plan(&c, &edit).hardened, "and the plan says so");
        let c = parse("_ga=1; SameSite=lax; SameSite=Lax");
        assert_eq!(rewrite(&c, &edit), c.raw);
        assert!(!plan(&c, &edit).hardened);
    }

    #[test]
    fn harden_appends_missing_flags_and_fixes_samesite() {
        let all = Edit { secure: true, http_only: true, same_site: Some("Lax"), ..Edit::default() };
        assert_eq!(edited("a=b", all), "a=b; Secure; HttpOnly; SameSite=Lax");
        assert_eq!(edited("a=b; Path=/; ", all), "a=b; Path=/; Secure; HttpOnly; SameSite=Lax");
        assert_eq!(edited("a=b; secure; SameSite=None", all), "a=b; secure; SameSite=Lax; HttpOnly");
        assert_eq!(edited("a=b; SameSite", all), "a=b; SameSite=Lax; Secure; HttpOnly");
        let c = parse("a=b; Secure; HttpOnly; samesite=LAX");
        assert!(!plan(&c, &all).any());
        assert_eq!(rewrite(&c, &all), c.raw());
        let strict = Edit { same_site: Some("Strict"), ..Edit::default() };
        assert!(plan(&c, &strict).hardened);
        assert_eq!(
            edited("a=b; SameSite=lax; SameSite=None", strict),
            "a=b; SameSite=Strict; SameSite=Strict"
        );
    }

    #[test]
    fn attribute_ranges() {
        let raw = b"a=b; Path = /x ;Secure;; =y";
        let attrs: Vec<_> = attributes(raw).map(|a| (&raw[a.name], &raw[a.value])).collect();
        assert_eq!(attrs, vec![(&b"Path"[..], &b"/x"[..]), (&b"Secure"[..], &b""[..])]);
        assert_eq!(attributes(b"a=b").count(), 0);
    }
}

#[cfg(test)]
pub(crate) mod props {
    use super::*;
    use proptest::prelude::*;

    /// Set-Cookie-like strings: real names, attributes and date formats in
    /// random order and case, with junk mixed in; always valid header bytes.
    pub(crate) fn set_cookie_value() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just("sessionid"),
            Just("lang"),
            Just("_ga"),
            Just("_ga_ABC"),
            Just("_fbp"),
            Just("consentry"),
            Just("legacy"),
            Just(""),
            Just("__Host-x"),
        ];
        let attr = prop_oneof![
            Just("Path=/".to_string()),
            Just("path=/shop".to_string()),
            Just("Domain=.example.com".to_string()),
            Just("domain=example.com".to_string()),
            Just("Domain=other.org".to_string()),
            Just("Domain=".to_string()),
            Just("Secure".to_string()),
            Just("HTTPONLY".to_string()),
            Just("SameSite=Lax".to_string()),
            Just("samesite=none".to_string()),
            Just("SameSite".to_string()),
            Just("Priority=High".to_string()),
            Just("".to_string()),
            (-5i64..100_000_000).prop_map(|n| format!("Max-Age={n}")),
            Just("Max-Age=99999999999999999999999".to_string()),
            Just("max-age=abc".to_string()),
            (0i64..4_000_000_000).prop_map(|t| format!("Expires={}", format_cookie_date(t))),
            Just("expires=Wednesday, 09-Jun-21 10:18:14 GMT".to_string()),
            Just("Expires=Fri, 31-Dec-2099 23:59:59 GMT".to_string()),
            Just("Expires=Wed Jun  9 10:18:14 2021".to_string()),
            Just("Expires=never".to_string()),
            "[ -:<-~\t]{0,12}",
        ];
        let sep = prop_oneof![Just(";"), Just("; "), Just(" ;"), Just(";\t"), Just(";;")];
        (name, "[!#-+\\--:<-~]{0,12}", any::<bool>(), proptest::collection::vec((sep, attr), 0..6)).prop_map(
            |(name, value, eq, attrs)| {
                let mut s = if name.is_empty() && !eq { value.clone() } else { format!("{name}={value}") };
                for (sep, attr) in attrs {
                    s.push_str(sep);
                    s.push_str(&attr);
                }
                s
            },
        )
    }

    /// IMF-fixdate-shaped text: valid dates, and near misses (any weekday
    /// or month spelling, out-of-range fields, other zones), with spaces or
    /// `-` around the month (or other delimiters), four- or two-digit years.
    fn imf_like() -> impl Strategy<Value = String> {
        let sep = || prop_oneof![Just(' '), Just('-'), Just('/'), Just('x')];
        (
            prop_oneof![Just("Tue".to_string()), Just("Jan".to_string()), "[A-Za-z0-9]{3}"],
            0u32..40,
            (sep(), prop_oneof![Just("Nov".to_string()), Just("feb".to_string()), "[A-Za-z]{3}"], sep()),
            prop_oneof![
                (1600u32..2100).prop_map(|y| format!("{y:04}")),
                (0u32..100).prop_map(|y| format!("{y:04}")),
                (9990u32..10000).prop_map(|y| format!("{y:04}")),
                (0u32..100).prop_map(|y| format!("{y:02}")),
            ],
            (0u32..30, 0u32..70, 0u32..70),
            prop_oneof![Just("GMT"), Just("UTC"), Just("gmt")],
        )
            .prop_map(|(w, d, (s1, m, s2), y, (hh, mm, ss), z)| {
                format!("{w}, {d:02}{s1}{m}{s2}{y} {hh:02}:{mm:02}:{ss:02} {z}")
            })
    }

    /// [`attributes`] as it was written before the word-at-a-time scan:
    /// one byte at a time.
    fn attributes_bytewise(raw: &[u8]) -> Vec<Attribute> {
        let mut out = Vec::new();
        let mut pos = raw.iter().position(|&b| b == b';').map_or(raw.len(), |i| i + 1);
        while pos < raw.len() {
            let seg_start = pos;
            let mut eq = None;
            while pos < raw.len() && raw[pos] != b';' {
                if raw[pos] == b'=' && eq.is_none() {
                    eq = Some(pos);
                }
                pos += 1;
            }
            let seg_end = pos;
            pos += 1;
            let (name, value) = match eq {
                Some(eq) => (trim(raw, seg_start..eq), trim(raw, eq + 1..seg_end)),
                None => {
                    let name = trim(raw, seg_start..seg_end);
                    (name.clone(), name.end..name.end)
                }
            };
            if !name.is_empty() {
                out.push(Attribute { name, value });
            }
        }
        out
    }

    /// [`known`] as it was written before the first-letter dispatch.
    fn known_plain(name: &[u8]) -> Known {
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"path") => Known::Path,
            6 if name.eq_ignore_ascii_case(b"domain") => Known::Domain,
            6 if name.eq_ignore_ascii_case(b"secure") => Known::Secure,
            7 if name.eq_ignore_ascii_case(b"expires") => Known::Expires,
            7 if name.eq_ignore_ascii_case(b"max-age") => Known::MaxAge,
            8 if name.eq_ignore_ascii_case(b"httponly") => Known::HttpOnly,
            8 if name.eq_ignore_ascii_case(b"samesite") => Known::SameSite,
            _ => Known::Other,
        }
    }

    /// [`SetCookie::parse`] as it was before the one-pass scan: a separate
    /// control-character check, then [`attributes`].
    fn parse_in_passes(raw: &[u8]) -> Result<SetCookie<'_>, Invalid> {
        if raw.iter().any(|&b| is_forbidden_ctl(b)) {
            return Err(Invalid::ControlCharacter);
        }
        let pair_end = find_semicolon(raw, 0);
        let (name, value) = match raw[..pair_end].iter().position(|&b| b == b'=') {
            Some(eq) => (trim(raw, 0..eq), trim(raw, eq + 1..pair_end)),
            None => (0..0, trim(raw, 0..pair_end)),
        };
        if name.is_empty() && value.is_empty() {
            return Err(Invalid::Empty);
        }
        if name.len() + value.len() > MAX_NAME_VALUE {
            return Err(Invalid::TooLong);
        }
        let mut cookie = SetCookie::bare(raw, &raw[name], &raw[value]);
        for attr in attributes(raw) {
            if attr.value.len() <= MAX_ATTRIBUTE_VALUE {
                cookie.set(known_plain(&raw[attr.name]), &raw[attr.value]);
            }
        }
        Ok(cookie)
    }

    proptest! {
        /// The word-at-a-time `;` scan splits every header as the byte loop
        /// did, whatever the bytes (`;` and `=` made frequent).
        #[test]
        fn attribute_scan_agrees_with_the_byte_loop(bytes in proptest::collection::vec(
            prop_oneof![Just(b';'), Just(b'='), Just(b' '), Just(b';' | 0x80), Just(b'='), any::<u8>()], 0..120)
        ) {
            prop_assert_eq!(attributes(&bytes).collect::<Vec<_>>(), attributes_bytewise(&bytes));
            for from in 0..=bytes.len() {
                let want = bytes[from..].iter().position(|&b| b == b';').map_or(bytes.len(), |i| from + i);
                prop_assert_eq!(find_semicolon(&bytes, from), want);
            }
        }

        /// The one-pass parser reads every header as the separate control
        /// check and attribute iterator did: the same cookie, or the same
        /// reason to ignore it (control characters, `;` and `=` frequent).
        #[test]
        fn one_pass_parse_agrees_with_the_passes(bytes in proptest::collection::vec(
            prop_oneof![Just(b';'), Just(b'='), Just(b' '), Just(b'\t'), Just(0x7f), Just(b'\r'), any::<u8>(),
                any::<u8>(), any::<u8>()], 0..120)
        ) {
            prop_assert_eq!(SetCookie::parse(&bytes), parse_in_passes(&bytes));
        }

        #[test]
        fn one_pass_parse_agrees_on_real_headers(s in set_cookie_value(), junk in proptest::option::of(
            (0usize..80, prop_oneof![Just(0u8), Just(b'\n'), Just(0x7f), Just(b'\t'), Just(b';')]))
        ) {
            let mut bytes = s.into_bytes();
            if let Some((at, b)) = junk {
                bytes.insert(at.min(bytes.len()), b);
            }
            prop_assert_eq!(SetCookie::parse(&bytes), parse_in_passes(&bytes));
        }

        /// Long pairs: over 4096 bytes is ignored, unless a control
        /// character (reported first) comes later.
        #[test]
        fn one_pass_parse_agrees_on_long_pairs(len in 4090usize..4100, ctl in any::<bool>()) {
            let mut bytes = format!("n={}; Path=/", "v".repeat(len)).into_bytes();
            if ctl {
                bytes.push(0x01);
            }
            prop_assert_eq!(SetCookie::parse(&bytes), parse_in_passes(&bytes));
        }

        /// Attribute names are recognised as before, in any case.
        #[test]
        fn attribute_names_are_recognised_as_before(name in prop_oneof![
            "(?i)(path|domain|secure|expires|max-age|httponly|samesite)",
            "[pPdDsSeEmMhH@`0\\-]{0,2}(?i)(ath|omain|ecure|xpires|ax-age|ttponly|amesite)?",
            proptest::collection::vec(any::<u8>(), 0..9).prop_map(|v| String::from_utf8_lossy(&v).into_owned()),
        ]) {
            prop_assert_eq!(known(name.as_bytes()), known_plain(name.as_bytes()), "{:?}", name);
            // Read in place, with bytes after it (or none).
            for tail in [&b""[..], b"=", b"=Lax; Secure", b"\xff\xff\xff\xff\xff\xff\xff\xff"] {
                let raw = [b"; ", name.as_bytes(), tail].concat();
                prop_assert_eq!(known_at(&raw, 2..2 + name.len()), known_plain(name.as_bytes()), "{:?}", raw);
            }
        }

        #[test]
        fn the_imf_fixdate_fast_path_agrees_with_the_general_algorithm(text in imf_like()) {
            let bytes = text.as_bytes();
            prop_assert_eq!(parse_cookie_date(bytes), parse_cookie_date_tokens(bytes), "{}", text);
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_cookie_date(&bytes);
            let _ = parse_max_age(&bytes);
            let _ = attributes(&bytes).count();
            if let Ok(c) = SetCookie::parse(&bytes) {
                let _ = c.lifetime(0);
                let edit = Edit { max_age: Some(10), expires: Some(10), secure: true, http_only: true, same_site: Some("Lax") };
                let changes = plan(&c, &edit);
                let out = rewrite(&c, &edit);
                // What was planned is what was done.
                prop_assert_eq!(changes.any(), out != c.raw());
            }
        }

        #[test]
        fn dates_never_panic(s in "[ -~\t]{0,60}") {
            let _ = parse_cookie_date(s.as_bytes());
        }

        #[test]
        fn no_edit_is_identity(s in set_cookie_value()) {
            if let Ok(c) = SetCookie::parse(s.as_bytes()) {
                prop_assert!(!plan(&c, &Edit::default()).any());
                prop_assert_eq!(rewrite(&c, &Edit::default()), s.as_bytes());
            }
        }

        #[test]
        fn rewrite_is_idempotent_and_keeps_identity(s in set_cookie_value(), cap in 0i64..10_000_000) {
            let now = 1_700_000_000;
            let edit = Edit { max_age: Some(cap), expires: Some(now + cap), secure: true, http_only: false, same_site: Some("Strict") };
            if let Ok(c) = SetCookie::parse(s.as_bytes()) {
                let once = rewrite(&c, &edit);
                let c2 = SetCookie::parse(&once).unwrap();
                // Same cookie, nothing left to change.
                prop_assert_eq!(c2.name(), c.name());
                prop_assert_eq!(c2.value(), c.value());
                prop_assert_eq!(c2.domain(), c.domain());
                prop_assert!(!plan(&c2, &edit).any(), "{}", String::from_utf8_lossy(&once));
                prop_assert!(c2.secure());
                prop_assert!(c2.same_site().is_some_and(|v| v.eq_ignore_ascii_case(b"strict")));
                if let Lifetime::Until(t) = c2.lifetime(now) {
                    prop_assert!(t <= now + cap, "{}", String::from_utf8_lossy(&once));
                }
            }
        }
    }
}
