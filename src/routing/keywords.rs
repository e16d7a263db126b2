//! How a desk's keyword phrases and its route patterns' needles are found in a normalised text:
//! every occurrence of each (overlapping), reported by id (the phrases' indices, then the
//! needles' past them) with where it stands. Pure.
//!
//! Two forms find the same hits in the same order (`hits_match_one_automaton`, and the golden
//! `routing::the_ingest_router_decides_the_dev_set_as_the_serve_router`):
//! - [`Keywords::Automaton`], for many messages: one Aho-Corasick automaton over the phrases and
//!   the needles, which searches fastest and takes the longest to build.
//! - [`Keywords::Sorted`], for the few messages of one `loket ingest` process: the phrases'
//!   indices in the order of their texts, which is kept with the rules and needs no building; each
//!   space of the text is looked up there by the word that follows it. Only the needles (a few
//!   hundred, against a desk's thousands of phrases) get an automaton.
//!
//! A phrase's text is a space and its normalised words, with a space after them (" reset
//! password ") or without where its last word is a prefix (" intern", from `intern*`), so it can
//! start only at a space of the text. A phrase found there with a space after its first word
//! starts with the text's head there (the space, the next word and the space after it), and the
//! phrases with that head stand together in text order. The other phrases, one word that is a
//! prefix (the stems), are few: they are looked up by the space and the first byte.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use super::rules::{Phrase, Purpose};

#[derive(Debug, Clone)]
pub(crate) enum Keywords {
    /// The phrases, then the needles.
    Automaton(AhoCorasick),
    /// The phrases' indices in the order of their texts: those with a space after their first
    /// word (`order`) and the others (`stems`); and the needles' own automaton.
    Sorted { order: Vec<u32>, stems: Vec<u32>, needles: AhoCorasick },
}

impl Keywords {
    /// The keywords of `phrases` (each a space and words, with or without a space after them)
    /// and `needles`, in the form for `purpose`: the automaton for many messages, sorted for a
    /// few (but the automaton where a phrase does not start with a space and then a word: only it
    /// finds such a phrase).
    pub(crate) fn new<'a>(
        phrases: &'a [Phrase],
        needles: impl Iterator<Item = &'a [u8]>,
        purpose: Purpose,
    ) -> Result<Self, aho_corasick::BuildError> {
        match purpose {
            Purpose::Many => Ok(Self::Automaton(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(phrases.iter().map(|p| p.text.as_bytes()).chain(needles))?,
            )),
            Purpose::Few if phrases.iter().all(|p| starts_a_word(&p.text)) => {
                let (order, stems) = text_order(phrases);
                Ok(Self::Sorted { order, stems, needles: needle_automaton(needles)? })
            }
            Purpose::Few => Self::new(phrases, needles, Purpose::Many),
        }
    }

    /// Keywords read back (the phrases' order, as kept: [`Keywords`]'s serde) for `phrases`,
    /// with the needles' automaton built again; an error where the order is not one of those
    /// phrases, or where an automaton was read (it is never kept).
    pub(crate) fn rebuilt<'a>(
        self,
        phrases: &[Phrase],
        needles: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Self, String> {
        let Self::Sorted { order, stems, .. } = self else { return Err("an automaton is not kept".into()) };
        let mut seen = vec![false; phrases.len()];
        let whole = order.len() + stems.len() == phrases.len()
            && order
                .iter()
                .chain(&stems)
                .all(|&i| seen.get_mut(i as usize).is_some_and(|s| !std::mem::replace(s, true)));
        let fits = whole
            && phrases.iter().all(|p| starts_a_word(&p.text))
            && order.iter().all(|&i| !is_stem(&phrases[i as usize].text))
            && stems.iter().all(|&i| is_stem(&phrases[i as usize].text))
            && [&order, &stems]
                .iter()
                .all(|o| o.windows(2).all(|w| phrases[w[0] as usize].text < phrases[w[1] as usize].text));
        if !fits {
            return Err("the phrases' order does not fit them".into());
        }
        Ok(Self::Sorted { order, stems, needles: needle_automaton(needles).map_err(|e| e.to_string())? })
    }

    /// The phrases' indices in the order of their texts, as kept (the stems apart); `None` for
    /// the automaton.
    pub(crate) fn order(&self) -> Option<(&[u32], &[u32])> {
        match self {
            Self::Automaton(_) => None,
            Self::Sorted { order, stems, .. } => Some((order, stems)),
        }
    }

    /// Keywords to be read back: none yet ([`Self::rebuilt`] builds them).
    pub(crate) fn unbuilt() -> Self {
        Self::Sorted { order: Vec::new(), stems: Vec::new(), needles: empty_automaton() }
    }

    /// Calls `hit(id, start, end)` for every occurrence in `text` of a phrase (id below
    /// `phrases.len()`) and, `with_needles`, of a needle (id `phrases.len()` + its index): by
    /// end, then the longest first, then by id.
    pub(crate) fn each(
        &self,
        phrases: &[Phrase],
        text: &str,
        with_needles: bool,
        mut hit: impl FnMut(usize, usize, usize),
    ) {
        match self {
            Self::Automaton(automaton) => {
                for m in automaton.find_overlapping_iter(text) {
                    let id = m.pattern().as_usize();
                    if with_needles || id < phrases.len() {
                        hit(id, m.start(), m.end());
                    }
                }
            }
            Self::Sorted { order, stems, needles } => {
                let mut found = sorted_hits(order, stems, phrases, text);
                if with_needles {
                    let offset = phrases.len();
                    found.extend(
                        needles
                            .find_overlapping_iter(text)
                            .map(|m| (m.pattern().as_usize() + offset, m.start(), m.end())),
                    );
                }
                found.sort_unstable_by_key(|&(id, start, end)| (end, start, id));
                for (id, start, end) in found {
                    hit(id, start, end);
                }
            }
        }
    }
}

