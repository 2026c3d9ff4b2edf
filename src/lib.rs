//! consentry: a reverse proxy that enforces cookie consent on the wire.
//!
//! Modules follow the request pipeline (see `../shared/design.md`), in order:
//!
//! | stage | module | job |
//! |---|---|---|
//! | 1 listen | [`listen`] | TCP/TLS accept, HTTP/1.1 + HTTP/2, limits, graceful drain |
//! | 1½ request sanity | [`request_sanity`] | refuse ambiguous framing (`chunked, chunked`...) and `Host`s |
//! | 2 route | [`route`] | `Host` → site |
//! | 3 snapshot | [`snapshot`] | one `Arc<Snapshot>` (sites + policies) per request |
//! | 4 consent | [`consent`] | consent cookie → granted category set |
//! | 5 request filter | [`request_filter`] | drop refused cookies from `Cookie` |
//! | 6 forward | [`forward`] | pooled client to the origin, hop-by-hop, `X-Forwarded-*`, upgrades; [`h1_pool`] for `http://` origins |
//! | 7 response headers | [`response_headers`] | `Set-Cookie` keep/drop/cap, sweep, `Vary`, CSP |
//! | 8 response body | [`response_body`] | streaming HTML rewrite, compression |
//! | 9 account | [`account`] | metrics, inventory, audit log |
//!
//! Helpers of stages 5 and 7: [`cookie`] (request `Cookie` pairs),
//! [`set_cookie`] (the `Set-Cookie` parser and editor), [`sweep`] (deleting
//! withdrawn cookies in the browser).
//!
//! [`proxy`] is the glue that calls the stages in that order for each
//! request. Around it: [`config`] (the file as written) and [`policy`] (the
//! compiled rules, built-in [`presets`]), [`reload`] (hot reload, SIGHUP),
//! [`explain`] (what the policy decides for one request, and why),
//! [`error`] (the one place errors become status codes), [`server`] (start and stop the whole thing, as `consentry run` and the
//! tests do).
//!
//! Smaller pieces: [`tls`] (certificates by SNI), [`http_conn`] (HTTP/1 or
//! HTTP/2 by the first bytes), [`head_timeout`] (408 for an HTTP/1 head
//! that does not arrive in time), [`h2_guard`] (HTTP/2 flood
//! guard), [`h2_request`] (malformed
//! HTTP/2 requests reset, bodies held to their content-length), [`hop`] (hop-by-hop
//! headers), [`forwarded`] (`X-Forwarded-*`, `Via`, request ids),
//! [`access_log`], [`shutdown`] (graceful drain), [`demo`] (the sample
//! legacy site behind `consentry demo`), [`set_cookie`] (the `Set-Cookie`
//! parser, as browsers parse), [`sweep`] (deletions for withdrawn cookies),
//! [`html`] (the streaming page rewriter behind stage 8), [`codec`]
//! (streaming decode/re-encode of compressed bodies), [`csp`] (the
//! Content-Security-Policy built from the granted categories).
//!
//! Stage 9 feeds [`metrics`], [`inventory`] and [`audit`]; [`declaration`]
//! turns rules and inventory into the published cookie table; [`admin`]
//! serves them.
//!
//! The built-in consent loop: [`banner`] (the dialog injected into pages and
//! its assets), [`consent_endpoint`] (`/.consentry/`: records a choice, sets
//! the consent cookie), [`receipts`] (proof of consent on disk).

pub mod access_log;
pub mod account;
pub mod admin;
pub mod audit;
pub mod banner;
pub mod body;
pub mod category;
pub mod codec;
pub mod config;
pub mod consent;
pub mod consent_endpoint;
pub mod cookie;
pub mod csp;
pub mod decision;
pub mod declaration;
pub mod demo;
pub mod error;
pub mod explain;
pub mod forward;
pub mod forwarded;
pub mod h1_pool;
pub mod h2_guard;
pub mod h2_request;
pub mod head_timeout;
pub mod hop;
pub mod html;
pub mod http_conn;
pub mod inventory;
pub mod listen;
pub mod metrics;
pub mod policy;
pub mod presets;
pub mod proxy;
pub mod receipts;
pub mod reload;
pub mod request_filter;
pub mod request_sanity;
pub mod response_body;
pub mod response_headers;
pub mod route;
pub mod server;
pub mod set_cookie;
pub mod shutdown;
pub mod snapshot;
pub mod sweep;
pub mod tls;
