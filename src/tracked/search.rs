//! A tracked query rewritten for a platform's own search: X filtered-stream rules and web
//! search feeds (Google News) take words, `"phrases"`, `OR`, `-` and parentheses, so a
//! connector can ask the platform for (about) what the query matches, and the enrich stage's
//! matcher still decides.
//!
//! Parts a platform cannot express are widened, never narrowed where it can be helped: a part
//! the dialect lacks (`lang:` on the web, `platform:` anywhere) is dropped from an AND (more
//! posts), an OR holding one makes the whole OR unrestricted, and a `NOT` of one is dropped.
//! `NEAR/n` becomes AND. A `word*` prefix has no equivalent and is asked for as the word itself
//! (the one place the platform is asked for less).

use super::lex::SyntaxError;
use super::parse::{parse, Expr, Word};

/// Whose search syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// X API v2 rules: `#tag`, `@handle` and `lang:xx` are operators there.
    X,
    /// A web news search (Google News RSS `q=`): hashtags and handles as plain words, no
    /// language operator (the feed's `hl`/`gl` pick the edition).
    Web,
}

/// `query` in `dialect`'s syntax; `None` when nothing of it can be expressed (e.g. only
/// `lang:id`): the platform cannot be asked for it.
pub fn search_string(query: &str, dialect: Dialect) -> Result<Option<String>, SyntaxError> {
    let expr = parse(query)?;
    Ok(render(&expr, dialect, true).filter(|s| !s.starts_with('-')))
}

fn word(w: &Word) -> String {
    match w {
        Word::Exact(s) | Word::Prefix(s) => s.clone(),
    }
}

fn words(ws: &[Word]) -> String {
    if ws.len() == 1 {
        word(&ws[0])
    } else {
        format!("\"{}\"", ws.iter().map(word).collect::<Vec<_>>().join(" "))
    }
}

/// The rendering of `e`, `None` when unrestricted. `top` leaves off the outer parentheses.
fn render(e: &Expr, d: Dialect, top: bool) -> Option<String> {
    let group = |s: String| if top { s } else { format!("({s})") };
    match e {
        Expr::Words(ws) => Some(words(ws)),
        Expr::Near { left, right, .. } => Some(group(format!("{} {}", words(left), words(right)))),
        Expr::Hashtag(w) => Some(match d {
            Dialect::X => format!("#{}", word(w)),
            Dialect::Web => word(w),
        }),
        Expr::Handle(w) => Some(match d {
            Dialect::X => format!("@{}", word(w)),
            Dialect::Web => word(w),
        }),
        Expr::Lang(l) => match d {
            Dialect::X => Some(format!("lang:{l}")),
            Dialect::Web => None,
        },
        Expr::Platform(_) => None,
        Expr::Not(inner) => render(inner, d, false).map(|s| format!("-{s}")),
        Expr::And(items) => {
            let parts: Vec<String> = items.iter().filter_map(|i| render(i, d, false)).collect();
            match parts.len() {
                0 => None,
                1 => parts.into_iter().next(),
                _ => Some(group(parts.join(" "))),
            }
        }
        Expr::Or(items) => {
            let parts: Option<Vec<String>> = items.iter().map(|i| render(i, d, false)).collect();
            parts.map(|p| group(p.join(" OR ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(q: &str) -> Option<String> {
        search_string(q, Dialect::X).unwrap()
    }

    fn web(q: &str) -> Option<String> {
        search_string(q, Dialect::Web).unwrap()
    }

    #[test]
    fn queries_become_platform_search_strings() {
        assert_eq!(x("nusapay").as_deref(), Some("nusapay"));
        assert_eq!(
            x("NusaPay (refund OR \"top up\") -promo lang:id").as_deref(),
            Some("nusapay (refund OR \"top up\") -promo lang:id")
        );
        assert_eq!(
            web("NusaPay (refund OR \"top up\") -promo lang:id").as_deref(),
            Some("nusapay (refund OR \"top up\") -promo")
        );
        assert_eq!(
            x("#nusapaydown OR @nusapay").as_deref(),
            Some("#nusapaydown OR @nusapay")
        );
        assert_eq!(web("#nusapaydown").as_deref(), Some("nusapaydown"));
        assert_eq!(
            x("refund NEAR/3 nusapay").as_deref(),
            Some("refund nusapay")
        );
        assert_eq!(x("top-up").as_deref(), Some("\"top up\""));
        // What cannot be asked for widens the query, or leaves nothing to ask.
        assert_eq!(x("nusapay OR platform:hn"), None);
        assert_eq!(x("nusapay platform:hn").as_deref(), Some("nusapay"));
        assert_eq!(web("lang:id"), None);
        assert_eq!(x("-nusapay"), None);
        assert!(search_string("(", Dialect::X).is_err());
    }
}
