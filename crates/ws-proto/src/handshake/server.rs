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
    HandshakeConfig, Header, accept_key, encode_response, find_header, has_token, header_list,
    is_safe_value, is_token, own_headers,
};
use crate::error::HandshakeError;

/// The server's half of the opening handshake: parses the request.
///
/// Feed the bytes read so far to [`receive`](Self::receive) until it returns
/// a [`Request`]; then answer with [`Request::accept`] or [`Request::reject`]
/// whenever the application has decided (an async authorisation check fits
/// naturally in between). On an error, write
/// [`HandshakeError::response`](crate::HandshakeError::response) and close.
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
    pub fn receive(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, HandshakeError> {
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
            Err(e) => return Err(HandshakeError::Http(e)),
        };
        if head_len > self.config.max_head_size {
            return Err(HandshakeError::TooLarge {
                max: self.config.max_head_size,
            });
        }
        let method = request.method.unwrap_or_default();
        if method != "GET" {
            return Err(HandshakeError::Method(method.to_string()));
        }
        if request.version != Some(1) {
            return Err(HandshakeError::Version);
        }
        let path = request.path.unwrap_or_default().to_string();
        let headers = own_headers(request.headers);
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
        let _ = buf.split_to(head_len);
        Ok(Some(Request {
            path,
            host,
            key,
            protocols,
            extensions,
            headers,
        }))
    }
}

/// A valid opening request, for the application to inspect and answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    path: String,
    host: String,
    key: String,
    protocols: Vec<String>,
    extensions: Vec<String>,
    headers: Vec<Header>,
}

impl Request {
    /// The request target: path and query.
    pub fn path(&self) -> &str {
        &self.path
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

    /// The `101 Switching Protocols` response to write.
    ///
    /// The chosen subprotocol must be one the client offered, and extra
    /// headers must be valid HTTP; otherwise this is an error (a bug in the
    /// caller, not the peer) and nothing should be written.
    pub fn accept(&self, options: &AcceptOptions) -> Result<Vec<u8>, HandshakeError> {
        if let Some(protocol) = &options.protocol
            && !self.protocols.iter().any(|p| p == protocol)
        {
            return Err(HandshakeError::UnofferedSubprotocol(protocol.clone()));
        }
        let mut head = String::with_capacity(160);
        let _ = write!(
            head,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n",
            accept_key(self.key.as_bytes())
        );
        if let Some(protocol) = &options.protocol {
            let _ = write!(head, "Sec-WebSocket-Protocol: {protocol}\r\n");
        }
        for (name, value) in &options.headers {
            if !is_token(name) || !is_safe_value(value) {
                return Err(HandshakeError::InvalidRequest(
                    "a response header name or value is not valid HTTP",
                ));
            }
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        Ok(head.into_bytes())
    }

    /// A refusal to write instead of accepting, e.g. 401 or 403, with extra
    /// headers and a body. `Content-Length` is added; headers that are not
    /// valid HTTP are left out. Close the transport after writing it.
    pub fn reject(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        encode_response(status, headers, body)
    }
}

/// How to accept a request: the chosen subprotocol and extra headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptOptions {
    protocol: Option<String>,
    headers: Vec<(String, String)>,
}

impl AcceptOptions {
    /// Accept with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses a subprotocol (it must be one the client offered).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Adds a response header (e.g. `Set-Cookie`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The chosen subprotocol.
    pub fn chosen_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
}

impl HandshakeError {
    /// The HTTP response a server writes for this error before closing, or
    /// `None` for client-side errors. 426 answers carry
    /// `Sec-WebSocket-Version: 13` as RFC 6455 section 4.4 asks.
    pub fn response(&self) -> Option<Vec<u8>> {
        let status = self.status()?;
        let mut reason = String::new();
        let _ = write!(reason, "{self}");
        let mut headers = vec![("Connection", "close"), ("Content-Type", "text/plain")];
        if status == 426 || matches!(self, Self::MissingUpgrade(_)) {
            headers.push(("Upgrade", "websocket"));
        }
        headers.push(("Sec-WebSocket-Version", "13"));
        Some(encode_response(status, &headers, reason.as_bytes()))
    }
}
