//! The opening handshake: connecting as a client, accepting as a server.
//! The driver runs it ([`Op::Open`]); this module only connects sockets.

use alloc::boxed::Box;
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

use ws_proto::adapter::{Options, Result, check_request};
use ws_proto::{ClientRequest, ClientResponse, Driver, HandshakeError, Op};

use crate::socket::{Timer, poll_op};
use crate::{Clock, Connect, Runtime, WebSocket};

/// The longest connect timeout armed: far beyond any real one, and no
/// clock overflows at `now` plus it.
const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// Runs the opening handshake of `ws`'s driver ([`Op::Open`]) to the
/// application's turn.
async fn open<S, R: Runtime<S>>(ws: &mut WebSocket<S, R>) -> Result<()> {
    poll_fn(|cx| poll_op(ws, cx, Op::Open)).await?;
    // The handshake's sleep is not the connection's: free it.
    ws.timer = Timer::default();
    Ok(ws.driver.handshake_result()?)
}

/// Connects to `request`'s URL with the adapter's [`Connect`] (TCP, and
/// TLS for `wss://` where it speaks it) and runs the client handshake, all
/// within `options.handshake_timeout`.
pub async fn connect_with<R>(
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<R::Stream, R>, ClientResponse)>
where
    R: Connect + Runtime<R::Stream>,
{
    let start = R::now();
    let stream = within_handshake_timeout::<R, _>(options, R::connect(&request)).await?;
    client(stream, request, &options.after(R::now() - start)?).await
}

/// Runs `step` (a connect, a TLS handshake) within
/// `options.handshake_timeout`, on `R`'s clock:
/// [`HandshakeError::TimedOut`] when it runs out.
pub async fn within_handshake_timeout<R: Clock, T>(
    options: &Options,
    step: impl Future<Output = Result<T>>,
) -> Result<T> {
    let mut step = pin!(step);
    let mut limit = options
        .handshake_timeout
        .map(|t| R::sleep_until(R::now() + t.min(FAR)));
    poll_fn(|cx| match step.as_mut().poll(cx) {
        Poll::Ready(done) => Poll::Ready(done),
        Poll::Pending => match limit.as_mut().map(|sleep| R::poll_sleep(sleep, cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(HandshakeError::TimedOut.into())),
            _ => Poll::Pending,
        },
    })
    .await
}

/// Runs the client handshake over an already connected stream.
pub async fn client<S, R: Runtime<S>>(
    stream: S,
    request: ClientRequest,
    options: &Options,
) -> Result<(WebSocket<S, R>, ClientResponse)> {
    let mut ws = WebSocket::from_driver(stream, Driver::client(&request, options)?);
    open(&mut ws).await?;
    let response = ws.driver.take_response()?;
    Ok((ws, response))
}

/// Accepts a WebSocket connection with `options` and no subprotocol.
///
/// The options are read at once, and the handshake's future is boxed: a
/// connection task that awaits it carries one pointer for it, not the
/// handshake's state (nor the options) for the connection's whole life (a
/// task is as large as its largest state).
pub fn accept_with<S, R: Runtime<S>>(
    stream: S,
    options: &Options,
) -> impl Future<Output = Result<WebSocket<S, R>>> + use<S, R> {
    let mut ws = WebSocket::from_driver(stream, Driver::accepting(options));
    Box::pin(async move {
        open(&mut ws).await?;
        Ok(ws)
    })
}

/// A valid opening request waiting for the application's answer.
#[derive(Debug)]
pub struct Incoming<S, R: Clock>(
    /// The stream, and the driver holding the request and the bytes read
    /// past it.
    WebSocket<S, R>,
);

/// Reads the opening request, for the application to inspect before it
/// [accepts](Incoming::accept) or [rejects](Incoming::reject) it.
pub async fn read_request_with<S, R: Runtime<S>>(
    stream: S,
    options: &Options,
) -> Result<Incoming<S, R>> {
    let mut ws = WebSocket::from_driver(stream, Driver::server(options));
    open(&mut ws).await?;
    check_request(&ws.driver)?;
    Ok(Incoming(ws))
}

impl<S, R: Runtime<S>> Incoming<S, R> {
    ws_proto::incoming_methods!(S, WebSocket<S, R>, async await
        ///
        /// Cancelling drops the stream, possibly mid-response.
    );
}
