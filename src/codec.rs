//! Streaming decode and re-encode of HTTP content codings (gzip, deflate,
//! br, zstd) for the body stage, plus `Accept-Encoding` narrowing.
//!
//! The HTML rewriter works on decoded bytes, so a compressed page is decoded
//! frame by frame, rewritten, and re-encoded in the *same* coding, flushing
//! the encoder after every frame so that the first bytes reach the visitor
//! before the origin has finished.
//!
//! Two properties matter more than ratio here:
//!
//! - **Bounded output per step.** A zip bomb turns a few kilobytes into
//!   gigabytes. [`Decoder::decode`] therefore produces at most about
//!   `max_out` decoded bytes per call and reports how much input it consumed,
//!   so the caller can interleave decoding with rewriting and yield to the
//!   executor. flate2's and zstd's write-side decoders already return after
//!   one internal buffer (32 KiB / 128 KiB) of output, so they are driven in
//!   a loop. brotli's write-side `DecompressorWriter` writes *all* output of
//!   a `write` call before returning, so brotli uses the crate's push API
//!   (`BrotliDecompressStream`) with a fixed output buffer instead.
//! - **Same coding out as in.** The response keeps its `Content-Encoding`;
//!   deflate keeps its framing (zlib-wrapped or raw, sniffed from the first
//!   two bytes, as browsers accept both). Multi-member gzip is decoded whole
//!   and re-encoded as one member; bytes after a member that do not start
//!   another are ignored, as browsers ignore them.
//!
//! Compression levels favour speed, as for any on-the-fly compression:
//! gzip/deflate level 5, brotli quality 5 (window 2^22), zstd level 3.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::{DeflateDecoder, DeflateEncoder, GzDecoder, GzEncoder, ZlibDecoder, ZlibEncoder};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
use http::{HeaderMap, HeaderValue};

/// A content coding consentry can decode and re-encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No coding.
    Identity,
    /// `gzip` (and `x-gzip`), possibly several members.
    Gzip,
    /// `deflate`: zlib-wrapped or raw.
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl Coding {
    /// The token as sent in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// The coding for a token (case-insensitive), if supported.
    pub fn from_token(token: &str) -> Option<Coding> {
        let token = token.trim();
        [
            ("identity", Coding::Identity),
            ("gzip", Coding::Gzip),
            ("x-gzip", Coding::Gzip),
            ("deflate", Coding::Deflate),
            ("br", Coding::Brotli),
            ("zstd", Coding::Zstd),
        ]
        .into_iter()
        .find(|(name, _)| token.eq_ignore_ascii_case(name))
        .map(|(_, coding)| coding)
    }
}

/// Why a response's content coding cannot be rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// A coding consentry does not decode (`compress`, `dcb`...).
    Unknown(String),
    /// More than one coding applied (`gzip, br`).
    Stacked,
}

/// The response's content coding, from every `Content-Encoding` field.
/// `identity` tokens and empty members are ignored.
pub fn content_coding(headers: &HeaderMap) -> Result<Coding, Unsupported> {
    let mut found: Option<Coding> = None;
    for value in headers.get_all(CONTENT_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Err(Unsupported::Unknown(String::from_utf8_lossy(value.as_bytes()).into_owned()));
        };
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match Coding::from_token(token) {
                Some(Coding::Identity) => {}
                Some(coding) if found.is_none() => found = Some(coding),
                Some(_) => return Err(Unsupported::Stacked),
                None => return Err(Unsupported::Unknown(token.to_ascii_lowercase())),
            }
        }
    }
    Ok(found.unwrap_or(Coding::Identity))
}

