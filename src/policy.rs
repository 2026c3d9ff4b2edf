//! The compiled, immutable policy: everything consentry decides comes from
//! here.
//!
//! [`compile`] turns one `[policy.NAME]` table (after `extends` and presets
//! are merged in) into a [`Policy`]: categories become a bitset, cookie name
//! patterns become one hash map (exact names) plus one `RegexSet` (globs and
//! `/regex/`), resource rules become a host map, a prefix list and one
//! Aho-Corasick automaton for inline-script signatures. All of it is built
//! once per reload, never per request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aho_corasick::{AhoCorasick, MatchKind, StartKind};
use regex::bytes::{Regex, RegexSet};
use serde_spanned::Spanned;

use crate::category::{Categories, Category, CategoryId, CategorySet, MAX_CATEGORIES, NECESSARY};
use crate::config::{self, ConfigError, Source};
use crate::consent::Format;
use crate::presets::Presets;
use crate::route::HostSet;

/// `enforce` or `report-only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Change traffic.
    Enforce,
    /// Change nothing; record what would have been done.
    ReportOnly,
}

/// What happens to cookies or third-party resources no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// Treated as refused (fail closed; the default).
    Block,
    /// Let through.
    Allow,
}

/// How a refused HTML element is neutralised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neutralise {
    /// Kept in the page, inert and revivable (`type="text/plain"`,
    /// `data-src`), as client-side consent managers expect.
    Inert,
    /// Removed from the page.
    Remove,
}

/// Where a rule came from, for `explain`, the audit log and the declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOrigin {
    /// The config file, at this line.
    Config {
        /// 1-based line.
        line: usize,
    },
    /// A preset, by name.
    Preset(String),
}

impl RuleOrigin {
    /// Whether the rule is the policy's own (not a preset's).
    pub fn is_config(&self) -> bool {
        matches!(self, RuleOrigin::Config { .. })
    }
}

impl std::fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleOrigin::Config { line } => write!(f, "config line {line}"),
            RuleOrigin::Preset(name) => write!(f, "preset {name}"),
        }
    }
}

/// A compiled cookie rule.
#[derive(Debug, Clone)]
pub struct CookieRule {
    /// The name pattern as written (`_ga_*`, `/^_hj/`, `sessionid`).
    pub pattern: String,
    /// Its category.
    pub category: CategoryId,
    /// Who sets it.
    pub provider: String,
    /// Why.
    pub purpose: String,
    /// Declared lifetime, as text.
    pub duration: String,
    /// Domain restriction (lower case, no leading dot).
    pub domain: Option<String>,
    /// Paths to delete it on; never empty (`/` by default). Shared with
    /// every [`crate::request_filter::Withdrawn`] naming this rule.
    pub paths: Arc<[String]>,
    /// Lifetime cap (beats the category's).
    pub max_age: Option<Duration>,
    /// Where it came from.
    pub origin: RuleOrigin,
    /// [`CookieBasis::describe`]'s text for this rule, and the same after
    /// [`crate::consent::GPC_NOTE`]: built by [`CookieRules::new`] (whatever
    /// a constructor puts here is replaced), shared by every decision.
    pub described: [Arc<str>; 2],
}

impl CookieRule {
    /// Whether this rule applies to a cookie whose effective domain (its
    /// `Domain` attribute, or the request host) is `domain`.
    pub fn applies_to_domain(&self, domain: &str) -> bool {
        match &self.domain {
            None => true,
            Some(want) => domain_matches(domain.trim_start_matches('.'), want),
        }
    }
}

/// Whether `domain` equals `parent` or is a subdomain of it (both lower case,
/// no leading dot).
pub fn domain_matches(domain: &str, parent: &str) -> bool {
    if domain.len() == parent.len() {
        return domain.eq_ignore_ascii_case(parent);
    }
    domain.len() > parent.len()
        && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
        && domain[domain.len() - parent.len()..].eq_ignore_ascii_case(parent)
}

/// One pattern over names: exact, glob or `/regex/`.
#[derive(Debug, Clone)]
pub enum NamePattern {
    /// Exact name.
    Exact(String),
    /// A glob or regex, compiled.
    Pattern(Regex),
}

impl NamePattern {
    /// Compiles `_ga_*`, `/^_hj/` or `sessionid`.
    pub fn compile(text: &str) -> Result<NamePattern, String> {
        match pattern_regex(text)? {
            None => Ok(NamePattern::Exact(text.to_string())),
            Some(re) => {
                Regex::new(&re).map(NamePattern::Pattern).map_err(|e| format!("bad pattern {text:?}: {e}"))
            }
        }
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => exact == name,
            NamePattern::Pattern(re) => re.is_match(name.as_bytes()),
        }
    }
}

/// The regex for a glob or `/regex/` pattern; `None` for an exact name.
fn pattern_regex(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Err("empty cookie name pattern".into());
    }
    if text.len() >= 2 && text.starts_with('/') && text.ends_with('/') {
        let inner = &text[1..text.len() - 1];
        if inner.is_empty() {
            return Err("empty regex \"//\"".into());
        }
        // The parser's own Display spans several lines (pattern, caret);
        // a config error is one line, so keep only what is wrong.
        regex_syntax::Parser::new().parse(inner).map_err(|e| {
            let why = match &e {
                regex_syntax::Error::Parse(e) => e.kind().to_string(),
                regex_syntax::Error::Translate(e) => e.kind().to_string(),
                other => other.to_string(),
            };
            format!("bad regex {text:?}: {why}")
        })?;
        Regex::new(inner).map_err(|e| format!("bad regex {text:?}: {e}"))?;
        return Ok(Some(inner.to_string()));
    }
    if text.contains(['*', '?', '[', '{']) {
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("bad glob {text:?}: {e}"))?;
        return Ok(Some(glob.regex().to_string()));
    }
    Ok(None)
}

/// Every cookie rule of a policy, ready for lookup.
///
/// Precedence, when several rules name the same cookie (documented for
/// users in `config/presets/README.md`):
///
/// 1. the policy's own rules (`[[policy.NAME.cookie]]`, a child policy's
///    before those it `extends`) beat every preset rule, whatever their kind;
/// 2. within the same tier, an exact name beats a glob or `/regex/`;
/// 3. then the earlier rule wins: file order for the policy's own rules,
///    the order of `presets = [...]` for presets;
/// 4. a rule with a `domain` only applies to cookies of that domain (or a
///    subdomain), so a later rule may still catch cookies it skips.
///
/// Built-in presets never disagree on the category of a cookie they both
/// name (a test checks it), so rule 3 only changes the provider/purpose
/// shown for such a cookie, never the decision.
#[derive(Debug, Clone, Default)]
pub struct CookieRules {
    rules: Vec<CookieRule>,
    exact: ExactNames,
    /// Globs and regexes of the policy's own rules.
    config_patterns: PatternSet,
    /// Globs and regexes of presets.
    preset_patterns: PatternSet,
}

/// Exact rule names → rules. The keys are fixed when the policy compiles and
/// only looked up per request, so the keyed, per-table-seeded foldhash is
/// enough (and much cheaper than SipHash on short names).
type ExactNames = HashMap<String, Vec<usize>, foldhash::fast::RandomState>;

impl CookieRules {
    /// Builds the lookup structures. `rules` are in precedence order: the
    /// policy's own rules first, then preset rules.
    pub fn new(mut rules: Vec<CookieRule>) -> Result<CookieRules, String> {
        let mut exact: ExactNames = HashMap::default();
        let mut config = PatternSetBuilder::default();
        let mut preset = PatternSetBuilder::default();
        for rule in &mut rules {
            let text = format!("{} ({})", rule.pattern, rule.origin);
            rule.described =
                [Arc::from(text.as_str()), Arc::from(format!("{}{text}", crate::consent::GPC_NOTE))];
        }
        for (i, rule) in rules.iter().enumerate() {
            let builder = if rule.origin.is_config() { &mut config } else { &mut preset };
            match pattern_regex(&rule.pattern)? {
                None => exact.entry(rule.pattern.clone()).or_default().push(i),
                Some(re) => builder.push(i, &rule.pattern, re),
            }
        }
        Ok(CookieRules { rules, exact, config_patterns: config.build()?, preset_patterns: preset.build()? })
    }

    /// The rule for a cookie whose effective domain (its `Domain`, or the
    /// request host) is `domain`, by the precedence described on
    /// [`CookieRules`].
    pub fn classify(&self, name: &str, domain: &str) -> Option<&CookieRule> {
        let rules = &self.rules;
        let exact = self
            .exact
            .get(name)
            .and_then(|ids| ids.iter().copied().find(|&i| rules[i].applies_to_domain(domain)));
        // The tiers in order: a config exact name (nothing beats it), a
        // config pattern, a preset exact name, a preset pattern.
        let winner = match exact {
            Some(i) if rules[i].origin.is_config() => Some(i),
            _ => self
                .config_patterns
                .first(rules, name, domain)
                .or(exact)
                .or_else(|| self.preset_patterns.first(rules, name, domain)),
        };
        winner.map(|i| &rules[i])
    }