/// Kept as the phrases' order alone ([`Keywords::Sorted`]); an automaton is not kept.
impl serde::Serialize for Keywords {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.order() {
            Some(order) => order.serialize(s),
            None => Err(serde::ser::Error::custom("an automaton is not kept")),
        }
    }
}

/// Read back without the needles' automaton: [`Keywords::rebuilt`] checks the order and builds it.
impl<'de> serde::Deserialize<'de> for Keywords {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (order, stems) = <(Vec<u32>, Vec<u32>)>::deserialize(d)?;
        Ok(Self::Sorted { order, stems, needles: empty_automaton() })
    }
}

fn empty_automaton() -> AhoCorasick {
    AhoCorasick::new(std::iter::empty::<&str>()).expect("an automaton of no patterns builds")
}

/// Whether `text` starts with a space and then neither a space nor its end: a phrase the
/// sorted keywords can find.
fn starts_a_word(text: &str) -> bool {
    text.len() >= 2 && text.starts_with(' ') && !text[1..].starts_with(' ')
}

/// Whether a phrase (that starts a word) has no space after its first word: one word, a prefix.
fn is_stem(text: &str) -> bool {
    !text[1..].contains(' ')
}

/// The phrases' indices ordered by their texts: those with a space after the first word, then
/// the stems.
fn text_order(phrases: &[Phrase]) -> (Vec<u32>, Vec<u32>) {
    let mut all: Vec<u32> = (0..phrases.len() as u32).collect();
    all.sort_by(|&a, &b| phrases[a as usize].text.cmp(&phrases[b as usize].text));
    all.into_iter().partition(|&i| !is_stem(&phrases[i as usize].text))
}

/// The needles' automaton: the kind that builds fastest (few messages search it).
fn needle_automaton<'a>(needles: impl Iterator<Item = &'a [u8]>) -> Result<AhoCorasick, aho_corasick::BuildError> {
    AhoCorasick::builder().match_kind(MatchKind::Standard).kind(Some(AhoCorasickKind::NoncontiguousNFA)).build(needles)
}

