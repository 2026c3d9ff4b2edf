//! consentry: a reverse proxy that enforces cookie consent on the wire.
//!
//! Modules follow the request pipeline (see `../shared/design.md`), in order:
//!
//! | stage | module | job |
//! |---|---|---|
//! | 1 listen | [`listen`] | TCP/TLS accept, HTTP/1.1 + HTTP/2, limits, graceful drain |
//! | 2 route | [`route`] | `Host` → site |
//! | 3 snapshot | [`snapshot`] | one `Arc<Snapshot>` (sites + policies) per request |
//! | 4 consent | [`consent`] | consent cookie → granted category set |
//! | 5 request filter | [`request_filter`] | drop refused cookies from `Cookie` |
//! | 6 forward | [`forward`] | pooled client to the origin, hop-by-hop, `X-Forwarded-*`, upgrades |
//! | 7 response headers | [`response_headers`] | `Set-Cookie` keep/drop/cap, sweep, `Vary`, CSP |
//! | 8 response body | [`response_body`] | streaming HTML rewrite, compression |
//! | 9 account | [`account`] | metrics, inventory, audit log |
//!
//! [`proxy`] is the glue that calls the stages in that order for each
//! request. Around it: [`config`] (the file as written) and [`policy`] (the
//! compiled rules), [`reload`] (hot reload), [`admin`] (the admin API),
//! [`error`] (the one place errors become status codes).

pub mod account;
pub mod body;
pub mod category;
pub mod codec;
pub mod config;
pub mod consent;
pub mod cookie;
pub mod csp;
pub mod decision;
pub mod html;
pub mod policy;
pub mod presets;
pub mod request_filter;
pub mod response_body;
pub mod response_headers;
pub mod route;
pub mod snapshot;
