//! Finding the final answer inside a model response.
//!
//! Tried in this order; the first that finds something wins:
//! 1. the last `\boxed{...}` or `\fbox{...}` (nested braces; `\boxed 5` too), together with the
//!    boxes written right before it with nothing in between (`\boxed{1}\boxed{2}` is `1, 2`).
//!    Earlier boxes separated by text are not: solutions box intermediate results too;
//! 2. the last `<answer>...</answer>` block (an unclosed one runs to the end of the text); its
//!    content goes through steps 3–4, else is taken whole. A block after the last box wins over
//!    it: a box inside `<think>` is a draft;
//! 3. the last answer phrase — "final answer is", "the answer is", "answer:" (any case) — or
//!    GSM8K's `####`, whichever comes last: the math span right after it, else the rest of the
//!    sentence;
//! 4. the last math span: `$...$`, `$$...$$`, `\(...\)` or `\[...\]`.
//!
//! Every step is a linear scan, so a 1 MB response costs about a millisecond.

use std::borrow::Cow;

/// Boxes tried from the end when the last ones are unclosed (a truncated response); bounds the
/// work on adversarial text full of `\boxed{`.
const MAX_BOX_ATTEMPTS: usize = 4;

/// The final answer of `text`, or `None` when no marker of an answer is found.
pub fn extract_answer(text: &str) -> Option<String> {
    find_answer(text).map(Cow::into_owned)
}

/// [`extract_answer`] without copying, except when adjacent boxes are joined.
pub fn find_answer(text: &str) -> Option<Cow<'_, str>> {
    let block = last_answer_block(text);
    match last_boxed(text) {
        // A box inside `<think>` before the `<answer>` block is a draft, not the answer.
        Some((at, boxed)) if block.is_none_or(|(open, _)| at > open) => return Some(boxed),
        _ => {}
    }
    if let Some((_, block)) = block {
        let inner = phrase_answer(block).or_else(|| last_math_span(block));
        return Some(Cow::Borrowed(inner.unwrap_or(block).trim()));
    }
    phrase_answer(text).or_else(|| last_math_span(text)).map(|s| Cow::Borrowed(s.trim()))
}

/// `(start, end of name)` of the last `limit` `\\boxed` / `\\fbox` commands, last first.
fn box_starts(text: &str, limit: usize) -> Vec<(usize, usize)> {
    let mut boxes: Vec<(usize, usize)> = Vec::new();
    for name in ["\\boxed", "\\fbox"] {
        let mut search_end = text.len();
        for _ in 0..limit {
            let Some(at) = text[..search_end].rfind(name) else { break };
            boxes.push((at, at + name.len()));
            search_end = at;
        }
    }
    boxes.sort_unstable_by(|a, b| b.cmp(a));
    boxes.truncate(limit);
    boxes
}

/// The content of the box whose command name ends at `after_name`, and the offset past it.
fn box_content(text: &str, after_name: usize) -> Option<(&str, usize)> {
    let rest = &text[after_name..];
    let trimmed = rest.trim_start();
    let offset = after_name + (rest.len() - trimmed.len());
    if trimmed.starts_with('{') {
        let close = matching_brace(text, offset)?;
        return Some((&text[offset + 1..close], close + 1));
    }
    // `\boxed 5`: the argument runs to the next space or math delimiter.
    if offset == after_name && !trimmed.is_empty() {
        return None; // `\boxedfoo` is another command
    }
    let len = trimmed.find(|c: char| c.is_whitespace() || c == '$').unwrap_or(trimmed.len());
    (len > 0).then(|| (&trimmed[..len], offset + len))
}

