//! Compiled tracked queries and their evaluation against one mention.
//!
//! Every word of every query is interned once into a key (exact words in one hash map, `word*`
//! prefixes in another, looked up by each prefix length in use). Matching a mention folds and
//! splits its text once, records the (key, word position) of each hit, and then evaluates each
//! query's boolean tree over those hits: cost is one hash lookup per text word (plus one per
//! distinct prefix length) and a small tree walk per query, independent of how many words the
//! queries hold.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use thiserror::Error;

use super::parse::{parse, Expr, Word};
use super::text::{fold, is_word_char, words};
use crate::text::normalize::BRAND_MARK;

/// One tracked query from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackedQueryConfig {
    /// Name shown to the user and used in term keys (`q:<name>`); unique, not blank.
    pub name: String,
    /// The boolean query, e.g. `nusapay (refund OR "top up") -promo lang:id`.
    pub query: String,
}

/// The parts of a mention that queries look at.
#[derive(Debug, Clone, Copy)]
pub struct Doc<'a> {
    /// The mention's original text; folded (case, diacritics) here.
    pub text: &'a str,
    /// Hashtags, lower case, without `#`.
    pub hashtags: &'a [String],
    /// Mentioned handles, lower case, without `@`.
    pub handles: &'a [String],
    /// The author's handle (a leading `@` and upper case are tolerated).
    pub author_handle: &'a str,
    /// Detected language: `en`, `id` or `other`.
    pub lang: &'a str,
    /// Platform name, e.g. `mastodon`.
    pub platform: &'a str,
}

/// Why a set of queries did not compile.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    #[error("query \"{name}\": at position {position}: {message}")]
    Syntax {
        name: String,
        /// 1-based character position in the query text; one past the last character when
        /// the query ended too early.
        position: usize,
        message: String,
    },
    #[error("tracked query #{index} has an empty name; give every query a unique name")]
    EmptyName {
        /// 1-based index in the configuration.
        index: usize,
    },
    #[error("tracked query name \"{name}\" is used twice; query names must be unique")]
    DuplicateName { name: String },
}

#[derive(Debug, Clone)]
enum Pat {
    Exact(String),
    Prefix(String),
}

impl Pat {
    fn new(w: Word) -> Pat {
        match w {
            Word::Exact(s) => Pat::Exact(s),
            Word::Prefix(s) => Pat::Prefix(s),
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Pat::Exact(s) => value == s,
            Pat::Prefix(p) => value.starts_with(p.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Seq(Vec<u32>),
    Near {
        left: Vec<u32>,
        right: Vec<u32>,
        max_between: u32,
    },
    Hashtag(Pat),
    Handle(Pat),
    Lang(String),
    Platform(String),
}

/// The words `e` looks for, outside `NOT`: sequences, `NEAR` operands, hashtags and handles.
/// The multi-word phrases `e` looks for (not under `NOT`), each as its folded words, exact ones
/// only: `"arunika air"`, `top-up`.
fn positive_phrases(e: &Expr, out: &mut Vec<Vec<String>>) {
    let exact = |ws: &[Word]| -> Option<Vec<String>> {
        ws.iter()
            .map(|w| match w {
                Word::Exact(s) => Some(s.clone()),
                Word::Prefix(_) => None,
            })
            .collect()
    };
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| positive_phrases(e, out)),
        Expr::Words(ws) if ws.len() > 1 => out.extend(exact(ws)),
        Expr::Near { left, right, .. } => {
            for side in [left, right] {
                if side.len() > 1 {
                    out.extend(exact(side));
                }
            }
        }
        _ => {}
    }
}

fn positive_words(e: &Expr, out: &mut Vec<Pat>) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| positive_words(e, out)),
        Expr::Not(_) | Expr::Lang(_) | Expr::Platform(_) => {}
        Expr::Words(ws) => out.extend(ws.iter().cloned().map(Pat::new)),
        Expr::Near { left, right, .. } => {
            out.extend(left.iter().chain(right).cloned().map(Pat::new))
        }
        Expr::Hashtag(w) | Expr::Handle(w) => out.push(Pat::new(w.clone())),
    }
}

