//! Server side: parse and check the request, answer accept or reject.

use alloc::{
    string::{String, ToString},
    vec,
    vec::Vec,
};
use core::fmt::Write as _;

use base64::Engine as _;
use bytes::BytesMut;

use super::{
    HandshakeConfig, Header, Negotiated, accept_key, encode_refusal, find_header, has_token,
    header_list, is_safe_value, is_token, own_headers, parse_error,
};
use crate::{
    config::Config,
    connection::{Connection, Role},
    error::HandshakeError,
};

/// The server's half of the opening handshake: parses the request.
///
/// Feed the bytes read so far to [`receive`](Self::receive) until it returns
/// a [`ServerRequest`]; then answer with [`ServerRequest::accept`] or
/// [`ServerRequest::reject`] whenever the application has decided (an async
/// authorisation check fits naturally in between). On an error, write
/// [`HandshakeError::response`](crate::HandshakeError::response) and close.
///
/// When an HTTP library has parsed the request already, skip this type and
/// use [`ServerRequest::from_parts`].
#[derive(Clone, Debug, Default)]
pub struct ServerHandshake {
    config: HandshakeConfig,
}

impl ServerHandshake {
    /// A handshake with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handshake with the given limits.
    pub const fn with_config(config: HandshakeConfig) -> Self {
        Self { config }
    }

    /// Parses the request from the front of `buf`.
    ///
    /// Returns `Ok(None)` while the head is incomplete. On success the head
    /// is consumed and any bytes after it stay in `buf` for the connection.
    pub fn receive(&mut self, buf: &mut BytesMut) -> Result<Option<ServerRequest>, HandshakeError> {
        let mut slots = vec![httparse::EMPTY_HEADER; self.config.max_headers];
        let mut request = httparse::Request::new(&mut slots);
        let head_len = match request.parse(buf) {
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
        let method = request.method.unwrap_or_default();
        // A wrong method is reported first (by `validate`), then the version.
        if request.version != Some(1) && method == "GET" {
            return Err(HandshakeError::Version);
        }
        let target = request.path.unwrap_or_default();
        #[allow(unused_mut)]
        let mut request = ServerRequest::validate(method, target, own_headers(request.headers))?;
        #[cfg(feature = "deflate")]
        {
            request.deflate = self.config.deflate;
        }
        let _ = buf.split_to(head_len);
        Ok(Some(request))
    }
}

/// A valid opening request, for the application to inspect and answer.
///
/// Comes from [`ServerHandshake::receive`] (raw bytes) or
/// [`ServerRequest::from_parts`] (a request an HTTP library has parsed);
/// both apply the same checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRequest {
    target: String,
    host: String,
    key: String,
    protocols: Vec<String>,
    extensions: Vec<String>,
    headers: Vec<Header>,
    /// The deflate settings of the [`ServerHandshake`] that parsed it.
    #[cfg(feature = "deflate")]
    deflate: crate::deflate::DeflateConfig,
}

