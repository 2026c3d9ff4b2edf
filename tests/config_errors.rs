//! Every configuration error names the file, line and column of what is
//! wrong, and says what is wrong. Each case below is a whole config with one
//! mistake; the expected location is given as the text it must point at
//! (so the test does not depend on counting lines by hand) and checked
//! against the error's line:column.

use std::path::PathBuf;

use consentry::config::{ConfigError, Source, line_column};
use consentry::snapshot::Snapshot;

const HEAD: &str = r#"[listen]
http = "127.0.0.1:0"

[[site]]
hosts = ["www.example.com", "example.com"]
origin = "http://127.0.0.1:3000"
policy = "default"
"#;

fn errors(text: &str) -> Vec<ConfigError> {
    let source = Source { path: PathBuf::from("conf/consentry.toml"), text: text.to_string() };
    match Snapshot::compile(&source, 1) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}

/// Asserts that `text` fails with exactly one error, located at the first
/// occurrence of `at` (after `after`, when the text repeats itself), whose
/// message contains `message`.
#[track_caller]
fn one_error(text: &str, at: &str, message: &str) {
    one_error_after(text, "", at, message);
}

#[track_caller]
fn one_error_after(text: &str, after: &str, at: &str, message: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}\n---\n{text}");
    let e = &errs[0];
    let start = text.find(after).expect("`after` is in the text");
    let offset = start + text[start..].find(at).expect("`at` is in the text");
    let (line, column) = line_column(text, offset);
    assert_eq!((e.line, e.column), (line, column), "wrong place for {e}\n---\n{text}");
    assert!(e.message.contains(message), "{:?} does not say {message:?}", e.message);
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("conf/consentry.toml:{line}:{column}: ")), "{shown}");
}

fn policy(body: &str) -> String {
    format!("{HEAD}\n[policy.default]\n{body}")
}

#[test]
fn a_valid_config_has_no_error() {
    assert!(errors(&policy("presets = [\"google-analytics\"]\n")).is_empty());
}

#[test]
fn unknown_keys_anywhere() {
    one_error(&format!("{HEAD}htpp = 1\n"), "htpp", "unknown field `htpp`");
    one_error(
        &policy("[[cookie]]\nname = \"x\"\ncategory = \"analytics\"\n"),
        "cookie]]",
        "unknown field `cookie`",
    );
    one_error(
        &policy("[[policy.default.cookie]]\nnmae = \"x\"\ncategory = \"analytics\"\n"),
        "nmae",
        "unknown field `nmae`",
    );
    one_error(&policy("[policy.default.consent]\nformt = \"tcf\"\n"), "formt", "unknown field `formt`");
    one_error(
        &policy("[policy.default.categories]\nanalytics = { descripton = \"x\" }\n"),
        "descripton",
        "unknown field `descripton`",
    );
    one_error(&format!("[presets]\ndirectory = \"p\"\n{HEAD}"), "directory", "unknown field `directory`");
}

#[test]
fn unknown_categories_are_named_with_the_declared_ones() {
    let declared = "(declared: necessary,functional,analytics,advertising)";
    one_error(
        &policy("[[policy.default.cookie]]\nname = \"_ga\"\ncategory = \"analitics\"\n"),
        "\"analitics\"",
        &format!("unknown category \"analitics\" {declared}"),
    );
    one_error(
        &policy("[[policy.default.resource]]\nmatch = \"x.com\"\ncategory = \"ads\"\n"),
        "\"ads\"",
        "unknown category \"ads\"",
    );
    one_error(
        &policy("[policy.default.consent]\ngpc_refuses = [\"advertising\", \"marketing\"]\n"),
        "\"marketing\"",
        "unknown category \"marketing\"",
    );
    one_error(
        &policy("[policy.default.consent]\nmap = { C0002 = \"statistics\" }\n"),
        "\"statistics\"",
        "unknown category \"statistics\"",
    );
    one_error(
        &policy("[policy.default.consent]\noutside_region = [\"all\"]\n"),
        "\"all\"",
        "unknown category \"all\"",
    );
    // A policy that declares its own categories: presets must fit them.
    one_error(
        &policy("presets = [\"meta-pixel\"]\n[policy.default.categories]\nanalytics = {}\n"),
        "\"meta-pixel\"",
        "preset \"meta-pixel\": <builtin>/config/presets/meta-pixel.toml:",
    );
}

