//! Listening sockets: one per shard per `[[listener]]`, all bound to the same
//! address with SO_REUSEPORT so the kernel spreads connections over the shards.
//! The sockets are bound on the main thread; each shard turns its own into a
//! [`Listener`] of its back end.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

pub fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Bind `addr` once per shard. Port 0 is resolved by the first bind so that every
/// shard shares the same concrete port.
pub fn bind_all(
    addr: SocketAddr,
    shards: usize,
) -> std::io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let first = reuseport_listener(addr)?;
    let actual = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..shards {
        all.push(reuseport_listener(actual)?);
    }
    Ok((actual, all))
}

/// A listening socket registered with this thread's back end.
pub enum Listener {
    Uring(tokio_uring::net::TcpListener),
    Epoll(tokio::net::TcpListener),
}

impl Listener {
    /// Register a bound, non-blocking socket with this thread's runtime.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<Listener> {
        Ok(match super::backend::current() {
            super::Backend::Uring => {
                Listener::Uring(tokio_uring::net::TcpListener::from_std(listener))
            }
            super::Backend::Epoll => Listener::Epoll(tokio::net::TcpListener::from_std(listener)?),
        })
    }

    pub async fn accept(&self) -> io::Result<(super::Stream, SocketAddr)> {
        match self {
            Listener::Uring(l) => {
                let (s, peer) = l.accept().await?;
                Ok((super::Stream::Uring(s), peer))
            }
            Listener::Epoll(l) => {
                let (s, peer) = l.accept().await?;
                Ok((super::Stream::Epoll(s), peer))
            }
        }
    }
}
