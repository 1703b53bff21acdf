//! One stream abstraction over AF_VSOCK, TCP and Unix sockets.
//!
//! Inside a Nitro enclave or a QEMU guest the only way out is vsock; on a development
//! machine vsock loopback usually does not work, so the same code runs over TCP or a
//! Unix socket. Endpoints are written `tcp:HOST:PORT`, `unix:PATH` or `vsock:CID:PORT`.
//! Frames are length-prefixed CBOR with a hard maximum (see `protocol::frame`).
//!
//! Two more spellings exist for a QEMU guest whose virtio-vsock device is backed by
//! `vhost-device-vsock` (see [`vhost_uds`]):
//!
//! - `vsock-host:PORT` — inside the guest, connect to the host (vsock CID 2). CID 2 is
//!   never accepted in the `vsock:CID:PORT` spelling, and `vsock-host` only connects
//!   when this process is PID 1, i.e. the guest's init: on a development machine nothing
//!   ever connects to its own hypervisor's CID 2.
//! - `vsock-uds:PATH:PORT` — on the host, reach guest port PORT through the backend's
//!   Unix socket PATH (the `CONNECT PORT` / `OK PORT` handshake).

pub mod vhost_uds;

use protocol::frame;
use serde::{de::DeserializeOwned, Serialize};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(String),
    Unix(PathBuf),
    Vsock {
        cid: u32,
        port: u32,
    },
    /// Connect-only, from inside a guest: vsock CID 2 (the host), `vsock-host:PORT`.
    VsockHost {
        port: u32,
    },
    /// Connect-only, on the host: guest `port` through a vhost-device-vsock Unix socket.
    VsockUds {
        path: PathBuf,
        port: u32,
    },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error(
        "bad endpoint {0:?}: use tcp:HOST:PORT, unix:PATH, vsock:CID:PORT, vsock-host:PORT or vsock-uds:PATH:PORT"
    )]
    BadEndpoint(String),
    #[error(
        "vsock CID 2 is the host's hypervisor-reserved address; refusing to use it (a guest writes vsock-host:PORT)"
    )]
    ReservedCid,
    #[error("vsock-host: connects to vsock CID 2 only from inside a guest (as PID 1); this process is not")]
    NotInGuest,
    #[error("{0} can only be connected to, not listened on")]
    ConnectOnly(String),
    #[error("vhost-device-vsock refused CONNECT: {0}")]
    Handshake(String),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("peer closed the connection")]
    Closed,
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    #[error("peer sent a malformed message: {0}")]
    Decode(#[from] protocol::DecodeError),
}

impl FromStr for Endpoint {
    type Err = TransportError;
    fn from_str(s: &str) -> Result<Self, TransportError> {
        let bad = || TransportError::BadEndpoint(s.to_string());
        if let Some(rest) = s.strip_prefix("tcp:") {
            if rest.rsplit_once(':').is_none_or(|(_, p)| p.parse::<u16>().is_err()) {
                return Err(bad());
            }
            Ok(Endpoint::Tcp(rest.to_string()))
        } else if let Some(rest) = s.strip_prefix("unix:") {
            if rest.is_empty() {
                return Err(bad());
            }
            Ok(Endpoint::Unix(PathBuf::from(rest)))
        } else if let Some(rest) = s.strip_prefix("vsock:") {
            let (cid, port) = rest.split_once(':').ok_or_else(bad)?;
            let cid = cid.parse().map_err(|_| bad())?;
            if cid == 2 {
                return Err(TransportError::ReservedCid);
            }
            Ok(Endpoint::Vsock { cid, port: port.parse().map_err(|_| bad())? })
        } else if let Some(port) = s.strip_prefix("vsock-host:") {
            Ok(Endpoint::VsockHost { port: port.parse().map_err(|_| bad())? })
        } else if let Some(rest) = s.strip_prefix("vsock-uds:") {
            let (path, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            if path.is_empty() {
                return Err(bad());
            }
            Ok(Endpoint::VsockUds { path: PathBuf::from(path), port: port.parse().map_err(|_| bad())? })
        } else {
            Err(bad())
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Endpoint::VsockHost { port } => write!(f, "vsock-host:{port}"),
            Endpoint::VsockUds { path, port } => write!(f, "vsock-uds:{}:{port}", path.display()),
        }
    }
}

/// A connected byte stream of any of the three kinds.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Vsock(vsock::VsockStream),
}

