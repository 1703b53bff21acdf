//! Host side of a virtio-vsock device backed by `vhost-device-vsock` with a Unix-socket
//! backend (the Firecracker "hybrid vsock" convention).
//!
//! - Host → guest: connect to the backend's Unix socket `PATH`, write `CONNECT <port>\n`;
//!   once the guest accepted on vsock port `<port>` the backend answers `OK <host_port>\n`
//!   and from then on the socket is a plain byte stream to the guest. If nothing listens
//!   in the guest, the backend closes the socket instead.
//! - Guest → host: a guest connecting to vsock CID 2, port `P`, arrives as a connection on
//!   the Unix socket `PATH_P`, which the host application listens on (see [`guest_port_path`]).
//!
//! This speaks only to a Unix socket; it never opens an AF_VSOCK socket.

use crate::TransportError;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the backend may take to answer `CONNECT` (the guest must accept first).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest answer line accepted (`OK 4294967295\n` is 14 bytes).
const MAX_REPLY: usize = 64;

/// Connect to guest vsock `port` through the backend's socket at `path`.
pub fn connect(path: &Path, port: u32) -> Result<UnixStream, TransportError> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    s.write_all(format!("CONNECT {port}\n").as_bytes())?;
    let line = read_line(&mut s)?;
    parse_ok(&line)?;
    s.set_read_timeout(None)?;
    Ok(s)
}

/// Read one `\n`-terminated line byte by byte, so nothing after it is consumed.
fn read_line<R: Read>(r: &mut R) -> Result<String, TransportError> {
    let mut line = Vec::with_capacity(16);
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => {
                return Err(TransportError::Handshake("backend closed the socket (no listener in the guest?)".into()))
            }
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => {
                if line.len() >= MAX_REPLY {
                    return Err(TransportError::Handshake("over-long reply".into()));
                }
                line.push(b[0]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
    String::from_utf8(line).map_err(|_| TransportError::Handshake("reply is not text".into()))
}

/// Accept exactly `OK <u32>`; returns the host-side port the backend assigned.
fn parse_ok(line: &str) -> Result<u32, TransportError> {
    line.strip_prefix("OK ")
        .and_then(|p| p.parse::<u32>().ok())
        .ok_or_else(|| TransportError::Handshake(format!("unexpected reply {line:?}")))
}

/// The Unix socket on which guest connections to host vsock port `port` arrive.
pub fn guest_port_path(uds_path: &Path, port: u32) -> PathBuf {
    let mut s = uds_path.as_os_str().to_owned();
    s.push(format!("_{port}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    #[test]
    fn reply_parsing() {
        assert_eq!(parse_ok("OK 1073741824").unwrap(), 1073741824);
        for bad in ["", "OK", "OK x", "ok 5", "ERR 5", "OK 5 6"] {
            assert!(matches!(parse_ok(bad), Err(TransportError::Handshake(_))), "{bad}");
        }
        assert_eq!(guest_port_path(Path::new("/run/vm.sock"), 5001), PathBuf::from("/run/vm.sock_5001"));
    }

    fn fake_backend(reply: &'static [u8]) -> (PathBuf, std::thread::JoinHandle<String>) {
        let dir = std::env::temp_dir().join(format!("cr-vhost-{}-{}", std::process::id(), reply.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vm.sock");
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut w = s;
            w.write_all(reply).unwrap();
            // After the handshake the stream carries payload untouched.
            let mut rest = [0u8; 4];
            if reply.starts_with(b"OK") && r.read_exact(&mut rest).is_ok() {
                w.write_all(&rest).unwrap();
            }
            line
        });
        (path, t)
    }

    #[test]
    fn handshake_then_payload() {
        let (path, t) = fake_backend(b"OK 77\nPAY");
        let mut s = connect(&path, 5000).unwrap();
        let mut first = [0u8; 3];
        s.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"PAY", "bytes after the OK line belong to the stream");
        s.write_all(b"ping").unwrap();
        let mut echo = [0u8; 4];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"ping");
        assert_eq!(t.join().unwrap(), "CONNECT 5000\n");
    }

    #[test]
    fn refused_or_garbage_is_an_error() {
        let (path, t) = fake_backend(b"");
        assert!(matches!(connect(&path, 1), Err(TransportError::Handshake(_))));
        t.join().unwrap();
        let (path, t) = fake_backend(b"NO\n");
        assert!(matches!(connect(&path, 1), Err(TransportError::Handshake(_))));
        t.join().unwrap();
    }
}
