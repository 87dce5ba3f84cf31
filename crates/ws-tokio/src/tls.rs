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

/// TCP with `TCP_NODELAY` to the request's host and port; with the
/// `rustls` feature, TLS over it for `wss://` (Mozilla's roots).
impl ws_async::Connect for crate::Tokio {
    type Stream = MaybeTlsStream;

    async fn connect(request: &ws_proto::ClientRequest) -> crate::Result<MaybeTlsStream> {
        #[cfg(feature = "rustls")]
        if request.is_secure() {
            let config = ws_proto::adapter::tls::default_client_config()?;
            return rustls_io::tls_connect(request, config).await;
        }
        let (host, port) = ws_proto::adapter::plain_tcp_target(request)?;
        Ok(MaybeTlsStream::Plain(tcp(host, port).await?))
    }
}

async fn tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true).map(|()| stream)
}

#[cfg(feature = "rustls")]
mod rustls_io {
    use std::sync::Arc;

    use rustls::{ClientConfig, ServerConfig, pki_types::ServerName};
    use tokio::net::TcpStream;
    use tokio_rustls::{TlsAcceptor, TlsConnector};
    use ws_async::{Clock, within_handshake_timeout};
    use ws_proto::{ClientRequest, ClientResponse};

    use super::MaybeTlsStream;
    use crate::{Options, Result, Tokio, WebSocket};

    /// TCP, then TLS with SNI and verification for the request's host.
    pub(super) async fn tls_connect(
        request: &ClientRequest,
        config: Arc<ClientConfig>,
    ) -> Result<MaybeTlsStream> {
        let name = ServerName::try_from(request.host().to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tcp = super::tcp(request.host(), request.port()).await?;
        // tokio-rustls' errors carry the rustls::Error (`Error::tls`).
        let tls = TlsConnector::from(config).connect(name, tcp).await?;
        Ok(MaybeTlsStream::Rustls(Box::new(tls.into())))
    }

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
        let start = Tokio::now();
        let connect = tls_connect(&request, config);
        let stream = within_handshake_timeout::<Tokio, _>(options, connect).await?;
        crate::client(stream, request, &options.after(Tokio::now() - start)?).await
    }

    /// Accepts a `wss://` connection on `tcp` with the server's TLS
    /// configuration (its ALPN should offer `http/1.1`), then the WebSocket
    /// handshake: both within the handshake timeout.
    pub async fn accept_tls(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
        options: &Options,
    ) -> Result<WebSocket<MaybeTlsStream>> {
        let start = Tokio::now();
        let accept = async { Ok(TlsAcceptor::from(config).accept(tcp).await?) };
        let tls = within_handshake_timeout::<Tokio, _>(options, accept).await?;
        let stream = MaybeTlsStream::Rustls(Box::new(tls.into()));
        crate::accept_with(stream, &options.after(Tokio::now() - start)?).await
    }
}

#[cfg(feature = "rustls")]
pub use rustls_io::{accept_tls, connect_with_tls};
