//! The pure mail leaves: raw bytes → [`parse::ParsedMail`] (with [`bounce`] reports read and
//! winmail.dat unpacked), who wrote it ([`loopguard::MailKind`]), what the sender wrote now
//! ([`trim`]), the desk's [`attachments`] policy, and the outbound bytes ([`compose`]).
//!
//! Nothing here touches the store, the network or a runtime: no `crate::store`, no tokio, no
//! clock — `now` is passed in. The [`crate::pipeline`] joins these decisions with the store.

pub mod attachments;
pub mod bounce;
pub mod charset;
pub mod compose;
pub mod hygiene;
pub mod loopguard;
pub mod parse;
pub mod trim;

/// Words one of which every match of a case-insensitive built-in regex in ASCII text holds: the
/// cheap test ([`Words::may_hold`]) that spares a line or header the regex (and the one-message
/// process of `loket ingest` the regex's compilation, done on first use).
pub(crate) struct Words {
    list: &'static [&'static str],
    finder: std::sync::OnceLock<aho_corasick::AhoCorasick>,
    /// A text has passed: the regex it guards is compiled, and its own search is as quick.
    passed: std::sync::atomic::AtomicBool,
    /// How many texts have been looked at: the first [`Words::SCANNED`] word by word, the rest by
    /// an automaton, built then (a one-message process does not pay for building it).
    looked: std::sync::atomic::AtomicU32,
}

impl Words {
    /// How many texts are scanned word by word before the automaton is built: building it costs
    /// about what scanning a few hundred short texts does.
    const SCANNED: u32 = 64;

    pub(crate) const fn new(list: &'static [&'static str]) -> Self {
        Self {
            list,
            finder: std::sync::OnceLock::new(),
            passed: std::sync::atomic::AtomicBool::new(false),
            looked: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Whether `text` may match the regex: [`Words::holds`], or the regex is compiled already
    /// (every use tries it right after a text passes), so this test would only add work.
    pub(crate) fn may_hold(&self, text: &str) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.passed.load(Relaxed) {
            return true;
        }
        let holds = self.holds(text);
        if holds {
            self.passed.store(true, Relaxed);
        }
        holds
    }

    /// Whether `text` holds one of the words (ASCII case ignored), or a character beyond ASCII
    /// (always tried: Unicode case folding makes `ſ` an `s` and the Kelvin sign a `k`, and some
    /// of the regexes' words are not ASCII).
    pub(crate) fn holds(&self, text: &str) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if !text.is_ascii() {
            return true;
        }
        if self.finder.get().is_none() && self.looked.fetch_add(1, Relaxed) < Self::SCANNED {
            return self.scan(text);
        }
        self.finder
            .get_or_init(|| {
                // The texts are short (a line, a name, a subject): a DFA without a
                // prefilter reads them in one pass, where setting up the prefilter's
                // vector search cost more than the search itself.
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                    .prefilter(false)
                    .build(self.list)
                    .expect("a few built-in words")
            })
            .is_match(text)
    }

    /// Whether `text` holds one of the words (ASCII case ignored), looked for one by one.
    fn scan(&self, text: &str) -> bool {
        let text = text.as_bytes();
        self.list.iter().any(|w| text.windows(w.len()).any(|s| s.eq_ignore_ascii_case(w.as_bytes())))
    }
}