/// A compiled set of tracked queries. Cheap to share (`&self` only) across threads.
#[derive(Debug, Clone, Default)]
pub struct QuerySet {
    names: Vec<String>,
    nodes: Vec<Node>,
    exact: HashMap<String, u32>,
    prefixes: HashMap<String, u32>,
    /// Distinct prefix lengths in characters, so a text word is looked up once per length.
    prefix_lens: Vec<usize>,
    uses_tags: bool,
    /// Some query has `lang:xx` (see [`QuerySet::asks_language`]).
    asks_lang: bool,
    /// Per query, the words it looks for (not those under `NOT`): what [`QuerySet::mask`]
    /// replaces.
    mask_words: Vec<Vec<Pat>>,
    /// Every query's multi-word phrases (see [`QuerySet::phrases`]).
    phrases: Vec<Vec<String>>,
}

impl QuerySet {
    /// Parses and compiles `queries`. Fails on the first invalid query, a blank name or a
    /// duplicate name.
    /// Whether any query asks for a language (`lang:xx`): only then does matching depend on
    /// the detected language.
    pub fn asks_language(&self) -> bool {
        self.asks_lang
    }

    pub fn compile(queries: &[TrackedQueryConfig]) -> Result<QuerySet, QueryError> {
        let mut set = QuerySet::default();
        let mut seen = HashSet::new();
        let mut next_key = 0u32;
        for (i, q) in queries.iter().enumerate() {
            let name = q.name.trim();
            if name.is_empty() {
                return Err(QueryError::EmptyName { index: i + 1 });
            }
            if !seen.insert(name.to_string()) {
                return Err(QueryError::DuplicateName {
                    name: name.to_string(),
                });
            }
            let expr = parse(&q.query).map_err(|e| QueryError::Syntax {
                name: name.to_string(),
                position: e.position,
                message: e.message,
            })?;
            let mut words = Vec::new();
            positive_words(&expr, &mut words);
            set.mask_words.push(words);
            positive_phrases(&expr, &mut set.phrases);
            let node = set.lower(expr, &mut next_key);
            set.names.push(name.to_string());
            set.nodes.push(node);
        }
        set.prefix_lens.sort_unstable();
        set.prefix_lens.dedup();
        Ok(set)
    }

    fn key(&mut self, w: Word, next_key: &mut u32) -> u32 {
        let (map, s) = match w {
            Word::Exact(s) => (&mut self.exact, s),
            Word::Prefix(s) => {
                self.prefix_lens.push(s.chars().count());
                (&mut self.prefixes, s)
            }
        };
        *map.entry(s).or_insert_with(|| {
            *next_key += 1;
            *next_key - 1
        })
    }

    fn keys(&mut self, ws: Vec<Word>, next_key: &mut u32) -> Vec<u32> {
        ws.into_iter().map(|w| self.key(w, next_key)).collect()
    }

    fn lower(&mut self, e: Expr, next_key: &mut u32) -> Node {
        match e {
            Expr::And(v) => Node::And(v.into_iter().map(|e| self.lower(e, next_key)).collect()),
            Expr::Or(v) => Node::Or(v.into_iter().map(|e| self.lower(e, next_key)).collect()),
            Expr::Not(e) => Node::Not(Box::new(self.lower(*e, next_key))),
            Expr::Words(ws) => Node::Seq(self.keys(ws, next_key)),
            Expr::Near {
                left,
                right,
                max_between,
            } => Node::Near {
                left: self.keys(left, next_key),
                right: self.keys(right, next_key),
                max_between,
            },
            Expr::Hashtag(w) => {
                self.uses_tags = true;
                Node::Hashtag(Pat::new(w))
            }
            Expr::Handle(w) => {
                self.uses_tags = true;
                Node::Handle(Pat::new(w))
            }
            Expr::Lang(l) => {
                self.asks_lang = true;
                Node::Lang(l)
            }
            Expr::Platform(p) => Node::Platform(p),
        }
    }

    /// The multi-word phrases the queries look for (`"arunika air"`), each as its folded words,
    /// longest first: the brand names that keywords keep whole.
    pub fn phrases(&self) -> Vec<Vec<String>> {
        let mut p = self.phrases.clone();
        p.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        p.dedup();
        p
    }

