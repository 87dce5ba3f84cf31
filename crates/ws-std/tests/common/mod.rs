//! What the smoke and streaming tests share: a time limit on a test, a
//! one-connection server on its own thread, a client handshaken by hand and
//! its frames (`masked`, shared with the async adapters' tests).

#![allow(dead_code, unused_imports)] // each test binary uses a different part

use core::time::Duration;
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    thread,
};

use ws_proto::ClientHandshake;
use ws_std::{BytesMut, ClientRequest};

#[path = "../../../ws-async/adapter-tests/frames.rs"]
mod frames;

pub(crate) use frames::masked;

/// Runs `f` on its own thread; fails the test past `secs`.
pub(crate) fn bounded<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || tx.send(f()).unwrap());
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!(),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("not done within {secs} s"),
    }
}

/// Serves one connection on 127.0.0.1:0 with `serve`.
pub(crate) fn serve<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (String, thread::JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || serve(listener.accept().unwrap().0));
    (format!("ws://{addr}/"), handle)
}

/// A hand-driven client after its handshake (and the bytes read past it).
pub(crate) fn raw_client(url: &str) -> (TcpStream, BytesMut) {
    let request = ClientRequest::new(url).unwrap();
    let mut stream = TcpStream::connect((request.host(), request.port())).unwrap();
    let mut handshake = ClientHandshake::new(&request).unwrap();
    stream.write_all(handshake.request()).unwrap();
    let mut buf = BytesMut::new();
    while handshake.receive(&mut buf).unwrap().is_none() {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    (stream, buf)
}