impl Stream {
    pub fn connect(ep: &Endpoint) -> Result<Stream, TransportError> {
        Ok(match ep {
            Endpoint::Tcp(a) => {
                let s = TcpStream::connect(a)?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
            Endpoint::Unix(p) => Stream::Unix(UnixStream::connect(p)?),
            Endpoint::Vsock { cid, port } => {
                Stream::Vsock(vsock::VsockStream::connect(&vsock::VsockAddr::new(*cid, *port))?)
            }
            Endpoint::VsockHost { port } => {
                // The only path to vsock CID 2, and only for a guest's init.
                if std::process::id() != 1 {
                    return Err(TransportError::NotInGuest);
                }
                Stream::Vsock(vsock::VsockStream::connect(&vsock::VsockAddr::new(vsock::VMADDR_CID_HOST, *port))?)
            }
            Endpoint::VsockUds { path, port } => Stream::Unix(vhost_uds::connect(path, *port)?),
        })
    }

    /// Connect, retrying until `timeout` (a freshly started peer may not listen yet).
    pub fn connect_retry(ep: &Endpoint, timeout: Duration) -> Result<Stream, TransportError> {
        let start = std::time::Instant::now();
        loop {
            match Stream::connect(ep) {
                Ok(s) => return Ok(s),
                Err(e) if start.elapsed() >= timeout => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Vsock(s) => Stream::Vsock(s.try_clone()?),
        })
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Vsock(s) => s.set_read_timeout(t),
        }
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Vsock(s) => s.set_write_timeout(t),
        }
    }

    /// Close the write half so the peer sees end of stream.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Vsock(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }

    pub fn shutdown(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Vsock(s) => s.shutdown(std::net::Shutdown::Both),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Vsock(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Vsock(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Vsock(s) => s.flush(),
        }
    }
}

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
    Vsock(vsock::VsockListener),
}

impl Listener {
    pub fn bind(ep: &Endpoint) -> Result<Listener, TransportError> {
        Ok(match ep {
            Endpoint::Tcp(a) => Listener::Tcp(TcpListener::bind(a)?),
            Endpoint::Unix(p) => {
                // A stale socket file from a previous run would make bind fail.
                if p.exists() {
                    std::fs::remove_file(p)?;
                }
                Listener::Unix(UnixListener::bind(p)?, p.clone())
            }
            Endpoint::Vsock { cid, port } => {
                Listener::Vsock(vsock::VsockListener::bind(&vsock::VsockAddr::new(*cid, *port))?)
            }
            Endpoint::VsockHost { .. } | Endpoint::VsockUds { .. } => {
                return Err(TransportError::ConnectOnly(ep.to_string()))
            }
        })
    }

    /// The endpoint actually bound (resolves port 0 for TCP).
    pub fn local_endpoint(&self) -> Result<Endpoint, TransportError> {
        Ok(match self {
            Listener::Tcp(l) => Endpoint::Tcp(l.local_addr()?.to_string()),
            Listener::Unix(_, p) => Endpoint::Unix(p.clone()),
            Listener::Vsock(l) => {
                let a = l.local_addr()?;
                Endpoint::Vsock { cid: a.cid(), port: a.port() }
            }
        })
    }

    pub fn accept(&self) -> Result<Stream, TransportError> {
        Ok(match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
            Listener::Unix(l, _) => Stream::Unix(l.accept()?.0),
            Listener::Vsock(l) => Stream::Vsock(l.accept()?.0),
        })
    }
}

/// Write one frame.
pub fn write_frame<W: Write>(w: &mut W, payload: &[u8]) -> Result<(), TransportError> {
    let f = frame::encode(payload, frame::MAX_FRAME)?;
    w.write_all(&f)?;
    w.flush()?;
    Ok(())
}

/// Read one frame of at most `max` bytes. The length is checked before allocating.
pub fn read_frame<R: Read>(r: &mut R, max: usize) -> Result<Vec<u8>, TransportError> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(TransportError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = frame::declared_len(header, max)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            TransportError::Closed
        } else {
            e.into()
        }
    })?;
    Ok(buf)
}

