//! Frame header parsing: never panics, never claims more bytes than it was
//! given, and a parsed header re-encodes (minimally) to a header that parses
//! back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::internals::{FrameHeader, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((header, len))) = FrameHeader::parse(data) else {
        return;
    };
    assert!(len <= data.len() && len <= MAX_HEADER_LEN);
    assert!(header.payload_len >> 63 == 0, "top bit lengths are errors");
    let mut encoded = Vec::new();
    header.encode(&mut encoded);
    assert_eq!(encoded.len(), header.encoded_len());
    assert!(encoded.len() <= len, "minimal encoding is never longer");
    assert_eq!(
        FrameHeader::parse(&encoded),
        Ok(Some((header, encoded.len())))
    );
});
