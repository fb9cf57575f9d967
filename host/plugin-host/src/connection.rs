//! The host side of a `net` connection: a TCP stream, or TLS over one. Owned
//! by the call's resource table; what `net` hands the guest a handle to.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// One open connection, owned by the call's resource table.
#[derive(Debug)]
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    pub(crate) async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(data).await,
            Self::Tls(s) => {
                s.write_all(data).await?;
                // rustls buffers records until flushed.
                s.flush().await
            }
        }
    }

    pub(crate) async fn receive(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf).await,
            Self::Tls(s) => match s.read(buf).await {
                // Many servers close without a TLS close_notify; for a
                // request/response client that is just the end.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}
