//! Language identification: English, Indonesian or other.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::text::hash::FastMap;

/// The languages gema scores. Anything else is `Other` and is never given a sentiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Id,
    Other,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Id => "id",
            Lang::Other => "other",
        }
    }

    /// Maps an ISO 639-1 hint (`en`, `id`, `in`, `ms`...) to a [`Lang`].
    pub fn from_hint(hint: &str) -> Lang {
        match hint.trim().to_ascii_lowercase().as_str() {
            "en" | "eng" => Lang::En,
            "id" | "in" | "ind" => Lang::Id,
            _ => Lang::Other,
        }
    }
}

/// English function and chat words: the prior that decides clear cases without running the
/// trigram detector. Words that are also common in Dutch, German, Italian, Spanish or French
/// (`in`, `is`, `was`, `so`, `me`, `no`, `on`...) are in [`EN_WEAK`] instead.
const EN_STRONG: &[&str] = &[
    // Everyday verbs and adverbs of short posts ("Using KopiKita app again today").
    "again",
    "using",
    "use",
    "used",
    "tried",
    "try",
    "works",
    "usual",
    "heading",
    "anyone",
    "the",
    "and",
    "are",
    "were",
    "this",
    "that",
    "with",
    "for",
    "you",
    "not",
    "my",
    "it",
    "of",
    "to",
    "have",
    "has",
    "just",
    "but",
    "what",
    "be",
    "they",
    "your",
    "i",
    "at",
    "can",
    "do",
    "does",
    "did",
    "all",
    "if",
    "about",
    "from",
    "we",
    "he",
    "she",
    "his",
    "her",
    "our",
    "their",
    "been",
    "would",
    "should",
    "could",
    "there",
    "when",
    "who",
    "how",
    "why",
    "out",
    "up",
    "get",
    "got",
    "like",
    "know",
    "today",
    "tomorrow",
    "more",
    "or",
    "by",
    "day",
    "time",
    "new",
    "see",
    "going",
    "want",
    "good",
    "love",
    "its",
    "im",
    "dont",
    "am",
    "than",
    "then",
    "them",
    "him",
    "had",
    "because",
    "really",
    "only",
    "still",
    "now",
    "night",
    "tonight",
    "after",
    "first",
    "people",
    "think",
    "great",
    "best",
    "thanks",
    "being",
    "some",
    "any",
    "too",
    "very",
    "which",
    "into",
    "over",
    "back",
    "us",
    "u",
    "lol",
    "gonna",
    "happy",
    "watch",
    "year",
    "last",
    "next",
    "never",
    "ever",
    "these",
    "those",
    "here",
    "where",
    "something",
    "nothing",
    "everything",
    "bad",
    "hate",
    "make",
    "made",
    "will",
    "going",
    "been",
    "won't",
    "can't",
    "i'm",
    "it's",
    "don't",
    "didn't",
    "doesn't",
    "isn't",
    "wasn't",
    "you're",
    "that's",
    "what's",
    "let's",
    "thank",
    "please",
    "right",
    "why",
    "just",
    "going",
    "tomorrow",
    "week",
    "weekend",
    "why",
    // Content words of short English complaints and reviews that are neither Indonesian nor
    // English loanwords common in Indonesian posts (`app`, `update`, `error`, `refund`, `staff`
    // and `seat` are left out): without them `awful customer service` or `battery drains fast`
    // had no function word and came out `Other`, unscored, exactly the mentions a brand must
    // answer.
    "awful",
    "worst",
    "worse",
    "useless",
    "annoying",
    "frustrating",
    "disappointing",
    "disappointed",
    "unprofessional",
    "unacceptable",
    "ridiculous",
    "pathetic",
    "awesome",
    "amazing",
    "wonderful",
    "helpful",
    "friendly",
    "lovely",
    "experience",
    "customer",
    "battery",
    "stars",
    "flight",
    "luggage",
    "baggage",
    "package",
    "hours",
    "minutes",
    "days",
    "months",
    "crashes",
    "crashing",
    "crashed",
    "keeps",
    "kept",
    "stopped",
    "waiting",
    "waited",
    "charged",
    "overcharged",
    "cancelled",
    "canceled",
    "delayed",
    "broke",
    "broken",
    "fixed",
    "working",
    "worked",
    "drains",
    "worth",
    "money",
    "ordered",
    "received",
    "couldn't",
    "haven't",
    "hasn't",
];
const EN_WEAK: &[&str] = &[
    "in",
    "is",
    "was",
    "so",
    "me",
    "no",
    "on",
    "a",
    "an",
    "as",
    "may",
    "die",
    "game",
    "she",
    // Spelled the same in Spanish, French, Italian or Portuguese.
    "terrible",
    "horrible",
    "excellent",
    "rude",
    "zero",
];

