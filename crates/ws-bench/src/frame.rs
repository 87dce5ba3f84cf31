//! Pre-built masked client frames, and a parser that only reads the headers
//! of the server's frames (payloads are skipped, never copied or checked).

/// The masking key of every frame the load generator sends.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Opcode of a text frame.
pub const TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const BINARY: u8 = 0x2;

/// One masked, final frame with opcode `opcode` and a `size`-byte payload
/// (ASCII letters: valid UTF-8 for text frames).
pub fn masked_frame(opcode: u8, size: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    masked(opcode, false, &payload)
}

/// One masked, final frame with opcode `opcode` carrying `payload`, with
/// RSV1 set when `rsv1` (a permessage-deflate compressed message).
pub fn masked(opcode: u8, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let size = payload.len();
    let mut frame = Vec::with_capacity(size + 14);
    frame.push(0x80 | if rsv1 { 0x40 } else { 0 } | opcode);
    match size {
        0..=125 => frame.push(0x80 | size as u8),
        126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(size as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// Why the server's byte stream was not a stream of echoes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The server sent a Close frame.
    Close,
    /// A reserved bit or an unknown opcode.
    Invalid,
}

/// Counts complete data messages in the server's frames, reading headers
/// only: a message is a final text, binary or continuation frame, whatever
/// its length (compressed echoes differ in size from what was sent).
#[derive(Debug, Default)]
pub struct EchoCounter {
    /// RSV1 (permessage-deflate's "compressed") is allowed.
    rsv1: bool,
    header: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// The current frame ends a data message.
    ends_message: bool,
}

impl EchoCounter {
    /// A counter at a frame boundary.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter for a connection with permessage-deflate negotiated: RSV1
    /// is allowed on the first frame of a message.
    pub fn deflate() -> Self {
        Self {
            rsv1: true,
            ..Self::default()
        }
    }

    /// The header length once its first two bytes are known.
    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let b1 = self.header[1];
        let ext = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
    }

    /// Payload bytes of the current frame not yet consumed (0 at a header).
    pub const fn payload_left(&self) -> u64 {
        self.skip
    }

    /// Consumes `n` payload bytes (at most [`payload_left`](Self::payload_left))
    /// that were discarded without being read; returns 1 if they completed a
    /// data message.
    pub fn discard(&mut self, n: u64) -> u64 {
        let n = n.min(self.skip);
        self.skip -= n;
        u64::from(n > 0 && self.skip == 0 && self.ends_message)
    }

    /// Consumes `data`; returns how many data messages it completed.
    pub fn feed(&mut self, data: &[u8]) -> Result<u64, ParseError> {
        let mut done = 0;
        let mut at = 0;
        while at < data.len() {
            if self.skip > 0 {
                let take = self.skip.min((data.len() - at) as u64);
                at += take as usize;
                self.skip -= take;
                if self.skip == 0 && self.ends_message {
                    done += 1;
                }
                continue;
            }
            let need = self.header_len();
            let take = (need - self.have).min(data.len() - at);
            self.header[self.have..self.have + take].copy_from_slice(&data[at..at + take]);
            self.have += take;
            at += take;
            if self.have < 2 || self.have < self.header_len() {
                continue;
            }
            let (b0, b1) = (self.header[0], self.header[1]);
            let opcode = b0 & 0x0f;
            let reserved = if self.rsv1 { 0x30 } else { 0x70 };
            if b0 & reserved != 0 || (b0 & 0x40 != 0 && !matches!(opcode, 0x1 | 0x2)) {
                return Err(ParseError::Invalid);
            }
            match opcode {
                0x8 => return Err(ParseError::Close),
                0x0..=0x2 | 0x9 | 0xa => {}
                _ => return Err(ParseError::Invalid),
            }
            let len = match b1 & 0x7f {
                126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                127 => {
                    let mut be = [0; 8];
                    be.copy_from_slice(&self.header[2..10]);
                    u64::from_be_bytes(be)
                }
                n => u64::from(n),
            };
            self.have = 0;
            self.ends_message = b0 & 0x80 != 0 && opcode <= 0x2;
            self.skip = len;
            if len == 0 && self.ends_message {
                done += 1;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmasked(opcode: u8, fin: bool, size: usize) -> Vec<u8> {
        let mut f = masked_frame(opcode, size);
        f[0] = if fin { 0x80 | opcode } else { opcode };
        f[1] &= 0x7f;
        let at = f.len() - size - 4;
        f.drain(at..at + 4);
        f
    }

    #[test]
    fn counts_across_any_split() {
        let mut stream = Vec::new();
        for size in [0, 16, 125, 126, 1024, 65535, 65536, 70000] {
            stream.extend(unmasked(TEXT, true, size));
            stream.extend(unmasked(0x9, true, 3));
            stream.extend(unmasked(BINARY, false, 10));
            stream.extend(unmasked(0x0, true, size));
        }
        for chunk in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let mut counter = EchoCounter::new();
            let total: u64 = stream.chunks(chunk).map(|c| counter.feed(c).unwrap()).sum();
            assert_eq!(total, 16, "chunk {chunk}");
        }
    }

    #[test]
    fn masked_frame_unmasks_to_letters() {
        let f = masked_frame(TEXT, 300);
        assert_eq!(&f[..4], &[0x81, 0x80 | 126, 1, 44]);
        let payload: Vec<u8> = f[8..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ MASK[i % 4])
            .collect();
        assert!(payload.iter().all(u8::is_ascii_lowercase));
    }

    #[test]
    fn discard_completes_a_message() {
        let frame = unmasked(BINARY, true, 70000);
        let mut counter = EchoCounter::new();
        assert_eq!(counter.feed(&frame[..100]).unwrap(), 0);
        assert_eq!(counter.payload_left(), 70000 - 90);
        assert_eq!(counter.discard(60000), 0);
        assert_eq!(counter.feed(&frame[60100..frame.len() - 1]).unwrap(), 0);
        assert_eq!(counter.discard(5), 1);
        assert_eq!(counter.payload_left(), 0);
    }

    #[test]
    fn compressed_echoes_of_any_size_across_any_split() {
        let mut stream = Vec::new();
        for size in [5, 125, 126, 700, 9000, 70000] {
            let mut f = unmasked(TEXT, true, size);
            f[0] |= 0x40;
            stream.extend(f);
            // A fragmented compressed message: RSV1 on its first frame only.
            let mut first = unmasked(TEXT, false, size / 2);
            first[0] |= 0x40;
            stream.extend(first);
            stream.extend(unmasked(0x0, true, size - size / 2));
        }
        for chunk in [1, 2, 3, 5, 13, 100, 4096, stream.len()] {
            let mut counter = EchoCounter::deflate();
            let total: u64 = stream.chunks(chunk).map(|c| counter.feed(c).unwrap()).sum();
            assert_eq!(total, 12, "chunk {chunk}");
        }
        assert_eq!(
            EchoCounter::new().feed(&stream[..2]),
            Err(ParseError::Invalid)
        );
        assert_eq!(
            EchoCounter::deflate().feed(&[0xc9, 0x00]),
            Err(ParseError::Invalid)
        );
    }

    #[test]
    fn masked_carries_rsv1_and_payload() {
        let f = masked(TEXT, true, b"abcdef");
        assert_eq!(&f[..2], &[0xc1, 0x86]);
        let payload: Vec<u8> = f[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ MASK[i % 4])
            .collect();
        assert_eq!(payload, b"abcdef");
    }

    #[test]
    fn close_is_reported() {
        assert_eq!(
            EchoCounter::new().feed(&[0x88, 0x00]),
            Err(ParseError::Close)
        );
    }
}
