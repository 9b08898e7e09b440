//! Twilio's signed string: the URL it called and the POST parameters, or
//! for JSON bodies the body's SHA-256 in the URL; and which algorithm a
//! Webhook Setting announced.

use super::{VerifyError, constant_time_eq};

/// Announces that a Twilio Webhook Setting signed the request, and how:
/// `key=<SharedKey sid>,algorithm=HMAC_SHA256` (or `HMAC_SHA1`).
pub const SIGNATURE_SETTINGS: &str = "x-twilio-webhooks-signature-settings";

pub enum Algorithm {
    Sha1,
    Sha256,
}

pub fn announced_algorithm(settings: &str) -> Result<Algorithm, VerifyError> {
    let algorithm = settings
        .split(',')
        .find_map(|part| part.trim().strip_prefix("algorithm="))
        .ok_or(VerifyError::Malformed(SIGNATURE_SETTINGS))?;
    match algorithm.trim() {
        a if a.eq_ignore_ascii_case("HMAC_SHA256") => Ok(Algorithm::Sha256),
        a if a.eq_ignore_ascii_case("HMAC_SHA1") => Ok(Algorithm::Sha1),
        _ => Err(VerifyError::Malformed(SIGNATURE_SETTINGS)),
    }
}

/// Twilio signs the full URL it called, then (for form posts) every POST
/// parameter as name+value sorted by name. JSON posts instead carry the
/// body's SHA-256 in the `bodySHA256` query parameter, which is part of the
/// signed URL.
pub fn signed_message(
    url: &str,
    query: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Result<String, VerifyError> {
    let mut message = String::with_capacity(url.len() + body.len() + 16);
    message.push_str(url);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        message.push(if url.contains('?') { '&' } else { '?' });
        message.push_str(q);
    }
    if content_type
        .trim_start()
        .starts_with("application/x-www-form-urlencoded")
    {
        let mut params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        params.sort();
        for (k, v) in params {
            message.push_str(&k);
            message.push_str(&v);
        }
    } else if let Some(expected) = query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned())
    {
        let actual = hex::encode(ring::digest::digest(&ring::digest::SHA256, body));
        if !constant_time_eq(actual.as_bytes(), expected.to_ascii_lowercase().as_bytes()) {
            return Err(VerifyError::Mismatch);
        }
    }
    Ok(message)
}
