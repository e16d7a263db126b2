//! Text normalisation for routing, Indonesian and English: lower case, accents removed,
//! punctuation turned into spaces, chat abbreviations and common typos mapped to their words
//! (`gk`→`tidak`, `pwd`→`password`, `eror`→`error`, from the rules' `[synonyms]`), and quoted
//! replies and signatures cut off so they are not scored. Pure.

use super::HashMap;

use unicode_normalization::UnicodeNormalization;

/// Lower-cases, strips accents and turns everything but letters and digits into single spaces.
/// The result is padded with one space on each side, so that `" word "` matches whole words.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    fold_into(text, &mut out);
    out
}

/// [`fold`] appended to `out` (which ends in a space or is empty), without the leading space.
fn fold_into(text: &str, out: &mut String) {
    let mut last_space = true;
    if text.is_ascii() {
        // Most messages: no decomposition to do (the same result, without the NFD iterator).
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() {
                out.push(b.to_ascii_lowercase() as char);
                last_space = false;
            } else if !last_space {
                out.push(' ');
                last_space = true;
            }
        }
        if !last_space {
            out.push(' ');
        }
        return;
    }
    for c in text.nfd() {
        if unicode_normalization::char::is_combining_mark(c) {
            continue;
        }
        if c.is_alphanumeric() {
            for l in c.to_lowercase() {
                out.push(l);
            }
            last_space = false;
        } else if !last_space {
            out.push(' ');
            last_space = true;
        }
    }
    if !last_space {
        out.push(' ');
    }
}

/// [`fold`] then replaces whole words by their synonyms (a synonym may be several words).
pub fn normalize(text: &str, synonyms: &HashMap<String, String>) -> String {
    let folded = fold(text);
    // Most texts (a rules file's cue phrases) have no word to replace: then the folded text is
    // the result (` a b `, as below), with no second string built.
    if synonyms.is_empty() || folded.split_whitespace().all(|w| !replaced(w, synonyms)) {
        return folded;
    }
    let mut out = String::with_capacity(folded.len() + 16);
    out.push(' ');
    for word in folded.split_whitespace() {
        push_word(&mut out, word, synonyms);
    }
    out
}

/// Whether [`push_word`] writes `word` otherwise than as it is.
fn replaced(word: &str, synonyms: &HashMap<String, String>) -> bool {
    synonyms.contains_key(word) || reduplicated(word).is_some()
}

/// The root of chat's reduplication "X2" ("aman2": a word of three letters or more and a final
/// `2`), if `word` is one.
fn reduplicated(word: &str) -> Option<&str> {
    word.strip_suffix('2').filter(|r| r.len() >= 3 && r.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// One word and a space, as its synonym; chat's reduplication "X2" ("aman2", "tmn2": a word of
/// three letters or more and a final `2`, with no synonym of its own) as "X X", each X as its
/// synonym ("teman teman").
fn push_word(out: &mut String, word: &str, synonyms: &HashMap<String, String>) {
    if let Some(rep) = synonyms.get(word) {
        out.push_str(rep);
    } else if let Some(root) = reduplicated(word) {
        let root = synonyms.get(root).map(String::as_str).unwrap_or(root);
        out.push_str(root);
        out.push(' ');
        out.push_str(root);
    } else {
        out.push_str(word);
    }
    out.push(' ');
}

/// Splits `text` into sentences: after `.`, `!` or `?` followed by white space, and at blank
/// lines. (Not at a single line break: mail wraps sentences; nor inside `www.kemendag.go.id`.)
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'.' | b'!' | b'?' if bytes.get(i + 1).is_none_or(|c| c.is_ascii_whitespace()) => Some(i + 1),
            b'\n' if text[i + 1..].trim_start_matches([' ', '\t', '\r']).starts_with('\n') => Some(i + 1),
            _ => None,
        };
        if let Some(end) = end {
            if !text[start..end].trim().is_empty() {
                out.push(&text[start..end]);
            }
            start = end;
        }
        i += 1;
    }
    if !text[start..].trim().is_empty() {
        out.push(&text[start..]);
    }
    out
}