    /// Every rule, in precedence order.
    pub fn rules(&self) -> &[CookieRule] {
        &self.rules
    }
}

/// The glob and regex rules of one tier, ready for lookup.
///
/// Nearly every cookie glob is a literal prefix and a final `*` (`_ga_*`,
/// `_hjSession_*`, `intercom-id-*`): those go into one anchored
/// Aho-Corasick automaton; its longest match at the start of the name tells
/// every prefix that matches (they are all prefixes of that one). The rest (`mp_*_mixpanel`, `/regex/`) go into one
/// `RegexSet`. Asking a `RegexSet` *which* of ~80 patterns matched costs
/// a few hundred nanoseconds per cookie; the automaton costs tens.
#[derive(Debug, Clone, Default)]
struct PatternSet {
    /// The distinct literal prefixes, searched anchored, longest first.
    prefixes: Option<AhoCorasick>,
    /// Per distinct prefix: the rules of every prefix that is a prefix of
    /// it (itself included), in rule order. The longest prefix of a name in
    /// the set determines all the others, so one anchored search suffices.
    prefix_rules: Vec<Vec<usize>>,
    /// The first two bytes of the prefixes, as a hashed bit set
    /// ([`PrefixStarts`]): a name starting with none of them cannot match
    /// one, and skips the automaton. Two bytes, not one: nearly every
    /// preset prefix starts with `_` (`_ga_`, `_hj`, `_gcl_`), and so do
    /// most tracker names.
    prefix_starts: PrefixStarts,
    others: Option<RegexSet>,
    other_rules: Vec<usize>,
}

/// A set of two-byte name starts, hashed into 1024 bits: a collision only
/// lets a name through to the automaton, never keeps a matching one out.
/// A one-byte name is looked up as its byte and 0, which a one-byte
/// prefix adds together with every other pair starting with its byte.
#[derive(Debug, Clone, Default)]
struct PrefixStarts([u64; 16]);

impl PrefixStarts {
    fn bit(first: u8, second: u8) -> usize {
        (usize::from(first) << 3 ^ usize::from(second)) & 1023
    }

    fn add(&mut self, prefix: &[u8]) {
        match *prefix {
            [] => {}
            [first] => (0..=u8::MAX).for_each(|second| self.set(first, second)),
            [first, second, ..] => self.set(first, second),
        }
    }

    fn set(&mut self, first: u8, second: u8) {
        let bit = PrefixStarts::bit(first, second);
        self.0[bit / 64] |= 1 << (bit % 64);
    }

    /// Whether `name` may start with one of the prefixes added.
    fn may_start(&self, name: &[u8]) -> bool {
        let bit = match *name {
            [] => return false,
            [first] => PrefixStarts::bit(first, 0),
            [first, second, ..] => PrefixStarts::bit(first, second),
        };
        self.0[bit / 64] & (1 << (bit % 64)) != 0
    }
}

#[derive(Default)]
struct PatternSetBuilder {
    prefixes: Vec<String>,
    prefix_rules: Vec<usize>,
    others: Vec<String>,
    other_rules: Vec<usize>,
}

impl PatternSetBuilder {
    fn push(&mut self, rule: usize, pattern: &str, regex: String) {
        match literal_prefix_glob(pattern) {
            Some(prefix) => {
                self.prefixes.push(prefix.to_string());
                self.prefix_rules.push(rule);
            }
            None => {
                self.others.push(regex);
                self.other_rules.push(rule);
            }
        }
    }

    fn build(self) -> Result<PatternSet, String> {
        let mut distinct: Vec<String> = self.prefixes.clone();
        distinct.sort();
        distinct.dedup();
        let prefix_rules: Vec<Vec<usize>> = distinct
            .iter()
            .map(|longest| {
                let mut rules: Vec<usize> = self
                    .prefixes
                    .iter()
                    .zip(&self.prefix_rules)
                    .filter(|(shorter, _)| longest.starts_with(shorter.as_str()))
                    .map(|(_, &rule)| rule)
                    .collect();
                rules.sort_unstable();
                rules
            })
            .collect();
        let prefixes = if distinct.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .start_kind(StartKind::Anchored)
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&distinct)
                    .map_err(|e| format!("cookie name prefixes: {e}"))?,
            )
        };
        let others = if self.others.is_empty() {
            None
        } else {
            Some(RegexSet::new(&self.others).map_err(|e| format!("cookie patterns: {e}"))?)
        };
        let mut prefix_starts = PrefixStarts::default();
        for prefix in &distinct {
            prefix_starts.add(prefix.as_bytes());
        }
        Ok(PatternSet { prefixes, prefix_rules, prefix_starts, others, other_rules: self.other_rules })
    }
}

impl PatternSet {
    /// The earliest rule (lowest index) of this set that matches `name` and
    /// applies to `domain`.
    ///
    /// Inlined down to the check that rules most names out (no pattern but
    /// prefixes, and none the name can start with): every cookie name of a
    /// request asks both tiers, and the call alone cost more than that
    /// check (~45 instructions, 56 calls per request in benches/headers.rs).
    #[inline]
    fn first(&self, rules: &[CookieRule], name: &str, domain: &str) -> Option<usize> {
        if self.others.is_none() && !self.prefix_may_match(name) {
            return None;
        }
        self.search(rules, name, domain)
    }

    /// Whether `name` may match one of the literal prefixes.
    fn prefix_may_match(&self, name: &str) -> bool {
        self.prefixes.is_some() && self.prefix_starts.may_start(name.as_bytes())
    }

    /// [`PatternSet::first`] past its inlined check.
    #[inline(never)]
    fn search(&self, rules: &[CookieRule], name: &str, domain: &str) -> Option<usize> {
        let mut best: Option<usize> = None;
        if let Some(ac) = &self.prefixes
            && self.prefix_starts.may_start(name.as_bytes())
        {
            let input = aho_corasick::Input::new(name).anchored(aho_corasick::Anchored::Yes);
            if let Some(m) = ac.find(input) {
                best = self.prefix_rules[m.pattern().as_usize()]
                    .iter()
                    .copied()
                    .find(|&i| rules[i].applies_to_domain(domain));
            }
        }
        if let Some(set) = &self.others
            // `is_match` needs no allocation; most names match no pattern.
            && set.is_match(name.as_bytes())
        {
            // `matches` iterates in pattern order, which is rule order.
            let other = set
                .matches(name.as_bytes())
                .iter()
                .map(|p| self.other_rules[p])
                .find(|&i| rules[i].applies_to_domain(domain));
            if let Some(i) = other
                && best.is_none_or(|b| i < b)
            {
                best = Some(i);
            }
        }
        best
    }
}

/// `_ga_` for the glob `_ga_*`: a non-empty literal followed by one final
/// `*`. Anything else (`/regex/`, `mp_*_mixpanel`, escapes) is `None`.
fn literal_prefix_glob(pattern: &str) -> Option<&str> {
    let prefix = pattern.strip_suffix('*')?;
    (!prefix.is_empty() && !prefix.starts_with('/') && !prefix.contains(['*', '?', '[', ']', '{', '}', '\\']))
        .then_some(prefix)
}

/// How a resource rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceMatch {
    /// This host and its subdomains.
    Host(String),
    /// URLs on this host whose path starts with this prefix.
    Prefix {
        /// Exact host (lower case).
        host: String,
        /// Path prefix, starting with `/`.
        path: String,
    },
    /// Inline scripts containing this text.
    Inline(String),
}

impl ResourceMatch {
    /// Parses `match = "…"`: `inline:fbq(`, `www.youtube.com/embed/`,
    /// `https://js.hs-scripts.com/`, `googletagmanager.com`.
    pub fn parse(text: &str) -> Result<ResourceMatch, String> {
        if let Some(sig) = text.strip_prefix("inline:") {
            if sig.is_empty() {
                return Err("empty inline-script signature".into());
            }
            return Ok(ResourceMatch::Inline(sig.to_string()));
        }
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .or_else(|| text.strip_prefix("//"))
            .unwrap_or(text);
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let host = host.trim_start_matches("*.").trim_start_matches('.').to_ascii_lowercase();
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'))
        {
            return Err(format!("bad resource match {text:?}: expected a host, a URL prefix or inline:TEXT"));
        }
        Ok(match path {
            Some(path) if path != "/" => ResourceMatch::Prefix { host, path: path.to_string() },
            _ => ResourceMatch::Host(host),
        })
    }
}

