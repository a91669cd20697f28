//! Tokens → [`Expr`], by recursive descent with a depth cap.
//!
//! Grammar, loosest binding first:
//!
//! ```text
//! answer   := item ((',' | ';' | "or" | "and") item)*        several items → List
//! item     := operand (relop operand)*                         relations chain
//! operand  := sum ('\cup' sum)*                                unions of intervals
//! sum      := term (('+' | '-' | '\pm') term)*
//! term     := unary (('*' | '/' | implicit) unary)*            units after a factor are skipped
//! unary    := ('-' | '+' | '\pm') unary | power
//! power    := postfix ('^' unary)?                             right-associative
//! postfix  := primary ('!' | '%' | '_' sub)*
//! primary  := number | name | command | (...) | [...] | {...} | \{...\} | |...| | matrix
//! ```
//!
//! Recursion passes through `unary` or `primary` once per nesting level, and both count depth
//! against [`MAX_DEPTH`], so no input can overflow the stack.

use super::ast::{Constant, Expr, Func, RelOp};
use super::budget::{Budget, Exhausted, MAX_DEPTH};
use super::lexer::{tokenize, LexError, Token};
use super::number;

#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    Exhausted,
    TooDeep,
    Syntax(String),
}

impl From<Exhausted> for ParseError {
    fn from(_: Exhausted) -> Self {
        ParseError::Exhausted
    }
}

impl From<LexError> for ParseError {
    fn from(error: LexError) -> Self {
        match error {
            LexError::Exhausted => ParseError::Exhausted,
            LexError::Unexpected(what) => ParseError::Syntax(format!("unexpected {what:?}")),
        }
    }
}

type Result<T> = std::result::Result<T, ParseError>;

/// Words that follow a quantity as its unit or noun and never change the value.
const UNIT_WORDS: &[&str] = &[
    "cm",
    "mm",
    "km",
    "meter",
    "meters",
    "metre",
    "metres",
    "centimeter",
    "centimeters",
    "millimeters",
    "kilometers",
    "inch",
    "inches",
    "ft",
    "feet",
    "foot",
    "yd",
    "yard",
    "yards",
    "mile",
    "miles",
    "mph",
    "kph",
    "kg",
    "grams",
    "gram",
    "kilograms",
    "lb",
    "lbs",
    "pound",
    "pounds",
    "ounce",
    "ounces",
    "oz",
    "hour",
    "hours",
    "hr",
    "hrs",
    "minute",
    "minutes",
    "mins",
    "second",
    "seconds",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "dollar",
    "dollars",
    "cent",
    "cents",
    "degree",
    "degrees",
    "deg",
    "unit",
    "units",
    "sq",
    "square",
    "cubic",
    "liter",
    "liters",
    "litres",
    "gallon",
    "gallons",
    "ml",
    "cc",
    "mL",
    "people",
    "students",
    "times",
    "ways",
    "points",
    "pages",
    "marbles",
    "apples",
    "eggs",
];

fn is_unit(word: &str) -> bool {
    UNIT_WORDS.iter().any(|unit| unit.eq_ignore_ascii_case(word))
}

fn is_percent_word(word: &str) -> bool {
    word.eq_ignore_ascii_case("percent") || word.eq_ignore_ascii_case("pct")
}

fn is_connector(word: &str) -> bool {
    matches!(word.trim().to_ascii_lowercase().as_str(), "or" | "and" | "," | ";")
}

/// Short English words: a two- or three-letter word in an answer is read as a product of
/// letters (`xy`), unless it is one of these, which mark prose.
const PROSE_WORDS: &[&str] = &[
    "an", "the", "is", "are", "was", "be", "we", "it", "its", "in", "on", "of", "to", "at", "by",
    "for", "so", "as", "if", "get", "got", "has", "had", "end", "all", "can", "not", "but", "she",
    "he", "his", "her", "you", "our", "one", "two", "six", "ten", "let", "use", "now", "then",
    "thus", "yes", "no", "how", "why", "may", "per", "out", "up", "do", "too",
];

const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
    "ell",
];

const MATRIX_ENVIRONMENTS: &[&str] =
    &["matrix", "pmatrix", "bmatrix", "Bmatrix", "vmatrix", "Vmatrix", "smallmatrix", "array"];

