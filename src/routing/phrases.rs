//! Phrases of normalised words found in a message's words: the request markers, the impact
//! pairs' cues. Pure.

use super::{HashMap, HashSet};

/// Whether `cue_word` (a normalised word; a trailing `*` makes it a prefix) matches `word`.
pub(crate) fn word_matches(cue_word: &str, word: &str) -> bool {
    match cue_word.strip_suffix('*') {
        Some(prefix) => word.starts_with(prefix),
        None => cue_word == word,
    }
}

/// Phrases of normalised words (a trailing `*` on a word makes it a prefix), with their first
/// words set apart: most words of a message start none of them, and that is one look-up.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Phrases {
    list: Vec<Vec<String>>,
    /// The phrases' whole first words.
    starts: HashSet<String>,
    /// The phrases' first words that are prefixes (without the `*`).
    start_prefixes: Vec<String>,
}

impl Phrases {
    /// The phrases (empty ones left out).
    pub fn new(list: Vec<Vec<String>>) -> Self {
        let list: Vec<Vec<String>> = list.into_iter().filter(|p| !p.is_empty()).collect();
        let mut starts = HashSet::default();
        let mut start_prefixes = Vec::new();
        for first in list.iter().map(|p| &p[0]) {
            match first.strip_suffix('*') {
                Some(prefix) => start_prefixes.push(prefix.to_string()),
                None => {
                    starts.insert(first.clone());
                }
            }
        }
        Self { list, starts, start_prefixes }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether some phrase starts with a word that matches `word`.
    pub fn may_start(&self, word: &str) -> bool {
        self.starts.contains(word) || self.start_prefixes.iter().any(|p| word.starts_with(p.as_str()))
    }

    /// The phrases that stand in `words` from position `t`, in their order, with their index.
    pub fn at<'a>(&'a self, words: &'a [&str], t: usize) -> impl Iterator<Item = (usize, &'a [String])> + 'a {
        // No phrase starts here: nothing to compare.
        let here = words.get(t).is_some_and(|w| self.may_start(w));
        here.then(|| self.matches_at(words, t)).into_iter().flatten()
    }

    /// Where the phrases stand in `words`: (phrase, start, end exclusive) of each match, by
    /// phrase, then by position.
    pub fn find(&self, words: &[&str]) -> Vec<(usize, usize, usize)> {
        self.find_at(words, &[], None)
    }

    /// [`Phrases::find`] with the words where a phrase may start already known, where this set
    /// has a `bit` in a [`StartIndex`]: those whose entry in `starts` (one per word, made by
    /// [`StartIndex::starts`]) has it. Without a bit, each word is looked up in the set's own
    /// first words.
    pub fn find_at(&self, words: &[&str], starts: &[u64], bit: Option<u64>) -> Vec<(usize, usize, usize)> {
        let may_start = |t: usize| match bit {
            Some(bit) => starts[t] & bit != 0,
            None => self.may_start(words[t]),
        };
        let mut found = Vec::new();
        for t in (0..words.len()).filter(|&t| may_start(t)) {
            found.extend(self.matches_at(words, t).map(|(i, p)| (i, t, t + p.len())));
        }
        found.sort_unstable();
        found
    }

    /// The phrases that stand in `words` from position `t`, compared one by one.
    fn matches_at<'a>(&'a self, words: &'a [&str], t: usize) -> impl Iterator<Item = (usize, &'a [String])> + 'a {
        self.list
            .iter()
            .enumerate()
            .filter(move |(_, p)| {
                words.len() >= t + p.len()
                    && words[t..t + p.len()].iter().zip(p.iter()).all(|(w, x)| word_matches(x, w))
            })
            .map(|(i, p)| (i, p.as_slice()))
    }

    /// Whether any phrase stands in `words` (the search stops at the first).
    pub fn any_in(&self, words: &[&str]) -> bool {
        (0..words.len()).any(|t| self.at(words, t).next().is_some())
    }
}