/// A compiled resource rule.
#[derive(Debug, Clone)]
pub struct ResourceRule {
    /// The `match` text as written.
    pub pattern: String,
    /// How it matches.
    pub matcher: ResourceMatch,
    /// Its category.
    pub category: CategoryId,
    /// Who serves it.
    pub provider: String,
    /// Where it came from.
    pub origin: RuleOrigin,
    /// `pattern (origin)`, as decisions cite it: built once here and
    /// shared by every decision that names the rule.
    pub basis: Arc<str>,
}

/// Every resource rule of a policy, ready for lookup.
#[derive(Debug, Clone, Default)]
pub struct ResourceRules {
    rules: Vec<ResourceRule>,
    /// Foldhash, as for [`ExactNames`]: every parent domain of every
    /// third-party URL on a page is looked up.
    hosts: HashMap<String, usize, foldhash::fast::RandomState>,
    prefixes: HashMap<String, Vec<usize>, foldhash::fast::RandomState>,
    inline: Option<InlineSearcher>,
    inline_rules: Vec<usize>,
}

/// Finds inline-script signatures (leftmost-first, non-overlapping; pattern
/// `i` is the `i`-th signature): Teddy, aho-corasick's SIMD searcher, when
/// there are few signatures, else a DFA. Both give the same matches.
#[derive(Debug, Clone)]
pub struct InlineSearcher {
    /// Teddy, when there are at most [`InlineSearcher::PACKED_MAX`]
    /// signatures and the CPU has the instructions for it.
    packed: Option<aho_corasick::packed::Searcher>,
    /// A DFA without prefilter: the default rare-byte prefilter stops at
    /// nearly every few bytes of JavaScript (its "rare" bytes are `(` and
    /// `_`), restarting the search each time.
    dfa: AhoCorasick,
}

impl InlineSearcher {
    /// Most signatures searched with Teddy.
    const PACKED_MAX: usize = 16;

    /// The searcher for these signatures.
    pub fn new(signatures: &[String]) -> Result<InlineSearcher, String> {
        let dfa = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .prefilter(false)
            .build(signatures)
            .map_err(|e| format!("inline signatures: {e}"))?;
        let packed = (signatures.len() <= Self::PACKED_MAX)
            .then(|| {
                aho_corasick::packed::Config::new()
                    .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
                    .builder()
                    .extend(signatures)
                    .build()
            })
            .flatten();
        Ok(InlineSearcher { packed, dfa })
    }

    /// The same signatures searched by the DFA alone (tests compare both).
    #[cfg(test)]
    fn without_packed(mut self) -> InlineSearcher {
        self.packed = None;
        self
    }

    /// The longest signature's length.
    pub fn max_pattern_len(&self) -> usize {
        self.dfa.max_pattern_len()
    }

    /// Calls `found(pattern, start, end)` for each match in `haystack`, in order.
    pub fn for_each_match(&self, haystack: &[u8], mut found: impl FnMut(usize, usize, usize)) {
        match &self.packed {
            Some(packed) => {
                for m in packed.find_iter(haystack) {
                    found(m.pattern().as_usize(), m.start(), m.end());
                }
            }
            None => {
                for m in self.dfa.find_iter(haystack) {
                    found(m.pattern().as_usize(), m.start(), m.end());
                }
            }
        }
    }

    /// The first match's pattern.
    fn first(&self, haystack: &[u8]) -> Option<usize> {
        match &self.packed {
            Some(packed) => packed.find(haystack).map(|m| m.pattern().as_usize()),
            None => self.dfa.find(haystack).map(|m| m.pattern().as_usize()),
        }
    }
}

impl ResourceRules {
    /// Builds the lookup structures. Rules earlier in `rules` win.
    pub fn new(rules: Vec<ResourceRule>) -> Result<ResourceRules, String> {
        let mut hosts = HashMap::default();
        let mut prefixes: HashMap<String, Vec<usize>, _> = HashMap::default();
        let mut signatures = Vec::new();
        let mut inline_rules = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            match &rule.matcher {
                ResourceMatch::Host(host) => {
                    hosts.entry(host.clone()).or_insert(i);
                }
                ResourceMatch::Prefix { host, .. } => prefixes.entry(host.clone()).or_default().push(i),
                ResourceMatch::Inline(sig) => {
                    signatures.push(sig.clone());
                    inline_rules.push(i);
                }
            }
        }
        let inline = if signatures.is_empty() { None } else { Some(InlineSearcher::new(&signatures)?) };
        Ok(ResourceRules { rules, hosts, prefixes, inline, inline_rules })
    }

    /// The rule for a URL given by its host (lower case) and path: a prefix
    /// rule on the exact host first, then the host or its nearest parent.
    pub fn classify_url(&self, host: &str, path: &str) -> Option<&ResourceRule> {
        if let Some(ids) = self.prefixes.get(host)
            && let Some(&i) = ids.iter().find(|&&i| match &self.rules[i].matcher {
                ResourceMatch::Prefix { path: prefix, .. } => path.starts_with(prefix.as_str()),
                _ => false,
            })
        {
            return Some(&self.rules[i]);
        }
        let mut rest = host;
        loop {
            if let Some(&i) = self.hosts.get(rest) {
                return Some(&self.rules[i]);
            }
            match rest.find('.') {
                Some(dot) => rest = &rest[dot + 1..],
                None => return None,
            }
        }
    }

    /// The rule whose signature occurs first in an inline script's text.
    pub fn classify_inline(&self, text: &str) -> Option<&ResourceRule> {
        let pattern = self.inline.as_ref()?.first(text.as_bytes())?;
        Some(&self.rules[self.inline_rules[pattern]])
    }

    /// The signature searcher and, per pattern, its rule index, for callers
    /// that search script text chunk by chunk.
    pub fn inline_automaton(&self) -> Option<(&InlineSearcher, &[usize])> {
        self.inline.as_ref().map(|ac| (ac, self.inline_rules.as_slice()))
    }

    /// The rule at an index given by [`ResourceRules::inline_automaton`].
    pub fn rule(&self, index: usize) -> &ResourceRule {
        &self.rules[index]
    }

    /// Every rule, in precedence order.
    pub fn rules(&self) -> &[ResourceRule] {
        &self.rules
    }
}

/// `SameSite` values for hardening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None`.
    None,
}

impl SameSite {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// A hardening rule: flags added to matching `Set-Cookie` headers.
#[derive(Debug, Clone)]
pub struct HardenRule {
    /// Cookie name pattern.
    pub name: NamePattern,
    /// Add `Secure`.
    pub secure: bool,
    /// Add `HttpOnly`.
    pub http_only: bool,
    /// Set `SameSite`.
    pub same_site: Option<SameSite>,
}

/// Content-Security-Policy settings.
#[derive(Debug, Clone)]
pub struct CspSettings {
    /// Send `Content-Security-Policy-Report-Only` instead of enforcing.
    pub report_only: bool,
    /// `report-uri` directive.
    pub report_uri: Option<String>,
}

/// Built-in banner settings.
#[derive(Debug, Clone, Default)]
pub struct BannerSettings {
    /// Inject the banner for visitors without valid consent.
    pub enabled: bool,
    /// Text overrides: language → key → text.
    pub texts: BTreeMap<String, BTreeMap<String, String>>,
    /// Link to the site's cookie policy.
    pub policy_url: Option<String>,
}

/// How to read and check consent.
#[derive(Debug, Clone)]
pub struct ConsentSettings {
    /// The consent cookie's name.
    pub cookie: String,
    /// Its format.
    pub format: Format,
    /// Consent older than this counts as none.
    pub max_age: Option<Duration>,
    /// Current policy revision; consent for an older one counts as none.
    pub revision: u64,
    /// Categories refused on `Sec-GPC: 1`.
    pub gpc_refuses: CategorySet,
    /// Consent-manager names → categories.
    pub map: HashMap<String, CategorySet>,
    /// HMAC-SHA256 key for the `consentry` cookie; when set, unsigned or
    /// forged values grant nothing. Dereferences to the key's bytes.
    pub hmac_key: Option<crate::consent::consentry::HmacKey>,
    /// Granted to visitors outside a consent region (Cookiebot `-1`).
    pub outside_region: CategorySet,
    /// `Domain` of the consent cookie consentry sets.
    pub cookie_domain: Option<String>,
}

/// One compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its name in the config.
    pub name: String,
    /// Enforce or report only.
    pub mode: Mode,
    /// Unnamed cookies.
    pub unknown_cookies: Unknown,
    /// Unnamed third-party resources.
    pub unknown_third_party: Unknown,
    /// Hosts that are first party besides each site's own.
    pub first_party: HostSet,
    /// How refused elements are neutralised.
    pub neutralise: Neutralise,
    /// Send `Consentry-Consent` to the origin.
    pub consent_header: bool,
    /// Most sweep deletions per response.
    pub sweep_budget: usize,
    /// Categories.
    pub categories: Categories,
    /// Consent reading.
    pub consent: ConsentSettings,
    /// Cookie rules (config first, then presets).
    pub cookies: CookieRules,
    /// Resource rules (config first, then presets).
    pub resources: ResourceRules,
    /// Cookie hardening.
    pub harden: Vec<HardenRule>,
    /// CSP, when enabled.
    pub csp: Option<CspSettings>,
    /// Banner.
    pub banner: BannerSettings,
    /// What receipts keep of the visitor's IP.
    pub receipt_ip: crate::receipts::IpRecord,
    /// Presets in use.
    pub presets: Vec<String>,
}

