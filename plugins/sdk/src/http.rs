//! HTTP requests through the standard `wasi:http`: the host makes them (with
//! hyper) under the plugin's grant, so a plugin carries no HTTP stack.
//!
//! The host connects to the request's authority, which must be a granted IP
//! address: names are not resolved. A server's name goes in the `Host`
//! header (as an httpGet probe's does); for `https` it is also the name the
//! certificate is checked against (see the WIT worlds). Headers are
//! validated by `wasi:http`, so a CR or LF in a value is an error, never a
//! second header.

use std::io::Write;
use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, HeaderError, IncomingBody, Method as WasiMethod, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme as WasiScheme,
};
use wasip2::io::streams::StreamError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// An httpGet action's scheme (`HTTP` or `HTTPS`, any case; empty is HTTP).
    pub fn of_action(scheme: &str) -> Result<Self, String> {
        match scheme.to_ascii_uppercase().as_str() {
            "" | "HTTP" => Ok(Self::Http),
            "HTTPS" => Ok(Self::Https),
            _ => Err(format!("scheme {scheme:?}: expected HTTP or HTTPS")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub scheme: Scheme,
    /// Where the host connects: `ip:port` (`[ip6]:port`).
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path: String,
    /// In order; a `Host` header names the server.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bounds connecting, and again the wait for the response's head.
    pub timeout: Option<Duration>,
}

impl Request {
    /// A GET of `path` from `host:port`.
    pub fn get(scheme: Scheme, host: &str, port: u16, path: &str) -> Self {
        Self {
            method: Method::Get,
            scheme,
            authority: authority(host, port),
            path: if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            },
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// The URL, for messages (`http://10.0.0.5:8080/healthz`).
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme.as_str(), self.authority, self.path)
    }

    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `host:port` (`[v6]:port` for IPv6).
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// How much of a response body to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// A longer body is an error.
    Refuse(usize),
    /// Keep this much and stop reading (a probe reads only the start).
    Truncate(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Read only for a gRPC answer whose whole body was read (its status is here).
    pub trailers: Vec<(String, Vec<u8>)>,
}

fn find<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

impl Response {
    /// The first header named `name` (any case), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    pub fn trailer(&self, name: &str) -> Option<&str> {
        find(&self.trailers, name)
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// A header `wasi:http` refused: a bad name or value (CR, LF, …), or one
    /// the host forbids (`Connection`, `Transfer-Encoding`, …).
    Header { name: String, problem: &'static str },
    /// The grant does not cover the authority.
    Denied { authority: String },
    /// The exchange failed: refused, timed out, TLS, protocol.
    Failed(String),
    /// The body was longer than [`BodyLimit::Refuse`] allows.
    TooLarge(usize),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Header { name, problem } => write!(f, "header {name:?}: {problem}"),
            Self::Denied { authority } => write!(f, "connect to {authority} is not granted"),
            Self::Failed(why) => f.write_str(why),
            Self::TooLarge(max) => write!(f, "the body is over {max} bytes"),
        }
    }
}

impl std::error::Error for HttpError {}

/// `wasi:http`'s refusal of a header list, naming the first header it
/// refuses on its own.
fn header_error(headers: &[(String, String)], e: HeaderError) -> HttpError {
    let problem = |e: &HeaderError| match e {
        HeaderError::InvalidSyntax => "not a valid header (a control character such as CR or LF?)",
        HeaderError::Forbidden => "set by the host, not by a plugin",
        HeaderError::Immutable => "immutable",
    };
    let name = headers
        .iter()
        .find(|(name, value)| {
            Fields::from_list(&[(name.clone(), value.as_bytes().to_vec())]).is_err()
        })
        .map_or_else(String::new, |(name, _)| name.clone());
    HttpError::Header {
        name,
        problem: problem(&e),
    }
}

fn failed(code: ErrorCode) -> HttpError {
    HttpError::Failed(match code {
        ErrorCode::ConnectionRefused => "connect: connection refused".into(),
        ErrorCode::ConnectionTimeout => "connect: timed out".into(),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            "timed out awaiting the response".into()
        }
        ErrorCode::HttpResponseIncomplete => "the response ended early".into(),
        ErrorCode::InternalError(Some(why)) => why,
        other => format!("{other:?}"),
    })
}

