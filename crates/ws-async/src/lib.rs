//! # ws-async: the poll loop of the async runtime adapters
//!
//! The one poll-based run loop that `ws-tokio` and `ws-futures` share, written
//! once over a small [`Runtime`] trait: the operation loop that asks the
//! sans-IO [`Driver`] for an action, performs it and reports
//! back; the write side with the bytes held between polls; the one timer; the
//! split halves, which share the driver behind a lock held only for sans-IO
//! calls (never across I/O); the public methods, `Stream` and `Sink`
//! implementations, the streamed messages ([`MessageStream`],
//! [`MessageWriter`]) and the opening handshake functions. It holds no
//! protocol policy (that is the driver's) and depends on no runtime (its
//! features `tokio` and `futures-io` only implement those crates' I/O
//! traits for the streamed messages).
//!
//! **Not meant to be used directly**: use a runtime adapter (`ws-tokio`,
//! `ws-futures`), which names the types here for its runtime
//! (`ws_tokio::WebSocket<S>` is `ws_async::WebSocket<S, Tokio>`). A runtime
//! adapter is a marker type that implements [`Read`] for its readable
//! streams and [`Clock`] over its sleep, and an invocation of [`adapter!`],
//! which implements [`Write`], [`Runtime`] (split and unsplit a stream) and
//! [`Connect`] (a TCP connection) from the runtime's I/O traits and writes
//! the adapter's public API.

#![forbid(unsafe_code)]

extern crate alloc;

mod handshake;
mod socket;
mod split;
mod stream;
mod tls;

use core::fmt::Debug;
use core::future::Future;
use core::ops::{Add, Sub};
use core::task::{Context, Poll};
use core::time::Duration;
use std::io::{self, IoSlice};

use ws_proto::Driver;
use ws_proto::driver::ReadBuffer;

pub use crate::handshake::{
    Incoming, accept_with, client, connect_with, read_request_with, within_handshake_timeout,
};
pub use crate::socket::WebSocket;
pub use crate::split::{ReadHalf, WriteHalf};
pub use crate::stream::{MessageStream, MessageWriter};

