//! A desk's route patterns (`patterns = { 'regex' = weight }`), found in the keyword automaton's
//! one pass over the message instead of a regex search of their own. Pure.
//!
//! Each pattern gives the automaton needles (searched for after the phrases), in one of two forms:
//! - **A phrase alternation**, `\b(a|b +c|d[a-z0-9]*)\b` (most patterns): each alternative is a
//!   needle. Routing's normalised text holds only letters, digits and single spaces, so where it
//!   is ASCII a needle found is a match (a `[a-z]*` tail checks the rest of its word), and no
//!   regex runs.
//! - **Anything else** (a gap pattern, `\bx\b[a-z0-9 ]{0,40}\by`): the literals every match starts
//!   with and those it ends with (as `regex` extracts them) are the needles; the regex runs only
//!   on a message that holds one of each.
//!
//! A message whose normalised text is not all ASCII runs the regex of every phrase alternation
//! too, so that `\b` keeps Unicode's meaning there. One difference with a regex over the subject
//! and body joined: a phrase no longer runs from the subject's last word into the body's first
//! (the two are separate texts; test `a_phrase_does_not_run_from_the_subject_into_the_body`).

use crate::lazy_regex::LazyRegex;
use regex_syntax::ast::{self, Ast};
use regex_syntax::hir::literal::{ExtractKind, Extractor, Seq};

/// Where a needle was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Subject,
    Body,
}

