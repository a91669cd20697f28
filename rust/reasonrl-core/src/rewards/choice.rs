//! Multiple-choice accuracy: which option did the completion choose?
//!
//! Where the answer is looked for, first hit wins:
//! 1. the last `<answer>…</answer>` block; 2. the last `\boxed{…}`; 3. the text after the last
//!    "answer is" / "answer:" / "option is" / "choice is" (case-insensitive), to the end of that
//!    line; 4. the completion itself when it opens with the option and nothing else (`B`,
//!    `**B**`, `B) 42`, `B: 42` — what a base model asked for a letter writes), or is the
//!    option's text; 5. the last standalone `(X)` in the completion.
//!
//! A candidate names option k when it is the letter itself (`B`, `(B)`, `B.`, `B)`, `**B**`,
//! `\text{B}`, `B) text…`), or when it equals the option's text (case and spacing ignored).

use super::format::answer_block;
use crate::math::extract::last_boxed;
use crate::parallel::map_indices;
use crate::{Error, Result};

const PHRASES: [&str; 4] = ["answer is", "answer:", "option is", "choice is"];

/// The 0-based index of the chosen option, if one can be read off.
pub fn chosen_option(completion: &str, choices: &[String]) -> Option<usize> {
    let n = choices.len();
    let candidates = [
        answer_block(completion).map(str::to_string),
        last_boxed(completion).map(|(_, content)| content.into_owned()),
        after_last_phrase(completion).map(str::to_string),
    ];
    for candidate in candidates.iter().flatten() {
        if let Some(k) = option_named_by(candidate, choices) {
            return Some(k);
        }
    }
    bare_option(completion, choices).or_else(|| last_parenthesised_letter(completion, n))
}

/// The option a completion opens with when it is nothing but that option: the letter alone or
/// followed by `.`, `)` or `:` (`B`, `**B**`, `(B)`, `B.`, `B) 42`, `B: 42`), or the option's
/// text. Stricter than a candidate after "answer is": a letter and a space starts a sentence
/// ("A good start is …"), not an answer.
fn bare_option(completion: &str, choices: &[String]) -> Option<usize> {
    let cleaned = clean(completion);
    let mut chars = cleaned.chars();
    let first = chars.next()?;
    let rest = chars.as_str();
    let k = (first as usize).wrapping_sub('A' as usize);
    if first.is_ascii_uppercase()
        && k < choices.len()
        && (rest.is_empty() || rest.starts_with(['.', ')', ':']))
    {
        return Some(k);
    }
    option_with_text(&cleaned, choices)
}

/// The option whose text `candidate` is (case, spacing and a final period ignored).
fn option_with_text(candidate: &str, choices: &[String]) -> Option<usize> {
    let wanted = normalise_text(candidate);
    choices.iter().position(|choice| !wanted.is_empty() && normalise_text(choice) == wanted)
}

/// [`chosen_option`] of every completion against its own options, in parallel inside the pool
/// (what a majority vote over multiple-choice samples counts).
pub fn chosen_options(
    completions: &[String],
    choices: &[Vec<String>],
) -> Result<Vec<Option<usize>>> {
    if completions.len() != choices.len() {
        return Err(Error::invalid(
            "choices",
            format!("{} option lists for {} completions", choices.len(), completions.len()),
        ));
    }
    Ok(map_indices(completions.len(), |i| chosen_option(&completions[i], &choices[i])))
}

/// 1.0 when the chosen option is `gold`, else 0.0 (also when no option can be read off).
pub fn choice_accuracy(completion: &str, choices: &[String], gold: usize) -> f64 {
    f64::from(u8::from(chosen_option(completion, choices) == Some(gold)))
}

fn option_named_by(candidate: &str, choices: &[String]) -> Option<usize> {
    let cleaned = clean(candidate);
    let letter_index = |c: char| {
        let k = (c.to_ascii_uppercase() as usize).checked_sub('A' as usize)?;
        (c.is_ascii_alphabetic() && k < choices.len()).then_some(k)
    };
    // An option's own text first: "A triangle has three sides" names that option, not letter A.
    // A lone letter is read as a letter even where an option's text is that letter.
    if cleaned.chars().count() > 2 {
        if let Some(k) = option_with_text(&cleaned, choices) {
            return Some(k);
        }
    }
    let mut chars = cleaned.chars();
    if let Some(first) = chars.next() {
        let rest = chars.as_str();
        // "B", "B.", "B)", "B: text", "B) text" — but not a word that starts with B.
        let ends_letter = rest.is_empty() || rest.starts_with(['.', ')', ':', ' ', ',']);
        if first.is_ascii_uppercase() && ends_letter {
            if let Some(k) = letter_index(first) {
                return Some(k);
            }
        }
    }
    option_with_text(&cleaned, choices)
}

