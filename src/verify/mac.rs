//! Comparing the MAC a request carries with the one computed over it:
//! decoded without allocating, compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;

use super::VerifyError;
use crate::config::SignatureEncoding;

/// Room for the longest MAC any scheme checks (HMAC-SHA512, 64 bytes)
/// plus slack for base64's padding; a longer signature cannot match.
const SIGNATURE_BUF: usize = 96;

/// True if any provided signature (text in `encoding`) equals the MAC of
/// `parts` under any key. Signatures are decoded into stack buffers rather
/// than collected on the heap: there are one or two of each, and decoding
/// 64 characters costs less than an allocation. The first that decodes is
/// decoded once (it is usually the only one); no MAC is computed when
/// none decodes.
pub fn any_match<'a, I>(
    keys: &[hmac::Key],
    encoding: SignatureEncoding,
    provided: I,
    parts: &[&[u8]],
) -> Result<(), VerifyError>
where
    I: Iterator<Item = &'a str> + Clone,
{
    let mut first_buf = [0u8; SIGNATURE_BUF];
    let mut rest = provided;
    let Some(first_len) = rest
        .by_ref()
        .find_map(|sig| decode_signature(encoding, sig, &mut first_buf).map(<[u8]>::len))
    else {
        return Err(VerifyError::Mismatch);
    };
    let first = &first_buf[..first_len];
    let mut buf = [0u8; SIGNATURE_BUF];
    for key in keys {
        let mut ctx = hmac::Context::with_key(key);
        for part in parts {
            ctx.update(part);
        }
        let tag = ctx.sign();
        if constant_time_eq(tag.as_ref(), first) {
            return Ok(());
        }
        for sig in rest.clone() {
            if decode_signature(encoding, sig, &mut buf)
                .is_some_and(|sig| constant_time_eq(tag.as_ref(), sig))
            {
                return Ok(());
            }
        }
    }
    Err(VerifyError::Mismatch)
}

/// The signature's bytes, or None if it is not valid `encoding` or too
/// long to be any MAC.
fn decode_signature<'b>(
    encoding: SignatureEncoding,
    text: &str,
    buf: &'b mut [u8; SIGNATURE_BUF],
) -> Option<&'b [u8]> {
    let len = match encoding {
        SignatureEncoding::Hex => {
            let len = text.len() / 2;
            if !text.len().is_multiple_of(2) || len > buf.len() {
                return None;
            }
            hex::decode_to_slice(text, &mut buf[..len]).ok()?;
            len
        }
        SignatureEncoding::Base64 => BASE64.decode_slice(text, buf).ok()?,
    };
    Some(&buf[..len])
}

/// Runs in time independent of where the inputs differ (the length of a
/// MAC is public).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
