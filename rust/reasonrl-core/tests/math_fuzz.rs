//! Property test: random and adversarial strings never panic, overflow or hang extraction,
//! parsing or verification. Bounded to a few seconds so it runs in every CI job.

use std::time::Duration;

use proptest::prelude::*;
use reasonrl_core::math::{extract_answer, parse, verify, VerifyOptions};

/// Fragments that exercise every lexer and parser path, glued together at random.
const FRAGMENTS: &[&str] = &[
    "\\frac",
    "\\dfrac",
    "\\sqrt",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "\\{",
    "\\}",
    "\\left",
    "\\right",
    "^",
    "_",
    "!",
    "%",
    "\\%",
    "\\pm",
    "\\cdot",
    "\\times",
    "=",
    "<",
    "\\le",
    ",",
    ";",
    "&",
    "\\\\",
    "\\begin{pmatrix}",
    "\\end{pmatrix}",
    "\\text{",
    "\\boxed{",
    "$",
    "\\infty",
    "\\pi",
    "e",
    "i",
    "x",
    "y",
    "\\sin",
    "\\log_",
    "\\binom",
    "\\overline",
    "\\cup",
    "|",
    "-",
    "+",
    "/",
    "0",
    "1",
    "9",
    "999999999",
    ".",
    "1,000",
    "10^{",
    "or",
    "and",
    "cm",
    "\\circ",
    "<answer>",
    "####",
    "\\approx",
    "'",
    "\\mathbb{R}",
    "\\emptyset",
    " ",
];

fn options() -> VerifyOptions {
    VerifyOptions { timeout: Duration::from_millis(200), ..VerifyOptions::default() }
}

fn glued() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(gold in "\\PC{0,60}", pred in "\\PC{0,60}") {
        let _ = extract_answer(&pred);
        let _ = parse(&pred, Duration::from_millis(200));
        let _ = verify(&gold, &pred, &options());
    }

    #[test]
    fn latex_soup_never_panics(gold in glued(), pred in glued()) {
        let _ = extract_answer(&pred);
        let _ = parse(&gold, Duration::from_millis(200));
        let _ = verify(&gold, &pred, &options());
    }

    #[test]
    fn an_answer_always_equals_itself_or_is_rejected_consistently(answer in glued()) {
        // Determinism: the same pair gives the same verdict twice.
        prop_assert_eq!(verify(&answer, &answer, &options()), verify(&answer, &answer, &options()));
    }
}
