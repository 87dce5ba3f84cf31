//! Socket options of every benchmark socket.

use std::{io, os::fd::AsFd};

use socket2::SockRef;

/// The congestion control used on benchmark sockets. The machines' default
/// (BBR) paces loopback traffic and made the client the bottleneck.
pub const CONGESTION: &[u8] = b"cubic";

/// Sets `TCP_NODELAY` and the [`CONGESTION`] control on a socket.
pub fn tune(socket: &impl AsFd) -> io::Result<()> {
    let socket = SockRef::from(socket);
    socket.set_tcp_nodelay(true)?;
    socket.set_tcp_congestion(CONGESTION)
}

/// Sets the [`CONGESTION`] control only (a listener: accepted sockets
/// inherit it).
pub fn set_congestion(socket: &impl AsFd) -> io::Result<()> {
    SockRef::from(socket).set_tcp_congestion(CONGESTION)
}