/// Offset of the `}` closing the `{` at `open`, skipping escaped braces `\{` `\}`.
fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The offset of the last box and its content (with the boxes right before it).
pub(crate) fn last_boxed(text: &str) -> Option<(usize, Cow<'_, str>)> {
    let boxes = box_starts(text, MAX_BOX_ATTEMPTS);
    let (index, (content, _)) = boxes
        .iter()
        .enumerate()
        .find_map(|(i, &(_, name_end))| box_content(text, name_end).map(|c| (i, c)))?;
    let mut parts = vec![content.trim()];
    // Boxes written back to back (`\boxed{1}\boxed{2}`) are one answer in several boxes.
    let mut later_start = boxes[index].0;
    for &(start, name_end) in &boxes[index + 1..] {
        match box_content(text, name_end) {
            Some((earlier, end)) if end <= later_start && is_blank(&text[end..later_start]) => {
                parts.push(earlier.trim());
                later_start = start;
            }
            _ => break,
        }
    }
    let at = boxes[index].0;
    if parts.len() == 1 {
        return Some((at, Cow::Borrowed(parts[0])));
    }
    parts.reverse();
    Some((at, Cow::Owned(parts.join(", "))))
}

fn is_blank(gap: &str) -> bool {
    gap.chars().all(|c| c.is_whitespace() || c == '$')
}

/// The last number written in prose — `-12`, `1,000.5`, `2/3` — standing as a word: after a
/// space, `$`, `(`, `=` or `:` and before a space, punctuation or a unit symbol (`€`, `²`). The
/// `2` of `AZ2B`, `28_9` or `{2}` is not one.
pub fn last_number(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let is_digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let starts_word = |i: usize| {
        i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'$' | b'(' | b'=' | b':')
    };
    let ends_word = |i: usize| {
        bytes.get(i).is_none_or(|&b| {
            !b.is_ascii() || b.is_ascii_whitespace() || b".,;:!?)$%'\"".contains(&b)
        })
    };
    let mut last = None;
    let mut i = 0;
    while i < bytes.len() {
        if !is_digit(i) || (i > 0 && is_digit(i - 1)) {
            i += 1;
            continue;
        }
        let signed = i > 0 && bytes[i - 1] == b'-';
        let start = if signed { i - 1 } else { i };
        let mut end = i;
        while is_digit(end)
            || (matches!(bytes.get(end), Some(b',' | b'.' | b'/')) && is_digit(end + 1))
        {
            end += 1;
        }
        if starts_word(start) && ends_word(end) {
            last = Some((start, end));
        }
        i = end;
    }
    last.map(|(start, end)| &text[start..end])
}

/// The offset and content of the last `<answer>` block.
fn last_answer_block(text: &str) -> Option<(usize, &str)> {
    let open = text.rfind("<answer>")?;
    let body = &text[open + "<answer>".len()..];
    Some((open, body.find("</answer>").map_or(body, |close| &body[..close])))
}

/// The answer after the last answer phrase or `####`, if any.
fn phrase_answer(text: &str) -> Option<&str> {
    const PHRASES: [&str; 4] = ["final answer is", "the answer is", "answer:", "####"];
    let lower = text.to_ascii_lowercase();
    let (at, phrase) = PHRASES
        .iter()
        .filter_map(|phrase| lower.rfind(phrase).map(|at| (at, *phrase)))
        .max_by_key(|&(at, _)| at)?;
    let rest = text[at + phrase.len()..].trim_start_matches([':', ' ', '\t']);
    if let Some(span) = leading_math_span(rest) {
        return Some(span.trim());
    }
    let line = rest.split('\n').next().unwrap_or("");
    let sentence = sentence_prefix(line).trim().trim_end_matches(['.', ',', ';']);
    (!sentence.is_empty()).then_some(sentence)
}