/// Rewrites the request's `Accept-Encoding` so that it lists only codings
/// consentry can decode, keeping their q-values (and `identity`). `*` with a
/// non-zero q-value is replaced by the supported codings not listed
/// explicitly; `*;q=0` is kept (it forbids the rest). If nothing acceptable
/// remains, the field becomes `identity`. No field stays no field (identity
/// is then acceptable anyway).
pub fn narrow_accept_encoding(headers: &mut HeaderMap) {
    if !headers.contains_key(ACCEPT_ENCODING) {
        return;
    }
    let mut kept: Vec<String> = Vec::new();
    let mut named: Vec<Coding> = Vec::new();
    let mut star: Option<String> = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for member in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let (token, params) = match member.find(';') {
                Some(i) => (member[..i].trim(), member[i..].trim()),
                None => (member, ""),
            };
            if token == "*" {
                star = Some(params.to_string());
                continue;
            }
            if let Some(coding) = Coding::from_token(token) {
                if !named.contains(&coding) || coding == Coding::Identity {
                    named.push(coding);
                }
                kept.push(member.to_string());
            }
        }
    }
    if let Some(params) = star {
        if q_is_zero(&params) {
            kept.push(format!("*{params}"));
        } else {
            for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
                if !named.contains(&coding) {
                    kept.push(format!("{}{params}", coding.name()));
                }
            }
        }
    }
    let value = if kept.is_empty() { "identity".to_string() } else { kept.join(", ") };
    headers.remove(ACCEPT_ENCODING);
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(ACCEPT_ENCODING, value);
    } else {
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
}

/// Whether `;q=0` (or `0.0`, `0.000`) is among the parameters.
fn q_is_zero(params: &str) -> bool {
    params.split(';').map(str::trim).any(|p| {
        p.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("q") && v.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
        })
    })
}

/// Deflate framing, sniffed from the first two bytes of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeflateFraming {
    /// RFC 1950 zlib wrapper (what the RFC calls `deflate`).
    Zlib,
    /// Raw RFC 1951 data (what some servers send anyway).
    Raw,
}

/// Whether two bytes open a zlib stream: method 8, window ≤ 32 KiB, header
/// checksum a multiple of 31. A raw deflate block header almost never does.
fn is_zlib_header(b0: u8, b1: u8) -> bool {
    b0 & 0x0f == 8 && b0 >> 4 <= 7 && (u16::from(b0) << 8 | u16::from(b1)) % 31 == 0
}

/// Size of the brotli output buffer: one step's worth of decoded bytes.
const BROTLI_OUT: usize = 32 * 1024;

struct BrotliDecoder {
    state: brotli::BrotliState<
        brotli::enc::StandardAlloc,
        brotli::enc::StandardAlloc,
        brotli::enc::StandardAlloc,
    >,
    buf: Box<[u8]>,
    done: bool,
    /// The last step stopped because the output buffer was full.
    pending: bool,
}

enum DecoderState {
    /// The current gzip member (a new one starts at each gzip magic).
    Gzip(GzDecoder<Vec<u8>>),
    /// Deflate before the two bytes that tell zlib from raw.
    DeflateSniff(Vec<u8>),
    Zlib(ZlibDecoder<Vec<u8>>),
    RawDeflate(DeflateDecoder<Vec<u8>>),
    Brotli(Box<BrotliDecoder>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

/// A streaming decoder for one response body.
pub struct Decoder {
    state: DecoderState,
    /// Input bytes ignored after the end of the compressed stream.
    trailing: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("trailing", &self.trailing).finish_non_exhaustive()
    }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt {what} stream"))
}

impl Decoder {
    /// A decoder for `coding`; `None` for identity.
    pub fn new(coding: Coding) -> io::Result<Option<Decoder>> {
        let state = match coding {
            Coding::Identity => return Ok(None),
            Coding::Gzip => DecoderState::Gzip(GzDecoder::new(Vec::new())),
            Coding::Deflate => DecoderState::DeflateSniff(Vec::with_capacity(2)),
            Coding::Brotli => DecoderState::Brotli(Box::new(BrotliDecoder {
                state: brotli::BrotliState::new(
                    brotli::enc::StandardAlloc::default(),
                    brotli::enc::StandardAlloc::default(),
                    brotli::enc::StandardAlloc::default(),
                ),
                buf: vec![0; BROTLI_OUT].into_boxed_slice(),
                done: false,
                pending: false,
            })),
            Coding::Zstd => DecoderState::Zstd(zstd::stream::write::Decoder::new(Vec::new())?),
        };
        Ok(Some(Decoder { state, trailing: 0 }))
    }

