//! The agent's read-only HTTP endpoint (as the kubelet's read-only port):
//! `/healthz`, `/pods`, `/metrics`, `/events`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wasmlet_agent::AgentView;

use super::exposition;

#[derive(Debug)]
pub struct Endpoints {
    pub view: AgentView,
    pub registry: Registry,
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            e.to_string(),
        ),
    }
}

impl Endpoints {
    fn serve(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
        }
        match request.uri().path() {
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
            "/metrics" => {
                let accept = request
                    .headers()
                    .get(hyper::header::ACCEPT)
                    .and_then(|a| a.to_str().ok());
                match exposition::render(&self.registry, accept) {
                    Ok((text, content_type)) => reply(StatusCode::OK, content_type, text),
                    Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", e),
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }
}

/// Binds `address` (so a taken port fails the start, not later).
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("binding the HTTP endpoint {address}: {e}"))
}

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A client gets this long to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// And this long for the whole connection: every answer is small.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (e.g. out of file descriptors), so a
/// persistent failure is not a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves until `shutdown`; connections in flight are dropped then.
pub async fn serve(listener: TcpListener, endpoints: Arc<Endpoints>, shutdown: CancellationToken) {
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
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accepting an HTTP connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let endpoints = endpoints.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = endpoints.serve(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
    connections.abort_all();
}
