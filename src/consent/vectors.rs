//! Real-world cookie values, one accept-all (or fullest) per format, for
//! the end-to-end and property tests of this stage. Where each comes from
//! is cited beside the same value in the adapter's own tests.

/// `cc_cookie`, v3: necessary + analytics, consent 2025-04-16T01:32:51.025Z,
/// expires 1760491971026 ms.
pub const COOKIECONSENT: &str = "%7B%22categories%22%3A%5B%22necessary%22%2C%22analytics%22%5D%2C%22revision%22%3A0%2C%22data%22%3Anull%2C%22consentTimestamp%22%3A%222025-04-16T01%3A32%3A51.025Z%22%2C%22consentId%22%3A%2224ef8464-ff47-4934-8ba7-5ae0c50c8ff8%22%2C%22services%22%3A%7B%22necessary%22%3A%5B%5D%2C%22analytics%22%3A%5B%5D%7D%2C%22languageCode%22%3A%22en%22%2C%22lastConsentTimestamp%22%3A%222025-04-16T01%3A32%3A51.025Z%22%2C%22expirationTime%22%3A1760491971026%7D";

/// `klaro`: every service accepted (www.ilb.de).
pub const KLARO: &str = "%7B%22klaro%22%3Atrue%2C%22apache%22%3Atrue%2C%22friendlyCaptcha%22%3Atrue%2C%22googleAnalytics%22%3Atrue%2C%22youtube%22%3Atrue%2C%22twitter%22%3Atrue%2C%22googleMaps%22%3Atrue%7D";

/// `CookieConsent`: all accepted, utc 1726058380450, ver 1 (drmax.sk).
pub const COOKIEBOT: &str = "{stamp:%27O8sg2Z8T5kWdRPjoxOG20WioVeH3Eb7Q7Bxauy/Aak8ikxT/6pNcHQ==%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:true%2Cmarketing:true%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1726058380450%2Cregion:%27sk%27}";

/// `OptanonConsent`: C0001–C0004 accepted, 2025-07-05T17:33:34Z (workana.com).
pub const ONETRUST: &str = "isGpcEnabled=0&datestamp=Sat+Jul+05+2025+13%3A33%3A34+GMT-0400+(Venezuela+Time)&version=6.34.0&isIABGlobal=false&hosts=&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A1%2CC0004%3A1&geolocation=VE%3BN&AwaitingReconsent=false";

/// `cookieyes-consent`: all accepted.
pub const COOKIEYES: &str = "consentid:bzFQbnc3TUdrbTBTcWt0aG5lR2xsUXA4NE5IMFFEOWg,consent:yes,action:yes,necessary:yes,functional:yes,analytics:yes,performance:yes,advertisement:yes,other:yes";

/// Complianz cookies (a whole `Cookie` header): all accepted, policy 14.
pub const COMPLIANZ: &str = "cmplz_consented_services=; cmplz_policy_id=14; cmplz_marketing=allow; cmplz_statistics=allow; cmplz_preferences=allow; cmplz_functional=allow; cmplz_banner-status=dismissed";

/// `euconsent-v2`: purposes 1–10, LastUpdated 2022-11-04T08:44:48.8Z.
pub const TCF: &str = "CPh8CoIPh8CoINYAAAENCZCAAP_AAAAAAAAAAAAAAAAA";
