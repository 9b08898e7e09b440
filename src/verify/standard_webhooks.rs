//! The Standard Webhooks signature (also Svix's): HMAC-SHA256 over
//! `id.timestamp.body`, sent as `v1,<base64>`. One signer for both sides:
//! checking what providers send and signing what hookd delivers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;

use super::KeyError;

/// A key written `whsec_` + base64 of its bytes (#`index` in its list).
pub fn key(index: usize, secret: &str) -> Result<hmac::Key, KeyError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let raw = BASE64
        .decode(encoded)
        .map_err(|_| KeyError::BadBase64 { index })?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &raw))
}

/// A destination's `signing_secret`: `whsec_<base64>` per the
/// specification, anything else used as the raw key bytes.
pub fn signing_key(secret: &str) -> hmac::Key {
    key(0, secret).unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
}

/// The MAC of one message.
pub fn mac(key: &hmac::Key, id: &str, timestamp: &str, body: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    ctx.sign()
}

/// The `webhook-signature` header value for one message.
pub fn signature(key: &hmac::Key, id: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v1,{}",
        BASE64.encode(mac(key, id, timestamp, body).as_ref())
    )
}
