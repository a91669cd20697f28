//! When two parsed answers are the same answer.
//!
//! - Numbers: exact rational equality. When either side has a decimal literal or an irrational
//!   part (`\pi`, `\sqrt2`), values are compared in floating point with relative tolerance
//!   `rel_tol` if a decimal is involved, else [`SYMBOLIC_TOL`] (rounding noise only).
//! - Expressions with symbols: equal when they agree at [`SAMPLE_POINTS`] pseudo-random points
//!   (at least [`MIN_AGREEING_POINTS`] where both are defined, none where they differ). Two
//!   different polynomials or elementary expressions agree at random points with probability ~0.
//! - `p%` equals `p/100` and also `p` (a percent question answered with or without the sign).
//! - Lists (`2, 3`, "x = 2 or x = 3") and sets compare as sets (order and repetition free);
//!   tuples, intervals and matrices in order. A two-element tuple equals the open interval with the same ends.
//! - `x = 3` equals `3` (the value of an assignment: the left side is a name, `f(x)`, or both
//!   sides are numbers as in `\frac42 = 2`); `a + 3z = 0` equals neither side. A chain
//!   `x = 5 + 6 = 11` keeps its ends. Two equations are equal when `lhs - rhs` of one is a nonzero
//!   constant multiple of the other's; two inequalities when it is a positive multiple and the
//!   operators agree (`x < 1` = `-x > -1`). An inequality in one variable equals the interval (or
//!   union) it describes.
//! - `a ± b` is the list of `a + b` and `a - b`.

use num_complex::Complex64;

use super::ast::{Constant, Expr, RelOp};
use super::budget::{Budget, Exhausted, MAX_PLUS_MINUS_VARIANTS};
use super::eval::{approx, exact};
use super::number::to_f64;

/// Tolerance for comparing exact-looking values that went through floating point.
pub const SYMBOLIC_TOL: f64 = 1e-9;
/// Points at which expressions with symbols are sampled.
pub const SAMPLE_POINTS: usize = 6;
pub const MIN_AGREEING_POINTS: usize = 3;

type Verdict = Result<bool, Exhausted>;

/// Compares parsed answers within one budget, with `rel_tol` for decimals.
pub struct Comparer<'b> {
    pub budget: &'b Budget,
    pub rel_tol: f64,
}

