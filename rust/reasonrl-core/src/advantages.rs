//! Group-relative advantages: GRPO and its variants.
//!
//! A batch holds N sampled responses; `group_ids[i]` names the prompt response `i` answers. Each
//! estimator turns the scalar reward of every response into an advantage relative to the other
//! responses of its group:
//!
//! | estimator       | advantage of response i in group g (n valid members)                     |
//! |-----------------|--------------------------------------------------------------------------|
//! | `Grpo`          | (r_i − mean_g) / (std_g + eps), std with Bessel's correction; n < 2 → 0 |
//! | `DrGrpo`        | r_i − mean_g (Dr. GRPO drops the std division)                           |
//! | `Rloo`          | r_i − mean of the other n − 1 members = n/(n−1)·(r_i − mean_g); n < 2 → 0 |
//! | `ReinforcePlusPlus` | s_i = r_i − mean_g, then whitened over the batch: (s_i − mean(s)) / (std(s) + eps) |
//!
//! `ReinforcePlusPlus` is REINFORCE++ with a group baseline (OpenRLHF's `reinforce_baseline`),
//! whitened per response (one reward per response, Bessel's correction) over the responses
//! that enter the loss (see [`compute_advantages_in_batch`]).
//!
//! A NaN reward means "could not be computed": it is left out of every statistic (the group
//! mean, std and size, and the batch whitening) and its advantage is 0. ±∞ is rejected, and so
//! is a magnitude above [`MAX_REWARD`]: the advantages are float32, and sums of squared
//! deviations must stay finite in f64.
//!
//! Groups may have any size and need not be contiguous. The common layout (each group's
//! responses next to each other) is detected and costs one hash lookup per group instead of one
//! per response.

use std::str::FromStr;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::parallel::{map_indices, sum_indices};

/// The advantage estimators. See the module docs for the formulas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimator {
    Grpo,
    DrGrpo,
    Rloo,
    ReinforcePlusPlus,
}

impl Estimator {
    pub const NAMES: [&'static str; 4] = ["grpo", "dr_grpo", "rloo", "reinforce_pp"];

    pub fn name(self) -> &'static str {
        match self {
            Estimator::Grpo => "grpo",
            Estimator::DrGrpo => "dr_grpo",
            Estimator::Rloo => "rloo",
            Estimator::ReinforcePlusPlus => "reinforce_pp",
        }
    }
}

impl FromStr for Estimator {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "grpo" => Ok(Estimator::Grpo),
            "dr_grpo" => Ok(Estimator::DrGrpo),
            "rloo" => Ok(Estimator::Rloo),
            // REINFORCE++ with a group baseline; not plain REINFORCE++, whose KL-shaped returns
            // have no group baseline, so no "reinforce++" alias.
            "reinforce_pp" => Ok(Estimator::ReinforcePlusPlus),
            other => Err(Error::invalid(
                "estimator",
                format!("unknown estimator {other:?}; expected one of {:?}", Estimator::NAMES),
            )),
        }
    }
}

/// A reward value as stored by the caller (float32 or float64 arrays cross the boundary as-is).
pub trait Reward: Copy + Send + Sync {
    fn to_f64(self) -> f64;
}

impl Reward for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Reward for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}

/// Which group each response belongs to, as dense indices 0..G, plus each group's members.
#[derive(Debug)]
pub struct Groups {
    /// `sample_group[i]` ∈ 0..G: the dense group of response i.
    pub sample_group: Vec<u32>,
    /// Group g's members are `members[offsets[g]..offsets[g + 1]]`; when every group is one
    /// contiguous run of responses, `members` is `None` and that range is the response indices.
    offsets: Vec<usize>,
    members: Option<Vec<u32>>,
}

