//! A client of an agent's kubelet port, for `wasmlet pods` and `wasmlet
//! logs`: HTTPS (hyper over rustls) trusting the agent's certificate, with a
//! client certificate or a bearer token when the port asks for one.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_util::task::AbortOnDropHandle;

/// Where the agent is and how to talk to it.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeletFlags {
    /// The agent's kubelet port (`https://`), or its read-only port (`http://`).
    #[arg(long, default_value = "https://127.0.0.1:10250")]
    pub server: Uri,
    /// The CA of the agent's serving certificate [default: the agent's
    /// self-signed one, `<rootDir>/pki/kubelet.crt`].
    #[arg(long)]
    pub certificate_authority: Option<PathBuf>,
    /// A client certificate (PEM) the agent's `clientCAFile` signed.
    #[arg(long, requires = "client_key")]
    pub client_certificate: Option<PathBuf>,
    #[arg(long, requires = "client_certificate")]
    pub client_key: Option<PathBuf>,
    /// A bearer token (cluster mode: reviewed by the API server).
    #[arg(long)]
    pub token: Option<String>,
}

pub struct KubeletClient {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    token: Option<String>,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl KubeletClient {
    /// `default_ca`: the agent's self-signed certificate.
    pub fn new(flags: &KubeletFlags, default_ca: PathBuf) -> anyhow::Result<Self> {
        let host = flags
            .server
            .host()
            .context("--server: no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let secure = match flags.server.scheme_str() {
            Some("https") | None => true,
            Some("http") => false,
            Some(other) => anyhow::bail!("--server: {other}:// is neither https nor http"),
        };
        let port = flags
            .server
            .port_u16()
            .unwrap_or(if secure { 10250 } else { 10255 });
        let tls = if secure {
            let ca = flags.certificate_authority.clone().unwrap_or(default_ca);
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&ca)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("--certificate-authority {}", ca.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .with_context(|| format!("--certificate-authority {}", ca.display()))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots);
            let config = match (&flags.client_certificate, &flags.client_key) {
                (Some(cert), Some(key)) => {
                    let chain = CertificateDer::pem_file_iter(cert)
                        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                        .with_context(|| format!("--client-certificate {}", cert.display()))?;
                    let key = PrivateKeyDer::from_pem_file(key)
                        .with_context(|| format!("--client-key {}", key.display()))?;
                    builder.with_client_auth_cert(chain, key)?
                }
                _ => builder.with_no_client_auth(),
            };
            let name = ServerName::try_from(host.clone())
                .with_context(|| format!("--server: {host} is not a name or an address"))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            tls,
            token: flags.token.clone(),
        })
    }

    /// GET `path_and_query`: the response, its body still to be read. An
    /// answer other than 200 is an error with the agent's words.
    pub async fn get(&self, path_and_query: &str) -> anyhow::Result<Answer> {
        let mut request = Request::get(path_and_query)
            .header(hyper::header::HOST, &self.host)
            .body(Empty::<Bytes>::new())?;
        if let Some(token) = &self.token {
            request.headers_mut().insert(
                hyper::header::AUTHORIZATION,
                format!("Bearer {token}").parse()?,
            );
        }
        let answer = send(TokioIo::new(self.connect().await?), request).await?;
        if answer.response.status() != StatusCode::OK {
            let status = answer.response.status();
            let body = answer.response.into_body().collect().await?.to_bytes();
            anyhow::bail!(
                "the agent answered {status}: {}",
                String::from_utf8_lossy(&body).trim_end()
            );
        }
        Ok(answer)
    }

    /// `named`, else the container `kubectl` picks when none is named: the
    /// pod's default-container annotation, else its first (said on stderr
    /// when the pod has more than one).
    pub async fn container_of(
        &self,
        namespace: &str,
        pod: &str,
        named: Option<String>,
    ) -> anyhow::Result<String> {
        if let Some(container) = named {
            return Ok(container);
        }
        let pods = self.get_json("/pods").await?;
        let found = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["metadata"]["name"] == pod && p["metadata"]["namespace"] == namespace)
            .with_context(|| {
                format!("pod \"{pod}\" in namespace \"{namespace}\" does not exist")
            })?;
        let names: Vec<&str> = found["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        let annotated = found["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
            .as_str()
            .filter(|a| names.contains(a));
        let chosen = annotated
            .or_else(|| names.first().copied())
            .context("the pod has no containers")?;
        if names.len() > 1 && annotated.is_none() {
            eprintln!(
                "Defaulted container \"{chosen}\" out of: {}",
                names.join(", ")
            );
        }
        Ok(chosen.to_owned())
    }

    /// GET `path` as JSON.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let answer = self.get(path).await?;
        let body = answer.response.into_body().collect().await?.to_bytes();
        serde_json::from_slice(&body).with_context(|| format!("{path} is not JSON"))
    }
}

/// A connection to the agent, plain or TLS.
pub trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Connection for T {}

pub type WebSocket = tokio_tungstenite::WebSocketStream<Box<dyn Connection>>;

/// The channel protocol the runtimes' streaming servers speak over WebSockets.
pub const CHANNEL_PROTOCOL: &str = "v4.channel.k8s.io";

impl KubeletClient {
    async fn connect(&self) -> anyhow::Result<Box<dyn Connection>> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| {
                format!(
                    "is the agent running? connecting to {}:{}",
                    self.host, self.port
                )
            })?;
        Ok(match &self.tls {
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .context("TLS with the agent")?,
            ),
            None => Box::new(tcp),
        })
    }

    /// A WebSocket to `path_and_query` speaking [`CHANNEL_PROTOCOL`].
    pub async fn websocket(&self, path_and_query: &str) -> anyhow::Result<WebSocket> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://{}:{}{path_and_query}", self.host, self.port);
        let mut request = url.into_client_request()?;
        let headers = request.headers_mut();
        headers.insert("Sec-WebSocket-Protocol", CHANNEL_PROTOCOL.parse()?);
        if let Some(token) = &self.token {
            headers.insert(
                hyper::header::AUTHORIZATION,
                format!("Bearer {token}").parse()?,
            );
        }
        let connection = self.connect().await?;
        match tokio_tungstenite::client_async(request, connection).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                anyhow::bail!(
                    "the agent answered {}: {}",
                    response.status(),
                    body.trim_end()
                )
            }
            Err(e) => Err(e).context("opening the stream"),
        }
    }
}

/// A response, and the task driving its connection (aborted with it).
#[derive(Debug)]
pub struct Answer {
    pub response: Response<Incoming>,
    _connection: AbortOnDropHandle<Result<(), hyper::Error>>,
}

async fn send<S>(io: TokioIo<S>, request: Request<Empty<Bytes>>) -> anyhow::Result<Answer>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let connection = AbortOnDropHandle::new(tokio::spawn(connection));
    Ok(Answer {
        response: sender.send_request(request).await?,
        _connection: connection,
    })
}
