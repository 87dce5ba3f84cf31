//! Drives the sans-IO core by hand over `std::net::TcpStream`, the way an
//! embedder with their own event loop would: read into a `BytesMut`, drain
//! events, write `outgoing()`, arm the timer from `poll_timeout`.
//!
//! ```text
//! cargo run -p ws-proto --example echo                               # demo: server + client on loopback
//! cargo run -p ws-proto --example echo -- --listen 127.0.0.1:9001   # an echo server until Ctrl-C
//! ```

use std::{
    error::Error,
    io::{self, IoSlice, Read, Write},
    net::{TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

use ws_proto::{
    AcceptOptions, ClientHandshake, ClientRequest, CloseCode, Config, Connection, Event, Message,
    ServerHandshake,
    bytes::{Buf, BytesMut},
};

type Result<T> = core::result::Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, addr] = args.as_slice()
        && flag == "--listen"
    {
        let listener = TcpListener::bind(addr)?;
        println!("echo server on ws://{}", listener.local_addr()?);
        for stream in listener.incoming() {
            let stream = stream?;
            thread::spawn(move || {
                if let Err(e) = serve(stream) {
                    eprintln!("connection ended with an error: {e}");
                }
            });
        }
        return Ok(());
    }

    // Demo: one server connection on an ephemeral loopback port, one client.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("ws://{}/echo", listener.local_addr()?);
    let server = thread::spawn(move || -> Result<()> { serve(listener.accept()?.0) });
    client(&url)?;
    server.join().map_err(|_| "server thread panicked")??;
    Ok(())
}

/// Accepts one WebSocket connection and echoes every message until closed.
fn serve(mut stream: TcpStream) -> Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut handshake = ServerHandshake::new();
    stream.set_read_timeout(Some(Duration::from_secs(10)))?; // handshake timeout
    let request = loop {
        match handshake.receive(&mut buf) {
            Ok(Some(request)) => break request,
            Ok(None) => {}
            Err(e) => {
                // A malformed request gets its 400/426/431 answer, then we hang up.
                if let Some(response) = e.response() {
                    stream.write_all(&response)?;
                }
                return Err(e.into());
            }
        }
        if read_some(&mut stream, &mut buf)? == 0 {
            return Ok(());
        }
    };
    // Accept whatever was asked for, choosing the first offered subprotocol.
    let mut options = AcceptOptions::new();
    if let Some(protocol) = request.protocols().first() {
        options = options.protocol(protocol.clone());
    }
    let accepted = request.accept(&options)?;
    stream.write_all(accepted.response())?;
    let mut conn = accepted.connection(Config::default());
    run(&mut stream, &mut conn, &mut buf, |conn, event| {
        if let Event::Message(message) = event {
            conn.send(message)?;
        }
        Ok(())
    })
}

/// Connects, sends a few messages, prints the echoes, and closes.
fn client(url: &str) -> Result<()> {
    let request = ClientRequest::new(url)?.protocol("echo");
    let mut stream = TcpStream::connect((request.host(), request.port()))?;
    let mut handshake = ClientHandshake::new(&request)?;
    stream.write_all(handshake.request())?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = BytesMut::with_capacity(4096);
    let response = loop {
        if let Some(response) = handshake.receive(&mut buf)? {
            break response;
        }
        if read_some(&mut stream, &mut buf)? == 0 {
            return Err("the server closed during the handshake".into());
        }
    };
    let mut conn = response.connection(Config::default());
    println!("connected to {url}, subprotocol {:?}", conn.protocol());
    let messages = [
        Message::text("hello"),
        Message::binary(vec![1, 2, 3]),
        Message::text("x".repeat(70_000)),
    ];
    let expected = messages.len();
    for message in messages {
        conn.send(message)?;
    }
    let mut echoed = 0;
    run(&mut stream, &mut conn, &mut buf, |conn, event| {
        match event {
            Event::Message(message) => {
                echoed += 1;
                let preview: String = format!("{message:?}").chars().take(40).collect();
                println!("echo {echoed}: {} bytes {preview}...", message.len());
                if echoed == expected {
                    conn.close(CloseCode::NORMAL, "done")?;
                }
            }
            Event::Close(frame) => println!("closed: {} {:?}", frame.code, frame.reason),
            _ => {}
        }
        Ok(())
    })
}

/// The run loop: drain events, flush, stop when the core says so, otherwise
/// wait for bytes or the core's deadline.
fn run(
    stream: &mut TcpStream,
    conn: &mut Connection,
    buf: &mut BytesMut,
    mut on_event: impl FnMut(&mut Connection, Event) -> Result<()>,
) -> Result<()> {
    let origin = Instant::now();
    loop {
        loop {
            match conn.next_event(buf) {
                Ok(Some(event)) => on_event(conn, event)?,
                Ok(None) => break,
                Err(e) => {
                    // The Close frame with e.close_code() is queued: send it, then hang up.
                    let _ = flush(stream, conn);
                    return Err(e.into());
                }
            }
        }
        flush(stream, conn)?;
        if conn.should_close_transport() {
            return Ok(());
        }
        let timeout = conn.poll_timeout(origin.elapsed()).map(|deadline| {
            deadline
                .saturating_sub(origin.elapsed())
                .max(Duration::from_millis(1))
        });
        stream.set_read_timeout(timeout)?;
        match read_some(stream, buf) {
            Ok(0) => conn.handle_eof(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                conn.handle_timeout(origin.elapsed());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads what is available into the spare end of `buf`.
fn read_some(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + 16 * 1024, 0);
    let result = stream.read(&mut buf[start..]);
    buf.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

/// Writes all outgoing bytes with vectored writes.
fn flush(stream: &mut TcpStream, conn: &mut Connection) -> io::Result<()> {
    let out = conn.outgoing();
    while out.has_remaining() {
        let mut slices = [IoSlice::new(&[]); 32];
        let count = out.chunks_vectored(&mut slices);
        let written = stream.write_vectored(&slices[..count])?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        out.advance(written);
    }
    Ok(())
}
