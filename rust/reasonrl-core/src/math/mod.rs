//! Math answer verification: is a model's final answer equal to the reference answer?
//!
//! The pipeline for one pair: [`extract_answer`] finds the final answer in a response (the order
//! of the rules is documented in [`extract`]); answers that are the same text up to formatting
//! are equal at once; otherwise both are parsed (`parser.rs`) into an `ast::Expr` and compared
//! by `equiv.rs` — exact rationals first, then floating point, then randomized evaluation for
//! expressions with symbols. Each pair runs under its own [`budget::Budget`]: when time runs
//! out the verdict is `false`, and the size caps in [`budget`] keep every single step cheap, so
//! no input hangs, overflows the stack or exhausts memory.

mod ast;
pub mod budget;
mod equiv;
mod eval;
pub mod extract;
mod lexer;
mod number;
mod parser;

use std::borrow::Cow;
use std::time::Duration;

use rayon::prelude::*;

use crate::error::{Error, Result};
use budget::{Budget, Exhausted, MAX_ANSWER_BYTES};
pub use extract::extract_answer;
use parser::{parse_answer, ParseError};

/// How [`verify`] decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerifyOptions {
    /// Time allowed for one pair (extraction, parsing and comparison); past it the verdict is
    /// `false`.
    pub timeout: Duration,
    /// Relative tolerance for comparisons that involve a decimal literal (`0.333333` vs `1/3`).
    /// Exact values without decimals are compared exactly.
    pub rel_tol: f64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { timeout: Duration::from_secs(1), rel_tol: 1e-6 }
    }
}

impl VerifyOptions {
    pub fn validate(&self) -> Result<()> {
        if !(self.rel_tol.is_finite() && self.rel_tol >= 0.0) {
            return Err(Error::invalid(
                "rel_tol",
                format!("must be finite and >= 0, got {}", self.rel_tol),
            ));
        }
        Ok(())
    }
}

/// Whether `pred` (a bare answer or a whole response) gives the same answer as `gold`.
pub fn verify(gold: &str, pred: &str, options: &VerifyOptions) -> bool {
    let budget = Budget::new(options.timeout);
    verify_within(gold, pred, options, &budget).unwrap_or(false)
}

/// [`verify`] for each pair `(golds[i], preds[i])`, in parallel on the current rayon pool
/// (callers wrap it in [`crate::parallel::install`]). Each pair has its own time budget.
pub fn verify_batch<G, P>(golds: &[G], preds: &[P], options: &VerifyOptions) -> Result<Vec<bool>>
where
    G: AsRef<str> + Sync,
    P: AsRef<str> + Sync,
{
    options.validate()?;
    if golds.len() != preds.len() {
        return Err(Error::invalid(
            "preds",
            format!("length {} differs from golds' length {}", preds.len(), golds.len()),
        ));
    }
    Ok(golds
        .par_iter()
        .zip(preds.par_iter())
        .map(|(gold, pred)| verify(gold.as_ref(), pred.as_ref(), options))
        .collect())
}

/// The canonical printed form of the answer in `text` (extracted first, like `pred` in
/// [`verify`]), for seeing why a verdict came out as it did.
pub fn parse(text: &str, timeout: Duration) -> Result<String> {
    let answer = answer_of(text);
    if answer.len() > MAX_ANSWER_BYTES {
        return Err(Error::invalid("text", format!("answer longer than {MAX_ANSWER_BYTES} bytes")));
    }
    let budget = Budget::new(timeout);
    match parse_answer(&answer, &budget) {
        Ok(expr) => Ok(equiv::expand_plus_minus(&expr).to_string()),
        Err(ParseError::Exhausted) => {
            Err(Error::invalid("text", "time budget exhausted while parsing"))
        }
        Err(ParseError::TooDeep) => Err(Error::invalid("text", "nested too deeply")),
        Err(ParseError::Syntax(reason)) => Err(Error::invalid("text", reason)),
    }
}

/// The answer a text gives: extracted if it has a marker, else the whole text.
fn answer_of(text: &str) -> Cow<'_, str> {
    extract::find_answer(text).unwrap_or_else(|| Cow::Borrowed(text.trim()))
}