/// How compiled: the daemon compiles every pattern's regex at load (a bad one is an error there,
/// and no message waits for a compilation); a process for a few messages compiles one when a
/// message first needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compile {
    AtLoad,
    WhenNeeded,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RoutePatterns {
    patterns: Vec<Pattern>,
    /// The needles' bytes, in the automaton's order (after the phrases).
    needles: Vec<Vec<u8>>,
    /// For each needle: its pattern and what finding it says.
    roles: Vec<(usize, Role)>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Pattern {
    /// Whether the pattern is a phrase alternation (its needles are its alternatives).
    phrases: bool,
    /// Whether a match must start with one of the needles marked [`Role::Start`] (then the text
    /// must hold one of them), and the same for its end.
    needs_start: bool,
    needs_end: bool,
    /// Compiled at load or when a text first needs it to run; for an ASCII text without
    /// Unicode's classes ([`LazyRegex`]).
    regex: LazyRegex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Role {
    /// An alternative, its last word whole.
    Word,
    /// An alternative whose last word goes on with letters or digits (`[a-z0-9]*`): on ASCII
    /// text anything that goes on goes on with these.
    Alnum,
    /// An alternative whose last word goes on with letters only (`[a-z]*`).
    Letters,
    Start,
    End,
}

/// What a message's needles said, per pattern: bits [`PHRASE`], [`START`], [`END`] for the
/// subject, the same shifted by [`BODY`] for the body.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held(Vec<u8>);

const PHRASE: u8 = 1;
const START: u8 = 2;
const END: u8 = 4;
const BODY: u32 = 3;

/// An alternative of a phrase alternation: its words and how its last word ends.
#[derive(Debug, Clone, PartialEq)]
struct Alternative {
    words: Vec<String>,
    tail: Role,
}

impl RoutePatterns {
    /// The patterns, each parsed (and with [`Compile::AtLoad`] compiled). Err: for each pattern
    /// that does not parse or compile, its index and the error.
    pub(crate) fn new(patterns: &[String], compile: Compile) -> Result<Self, Vec<(usize, String)>> {
        let mut out = Self { patterns: Vec::with_capacity(patterns.len()), needles: Vec::new(), roles: Vec::new() };
        let mut errors = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            // Parsed once: the syntax tree tells a phrase alternation, its translation (which
            // checks the rest) gives another pattern's literals.
            let parsed = ast::parse::Parser::new().parse(p).map_err(|e| e.to_string()).and_then(|ast| {
                let hir = regex_syntax::hir::translate::Translator::new().translate(p, &ast);
                hir.map(|hir| (ast, hir)).map_err(|e| e.to_string())
            });
            let (ast, hir) = match parsed {
                Ok(parsed) => parsed,
                Err(e) => {
                    errors.push((i, e));
                    continue;
                }
            };
            // Its syntax checked above: compiled now for many messages, else when one needs it.
            let regex = LazyRegex::parsed(p, false);
            if compile == Compile::AtLoad
                && let Err(e) = regex.compile()
            {
                errors.push((i, e));
                continue;
            }
            let mut pattern = Pattern { phrases: false, needs_start: false, needs_end: false, regex };
            if let Some(alternatives) = phrase_alternation(&ast) {
                pattern.phrases = true;
                for a in alternatives {
                    let mut needle = String::with_capacity(a.words.iter().map(|w| w.len() + 1).sum::<usize>() + 1);
                    for w in &a.words {
                        needle.push(' ');
                        needle.push_str(w);
                    }
                    if a.tail == Role::Word {
                        needle.push(' ');
                    }
                    out.needles.push(needle.into_bytes());
                    out.roles.push((i, a.tail));
                }
            } else {
                for (kind, role) in [(ExtractKind::Prefix, Role::Start), (ExtractKind::Suffix, Role::End)] {
                    let Some(literals) = needed_literals(&hir, kind) else { continue };
                    match role {
                        Role::Start => pattern.needs_start = true,
                        _ => pattern.needs_end = true,
                    }
                    for l in literals {
                        out.needles.push(l);
                        out.roles.push((i, role));
                    }
                }
            }
            out.patterns.push(pattern);
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }

    /// The needles for the keyword automaton, in order.
    pub(crate) fn needles(&self) -> impl Iterator<Item = &[u8]> {
        self.needles.iter().map(Vec::as_slice)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Nothing held yet, for one message.
    pub(crate) fn held(&self) -> Held {
        Held(vec![0; self.patterns.len()])
    }

    /// Needle `needle` was found in `text` (a normalised `field`), ending at byte `end`.
    pub(crate) fn hold(&self, held: &mut Held, needle: usize, text: &str, end: usize, field: Field) {
        let (p, role) = self.roles[needle];
        let bit = match role {
            Role::Word | Role::Alnum => PHRASE,
            Role::Letters => {
                let rest = text[end..].bytes().take_while(|&b| b != b' ');
                if rest.clone().all(|b| b.is_ascii_lowercase()) { PHRASE } else { 0 }
            }
            Role::Start => START,
            Role::End => END,
        };
        held.0[p] |= if field == Field::Body { bit << BODY } else { bit };
    }

    /// The patterns that match, in index order: from what the needles held (the subject's only
    /// when `subject` counts), and where that cannot tell, each pattern's regex over `joined()`
    /// (the subject, when it counts, and the body, as one text). `ascii`: whether both texts
    /// are ASCII.
    pub(crate) fn matches(
        &self,
        held: &Held,
        subject: bool,
        ascii: bool,
        joined: impl FnOnce() -> String,
    ) -> Vec<usize> {
        // Joined once, by the first pattern whose regex must run.
        let (mut joined, mut text) = (Some(joined), None);
        let mut found = Vec::new();
        for (i, p) in self.patterns.iter().enumerate() {
            let bits = held.0[i] >> BODY | if subject { held.0[i] & 7 } else { 0 };
            let hit = if p.phrases && ascii {
                bits & PHRASE != 0
            } else if (p.needs_start && bits & START == 0) || (p.needs_end && bits & END == 0) {
                false
            } else {
                let t: &String = text.get_or_insert_with(|| joined.take().map_or_else(String::new, |f| f()));
                p.regex.is_match(t)
            };
            if hit {
                found.push(i);
            }
        }
        found
    }

    /// How many patterns have their regex compiled so far (tests).
    #[cfg(test)]
    fn compiled(&self) -> usize {
        self.patterns.iter().filter(|p| p.regex.compiled_forms() != (false, false)).count()
    }
}

/// Literals one of which starts (`kind` prefix) or ends (suffix) every match of `hir`; `None` when
/// there is no such finite set, or it holds the empty string (no help), or a literal holds two
/// spaces (it might run from the subject into the body, where the needles are not searched).
fn needed_literals(hir: &regex_syntax::hir::Hir, kind: ExtractKind) -> Option<Vec<Vec<u8>>> {
    let mut extractor = Extractor::new();
    extractor.kind(kind);
    let seq: Seq = extractor.extract(hir);
    let literals = seq.literals()?;
    if literals.iter().any(|l| l.is_empty() || l.as_bytes().windows(2).any(|w| w == b"  ")) {
        return None;
    }
    Some(literals.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// The alternatives of a pattern (its syntax tree `ast`) when it is `\b(alternative|…)\b` (or `\balternative\b`), each
/// lower-case ASCII letters and digits in words joined by `' '` or `' +'`, the last word
/// optionally going on with `[a-z0-9]*` or `[a-z]*`. `None` for anything else.
fn phrase_alternation(ast: &Ast) -> Option<Vec<Alternative>> {
    let Ast::Concat(concat) = ast else { return None };
    let [first, middle @ .., last] = concat.asts.as_slice() else { return None };
    if !is_word_boundary(first) || !is_word_boundary(last) || middle.is_empty() {
        return None;
    }
    let inner: &[Ast] = match middle {
        [Ast::Group(g)] if g.flags().is_none_or(|f| f.items.is_empty()) => std::slice::from_ref(&*g.ast),
        _ => middle,
    };
    let alternatives: &[Ast] = match inner {
        [Ast::Alternation(a)] => &a.asts,
        _ => inner,
    };
    if let [Ast::Alternation(_)] = inner {
        alternatives.iter().map(|a| alternative(std::slice::from_ref(a))).collect()
    } else {
        Some(vec![alternative(inner)?])
    }
}

fn is_word_boundary(ast: &Ast) -> bool {
    matches!(ast, Ast::Assertion(a) if a.kind == ast::AssertionKind::WordBoundary)
}

/// One alternative: `items` in order (a concatenation is flattened).
fn alternative(items: &[Ast]) -> Option<Alternative> {
    let items: Vec<&Ast> = items
        .iter()
        .flat_map(|a| match a {
            Ast::Concat(c) => c.asts.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect();
    let mut words = vec![String::new()];
    let mut tail = Role::Word;
    for (k, item) in items.iter().enumerate() {
        let is_last = k + 1 == items.len();
        match item {
            Ast::Literal(l) if l.kind == ast::LiteralKind::Verbatim => {
                let c = l.c;
                if c == ' ' {
                    if words.last().is_none_or(String::is_empty) {
                        return None;
                    }
                    words.push(String::new());
                } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    words.last_mut()?.push(c);
                } else {
                    return None;
                }
            }
            // ` +`: one space between words in normalised text.
            Ast::Repetition(r)
                if r.op.kind == ast::RepetitionKind::OneOrMore
                    && matches!(&*r.ast, Ast::Literal(l) if l.kind == ast::LiteralKind::Verbatim && l.c == ' ') =>
            {
                if words.last().is_none_or(String::is_empty) {
                    return None;
                }
                words.push(String::new());
            }
            Ast::Repetition(r) if is_last && r.op.kind == ast::RepetitionKind::ZeroOrMore => {
                tail = match class_ranges(&r.ast)?.as_slice() {
                    [('a', 'z')] => Role::Letters,
                    [('0', '9'), ('a', 'z')] => Role::Alnum,
                    _ => return None,
                };
            }
            _ => return None,
        }
    }
    if words.last().is_none_or(String::is_empty) {
        return None;
    }
    Some(Alternative { words, tail })
}

/// The ranges of a bracketed class of plain ranges (`[a-z0-9]`), sorted; `None` for any other.
fn class_ranges(ast: &Ast) -> Option<Vec<(char, char)>> {
    let Ast::ClassBracketed(c) = ast else { return None };
    if c.negated {
        return None;
    }
    let ast::ClassSet::Item(item) = &c.kind else { return None };
    let items = match item {
        ast::ClassSetItem::Union(u) => u.items.iter().collect::<Vec<_>>(),
        one => vec![one],
    };
    let mut ranges = items
        .into_iter()
        .map(|i| match i {
            ast::ClassSetItem::Range(r)
                if r.start.kind == ast::LiteralKind::Verbatim && r.end.kind == ast::LiteralKind::Verbatim =>
            {
                Some((r.start.c, r.end.c))
            }
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    ranges.sort_unstable();
    Some(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::{AhoCorasick, MatchKind};
    use regex::Regex;

    fn alternatives(p: &str) -> Option<Vec<(String, Role)>> {
        let ast = ast::parse::Parser::new().parse(p).ok()?;
        phrase_alternation(&ast).map(|a| a.into_iter().map(|a| (a.words.join(" "), a.tail)).collect())
    }

    #[test]
    fn phrase_alternations_are_recognised_and_nothing_else() {
        assert_eq!(
            alternatives(r"\b(tidak bisa|wi +fi|freez[a-z0-9]*|deface[a-z]*|500)\b"),
            Some(vec![
                ("tidak bisa".into(), Role::Word),
                ("wi fi".into(), Role::Word),
                ("freez".into(), Role::Alnum),
                ("deface".into(), Role::Letters),
                ("500".into(), Role::Word),
            ])
        );
        assert_eq!(alternatives(r"\bvpn\b"), Some(vec![("vpn".into(), Role::Word)]));
        assert_eq!(
            alternatives(r"\b(?:vpn|lan)\b"),
            Some(vec![("vpn".into(), Role::Word), ("lan".into(), Role::Word)])
        );
        for other in [
            r"\bva\b[a-z0-9 ]{0,60}\b(aplikasi|web)\b",
            r"(aktif|nonaktif)[a-z0-9]*\b",
            r"\b(hosting|vm)",
            r"(?i)\bvpn\b",
            r"\b(?i:vpn)\b",
            r"\bVPN\b",
            r"\b(a|)\b",
            r"\b( a)\b",
            r"\b(a  b)\b",
            r"\b(a +)\b",
            r"\b(a[a-z0-9]*b)\b",
            r"\b(a[^a-z]*)\b",
            r"\b(a[a-y]*)\b",
            r"\b(a\w*)\b",
            r"\b(a\s+b)\b",
            r"\b(a.b)\b",
            r"\b\b",
            r"\B(a)\b",
        ] {
            assert_eq!(alternatives(other), None, "{other}");
        }
    }

    /// What the patterns find through their needles (searched as the desk's automaton searches
    /// them: each text on its own) is what one regex per pattern finds over the texts joined.
    fn through_needles(set: &RoutePatterns, subject: &str, body: &str, subject_counts: bool) -> Vec<usize> {
        let ac = AhoCorasick::builder().match_kind(MatchKind::Standard).build(set.needles()).unwrap();
        let mut held = set.held();
        for (text, field) in [(subject, Field::Subject), (body, Field::Body)] {
            for m in ac.find_overlapping_iter(text) {
                set.hold(&mut held, m.pattern().as_usize(), text, m.end(), field);
            }
        }
        let joined = || if subject_counts { [subject, body].concat() } else { body.to_string() };
        set.matches(&held, subject_counts, subject.is_ascii() && body.is_ascii(), joined)
    }

    /// A gap pattern runs its regex without Unicode on an ASCII text (the Unicode one is not even
    /// compiled), and the Unicode one where the text is not ASCII, whose letters `\w` must take.
    #[test]
    fn a_gap_runs_without_unicode_on_ascii_text_and_with_it_elsewhere() {
        let set = RoutePatterns::new(&[r"\bdata\s+(\w+\s+){0,3}harga\b".to_string()], Compile::WhenNeeded).unwrap();
        assert_eq!(through_needles(&set, "", " data beras harga ", false), vec![0]);
        assert_eq!(through_needles(&set, "", " data beras dan gula pasir harga ", false), Vec::<usize>::new());
        let p = &set.patterns[0];
        assert_eq!(p.regex.compiled_forms(), (false, true));
        assert_eq!(through_needles(&set, "", " data рис harga ", false), vec![0]);
        assert_eq!(p.regex.compiled_forms(), (true, true));
    }

    const PATTERNS: [&str; 9] = [
        r"\b(tidak bisa|wi +fi|freez[a-z0-9]*|deface[a-z]*|500|can t)\b",
        r"\b(server +testing|development|ssh)\b",
        r"(aktif|nonaktif|power on)[a-z0-9]*\b[a-z0-9 ]{0,40}\b(hosting|vm|virtual machine|server)",
        r"\bpassword\b[a-z0-9 ]{0,40}\b(direset|reset|ganti[a-z]*)\b",
        r"\bakses\b[a-z ]{0,15}\bfolder\b",
        r"\bva\b[a-z0-9 ]{0,60}\b(aplikasi|website|web)\b",
        r"\w+@\w+",
        r"\b(wifi|kantor)\b",
        r"\b(lisensi|license)\b[a-z0-9 ]{0,80}(instal|install|pasang)",
    ];

    #[test]
    fn needles_find_what_the_regexes_find() {
        let patterns: Vec<String> = PATTERNS.map(String::from).to_vec();
        let regexes: Vec<Regex> = patterns.iter().map(|p| Regex::new(p).unwrap()).collect();
        let texts = [
            " ",
            " wifi tidak bisa ",
            " tidak bisanya ",
            " wi fi mati ",
            " freezing terus ",
            " layar freez3 ",
            " situs defaced ",
            " situs deface2 ",
            " kode 500 ",
            " kode 5000 ",
            " i can t login ",
            " mohon aktifkan vm nya ",
            " mohon nonaktifkan segera server kami ",
            " vm diaktifkan ",
            " power onkan sekarang juga servernya ",
            " aktif dan setelah itu kita lihat lagi bagaimana kelanjutannya dengan server ",
            " password mohon direset ",
            " password belum diganti ",
            " reset password ",
            " akses ke folder ",
            " akses 2 folder ",
            " va untuk web ",
            " vaksin web ",
            " server testing ",
            " development ",
            " wifi кантор ",
            " кантор wifi ",
            " wifiкантор ",
            " freezд ",
            " lisensi untuk diinstal ",
            " user@host ",
        ];
        let set = RoutePatterns::new(&patterns, Compile::WhenNeeded).unwrap();
        assert_eq!(set.compiled(), 0);
        for subject in texts {
            for body in texts {
                for subject_counts in [true, false] {
                    let joined = if subject_counts { [subject, body].concat() } else { body.to_string() };
                    let want: Vec<usize> =
                        regexes.iter().enumerate().filter(|(_, r)| r.is_match(&joined)).map(|(i, _)| i).collect();
                    assert_eq!(through_needles(&set, subject, body, subject_counts), want, "{subject:?} + {body:?}");
                }
            }
        }
        // The phrase alternations ran no regex on ASCII texts; the others did only where their
        // literals were.
        let set = RoutePatterns::new(&patterns, Compile::WhenNeeded).unwrap();
        assert_eq!(through_needles(&set, " vpn ", " wifi tidak bisa server testing ", true), vec![0, 1, 7]);
        assert_eq!(set.compiled(), 1, "only `\\w+@\\w+`, which has no literal");
    }

    /// Patterns of every kind, and texts that hold their literals without matching them, case
    /// folding (the Kelvin sign is a `k`, `ẞ` an `ß`), Unicode classes and letters: the needles
    /// and the regexes they let run find what the regexes alone find.
    #[test]
    fn literals_let_the_regexes_run_where_they_can_match() {
        let patterns: Vec<String> = [
            r"\bdata\s+(\w+\s+){0,3}harga\b",
            r"\b(mohon|minta)\s+(\w+\s+){0,4}(akses|akun)\s+(\w+\s+){0,4}(portal\s+)?satu\s*data\b",
            r"(?i)\bvpn\b",
            r"(?i)straße",
            r"(?i)k[a-z]+s\b",
            r"caf[ée]\b",
            r"\w+@\w+",
            r"\d{3}",
            r"^\s*$",
            r"[a&&b]",
            r"\bva\b[a-z0-9 ]{0,60}\b(aplikasi|web)\b",
            r"sertifikat|tte",
            r"\b(kode|code)\b",
        ]
        .map(String::from)
        .to_vec();
        let texts = [
            " ",
            " selamat pagi tidak bisa login ",
            " harga data beras ",
            " data harga ",
            " data beras dan gula harga ",
            " data beras dan gula minyak harga ",
            " mohon dibuatkan akun portal satu data ",
            " mohon akses satu data ",
            " mohon dibuatkan akses untuk data satu ",
            " mohon bantuan akun satudata ",
            " pakai vpn kantor ",
            " pakai vpnku ",
            " VPN ",
            " STRAẞE ",
            " strasse ",
            " \u{212A}abels ",
            " kabels ",
            " kabel ",
            " café ",
            " cafe\u{301} ",
            " cafés ",
            " user@host ",
            " user@ ",
            " kode 503 ",
            " kode ٥٠٣ ",
            " va untuk aplikasi ",
            " vaksin aplikasi ",
            " va ",
            " tte sertifikat ",
            " ttd ",
            " данные δεδομένα ",
            " kodeд ",
        ];
        let regexes: Vec<Regex> = patterns.iter().map(|p| Regex::new(p).unwrap()).collect();
        let set = RoutePatterns::new(&patterns, Compile::WhenNeeded).unwrap();
        through_needles(&set, " ", " halo ", true);
        assert_eq!(set.compiled(), 3, "`\\w+@\\w+`, `\\d{{3}}` and `^\\s*$` have no usable literal");
        let mut matched = std::collections::HashSet::new();
        for text in texts {
            let joined = [" ", text].concat();
            let want: Vec<usize> =
                regexes.iter().enumerate().filter(|(_, r)| r.is_match(&joined)).map(|(i, _)| i).collect();
            assert_eq!(through_needles(&set, " ", text, true), want, "{text:?}");
            matched.extend(want);
        }
        assert_eq!(matched.len(), patterns.len() - 1, "all but `[a&&b]` matched a text: {matched:?}");
    }

    #[test]
    fn a_phrase_does_not_run_from_the_subject_into_the_body() {
        let patterns = vec![r"\b(wi +fi)\b".to_string()];
        let set = RoutePatterns::new(&patterns, Compile::AtLoad).unwrap();
        assert!(Regex::new(&patterns[0]).unwrap().is_match(" wi  fi "));
        assert_eq!(through_needles(&set, " wi ", " fi ", true), Vec::<usize>::new());
        assert_eq!(through_needles(&set, " wi fi ", " ", true), vec![0]);
        assert_eq!(through_needles(&set, " wi fi ", " ", false), Vec::<usize>::new());
    }

    #[test]
    fn a_pattern_that_does_not_parse_or_compile_is_named() {
        let patterns = vec![r"\bvpn\b".to_string(), "(".to_string(), r"\w{1000}{1000}".to_string()];
        let errs = RoutePatterns::new(&patterns, Compile::AtLoad).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2], "{errs:?}");
        let errs = RoutePatterns::new(&patterns, Compile::WhenNeeded).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), [1], "parsed only: {errs:?}");
    }
}