/// Reading a stream `T` (a whole stream or its read half) of the runtime
/// that implements it.
pub trait Read<T> {
    /// Polls one read into the spare room of `buf`: the count read (0: end
    /// of stream).
    fn poll_read(io: &mut T, cx: &mut Context<'_>, buf: &mut ReadBuffer)
    -> Poll<io::Result<usize>>;

    /// Polls one read into the driver's read buffer ([`Driver::read_buf`];
    /// a transport that reads into initialised bytes uses
    /// [`Driver::read_slice`]), without reporting it.
    #[inline]
    fn poll_read_driver(
        io: &mut T,
        cx: &mut Context<'_>,
        d: &mut Driver,
    ) -> Poll<io::Result<usize>> {
        Self::poll_read(io, cx, d.read_buf())
    }
}

/// Writing a stream `T` (a whole stream or its write half) of the runtime
/// that implements it.
pub trait Write<T> {
    /// Polls one write of `buf`.
    fn poll_write(io: &mut T, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// Polls one vectored write of `bufs`.
    fn poll_write_vectored(
        io: &mut T,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;
    /// Polls flushing the stream.
    fn poll_flush(io: &mut T, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Polls shutting the stream's write side down.
    fn poll_shutdown(io: &mut T, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// The runtime's clock and its resettable sleep: the connection's one timer.
pub trait Clock {
    /// A point in time.
    type Instant: Copy
        + Debug
        + Unpin
        + Add<Duration, Output = Self::Instant>
        + Sub<Output = Duration>;
    /// A sleep until an instant, which can be reset.
    type Sleep: Debug + Unpin;
    /// The current time.
    fn now() -> Self::Instant;
    /// A sleep until `at`.
    fn sleep_until(at: Self::Instant) -> Self::Sleep;
    /// Sets `sleep` to end at `at`.
    fn reset(sleep: &mut Self::Sleep, at: Self::Instant);
    /// Polls whether `sleep` ended.
    fn poll_sleep(sleep: &mut Self::Sleep, cx: &mut Context<'_>) -> Poll<()>;
}

/// A runtime (its marker type) for a stream type `S`: how to read and write
/// `S` and its halves, split it and put it back together.
pub trait Runtime<S>:
    Read<S> + Write<S> + Read<Self::ReadHalf> + Write<Self::WriteHalf> + Clock + Sized
{
    /// The read half of a split `S`.
    type ReadHalf: Unpin;
    /// The write half of a split `S`.
    type WriteHalf: Unpin;
    /// Splits `stream` into halves usable from two tasks.
    fn split(stream: S) -> (Self::ReadHalf, Self::WriteHalf);
    /// Puts two halves of one stream back together (`None`: they are not).
    fn unsplit(read: Self::ReadHalf, write: Self::WriteHalf) -> Option<S>;
}

/// How an adapter opens the stream of `connect`: TCP (with `TCP_NODELAY`),
/// and TLS for `wss://` where the adapter speaks it. Called within the
/// handshake timeout.
pub trait Connect {
    /// The stream `connect` returns.
    type Stream;
    /// Opens the stream to `request`'s host and port; refuses a scheme the
    /// adapter cannot speak (see `ws_proto::adapter::plain_tcp_target`).
    fn connect(
        request: &ws_proto::ClientRequest,
    ) -> impl Future<Output = ws_proto::adapter::Result<Self::Stream>>;
}

/// A runtime adapter, given its marker type `$rt` (which implements [`Read`]
/// for its readable streams and [`Clock`]): implements [`Write`] for every
/// stream `T: $write + Unpin` (`$write`, the runtime's `AsyncWrite` trait,
/// has `poll_write`, `poll_write_vectored`, `poll_flush` and the method
/// `$shutdown` that shuts the write side down), [`Runtime`] for every
/// `S: $read + $write + Unpin` with the halves `$rh` and `$wh` that
/// `$split` makes and `$unsplit` puts back together; and the adapter's
/// public API: the types `WebSocket`, `ReadHalf`, `WriteHalf`,
/// `MessageStream`, `MessageWriter` and `Incoming` over a stream `S`, and
/// the handshake functions (`connect` and `connect_with`, over the stream
/// `$stream` of the adapter's [`Connect`], `client`, `accept`,
/// `accept_with`, `read_request`, `read_request_with`). With the
/// `MessageStream` and `MessageWriter` of the adapter's I/O traits, the
/// adapter enables this crate's feature for its runtime (`tokio`,
/// `futures-io`).
#[macro_export]
macro_rules! adapter {
    (
        $rt:ty,
        io: $read:path, $write:path, $shutdown:ident,
        halves: $rh:ty, $wh:ty, $split:expr, $unsplit:expr,
        connects: $stream:ty $(,)?
    ) => {
        impl<T: $write + Unpin> $crate::Write<T> for $rt {
            #[inline]
            fn poll_write(
                io: &mut T,
                cx: &mut ::core::task::Context<'_>,
                buf: &[u8],
            ) -> ::core::task::Poll<::std::io::Result<usize>> {
                <T as $write>::poll_write(::core::pin::Pin::new(io), cx, buf)
            }

            #[inline]
            fn poll_write_vectored(
                io: &mut T,
                cx: &mut ::core::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::core::task::Poll<::std::io::Result<usize>> {
                <T as $write>::poll_write_vectored(::core::pin::Pin::new(io), cx, bufs)
            }

            #[inline]
            fn poll_flush(
                io: &mut T,
                cx: &mut ::core::task::Context<'_>,
            ) -> ::core::task::Poll<::std::io::Result<()>> {
                <T as $write>::poll_flush(::core::pin::Pin::new(io), cx)
            }

            fn poll_shutdown(
                io: &mut T,
                cx: &mut ::core::task::Context<'_>,
            ) -> ::core::task::Poll<::std::io::Result<()>> {
                <T as $write>::$shutdown(::core::pin::Pin::new(io), cx)
            }
        }

        impl<S: $read + $write + Unpin> $crate::Runtime<S> for $rt {
            type ReadHalf = $rh;
            type WriteHalf = $wh;

            fn split(stream: S) -> ($rh, $wh) {
                ($split)(stream)
            }

            fn unsplit(read: $rh, write: $wh) -> Option<S> {
                ($unsplit)(read, write)
            }
        }

        /// A WebSocket connection over a stream `S`; see [`ws_async::WebSocket`].
        pub type WebSocket<S> = $crate::WebSocket<S, $rt>;
        /// The receiving half of a [`WebSocket`]; see [`ws_async::ReadHalf`].
        pub type ReadHalf<S> = $crate::ReadHalf<S, $rt>;
        /// The sending half of a [`WebSocket`]; see [`ws_async::WriteHalf`].
        pub type WriteHalf<S> = $crate::WriteHalf<S, $rt>;
        /// A received message read piece by piece, from `recv_stream`; see
        /// [`ws_async::MessageStream`].
        pub type MessageStream<'a, S> = $crate::MessageStream<'a, S, $rt>;
        /// A message sent piece by piece, from `send_stream`; see
        /// [`ws_async::MessageWriter`].
        pub type MessageWriter<'a, S> = $crate::MessageWriter<'a, S, $rt>;
        /// A valid opening request waiting for the application's answer; see
        /// [`ws_async::Incoming`].
        pub type Incoming<S> = $crate::Incoming<S, $rt>;
        /// Connects to a `ws://` URL (`wss://` where the adapter speaks
        /// TLS: see its crate docs) with the default [`Options`]: DNS, TCP
        /// (with `TCP_NODELAY`), TLS and the handshake, all within the
        /// handshake timeout. A scheme the adapter cannot speak fails with
        /// [`HandshakeError::InvalidRequest`]: connect such a stream
        /// yourself and use [`client`].
        /// Cancelling (dropping the future) abandons the connection attempt.
        pub async fn connect(url: &str) -> Result<(WebSocket<$stream>, ClientResponse)> {
            connect_with(ClientRequest::new(url)?, &Options::default()).await
        }

        /// Like [`connect`], with a prepared request (subprotocols, headers)
        /// and options. Cancelling abandons the connection attempt.
        pub async fn connect_with(
            request: ClientRequest,
            options: &Options,
        ) -> Result<(WebSocket<$stream>, ClientResponse)> {
            $crate::connect_with(request, options).await
        }

        /// Runs the client handshake over an already connected stream (TLS,
        /// a proxy tunnel, ...), within the handshake timeout. A refusal
        /// (any status but 101) is [`HandshakeError::Rejected`] with the
        /// response. Cancelling drops the stream mid-handshake.
        pub async fn client<S>(
            stream: S,
            request: ClientRequest,
            options: &Options,
        ) -> Result<(WebSocket<S>, ClientResponse)>
        where
            $rt: $crate::Runtime<S>,
        {
            $crate::client(stream, request, options).await
        }

        /// Accepts a WebSocket connection with the default [`Options`] and
        /// no subprotocol, within the handshake timeout for reading the
        /// request. Cancelling drops the stream mid-handshake. The
        /// handshake's state is boxed: a task awaiting it carries a pointer.
        pub fn accept<S>(stream: S) -> impl Future<Output = Result<WebSocket<S>>>
        where
            $rt: $crate::Runtime<S>,
        {
            $crate::accept_with(stream, &Options::default())
        }

        /// Accepts a WebSocket connection with `options` (read at once) and
        /// no subprotocol. Cancelling drops the stream mid-handshake.
        pub fn accept_with<S>(
            stream: S,
            options: &Options,
        ) -> impl Future<Output = Result<WebSocket<S>>> + use<S>
        where
            $rt: $crate::Runtime<S>,
        {
            $crate::accept_with(stream, options)
        }

        /// Reads the opening request with the default [`Options`]; see
        /// [`read_request_with`].
        pub async fn read_request<S>(stream: S) -> Result<Incoming<S>>
        where
            $rt: $crate::Runtime<S>,
        {
            $crate::read_request_with(stream, &Options::default()).await
        }

        /// Reads the opening request, within the handshake timeout, for the
        /// application to inspect before it [accepts](Incoming::accept) or
        /// [rejects](Incoming::reject) it (it may await anything in
        /// between). A malformed request gets its HTTP error response (400,
        /// 426, 431) written before the error is returned. Cancelling drops
        /// the stream.
        pub async fn read_request_with<S>(stream: S, options: &Options) -> Result<Incoming<S>>
        where
            $rt: $crate::Runtime<S>,
        {
            $crate::read_request_with(stream, options).await
        }
    };
}
