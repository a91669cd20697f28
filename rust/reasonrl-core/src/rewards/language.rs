//! Language consistency (DeepSeek-R1): the share of the chain of thought written in the target
//! language, judged by writing system.
//!
//! Words are counted, not characters, so one Chinese character and one English word weigh the
//! same: a word is a run of letters of one script, except that every Han / kana / Hangul
//! character counts as a word of its own (those scripts do not separate words with spaces).
//! Math is not language: `$…$`, `\(…\)`, `\[…\]` spans and `\commands` are skipped. A chain of
//! thought with no words but math or numbers scores 1.0 (nothing in it is in the wrong
//! language); an empty one scores 0.0, so that writing nothing never earns the reward.

use crate::error::{Error, Result};

/// Writing systems the reward can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    Latin,
    Cjk,
    Cyrillic,
    Greek,
    Arabic,
    Hebrew,
    Devanagari,
    Thai,
    /// Letters of any other script: they count as words, never as target words.
    Other,
}

impl Script {
    /// Accepts script names and common language codes: `latin`/`en`/`fr`/…, `cjk`/`zh`/`ja`/`ko`,
    /// `cyrillic`/`ru`, `greek`/`el`, `arabic`/`ar`, `hebrew`/`he`, `devanagari`/`hi`, `thai`/`th`.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "latin" | "en" | "fr" | "de" | "es" | "it" | "pt" | "nl" | "pl" | "tr" | "vi"
            | "id" => Script::Latin,
            "cjk" | "zh" | "ja" | "ko" | "chinese" | "japanese" | "korean" => Script::Cjk,
            "cyrillic" | "ru" | "uk" | "bg" | "sr" => Script::Cyrillic,
            "greek" | "el" => Script::Greek,
            "arabic" | "ar" | "fa" | "ur" => Script::Arabic,
            "hebrew" | "he" => Script::Hebrew,
            "devanagari" | "hi" | "mr" | "ne" => Script::Devanagari,
            "thai" | "th" => Script::Thai,
            other => {
                return Err(Error::invalid(
                    "target",
                    format!(
                        "unknown language or script {other:?}; use a script name (latin, cjk, \
                         cyrillic, greek, arabic, hebrew, devanagari, thai) or a language code"
                    ),
                ))
            }
        })
    }
}

/// The script of a letter, or None for digits, punctuation, symbols and spaces.
fn script_of(c: char) -> Option<Script> {
    let u = c as u32;
    // Inside the blocks below but not letters: × and ÷ (in Latin-1 Supplement), and the digits
    // of other scripts (Arabic-Indic ٣, Devanagari ३, Thai ๓).
    if matches!(u, 0xD7 | 0xF7) || c.is_numeric() {
        return None;
    }
    Some(match u {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF => Script::Latin,
        0x370..=0x3FF | 0x1F00..=0x1FFF => Script::Greek,
        0x400..=0x52F => Script::Cyrillic,
        0x590..=0x5FF => Script::Hebrew,
        0x600..=0x6FF | 0x750..=0x77F => Script::Arabic,
        0x900..=0x97F => Script::Devanagari,
        0xE00..=0xE7F => Script::Thai,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF => {
            Script::Cjk
        }
        _ if c.is_alphabetic() => Script::Other,
        _ => return None,
    })
}

/// `text` with its math spans removed.
fn without_math(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let delimiters: [(&str, &str); 4] = [("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")];
    while !rest.is_empty() {
        let next = delimiters
            .iter()
            .filter_map(|(open, close)| rest.find(open).map(|i| (i, *open, *close)))
            .min_by_key(|(i, open, _)| (*i, std::cmp::Reverse(open.len())));
        let Some((start, open, close)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..start]);
        let body = &rest[start + open.len()..];
        match body.find(close) {
            Some(end) => rest = &body[end + close.len()..],
            None => {
                // An unclosed delimiter is not math (e.g. a price "$5"): keep the text.
                out.push_str(&rest[start..start + open.len()]);
                rest = body;
            }
        }
    }
    out
}

/// Word counts per script (target words, all words) in `text`.
fn count_words(text: &str, target: Script) -> (usize, usize) {
    let text = without_math(text);
    let (mut in_target, mut total) = (0usize, 0usize);
    let mut current: Option<Script> = None;
    let mut in_command = false;
    for c in text.chars() {
        if c == '\\' {
            in_command = true;
            current = None;
            continue;
        }
        if in_command && c.is_ascii_alphabetic() {
            continue;
        }
        in_command = false;
        let script = script_of(c);
        match script {
            Some(Script::Cjk) => {
                total += 1;
                in_target += usize::from(target == Script::Cjk);
                current = None;
            }
            Some(s) if current != Some(s) => {
                total += 1;
                in_target += usize::from(target == s);
                current = Some(s);
            }
            Some(_) => {}
            None => current = None,
        }
    }
    (in_target, total)
}

/// The share of words in `text` written in `target`'s script, in [0, 1].
pub fn language_consistency(text: &str, target: Script) -> f64 {
    let (in_target, total) = count_words(text, target);
    if text.trim().is_empty() {
        0.0
    } else if total == 0 {
        1.0
    } else {
        in_target as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_text_scores_one_mixed_text_scores_its_share() {
        assert_eq!(language_consistency("Let us add the numbers.", Script::Latin), 1.0);
        assert_eq!(language_consistency("我们把数字相加", Script::Cjk), 1.0);
        // 4 English words + 2 Han characters.
        let mixed = "we add them 然后 now";
        assert!((language_consistency(mixed, Script::Latin) - 4.0 / 6.0).abs() < 1e-12);
        assert!((language_consistency(mixed, Script::Cjk) - 2.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn math_is_not_language() {
        let text = "我们计算 $\\frac{a}{b} + x$ 和 \\sqrt{2}";
        assert_eq!(language_consistency(text, Script::Cjk), 1.0);
        assert_eq!(language_consistency("$x + y$", Script::Cjk), 1.0);
        assert_eq!(language_consistency("2 + 3 = 5", Script::Latin), 1.0);
        // Nothing written is nothing in the target language.
        assert_eq!(language_consistency("", Script::Latin), 0.0);
        assert_eq!(language_consistency(" \n\t", Script::Cjk), 0.0);
        // An unclosed dollar is a price, and the words after it still count.
        // "it", "costs", "and" + two Han characters.
        assert_eq!(language_consistency("it costs $5 and 然后", Script::Latin), 3.0 / 5.0);
    }

    #[test]
    fn arithmetic_signs_and_digits_of_other_scripts_are_not_words() {
        // × and ÷ sit in the Latin-1 block; ٣ is an Arabic-Indic digit.
        assert_eq!(language_consistency("我们计算 2×3 等于 6÷1", Script::Cjk), 1.0);
        assert_eq!(language_consistency("we add ٣ and ٤", Script::Latin), 1.0);
    }

    #[test]
    fn targets_parse() {
        assert_eq!(Script::parse("zh").unwrap(), Script::Cjk);
        assert_eq!(Script::parse("EN").unwrap(), Script::Latin);
        assert!(Script::parse("klingon").is_err());
        assert!(Script::parse("other").is_err());
    }
}
