//! The incremental UTF-8 validator against `std::str::from_utf8`, for any
//! split of any bytes, including the fail-fast promise: it fails exactly
//! when the bytes seen so far can no longer start a valid string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_proto::internals::Utf8Validator;

fuzz_target!(|data: &[u8]| {
    let [chunk, bytes @ ..] = data else { return };
    let chunk = usize::from(*chunk).max(1);
    let mut validator = Utf8Validator::new();
    let mut seen = 0;
    for piece in bytes.chunks(chunk) {
        seen += piece.len();
        let dead = match std::str::from_utf8(&bytes[..seen]) {
            Ok(_) => false,
            Err(e) => e.error_len().is_some(),
        };
        if validator.feed(piece).is_err() {
            assert!(dead, "failed although the prefix can still be valid");
            assert!(std::str::from_utf8(bytes).is_err());
            return;
        }
        assert!(!dead, "missed an invalid sequence");
    }
    assert_eq!(
        validator.finish().is_ok(),
        std::str::from_utf8(bytes).is_ok()
    );
});
