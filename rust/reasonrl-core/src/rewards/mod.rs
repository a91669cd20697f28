//! Rule-based rewards (DeepSeek-R1, Kimi k1.5, DAPO, and common shaping terms) and the
//! [`RewardSpec`] that scores a whole batch with them in one call.
//!
//! A spec is a list of named, weighted components. [`score`] computes every component for every
//! completion (in parallel over completions when run inside the pool), then the group-level ones
//! that need the others (the Kimi length penalty needs correctness), then the weighted total.
//! Values the caller computed elsewhere (a user's Python reward) enter as `External` components.
//!
//! NaN policy: a component value is NaN only when it could not be computed (an `External` value
//! of NaN, say); the total is then NaN, which the advantage code leaves out. Missing inputs
//! (no gold answers for an accuracy component, no group ids for a group component) are errors
//! raised before any work.

pub mod choice;
pub mod format;
pub mod language;
pub mod length;

use std::time::Duration;

use crate::advantages::Groups;
use crate::error::{Error, Result};
use crate::math;
use crate::parallel::map_indices;

use language::Script;
use length::CosineLength;

/// A parameter value as it arrives from a config file or Python.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// As the user wrote it: `5`, `"x"` (quoted, so a number given as a string shows as one), `true`.
impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Param::Number(v) => write!(f, "{v}"),
            Param::Text(v) => write!(f, "{v:?}"),
            Param::Bool(v) => write!(f, "{v}"),
        }
    }
}

/// What a component computes, with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// 1.0 when the completion's final answer is mathematically equal to the gold answer.
    /// With `answer_tag`, only an answer given inside a closed `<answer>…</answer>` block counts,
    /// so a policy cannot keep the accuracy reward while dropping the template.
    MathAccuracy { timeout: Duration, answer_tag: bool },
    /// 1.0 when the chosen option (see [`choice`]) is the gold option.
    ChoiceAccuracy,
    /// The R1 template, strictly or leniently (see [`format`]).
    Format { strict: bool, think_in_prompt: bool },
    /// 0.25 per template tag present exactly once.
    TagCount { think_in_prompt: bool },
    /// Share of the chain of thought in the target script.
    Language { target: Script },
    /// Kimi k1.5 length penalty (group-level; needs an accuracy component and group ids).
    KimiLength,
    /// Cosine length scaling (needs an accuracy component).
    CosineLength(CosineLength),
    /// DAPO soft overlong punishment.
    Overlong { max_len: f64, cache: f64 },
    /// Word n-gram repetition penalty.
    Repetition { n: usize, max_penalty: f64 },
    /// Values supplied by the caller, one per completion.
    External { is_accuracy: bool },
}

impl Kind {
    pub const NAMES: [&'static str; 10] = [
        "math_accuracy",
        "choice_accuracy",
        "format",
        "tag_count",
        "language",
        "kimi_length",
        "cosine_length",
        "overlong",
        "repetition",
        "external",
    ];

    /// Whether the component says if an answer is right (used by length components).
    fn is_accuracy(&self) -> bool {
        matches!(
            self,
            Kind::MathAccuracy { .. } | Kind::ChoiceAccuracy | Kind::External { is_accuracy: true }
        )
    }

    fn needs_correctness(&self) -> bool {
        matches!(self, Kind::KimiLength | Kind::CosineLength(_))
    }
}

/// One named, weighted component of a reward.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub name: String,
    pub weight: f64,
    pub kind: Kind,
}

/// Reads typed parameters out of a list, rejecting unknown and ill-typed ones by name.
struct Params<'a> {
    component: &'a str,
    given: &'a [(String, Param)],
    used: Vec<&'a str>,
}

impl<'a> Params<'a> {
    fn error(&self, reason: String) -> Error {
        Error::invalid("components", format!("component {:?}: {reason}", self.component))
    }

