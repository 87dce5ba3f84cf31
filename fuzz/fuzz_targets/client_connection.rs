//! A client-role connection fed arbitrary server bytes in arbitrary chunks.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::drive(ws_proto::Role::Client, data, false));
