//! A connected TCP socket on either back end. The io_uring side hands owned buffers
//! to the kernel and gets them back with the result; the epoll side waits for
//! readiness and copies through the same owned buffers, so callers see one API.

// This reads bytes from the network: it must not be able to panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_uring::buf::BoundedBuf;

use super::backend::{current, Backend};

pub enum Stream {
    Uring(tokio_uring::net::TcpStream),
    Epoll(tokio::net::TcpStream),
}

impl Stream {
    /// Connect on this thread's back end.
    pub async fn connect(addr: SocketAddr) -> io::Result<Stream> {
        let stream = match current() {
            Backend::Uring => Stream::Uring(tokio_uring::net::TcpStream::connect(addr).await?),
            Backend::Epoll => Stream::Epoll(tokio::net::TcpStream::connect(addr).await?),
        };
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Uring(s) => s.set_nodelay(on),
            Stream::Epoll(s) => s.set_nodelay(on),
        }
    }

    /// Read into `buf`'s spare capacity (after its length), without a copy on
    /// io_uring. Returns the octets read (0: the peer closed) and the buffer.
    pub async fn read_into(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Stream::Uring(s) => {
                let len = buf.len();
                let (res, slice) = s.read(buf.slice(len..)).await;
                (res, slice.into_inner())
            }
            Stream::Epoll(s) => {
                let res = s.read_buf(&mut buf).await;
                (res, buf)
            }
        }
    }

    /// Write all of `buf`, handing it back.
    pub async fn write_all(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            Stream::Uring(s) => s.write_all(buf).await,
            Stream::Epoll(s) => {
                let res = AsyncWriteExt::write_all(s, &buf).await;
                (res, buf)
            }
        }
    }

    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self {
            Stream::Uring(s) => s.shutdown(how),
            Stream::Epoll(s) => socket2::SockRef::from(s).shutdown(how),
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Uring(s) => s.as_raw_fd(),
            Stream::Epoll(s) => s.as_raw_fd(),
        }
    }
}
