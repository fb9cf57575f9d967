//! TLS acceptors with fresh self-signed certificates, for test servers of
//! HTTPS probes and sources (shared by the plugin-host tests and the
//! real-runtime tests).

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// Serves a certificate for `localhost` that no client trusts (HTTPS probes
/// do not verify).
pub fn self_signed_acceptor() -> TlsAcceptor {
    self_signed_for("localhost").0
}

/// Serves a certificate for `name` (a DNS name or an IP), and gives it in
/// PEM, for a client that is to trust it.
pub fn self_signed_for(name: &str) -> (TlsAcceptor, String) {
    let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("server config");
    (TlsAcceptor::from(Arc::new(config)), certified.cert.pem())
}
