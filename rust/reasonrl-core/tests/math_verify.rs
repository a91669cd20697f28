//! The public verification API on pairs from each category of the issue, both verdicts.

use std::time::Duration;

use reasonrl_core::math::{extract_answer, parse, verify, verify_batch, VerifyOptions};

fn check(cases: &[(&str, &str, bool)]) {
    let options = VerifyOptions::default();
    let wrong: Vec<_> = cases
        .iter()
        .filter(|(gold, pred, expected)| verify(gold, pred, &options) != *expected)
        .collect();
    assert!(wrong.is_empty(), "wrong verdicts (gold, pred, expected): {wrong:?}");
}

#[test]
fn numbers() {
    check(&[
        ("7425000", "7,425,000", true),
        ("1000", "1 000", true),
        ("1500", "1.5e3", true),
        ("0.5", "\\frac{1}{2}", true),
        ("\\frac{5}{2}", "2\\frac{1}{2}", true),
        ("\\frac{1}{3}", "0.\\overline{3}", true),
        ("50\\%", "0.5", true),
        ("50\\%", "50", true),
        ("0.333333", "\\frac13", true),
        ("0.33", "\\frac13", false),
        ("3.14", "\\pi", false),
        ("42", "43", false),
    ]);
}

#[test]
fn expressions() {
    check(&[
        ("(x+1)^2", "x^2+2x+1", true),
        ("(x+1)^2", "x^2+1", false),
        ("2\\sqrt{2}", "\\sqrt8", true),
        ("\\sqrt[3]{-8}", "-2", true),
        ("2\\pi r", "2 r \\pi", true),
        ("x(x+1)", "x^2+x", true),
        ("\\binom{5}{2}", "10", true),
        ("5!", "120", true),
        ("8+4i", "4i+8", true),
        ("\\sin^2 x + \\cos^2 x", "1", true),
        ("x - y", "y - x", false),
    ]);
}

#[test]
fn structures() {
    check(&[
        ("(1,2)", "(1, 2)", true),
        ("(1,2)", "(2,1)", false),
        ("\\{1,2\\}", "\\{2,1\\}", true),
        ("[1,2)", "[1,2]", false),
        ("(-\\infty, 3)", "x < 3", true),
        ("(-\\infty,0)\\cup(1,\\infty)", "(1,\\infty)\\cup(-\\infty,0)", true),
        ("1 \\pm \\sqrt2", "1-\\sqrt2, 1+\\sqrt2", true),
        ("2, 3", "x = 2 \\text{ or } x = 3", true),
        ("2, 3", "2", false),
        ("y = 2x+1", "2x+1", true),
        ("y = 2x+1", "2x - y + 1 = 0", true),
        ("x = 3", "x = -3", false),
        (
            "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
            "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}",
            true,
        ),
        (
            "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
            "\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}",
            false,
        ),
    ]);
}

#[test]
fn text_and_extraction() {
    check(&[
        ("5", "5\\text{ cm}", true),
        ("30^\\circ", "30", true),
        ("\\$5", "5", true),
        ("\\text{Devon}", "Devon", true),
        ("(B)", "\\textbf{(B)}", true),
        ("(B)", "(C)", false),
        ("\\frac12", "so the answer is $\\boxed{\\dfrac{1}{2}}$.", true),
        ("18", "9 * 2 = 18\n#### 18", true),
        ("42", "<think>6*7</think><answer>42</answer>", true),
        ("120", "The volume of the box is 120.", true),
    ]);
    assert_eq!(
        extract_answer("a \\boxed{1} b \\boxed{\\frac{1}{2}}").as_deref(),
        Some("\\frac{1}{2}")
    );
    assert_eq!(extract_answer("nothing"), None);
}

#[test]
fn verify_is_symmetric_on_bare_answers() {
    let options = VerifyOptions::default();
    for (a, b) in [("0.5", "\\frac12"), ("x = 3", "3"), ("\\{1,2\\}", "2, 1"), ("(1,2)", "[1,2]")] {
        assert_eq!(verify(a, b, &options), verify(b, a, &options), "{a} vs {b}");
    }
}

#[test]
fn batch_matches_single_calls() {
    let golds = ["1", "\\frac12", "(1,2)", "x"];
    let preds = ["1.0", "0.5", "(2,1)", "y"];
    let options = VerifyOptions::default();
    let batch =
        reasonrl_core::parallel::install(Some(2), || verify_batch(&golds, &preds, &options))
            .unwrap()
            .unwrap();
    let single: Vec<bool> = golds.iter().zip(&preds).map(|(g, p)| verify(g, p, &options)).collect();
    assert_eq!(batch, single);
    assert_eq!(batch, vec![true, true, false, false]);
}

#[test]
fn parse_prints_a_canonical_form() {
    let timeout = Duration::from_secs(1);
    assert_eq!(parse("$\\frac{x+1}{2}$", timeout).unwrap(), "((x + 1) / 2)");
    assert_eq!(parse("\\pm 2", timeout).unwrap(), "List[2, -2]");
    assert!(parse("\\frac{1}{", timeout).is_err());
}