/// Why a cookie got its category.
#[derive(Debug, Clone, Copy)]
pub enum CookieBasis<'p> {
    /// A rule named it.
    Rule(&'p CookieRule),
    /// It is the consent cookie (always necessary).
    ConsentCookie,
    /// No rule: the policy's `unknown_cookies` default decides.
    Unknown,
}

/// [`CookieBasis::text`] of the two defaults, plain and after the GPC note.
static CONSENT_COOKIE_TEXT: LazyLock<[Arc<str>; 2]> = LazyLock::new(|| shared_texts("consent cookie"));
static UNKNOWN_COOKIE_TEXT: LazyLock<[Arc<str>; 2]> =
    LazyLock::new(|| shared_texts("unknown_cookies default"));

/// `text` and `text` after [`crate::consent::GPC_NOTE`], shared.
pub fn shared_texts(text: &str) -> [Arc<str>; 2] {
    [Arc::from(text), Arc::from(format!("{}{text}", crate::consent::GPC_NOTE))]
}

impl CookieBasis<'_> {
    /// [`CookieBasis::describe`], shared rather than built, after
    /// [`crate::consent::GPC_NOTE`] when `gpc` (the decision was GPC's).
    pub fn text(&self, gpc: bool) -> Arc<str> {
        let texts = match self {
            CookieBasis::Rule(rule) => &rule.described,
            CookieBasis::ConsentCookie => &*CONSENT_COOKIE_TEXT,
            CookieBasis::Unknown => &*UNKNOWN_COOKIE_TEXT,
        };
        Arc::clone(&texts[usize::from(gpc)])
    }

    /// Short description for logs, the audit log and `explain`.
    pub fn describe(&self) -> String {
        match self {
            CookieBasis::Rule(rule) => format!("{} ({})", rule.pattern, rule.origin),
            CookieBasis::ConsentCookie => "consent cookie".into(),
            CookieBasis::Unknown => "unknown_cookies default".into(),
        }
    }
}

impl Policy {
    /// The category of a cookie and why. `domain` is its `Domain` attribute
    /// or, without one, the request host.
    pub fn classify_cookie<'p>(&'p self, name: &str, domain: &str) -> (Option<CategoryId>, CookieBasis<'p>) {
        if name == self.consent.cookie || self.consent.format.owns_cookie(name) {
            return (Some(CategoryId::NECESSARY), CookieBasis::ConsentCookie);
        }
        match self.cookies.classify(name, domain) {
            Some(rule) => (Some(rule.category), CookieBasis::Rule(rule)),
            None => (None, CookieBasis::Unknown),
        }
    }

    /// Whether something of this category (None: unclassified) is allowed
    /// under `granted`, with `unknown` deciding unclassified items.
    pub fn permits(category: Option<CategoryId>, granted: CategorySet, unknown: Unknown) -> bool {
        match category {
            Some(c) => c == CategoryId::NECESSARY || granted.contains(c),
            None => unknown == Unknown::Allow,
        }
    }

    /// Whether a cookie is allowed under `granted`.
    pub fn cookie_allowed(&self, category: Option<CategoryId>, granted: CategorySet) -> bool {
        Policy::permits(category, granted, self.unknown_cookies)
    }

    /// Whether a third-party resource is allowed under `granted`.
    pub fn resource_allowed(&self, category: Option<CategoryId>, granted: CategorySet) -> bool {
        Policy::permits(category, granted, self.unknown_third_party)
    }

    /// The lifetime cap for a cookie of `category` matched by `rule`.
    pub fn max_cookie_age(
        &self,
        category: Option<CategoryId>,
        rule: Option<&CookieRule>,
    ) -> Option<Duration> {
        rule.and_then(|r| r.max_age).or_else(|| category.and_then(|c| self.categories.get(c).max_cookie_age))
    }

    /// Whether `Sec-GPC` changes this policy's decisions (so responses
    /// must carry `Vary: Sec-GPC`).
    pub fn honours_gpc(&self) -> bool {
        !self.consent.gpc_refuses.difference(CategorySet::NECESSARY_ONLY).is_empty()
    }
}

const DEFAULT_CATEGORIES: [(&str, &str); 4] = [
    (NECESSARY, "Strictly necessary: sign-in, security, load balancing and your consent choice."),
    ("functional", "Preferences such as language or region."),
    ("analytics", "Audience measurement and performance statistics."),
    ("advertising", "Advertising, retargeting and social media tracking."),
];

const DAY: u64 = 24 * 3600;