/// Indonesian function and chat words (standard and colloquial, incl. the slang table's forms).
const ID_STRONG: &[&str] = &[
    "yang",
    "ini",
    "itu",
    "tidak",
    "gak",
    "ga",
    "nggak",
    "enggak",
    "aku",
    "saya",
    "kamu",
    "dari",
    "banget",
    "sudah",
    "udah",
    "tapi",
    "untuk",
    "buat",
    "juga",
    "lagi",
    "kok",
    "deh",
    "sih",
    "dong",
    "nya",
    "bgt",
    "yg",
    "tdk",
    "kalau",
    "kalo",
    "bisa",
    "karena",
    "dengan",
    "akan",
    "atau",
    "jadi",
    "sangat",
    "lebih",
    "kita",
    "kami",
    "mereka",
    "dia",
    "belum",
    "masih",
    "harus",
    "bukan",
    "semua",
    "hari",
    "orang",
    "baru",
    "banyak",
    "sekali",
    "enak",
    "bagus",
    "tempat",
    "makanan",
    "pelayanan",
    "saja",
    "aja",
    "terus",
    "hanya",
    "seperti",
    "kayak",
    "gue",
    "gw",
    "nih",
    "tuh",
    "yah",
    "kenapa",
    "gimana",
    "bagaimana",
    "sampai",
    "setelah",
    "tersebut",
    "dalam",
    "oleh",
    "telah",
    "namun",
    "tetapi",
    "adalah",
    "bahwa",
    "semoga",
    "selamat",
    "terima",
    "kasih",
    "makasih",
    "jangan",
    "sini",
    "dgn",
    "krn",
    "udh",
    "sdh",
    "jg",
    "tp",
    "utk",
    "lg",
    "klo",
    "emang",
    "memang",
    "cuma",
    "pernah",
    "tahu",
    "tau",
    "kalian",
    "biar",
    "nanti",
    "gitu",
    "begitu",
    "setiap",
    "makan",
    "murah",
    "mahal",
    "kecewa",
    "kamar",
    "bersih",
    "kotor",
    "nyaman",
    "mobil",
    "baju",
    "sekolah",
    "kantor",
    "partai",
    "pemerintah",
    "kota",
    "jalan",
    "rumah",
    "usai",
    "tak",
    "pakai",
    "pake",
    "mau",
    "ada",
    "sama",
    "lah",
    "kan",
    "pun",
    "ke",
    "dan",
    "banget",
    "gak",
    "mantap",
    "keren",
    "jelek",
    "lucu",
    "sayang",
    "cinta",
    "hati",
    "wkwk",
    "wkwkwk",
    "hehe",
    "haha",
    "kak",
    "min",
    "gan",
    "sis",
    "bang",
    "bro",
    "pak",
    "bu",
    "mbak",
    "mas",
    "ternyata",
    "sedang",
    "lagi",
    "siapa",
    "kapan",
    "dimana",
    "mana",
    "sangat",
    "paling",
    "ingin",
    "pengen",
    "suka",
    "senang",
    "sedih",
    "marah",
    "kesal",
    "berita",
    "warga",
    "polisi",
    "presiden",
    // Content words of short reviews and complaints ("Ac panas.", "Staff cuek", "kasur
    // berdebu"), which carry no function word; none is an English word.
    "panas",
    "dingin",
    "bau",
    "apek",
    "berdebu",
    "nyala",
    "kasur",
    "ramah",
    "jahat",
    "sakit",
    "cuek",
    "lambat",
    "lemot",
    "cepat",
    "rusak",
    "mati",
    "bocor",
    "sempit",
    "berisik",
    "pelit",
    "bohong",
    "penipu",
    "parah",
    "puas",
    "mengecewakan",
    "memuaskan",
    "kapok",
    "ribet",
    "susah",
    "mudah",
    "gampang",
    "indah",
    "cantik",
    "ganteng",
    "bodoh",
    "benci",
    "takut",
    "bahagia",
    "kangen",
    "rindu",
    "capek",
    "lelah",
    "macet",
    "banjir",
    "listrik",
    "mandi",
    "handuk",
    "sarapan",
    "kebersihan",
    "ditingkatkan",
    "pesanan",
    "barang",
    "harga",
    "toko",
    "tolong",
    "mohon",
    "maaf",
    "ongkir",
    "kirim",
    "dikirim",
    "sinyal",
    "kuota",
    "pulsa",
    "resepsionis",
    "tidur",
    "bantal",
    "seprei",
    "minum",
    "teman",
    "keluarga",
    "anak",
    "uang",
    "bayar",
    "gratis",
    "kerja",
    "pulang",
    "pergi",
    "datang",
    "tunggu",
    "nunggu",
    "antri",
    "antre",
    "lumayan",
    "biasa",
    "kecil",
    "besar",
    "sepi",
    "ramai",
    "rame",
    "kualitas",
    "pengiriman",
    "pelanggan",
    "layanan",
    "aplikasi",
    "hujan",
    "bulan",
    "tahun",
    "makin",
    "buruk",
    "telat",
    "mulu",
    "soal",
    "gagal",
    "lancar",
    "terbaik",
    "respon",
    "dulu",
    "otw",
    "coba",
    "cobain",
    "kemarin",
    "sekarang",
    "berat",
    "hilang",
    "saldo",
    "beli",
    "nyesel",
    "rugi",
    "lama",
    "tipu",
    "nipu",
    "balikin",
    "kurir",
];
const ID_WEAK: &[&str] = &[
    "di", "para", "apa", "pada", "lo", "mas", "bu", "min", "kan", "dan",
];