fn verify_within(
    gold: &str,
    pred: &str,
    options: &VerifyOptions,
    budget: &Budget,
) -> Result<bool, Exhausted> {
    let (gold, pred) = (answer_of(gold), answer_of(pred));
    let (gold, pred) = (gold.as_ref(), pred.as_ref());
    if gold.is_empty() || pred.is_empty() {
        return Ok(false);
    }
    if normalized_text(gold) == normalized_text(pred) {
        return Ok(true);
    }
    if gold.len() > MAX_ANSWER_BYTES || pred.len() > MAX_ANSWER_BYTES {
        return Ok(false);
    }
    // An answer in words ("the volume is 120", "1,000.99 €") falls back to its last number;
    // broken LaTeX (`\frac{1}{`) does not.
    let parsed = |answer: &str| match parse_answer(answer, budget) {
        Ok(expr) => Ok(Some(expr)),
        Err(ParseError::Exhausted) => Err(Exhausted),
        Err(ParseError::TooDeep) => Ok(None),
        Err(ParseError::Syntax(_)) if !is_prose(answer) => Ok(None),
        Err(ParseError::Syntax(_)) => {
            match extract::last_number(answer).map(|n| parse_answer(n, budget)) {
                Some(Ok(expr)) => Ok(Some(expr)),
                Some(Err(ParseError::Exhausted)) => Err(Exhausted),
                _ => Ok(None),
            }
        }
    };
    let (Some(gold), Some(pred)) = (parsed(gold)?, parsed(pred)?) else {
        return Ok(false);
    };
    equiv::Comparer { budget, rel_tol: options.rel_tol }.answers_equal(&gold, &pred)
}

/// Whether `text` has words (two letters or more, not a `\command` or its `{argument}`) or
/// non-ASCII symbols (`€`, `m²`): prose rather than a formula.
fn is_prose(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii() {
            return true;
        }
        if bytes[i].is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            // `\end` is a command and `{pmatrix}` its argument, not words.
            if i - start >= 2 && (start == 0 || !matches!(bytes[start - 1], b'\\' | b'{')) {
                return true;
            }
            continue;
        }
        i += 1;
    }
    false
}

/// The answer with formatting that never changes meaning removed: spacing, `$`, `\left`,
/// `\right`, `\text{...}` wrappers, a trailing period, letter case. Equal normalized text means
/// equal answers, which settles word answers (`\text{Devon}` vs `Devon`) without parsing.
fn normalized_text(answer: &str) -> String {
    let mut out = String::with_capacity(answer.len());
    let mut rest = answer;
    while let Some(c) = rest.chars().next() {
        if c == '\\' {
            if let Some(skip) =
                ["\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "\\:", "\\ "]
                    .iter()
                    .find(|cmd| rest.starts_with(**cmd) && !continues_command(rest, cmd.len()))
            {
                rest = &rest[skip.len()..];
                continue;
            }
            if let Some(after) = ["\\text{", "\\mathrm{", "\\textbf{", "\\mbox{"]
                .iter()
                .find_map(|w| rest.strip_prefix(w))
            {
                // Keep the content; word answers have no nested braces, so the first `}` closes.
                if let Some(close) = after.find('}') {
                    out.push_str(&after[..close].to_lowercase());
                    rest = &after[close + 1..];
                    continue;
                }
            }
        }
        if !(c.is_whitespace() || c == '$') {
            out.extend(c.to_lowercase());
        }
        rest = &rest[c.len_utf8()..];
    }
    let trimmed = out.trim_end_matches('.').len();
    out.truncate(trimmed);
    out.retain(|c| !c.is_whitespace());
    out
}

/// Whether the command name at `rest[..len]` continues with more letters (`\leftarrow`).
fn continues_command(rest: &str, len: usize) -> bool {
    rest.as_bytes()[len - 1].is_ascii_alphabetic()
        && rest.as_bytes().get(len).is_some_and(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_text_drops_formatting_only() {
        assert_eq!(normalized_text("\\text{Devon}."), "devon");
        assert_eq!(normalized_text("$\\left( 1, 2 \\right)$"), "(1,2)");
        assert_eq!(normalized_text("\\leftarrow"), "\\leftarrow");
        assert_ne!(normalized_text("\\frac{1}{23}"), normalized_text("\\frac{12}{3}"));
    }

    #[test]
    fn prose_is_told_from_formulas() {
        assert!(is_prose("the volume is 120"));
        assert!(is_prose("1,000.99€"));
        assert!(!is_prose("\\frac{1}{"));
        assert!(!is_prose("[1,"));
        assert!(!is_prose("1 \\end{pmatrix}"));
    }

    #[test]
    fn batch_checks_lengths_and_options() {
        let options = VerifyOptions::default();
        assert!(verify_batch(&["1"], &["1", "2"], &options).is_err());
        let bad = VerifyOptions { rel_tol: f64::NAN, ..options };
        assert!(verify_batch(&["1"], &["1"], &bad).is_err());
        assert_eq!(verify_batch(&["1", "2"], &["1", "3"], &options).unwrap(), vec![true, false]);
    }
}
