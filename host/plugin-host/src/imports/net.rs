//! The host side of `wasmlet:plugin/net`: TCP connections a plugin asks for
//! and its grant allows, optionally with TLS, each step one host call.

use std::net::SocketAddr;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wasmtime::component::Resource;

use crate::bindings::{net, types};
use crate::connection::Connection;
use crate::fd_budget::MAX_OPEN;
use crate::state::CallState;
use crate::tls::{INSECURE, VERIFIED};

/// Largest single `receive`: a guest asking for more gets this much.
const MAX_RECEIVE: u32 = 1 << 20;

fn failed(what: impl std::fmt::Display) -> types::Error {
    types::Error::Failed(what.to_string())
}

/// Runs one I/O step within the call's deadline: epochs do not interrupt a
/// guest waiting in a host call, so a silent peer is cut here.
async fn within<T>(
    deadline: std::time::Instant,
    what: impl std::fmt::Display,
    step: impl Future<Output = std::io::Result<T>>,
) -> Result<T, types::Error> {
    match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failed(format!("{what}: {e}"))),
        Err(_) => Err(failed(format!("{what}: timed out at the call's deadline"))),
    }
}

impl net::Host for CallState {
    async fn connect(
        &mut self,
        address: String,
        tls: Option<net::Tls>,
    ) -> Result<Resource<Connection>, types::Error> {
        let addr: SocketAddr = address.parse().map_err(|_| {
            types::Error::InvalidInput(format!(
                "connect: {address:?} is not ip:port (names are not resolved)"
            ))
        })?;
        if !self.grants.may_connect(addr) {
            return Err(self
                .grants
                .refuse(format!("connect to {addr} is not granted")));
        }
        if self.open_sockets() >= MAX_OPEN {
            return Err(self.grants.refuse(format!(
                "connect: {MAX_OPEN} sockets and connections are open already"
            )));
        }
        if !self.fds.take() {
            return Err(self.grants.refuse(crate::fd_budget::over_budget()));
        }
        let connected = self.open(addr, tls).await;
        if connected.is_err() {
            self.fds.release();
        }
        connected
    }
}

impl CallState {
    async fn open(
        &mut self,
        addr: SocketAddr,
        tls: Option<net::Tls>,
    ) -> Result<Resource<Connection>, types::Error> {
        let deadline = self.deadline;
        let tcp = within(
            deadline,
            format!("connect {addr}"),
            TcpStream::connect(addr),
        )
        .await?;
        // Requests are small and written whole: do not wait for more.
        tcp.set_nodelay(true)
            .map_err(|e| failed(format!("connect {addr}: {e}")))?;
        let connection = match tls {
            None => Connection::Plain(tcp),
            Some(tls) => {
                let config = if tls.insecure_skip_verify {
                    &*INSECURE
                } else {
                    &*VERIFIED
                };
                let config = config.clone().map_err(|e| failed(format!("tls: {e}")))?;
                let name = match tls.server_name {
                    Some(name) => ServerName::try_from(name.clone()).map_err(|_| {
                        types::Error::InvalidInput(format!("tls: bad server name {name:?}"))
                    })?,
                    None => ServerName::IpAddress(addr.ip().into()),
                };
                let handshake = TlsConnector::from(config).connect(name, tcp);
                let stream =
                    within(deadline, format!("tls handshake with {addr}"), handshake).await?;
                Connection::Tls(Box::new(stream))
            }
        };
        let connection = self
            .table
            .push(connection)
            .map_err(|e| failed(format!("connect: {e}")))?;
        self.open_connections += 1;
        Ok(connection)
    }
}

impl net::HostConnection for CallState {
    async fn send(
        &mut self,
        connection: Resource<Connection>,
        data: Vec<u8>,
    ) -> Result<(), types::Error> {
        let deadline = self.deadline;
        let connection = self.table.get_mut(&connection).map_err(failed)?;
        within(deadline, "send", connection.send(&data)).await
    }

    async fn receive(
        &mut self,
        connection: Resource<Connection>,
        max: u32,
    ) -> Result<Vec<u8>, types::Error> {
        let deadline = self.deadline;
        let connection = self.table.get_mut(&connection).map_err(failed)?;
        let mut buf = vec![0u8; max.min(MAX_RECEIVE) as usize];
        let n = within(deadline, "receive", connection.receive(&mut buf)).await?;
        buf.truncate(n);
        Ok(buf)
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.open_connections -= 1;
        self.fds.release();
        Ok(())
    }
}
