//! Parser for the tracked-query language: text → [`Expr`], or an error with the 1-based
//! character position and what was expected there.
//!
//! Grammar (operators are upper case; lower-case `and`/`or`/`not` are ordinary words):
//!
//! ```text
//! query   := or EOF
//! or      := and ("OR" and)*
//! and     := unary (["AND"] unary)*          adjacent operands are ANDed
//! unary   := ("NOT" | "-") unary | near
//! near    := primary ("NEAR/" n primary)*    operands: a word, a word* or a "phrase"
//! primary := "(" or ")" | word | word* | "phrase" | #tag | @handle | lang:xx | platform:xx
//! ```

use super::lex::{err, lex, SyntaxError, Tok, Token};
use super::text::{fold, is_word_char, words};

/// Deepest nesting of `(` and `NOT`/`-` a query may have (keeps evaluation off deep stacks).
pub const MAX_DEPTH: usize = 64;

/// Shortest prefix (in characters, after folding) that a `word*` wildcard may have.
pub const MIN_PREFIX_CHARS: usize = 2;

/// One folded word of a query: matched whole, or as a prefix (`refund*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Word {
    Exact(String),
    Prefix(String),
}

/// A parsed query. Words are folded (see [`fold`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// Consecutive words: one word, a `"phrase"`, or a bare term that folds into several words
    /// (`top-up` is the phrase `top up`).
    Words(Vec<Word>),
    /// Two word sequences with at most `max_between` other words between them, either order.
    Near {
        left: Vec<Word>,
        right: Vec<Word>,
        max_between: u32,
    },
    /// `#tag`: one of the mention's hashtags.
    Hashtag(Word),
    /// `@handle`: a mentioned handle or the author's handle.
    Handle(Word),
    /// `lang:xx`, lower case.
    Lang(String),
    /// `platform:xx`, lower case.
    Platform(String),
}

