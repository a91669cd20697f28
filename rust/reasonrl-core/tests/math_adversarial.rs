//! Inputs built to hang, overflow or crash a verifier: each must return a verdict quickly.

use std::time::{Duration, Instant};

use reasonrl_core::math::{extract_answer, parse, verify, VerifyOptions};

/// Generous for a debug build on a loaded CI machine; the budget itself is 0.5 s.
const WALL_LIMIT: Duration = Duration::from_secs(3);

fn verdict_within_budget(gold: &str, pred: &str) -> bool {
    let options = VerifyOptions { timeout: Duration::from_millis(500), ..VerifyOptions::default() };
    let start = Instant::now();
    let verdict = verify(gold, pred, &options);
    assert!(start.elapsed() < WALL_LIMIT, "took {:?} on gold {:.60}", start.elapsed(), gold);
    verdict
}

#[test]
fn huge_numbers_are_undecidable_not_slow() {
    assert!(!verdict_within_budget("9^{9^{9^9}}", "9^{9^{9^8}}"));
    assert!(verdict_within_budget("9^{9^{9^9}}", "9^{9^{9^9}}"));
    assert!(!verdict_within_budget("100000!", "100001!"));
    assert!(!verdict_within_budget("10^{10^{10}}", "10^{10^{10}}+1"));
    assert!(!verdict_within_budget("1", &"9".repeat(100_000)));
    assert!(!verdict_within_budget("2^{2^{2^{2^{2^{2}}}}}", "3"));
    assert!(!verdict_within_budget("\\binom{100000}{50000}", "1"));
}

#[test]
fn deep_nesting_does_not_exhaust_the_stack() {
    let parens = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(!verdict_within_budget("1", &parens));
    let braces = format!("{}1{}", "{".repeat(10_000), "}".repeat(10_000));
    assert!(!verdict_within_budget("1", &braces));
    let fracs = format!("{}1{}", "\\frac{1}{".repeat(5_000), "}".repeat(5_000));
    assert!(!verdict_within_budget("1", &fracs));
    let powers = format!("2{}", "^2".repeat(10_000));
    assert!(!verdict_within_budget("4", &powers));
    let signs = format!("{}1", "-".repeat(100_000));
    assert!(!verdict_within_budget("1", &signs));
    assert!(!verdict_within_budget("1", &"\\sqrt".repeat(10_000)));
}

#[test]
fn a_megabyte_response_is_scanned_quickly() {
    let mut response = "Let us think. ".repeat(75_000);
    response.push_str("So the answer is $\\boxed{42}$.");
    assert!(response.len() > 1_000_000);
    assert!(verdict_within_budget("42", &response));
    let boxes = "\\boxed{".repeat(150_000);
    assert!(!verdict_within_budget("42", &boxes));
    let dollars = "$".repeat(1_000_001);
    assert!(!verdict_within_budget("42", &dollars));
    let numbers = "1,".repeat(500_000);
    assert!(!verdict_within_budget("42", &numbers));
    assert!(extract_answer(&"\\boxed{\\boxed{".repeat(100_000)).is_none());
}

#[test]
fn malformed_latex_is_false_not_an_error() {
    for bad in [
        "\\frac{1}{",
        "\\frac",
        "}{",
        "\\begin{pmatrix} 1 & 2",
        "\\left(",
        "((((",
        "\\sqrt[",
        "x^",
        "_",
        "\\text{",
        "$$$$",
        "\\\\\\\\",
        "[1,",
        "\\end{pmatrix}",
        "\u{FFFD}\u{0}\u{1F600}",
    ] {
        assert!(!verdict_within_budget("1", bad), "{bad:?}");
        assert!(parse(bad, Duration::from_millis(100)).is_err(), "{bad:?}");
    }
}

#[test]
fn symbolic_comparison_of_long_expressions_respects_the_budget() {
    let long_sum: String = (0..2_000).map(|i| format!("x^{{{i}}}+")).collect::<String>() + "1";
    verdict_within_budget(&long_sum, &long_sum.replace("+1", "+2"));
    let many_items: String = (0..2_000).map(|i| format!("{i},")).collect::<String>() + "0";
    verdict_within_budget(&many_items, &many_items.replace(",0", ",1"));
}