pub fn send<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), TransportError> {
    write_frame(w, &protocol::to_cbor(msg))
}

pub fn recv<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, TransportError> {
    let f = read_frame(r, frame::MAX_FRAME)?;
    Ok(protocol::from_cbor(&f)?)
}

/// Copy bytes both ways between two streams until either side closes. Used by the
/// untrusted host proxy, which relays TLS records it cannot read.
pub fn relay(a: Stream, b: Stream) -> io::Result<(u64, u64)> {
    let (mut a_r, mut b_w) = (a.try_clone()?, b.try_clone()?);
    let (mut b_r, mut a_w) = (b, a);
    let t = std::thread::spawn(move || {
        let n = io::copy(&mut a_r, &mut b_w).unwrap_or(0);
        let _ = b_w.shutdown_write();
        n
    });
    let n2 = io::copy(&mut b_r, &mut a_w).unwrap_or(0);
    let _ = a_w.shutdown_write();
    let n1 = t.join().unwrap_or(0);
    Ok((n1, n2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_endpoints() {
        assert_eq!("tcp:127.0.0.1:80".parse::<Endpoint>().unwrap(), Endpoint::Tcp("127.0.0.1:80".into()));
        assert_eq!("vsock:16:5000".parse::<Endpoint>().unwrap(), Endpoint::Vsock { cid: 16, port: 5000 });
        assert!(matches!("vsock:2:5000".parse::<Endpoint>(), Err(TransportError::ReservedCid)));
        assert_eq!("vsock:4294967295:5000".parse::<Endpoint>().unwrap(), Endpoint::Vsock { cid: u32::MAX, port: 5000 });
        assert_eq!("vsock-host:5001".parse::<Endpoint>().unwrap(), Endpoint::VsockHost { port: 5001 });
        assert_eq!(
            "vsock-uds:/run/a:b/vm.sock:5000".parse::<Endpoint>().unwrap(),
            Endpoint::VsockUds { path: "/run/a:b/vm.sock".into(), port: 5000 }
        );
        for s in ["vsock-host:5001", "vsock-uds:/run/vm.sock:5000", "vsock:16:5000", "unix:/x", "tcp:127.0.0.1:1"] {
            assert_eq!(s.parse::<Endpoint>().unwrap().to_string(), s);
        }
        for bad in [
            "",
            "tcp:nohost",
            "udp:1:2",
            "unix:",
            "vsock:x:1",
            "vsock-host:",
            "vsock-host:2:5",
            "vsock-uds::1",
            "vsock-uds:/p",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn vsock_host_is_refused_outside_a_guest_and_connect_only() {
        // This test process is never PID 1: nothing here may reach the hypervisor's CID 2.
        let ep: Endpoint = "vsock-host:5001".parse().unwrap();
        assert!(matches!(Stream::connect(&ep), Err(TransportError::NotInGuest)));
        assert!(matches!(Listener::bind(&ep), Err(TransportError::ConnectOnly(_))));
        let ep: Endpoint = "vsock-uds:/nonexistent/x:5".parse().unwrap();
        assert!(matches!(Listener::bind(&ep), Err(TransportError::ConnectOnly(_))));
    }

    #[test]
    fn frames_over_unix_socket_and_oversize_drop() {
        let dir = std::env::temp_dir().join(format!("cr-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ep = Endpoint::Unix(dir.join("s"));
        let l = Listener::bind(&ep).unwrap();
        let t = std::thread::spawn(move || {
            let mut s = l.accept().unwrap();
            let m: Vec<u32> = recv(&mut s).unwrap();
            send(&mut s, &m).unwrap();
            // Next the client declares a frame far above the limit.
            assert!(matches!(read_frame(&mut s, 1024), Err(TransportError::Frame(_))));
        });
        let mut c = Stream::connect_retry(&ep, Duration::from_secs(2)).unwrap();
        send(&mut c, &vec![1u32, 2]).unwrap();
        let back: Vec<u32> = recv(&mut c).unwrap();
        assert_eq!(back, vec![1, 2]);
        c.write_all(&u32::MAX.to_be_bytes()).unwrap();
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