    /// True when no queries are configured (the caller can skip matching).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Number of compiled queries.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Query names, in configuration order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Indices (into [`QuerySet::names`]) of the queries that match `doc`, in configuration
    /// order.
    pub fn match_indices(&self, doc: &Doc) -> Vec<usize> {
        if self.is_empty() {
            return Vec::new();
        }
        let hits = self.hits(doc.text);
        let fold_all = |v: &'_ [String]| -> Vec<String> { v.iter().map(|s| fold(s)).collect() };
        // Hashtags and handles arrive lower case; fold only when diacritics may be present.
        let (tags, handles): (Cow<[String]>, Cow<[String]>) = if self.uses_tags
            && (doc
                .hashtags
                .iter()
                .chain(doc.handles)
                .any(|s| !s.is_ascii()))
        {
            (
                Cow::Owned(fold_all(doc.hashtags)),
                Cow::Owned(fold_all(doc.handles)),
            )
        } else {
            (Cow::Borrowed(doc.hashtags), Cow::Borrowed(doc.handles))
        };
        let author = fold(doc.author_handle.trim_start_matches('@'));
        let ctx = Ctx {
            hits: &hits,
            tags: &tags,
            handles: &handles,
            author: &author,
            lang: doc.lang,
            platform: doc.platform,
        };
        (0..self.nodes.len())
            .filter(|&i| ctx.eval(&self.nodes[i]))
            .collect()
    }

    /// `text` with the words of the queries `matched` (indices from
    /// [`QuerySet::match_indices`]) replaced by [`BRAND_MARK`], or `None` when nothing is
    /// replaced. A word is a run of word characters, compared folded; a `#` or `@` before it goes
    /// with it, and a hashtag that only starts with a query word (`#nusapaydown` for
    /// `#nusapay*`) keeps its rest as a word of its own (`<brand> down`).
    pub fn mask(&self, text: &str, matched: &[usize]) -> Option<String> {
        let pats: Vec<&Pat> = matched
            .iter()
            .filter_map(|&i| self.mask_words.get(i))
            .flatten()
            .collect();
        if pats.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut changed = false;
        let mut iter = text.char_indices().peekable();
        while let Some((start, c)) = iter.next() {
            if !is_word_char(c) {
                continue;
            }
            let mut end = start + c.len_utf8();
            while let Some(&(i, c)) = iter.peek() {
                if !is_word_char(c) {
                    break;
                }
                end = i + c.len_utf8();
                iter.next();
            }
            let word = fold(&text[start..end]);
            // The longest query word this word is, or (a prefix pattern) starts with.
            let hit = pats
                .iter()
                .filter_map(|p| match p {
                    Pat::Exact(s) if *s == word => Some(word.len()),
                    Pat::Prefix(s) if word.starts_with(s.as_str()) => Some(s.len()),
                    _ => None,
                })
                .max();
            let Some(len) = hit else { continue };
            let from = match text[..start].chars().next_back() {
                Some(m @ ('#' | '@')) => start - m.len_utf8(),
                _ => start,
            };
            out.push_str(&text[last..from]);
            out.push(BRAND_MARK);
            // The rest of a prefix match, when folding kept byte lengths (ASCII).
            if len < word.len() && word.len() == end - start {
                out.push(' ');
                out.push_str(&text[start + len..end]);
            }
            last = end;
            changed = true;
        }
        if !changed {
            return None;
        }
        out.push_str(&text[last..]);
        Some(out)
    }

    /// Names of the queries that match `doc`, in configuration order.
    pub fn matches(&self, doc: &Doc) -> Vec<String> {
        self.names_of(&self.match_indices(doc))
    }

    /// The names of the queries at `indices` (from [`QuerySet::match_indices`]).
    pub fn names_of(&self, indices: &[usize]) -> Vec<String> {
        indices.iter().map(|&i| self.names[i].clone()).collect()
    }

    fn hits(&self, text: &str) -> Hits {
        let folded = fold(text);
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for (pos, w) in words(&folded).enumerate() {
            let pos = pos as u32;
            if let Some(&k) = self.exact.get(w) {
                pairs.push((k, pos));
            }
            if !self.prefix_lens.is_empty() {
                let mut ends = w.char_indices().map(|(i, _)| i).skip(1).chain([w.len()]);
                let mut taken = 0usize;
                for &len in &self.prefix_lens {
                    // Byte offset after `len` characters, walking the iterator forward only.
                    let Some(end) = ends.nth(len - taken - 1) else {
                        break;
                    };
                    taken = len;
                    if let Some(&k) = self.prefixes.get(&w[..end]) {
                        pairs.push((k, pos));
                    }
                }
            }
        }
        pairs.sort_unstable();
        Hits {
            keys: pairs.iter().map(|p| p.0).collect(),
            pos: pairs.iter().map(|p| p.1).collect(),
        }
    }
}

