//! Client side: build the request, check the response.

use alloc::{
    boxed::Box,
    string::{String, ToString},
    vec,
    vec::Vec,
};
use core::fmt::Write as _;

use base64::Engine as _;
use bytes::BytesMut;

use super::{
    HandshakeConfig, Header, HttpResponse, Negotiated, accept_key, extension_name, find_header,
    has_token, header_list, is_safe_value, is_token, own_headers, parse_error,
};
use crate::{
    config::Config,
    connection::{Connection, Role},
    entropy::Entropy,
    error::HandshakeError,
};

/// Headers the handshake writes itself; callers set them through the builder.
const RESERVED_HEADERS: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// What the client asks for: parsed from a `ws://` or `wss://` URI, then
/// refined with the builder methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    secure: bool,
    host: String,
    port: u16,
    path: String,
    origin: Option<String>,
    protocols: Vec<String>,
    extensions: Vec<String>,
    headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// Parses a `ws://host[:port][/path][?query]` or `wss://` URI. IPv6
    /// hosts are written in brackets. Fragments and user info are refused,
    /// as RFC 6455 section 3 requires.
    pub fn new(uri: &str) -> Result<Self, HandshakeError> {
        let invalid = HandshakeError::InvalidRequest;
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(uri, "ws://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(uri, "wss://") {
            (true, rest)
        } else {
            return Err(invalid("the URI scheme is not ws:// or wss://"));
        };
        if rest.contains('#') {
            return Err(invalid("a WebSocket URI has no fragment"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(invalid("user info in the URI is not supported"));
        }
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("unclosed IPv6 bracket"))?;
            let port = match after {
                "" => default_port,
                port => parse_port(port.strip_prefix(':').ok_or_else(|| invalid("bad port"))?)?,
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, parse_port(port)?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() || !is_safe_value(host) || host.contains([' ', '/']) {
            return Err(invalid("missing or invalid host"));
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => alloc::format!("/{p}"),
            p => p.to_string(),
        };
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "the path must be printable ASCII (percent-encode the rest)",
            ));
        }
        Ok(Self {
            secure,
            host: host.to_string(),
            port,
            path,
            origin: None,
            protocols: Vec::new(),
            extensions: Vec::new(),
            headers: Vec::new(),
        })
    }

    /// Sets the `Origin` header (browsers always send one).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Offers a subprotocol; offers are sent in the order added.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }

    /// Offers an extension, e.g. `"permessage-deflate; client_max_window_bits"`.
    /// The server may accept only offered extensions. This crate does not
    /// implement any extension yet: offer one only if you handle it yourself.
    pub fn extension(mut self, offer: impl Into<String>) -> Self {
        self.extensions.push(offer.into());
        self
    }

    /// Adds a header (e.g. `Authorization`, `User-Agent`, `Cookie`). A `Host`
    /// header replaces the one derived from the URI. The handshake's own
    /// headers are refused when the request is built.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Whether the URI was `wss://` (the caller sets up TLS).
    pub const fn is_secure(&self) -> bool {
        self.secure
    }

    /// The host to connect to (without brackets for IPv6).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to (explicit, or 80 / 443).
    pub const fn port(&self) -> u16 {
        self.port
    }

    /// The request target: path and query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The offered subprotocols.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The `Host` header value derived from the URI: the port only when not
    /// the scheme's default.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            alloc::format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.secure { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            alloc::format!("{host}:{}", self.port)
        }
    }

    /// Encodes the HTTP request with the given base64 key, offering `extra`
    /// extensions after the caller's.
    fn encode(&self, key: &str, extra: &[String]) -> Result<Vec<u8>, HandshakeError> {
        let invalid = HandshakeError::InvalidRequest;
        let mut host_header = self.host_header();
        for (name, value) in &self.headers {
            if !is_token(name) || !is_safe_value(value) {
                return Err(invalid("a header name or value is not valid HTTP"));
            }
            if RESERVED_HEADERS
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r))
            {
                return Err(invalid("a handshake header cannot be set by hand"));
            }
            if name.eq_ignore_ascii_case("host") {
                host_header.clone_from(value);
            }
        }
        let lists = [&self.protocols, &self.extensions];
        if self.origin.as_deref().is_some_and(|o| !is_safe_value(o))
            || lists
                .iter()
                .flat_map(|l| l.iter())
                .any(|v| !is_safe_value(v))
            || self.protocols.iter().any(|p| !is_token(p))
        {
            return Err(invalid(
                "an origin, subprotocol or extension is not valid HTTP",
            ));
        }
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            self.path
        );
        if let Some(origin) = &self.origin {
            let _ = write!(head, "Origin: {origin}\r\n");
        }
        if !self.protocols.is_empty() {
            let _ = write!(
                head,
                "Sec-WebSocket-Protocol: {}\r\n",
                self.protocols.join(", ")
            );
        }
        if !self.extensions.is_empty() || !extra.is_empty() {
            let all: Vec<&str> = self
                .extensions
                .iter()
                .chain(extra)
                .map(String::as_str)
                .collect();
            let _ = write!(head, "Sec-WebSocket-Extensions: {}\r\n", all.join(", "));
        }
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("host") {
                let _ = write!(head, "{name}: {value}\r\n");
            }
        }
        head.push_str("\r\n");
        Ok(head.into_bytes())
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn parse_port(port: &str) -> Result<u16, HandshakeError> {
    port.parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or(HandshakeError::InvalidRequest("bad port"))
}