impl ServerRequest {
    /// Checks a request an HTTP library has already parsed (hyper, axum,
    /// ...), exactly as [`ServerHandshake::receive`] checks raw bytes: `GET`,
    /// a `Host`, `Upgrade: websocket`, `Connection` listing `upgrade`,
    /// `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key` of 16 bytes in
    /// base64. The HTTP version is the library's business (RFC 6455 asks for
    /// HTTP/1.1 or later).
    ///
    /// `target` is the request target as sent (path and query). Header
    /// names must be valid HTTP tokens and values free of control characters
    /// (other than tab), as the byte parser requires; an error has the same
    /// [`status`](HandshakeError::status) and
    /// [`response`](HandshakeError::response) as from the byte parser.
    ///
    /// With the `http` crate's types (hyper, axum), for a `req: http::Request<_>`:
    ///
    /// ```text
    /// let request = ServerRequest::from_parts(
    ///     req.method().as_str(),
    ///     req.uri().path_and_query().map_or("/", |pq| pq.as_str()),
    ///     req.headers().iter().map(|(name, value)| (name.as_str(), value.as_bytes())),
    /// )?;
    /// ```
    ///
    /// Names and values may be text or bytes:
    ///
    /// ```
    /// use ws_proto::{AcceptOptions, ServerRequest};
    ///
    /// let headers = [
    ///     ("host", "example.com"),
    ///     ("upgrade", "websocket"),
    ///     ("connection", "Upgrade"),
    ///     ("sec-websocket-version", "13"),
    ///     ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ///     ("sec-websocket-protocol", "chat"),
    /// ];
    /// let request = ServerRequest::from_parts("GET", "/chat?room=1", headers)?;
    /// assert_eq!((request.path(), request.query()), ("/chat", Some("room=1")));
    /// let accepted = request.accept(&AcceptOptions::new().protocols(["chat"]))?;
    /// // Status 101 and these headers, through the HTTP library's response.
    /// assert!(accepted.headers().contains(&("Sec-WebSocket-Protocol".into(), "chat".into())));
    /// # Ok::<(), ws_proto::HandshakeError>(())
    /// ```
    pub fn from_parts<N, V>(
        method: &str,
        target: &str,
        headers: impl IntoIterator<Item = (N, V)>,
    ) -> Result<Self, HandshakeError>
    where
        N: AsRef<str>,
        V: AsRef<[u8]>,
    {
        // What httparse guarantees for raw bytes, checked here instead.
        if !is_token(method) {
            return Err(HandshakeError::MalformedHttp("invalid token"));
        }
        if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(HandshakeError::MalformedHttp("invalid token"));
        }
        let mut owned = Vec::new();
        for (name, value) in headers {
            let (name, value) = (name.as_ref(), value.as_ref());
            if !is_token(name) {
                return Err(HandshakeError::MalformedHttp("invalid header name"));
            }
            if value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
                return Err(HandshakeError::MalformedHttp("invalid header value"));
            }
            owned.push(Header {
                name: name.to_string(),
                value: value.to_vec(),
            });
        }
        Self::validate(method, target, owned)
    }

    /// The checks of RFC 6455 section 4.2.1, shared by the byte parser and
    /// [`from_parts`](Self::from_parts).
    fn validate(method: &str, target: &str, headers: Vec<Header>) -> Result<Self, HandshakeError> {
        if method != "GET" {
            return Err(HandshakeError::Method(method.to_string()));
        }
        let host = find_header(&headers, "host")
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(HandshakeError::MissingHost)?
            .to_string();
        if !has_token(&headers, "upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade("Upgrade: websocket"));
        }
        if !has_token(&headers, "connection", "upgrade") {
            return Err(HandshakeError::MissingUpgrade("Connection: upgrade"));
        }
        if find_header(&headers, "sec-websocket-version").map(str::trim) != Some("13") {
            return Err(HandshakeError::UnsupportedVersion);
        }
        let key = find_header(&headers, "sec-websocket-key")
            .map(str::trim)
            .filter(|key| {
                base64::engine::general_purpose::STANDARD
                    .decode(key)
                    .is_ok_and(|nonce| nonce.len() == 16)
            })
            .ok_or(HandshakeError::InvalidKey)?
            .to_string();
        let protocols = header_list(&headers, "sec-websocket-protocol")
            .into_iter()
            .map(ToString::to_string)
            .collect();
        let extensions = header_list(&headers, "sec-websocket-extensions")
            .into_iter()
            .map(ToString::to_string)
            .collect();
        Ok(Self {
            target: target.to_string(),
            host,
            key,
            protocols,
            extensions,
            headers,
            #[cfg(feature = "deflate")]
            deflate: crate::deflate::DeflateConfig::OFF,
        })
    }

    /// The request target as sent: path and query (`/chat?room=1`).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The path: the target without its query (`/chat`).
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The query: what follows the first `?` of the target, if there is
    /// one (`room=1`), still percent-encoded.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// The `Host` header.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The `Origin` header, if any (browsers always send one).
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }

    /// The offered subprotocols, in the client's order of preference.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The first of `mine` (in that order: the server's preference) that the
    /// client offered, if any. [`AcceptOptions::protocols`] makes this
    /// choice at accept time.
    pub fn choose_protocol(&self, mine: &[&str]) -> Option<&str> {
        self.pick_protocol(mine.iter().copied())
    }

    /// The first of `mine` that the client offered, borrowed from the offer.
    fn pick_protocol<'a>(&self, mine: impl IntoIterator<Item = &'a str>) -> Option<&str> {
        mine.into_iter()
            .find_map(|want| self.protocols.iter().find(|offered| *offered == want))
            .map(String::as_str)
    }

    /// The offered extensions, one element each, with parameters.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// All headers.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first header with this name (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Accepts: the `101 Switching Protocols` response to write (or its
    /// headers, for an HTTP library that writes the response itself), and
    /// what was negotiated.
    ///
    /// An explicit subprotocol ([`AcceptOptions::protocol`]) must be one the
    /// client offered, and extra headers must be valid HTTP; otherwise this
    /// is an error (a bug in the caller, not the peer) and nothing should be
    /// written. A list of preferences ([`AcceptOptions::protocols`]) that
    /// the client offered none of is not an error: no subprotocol is chosen.
    pub fn accept(&self, options: &AcceptOptions) -> Result<Accepted, HandshakeError> {
        let protocol = match &options.protocol {
            ProtocolChoice::None => None,
            ProtocolChoice::Exact(protocol) => {
                if !self.protocols.iter().any(|p| p == protocol) {
                    return Err(HandshakeError::UnofferedSubprotocol(protocol.clone()));
                }
                Some(protocol.clone())
            }
            ProtocolChoice::Prefer(mine) => self
                .pick_protocol(mine.iter().map(String::as_str))
                .map(ToString::to_string),
        };
        #[cfg(feature = "deflate")]
        let deflate = {
            let config = options.deflate.unwrap_or(self.deflate);
            crate::deflate::accept_offers(&config, &self.extensions)
                .map_err(HandshakeError::Deflate)?
        };
        let mut headers = Vec::with_capacity(5 + options.headers.len());
        let mut add = |name: &str, value: &str| headers.push((name.to_string(), value.to_string()));
        add("Upgrade", "websocket");
        add("Connection", "Upgrade");
        add("Sec-WebSocket-Accept", &accept_key(self.key.as_bytes()));
        if let Some(protocol) = &protocol {
            add("Sec-WebSocket-Protocol", protocol);
        }
        #[allow(unused_mut)]
        let mut negotiated = Negotiated::new(protocol, Vec::new());
        #[cfg(feature = "deflate")]
        if let Some((params, answer)) = deflate {
            add("Sec-WebSocket-Extensions", &answer);
            negotiated =
                Negotiated::new(negotiated.protocol().map(Into::into), alloc::vec![answer])
                    .with_deflate(params);
        }
        for (name, value) in &options.headers {
            if !is_token(name) || !is_safe_value(value) {
                return Err(HandshakeError::InvalidRequest(
                    "a response header name or value is not valid HTTP",
                ));
            }
            headers.push((name.clone(), value.clone()));
        }
        let mut head = String::with_capacity(160);
        head.push_str("HTTP/1.1 101 Switching Protocols\r\n");
        for (name, value) in &headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        Ok(Accepted {
            response: head.into_bytes(),
            headers,
            negotiated,
        })
    }

    /// A refusal to write instead of accepting, e.g. 401 or 403, with extra
    /// headers and a body. Close the transport after writing it.
    ///
    /// The response carries `Connection: close`,
    /// `Content-Type: text/plain; charset=utf-8` (unless `headers` has a
    /// `Content-Type`), `headers`, `Sec-WebSocket-Version: 13` (unless
    /// `headers` has one) and the body's `Content-Length`, like the
    /// library's own error answers ([`HandshakeError::response`]). Headers
    /// that are not valid HTTP, and `Connection`, `Content-Length` and
    /// `Transfer-Encoding`, are left out.
    pub fn reject(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        encode_refusal(status, headers, body)
    }
}

