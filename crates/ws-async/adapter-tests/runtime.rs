//! The runtime glue of the tests that ws-tokio and ws-futures share (the
//! files of this directory, written once against the API both adapters name
//! for their runtime: `WebSocket<S>`, `MessageStream`, `MessageWriter`,
//! `accept_with`, `client`, ...).
//!
//! Each adapter's `tests/common/mod.rs` includes this file as a module of
//! its own and provides, beside it, what differs between the runtimes:
//! - `ws`: the adapter crate;
//! - `AsyncRead`, `AsyncWrite` and the extension traits `AsyncReadExt`,
//!   `AsyncWriteExt`, `AsyncBufReadExt` of its runtime's I/O traits, and
//!   `shutdown`, the one extension method whose name differs;
//! - its runtimes (types implementing [`Rt`]), `Main` (the one the memory
//!   tests measure on) and `on_runtimes!` (the `#[test]`s of a list of
//!   scenarios on every runtime, through [`tests_on!`]).
//!
//! It also includes `frames.rs` (raw frames, which ws-std's tests include
//! too) and re-exports its `masked`.
//!
//! A scenario is an `async fn name<R: Rt>()` run by `on_runtimes!` within a
//! time limit on each runtime.

use core::{future::Future, pin::Pin, time::Duration};

use futures_util::future::{Either, join, select};

use super::{AsyncRead, AsyncWrite, ws};
use ws::{ClientRequest, Options, WebSocket};

/// A boxed future, as [`Rt`] returns them.
pub(crate) type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A runtime the scenarios run on.
pub(crate) trait Rt: 'static {
    /// Its TCP stream.
    type S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static;

    /// Runs `f` to completion on a runtime of its own.
    fn block_on<T>(f: impl Future<Output = T>) -> T;

    /// Runs `f` as a task; the future returned is its output.
    fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Boxed<T>;

    /// Sleeps for `duration`.
    fn sleep(duration: Duration) -> Boxed<()>;

    /// A connected standard TCP stream as this runtime's.
    fn stream(tcp: std::net::TcpStream) -> Self::S;

    /// `f`, or a panic after `secs` seconds.
    async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
        match select(Box::pin(f), Self::sleep(Duration::from_secs(secs))).await {
            Either::Left((out, _)) => out,
            Either::Right(_) => panic!("not done within {secs} s"),
        }
    }

    /// Runs the test `test`, failing it after `secs` seconds.
    fn run(secs: u64, test: impl Future<Output = ()>) {
        Self::block_on(Self::within(secs, test));
    }
}

/// A connected pair of TCP sockets on 127.0.0.1: (server side, client
/// side). Called on the runtime (tokio's streams need it).
pub(crate) fn tcp<R: Rt>() -> (R::S, R::S) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let server = listener.accept().unwrap().0;
    for tcp in [&server, &client] {
        tcp.set_nonblocking(true).unwrap();
    }
    (R::stream(server), R::stream(client))
}

/// A (server, client) pair, after the opening handshake.
pub(crate) async fn pair<R: Rt>(
    server: &Options,
    client: &Options,
) -> (WebSocket<R::S>, WebSocket<R::S>) {
    let (server_stream, client_stream) = tcp::<R>();
    let request = ClientRequest::new("ws://127.0.0.1/test").unwrap();
    let (server, client) = join(
        ws::accept_with(server_stream, server),
        ws::client(client_stream, request, client),
    )
    .await;
    (server.unwrap(), client.unwrap().0)
}

/// The `#[test]`s, in a module `$module`, of the scenarios `$test` (of the
/// module that invokes this) on the runtime `$rt`, each within `$secs`
/// seconds.
macro_rules! tests_on {
    ($module:ident, $rt:ty, $secs:expr; $($test:ident),+ $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    <$rt as $crate::common::Rt>::run($secs, super::$test::<$rt>());
                }
            )+
        }
    };
}

pub(crate) use tests_on;