/// [`normalize`] of the whole `text` (the same string), and the end offset in it of each of its
/// sentences ([`sentences`]) that has words. One output buffer and one scratch buffer.
pub fn normalize_sentences(text: &str, synonyms: &HashMap<String, String>) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len() + 16);
    out.push(' ');
    let mut ends = Vec::new();
    let mut folded = String::with_capacity(text.len() + 1);
    for s in sentences(text) {
        folded.clear();
        fold_into(s, &mut folded);
        let before = out.len();
        for word in folded.split_whitespace() {
            push_word(&mut out, word, synonyms);
        }
        if out.len() > before {
            ends.push(out.len());
        }
    }
    (out, ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_and_punctuation() {
        assert_eq!(fold("SIGI—Érror!!  (kode: 500)"), " sigi error kode 500 ");
        assert_eq!(fold("e-SKA/INATRADE"), " e ska inatrade ");
        assert_eq!(fold(""), " ");
        // The ASCII path and the Unicode path agree.
        assert_eq!(fold("SIGI--Error!!  (kode: 500)"), fold("SIGI—Error!!  (kode: 500)"));
        assert_eq!(fold("Tab\tand\nNEWLINE_x"), " tab and newline x ");
    }

    proptest::proptest! {
        /// Routing splits normalised text at ASCII spaces only (`Split`): no other white space
        /// is left in it, whatever the input and the synonyms.
        #[test]
        fn normalised_words_stand_between_single_spaces(text in "[\\PC\\t\\n\\r\\x0b\\x0c]{0,80}", syn in "\\PC{0,12}") {
            let synonyms: HashMap<String, String> =
                [("gk".to_string(), normalize(&syn, &HashMap::default()).trim().to_string())].into_iter().collect();
            for n in [normalize(&text, &synonyms), normalize_sentences(&text, &synonyms).0] {
                let by_space: Vec<&str> = n.split(' ').filter(|w| !w.is_empty()).collect();
                proptest::prop_assert_eq!(by_space, n.split_whitespace().collect::<Vec<_>>(), "{:?}", n);
            }
        }
    }

    #[test]
    fn chat_reduplication_is_the_word_twice() {
        let syn: HashMap<String, String> =
            [("tmn", "teman"), ("putus2", "putus putus")].into_iter().map(|(a, b)| (a.into(), b.into())).collect();
        assert_eq!(normalize("yg lain aman2 aja", &syn), " yg lain aman aman aja ");
        assert_eq!(normalize("tmn2 juga", &syn), " teman teman juga ");
        assert_eq!(normalize("putus2", &syn), " putus putus ", "a listed synonym first");
        // Codes and short words stay as they are.
        assert_eq!(normalize("sp2 ab2 ip4v2 1002", &syn), " sp2 ab2 ip4v2 1002 ");
        assert_eq!(normalize_sentences("aman2. tmn2?", &syn).0, normalize("aman2. tmn2?", &syn));
    }

    #[test]
    fn splits_sentences_at_stops_and_blank_lines_only() {
        let t = "Yth. Admin,\nSAKTI error di www.kemendag.go.id sejak pagi. Bisa dicek?\n\nTerima kasih";
        assert_eq!(
            sentences(t),
            vec!["Yth.", " Admin,\nSAKTI error di www.kemendag.go.id sejak pagi.", " Bisa dicek?", "\nTerima kasih"]
        );
        assert_eq!(sentences(""), Vec::<&str>::new());
        assert_eq!(sentences("tanpa titik"), vec!["tanpa titik"]);
    }

    #[test]
    fn sentence_normalisation_is_the_whole_normalisation() {
        let syn: HashMap<String, String> = [("gk".to_string(), "tidak".to_string())].into_iter().collect();
        for t in ["Yth. Admin,\nSAKTI gk bisa. Bisa dicek?\n\n-- \nBudi", "", "...", "a. b! c? d", "é. ü"] {
            let (n, ends) = normalize_sentences(t, &syn);
            assert_eq!(n, normalize(t, &syn), "{t:?}");
            assert!(ends.windows(2).all(|w| w[0] < w[1]) && ends.last().is_none_or(|e| *e == n.len()), "{t:?}");
        }
        let (n, ends) = normalize_sentences("SIGI aman. SAKTI gk bisa.", &syn);
        assert_eq!(&n[..ends[0]], " sigi aman ");
        assert_eq!(&n[ends[0]..ends[1]], "sakti tidak bisa ");
    }

    #[test]
    fn maps_chat_abbreviations() {
        let syn: HashMap<String, String> =
            [("gk", "tidak"), ("bs", "bisa"), ("pwd", "password"), ("eror", "error"), ("sy", "saya")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        assert_eq!(normalize("sy gk bs login, pwd eror", &syn), " saya tidak bisa login password error ");
    }
}
