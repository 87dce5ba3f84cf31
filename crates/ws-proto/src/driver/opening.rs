//! The opening handshake, run by the driver ([`Op::Open`](super::Op::Open))
//! with the same actions as the connection after it: the adapter writes the
//! request (or response), reads until the other side's head is complete,
//! and arms the one timer for the handshake timeout. What the handshake
//! negotiated reaches the connection here, once; nothing about HTTP is left
//! for an adapter to decide (the error response to a malformed request, the
//! timeout, what the end of the stream means mid-head).

use alloc::{boxed::Box, vec::Vec};
use core::time::Duration;

use bytes::Bytes;

use super::{Action, Driver, READ, TIMER, WRITE};
use crate::{
    config::Config,
    connection::Connection,
    error::HandshakeError,
    handshake::{
        AcceptOptions, ClientHandshake, ClientResponse, HandshakeConfig, ServerHandshake,
        ServerRequest,
    },
};

/// Settings for the opening handshake and the connection it opens.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// The connection's limits and timers.
    pub config: Config,
    /// Limits on the HTTP head of the handshake and, with the `deflate`
    /// feature, the permessage-deflate offer or acceptance
    /// (`HandshakeConfig::deflate`; on by default here, unlike in a bare
    /// `HandshakeConfig`).
    pub handshake: HandshakeConfig,
    /// Bounds the whole opening handshake (for an adapter's `connect`, DNS
    /// and TCP connect too); `None` waits forever. Default: 10 s.
    pub handshake_timeout: Option<Duration>,
}

impl Default for Options {
    /// The defaults; with the `deflate` feature, permessage-deflate is
    /// offered (client) and accepted (server) with
    /// `DeflateConfig::default()`.
    fn default() -> Self {
        #[allow(unused_mut, reason = "set only with the deflate feature")]
        let mut handshake = HandshakeConfig::default();
        #[cfg(feature = "deflate")]
        {
            handshake.deflate = crate::deflate::DeflateConfig::default();
        }
        Self {
            config: Config::default(),
            handshake,
            handshake_timeout: Some(Duration::from_secs(10)),
        }
    }
}

impl Options {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`config`](Self::config).
    #[must_use]
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Sets [`handshake`](Self::handshake).
    #[must_use]
    pub fn with_handshake(mut self, handshake: HandshakeConfig) -> Self {
        self.handshake = handshake;
        self
    }

    /// Offers (client) or accepts (server) permessage-deflate with `deflate`:
    /// sets [`handshake`](Self::handshake)'s `deflate`.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub const fn with_deflate(mut self, deflate: crate::deflate::DeflateConfig) -> Self {
        self.handshake.deflate = deflate;
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    #[must_use]
    pub const fn with_handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// These options for the rest of a handshake that has already spent
    /// `elapsed` (an adapter's `connect` resolving and connecting first):
    /// what is left of [`handshake_timeout`](Self::handshake_timeout)
    /// bounds the rest. [`HandshakeError::TimedOut`] when nothing is left.
    pub fn after(&self, elapsed: Duration) -> Result<Self, HandshakeError> {
        let left = self.handshake_timeout.map(|t| t.saturating_sub(elapsed));
        if left.is_some_and(|left| left.is_zero()) {
            return Err(HandshakeError::TimedOut);
        }
        Ok(self.clone().with_handshake_timeout(left))
    }
}

/// The handshake in progress; boxed in the driver and dropped once the
/// connection is open, so an open connection pays one pointer for it.
#[derive(Debug)]
pub(super) struct Opening {
    side: Side,
    timeout: Option<Duration>,
    /// The deadline on the adapter's clock, fixed at the first timer call.
    deadline: Option<Duration>,
    /// The transport ended.
    eof: bool,
    /// Why the handshake failed; the driver then writes what is queued (an
    /// error response), shuts down and ends.
    error: Option<HandshakeError>,
    /// The application refused the request: write the refusal, shut down.
    refusing: bool,
}

#[derive(Debug)]
enum Side {
    Client {
        handshake: ClientHandshake,
        response: Option<ClientResponse>,
    },
    Server {
        handshake: ServerHandshake,
        /// The request read, kept while the application decides.
        request: Option<ServerRequest>,
        /// The `101` response is queued: once written, the connection opens.
        accepted: bool,
        /// Accept any valid request with no subprotocol, without handing it
        /// out ([`Driver::accepting`]).
        accept_any: bool,
    },
}

impl Opening {
    fn new(side: Side, options: &Options) -> Box<Self> {
        Box::new(Self {
            side,
            timeout: options.handshake_timeout,
            deadline: None,
            eof: false,
            error: None,
            refusing: false,
        })
    }

    /// The application's turn: a response or request to take, a decision
    /// to make.
    fn awaits_application(&self) -> bool {
        match &self.side {
            Side::Client { response, .. } => response.is_some(),
            Side::Server { request, .. } => request.is_some(),
        }
    }

