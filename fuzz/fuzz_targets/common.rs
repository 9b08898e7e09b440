// Shared by the targets: turns fuzz input into headers and a body.
use http::{HeaderMap, HeaderName, HeaderValue};

/// Input layout: lines `name: value` up to an empty line, then the body.
pub fn split(data: &[u8]) -> (HeaderMap, &[u8], Option<&str>) {
    let mut headers = HeaderMap::new();
    let mut rest = data;
    let mut query = None;
    while let Some(end) = rest.iter().position(|b| *b == b'\n') {
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.is_empty() {
            break;
        }
        if let Some(q) = line.strip_prefix(b"?") {
            query = std::str::from_utf8(q).ok();
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    (headers, rest, query)
}

#[allow(dead_code)]
pub fn schemes() -> Vec<hookd::config::VerifyConfig> {
    use hookd::config::{HmacAlgorithm, Secret, SignatureEncoding, VerifyConfig};
    use std::time::Duration;
    let s = || vec![Secret::literal("whsec_c2VjcmV0"), Secret::literal("second")];
    let t = Duration::from_secs(300);
    vec![
        VerifyConfig::StandardWebhooks {
            secrets: vec![Secret::literal("whsec_c2VjcmV0")],
            tolerance: t,
        },
        VerifyConfig::Stripe {
            secrets: s(),
            tolerance: t,
        },
        VerifyConfig::Github {
            secrets: s(),
            allow_sha1: true,
        },
        VerifyConfig::Shopify { secrets: s() },
        VerifyConfig::Slack {
            secrets: s(),
            tolerance: t,
        },
        VerifyConfig::Twilio {
            secrets: s(),
            shared_keys: s(),
            url: "https://example.com/t".into(),
        },
        VerifyConfig::Gitlab { secrets: s() },
        VerifyConfig::Paddle {
            secrets: s(),
            tolerance: t,
        },
        VerifyConfig::Square {
            secrets: s(),
            url: "https://example.com/s".into(),
        },
        VerifyConfig::Hmac {
            secrets: s(),
            header: "x-sig".into(),
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Base64,
            prefix: "sha256=".into(),
        },
        VerifyConfig::None {},
    ]
}
