//! Webhook signature verification, byte-exact over the raw body.
//!
//! Keys are derived once at startup; every comparison of a computed MAC with
//! one the client sent is constant-time. Each scheme accepts a list of
//! secrets so secrets can be rotated without downtime.

use std::iter::once;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderName};
use ring::hmac;

use crate::config::SignatureEncoding::{Base64, Hex};
use crate::config::{HmacAlgorithm, SignatureEncoding, VerifyConfig};

mod mac;
pub mod standard_webhooks;
mod twilio;

use mac::any_match;
pub use mac::constant_time_eq;

#[cfg(test)]
mod tests;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("timestamp outside the allowed tolerance")]
    StaleTimestamp,
    #[error("signature does not match")]
    Mismatch,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("at least one secret is required for scheme {0}")]
    NoSecrets(&'static str),
    #[error("secret #{index} is empty")]
    EmptySecret { index: usize },
    /// Says nothing of where the text fails to decode: that would give
    /// away part of the secret.
    #[error("secret #{index} is not valid base64 after the whsec_ prefix")]
    BadBase64 { index: usize },
    #[error("url {0:?} must be an absolute http(s) URL")]
    BadUrl(String),
    #[error("header {0:?} is not a valid header name")]
    BadHeader(String),
    #[error(
        "tolerance must be at least 1s (the timestamp check stops replays and cannot be turned off)"
    )]
    ZeroTolerance,
}

const GITLAB_TOKEN: &[&str] = &["x-gitlab-token"];

/// Whether operator views (admin API, dashboard, `hookd dlq show`) must
/// hide a stored header's value: any scheme's secret-bearing header (events
/// stored before such headers were dropped at ingest may still hold one)
/// and credentials a provider may send.
pub fn is_hidden_in_views(name: &str) -> bool {
    GITLAB_TOKEN.iter().any(|h| name.eq_ignore_ascii_case(h))
        || name.eq_ignore_ascii_case("authorization")
        || name.eq_ignore_ascii_case("proxy-authorization")
}

/// What a verifier looks at. The query string matters for schemes that sign
/// the URL (Twilio).
pub struct SignedRequest<'a> {
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Debug)]
pub struct Verifier {
    scheme: Scheme,
}

#[derive(Debug)]
enum Scheme {
    StandardWebhooks {
        keys: Vec<hmac::Key>,
        tolerance: i64,
    },
    Stripe {
        keys: Vec<hmac::Key>,
        tolerance: i64,
    },
    Github {
        keys: Vec<hmac::Key>,
        sha1_keys: Option<Vec<hmac::Key>>,
    },
    Shopify {
        keys: Vec<hmac::Key>,
    },
    Slack {
        keys: Vec<hmac::Key>,
        tolerance: i64,
    },
    Twilio {
        /// Auth tokens, HMAC-SHA1: requests without signature settings.
        keys: Vec<hmac::Key>,
        /// For requests whose `X-Twilio-Webhooks-Signature-Settings` names
        /// an algorithm: the shared keys (or the auth tokens) under each.
        announced_sha1: Vec<hmac::Key>,
        announced_sha256: Vec<hmac::Key>,
        url: String,
    },
    Gitlab {
        token_digests: Vec<ring::digest::Digest>,
        first_token: String,
    },
    Paddle {
        keys: Vec<hmac::Key>,
        tolerance: i64,
    },
    Square {
        keys: Vec<hmac::Key>,
        url: String,
    },
    Hmac {
        keys: Vec<hmac::Key>,
        header: HeaderName,
        encoding: SignatureEncoding,
        prefix: String,
    },
    None,
}

fn keys(
    scheme: &'static str,
    secrets: &[crate::config::Secret],
    algorithm: hmac::Algorithm,
) -> Result<Vec<hmac::Key>, KeyError> {
    if secrets.is_empty() {
        return Err(KeyError::NoSecrets(scheme));
    }
    secrets
        .iter()
        .enumerate()
        .map(|(index, secret)| {
            if secret.is_empty() {
                return Err(KeyError::EmptySecret { index });
            }
            Ok(hmac::Key::new(algorithm, secret.expose().as_bytes()))
        })
        .collect()
}

fn check_url(url: &str) -> Result<String, KeyError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url.to_owned())
    } else {
        Err(KeyError::BadUrl(url.to_owned()))
    }
}

/// A scheme's `tolerance` in whole seconds, the unit its timestamps come
/// in: under a second would refuse nearly every genuine delivery.
fn tolerance_secs(d: std::time::Duration) -> Result<i64, KeyError> {
    match d.as_secs() {
        0 => Err(KeyError::ZeroTolerance),
        secs => Ok(i64::try_from(secs).unwrap_or(i64::MAX)),
    }
}

