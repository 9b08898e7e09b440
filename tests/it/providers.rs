//! Requests as the providers' own SDKs send or accept them, through the
//! real binary: signatures computed here from each provider's
//! documentation, not with hookd's signer.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::Method;

use crate::support::*;

fn b64_hmac(algorithm: ring::hmac::Algorithm, key: &str, message: &[u8]) -> String {
    let key = ring::hmac::Key::new(algorithm, key.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, message).as_ref())
}

#[tokio::test(flavor = "multi_thread")]
async fn shopify_headers_without_the_x_prefix_are_accepted() {
    let mut source = SourceSpec::standard("shop", SINK);
    source.verify = r#"{ scheme = "shopify", secrets = ["shpss_hush"] }"#.into();
    let h = Harness::builder().source(source).start().await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    let body = br#"{"id":820982911946154508}"#;
    let headers = vec![
        (
            "shopify-hmac-sha256".to_owned(),
            b64_hmac(ring::hmac::HMAC_SHA256, "shpss_hush", body),
        ),
        (
            "shopify-webhook-id".to_owned(),
            "wh-unprefixed-1".to_owned(),
        ),
        ("shopify-topic".to_owned(), "orders/create".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    let url = daemon.url("/webhooks/shop");
    let reply = request(Method::POST, &url, &headers, Bytes::from_static(body)).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.json()["id"], "wh-unprefixed-1");
    assert!(sink.wait_for(1, Duration::from_secs(10)).await);
    assert_eq!(
        sink.received()[0].header("x-hookd-event-type"),
        "orders/create"
    );
    // A wrong signature under the unprefixed name is still refused.
    let mut forged = headers.clone();
    forged[0].1 = b64_hmac(ring::hmac::HMAC_SHA256, "other", body);
    forged[1].1 = "wh-unprefixed-2".into();
    let reply = request(Method::POST, &url, &forged, Bytes::from_static(body)).await;
    assert_eq!(reply.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_webhook_settings_signed_with_hmac_sha256_are_accepted() {
    let public_url = "https://hooks.example.com/webhooks/tw";
    let mut source = SourceSpec::standard("tw", SINK);
    source.verify = format!(
        r#"{{ scheme = "twilio", secrets = ["auth-token"], shared_keys = ["shared-key-secret"], url = "{public_url}" }}"#
    );
    let h = Harness::builder().source(source).start().await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    let body = b"MessageSid=SM1&Body=hello&From=%2B15550001";
    // Twilio signs the URL followed by the POST parameters sorted by name.
    let mut signed = public_url.to_owned();
    let mut params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    params.sort();
    for (k, v) in &params {
        signed.push_str(k);
        signed.push_str(v);
    }
    let send = |signature: String, settings: Option<&'static str>, id: &'static str| {
        let mut headers = vec![
            ("x-twilio-signature".to_owned(), signature),
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("i-twilio-idempotency-token".to_owned(), id.to_owned()),
        ];
        if let Some(settings) = settings {
            headers.push((
                "x-twilio-webhooks-signature-settings".to_owned(),
                settings.to_owned(),
            ));
        }
        let url = daemon.url("/webhooks/tw");
        async move { request(Method::POST, &url, &headers, Bytes::from_static(body)).await }
    };
    let sha256 = b64_hmac(
        ring::hmac::HMAC_SHA256,
        "shared-key-secret",
        signed.as_bytes(),
    );
    let settings = Some("key=KS0123,algorithm=HMAC_SHA256");
    assert_eq!(send(sha256.clone(), settings, "tw-1").await.status, 202);
    // Plain auth-token signatures (HMAC-SHA1) keep working.
    let sha1 = b64_hmac(
        ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        "auth-token",
        signed.as_bytes(),
    );
    assert_eq!(send(sha1, None, "tw-2").await.status, 202);
    // The same SHA-256 signature without its announcement is refused.
    assert_eq!(send(sha256, None, "tw-3").await.status, 401);
    assert!(sink.wait_for(2, Duration::from_secs(10)).await);
}