/// Parses one query. An empty or blank query is an error.
pub fn parse(src: &str) -> Result<Expr, SyntaxError> {
    let tokens = lex(src)?;
    let mut p = Parser {
        tokens,
        at: 0,
        end: src.chars().count() + 1,
        depth: 0,
    };
    let expr = p.or("at the start of the query")?;
    match p.peek() {
        None => Ok(expr),
        Some(t) if t.tok == Tok::RParen => err(t.pos, "unexpected ')' with no matching '('"),
        Some(t) => err(
            t.pos,
            format!("expected an operator, found {}", t.tok.describe()),
        ),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Position reported for "end of query".
    end: usize,
    /// Current nesting of `(` and `NOT`/`-`.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    /// Error for a missing operand: at the next token, or at the end of the query.
    fn missing<T>(&self, expected: &str, ctx: &str) -> Result<T, SyntaxError> {
        match self.peek() {
            None => err(self.end, format!("expected {expected} {ctx}")),
            Some(t) => err(
                t.pos,
                format!("expected {expected} {ctx}, found {}", t.tok.describe()),
            ),
        }
    }

    fn or(&mut self, ctx: &str) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.and(ctx)?];
        while matches!(self.peek(), Some(t) if t.tok == Tok::Or) {
            self.next();
            items.push(self.and("after OR")?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self, ctx: &str) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.unary(ctx)?];
        loop {
            match self.peek().map(|t| &t.tok) {
                Some(Tok::And) => {
                    self.next();
                    items.push(self.unary("after AND")?);
                }
                Some(Tok::LParen | Tok::Not | Tok::Minus | Tok::Phrase(_) | Tok::Bare(_)) => {
                    items.push(self.unary("")?);
                }
                _ => break,
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Expr::And(items)
        })
    }

    fn enter(&mut self, pos: usize) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(
                pos,
                format!("the query nests '(' and NOT deeper than {MAX_DEPTH} levels"),
            );
        }
        Ok(())
    }

    fn unary(&mut self, ctx: &str) -> Result<Expr, SyntaxError> {
        let ctx = match self.peek() {
            Some(Token { tok: Tok::Not, .. }) => "after NOT",
            Some(Token {
                tok: Tok::Minus, ..
            }) => "after '-'",
            _ => return self.near(ctx),
        };
        let pos = self.next().map_or(self.end, |t| t.pos);
        self.enter(pos)?;
        let inner = self.unary(ctx)?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    fn near(&mut self, ctx: &str) -> Result<Expr, SyntaxError> {
        let first = self.primary(ctx)?;
        let mut pairs = Vec::new();
        let mut left = first.clone();
        while let Some(Token {
            tok: Tok::Near(n),
            pos,
        }) = self.peek().cloned()
        {
            let Expr::Words(lw) = &left else {
                return err(
                    pos,
                    format!("NEAR/{n} needs a word or \"phrase\" on its left"),
                );
            };
            let lw = lw.clone();
            self.next();
            let ctx = format!("after NEAR/{n}");
            let right = match self.peek().map(|t| &t.tok) {
                Some(Tok::Phrase(_) | Tok::Bare(_)) => self.primary(&ctx)?,
                _ => return self.missing("a word or \"phrase\"", &ctx),
            };
            let Expr::Words(rw) = &right else {
                return err(
                    self.tokens[self.at - 1].pos,
                    format!(
                        "expected a word or \"phrase\" {ctx}, not a #hashtag, @handle or field"
                    ),
                );
            };
            pairs.push(Expr::Near {
                left: lw,
                right: rw.clone(),
                max_between: n,
            });
            left = right;
        }
        Ok(match pairs.len() {
            0 => first,
            1 => pairs.pop().unwrap(),
            _ => Expr::And(pairs),
        })
    }

    fn primary(&mut self, ctx: &str) -> Result<Expr, SyntaxError> {
        let Some(tok) = self.peek().cloned() else {
            return self.missing("a term or '('", ctx);
        };
        match tok.tok {
            Tok::LParen => {
                self.next();
                self.enter(tok.pos)?;
                let inner = self.or("after '('")?;
                self.depth -= 1;
                match self.next() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => Ok(inner),
                    Some(t) => err(
                        t.pos,
                        format!(
                            "expected ')' to close the '(' at position {}, found {}",
                            tok.pos,
                            t.tok.describe()
                        ),
                    ),
                    None => err(
                        self.end,
                        format!("expected ')' to close the '(' at position {}", tok.pos),
                    ),
                }
            }
            Tok::Phrase(text) => {
                self.next();
                let mut all = Vec::new();
                let mut offset = 1;
                for chunk in text.split(' ') {
                    if !chunk.trim().is_empty() {
                        all.extend(word_seq(chunk, tok.pos + offset)?);
                    }
                    offset += chunk.chars().count() + 1;
                }
                if all.is_empty() {
                    return err(tok.pos, "empty phrase: expected words between the quotes");
                }
                Ok(Expr::Words(all))
            }
            Tok::Bare(text) => {
                self.next();
                bare(&text, tok.pos)
            }
            _ => self.missing("a term or '('", ctx),
        }
    }
}

/// A bare token: `#tag`, `@handle`, `field:value`, or a word (which may fold into several).
fn bare(text: &str, pos: usize) -> Result<Expr, SyntaxError> {
    if let Some(tag) = text.strip_prefix('#') {
        return Ok(Expr::Hashtag(single(
            tag,
            pos + 1,
            "a hashtag after '#'",
            is_word_char,
        )?));
    }
    if let Some(handle) = text.strip_prefix('@') {
        return Ok(Expr::Handle(single(
            handle,
            pos + 1,
            "a handle after '@'",
            |c| is_word_char(c) || c == '.',
        )?));
    }
    if let Some((field, value)) = text.split_once(':') {
        if !field.is_empty() && field.chars().all(|c| c.is_ascii_alphabetic()) {
            let field = field.to_ascii_lowercase();
            let vpos = pos + field.len() + 1;
            if field != "lang" && field != "platform" {
                return err(
                    pos,
                    format!("unknown field '{field}:'; expected lang: or platform:"),
                );
            }
            if value.is_empty() || !value.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return err(
                    vpos,
                    format!(
                        "expected a value of letters and digits after {field}: (e.g. {field}:id)"
                    ),
                );
            }
            let value = value.to_lowercase();
            return Ok(if field == "lang" {
                Expr::Lang(value)
            } else {
                Expr::Platform(value)
            });
        }
    }
    Ok(Expr::Words(word_seq(text, pos)?))
}

