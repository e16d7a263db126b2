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

/// The part of a mail body a person wrote now: quoted replies, forwarded-message headers of the
/// reply chain and signatures are cut off. Lines starting with `>` are dropped wherever they are.
pub fn strip_quoted(body: &str) -> String {
    let mut kept = Vec::new();
    let lines: Vec<&str> = body.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let lower = t.to_lowercase();
        if t.starts_with('>') {
            continue;
        }
        let cut = t == "--"
            || t == "-- "
            || line.starts_with("-- ")
            || lower.starts_with("-----original message")
            || lower.starts_with("-----pesan asli")
            || lower.starts_with("________________________________")
            || lower.starts_with("sent from my")
            || lower.starts_with("dikirim dari")
            || lower.starts_with("get outlook for")
            || ((lower.starts_with("on ") && lower.ends_with("wrote:"))
                || (lower.starts_with("pada ") && (lower.ends_with("menulis:") || lower.contains("menulis:"))))
            || (lower.starts_with("from:")
                && lines.get(i + 1).is_some_and(|n| {
                    let n = n.trim().to_lowercase();
                    n.starts_with("sent:")
                        || n.starts_with("date:")
                        || n.starts_with("dikirim:")
                        || n.starts_with("to:")
                })
                && i > 0);
        if cut {
            break;
        }
        kept.push(*line);
    }
    kept.join("\n")
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

    #[test]
    fn cuts_quotes_and_signatures() {
        let body = "Wifi mati lagi.\n\nPada Sen, 5 Jan 2026 pukul 09.00 Admin <a@b> menulis:\n> Sudah kami perbaiki\n";
        assert_eq!(strip_quoted(body), "Wifi mati lagi.\n");
        let body = "Tolong reset.\n-- \nBudi\nKepala Subbag SIGI";
        assert_eq!(strip_quoted(body), "Tolong reset.");
        let body = "Halo\n> kutipan\nlanjut\nOn Mon, Jan 5, 2026 at 9:00 AM X <x@y> wrote:\nold";
        assert_eq!(strip_quoted(body), "Halo\nlanjut");
        let body = "Mohon dicek\n\nFrom: Helpdesk\nSent: Monday\nTo: me\nSubject: SIGI";
        assert_eq!(strip_quoted(body), "Mohon dicek\n");
        assert_eq!(strip_quoted("Dikirim dari iPhone saya"), "");
    }
}
