//! Complianz: one cookie per category plus the policy id.
//!
//! `cmplz_policy_id=14; cmplz_marketing=allow; cmplz_statistics=allow;
//! cmplz_preferences=allow; cmplz_functional=allow; cmplz_banner-status=dismissed`
//!
//! The configured consent cookie is the policy-id cookie (`cmplz_policy_id`
//! by default); its prefix (`cmplz_`, or a site's own on WordPress
//! multisite) names the category cookies. The reading: each of
//! `functional`, `preferences`, `statistics`, `statistics-anonymous` and
//! `marketing` whose cookie says `allow`, and the policy id as the revision
//! (Complianz increments it when the site's cookie policy changes).
//!
//! No policy-id cookie means the visitor has not answered. A category
//! cookie that is neither `allow` nor `deny`, a policy id that is not a
//! number, or two cookies of one name with different values is invalid; an
//! absent category cookie is `deny`.

use super::decode::{canonical_u64, single};
use super::{Reading, Refusal};
use crate::cookie::CookieJar;

/// The category cookies Complianz writes, by suffix.
pub const CATEGORIES: [&str; 5] =
    ["functional", "preferences", "statistics", "statistics-anonymous", "marketing"];

/// The prefix of the category cookies, from the policy-id cookie's name.
pub fn prefix(policy_cookie: &str) -> &str {
    policy_cookie.strip_suffix("policy_id").unwrap_or("cmplz_")
}

/// Reads Complianz consent from the jar; `policy_cookie` is the configured
/// consent cookie (`cmplz_policy_id`).
pub fn read(jar: &CookieJar<'_>, policy_cookie: &str) -> Result<Reading, Refusal> {
    let policy_id = match single(jar, policy_cookie)? {
        None | Some("") => return Err(Refusal::missing("complianz: no policy id cookie")),
        Some(id) => canonical_u64(id).ok_or(Refusal::invalid("complianz: policy id is not a number"))?,
    };
    let prefix = prefix(policy_cookie);
    let mut granted = Vec::new();
    let mut name = String::with_capacity(prefix.len() + 24);
    for category in CATEGORIES {
        name.clear();
        name.push_str(prefix);
        name.push_str(category);
        match single(jar, &name)? {
            Some("allow") => granted.push(category.to_string()),
            Some("deny") | None => {}
            Some(_) => return Err(Refusal::invalid("complianz: category cookie is not allow or deny")),
        }
    }
    Ok(Reading { granted, revision: Some(policy_id), ..Reading::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::State;

    // Accept all: daily-adventures.cz, a curl command in a public GitHub
    // repository (corpus file id 24509490725).
    const ACCEPT: &str = "cmplz_consented_services=; cmplz_policy_id=14; cmplz_marketing=allow; cmplz_statistics=allow; cmplz_preferences=allow; cmplz_functional=allow; cmplz_banner-status=dismissed";
    // Partial (statistics only, others absent): investetf.it request headers
    // in a public GitHub repository (corpus file id 3348857545).
    const PARTIAL: &str = "cmplz_policy_id=20; cmplz_statistics=allow; _gcl_au=1.1.395107726.1670580408; cmplz_banner-status=dismissed; PHPSESSID=cd739f35ec715fbeecf2fe5687c8ef77";
    // Reject (closing the banner with X): recorded in a public project log
    // (corpus file id 55018947125).
    const REJECT: &str = "cmplz_banner-status=dismissed; cmplz_functional=allow; cmplz_statistics=deny; cmplz_marketing=deny; cmplz_preferences=deny; cmplz_policy_id=35";

    fn read_str(header: &str) -> Result<Reading, Refusal> {
        read(&CookieJar::parse(header), "cmplz_policy_id")
    }

    #[test]
    fn real_values() {
        let r = read_str(ACCEPT).unwrap();
        assert_eq!(r.granted, vec!["functional", "preferences", "statistics", "marketing"]);
        assert_eq!(r.revision, Some(14));
        let r = read_str(PARTIAL).unwrap();
        assert_eq!((r.granted, r.revision), (vec!["statistics".to_string()], Some(20)));
        let r = read_str(REJECT).unwrap();
        assert_eq!((r.granted, r.revision), (vec!["functional".to_string()], Some(35)));
    }

    #[test]
    fn custom_prefix() {
        assert_eq!(prefix("cmplz_policy_id"), "cmplz_");
        assert_eq!(prefix("cmplz_2_policy_id"), "cmplz_2_");
        assert_eq!(prefix("odd"), "cmplz_");
        let jar = CookieJar::parse("cmplz_2_policy_id=3; cmplz_2_marketing=allow; cmplz_statistics=allow");
        let r = read(&jar, "cmplz_2_policy_id").unwrap();
        assert_eq!(r.granted, vec!["marketing"], "other sites' cookies are not read");
    }

    #[test]
    fn refused() {
        assert_eq!(read_str("cmplz_statistics=allow").unwrap_err().state, State::Missing);
        assert_eq!(read_str("cmplz_policy_id=; cmplz_statistics=allow").unwrap_err().state, State::Missing);
        for bad in [
            "cmplz_policy_id=x; cmplz_statistics=allow",
            "cmplz_policy_id=-1",
            "cmplz_policy_id=014",
            "cmplz_policy_id=1; cmplz_statistics=yes",
            "cmplz_policy_id=1; cmplz_statistics=Allow",
            "cmplz_policy_id=1; cmplz_statistics=allow; cmplz_statistics=deny",
            "cmplz_policy_id=1; cmplz_policy_id=2",
        ] {
            assert_eq!(read_str(bad).unwrap_err().state, State::Invalid, "{bad:?}");
        }
        // The same cookie twice with one value (two paths) is fine.
        assert!(read_str("cmplz_policy_id=1; cmplz_marketing=allow; cmplz_marketing=allow").is_ok());
    }
}