    fn find(&mut self, key: &'a str) -> Option<&'a Param> {
        self.used.push(key);
        self.given.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn number(&mut self, key: &'a str, default: f64) -> Result<f64> {
        match self.find(key) {
            None => Ok(default),
            Some(Param::Number(v)) if v.is_finite() => Ok(*v),
            Some(other) => Err(self.error(format!("`{key}` must be a finite number, got {other}"))),
        }
    }

    fn boolean(&mut self, key: &'a str, default: bool) -> Result<bool> {
        match self.find(key) {
            None => Ok(default),
            Some(Param::Bool(v)) => Ok(*v),
            Some(other) => Err(self.error(format!("`{key}` must be true or false, got {other}"))),
        }
    }

    fn text(&mut self, key: &'a str, default: &'a str) -> Result<&'a str> {
        match self.find(key) {
            None => Ok(default),
            Some(Param::Text(v)) => Ok(v),
            Some(other) => Err(self.error(format!("`{key}` must be a string, got {other}"))),
        }
    }

    fn finish(self) -> Result<()> {
        match self.given.iter().find(|(k, _)| !self.used.contains(&k.as_str())) {
            Some((unknown, _)) => {
                Err(self
                    .error(format!("unknown parameter `{unknown}` (accepted: {:?})", self.used)))
            }
            None => Ok(()),
        }
    }
}

/// The longest per-answer verification budget a component accepts (a day).
const MAX_TIMEOUT_S: f64 = 86_400.0;

impl Component {
    /// Builds a component from its kind name and parameters (see the Python docs of
    /// `reasonrl.rewards` for every kind's parameters and defaults).
    pub fn new(name: &str, kind: &str, weight: f64, params: &[(String, Param)]) -> Result<Self> {
        let mut p = Params { component: name, given: params, used: Vec::new() };
        if !weight.is_finite() {
            return Err(p.error(format!("weight must be finite, got {weight}")));
        }
        let kind = match kind {
            "math_accuracy" => {
                let seconds = p.number("timeout_s", 1.0)?;
                // try_: a number of seconds too large for a Duration is an error, not a panic.
                let timeout = Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|t| !t.is_zero() && seconds <= MAX_TIMEOUT_S)
                    .ok_or_else(|| {
                        p.error(format!(
                            "`timeout_s` must be in (0, {MAX_TIMEOUT_S}], got {seconds}"
                        ))
                    })?;
                Kind::MathAccuracy { timeout, answer_tag: p.boolean("answer_tag", false)? }
            }
            "choice_accuracy" => Kind::ChoiceAccuracy,
            "format" => Kind::Format {
                strict: p.boolean("strict", true)?,
                think_in_prompt: p.boolean("think_in_prompt", false)?,
            },
            "tag_count" => Kind::TagCount { think_in_prompt: p.boolean("think_in_prompt", false)? },
            "language" => Kind::Language { target: Script::parse(p.text("target", "latin")?)? },
            "kimi_length" => Kind::KimiLength,
            "cosine_length" => {
                let d = CosineLength::default();
                let c = CosineLength {
                    correct_short: p.number("correct_short", d.correct_short)?,
                    correct_long: p.number("correct_long", d.correct_long)?,
                    wrong_short: p.number("wrong_short", d.wrong_short)?,
                    wrong_long: p.number("wrong_long", d.wrong_long)?,
                    max_len: p.number("max_len", d.max_len)?,
                };
                if c.max_len <= 0.0 {
                    return Err(p.error("`max_len` must be > 0".into()));
                }
                Kind::CosineLength(c)
            }
            "overlong" => {
                let max_len = p.number("max_len", 4096.0)?;
                let cache = p.number("cache", 512.0)?;
                if !(cache > 0.0 && cache <= max_len) {
                    return Err(
                        p.error(format!("need 0 < cache <= max_len, got {cache} and {max_len}"))
                    );
                }
                Kind::Overlong { max_len, cache }
            }
            "repetition" => {
                let n = p.number("n", 3.0)?;
                if n < 1.0 || n.fract() != 0.0 {
                    return Err(p.error(format!("`n` must be a positive integer, got {n}")));
                }
                let max_penalty = p.number("max_penalty", -1.0)?;
                if max_penalty > 0.0 {
                    // A positive value would reward repetition.
                    return Err(p.error(format!("`max_penalty` must be <= 0, got {max_penalty}")));
                }
                Kind::Repetition { n: n as usize, max_penalty }
            }
            "external" => Kind::External { is_accuracy: p.boolean("is_accuracy", false)? },
            other => {
                return Err(
                    p.error(format!("unknown kind {other:?}; expected one of {:?}", Kind::NAMES))
                )
            }
        };
        p.finish()?;
        Ok(Component { name: name.to_string(), weight, kind })
    }
}

/// A validated list of components.
#[derive(Clone, Debug, PartialEq)]
pub struct RewardSpec {
    components: Vec<Component>,
    /// The component whose value says whether an answer is right (the first accuracy one).
    correctness: Option<usize>,
}

