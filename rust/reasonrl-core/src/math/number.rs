//! Exact rational arithmetic with a size cap: every function returns `None` instead of building
//! a number larger than [`MAX_BITS`], so `9^{9^{9^9}}` or `100000!` cost microseconds.

use num_bigint::{BigInt, Sign};
use num_integer::Integer;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

use super::budget::{MAX_BITS, MAX_EXACT_FACTORIAL};

/// Longest digit string turned into an exact number (the rest would exceed `MAX_BITS` anyway).
const MAX_DIGITS: usize = 1200;

/// Whether numerator and denominator both fit the cap.
fn fits(value: &BigRational) -> bool {
    value.numer().bits() <= MAX_BITS && value.denom().bits() <= MAX_BITS
}

/// `Some(value)` if it fits the cap.
pub fn capped(value: BigRational) -> Option<BigRational> {
    fits(&value).then_some(value)
}

/// A number as the lexer gives it (`12`, `3.50`, `.5`, `1.5e-3`), exactly.
pub fn parse_decimal(text: &str) -> Option<BigRational> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.len() + fraction.len() > MAX_DIGITS || whole.len() + fraction.len() == 0 {
        return None;
    }
    let digits: BigInt = format!("{whole}{fraction}").parse().ok()?;
    let scale = exponent.checked_sub(fraction.len() as i64)?;
    if scale.unsigned_abs() > MAX_DIGITS as u64 {
        return None;
    }
    let ten_power = num_traits::pow(BigInt::from(10), scale.unsigned_abs() as usize);
    capped(if scale >= 0 {
        BigRational::from_integer(digits * ten_power)
    } else {
        BigRational::new(digits, ten_power)
    })
}

/// The repeating decimal `whole.fixed(repeat)…`, e.g. `0.1\overline{6}` = 1/6.
pub fn repeating_decimal(whole_and_fixed: &str, repeat: &str) -> Option<BigRational> {
    if repeat.is_empty() || repeat.len() > 64 || !repeat.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fixed_len = whole_and_fixed.split_once('.').map_or(0, |(_, f)| f.len());
    let base = parse_decimal(whole_and_fixed)?;
    let cycle: BigInt = repeat.parse().ok()?;
    // The cycle contributes cycle / (10^len - 1) shifted right by the fixed digits.
    let nines = num_traits::pow(BigInt::from(10), repeat.len()) - 1;
    let shift = num_traits::pow(BigInt::from(10), fixed_len);
    capped(base + BigRational::new(cycle, nines * shift))
}

/// `base^exponent` for an integer exponent, if the result fits the cap.
pub fn pow(base: &BigRational, exponent: &BigRational) -> Option<BigRational> {
    if !exponent.is_integer() {
        return rational_root_power(base, exponent);
    }
    let e = exponent.to_integer().to_i64()?;
    if base.is_zero() {
        return (e > 0).then(BigRational::zero).or_else(|| (e == 0).then(BigRational::one));
    }
    if base.abs().is_one() {
        let negative_result = base.is_negative() && e % 2 != 0;
        return Some(if negative_result { -BigRational::one() } else { BigRational::one() });
    }
    let size = base.numer().bits().max(base.denom().bits());
    if size.checked_mul(e.unsigned_abs())? > MAX_BITS {
        return None;
    }
    let magnitude = e.unsigned_abs() as usize;
    let raised = BigRational::new(
        num_traits::pow(base.numer().clone(), magnitude),
        num_traits::pow(base.denom().clone(), magnitude),
    );
    Some(if e < 0 { raised.recip() } else { raised })
}

/// `base^(p/q)` when `base` is an exact q-th power (`8^{2/3}` = 4), else `None`.
fn rational_root_power(base: &BigRational, exponent: &BigRational) -> Option<BigRational> {
    let q = exponent.denom().to_u32()?;
    let root = nth_root(base, q)?;
    pow(&root, &BigRational::from_integer(exponent.numer().clone()))
}

