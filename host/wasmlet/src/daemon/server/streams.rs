//! `/exec`, `/attach` and `/portForward`, as the kubelet serves them: the
//! runtime is asked for a stream (CRI Exec, Attach, PortForward) and the
//! client's upgraded connection (SPDY or WebSocket, whichever it asked for)
//! is proxied to the URL the runtime answers with. The protocols are the
//! runtime's streaming server's; this end only relays bytes.

use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use wasmlet_agent::AgentView;
use wasmlet_agent::pod_ext::{PodExt, PodUidExt};
use wasmlet_core::{ContainerState, StreamRequest, StreamingRuntime};
use wasmlet_cri::CriClient;

use super::{Reply, reply};

/// Streams open at once; more are refused (429) until one ends.
const MAX_STREAMS: usize = 64;

/// The runtime's streams, and the relays running for them.
#[derive(Debug)]
pub struct Streams {
    runtime: Arc<CriClient>,
    relays: TaskTracker,
    slots: Arc<Semaphore>,
}

impl Streams {
    pub fn new(runtime: Arc<CriClient>) -> Self {
        Self {
            runtime,
            relays: TaskTracker::new(),
            slots: Arc::new(Semaphore::new(MAX_STREAMS)),
        }
    }
}

/// Which stream a path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exec,
    Attach,
    PortForward,
}

impl Kind {
    pub fn of(path: &str) -> Option<(Self, &str)> {
        [
            ("/exec/", Self::Exec),
            ("/attach/", Self::Attach),
            ("/portForward/", Self::PortForward),
        ]
        .into_iter()
        .find_map(|(prefix, kind)| path.strip_prefix(prefix).map(|rest| (kind, rest)))
    }
}

/// Why a stream was not asked for, and the status that says so.
struct Refused(StatusCode, String);

fn bad_request(message: impl Into<String>) -> Refused {
    Refused(StatusCode::BAD_REQUEST, message.into())
}

fn not_found(message: impl Into<String>) -> Refused {
    Refused(StatusCode::NOT_FOUND, message.into())
}

/// `1` (what the API server sends) or `true`.
fn flag(query: &[(String, String)], name: &str) -> bool {
    query
        .iter()
        .any(|(k, v)| k == name && (v == "1" || v == "true"))
}

/// What the runtime is to be asked for, from the path
/// (`{namespace}/{pod}[/{uid}]/{container}`, no container for a port
/// forward) and the query (`command`, `stdin`, `stdout`, `stderr`, `tty`;
/// `port`).
enum Ask {
    Container(StreamRequest),
    Ports(wasmlet_core::SandboxId, Vec<u16>),
}