/// The first words of several sets of phrases at once, for a message's one pass: which sets have
/// a phrase that may start somewhere in it (up to 64 sets; a set past the 64th is always a
/// candidate). A set not named can have no phrase in the message, so its own search is skipped.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct StartIndex {
    /// Whole first words → the sets (bits) with a phrase starting with that word.
    exact: HashMap<String, u64>,
    /// First words that are prefixes (without the `*`) → their sets, each prefix once.
    prefixes: Vec<(String, u64)>,
    /// Sets past the 64th.
    always: bool,
}

impl StartIndex {
    pub fn new<'a>(sets: impl IntoIterator<Item = &'a Phrases>) -> Self {
        let mut index = Self::default();
        for (i, set) in sets.into_iter().enumerate() {
            let Some(bit) = Self::bit(i) else {
                index.always = true;
                continue;
            };
            for word in &set.starts {
                *index.exact.entry(word.clone()).or_default() |= bit;
            }
            for prefix in &set.start_prefixes {
                match index.prefixes.iter_mut().find(|(p, _)| p == prefix) {
                    Some((_, bits)) => *bits |= bit,
                    None => index.prefixes.push((prefix.clone(), bit)),
                }
            }
        }
        index
    }

    /// For each of `words`, the sets (bit `i` for the `i`th) with a phrase whose first word
    /// matches it: one look-up a word for all the sets, which [`Phrases::find_at`] then reads
    /// instead of looking each word up again. Sets past the 64th have no bit ([`StartIndex::bit`]).
    pub fn starts(&self, words: &[&str]) -> Vec<u64> {
        words
            .iter()
            .map(|w| {
                let exact = self.exact.get(*w).copied().unwrap_or(0);
                self.prefixes.iter().filter(|(p, _)| w.starts_with(p.as_str())).fold(exact, |bits, (_, b)| bits | b)
            })
            .collect()
    }

    /// The bit of the `i`th set in [`StartIndex::starts`], if it has one.
    pub fn bit(i: usize) -> Option<u64> {
        u32::try_from(i).ok().and_then(|i| 1u64.checked_shl(i))
    }

    /// Whether the `i`th set may have a phrase among some words: `candidates` is their
    /// [`StartIndex::starts`] taken together (or'd).
    pub fn may_hold(&self, candidates: u64, i: usize) -> bool {
        match Self::bit(i) {
            Some(bit) => candidates & bit != 0,
            None => self.always,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrases(list: &[&str]) -> Phrases {
        Phrases::new(list.iter().map(|p| p.split_whitespace().map(str::to_string).collect()).collect())
    }

    #[test]
    fn the_start_index_names_exactly_the_sets_that_may_start_at_each_word() {
        let sets = [phrases(&["di bidang", "pada"]), phrases(&["importer*", "warga"]), phrases(&["tim kami"])];
        let index = StartIndex::new(&sets);
        for text in
            ["error di subbag", "importers cannot pay", "tim", "nothing here", "warga di tim", "tim kami di bidang", ""]
        {
            let words: Vec<&str> = text.split_whitespace().collect();
            let starts = index.starts(&words);
            assert_eq!(starts.len(), words.len());
            for (i, set) in sets.iter().enumerate() {
                let bit = StartIndex::bit(i).unwrap();
                for (t, w) in words.iter().enumerate() {
                    assert_eq!(starts[t] & bit != 0, set.may_start(w), "set {i} at {w:?} in {text:?}");
                }
                // Found at the words the index names as where any is found.
                assert_eq!(set.find_at(&words, &starts, Some(bit)), set.find(&words), "set {i} in {text:?}");
            }
        }
        assert_eq!(sets[0].find(&["di", "bidang", "x", "pada"]), vec![(0, 0, 2), (1, 3, 4)]);
    }

    #[test]
    fn sets_past_the_64th_are_always_candidates() {
        let sets: Vec<Phrases> = (0..66).map(|i| phrases(&[&format!("w{i}")])).collect();
        let index = StartIndex::new(&sets);
        let candidates = index.starts(&["w3", "w64"])[0];
        assert!(index.may_hold(candidates, 3));
        assert!(!index.may_hold(candidates, 4));
        assert!(index.may_hold(candidates, 64) && index.may_hold(candidates, 65));
        assert_eq!((StartIndex::bit(63), StartIndex::bit(64)), (Some(1 << 63), None));
    }
}
