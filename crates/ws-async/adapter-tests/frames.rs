//! Raw frames, for the tests of every adapter (ws-tokio, ws-futures,
//! ws-std) that play a client by hand.

/// A masked client frame (payload below 126 bytes) whose first byte (FIN,
/// RSV and opcode) is `first`.
pub(crate) fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [9, 8, 7, 6];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}
