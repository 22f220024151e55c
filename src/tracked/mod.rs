//! Tracked queries: user-defined boolean queries over a mention's text and fields, compiled once
//! and evaluated per mention in the enrich stage.
//!
//! The language (operators are upper case):
//!
//! | syntax | matches |
//! |---|---|
//! | `refund` | the whole word, case- and diacritic-insensitive (`kecewa` matches `KÉCEWA`) |
//! | `refund*` | a word starting with `refund` (at least 2 letters before `*`) |
//! | `"top up gagal"` | consecutive words; a bare `top-up` is the phrase `top up` |
//! | `a b`, `a AND b` | both |
//! | `a OR b` | either (AND binds tighter than OR) |
//! | `NOT a`, `-a` | not |
//! | `( … )` | grouping |
//! | `refund NEAR/3 nusapay` | both, in either order, with at most 3 other words between them; each side a word, `word*` or `"phrase"`; `a NEAR/2 b NEAR/2 c` is `(a NEAR/2 b) AND (b NEAR/2 c)` |
//! | `#tag`, `#tag*` | one of the mention's hashtags |
//! | `@handle`, `@handle*` | a mentioned handle or the author's handle |
//! | `lang:id`, `platform:mastodon` | the mention's language / platform |
//!
//! Words are runs of letters, digits and `_`; everything else (including the `.` and `/` of
//! URLs) separates words, so `nusapay` also matches `nusapay.co.id`.

mod lex;
mod matcher;
mod parse;
pub mod search;
mod text;

pub use matcher::{Doc, QueryError, QuerySet, TrackedQueryConfig};
pub use text::fold;
