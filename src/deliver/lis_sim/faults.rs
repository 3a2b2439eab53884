//! The fault plan of `iari lis-sim`: which received messages get AE, AR or no answer (every N-th,
//! or a seeded random fraction), and a delay before every answer.

use super::{AckReply, Received, Replies, Reply};
use crate::deliver::ack::AckCode;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

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

/// AA to everything except the faults: silence first, then AE (ERR-3 101), then AR (ERR-3 207).
#[derive(Debug)]
pub struct FaultPlan {
    pub ae: Option<Faults>,
    pub ar: Option<Faults>,
    pub silent: Option<Faults>,
    /// Waited before each answer.
    pub delay: Duration,
    rng: Mutex<u64>,
}

impl FaultPlan {
    /// A plan whose fractions are drawn from `seed` (same seed, same choices in arrival order).
    pub fn new(seed: u64) -> FaultPlan {
        FaultPlan {
            ae: None,
            ar: None,
            silent: None,
            delay: Duration::ZERO,
            rng: Mutex::new(seed.max(1)),
        }
    }

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
}

impl Replies for FaultPlan {
    fn reply(&self, n: u64, _frame: &[u8], _message: &Received) -> Reply {
        let ack = if self.hits(self.silent, n) {
            return Reply::Silence;
        } else if self.hits(self.ae, n) {
            AckReply::new(AckCode::AE, Some(101), "rejected by lis-sim (AE)")
        } else if self.hits(self.ar, n) {
            AckReply::new(AckCode::AR, Some(207), "busy, resend later (lis-sim AR)")
        } else {
            AckReply::aa()
        };
        Reply::Answer {
            delay: self.delay,
            acks: vec![ack],
        }
    }
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

    #[test]
    fn silence_comes_before_ae_before_ar() {
        let mut plan = FaultPlan::new(1);
        plan.silent = Some(Faults::Every(6));
        plan.ae = Some(Faults::Every(3));
        plan.ar = Some(Faults::Every(2));
        let msg = crate::deliver::reply::read(b"MSH|^~\\&|A|B|C|D|||ORU^R01|X1|P|2.5.1\r").unwrap();
        let answers: Vec<&str> = (1..=6)
            .map(|n| plan.reply(n, b"", &msg).recorded())
            .collect();
        assert_eq!(answers, ["AA", "AR", "AE", "AR", "AA", "-"]);
    }
}
