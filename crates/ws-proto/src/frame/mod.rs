//! Frame headers (RFC 6455 section 5.2): parse from bytes, encode into a `BufMut`.

use bytes::{BufMut, BytesMut};

use crate::error::ProtocolError;

/// A frame opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: starts a text message.
    Text,
    /// 0x2: starts a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Decodes the 4-bit opcode; reserved values are a protocol error.
    pub const fn from_u8(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The 4-bit wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (close, ping, pong).
    pub const fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// The longest possible frame header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER_LEN: usize = 14;

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The FIN bit: this is the last frame of its message.
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as the low three bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a header, otherwise
    /// the header and its length in bytes. Only structural errors are
    /// reported here (reserved opcode, 64-bit length with the top bit set);
    /// role and state rules are the connection's business.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let opcode = OpCode::from_u8(b0 & 0x0F)?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut at) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
                _ => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(bytes) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(bytes);
                    let len = u64::from_be_bytes(be);
                    if len >> 63 != 0 {
                        return Err(ProtocolError::InvalidLength);
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 2),
        };
        let mask = if masked {
            match buf.get(at..at + 4) {
                Some(&[a, b, c, d]) => {
                    at += 4;
                    Some([a, b, c, d])
                }
                _ => return Ok(None),
            }
        } else {
            None
        };
        let header = Self {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x07,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, at)))
    }

    /// The number of bytes [`encode`](Self::encode) writes.
    pub const fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header, using the shortest length encoding.
    pub fn encode(&self, dst: &mut impl BufMut) {
        // Built on the stack and written once: one capacity check, not one
        // per field.
        let mut head = [0u8; MAX_HEADER_LEN];
        let len = self.encode_to_array(&mut head);
        dst.put_slice(&head[..len]);
    }

    /// [`encode`](Self::encode) for the send path's `BytesMut`: the common
    /// two-byte header is a fixed-size copy the compiler inlines, where the
    /// generic `put_slice` costs a call into `bytes` and one into `memcpy`.
    #[inline]
    pub(crate) fn encode_bytes(&self, dst: &mut BytesMut) {
        let mut head = [0u8; MAX_HEADER_LEN];
        match self.encode_to_array(&mut head) {
            2 => dst.extend_from_slice(&head[..2]),
            len => dst.extend_from_slice(&head[..len]),
        }
    }

    #[inline]
    fn encode_to_array(&self, head: &mut [u8; MAX_HEADER_LEN]) -> usize {
        head[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x07) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = match self.payload_len {
            len @ 0..=125 => {
                head[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                head[1] = mask_bit | 126;
                head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                head[1] = mask_bit | 127;
                head[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            head[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn roundtrip(header: FrameHeader) {
        let mut out = Vec::new();
        header.encode(&mut out);
        assert_eq!(out.len(), header.encoded_len());
        let mut bytes = BytesMut::from(&b"before"[..]);
        header.encode_bytes(&mut bytes);
        assert_eq!(
            &bytes[6..],
            &out[..],
            "encode_bytes writes what encode does"
        );
        for cut in 0..out.len() {
            assert_eq!(FrameHeader::parse(&out[..cut]), Ok(None));
        }
        assert_eq!(FrameHeader::parse(&out), Ok(Some((header, out.len()))));
    }

    #[test]
    fn roundtrips_at_length_boundaries() {
        for len in [0, 1, 125, 126, 127, 0xFFFF, 0x1_0000, u64::MAX >> 1] {
            for mask in [None, Some([1, 2, 3, 4])] {
                roundtrip(FrameHeader {
                    fin: len % 2 == 0,
                    rsv: 0,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                });
            }
        }
    }

    #[test]
    fn top_bit_length_is_an_error() {
        let buf = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&buf), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn reserved_opcodes_are_errors() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 0]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }
}