    /// The deflate framing, once known.
    pub fn deflate_framing(&self) -> Option<DeflateFraming> {
        match self.state {
            DecoderState::Zlib(_) => Some(DeflateFraming::Zlib),
            DecoderState::RawDeflate(_) => Some(DeflateFraming::Raw),
            _ => None,
        }
    }

    /// Whether decoded output is waiting inside the decoder (brotli can
    /// hold more than one step's worth for input it already consumed).
    pub fn has_pending(&self) -> bool {
        matches!(&self.state, DecoderState::Brotli(b) if b.pending)
    }

    /// Input bytes seen after the end of the compressed stream (ignored, as
    /// browsers do).
    pub fn trailing(&self) -> u64 {
        self.trailing
    }

    /// Decodes a prefix of `input`, appending the decoded bytes to `out`,
    /// and returns how many input bytes were consumed. Stops once about
    /// `max_out` bytes were appended (one internal buffer more at most), so
    /// a caller can bound the work of one step; call again with the rest.
    /// Call again while it returns less than `input.len()` or
    /// [`Decoder::has_pending`] is true (then with the remaining, possibly
    /// empty, input).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, max_out: usize) -> io::Result<usize> {
        let start_len = out.len();
        let mut pos = 0;
        if let DecoderState::DeflateSniff(head) = &mut self.state {
            let need = 2 - head.len();
            let take = need.min(input.len());
            head.extend_from_slice(&input[..take]);
            if head.len() < 2 {
                return Ok(input.len());
            }
            let head = std::mem::take(head);
            self.state = if is_zlib_header(head[0], head[1]) {
                DecoderState::Zlib(ZlibDecoder::new(Vec::new()))
            } else {
                DecoderState::RawDeflate(DeflateDecoder::new(Vec::new()))
            };
            // Feed the sniffed bytes; they never produce much output.
            self.write_all_small(&head, out)?;
            pos = take;
        }
        loop {
            if out.len() - start_len >= max_out {
                break;
            }
            let rest = &input[pos..];
            if rest.is_empty() && !self.has_pending() {
                break;
            }
            let n = match &mut self.state {
                DecoderState::Gzip(w) => gzip_step(w, rest, out)?,
                DecoderState::Zlib(w) => step_writer(w, rest, out, "deflate")?,
                DecoderState::RawDeflate(w) => step_writer(w, rest, out, "deflate")?,
                DecoderState::Zstd(w) => step_writer(w, rest, out, "zstd")?,
                DecoderState::Brotli(b) => brotli_step(b, rest, out)?,
                DecoderState::DeflateSniff(_) => rest.len(),
            };
            if n == 0 && !rest.is_empty() && !self.has_pending() {
                // The stream ended; what follows is trailing garbage.
                self.trailing += rest.len() as u64;
                pos = input.len();
                break;
            }
            pos += n;
        }
        self.drain(out)?;
        Ok(pos)
    }

    /// Feeds bytes known to decode to little (the two sniffed bytes).
    fn write_all_small(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.decode(rest, out, usize::MAX)?;
            if n == 0 {
                break;
            }
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Moves every decoded byte the decoder holds for the input so far to `out`.
    fn drain(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match &mut self.state {
            DecoderState::Gzip(w) => flush_writer(w, out, "gzip"),
            DecoderState::Zlib(w) => flush_writer(w, out, "deflate"),
            DecoderState::RawDeflate(w) => flush_writer(w, out, "deflate"),
            DecoderState::Zstd(w) => flush_writer(w, out, "zstd"),
            DecoderState::Brotli(_) | DecoderState::DeflateSniff(_) => Ok(()),
        }
    }

    /// Ends the stream: appends what is left. A stream cut short by the
    /// origin is not an error here (the browser would show what arrived);
    /// a corrupt one is.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match &mut self.state {
            DecoderState::DeflateSniff(head) => {
                // One byte of deflate: nothing decodable.
                self.trailing += head.len() as u64;
                Ok(())
            }
            DecoderState::Brotli(b) => {
                // Whatever is decodable from the input so far; a truncated
                // stream simply ends here.
                while b.pending {
                    brotli_step(b, &[], out)?;
                }
                Ok(())
            }
            _ => self.drain(out),
        }
    }
}

