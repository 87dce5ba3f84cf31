//! What a permessage-deflate connection holds on the heap, counted by a
//! global allocator: right after the handshake, and idle after traffic
//! with and without context takeover. One test, so no other thread
//! allocates meanwhile. `--nocapture` prints the figures.

use std::{alloc::System, time::Duration};

use bytes::BytesMut;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use ws_proto::{
    Buf, Config, Connection, DeflateConfig, DeflateParams, Event, Message, Negotiated, Role,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KIB: isize = 1024;

fn connection(role: Role, params: Option<DeflateParams>) -> Connection {
    let conn = Connection::with_entropy(role, Config::default(), |d: &mut [u8]| d.fill(7));
    match params {
        Some(params) => conn.with_negotiated(
            Negotiated::new(None, vec!["permessage-deflate".into()]).with_deflate(params),
        ),
        None => conn,
    }
}

/// ~760-byte chat events, as in benches/backends.
fn chat(i: usize) -> String {
    format!(
        "{{\"type\":\"message\",\"id\":\"msg-{i:08x}\",\"channel\":\"#ops\",\"ts\":{},\
         \"user\":{{\"name\":\"user{}\",\"status\":\"online\"}},\"text\":\"{}\"}}",
        1_700_000_000 + i * 7,
        i % 8,
        "the deploy is done can you check latency on staging looks good ".repeat(1 + i % 10)
    )
}

fn take(conn: &mut Connection) -> Vec<u8> {
    let out = conn.outgoing();
    let bytes = out.copy_to_bytes(out.remaining());
    bytes.to_vec()
}

/// Live heap bytes of a server connection after the handshake, while busy
/// (right after receiving and sending 100 chat messages), and idle (once
/// its timer had the time to free idle compression contexts).
fn measure(params: Option<(DeflateParams, DeflateParams)>) -> (isize, isize, isize) {
    // The client's messages, prepared outside the counted region.
    let mut client = connection(Role::Client, params.map(|p| p.0));
    let wires: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            client.send(Message::text(chat(i))).unwrap();
            take(&mut client)
        })
        .collect();
    let live = |r: &Region<'_, System>| {
        let s = r.change();
        // `realloc` is already counted in both (stats_alloc 0.1.10).
        s.bytes_allocated as isize - s.bytes_deallocated as isize
    };
    let region = Region::new(GLOBAL);
    let mut server = connection(Role::Server, params.map(|p| p.1));
    let after_handshake = live(&region);
    for (i, wire) in wires.iter().enumerate() {
        let mut buf = BytesMut::from(&wire[..]);
        match server.next_event(&mut buf) {
            Ok(Some(Event::Message(m))) => assert_eq!(m.as_bytes(), chat(i).as_bytes()),
            other => panic!("{other:?}"),
        }
        drop(buf);
        server.send(Message::text(chat(i))).unwrap();
        drop(take(&mut server));
    }
    let busy = live(&region);
    // The clock moves on with no traffic: the timer fires as the adapters'
    // run loop would fire it.
    let mut now = Duration::ZERO;
    for _ in 0..4 {
        if let Some(deadline) = server.poll_timeout(now) {
            now = deadline;
            server.handle_timeout(now);
        }
    }
    let idle = live(&region);
    drop(server);
    (after_handshake, busy, idle)
}

#[test]
fn deflate_memory_per_connection() {
    let d = DeflateConfig::default();
    let both = |bits: u8, takeover: bool| {
        let p = DeflateParams::new(&d, bits, bits, takeover, takeover);
        Some((p, p))
    };
    let (plain_hs, _, plain_idle) = measure(None);
    println!(
        "{:30} after handshake {plain_hs} B, idle after traffic {plain_idle} B",
        "no deflate"
    );
    let rows = [
        ("defaults (12/12, takeover)", both(12, true)),
        ("12/12, no takeover", both(12, false)),
        ("15/15, takeover", both(15, true)),
        ("15/15, no takeover", both(15, false)),
        ("defaults, contexts kept", {
            let d = d.with_release_contexts_after(None);
            let p = DeflateParams::new(&d, 12, 12, true, true);
            Some((p, p))
        }),
    ];
    let mut results = Vec::new();
    for (name, params) in rows {
        let (hs, busy, idle) = measure(params);
        println!("{name:30} after handshake {hs} B, busy {busy} B, idle after traffic {idle} B");
        results.push((hs, idle));
    }
    // The brief: <= 4 KiB right after the handshake; idle after traffic
    // <= 4 KiB more than a plain connection without takeover, <= 64 KiB
    // with takeover at the defaults.
    for (hs, _) in &results {
        assert!(*hs <= 4 * KIB, "{hs}");
    }
    assert!(results[0].1 <= 64 * KIB, "{}", results[0].1);
    assert!(
        results[1].1 - plain_idle <= 4 * KIB,
        "{} vs {plain_idle}",
        results[1].1
    );
    assert!(
        results[3].1 - plain_idle <= 4 * KIB,
        "{} vs {plain_idle}",
        results[3].1
    );
}