/// Parses a whole answer.
pub fn parse_answer(text: &str, budget: &Budget) -> Result<Expr> {
    parse_nested(text, budget, 0)
}

fn parse_nested(text: &str, budget: &Budget, depth: usize) -> Result<Expr> {
    let tokens = tokenize(text, budget)?;
    let mut parser = Parser { tokens, pos: 0, depth, budget };
    let answer = parser.answer()?;
    match parser.peek() {
        None => Ok(answer),
        Some(token) => Err(ParseError::Syntax(format!("unexpected {token:?}"))),
    }
}

struct Parser<'b> {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    budget: &'b Budget,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &Token) -> Result<()> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(ParseError::Syntax(format!("expected {token:?}, found {:?}", self.peek())))
        }
    }

    /// Runs `f` one nesting level deeper, failing cleanly past `MAX_DEPTH`.
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.budget.tick()?;
        if self.depth >= MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn eat_separator(&mut self) -> bool {
        let separator = match self.peek() {
            Some(Token::Comma | Token::Semicolon) => true,
            Some(Token::Word(w) | Token::Text(w)) => is_connector(w),
            _ => false,
        };
        if separator {
            self.pos += 1;
        }
        separator
    }

    fn answer(&mut self) -> Result<Expr> {
        let mut items = Vec::new();
        while self.peek().is_some() {
            self.budget.tick()?;
            if self.eat_separator() {
                continue;
            }
            items.push(self.item()?);
            if !self.eat_separator() {
                break;
            }
        }
        match items.len() {
            0 => Err(ParseError::Syntax("empty answer".into())),
            1 => Ok(items.pop().expect("one item")),
            _ => Ok(Expr::List(items)),
        }
    }

    fn item(&mut self) -> Result<Expr> {
        let mut terms = vec![self.operand()?];
        let mut ops = Vec::new();
        loop {
            self.budget.tick()?;
            match self.peek() {
                Some(Token::Rel(op)) => ops.push(*op),
                // `x = 1/3 \approx 0.33`: the rounding after an exact result is not the answer.
                Some(Token::Approx) if !ops.is_empty() => {
                    self.pos += 1;
                    self.operand()?;
                    continue;
                }
                Some(Token::Approx) => ops.push(RelOp::Eq),
                _ => break,
            }
            self.pos += 1;
            terms.push(self.operand()?);
        }
        Ok(if ops.is_empty() {
            terms.pop().expect("one term")
        } else {
            Expr::Relation { terms, ops }
        })
    }

    fn operand(&mut self) -> Result<Expr> {
        let first = self.sum()?;
        if self.peek() != Some(&Token::Command("cup".into())) {
            return Ok(first);
        }
        let mut parts = vec![open_interval(first)];
        while self.eat(&Token::Command("cup".into())) {
            parts.push(open_interval(self.sum()?));
        }
        Ok(Expr::Union(parts))
    }

    fn sum(&mut self) -> Result<Expr> {
        let mut items = vec![self.term()?];
        loop {
            self.budget.tick()?;
            match self.peek() {
                Some(Token::Plus) => {
                    self.pos += 1;
                    items.push(self.term()?);
                }
                Some(Token::Minus) => {
                    self.pos += 1;
                    items.push(Expr::Neg(Box::new(self.term()?)));
                }
                Some(Token::PlusMinus | Token::MinusPlus) => {
                    self.pos += 1;
                    let left = collapse_sum(std::mem::take(&mut items));
                    items.push(Expr::PlusMinus(Some(Box::new(left)), Box::new(self.term()?)));
                }
                _ => break,
            }
        }
        Ok(collapse_sum(items))
    }

    fn term(&mut self) -> Result<Expr> {
        let mut factors = vec![self.unary()?];
        loop {
            self.budget.tick()?;
            match self.peek() {
                Some(Token::Times) => {
                    self.pos += 1;
                    factors.push(self.unary()?);
                }
                Some(Token::Divide) => {
                    self.pos += 1;
                    let numerator = collapse_product(std::mem::take(&mut factors));
                    factors.push(Expr::Div(Box::new(numerator), Box::new(self.unary()?)));
                }
                // A unit or annotation after a quantity: `5 \text{ cm}^2`, `12 apples`.
                Some(Token::Text(t)) if !is_connector(t) => self.skip_unit(),
                Some(Token::Word(w)) if is_unit(w) => self.skip_unit(),
                Some(token) if starts_implicit_factor(token) => {
                    let mixed_fraction = factors.len() == 1
                        && is_integer_literal(&factors[0])
                        && matches!(token, Token::Command(c) if c.ends_with("frac"));
                    let factor = self.power()?;
                    if mixed_fraction && is_literal_fraction(&factor) {
                        let whole = factors.pop().expect("one factor");
                        factors.push(mixed_number(whole, factor));
                    } else {
                        factors.push(factor);
                    }
                }
                _ => break,
            }
        }
        Ok(collapse_product(factors))
    }

    /// Skips a unit token and the power it may carry (`cm^2`).
    fn skip_unit(&mut self) {
        self.pos += 1;
        if self.peek() == Some(&Token::Caret)
            && matches!(self.tokens.get(self.pos + 1), Some(Token::Number(_)))
        {
            self.pos += 2;
        }
    }

    fn unary(&mut self) -> Result<Expr> {
        self.nested(|p| match p.peek() {
            Some(Token::Minus) => {
                p.pos += 1;
                Ok(Expr::Neg(Box::new(p.unary()?)))
            }
            Some(Token::Plus) => {
                p.pos += 1;
                p.unary()
            }
            Some(Token::PlusMinus | Token::MinusPlus) => {
                p.pos += 1;
                Ok(Expr::PlusMinus(None, Box::new(p.unary()?)))
            }
            _ => p.power(),
        })
    }

    fn power(&mut self) -> Result<Expr> {
        let base = self.postfix()?;
        if self.eat(&Token::Caret) {
            let exponent = self.unary()?;
            let raised = Expr::Pow(Box::new(base), Box::new(exponent));
            return self.postfix_operators(raised);
        }
        Ok(base)
    }

    fn postfix(&mut self) -> Result<Expr> {
        let primary = self.primary()?;
        self.postfix_operators(primary)
    }

    fn postfix_operators(&mut self, mut expr: Expr) -> Result<Expr> {
        loop {
            self.budget.tick()?;
            match self.peek() {
                Some(Token::Bang) => {
                    self.pos += 1;
                    expr = Expr::Func(Func::Factorial, Box::new(expr));
                }
                Some(Token::Percent) => {
                    self.pos += 1;
                    expr = Expr::Percent(Box::new(expr));
                }
                Some(Token::Word(w)) if is_percent_word(w) => {
                    self.pos += 1;
                    expr = Expr::Percent(Box::new(expr));
                }
                Some(Token::Prime) => self.pos += 1,
                Some(Token::Underscore) => {
                    // `x_1` is a name; `28_9` a numeral in base 9, kept as an opaque name too
                    // so that it only equals the same numeral.
                    let base = match &expr {
                        Expr::Symbol(name) => name.clone(),
                        Expr::Number { decimal: false, .. } => expr.to_string(),
                        _ => return Err(ParseError::Syntax("subscript on a non-name".into())),
                    };
                    self.pos += 1;
                    let subscript = self.argument()?;
                    expr = Expr::Symbol(format!("{base}_{subscript}"));
                }
                _ => return Ok(expr),
            }
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        self.nested(|p| {
            let token = p.next().ok_or_else(|| ParseError::Syntax("unexpected end".into()))?;
            match token {
                Token::Number(digits) => p.number(&digits),
                Token::Letter(c) => Ok(letter(c)),
                Token::Word(word) => p.word(&word),
                Token::Command(name) => p.command(&name),
                Token::Text(text) => p.text(&text),
                Token::LParen => p.bracketed(false),
                Token::LBracket => p.bracketed(true),
                Token::LBrace => p.group_rest(),
                Token::LSet => {
                    let items = p.items_until(&Token::RSet)?;
                    Ok(Expr::Set(items))
                }
                Token::Pipe => {
                    let inside = p.sum()?;
                    p.expect(&Token::Pipe)?;
                    Ok(Expr::Func(Func::Abs, Box::new(inside)))
                }
                Token::Begin(environment) => p.matrix(&environment),
                other => Err(ParseError::Syntax(format!("unexpected {other:?}"))),
            }
        })
    }

    fn number(&mut self, digits: &str) -> Result<Expr> {
        let decimal = digits.contains(['.', 'e']);
        // `0.\overline{3}`: a repeating decimal.
        if self.peek() == Some(&Token::Command("overline".into())) {
            self.pos += 1;
            let repeat = self.overline_digits()?;
            let value = number::repeating_decimal(digits, &repeat)
                .ok_or_else(|| ParseError::Syntax("bad repeating decimal".into()))?;
            return Ok(Expr::Number { value, decimal: false });
        }
        let value = number::parse_decimal(digits)
            .ok_or_else(|| ParseError::Syntax(format!("number too large: {digits}")))?;
        Ok(Expr::Number { value, decimal })
    }

    /// The digits under `\overline`, as written (leading zeros matter: `\overline{03}`).
    fn overline_digits(&mut self) -> Result<String> {
        let braced = self.eat(&Token::LBrace);
        let Some(Token::Number(digits)) = self.next() else {
            return Err(ParseError::Syntax("\\overline of a non-number".into()));
        };
        if braced {
            self.expect(&Token::RBrace)?;
        }
        Ok(digits)
    }

    fn word(&mut self, word: &str) -> Result<Expr> {
        let lower = word.to_ascii_lowercase();
        if let Some(func) = Func::from_name(&lower) {
            return self.apply(func);
        }
        match lower.as_str() {
            "pi" => Ok(Expr::Constant(Constant::Pi)),
            "inf" | "infty" | "infinity" | "oo" => Ok(Expr::Constant(Constant::Infinity)),
            "log" => self.logarithm(None),
            "lg" => self.logarithm(Some(Expr::integer(10))),
            _ if word.len() <= 3
                && !is_unit(word)
                && !is_connector(word)
                && !PROSE_WORDS.contains(&lower.as_str()) =>
            {
                // Plain-text juxtaposed letters: `ab^2` is a·b², so the letters after the first
                // go back into the token stream as separate factors.
                let mut letters = word.chars();
                let first = letters.next().expect("a word has letters");
                self.tokens.splice(self.pos..self.pos, letters.map(Token::Letter));
                Ok(letter(first))
            }
            _ => Err(ParseError::Syntax(format!("word {word:?}"))),
        }
    }

    fn command(&mut self, name: &str) -> Result<Expr> {
        if let Some(func) = Func::from_name(name).filter(|f| *f != Func::Sqrt) {
            return self.apply(func);
        }
        if GREEK.contains(&name) {
            return Ok(Expr::Symbol(name.to_string()));
        }
        match name {
            "frac" | "dfrac" | "tfrac" | "cfrac" => {
                let numerator = self.argument()?;
                let denominator = self.argument()?;
                Ok(Expr::Div(Box::new(numerator), Box::new(denominator)))
            }
            "binom" | "dbinom" | "tbinom" => {
                let n = self.argument()?;
                let k = self.argument()?;
                Ok(Expr::Binom(Box::new(n), Box::new(k)))
            }
            "sqrt" => {
                if self.eat(&Token::LBracket) {
                    let index = self.sum()?;
                    self.expect(&Token::RBracket)?;
                    let radicand = self.argument()?;
                    return Ok(Expr::Root(Box::new(index), Box::new(radicand)));
                }
                Ok(Expr::Func(Func::Sqrt, Box::new(self.argument()?)))
            }
            "log" => self.logarithm(None),
            "lg" => self.logarithm(Some(Expr::integer(10))),
            "pi" => Ok(Expr::Constant(Constant::Pi)),
            "infty" | "infin" => Ok(Expr::Constant(Constant::Infinity)),
            "emptyset" | "varnothing" => Ok(Expr::Set(Vec::new())),
            "lfloor" => self.delimited(Func::Floor, "rfloor"),
            "lceil" => self.delimited(Func::Ceil, "rceil"),
            "mathbb" => match self.argument()? {
                Expr::Symbol(set) if set == "R" => Ok(Expr::Interval {
                    low: Box::new(Expr::Neg(Box::new(Expr::Constant(Constant::Infinity)))),
                    high: Box::new(Expr::Constant(Constant::Infinity)),
                    low_closed: false,
                    high_closed: false,
                }),
                other => Ok(other),
            },
            // Decorations that name a quantity: \overline{AB}, \hat{x}, \vec{v}.
            "overline" | "bar" | "hat" | "vec" | "tilde" | "widehat" | "overrightarrow" => {
                self.argument()
            }
            // Any other command names something this grammar does not know (`\\aleph`, a macro):
            // an opaque symbol, equal only to itself.
            _ => Ok(Expr::Symbol(format!("\\{name}"))),
        }
    }

    /// A command argument: a `{...}` group, else one primary (`\frac\pi2`, `\sqrt x`).
    fn argument(&mut self) -> Result<Expr> {
        if self.eat(&Token::LBrace) {
            return self.nested(|p| p.group_rest());
        }
        self.primary()
    }

    /// The rest of a `{...}` group after its `{`.
    fn group_rest(&mut self) -> Result<Expr> {
        let mut items = self.items_until(&Token::RBrace)?;
        match items.len() {
            0 => Err(ParseError::Syntax("empty group".into())),
            1 => Ok(items.pop().expect("one item")),
            _ => Ok(Expr::List(items)),
        }
    }

    /// Comma-separated items up to and including `close`.
    fn items_until(&mut self, close: &Token) -> Result<Vec<Expr>> {
        let mut items = Vec::new();
        while !self.eat(close) {
            self.budget.tick()?;
            if self.peek().is_none() {
                return Err(ParseError::Syntax(format!("missing {close:?}")));
            }
            if self.eat_separator() {
                continue;
            }
            items.push(self.item()?);
            if !self.eat_separator() {
                self.expect(close)?;
                break;
            }
        }
        Ok(items)
    }

    /// After `(` or `[`: a grouping, a tuple, or an interval, by the brackets and item count.
    fn bracketed(&mut self, opened_square: bool) -> Result<Expr> {
        let mut items = Vec::new();
        let closed_square = loop {
            self.budget.tick()?;
            match self.peek() {
                Some(Token::RParen) => break false,
                Some(Token::RBracket) => break true,
                None => return Err(ParseError::Syntax("unclosed bracket".into())),
                _ => {}
            }
            items.push(self.item()?);
            if !matches!(self.peek(), Some(Token::Comma | Token::Semicolon)) {
                match self.peek() {
                    Some(Token::RParen) => break false,
                    Some(Token::RBracket) => break true,
                    _ => return Err(ParseError::Syntax("expected a closing bracket".into())),
                }
            }
            self.pos += 1;
        };
        self.pos += 1;
        if items.len() == 1 && opened_square == closed_square {
            return Ok(items.pop().expect("one item"));
        }
        if items.len() == 2 && (opened_square || closed_square) {
            let high = items.pop().expect("two items");
            let low = items.pop().expect("two items");
            return Ok(Expr::Interval {
                low: Box::new(low),
                high: Box::new(high),
                low_closed: opened_square,
                high_closed: closed_square,
            });
        }
        if opened_square != closed_square {
            return Err(ParseError::Syntax("mismatched brackets".into()));
        }
        Ok(Expr::Tuple(items))
    }

    fn text(&mut self, text: &str) -> Result<Expr> {
        let trimmed = text.trim();
        if trimmed.is_empty() || is_connector(trimmed) {
            return Err(ParseError::Syntax("empty text".into()));
        }
        // `\text{(B)}` or `\mathrm{e}` hold math; `\text{Devon}` is a word answer.
        match parse_nested(trimmed, self.budget, self.depth + 1) {
            Ok(expr) => Ok(expr),
            Err(ParseError::Syntax(_)) => Ok(Expr::Text(normalize_words(trimmed))),
            Err(other) => Err(other),
        }
    }

    /// `\sin x`, `\sin(2x)`, `\sin^2 x`, `\sin^{-1} x`.
    fn apply(&mut self, mut func: Func) -> Result<Expr> {
        let mut power = None;
        if self.eat(&Token::Caret) {
            let exponent = self.argument_with_sign()?;
            match (func.inverse(), &exponent) {
                (Some(inverse), Expr::Neg(one)) if **one == Expr::integer(1) => func = inverse,
                _ => power = Some(exponent),
            }
        }
        let argument = self.function_argument()?;
        let applied = Expr::Func(func, Box::new(argument));
        Ok(match power {
            Some(p) => Expr::Pow(Box::new(applied), Box::new(p)),
            None => applied,
        })
    }

    /// `\log_b x` (base from the subscript, else `default_base`, else natural).
    fn logarithm(&mut self, default_base: Option<Expr>) -> Result<Expr> {
        let base = if self.eat(&Token::Underscore) { Some(self.argument()?) } else { default_base };
        let argument = self.function_argument()?;
        Ok(match base {
            Some(base) => Expr::Log(Box::new(base), Box::new(argument)),
            None => Expr::Func(Func::Ln, Box::new(argument)),
        })
    }

    fn argument_with_sign(&mut self) -> Result<Expr> {
        if self.eat(&Token::Minus) {
            return Ok(Expr::Neg(Box::new(self.argument()?)));
        }
        self.argument()
    }

    /// The argument of a function written without parentheses extends over a product of
    /// numbers and names (`\sin 2x`), stopping at operators and other functions.
    fn function_argument(&mut self) -> Result<Expr> {
        if matches!(self.peek(), Some(Token::LParen)) {
            return self.power();
        }
        let mut factors = vec![self.power()?];
        while matches!(self.peek(), Some(Token::Number(_) | Token::Letter(_) | Token::LBrace)) {
            self.budget.tick()?;
            factors.push(self.power()?);
        }
        Ok(collapse_product(factors))
    }

    fn delimited(&mut self, func: Func, close: &str) -> Result<Expr> {
        let inside = self.sum()?;
        self.expect(&Token::Command(close.into()))?;
        Ok(Expr::Func(func, Box::new(inside)))
    }

    fn matrix(&mut self, environment: &str) -> Result<Expr> {
        if !MATRIX_ENVIRONMENTS.contains(&environment) {
            return Err(ParseError::Syntax(format!("environment {environment}")));
        }
        if environment == "array" && self.eat(&Token::LBrace) {
            // The column specification `{cc|c}`: layout only.
            while !self.eat(&Token::RBrace) {
                self.budget.tick()?;
                self.next().ok_or_else(|| ParseError::Syntax("unclosed array spec".into()))?;
            }
        }
        let end = Token::End(environment.to_string());
        let mut rows: Vec<Vec<Expr>> = vec![Vec::new()];
        loop {
            self.budget.tick()?;
            if self.eat(&end) {
                break;
            }
            if self.eat(&Token::RowSep) {
                rows.push(Vec::new());
                continue;
            }
            let cell = self.item()?;
            rows.last_mut().expect("a row").push(cell);
            if !self.eat(&Token::Amp)
                && !matches!(self.peek(), Some(Token::RowSep) | Some(Token::End(_)))
            {
                return Err(ParseError::Syntax("expected & or \\\\ in a matrix".into()));
            }
        }
        rows.retain(|row| !row.is_empty());
        let width = rows.first().map_or(0, Vec::len);
        if width == 0 || rows.iter().any(|row| row.len() != width) {
            return Err(ParseError::Syntax("ragged or empty matrix".into()));
        }
        Ok(Expr::Matrix(rows))
    }
}