impl Groups {
    /// Builds the grouping of `group_ids` (any integers, in any order).
    pub fn new(group_ids: &[i64]) -> Result<Self> {
        if group_ids.len() >= u32::MAX as usize {
            return Err(Error::invalid("group_ids", "more than 2^32 - 1 responses"));
        }
        let mut dense: FxHashMap<i64, u32> = FxHashMap::default();
        let mut sample_group = Vec::with_capacity(group_ids.len());
        let mut runs = 0usize;
        let mut previous: Option<i64> = None;
        let mut current = 0u32;
        for &id in group_ids {
            if previous != Some(id) {
                runs += 1;
                let next = dense.len() as u32;
                current = *dense.entry(id).or_insert(next);
                previous = Some(id);
            }
            sample_group.push(current);
        }
        let n_groups = dense.len();

        // Count members per group, then prefix-sum into CSR offsets.
        let mut offsets = vec![0usize; n_groups + 1];
        for &g in &sample_group {
            offsets[g as usize + 1] += 1;
        }
        for g in 0..n_groups {
            offsets[g + 1] += offsets[g];
        }
        // One run per group and groups first seen in order means the ranges already are the
        // member lists (dense ids are assigned in order of first appearance).
        let members = if runs == n_groups {
            None
        } else {
            let mut cursor = offsets[..n_groups].to_vec();
            let mut members = vec![0u32; group_ids.len()];
            for (i, &g) in sample_group.iter().enumerate() {
                members[cursor[g as usize]] = i as u32;
                cursor[g as usize] += 1;
            }
            Some(members)
        };
        Ok(Groups { sample_group, offsets, members })
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The response indices of group `g`.
    pub fn members(&self, g: usize) -> Members<'_> {
        let range = self.offsets[g]..self.offsets[g + 1];
        match &self.members {
            None => Members::Run(range),
            Some(list) => Members::Scattered(list[range].iter()),
        }
    }
}

/// Iterator over one group's response indices (see [`Groups::members`]).
pub enum Members<'a> {
    Run(std::ops::Range<usize>),
    Scattered(std::slice::Iter<'a, u32>),
}

impl Iterator for Members<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Members::Run(range) => range.next(),
            Members::Scattered(iter) => iter.next().map(|&i| i as usize),
        }
    }
}

/// Statistics of one group's valid (non-NaN) rewards.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupStats {
    pub valid: u32,
    pub mean: f64,
    /// Sample standard deviation (Bessel's correction); 0 when fewer than 2 valid rewards.
    pub std: f64,
    /// Whether every valid reward of the group is the same value (true for 0 or 1 valid).
    pub all_equal: bool,
}

fn group_stats<R: Reward>(rewards: &[R], members: Members<'_>) -> GroupStats {
    // Two passes over the group (mean, then squared deviations) for numerical stability; the
    // members are a handful of cache lines, so the second pass is nearly free.
    let values = || members_valid(rewards, members_clone(&members));
    let (mut valid, mut sum) = (0u32, 0.0f64);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for r in values() {
        valid += 1;
        sum += r;
        lo = lo.min(r);
        hi = hi.max(r);
    }
    if valid == 0 {
        return GroupStats { valid, mean: 0.0, std: 0.0, all_equal: true };
    }
    let mean = sum / f64::from(valid);
    let std = if valid < 2 {
        0.0
    } else {
        let squares: f64 = values().map(|r| (r - mean) * (r - mean)).sum();
        (squares / f64::from(valid - 1)).sqrt()
    };
    GroupStats { valid, mean, std, all_equal: lo == hi }
}

fn members_clone<'a>(members: &Members<'a>) -> Members<'a> {
    match members {
        Members::Run(range) => Members::Run(range.clone()),
        Members::Scattered(iter) => Members::Scattered(iter.clone()),
    }
}

fn members_valid<'a, R: Reward>(
    rewards: &'a [R],
    members: Members<'a>,
) -> impl Iterator<Item = f64> + 'a {
    members.map(move |i| rewards[i].to_f64()).filter(|r| !r.is_nan())
}

/// The largest reward magnitude accepted. Deviations from a group's mean then stay under 2e37,
/// so every estimator's advantage (RLOO's n/(n−1) factor included) fits in float32 (3.4e38),
/// and their squares (4e74) and sums stay far from f64's limit. Past it, a sum overflowed to ∞
/// and turned advantages into 0 or NaN without a word.
pub const MAX_REWARD: f64 = 1e37;

