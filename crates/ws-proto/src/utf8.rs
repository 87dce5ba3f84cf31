//! UTF-8: a validated byte string type and an incremental validator.

use alloc::string::String;
use core::{fmt, ops::Deref, str};

use bytes::Bytes;

/// Immutable, cheaply cloneable UTF-8 text backed by [`Bytes`].
///
/// Received text messages are validated once and then handed out without a copy.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// An empty string.
    pub const fn new() -> Self {
        Self(Bytes::new())
    }

    /// Text from a `&'static str`, without copying.
    pub const fn from_static(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }

    /// Validates `bytes` as UTF-8 and wraps them without copying.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, InvalidUtf8> {
        validate(&bytes).map_err(|_| InvalidUtf8)?;
        Ok(Self(bytes))
    }

    /// Wraps bytes the caller has already validated. Crate-internal so that the
    /// invariant cannot be broken from outside.
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(str::from_utf8(&bytes).is_ok());
        Self(bytes)
    }

    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        // The invariant (valid UTF-8) is upheld by every constructor, so this
        // cannot fail; fall back to "" rather than panic to stay panic-free.
        // Safe code must re-check: simdutf8 makes that a fast SIMD pass.
        simdutf8::basic::from_utf8(&self.0).unwrap_or_default()
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Converts into the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<&String> for Utf8Bytes {
    fn from(text: &String) -> Self {
        Self::from(text.as_str())
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Self {
        text.0
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = InvalidUtf8;
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        Self::try_from_bytes(bytes)
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The input was not valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

impl fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl core::error::Error for InvalidUtf8 {}

/// Validates UTF-8 fed in arbitrary pieces, failing at the first invalid
/// sequence rather than at the end of the input.
///
/// A code point split across pieces is carried over (at most 3 bytes), so
/// every split of the same bytes gives the same verdict as [`str::from_utf8`].
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a string.
    pub const fn new() -> Self {
        Self {
            partial: [0; 4],
            partial_len: 0,
        }
    }

    /// Validates the next piece. An error is final: the whole input is invalid
    /// whatever follows.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let need = sequence_len(self.partial[0]).ok_or(InvalidUtf8)?;
            let take = (need - have).min(input.len());
            self.partial[have..have + take].copy_from_slice(&input[..take]);
            let filled = have + take;
            input = &input[take..];
            match validate(&self.partial[..filled]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still incomplete: the input ran out before the code point ended.
                    self.partial_len = filled as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        // The bulk goes through the fastest validator, which reports only
        // yes or no; a code point cut off at the end is split off first, and
        // checked on its own as a prefix so that a bad one still fails now.
        let cut = incomplete_tail(input);
        let (body, tail) = input.split_at(cut);
        if !validate_fast(body) {
            return Err(InvalidUtf8);
        }
        if !tail.is_empty() {
            match validate(tail) {
                Err(e) if e.error_len().is_none() => {}
                _ => return Err(InvalidUtf8),
            }
            self.partial[..tail.len()].copy_from_slice(tail);
            self.partial_len = tail.len() as u8;
        }
        Ok(())
    }

    /// Whether no code point is open: ASCII fed now would be valid.
    pub(crate) fn at_boundary(&self) -> bool {
        self.partial_len == 0
    }

    /// Ends the input: an unfinished code point is an error. Resets the
    /// validator for the next string either way.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }

    /// Forgets any carried bytes.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }
}

/// SIMD-accelerated UTF-8 validation (simdutf8 picks the widest instruction
/// set at run time with `std`, at compile time without), with the same error
/// details as `core::str::from_utf8`: where the valid prefix ends, and
/// whether the input is invalid or merely cut short.
fn validate(input: &[u8]) -> Result<(), simdutf8::compat::Utf8Error> {
    // Short ASCII (most small text messages) needs no full validator: a
    // word-at-a-time high-bit test is a fraction of the cost.
    if input.len() < 64 && input.is_ascii() {
        return Ok(());
    }
    simdutf8::compat::from_utf8(input).map(|_| ())
}

/// Whether `input` is valid UTF-8, as fast as possible (no error details).
fn validate_fast(input: &[u8]) -> bool {
    if input.len() < 64 {
        return input.is_ascii() || str::from_utf8(input).is_ok();
    }
    simdutf8::basic::from_utf8(input).is_ok()
}

/// Where a code point that the end of `input` cuts short begins, or
/// `input.len()` if the last code point is complete (or the end is invalid
/// anyway, which the full check then reports).
fn incomplete_tail(input: &[u8]) -> usize {
    let len = input.len();
    for start in (len.saturating_sub(3)..len).rev() {
        let byte = input[start];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: the lead is further back
        }
        return match sequence_len(byte) {
            Some(need) if start + need > len => start,
            _ => len,
        };
    }
    len
}

/// The length of the UTF-8 sequence a lead byte starts, if it can start one.
fn sequence_len(lead: u8) -> Option<usize> {
    match lead {
        0x00..=0x7F => Some(1),
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(input: &[u8]) -> Vec<bool> {
        (0..=input.len())
            .map(|at| {
                let mut v = Utf8Validator::new();
                v.feed(&input[..at]).is_ok() && v.feed(&input[at..]).is_ok() && v.finish().is_ok()
            })
            .collect()
    }

    #[test]
    fn agrees_with_std_on_every_split() {
        let samples: &[&[u8]] = &[
            b"hello",
            "κόσμε".as_bytes(),
            "\u{10FFFF}\u{FFFD}".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xf4\x90\x80\x80",
            b"\xe0\x80\xaf",
            b"\xc0\xaf",
            b"\xf0\x9f\x98",
            b"",
        ];
        for sample in samples {
            let expected = str::from_utf8(sample).is_ok();
            assert!(
                split_all(sample).iter().all(|&ok| ok == expected),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn fails_fast_before_the_end() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"ok \xce\xba").is_ok());
        assert!(v.feed(b"\xed\xa0\x80").is_err());
    }
}
