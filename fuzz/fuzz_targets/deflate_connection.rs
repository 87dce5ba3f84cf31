//! A connection with permessage-deflate negotiated, fed arbitrary peer bytes
//! in arbitrary chunks: the connection targets' invariants, with RSV1 frames
//! inflated under `max_message_size`. Role from the low bit of byte 0.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use ws_proto::Role;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let role = if first & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    common::drive(role, rest, true);
});
