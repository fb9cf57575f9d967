//! The kubelet's ports: the authenticated HTTPS port (10250), the
//! read-only HTTP port (10255, when configured) and the healthz port
//! (127.0.0.1:10248). The kubelet port serves `/healthz`, `/pods`,
//! `/metrics`, `/events`, `/containerLogs/…` and the streams (`/exec`,
//! `/attach`, `/portForward`); the read-only port the same but the logs and
//! streams (as the kubelet's, which has no debugging handlers);
//! the healthz port `/healthz` alone.

mod auth;
mod container_logs;
mod resource_metrics;
mod streams;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use wasmlet_agent::AgentView;
use wasmlet_agent::stats::StatsProvider;
use wasmlet_cri::CriClient;
use wasmlet_kube::ApiClient;
use wasmlet_kube::reviews::UserInfo;

use super::config::AgentFileConfig;
use super::exposition;
use auth::{Guard, Refusal};

#[derive(Debug)]
pub struct Endpoints {
    pub view: AgentView,
    pub registry: Registry,
    /// `/metrics/probes`: the prober's.
    pub probe_registry: Registry,
    /// `/stats/summary` and `/metrics/resource`.
    pub stats: StatsProvider<CriClient>,
    pub streams: Streams,
}

pub use streams::Streams;

/// What a port serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Healthz,
    /// All but the debugging handlers (logs).
    ReadOnly,
    Everything,
}

/// A response's body: whole, or streamed from a task that lives as long as
/// the response (a followed log).
pub enum Body {
    Whole(Option<Bytes>),
    Stream {
        chunks: mpsc::Receiver<Vec<u8>>,
        /// Held, not read: dropping it aborts the task.
        _source: AbortOnDropHandle<()>,
    },
}

pub type Reply = Response<Body>;

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream { chunks, .. } => chunks
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(Bytes::from(c))))),
        }
    }
}

/// A bound port, not yet serving.
pub struct Port {
    listener: TcpListener,
    scope: Scope,
    /// The kubelet port's TLS and gate.
    secure: Option<(TlsAcceptor, Arc<Guard>)>,
    name: &'static str,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Port {
    /// The task's name: `kubelet port`, `read-only port`, `healthz port`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn describe(&self) -> String {
        let address = self
            .listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        let scheme = if self.secure.is_some() {
            "https"
        } else {
            "http"
        };
        let serves = match self.scope {
            Scope::Healthz => "/healthz",
            Scope::ReadOnly => {
                "/healthz, /pods, /metrics, /metrics/probes, /metrics/resource, /stats/summary, /events"
            }
            Scope::Everything => {
                "/healthz, /pods, /metrics, /metrics/probes, /metrics/resource, /stats/summary, /events, /containerLogs, /exec, /attach, /portForward"
            }
        };
        format!("{} on {scheme}://{address}: {serves}", self.name)
    }
}

/// Binds the ports the config asks for (a taken port fails the start).
/// `client` is the cluster's, for the webhooks.
pub async fn bind(
    config: &AgentFileConfig,
    node_name: &str,
    node_ip: Option<std::net::IpAddr>,
    client: Option<&ApiClient>,
) -> anyhow::Result<Vec<Port>> {
    let mut ports = Vec::new();
    if config.healthz_port != 0 {
        let address = SocketAddr::new(config.healthz_bind_address, config.healthz_port);
        ports.push(Port {
            listener: listen(address, "healthzPort").await?,
            scope: Scope::Healthz,
            secure: None,
            name: "healthz port",
        });
    }
    if config.read_only_port != 0 {
        let address = SocketAddr::new(config.address, config.read_only_port);
        ports.push(Port {
            listener: listen(address, "readOnlyPort").await?,
            scope: Scope::ReadOnly,
            secure: None,
            name: "read-only port",
        });
    }
    if config.enable_server {
        let tls = {
            let (config, node_name) = (config.clone(), node_name.to_owned());
            tokio::task::spawn_blocking(move || tls::server_config(&config, &node_name, node_ip))
                .await??
        };
        let reviews = client.map(|c| Box::new(c.clone()) as Box<dyn auth::Reviews>);
        let guard = Guard::new(
            node_name.to_owned(),
            config.authentication.clone(),
            config.authorization.clone(),
            reviews,
        );
        let address = SocketAddr::new(config.address, config.port);
        ports.push(Port {
            listener: listen(address, "port").await?,
            scope: Scope::Everything,
            secure: Some((TlsAcceptor::from(tls), Arc::new(guard))),
            name: "kubelet port",
        });
    }
    Ok(ports)
}

async fn listen(address: SocketAddr, field: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("binding {address} ({field}): {e}"))
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Body::Whole(Some(body.into())));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn json(value: &impl serde::Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            e.to_string(),
        ),
    }
}

