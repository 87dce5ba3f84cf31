//! The opening handshake (RFC 6455 section 4): the client's request and the
//! check of the response; the server's parse of the request and its accept or
//! reject response.
//!
//! The handshake is its own step, separate from [`Connection`](crate::Connection):
//! bytes that arrive after the HTTP head stay in the caller's buffer and are
//! the connection's first input. What it negotiated ([`Negotiated`]: the
//! subprotocol, the extensions) is handed over to the connection by
//! [`ClientResponse::connection`] and [`Accepted::connection`].
//!
//! A server behind an HTTP library that parses requests itself (hyper, axum)
//! builds the request with [`ServerRequest::from_parts`] and writes the
//! status and [`Accepted::headers`] through that library.

mod client;
mod server;

use alloc::{
    string::{String, ToString},
    vec::Vec,
};
use core::fmt::{self, Write as _};

use base64::Engine as _;
use sha1::{Digest, Sha1};

pub use self::{
    client::{ClientHandshake, ClientRequest, ClientResponse},
    server::{AcceptOptions, Accepted, ServerHandshake, ServerRequest},
};
use crate::error::HandshakeError;

/// The GUID appended to the key (RFC 6455 section 1.3).
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: the base64 of
/// the SHA-1 of the key followed by the RFC's GUID.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WS_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// Limits on the HTTP head of the opening handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeConfig {
    /// The largest request or response head, in bytes. A larger one fails with
    /// 431 (server) or [`HandshakeError::TooLarge`].
    /// Default: 16 KiB.
    pub max_head_size: usize,
    /// The most header lines accepted. Default: 64.
    pub max_headers: usize,
    /// The largest body of a non-101 response kept for the caller (client).
    /// Default: 64 KiB.
    pub max_body_size: usize,
    /// permessage-deflate: what a client offers and a server accepts.
    /// Default: [`DeflateConfig::OFF`](crate::DeflateConfig::OFF).
    #[cfg(feature = "deflate")]
    pub deflate: crate::deflate::DeflateConfig,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        Self {
            max_head_size: 16 * 1024,
            max_headers: 64,
            max_body_size: 64 * 1024,
            #[cfg(feature = "deflate")]
            deflate: crate::deflate::DeflateConfig::OFF,
        }
    }
}

impl HandshakeConfig {
    /// Sets [`max_head_size`](Self::max_head_size).
    #[must_use]
    pub const fn with_max_head_size(mut self, bytes: usize) -> Self {
        self.max_head_size = bytes;
        self
    }

    /// Sets [`max_body_size`](Self::max_body_size).
    #[must_use]
    pub const fn with_max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// Sets [`deflate`](Self::deflate), e.g. `DeflateConfig::default()` to
    /// offer (client) or accept (server) permessage-deflate.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub const fn with_deflate(mut self, deflate: crate::deflate::DeflateConfig) -> Self {
        self.deflate = deflate;
        self
    }

    /// Sets [`max_headers`](Self::max_headers).
    #[must_use]
    pub const fn with_max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }
}

/// What the opening handshake agreed on: the subprotocol and the accepted
/// extensions. Hand it to [`Connection::with_negotiated`](crate::Connection::with_negotiated)
/// (which [`ClientResponse::connection`] and [`Accepted::connection`] do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    protocol: Option<String>,
    extensions: Vec<String>,
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::DeflateParams>,
}

impl Negotiated {
    /// A subprotocol (if any) and the accepted extension elements, as sent
    /// on the wire (e.g. `permessage-deflate; server_no_context_takeover`).
    pub fn new(protocol: Option<String>, extensions: Vec<String>) -> Self {
        Self {
            protocol,
            extensions,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }

    /// With permessage-deflate agreed on these parameters (the handshake
    /// sets them; for a handshake done elsewhere, build them with
    /// [`DeflateParams::new`](crate::DeflateParams::new)).
    #[cfg(feature = "deflate")]
    #[must_use]
    pub const fn with_deflate(mut self, params: crate::deflate::DeflateParams) -> Self {
        self.deflate = Some(params);
        self
    }

    /// The permessage-deflate parameters, if it was agreed.
    #[cfg(feature = "deflate")]
    pub const fn deflate(&self) -> Option<&crate::deflate::DeflateParams> {
        self.deflate.as_ref()
    }

    /// The agreed subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The accepted extensions, one element each with its parameters, as
    /// sent on the wire.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }
}

/// One HTTP header line.
///
/// `Debug` shows the value as text (invalid UTF-8 replaced), not as bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// The name as sent (compare case-insensitively).
    pub name: String,
    /// The raw value; HTTP allows bytes that are not UTF-8.
    pub value: Vec<u8>,
}

