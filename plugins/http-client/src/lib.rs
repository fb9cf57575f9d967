//! A small HTTP/1.1 GET client over any byte stream (in the plugins, a
//! connection the host made through the `net` import): what the built-in
//! plugins need to fetch a manifest or run an httpGet probe or hook. One
//! request per connection; redirects are not followed.

use std::io::{Read, Write};

/// One GET.
#[derive(Debug, Clone)]
pub struct Get<'a> {
    /// The `Host` header (the name the URL used).
    pub host: &'a str,
    /// Path and query, starting with `/`.
    pub path: &'a str,
    pub headers: &'a [(String, String)],
    /// Bodies larger than this are refused ...
    pub max_body: usize,
    /// ... or, with this, cut there (a probe reads only the start of a body).
    pub truncate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `get` over `conn` and reads the whole response.
pub fn get(mut conn: impl Read + Write, get: &Get<'_>) -> Result<Response, String> {
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wasmlet\r\nAccept: */*\r\nConnection: close\r\n",
        get.path, get.host
    );
    for (name, value) in get.headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    conn.write_all(request.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    // Headers plus the capped body; one byte more tells that the cap was
    // passed. Read in large chunks: each read is a host call.
    let limit = get.max_body + 64 * 1024 + 1;
    let mut raw = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    while raw.len() < limit {
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&chunk[..n.min(limit - raw.len())]);
                // Done once the body its Content-Length announces is in: no
                // need to wait for the server to close (a host round trip).
                if complete(&raw) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the response: {e}")),
        }
    }
    if get.truncate {
        // Keep what was read: a body cut at the cap is still an answer.
        return parse_head(&raw).map(|(mut response, rest)| {
            response.body = rest[..rest.len().min(get.max_body)].to_vec();
            response
        });
    }
    parse(&raw, get.max_body)
}

/// Whether `raw` holds a whole response with a Content-Length body.
fn complete(raw: &[u8]) -> bool {
    let Ok((response, rest)) = parse_head(raw) else {
        return false;
    };
    response
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|length| rest.len() >= length)
}

/// The status and headers of a response, and the raw bytes after them.
fn parse_head(raw: &[u8]) -> Result<(Response, &[u8]), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("not an HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    Ok((response, &raw[end + 4..]))
}

/// Parses a complete HTTP/1.x response.
pub fn parse(raw: &[u8], max_body: usize) -> Result<Response, String> {
    let (mut response, rest) = parse_head(raw)?;
    response.body = if response
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest, max_body).ok_or("a broken chunked body")?
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("Content-Length {length:?}"))?;
        if length > max_body {
            return Err(format!(
                "the body ({length} bytes) is over {max_body} bytes"
            ));
        }
        rest.get(..length).ok_or("the body ended early")?.to_vec()
    } else {
        rest.to_vec()
    };
    if response.body.len() > max_body {
        return Err(format!("the body is over {max_body} bytes"));
    }
    Ok(response)
}

fn dechunk(mut raw: &[u8], max_body: usize) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        if body.len() > max_body {
            return Some(body); // the caller reports the cap
        }
        raw = raw.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_chunked_bodies_and_refuses_the_rest() {
        let ok = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 100);
        assert_eq!(ok.map(|r| (r.status, r.body)), Ok((200, b"hello".to_vec())));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(parse(chunked, 100).map(|r| r.body), Ok(b"hello".to_vec()));
        let moved =
            parse(b"HTTP/1.1 302 Found\r\nLocation: http://x/\r\n\r\n", 100).expect("parses");
        assert_eq!(
            (moved.status, moved.header("location")),
            (302, Some("http://x/"))
        );
        let huge = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 20000000\r\n\r\n",
            10 << 20,
        );
        assert!(huge.is_err_and(|e| e.contains("over")));
        assert!(parse(b"garbage", 100).is_err());
    }
}

/// `host:port` for a socket address (`[v6]:port` for IPv6).
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether an httpGet action's scheme (`HTTP` or `HTTPS`, any case) asks for TLS.
pub fn wants_tls(scheme: &str) -> Result<bool, String> {
    match scheme.to_ascii_uppercase().as_str() {
        "" | "HTTP" => Ok(false),
        "HTTPS" => Ok(true),
        _ => Err(format!("scheme {scheme:?}: expected HTTP or HTTPS")),
    }
}

/// What an httpGet probe or hook saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub status: u16,
    /// Set when the answer redirects to another host (not followed).
    pub offsite_redirect: Option<String>,
}

/// The kubelet's httpGet: GET `path` from `host:port` with `headers`, over
/// the stream `connect` opens to that authority; a redirect is reported, never
/// followed.
pub fn http_check<S: Read + Write>(
    connect: impl FnOnce(&str) -> std::io::Result<S>,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<Checked, String> {
    let target = authority(host, port);
    let conn = connect(&target).map_err(|e| format!("connecting to {target}: {e}"))?;
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let mut all = vec![("User-Agent".to_owned(), "kube-probe/wasmlet".to_owned())];
    all.extend(headers.iter().cloned());
    let response = get(
        conn,
        &Get {
            host: &target,
            path: &path,
            headers: &all,
            max_body: 10 << 10,
            truncate: true,
        },
    )?;
    let offsite_redirect = (300..400)
        .contains(&response.status)
        .then(|| response.header("location").map(str::to_owned))
        .flatten()
        .filter(|location| {
            location.starts_with("http")
                && !location
                    .split("//")
                    .nth(1)
                    .is_some_and(|rest| rest.starts_with(&target))
        });
    Ok(Checked {
        status: response.status,
        offsite_redirect,
    })
}
