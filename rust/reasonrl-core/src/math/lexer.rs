//! LaTeX and plain-text math → tokens.
//!
//! The lexer also drops what never changes a value: spacing commands (`\,` `\!` `\quad`),
//! sizing (`\left` `\right` `\big`), style wrappers (`\displaystyle`, `\mathbf`), dollar signs
//! and degree marks (`^\circ`, `°`). Thousands separators are folded into the number they belong
//! to: `7,425,000` and `1 000` outside brackets, `1{,}000` and `10\,000` anywhere.

use super::ast::RelOp;
use super::budget::{Budget, Exhausted};

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// Digits with an optional decimal part and exponent, separators removed: `12`, `3.5`, `1e-3`.
    Number(String),
    /// A one-letter name (`x`, `α`).
    Letter(char),
    /// A run of two or more ASCII letters in plain text (`sin`, `cm`, `or`).
    Word(String),
    /// `\name`, without the backslash.
    Command(String),
    /// The content of `\text{...}`, `\mathrm{...}` and similar, kept raw.
    Text(String),
    Begin(String),
    End(String),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// `\{` and `\}`.
    LSet,
    RSet,
    Pipe,
    Plus,
    Minus,
    PlusMinus,
    MinusPlus,
    Times,
    Divide,
    Caret,
    Underscore,
    Bang,
    Percent,
    Prime,
    Comma,
    Semicolon,
    Amp,
    /// `\\` in a matrix.
    RowSep,
    Rel(RelOp),
    /// `\approx`: an equality, except at the end of a chain, where it introduces a rounding.
    Approx,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LexError {
    Exhausted,
    /// A character or construct that has no meaning in a math answer.
    Unexpected(String),
}

impl From<Exhausted> for LexError {
    fn from(_: Exhausted) -> Self {
        LexError::Exhausted
    }
}

/// Commands that only change how a formula looks.
const IGNORED_COMMANDS: &[&str] = &[
    "left",
    "right",
    "big",
    "Big",
    "bigg",
    "Bigg",
    "bigl",
    "bigr",
    "Bigl",
    "Bigr",
    "biggl",
    "biggr",
    "Biggl",
    "Biggr",
    "middle",
    "displaystyle",
    "textstyle",
    "scriptstyle",
    "limits",
    "nolimits",
    "quad",
    "qquad",
    "circ",
    "degree",
    "mathbf",
    "boldsymbol",
    "bm",
    "mathit",
    "mathsf",
    "mathcal",
    "bf",
    "rm",
    "it",
    "hline",
    "hfill",
    "noindent",
    "dots",
    "ldots",
    "cdots",
    "dollar",
    "textdollar",
    "enspace",
    "thinspace",
    "negthinspace",
    "nobreak",
    "smallskip",
];

/// Commands whose braced argument is text, not math.
const TEXT_COMMANDS: &[&str] = &[
    "text",
    "textbf",
    "textit",
    "textrm",
    "texttt",
    "textnormal",
    "textsf",
    "mathrm",
    "mbox",
    "hbox",
];

/// Commands that take single-character arguments without braces (`\frac12`, `\sqrt2`).
fn single_char_arguments(command: &str) -> u8 {
    match command {
        "frac" | "dfrac" | "tfrac" | "cfrac" | "binom" | "dbinom" | "tbinom" => 2,
        "sqrt" => 1,
        _ => 0,
    }
}

pub fn tokenize(input: &str, budget: &Budget) -> Result<Vec<Token>, LexError> {
    Lexer {
        chars: input.chars().collect(),
        pos: 0,
        tokens: Vec::new(),
        depth: 0,
        pending: 0,
        pending_stack: Vec::new(),
    }
    .run(budget)
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    tokens: Vec<Token>,
    /// Bracket depth, for the "comma or space groups digits only outside brackets" rule.
    depth: usize,
    /// Single-character arguments still owed to the last `\frac`-like command.
    pending: u8,
    /// `pending` of the enclosing levels, restored at each `}`.
    pending_stack: Vec<u8>,
}

impl Lexer {
    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    /// Whether the input `offset` characters past the cursor starts with `s`.
    fn starts_with_at(&self, offset: usize, s: &str) -> bool {
        s.chars().enumerate().all(|(i, c)| self.peek(offset + i) == Some(c))
    }

    fn rest_starts_with(&self, s: &str) -> bool {
        self.starts_with_at(0, s)
    }

    fn emit(&mut self, token: Token) {
        self.pending = self.pending.saturating_sub(1);
        self.tokens.push(token);
    }