/// Sends `request` and waits for the response, reading its body within `limit`.
pub fn send(request: &Request, limit: BodyLimit) -> Result<Response, HttpError> {
    // One host call for all of them; on a refusal, find the header to name.
    let entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&entries).map_err(|e| header_error(&request.headers, e))?;
    let outgoing = OutgoingRequest::new(headers);
    let refused = |what: &str| HttpError::Failed(format!("the request's {what} is not valid"));
    outgoing
        .set_method(match request.method {
            Method::Get => &WasiMethod::Get,
            Method::Post => &WasiMethod::Post,
        })
        .map_err(|()| refused("method"))?;
    outgoing
        .set_scheme(Some(match request.scheme {
            Scheme::Http => &WasiScheme::Http,
            Scheme::Https => &WasiScheme::Https,
        }))
        .map_err(|()| refused("scheme"))?;
    outgoing
        .set_authority(Some(&request.authority))
        .map_err(|()| refused("authority"))?;
    outgoing
        .set_path_with_query(Some(&request.path))
        .map_err(|()| refused("path"))?;
    // A request without a body gets none (not an empty chunked one).
    let body = if request.body.is_empty() {
        None
    } else {
        Some(outgoing.body().map_err(|()| refused("body"))?)
    };
    let options = request.timeout.map(|timeout| {
        let options = RequestOptions::new();
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        // A host may not support a timeout; the call's deadline holds anyway.
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        options
    });
    let pending = outgoing_handler::handle(outgoing, options).map_err(|code| match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied {
            authority: request.authority.clone(),
        },
        other => failed(other),
    })?;
    if let Some(body) = body {
        let mut stream = body.write().map_err(|()| refused("body"))?;
        Write::write_all(&mut stream, &request.body)
            .and_then(|()| Write::flush(&mut stream))
            .map_err(|e| HttpError::Failed(format!("sending the body: {e}")))?;
        // The body is done only once its stream is gone.
        drop(stream);
        OutgoingBody::finish(body, None).map_err(failed)?;
    }
    let response = loop {
        match pending.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(ErrorCode::HttpRequestDenied))) => {
                return Err(HttpError::Denied {
                    authority: request.authority.clone(),
                });
            }
            Some(Ok(Err(code))) => return Err(failed(code)),
            Some(Err(())) => return Err(HttpError::Failed("the response was taken".into())),
            None => pending.subscribe().block(),
        }
    };
    let status = response.status();
    let headers = response.headers().entries();
    let incoming = response
        .consume()
        .map_err(|()| HttpError::Failed("the body was taken".into()))?;
    let length = find(&headers, "content-length").and_then(|n| n.trim().parse().ok());
    let (body, whole) = read_body(&incoming, limit, length)?;
    // Only gRPC puts anything there; waiting for them costs a round trip
    // through the host's body task.
    let grpc = find(&headers, "content-type").is_some_and(|t| t.starts_with("application/grpc"));
    let trailers = if whole && grpc {
        trailers(incoming)?
    } else {
        Vec::new()
    };
    Ok(Response {
        status,
        headers,
        body,
        trailers,
    })
}