impl Comparer<'_> {
    /// Whether `gold` and `pred` (as parsed) are the same answer.
    pub fn answers_equal(&self, gold: &Expr, pred: &Expr) -> Verdict {
        let gold = expand_plus_minus(gold);
        let pred = expand_plus_minus(pred);
        self.equal(&gold, &pred)
    }

    fn equal(&self, a: &Expr, b: &Expr) -> Verdict {
        self.budget.tick()?;
        if let (Expr::Interval { .. }, Expr::Interval { .. }) = (a, b) {
            return self.intervals_equal(a, b);
        }
        // Every part is an `Interval`, so this recursion ends in the arm above.
        if let (Some(a_parts), Some(b_parts)) = (interval_parts(a, b), interval_parts(b, a)) {
            return self.unordered(&a_parts, &b_parts);
        }
        match (a, b) {
            (Expr::List(x) | Expr::Set(x), Expr::List(y) | Expr::Set(y))
            | (Expr::Union(x), Expr::Union(y)) => self.unordered(x, y),
            (Expr::Set(x), single) | (single, Expr::Set(x))
                if x.len() == 1 && !is_collection(single) =>
            {
                self.equal(&x[0], single)
            }
            (Expr::Tuple(x), Expr::Tuple(y) | Expr::List(y)) | (Expr::List(y), Expr::Tuple(x)) => {
                self.ordered(x, y)
            }
            (Expr::Matrix(x), Expr::Matrix(y)) => {
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (row_x, row_y) in x.iter().zip(y) {
                    if !self.ordered(row_x, row_y)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            (Expr::Matrix(m), Expr::Tuple(t)) | (Expr::Tuple(t), Expr::Matrix(m)) => {
                match vector_of(m) {
                    Some(v) => self.ordered(&v, t),
                    None => Ok(false),
                }
            }
            (Expr::Relation { .. }, Expr::Relation { .. }) => self.relations_equal(a, b),
            (Expr::Relation { terms, ops }, value) | (value, Expr::Relation { terms, ops }) => {
                self.assignment_equal(terms, ops, value)
            }
            (Expr::Text(x), Expr::Text(y)) => Ok(x == y),
            _ if is_collection(a) || is_collection(b) => Ok(false),
            _ => self.scalars_equal(a, b),
        }
    }

    fn intervals_equal(&self, a: &Expr, b: &Expr) -> Verdict {
        let (
            Expr::Interval { low: low_a, high: high_a, low_closed: lc_a, high_closed: hc_a },
            Expr::Interval { low: low_b, high: high_b, low_closed: lc_b, high_closed: hc_b },
        ) = (a, b)
        else {
            return Ok(false);
        };
        // An infinite end is open whichever bracket was written.
        let brackets_match =
            |closed_a: bool, closed_b: bool, end: &Expr| closed_a == closed_b || is_infinite(end);
        Ok(brackets_match(*lc_a, *lc_b, low_a)
            && brackets_match(*hc_a, *hc_b, high_a)
            && self.equal(low_a, low_b)?
            && self.equal(high_a, high_b)?)
    }

    fn ordered(&self, x: &[Expr], y: &[Expr]) -> Verdict {
        if x.len() != y.len() {
            return Ok(false);
        }
        for (a, b) in x.iter().zip(y) {
            if !self.equal(a, b)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Set equality: every item of `x` equals some item of `y` and the other way round, so
    /// order and repetition do not matter (`1, 1, 2` lists the roots `1, 2`).
    fn unordered(&self, x: &[Expr], y: &[Expr]) -> Verdict {
        Ok(self.covers(x, y)? && self.covers(y, x)?)
    }

    /// Whether every item of `x` equals some item of `y`.
    fn covers(&self, x: &[Expr], y: &[Expr]) -> Verdict {
        'items: for a in x {
            for b in y {
                if self.equal(a, b)? {
                    continue 'items;
                }
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// An assignment against a bare value: `x = 3`, `f(x) = 2x`, `x \in [1, 2]`, `3 = x`, or a
    /// computation `\frac42 = 2`, against `3`. An equation that constrains rather than names a
    /// value (`a + 3z = 0`, `7 = 11a + c`) is not equal to either side.
    fn assignment_equal(&self, terms: &[Expr], ops: &[RelOp], value: &Expr) -> Verdict {
        if !ops.iter().all(|op| matches!(op, RelOp::Eq | RelOp::In)) {
            return Ok(false);
        }
        let [.., name, last] = terms else { return Ok(false) };
        if is_name(name) || (is_constant(name) && is_constant(last)) {
            return self.equal(last, value);
        }
        if terms.len() == 2 && is_name(last) {
            return self.equal(name, value);
        }
        Ok(false)
    }

    fn relations_equal(&self, a: &Expr, b: &Expr) -> Verdict {
        let (Some((terms_a, ops_a)), Some((terms_b, ops_b))) = (ascending(a), ascending(b)) else {
            return Ok(false);
        };
        if ops_a != ops_b {
            return Ok(false);
        }
        match (terms_a.as_slice(), terms_b.as_slice(), ops_a.as_slice()) {
            ([la, ra], [lb, rb], [RelOp::Eq]) => self.equations_equal(la, ra, lb, rb),
            // `a < b` as `a - b < 0`: equal when the differences are positive multiples.
            ([la, ra], [lb, rb], [RelOp::Lt | RelOp::Le]) => {
                if self.equal(la, lb)? && self.equal(ra, rb)? {
                    return Ok(true);
                }
                Ok(self
                    .ratio(&difference(la, ra), &difference(lb, rb))?
                    .is_some_and(|r| r.re > 0.0))
            }
            _ => self.ordered(&terms_a, &terms_b),
        }
    }

    fn equations_equal(&self, la: &Expr, ra: &Expr, lb: &Expr, rb: &Expr) -> Verdict {
        // `y = 2x + 1` vs `y = 1 + 2x`: same named left side, compare the right sides.
        if let (Expr::Symbol(x), Expr::Symbol(y)) = (la, lb) {
            if x == y {
                return self.equal(ra, rb);
            }
        }
        if self.equal(la, lb)? && self.equal(ra, rb)? {
            return Ok(true);
        }
        if self.equal(la, rb)? && self.equal(ra, lb)? {
            return Ok(true);
        }
        Ok(self.ratio(&difference(la, ra), &difference(lb, rb))?.is_some())
    }

    /// The nonzero constant `c` with `a = c·b` (the same equation or inequality, rescaled), if
    /// there is one.
    fn ratio(&self, a: &Expr, b: &Expr) -> Result<Option<Complex64>, Exhausted> {
        let symbols = free_symbols(&[a, b]);
        if symbols.is_empty() {
            return Ok(None);
        }
        let mut ratio: Option<Complex64> = None;
        let mut agreeing = 0;
        for point in 0..SAMPLE_POINTS {
            let bindings = sample_bindings(&symbols, point);
            let (Some(va), Some(vb)) =
                (approx(a, &bindings, self.budget)?, approx(b, &bindings, self.budget)?)
            else {
                continue;
            };
            if !va.is_finite() || !vb.is_finite() || vb.norm() < 1e-12 || va.norm() < 1e-12 {
                continue;
            }
            let r = va / vb;
            match ratio {
                None => ratio = Some(r),
                Some(first) if close(first, r, SYMBOLIC_TOL * 10.0) => {}
                Some(_) => return Ok(None),
            }
            agreeing += 1;
        }
        Ok(ratio.filter(|_| agreeing >= MIN_AGREEING_POINTS))
    }

    fn scalars_equal(&self, a: &Expr, b: &Expr) -> Verdict {
        if self.values_equal(a, b)? {
            return Ok(true);
        }
        match (a, b) {
            (Expr::Percent(x), Expr::Percent(y)) => self.values_equal(x, y),
            (Expr::Percent(x), other) | (other, Expr::Percent(x)) => self.values_equal(x, other),
            _ => Ok(false),
        }
    }

    fn values_equal(&self, a: &Expr, b: &Expr) -> Verdict {
        if matches!(a, Expr::Text(_)) || matches!(b, Expr::Text(_)) {
            return Ok(false);
        }
        let has_decimal = has_decimal(a) || has_decimal(b);
        if let (Some(x), Some(y)) = (exact(a, self.budget)?, exact(b, self.budget)?) {
            // Purely relative: `1e-15` is not `0`, but `0.333333` is `1/3` at the default tolerance.
            let (x_f, y_f) = (to_f64(&x), to_f64(&y));
            let within_tol = (x_f - y_f).abs() <= self.rel_tol * x_f.abs().max(y_f.abs());
            return Ok(x == y || (has_decimal && within_tol));
        }
        let tol = if has_decimal { self.rel_tol.max(SYMBOLIC_TOL) } else { SYMBOLIC_TOL };
        let symbols = free_symbols(&[a, b]);
        if symbols.is_empty() {
            return Ok(match (approx(a, &[], self.budget)?, approx(b, &[], self.budget)?) {
                (Some(x), Some(y)) => close(x, y, tol),
                _ => false,
            });
        }
        let mut agreeing = 0;
        for point in 0..SAMPLE_POINTS {
            let bindings = sample_bindings(&symbols, point);
            match (approx(a, &bindings, self.budget)?, approx(b, &bindings, self.budget)?) {
                (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
                    if !close(x, y, tol.max(SYMBOLIC_TOL * 10.0)) {
                        return Ok(false);
                    }
                    agreeing += 1;
                }
                // Undefined on a side: a pole of one form that the other simplified away
                // (`(x^2-1)/(x-1)` vs `x+1`). Skip the point; enough others must agree.
                _ => {}
            }
        }
        Ok(agreeing >= MIN_AGREEING_POINTS)
    }
}

fn difference(l: &Expr, r: &Expr) -> Expr {
    Expr::Add(vec![l.clone(), Expr::Neg(Box::new(r.clone()))])
}

/// Relative closeness with an absolute floor near zero; equal infinities are close.
fn close(x: Complex64, y: Complex64, tol: f64) -> bool {
    if !x.is_finite() || !y.is_finite() {
        return x == y;
    }
    (x - y).norm() <= tol * x.norm().max(y.norm()) + 1e-12
}

fn is_infinite(e: &Expr) -> bool {
    match e {
        Expr::Constant(Constant::Infinity) => true,
        Expr::Neg(x) => is_infinite(x),
        _ => false,
    }
}

fn is_collection(e: &Expr) -> bool {
    matches!(
        e,
        Expr::List(_)
            | Expr::Set(_)
            | Expr::Tuple(_)
            | Expr::Interval { .. }
            | Expr::Union(_)
            | Expr::Matrix(_)
    )
}

fn has_decimal(e: &Expr) -> bool {
    e.any(|node| matches!(node, Expr::Number { decimal: true, .. }))
}

/// Free symbols of `exprs`, sorted and deduplicated.
fn free_symbols<'e>(exprs: &[&'e Expr]) -> Vec<&'e str> {
    let mut names = Vec::new();
    for e in exprs {
        collect_symbols(e, &mut names);
    }
    names.sort_unstable();
    names.dedup();
    names
}

fn collect_symbols<'e>(e: &'e Expr, into: &mut Vec<&'e str>) {
    e.walk(|node| {
        if let Expr::Symbol(name) = node {
            into.push(name);
        }
    });
}

/// Deterministic pseudo-random values in [0.3, 2.3) for `symbols` at sample `point`. Positive
/// reals keep `\sqrt{x}` and `\ln x` on their principal branch; irrational-looking values avoid
/// the coincidences small integers would hit.
fn sample_bindings<'s>(symbols: &[&'s str], point: usize) -> Vec<(&'s str, Complex64)> {
    symbols
        .iter()
        .enumerate()
        .map(|(i, &name)| {
            let mut z = (point as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (i as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 30)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
            (name, Complex64::new(0.3 + 2.0 * unit, 0.0))
        })
        .collect()
}

/// The terms and operators of a relation, rewritten so any order operators point up (`<`, `<=`).
/// A chain of equalities `x = 5 + 6 = 11` keeps its ends: the worked steps are not the answer.
fn ascending(relation: &Expr) -> Option<(Vec<Expr>, Vec<RelOp>)> {
    let Expr::Relation { terms, ops } = relation else { return None };
    if ops.len() > 1 && ops.iter().all(|op| *op == RelOp::Eq) {
        let ends = vec![terms[0].clone(), terms[terms.len() - 1].clone()];
        return Some((ends, vec![RelOp::Eq]));
    }
    if ops.iter().all(|op| matches!(op, RelOp::Gt | RelOp::Ge)) {
        let terms = terms.iter().rev().cloned().collect();
        let ops = ops.iter().rev().map(|op| op.flipped()).collect();
        return Some((terms, ops));
    }
    Some((terms.clone(), ops.clone()))
}

/// `expr` as a list of intervals, when it is interval-like: an interval, a union, an inequality
/// in one variable, a list of those, or — facing one of those — a pair `(a, b)`.
fn interval_parts(expr: &Expr, other: &Expr) -> Option<Vec<Expr>> {
    match expr {
        Expr::Interval { .. } => Some(vec![expr.clone()]),
        Expr::Union(parts) => parts
            .iter()
            .map(|p| interval_parts(p, other))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat()),
        Expr::Relation { .. } => inequality_interval(expr).map(|i| vec![i]),
        Expr::List(items) if items.iter().all(|i| matches!(i, Expr::Relation { .. })) => {
            items.iter().map(inequality_interval).collect()
        }
        Expr::Tuple(ends)
            if ends.len() == 2
                && !matches!(other, Expr::Tuple(_))
                && interval_parts(other, expr).is_some() =>
        {
            Some(vec![Expr::Interval {
                low: Box::new(ends[0].clone()),
                high: Box::new(ends[1].clone()),
                low_closed: false,
                high_closed: false,
            }])
        }
        _ => None,
    }
}