/// Latin-script languages the trigram fallback may answer (whatlang knows 69; restricting it
/// keeps it fast and stops rare look-alikes such as Latin or Slovene from claiming Indonesian
/// headlines). Anything it answers other than English or Indonesian is `Other`, except
/// Javanese (see [`detect`]).
const FALLBACK_LANGS: &[whatlang::Lang] = &[
    whatlang::Lang::Eng,
    whatlang::Lang::Ind,
    whatlang::Lang::Jav,
    whatlang::Lang::Tgl,
    whatlang::Lang::Spa,
    whatlang::Lang::Por,
    whatlang::Lang::Fra,
    whatlang::Lang::Deu,
    whatlang::Lang::Ita,
    whatlang::Lang::Nld,
    whatlang::Lang::Tur,
    whatlang::Lang::Vie,
];

/// Word → (English weight, Indonesian weight).
static WORDS: LazyLock<FastMap<&'static str, (f32, f32)>> = LazyLock::new(|| {
    let mut m: FastMap<&'static str, (f32, f32)> = FastMap::default();
    for (list, en, id) in [
        (EN_STRONG, 1.0, 0.0),
        (EN_WEAK, 0.5, 0.0),
        (ID_STRONG, 0.0, 1.0),
    ] {
        for w in list {
            let e = m.entry(*w).or_insert((0.0, 0.0));
            e.0 = e.0.max(en);
            e.1 = e.1.max(id);
        }
    }
    for w in ID_WEAK {
        m.entry(*w).or_insert((0.0, 0.0)).1 = 0.5;
    }
    m
});

