//! The `tls!` macro: the stream an async adapter's `connect` returns, and
//! `wss://` over the runtime's rustls integration, written once for every
//! async adapter.

/// Writes, in a runtime adapter's crate root (after [`adapter!`](crate::adapter)):
///
/// - `MaybeTlsStream`: `Plain($tcp)`, or (the adapter's `rustls` feature)
///   `Rustls(Box<$tls_crate::TlsStream<$tcp>>)`, with the runtime's
///   `$read` / `$write` traits (`$read`'s `poll_read` fills a `$buf` and
///   returns `$filled`; `$shutdown` shuts the write side down; the optional
///   `$vectored` is `AsyncWrite::is_write_vectored` where the trait has it);
/// - [`Connect`](crate::Connect) for `$rt`: TCP with `TCP_NODELAY`, and
///   with `rustls`, TLS for `wss://` with the shared choices of
///   `ws_proto::adapter::tls` (aws-lc-rs, Mozilla's roots, ALPN `http/1.1`);
/// - with `rustls`: `connect_with_tls(request, &options, client_config)` and
///   `accept_tls(tcp, server_config, &options)`, each within the handshake
///   timeout, and the re-exports `rustls`, `$tls_crate`, `Roots`,
///   `client_config`.
///
/// The adapter depends on `rustls` and `$tls_crate` (optional, enabled by
/// its `rustls` feature, which also enables `ws-proto/rustls`).
#[macro_export]
macro_rules! tls {
    (
        $rt:ty,
        tcp: $tcp:ty,
        tls: $tls_crate:ident,
        read: $read:path, $buf:ty => $filled:ty,
        write: $write:path, $shutdown:ident $(, $vectored:ident)? $(,)?
    ) => {
        /// What [`connect`] returns: the TCP stream for `ws://`, a TLS
        /// stream over it for `wss://` (feature `rustls`; also what
        /// `accept_tls` serves).
        #[derive(Debug)]
        #[non_exhaustive]
        pub enum MaybeTlsStream {
            /// `ws://`.
            Plain($tcp),
            /// `wss://`.
            #[cfg(feature = "rustls")]
            Rustls(::std::boxed::Box<$tls_crate::TlsStream<$tcp>>),
        }

        impl MaybeTlsStream {
            /// The TCP socket underneath.
            pub fn get_ref(&self) -> &$tcp {
                match self {
                    Self::Plain(s) => s,
                    #[cfg(feature = "rustls")]
                    Self::Rustls(s) => s.get_ref().0,
                }
            }

            /// The stream inside, pinned, as the runtime's I/O traits.
            fn pinned(
                self: ::core::pin::Pin<&mut Self>,
            ) -> ::core::pin::Pin<&mut (dyn __MaybeTlsIo + Send + Unpin)> {
                match self.get_mut() {
                    Self::Plain(s) => ::core::pin::Pin::new(s),
                    #[cfg(feature = "rustls")]
                    Self::Rustls(s) => ::core::pin::Pin::new(&mut **s),
                }
            }
        }

        /// Both I/O traits, for [`MaybeTlsStream::pinned`].
        trait __MaybeTlsIo: $read + $write {}
        impl<T: $read + $write> __MaybeTlsIo for T {}

        impl $read for MaybeTlsStream {
            fn poll_read(
                self: ::core::pin::Pin<&mut Self>,
                cx: &mut ::core::task::Context<'_>,
                buf: $buf,
            ) -> ::core::task::Poll<::std::io::Result<$filled>> {
                self.pinned().poll_read(cx, buf)
            }
        }

        impl $write for MaybeTlsStream {
            fn poll_write(
                self: ::core::pin::Pin<&mut Self>,
                cx: &mut ::core::task::Context<'_>,
                buf: &[u8],
            ) -> ::core::task::Poll<::std::io::Result<usize>> {
                self.pinned().poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: ::core::pin::Pin<&mut Self>,
                cx: &mut ::core::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::core::task::Poll<::std::io::Result<usize>> {
                self.pinned().poll_write_vectored(cx, bufs)
            }

            $(
                fn $vectored(&self) -> bool {
                    match self {
                        Self::Plain(s) => s.$vectored(),
                        #[cfg(feature = "rustls")]
                        Self::Rustls(s) => s.$vectored(),
                    }
                }
            )?

            fn poll_flush(
                self: ::core::pin::Pin<&mut Self>,
                cx: &mut ::core::task::Context<'_>,
            ) -> ::core::task::Poll<::std::io::Result<()>> {
                self.pinned().poll_flush(cx)
            }

            fn $shutdown(
                self: ::core::pin::Pin<&mut Self>,
                cx: &mut ::core::task::Context<'_>,
            ) -> ::core::task::Poll<::std::io::Result<()>> {
                self.pinned().$shutdown(cx)
            }
        }

        /// TCP with `TCP_NODELAY` to the request's host and port; with the
        /// `rustls` feature, TLS over it for `wss://` (Mozilla's roots).
        impl $crate::Connect for $rt {
            type Stream = MaybeTlsStream;

            async fn connect(request: &ClientRequest) -> Result<MaybeTlsStream> {
                #[cfg(feature = "rustls")]
                if request.is_secure() {
                    let config = ws_proto::adapter::tls::default_client_config()?;
                    return __tls_connect(request, config).await;
                }
                let (host, port) = ws_proto::adapter::plain_tcp_target(request)?;
                Ok(MaybeTlsStream::Plain(__tcp(host, port).await?))
            }
        }

        async fn __tcp(host: &str, port: u16) -> ::std::io::Result<$tcp> {
            let stream = <$tcp>::connect((host, port)).await?;
            stream.set_nodelay(true).map(|()| stream)
        }

        /// TCP, then TLS with SNI and verification for the request's host.
        #[cfg(feature = "rustls")]
        async fn __tls_connect(
            request: &ClientRequest,
            config: ::std::sync::Arc<rustls::ClientConfig>,
        ) -> Result<MaybeTlsStream> {
            let name = rustls::pki_types::ServerName::try_from(request.host().to_owned())
                .map_err(|e| ::std::io::Error::new(::std::io::ErrorKind::InvalidInput, e))?;
            let tcp = __tcp(request.host(), request.port()).await?;
            // The TLS crate's errors carry the rustls::Error (`Error::tls`).
            let tls = $tls_crate::TlsConnector::from(config).connect(name, tcp).await?;
            Ok(MaybeTlsStream::Rustls(::std::boxed::Box::new(tls.into())))
        }

        /// [`connect_with`] over TLS with the client configuration given
        /// (roots, client certificates; keep ALPN `http/1.1` or none),
        /// whatever the URL's scheme: [`client_config`] builds the usual
        /// ones. SNI and certificate verification use the URL's host.
        #[cfg(feature = "rustls")]
        pub async fn connect_with_tls(
            request: ClientRequest,
            options: &Options,
            config: ::std::sync::Arc<rustls::ClientConfig>,
        ) -> Result<(WebSocket<MaybeTlsStream>, ClientResponse)> {
            let start = <$rt as $crate::Clock>::now();
            let connect = __tls_connect(&request, config);
            let stream = $crate::within_handshake_timeout::<$rt, _>(options, connect).await?;
            let left = options.after(<$rt as $crate::Clock>::now() - start)?;
            client(stream, request, &left).await
        }

        /// Accepts a `wss://` connection on `tcp` with the server's TLS
        /// configuration (its ALPN should offer `http/1.1`), then the
        /// WebSocket handshake: both within the handshake timeout.
        #[cfg(feature = "rustls")]
        pub async fn accept_tls(
            tcp: $tcp,
            config: ::std::sync::Arc<rustls::ServerConfig>,
            options: &Options,
        ) -> Result<WebSocket<MaybeTlsStream>> {
            let start = <$rt as $crate::Clock>::now();
            let accept = async { Ok($tls_crate::TlsAcceptor::from(config).accept(tcp).await?) };
            let tls = $crate::within_handshake_timeout::<$rt, _>(options, accept).await?;
            let stream = MaybeTlsStream::Rustls(::std::boxed::Box::new(tls.into()));
            accept_with(stream, &options.after(<$rt as $crate::Clock>::now() - start)?).await
        }

        #[cfg(feature = "rustls")]
        pub use {
            $tls_crate, rustls,
            ws_proto::adapter::tls::{Roots, client_config},
        };
    };
}
