//! Format rewards for the R1 template: the model thinks inside `<think>…</think>`, then answers
//! inside `<answer>…</answer>`.
//!
//! `think_in_prompt`: R1-Zero style prompts end with `<think>`, so the completion starts inside
//! the thinking block; the check then treats the completion as if it began with `<think>`.

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
const ANSWER_OPEN: &str = "<answer>";
const ANSWER_CLOSE: &str = "</answer>";

/// The completion with `<think>` prepended when the prompt already opened the thinking block.
fn with_prompt_prefix(completion: &str, think_in_prompt: bool) -> std::borrow::Cow<'_, str> {
    if think_in_prompt && !completion.trim_start().starts_with(THINK_OPEN) {
        std::borrow::Cow::Owned(format!("{THINK_OPEN}{completion}"))
    } else {
        std::borrow::Cow::Borrowed(completion)
    }
}

/// 1.0 when the whole completion is exactly one non-empty thinking block followed by one
/// non-empty answer block, with nothing but whitespace around and between them; else 0.0.
pub fn strict_format(completion: &str, think_in_prompt: bool) -> f64 {
    let text = with_prompt_prefix(completion, think_in_prompt);
    let text = text.trim();
    let ok = (|| {
        let rest = text.strip_prefix(THINK_OPEN)?;
        let (thought, rest) = rest.split_once(THINK_CLOSE)?;
        let rest = rest.trim_start().strip_prefix(ANSWER_OPEN)?;
        let answer = rest.strip_suffix(ANSWER_CLOSE)?;
        let single = |s: &str| {
            ![THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE].iter().any(|t| s.contains(t))
        };
        Some(
            !thought.trim().is_empty()
                && !answer.trim().is_empty()
                && single(thought)
                && single(answer),
        )
    })();
    f64::from(u8::from(ok == Some(true)))
}

/// 1.0 when a closed thinking block is followed, anywhere later, by a non-empty closed answer
/// block; text before, between and after is allowed.
pub fn lenient_format(completion: &str, think_in_prompt: bool) -> f64 {
    let text = with_prompt_prefix(completion, think_in_prompt);
    let ok = (|| {
        let after_open = &text[text.find(THINK_OPEN)? + THINK_OPEN.len()..];
        let after_think = &after_open[after_open.find(THINK_CLOSE)? + THINK_CLOSE.len()..];
        let after_answer_open = &after_think[after_think.find(ANSWER_OPEN)? + ANSWER_OPEN.len()..];
        let answer = &after_answer_open[..after_answer_open.find(ANSWER_CLOSE)?];
        Some(!answer.trim().is_empty())
    })();
    f64::from(u8::from(ok == Some(true)))
}

/// Partial credit while the model learns the template: 0.25 for each of the four tags that
/// appears exactly once.
pub fn tag_count(completion: &str, think_in_prompt: bool) -> f64 {
    let text = with_prompt_prefix(completion, think_in_prompt);
    [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE]
        .iter()
        .filter(|tag| text.matches(*tag).count() == 1)
        .count() as f64
        * 0.25
}

/// The chain of thought: the inside of the first thinking block, or everything before the
/// answer block when the block is not closed, or the whole completion when there is no tag.
pub fn chain_of_thought(completion: &str) -> &str {
    let start = completion.find(THINK_OPEN).map_or(0, |i| i + THINK_OPEN.len());
    let rest = &completion[start..];
    let end = rest.find(THINK_CLOSE).or_else(|| rest.find(ANSWER_OPEN)).unwrap_or(rest.len());
    &rest[..end]
}

/// The inside of the last answer block, if there is a closed one.
pub fn answer_block(completion: &str) -> Option<&str> {
    let open = completion.rfind(ANSWER_OPEN)? + ANSWER_OPEN.len();
    let close = completion[open..].find(ANSWER_CLOSE)?;
    Some(&completion[open..open + close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_accepts_only_the_exact_template() {
        assert_eq!(strict_format("<think>\nstep\n</think>\n<answer>\n4\n</answer>", false), 1.0);
        assert_eq!(strict_format("  <think>a</think><answer>4</answer>\n", false), 1.0);
        assert_eq!(strict_format("x <think>a</think><answer>4</answer>", false), 0.0);
        assert_eq!(strict_format("<think>a</think>so<answer>4</answer>", false), 0.0);
        assert_eq!(strict_format("<think>a</think><answer>4</answer> done", false), 0.0);
        assert_eq!(strict_format("<think> </think><answer>4</answer>", false), 0.0);
        assert_eq!(
            strict_format("<think>a</think><answer>4</answer><answer>5</answer>", false),
            0.0
        );
        assert_eq!(strict_format("step</think><answer>4</answer>", true), 1.0);
        assert_eq!(strict_format("step</think><answer>4</answer>", false), 0.0);
    }

    #[test]
    fn lenient_allows_surrounding_text() {
        assert_eq!(lenient_format("Sure. <think>a</think> so <answer>4</answer> done", false), 1.0);
        assert_eq!(lenient_format("<answer>4</answer><think>a</think>", false), 0.0);
        assert_eq!(lenient_format("<think>a</think><answer>  </answer>", false), 0.0);
        assert_eq!(lenient_format("<think>a", false), 0.0);
    }

    #[test]
    fn tag_count_gives_partial_credit() {
        assert_eq!(tag_count("<think>a</think><answer>4</answer>", false), 1.0);
        assert_eq!(tag_count("<think>a</think>", false), 0.5);
        assert_eq!(tag_count("<think><think>a</think>", false), 0.25);
        assert_eq!(tag_count("a</think>", true), 0.5);
    }

    #[test]
    fn sections() {
        assert_eq!(chain_of_thought("<think>abc</think><answer>1</answer>"), "abc");
        assert_eq!(chain_of_thought("abc</think>"), "abc");
        assert_eq!(chain_of_thought("abc<answer>1</answer>"), "abc");
        assert_eq!(answer_block("<answer>1</answer> <answer>2</answer>"), Some("2"));
        assert_eq!(answer_block("<answer>1"), None);
    }
}