static DETECTOR: LazyLock<whatlang::Detector> =
    LazyLock::new(|| whatlang::Detector::with_allowlist(FALLBACK_LANGS.to_vec()));

/// Evidence gathered in one pass over the text.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    latin: u32,
    non_latin: u32,
    words: u32,
    en: f32,
    id: f32,
}

fn is_handle(w: &str) -> bool {
    w.starts_with('@') || w.starts_with("http") || w.starts_with("www.")
}

fn count(text: &str) -> Counts {
    let mut c = Counts::default();
    let mut buf = [0u8; 24];
    for chunk in text.split_whitespace().filter(|w| !is_handle(w)) {
        for raw in chunk.split(|ch: char| ch.is_ascii_punctuation() && ch != '\'') {
            if raw.is_empty() {
                continue;
            }
            let mut len = 0usize;
            let mut ascii_only = true;
            let mut letters = 0u32;
            for ch in raw.chars() {
                if ch.is_alphabetic() {
                    letters += 1;
                    if ch.is_ascii_alphabetic() || ('\u{00C0}'..='\u{024F}').contains(&ch) {
                        c.latin += 1;
                    } else {
                        c.non_latin += 1;
                    }
                }
                if ch.is_ascii() && len < buf.len() {
                    buf[len] = ch.to_ascii_lowercase() as u8;
                    len += 1;
                } else {
                    ascii_only = false;
                }
            }
            if letters == 0 {
                continue;
            }
            c.words += 1;
            if ascii_only {
                let w = std::str::from_utf8(&buf[..len]).expect("ASCII bytes");
                if let Some((en, id)) = WORDS.get(w) {
                    c.en += en;
                    c.id += id;
                } else if len >= 6 && w.ends_with("nya") {
                    // The Indonesian possessive/definite suffix (`kasurnya`, `pelayanannya`).
                    c.id += 0.5;
                }
            }
        }
    }
    c
}

/// The language the enrich stage scores `text` in: [`detect`]'s answer, except that a
/// platform's `hint` decides when detection has no evidence either way (confidence 0.5 then).
pub fn resolve(text: &str, hint: Option<&str>) -> (Lang, f32) {
    let (detected, confidence) = detect(text);
    match (hint, detected) {
        (Some(hint), Lang::Other) if confidence == 0.0 => (Lang::from_hint(hint), 0.5),
        _ => (detected, confidence),
    }
}

