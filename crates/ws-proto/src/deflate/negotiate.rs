//! The `Sec-WebSocket-Extensions` side of RFC 7692: the client's offers,
//! the server's choice and answer, the client's check of that answer.

use alloc::{
    string::{String, ToString},
    vec::Vec,
};
use core::fmt::Write as _;

use super::{DeflateConfig, DeflateError, DeflateParams, DeflatePolicy};
use crate::handshake::extension_name;

/// The extension token (RFC 7692 section 7).
pub(crate) const NAME: &str = "permessage-deflate";

/// The four parameters of one offer or answer element (RFC 7692 section 7.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value (client offers only).
    client_max_window_bits: Option<Option<u8>>,
}

/// Parses the parameters of a `permessage-deflate` element. Each may appear
/// once; names match case-insensitively; values may be quoted (RFC 7692
/// section 7.1 and RFC 6455 section 9.1).
fn parse(element: &str) -> Result<Params, DeflateError> {
    let mut params = Params::default();
    for param in element.split(';').skip(1) {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim()))),
            None => (param.trim(), None),
        };
        let known = |wanted: &str| name.eq_ignore_ascii_case(wanted);
        let duplicate = || DeflateError::DuplicateParameter(name.to_string());
        let invalid = || DeflateError::InvalidValue(name.to_string());
        if known("server_no_context_takeover") || known("client_no_context_takeover") {
            if value.is_some() {
                return Err(invalid());
            }
            let flag = if known("server_no_context_takeover") {
                &mut params.server_no_context_takeover
            } else {
                &mut params.client_no_context_takeover
            };
            if *flag {
                return Err(duplicate());
            }
            *flag = true;
        } else if known("server_max_window_bits") {
            if params.server_max_window_bits.is_some() {
                return Err(duplicate());
            }
            // Section 7.1.2.1: a value is required.
            let bits = value.and_then(window_bits).ok_or_else(invalid)?;
            params.server_max_window_bits = Some(bits);
        } else if known("client_max_window_bits") {
            if params.client_max_window_bits.is_some() {
                return Err(duplicate());
            }
            // Section 7.1.2.2: the value is optional in an offer.
            let bits = match value {
                None => None,
                Some(value) => Some(window_bits(value).ok_or_else(invalid)?),
            };
            params.client_max_window_bits = Some(bits);
        } else {
            return Err(DeflateError::UnknownParameter(name.to_string()));
        }
    }
    Ok(params)
}

/// A quoted-string's content (RFC 6455 section 9.1 allows quoting values).
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Window bits: a decimal integer 8 to 15 without sign or leading zero
/// (RFC 7692 sections 7.1.2.1 and 7.1.2.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || value.starts_with('0') {
        return None;
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// Whether an extension element is a permessage-deflate one.
pub(crate) fn is_deflate(element: &str) -> bool {
    extension_name(element).eq_ignore_ascii_case(NAME)
}

/// The client's offers, most preferred first: one with everything the
/// configuration asks for; when it limits the server's window, a second one
/// without that limit, for servers that cannot honour it (they must
/// decline an offer they cannot honour, section 7.1.2.1).
pub(crate) fn offers(config: &DeflateConfig) -> Vec<String> {
    if config.policy == DeflatePolicy::Off {
        return Vec::new();
    }
    let offer = |server_bits: Option<u8>| {
        let mut offer = String::from(NAME);
        if config.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if config.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = server_bits {
            let _ = write!(offer, "; server_max_window_bits={bits}");
        }
        // Always sent, without a value: we honour any limit the server
        // answers (section 7.1.2.2) and compress with no more than our own
        // `client_max_window_bits` anyway. A value here would only be a
        // hint, and would forbid a server from answering a larger limit,
        // which some do (Autobahn's 13.4 and 13.6 answer 15 to any offer).
        offer.push_str("; client_max_window_bits");
        offer
    };
    match config.server_bits() {
        15 => alloc::vec![offer(None)],
        bits => alloc::vec![offer(Some(bits)), offer(None)],
    }
}

