//! TLS decisions every adapter makes the same way (feature `rustls`): the
//! crypto provider, the trusted roots, ALPN, and how a TLS failure is told
//! apart from other I/O errors. The streams themselves are the runtime's
//! (tokio-rustls, futures-rustls, a blocking stream over rustls'
//! `Connection`).

use alloc::sync::Arc;
use std::{io, sync::OnceLock};

use rustls::{ClientConfig, RootCertStore};

/// Where a client's trusted root certificates come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Roots {
    /// Mozilla's root program, compiled in (`webpki-roots`).
    #[default]
    WebPki,
    /// The operating system's store (`rustls-native-certs`), read when the
    /// configuration is built.
    Platform,
}

/// A client configuration: rustls' default crypto provider (aws-lc-rs,
/// passed explicitly, so no process-wide provider needs installing), the
/// `roots` given, ALPN `http/1.1` (the protocol of the opening handshake).
pub fn client_config(roots: Roots) -> io::Result<Arc<ClientConfig>> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::Platform => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(cert); // one unusable certificate is not fatal
            }
        }
    }
    if store.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no trusted root certificates",
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(to_io)?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration `connect("wss://..")` uses: [`Roots::WebPki`], built
/// once per process.
pub fn default_client_config() -> io::Result<Arc<ClientConfig>> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(Arc::clone(config));
    }
    let config = client_config(Roots::WebPki)?;
    Ok(Arc::clone(CONFIG.get_or_init(|| config)))
}

/// A rustls failure as the `io::Error` the adapters report: kind
/// `InvalidData`, carrying the [`rustls::Error`] (as tokio-rustls and
/// futures-rustls do), which [`Error::tls`](super::Error::tls) finds again.
pub fn to_io(error: impl Into<rustls::Error>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.into())
}

impl super::Error {
    /// The TLS failure behind this error, if it was one: a certificate for
    /// another name (`InvalidCertificate(NotValidForNameContext { .. })`),
    /// an untrusted one (`InvalidCertificate(UnknownIssuer)`), a peer that
    /// does not speak TLS (`InvalidMessage(..)`), ...
    pub fn tls(&self) -> Option<&rustls::Error> {
        match self {
            Self::Io(e) => e.get_ref()?.downcast_ref(),
            _ => None,
        }
    }
}
