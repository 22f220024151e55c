//! Maintained lists of news feeds for an `rss` source's `preset`: Indonesian portals
//! (`id-news`), English business and technology news (`en-news`), and a Google News search feed
//! per tracked query in both editions (`google-news`). Each list is polled like `follow` URLs
//! (conditional GETs, items sent once); the enrich stage's tracked queries pick the mentions.

use crate::tracked::search::{search_string, Dialect};
use crate::tracked::TrackedQueryConfig;

/// The preset names.
pub const NAMES: [&str; 3] = ["id-news", "en-news", "google-news"];

/// Indonesian national news portals: detik, Kompas, CNN Indonesia, Tempo, ANTARA, Tribun,
/// CNBC Indonesia, Liputan6, Republika, Kumparan, Okezone, BBC Indonesia.
pub const ID_NEWS: &[&str] = &[
    "https://rss.detik.com/index.php/detikcom",
    "https://www.kompas.com/getrss/all",
    "https://www.cnnindonesia.com/nasional/rss",
    "https://www.cnnindonesia.com/ekonomi/rss",
    "https://www.cnnindonesia.com/teknologi/rss",
    "https://rss.tempo.co/nasional",
    "https://rss.tempo.co/bisnis",
    "https://www.antaranews.com/rss/terkini.xml",
    "https://www.antaranews.com/rss/ekonomi-bisnis.xml",
    "https://www.tribunnews.com/rss",
    "https://www.cnbcindonesia.com/news/rss",
    "https://www.cnbcindonesia.com/tech/rss",
    "https://feed.liputan6.com/rss/news",
    "https://www.republika.co.id/rss",
    "https://lapi.kumparan.com/v2.0/rss/",
    "https://sindikasi.okezone.com/index.php/rss/1/rss.xml",
    "https://feeds.bbci.co.uk/indonesia/rss.xml",
];

/// English business and technology news.
pub const EN_NEWS: &[&str] = &[
    "https://feeds.bbci.co.uk/news/business/rss.xml",
    "https://feeds.bbci.co.uk/news/technology/rss.xml",
    "https://www.theguardian.com/business/rss",
    "https://www.theguardian.com/technology/rss",
    "https://www.cnbc.com/id/10001147/device/rss/rss.html",
    "https://techcrunch.com/feed/",
    "https://feeds.npr.org/1006/rss.xml",
];

/// Google News search feeds for `q` in the Indonesian and the US English editions.
pub fn google_news(q: &str) -> [String; 2] {
    let mut id = reqwest::Url::parse("https://news.google.com/rss/search").expect("a valid URL");
    id.query_pairs_mut()
        .append_pair("q", q)
        .append_pair("hl", "id")
        .append_pair("gl", "ID")
        .append_pair("ceid", "ID:id");
    let mut en = reqwest::Url::parse("https://news.google.com/rss/search").expect("a valid URL");
    en.query_pairs_mut()
        .append_pair("q", q)
        .append_pair("hl", "en-US")
        .append_pair("gl", "US")
        .append_pair("ceid", "US:en");
    [id.to_string(), en.to_string()]
}

/// The feed URLs of `preset` (a name in [`NAMES`]); `google-news` asks for each tracked query
/// rewritten as a web search (a query with nothing to ask for is skipped).
pub fn feeds(preset: &str, tracked: &[TrackedQueryConfig]) -> Vec<String> {
    match preset {
        "id-news" => ID_NEWS.iter().map(|s| s.to_string()).collect(),
        "en-news" => EN_NEWS.iter().map(|s| s.to_string()).collect(),
        "google-news" => tracked
            .iter()
            .filter_map(|t| search_string(&t.query, Dialect::Web).ok().flatten())
            .flat_map(|q| google_news(&q))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_list_feeds_and_google_news_follows_the_tracked_queries() {
        assert!(feeds("id-news", &[]).len() >= 12);
        assert!(feeds("id-news", &[])
            .iter()
            .all(|u| u.starts_with("https://")));
        let tracked = vec![TrackedQueryConfig {
            name: "NusaPay".into(),
            query: "(nusapay OR \"nusa pay\") -promo lang:id".into(),
        }];
        let g = feeds("google-news", &tracked);
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[0],
            "https://news.google.com/rss/search?q=%28nusapay+OR+%22nusa+pay%22%29+-promo&hl=id&gl=ID&ceid=ID%3Aid"
        );
        assert!(g[1].ends_with("&hl=en-US&gl=US&ceid=US%3Aen"), "{}", g[1]);
        assert!(feeds("tv", &tracked).is_empty());
    }
}
