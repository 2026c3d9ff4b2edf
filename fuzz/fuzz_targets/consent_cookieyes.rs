//! The `cookieyes` consent reader on arbitrary cookie values: no panic, and a
//! value that does not parse grants nothing beyond `necessary` (see
//! `consentry_fuzz::check_consent` for every invariant).
#![no_main]

use consentry::consent::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| consentry_fuzz::fuzz_consent(Format::CookieYes, data));
