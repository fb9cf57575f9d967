//! How a plugin's `wasi:http` requests leave: wasmtime-wasi-http's hooks,
//! with the call's grant enforced where a request leaves (as Spin's
//! outbound-http factor does). The request's authority must be an
//! address the call may reach, and the host connects to exactly that address:
//! names are not resolved, so a guest addresses by IP and names the server in
//! a `Host` header (as an httpGet probe's `Host` header does).
//!
//! HTTPS: a call about a container (a probe or a hook) skips certificate
//! checks, as the kubelet's prober and hook runner do; every other call checks
//! the certificate against the node's roots, for the `Host` header's name or
//! the authority. gRPC (`content-type: application/grpc…`) goes over HTTP/2,
//! with prior knowledge on `http`; everything else over HTTP/1.1. hyper is the
//! protocol stack in both cases.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use http::header::{CONTENT_TYPE, HOST};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use crate::fd_budget::FdCharge;
use crate::fd_budget::MAX_OPEN;
use crate::grants::CallGrants;
use crate::tls::{INSECURE, VERIFIED};

type Exchange = Result<
    (
        Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

/// The hooks of one call's `wasi:http`: its grants, whether certificates are
/// checked, and the connections it holds open.
pub(crate) struct OutgoingHttp {
    grants: CallGrants,
    verify_certificates: bool,
    open: Arc<AtomicUsize>,
    /// The call's deadline, as of the guest's last `wasi:http` call: every
    /// wait of a request ends there (a guest blocked in a host call is
    /// beyond the reach of epochs).
    pub(crate) deadline: std::time::Instant,
}

impl OutgoingHttp {
    pub(crate) fn new(grants: CallGrants, deadline: std::time::Instant) -> Self {
        Self {
            verify_certificates: grants.target.is_none(),
            grants,
            open: Arc::default(),
            deadline,
        }
    }

    /// HTTP connections the call holds open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// The one address the request may go to, or the refusal (recorded).
    fn destination(&self, uri: &Uri) -> Result<SocketAddr, Error> {
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let port = authority
            .port_u16()
            .unwrap_or(if uri.scheme() == Some(&Scheme::HTTPS) {
                443
            } else {
                80
            });
        let Some(ip) = literal_ip(authority) else {
            self.grants.refuse(format!(
                "HTTP to {authority}: names are not resolved (address the request by IP, name the server in the Host header)"
            ));
            // The guest is told "denied"; the operator reads why in the refusals.
            return Err(Error::HttpRequestDenied);
        };
        let addr = SocketAddr::new(ip, port);
        if !self.grants.may_connect(addr) {
            self.grants
                .refuse(format!("connect to {addr} is not granted"));
            // The guest is told "denied"; the operator reads why in the refusals.
            return Err(Error::HttpRequestDenied);
        }
        Ok(addr)
    }

    fn tls(
        &self,
        request: &Request<WasiBody>,
        addr: SocketAddr,
        http2: bool,
    ) -> Result<Tls, Error> {
        let config = if self.verify_certificates {
            &*VERIFIED
        } else {
            &*INSECURE
        };
        let mut config = config
            .clone()
            .map_err(|e| Error::InternalError(Some(format!("tls: {e}"))))?;
        if http2 {
            let mut h2 = ClientConfig::clone(&config);
            h2.alpn_protocols = vec![b"h2".to_vec()];
            config = Arc::new(h2);
        }
        // The name the request is for: its Host header's, else the authority's.
        let name = request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<Authority>().ok())
            .map(|a| {
                a.host()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned()
            });
        let server_name = match name {
            None => ServerName::IpAddress(addr.ip().into()),
            Some(name) => match name.parse::<IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(name).map_err(|e| {
                    Error::InternalError(Some(format!("tls: bad server name: {e}")))
                })?,
            },
        };
        Ok(Tls {
            config,
            server_name,
        })
    }
}

/// An IP address written in the authority (or the loopback name).
fn literal_ip(authority: &Authority) -> Option<IpAddr> {
    let host = authority.host();
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::from([127, 0, 0, 1]));
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

struct Tls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