/// The server's `101 Switching Protocols` answer, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientResponse {
    /// The response headers.
    pub headers: Vec<Header>,
    /// The subprotocol the server chose, if any (always one we offered).
    pub protocol: Option<String>,
    /// The extensions the server accepted, as sent (always ones we offered).
    pub extensions: Vec<String>,
    /// The permessage-deflate parameters, if the server accepted it.
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::deflate::DeflateParams>,
}

impl ClientResponse {
    /// The first header with this name (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// What the server agreed to: the subprotocol and the extensions.
    pub fn negotiated(&self) -> Negotiated {
        let negotiated = Negotiated::new(self.protocol.clone(), self.extensions.clone());
        #[cfg(feature = "deflate")]
        if let Some(params) = self.deflate {
            return negotiated.with_deflate(params);
        }
        negotiated
    }

    /// A client [`Connection`] with `config` and operating-system randomness
    /// for the mask keys, which knows what was negotiated
    /// ([`Connection::protocol`]).
    #[cfg(feature = "getrandom")]
    pub fn connection(&self, config: Config) -> Connection {
        self.connection_with_entropy(config, crate::entropy::OsEntropy::new())
    }

    /// Like [`connection`](Self::connection), drawing the mask keys from
    /// `entropy`.
    pub fn connection_with_entropy(
        &self,
        config: Config,
        entropy: impl Entropy + Send + 'static,
    ) -> Connection {
        Connection::with_entropy(Role::Client, config, entropy).with_negotiated(self.negotiated())
    }
}

/// The client's half of the opening handshake.
///
/// Write [`request`](Self::request) to the transport, then feed what comes
/// back to [`receive`](Self::receive) until it returns the response.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    request: Vec<u8>,
    expected_accept: String,
    protocols: Vec<String>,
    extension_names: Vec<String>,
    config: HandshakeConfig,
    /// Whether the transport ended: stop waiting for an announced body.
    eof: bool,
    /// What [`with_config`](Self::with_config) needs to encode the request
    /// again with its deflate offers.
    #[cfg(feature = "deflate")]
    spec: Box<(ClientRequest, String)>,
}

impl ClientHandshake {
    /// Prepares the handshake with an operating-system random key.
    #[cfg(feature = "getrandom")]
    pub fn new(request: &ClientRequest) -> Result<Self, HandshakeError> {
        Self::with_entropy(request, &mut crate::entropy::OsEntropy::new())
    }