impl RewardSpec {
    pub fn new(components: Vec<Component>) -> Result<Self> {
        if components.is_empty() {
            return Err(Error::invalid("components", "a reward needs at least one component"));
        }
        for (i, c) in components.iter().enumerate() {
            if components[..i].iter().any(|earlier| earlier.name == c.name) {
                return Err(Error::invalid(
                    "components",
                    format!("duplicate component name {:?}", c.name),
                ));
            }
        }
        let correctness = components.iter().position(|c| c.kind.is_accuracy());
        if let Some(c) = components.iter().find(|c| c.kind.needs_correctness()) {
            if correctness.is_none() {
                return Err(Error::invalid(
                    "components",
                    format!(
                        "component {:?} needs to know which answers are right: add an accuracy \
                         component (math_accuracy, choice_accuracy, or external with is_accuracy)",
                        c.name
                    ),
                ));
            }
        }
        Ok(RewardSpec { components, correctness })
    }

    pub fn components(&self) -> &[Component] {
        &self.components
    }
}

/// The inputs of one batch. Only `completions` is always needed; each component checks that
/// what it needs is there.
#[derive(Clone, Copy, Debug, Default)]
pub struct Batch<'a> {
    pub completions: &'a [String],
    /// Gold answers (math), one per completion.
    pub answers: Option<&'a [String]>,
    /// Options of each multiple-choice question and the index of the right one.
    pub choices: Option<&'a [Vec<String>]>,
    pub gold_choices: Option<&'a [usize]>,
    /// Prompt group of each completion (group-level components).
    pub group_ids: Option<&'a [i64]>,
    /// Length of each completion in tokens; characters are counted when absent.
    pub lengths: Option<&'a [f64]>,
    /// Values of `External` components, by component name.
    pub external: &'a [(String, Vec<f64>)],
}

/// Every component's values and their weighted sum.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// `components[k][i]`: component k of completion i.
    pub components: Vec<Vec<f64>>,
    pub total: Vec<f64>,
}

fn check_len<T>(
    values: Option<&[T]>,
    argument: &'static str,
    n: usize,
    needed_by: &str,
) -> Result<()> {
    match values {
        None => {
            Err(Error::invalid(argument, format!("component {needed_by:?} needs `{argument}`")))
        }
        Some(v) if v.len() != n => Err(Error::invalid(
            argument,
            format!("length {} does not match {} completions", v.len(), n),
        )),
        Some(_) => Ok(()),
    }
}

