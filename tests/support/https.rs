//! An HTTPS server on 127.0.0.1 with a self-signed certificate, for HTTPS
//! probes and manifest URLs.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

#[path = "../../host/plugin-host/tests/support/tls.rs"]
mod tls;

pub use tls::self_signed_for;

/// For HTTPS probes: `/ok` is 200, anything else 500, under a certificate
/// nobody trusts. Returns the port; it serves until the test's runtime ends.
pub async fn serve() -> u16 {
    let pages = vec![("/ok".into(), "ok".into())];
    serve_pages(tls::self_signed_acceptor(), Arc::new(Mutex::new(pages))).await
}

/// The `(path, body)` pairs a server answers with 200 (the test may change them).
pub type Pages = Arc<Mutex<Vec<(String, String)>>>;

/// Serves each of `pages` with 200 and anything else with 500, over
/// `acceptor`'s TLS. Returns the port.
pub async fn serve_pages(acceptor: TlsAcceptor, pages: Pages) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (acceptor, pages) = (acceptor.clone(), pages.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = acceptor.accept(conn).await else {
                    return;
                };
                let mut buf = vec![0; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or_default();
                let page = pages
                    .lock()
                    .ok()
                    .and_then(|pages| pages.iter().find(|(p, _)| p == path).cloned());
                let reply = match page {
                    Some((_, body)) => {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    None => {
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".into()
                    }
                };
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}