/// Checks lengths and values; NaN is allowed (a missing reward), ±∞ and magnitudes above
/// [`MAX_REWARD`] are not.
fn validate<R: Reward>(rewards: &[R], group_ids: &[i64]) -> Result<()> {
    if rewards.len() != group_ids.len() {
        return Err(Error::invalid(
            "group_ids",
            format!("length {} does not match `rewards` length {}", group_ids.len(), rewards.len()),
        ));
    }
    if let Some(i) = rewards.iter().position(|r| r.to_f64().is_infinite()) {
        return Err(Error::invalid(
            "rewards",
            format!(
                "rewards[{i}] is {}; rewards must be finite (use NaN for a reward that could not \
                 be computed)",
                rewards[i].to_f64()
            ),
        ));
    }
    if let Some(i) = rewards.iter().position(|r| r.to_f64().abs() > MAX_REWARD) {
        return Err(Error::invalid(
            "rewards",
            format!(
                "rewards[{i}] is {:e}; magnitudes above {MAX_REWARD:e} are refused (the advantages \
                 are float32): rescale the rewards",
                rewards[i].to_f64()
            ),
        ));
    }
    Ok(())
}

/// Per-group statistics for a validated batch (parallel over groups inside the pool).
fn all_group_stats<R: Reward>(rewards: &[R], groups: &Groups) -> Vec<GroupStats> {
    map_indices(groups.len(), |g| group_stats(rewards, groups.members(g)))
}

/// Advantages of every response, as float32 (what the loss consumes).
///
/// Parallel when run inside the pool ([`crate::parallel::install`]), serial otherwise.
pub fn compute_advantages<R: Reward>(
    rewards: &[R],
    group_ids: &[i64],
    estimator: Estimator,
    eps: f64,
) -> Result<Vec<f32>> {
    compute_advantages_in_batch(rewards, group_ids, estimator, eps, None)
}

/// [`compute_advantages`] for a batch that trains on only some of its responses: `in_batch[i]`
/// says whether response `i` enters the loss (after DAPO's filter, the masking of truncated
/// responses, ...). The others still count in their group's mean and std, as sampled
/// responses, and get advantage 0. REINFORCE++ whitens over the responses in the batch only,
/// as it normalises over the batch it trains on; with every response in it, the whitening
/// mean is exactly 0 (the group-centred rewards of each group sum to 0), so a group of equal
/// rewards keeps advantage exactly 0 rather than ±1e-17 of rounding.
pub fn compute_advantages_in_batch<R: Reward>(
    rewards: &[R],
    group_ids: &[i64],
    estimator: Estimator,
    eps: f64,
    in_batch: Option<&[bool]>,
) -> Result<Vec<f32>> {
    validate(rewards, group_ids)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::invalid("eps", format!("must be finite and >= 0, got {eps}")));
    }
    if let Some(mask) = in_batch {
        if mask.len() != rewards.len() {
            return Err(Error::invalid(
                "in_batch",
                format!("length {} does not match `rewards` length {}", mask.len(), rewards.len()),
            ));
        }
    }
    let counts = |i: usize| in_batch.is_none_or(|mask| mask[i]);
    let groups = Groups::new(group_ids)?;
    let stats = all_group_stats(rewards, &groups);

    // The advantage before any batch-level step; None for a response that gets 0.
    let group_relative = |i: usize| -> Option<f64> {
        let r = rewards[i].to_f64();
        let s = &stats[groups.sample_group[i] as usize];
        if r.is_nan() {
            return None;
        }
        let n = f64::from(s.valid);
        // Equal rewards give exactly 0: their computed mean can be off by an ulp (0.1 three
        // times sums to 0.30000000000000004), and the trainer skips exact zeros (no gradient).
        let centred = if s.all_equal { 0.0 } else { r - s.mean };
        match estimator {
            Estimator::Grpo | Estimator::Rloo if s.valid < 2 => None,
            Estimator::Grpo => Some(scaled(centred, s.std + eps)),
            Estimator::DrGrpo | Estimator::ReinforcePlusPlus => Some(centred),
            Estimator::Rloo => Some(centred * n / (n - 1.0)),
        }
    };

    if estimator != Estimator::ReinforcePlusPlus {
        return Ok(map_indices(rewards.len(), |i| {
            if counts(i) {
                group_relative(i).unwrap_or(0.0) as f32
            } else {
                0.0
            }
        }));
    }
    // REINFORCE++ (with a group baseline): whiten the group-centred rewards over the batch.
    let centred = map_indices(rewards.len(), |i| group_relative(i).filter(|_| counts(i)));
    let (sum, valid) = sum_indices(centred.len(), |i| centred[i]);
    if valid < 2 {
        return Ok(vec![0.0; rewards.len()]);
    }
    // Each group's centred rewards sum to 0, so the mean over whole groups is 0 exactly: taking
    // it as 0 keeps a group of equal rewards at exactly 0 (not ±1e-17 of rounding). Only a
    // group cut in two by `in_batch` (a truncated response left out) moves the mean.
    let mean = if whole_groups(rewards, &groups, in_batch) { 0.0 } else { sum / valid as f64 };
    let (squares, _) = sum_indices(centred.len(), |i| centred[i].map(|s| (s - mean) * (s - mean)));
    let std = (squares / (valid - 1) as f64).sqrt();
    Ok(map_indices(centred.len(), |i| {
        centred[i].map_or(0.0, |s| scaled(s - mean, std + eps) as f32)
    }))
}