    fn fail(&mut self, error: HandshakeError, conn: &mut Connection) {
        if self.error.is_none() {
            if let (Side::Server { .. }, Some(response)) = (&self.side, error.response()) {
                conn.outgoing().push(Bytes::from(response));
            }
            self.error = Some(error);
        }
    }
}

impl Driver {
    /// A client's driver: [`Op::Open`](super::Op::Open) writes the opening
    /// request for `request`, reads the response and checks it; then
    /// [`take_response`](Self::take_response) returns it, and the
    /// connection (configured with `options.config` and what the server
    /// agreed to) is open.
    #[cfg(feature = "getrandom")]
    pub fn client(
        request: &crate::ClientRequest,
        options: &Options,
    ) -> Result<Self, HandshakeError> {
        Self::client_with_entropy(request, options, crate::OsEntropy::new())
    }

    /// Like [`client`](Self::client), drawing the handshake's nonce and
    /// the mask keys from `entropy` (for targets without `getrandom`).
    pub fn client_with_entropy(
        request: &crate::ClientRequest,
        options: &Options,
        mut entropy: impl crate::Entropy + Send + 'static,
    ) -> Result<Self, HandshakeError> {
        let handshake = ClientHandshake::with_entropy(request, &mut entropy)?
            .with_config(options.handshake.clone());
        let config = options.config.clone();
        let mut conn = Connection::with_entropy(crate::Role::Client, config, entropy);
        conn.outgoing()
            .push(Bytes::copy_from_slice(handshake.request()));
        let mut driver = Self::new(conn);
        let side = Side::Client {
            handshake,
            response: None,
        };
        driver.opening = Some(Opening::new(side, options));
        Ok(driver)
    }

    /// A server's driver: [`Op::Open`](super::Op::Open) reads the opening
    /// request (a malformed one is answered with its 400, 426 or 431 and the
    /// handshake fails); the driver keeps it ([`request`](Self::request))
    /// for the application to [`accept`](Self::accept) or
    /// [`reject`](Self::reject), and `Op::Open` again writes the answer.
    pub fn server(options: &Options) -> Self {
        Self::server_side(options, false)
    }

    /// A server's driver that accepts any valid request with no subprotocol
    /// and no extra headers, as every adapter's `accept` does:
    /// [`Op::Open`](super::Op::Open) reads the request and writes the `101`
    /// in one run, with no request to take.
    pub fn accepting(options: &Options) -> Self {
        Self::server_side(options, true)
    }

    fn server_side(options: &Options, accept_any: bool) -> Self {
        let conn = Connection::with_entropy(
            crate::Role::Server,
            options.config.clone(),
            |_: &mut [u8]| {},
        );
        let mut driver = Self::new(conn);
        let side = Side::Server {
            handshake: ServerHandshake::with_config(options.handshake.clone()),
            request: None,
            accepted: false,
            accept_any,
        };
        driver.opening = Some(Opening::new(side, options));
        driver
    }

    /// Whether the opening handshake is over and the connection open (a
    /// driver made with [`new`](Self::new) always is).
    pub fn is_open(&self) -> bool {
        self.opening.is_none()
    }

    /// After [`Op::Open`](super::Op::Open): the server's response, or why
    /// the handshake failed. The connection is then open.
    pub fn take_response(&mut self) -> Result<ClientResponse, HandshakeError> {
        self.handshake_result()?;
        if let Some(Opening {
            side: Side::Client { response, .. },
            ..
        }) = self.opening.as_deref_mut()
            && let Some(response) = response.take()
        {
            self.opening = None;
            return Ok(response);
        }
        Err(HandshakeError::InvalidRequest("no response was read"))
    }

    /// The client's request, read by [`Op::Open`](super::Op::Open) and
    /// kept until it is answered with [`accept`](Self::accept) or
    /// [`reject`](Self::reject) (then run `Op::Open` again). `None` before
    /// it is read, after the answer, and when the handshake failed
    /// ([`handshake_result`](Self::handshake_result) says why).
    pub fn request(&self) -> Option<&ServerRequest> {
        match self.opening.as_deref() {
            Some(Opening {
                side: Side::Server { request, .. },
                ..
            }) => request.as_ref(),
            _ => None,
        }
    }

    /// Accepts the [`request`](Self::request): queues the `101` response and
    /// configures the connection with what it negotiated. Run
    /// [`Op::Open`](super::Op::Open) to write it. An `options` the request
    /// does not allow (an unoffered subprotocol) is an error, and nothing is
    /// queued: the request can still be answered.
    pub fn accept(&mut self, options: &AcceptOptions) -> Result<(), HandshakeError> {
        if let Some(Opening {
            side: Side::Server {
                request, accepted, ..
            },
            ..
        }) = self.opening.as_deref_mut()
            && let Some(read) = request
        {
            let answer = read.accept(options)?;
            (*request, *accepted) = (None, true);
            queue_answer(&mut self.conn, answer);
            return Ok(());
        }
        Err(HandshakeError::InvalidRequest("no request to accept"))
    }