/// The client's check of the server's answer: `accepted` are the
/// permessage-deflate elements of `Sec-WebSocket-Extensions`. `Ok(None)`:
/// the server declined.
pub(crate) fn check_response(
    config: &DeflateConfig,
    accepted: &[&str],
) -> Result<Option<DeflateParams>, DeflateError> {
    let element = match accepted {
        [] if config.policy == DeflatePolicy::Require => return Err(DeflateError::Required),
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(DeflateError::DuplicateExtension),
    };
    let params = parse(element)?;
    // Section 7.1.1.1: a server that accepted our server_no_context_takeover
    // says so; it may also announce it unasked.
    if config.server_no_context_takeover && !params.server_no_context_takeover {
        return Err(DeflateError::NotOffered(
            "server_no_context_takeover".into(),
        ));
    }
    // Section 7.1.2.1: an answer to our limited offer carries a value no
    // larger, one to an offer without a limit any value 8 to 15. We send
    // the unlimited offer too whenever we send a limited one, so any valid
    // value answers one of them; without it the server may use 15.
    let recv_bits = params.server_max_window_bits.unwrap_or(15);
    // Section 7.1.2.2: we offered the parameter without a value, so any
    // value 8 to 15 may come back; the client compresses with no more than
    // it, nor than its own setting.
    let mut send_bits = config.client_bits();
    if let Some(answer) = params.client_max_window_bits {
        let bits =
            answer.ok_or_else(|| DeflateError::InvalidValue("client_max_window_bits".into()))?;
        if bits < 9 {
            return Err(DeflateError::UnsupportedWindowBits(bits));
        }
        send_bits = send_bits.min(bits);
    }
    Ok(Some(DeflateParams::new(
        config,
        send_bits,
        recv_bits,
        !(config.client_no_context_takeover || params.client_no_context_takeover),
        !params.server_no_context_takeover,
    )))
}

/// The server's choice: the first acceptable permessage-deflate offer (in
/// the client's order), the parameters it runs with and the answer element
/// to send. `Ok(None)`: declined (no `Sec-WebSocket-Extensions` answer);
/// an error only when deflate is required.
pub(crate) fn accept_offers(
    config: &DeflateConfig,
    offered: &[String],
) -> Result<Option<(DeflateParams, String)>, DeflateError> {
    if config.policy == DeflatePolicy::Off {
        return Ok(None);
    }
    let chosen = offered
        .iter()
        .filter(|element| is_deflate(element))
        .find_map(|element| accept_one(config, element));
    match chosen {
        None if config.policy == DeflatePolicy::Require => Err(DeflateError::Required),
        chosen => Ok(chosen),
    }
}

/// Answers one offer, or `None` to decline it (malformed, or binding us to
/// an 8-bit compression window).
fn accept_one(config: &DeflateConfig, element: &str) -> Option<(DeflateParams, String)> {
    let offer = parse(element).ok()?;
    let mut answer = String::from(NAME);
    // Section 7.1.1.1: honour the request, or announce it unasked.
    let server_reset = offer.server_no_context_takeover || config.server_no_context_takeover;
    if server_reset {
        answer.push_str("; server_no_context_takeover");
    }
    // Section 7.1.1.2: the server may ask the client to reset; a client
    // that offered it resets anyway, so answering it lets us drop the
    // receive window.
    let client_reset = offer.client_no_context_takeover || config.client_no_context_takeover;
    if client_reset {
        answer.push_str("; client_no_context_takeover");
    }
    // Section 7.1.2.1: the client's limit binds our compressor; answered
    // with the value we use. zlib cannot compress with 8: decline.
    let mut send_bits = config.server_bits();
    if let Some(limit) = offer.server_max_window_bits {
        if limit < 9 {
            return None;
        }
        send_bits = send_bits.min(limit);
        let _ = write!(answer, "; server_max_window_bits={send_bits}");
    }
    // Section 7.1.2.2: only a client that offered client_max_window_bits
    // may be asked to use a smaller window; otherwise it may use 15.
    let recv_bits = match offer.client_max_window_bits {
        None => 15,
        Some(limit) => {
            let limit = limit.unwrap_or(15);
            let bits = config.client_bits().min(limit);
            if bits < 15 {
                let _ = write!(answer, "; client_max_window_bits={bits}");
            }
            bits
        }
    };
    let params = DeflateParams::new(config, send_bits, recv_bits, !server_reset, !client_reset);
    Some((params, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_values() {
        for good in ["8", "9", "15"] {
            assert!(window_bits(good).is_some(), "{good}");
        }
        for bad in ["", "7", "16", "08", "+9", "9 ", "1a", "256", "-9"] {
            assert_eq!(window_bits(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parse_rejects_hostile_parameters() {
        assert!(parse("permessage-deflate; x=1").is_err());
        assert!(parse("permessage-deflate; server_max_window_bits").is_err());
        assert!(parse("permessage-deflate; client_no_context_takeover=1").is_err());
        assert!(
            parse("permessage-deflate; client_max_window_bits; client_max_window_bits").is_err()
        );
        assert_eq!(
            parse("permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits"),
            Ok(Params {
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(None),
                ..Params::default()
            })
        );
    }
}