impl Header {
    /// The value as text, if it is UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.value).ok()
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("name", &self.name)
            .field("value", &String::from_utf8_lossy(&self.value))
            .finish()
    }
}

/// An HTTP response the client received instead of `101 Switching Protocols`.
///
/// `Debug` shows header values and the body as text (invalid UTF-8
/// replaced), not as bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The headers.
    pub headers: Vec<Header>,
    /// The body: `Content-Length` bytes when announced (up to the configured
    /// `max_body_size`), otherwise whatever followed the head in the buffer.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// Our error for a head httparse could not parse; too many header lines is
/// [`HandshakeError::TooManyHeaders`] (431), the rest
/// [`HandshakeError::MalformedHttp`] (400).
pub(crate) fn parse_error(error: httparse::Error, max_headers: usize) -> HandshakeError {
    let what = match error {
        httparse::Error::TooManyHeaders => {
            return HandshakeError::TooManyHeaders { max: max_headers };
        }
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status line",
        httparse::Error::Token => "invalid token",
        httparse::Error::Version => "invalid HTTP version",
    };
    HandshakeError::MalformedHttp(what)
}

/// The first header named `name` (case-insensitive), as text.
pub(crate) fn find_header<'h>(headers: &'h [Header], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(Header::value_str)
}

/// All comma-separated elements of every header named `name`, trimmed, in
/// order. Commas inside quoted strings do not split.
pub(crate) fn header_list<'h>(headers: &'h [Header], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .filter_map(Header::value_str)
        .flat_map(split_list)
        .collect()
}

/// Whether any header named `name` lists `token` (case-insensitive).
pub(crate) fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    header_list(headers, name)
        .iter()
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// Splits an HTTP list on commas outside quoted strings, trimming and
/// dropping empty elements.
fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, byte) in value.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

/// The extension name of an extension offer or response element
/// (`permessage-deflate; client_max_window_bits` gives `permessage-deflate`).
pub(crate) fn extension_name(element: &str) -> &str {
    element.split(';').next().unwrap_or_default().trim()
}

/// Copies httparse's borrowed headers into owned ones.
pub(crate) fn own_headers(headers: &[httparse::Header<'_>]) -> Vec<Header> {
    headers
        .iter()
        .map(|h| Header {
            name: h.name.to_string(),
            value: h.value.to_vec(),
        })
        .collect()
}

/// Whether `name` is a valid HTTP header name (an RFC 9110 token).
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` can be sent as a header value (no CR, LF or NUL).
pub(crate) fn is_safe_value(value: &str) -> bool {
    !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// The standard reason phrase for the statuses a WebSocket server answers.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Headers a refusal always carries in the encoder's own form; the caller's
/// versions are dropped (the body's length is known, and the transport is
/// closed after a refusal).
const REFUSAL_OWN_HEADERS: &[&str] = &["connection", "content-length", "transfer-encoding"];

/// Encodes a complete refusal (any status but 101; the server then closes):
/// `Connection: close`, `Content-Type: text/plain; charset=utf-8` unless
/// `headers` has a `Content-Type`, the caller's `headers`,
/// `Sec-WebSocket-Version: 13` unless `headers` has one, and the
/// `Content-Length` of `body`. Header pairs with unsafe names or values are
/// skipped rather than injected. Both [`ServerRequest::reject`] and
/// [`HandshakeError::response`] use it.
pub(crate) fn encode_refusal(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let given = |wanted: &str| {
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(wanted) && is_safe_value(v))
    };
    let mut head = String::with_capacity(128);
    let _ = write!(
        head,
        "HTTP/1.1 {status} {}\r\nConnection: close\r\n",
        reason_phrase(status)
    );
    if !given("content-type") {
        head.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    for (name, value) in headers {
        let own = REFUSAL_OWN_HEADERS
            .iter()
            .any(|o| name.eq_ignore_ascii_case(o));
        if !own && is_token(name) && is_safe_value(value) {
            let _ = write!(head, "{name}: {value}\r\n");
        }
    }
    if !given("sec-websocket-version") {
        head.push_str("Sec-WebSocket-Version: 13\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_section_1_3_accept_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn lists_split_outside_quotes() {
        let parts: Vec<_> = split_list(r#" a, b ;x="1,2" ,, c "#).collect();
        assert_eq!(parts, ["a", r#"b ;x="1,2""#, "c"]);
    }

    #[test]
    fn extension_names() {
        assert_eq!(
            extension_name("permessage-deflate; client_max_window_bits"),
            "permessage-deflate"
        );
    }
}