fn refused(refusal: Refusal) -> Reply {
    match refusal {
        Refusal::Unauthorized => reply(StatusCode::UNAUTHORIZED, "text/plain", "Unauthorized\n"),
        Refusal::Forbidden(message) => reply(StatusCode::FORBIDDEN, "text/plain", message),
        Refusal::AuthorizerFailed(error) => {
            tracing::warn!(%error, "authorizing a request to the kubelet port");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("Authorization error: {error}\n"),
            )
        }
    }
}

/// A registry in the format the scraper's `Accept` asks for.
fn metrics(registry: &Registry, request: &Request<Incoming>) -> Reply {
    let accept = request
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|a| a.to_str().ok());
    match exposition::render(registry, accept) {
        Ok((text, content_type)) => reply(StatusCode::OK, content_type, text),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e),
    }
}

impl Endpoints {
    async fn serve(&self, scope: Scope, request: Request<Incoming>) -> Reply {
        if let Some((kind, rest)) = streams::Kind::of(request.uri().path())
            && scope == Scope::Everything
        {
            let rest = rest.to_owned();
            return streams::serve(&self.streams, &self.view, kind, &rest, request).await;
        }
        if request.method() != Method::GET {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
        }
        let path = request.uri().path();
        if scope == Scope::Healthz && path != "/healthz" {
            return reply(StatusCode::NOT_FOUND, "text/plain", "not found\n");
        }
        if let Some(rest) = path.strip_prefix("/containerLogs/")
            && scope == Scope::Everything
        {
            let query = request.uri().query().unwrap_or_default();
            return container_logs::serve(&self.view, rest, query);
        }
        match path {
            "/healthz" => match self.view.healthy() {
                Ok(()) => reply(StatusCode::OK, "text/plain", "ok"),
                Err(why) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", why),
            },
            "/pods" | "/pods/" => json(&serde_json::json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {},
                "items": self.view.statuses.list(),
            })),
            "/events" => json(&serde_json::json!({
                "kind": "EventList",
                "apiVersion": "v1",
                "metadata": {},
                "items": self.view.events.list(),
            })),
            "/metrics" => metrics(&self.registry, &request),
            "/metrics/probes" => metrics(&self.probe_registry, &request),
            "/metrics/resource" => {
                let summary = self.stats.summary().await;
                if let Err(error) = &summary {
                    tracing::warn!(%error, "reading stats for /metrics/resource");
                }
                metrics(&resource_metrics::registry(summary.as_ref().ok()), &request)
            }
            "/stats/summary" | "/stats/summary/" => match self.stats.summary().await {
                Ok(summary) => json(&summary),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("reading stats: {e}\n"),
                ),
            },
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }
}

/// Connections served at once per port; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A client gets this long for the TLS handshake and to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// And this long for the whole connection, unless it answered with a
/// stream, which lasts as long as its source. (Keep-alive stays on: without
/// it hyper answers `Connection: close`, even to an upgrade.)
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (e.g. out of file descriptors), so a
/// persistent failure is not a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `port` until `shutdown`; connections in flight are dropped then.
pub async fn serve(port: Port, endpoints: Arc<Endpoints>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = port.listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, port = port.name, "accepting a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let endpoints = endpoints.clone();
        let (scope, secure) = (port.scope, port.secure.clone());
        connections.spawn(async move {
            let _slot = slot;
            let streaming = Arc::new(AtomicBool::new(false));
            let flag = streaming.clone();
            let serving = async move {
                match secure {
                    None => serve_connection(stream, scope, None, endpoints, flag).await,
                    Some((acceptor, guard)) => {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        let user = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .and_then(tls::certificate_user);
                        serve_connection(tls, scope, Some((guard, user)), endpoints, flag).await;
                    }
                }
            };
            tokio::pin!(serving);
            let timed_out = tokio::time::timeout(CONNECTION_TIMEOUT, &mut serving)
                .await
                .is_err();
            if timed_out && streaming.load(Ordering::Relaxed) {
                serving.await;
            }
        });
    }
    connections.abort_all();
}

/// One connection's requests; each passes the gate first on the kubelet port.
async fn serve_connection<S>(
    stream: S,
    scope: Scope,
    gate: Option<(Arc<Guard>, Option<UserInfo>)>,
    endpoints: Arc<Endpoints>,
    streaming: Arc<AtomicBool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let gate = gate.map(Arc::new);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (endpoints, gate, streaming) = (endpoints.clone(), gate.clone(), streaming.clone());
        async move {
            if let Some(gate) = gate.as_deref() {
                let (guard, certificate_user) = gate;
                let admitted = guard
                    .admit(
                        certificate_user.as_ref(),
                        request.headers(),
                        request.method(),
                        request.uri().path(),
                    )
                    .await;
                if let Err(refusal) = admitted {
                    return Ok::<_, Infallible>(refused(refusal));
                }
            }
            let response = endpoints.serve(scope, request).await;
            if matches!(response.body(), Body::Stream { .. }) {
                streaming.store(true, Ordering::Relaxed);
            }
            Ok(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}