/// The exact real `n`-th root of `value`, if it is rational (odd roots of negatives included).
pub fn nth_root(value: &BigRational, n: u32) -> Option<BigRational> {
    if n == 0 || n > 64 {
        return None;
    }
    if value.is_negative() {
        return (n % 2 == 1).then(|| nth_root(&-value, n).map(|r| -r)).flatten();
    }
    let exact = |x: &BigInt| {
        let r = x.nth_root(n);
        (num_traits::pow(r.clone(), n as usize) == *x).then_some(r)
    };
    Some(BigRational::new(exact(value.numer())?, exact(value.denom())?))
}

/// `n!` for a small non-negative integer.
pub fn factorial(n: &BigRational) -> Option<BigRational> {
    let n = small_natural(n)?;
    let mut product = BigInt::one();
    for k in 2..=n {
        product *= k;
        if product.bits() > MAX_BITS {
            return None;
        }
    }
    Some(BigRational::from_integer(product))
}

/// `binom(n, k)` for small non-negative integers (0 when k > n).
pub fn binomial(n: &BigRational, k: &BigRational) -> Option<BigRational> {
    let (n, k) = (small_natural(n)?, small_natural(k)?);
    if k > n {
        return Some(BigRational::zero());
    }
    let k = k.min(n - k);
    let mut value = BigInt::one();
    for i in 0..k {
        value = value * (n - i) / (i + 1);
        if value.bits() > MAX_BITS {
            return None;
        }
    }
    Some(BigRational::from_integer(value))
}

fn small_natural(n: &BigRational) -> Option<u64> {
    if !n.is_integer() || n.numer().sign() == Sign::Minus {
        return None;
    }
    n.to_integer().to_u64().filter(|&n| n <= MAX_EXACT_FACTORIAL)
}

/// `floor` and `ceil` of a rational.
pub fn floor(value: &BigRational) -> BigRational {
    BigRational::from_integer(value.numer().div_floor(value.denom()))
}

pub fn ceil(value: &BigRational) -> BigRational {
    -floor(&-value)
}

/// The nearest `f64` (infinite when out of range).
pub fn to_f64(value: &BigRational) -> f64 {
    value.to_f64().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: i64, d: i64) -> BigRational {
        BigRational::new(n.into(), d.into())
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("0.1"), Some(q(1, 10)));
        assert_eq!(parse_decimal("3.50"), Some(q(7, 2)));
        assert_eq!(parse_decimal(".5"), Some(q(1, 2)));
        assert_eq!(parse_decimal("1.5e-3"), Some(q(3, 2000)));
        assert_eq!(parse_decimal("2e3"), Some(q(2000, 1)));
        assert_eq!(parse_decimal("1e999999"), None);
    }

    #[test]
    fn repeating_decimals() {
        assert_eq!(repeating_decimal("0.", "3"), Some(q(1, 3)));
        assert_eq!(repeating_decimal("0.1", "6"), Some(q(1, 6)));
        assert_eq!(repeating_decimal("1.", "142857"), Some(q(8, 7)));
    }

    #[test]
    fn powers_are_capped() {
        assert_eq!(pow(&q(2, 1), &q(10, 1)), Some(q(1024, 1)));
        assert_eq!(pow(&q(2, 3), &q(-2, 1)), Some(q(9, 4)));
        assert_eq!(pow(&q(8, 1), &q(2, 3)), Some(q(4, 1)));
        assert_eq!(pow(&q(-1, 1), &q(1_000_000_001, 1)), Some(q(-1, 1)));
        assert_eq!(pow(&q(9, 1), &q(387_420_489, 1)), None);
        assert_eq!(pow(&q(2, 1), &q(1, 2)), None);
    }

    #[test]
    fn factorials_and_binomials() {
        assert_eq!(factorial(&q(5, 1)), Some(q(120, 1)));
        assert_eq!(factorial(&q(100_000, 1)), None);
        assert_eq!(factorial(&q(-1, 1)), None);
        assert_eq!(binomial(&q(10, 1), &q(3, 1)), Some(q(120, 1)));
        assert_eq!(binomial(&q(3, 1), &q(5, 1)), Some(q(0, 1)));
    }
}
