//! A batch is a list of captures, each one value that moves through its states: received →
//! prepared (or settled on a failure) → classified → settled. The stages take a batch by value
//! and hand it on, so a capture's event, image, grade and disposition can never fall out of
//! step, and a capture no stage settled is visible as such.

use super::outcome::{Disposition, unreachable_failure};
use super::prepare::Prepared;
use crate::domain::Classification;
use crate::store::decisions::Timings;
use std::time::Instant;

/// A message taken from the queue, as the processing step sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub body: Vec<u8>,
    /// Earlier deliveries of this message (`x-delivery-count`; 0 on the first).
    pub delivery_count: u32,
    pub received_at: Instant,
}

/// Where one capture is.
#[derive(Debug)]
pub enum State {
    /// The message body, not yet parsed.
    Received(Vec<u8>),
    /// Parsed, fetched, decoded; its tensor is in the batch's packed input.
    Prepared(Box<Prepared>),
    /// Graded by the ensemble, waiting for the store.
    Classified(Box<Classified>),
    /// What happens to the message: ack (committed or duplicate), retry or dead-letter.
    Settled(Disposition),
}

#[derive(Debug)]
pub struct Classified {
    pub prepared: Prepared,
    pub classification: Classification,
    pub timings: Timings,
}

#[derive(Debug)]
pub struct Capture {
    pub delivery_count: u32,
    pub received_at: Instant,
    pub state: State,
}

impl Capture {
    /// Replaces the state with what `f` makes of it.
    pub fn advance(&mut self, f: impl FnOnce(State) -> State) {
        let old = std::mem::replace(&mut self.state, State::Received(Vec::new()));
        self.state = f(old);
    }
}

/// The captures of one batch, in delivery order, and the packed model input of the prepared
/// ones (NCHW, in capture order) until inference has consumed it.
#[derive(Debug, Default)]
pub struct Batch {
    pub captures: Vec<Capture>,
    pub input: Vec<f32>,
}

impl Batch {
    pub fn new(messages: Vec<Incoming>) -> Batch {
        let captures = messages
            .into_iter()
            .map(|m| Capture {
                delivery_count: m.delivery_count,
                received_at: m.received_at,
                state: State::Received(m.body),
            })
            .collect();
        Batch {
            captures,
            input: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.captures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.captures.is_empty()
    }

    /// How many captures are in `state`'s kind (by the predicate).
    pub fn count(&self, pred: impl Fn(&State) -> bool) -> usize {
        self.captures.iter().filter(|c| pred(&c.state)).count()
    }

    /// One disposition per message, in order. Every stage settles what it fails, so an
    /// unsettled capture is a bug: it is retried, the safe answer.
    pub fn dispositions(self) -> Vec<Disposition> {
        self.captures
            .into_iter()
            .map(|c| match c.state {
                State::Settled(d) => d,
                _ => unreachable_failure(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsettled_capture_is_retried_not_acked() {
        let b = Batch::new(vec![Incoming {
            body: b"{}".to_vec(),
            delivery_count: 0,
            received_at: Instant::now(),
        }]);
        assert_eq!(b.count(|s| matches!(s, State::Received(_))), 1);
        let d = b.dispositions();
        assert!(matches!(d[0], Disposition::Retry(_)), "{d:?}");
    }
}