/// Detects whether `text` is English, Indonesian or something else, with a confidence in [0, 1].
///
/// 1. Letters mostly outside the Latin script: `Other`.
/// 2. A function-word prior (weighted: words shared with other European languages count half)
///    decides clear cases in one cheap pass, with no allocation.
/// 3. Otherwise the `whatlang` trigram detector, restricted to 12 Latin-script languages, decides;
///    Javanese counts as Indonesian (Indonesian posts full of names and regional words land
///    there, and the model handles code-mixed text), as does any answer contradicted by
///    Indonesian function words.
///
/// URLs and @mentions are ignored. Text with no letters is `Other` with confidence 0; `Other`
/// is never given a sentiment.
pub fn detect(text: &str) -> (Lang, f32) {
    let c = count(text);
    let letters = c.latin + c.non_latin;
    if letters == 0 {
        return (Lang::Other, 0.0);
    }
    if c.non_latin * 2 > letters {
        return (Lang::Other, c.non_latin as f32 / letters as f32);
    }
    let words = c.words.max(1) as f32;
    let (major, minor, lang) = if c.id > c.en {
        (c.id, c.en, Lang::Id)
    } else {
        (c.en, c.id, Lang::En)
    };
    if major >= 1.5 && major >= 0.15 * words && minor * 3.0 <= major {
        let conf = 0.7 + 0.3 * ((major - minor) / major) * (major / 3.0).min(1.0);
        return (lang, conf.min(1.0));
    }
    let cleaned: String = text
        .split_whitespace()
        .filter(|w| !is_handle(w))
        .map(|w| w.trim_start_matches('#'))
        .collect::<Vec<_>>()
        .join(" ");
    match DETECTOR.detect(&cleaned) {
        Some(info) => {
            let conf = info.confidence() as f32;
            match info.lang() {
                whatlang::Lang::Eng if c.id > c.en + 0.5 => (Lang::Id, 0.5),
                whatlang::Lang::Eng => (Lang::En, conf.max(0.3)),
                whatlang::Lang::Ind | whatlang::Lang::Jav if c.en > c.id + 0.5 => (Lang::En, 0.5),
                whatlang::Lang::Ind | whatlang::Lang::Jav => (Lang::Id, conf.max(0.3)),
                // Function words beat an unsure guess from a handful of trigrams.
                _ if major >= 1.0 && minor < major && conf < 0.5 => (lang, 0.4),
                _ => (Lang::Other, conf),
            }
        }
        None if major > minor => (lang, 0.3),
        None => (Lang::Other, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_english_and_indonesian() {
        assert_eq!(detect("this is not what I paid for").0, Lang::En);
        assert_eq!(
            detect("aku kecewa banget sama pelayanan yang ini").0,
            Lang::Id
        );
        assert_eq!(
            detect("kamar mandi kotor. seprei dan sarung bantal kotor").0,
            Lang::Id
        );
        assert_eq!(detect("@budi mantap gan 👍 https://t.co/x").0, Lang::Id);
        // Short complaints without a function word.
        for t in [
            "Ac panas.",
            "kasurnya berdebu",
            "Staff cuek",
            "jahat",
            "sakit",
            "Pelayanan NusaPay makin buruk, app telat mulu",
            "NusaPay baru umumin update soal top up",
            "nyesel beli",
            "kurir lama",
        ] {
            assert_eq!(detect(t).0, Lang::Id, "{t}");
        }
        for t in [
            "terrible update, crashes",
            "awful customer service",
            "app keeps crashing",
            "battery drains fast",
            "zero stars",
            "horrible experience",
        ] {
            assert_eq!(detect(t).0, Lang::En, "{t}");
        }
        assert_eq!(detect("Can't wait for the weekend!!").0, Lang::En);
        assert_eq!(
            detect("Using KopiKita app again today #KopiKita").0,
            Lang::En
        );
        assert_eq!(detect("🙂🙂").0, Lang::Other);
        assert_eq!(detect("@budi https://t.co/x").0, Lang::Other);
    }

    #[test]
    fn other_languages_are_not_guessed() {
        let others = [
            "El servicio fue muy malo y la comida llegó fría, no vuelvo nunca más a este lugar",
            "Je suis très déçu par le service client, personne ne répond à mes messages depuis hier",
            "Ich bin sehr enttäuscht von diesem Produkt, es ist nach zwei Tagen kaputt gegangen",
            "Eu adorei o atendimento da loja, os funcionários foram muito simpáticos comigo hoje",
            "Это было ужасно, никогда больше не закажу здесь",
            "Het eten was koud en de bediening was traag, ik kom hier niet meer terug",
            "Il servizio è stato pessimo e il cibo era freddo, non tornerò mai più",
            "Ang ganda ng serbisyo nila, sobrang bait ng mga staff at mabilis ang delivery",
            "Bu ürün gerçekten çok kötü, iki gün sonra bozuldu ve kimse cevap vermiyor",
            "Dịch vụ rất tệ, tôi sẽ không bao giờ quay lại cửa hàng này nữa",
            "Der Kundenservice ist eine Katastrophe, niemand antwortet auf meine E-Mails",
            "El servicio fue terrible y horrible, cero estrellas",
            "Le service était horrible et le personnel rude, zéro étoile",
            "このアプリは本当に使いやすいです",
        ];
        for t in others {
            let (lang, conf) = detect(t);
            assert_eq!(lang, Lang::Other, "{t}");
            assert!((0.0..=1.0).contains(&conf));
        }
    }
}