impl Verifier {
    /// The verifier a source's `verify` table describes, keys derived once.
    pub fn build(config: &VerifyConfig) -> Result<Self, KeyError> {
        use hmac::{HMAC_SHA1_FOR_LEGACY_USE_ONLY as SHA1, HMAC_SHA256 as SHA256};
        let scheme = match config {
            VerifyConfig::StandardWebhooks { secrets, tolerance } => {
                if secrets.is_empty() {
                    return Err(KeyError::NoSecrets("standard-webhooks"));
                }
                let keys = secrets
                    .iter()
                    .enumerate()
                    .map(|(i, s)| standard_webhooks::key(i, s.expose()))
                    .collect::<Result<_, _>>()?;
                Scheme::StandardWebhooks {
                    keys,
                    tolerance: tolerance_secs(*tolerance)?,
                }
            }
            VerifyConfig::Stripe { secrets, tolerance } => Scheme::Stripe {
                keys: keys("stripe", secrets, SHA256)?,
                tolerance: tolerance_secs(*tolerance)?,
            },
            VerifyConfig::Github {
                secrets,
                allow_sha1,
            } => Scheme::Github {
                keys: keys("github", secrets, SHA256)?,
                sha1_keys: if *allow_sha1 {
                    Some(keys("github", secrets, SHA1)?)
                } else {
                    None
                },
            },
            VerifyConfig::Shopify { secrets } => Scheme::Shopify {
                keys: keys("shopify", secrets, SHA256)?,
            },
            VerifyConfig::Slack { secrets, tolerance } => Scheme::Slack {
                keys: keys("slack", secrets, SHA256)?,
                tolerance: tolerance_secs(*tolerance)?,
            },
            VerifyConfig::Twilio {
                secrets,
                shared_keys,
                url,
            } => {
                let announced = if shared_keys.is_empty() {
                    secrets
                } else {
                    shared_keys
                };
                Scheme::Twilio {
                    keys: keys("twilio", secrets, SHA1)?,
                    announced_sha1: keys("twilio", announced, SHA1)?,
                    announced_sha256: keys("twilio", announced, SHA256)?,
                    url: check_url(url)?,
                }
            }
            VerifyConfig::Gitlab { secrets } => {
                // Validates non-empty the same way as the HMAC schemes.
                keys("gitlab", secrets, SHA256)?;
                Scheme::Gitlab {
                    token_digests: secrets
                        .iter()
                        .map(|s| ring::digest::digest(&ring::digest::SHA256, s.expose().as_bytes()))
                        .collect(),
                    first_token: secrets[0].expose().to_owned(),
                }
            }
            VerifyConfig::Paddle { secrets, tolerance } => Scheme::Paddle {
                keys: keys("paddle", secrets, SHA256)?,
                tolerance: tolerance_secs(*tolerance)?,
            },
            VerifyConfig::Square { secrets, url } => Scheme::Square {
                keys: keys("square", secrets, SHA256)?,
                url: check_url(url)?,
            },
            VerifyConfig::Hmac {
                secrets,
                header,
                algorithm,
                encoding,
                prefix,
            } => {
                let algorithm = match algorithm {
                    HmacAlgorithm::Sha1 => SHA1,
                    HmacAlgorithm::Sha256 => SHA256,
                    HmacAlgorithm::Sha512 => hmac::HMAC_SHA512,
                };
                Scheme::Hmac {
                    keys: keys("hmac", secrets, algorithm)?,
                    header: HeaderName::from_bytes(header.as_bytes())
                        .map_err(|_| KeyError::BadHeader(header.clone()))?,
                    encoding: *encoding,
                    prefix: prefix.clone(),
                }
            }
            VerifyConfig::None {} => Scheme::None,
        };
        Ok(Self { scheme })
    }