/// Compiles `[policy.NAME]` (merging what it `extends`) with its presets.
/// Collects every error rather than stopping at the first.
pub fn compile(
    name: &str,
    source: &Source,
    policies: &BTreeMap<String, Spanned<config::Policy>>,
    presets: &Presets,
) -> Result<Policy, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let raw = match merged(name, source, policies) {
        Ok(raw) => raw,
        Err(e) => return Err(vec![e]),
    };
    let at = |span: std::ops::Range<usize>, msg: String| source.error_at(span, msg);

    // Categories: necessary first, then in the order written (BTreeMap order
    // is alphabetical, so take the order of appearance in the file).
    let mut list: Vec<Category> = Vec::new();
    match &raw.categories {
        None => {
            for (n, d) in DEFAULT_CATEGORIES {
                list.push(Category { name: n.to_string(), description: d.to_string(), max_cookie_age: None });
            }
        }
        Some(defs) => {
            let mut ordered: Vec<(&String, &Spanned<config::CategoryDef>)> = defs.iter().collect();
            ordered.sort_by_key(|(_, d)| d.span().start);
            if !defs.contains_key(NECESSARY) {
                list.push(Category {
                    name: NECESSARY.to_string(),
                    description: DEFAULT_CATEGORIES[0].1.to_string(),
                    max_cookie_age: None,
                });
            }
            for (n, d) in ordered {
                let def = d.get_ref();
                if !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                    errors
                        .push(at(d.span(), format!("bad category name {n:?}: use letters, digits, - and _")));
                }
                if def.max_cookie_days == Some(0) {
                    errors.push(at(d.span(), format!("category {n:?}: max_cookie_days must be at least 1")));
                }
                let cat = Category {
                    name: n.clone(),
                    description: def.description.clone(),
                    max_cookie_age: def
                        .max_cookie_days
                        .map(|days| Duration::from_secs(u64::from(days) * DAY)),
                };
                if n == NECESSARY {
                    list.insert(0, cat);
                } else {
                    list.push(cat);
                }
            }
        }
    }
    if list.len() > MAX_CATEGORIES {
        errors.push(source.error(format!("policy {name}: at most {MAX_CATEGORIES} categories")));
        list.truncate(MAX_CATEGORIES);
    }
    let categories = Categories::new(list);
    let category = |spanned: &Spanned<String>, errors: &mut Vec<ConfigError>| -> Option<CategoryId> {
        let id = categories.id(spanned.get_ref());
        if id.is_none() {
            errors.push(at(
                spanned.span(),
                format!(
                    "unknown category {:?} (declared: {})",
                    spanned.get_ref(),
                    categories.names(categories.all())
                ),
            ));
        }
        id
    };
    let category_set =
        |list: &Option<Vec<Spanned<String>>>, errors: &mut Vec<ConfigError>| -> Option<CategorySet> {
            list.as_ref().map(|names| names.iter().filter_map(|n| category(n, errors)).collect())
        };

    let mode = match raw.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("enforce", _)) => Mode::Enforce,
        Some(("report-only", _)) => Mode::ReportOnly,
        Some((other, span)) => {
            errors.push(at(span, format!("mode must be \"enforce\" or \"report-only\", not {other:?}")));
            Mode::Enforce
        }
    };
    let unknown = |value: &Option<Spanned<String>>, key: &str, errors: &mut Vec<ConfigError>| match value
        .as_ref()
        .map(|m| (m.get_ref().as_str(), m.span()))
    {
        None | Some(("block", _)) => Unknown::Block,
        Some(("allow", _)) => Unknown::Allow,
        Some((other, span)) => {
            errors.push(at(span, format!("{key} must be \"block\" or \"allow\", not {other:?}")));
            Unknown::Block
        }
    };
    let unknown_cookies = unknown(&raw.unknown_cookies, "unknown_cookies", &mut errors);
    let unknown_third_party = unknown(&raw.unknown_third_party, "unknown_third_party", &mut errors);
    let neutralise = match raw.neutralise.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("inert", _)) => Neutralise::Inert,
        Some(("remove", _)) => Neutralise::Remove,
        Some((other, span)) => {
            errors.push(at(span, format!("neutralise must be \"inert\" or \"remove\", not {other:?}")));
            Neutralise::Inert
        }
    };
    let mut first_party = HostSet::default();
    for host in raw.first_party.iter().flatten() {
        if let Err(e) = first_party.insert(host.get_ref()) {
            errors.push(at(host.span(), e));
        }
    }

    // Consent.
    let consent_raw = raw.consent.clone().unwrap_or_default();
    let format = match &consent_raw.format {
        None => Format::Consentry,
        Some(f) => Format::from_name(f.get_ref()).unwrap_or_else(|| {
            let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
            errors.push(at(
                f.span(),
                format!("unknown consent format {:?} (known: {})", f.get_ref(), names.join(", ")),
            ));
            Format::Consentry
        }),
    };
    let mut map: HashMap<String, CategorySet> = HashMap::new();
    for (id, cat) in categories.iter() {
        map.insert(cat.name.clone(), CategorySet::only(id));
    }
    for (from, to) in format.default_map() {
        if let Some(id) = categories.id(to) {
            map.insert((*from).to_string(), CategorySet::only(id));
        }
    }
    for (from, to) in consent_raw.map.iter().flatten() {
        if let Some(id) = category(to, &mut errors) {
            map.insert(from.clone(), CategorySet::only(id));
        }
    }
    let gpc_refuses = category_set(&consent_raw.gpc_refuses, &mut errors)
        .unwrap_or_else(|| categories.id("advertising").map(CategorySet::only).unwrap_or_default());
    let outside_region = category_set(&consent_raw.outside_region, &mut errors)
        .unwrap_or(CategorySet::NECESSARY_ONLY)
        .union(CategorySet::NECESSARY_ONLY);
    let hmac_key = match (&consent_raw.hmac_key, &consent_raw.hmac_key_env) {
        (Some(key), _) => Some(key.as_bytes().to_vec()),
        (None, Some(var)) => match std::env::var(var.get_ref()) {
            Ok(key) if !key.is_empty() => Some(key.into_bytes()),
            _ => {
                errors.push(at(
                    var.span(),
                    format!("hmac_key_env names {:?}, which is not set or empty", var.get_ref()),
                ));
                None
            }
        },
        (None, None) => None,
    };
    let consent = ConsentSettings {
        cookie: consent_raw.cookie.clone().unwrap_or_else(|| format.default_cookie().to_string()),
        format,
        max_age: Some(Duration::from_secs(u64::from(consent_raw.max_age_days.unwrap_or(180)) * DAY)),
        revision: consent_raw.revision.unwrap_or(0),
        gpc_refuses,
        map,
        hmac_key: hmac_key.map(crate::consent::consentry::HmacKey::new),
        outside_region,
        cookie_domain: consent_raw.cookie_domain.clone(),
    };

    if let Some(own) = policies.get(name) {
        duplicates(source, own.get_ref(), &mut errors);
    }

    // Rules: the config's own first, then presets in the order listed.
    let mut cookie_rules = Vec::new();
    let mut resource_rules = Vec::new();
    let mut push_rules = |src: &Source,
                          origin: &dyn Fn(usize) -> RuleOrigin,
                          default_provider: &str,
                          cookies: &[Spanned<config::CookieRule>],
                          resources: &[Spanned<config::ResourceRule>],
                          errors: &mut Vec<ConfigError>| {
        for c in cookies {
            let rule = c.get_ref();
            let Some(cat) = categories.id(rule.category.get_ref()) else {
                errors.push(src.error_at(
                    rule.category.span(),
                    format!(
                        "unknown category {:?} (declared: {})",
                        rule.category.get_ref(),
                        categories.names(categories.all())
                    ),
                ));
                continue;
            };
            if let Err(e) = pattern_regex(rule.name.get_ref()) {
                errors.push(src.error_at(rule.name.span(), e));
                continue;
            }
            if rule.max_days == Some(0) {
                errors.push(src.error_at(c.span(), "max_days must be at least 1"));
            }
            if let Some(path) = rule.paths.iter().find(|p| !p.starts_with('/')) {
                errors.push(src.error_at(c.span(), format!("cookie path {path:?} must start with /")));
            }
            let line = crate::config::line_column(&src.text, c.span().start).0;
            let paths: Arc<[String]> =
                if rule.paths.is_empty() { Arc::new(["/".to_string()]) } else { rule.paths.clone().into() };
            cookie_rules.push(CookieRule {
                pattern: rule.name.get_ref().clone(),
                category: cat,
                provider: if rule.provider.is_empty() {
                    default_provider.to_string()
                } else {
                    rule.provider.clone()
                },
                purpose: rule.purpose.clone(),
                duration: rule.duration.clone(),
                domain: rule.domain.as_ref().map(|d| d.trim_start_matches('.').to_ascii_lowercase()),
                paths,
                max_age: rule.max_days.map(|d| Duration::from_secs(u64::from(d) * DAY)),
                origin: origin(line),
                described: Default::default(),
            });
        }
        for r in resources {
            let rule = r.get_ref();
            let Some(cat) = categories.id(rule.category.get_ref()) else {
                errors.push(src.error_at(
                    rule.category.span(),
                    format!(
                        "unknown category {:?} (declared: {})",
                        rule.category.get_ref(),
                        categories.names(categories.all())
                    ),
                ));
                continue;
            };
            let matcher = match ResourceMatch::parse(rule.matches.get_ref()) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(src.error_at(rule.matches.span(), e));
                    continue;
                }
            };
            let line = crate::config::line_column(&src.text, r.span().start).0;
            let pattern = rule.matches.get_ref().clone();
            let basis = format!("{pattern} ({})", origin(line)).into();
            resource_rules.push(ResourceRule {
                basis,
                pattern,
                matcher,
                category: cat,
                provider: if rule.provider.is_empty() {
                    default_provider.to_string()
                } else {
                    rule.provider.clone()
                },
                origin: origin(line),
            });
        }
    };
    push_rules(source, &|line| RuleOrigin::Config { line }, "", &raw.cookie, &raw.resource, &mut errors);
    let mut preset_names = Vec::new();
    for p in raw.presets.iter().flatten() {
        match presets.get(p.get_ref()) {
            None => {
                let known: Vec<_> = presets.iter().map(|p| p.name.as_str()).collect();
                let hint = match closest(p.get_ref(), &known) {
                    Some(near) => format!("did you mean {near:?}? "),
                    None => String::new(),
                };
                errors.push(at(
                    p.span(),
                    format!("unknown preset {:?} ({hint}known: {})", p.get_ref(), known.join(", ")),
                ));
            }
            Some(loaded) => {
                let pname = loaded.name.clone();
                let mut preset_errors = Vec::new();
                push_rules(
                    &loaded.source,
                    &|_| RuleOrigin::Preset(pname.clone()),
                    &loaded.preset.provider,
                    &loaded.preset.cookie,
                    &loaded.preset.resource,
                    &mut preset_errors,
                );
                // A preset naming a category this policy lacks is an error
                // at the place the preset is used, once per distinct problem
                // (with the first place in the preset that has it).
                let mut seen = std::collections::HashSet::new();
                for e in preset_errors {
                    if seen.insert(e.message.clone()) {
                        errors.push(at(p.span(), format!("preset {:?}: {}", p.get_ref(), e)));
                    }
                }
                preset_names.push(p.get_ref().clone());
            }
        }
    }
    let cookies = CookieRules::new(cookie_rules).unwrap_or_else(|e| {
        errors.push(source.error(format!("policy {name}: {e}")));
        CookieRules::default()
    });
    let resources = ResourceRules::new(resource_rules).unwrap_or_else(|e| {
        errors.push(source.error(format!("policy {name}: {e}")));
        ResourceRules::default()
    });

    let mut harden = Vec::new();
    for h in &raw.harden {
        let rule = h.get_ref();
        let name_pattern = match NamePattern::compile(rule.name.get_ref()) {
            Ok(p) => p,
            Err(e) => {
                errors.push(at(rule.name.span(), e));
                continue;
            }
        };
        let same_site = match rule.same_site.as_ref().map(|s| (s.get_ref().to_ascii_lowercase(), s.span())) {
            None => None,
            Some((s, _)) if s == "strict" => Some(SameSite::Strict),
            Some((s, _)) if s == "lax" => Some(SameSite::Lax),
            Some((s, _)) if s == "none" => Some(SameSite::None),
            Some((s, span)) => {
                errors.push(at(span, format!("same_site must be Strict, Lax or None, not {s:?}")));
                None
            }
        };
        harden.push(HardenRule {
            name: name_pattern,
            secure: rule.secure,
            http_only: rule.http_only,
            same_site,
        });
    }
    let csp = match &raw.csp {
        None => None,
        Some(c) => match c.mode.get_ref().as_str() {
            "enforce" => Some(CspSettings { report_only: false, report_uri: c.report_uri.clone() }),
            "report-only" => Some(CspSettings { report_only: true, report_uri: c.report_uri.clone() }),
            "off" => None,
            other => {
                errors.push(at(
                    c.mode.span(),
                    format!("csp.mode must be \"enforce\", \"report-only\" or \"off\", not {other:?}"),
                ));
                None
            }
        },
    };
    let banner = raw
        .banner
        .as_ref()
        .map(|b| BannerSettings {
            enabled: b.enabled,
            texts: b.texts.clone(),
            policy_url: b.policy_url.clone(),
        })
        .unwrap_or_default();
    let receipt_ip = match &raw.receipts {
        None => crate::receipts::IpRecord::default(),
        Some(r) => {
            let (v4, v6) = (
                r.ipv4_prefix.as_ref().map_or(24, |p| *p.get_ref()),
                r.ipv6_prefix.as_ref().map_or(48, |p| *p.get_ref()),
            );
            for (prefix, max, key) in
                [(&r.ipv4_prefix, 32, "ipv4_prefix"), (&r.ipv6_prefix, 128, "ipv6_prefix")]
            {
                if let Some(p) = prefix
                    && *p.get_ref() > max
                {
                    errors.push(at(
                        p.span(),
                        format!("receipts.{key} must be 0 to {max}, not {}", p.get_ref()),
                    ));
                }
            }
            match r.ip.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
                None | Some(("truncate", _)) => crate::receipts::IpRecord::Truncate { v4, v6 },
                Some(("none", _)) => crate::receipts::IpRecord::None,
                Some(("full", _)) => crate::receipts::IpRecord::Full,
                Some((other, span)) => {
                    errors.push(at(
                        span,
                        format!("receipts.ip must be \"truncate\", \"none\" or \"full\", not {other:?}"),
                    ));
                    crate::receipts::IpRecord::default()
                }
            }
        }
    };

    if !errors.is_empty() {
        return Err(errors);
    }
    let policy = Policy {
        name: name.to_string(),
        mode,
        unknown_cookies,
        unknown_third_party,
        first_party,
        neutralise,
        consent_header: raw.consent_header.unwrap_or(false),
        sweep_budget: raw.sweep_budget.unwrap_or(32),
        categories,
        consent,
        cookies,
        resources,
        harden,
        csp,
        banner,
        receipt_ip,
        presets: preset_names,
    };
    // Banner settings are checked against the compiled policy (its consent
    // format, its languages), at the place the policy is declared.
    let problems = crate::banner::check(&policy);
    if !problems.is_empty() {
        let span = policies.get(name).map_or(0..0, Spanned::span);
        return Err(problems.into_iter().map(|p| source.error_at(span.clone(), p)).collect());
    }
    Ok(policy)
}