/// One open connection's share of the call's and the plugins' budgets.
struct Held {
    open: Arc<AtomicUsize>,
    _fd: FdCharge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WasiHttpHooks for OutgoingHttp {
    /// wasmtime-wasi-http's list, but `Host` is the guest's to set: an httpGet
    /// probe's `Host` header names the server while the pod's IP is the
    /// address (the kubelet's `req.Host`).
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(|name| *name != HOST && DEFAULT_FORBIDDEN_HEADERS.contains(name))
    }

    /// The host sets it when the guest did not, so there is one `Host` header.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Exchange> + Send> {
        let prepared = self.prepare(&request);
        let deadline = tokio::time::Instant::from_std(self.deadline);
        Box::new(async move {
            let (addr, tls, http2, held) = prepared?;
            let options = options.unwrap_or_default();
            tokio::time::timeout_at(
                deadline,
                send(request, addr, tls, http2, options, held, deadline),
            )
            .await
            .unwrap_or_else(|_| Err(past_deadline()))
        })
    }

    fn p2_error_from_connect(&mut self, err: &std::io::Error) -> ErrorCode {
        match err.kind() {
            std::io::ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
            std::io::ErrorKind::TimedOut => ErrorCode::ConnectionTimeout,
            _ => ErrorCode::InternalError(Some(format!("connect: {err}"))),
        }
    }

    /// The reason, for the guest's message (an untrusted certificate, say).
    fn p2_error_from_tls(&mut self, err: &std::io::Error) -> ErrorCode {
        ErrorCode::InternalError(Some(format!("tls: {err}")))
    }

    fn p2_error_from_hyper(&mut self, err: &hyper::Error) -> ErrorCode {
        if err.is_timeout() {
            ErrorCode::HttpResponseTimeout
        } else if err.is_incomplete_message() {
            ErrorCode::HttpResponseIncomplete
        } else {
            ErrorCode::InternalError(Some(format!("http: {err}")))
        }
    }
}

impl OutgoingHttp {
    /// Everything decided before the request leaves: where to, how, and the
    /// budget for one more connection.
    fn prepare(
        &mut self,
        request: &Request<WasiBody>,
    ) -> Result<(SocketAddr, Option<Tls>, bool, Held), Error> {
        let addr = self.destination(request.uri())?;
        let http2 = request
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
        let tls = (request.uri().scheme() == Some(&Scheme::HTTPS))
            .then(|| self.tls(request, addr, http2))
            .transpose()?;
        if self.open() >= MAX_OPEN {
            self.grants
                .refuse(format!("HTTP: {MAX_OPEN} connections are open already"));
            return Err(Error::ConnectionLimitReached);
        }
        let mut fd = FdCharge::default();
        if !fd.take() {
            self.grants.refuse(crate::fd_budget::over_budget());
            return Err(Error::ConnectionLimitReached);
        }
        self.open.fetch_add(1, Ordering::AcqRel);
        Ok((
            addr,
            tls,
            http2,
            Held {
                open: self.open.clone(),
                _fd: fd,
            },
        ))
    }
}

fn past_deadline() -> Error {
    Error::InternalError(Some("timed out at the call's deadline".into()))
}