/// The body within `limit`, and whether all of it was read. With a
/// `Content-Length`, reading stops there: no wait for the end of the stream.
fn read_body(
    incoming: &IncomingBody,
    limit: BodyLimit,
    length: Option<usize>,
) -> Result<(Vec<u8>, bool), HttpError> {
    // Refusing reads one byte over the cap, to tell that it was passed.
    let (max, cap) = match limit {
        BodyLimit::Refuse(max) if length.is_some_and(|n| n > max) => {
            return Err(HttpError::TooLarge(max));
        }
        BodyLimit::Refuse(max) => (max, max.saturating_add(1)),
        BodyLimit::Truncate(max) => (max, max),
    };
    let want = length.map_or(cap, |n| n.min(cap));
    let stream = incoming
        .stream()
        .map_err(|()| HttpError::Failed("the body stream was taken".into()))?;
    let mut body = Vec::new();
    let mut ended = false;
    while body.len() < want {
        let ask = u64::try_from((want - body.len()).min(64 << 10)).unwrap_or(u64::MAX);
        match stream.blocking_read(ask) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => {
                ended = true;
                break;
            }
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Failed(format!(
                    "reading the body: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    if body.len() > max {
        return Err(HttpError::TooLarge(max));
    }
    let whole = ended || length == Some(body.len());
    Ok((body, whole))
}

fn trailers(incoming: IncomingBody) -> Result<Vec<(String, Vec<u8>)>, HttpError> {
    let future = IncomingBody::finish(incoming);
    loop {
        match future.get() {
            Some(Ok(Ok(Some(trailers)))) => return Ok(trailers.entries()),
            Some(Ok(Ok(None))) => return Ok(Vec::new()),
            Some(Ok(Err(code))) => return Err(failed(code)),
            Some(Err(())) => return Err(HttpError::Failed("the trailers were taken".into())),
            None => future.subscribe().block(),
        }
    }
}

/// Where a redirect's `Location` points, from the request that got it:
/// `None` if it cannot be read.
pub fn redirect_target(request: &Request, location: &str) -> Option<Request> {
    let mut next = request.clone();
    if location.starts_with("//") || location.contains("://") {
        let uri: http::Uri = location.parse().ok()?;
        next.scheme = match uri.scheme_str()? {
            s if s.eq_ignore_ascii_case("https") => Scheme::Https,
            s if s.eq_ignore_ascii_case("http") => Scheme::Http,
            _ => return None,
        };
        let target = uri.authority()?;
        let port = target.port_u16().unwrap_or(next.scheme.default_port());
        next.authority = authority(
            target.host().trim_start_matches('[').trim_end_matches(']'),
            port,
        );
        next.path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    } else if location.starts_with('/') {
        next.path = location.to_owned();
    } else {
        // Relative to the current path's directory.
        let base = request.path.split(['?', '#']).next().unwrap_or("/");
        let dir = &base[..=base.rfind('/').unwrap_or(0)];
        next.path = format!("{dir}{location}");
    }
    Some(next)
}

/// The host part of an authority (no port, no brackets), lowercased: what
/// Go's `URL.Hostname()` compares.
pub fn hostname(authority: &str) -> String {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.to_ascii_lowercase()
}

/// What a GET that follows redirects ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    pub response: Response,
    /// The redirect not followed because it leaves the host, if that is
    /// where it stopped.
    pub offsite: Option<String>,
}

/// Redirects followed at most, as Go's client (the kubelet's).
pub const MAX_REDIRECTS: usize = 10;

/// The kubelet's httpGet: follows redirects that stay on the same host name
/// (any port or scheme), up to [`MAX_REDIRECTS`]; a redirect to another host
/// is the answer, with its `Location` in `offsite`.
pub fn get_following(mut request: Request, limit: BodyLimit) -> Result<Followed, HttpError> {
    let host = hostname(&request.authority);
    for _ in 0..=MAX_REDIRECTS {
        let response = send(&request, limit)?;
        if !(300..400).contains(&response.status) {
            return Ok(Followed {
                response,
                offsite: None,
            });
        }
        let Some(location) = response.header("location").map(str::to_owned) else {
            return Ok(Followed {
                response,
                offsite: None,
            });
        };
        match redirect_target(&request, &location) {
            Some(next) if hostname(&next.authority) == host => request = next,
            _ => {
                return Ok(Followed {
                    response,
                    offsite: Some(location),
                });
            }
        }
    }
    Err(HttpError::Failed(format!(
        "stopped after {MAX_REDIRECTS} redirects"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(path: &str) -> Request {
        Request::get(Scheme::Http, "10.0.0.5", 8080, path)
    }

    #[test]
    fn redirects_resolve_against_the_request() {
        let req = at("/a/b?x=1");
        let target = |l: &str| redirect_target(&req, l).map(|r| (r.scheme, r.authority, r.path));
        assert_eq!(
            target("/c"),
            Some((Scheme::Http, "10.0.0.5:8080".into(), "/c".into()))
        );
        assert_eq!(
            target("c?y"),
            Some((Scheme::Http, "10.0.0.5:8080".into(), "/a/c?y".into()))
        );
        assert_eq!(
            target("https://10.0.0.5/z"),
            Some((Scheme::Https, "10.0.0.5:443".into(), "/z".into()))
        );
        assert_eq!(
            target("http://[fd00::1]:81"),
            Some((Scheme::Http, "[fd00::1]:81".into(), "/".into()))
        );
        assert_eq!(target("ftp://10.0.0.5/"), None);
    }

    #[test]
    fn the_same_host_is_the_same_name_whatever_the_port() {
        let req = at("/");
        let host = |l: &str| redirect_target(&req, l).map(|r| hostname(&r.authority));
        assert_eq!(host("http://10.0.0.5:9090/"), Some("10.0.0.5".into()));
        // A prefix of the name is another host (the old check compared prefixes).
        assert_eq!(host("http://10.0.0.50:8080/"), Some("10.0.0.50".into()));
        assert_eq!(
            host("http://10.0.0.5:8080@evil.example/"),
            Some("evil.example".into())
        );
        assert_eq!(hostname("[fd00::1]:80"), "fd00::1");
    }
}
