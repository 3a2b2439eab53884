//! `iari lis-sim`: a test LIS over MLLP for benchmarks, fault drills and site acceptance (the
//! LIS-side counterpart of `iari publish`). Answers each received message with an ACK (AA by
//! default), can inject faults (AE, AR, silence, delay), and can record what it received.

use crate::deliver::ack::AckCode;
use crate::deliver::mllp::MllpCodec;
use crate::deliver::reply::{self, Received};
use anyhow::Context;
use futures::{SinkExt, StreamExt};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

#[derive(Debug, Clone, clap::Args)]
pub struct LisSimArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed on start).
    #[arg(long, default_value = "127.0.0.1:2575")]
    pub listen: String,
    /// Answer AE (parked by the sender, never resent) to these messages: `every:N` or a fraction.
    #[arg(long, value_name = "SPEC")]
    pub ae: Option<Faults>,
    /// Answer AR with ERR-3 207 (resent by the sender after backoff): `every:N` or a fraction.
    #[arg(long, value_name = "SPEC")]
    pub ar: Option<Faults>,
    /// Never answer these messages (the sender times out and resends): `every:N` or a fraction.
    #[arg(long, value_name = "SPEC")]
    pub silent: Option<Faults>,
    /// Wait this long before each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Append one tab-separated line per received message: receive time (unix ms), MSH-10,
    /// PID-3.1, OBR-2.1, OBR-3.1, and the answer (AA, AE, AR, or `-` for none).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Seed of the fractions' pseudo-random choice (same seed, same choices in arrival order).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Largest frame accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_frame_bytes: usize,
}

/// Which messages a fault hits: every N-th received frame (resends count), or a random fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Faults {
    Every(u64),
    Fraction(f64),
}

impl FromStr for Faults {
    type Err = String;
    fn from_str(s: &str) -> Result<Faults, String> {
        if let Some(n) = s.strip_prefix("every:") {
            return match n.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(Faults::Every(n)),
                _ => Err(format!("`every:N` needs N >= 1, got {n:?}")),
            };
        }
        match s.parse::<f64>() {
            Ok(f) if (0.0..=1.0).contains(&f) => Ok(Faults::Fraction(f)),
            _ => Err(format!("expected `every:N` or a fraction 0..1, got {s:?}")),
        }
    }
}

/// What the LIS does with one received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ack(AckCode),
    Silent,
}

struct Sim {
    args: LisSimArgs,
    received: AtomicU64,
    rng: Mutex<u64>,
    record: Option<Mutex<std::fs::File>>,
}

impl Sim {
    fn hits(&self, f: Option<Faults>, n: u64) -> bool {
        match f {
            None => false,
            Some(Faults::Every(k)) => n.is_multiple_of(k),
            Some(Faults::Fraction(p)) => self.uniform() < p,
        }
    }

    /// xorshift64*: a dependency-free, seedable choice; quality is ample for fault injection.
    fn uniform(&self) -> f64 {
        let mut s = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Silence first, then AE, then AR; `n` counts received frames from 1.
    fn answer(&self, n: u64) -> Answer {
        if self.hits(self.args.silent, n) {
            Answer::Silent
        } else if self.hits(self.args.ae, n) {
            Answer::Ack(AckCode::AE)
        } else if self.hits(self.args.ar, n) {
            Answer::Ack(AckCode::AR)
        } else {
            Answer::Ack(AckCode::AA)
        }
    }

    fn record(&self, at_ms: i64, r: &Received, answer: Answer) -> std::io::Result<()> {
        let Some(file) = &self.record else {
            return Ok(());
        };
        let code = match answer {
            Answer::Ack(c) => c.as_str(),
            Answer::Silent => "-",
        };
        let line = format!(
            "{at_ms}\t{}\t{}\t{}\t{}\t{code}\n",
            r.control_id, r.patient_id, r.placer, r.filler
        );
        // One write per line on an O_APPEND file: readers never see half a line.
        file.lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(line.as_bytes())
    }

    async fn serve(self: Arc<Self>, sock: TcpStream) {
        let _ = sock.set_nodelay(true);
        let mut conn = Framed::new(sock, MllpCodec::new(self.args.max_frame_bytes));
        while let Some(frame) = conn.next().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "MLLP read failed; closing the connection");
                    return;
                }
            };
            let at = chrono::Utc::now();
            let received = match reply::read(&frame) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "not an HL7 message; no answer");
                    continue;
                }
            };
            let n = self.received.fetch_add(1, Ordering::Relaxed) + 1;
            let answer = self.answer(n);
            if let Err(e) = self.record(at.timestamp_millis(), &received, answer) {
                tracing::error!(error = %e, "cannot write the record file");
            }
            let Answer::Ack(code) = answer else { continue };
            if self.args.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(self.args.delay_ms)).await;
            }
            let (err, text) = match code {
                AckCode::AE => (Some(101), "rejected by lis-sim (AE)"),
                AckCode::AR => (Some(207), "busy, resend later (lis-sim AR)"),
                _ => (None, ""),
            };
            let ack = reply::build(&received, code, err, text, &format!("SIM{n}"), at);
            if let Err(e) = conn.send(ack).await {
                tracing::warn!(error = %e, "cannot send the ACK; closing the connection");
                return;
            }
        }
    }
}

pub async fn run(args: LisSimArgs) -> anyhow::Result<ExitCode> {
    let record = match &args.record {
        Some(p) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("record file {}", p.display()))?,
        )),
        None => None,
    };
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim {
        rng: Mutex::new(args.seed.max(1)),
        args,
        received: AtomicU64::new(0),
        record,
    });
    // Scripts and tests read this line to learn the port.
    println!("lis-sim listening on {addr}");
    let accept = async {
        loop {
            match listener.accept().await {
                Ok((sock, peer)) => {
                    tracing::info!(%peer, "LIS connection");
                    tokio::spawn(sim.clone().serve(sock));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    tokio::select! {
        _ = accept => {}
        () = super::worker::shutdown_signal() => {}
    }
    // Not on stdout: whoever read the address line may have closed it since.
    tracing::info!(
        messages = sim.received.load(Ordering::Relaxed),
        "lis-sim stopped"
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs() {
        assert_eq!("every:3".parse::<Faults>(), Ok(Faults::Every(3)));
        assert_eq!("0.25".parse::<Faults>(), Ok(Faults::Fraction(0.25)));
        for bad in ["every:0", "every:x", "1.5", "-0.1", "three"] {
            assert!(bad.parse::<Faults>().is_err(), "{bad}");
        }
    }
}