/// Connects to `addr` (within the guest's connect timeout, if it set one)
/// and exchanges `request` over it.
async fn send(
    request: Request<WasiBody>,
    addr: SocketAddr,
    tls: Option<Tls>,
    http2: bool,
    options: RequestOptions,
    held: Held,
    deadline: tokio::time::Instant,
) -> Exchange {
    let connect = async {
        let tcp = TcpStream::connect(addr).await.map_err(Error::Connect)?;
        // Requests are small and written whole: do not wait for more.
        tcp.set_nodelay(true).map_err(Error::Connect)?;
        match tls {
            None => Ok(Stream::Plain(tcp)),
            Some(tls) => TlsConnector::from(tls.config)
                .connect(tls.server_name, tcp)
                .await
                .map(|s| Stream::Tls(Box::new(s)))
                .map_err(Error::Tls),
        }
    };
    let stream = within(options.connect_timeout, Error::ConnectionTimeout, connect).await?;
    match stream {
        Stream::Plain(s) => exchange(s, request, http2, options, held, deadline).await,
        Stream::Tls(s) => exchange(*s, request, http2, options, held, deadline).await,
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

async fn within<T>(
    limit: Option<Duration>,
    timed_out: Error,
    step: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match limit {
        // The call's own deadline bounds every step anyway.
        None => step.await,
        Some(limit) => tokio::time::timeout(limit, step)
            .await
            .unwrap_or(Err(timed_out)),
    }
}

type Driver = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;

async fn exchange<S>(
    stream: S,
    mut request: Request<WasiBody>,
    http2: bool,
    options: RequestOptions,
    held: Held,
    deadline: tokio::time::Instant,
) -> Exchange
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let io = TokioIo::new(stream);
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let host = request.headers_mut().remove(HOST);
    let (mut sender, driver): (Sender, Driver) = if http2 {
        // gRPC asks for trailers; a guest may not set `te` itself.
        request
            .headers_mut()
            .insert(http::header::TE, HeaderValue::from_static("trailers"));
        // HTTP/2 names the server in `:authority`: the Host header's, if set.
        if let Some(host) = host.as_ref().and_then(|h| h.to_str().ok()) {
            let mut parts = request.uri().clone().into_parts();
            parts.authority = host.parse().ok().or(parts.authority);
            *request.uri_mut() =
                Uri::from_parts(parts).map_err(|_| Error::HttpRequestUriInvalid)?;
        }
        let (sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await?;
        (Sender::Http2(sender), Box::pin(conn))
    } else {
        // HTTP/1.1: an origin-form target, and exactly one Host header.
        let host = match host {
            Some(host) => host,
            None => HeaderValue::from_str(&authority).map_err(|_| Error::HttpRequestUriInvalid)?,
        };
        request.headers_mut().insert(HOST, host);
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        *request.uri_mut() = target;
        // Header names as Go's client writes them (the kubelet's probes).
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .handshake(io)
            .await?;
        (Sender::Http1(sender), Box::pin(conn))
    };
    let mut driver = Some(driver);
    let response = {
        let mut sent = std::pin::pin!(sender.send(request));
        // Drive the connection while waiting for the response head.
        let head = std::future::poll_fn(|cx| {
            if let Poll::Ready(response) = sent.as_mut().poll(cx) {
                return Poll::Ready(response.map_err(Error::from));
            }
            if let Some(conn) = driver.as_mut()
                && let Poll::Ready(done) = conn.as_mut().poll(cx)
            {
                driver = None;
                if let Err(e) = done {
                    return Poll::Ready(Err(e.into()));
                }
                return sent.as_mut().poll(cx).map_err(Error::from);
            }
            Poll::Pending
        });
        within(
            options.first_byte_timeout,
            Error::ConnectionReadTimeout,
            head,
        )
        .await?
    };
    let response = response.map(|body| {
        DrivenBody {
            body,
            conn: driver,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            _held: held,
        }
        .boxed_unsync()
    });
    // The body drives the connection: nothing is left to run apart.
    Ok((response, Box::new(std::future::ready(Ok(())))))
}

/// A response body that drives its connection as it is read, so each read
/// polls the connection in the guest's own task instead of waking another
/// one per frame (a round trip through the executor each). The connection's
/// share of the budgets goes with it.
struct DrivenBody {
    body: hyper::body::Incoming,
    conn: Option<Driver>,
    /// The call's: a body still coming then is cut.
    deadline: Pin<Box<tokio::time::Sleep>>,
    _held: Held,
}

impl http_body::Body for DrivenBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(past_deadline())));
        }
        // A connection that ended (well or not) has told the body; hyper
        // gives the body the error, if any.
        if let Some(conn) = this.conn.as_mut()
            && conn.as_mut().poll(cx).is_ready()
        {
            this.conn = None;
        }
        Pin::new(&mut this.body).poll_frame(cx).map_err(|e| {
            if ended_early(&e) {
                Error::HttpResponseIncomplete
            } else {
                Error::from(e)
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A body shorter than its `Content-Length` (or cut mid-chunk): hyper's
/// body error over an unexpected end of the stream.
fn ended_early(e: &hyper::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
}

enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<WasiBody>),
    Http2(hyper::client::conn::http2::SendRequest<WasiBody>),
}

impl Sender {
    async fn send(
        &mut self,
        request: Request<WasiBody>,
    ) -> Result<Response<hyper::body::Incoming>, hyper::Error> {
        match self {
            Self::Http1(s) => s.send_request(request).await,
            Self::Http2(s) => s.send_request(request).await,
        }
    }
}