/// An accepted request: the `101 Switching Protocols` response and what it
/// negotiated. Write [`response`](Self::response), then run the
/// [`connection`](Self::connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    response: Vec<u8>,
    headers: Vec<(String, String)>,
    negotiated: Negotiated,
}

impl Accepted {
    /// The complete response to write: status line, headers, blank line.
    pub fn response(&self) -> &[u8] {
        &self.response
    }

    /// The response bytes, owned.
    pub fn into_response(self) -> Vec<u8> {
        self.response
    }

    /// The response headers without the status line, in order, for an HTTP
    /// library that writes the `101` response itself (hyper, axum): set each
    /// of them on its response.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// What was negotiated: the chosen subprotocol, if any.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// A server [`Connection`] with `config` that knows what was negotiated
    /// ([`Connection::protocol`]). Servers never mask, so it needs no
    /// randomness.
    pub fn connection(&self, config: Config) -> Connection {
        Connection::with_entropy(Role::Server, config, |_: &mut [u8]| {})
            .with_negotiated(self.negotiated.clone())
    }
}

/// How the subprotocol is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum ProtocolChoice {
    /// No subprotocol.
    #[default]
    None,
    /// This one; an error if the client did not offer it.
    Exact(String),
    /// The first of these (the server's order) that the client offered.
    Prefer(Vec<String>),
}

