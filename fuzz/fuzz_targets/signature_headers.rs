//! Every scheme's signature-header parsing and verification, on arbitrary
//! headers, query strings and bodies: must never panic, and never accept
//! (the fuzzer cannot know the secret).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (headers, body, query) = common::split(data);
    for scheme in common::schemes() {
        let verifier = hookd::verify::Verifier::build(&scheme).unwrap();
        let request = hookd::verify::SignedRequest {
            headers: &headers,
            query,
            body,
        };
        let result = verifier.verify(&request, 1_700_000_000);
        if !matches!(scheme, hookd::config::VerifyConfig::None {}) {
            assert!(result.is_err(), "accepted a forged request for {scheme:?}");
        }
    }
});
