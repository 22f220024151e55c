//! Lexer for the tracked-query language: characters → tokens with 1-based positions.

/// Most words allowed between the two sides of `NEAR/n`.
pub const MAX_NEAR: u32 = 100;

/// A syntax error: 1-based character position and a message saying what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: usize,
    pub message: String,
}

pub(super) fn err<T>(position: usize, message: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        position,
        message: message.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Minus,
    Near(u32),
    Phrase(String),
    Bare(String),
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub tok: Tok,
    /// 1-based character position of the token's first character.
    pub pos: usize,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::And => "AND".into(),
            Tok::Or => "OR".into(),
            Tok::Not => "NOT".into(),
            Tok::Minus => "'-'".into(),
            Tok::Near(n) => format!("NEAR/{n}"),
            Tok::Phrase(p) => format!("\"{p}\""),
            Tok::Bare(b) => format!("'{b}'"),
        }
    }
}

pub(super) fn lex(src: &str) -> Result<Vec<Token>, SyntaxError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' | ')' => {
                let tok = if c == '(' { Tok::LParen } else { Tok::RParen };
                out.push(Token { tok, pos });
                i += 1;
            }
            '"' => {
                let Some(len) = chars[i + 1..].iter().position(|&q| q == '"') else {
                    return err(
                        pos,
                        "unclosed '\"': expected a closing '\"' for this phrase",
                    );
                };
                let text: String = chars[i + 1..i + 1 + len].iter().collect();
                out.push(Token {
                    tok: Tok::Phrase(text),
                    pos,
                });
                i += len + 2;
            }
            '-' => {
                out.push(Token {
                    tok: Tok::Minus,
                    pos,
                });
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"()\"".contains(chars[i]) {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let tok = match text.as_str() {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    "NEAR" => {
                        return err(pos, "expected NEAR/n with a number of words, e.g. NEAR/3")
                    }
                    t if t.starts_with("NEAR/") => match t[5..].parse::<u32>() {
                        Ok(n) if (1..=MAX_NEAR).contains(&n) => Tok::Near(n),
                        _ => {
                            return err(
                                pos + 5,
                                format!(
                                    "expected a number of words from 1 to {MAX_NEAR} after \
                                         NEAR/ (e.g. NEAR/3), found '{}'",
                                    &t[5..]
                                ),
                            )
                        }
                    },
                    // `get`: a word whose fifth byte falls inside a character is no operator.
                    t if t.len() > 5
                        && t.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("near/")) =>
                    {
                        return err(pos, "operators are upper case: write NEAR/n")
                    }
                    _ => Tok::Bare(text),
                };
                out.push(Token { tok, pos });
            }
        }
    }
    Ok(out)
}
