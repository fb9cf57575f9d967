//! The kubelet port's TLS: its serving certificate (the configured one, else
//! a self-signed pair kept in `<rootDir>/pki` as the kubelet keeps its own),
//! the client CAs that client certificates are verified against, and the
//! user a verified client certificate names.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use wasmlet_kube::reviews::UserInfo;

use crate::daemon::config::{AgentFileConfig, TlsVersion};

/// The server side of the kubelet port's TLS, from the config's fields.
/// Blocking (files, key generation): call it off the async runtime.
pub fn server_config(
    config: &AgentFileConfig,
    node_name: &str,
    node_ip: Option<IpAddr>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = match (&config.tls_cert_file, &config.tls_private_key_file) {
        (Some(cert), Some(key)) => (
            read_chain(cert).context("tlsCertFile")?,
            read_key(key).context("tlsPrivateKeyFile")?,
        ),
        _ => self_signed(&config.root_dir.join("pki"), node_name, node_ip)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        match TlsVersion::parse(&config.tls_min_version).map_err(anyhow::Error::msg)? {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .context("tlsMinVersion")?;
    let builder = match &config.authentication.x509.client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_chain(path).context("authentication.x509.clientCAFile")? {
                roots.add(cert).with_context(|| {
                    format!("authentication.x509.clientCAFile {}", path.display())
                })?;
            }
            // A request without a certificate may still bring a token, or be anonymous.
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .allow_unauthenticated()
                .build()
                .context("authentication.x509.clientCAFile")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(chain, key)
        .context("the kubelet port's certificate and key")?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{}: reading PEM certificates", path.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{}: no certificate", path.display());
    Ok(chain)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("{}: reading a PEM private key", path.display()))
}

/// `<dir>/kubelet.crt` and `kubelet.key`, made on first use: for the node's
/// name, `localhost`, 127.0.0.1 and the node's IP.
fn self_signed(
    dir: &Path,
    node_name: &str,
    node_ip: Option<IpAddr>,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let cert_path: PathBuf = dir.join("kubelet.crt");
    let key_path = dir.join("kubelet.key");
    if cert_path.exists() && key_path.exists() {
        return Ok((read_chain(&cert_path)?, read_key(&key_path)?));
    }
    let mut names = vec![node_name.to_owned(), "localhost".to_owned()];
    names.push("127.0.0.1".into());
    if let Some(ip) = node_ip {
        names.push(ip.to_string());
    }
    let key = rcgen::KeyPair::generate().context("generating the kubelet port's key")?;
    let mut params = rcgen::CertificateParams::new(names).context("the self-signed certificate")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{node_name}@wasmlet"));
    let cert = params
        .self_signed(&key)
        .context("signing the kubelet port's certificate")?;
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem()).with_context(|| format!("{}", cert_path.display()))?;
    tracing::info!(certificate = %cert_path.display(), "made a self-signed certificate for the kubelet port");
    Ok((
        vec![cert.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).map_err(anyhow::Error::msg)?,
    ))
}

/// A file only its owner reads.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("{}", path.display()))
}

/// The user a verified client certificate names: the subject's common name,
/// with its organizations as groups (Kubernetes' x509 authenticator).
pub fn certificate_user(certificate: &CertificateDer<'_>) -> Option<UserInfo> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(UserInfo {
        name,
        groups,
        ..Default::default()
    })
}
