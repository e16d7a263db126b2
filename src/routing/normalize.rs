//! Text normalisation for routing, Indonesian and English: lower case, accents removed,
//! punctuation turned into spaces, chat abbreviations and common typos mapped to their words
//! (`gk`→`tidak`, `pwd`→`password`, `eror`→`error`, from the rules' `[synonyms]`), and quoted
//! replies and signatures cut off so they are not scored. Pure.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

/// Lower-cases, strips accents and turns everything but letters and digits into single spaces.
/// The result is padded with one space on each side, so that `" word "` matches whole words.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    let mut last_space = true;
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
    out
}

/// [`fold`] then replaces whole words by their synonyms (a synonym may be several words).
pub fn normalize(text: &str, synonyms: &HashMap<String, String>) -> String {
    let folded = fold(text);
    if synonyms.is_empty() {
        return folded;
    }
    let mut out = String::with_capacity(folded.len() + 16);
    out.push(' ');
    for word in folded.split_whitespace() {
        match synonyms.get(word) {
            Some(rep) => out.push_str(rep),
            None => out.push_str(word),
        }
        out.push(' ');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_and_punctuation() {
        assert_eq!(fold("SIGI—Érror!!  (kode: 500)"), " sigi error kode 500 ");
        assert_eq!(fold("e-SKA/INATRADE"), " e ska inatrade ");
        assert_eq!(fold(""), " ");
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