/// In a union, `(a, b)` is an open interval rather than a point.
fn open_interval(part: Expr) -> Expr {
    match part {
        Expr::Tuple(mut ends) if ends.len() == 2 => {
            let high = ends.pop().expect("two ends");
            let low = ends.pop().expect("two ends");
            Expr::Interval {
                low: Box::new(low),
                high: Box::new(high),
                low_closed: false,
                high_closed: false,
            }
        }
        other => other,
    }
}

fn letter(c: char) -> Expr {
    match c {
        'e' => Expr::Constant(Constant::E),
        'i' => Expr::Constant(Constant::I),
        _ => Expr::Symbol(c.to_string()),
    }
}

fn starts_implicit_factor(token: &Token) -> bool {
    match token {
        Token::Number(_) | Token::Letter(_) | Token::LParen | Token::LBrace => true,
        Token::Word(w) => !is_unit(w) && !is_connector(w) && !is_percent_word(w),
        Token::Command(name) => !matches!(name.as_str(), "cup" | "rfloor" | "rceil"),
        _ => false,
    }
}

fn is_integer_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Number { value, decimal: false } if value.is_integer())
}

fn is_literal_fraction(expr: &Expr) -> bool {
    matches!(expr, Expr::Div(a, b) if is_integer_literal(a) && is_integer_literal(b))
}

