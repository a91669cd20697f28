//! The work budget of one verification, and the hard size caps that keep every step bounded.
//!
//! Two kinds of limit work together. Size caps (below) make each single operation cheap: no
//! integer grows past [`MAX_BITS`], no parse nests deeper than [`MAX_DEPTH`], so no one step can
//! take long or exhaust the stack. The [`Budget`] bounds the number of steps: every loop in the
//! lexer, parser, evaluator and comparison calls [`Budget::tick`], which reads the clock every
//! `TICKS_PER_CLOCK_READ` ticks and reports exhaustion once the deadline has passed.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Longest answer (in bytes, after extraction) that is parsed; longer ones are compared as text.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024;
/// Deepest nesting of brackets, exponents, unary signs and function arguments the parser follows.
/// Parsing is recursive; this cap keeps the stack under ~1 MiB on any thread.
pub const MAX_DEPTH: usize = 96;
/// Largest numerator or denominator, in bits, that exact arithmetic produces (~1,200 digits).
/// Anything larger falls back to floating point (and so is undecidable if it overflows).
pub const MAX_BITS: u64 = 4096;
/// Largest `n` for which `n!` and `binom(n, k)` are computed exactly.
pub const MAX_EXACT_FACTORIAL: u64 = 1000;
/// Most `\pm` variants one answer expands into (2^4).
pub const MAX_PLUS_MINUS_VARIANTS: usize = 16;

const TICKS_PER_CLOCK_READ: u32 = 256;

/// Marker returned when a budget runs out; the verdict is then `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

/// A deadline for one verification. Not `Sync` on purpose: each item of a batch owns its own.
#[derive(Debug)]
pub struct Budget {
    deadline: Option<Instant>,
    ticks: Cell<u32>,
    exhausted: Cell<bool>,
}

impl Budget {
    /// A budget that runs out `timeout` from now (a timeout too large for the clock never runs out).
    pub fn new(timeout: Duration) -> Self {
        Budget {
            deadline: Instant::now().checked_add(timeout),
            ticks: Cell::new(0),
            exhausted: Cell::new(false),
        }
    }

    /// Counts one unit of work; `Err` once the deadline has passed (and on every call after).
    pub fn tick(&self) -> Result<(), Exhausted> {
        if self.exhausted.get() {
            return Err(Exhausted);
        }
        let ticks = self.ticks.get().wrapping_add(1);
        self.ticks.set(ticks);
        if ticks % TICKS_PER_CLOCK_READ == 0 {
            if let Some(deadline) = self.deadline {
                if Instant::now() >= deadline {
                    self.exhausted.set(true);
                    return Err(Exhausted);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timeout_runs_out_within_one_clock_read() {
        let budget = Budget::new(Duration::ZERO);
        let ran = (0..10 * TICKS_PER_CLOCK_READ).take_while(|_| budget.tick().is_ok()).count();
        assert!(ran < TICKS_PER_CLOCK_READ as usize);
        assert_eq!(budget.tick(), Err(Exhausted), "stays exhausted");
    }

    #[test]
    fn huge_timeout_never_runs_out() {
        let budget = Budget::new(Duration::MAX);
        assert!((0..10_000).all(|_| budget.tick().is_ok()));
    }
}
