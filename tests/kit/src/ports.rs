//! Ports for tests that hand one to a server started later (private instances, a LIS that is
//! down at first): free ones to hand out, and waiting for one to open or close.

use std::net::TcpListener;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A TCP port free on every address when asked, for a server the caller starts later.
///
/// Taken from below the kernel's ephemeral range, never from it. A port asked of the kernel and
/// released goes back to the pool that every bind to port 0 draws from (other tests' listeners,
/// and Erlang clients, which bind 0.0.0.0:0 before they connect), so it can be taken before the
/// server binds it: a CI run once lost a RabbitMQ node to `eaddrinuse` that way.
/// Ports go round the range from a start that differs per process, so concurrent test
/// processes seldom meet; `Rabbit::start` still retries when one does.
pub fn free_port() -> u16 {
    // Starts where this process's seed says, then steps by one, so no two calls of one process
    // hand out the same port until the range wraps round.
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(process_seed()));
    let low = ephemeral_low();
    if low <= PORTS_FROM {
        // An unusual range leaves no room below it: ask the kernel, as a last resort.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        return l.local_addr().expect("local address").port();
    }
    let span = u32::from(low - PORTS_FROM);
    for _ in 0..span {
        let port = PORTS_FROM + (next.fetch_add(1, Ordering::Relaxed) % span) as u16;
        // 0.0.0.0 conflicts with a socket on any address, as the broker's own check of its
        // distribution port does.
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORTS_FROM}..{low}");
}

/// Lowest port `free_port` hands out: above the well-known and most registered service ports.
const PORTS_FROM: u16 = 20000;

/// First port of the kernel's ephemeral range (Linux's default when it cannot be read).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

fn process_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::process::id().wrapping_mul(2_654_435_761) ^ nanos
}

/// Waits until `port` on 127.0.0.1 accepts connections (`up`) or refuses them.
pub fn wait_for_port(port: u16, up: bool, limit: Duration) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() != up {
        assert!(t0.elapsed() < limit, "port {port} not {up} after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_of_one_process_differ_and_lie_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports.len(),
            "a port handed out twice: {ports:?}"
        );
        let low = ephemeral_low();
        assert!(
            ports.iter().all(|p| (PORTS_FROM..low).contains(p)),
            "{ports:?} not in {PORTS_FROM}..{low}"
        );
    }
}
