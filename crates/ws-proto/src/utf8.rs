//! UTF-8: a validated byte string type and an incremental validator.

use alloc::string::String;
use core::{fmt, ops::Deref, str};

use bytes::Bytes;

/// Immutable, cheaply cloneable UTF-8 text backed by [`Bytes`].
///
/// Received text messages are validated once and then handed out without a copy.
///
/// Invariant: the bytes are valid UTF-8. The field is private and every
/// constructor upholds it (see the `valid_str` module), so [`as_str`](Self::as_str)
/// (and with it `Deref`, `==`, `Display`) costs O(1).
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
    /// invariant cannot be broken from outside: its one caller is
    /// `Connection::finish_message`, for a single-frame text message whose
    /// payload was, within one `next_event` call (holding `&mut` to the
    /// buffer, so nothing could change it in between), fed to the
    /// connection's [`Utf8Validator`] (or proven ASCII at a code point
    /// boundary) and then split off, after [`Utf8Validator::finish`]
    /// reported no code point left open. Anything else goes through
    /// [`try_from_bytes`](Self::try_from_bytes).
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(str::from_utf8(&bytes).is_ok());
        Self(bytes)
    }

    /// The text as a `&str`, in O(1): the bytes were validated when this
    /// value was made.
    #[inline]
    pub fn as_str(&self) -> &str {
        valid_str::as_str_unchecked(&self.0)
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

/// The second audited exception to `#![deny(unsafe_code)]` (the first is
/// `mask::wide`): viewing a [`Utf8Bytes`]'s bytes as `&str` without
/// validating them again, which made every `Deref`, `==` and `Display` O(n).
/// No safe O(1) alternative exists (`str::from_utf8` is the safe path, and
/// it validates); keeping the text as `String`/`Arc<str>` would cost a copy
/// of every received message.
#[allow(unsafe_code)]
mod valid_str {
    /// `bytes` as `&str`. Only for the contents of a [`super::Utf8Bytes`].
    #[inline]
    pub(super) fn as_str_unchecked(bytes: &[u8]) -> &str {
        // SAFETY: only called by `Utf8Bytes::as_str` on its (private) field,
        // which holds valid UTF-8 from construction on: `Bytes` is
        // immutable, and every constructor validates or starts from a `str`:
        // - `new`, `Default`: empty;
        // - `from_static`, `From<&str>`, `From<&String>`, `From<String>`:
        //   the bytes of a `str`/`String`, valid by the type's own invariant;
        // - `try_from_bytes` and `TryFrom<Bytes>` (which calls it): checked
        //   by `validate` (simdutf8, or `is_ascii` for short input), errors
        //   are returned and no value is made;
        // - `from_validated` (`pub(crate)`, debug-asserted): bytes run
        //   through `Utf8Validator` up to `finish()` and not changeable
        //   since, see its doc and `Connection::finish_message`;
        // - `Clone`: a copy of a valid value.
        // No other code builds `Utf8Bytes(..)` from raw bytes, and no API
        // hands out `&mut` access to the bytes.
        unsafe { core::str::from_utf8_unchecked(bytes) }
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

    /// Bytes of the unfinished code point at the end of what was fed (0 to
    /// 3): where a piece of text may be cut.
    pub(crate) fn open_len(&self) -> usize {
        usize::from(self.partial_len)
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

/// The length of the longest prefix of `input` made of whole code points,
/// if everything after it is the start of one; `Err` if `input` holds an
/// invalid sequence.
pub(crate) fn complete_prefix(input: &[u8]) -> Result<usize, InvalidUtf8> {
    match validate(input) {
        Ok(()) => Ok(input.len()),
        Err(e) if e.error_len().is_none() => Ok(e.valid_up_to()),
        Err(_) => Err(InvalidUtf8),
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
pub(crate) fn sequence_len(lead: u8) -> Option<usize> {
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
    fn every_constructor_rejects_or_keeps_the_text() {
        let long_invalid = [&[b'a'; 100][..], b"\xed\xa0\x80"].concat();
        let invalid: &[&[u8]] = &[
            b"\xff",
            b"\xc0\xaf",
            b"\xed\xa0\x80",     // a surrogate
            b"\xf4\x90\x80\x80", // above U+10FFFF
            b"\xf0\x9f\x98",     // cut short
            b"ok\x80",
            &long_invalid, // past the short-input fast path
        ];
        for bytes in invalid {
            let bytes = Bytes::copy_from_slice(bytes);
            assert_eq!(Utf8Bytes::try_from_bytes(bytes.clone()), Err(InvalidUtf8));
            assert_eq!(Utf8Bytes::try_from(bytes), Err(InvalidUtf8));
        }

        let long_valid = "κόσμε ".repeat(20);
        let valid = ["", "hello", "κόσμε", "\u{10FFFF}\u{FFFD}", &long_valid];
        for text in valid {
            let from_bytes = Utf8Bytes::try_from_bytes(Bytes::copy_from_slice(text.as_bytes()));
            let made = [
                from_bytes.expect("valid UTF-8"),
                Utf8Bytes::from(text),
                Utf8Bytes::from(String::from(text)),
                Utf8Bytes::from(&String::from(text)),
                Utf8Bytes::from_validated(Bytes::copy_from_slice(text.as_bytes())),
            ];
            for value in made {
                assert_eq!(value.as_str(), text);
                assert_eq!(&*value, text);
                assert_eq!(value, text);
                assert_eq!(value.len(), text.len());
                assert_eq!(value.to_string(), text);
                assert_eq!(format!("{value:?}"), format!("{text:?}"));
                assert_eq!(value.clone().into_bytes(), text.as_bytes());
            }
        }
        assert_eq!(Utf8Bytes::from_static("static").as_str(), "static");
        assert_eq!(Utf8Bytes::new().as_str(), "");
        assert_eq!(Utf8Bytes::default().as_str(), "");
    }

    #[test]
    fn as_str_borrows_the_bytes_without_a_copy() {
        let text = Utf8Bytes::from("zero copy");
        assert_eq!(text.as_str().as_ptr(), text.as_bytes().as_ptr());
    }

    #[test]
    fn fails_fast_before_the_end() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"ok \xce\xba").is_ok());
        assert!(v.feed(b"\xed\xa0\x80").is_err());
    }
}
