//! Hot-path micro benchmarks: signature verification per scheme, and the
//! work ingest does around the single Redis round trip (header encoding,
//! id/type extraction). Compare schemes against the `none` baseline
//! measured in the same run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hookd::config::{HmacAlgorithm, Secret, SignatureEncoding, VerifyConfig};
use hookd::extract::{self, Body, FieldSource};
use hookd::verify::{SignedRequest, Verifier};
use http::{HeaderMap, HeaderName, HeaderValue};

fn body_1k() -> Vec<u8> {
    let mut body = br#"{"id":"evt_1234567890","type":"invoice.paid","data":{"blob":""#.to_vec();
    body.resize(1000, b'x');
    body.extend_from_slice(br#""}}"#);
    body
}

fn schemes() -> Vec<(&'static str, VerifyConfig)> {
    let s = |v: &str| vec![Secret::literal(v)];
    let tol = Duration::from_secs(300);
    vec![
        ("none", VerifyConfig::None {}),
        (
            "standard-webhooks",
            VerifyConfig::StandardWebhooks {
                secrets: s("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                tolerance: tol,
            },
        ),
        (
            "stripe",
            VerifyConfig::Stripe {
                secrets: s("whsec_x"),
                tolerance: tol,
            },
        ),
        (
            "github",
            VerifyConfig::Github {
                secrets: s("x"),
                allow_sha1: false,
            },
        ),
        ("shopify", VerifyConfig::Shopify { secrets: s("x") }),
        (
            "slack",
            VerifyConfig::Slack {
                secrets: s("x"),
                tolerance: tol,
            },
        ),
        ("gitlab", VerifyConfig::Gitlab { secrets: s("x") }),
        (
            "paddle",
            VerifyConfig::Paddle {
                secrets: s("x"),
                tolerance: tol,
            },
        ),
        (
            "square",
            VerifyConfig::Square {
                secrets: s("x"),
                url: "https://example.com/sq".into(),
            },
        ),
        (
            "hmac-sha512",
            VerifyConfig::Hmac {
                secrets: s("x"),
                header: "x-sig".into(),
                algorithm: HmacAlgorithm::Sha512,
                encoding: SignatureEncoding::Hex,
                prefix: String::new(),
            },
        ),
    ]
}

fn headers_for(verifier: &Verifier, body: &[u8], now: i64) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in verifier
        .sign(body, now, "evt_1234567890", "application/json", None)
        .unwrap()
    {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    map.insert("content-type", HeaderValue::from_static("application/json"));
    map
}

fn verify(c: &mut Criterion) {
    let body = body_1k();
    let now = 1_700_000_000;
    let mut group = c.benchmark_group("verify_1KiB");
    group.throughput(Throughput::Elements(1));
    for (name, config) in schemes() {
        let verifier = Verifier::build(&config).unwrap();
        let headers = headers_for(&verifier, &body, now);
        group.bench_function(name, |b| {
            b.iter(|| {
                let req = SignedRequest {
                    headers: black_box(&headers),
                    query: None,
                    body: black_box(&body),
                };
                verifier.verify(&req, now).unwrap()
            })
        });
    }
    group.finish();
}

fn stream_entry(headers: bytes::Bytes, body: bytes::Bytes) -> fred::types::Value {
    use fred::types::Value;
    let fields = [
        ("id", Value::from("evt_1NqZr2Ld8yKpR4")),
        ("type", Value::from("invoice.paid")),
        ("ct", Value::from("application/json")),
        ("hdr", Value::Bytes(headers)),
        ("body", Value::Bytes(body)),
        ("rcv", Value::from("1700000000123")),
        ("att", Value::from("0")),
    ];
    Value::Array(vec![
        Value::from("1700000000123-0"),
        Value::Array(
            fields
                .into_iter()
                .flat_map(|(k, v)| [Value::from(k), v])
                .collect(),
        ),
    ])
}

fn envelope(c: &mut Criterion) {
    let body = body_1k();
    let stripe = schemes().remove(2).1;
    let verifier = Verifier::build(&stripe).unwrap();
    let headers = headers_for(&verifier, &body, 1_700_000_000);
    c.bench_function("encode_headers", |b| {
        b.iter(|| hookd::queue::encode_headers(black_box(&headers)))
    });
    let encoded = hookd::queue::encode_headers(&headers);
    c.bench_function("decode_headers", |b| {
        b.iter(|| hookd::queue::decode_headers(black_box(&encoded)).count())
    });
    // One stream entry as XAUTOCLAIM and XRANGE return it through fred's
    // reply conversion (claimed and dead-lettered events take this path).
    let entry = stream_entry(encoded.clone(), body.clone().into());
    c.bench_function("decode_stream_entry", |b| {
        b.iter(|| {
            hookd::queue::Envelope::from_stream_entry("bench", black_box(entry.clone()))
                .unwrap()
                .attempts
        })
    });
    c.bench_function("extract_id_and_type_json", |b| {
        b.iter(|| {
            let parsed = Body::new(black_box(&body));
            let id = extract::event_id(&FieldSource::Auto, &stripe, &headers, &parsed).unwrap();
            let ty = extract::event_type(&FieldSource::Auto, &stripe, &headers, &parsed);
            (id, ty.len())
        })
    });
    c.bench_function("extract_id_body_sha256", |b| {
        b.iter(|| {
            let parsed = Body::new(black_box(&body));
            extract::event_id(&FieldSource::BodySha256, &stripe, &headers, &parsed).unwrap()
        })
    });
}

criterion_group!(benches, verify, envelope);
criterion_main!(benches);