/// `line` up to the first period that ends a sentence (followed by a space or the end), so the
/// decimal point of `3.5` is kept.
fn sentence_prefix(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'.' && bytes.get(i + 1).is_none_or(|next| next.is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// The content of the math span `rest` starts with.
fn leading_math_span(rest: &str) -> Option<&str> {
    for (open, close) in [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")] {
        if let Some(body) = rest.strip_prefix(open) {
            return body.find(close).map(|end| &body[..end]);
        }
    }
    None
}

/// The content of the last complete math span in `text`.
fn last_math_span(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut last: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < bytes.len() {
        let (open_len, close): (usize, &[u8]) = match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => (2, b"$$"),
            b'$' => (1, b"$"),
            b'\\' if bytes.get(i + 1) == Some(&b'(') => (2, b"\\)"),
            b'\\' if bytes.get(i + 1) == Some(&b'[') => (2, b"\\]"),
            b'\\' => {
                i += 2; // an escape like `\$` is not a delimiter
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let body_start = i + open_len;
        match find_close(bytes, body_start, close) {
            Some(end) => {
                last = Some((body_start, end));
                i = end + close.len();
            }
            None => break,
        }
    }
    last.map(|(start, end)| &text[start..end])
}

/// The first `close` at or after `from`, skipping backslash escapes (`\$` inside a span).
fn find_close(bytes: &[u8], from: usize, close: &[u8]) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        if bytes[i..].starts_with(close) {
            return Some(i);
        }
        i += if bytes[i] == b'\\' && close[0] != b'\\' { 2 } else { 1 };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str) -> Option<String> {
        extract_answer(text)
    }

    #[test]
    fn last_boxed_wins_with_nested_braces() {
        assert_eq!(
            ex(r"so \boxed{1} and finally $\boxed{\frac{1}{2}}$.").as_deref(),
            Some(r"\frac{1}{2}")
        );
        assert_eq!(ex(r"\fbox{7}").as_deref(), Some("7"));
        assert_eq!(ex(r"answer \boxed 5 done").as_deref(), Some("5"));
        assert_eq!(ex(r"\boxed{\{1,2\}}").as_deref(), Some(r"\{1,2\}"));
    }

    #[test]
    fn last_number_in_prose() {
        assert_eq!(last_number("so the probability is 2/3. I hope"), Some("2/3"));
        assert_eq!(last_number("it is 12,000,023."), Some("12,000,023"));
        assert_eq!(last_number("costs -4.5 dollars"), Some("-4.5"));
        assert_eq!(last_number("AZYUK2A"), None);
        assert_eq!(last_number("x2 and 3rd"), None);
        assert_eq!(last_number("in base 9: 28_9 or {2}"), Some("9"));
        assert_eq!(last_number("area 5 m²"), Some("5"));
    }

    #[test]
    fn only_the_last_box_and_those_right_before_it_count() {
        assert_eq!(ex(r"$\boxed{(-2,18)}$ and $\boxed{(8,38)}$").as_deref(), Some("(8,38)"));
        assert_eq!(ex(r"$\boxed{1}\boxed{2}$").as_deref(), Some("1, 2"));
        assert_eq!(ex(r"$\boxed{1}$ $\boxed{2}$").as_deref(), Some("1, 2"));
    }

    #[test]
    fn unclosed_last_box_falls_back_to_the_previous() {
        assert_eq!(ex(r"\boxed{4} then \boxed{5").as_deref(), Some("4"));
    }

    #[test]
    fn answer_block_then_phrases_then_spans() {
        assert_eq!(ex("<think>x</think><answer> 42 </answer>").as_deref(), Some("42"));
        assert_eq!(ex("<answer>The answer is $7$.</answer>").as_deref(), Some("7"));
        assert_eq!(ex("<think>\\boxed{3}</think><answer>5</answer>").as_deref(), Some("5"));
        assert_eq!(ex("<answer>\\boxed{5}</answer> \\boxed{6}").as_deref(), Some("6"));
        assert_eq!(ex("So the final answer is $3.5$. I hope").as_deref(), Some("3.5"));
        assert_eq!(ex("Answer: 12 apples.\nmore").as_deref(), Some("12 apples"));
        assert_eq!(ex("9 * 2 = 18\n#### 18").as_deref(), Some("18"));
        assert_eq!(ex(r"we get $x=1$ and then \(x = 2\)").as_deref(), Some("x = 2"));
        assert_eq!(ex("costs \\$5 and $y$").as_deref(), Some("y"));
        assert_eq!(ex("no answer here"), None);
    }
}