#[test]
fn bad_patterns() {
    one_error(
        &policy("[[policy.default.cookie]]\nname = \"/(/\"\ncategory = \"analytics\"\n"),
        "\"/(/\"",
        "bad regex \"/(/\": unclosed group",
    );
    one_error(
        &policy("[[policy.default.cookie]]\nname = \"_ga_[\"\ncategory = \"analytics\"\n"),
        "\"_ga_[\"",
        "bad glob \"_ga_[\"",
    );
    one_error(
        &policy("[[policy.default.cookie]]\nname = \"\"\ncategory = \"analytics\"\n"),
        "\"\"\ncategory",
        "empty cookie name pattern",
    );
    one_error(&policy("[[policy.default.harden]]\nname = \"/[/\"\nsecure = true\n"), "\"/[/\"", "bad regex");
    one_error(
        &policy("[[policy.default.resource]]\nmatch = \"inline:\"\ncategory = \"analytics\"\n"),
        "\"inline:\"",
        "empty inline-script signature",
    );
    one_error(
        &policy("[[policy.default.resource]]\nmatch = \"https://bad host/x\"\ncategory = \"analytics\"\n"),
        "\"https://bad host/x\"",
        "bad resource match",
    );
}

#[test]
fn sites() {
    let two_sites = format!(
        "{HEAD}\n[[site]]\nhosts = [\"shop.example.com\", \"EXAMPLE.com\"]\norigin = \"http://127.0.0.1:3001\"\npolicy = \"default\"\n[policy.default]\n"
    );
    one_error(&two_sites, "\"EXAMPLE.com\"", "duplicate host \"example.com\": another site already has it");
    one_error(
        &format!("{}\n[policy.default]\n", HEAD.replace("http://127.0.0.1:3000", "ftp://127.0.0.1")),
        "\"ftp://127.0.0.1\"",
        "origin URL \"ftp://127.0.0.1\": scheme must be http or https",
    );
    one_error(
        &format!("{}\n[policy.default]\n", HEAD.replace("http://127.0.0.1:3000", "127.0.0.1:3000")),
        "\"127.0.0.1:3000\"",
        "needs http:// or https://",
    );
    one_error(&format!("{}\n[policy.other]\n", HEAD), "\"default\"", "unknown policy \"default\"");
    one_error(
        &format!("{}\n[policy.default]\n", HEAD.replace("\"www.example.com\", ", "\"www.exa mple.com\", ")),
        "\"www.exa mple.com\"",
        "bad host pattern",
    );
    one_error(
        &format!("{}\n[policy.default]\n", HEAD.replace("127.0.0.1:0", "localhost:http")),
        "\"localhost:http\"",
        "bad listen address \"localhost:http\" (expected IP:PORT)",
    );
}

#[test]
fn policy_settings() {
    one_error(
        &policy("mode = \"enforcing\"\n"),
        "\"enforcing\"",
        "mode must be \"enforce\" or \"report-only\"",
    );
    one_error(
        &policy("unknown_cookies = \"deny\"\n"),
        "\"deny\"",
        "unknown_cookies must be \"block\" or \"allow\"",
    );
    one_error(&policy("neutralise = \"hide\"\n"), "\"hide\"", "neutralise must be \"inert\" or \"remove\"");
    one_error(&policy("first_party = [\"https://cdn.example.com\"]\n"), "\"https://cdn", "bad host pattern");
    one_error(
        &policy("[policy.default.consent]\nformat = \"onetrst\"\n"),
        "\"onetrst\"",
        "unknown consent format \"onetrst\" (known: consentry, cookieconsent, klaro, cookiebot, onetrust, cookieyes, complianz, tcf)",
    );
    one_error(
        &policy("[policy.default.consent]\nhmac_key_env = \"CONSENTRY_TEST_SURELY_UNSET_VARIABLE\"\n"),
        "\"CONSENTRY_TEST_SURELY_UNSET_VARIABLE\"",
        "hmac_key_env names \"CONSENTRY_TEST_SURELY_UNSET_VARIABLE\", which is not set or empty",
    );
    one_error(
        &format!("[admin]\ntoken_env = \"CONSENTRY_TEST_SURELY_UNSET_TOKEN\"\n{HEAD}[policy.default]\n"),
        "\"CONSENTRY_TEST_SURELY_UNSET_TOKEN\"",
        "admin.token_env names",
    );
    one_error(
        &policy("[policy.default.categories]\nanalytics = { max_cookie_days = 0 }\n"),
        "{ max_cookie_days",
        "max_cookie_days must be at least 1",
    );
    one_error(&policy("extends = \"bsae\"\n[policy.base]\n"), "\"bsae\"", "extends unknown policy \"bsae\"");
    one_error(
        &policy("[[policy.default.harden]]\nname = \"sid\"\nsame_site = \"Loose\"\n"),
        "\"Loose\"",
        "same_site must be Strict, Lax or None",
    );
    one_error(&policy("[policy.default.csp]\nmode = \"on\"\n"), "\"on\"", "csp.mode must be");
}

