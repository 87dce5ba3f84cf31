//! A server-role connection fed arbitrary client bytes in arbitrary chunks.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::drive(ws_proto::Role::Server, data, false));
