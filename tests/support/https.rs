//! An HTTPS server on 127.0.0.1 with a self-signed certificate, for HTTPS
//! probes: `/ok` is 200, anything else 500.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../../host/plugin-host/tests/support/tls.rs"]
mod tls;

/// Starts the server on a free port and returns the port. It serves until
/// the test's runtime ends.
pub async fn serve() -> u16 {
    let acceptor = tls::self_signed_acceptor();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = acceptor.accept(conn).await else {
                    return;
                };
                let mut buf = vec![0; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let ok = buf[..n].starts_with(b"GET /ok ");
                let reply: &[u8] = if ok {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                } else {
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
                };
                let _ = conn.write_all(reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}