/// Two rules of one `[policy.NAME]` table for the same cookie (name and
/// domain) or the same resource `match` are a mistake: only the first would
/// ever apply. (A child policy overriding what it `extends` is not: that is
/// what `extends` is for.)
fn duplicates(source: &Source, policy: &config::Policy, errors: &mut Vec<ConfigError>) {
    let line = |span: std::ops::Range<usize>| config::line_column(&source.text, span.start).0;
    let mut cookies: HashMap<(&str, Option<String>), usize> = HashMap::new();
    for c in &policy.cookie {
        let rule = c.get_ref();
        let domain = rule.domain.as_ref().map(|d| d.trim_start_matches('.').to_ascii_lowercase());
        let key = (rule.name.get_ref().as_str(), domain);
        if let Some(first) = cookies.get(&key) {
            errors.push(source.error_at(
                rule.name.span(),
                format!("duplicate cookie rule {:?}: already at line {first}", rule.name.get_ref()),
            ));
        } else {
            cookies.insert(key, line(c.span()));
        }
    }
    let mut resources: HashMap<String, usize> = HashMap::new();
    for r in &policy.resource {
        let rule = r.get_ref();
        let key = match ResourceMatch::parse(rule.matches.get_ref()) {
            Ok(m) => format!("{m:?}"),
            Err(_) => continue,
        };
        if let Some(first) = resources.get(&key) {
            errors.push(source.error_at(
                rule.matches.span(),
                format!("duplicate resource rule {:?}: already at line {first}", rule.matches.get_ref()),
            ));
        } else {
            resources.insert(key, line(r.span()));
        }
    }
}

/// The known name closest to a misspelt one, if it is close enough to be
/// a plausible typo (edit distance at most a third of its length).
fn closest<'a>(wrong: &str, known: &[&'a str]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    known
        .iter()
        .map(|k| (distance(wrong, k), *k))
        .filter(|(d, _)| *d > 0 && *d * 3 <= wrong.chars().count().max(3))
        .min()
        .map(|(_, k)| k)
}

