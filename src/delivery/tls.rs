//! TLS for https destinations.

use std::sync::Arc;

use tracing::{debug, warn};

use super::DeliveryError;

/// TLS for https destinations. Trusted: the Mozilla roots built into the
/// binary, so public endpoints work in a bare container, plus the system's
/// store (or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), so a service
/// behind a private CA works once its CA is installed the usual way, as
/// for `rediss://` Redis. An unreadable system store costs only its own
/// certificates, with a warning.
pub fn client_config() -> Result<rustls::ClientConfig, DeliveryError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        warn!(error = %error, "cannot read part of the system's trusted certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    debug!(
        builtin = webpki_roots::TLS_SERVER_ROOTS.len(),
        system = added,
        ignored,
        "certificate authorities trusted for https destinations"
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(DeliveryError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