/// How to accept a request: the subprotocol and extra headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptOptions {
    protocol: ProtocolChoice,
    headers: Vec<(String, String)>,
    #[cfg(feature = "deflate")]
    deflate: Option<crate::deflate::DeflateConfig>,
}

impl AcceptOptions {
    /// Accept with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses this subprotocol: accepting fails with
    /// [`HandshakeError::UnofferedSubprotocol`] if the client did not offer
    /// it. Replaces an earlier [`protocols`](Self::protocols).
    #[must_use]
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = ProtocolChoice::Exact(protocol.into());
        self
    }

    /// The subprotocols this server speaks, most preferred first: accepting
    /// picks the first of them that the client offered, or none (not an
    /// error) if it offered none of them. Replaces an earlier
    /// [`protocol`](Self::protocol).
    #[must_use]
    pub fn protocols(mut self, mine: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.protocol = ProtocolChoice::Prefer(mine.into_iter().map(Into::into).collect());
        self
    }

    /// The permessage-deflate settings for this accept, in place of those of
    /// the [`ServerHandshake`]'s [`HandshakeConfig`] (a request built with
    /// [`ServerRequest::from_parts`] has deflate off unless set here). The
    /// first acceptable offer is answered; none acceptable declines, or
    /// with [`DeflatePolicy::Require`](crate::DeflatePolicy::Require) fails
    /// the accept with [`HandshakeError::Deflate`] (answer its
    /// [`response`](HandshakeError::response), a 400).
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn deflate(mut self, config: crate::deflate::DeflateConfig) -> Self {
        self.deflate = Some(config);
        self
    }

    /// Adds a response header (e.g. `Set-Cookie`).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The subprotocol set with [`protocol`](Self::protocol), if any. A
    /// choice among [`protocols`](Self::protocols) is only made at accept
    /// time: see [`Accepted::negotiated`].
    pub fn chosen_protocol(&self) -> Option<&str> {
        match &self.protocol {
            ProtocolChoice::Exact(protocol) => Some(protocol),
            _ => None,
        }
    }
}

impl HandshakeError {
    /// The HTTP response a server writes for this error before closing, or
    /// `None` for client-side errors. 426 answers carry
    /// `Sec-WebSocket-Version: 13` as RFC 6455 section 4.4 asks (every
    /// answer does, as do [`ServerRequest::reject`]'s, which share the
    /// encoder).
    pub fn response(&self) -> Option<Vec<u8>> {
        let status = self.status()?;
        let mut reason = String::new();
        let _ = write!(reason, "{self}");
        let upgrade: &[(&str, &str)] = if status == 426 || matches!(self, Self::MissingUpgrade(_)) {
            &[("Upgrade", "websocket")]
        } else {
            &[]
        };
        Some(encode_refusal(status, upgrade, reason.as_bytes()))
    }
}
