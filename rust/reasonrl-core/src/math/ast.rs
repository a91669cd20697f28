//! The parsed form of an answer, and its canonical printed form (what `parse` returns).

use std::fmt;

use num_rational::BigRational;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl RelOp {
    /// The operator seen from the other side: `a < b` ⇔ `b > a`.
    pub fn flipped(self) -> RelOp {
        match self {
            RelOp::Lt => RelOp::Gt,
            RelOp::Le => RelOp::Ge,
            RelOp::Gt => RelOp::Lt,
            RelOp::Ge => RelOp::Le,
            other => other,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            RelOp::Eq => "=",
            RelOp::Ne => "!=",
            RelOp::Lt => "<",
            RelOp::Le => "<=",
            RelOp::Gt => ">",
            RelOp::Ge => ">=",
            RelOp::In => "in",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constant {
    Pi,
    E,
    I,
    Infinity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Cot,
    Sec,
    Csc,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Exp,
    Sqrt,
    Abs,
    Floor,
    Ceil,
    Factorial,
}

impl Func {
    pub fn name(self) -> &'static str {
        match self {
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tan => "tan",
            Func::Cot => "cot",
            Func::Sec => "sec",
            Func::Csc => "csc",
            Func::Asin => "asin",
            Func::Acos => "acos",
            Func::Atan => "atan",
            Func::Sinh => "sinh",
            Func::Cosh => "cosh",
            Func::Tanh => "tanh",
            Func::Ln => "ln",
            Func::Exp => "exp",
            Func::Sqrt => "sqrt",
            Func::Abs => "abs",
            Func::Floor => "floor",
            Func::Ceil => "ceil",
            Func::Factorial => "factorial",
        }
    }

    /// The function named `name` in LaTeX (`\sin`) or plain text (`sin`).
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" | "tg" => Func::Tan,
            "cot" | "ctg" => Func::Cot,
            "sec" => Func::Sec,
            "csc" | "cosec" => Func::Csc,
            "arcsin" | "asin" => Func::Asin,
            "arccos" | "acos" => Func::Acos,
            "arctan" | "atan" => Func::Atan,
            "sinh" => Func::Sinh,
            "cosh" => Func::Cosh,
            "tanh" => Func::Tanh,
            "ln" => Func::Ln,
            "exp" => Func::Exp,
            "sqrt" => Func::Sqrt,
            "abs" => Func::Abs,
            _ => return None,
        })
    }

    /// The inverse written `\sin^{-1}`.
    pub fn inverse(self) -> Option<Func> {
        match self {
            Func::Sin => Some(Func::Asin),
            Func::Cos => Some(Func::Acos),
            Func::Tan => Some(Func::Atan),
            _ => None,
        }
    }
}

/// An answer. Scalars and structures share one type so that structures nest (a set of tuples).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number as written; `decimal` records a decimal point or exponent, which makes float
    /// tolerance apply to comparisons involving it.
    Number {
        value: BigRational,
        decimal: bool,
    },
    Symbol(String),
    Constant(Constant),
    Add(Vec<Expr>),
    Mul(Vec<Expr>),
    Neg(Box<Expr>),
    Div(Box<Expr>, Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    /// `a ± b`; `a` absent for a leading `±b`. Expanded into both variants before comparing.
    PlusMinus(Option<Box<Expr>>, Box<Expr>),
    Func(Func, Box<Expr>),
    /// `\log_b x` (base first).
    Log(Box<Expr>, Box<Expr>),
    /// `\sqrt[n]{x}` (index first).
    Root(Box<Expr>, Box<Expr>),
    Binom(Box<Expr>, Box<Expr>),
    /// `x%`: equal to `x/100`, and also to `x` itself (see `equiv`).
    Percent(Box<Expr>),
    Tuple(Vec<Expr>),
    Set(Vec<Expr>),
    Interval {
        low: Box<Expr>,
        high: Box<Expr>,
        low_closed: bool,
        high_closed: bool,
    },
    Union(Vec<Expr>),
    Matrix(Vec<Vec<Expr>>),
    /// A chain `a < b <= c`: `ops.len() == terms.len() - 1`.
    Relation {
        terms: Vec<Expr>,
        ops: Vec<RelOp>,
    },
    /// Several answers written one after another (`2, 3`, `x = 1 or x = 2`): compared as a set.
    List(Vec<Expr>),
    /// Words that are not math (`\text{Devon}`), lower-cased and trimmed.
    Text(String),
}

impl Expr {
    pub fn integer(value: i64) -> Expr {
        Expr::Number { value: BigRational::from_integer(value.into()), decimal: false }
    }