/// Every occurrence of a phrase in `text`, as (id, start, end): at each space of the text, the
/// phrases of `order` that start with the head there (the space, the next word, the space after
/// it), and the `stems` that start with the space and the word's first byte.
fn sorted_hits(order: &[u32], stems: &[u32], phrases: &[Phrase], text: &str) -> Vec<(usize, usize, usize)> {
    let mut found = Vec::new();
    let mut look = |sorted: &[u32], head: &[u8], rest: &[u8], at: usize| {
        let first = sorted.partition_point(|&i| phrases[i as usize].text.as_bytes() < head);
        for &i in &sorted[first..] {
            let phrase = phrases[i as usize].text.as_bytes();
            if !phrase.starts_with(head) {
                break;
            }
            if rest.starts_with(phrase) {
                found.push((i as usize, at, at + phrase.len()));
            }
        }
    };
    let bytes = text.as_bytes();
    for (at, _) in text.match_indices(' ') {
        let rest = &bytes[at..];
        if let Some(space) = rest[1..].iter().position(|&b| b == b' ') {
            look(order, &rest[..space + 2], rest, at);
        }
        if !stems.is_empty() && rest.len() >= 2 {
            look(stems, &rest[..2], rest, at);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn phrases(texts: &[&str]) -> Vec<Phrase> {
        texts
            .iter()
            .map(|t| Phrase {
                text: t.to_string(),
                words: t.split_whitespace().count(),
                targets: Vec::new(),
                marks: Default::default(),
                lines: Default::default(),
            })
            .collect()
    }

    fn hits(keywords: &Keywords, phrases: &[Phrase], text: &str, with_needles: bool) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        keywords.each(phrases, text, with_needles, |id, s, e| out.push((id, s, e)));
        out
    }

    const TEXTS: [&str; 8] = [
        " ",
        "",
        " reset password vpn tidak bisa ",
        " tidak bisa login tidak bisa akses ",
        " vpn  tidak bisa ",
        " akun baru akun baru ",
        " résumé tidak bisa dibuka ",
        "reset password",
    ];

    fn both(texts: &[&str], needles: &[&str]) -> (Vec<Phrase>, Keywords, Keywords) {
        let phrases = phrases(texts);
        let automaton = Keywords::new(&phrases, needles.iter().map(|n| n.as_bytes()), Purpose::Many).expect("builds");
        let sorted = Keywords::new(&phrases, needles.iter().map(|n| n.as_bytes()), Purpose::Few).expect("builds");
        (phrases, automaton, sorted)
    }

    #[test]
    fn hits_match_one_automaton() {
        let (phrases, automaton, sorted) = both(
            &[
                " tidak bisa ",
                " bisa ",
                " reset password ",
                " password ",
                " akun baru ",
                " tidak ",
                " résumé ",
                " reset pass",
                " pass",
                " bis",
                " r",
            ],
            &["pass", "bisa l", "akun"],
        );
        for text in TEXTS {
            for with_needles in [true, false] {
                let want = hits(&automaton, &phrases, text, with_needles);
                assert_eq!(hits(&sorted, &phrases, text, with_needles), want, "{text:?}");
            }
        }
        // Not empty: the texts hold phrases, stems and needles.
        let found = hits(&sorted, &phrases, TEXTS[2], true);
        for (id, start, end) in [(2, 0, 16), (7, 0, 11), (8, 6, 11), (9, 25, 29), (10, 0, 2)] {
            assert!(found.contains(&(id, start, end)), "{id} {start} {end}: {found:?}");
        }
        assert!(found.iter().any(|&(id, ..)| id >= phrases.len()), "{found:?}");
        // A phrase that the sorted keywords cannot find makes them one automaton.
        let odd = super::tests::phrases(&[" a ", "b "]);
        let keywords = Keywords::new(&odd, std::iter::empty(), Purpose::Few).expect("builds");
        assert!(keywords.order().is_none());
        assert_eq!(hits(&keywords, &odd, " a b ", false), [(0, 0, 3), (1, 3, 5)]);
    }

    #[test]
    fn a_kept_order_is_checked_against_its_phrases() {
        let (phrases, automaton, sorted) = both(&[" b ", " a ", " c"], &["x"]);
        assert!(automaton.rebuilt(&phrases, std::iter::empty()).is_err());
        let (order, stems) = sorted.order().expect("sorted");
        assert_eq!((order, stems), (&[1, 0][..], &[2][..]));
        let needles = || ["x".as_bytes()].into_iter();
        let read = |order: &[u32], stems: &[u32]| Keywords::Sorted {
            order: order.to_vec(),
            stems: stems.to_vec(),
            needles: empty_automaton(),
        };
        let kept = read(order, stems).rebuilt(&phrases, needles()).expect("fits");
        assert_eq!(hits(&kept, &phrases, " a b cc x ", true), hits(&sorted, &phrases, " a b cc x ", true));
        for (order, stems) in [
            (&[0, 1][..], &[2][..]),
            (&[1, 0], &[]),
            (&[1, 1], &[2]),
            (&[1, 0], &[3]),
            (&[1, 0, 2], &[]),
            (&[1], &[0, 2]),
        ] {
            assert!(read(order, stems).rebuilt(&phrases, needles()).is_err(), "{order:?} {stems:?}");
        }
    }

    proptest! {
        #[test]
        fn any_text_gets_the_automatons_hits(
            words in prop::collection::vec("[ab]{1,2}", 0..12),
            spaces in prop::collection::vec(1usize..3, 12),
            texts in prop::collection::vec((prop::collection::vec("[ab]{1,2}", 1..4), any::<bool>()), 1..10),
            needles in prop::collection::vec("[ab ]{1,3}", 0..4),
        ) {
            // Some phrases end in a prefix (no space after them); each text once, as compiled.
            let texts: Vec<String> = texts
                .iter()
                .map(|(w, stem)| format!(" {}{}", w.join(" "), if *stem { "" } else { " " }))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
            let (phrases, automaton, sorted) = both(&texts, &needles);
            let mut text = String::from(" ");
            for (w, n) in words.iter().zip(&spaces) {
                text.push_str(w);
                text.push_str(&" ".repeat(*n));
            }
            prop_assert_eq!(hits(&sorted, &phrases, &text, true), hits(&automaton, &phrases, &text, true));
        }
    }
}
