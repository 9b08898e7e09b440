//! A private certificate authority for https destinations.

/// A private certificate authority and a server certificate it issued for
/// 127.0.0.1 and localhost, as a company CA would for an internal service.
pub struct TestCa {
    /// The CA certificate, PEM, for `SSL_CERT_FILE`.
    pub ca_pem: String,
    pub(super) leaf: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    pub(super) leaf_key: tokio_rustls::rustls::pki_types::PrivateKeyDer<'static>,
}

impl TestCa {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hookd test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");
        Self {
            ca_pem: ca_cert.pem(),
            leaf: leaf.der().clone(),
            leaf_key: tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer::from(
                leaf_key.serialize_der(),
            )
            .into(),
        }
    }
}
