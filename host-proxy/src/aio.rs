//! Async versions of `transport`'s streams and listeners for the tokio services.
//!
//! TCP and Unix sockets are tokio's own. AF_VSOCK has no tokio type: the `vsock` crate's
//! std socket is put in non-blocking mode and driven by tokio's `AsyncFd` (readiness from
//! the same epoll loop), so vsock endpoints get the same caps and timeouts as the others
//! without an extra dependency or a thread per connection.

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use transport::{Endpoint, Listener, Stream, TransportError};

// SAFETY (both): a `vsock` socket owns its descriptor; it stays open, and `as_raw_fd`
// returns the same one, until the socket is dropped, and the `AsyncFd` owns the socket.
#[allow(unsafe_code)]
fn register_stream(s: vsock::VsockStream) -> io::Result<AsyncFd<vsock::VsockStream>> {
    Ok(unsafe { AsyncFd::register(s) }?)
}

#[allow(unsafe_code)]
fn register_listener(l: vsock::VsockListener) -> io::Result<AsyncFd<vsock::VsockListener>> {
    Ok(unsafe { AsyncFd::register(l) }?)
}

/// An accepted or connected stream of any of the three kinds.
pub enum AsyncStream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
    Vsock(AsyncFd<vsock::VsockStream>),
}

impl AsyncStream {
    /// Take over a connected std stream (it is switched to non-blocking mode).
    pub fn from_std(s: Stream) -> io::Result<AsyncStream> {
        Ok(match s {
            Stream::Tcp(t) => {
                t.set_nonblocking(true)?;
                AsyncStream::Tcp(tokio::net::TcpStream::from_std(t)?)
            }
            Stream::Unix(u) => {
                u.set_nonblocking(true)?;
                AsyncStream::Unix(tokio::net::UnixStream::from_std(u)?)
            }
            Stream::Vsock(v) => {
                v.set_nonblocking(true)?;
                AsyncStream::Vsock(register_stream(v)?)
            }
        })
    }

    /// Connect to `ep`. The connect itself (and the vhost-device-vsock `CONNECT`
    /// handshake, which may wait for the guest) is blocking, so it runs on the bounded
    /// blocking pool; callers hold an upstream slot while it runs.
    pub async fn connect(ep: &Endpoint) -> Result<AsyncStream, TransportError> {
        let ep = ep.clone();
        let s = tokio::task::spawn_blocking(move || Stream::connect(&ep))
            .await
            .map_err(|e| TransportError::Io(io::Error::other(e)))??;
        Ok(AsyncStream::from_std(s)?)
    }

    /// Write as much of `buf` as fits without waiting (for a one-frame refusal).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            AsyncStream::Tcp(t) => t.try_write(buf),
            AsyncStream::Unix(u) => u.try_write(buf),
            AsyncStream::Vsock(v) => v.get_ref().write(buf),
        }
    }
}

impl AsyncRead for AsyncStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Tcp(t) => Pin::new(t).poll_read(cx, buf),
            AsyncStream::Unix(u) => Pin::new(u).poll_read(cx, buf),
            AsyncStream::Vsock(v) => loop {
                let mut guard = ready!(v.poll_read_ready(cx))?;
                let unfilled = buf.initialize_unfilled();
                match guard.try_io(|fd| fd.get_ref().read(unfilled)) {
                    Ok(Ok(n)) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_would_block) => continue,
                }
            },
        }
    }
}

impl AsyncWrite for AsyncStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AsyncStream::Tcp(t) => Pin::new(t).poll_write(cx, buf),
            AsyncStream::Unix(u) => Pin::new(u).poll_write(cx, buf),
            AsyncStream::Vsock(v) => loop {
                let mut guard = ready!(v.poll_write_ready(cx))?;
                match guard.try_io(|fd| fd.get_ref().write(buf)) {
                    Ok(r) => return Poll::Ready(r),
                    Err(_would_block) => continue,
                }
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Tcp(t) => Pin::new(t).poll_flush(cx),
            AsyncStream::Unix(u) => Pin::new(u).poll_flush(cx),
            AsyncStream::Vsock(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AsyncStream::Tcp(t) => Pin::new(t).poll_shutdown(cx),
            AsyncStream::Unix(u) => Pin::new(u).poll_shutdown(cx),
            AsyncStream::Vsock(v) => Poll::Ready(v.get_ref().shutdown(std::net::Shutdown::Write)),
        }
    }
}

/// A listener of any of the three kinds, accepting without a thread of its own.
pub enum AsyncListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
    Vsock(AsyncFd<vsock::VsockListener>),
}

/// Pending connections the kernel queues for a TCP listener (capped by somaxconn): a
/// burst of connects should wait for accept, not be reset by a full backlog.
const TCP_BACKLOG: u32 = 4096;

impl AsyncListener {
    /// Bind `ep`. Must be called inside the runtime.
    pub fn bind(ep: &Endpoint) -> Result<AsyncListener, TransportError> {
        match ep {
            Endpoint::Tcp(a) => {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(a)?
                    .next()
                    .ok_or_else(|| TransportError::BadEndpoint(ep.to_string()))?;
                let socket =
                    if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
                socket.set_reuseaddr(true)?;
                socket.bind(addr)?;
                Ok(AsyncListener::Tcp(socket.listen(TCP_BACKLOG)?))
            }
            _ => AsyncListener::from_std(Listener::bind(ep)?),
        }
    }

    pub fn from_std(l: Listener) -> Result<AsyncListener, TransportError> {
        Ok(match l {
            Listener::Tcp(t) => {
                t.set_nonblocking(true)?;
                AsyncListener::Tcp(tokio::net::TcpListener::from_std(t)?)
            }
            Listener::Unix(u, _) => {
                u.set_nonblocking(true)?;
                AsyncListener::Unix(tokio::net::UnixListener::from_std(u)?)
            }
            Listener::Vsock(v) => {
                v.set_nonblocking(true)?;
                AsyncListener::Vsock(register_listener(v)?)
            }
        })
    }

    /// The endpoint actually bound (resolves port 0 for TCP).
    pub fn local_endpoint(&self) -> Result<Endpoint, TransportError> {
        Ok(match self {
            AsyncListener::Tcp(l) => Endpoint::Tcp(l.local_addr()?.to_string()),
            AsyncListener::Unix(l) => {
                let a = l.local_addr()?;
                Endpoint::Unix(a.as_pathname().map(|p| p.to_path_buf()).unwrap_or_default())
            }
            AsyncListener::Vsock(l) => {
                let a = l.get_ref().local_addr()?;
                Endpoint::Vsock { cid: a.cid(), port: a.port() }
            }
        })
    }

    /// Accept one connection; the peer's IP address for TCP (what rate limits key on).
    pub async fn accept(&self) -> io::Result<(AsyncStream, Option<IpAddr>)> {
        match self {
            AsyncListener::Tcp(l) => {
                let (s, a) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok((AsyncStream::Tcp(s), Some(a.ip())))
            }
            AsyncListener::Unix(l) => Ok((AsyncStream::Unix(l.accept().await?.0), None)),
            AsyncListener::Vsock(l) => loop {
                let mut guard = l.readable().await?;
                match guard.try_io(|fd| fd.get_ref().accept()) {
                    Ok(Ok((s, _))) => {
                        s.set_nonblocking(true)?;
                        return Ok((AsyncStream::Vsock(register_stream(s)?), None));
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => continue,
                }
            },
        }
    }
}