fn validate(spec: &RewardSpec, batch: &Batch<'_>) -> Result<()> {
    let n = batch.completions.len();
    for (argument, len) in [
        ("answers", batch.answers.map(<[_]>::len)),
        ("choices", batch.choices.map(<[_]>::len)),
        ("gold_choices", batch.gold_choices.map(<[_]>::len)),
        ("group_ids", batch.group_ids.map(<[_]>::len)),
        ("lengths", batch.lengths.map(<[_]>::len)),
    ] {
        if let Some(len) = len.filter(|&len| len != n) {
            return Err(Error::invalid(
                argument,
                format!("length {len} does not match {n} completions"),
            ));
        }
    }
    if let Some(i) =
        batch.lengths.and_then(|l| l.iter().position(|v| !(v.is_finite() && *v >= 0.0)))
    {
        return Err(Error::invalid(
            "lengths",
            format!("lengths[{i}] must be a finite number >= 0"),
        ));
    }
    for c in &spec.components {
        match &c.kind {
            Kind::MathAccuracy { .. } => check_len(batch.answers, "answers", n, &c.name)?,
            Kind::ChoiceAccuracy => {
                check_len(batch.choices, "choices", n, &c.name)?;
                check_len(batch.gold_choices, "gold_choices", n, &c.name)?;
                let (choices, gold) =
                    (batch.choices.unwrap_or_default(), batch.gold_choices.unwrap_or_default());
                if let Some(i) = (0..n).find(|&i| gold[i] >= choices[i].len()) {
                    return Err(Error::invalid(
                        "gold_choices",
                        format!(
                            "gold_choices[{i}] = {} but question {i} has {} options",
                            gold[i],
                            choices[i].len()
                        ),
                    ));
                }
            }
            Kind::KimiLength => check_len(batch.group_ids, "group_ids", n, &c.name)?,
            Kind::External { .. } => {
                let values = batch.external.iter().find(|(name, _)| *name == c.name);
                match values {
                    None => {
                        return Err(Error::invalid(
                            "external",
                            format!("no values given for component {:?}", c.name),
                        ))
                    }
                    Some((_, v)) if v.len() != n => {
                        return Err(Error::invalid(
                            "external",
                            format!(
                                "component {:?} has {} values for {n} completions",
                                c.name,
                                v.len()
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Scores a batch with every component of `spec`.
pub fn score(spec: &RewardSpec, batch: &Batch<'_>) -> Result<Scores> {
    validate(spec, batch)?;
    let n = batch.completions.len();
    let completion = |i: usize| batch.completions[i].as_str();
    let length =
        |i: usize| batch.lengths.map_or_else(|| completion(i).chars().count() as f64, |l| l[i]);

    // Pass 1: everything that depends on one completion alone.
    let mut values: Vec<Option<Vec<f64>>> = spec
        .components
        .iter()
        .map(|c| {
            let column = match &c.kind {
                Kind::MathAccuracy { timeout, answer_tag } => {
                    let answers = batch.answers.unwrap_or_default();
                    let options = math::VerifyOptions { timeout: *timeout, ..Default::default() };
                    map_indices(n, |i| {
                        let graded = if *answer_tag {
                            format::answer_block(completion(i))
                        } else {
                            Some(completion(i))
                        };
                        let right = graded.is_some_and(|g| math::verify(&answers[i], g, &options));
                        f64::from(u8::from(right))
                    })
                }
                Kind::ChoiceAccuracy => {
                    let (choices, gold) =
                        (batch.choices.unwrap_or_default(), batch.gold_choices.unwrap_or_default());
                    map_indices(n, |i| choice::choice_accuracy(completion(i), &choices[i], gold[i]))
                }
                Kind::Format { strict: true, think_in_prompt } => {
                    map_indices(n, |i| format::strict_format(completion(i), *think_in_prompt))
                }
                Kind::Format { strict: false, think_in_prompt } => {
                    map_indices(n, |i| format::lenient_format(completion(i), *think_in_prompt))
                }
                Kind::TagCount { think_in_prompt } => {
                    map_indices(n, |i| format::tag_count(completion(i), *think_in_prompt))
                }
                Kind::Language { target } => map_indices(n, |i| {
                    language::language_consistency(format::chain_of_thought(completion(i)), *target)
                }),
                Kind::Overlong { max_len, cache } => {
                    map_indices(n, |i| length::overlong_penalty(length(i), *max_len, *cache))
                }
                Kind::Repetition { n: size, max_penalty } => map_indices(n, |i| {
                    length::repetition_penalty(completion(i), *size, *max_penalty)
                }),
                Kind::External { .. } => batch
                    .external
                    .iter()
                    .find(|(name, _)| *name == c.name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                Kind::KimiLength | Kind::CosineLength(_) => return None,
            };
            Some(column)
        })
        .collect();

    // Pass 2: components that need correctness (and groups).
    let correct: Vec<bool> = match spec.correctness.and_then(|k| values[k].as_ref()) {
        Some(accuracy) => accuracy.iter().map(|&a| a >= 1.0 - 1e-9).collect(),
        None => Vec::new(),
    };
    for (k, c) in spec.components.iter().enumerate() {
        match &c.kind {
            Kind::KimiLength => {
                let groups = Groups::new(batch.group_ids.unwrap_or_default())?;
                let lengths = map_indices(n, length);
                values[k] = Some(length::kimi_length_penalty(&lengths, &correct, &groups));
            }
            Kind::CosineLength(cosine) => {
                values[k] = Some(map_indices(n, |i| cosine.reward(length(i), correct[i])));
            }
            _ => {}
        }
    }

    let components: Vec<Vec<f64>> = values.into_iter().map(Option::unwrap_or_default).collect();
    let total = map_indices(n, |i| {
        spec.components.iter().zip(&components).map(|(c, column)| c.weight * column[i]).sum()
    });
    Ok(Scores { components, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(name: &str, kind: &str, weight: f64, params: &[(&str, Param)]) -> Component {
        let params: Vec<(String, Param)> =
            params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Component::new(name, kind, weight, &params).unwrap()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn timeouts_a_duration_cannot_hold_are_errors_not_panics() {
        for seconds in [1e20, f64::INFINITY, f64::NAN, 0.0, -1.0, 86_401.0] {
            let params = vec![("timeout_s".to_string(), Param::Number(seconds))];
            let error = Component::new("acc", "math_accuracy", 1.0, &params).unwrap_err();
            assert!(error.to_string().contains("timeout_s"), "{seconds}: {error}");
        }
        let params = vec![("timeout_s".to_string(), Param::Number(86_400.0))];
        assert!(Component::new("acc", "math_accuracy", 1.0, &params).is_ok());
    }

    #[test]
    fn r1_reward_set_scores_a_batch() {
        let spec = RewardSpec::new(vec![
            component("format", "format", 0.5, &[("strict", Param::Bool(false))]),
            component("lang", "language", 0.1, &[("target", Param::Text("en".into()))]),
            component("user", "external", 2.0, &[("is_accuracy", Param::Bool(true))]),
            component("kimi", "kimi_length", 1.0, &[]),
        ])
        .unwrap();
        let completions = strings(&[
            "<think>short</think><answer>4</answer>",
            "<think>a much longer chain of thought</think><answer>4</answer>",
            "<think>然后</think>no answer",
        ]);
        let external = vec![("user".to_string(), vec![1.0, 1.0, 0.0])];
        let batch = Batch {
            completions: &completions,
            group_ids: Some(&[0, 0, 0]),
            lengths: Some(&[10.0, 30.0, 20.0]),
            external: &external,
            ..Default::default()
        };
        let scores = score(&spec, &batch).unwrap();
        assert_eq!(scores.components[0], vec![1.0, 1.0, 0.0]);
        assert_eq!(scores.components[1], vec![1.0, 1.0, 0.0]);
        // Kimi: λ = 0.5, −0.5, 0 (wrong, min(0, 0)).
        assert_eq!(scores.components[3], vec![0.5, -0.5, 0.0]);
        let expected: Vec<f64> = (0..3)
            .map(|i| {
                0.5 * scores.components[0][i]
                    + 0.1 * scores.components[1][i]
                    + 2.0 * scores.components[2][i]
                    + scores.components[3][i]
            })
            .collect();
        assert_eq!(scores.total, expected);
    }

    #[test]
    fn bad_specs_are_rejected_by_name() {
        let err = Component::new("x", "formatt", 1.0, &[]).unwrap_err();
        assert!(err.to_string().contains("unknown kind"), "{err}");
        let err = Component::new("x", "format", 1.0, &[("strikt".into(), Param::Bool(true))])
            .unwrap_err();
        assert!(err.to_string().contains("strikt"), "{err}");
        let err =
            Component::new("x", "overlong", 1.0, &[("cache".into(), Param::Text("a".into()))])
                .unwrap_err();
        assert!(err.to_string().contains("`cache`"), "{err}");
        // The cache value as written, not as a Rust value (`Text("a")`).
        assert!(err.to_string().ends_with("got \"a\""), "{err}");
        let err =
            Component::new("x", "repetition", 1.0, &[("max_penalty".into(), Param::Number(1.0))])
                .unwrap_err();
        assert!(err.to_string().contains("`max_penalty` must be <= 0, got 1"), "{err}");
        let err = RewardSpec::new(vec![component("k", "kimi_length", 1.0, &[])]).unwrap_err();
        assert!(err.to_string().contains("accuracy"), "{err}");
        let dup = vec![component("a", "format", 1.0, &[]), component("a", "tag_count", 1.0, &[])];
        assert!(RewardSpec::new(dup).unwrap_err().to_string().contains("duplicate"));
    }

    #[test]
    fn answer_tag_grades_only_the_closed_answer_block() {
        let tagged = RewardSpec::new(vec![component(
            "acc",
            "math_accuracy",
            1.0,
            &[("answer_tag", Param::Bool(true))],
        )])
        .unwrap();
        let anywhere = RewardSpec::new(vec![component("acc", "math_accuracy", 1.0, &[])]).unwrap();
        let completions = strings(&[
            "2+2 so 4</think><answer>4</answer>",
            "2+2 so 4",
            "2+2 so 4</think><answer>4",
            "so 4</think><answer>5</answer>",
        ]);
        let answers = strings(&["4", "4", "4", "4"]);
        let batch =
            Batch { completions: &completions, answers: Some(&answers), ..Default::default() };
        assert_eq!(score(&tagged, &batch).unwrap().total, vec![1.0, 0.0, 0.0, 0.0]);
        assert_eq!(score(&anywhere, &batch).unwrap().total, vec![1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn missing_inputs_are_errors_before_any_work() {
        let spec = RewardSpec::new(vec![component("acc", "math_accuracy", 1.0, &[])]).unwrap();
        let completions = strings(&["\\boxed{4}"]);
        let err =
            score(&spec, &Batch { completions: &completions, ..Default::default() }).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { argument: "answers", .. }), "{err}");
        let answers = strings(&["4", "5"]);
        let batch =
            Batch { completions: &completions, answers: Some(&answers), ..Default::default() };
        assert!(matches!(
            score(&spec, &batch).unwrap_err(),
            Error::InvalidInput { argument: "answers", .. }
        ));
    }
}