/// Strips wrappers models put around a letter: spaces, `$`, `**`, `\text{}`, parentheses.
fn clean(candidate: &str) -> String {
    let mut s = candidate.trim().trim_matches('$').trim().replace("**", "");
    for wrapper in ["\\text{", "\\textbf{", "\\mathrm{", "\\mathbf{"] {
        if let Some(inner) = s.strip_prefix(wrapper).and_then(|r| r.strip_suffix('}')) {
            s = inner.to_string();
        }
    }
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('(') {
        if let Some(close) = inner.find(')') {
            if close == 1 {
                return format!("{}{}", &inner[..1], &inner[2..]);
            }
        }
    }
    s.to_string()
}

fn normalise_text(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").trim_end_matches('.').to_lowercase()
}

/// The rest of the line after the last answer phrase. Matching is ASCII case-insensitive on
/// bytes: the phrases are ASCII, so every match starts and ends on a char boundary.
fn after_last_phrase(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut best: Option<usize> = None;
    for phrase in PHRASES {
        let p = phrase.as_bytes();
        for i in (0..bytes.len().saturating_sub(p.len() - 1)).rev() {
            if bytes[i..i + p.len()].eq_ignore_ascii_case(p) {
                best = Some(best.map_or(i + p.len(), |b: usize| b.max(i + p.len())));
                break;
            }
        }
    }
    let rest = &text[best?..];
    Some(rest.lines().next().unwrap_or("").trim())
}

fn last_parenthesised_letter(text: &str, n_choices: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(2)).rev().find_map(|i| {
        let (open, letter, close) = (bytes[i], bytes[i + 1], bytes[i + 2]);
        let k = letter.wrapping_sub(b'A') as usize;
        (open == b'(' && close == b')' && letter.is_ascii_uppercase() && k < n_choices).then_some(k)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> Vec<String> {
        ["4", "5", "Paris", "none of the above"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_the_letter_in_every_common_form() {
        let c = choices();
        for text in [
            "<answer>B</answer>",
            "<answer>(B)</answer>",
            "so \\boxed{B}",
            "\\boxed{\\text{B}}",
            "The answer is (B).",
            "The answer is B) 5",
            "Answer: **B**",
            "I pick (B) because it is 5.",
        ] {
            assert_eq!(chosen_option(text, &c), Some(1), "{text}");
        }
    }

    #[test]
    fn reads_the_option_text() {
        let c = choices();
        assert_eq!(chosen_option("<answer>paris</answer>", &c), Some(2));
        assert_eq!(chosen_option("The answer is None of the  above.", &c), Some(3));
    }

    #[test]
    fn rejects_what_is_not_an_option() {
        let c = choices();
        assert_eq!(chosen_option("<answer>E</answer>", &c), None);
        assert_eq!(chosen_option("<answer>Because</answer>", &c), None);
        assert_eq!(chosen_option("no idea", &c), None);
        assert_eq!(choice_accuracy("<answer>A</answer>", &c, 1), 0.0);
        assert_eq!(choice_accuracy("<answer>B</answer>", &c, 1), 1.0);
    }

    #[test]
    fn reads_a_completion_that_is_only_the_option() {
        let c = choices();
        for text in [
            "B",
            " B",
            "B\n",
            "**B**",
            "(B)",
            "B.",
            "B) 5",
            "B: 5\nbecause 2 + 3 = 5",
            "The correct option is B: 5.",
        ] {
            assert_eq!(chosen_option(text, &c), Some(1), "{text:?}");
        }
        assert_eq!(chosen_option("Paris", &c), Some(2));
        // A sentence that starts with a letter is not an answer; a letter past the options is none.
        assert_eq!(chosen_option("A good start is to add them.", &c), None);
        assert_eq!(chosen_option("E", &c), None);
        assert_eq!(chosen_option("Because", &c), None);
    }

    #[test]
    fn an_option_text_that_opens_with_a_letter_names_that_option() {
        let c: Vec<String> =
            ["A triangle", "A square", "B", "none"].iter().map(|s| s.to_string()).collect();
        assert_eq!(chosen_option("<answer>A square</answer>", &c), Some(1));
        assert_eq!(chosen_option("The answer is A square.", &c), Some(1)); // not letter A
        assert_eq!(chosen_option("A triangle", &c), Some(0));
        assert_eq!(chosen_option("<answer>A</answer>", &c), Some(0)); // a lone letter stays a letter
        assert_eq!(chosen_option("<answer>B</answer>", &c), Some(1));
        assert_eq!(chosen_option("<answer>A) triangle</answer>", &c), Some(0));
    }

    #[test]
    fn chosen_options_reads_a_batch_and_checks_its_lengths() {
        let c = choices();
        let texts: Vec<String> =
            ["B", "no idea", "<answer>Paris</answer>"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            chosen_options(&texts, &vec![c.clone(); 3]).unwrap(),
            vec![Some(1), None, Some(2)]
        );
        let err = chosen_options(&texts, &vec![c; 2]).unwrap_err().to_string();
        assert!(err.contains("2 option lists for 3 completions"), "{err}");
    }

    #[test]
    fn later_answer_wins() {
        let c = choices();
        assert_eq!(chosen_option("(A) looks right... the answer is (C)", &c), Some(2));
    }
}
