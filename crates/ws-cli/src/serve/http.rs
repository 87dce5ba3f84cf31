//! The little HTTP/1.1 `wsx serve` needs: reading a request head, plain
//! answers (the page, 404, 405, 400), and the `/chat` query.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};
use ws_tokio::{Buf, BytesMut};

/// Largest request head accepted (request line and headers).
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) target: String,
    /// Names as sent, values as bytes (what `ServerRequest::from_parts` takes).
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// HTTP/1.0 (no keep-alive unless asked for).
    http10: bool,
}

/// Why a head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The transport failed.
    Io(io::Error),
    /// Not HTTP: answer 400 and hang up.
    Malformed(httparse::Error),
    /// Longer than [`MAX_HEAD`]: answer 431 and hang up.
    TooLarge,
}

impl Head {
    /// The first header with this name (case-insensitive), as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Whether a comma-separated header lists `token` (case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// `Upgrade: websocket`: hand the request to the WebSocket handshake.
    pub(crate) fn is_websocket(&self) -> bool {
        self.has_token("upgrade", "websocket")
    }

    /// The path, without the query.
    pub(crate) fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// Whether the connection may serve another request after this one: no
    /// body to skip (we never read one) and the client did not ask to close.
    pub(crate) fn keep_alive(&self) -> bool {
        let no_body = self
            .header("content-length")
            .is_none_or(|len| len.trim() == "0")
            && self.header("transfer-encoding").is_none();
        let wants = if self.http10 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        };
        no_body && wants
    }
}

/// Reads one request head from `stream`, buffering in `buf`; what follows
/// the head stays in `buf` (the first WebSocket bytes, or the next request).
/// `Ok(None)`: the peer closed the connection before a new request began.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Option<Head>, HeadError> {
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = Head {
                        method: request.method.unwrap_or_default().to_owned(),
                        target: request.path.unwrap_or("/").to_owned(),
                        headers: request
                            .headers
                            .iter()
                            .map(|h| (h.name.to_owned(), h.value.to_vec()))
                            .collect(),
                        http10: request.version == Some(0),
                    };
                    buf.advance(len);
                    return Ok(Some(head));
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
                Err(e) => return Err(HeadError::Malformed(e)),
            }
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        buf.reserve(4096);
        if stream.read_buf(buf).await.map_err(HeadError::Io)? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into()))
            };
        }
    }
}

/// A complete response: status line, headers, and `body` unless `head_only`
/// (a `HEAD` request gets the same headers without the body).
pub(crate) fn response(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "",
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if status != 204 {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// A plain-text answer (errors).
pub(crate) fn text(status: u16, body: &str, keep_alive: bool) -> Vec<u8> {
    let headers = [("Content-Type", "text/plain; charset=utf-8")];
    response(status, &headers, body.as_bytes(), false, keep_alive)
}

/// The value of `key` in a query string, percent-decoded (`+` is a space,
/// as in HTML forms). `None`: absent; `Some(Err)`: not UTF-8 once decoded.
pub(crate) fn query_value(query: &str, key: &str) -> Option<Result<String, String>> {
    let raw = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })?;
    Some(percent_decode(raw).ok_or_else(|| format!("{key} is not valid UTF-8")))
}

/// `%XX` and `+` decoding; a stray `%` stays as is.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_values() {
        let q = "room=caf%C3%A9&nick=ada+l%2B&x";
        assert_eq!(query_value(q, "room"), Some(Ok("café".into())));
        assert_eq!(query_value(q, "nick"), Some(Ok("ada l+".into())));
        assert_eq!(query_value(q, "x"), Some(Ok(String::new())));
        assert_eq!(query_value(q, "y"), None);
        assert_eq!(query_value("a=%zz%4", "a"), Some(Ok("%zz%4".into())));
        assert!(matches!(query_value("a=%ff", "a"), Some(Err(_))));
    }
}
