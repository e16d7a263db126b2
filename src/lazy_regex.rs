//! A configured regex (a route pattern, a catalogue's `when_regex` or information `pattern`)
//! compiled when a text first needs it, and for an ASCII text without Unicode's classes. Pure.
//!
//! Compiling is most of what such a regex costs a process that handles one mail (`loket ingest`),
//! and a `\b` or a `\w` of Unicode's meaning costs far more to compile than its ASCII meaning
//! (two `(\w+\s+){0,3}` gaps of HERO's rules: 8.0 million instructions, without Unicode 1.9
//! million; Pusintek's catalogue's thirteen `\b(…)` conditions, all compiled at load: 47
//! million). On an ASCII text the two meanings match alike (`\w`, `\s`, `\d` and `\b` differ
//! only on other characters; case folding adds only non-ASCII letters), so an ASCII text runs the
//! ASCII regex, and any other text the Unicode one.

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};

#[derive(Debug, Clone)]
pub struct LazyRegex {
    source: String,
    case_insensitive: bool,
    /// Its error where it does not compile (a size limit): then it matches nothing, with a
    /// warning (or, compiled at load, the error is the caller's).
    unicode: OnceLock<Result<Regex, String>>,
    /// `None` where it does not compile without Unicode (a pattern that could match bytes that are
    /// not UTF-8): then the Unicode regex runs on ASCII texts too.
    ascii: OnceLock<Option<Regex>>,
}

impl LazyRegex {
    /// `source`, its syntax checked (an error names what is wrong); compiled when first used.
    pub fn new(source: &str, case_insensitive: bool) -> Result<Self, String> {
        // Checked as written: ignoring case makes no pattern wrong, and folding every letter's
        // case was nearly half of the check (Pusintek's thirteen conditions: 2.8 M instructions
        // with it, 1.6 M without).
        regex_syntax::Parser::new().parse(source).map_err(|e| e.to_string())?;
        Ok(Self::parsed(source, case_insensitive))
    }

    /// [`LazyRegex::new`] for a `source` whose syntax the caller checked already.
    pub(crate) fn parsed(source: &str, case_insensitive: bool) -> Self {
        Self { source: source.to_string(), case_insensitive, unicode: OnceLock::new(), ascii: OnceLock::new() }
    }

    /// [`LazyRegex::new`] compiled at once, both forms (a process that handles many texts: no
    /// text waits for a compilation, and an error is found at load).
    pub fn compiled(source: &str, case_insensitive: bool) -> Result<Self, String> {
        let r = Self::new(source, case_insensitive)?;
        r.compile()?;
        Ok(r)
    }

    /// Compiles both forms now, where not yet compiled; an error where the Unicode one does not
    /// compile (it then matches nothing).
    pub fn compile(&self) -> Result<(), String> {
        self.ascii.get_or_init(|| self.build(false).ok());
        self.unicode
            .get_or_init(|| self.build(true).map_err(|e| e.to_string()))
            .as_ref()
            .map(|_| ())
            .map_err(Clone::clone)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, text: &str) -> bool {
        let ascii = if text.is_ascii() { self.ascii.get_or_init(|| self.build(false).ok()).as_ref() } else { None };
        ascii.or_else(|| self.unicode()).is_some_and(|r| r.is_match(text))
    }

    fn unicode(&self) -> Option<&Regex> {
        self.unicode
            .get_or_init(|| {
                self.build(true).map_err(|e| {
                    tracing::warn!(pattern = %self.source, error = %e, "a configured regex does not compile; it matches nothing");
                    e.to_string()
                })
            })
            .as_ref()
            .ok()
    }

    fn build(&self, unicode: bool) -> Result<Regex, regex::Error> {
        RegexBuilder::new(&self.source).case_insensitive(self.case_insensitive).unicode(unicode).build()
    }

    /// Which forms are compiled so far (Unicode, ASCII): tests.
    #[cfg(test)]
    pub(crate) fn compiled_forms(&self) -> (bool, bool) {
        (self.unicode.get().is_some(), self.ascii.get().is_some())
    }
}

/// Kept (a desk's compiled rules between processes, [`crate::routing::kept`]) as its source and
/// whether it ignores case; read back uncompiled, its syntax taken as checked when it was kept.
impl serde::Serialize for LazyRegex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.source, self.case_insensitive).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for LazyRegex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (source, case_insensitive) = <(String, bool)>::deserialize(d)?;
        Ok(Self::parsed(&source, case_insensitive))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On ASCII texts the ASCII form decides, as the Unicode one would (the Unicode one is not
    /// even compiled); elsewhere the Unicode one, whose `\w` and `\b` take other letters.
    #[test]
    fn ascii_texts_run_the_ascii_form_and_match_as_unicode_would() {
        let sources = [r"\bdata\s+(\w+\s+){0,3}harga\b", r"\b(3[1-9]|[4-9][0-9]) (akun|Pegawai)\b", r"^\d{18}$"];
        let texts = [
            " data beras harga ",
            " data beras dan gula pasir harga ",
            "databeras harga",
            " 35 pegawai ",
            " 35 PEGAWAI baru",
            " 135 pegawai ",
            "198001012006041001",
            "19800101200604100",
            "",
        ];
        for (source, ci) in sources.iter().flat_map(|s| [(s, false), (s, true)]) {
            let lazy = LazyRegex::new(source, ci).unwrap();
            let unicode = RegexBuilder::new(source).case_insensitive(ci).build().unwrap();
            for t in texts {
                assert_eq!(lazy.is_match(t), unicode.is_match(t), "{source} ({ci}) on {t:?}");
            }
            assert_eq!(lazy.compiled_forms(), (false, true), "{source}");
        }
        let lazy = LazyRegex::new(r"\bdata\s+(\w+\s+){0,3}harga\b", false).unwrap();
        assert!(lazy.is_match(" data рис harga "));
        assert!(
            !RegexBuilder::new(r"\bdata\s+(\w+\s+){0,3}harga\b")
                .unicode(false)
                .build()
                .unwrap()
                .is_match(" data рис harga ")
        );
        assert_eq!(lazy.compiled_forms(), (true, false));
        // Case folding of Unicode: the Kelvin sign is a `k` there, on a text that is not ASCII.
        assert!(LazyRegex::new(r"\bakun\b", true).unwrap().is_match("\u{212A}UN AKUN"));
    }

    #[test]
    fn a_syntax_error_is_found_at_once_and_a_pattern_without_an_ascii_form_still_matches() {
        assert!(LazyRegex::new(r"\b(3[1-9]", false).unwrap_err().contains("unclosed group"));
        assert!(LazyRegex::compiled(r"\b(3[1-9]", false).is_err());
        // The errors found after parsing, in the translation, are found ignoring case too.
        for bad in [r"\p{Klingon}", r"[a&&b]x{2,1}", r"(?i)\p{Greek=Foo}"] {
            let (plain, folded) = (LazyRegex::new(bad, false), LazyRegex::new(bad, true));
            assert!(plain.is_err() && folded.is_err(), "{bad}");
            assert!(LazyRegex::compiled(bad, true).is_err(), "{bad}");
        }
        let dot = LazyRegex::compiled("a.c", false).unwrap();
        assert!(dot.is_match("abc") && dot.is_match("aéc") && !dot.is_match("ac"));
        assert_eq!(dot.as_str(), "a.c");
    }
}
