//! What the connection reports to the application.

use alloc::{string::String, vec::Vec};

use bytes::Bytes;

use crate::{close::CloseFrame, utf8::Utf8Bytes};

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A UTF-8 text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// The payload bytes, whatever the type.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(data) => data,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a text message.
    pub const fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Converts into the payload bytes.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Self::Text(text) => text.into_bytes(),
            Self::Binary(data) => data,
        }
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::Text(text.into())
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::Text(text.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Self::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Self::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Self::Binary(data.into())
    }
}

/// Something that happened on the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A complete text or binary message.
    Message(Message),
    /// A piece of a data message delivered as it arrives (see
    /// [`Config::streaming`](crate::Config::streaming)), never held whole.
    /// Pieces follow no frame boundaries: a piece is whatever part of the
    /// payload has arrived (or, compressed, inflated: at most 64 KiB). With
    /// [`Streaming::Above`](crate::Streaming::Above) the first piece holds
    /// what was buffered to decide: the threshold and a little more.
    /// A text piece is whole code points, UTF-8 checked (a bad byte fails
    /// the connection with 1007 before any piece holding it is delivered).
    /// Control events may arrive between the pieces of one message.
    Fragment {
        /// This piece's bytes, with the message's type. May be empty only
        /// when it is the last.
        piece: Message,
        /// Whether this is the message's first piece.
        first: bool,
        /// Whether this is the message's last piece.
        last: bool,
    },
    /// A ping. The pong is already queued; this is for the application's
    /// information only.
    Ping(Bytes),
    /// A pong (solicited or not).
    Pong(Bytes),
    /// The close handshake: the peer's Close frame (our reply is already
    /// queued if we had not sent one), or [`CloseCode::ABNORMAL`](crate::CloseCode::ABNORMAL)
    /// when the transport ended or the close timeout expired without one.
    /// No event follows it.
    Close(CloseFrame),
}