/// `[policy.NAME]` with everything it `extends` merged in: the child's
/// settings win, its rules come before the parent's, presets are united.
fn merged(
    name: &str,
    source: &Source,
    policies: &BTreeMap<String, Spanned<config::Policy>>,
) -> Result<config::Policy, ConfigError> {
    let mut chain: Vec<&Spanned<config::Policy>> = Vec::new();
    let mut current = name;
    loop {
        let Some(policy) = policies.get(current) else {
            return Err(source.error(format!("no policy named {current:?}")));
        };
        if chain.iter().any(|p| std::ptr::eq(*p, policy)) {
            return Err(source.error_at(policy.span(), format!("policy {name:?}: `extends` forms a cycle")));
        }
        chain.push(policy);
        match &policy.get_ref().extends {
            None => break,
            Some(parent) => {
                if !policies.contains_key(parent.get_ref()) {
                    return Err(source
                        .error_at(parent.span(), format!("extends unknown policy {:?}", parent.get_ref())));
                }
                current = parent.get_ref();
            }
        }
    }
    // Fold from the root ancestor down to `name`.
    let mut out = chain.last().map(|p| p.get_ref().clone()).expect("chain has the policy itself");
    for child in chain.iter().rev().skip(1) {
        let c = child.get_ref().clone();
        out.mode = c.mode.or(out.mode);
        out.unknown_cookies = c.unknown_cookies.or(out.unknown_cookies);
        out.unknown_third_party = c.unknown_third_party.or(out.unknown_third_party);
        out.neutralise = c.neutralise.or(out.neutralise);
        out.consent_header = c.consent_header.or(out.consent_header);
        out.sweep_budget = c.sweep_budget.or(out.sweep_budget);
        out.csp = c.csp.or(out.csp);
        out.banner = c.banner.or(out.banner);
        out.receipts = c.receipts.or(out.receipts);
        out.consent = c.consent.or(out.consent);
        if let Some(fp) = c.first_party {
            out.first_party.get_or_insert_with(Vec::new).extend(fp);
        }
        if let Some(p) = c.presets {
            let list = out.presets.get_or_insert_with(Vec::new);
            for name in p {
                if !list.iter().any(|x| x.get_ref() == name.get_ref()) {
                    list.push(name);
                }
            }
        }
        if let Some(cats) = c.categories {
            out.categories.get_or_insert_with(BTreeMap::new).extend(cats);
        }
        let mut cookies = c.cookie;
        cookies.append(&mut out.cookie);
        out.cookie = cookies;
        let mut resources = c.resource;
        resources.append(&mut out.resource);
        out.resource = resources;
        let mut harden = c.harden;
        harden.append(&mut out.harden);
        out.harden = harden;
        out.extends = None;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn compile_str(text: &str) -> Result<Policy, Vec<ConfigError>> {
        let source = Source { path: PathBuf::from("t.toml"), text: text.to_string() };
        let file = source.parse().map_err(|e| vec![e])?;
        compile("default", &source, &file.policy, &Presets::default())
    }

    #[test]
    fn default_categories_and_rules() {
        let p = compile_str(
            r#"
[policy.default]
[[policy.default.cookie]]
name = "_ga_*"
category = "analytics"
[[policy.default.cookie]]
name = "_ga"
category = "analytics"
[[policy.default.cookie]]
name = "/^_hj/"
category = "analytics"
[[policy.default.cookie]]
name = "lang"
category = "functional"
domain = ".example.com"
[[policy.default.resource]]
match = "googletagmanager.com"
category = "analytics"
[[policy.default.resource]]
match = "https://www.youtube.com/embed/"
category = "advertising"
[[policy.default.resource]]
match = "inline:fbq("
category = "advertising"
"#,
        )
        .unwrap();
        assert_eq!(p.categories.len(), 4);
        let analytics = p.categories.id("analytics").unwrap();
        assert_eq!(p.classify_cookie("_ga_ABC", "example.com").0, Some(analytics));
        assert_eq!(p.classify_cookie("_ga", "example.com").0, Some(analytics));
        assert_eq!(p.classify_cookie("_hjSession", "example.com").0, Some(analytics));
        assert_eq!(p.classify_cookie("x_hj", "example.com").0, None);
        assert!(p.classify_cookie("lang", "www.example.com").0.is_some());
        assert!(p.classify_cookie("lang", "other.org").0.is_none());
        assert_eq!(p.classify_cookie("consentry", "example.com").0, Some(CategoryId::NECESSARY));
        assert!(p.resources.classify_url("www.googletagmanager.com", "/gtag/js").is_some());
        assert!(p.resources.classify_url("googletagmanager.com.evil.org", "/").is_none());
        assert!(p.resources.classify_url("www.youtube.com", "/embed/xyz").is_some());
        assert!(p.resources.classify_url("www.youtube.com", "/watch").is_none());
        assert!(p.resources.classify_inline("!function(){fbq('init')}").is_some());
        assert!(p.honours_gpc());
    }

    #[test]
    fn errors_have_locations() {
        let errs = compile_str(
            "[policy.default]\n[[policy.default.cookie]]\nname = \"_ga\"\ncategory = \"analitics\"\n[[policy.default.cookie]]\nname = \"/(/\"\ncategory = \"analytics\"\n",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].column), (4, 12));
        assert!(errs[0].message.contains("unknown category \"analitics\""));
        assert_eq!(errs[1].line, 6);
        assert!(errs[1].message.contains("bad regex"));
    }

    #[test]
    fn extends_merges_child_first() {
        let text = r#"
[policy.base]
mode = "report-only"
[[policy.base.cookie]]
name = "x"
category = "analytics"
[policy.default]
extends = "base"
[[policy.default.cookie]]
name = "x"
category = "functional"
"#;
        let p = compile_str(text).unwrap();
        assert_eq!(p.mode, Mode::ReportOnly);
        assert_eq!(p.classify_cookie("x", "a").0, p.categories.id("functional"));
        let cyclic = "[policy.default]\nextends = \"b\"\n[policy.b]\nextends = \"default\"\n";
        assert!(compile_str(cyclic).unwrap_err()[0].message.contains("cycle"));
    }

    #[test]
    fn site_rules_beat_presets_then_exact_beats_pattern_then_order() {
        let presets = Presets::builtin().unwrap();
        let compile = |body: &str| {
            let text = format!("[policy.default]\n{body}");
            let source = Source { path: PathBuf::from("t.toml"), text };
            let file = source.parse().unwrap();
            compile("default", &source, &file.policy, &presets).unwrap()
        };
        let describe = |p: &Policy, name: &str, domain: &str| {
            let (id, basis) = p.classify_cookie(name, domain);
            (id.map(|id| p.categories.name(id).to_string()).unwrap_or_default(), basis.describe())
        };
        // A site glob beats a preset's exact name.
        let p = compile(
            "presets = [\"google-analytics\"]\n[[policy.default.cookie]]\nname = \"_g*\"\ncategory = \"functional\"\n",
        );
        assert_eq!(describe(&p, "_gid", "a.com"), ("functional".into(), "_g* (config line 3)".into()));
        // A domain-restricted site rule only takes its domain.
        let p = compile(
            "presets = [\"cloudflare\"]\n[[policy.default.cookie]]\nname = \"_cfuvid\"\ncategory = \"functional\"\ndomain = \".calendly.com\"\n",
        );
        assert_eq!(describe(&p, "_cfuvid", "calendly.com").0, "functional");
        assert_eq!(describe(&p, "_cfuvid", "assets.calendly.com").0, "functional");
        assert_eq!(
            describe(&p, "_cfuvid", "www.callkom.io"),
            ("necessary".into(), "_cfuvid (preset cloudflare)".into())
        );
        // Among presets: exact beats glob whatever the order...
        for order in ["\"amplitude\", \"google-analytics\"", "\"google-analytics\", \"amplitude\""] {
            let p = compile(&format!("presets = [{order}]\n"));
            assert_eq!(describe(&p, "AMP_TOKEN", "a.com").1, "AMP_TOKEN (preset google-analytics)");
        }
        // ... and for the same exact name the first preset listed names it.
        let p = compile("presets = [\"hubspot\", \"cloudflare\"]\n");
        assert_eq!(describe(&p, "__cfruid", "a.com").1, "__cfruid (preset hubspot)");
        let p = compile("presets = [\"cloudflare\", \"hubspot\"]\n");
        assert_eq!(describe(&p, "__cfruid", "a.com").1, "__cfruid (preset cloudflare)");
        // Within the site's rules, exact beats pattern, then file order.
        let p = compile(
            "[[policy.default.cookie]]\nname = \"/^x/\"\ncategory = \"analytics\"\n[[policy.default.cookie]]\nname = \"x1\"\ncategory = \"functional\"\n[[policy.default.cookie]]\nname = \"x*\"\ncategory = \"advertising\"\n",
        );
        assert_eq!(describe(&p, "x1", "a.com").0, "functional");
        assert_eq!(describe(&p, "x2", "a.com").0, "analytics");
    }

    /// The lookup structures (hash map, anchored prefix automaton,
    /// RegexSet, two tiers) decide exactly like the precedence rules read
    /// literally: scan the rules in order, tier by tier.
    mod precedence_model {
        use super::*;
        use proptest::prelude::*;

        fn pattern() -> impl Strategy<Value = String> {
            prop_oneof![
                "[ab_]{1,3}",
                "[ab_]{1,3}".prop_map(|p| format!("{p}*")),
                "[ab_]{0,2}".prop_map(|p| format!("{p}*b")),
                "[ab]{1,2}".prop_map(|p| format!("/^{p}.?b/")),
            ]
        }

        fn rule(pattern: String, config: bool, domain: bool, index: usize) -> CookieRule {
            CookieRule {
                pattern,
                category: CategoryId::new(index % 4).unwrap(),
                provider: String::new(),
                purpose: String::new(),
                duration: String::new(),
                domain: domain.then(|| "x.com".to_string()),
                paths: Arc::new(["/".into()]),
                max_age: None,
                origin: if config {
                    RuleOrigin::Config { line: index }
                } else {
                    RuleOrigin::Preset("p".into())
                },
                described: Default::default(),
            }
        }

        fn reference<'r>(
            rules: &'r [CookieRule],
            patterns: &[NamePattern],
            name: &str,
            domain: &str,
        ) -> Option<&'r CookieRule> {
            for config in [true, false] {
                for want_exact in [true, false] {
                    let found = rules.iter().zip(patterns).find(|(r, p)| {
                        r.origin.is_config() == config
                            && matches!(p, NamePattern::Exact(_)) == want_exact
                            && p.matches(name)
                            && r.applies_to_domain(domain)
                    });
                    if let Some((r, _)) = found {
                        return Some(r);
                    }
                }
            }
            None
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn lookup_equals_the_literal_precedence(
                specs in prop::collection::vec((pattern(), any::<bool>(), any::<bool>()), 0..12),
                names in prop::collection::vec("[ab_]{0,5}", 1..8),
            ) {
                // Config rules come first, as `compile` orders them.
                let mut specs = specs;
                specs.sort_by_key(|(_, config, _)| !*config);
                let rules: Vec<CookieRule> = specs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (p, config, domain))| rule(p, config, domain, i))
                    .collect();
                let compiled = CookieRules::new(rules.clone()).unwrap();
                let patterns: Vec<NamePattern> =
                    rules.iter().map(|r| NamePattern::compile(&r.pattern).unwrap()).collect();
                for name in &names {
                    for domain in ["x.com", "www.x.com", "y.com"] {
                        let got = compiled.classify(name, domain).map(|r| (&r.pattern, &r.origin));
                        let want = reference(&rules, &patterns, name, domain).map(|r| (&r.pattern, &r.origin));
                        prop_assert_eq!(got, want, "{} on {}", name, domain);
                    }
                }
            }
        }
    }

    /// Teddy and the DFA report the same matches (leftmost-first,
    /// non-overlapping), on haystacks short (Rabin-Karp inside Teddy's
    /// searcher) and long, with signatures that overlap and share prefixes.
    mod inline_searchers_agree {
        use super::*;
        use proptest::prelude::*;

        fn matches(s: &InlineSearcher, hay: &[u8]) -> Vec<(usize, usize, usize)> {
            let mut out = Vec::new();
            s.for_each_match(hay, |p, a, b| out.push((p, a, b)));
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]
            #[test]
            fn packed_equals_dfa(
                signatures in prop::collection::vec("[abg(_]{1,6}", 1..10),
                hay in "[abgt(_ ]{0,300}",
            ) {
                let searcher = InlineSearcher::new(&signatures).unwrap();
                let dfa = searcher.clone().without_packed();
                prop_assert_eq!(matches(&searcher, hay.as_bytes()), matches(&dfa, hay.as_bytes()));
                prop_assert_eq!(searcher.first(hay.as_bytes()), dfa.first(hay.as_bytes()));
            }
        }

        #[test]
        fn few_signatures_use_teddy_when_the_cpu_can() {
            let s = InlineSearcher::new(&["gtag(".to_string(), "fbq(".to_string()]).unwrap();
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("ssse3") {
                assert!(s.packed.is_some());
            }
            let many: Vec<String> = (0..=InlineSearcher::PACKED_MAX).map(|i| format!("sig{i}(")).collect();
            assert!(InlineSearcher::new(&many).unwrap().packed.is_none());
        }
    }

    mod determinism {
        use super::*;
        use proptest::prelude::*;
        use std::sync::OnceLock;

        const TEXT: &str = r#"
[policy.default]
presets = ["google-analytics", "google-ads", "hubspot", "hotjar", "matomo", "amplitude", "cloudflare", "youtube"]
[[policy.default.cookie]]
name = "/^sess(ion)?_[0-9a-f]{8}$/"
category = "necessary"
[[policy.default.cookie]]
name = "pref_*"
category = "functional"
[[policy.default.cookie]]
name = "lang"
category = "functional"
domain = "example.com"
[[policy.default.resource]]
match = "cdn.example.net"
category = "necessary"
"#;

        /// The same text compiled twice (and once more per case) decides
        /// every name and host identically: nothing depends on hash-map
        /// iteration order or on anything but the text.
        fn twice() -> &'static (Policy, Policy) {
            static P: OnceLock<(Policy, Policy)> = OnceLock::new();
            P.get_or_init(|| {
                let one = || {
                    let source = Source { path: PathBuf::from("d.toml"), text: TEXT.to_string() };
                    let file = source.parse().unwrap();
                    compile("default", &source, &file.policy, &Presets::builtin().unwrap()).unwrap()
                };
                (one(), one())
            })
        }

        fn decide(p: &Policy, name: &str, host: &str) -> (Option<CategoryId>, String, Option<String>) {
            let (id, basis) = p.classify_cookie(name, host);
            let resource = p.resources.classify_url(host, "/x").map(|r| r.pattern.clone());
            (id, basis.describe(), resource)
        }

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "_ga",
                    "_ga_ABC",
                    "_gid",
                    "__hstc",
                    "_hjSession_1",
                    "_pk_id.1.ab",
                    "AMP_TOKEN",
                    "AMP_x",
                    "__cf_bm",
                    "_gcl_au",
                    "lang",
                    "pref_x",
                    "session_0123abcd",
                    "consentry",
                    "YSC",
                ])
                .prop_map(str::to_string),
                "[A-Za-z0-9_.\\-]{0,24}",
            ]
        }

        fn host() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "example.com",
                    "www.example.com",
                    "youtube.com",
                    "www.youtube.com",
                    "cdn.example.net",
                    "www.google-analytics.com",
                    "challenges.cloudflare.com",
                    "js.hs-scripts.com",
                ])
                .prop_map(str::to_string),
                "[a-z]{1,8}(\\.[a-z]{1,8}){0,3}",
            ]
        }

        proptest! {
            #[test]
            fn compiling_twice_decides_the_same(name in name(), host in host()) {
                let (a, b) = twice();
                prop_assert_eq!(decide(a, &name, &host), decide(b, &name, &host));
            }
        }
    }

    #[test]
    fn prefix_globs_are_anchored_and_ordered() {
        assert_eq!(literal_prefix_glob("_ga_*"), Some("_ga_"));
        assert_eq!(literal_prefix_glob(".AspNetCore.Antiforgery.*"), Some(".AspNetCore.Antiforgery."));
        assert_eq!(literal_prefix_glob("*"), None);
        assert_eq!(literal_prefix_glob("mp_*_mixpanel"), None);
        assert_eq!(literal_prefix_glob("a?b*"), None);
        assert_eq!(literal_prefix_glob("/^x*/"), None);
        let rule = |pattern: &str, domain: Option<&str>| CookieRule {
            pattern: pattern.to_string(),
            category: CategoryId::NECESSARY,
            provider: String::new(),
            purpose: String::new(),
            duration: String::new(),
            domain: domain.map(str::to_string),
            paths: Arc::new(["/".into()]),
            max_age: None,
            origin: RuleOrigin::Preset("p".into()),
            described: Default::default(),
        };
        let rules = CookieRules::new(vec![
            rule("ga*", None),
            rule("_hj*", Some("hotjar.com")),
            rule("_hjSession_*", None),
            rule("_h*", None),
            rule("mp_*_mixpanel", None),
            rule("/^_hjS/", None),
        ])
        .unwrap();
        let which = |name: &str, domain: &str| rules.classify(name, domain).map(|r| r.pattern.as_str());
        // Anchored: "ga*" does not match "_ga_x" in the middle.
        assert_eq!(which("_ga_x", "a.com"), None);
        assert_eq!(which("gaX", "a.com"), Some("ga*"));
        // The earliest rule that applies, across prefixes and regexes.
        assert_eq!(which("_hjSession_1", "hotjar.com"), Some("_hj*"));
        assert_eq!(which("_hjSession_1", "a.com"), Some("_hjSession_*"));
        assert_eq!(which("_hjx", "a.com"), Some("_h*"));
        assert_eq!(which("mp_abc_mixpanel", "a.com"), Some("mp_*_mixpanel"));
        assert_eq!(which("mp_abc_mixpanelx", "a.com"), None);
        // A regex earlier than a prefix wins.
        let rules = CookieRules::new(vec![rule("/^_hjS/", None), rule("_hj*", None)]).unwrap();
        assert_eq!(rules.classify("_hjSx", "a.com").map(|r| r.pattern.as_str()), Some("/^_hjS/"));
        assert_eq!(rules.classify("_hjx", "a.com").map(|r| r.pattern.as_str()), Some("_hj*"));
    }

    proptest::proptest! {
        /// The two-byte filter never rules out a name that starts with one
        /// of its prefixes (it may let others through).
        #[test]
        fn prefix_starts_keep_every_match(
            prefixes in proptest::collection::vec("[_a-c]{1,3}", 1..6),
            name in "[_a-c]{0,4}",
        ) {
            let mut starts = PrefixStarts::default();
            for p in &prefixes {
                starts.add(p.as_bytes());
            }
            if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                proptest::prop_assert!(starts.may_start(name.as_bytes()));
            }
        }
    }

    #[test]
    fn prefix_starts_rule_out_other_names() {
        let mut starts = PrefixStarts::default();
        for p in ["_ga_", "_hj", "cf_chl_"] {
            starts.add(p.as_bytes());
        }
        for name in ["_ga", "_hjSession_1", "cf_chl_rc"] {
            assert!(starts.may_start(name.as_bytes()), "{name}");
        }
        for name in ["", "_", "_clck", "_ttp", "lang", "legacy_track", "c"] {
            assert!(!starts.may_start(name.as_bytes()), "{name}");
        }
        // A one-byte prefix lets every name starting with its byte through.
        starts.add(b"x");
        for name in ["x", "xyz", "x\u{0}"] {
            assert!(starts.may_start(name.as_bytes()), "{name:?}");
        }
    }

    #[test]
    fn domain_matching() {
        assert!(domain_matches("example.com", "example.com"));
        assert!(domain_matches("www.example.com", "example.com"));
        assert!(!domain_matches("badexample.com", "example.com"));
        assert!(!domain_matches("com", "example.com"));
    }
}