/// `deviation / spread`, where a spread of 0 (equal rewards with `eps` = 0) leaves 0, not the
/// NaN of 0 / 0: equal rewards carry no signal, whatever `eps` is.
fn scaled(deviation: f64, spread: f64) -> f64 {
    if spread == 0.0 {
        0.0
    } else {
        deviation / spread
    }
}

/// Whether `in_batch` keeps or leaves out each group's valid (non-NaN) responses together.
fn whole_groups<R: Reward>(rewards: &[R], groups: &Groups, in_batch: Option<&[bool]>) -> bool {
    let Some(mask) = in_batch else { return true };
    (0..groups.len()).all(|g| {
        let mut valid = groups.members(g).filter(|&i| !rewards[i].to_f64().is_nan());
        match valid.next() {
            None => true,
            Some(first) => valid.all(|i| mask[i] == mask[first]),
        }
    })
}

/// DAPO dynamic sampling: `true` for every response whose group carries a learning signal, i.e.
/// has at least two valid rewards that are not all equal. All-correct and all-wrong groups get
/// zero advantage under every estimator, so training on them only dilutes the batch.
pub fn filter_groups<R: Reward>(rewards: &[R], group_ids: &[i64]) -> Result<Vec<bool>> {
    validate(rewards, group_ids)?;
    let groups = Groups::new(group_ids)?;
    let stats = all_group_stats(rewards, &groups);
    Ok(map_indices(rewards.len(), |i| !stats[groups.sample_group[i] as usize].all_equal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_of_equal_rewards_gets_exactly_zero() {
        // 0.1 + 0.1 + 0.1 = 0.30000000000000004: a computed mean is off by an ulp.
        let rewards = [0.1f64, 0.1, 0.1, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7];
        let ids = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1];
        for estimator in [Estimator::Grpo, Estimator::DrGrpo, Estimator::Rloo] {
            let adv = compute_advantages(&rewards, &ids, estimator, 1e-6).unwrap();
            assert!(adv.iter().all(|&a| a == 0.0), "{estimator:?}: {adv:?}");
        }
    }

    fn approx(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((f64::from(*x) - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn grpo_matches_hand_computed_values() {
        // Group 7: [1, 0, 0, 1] → mean 0.5, sample std sqrt(1/3).
        let rewards = [1.0f64, 0.0, 0.0, 1.0, 3.0];
        let ids = [7, 7, 7, 7, 2];
        let adv = compute_advantages(&rewards, &ids, Estimator::Grpo, 0.0).unwrap();
        let z = 0.5 / (1.0f64 / 3.0).sqrt();
        approx(&adv, &[z, -z, -z, z, 0.0]);
    }

    #[test]
    fn scattered_groups_equal_contiguous_groups() {
        let rewards = [0.1f32, 0.9, 0.4, 0.3, 0.8, 0.2];
        let contiguous =
            compute_advantages(&rewards, &[1, 1, 1, 2, 2, 2], Estimator::Grpo, 1e-6).unwrap();
        // The same responses, interleaved.
        let order = [0usize, 3, 1, 4, 2, 5];
        let shuffled_rewards: Vec<f32> = order.iter().map(|&i| rewards[i]).collect();
        let shuffled_ids = [1, 2, 1, 2, 1, 2];
        let shuffled =
            compute_advantages(&shuffled_rewards, &shuffled_ids, Estimator::Grpo, 1e-6).unwrap();
        for (k, &i) in order.iter().enumerate() {
            assert_eq!(shuffled[k], contiguous[i]);
        }
    }

    #[test]
    fn rloo_is_leave_one_out() {
        let rewards = [1.0f64, 2.0, 6.0];
        let adv = compute_advantages(&rewards, &[0, 0, 0], Estimator::Rloo, 0.0).unwrap();
        approx(&adv, &[1.0 - 4.0, 2.0 - 3.5, 6.0 - 1.5]);
    }

    #[test]
    fn nan_rewards_are_left_out_and_get_zero() {
        let rewards = [1.0f64, f64::NAN, 3.0];
        let adv = compute_advantages(&rewards, &[0, 0, 0], Estimator::DrGrpo, 0.0).unwrap();
        approx(&adv, &[-1.0, 0.0, 1.0]);
    }

    #[test]
    fn reinforce_pp_whitens_over_the_batch() {
        let rewards = [1.0f64, 0.0, 5.0, 1.0];
        let adv =
            compute_advantages(&rewards, &[0, 0, 1, 1], Estimator::ReinforcePlusPlus, 0.0).unwrap();
        // s = [0.5, -0.5, 2, -2]; mean 0, std = sqrt((0.25+0.25+4+4)/3).
        let sd = (8.5f64 / 3.0).sqrt();
        approx(&adv, &[0.5 / sd, -0.5 / sd, 2.0 / sd, -2.0 / sd]);
    }

    #[test]
    fn filter_keeps_only_groups_with_signal() {
        let rewards = [1.0f64, 1.0, 0.0, 1.0, 5.0, f64::NAN, 2.0];
        let ids = [0, 0, 1, 1, 2, 3, 3];
        assert_eq!(
            filter_groups(&rewards, &ids).unwrap(),
            [false, false, true, true, false, false, false]
        );
    }

    #[test]
    fn bad_input_is_an_error_naming_the_argument() {
        let err = compute_advantages(&[1.0f64], &[0, 1], Estimator::Grpo, 1e-6).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { argument: "group_ids", .. }));
        let err = compute_advantages(&[f64::INFINITY], &[0], Estimator::Grpo, 1e-6).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { argument: "rewards", .. }));
        let err =
            compute_advantages(&[1.0f64, -1e308], &[0, 0], Estimator::Grpo, 1e-6).unwrap_err();
        assert!(err.to_string().contains("rewards[1] is -1e308"), "{err}");
        let err = compute_advantages(&[1.0f64], &[0], Estimator::Grpo, -1.0).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { argument: "eps", .. }));
        assert!("grpo2".parse::<Estimator>().is_err());
    }

    #[test]
    fn equal_rewards_give_zero_not_nan_when_eps_is_zero() {
        let grpo =
            compute_advantages(&[1.0f64, 1.0, 1.0], &[0, 0, 0], Estimator::Grpo, 0.0).unwrap();
        assert_eq!(grpo, vec![0.0; 3]);
        // Every group equal: the batch's spread is 0 too.
        let pp = compute_advantages(
            &[1.0f64, 1.0, 2.0, 2.0],
            &[0, 0, 1, 1],
            Estimator::ReinforcePlusPlus,
            0.0,
        )
        .unwrap();
        assert_eq!(pp, vec![0.0; 4]);
        let mixed =
            compute_advantages(&[1.0f64, 1.0, 0.0, 2.0], &[0, 0, 1, 1], Estimator::Grpo, 0.0)
                .unwrap();
        assert_eq!(&mixed[..2], &[0.0, 0.0]);
        assert!(mixed[2] < 0.0 && mixed[3] > 0.0);
    }

    #[test]
    fn reinforce_pp_keeps_equal_groups_at_exactly_zero() {
        let rewards = [0.1f64, 0.2, 0.7, 1.0, 1.0];
        let adv =
            compute_advantages(&rewards, &[0, 0, 0, 1, 1], Estimator::ReinforcePlusPlus, 1e-6)
                .unwrap();
        assert_eq!(&adv[3..], &[0.0, 0.0], "{adv:?}");
        assert!(adv[..3].iter().all(|a| *a != 0.0));
    }

    #[test]
    fn reinforce_pp_keeps_equal_groups_at_zero_when_whole_groups_or_nan_rows_leave() {
        // Row 2 has no reward; group 2 is left out whole (DAPO's filter).
        let rewards = [0.1f64, 0.9, f64::NAN, 1.0, 1.0, 0.3, 0.8];
        let ids = [0, 0, 0, 1, 1, 2, 2];
        let whiten = |in_batch: &[bool]| {
            compute_advantages_in_batch(
                &rewards,
                &ids,
                Estimator::ReinforcePlusPlus,
                1e-6,
                Some(in_batch),
            )
            .unwrap()
        };
        let adv = whiten(&[true, true, false, true, true, false, false]);
        assert_eq!(&adv[2..], &[0.0; 5], "{adv:?}");
        // A group cut in two (its 0.9, truncated, left out) moves the mean off 0: the equal
        // group shifts with everyone else, as batch whitening does.
        let adv = whiten(&[true, false, true, true, true, true, true]);
        assert!(adv[3] > 0.1 && adv[3] == adv[4], "{adv:?}");
    }

    #[test]
    fn rows_outside_the_batch_count_in_their_group_but_get_zero() {
        let rewards = [1.0f64, 0.0, 0.0, 1.0, 1.0, 0.5];
        let ids = [0, 0, 0, 0, 1, 1];
        let in_batch = [true, true, false, true, false, true];
        for estimator in [Estimator::Grpo, Estimator::DrGrpo, Estimator::Rloo] {
            let all = compute_advantages(&rewards, &ids, estimator, 1e-6).unwrap();
            let some =
                compute_advantages_in_batch(&rewards, &ids, estimator, 1e-6, Some(&in_batch))
                    .unwrap();
            for i in 0..rewards.len() {
                assert_eq!(
                    some[i],
                    if in_batch[i] { all[i] } else { 0.0 },
                    "{estimator:?} row {i}"
                );
            }
        }
    }

    #[test]
    fn reinforce_pp_whitens_over_the_batch_it_trains_on() {
        // Group 0 [1, 0] has signal; group 1 [1, 1] is dropped (DAPO's filter). s = [0.5, -0.5]:
        // whitened over those two rows alone, ±0.5 / std([0.5, -0.5]) = ±0.7071.
        let rewards = [1.0f64, 0.0, 1.0, 1.0];
        let ids = [0, 0, 1, 1];
        let kept = compute_advantages_in_batch(
            &rewards,
            &ids,
            Estimator::ReinforcePlusPlus,
            0.0,
            Some(&[true, true, false, false]),
        )
        .unwrap();
        approx(&kept, &[0.5f64.sqrt(), -(0.5f64.sqrt()), 0.0, 0.0]);
        // Whitened over all four rows, the dropped group's zeros would shrink the std: ±1.2247.
        let all = compute_advantages(&rewards, &ids, Estimator::ReinforcePlusPlus, 0.0).unwrap();
        approx(&all, &[1.5f64.sqrt(), -(1.5f64.sqrt()), 0.0, 0.0]);
        let err = compute_advantages_in_batch(&rewards, &ids, Estimator::Grpo, 0.0, Some(&[true]))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { argument: "in_batch", .. }));
    }

    #[test]
    fn the_largest_accepted_rewards_give_finite_advantages() {
        let rewards = [MAX_REWARD, -MAX_REWARD, MAX_REWARD, -MAX_REWARD];
        for estimator in
            [Estimator::Grpo, Estimator::DrGrpo, Estimator::Rloo, Estimator::ReinforcePlusPlus]
        {
            let adv = compute_advantages(&rewards, &[0, 0, 0, 0], estimator, 1e-6).unwrap();
            assert!(adv.iter().all(|a| a.is_finite() && *a != 0.0), "{estimator:?}: {adv:?}");
        }
        // GRPO is scale-free: ±1 and ±1e37 give the same advantages.
        let small =
            compute_advantages(&[1.0f64, -1.0, 1.0, -1.0], &[0; 4], Estimator::Grpo, 0.0).unwrap();
        let large = compute_advantages(&rewards, &[0; 4], Estimator::Grpo, 0.0).unwrap();
        approx(&large, &small.iter().map(|&a| f64::from(a)).collect::<Vec<_>>());
    }

    #[test]
    fn empty_batch_gives_empty_output() {
        let adv = compute_advantages::<f32>(&[], &[], Estimator::Grpo, 1e-6).unwrap();
        assert!(adv.is_empty());
    }
}