    fn run(mut self, budget: &Budget) -> Result<Vec<Token>, LexError> {
        while let Some(c) = self.peek(0) {
            budget.tick()?;
            if c.is_whitespace() {
                self.pos += 1;
                continue;
            }
            if self.pending > 0 && (c.is_ascii_digit() || c.is_ascii_alphabetic()) {
                self.pos += 1;
                let token = if c.is_ascii_digit() {
                    Token::Number(c.to_string())
                } else {
                    Token::Letter(c)
                };
                self.emit(token);
                continue;
            }
            if c.is_ascii_digit() || (c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit()))
            {
                self.number(budget)?;
                continue;
            }
            if c.is_ascii_alphabetic() {
                let start = self.pos;
                while self.peek(0).is_some_and(|c| c.is_ascii_alphabetic()) {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                let token = if word.len() == 1 { Token::Letter(c) } else { Token::Word(word) };
                self.emit(token);
                continue;
            }
            self.pos += 1;
            let token = match c {
                '\\' => {
                    self.command(budget)?;
                    continue;
                }
                '{' => {
                    self.pending_stack.push(self.pending.saturating_sub(1));
                    self.pending = 0;
                    self.depth += 1;
                    self.tokens.push(Token::LBrace);
                    continue;
                }
                '}' => {
                    self.pending = self.pending_stack.pop().unwrap_or(0);
                    self.depth = self.depth.saturating_sub(1);
                    self.tokens.push(Token::RBrace);
                    continue;
                }
                '(' => {
                    self.depth += 1;
                    Token::LParen
                }
                ')' => {
                    self.depth = self.depth.saturating_sub(1);
                    Token::RParen
                }
                '[' => {
                    self.depth += 1;
                    Token::LBracket
                }
                ']' => {
                    self.depth = self.depth.saturating_sub(1);
                    Token::RBracket
                }
                '^' => {
                    if self.skip_degree_mark() {
                        continue;
                    }
                    Token::Caret
                }
                '$' | '°' | '~' | '#' | '.' | '`' => continue,
                ':' if self.peek(0) == Some('=') => {
                    self.pos += 1;
                    Token::Rel(RelOp::Eq)
                }
                // A ratio `3:4` is the quotient (and a time `8:30` stays distinct from `8:03`).
                ':' => Token::Divide,
                // Python's power operator in plain-text answers.
                '*' if self.peek(0) == Some('*') => {
                    self.pos += 1;
                    Token::Caret
                }
                '<' | '≤' if c == '≤' || self.peek(0) == Some('=') => {
                    self.pos += usize::from(c == '<');
                    Token::Rel(RelOp::Le)
                }
                '>' | '≥' if c == '≥' || self.peek(0) == Some('=') => {
                    self.pos += usize::from(c == '>');
                    Token::Rel(RelOp::Ge)
                }
                '<' => Token::Rel(RelOp::Lt),
                '>' => Token::Rel(RelOp::Gt),
                '!' if self.peek(0) == Some('=') => {
                    self.pos += 1;
                    Token::Rel(RelOp::Ne)
                }
                '=' => {
                    while self.peek(0) == Some('=') {
                        self.pos += 1;
                    }
                    Token::Rel(RelOp::Eq)
                }
                '≠' => Token::Rel(RelOp::Ne),
                '≈' => Token::Approx,
                '∈' => Token::Rel(RelOp::In),
                '+' => Token::Plus,
                '-' | '−' | '–' => Token::Minus,
                '±' => Token::PlusMinus,
                '∓' => Token::MinusPlus,
                '*' | '×' | '·' | '⋅' => Token::Times,
                '/' | '÷' => Token::Divide,
                '_' => Token::Underscore,
                '!' => Token::Bang,
                '%' => Token::Percent,
                '\'' | '′' => Token::Prime,
                ',' => Token::Comma,
                ';' => Token::Semicolon,
                '&' => Token::Amp,
                '|' => Token::Pipe,
                'π' => Token::Command("pi".into()),
                '∞' => Token::Command("infty".into()),
                '√' => Token::Command("sqrt".into()),
                '∪' => Token::Command("cup".into()),
                '∅' => Token::Command("emptyset".into()),
                c if c.is_alphabetic() && !c.is_ascii() => Token::Letter(c),
                other => return Err(LexError::Unexpected(other.to_string())),
            };
            self.emit(token);
        }
        Ok(self.tokens)
    }