/// The interval `x < 3`, `-1 <= x < 2` or `5 > x` describes, if it has that shape.
fn inequality_interval(relation: &Expr) -> Option<Expr> {
    let (terms, ops) = ascending(relation)?;
    let strict = |op: &RelOp| match op {
        RelOp::Lt => Some(false),
        RelOp::Le => Some(true),
        _ => None,
    };
    let infinity = |negative: bool| {
        let inf = Expr::Constant(Constant::Infinity);
        Box::new(if negative { Expr::Neg(Box::new(inf)) } else { inf })
    };
    let interval = |low: Box<Expr>, high: Box<Expr>, low_closed, high_closed| {
        Some(Expr::Interval { low, high, low_closed, high_closed })
    };
    match (terms.as_slice(), ops.as_slice()) {
        ([Expr::Symbol(_), bound], [op]) if is_constant(bound) => {
            interval(infinity(true), Box::new(bound.clone()), false, strict(op)?)
        }
        ([bound, Expr::Symbol(_)], [op]) if is_constant(bound) => {
            interval(Box::new(bound.clone()), infinity(false), strict(op)?, false)
        }
        ([low, Expr::Symbol(_), high], [op_low, op_high])
            if is_constant(low) && is_constant(high) =>
        {
            interval(
                Box::new(low.clone()),
                Box::new(high.clone()),
                strict(op_low)?,
                strict(op_high)?,
            )
        }
        _ => None,
    }
}

