//! TCP_NODELAY for PostgreSQL connections. sqlx 0.9 leaves Nagle's algorithm on, and a batch
//! whose parameters span several TCP segments then waits for the server's delayed ACK
//! (~40 ms per statement on Linux). sqlx exposes no socket, so after each connect we set the
//! option on this process's TCP sockets whose peer is the database.
//!
//! Works around transact-rs/sqlx#4335 (TCP_NODELAY dropped in 0.9; fixed by transact-rs/sqlx#4336,
//! merged but not in a release as of 0.9's latest): delete this module, and its one call in
//! `store::pool`, once the release that carries the fix is in Cargo.lock.

use std::net::SocketAddr;

/// Sets TCP_NODELAY on every TCP socket of this process connected to `port`. Best effort:
/// failures only cost latency, so they are logged at debug level.
pub fn apply(port: u16) {
    #[cfg(target_os = "linux")]
    linux::apply(port);
    #[cfg(not(target_os = "linux"))]
    let _ = port;
}

fn is_db_peer(peer: Option<SocketAddr>, port: u16) -> bool {
    peer.is_some_and(|p| p.port() == port)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::{BorrowedFd, RawFd};

    // The one `unsafe` of the service: borrowing an fd we did not open (see the SAFETY note).
    #[allow(unsafe_code)]
    pub fn apply(port: u16) {
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        for entry in dir.flatten() {
            let is_socket = std::fs::read_link(entry.path())
                .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
            let fd: Option<RawFd> = entry.file_name().to_str().and_then(|n| n.parse().ok());
            if let (true, Some(fd)) = (is_socket, fd) {
                // SAFETY: the fd was open when listed. If it is closed concurrently the calls
                // below fail with EBADF; if its number is reused meanwhile they act on another
                // socket of ours, where TCP_NODELAY is harmless or refused (ENOTSOCK/EOPNOTSUPP).
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                let sock = socket2::SockRef::from(&fd);
                let peer = sock.peer_addr().ok().and_then(|a| a.as_socket());
                if super::is_db_peer(peer, port)
                    && let Err(e) = sock.set_tcp_nodelay(true)
                {
                    tracing::debug!(error = %e, "TCP_NODELAY not set on a database socket");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nodelay_on_sockets_to_the_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(!client.nodelay().unwrap());
        apply(port);
        assert!(client.nodelay().unwrap());
        assert!(!is_db_peer(None, port));
    }
}