    /// After `^`: `\circ`, `{\circ}` and `\degree` mean degrees and are dropped with the caret.
    fn skip_degree_mark(&mut self) -> bool {
        for mark in ["\\circ", "{\\circ}", "\\degree", "{\\degree}", "{}\\circ", "{o}"] {
            if self.rest_starts_with(mark) {
                self.pos += mark.chars().count();
                return true;
            }
        }
        false
    }

    fn number(&mut self, budget: &Budget) -> Result<(), LexError> {
        let mut digits = String::new();
        let start = self.pos;
        self.take_digits(&mut digits);
        let integer_len = self.pos - start;
        if (1..=3).contains(&integer_len) {
            while let Some(skip) = self.thousands_separator() {
                budget.tick()?;
                self.pos += skip;
                self.take_digits(&mut digits);
            }
        }
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|d| d.is_ascii_digit()) {
            digits.push('.');
            self.pos += 1;
            self.take_digits(&mut digits);
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek(1), Some('+' | '-')));
            if self.peek(1 + sign).is_some_and(|d| d.is_ascii_digit()) {
                digits.push('e');
                if sign == 1 {
                    digits.push(self.chars[self.pos + 1]);
                }
                self.pos += 1 + sign;
                self.take_digits(&mut digits);
            }
        }
        self.emit(Token::Number(digits));
        Ok(())
    }

    fn take_digits(&mut self, into: &mut String) {
        while let Some(d) = self.peek(0).filter(|d| d.is_ascii_digit()) {
            into.push(d);
            self.pos += 1;
        }
    }

    /// The length of a thousands separator at the cursor that is followed by exactly three
    /// digits: an optional comma (`,` or `{,}`) then LaTeX spacing (`\\,` `\\!` `\\ `) or plain
    /// spaces. A bare comma or plain space only groups digits outside brackets (inside, it
    /// separates coordinates), and a comma followed by a plain space never does (`32, 349`).
    fn thousands_separator(&self) -> Option<usize> {
        let mut len = 0;
        let braced_comma = self.rest_starts_with("{,}");
        let comma = braced_comma || self.peek(0) == Some(',');
        if braced_comma {
            len = 3;
        } else if comma {
            len = 1;
        }
        let (mut latex_spacing, mut plain_space) = (false, false);
        loop {
            if ["\\,", "\\!", "\\ "].iter().any(|spacing| self.starts_with_at(len, spacing)) {
                latex_spacing = true;
                len += 2;
            } else if self.peek(len) == Some(' ') {
                plain_space = true;
                len += 1;
            } else {
                break;
            }
        }
        let allowed = braced_comma
            || match (comma, latex_spacing, plain_space) {
                (true, true, _) => true,
                (true, false, false) => self.depth == 0,
                (true, false, true) => false,
                (false, true, _) => true,
                (false, false, true) => self.depth == 0 && len == 1,
                (false, false, false) => false,
            };
        let group = |i: usize| self.peek(len + i).is_some_and(|d| d.is_ascii_digit());
        (allowed && group(0) && group(1) && group(2) && !group(3)).then_some(len)
    }

    fn command(&mut self, budget: &Budget) -> Result<(), LexError> {
        let Some(first) = self.peek(0) else { return Ok(()) };
        if !first.is_ascii_alphabetic() {
            self.pos += 1;
            let token = match first {
                '{' => {
                    self.depth += 1;
                    Token::LSet
                }
                '}' => {
                    self.depth = self.depth.saturating_sub(1);
                    Token::RSet
                }
                '|' => Token::Pipe,
                '%' => Token::Percent,
                '\\' => Token::RowSep,
                '&' => Token::Amp,
                // `\,` `\!` `\;` `\:` `\ ` `\$` `\#` and friends: spacing or escaped text.
                _ => return Ok(()),
            };
            self.emit(token);
            return Ok(());
        }
        let start = self.pos;
        while self.peek(0).is_some_and(|c| c.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if IGNORED_COMMANDS.contains(&name.as_str()) {
            return Ok(());
        }
        if TEXT_COMMANDS.contains(&name.as_str()) {
            let content = self.braced_raw(budget)?;
            self.emit(Token::Text(content));
            return Ok(());
        }
        let token = match name.as_str() {
            "begin" => Token::Begin(self.braced_raw(budget)?),
            "end" => Token::End(self.braced_raw(budget)?),
            "operatorname" => Token::Command(self.braced_raw(budget)?),
            "cdot" | "times" | "ast" => Token::Times,
            "div" => Token::Divide,
            "pm" => Token::PlusMinus,
            "mp" => Token::MinusPlus,
            "le" | "leq" | "leqslant" => Token::Rel(RelOp::Le),
            "ge" | "geq" | "geqslant" => Token::Rel(RelOp::Ge),
            "lt" => Token::Rel(RelOp::Lt),
            "gt" => Token::Rel(RelOp::Gt),
            "ne" | "neq" => Token::Rel(RelOp::Ne),
            "approx" | "simeq" => Token::Approx,
            "equiv" => Token::Rel(RelOp::Eq),
            "in" => Token::Rel(RelOp::In),
            "lvert" | "rvert" | "vert" | "lVert" | "rVert" | "Vert" | "mid" => Token::Pipe,
            "langle" => Token::LParen,
            "rangle" => Token::RParen,
            "lbrace" => Token::LSet,
            "rbrace" => Token::RSet,
            "lbrack" => Token::LBracket,
            "rbrack" => Token::RBracket,
            "prime" => Token::Prime,
            _ => {
                let owed = single_char_arguments(&name);
                self.emit(Token::Command(name));
                self.pending = owed;
                return Ok(());
            }
        };
        self.emit(token);
        Ok(())
    }

    /// The raw text of the `{...}` group at the cursor (nested braces kept), or a single
    /// character when there is no brace.
    fn braced_raw(&mut self, budget: &Budget) -> Result<String, LexError> {
        while self.peek(0).is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        match self.peek(0) {
            Some('{') => {}
            Some(c) => {
                self.pos += 1;
                return Ok(c.to_string());
            }
            None => return Err(LexError::Unexpected("argument missing at end".into())),
        }
        let start = self.pos + 1;
        let mut depth = 0usize;
        while let Some(c) = self.peek(0) {
            budget.tick()?;
            self.pos += 1;
            match c {
                '\\' => self.pos += 1,
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(self.chars[start..self.pos - 1].iter().collect());
                    }
                }
                _ => {}
            }
        }
        Err(LexError::Unexpected("unclosed brace".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lex(s: &str) -> Vec<Token> {
        tokenize(s, &Budget::new(Duration::from_secs(1))).unwrap()
    }

    fn num(s: &str) -> Token {
        Token::Number(s.into())
    }

    #[test]
    fn thousands_separators_fold_outside_brackets_only() {
        assert_eq!(lex("7,425,000"), vec![num("7425000")]);
        assert_eq!(lex("1 000"), vec![num("1000")]);
        assert_eq!(lex("10\\,000"), vec![num("10000")]);
        assert_eq!(lex("16,\\!386.20"), vec![num("16386.20")]);
        assert_eq!(lex("11,\\! 111,\\! 100"), vec![num("11111100")]);
        assert_eq!(lex("32, 349"), vec![num("32"), Token::Comma, num("349")]);
        assert_eq!(lex("(1{,}000)"), vec![Token::LParen, num("1000"), Token::RParen]);
        assert_eq!(
            lex("(1,000)"),
            vec![Token::LParen, num("1"), Token::Comma, num("000"), Token::RParen]
        );
        assert_eq!(lex("1,2"), vec![num("1"), Token::Comma, num("2")]);
        assert_eq!(lex("1,0000"), vec![num("1"), Token::Comma, num("0000")]);
    }

    #[test]
    fn frac_takes_single_digit_arguments() {
        assert_eq!(lex("\\frac12"), vec![Token::Command("frac".into()), num("1"), num("2")]);
        assert_eq!(
            lex("\\frac{12}3"),
            vec![Token::Command("frac".into()), Token::LBrace, num("12"), Token::RBrace, num("3")]
        );
    }

    #[test]
    fn formatting_is_dropped() {
        assert_eq!(
            lex("\\left( 30^\\circ \\right)\\!"),
            vec![Token::LParen, num("30"), Token::RParen]
        );
        assert_eq!(lex("5\\text{ cm}"), vec![num("5"), Token::Text(" cm".into())]);
        assert_eq!(lex("1.5e-3"), vec![num("1.5e-3")]);
        assert_eq!(lex("3.5."), vec![num("3.5")]);
        assert_eq!(lex("x**2"), vec![Token::Letter('x'), Token::Caret, num("2")]);
    }

    #[test]
    fn unknown_characters_are_errors() {
        assert!(tokenize("x ? y", &Budget::new(Duration::from_secs(1))).is_err());
        assert!(tokenize("\\text{abc", &Budget::new(Duration::from_secs(1))).is_err());
    }
}