/// Asserts that every ASCII text that `pattern` matches holds one of the words `needles`, on texts
/// generated from the pattern: its classes cut down to ASCII (case folding included), its anchors
/// and word boundaries dropped (more texts match).
#[cfg(test)]
pub(crate) fn assert_needles_cover(pattern: &str, needles: &Words) {
    use proptest::test_runner::{Config, TestRunner};
    use regex_syntax::hir::{Capture, Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Repetition};
    fn ascii(h: &Hir) -> Hir {
        match h.kind() {
            HirKind::Look(_) => Hir::empty(),
            HirKind::Class(Class::Unicode(c)) => {
                let mut a = c.clone();
                a.intersect(&ClassUnicode::new([ClassUnicodeRange::new('\0', '\x7f')]));
                // A class of other characters only: the texts through it are not ASCII.
                if a.ranges().is_empty() { h.clone() } else { Hir::class(Class::Unicode(a)) }
            }
            HirKind::Repetition(r) => Hir::repetition(Repetition { sub: Box::new(ascii(&r.sub)), ..r.clone() }),
            HirKind::Capture(c) => Hir::capture(Capture { sub: Box::new(ascii(&c.sub)), ..c.clone() }),
            HirKind::Concat(v) => Hir::concat(v.iter().map(ascii).collect()),
            HirKind::Alternation(v) => Hir::alternation(v.iter().map(ascii).collect()),
            _ => h.clone(),
        }
    }
    let hir = regex_syntax::Parser::new().parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    let texts = proptest::string::string_regex_parsed(&ascii(&hir)).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    let ascii_texts = std::cell::Cell::new(0);
    let mut runner = TestRunner::new(Config { cases: 3000, failure_persistence: None, ..Config::default() });
    let result = runner.run(&texts, |t| {
        ascii_texts.set(ascii_texts.get() + usize::from(t.is_ascii()));
        proptest::prop_assert!(needles.holds(&t), "{t:?} holds none of {:?}", needles.list);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{pattern}: {e}");
    }
    assert!(ascii_texts.get() >= 1000, "{pattern}: only {} ASCII texts generated", ascii_texts.get());
}

#[cfg(test)]
mod tests {
    /// The mail leaves and the SLA arithmetic do no I/O and read no clock: no `use` of the store,
    /// channels, HTTP, the pipeline, tokio, sqlx or reqwest, and no `now()` outside the tests
    /// (a test may time itself).
    #[test]
    fn words_are_found_alike_scanned_and_by_the_automaton() {
        use super::Words;
        use std::sync::atomic::Ordering::Relaxed;
        static WORDS: Words = Words::new(&["daemon", "out of", "ndr administrator", "x"]);
        let mut texts: Vec<String> = [
            "",
            "Mail Delivery DAEMON",
            "out-of office",
            "OUT OF OFFICE",
            "nDr AdministratoR",
            "XYZ",
            "none here",
            "ou t of",
            "daemo",
        ]
        .map(String::from)
        .to_vec();
        // Texts of the words' letters in either case, and spaces (a fixed xorshift).
        let letters = b"daemonDAEMONutfUTFrisx ";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..500 {
            let mut t = String::new();
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                t.push(letters[(state % letters.len() as u64) as usize] as char);
            }
            state = state.wrapping_add(1);
            texts.push(t);
        }
        let scanned: Vec<bool> = texts.iter().map(|t| WORDS.scan(t)).collect();
        assert!(scanned.iter().any(|h| *h) && scanned.iter().any(|h| !*h));
        WORDS.looked.store(Words::SCANNED, Relaxed);
        for (t, scanned) in texts.iter().zip(scanned) {
            assert_eq!(WORDS.holds(t), scanned, "{t:?}");
        }
        assert!(WORDS.finder.get().is_some(), "the automaton answered");
    }

    #[test]
    fn the_mail_leaves_and_the_sla_arithmetic_do_no_io() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("mail"))
            .expect("src/mail")
            .map(|e| e.expect("src/mail entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        files.sort();
        assert!(files.len() >= 7, "{files:?}");
        files.extend([root.join("sla/mod.rs"), root.join("sla/calendar.rs")]);
        for path in &files {
            let name = path.strip_prefix(&root).unwrap_or(path).display();
            let source = std::fs::read_to_string(path).expect("readable source");
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            for line in source.lines().map(str::trim) {
                for banned in
                    ["crate::store", "crate::channel", "crate::http", "crate::pipeline", "tokio", "sqlx", "reqwest"]
                {
                    assert!(!(line.starts_with("use ") && line.contains(banned)), "{name}: `{line}`");
                }
            }
            for line in code.lines().map(str::trim) {
                for clock in ["SystemTime::now", "Utc::now", "Local::now", "Instant::now"] {
                    assert!(!line.contains(&format!("{clock}()")), "{name} reads the clock: `{line}`");
                }
            }
        }
    }
}