/// A name something is assigned to: `x`, `x_1`, `\alpha`, or a function value `f(x)`.
fn is_name(e: &Expr) -> bool {
    match e {
        Expr::Symbol(_) => true,
        Expr::Mul(factors) => matches!(factors.as_slice(), [Expr::Symbol(_), Expr::Symbol(_)]),
        _ => false,
    }
}

fn is_constant(e: &Expr) -> bool {
    !e.any(|node| matches!(node, Expr::Symbol(_)))
}

/// A one-row or one-column matrix as a vector.
fn vector_of(rows: &[Vec<Expr>]) -> Option<Vec<Expr>> {
    match rows {
        [row] => Some(row.clone()),
        _ if rows.iter().all(|row| row.len() == 1) => {
            Some(rows.iter().map(|row| row[0].clone()).collect())
        }
        _ => None,
    }
}

/// `a ± b` → the list of both variants; lists and sets absorb the variants of their items.
pub fn expand_plus_minus(expr: &Expr) -> Expr {
    match expr {
        Expr::List(items) => Expr::List(items.iter().flat_map(variants).collect()),
        Expr::Set(items) => Expr::Set(items.iter().flat_map(variants).collect()),
        other => {
            let mut all = variants(other);
            if all.len() == 1 {
                all.pop().expect("one variant")
            } else {
                Expr::List(all)
            }
        }
    }
}