/// `2\frac{1}{2}` is the mixed number 2½ = 5/2, not 2·½.
fn mixed_number(whole: Expr, fraction: Expr) -> Expr {
    Expr::Add(vec![whole, fraction])
}

fn collapse_sum(mut items: Vec<Expr>) -> Expr {
    if items.len() == 1 {
        return items.pop().expect("one item");
    }
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::Add(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    Expr::Add(flat)
}

fn collapse_product(mut factors: Vec<Expr>) -> Expr {
    if factors.len() == 1 {
        return factors.pop().expect("one factor");
    }
    let mut flat = Vec::with_capacity(factors.len());
    for factor in factors {
        match factor {
            Expr::Mul(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    Expr::Mul(flat)
}

/// Lower-case words separated by single spaces, for comparing word answers.
pub fn normalize_words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn show(s: &str) -> String {
        match parse_answer(s, &Budget::new(Duration::from_secs(1))) {
            Ok(e) => e.to_string(),
            Err(e) => format!("error: {e:?}"),
        }
    }

    #[test]
    fn arithmetic_and_implicit_products() {
        assert_eq!(show("2x+1"), "((2 * x) + 1)");
        assert_eq!(show("x(x+1)"), "(x * (x + 1))");
        assert_eq!(show("-x^2"), "-x^2");
        assert_eq!(show("2^{3^2}"), "2^3^2");
        assert_eq!(show("\\frac{1}{2}"), "(1 / 2)");
        assert_eq!(show("\\frac12"), "(1 / 2)");
        assert_eq!(show("2\\frac{1}{2}"), "(2 + (1 / 2))");
        assert_eq!(show("2\\pi r"), "(2 * pi * r)");
        assert_eq!(show("\\sin^2 x + \\cos^{-1}(y)"), "(sin(x)^2 + acos(y))");
        assert_eq!(show("\\sqrt[3]{8}"), "root_3(8)");
        assert_eq!(show("\\log_2 8"), "log_2(8)");
        assert_eq!(show("5!"), "5!");
        assert_eq!(show("0.\\overline{3}"), "1/3");
    }

    #[test]
    fn structures() {
        assert_eq!(show("(1, 2)"), "Tuple(1, 2)");
        assert_eq!(show("[1, 2)"), "Interval[1, 2)");
        assert_eq!(
            show("(-\\infty, 0) \\cup (1, \\infty)"),
            "Interval(-inf, 0) U Interval(1, inf)"
        );
        assert_eq!(show("\\{1, 2\\}"), "Set{1, 2}");
        assert_eq!(show("x = 2 \\text{ or } x = 3"), "List[x = 2, x = 3]");
        assert_eq!(show("1 < x \\le 3"), "1 < x <= 3");
        assert_eq!(show("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"), "Matrix[1, 2; 3, 4]");
        assert_eq!(show("1 \\pm \\sqrt{2}"), "(1 +- sqrt(2))");
        assert_eq!(show("\\text{Devon}"), "Text(\"devon\")");
        assert_eq!(show("\\text{(B)}"), "B");
        assert_eq!(show("5 \\text{ cm}^2"), "5");
        assert_eq!(show("50\\%"), "50%");
    }

    #[test]
    fn deep_nesting_fails_cleanly() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(
            parse_answer(&deep, &Budget::new(Duration::from_secs(1))),
            Err(ParseError::TooDeep)
        );
        let signs = format!("{}1", "-".repeat(10_000));
        assert_eq!(
            parse_answer(&signs, &Budget::new(Duration::from_secs(1))),
            Err(ParseError::TooDeep)
        );
    }
}
