//! The stream [`connect`](crate::connect) returns, and `wss://` with
//! tokio-rustls (feature `rustls`): the provider, roots and ALPN come from
//! [`ws_proto::adapter::tls`], decided once for every adapter.

use core::pin::Pin;
use core::task::{Context, Poll};
use std::io;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What [`connect`](crate::connect) returns: the TCP stream for `ws://`, a
/// tokio-rustls stream over it for `wss://` (feature `rustls`; the server
/// side of `accept_tls` too).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    #[cfg(feature = "rustls")]
    Rustls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl MaybeTlsStream {
    /// The TCP socket underneath.
    pub fn get_ref(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            #[cfg(feature = "rustls")]
            Self::Rustls(s) => s.get_ref().0,
        }
    }
}

/// `$body` with `$s` the pinned stream inside a [`MaybeTlsStream`].
macro_rules! pinned {
    ($this:expr, $s:ident => $body:expr) => {
        match $this.get_mut() {
            MaybeTlsStream::Plain(s) => {
                let $s = Pin::new(s);
                $body
            }
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(s) => {
                let $s = Pin::new(&mut **s);
                $body
            }
        }
    };
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        pinned!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        pinned!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        pinned!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "rustls")]
            Self::Rustls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        pinned!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        pinned!(self, s => s.poll_shutdown(cx))
    }
}

#[cfg(feature = "rustls")]
mod rustls_io {
    use alloc::sync::Arc;

    use rustls::{ClientConfig, ServerConfig, pki_types::ServerName};
    use tokio::net::TcpStream;
    use tokio_rustls::{TlsAcceptor, TlsConnector};
    use ws_proto::{ClientRequest, ClientResponse, HandshakeError};

    use super::MaybeTlsStream;
    use crate::{Options, Result, WebSocket};

    /// [`connect_with`](crate::connect_with) over TLS with the client
    /// configuration given (roots, client certificates; keep ALPN
    /// `http/1.1` or none), whatever the URL's scheme:
    /// [`client_config`](crate::client_config) builds the usual ones. SNI
    /// and certificate verification use the URL's host.
    pub async fn connect_with_tls(
        request: ClientRequest,
        options: &Options,
        config: Arc<ClientConfig>,
    ) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
        let name = ServerName::try_from(request.host().to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let (tcp, start) = crate::handshake::tcp_connect(&request, options).await?;
        let left = options.after(start.elapsed())?;
        let tls = within(&left, TlsConnector::from(config).connect(name, tcp)).await?;
        let options = options.after(start.elapsed())?;
        let stream = MaybeTlsStream::Rustls(Box::new(tls.into()));
        crate::client(stream, request, &options).await
    }

    /// Accepts a `wss://` connection on `tcp` with the server's TLS
    /// configuration (its ALPN should offer `http/1.1`), then the WebSocket
    /// handshake: both within the handshake timeout.
    pub async fn accept_tls(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
        options: &Options,
    ) -> Result<WebSocket<MaybeTlsStream>> {
        let start = tokio::time::Instant::now();
        let tls = within(options, TlsAcceptor::from(config).accept(tcp)).await?;
        let stream = MaybeTlsStream::Rustls(Box::new(tls.into()));
        crate::accept_with(stream, &options.after(start.elapsed())?).await
    }

    /// A TLS handshake bounded by `options.handshake_timeout`.
    async fn within<T>(
        options: &Options,
        handshake: impl Future<Output = std::io::Result<T>>,
    ) -> Result<T> {
        let limit = options
            .handshake_timeout
            .unwrap_or(core::time::Duration::MAX);
        match tokio::time::timeout(limit, handshake).await {
            // tokio-rustls' errors carry the rustls::Error (`Error::tls`).
            Ok(stream) => Ok(stream?),
            Err(_) => Err(HandshakeError::TimedOut.into()),
        }
    }
}

#[cfg(feature = "rustls")]
pub use rustls_io::{accept_tls, connect_with_tls};