/// One `write` on a flate2/zstd write-side decoder: consumes some input and
/// leaves at most one internal buffer of output in the inner `Vec`.
fn step_writer<W: Write + InnerVec>(
    w: &mut W,
    input: &[u8],
    out: &mut Vec<u8>,
    what: &str,
) -> io::Result<usize> {
    let n = w.write(input).map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
    out.append(w.inner_vec());
    Ok(n)
}

/// One step of gzip: a member, then either another member (it starts
/// with the gzip magic `1f 8b`) or trailing garbage, which is ignored as
/// gzip(1) and browsers ignore it (returns 0 for it, like the other
/// decoders at their stream's end). Garbage that starts like a member is
/// an error.
fn gzip_step(w: &mut GzDecoder<Vec<u8>>, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
    let n = step_writer(w, input, out, "gzip")?;
    if n > 0 || input.is_empty() {
        return Ok(n);
    }
    // The member ended: its CRC and length must match.
    w.try_finish().map_err(|_| corrupt("gzip"))?;
    out.append(w.get_mut());
    if !matches!(input, [0x1f, 0x8b, ..] | [0x1f]) {
        return Ok(0);
    }
    let inner = std::mem::take(w.get_mut());
    *w = GzDecoder::new(inner);
    step_writer(w, input, out, "gzip")
}

fn flush_writer<W: Write + InnerVec>(w: &mut W, out: &mut Vec<u8>, what: &str) -> io::Result<()> {
    w.flush().map_err(|_| corrupt(what))?;
    out.append(w.inner_vec());
    Ok(())
}

/// Access to a write-side decoder's inner `Vec<u8>`.
trait InnerVec {
    fn inner_vec(&mut self) -> &mut Vec<u8>;
}

impl InnerVec for GzDecoder<Vec<u8>> {
    fn inner_vec(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}
impl InnerVec for ZlibDecoder<Vec<u8>> {
    fn inner_vec(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}
impl InnerVec for DeflateDecoder<Vec<u8>> {
    fn inner_vec(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}
impl InnerVec for zstd::stream::write::Decoder<'static, Vec<u8>> {
    fn inner_vec(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
}

/// One step of brotli: decodes into the fixed buffer until it is full or
/// the input is used up. Returns input consumed; 0 with non-empty input
/// means the stream had already ended.
fn brotli_step(b: &mut BrotliDecoder, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
    if b.done {
        return Ok(0);
    }
    let mut available_in = input.len();
    let mut input_offset = 0;
    let mut available_out = b.buf.len();
    let mut output_offset = 0;
    let mut total_out = 0;
    let result = brotli::BrotliDecompressStream(
        &mut available_in,
        &mut input_offset,
        input,
        &mut available_out,
        &mut output_offset,
        &mut b.buf,
        &mut total_out,
        &mut b.state,
    );
    out.extend_from_slice(&b.buf[..output_offset]);
    b.pending = false;
    match result {
        brotli::BrotliResult::ResultSuccess => {
            b.done = true;
            // Report at least one byte consumed so the caller moves on; the
            // rest, if any, is trailing.
            Ok(input_offset.max(usize::from(!input.is_empty())))
        }
        brotli::BrotliResult::NeedsMoreInput => Ok(input_offset),
        brotli::BrotliResult::NeedsMoreOutput => {
            b.pending = true;
            Ok(input_offset)
        }
        brotli::BrotliResult::ResultFailure => Err(corrupt("br")),
    }
}

enum EncoderState {
    Gzip(GzEncoder<Vec<u8>>),
    Zlib(ZlibEncoder<Vec<u8>>),
    RawDeflate(DeflateEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// A streaming encoder, flushed after every frame.
pub struct Encoder {
    state: EncoderState,
    dirty: bool,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("dirty", &self.dirty).finish_non_exhaustive()
    }
}

impl Encoder {
    /// An encoder for `coding` (deflate with the given framing); `None` for
    /// identity.
    pub fn new(coding: Coding, framing: DeflateFraming) -> io::Result<Option<Encoder>> {
        let level = Compression::new(5);
        let state = match coding {
            Coding::Identity => return Ok(None),
            Coding::Gzip => EncoderState::Gzip(GzEncoder::new(Vec::new(), level)),
            Coding::Deflate => match framing {
                DeflateFraming::Zlib => EncoderState::Zlib(ZlibEncoder::new(Vec::new(), level)),
                DeflateFraming::Raw => EncoderState::RawDeflate(DeflateEncoder::new(Vec::new(), level)),
            },
            Coding::Brotli => {
                EncoderState::Brotli(Box::new(brotli::CompressorWriter::new(Vec::new(), 16 * 1024, 5, 22)))
            }
            Coding::Zstd => EncoderState::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3)?),
        };
        Ok(Some(Encoder { state, dirty: false }))
    }