    /// Prepares the handshake, drawing the 16-byte `Sec-WebSocket-Key` nonce
    /// from `entropy`.
    pub fn with_entropy(
        request: &ClientRequest,
        entropy: &mut impl Entropy,
    ) -> Result<Self, HandshakeError> {
        let mut nonce = [0u8; 16];
        entropy.fill(&mut nonce);
        let key = base64::engine::general_purpose::STANDARD.encode(nonce);
        Ok(Self {
            request: request.encode(&key, &[])?,
            expected_accept: accept_key(key.as_bytes()),
            protocols: request.protocols.clone(),
            extension_names: request
                .extensions
                .iter()
                .map(|e| extension_name(e).to_string())
                .collect(),
            config: HandshakeConfig::default(),
            eof: false,
            #[cfg(feature = "deflate")]
            spec: Box::new((request.clone(), key)),
        })
    }

    /// Replaces the response size limits and, with the `deflate` feature,
    /// the permessage-deflate offer (`HandshakeConfig::deflate`): the
    /// request is encoded again with its offers.
    #[must_use]
    pub fn with_config(mut self, config: HandshakeConfig) -> Self {
        #[cfg(feature = "deflate")]
        {
            let offers = crate::deflate::offers(&config.deflate);
            let (request, key) = &*self.spec;
            // Cannot fail: the same request encoded before, and the offers
            // are plain tokens.
            if let Ok(encoded) = request.encode(key, &offers) {
                self.request = encoded;
            }
            if !offers.is_empty() {
                self.extension_names.push(crate::deflate::NAME.to_string());
            }
        }
        self.config = config;
        self
    }