/// A `#tag` or `@handle` body: one word of allowed characters, optionally ending in `*`.
fn single(
    body: &str,
    pos: usize,
    expected: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<Word, SyntaxError> {
    let (core, prefix) = match body.strip_suffix('*') {
        Some(core) => (core, true),
        None => (body, false),
    };
    if let Some((i, _)) = core.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        return err(
            pos + i,
            format!("expected {expected}: unexpected character"),
        );
    }
    if core.is_empty() {
        return err(pos, format!("expected {expected}"));
    }
    let folded = fold(core);
    if prefix {
        check_prefix(&folded, pos)?;
        Ok(Word::Prefix(folded))
    } else {
        Ok(Word::Exact(folded))
    }
}

fn check_prefix(folded: &str, pos: usize) -> Result<(), SyntaxError> {
    if folded.chars().count() < MIN_PREFIX_CHARS {
        return err(
            pos,
            format!("a wildcard needs at least {MIN_PREFIX_CHARS} letters before '*'"),
        );
    }
    Ok(())
}

/// The words of one whitespace-free chunk; a trailing `*` makes the last word a prefix.
fn word_seq(chunk: &str, pos: usize) -> Result<Vec<Word>, SyntaxError> {
    let (core, prefix) = match chunk.strip_suffix('*') {
        Some(core) => (core, true),
        None => (chunk, false),
    };
    if let Some(i) = core.chars().position(|c| c == '*') {
        return err(pos + i, "'*' is only allowed at the end of a word");
    }
    let folded = fold(core);
    let mut out: Vec<Word> = words(&folded).map(|w| Word::Exact(w.to_string())).collect();
    if out.is_empty() {
        return err(
            pos,
            format!("expected a term, found '{chunk}' which has no letters or digits"),
        );
    }
    if prefix {
        if !core.ends_with(is_word_char) {
            return err(
                pos + core.chars().count(),
                "'*' must directly follow a word",
            );
        }
        if let Some(Word::Exact(last)) = out.pop() {
            check_prefix(&last, pos + core.chars().count() - last.chars().count())?;
            out.push(Word::Prefix(last));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(w: &str) -> Word {
        Word::Exact(w.into())
    }

    #[test]
    fn parses_the_language() {
        use Expr::*;
        let cases: Vec<(&str, Expr)> = vec![
            ("refund", Words(vec![ex("refund")])),
            ("KÉCEWA", Words(vec![ex("kecewa")])),
            ("top-up", Words(vec![ex("top"), ex("up")])),
            ("refun*", Words(vec![Word::Prefix("refun".into())])),
            (
                "nusapay refund",
                And(vec![Words(vec![ex("nusapay")]), Words(vec![ex("refund")])]),
            ),
            (
                "a AND b OR c",
                Or(vec![
                    And(vec![Words(vec![ex("a")]), Words(vec![ex("b")])]),
                    Words(vec![ex("c")]),
                ]),
            ),
            (
                "a (b OR c)",
                And(vec![
                    Words(vec![ex("a")]),
                    Or(vec![Words(vec![ex("b")]), Words(vec![ex("c")])]),
                ]),
            ),
            (
                "a -b NOT c",
                And(vec![
                    Words(vec![ex("a")]),
                    Not(Box::new(Words(vec![ex("b")]))),
                    Not(Box::new(Words(vec![ex("c")]))),
                ]),
            ),
            (
                "\"top up  gagal\"",
                Words(vec![ex("top"), ex("up"), ex("gagal")]),
            ),
            (
                "refund NEAR/3 \"nusa pay\"",
                Near {
                    left: vec![ex("refund")],
                    right: vec![ex("nusa"), ex("pay")],
                    max_between: 3,
                },
            ),
            ("#NusaPayDown", Hashtag(ex("nusapaydown"))),
            ("#nusa*", Hashtag(Word::Prefix("nusa".into()))),
            ("@NusaPay_ID", Handle(ex("nusapay_id"))),
            ("lang:ID", Lang("id".into())),
            ("platform:bluesky", Platform("bluesky".into())),
            (
                "and or",
                And(vec![Words(vec![ex("and")]), Words(vec![ex("or")])]),
            ),
        ];
        for (src, want) in cases {
            assert_eq!(parse(src), Ok(want), "query {src:?}");
        }
    }

    #[test]
    fn words_with_multibyte_characters_are_no_operators() {
        // Byte 5 of these words falls inside a character; the lexer once sliced there and
        // panicked (found by tests/properties.rs).
        for q in ["a\u{a80e}\u{a1}", "kopi\u{2615}", "caf\u{e9}s"] {
            assert!(parse(q).is_ok(), "{q}");
        }
    }

    #[test]
    fn errors_name_the_position_and_what_was_expected() {
        let mut cases: Vec<(&str, usize, &str)> = vec![
            ("", 1, "expected a term or '(' at the start of the query"),
            ("   ", 4, "expected a term or '(' at the start of the query"),
            ("nusapay AND", 12, "expected a term or '(' after AND"),
            (
                "nusapay AND OR x",
                13,
                "expected a term or '(' after AND, found OR",
            ),
            (
                "OR nusapay",
                1,
                "expected a term or '(' at the start of the query, found OR",
            ),
            ("a OR", 5, "expected a term or '(' after OR"),
            ("NOT", 4, "expected a term or '(' after NOT"),
            ("a -", 4, "expected a term or '(' after '-'"),
            ("(a OR b", 8, "expected ')' to close the '(' at position 1"),
            ("a OR b)", 7, "unexpected ')' with no matching '('"),
            ("()", 2, "expected a term or '(' after '(', found ')'"),
            (
                "a NEAR/x b",
                8,
                "expected a number of words from 1 to 100 after NEAR/",
            ),
            ("a NEAR/0 b", 8, "expected a number of words from 1 to 100"),
            ("a NEAR/3", 9, "expected a word or \"phrase\" after NEAR/3"),
            (
                "a NEAR/3 (b)",
                10,
                "expected a word or \"phrase\" after NEAR/3, found '('",
            ),
            ("a NEAR b", 3, "expected NEAR/n"),
            (
                "(a b) NEAR/2 c",
                7,
                "NEAR/2 needs a word or \"phrase\" on its left",
            ),
            ("say \"hello", 5, "unclosed '\"'"),
            ("\"  \"", 1, "empty phrase"),
            (
                "a !!",
                3,
                "expected a term, found '!!' which has no letters or digits",
            ),
            ("re*und", 3, "'*' is only allowed at the end of a word"),
            ("r*", 1, "a wildcard needs at least 2 letters"),
            ("#", 2, "expected a hashtag after '#'"),
            ("@", 2, "expected a handle after '@'"),
            ("author:budi", 1, "unknown field 'author:'"),
            (
                "lang:",
                6,
                "expected a value of letters and digits after lang:",
            ),
            ("a near/3 b", 3, "operators are upper case: write NEAR/n"),
        ];
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        let nots = "NOT ".repeat(100) + "a";
        cases.push((
            &deep,
            65,
            "the query nests '(' and NOT deeper than 64 levels",
        ));
        cases.push((
            &nots,
            257,
            "the query nests '(' and NOT deeper than 64 levels",
        ));
        for (src, pos, msg) in cases {
            let e = parse(src).expect_err(src);
            assert_eq!(e.position, pos, "query {src:?}: {}", e.message);
            assert!(
                e.message.starts_with(msg),
                "query {src:?}: got {:?}, want {msg:?}",
                e.message
            );
        }
    }
}