    /// Calls `visit` on every sub-expression, depth first. Iterative, so deep trees are safe.
    pub fn walk<'e>(&'e self, mut visit: impl FnMut(&'e Expr)) {
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            visit(node);
            node.push_children(&mut stack);
        }
    }

    fn push_children<'e>(&'e self, stack: &mut Vec<&'e Expr>) {
        match self {
            Expr::Number { .. } | Expr::Symbol(_) | Expr::Constant(_) | Expr::Text(_) => {}
            Expr::Add(items)
            | Expr::Mul(items)
            | Expr::Tuple(items)
            | Expr::Set(items)
            | Expr::Union(items)
            | Expr::List(items) => stack.extend(items),
            Expr::Relation { terms, .. } => stack.extend(terms),
            Expr::Matrix(rows) => stack.extend(rows.iter().flatten()),
            Expr::Neg(x) | Expr::Func(_, x) | Expr::Percent(x) => stack.push(x),
            Expr::PlusMinus(a, b) => {
                stack.extend(a.as_deref());
                stack.push(b);
            }
            Expr::Div(a, b)
            | Expr::Pow(a, b)
            | Expr::Log(a, b)
            | Expr::Root(a, b)
            | Expr::Binom(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Expr::Interval { low, high, .. } => {
                stack.push(low);
                stack.push(high);
            }
        }
    }

    /// Whether some sub-expression satisfies `test`.
    pub fn any(&self, mut test: impl FnMut(&Expr) -> bool) -> bool {
        let mut found = false;
        self.walk(|e| found = found || test(e));
        found
    }
}

fn join(f: &mut fmt::Formatter<'_>, items: &[Expr], separator: &str) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// Prints fully parenthesised prefix-free infix: unambiguous, stable, easy to read in a test
/// failure (`(x + 1)^2`, `Interval[1, inf)`, `Set{1, 2}`).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number { value, .. } => {
                if value.is_integer() {
                    write!(f, "{}", value.numer())
                } else {
                    write!(f, "{}/{}", value.numer(), value.denom())
                }
            }
            Expr::Symbol(name) => f.write_str(name),
            Expr::Constant(c) => f.write_str(match c {
                Constant::Pi => "pi",
                Constant::E => "e",
                Constant::I => "i",
                Constant::Infinity => "inf",
            }),
            Expr::Add(items) => {
                f.write_str("(")?;
                join(f, items, " + ")?;
                f.write_str(")")
            }
            Expr::Mul(items) => {
                f.write_str("(")?;
                join(f, items, " * ")?;
                f.write_str(")")
            }
            Expr::Neg(x) => write!(f, "-{x}"),
            Expr::Div(a, b) => write!(f, "({a} / {b})"),
            Expr::Pow(a, b) => write!(f, "{a}^{b}"),
            Expr::PlusMinus(Some(a), b) => write!(f, "({a} +- {b})"),
            Expr::PlusMinus(None, b) => write!(f, "+-{b}"),
            Expr::Func(Func::Factorial, x) => write!(f, "{x}!"),
            Expr::Func(func, x) => write!(f, "{}({x})", func.name()),
            Expr::Log(base, x) => write!(f, "log_{base}({x})"),
            Expr::Root(n, x) => write!(f, "root_{n}({x})"),
            Expr::Binom(n, k) => write!(f, "binom({n}, {k})"),
            Expr::Percent(x) => write!(f, "{x}%"),
            Expr::Tuple(items) => {
                f.write_str("Tuple(")?;
                join(f, items, ", ")?;
                f.write_str(")")
            }
            Expr::Set(items) => {
                f.write_str("Set{")?;
                join(f, items, ", ")?;
                f.write_str("}")
            }
            Expr::Interval { low, high, low_closed, high_closed } => write!(
                f,
                "Interval{}{low}, {high}{}",
                if *low_closed { "[" } else { "(" },
                if *high_closed { "]" } else { ")" }
            ),
            Expr::Union(items) => join(f, items, " U "),
            Expr::Matrix(rows) => {
                f.write_str("Matrix[")?;
                for (i, row) in rows.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    join(f, row, ", ")?;
                }
                f.write_str("]")
            }
            Expr::Relation { terms, ops } => {
                for (i, term) in terms.iter().enumerate() {
                    if i > 0 {
                        write!(f, " {} ", ops[i - 1].symbol())?;
                    }
                    write!(f, "{term}")?;
                }
                Ok(())
            }
            Expr::List(items) => {
                f.write_str("List[")?;
                join(f, items, ", ")?;
                f.write_str("]")
            }
            Expr::Text(text) => write!(f, "Text({text:?})"),
        }
    }
}
