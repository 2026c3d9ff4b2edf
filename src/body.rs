//! The body type that flows through the proxy, and small constructors.
//!
//! Every body, whether the origin's streamed response, a rewritten HTML
//! stream or a short error message, is boxed into [`Body`] so the pipeline
//! has one type. It is `Send` (it crosses tasks) but not `Sync`, which lets
//! the lol_html rewriter live inside it.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// A boxed error from any body or I/O layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The one body type of the pipeline.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}