    /// Request headers that carry the source's secret itself rather than a
    /// signature over the request: never stored, forwarded or shown.
    pub fn secret_headers(&self) -> &'static [&'static str] {
        match self.scheme {
            Scheme::Gitlab { .. } => GITLAB_TOKEN,
            _ => &[],
        }
    }

    /// `now` is Unix seconds, passed in so tests can pin the clock.
    pub fn verify(&self, req: &SignedRequest, now: i64) -> Result<(), VerifyError> {
        match &self.scheme {
            Scheme::StandardWebhooks { keys, tolerance } => {
                let id = header_either(req.headers, "webhook-id", "svix-id")?;
                let ts = header_either(req.headers, "webhook-timestamp", "svix-timestamp")?;
                let sigs = header_either(req.headers, "webhook-signature", "svix-signature")?;
                check_timestamp(ts, now, *tolerance)?;
                let candidates = sigs.split(' ').filter_map(|s| s.strip_prefix("v1,"));
                any_match(
                    keys,
                    Base64,
                    candidates,
                    &[id.as_bytes(), b".", ts.as_bytes(), b".", req.body],
                )
            }
            Scheme::Stripe { keys, tolerance } => {
                let header = required(req.headers, "stripe-signature")?;
                let mut timestamp = None;
                for part in header.split(',') {
                    if let Some(t) = part.trim().strip_prefix("t=") {
                        timestamp = Some(t);
                    }
                }
                let ts = timestamp.ok_or(VerifyError::Malformed("stripe-signature timestamp"))?;
                check_timestamp(ts, now, *tolerance)?;
                let candidates = header
                    .split(',')
                    .filter_map(|p| p.trim().strip_prefix("v1="));
                any_match(keys, Hex, candidates, &[ts.as_bytes(), b".", req.body])
            }
            Scheme::Github { keys, sha1_keys } => {
                if let Some(sig) = optional(req.headers, "x-hub-signature-256")? {
                    let sig = sig
                        .strip_prefix("sha256=")
                        .ok_or(VerifyError::Malformed("x-hub-signature-256"))?;
                    return any_match(keys, Hex, once(sig), &[req.body]);
                }
                match (sha1_keys, optional(req.headers, "x-hub-signature")?) {
                    (Some(keys), Some(sig)) => {
                        let sig = sig
                            .strip_prefix("sha1=")
                            .ok_or(VerifyError::Malformed("x-hub-signature"))?;
                        any_match(keys, Hex, once(sig), &[req.body])
                    }
                    _ => Err(VerifyError::MissingHeader("x-hub-signature-256")),
                }
            }
            Scheme::Shopify { keys } => {
                // Shopify's own library accepts the unprefixed names too.
                let sig =
                    header_either(req.headers, "x-shopify-hmac-sha256", "shopify-hmac-sha256")?;
                any_match(keys, Base64, once(sig), &[req.body])
            }
            Scheme::Slack { keys, tolerance } => {
                let ts = required(req.headers, "x-slack-request-timestamp")?;
                let sig = required(req.headers, "x-slack-signature")?;
                check_timestamp(ts, now, *tolerance)?;
                let sig = sig
                    .strip_prefix("v0=")
                    .ok_or(VerifyError::Malformed("x-slack-signature"))?;
                any_match(
                    keys,
                    Hex,
                    once(sig),
                    &[b"v0:", ts.as_bytes(), b":", req.body],
                )
            }
            Scheme::Twilio {
                keys,
                announced_sha1,
                announced_sha256,
                url,
            } => {
                let sig = required(req.headers, "x-twilio-signature")?;
                let keys = match optional(req.headers, twilio::SIGNATURE_SETTINGS)? {
                    None => keys,
                    Some(settings) => match twilio::announced_algorithm(settings)? {
                        twilio::Algorithm::Sha1 => announced_sha1,
                        twilio::Algorithm::Sha256 => announced_sha256,
                    },
                };
                let content_type = optional(req.headers, "content-type")?.unwrap_or("");
                let message = twilio::signed_message(url, req.query, content_type, req.body)?;
                any_match(keys, Base64, once(sig), &[message.as_bytes()])
            }
            Scheme::Gitlab { token_digests, .. } => {
                let token = required(req.headers, "x-gitlab-token")?;
                // Comparing digests keeps the comparison constant-time and
                // independent of the token's length.
                let provided = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
                if token_digests
                    .iter()
                    .any(|d| constant_time_eq(d.as_ref(), provided.as_ref()))
                {
                    Ok(())
                } else {
                    Err(VerifyError::Mismatch)
                }
            }
            Scheme::Paddle { keys, tolerance } => {
                let header = required(req.headers, "paddle-signature")?;
                let ts = header
                    .split(';')
                    .find_map(|p| p.trim().strip_prefix("ts="))
                    .ok_or(VerifyError::Malformed("paddle-signature timestamp"))?;
                check_timestamp(ts, now, *tolerance)?;
                let candidates = header
                    .split(';')
                    .filter_map(|p| p.trim().strip_prefix("h1="));
                any_match(keys, Hex, candidates, &[ts.as_bytes(), b":", req.body])
            }
            Scheme::Square { keys, url } => {
                let sig = required(req.headers, "x-square-hmacsha256-signature")?;
                any_match(keys, Base64, once(sig), &[url.as_bytes(), req.body])
            }
            Scheme::Hmac {
                keys,
                header,
                encoding,
                prefix,
            } => {
                let value = req
                    .headers
                    .get(header)
                    .ok_or(VerifyError::MissingHeader("signature"))?
                    .to_str()
                    .map_err(|_| VerifyError::Malformed("signature header"))?
                    .trim();
                let value = value
                    .strip_prefix(prefix.as_str())
                    .ok_or(VerifyError::Malformed("signature prefix"))?;
                any_match(keys, *encoding, once(value), &[req.body])
            }
            Scheme::None => Ok(()),
        }
    }

    /// The headers this scheme's provider would send for `body`, signed with
    /// the first secret (`hookd sign`, tests). `id` is used where the
    /// provider sends an id header.
    pub fn sign(
        &self,
        body: &[u8],
        now: i64,
        id: &str,
        content_type: &str,
        query: Option<&str>,
    ) -> Result<Vec<(String, String)>, VerifyError> {
        let ts = now.to_string();
        let mac = |keys: &[hmac::Key], parts: &[&[u8]]| -> Vec<u8> {
            let mut ctx = hmac::Context::with_key(&keys[0]);
            for part in parts {
                ctx.update(part);
            }
            ctx.sign().as_ref().to_vec()
        };
        let h = |k: &str, v: String| (k.to_owned(), v);
        Ok(match &self.scheme {
            Scheme::StandardWebhooks { keys, .. } => vec![
                h("webhook-id", id.to_owned()),
                h("webhook-timestamp", ts.clone()),
                h(
                    "webhook-signature",
                    standard_webhooks::signature(&keys[0], id, &ts, body),
                ),
            ],
            Scheme::Stripe { keys, .. } => vec![h(
                "Stripe-Signature",
                format!(
                    "t={ts},v1={}",
                    hex::encode(mac(keys, &[ts.as_bytes(), b".", body]))
                ),
            )],
            Scheme::Github { keys, .. } => vec![
                h("X-GitHub-Delivery", id.to_owned()),
                h(
                    "X-Hub-Signature-256",
                    format!("sha256={}", hex::encode(mac(keys, &[body]))),
                ),
            ],
            Scheme::Shopify { keys } => vec![
                h("X-Shopify-Webhook-Id", id.to_owned()),
                h("X-Shopify-Hmac-Sha256", BASE64.encode(mac(keys, &[body]))),
            ],
            Scheme::Slack { keys, .. } => vec![
                h("X-Slack-Request-Timestamp", ts.clone()),
                h(
                    "X-Slack-Signature",
                    format!(
                        "v0={}",
                        hex::encode(mac(keys, &[b"v0:", ts.as_bytes(), b":", body]))
                    ),
                ),
            ],
            Scheme::Twilio { keys, url, .. } => {
                let message = twilio::signed_message(url, query, content_type, body)?;
                vec![
                    h("I-Twilio-Idempotency-Token", id.to_owned()),
                    h(
                        "X-Twilio-Signature",
                        BASE64.encode(mac(keys, &[message.as_bytes()])),
                    ),
                ]
            }
            Scheme::Gitlab { first_token, .. } => vec![
                h("X-Gitlab-Event-UUID", id.to_owned()),
                h("X-Gitlab-Token", first_token.clone()),
            ],
            Scheme::Paddle { keys, .. } => vec![h(
                "Paddle-Signature",
                format!(
                    "ts={ts};h1={}",
                    hex::encode(mac(keys, &[ts.as_bytes(), b":", body]))
                ),
            )],
            Scheme::Square { keys, url } => vec![h(
                "x-square-hmacsha256-signature",
                BASE64.encode(mac(keys, &[url.as_bytes(), body])),
            )],
            Scheme::Hmac {
                keys,
                header,
                encoding,
                prefix,
            } => {
                let raw = mac(keys, &[body]);
                let encoded = match encoding {
                    SignatureEncoding::Hex => hex::encode(raw),
                    SignatureEncoding::Base64 => BASE64.encode(raw),
                };
                vec![
                    h("webhook-id", id.to_owned()),
                    h(header.as_str(), format!("{prefix}{encoded}")),
                ]
            }
            Scheme::None => vec![h("webhook-id", id.to_owned())],
        })
    }
}

fn optional<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, VerifyError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| VerifyError::Malformed(name)),
    }
}

fn required<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, VerifyError> {
    optional(headers, name)?.ok_or(VerifyError::MissingHeader(name))
}

fn header_either<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
    alias: &'static str,
) -> Result<&'h str, VerifyError> {
    match optional(headers, name)? {
        Some(v) => Ok(v),
        None => optional(headers, alias)?.ok_or(VerifyError::MissingHeader(name)),
    }
}

fn check_timestamp(ts: &str, now: i64, tolerance: i64) -> Result<(), VerifyError> {
    let ts: i64 = ts
        .parse()
        .map_err(|_| VerifyError::Malformed("timestamp"))?;
    if now.abs_diff(ts) > tolerance.unsigned_abs() {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(())
}