/// Query-word hits in one text, sorted by key then position.
struct Hits {
    keys: Vec<u32>,
    pos: Vec<u32>,
}

impl Hits {
    fn positions(&self, key: u32) -> &[u32] {
        let lo = self.keys.partition_point(|&k| k < key);
        let hi = self.keys.partition_point(|&k| k <= key);
        &self.pos[lo..hi]
    }

    /// Start positions of `seq` occurring as consecutive words.
    fn seq_starts<'s>(&'s self, seq: &'s [u32]) -> impl Iterator<Item = u32> + 's {
        self.positions(seq[0]).iter().copied().filter(move |&p| {
            seq.iter()
                .enumerate()
                .skip(1)
                .all(|(i, &k)| self.positions(k).binary_search(&(p + i as u32)).is_ok())
        })
    }
}

struct Ctx<'a> {
    hits: &'a Hits,
    tags: &'a [String],
    handles: &'a [String],
    author: &'a str,
    lang: &'a str,
    platform: &'a str,
}

impl Ctx<'_> {
    fn eval(&self, n: &Node) -> bool {
        match n {
            Node::And(v) => v.iter().all(|n| self.eval(n)),
            Node::Or(v) => v.iter().any(|n| self.eval(n)),
            Node::Not(n) => !self.eval(n),
            Node::Seq(seq) => self.hits.seq_starts(seq).next().is_some(),
            Node::Near {
                left,
                right,
                max_between,
            } => {
                let (ll, rl) = (left.len() as u32, right.len() as u32);
                let rs: Vec<u32> = self.hits.seq_starts(right).collect();
                self.hits.seq_starts(left).any(|l| {
                    rs.iter().any(|&r| {
                        // Words strictly between the two spans; overlapping spans do not count.
                        let between = if l + ll <= r {
                            r - (l + ll)
                        } else if r + rl <= l {
                            l - (r + rl)
                        } else {
                            return false;
                        };
                        between <= *max_between
                    })
                })
            }
            Node::Hashtag(p) => self.tags.iter().any(|t| p.matches(t)),
            Node::Handle(p) => p.matches(self.author) || self.handles.iter().any(|h| p.matches(h)),
            Node::Lang(l) => self.lang.eq_ignore_ascii_case(l),
            Node::Platform(p) => self.platform.eq_ignore_ascii_case(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str, query: &str) -> TrackedQueryConfig {
        TrackedQueryConfig {
            name: name.into(),
            query: query.into(),
        }
    }

    fn doc(text: &str) -> Doc<'_> {
        Doc {
            text,
            hashtags: &[],
            handles: &[],
            author_handle: "budi",
            lang: "id",
            platform: "mastodon",
        }
    }

    fn one(query: &str, d: &Doc) -> bool {
        let set = QuerySet::compile(&[q("t", query)]).unwrap();
        !set.matches(d).is_empty()
    }

    #[test]
    fn matches_text_queries() {
        let cases: Vec<(&str, &str, bool)> = vec![
            ("kecewa", "Saya KÉCEWA sama layanannya", true),
            ("KÉCEWA", "saya kecewa", true),
            ("kecewa", "kekecewaan", false),
            ("nusapay refund", "refund dari NusaPay belum masuk", true),
            ("nusapay refund", "NusaPay lancar", false),
            (
                "nusapay AND (gagal OR error)",
                "Top up NusaPay GAGAL terus",
                true,
            ),
            (
                "nusapay AND (gagal OR error)",
                "Top up NusaPay sukses",
                false,
            ),
            ("nusapay -promo", "nusapay promo cashback", false),
            ("nusapay NOT promo", "nusapay down lagi", true),
            ("NOT (promo OR iklan)", "biasa saja", true),
            ("\"top up gagal\"", "kenapa top up gagal ya", true),
            ("\"top up gagal\"", "top up nya gagal", false),
            ("\"top up gagal\"", "gagal top up", false),
            ("top-up", "Top Up dulu", true),
            (
                "refund NEAR/3 nusapay",
                "refund dari aplikasi nusapay",
                true,
            ),
            ("refund NEAR/3 nusapay", "nusapay: where is my refund", true),
            (
                "refund NEAR/1 nusapay",
                "refund dari aplikasi nusapay",
                false,
            ),
            ("refund NEAR/1 nusapay", "refund nusapay", true),
            ("refund NEAR/2 \"top up\"", "top up saya belum refund", true),
            (
                "refund NEAR/2 \"top up\"",
                "top up saya belum juga di refund",
                false,
            ),
            ("refund NEAR/2 refund", "refund", false),
            ("refund NEAR/2 refund", "refund refund", true),
            ("a NEAR/1 b NEAR/1 c", "a b c", true),
            ("a NEAR/1 b NEAR/1 c", "a b x x c", false),
            ("kecewa*", "kekecewaan", false),
            ("kecewa*", "kecewanya luar biasa", true),
            ("kecew* NOT kecewa", "kecewa", false),
            ("\"top up*\"", "top uppp", true),
            ("nusapay", "https://nusapay.co.id/help", true),
            ("nusapay_id", "cc @NusaPay_ID", true),
            ("and", "you and me", true),
        ];
        for (query, text, want) in cases {
            assert_eq!(one(query, &doc(text)), want, "query {query:?} on {text:?}");
        }
    }

    #[test]
    fn matches_hashtags_handles_and_fields() {
        let tags = vec!["nusapaydown".to_string(), "kópi".to_string()];
        let handles = vec!["nusapay_id".to_string()];
        let d = Doc {
            text: "Aplikasi error lagi",
            hashtags: &tags,
            handles: &handles,
            author_handle: "@MayaP18",
            lang: "id",
            platform: "bluesky",
        };
        let cases: Vec<(&str, bool)> = vec![
            ("#NusaPayDown", true),
            ("#nusapay", false),
            ("#nusa*", true),
            ("#kopi", true),
            ("@nusapay_id", true),
            ("@mayap18", true),
            ("@someoneelse", false),
            ("lang:id", true),
            ("lang:en", false),
            ("platform:bluesky error", true),
            ("platform:mastodon error", false),
            ("error -lang:en", true),
            ("#nusapaydown OR @x", true),
        ];
        for (query, want) in cases {
            assert_eq!(one(query, &d), want, "query {query:?}");
        }
    }

    #[test]
    fn returns_names_in_config_order_with_shared_words() {
        let set = QuerySet::compile(&[
            q("crisis", "nusapay (gagal OR error)"),
            q("praise", "kopikita enak"),
            q("brand", "nusapay OR nusa*"),
            q("english", "lang:en"),
        ])
        .unwrap();
        assert_eq!(set.len(), 4);
        assert_eq!(
            set.matches(&doc("NusaPay error lagi, kopikita tetap enak")),
            vec!["crisis", "praise", "brand"]
        );
        assert_eq!(set.matches(&doc("nothing here")), Vec::<String>::new());
        assert!(QuerySet::compile(&[]).unwrap().is_empty());
    }

    #[test]
    fn phrases_are_the_queries_multi_word_names() {
        let set = QuerySet::compile(&[
            TrackedQueryConfig {
                name: "Arunika".into(),
                query: "\"arunika air\" OR arunika-air OR (air NOT \"air mineral\")".into(),
            },
            TrackedQueryConfig {
                name: "NusaPay".into(),
                query: "nusapay OR \"nusa pay\" OR \"top up*\"".into(),
            },
        ])
        .unwrap();
        let words = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Negated phrases and phrases with a prefix are not names to keep whole.
        assert_eq!(
            set.phrases(),
            vec![words(&["arunika", "air"]), words(&["nusa", "pay"])]
        );
    }

    #[test]
    fn compile_errors_name_the_query() {
        let e = QuerySet::compile(&[q("ok", "a"), q("nusapay-crisis", "nusapay gagal AND")])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "query \"nusapay-crisis\": at position 18: expected a term or '(' after AND"
        );
        let e = QuerySet::compile(&[q("a", "x"), q("a", "y")]).unwrap_err();
        assert_eq!(e, QueryError::DuplicateName { name: "a".into() });
        let e = QuerySet::compile(&[q(" ", "x")]).unwrap_err();
        assert_eq!(e, QueryError::EmptyName { index: 1 });
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let ok: TrackedQueryConfig = toml::from_str("name = \"a\"\nquery = \"b\"").unwrap();
        assert_eq!(ok, q("a", "b"));
        assert!(
            toml::from_str::<TrackedQueryConfig>("name = \"a\"\nquery = \"b\"\nx = 1").is_err()
        );
    }
}