fn ask(view: &AgentView, kind: Kind, rest: &str, query: &str) -> Result<Ask, Refused> {
    let parts: Vec<&str> = rest.split('/').collect();
    let (namespace, pod_name, uid, container) = match (kind, parts.as_slice()) {
        (Kind::PortForward, [ns, pod]) => (*ns, *pod, None, None),
        (Kind::PortForward, [ns, pod, uid]) => (*ns, *pod, Some(*uid), None),
        (_, [ns, pod, container]) => (*ns, *pod, None, Some(*container)),
        (_, [ns, pod, uid, container]) => (*ns, *pod, Some(*uid), Some(*container)),
        _ => return Err(not_found("no such stream path")),
    };
    let pod = view
        .statuses
        .list()
        .into_iter()
        .find(|p| {
            p.namespace_or_default() == namespace
                && p.name_str() == pod_name
                && uid.is_none_or(|u| p.uid_str() == u)
        })
        .ok_or_else(|| {
            not_found(format!(
                "pod \"{pod_name}\" in namespace \"{namespace}\" not found"
            ))
        })?;
    let runtime_pod = view
        .cache
        .get(&pod.pod_uid())
        .ok_or_else(|| not_found(format!("pod \"{pod_name}\" has nothing running")))?;
    let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let Some(container) = container else {
        let sandbox = runtime_pod
            .latest_sandbox()
            .ok_or_else(|| not_found(format!("pod \"{pod_name}\" has no sandbox")))?;
        let mut ports = Vec::new();
        for (_, value) in query.iter().filter(|(k, _)| k == "port") {
            for port in value.split(',') {
                ports.push(
                    port.trim()
                        .parse::<u16>()
                        .map_err(|_| bad_request(format!("port: {port:?} is not a port number")))?,
                );
            }
        }
        return Ok(Ask::Ports(sandbox.id.clone(), ports));
    };
    let running = runtime_pod
        .containers
        .iter()
        .find(|c| c.metadata.name == container && c.state == ContainerState::Running)
        .ok_or_else(|| {
            not_found(format!(
                "container \"{container}\" in pod \"{pod_name}\" is not running"
            ))
        })?;
    let tty = flag(&query, "tty");
    let request = StreamRequest {
        container: running.id.clone(),
        cmd: query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        tty,
        stdin: flag(&query, "stdin"),
        stdout: flag(&query, "stdout"),
        // A terminal has one output stream.
        stderr: flag(&query, "stderr") && !tty,
    };
    if !(request.stdin || request.stdout || request.stderr) {
        return Err(bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if kind == Kind::Exec && request.cmd.is_empty() {
        return Err(bad_request("command: at least one is required"));
    }
    Ok(Ask::Container(request))
}

/// Serves a stream request: the runtime's URL, then the relay.
pub async fn serve(
    streams: &Streams,
    view: &AgentView,
    kind: Kind,
    rest: &str,
    request: Request<Incoming>,
) -> Reply {
    if request.method() != Method::GET && request.method() != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET or POST\n",
        );
    }
    let query = request.uri().query().unwrap_or_default().to_owned();
    let asked = match ask(view, kind, rest, &query) {
        Ok(asked) => asked,
        Err(Refused(status, message)) => {
            return reply(status, "text/plain", format!("{message}\n"));
        }
    };
    let Ok(slot) = streams.slots.clone().try_acquire_owned() else {
        return reply(
            StatusCode::TOO_MANY_REQUESTS,
            "text/plain",
            "too many streams open\n",
        );
    };
    let url = match (&asked, kind) {
        (Ask::Container(r), Kind::Exec) => streams.runtime.exec_stream(r).await,
        (Ask::Container(r), _) => streams.runtime.attach_stream(r).await,
        (Ask::Ports(sandbox, ports), _) => {
            streams.runtime.port_forward_stream(sandbox, ports).await
        }
    };
    let url = match url {
        Ok(url) => url,
        Err(e) => {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("the runtime refused the stream: {e}\n"),
            );
        }
    };
    match relay(streams, &url, request, slot).await {
        Ok(reply) => reply,
        Err(e) => reply(
            StatusCode::BAD_GATEWAY,
            "text/plain",
            format!("the runtime's streaming server at {url}: {e}\n"),
        ),
    }
}

/// Sends the client's upgrade request on to `url`; on `101 Switching
/// Protocols` relays both upgraded connections until either ends, else
/// answers with what the runtime said.
async fn relay(
    streams: &Streams,
    url: &str,
    mut request: Request<Incoming>,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> anyhow::Result<Reply> {
    let uri: Uri = url.parse()?;
    anyhow::ensure!(uri.scheme_str() == Some("http"), "not an http:// URL");
    let host = uri.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']);
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let connection = Box::pin(connection.with_upgrades());
    let mut forwarded = Request::builder()
        .method(request.method())
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()));
    for (name, value) in request.headers() {
        // The client's credentials are the kubelet port's, not the runtime's.
        if name != hyper::header::AUTHORIZATION && name != hyper::header::HOST {
            forwarded = forwarded.header(name, value);
        }
    }
    let forwarded = forwarded
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(Empty::<bytes::Bytes>::new())?;
    // The connection must be driven while the answer comes; on a 101 it
    // ends (Ok) once it has handed its socket over, maybe before the answer
    // is read.
    let send = sender.send_request(forwarded);
    tokio::pin!(send);
    let mut connection = Some(connection);
    let mut response = loop {
        tokio::select! {
            biased;
            response = &mut send => break response?,
            ended = async {
                match connection.as_mut() {
                    Some(driving) => driving.await,
                    None => std::future::pending().await,
                }
            }, if connection.is_some() => {
                ended?;
                connection = None;
            }
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        return Ok(reply(status, "text/plain", body));
    }
    let mut answer = hyper::Response::new(super::Body::Whole(None));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *answer.headers_mut() = response.headers().clone();
    // hyper keeps hop-by-hop headers to itself: say the upgrade again.
    answer.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    let client = hyper::upgrade::on(&mut request);
    let runtime = hyper::upgrade::on(&mut response);
    streams.relays.spawn(async move {
        let _slot = slot;
        let driven = async {
            match connection {
                Some(connection) => connection.await,
                None => Ok(()),
            }
        };
        let (driven, runtime, client) = tokio::join!(driven, runtime, client);
        let (Ok(()), Ok(runtime), Ok(client)) = (driven, runtime, client) else {
            return;
        };
        let (mut runtime, mut client) = (TokioIo::new(runtime), TokioIo::new(client));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut runtime).await;
    });
    Ok(answer)
}
