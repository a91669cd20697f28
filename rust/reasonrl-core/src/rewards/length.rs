//! Length-shaping rewards.
//!
//! - Kimi k1.5 length penalty, per prompt group: λ = 0.5 − (len − min_len)/(max_len − min_len);
//!   a correct answer gets λ, a wrong one min(0, λ); a group whose lengths are all equal gets 0.
//! - Cosine length scaling (Yeo et al., "Demystifying Long Chain-of-Thought Reasoning"): correct
//!   answers earn more the shorter they are, wrong answers are penalised less the longer they are
//!   (thinking longer on a problem you get wrong is not punished as hard as giving up early).
//! - DAPO soft overlong punishment: 0 up to max_len − cache, then a linear ramp down to −1 at
//!   max_len, −1 beyond.
//! - n-gram repetition penalty: max_penalty × (1 − distinct n-grams / all n-grams) of words.

use rustc_hash::FxHashSet;

use crate::advantages::Groups;

/// Kimi k1.5 length penalty for a batch; `lengths[i]` in tokens (or characters), `correct[i]`
/// whether answer i was right, grouping as in [`Groups`].
pub fn kimi_length_penalty(lengths: &[f64], correct: &[bool], groups: &Groups) -> Vec<f64> {
    let mut out = vec![0.0; lengths.len()];
    for g in 0..groups.len() {
        let (lo, hi) = groups
            .members(g)
            .map(|i| lengths[i])
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), l| (lo.min(l), hi.max(l)));
        if hi <= lo {
            continue;
        }
        for i in groups.members(g) {
            let lambda = 0.5 - (lengths[i] - lo) / (hi - lo);
            out[i] = if correct[i] { lambda } else { lambda.min(0.0) };
        }
    }
    out
}

/// Parameters of the cosine length scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineLength {
    /// Reward of a correct answer of length 0 and of length ≥ `max_len`.
    pub correct_short: f64,
    pub correct_long: f64,
    /// Reward of a wrong answer of length 0 and of length ≥ `max_len`.
    pub wrong_short: f64,
    pub wrong_long: f64,
    pub max_len: f64,
}

impl Default for CosineLength {
    fn default() -> Self {
        CosineLength {
            correct_short: 1.0,
            correct_long: 0.5,
            wrong_short: -1.0,
            wrong_long: -0.5,
            max_len: 1000.0,
        }
    }
}

impl CosineLength {
    /// Interpolates from the short value to the long value along half a cosine period.
    pub fn reward(&self, length: f64, correct: bool) -> f64 {
        let (short, long) = if correct {
            (self.correct_short, self.correct_long)
        } else {
            (self.wrong_short, self.wrong_long)
        };
        let progress = (length / self.max_len).clamp(0.0, 1.0);
        long + 0.5 * (short - long) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// DAPO's soft overlong punishment.
pub fn overlong_penalty(length: f64, max_len: f64, cache: f64) -> f64 {
    let soft_start = max_len - cache;
    if length <= soft_start {
        0.0
    } else if length <= max_len {
        (soft_start - length) / cache
    } else {
        -1.0
    }
}

/// `max_penalty` (≤ 0) scaled by the share of repeated word n-grams. Words are compared
/// case-insensitively ("The cat" repeats "the cat"), as in Yeo et al.'s reference code.
pub fn repetition_penalty(text: &str, n: usize, max_penalty: f64) -> f64 {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    if n == 0 || words.len() < n {
        return 0.0;
    }
    let total = words.len() - n + 1;
    let distinct: FxHashSet<&[&str]> = words.windows(n).collect();
    max_penalty * (1.0 - distinct.len() as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kimi_penalty_matches_the_paper_formula() {
        let groups = Groups::new(&[0, 0, 0, 1, 1]).unwrap();
        let lengths = [10.0, 20.0, 30.0, 5.0, 5.0];
        let correct = [true, false, true, true, false];
        let got = kimi_length_penalty(&lengths, &correct, &groups);
        // Group 0: λ = 0.5, 0, −0.5; the wrong one gets min(0, 0) = 0. Group 1: equal → 0.
        assert_eq!(got, vec![0.5, 0.0, -0.5, 0.0, 0.0]);
        let got =
            kimi_length_penalty(&[10.0, 30.0], &[false, false], &Groups::new(&[4, 4]).unwrap());
        assert_eq!(got, vec![0.0, -0.5]);
    }

    #[test]
    fn cosine_scaling_end_points_and_monotonicity() {
        let c = CosineLength::default();
        assert!((c.reward(0.0, true) - 1.0).abs() < 1e-12);
        assert!((c.reward(1000.0, true) - 0.5).abs() < 1e-12);
        assert!((c.reward(5000.0, true) - 0.5).abs() < 1e-12);
        assert!((c.reward(0.0, false) + 1.0).abs() < 1e-12);
        assert!((c.reward(1000.0, false) + 0.5).abs() < 1e-12);
        assert!(c.reward(200.0, true) > c.reward(400.0, true));
        assert!(c.reward(200.0, false) < c.reward(400.0, false));
    }

    #[test]
    fn overlong_ramp() {
        assert_eq!(overlong_penalty(100.0, 1000.0, 200.0), 0.0);
        assert_eq!(overlong_penalty(800.0, 1000.0, 200.0), 0.0);
        assert_eq!(overlong_penalty(900.0, 1000.0, 200.0), -0.5);
        assert_eq!(overlong_penalty(1000.0, 1000.0, 200.0), -1.0);
        assert_eq!(overlong_penalty(1001.0, 1000.0, 200.0), -1.0);
    }

    #[test]
    fn repetition() {
        assert_eq!(repetition_penalty("a b c d e", 2, -1.0), 0.0);
        // 5 bigrams, 2 distinct ("a b", "b a").
        assert!((repetition_penalty("a b a b a b", 2, -1.0) + 0.6).abs() < 1e-12);
        assert_eq!(repetition_penalty("a", 3, -1.0), 0.0);
        // Case-insensitive: "The cat sat the cat sat" repeats two of its five bigrams.
        assert!((repetition_penalty("The cat sat the cat sat", 2, -1.0) + 0.4).abs() < 1e-12);
    }
}