    /// Compresses `data` (output is collected by [`Encoder::flush`]).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.dirty = true;
        match &mut self.state {
            EncoderState::Gzip(w) => w.write_all(data),
            EncoderState::Zlib(w) => w.write_all(data),
            EncoderState::RawDeflate(w) => w.write_all(data),
            EncoderState::Brotli(w) => w.write_all(data),
            EncoderState::Zstd(w) => w.write_all(data),
        }
    }

    /// Flushes (so everything written so far is decodable by the client)
    /// and appends the compressed bytes to `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if self.dirty {
            self.dirty = false;
            match &mut self.state {
                EncoderState::Gzip(w) => w.flush()?,
                EncoderState::Zlib(w) => w.flush()?,
                EncoderState::RawDeflate(w) => w.flush()?,
                EncoderState::Brotli(w) => w.flush()?,
                EncoderState::Zstd(w) => w.flush()?,
            }
        }
        let inner = match &mut self.state {
            EncoderState::Gzip(w) => w.get_mut(),
            EncoderState::Zlib(w) => w.get_mut(),
            EncoderState::RawDeflate(w) => w.get_mut(),
            EncoderState::Brotli(w) => w.get_mut(),
            EncoderState::Zstd(w) => w.get_mut(),
        };
        out.append(inner);
        Ok(())
    }

    /// Ends the stream, appending the last compressed bytes and trailer.
    pub fn finish(self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut rest = match self.state {
            EncoderState::Gzip(w) => w.finish()?,
            EncoderState::Zlib(w) => w.finish()?,
            EncoderState::RawDeflate(w) => w.finish()?,
            EncoderState::Brotli(w) => w.into_inner(),
            EncoderState::Zstd(w) => w.finish()?,
        };
        out.append(&mut rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut x: u32 = 7;
        while v.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            v.extend_from_slice(format!("<p class=c{}>word {} </p>\n", x % 13, x % 1000).as_bytes());
        }
        v.truncate(len);
        v
    }

    fn encode_all(coding: Coding, framing: DeflateFraming, data: &[u8], frame: usize) -> Vec<u8> {
        let mut enc = Encoder::new(coding, framing).unwrap().unwrap();
        let mut out = Vec::new();
        for chunk in data.chunks(frame) {
            enc.write(chunk).unwrap();
            enc.flush(&mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        out
    }

    fn decode_all(coding: Coding, data: &[u8], frame: usize, max_out: usize) -> Vec<u8> {
        let mut dec = Decoder::new(coding).unwrap().unwrap();
        let mut out = Vec::new();
        for chunk in data.chunks(frame) {
            let mut rest = chunk;
            while !rest.is_empty() || dec.has_pending() {
                let before = out.len();
                let n = dec.decode(rest, &mut out, max_out).unwrap();
                assert!(out.len() - before <= max_out + 256 * 1024, "step produced too much");
                rest = &rest[n..];
            }
        }
        dec.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_every_coding_at_several_frame_sizes() {
        let data = sample(300_000);
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            for framing in [DeflateFraming::Zlib, DeflateFraming::Raw] {
                let encoded = encode_all(coding, framing, &data, 16 * 1024);
                for frame in [1, 7, 4096, usize::MAX] {
                    if frame == 1 && encoded.len() > 40_000 {
                        // 1-byte frames on the whole stream are slow in debug;
                        // a prefix exercises the same paths.
                        let part = decode_all_prefix(coding, &encoded[..20_000]);
                        assert!(data.starts_with(&part), "{coding:?} 1-byte prefix");
                        continue;
                    }
                    let decoded = decode_all(coding, &encoded, frame, 64 * 1024);
                    assert_eq!(decoded.len(), data.len(), "{coding:?} {framing:?} frame {frame}");
                    assert!(decoded == data, "{coding:?} {framing:?} frame {frame}");
                }
            }
        }
    }

    fn decode_all_prefix(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut dec = Decoder::new(coding).unwrap().unwrap();
        let mut out = Vec::new();
        for b in data.chunks(1) {
            let mut rest = b;
            while !rest.is_empty() || dec.has_pending() {
                let n = dec.decode(rest, &mut out, 1 << 20).unwrap();
                rest = &rest[n..];
            }
        }
        out
    }

    #[test]
    fn each_flush_makes_the_prefix_decodable() {
        // What the visitor's browser relies on for early rendering.
        let data = sample(50_000);
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            let mut enc = Encoder::new(coding, DeflateFraming::Zlib).unwrap().unwrap();
            let mut dec = Decoder::new(coding).unwrap().unwrap();
            let mut sent = Vec::new();
            let mut got = Vec::new();
            for chunk in data.chunks(10_000) {
                enc.write(chunk).unwrap();
                let mut frame = Vec::new();
                enc.flush(&mut frame).unwrap();
                sent.extend_from_slice(chunk);
                let mut rest = &frame[..];
                while !rest.is_empty() || dec.has_pending() {
                    let n = dec.decode(rest, &mut got, usize::MAX).unwrap();
                    rest = &rest[n..];
                }
                assert_eq!(got, sent, "{coding:?}: flushed frame not decodable on its own");
            }
        }
    }

    #[test]
    fn multi_member_gzip_decodes_every_member() {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for part in ["<html><head>", "<title>x</title></head>", "<body>tail</body></html>"] {
            let mut e = GzEncoder::new(Vec::new(), Compression::default());
            e.write_all(part.as_bytes()).unwrap();
            stream.extend_from_slice(&e.finish().unwrap());
            expected.extend_from_slice(part.as_bytes());
        }
        for frame in [1, 5, 64, usize::MAX] {
            assert_eq!(decode_all(Coding::Gzip, &stream, frame, 1024), expected, "frame {frame}");
        }
    }

    #[test]
    fn raw_and_zlib_deflate_are_told_apart() {
        let data = sample(5000);
        for framing in [DeflateFraming::Zlib, DeflateFraming::Raw] {
            let encoded = encode_all(Coding::Deflate, framing, &data, 1000);
            let mut dec = Decoder::new(Coding::Deflate).unwrap().unwrap();
            let mut out = Vec::new();
            let mut rest = &encoded[..];
            while !rest.is_empty() || dec.has_pending() {
                let n = dec.decode(rest, &mut out, usize::MAX).unwrap();
                rest = &rest[n..];
            }
            dec.finish(&mut out).unwrap();
            assert_eq!(dec.deflate_framing(), Some(framing));
            assert_eq!(out, data);
        }
    }

    #[test]
    fn bombs_decode_in_bounded_steps() {
        let zeros = vec![0u8; 64 << 20];
        for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            let bomb = encode_all(coding, DeflateFraming::Zlib, &zeros, zeros.len());
            let mut dec = Decoder::new(coding).unwrap().unwrap();
            let mut rest = &bomb[..];
            let mut total = 0usize;
            let mut steps = 0;
            while !rest.is_empty() || dec.has_pending() {
                let mut out = Vec::new();
                let n = dec.decode(rest, &mut out, 1 << 20).unwrap();
                assert!(out.len() <= (1 << 20) + 256 * 1024, "{coding:?}: {} bytes in one step", out.len());
                total += out.len();
                rest = &rest[n..];
                steps += 1;
            }
            let mut out = Vec::new();
            dec.finish(&mut out).unwrap();
            total += out.len();
            assert_eq!(total, zeros.len(), "{coding:?}");
            assert!(steps >= 32, "{coding:?}: {steps} steps");
        }
    }

    #[test]
    fn corrupt_streams_are_errors_and_trailing_bytes_are_ignored() {
        let data = sample(10_000);
        let mut gz = encode_all(Coding::Gzip, DeflateFraming::Zlib, &data, 10_000);
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        gz[mid + 1] ^= 0x55;
        let mut dec = Decoder::new(Coding::Gzip).unwrap().unwrap();
        let mut out = Vec::new();
        let r = dec.decode(&gz, &mut out, usize::MAX).and_then(|_| dec.finish(&mut out));
        assert!(r.is_err() || out != data);

        // gzip: a whole member, then junk (browsers show the page).
        let mut gz = encode_all(Coding::Gzip, DeflateFraming::Zlib, &data, 10_000);
        gz.extend_from_slice(b"JUNK after the member");
        let mut dec = Decoder::new(Coding::Gzip).unwrap().unwrap();
        let mut out = Vec::new();
        let mut rest = &gz[..];
        while !rest.is_empty() {
            let n = dec.decode(rest, &mut out, usize::MAX).unwrap();
            rest = &rest[n..];
        }
        dec.finish(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(dec.trailing(), 21);

        let mut br = encode_all(Coding::Brotli, DeflateFraming::Zlib, &data, 10_000);
        br.extend_from_slice(b"garbage");
        let mut dec = Decoder::new(Coding::Brotli).unwrap().unwrap();
        let mut out = Vec::new();
        let mut rest = &br[..];
        while !rest.is_empty() || dec.has_pending() {
            let n = dec.decode(rest, &mut out, usize::MAX).unwrap();
            rest = &rest[n..];
        }
        assert_eq!(out, data);
        assert!(dec.trailing() > 0);
    }

    #[test]
    fn content_coding_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(content_coding(&h), Ok(Coding::Identity));
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("GZip"));
        assert_eq!(content_coding(&h), Ok(Coding::Gzip));
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("identity, br"));
        assert_eq!(content_coding(&h), Ok(Coding::Brotli));
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip, br"));
        assert_eq!(content_coding(&h), Err(Unsupported::Stacked));
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.append(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(content_coding(&h), Err(Unsupported::Stacked));
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("compress"));
        assert_eq!(content_coding(&h), Err(Unsupported::Unknown("compress".into())));
    }

    fn narrowed(value: &str) -> String {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        narrow_accept_encoding(&mut h);
        h.get(ACCEPT_ENCODING).unwrap().to_str().unwrap().to_string()
    }

    #[test]
    fn accept_encoding_is_narrowed_keeping_q_values() {
        assert_eq!(narrowed("gzip, deflate, br, zstd"), "gzip, deflate, br, zstd");
        assert_eq!(narrowed("gzip;q=0.8, compress, dcb, br;q=1"), "gzip;q=0.8, br;q=1");
        assert_eq!(narrowed("compress"), "identity");
        assert_eq!(narrowed("*"), "gzip, deflate, br, zstd");
        assert_eq!(narrowed("br, *;q=0.5"), "br, gzip;q=0.5, deflate;q=0.5, zstd;q=0.5");
        assert_eq!(narrowed("gzip, *;q=0"), "gzip, *;q=0");
        assert_eq!(narrowed("identity;q=1, sdch"), "identity;q=1");
        let mut h = HeaderMap::new();
        narrow_accept_encoding(&mut h);
        assert!(h.get(ACCEPT_ENCODING).is_none());
        h.append(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        h.append(ACCEPT_ENCODING, HeaderValue::from_static("dcz, zstd"));
        narrow_accept_encoding(&mut h);
        assert_eq!(h.get_all(ACCEPT_ENCODING).iter().count(), 1);
        assert_eq!(h.get(ACCEPT_ENCODING).unwrap(), "gzip, zstd");
    }

    #[test]
    fn zlib_sniffing() {
        assert!(is_zlib_header(0x78, 0x9c));
        assert!(is_zlib_header(0x78, 0x01));
        assert!(is_zlib_header(0x78, 0xda));
        let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(b"<html>").unwrap();
        let raw = raw.finish().unwrap();
        assert!(!is_zlib_header(raw[0], raw[1]));
        // And flate2 agrees with what we decoded.
        let mut check = flate2::read::DeflateDecoder::new(&raw[..]);
        let mut s = String::new();
        check.read_to_string(&mut s).unwrap();
        assert_eq!(s, "<html>");
    }
}