    /// The encoded HTTP request to write.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// Parses the response from the front of `buf`.
    ///
    /// Returns `Ok(None)` while the head (or an announced error body) is
    /// incomplete. On success the head is consumed and any bytes after it
    /// stay in `buf` for [`Connection::next_event`](crate::Connection::next_event).
    pub fn receive(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<ClientResponse>, HandshakeError> {
        let mut slots = vec![httparse::EMPTY_HEADER; self.config.max_headers];
        let mut response = httparse::Response::new(&mut slots);
        let head_len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if buf.len() > self.config.max_head_size {
                    return Err(HandshakeError::TooLarge {
                        max: self.config.max_head_size,
                    });
                }
                return Ok(None);
            }
            Err(e) => return Err(parse_error(e, self.config.max_headers)),
        };
        if head_len > self.config.max_head_size {
            return Err(HandshakeError::TooLarge {
                max: self.config.max_head_size,
            });
        }
        let status = response.code.unwrap_or_default();
        let reason = response.reason.unwrap_or_default().to_string();
        let headers = own_headers(response.headers);
        if status != 101 {
            return self.rejected(buf, head_len, status, reason, headers);
        }
        if !has_token(&headers, "upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade("Upgrade: websocket"));
        }
        if !has_token(&headers, "connection", "upgrade") {
            return Err(HandshakeError::MissingUpgrade("Connection: upgrade"));
        }
        if find_header(&headers, "sec-websocket-accept").map(str::trim)
            != Some(self.expected_accept.as_str())
        {
            return Err(HandshakeError::InvalidAccept);
        }
        let chosen = header_list(&headers, "sec-websocket-protocol");
        let protocol = match chosen.as_slice() {
            [] => None,
            [one] if self.protocols.iter().any(|p| p == one) => Some((*one).to_string()),
            other => return Err(HandshakeError::UnofferedSubprotocol(other.join(", "))),
        };
        let mut extensions = Vec::new();
        #[cfg(feature = "deflate")]
        let mut deflate_answers = Vec::new();
        for element in header_list(&headers, "sec-websocket-extensions") {
            let name = extension_name(element);
            if !self
                .extension_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
            {
                return Err(HandshakeError::UnofferedExtension(name.to_string()));
            }
            #[cfg(feature = "deflate")]
            if self.config.deflate.policy != crate::deflate::DeflatePolicy::Off
                && crate::deflate::is_deflate(element)
            {
                deflate_answers.push(element);
            }
            extensions.push(element.to_string());
        }
        // RFC 7692 section 7: the answer must fit one of our offers.
        #[cfg(feature = "deflate")]
        let deflate = crate::deflate::check_response(&self.config.deflate, &deflate_answers)
            .map_err(HandshakeError::Deflate)?;
        let _ = buf.split_to(head_len);
        Ok(Some(ClientResponse {
            headers,
            protocol,
            extensions,
            #[cfg(feature = "deflate")]
            deflate,
        }))
    }

    /// The transport ended: returns the error to report. A complete non-101
    /// head becomes [`HandshakeError::Rejected`] with whatever body arrived
    /// (so a 401 whose body was cut short is still a 401); anything else is
    /// [`HandshakeError::UnexpectedEof`] or the parse error.
    pub fn receive_eof(&mut self, buf: &mut BytesMut) -> HandshakeError {
        self.eof = true;
        match self.receive(buf) {
            Err(error) => error,
            Ok(_) => HandshakeError::UnexpectedEof,
        }
    }

    /// Builds the error for a non-101 answer, waiting for an announced body.
    fn rejected(
        &self,
        buf: &mut BytesMut,
        head_len: usize,
        status: u16,
        reason: String,
        headers: Vec<Header>,
    ) -> Result<Option<ClientResponse>, HandshakeError> {
        let announced =
            find_header(&headers, "content-length").and_then(|v| v.trim().parse::<usize>().ok());
        let body_len = match announced {
            Some(len) if len <= self.config.max_body_size => {
                if buf.len() - head_len < len && !self.eof {
                    return Ok(None);
                }
                len.min(buf.len() - head_len)
            }
            _ => (buf.len() - head_len).min(self.config.max_body_size),
        };
        let mut message = buf.split_to(head_len + body_len);
        let body = message.split_off(head_len).to_vec();
        Err(HandshakeError::Rejected(Box::new(HttpResponse {
            status,
            reason,
            headers,
            body,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_forms() {
        let r = ClientRequest::new("ws://example.com").unwrap();
        assert_eq!(
            (r.host(), r.port(), r.path(), r.is_secure()),
            ("example.com", 80, "/", false)
        );
        let r = ClientRequest::new("wss://example.com:8443/chat?x=1").unwrap();
        assert_eq!(
            (r.host(), r.port(), r.path(), r.is_secure()),
            ("example.com", 8443, "/chat?x=1", true)
        );
        assert_eq!(r.host_header(), "example.com:8443");
        let r = ClientRequest::new("ws://[::1]:9001?q").unwrap();
        assert_eq!((r.host(), r.port(), r.path()), ("::1", 9001, "/?q"));
        assert_eq!(r.host_header(), "[::1]:9001");
        for bad in [
            "http://x",
            "ws://",
            "ws://h:0",
            "ws://h:99999",
            "ws://h/#frag",
            "ws://u@h",
            "ws://[::1",
        ] {
            assert!(ClientRequest::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rejection_cut_short_by_eof_keeps_its_status() {
        let r = ClientRequest::new("ws://h").unwrap();
        let mut hs = ClientHandshake::with_entropy(&r, &mut |d: &mut [u8]| d.fill(0)).unwrap();
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 10\r\n\r\nnope"[..]);
        assert_eq!(
            hs.receive(&mut buf),
            Ok(None),
            "waits for the announced body"
        );
        match hs.receive_eof(&mut buf) {
            HandshakeError::Rejected(resp) => {
                assert_eq!((resp.status, &resp.body[..]), (401, &b"nope"[..]))
            }
            other => panic!("{other:?}"),
        }
        let mut hs = ClientHandshake::with_entropy(&r, &mut |d: &mut [u8]| d.fill(0)).unwrap();
        let mut buf = BytesMut::from(&b"HTTP/1.1 101 Swi"[..]);
        assert_eq!(hs.receive_eof(&mut buf), HandshakeError::UnexpectedEof);
    }

    #[test]
    fn reserved_headers_are_refused() {
        let r = ClientRequest::new("ws://h")
            .unwrap()
            .header("Sec-WebSocket-Key", "x");
        assert!(ClientHandshake::with_entropy(&r, &mut |d: &mut [u8]| d.fill(0)).is_err());
        let r = ClientRequest::new("ws://h")
            .unwrap()
            .header("X-Evil", "a\r\nb: c");
        assert!(ClientHandshake::with_entropy(&r, &mut |d: &mut [u8]| d.fill(0)).is_err());
    }
}