/// Every choice of sign for the `±` in `expr`; `expr` itself when it has none or too many.
fn variants(expr: &Expr) -> Vec<Expr> {
    let mut count = 0usize;
    expr.walk(|node| count += usize::from(matches!(node, Expr::PlusMinus(..))));
    if count == 0 || (1usize << count.min(16)) > MAX_PLUS_MINUS_VARIANTS {
        return vec![expr.clone()];
    }
    (0..1u32 << count).map(|signs| choose_signs(expr, signs, &mut 0)).collect()
}

/// A copy of `expr` where the k-th `±` (in walk order) is `+` if bit k of `signs` is 0, else `-`.
fn choose_signs(expr: &Expr, signs: u32, next: &mut u32) -> Expr {
    if let Expr::PlusMinus(a, b) = expr {
        let minus = signs >> *next & 1 == 1;
        *next += 1;
        let a = a.as_deref().map(|a| choose_signs(a, signs, next));
        let b = choose_signs(b, signs, next);
        let b = if minus { Expr::Neg(Box::new(b)) } else { b };
        return match a {
            Some(a) => Expr::Add(vec![a, b]),
            None => b,
        };
    }
    let mut map = |e: &Expr| choose_signs(e, signs, next);
    match expr {
        Expr::Add(items) => Expr::Add(items.iter().map(map).collect()),
        Expr::Mul(items) => Expr::Mul(items.iter().map(map).collect()),
        Expr::Tuple(items) => Expr::Tuple(items.iter().map(map).collect()),
        Expr::Set(items) => Expr::Set(items.iter().map(map).collect()),
        Expr::Union(items) => Expr::Union(items.iter().map(map).collect()),
        Expr::List(items) => Expr::List(items.iter().map(map).collect()),
        Expr::Matrix(rows) => {
            Expr::Matrix(rows.iter().map(|row| row.iter().map(&mut map).collect()).collect())
        }
        Expr::Relation { terms, ops } => {
            Expr::Relation { terms: terms.iter().map(map).collect(), ops: ops.clone() }
        }
        Expr::Neg(x) => Expr::Neg(Box::new(map(x))),
        Expr::Func(f, x) => Expr::Func(*f, Box::new(map(x))),
        Expr::Percent(x) => Expr::Percent(Box::new(map(x))),
        Expr::Div(a, b) => Expr::Div(Box::new(map(a)), Box::new(map(b))),
        Expr::Pow(a, b) => Expr::Pow(Box::new(map(a)), Box::new(map(b))),
        Expr::Log(a, b) => Expr::Log(Box::new(map(a)), Box::new(map(b))),
        Expr::Root(a, b) => Expr::Root(Box::new(map(a)), Box::new(map(b))),
        Expr::Binom(a, b) => Expr::Binom(Box::new(map(a)), Box::new(map(b))),
        Expr::Interval { low, high, low_closed, high_closed } => Expr::Interval {
            low: Box::new(map(low)),
            high: Box::new(map(high)),
            low_closed: *low_closed,
            high_closed: *high_closed,
        },
        Expr::Number { .. }
        | Expr::Symbol(_)
        | Expr::Constant(_)
        | Expr::Text(_)
        | Expr::PlusMinus(..) => expr.clone(),
    }
}
