//! The host side of `wasmlet:plugin/net`: TCP connections a plugin asks for
//! and its grant allows, optionally with TLS, each step one host call.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wasmtime::component::Resource;

use crate::bindings::{net, types};
use crate::connection::Connection;
use crate::imports::sockets::MAX_OPEN;
use crate::state::CallState;

/// Largest single `receive`: a guest asking for more gets this much.
const MAX_RECEIVE: u32 = 1 << 20;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any certificate (the kubelet's HTTPS probes skip verification),
/// but still checks that the server holds the key of the one it showed.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Built once: a TLS client config is costly (the roots), a connection is not.
static INSECURE: LazyLock<Result<Arc<ClientConfig>, String>> = LazyLock::new(|| {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(algorithms)))
        .with_no_client_auth();
    Ok(Arc::new(config))
});

/// Verifies against the node's trusted roots (the system store).
static VERIFIED: LazyLock<Result<Arc<ClientConfig>, String>> = LazyLock::new(|| {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "the node has no trusted root certificates{}",
            found
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
});

fn failed(what: impl std::fmt::Display) -> types::Error {
    types::Error::Failed(what.to_string())
}

/// Runs one I/O step within the call's deadline: epochs do not interrupt a
/// guest waiting in a host call, so a silent peer is cut here.
async fn within<T>(
    deadline: std::time::Instant,
    what: impl std::fmt::Display,
    step: impl Future<Output = std::io::Result<T>>,
) -> Result<T, types::Error> {
    match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failed(format!("{what}: {e}"))),
        Err(_) => Err(failed(format!("{what}: timed out at the call's deadline"))),
    }
}

impl net::Host for CallState {
    async fn connect(
        &mut self,
        address: String,
        tls: Option<net::Tls>,
    ) -> Result<Resource<Connection>, types::Error> {
        let addr: SocketAddr = address.parse().map_err(|_| {
            types::Error::InvalidInput(format!(
                "connect: {address:?} is not ip:port (names are not resolved)"
            ))
        })?;
        if !self.grants.may_connect(addr) {
            return Err(self
                .grants
                .refuse(format!("connect to {addr} is not granted")));
        }
        if self.open_sockets() >= MAX_OPEN {
            return Err(self.grants.refuse(format!(
                "connect: {MAX_OPEN} sockets and connections are open already"
            )));
        }
        if !self.fds.take() {
            return Err(self.grants.refuse(crate::fd_budget::over_budget()));
        }
        let connected = self.open(addr, tls).await;
        if connected.is_err() {
            self.fds.release();
        }
        connected
    }
}

impl CallState {
    async fn open(
        &mut self,
        addr: SocketAddr,
        tls: Option<net::Tls>,
    ) -> Result<Resource<Connection>, types::Error> {
        let deadline = self.deadline;
        let tcp = within(
            deadline,
            format!("connect {addr}"),
            TcpStream::connect(addr),
        )
        .await?;
        // Requests are small and written whole: do not wait for more.
        tcp.set_nodelay(true)
            .map_err(|e| failed(format!("connect {addr}: {e}")))?;
        let connection = match tls {
            None => Connection::Plain(tcp),
            Some(tls) => {
                let config = if tls.insecure_skip_verify {
                    &*INSECURE
                } else {
                    &*VERIFIED
                };
                let config = config.clone().map_err(|e| failed(format!("tls: {e}")))?;
                let name = match tls.server_name {
                    Some(name) => ServerName::try_from(name.clone()).map_err(|_| {
                        types::Error::InvalidInput(format!("tls: bad server name {name:?}"))
                    })?,
                    None => ServerName::IpAddress(addr.ip().into()),
                };
                let handshake = TlsConnector::from(config).connect(name, tcp);
                let stream =
                    within(deadline, format!("tls handshake with {addr}"), handshake).await?;
                Connection::Tls(Box::new(stream))
            }
        };
        let connection = self
            .table
            .push(connection)
            .map_err(|e| failed(format!("connect: {e}")))?;
        self.open_connections += 1;
        Ok(connection)
    }
}

impl net::HostConnection for CallState {
    async fn send(
        &mut self,
        connection: Resource<Connection>,
        data: Vec<u8>,
    ) -> Result<(), types::Error> {
        let deadline = self.deadline;
        let connection = self.table.get_mut(&connection).map_err(failed)?;
        within(deadline, "send", connection.send(&data)).await
    }

    async fn receive(
        &mut self,
        connection: Resource<Connection>,
        max: u32,
    ) -> Result<Vec<u8>, types::Error> {
        let deadline = self.deadline;
        let connection = self.table.get_mut(&connection).map_err(failed)?;
        let mut buf = vec![0u8; max.min(MAX_RECEIVE) as usize];
        let n = within(deadline, "receive", connection.receive(&mut buf)).await?;
        buf.truncate(n);
        Ok(buf)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.open_connections -= 1;
        self.fds.release();
        Ok(())
    }
}
