//! An async byte stream that is plain TCP or TLS on either side, so the SMTP code of the
//! load generator and the sink is written once over tokio.

use std::io;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub enum Conn {
    Plain(TcpStream),
    // Boxed: a TLS session is much larger than a socket.
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Only while an upgrade is in progress (or after one failed).
    Gone,
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection was lost during a TLS upgrade",
    )
}

impl Conn {
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Client(s) => s.read(buf).await,
            Conn::Server(s) => s.read(buf).await,
            Conn::Gone => Err(gone()),
        }
    }

    /// Writes all of `bytes` and flushes (a TLS record is only sent on flush).
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(bytes).await,
            Conn::Client(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Server(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Gone => Err(gone()),
        }
    }

    /// Runs the client side of a TLS handshake on a plain connection.
    pub async fn upgrade_client(
        &mut self,
        connector: &TlsConnector,
        name: ServerName<'static>,
    ) -> io::Result<()> {
        let Conn::Plain(tcp) = std::mem::replace(self, Conn::Gone) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = connector.connect(name, tcp).await?;
        *self = Conn::Client(Box::new(tls));
        Ok(())
    }

    /// Runs the server side of a TLS handshake on a plain connection.
    pub async fn upgrade_server(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let Conn::Plain(tcp) = std::mem::replace(self, Conn::Gone) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = acceptor.accept(tcp).await?;
        *self = Conn::Server(Box::new(tls));
        Ok(())
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Client(_) | Conn::Server(_))
    }

    /// Whether the client's TLS session was resumed rather than fully negotiated.
    pub fn resumed(&self) -> bool {
        match self {
            Conn::Client(s) => {
                s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
            }
            _ => false,
        }
    }

    /// Sends TLS close_notify (when TLS is on) and shuts down our sending side.
    pub async fn shutdown(&mut self) {
        let _ = match self {
            Conn::Plain(s) => s.shutdown().await,
            Conn::Client(s) => s.shutdown().await,
            Conn::Server(s) => s.shutdown().await,
            Conn::Gone => Ok(()),
        };
    }
}