#[test]
fn presets() {
    one_error(
        &policy("presets = [\"google-analytics\", \"hubspott\"]\n"),
        "\"hubspott\"",
        "unknown preset \"hubspott\" (did you mean \"hubspot\"? known: ",
    );
    one_error(
        &policy("presets = [\"no-such-thing-at-all\"]\n"),
        "\"no-such-thing-at-all\"",
        "unknown preset \"no-such-thing-at-all\" (known: ",
    );
    one_error(
        &format!("[presets]\ndir = \"surely/not/here\"\n{HEAD}[policy.default]\n"),
        "\"surely/not/here\"",
        "presets.dir \"conf/surely/not/here\" is not a readable directory",
    );
}

#[test]
fn duplicate_rules_in_one_table() {
    let text = policy(
        "[[policy.default.cookie]]\nname = \"lang\"\ncategory = \"functional\"\n[[policy.default.cookie]]\nname = \"lang\"\ncategory = \"analytics\"\n",
    );
    let first_line = line_column(&text, text.find("[[policy.default.cookie]]").unwrap()).0;
    one_error_after(
        &text,
        "category = \"functional\"",
        "\"lang\"",
        &format!("duplicate cookie rule \"lang\": already at line {first_line}"),
    );
    // Same name on different domains is two cookies, not a duplicate.
    let text = policy(
        "[[policy.default.cookie]]\nname = \"_cfuvid\"\ncategory = \"functional\"\ndomain = \".calendly.com\"\n[[policy.default.cookie]]\nname = \"_cfuvid\"\ncategory = \"functional\"\ndomain = \".hubspot.com\"\n",
    );
    assert!(errors(&text).is_empty());
    // `https://x.com` and `x.com` are the same resource rule.
    let text = policy(
        "[[policy.default.resource]]\nmatch = \"x.com\"\ncategory = \"analytics\"\n[[policy.default.resource]]\nmatch = \"https://x.com\"\ncategory = \"advertising\"\n",
    );
    one_error(&text, "\"https://x.com\"", "duplicate resource rule \"https://x.com\": already at line");
    // A child overriding its parent is what `extends` is for.
    let text = format!(
        "{HEAD}[policy.base]\n[[policy.base.cookie]]\nname = \"x\"\ncategory = \"analytics\"\n[policy.default]\nextends = \"base\"\n[[policy.default.cookie]]\nname = \"x\"\ncategory = \"functional\"\n"
    );
    assert!(errors(&text).is_empty());
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = policy(
        "mode = \"x\"\n[[policy.default.cookie]]\nname = \"/(/\"\ncategory = \"analytics\"\n[[policy.default.cookie]]\nname = \"a\"\ncategory = \"nope\"\n",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    // Sorted by position.
    assert!(errs.windows(2).all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)), "{errs:#?}");
}

#[test]
fn banner_needs_consentrys_own_cookie_and_known_languages() {
    let text =
        policy("[policy.default.consent]\nformat = \"onetrust\"\n[policy.default.banner]\nenabled = true\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].message.contains("built-in banner"), "{}", errs[0]);
    assert!(errs[0].line > 0, "{}", errs[0]);
    let text =
        policy("[policy.default.banner]\nenabled = true\n[policy.default.banner.texts.xx]\ntitle = \"?\"\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].message.contains("xx"), "{}", errs[0]);
}

#[test]
fn receipt_ip_settings_are_checked() {
    assert!(errors(&policy("[policy.default.receipts]\nip = \"full\"\n")).is_empty());
    assert!(errors(&policy("[policy.default.receipts]\nipv4_prefix = 16\nipv6_prefix = 32\n")).is_empty());
    one_error(&policy("[policy.default.receipts]\nip = \"partial\"\n"), "\"partial\"", "receipts.ip must be");
    one_error(
        &policy("[policy.default.receipts]\nipv4_prefix = 33\n"),
        "33",
        "receipts.ipv4_prefix must be 0 to 32",
    );
    one_error(&policy("[policy.default.receipts]\nipv6_prefix = 129\n"), "129", "0 to 128");
    one_error(&policy("[policy.default.receipts]\nip = \"none\"\nport = 1\n"), "port", "unknown field");
}