    /// Refuses the [`request`](Self::request) with `status`, `headers` and
    /// `body` (see [`ServerRequest::reject`]): run
    /// [`Op::Open`](super::Op::Open) to write the refusal and shut the
    /// transport down. Without a request to answer, nothing happens.
    pub fn reject(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        if let Some(opening) = self.opening.as_deref_mut()
            && let Side::Server { request, .. } = &mut opening.side
            && let Some(read) = request.take()
        {
            let refusal: Vec<u8> = read.reject(status, headers, body);
            opening.refusing = true;
            self.conn.outgoing().push(Bytes::from(refusal));
        }
    }

    /// After [`Op::Open`](super::Op::Open): why the handshake failed, if it
    /// did (then the transport was shut down, after the error response a
    /// server owes a malformed request).
    pub fn handshake_result(&mut self) -> Result<(), HandshakeError> {
        match self.opening.as_deref_mut().and_then(|o| o.error.take()) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// [`Op::Open`](super::Op::Open): one step of the opening handshake.
    #[cold]
    pub(super) fn poll_open(&mut self) -> Action {
        loop {
            let write_step = self.write_step(false);
            let Some(opening) = self.opening.as_deref_mut() else {
                return Action::Done;
            };
            if self.done {
                return Action::Done;
            }
            let timed_out = opening.error == Some(HandshakeError::TimedOut);
            let ending = opening.error.is_some() || opening.refusing;
            let timer = opening.timeout.is_some() && !ending;
            if let Some(step) = write_step
                && !timed_out
            {
                if self.blocked & WRITE == 0 {
                    return step;
                }
            } else if ending {
                if !self.shut {
                    return Action::Shutdown { discard: timed_out };
                }
                self.finish();
                return Action::Done;
            } else if opening.awaits_application() {
                return Action::Done;
            } else if let Side::Server { accepted: true, .. } = opening.side {
                self.opening = None;
                return Action::Done;
            } else if self.receive_head() {
                continue;
            }
            if timer && self.blocked & TIMER == 0 {
                return Action::Timer;
            }
            if self.blocked & READ != 0 || write_step.is_some() || self.buf_out {
                return Action::Wait;
            }
            return Action::Read { wait: true };
        }
    }

    /// Parses what was read of the other side's head; `true` when that
    /// changed something (a head, an error).
    fn receive_head(&mut self) -> bool {
        let Some(opening) = self.opening.as_deref_mut() else {
            return false;
        };
        let buf = &mut self.read.buf;
        let outcome = match &mut opening.side {
            Side::Client {
                handshake,
                response,
            } => match handshake.receive(buf) {
                Ok(Some(answer)) => {
                    self.conn.set_negotiated(answer.negotiated());
                    *response = Some(answer);
                    Ok(true)
                }
                // A 401 whose body was cut short is still a 401.
                Ok(None) if opening.eof => Err(handshake.receive_eof(buf)),
                Ok(None) => Ok(false),
                Err(error) => Err(error),
            },
            Side::Server {
                handshake,
                request,
                accepted,
                accept_any,
                ..
            } => match handshake.receive(buf) {
                Ok(Some(head)) if *accept_any => head.accept(&AcceptOptions::new()).map(|answer| {
                    queue_answer(&mut self.conn, answer);
                    *accepted = true;
                    true
                }),
                Ok(Some(head)) => {
                    *request = Some(head);
                    Ok(true)
                }
                Ok(None) if opening.eof => Err(HandshakeError::UnexpectedEof),
                Ok(None) => Ok(false),
                Err(error) => Err(error),
            },
        };
        outcome.unwrap_or_else(|error| {
            opening.fail(error, &mut self.conn);
            true
        })
    }

    /// The handshake's timer: see [`timer`](Self::timer).
    pub(super) fn opening_timer(&mut self, now: Duration) -> Option<Duration> {
        let opening = self.opening.as_deref_mut()?;
        let Some(timeout) = opening.timeout.filter(|_| opening.error.is_none()) else {
            self.blocked |= TIMER;
            return None;
        };
        let deadline = *opening
            .deadline
            .get_or_insert_with(|| now.saturating_add(timeout));
        if deadline <= now {
            opening.fail(HandshakeError::TimedOut, &mut self.conn);
            self.blocked = 0;
            return None;
        }
        Some(deadline.min(now.saturating_add(super::MAX_WAIT)))
    }

    /// The handshake's timer fired at `deadline`.
    pub(super) fn opening_timer_fired(&mut self, deadline: Duration) {
        if let Some(opening) = self.opening.as_deref_mut()
            && opening.deadline.is_some_and(|d| deadline >= d)
        {
            opening.fail(HandshakeError::TimedOut, &mut self.conn);
        }
        self.blocked = 0;
    }

    /// The transport ended mid-handshake.
    pub(super) fn opening_eof(&mut self) {
        if let Some(opening) = self.opening.as_deref_mut() {
            opening.eof = true;
        }
    }
}

/// Queues the `101` response of `answer` and configures the connection with
/// what it negotiated.
fn queue_answer(conn: &mut Connection, answer: crate::Accepted) {
    conn.set_negotiated(answer.negotiated().clone());
    conn.outgoing().push(Bytes::from(answer.into_response()));
}
