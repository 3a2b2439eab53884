//! `iari lis-sim`: a test LIS over MLLP for benchmarks, fault drills and site acceptance (the
//! LIS-side counterpart of `iari publish`). Answers each received message with an ACK (AA by
//! default), can inject faults (AE, AR, silence, delay), and can record what it received. The
//! server is `deliver::lis_sim`, which the tests use too; this file only reads the arguments.

use crate::deliver::lis_sim::{FaultPlan, Faults, LisSim};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

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

pub async fn run(args: LisSimArgs) -> anyhow::Result<ExitCode> {
    let mut plan = FaultPlan::new(args.seed);
    plan.ae = args.ae;
    plan.ar = args.ar;
    plan.silent = args.silent;
    plan.delay = Duration::from_millis(args.delay_ms);
    let mut sim = LisSim::new(plan).max_frame_bytes(args.max_frame_bytes);
    if let Some(p) = &args.record {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("record file {}", p.display()))?;
        sim = sim.record_to(file);
    }
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(sim);
    // Scripts and tests read this line to learn the port.
    println!("lis-sim listening on {addr}");
    tokio::select! {
        () = sim.clone().serve(listener, None) => {}
        () = super::worker::shutdown_signal() => {}
    }
    // Not on stdout: whoever read the address line may have closed it since.
    tracing::info!(messages = sim.received(), "lis-sim stopped");
    Ok(ExitCode::SUCCESS)
}
