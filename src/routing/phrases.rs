//! Phrases of normalised words found in a message's words: the request markers, the impact
//! pairs' cues. Pure.

use super::HashSet;

/// Whether `cue_word` (a normalised word; a trailing `*` makes it a prefix) matches `word`.
pub(crate) fn word_matches(cue_word: &str, word: &str) -> bool {
    match cue_word.strip_suffix('*') {
        Some(prefix) => word.starts_with(prefix),
        None => cue_word == word,
    }
}

/// Phrases of normalised words (a trailing `*` on a word makes it a prefix), with their first
/// words set apart: most words of a message start none of them, and that is one look-up.
#[derive(Debug, Clone, PartialEq, Default)]
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
        let candidates = if words.get(t).is_some_and(|w| self.may_start(w)) { &self.list[..] } else { &[] };
        candidates
            .iter()
            .enumerate()
            .filter(move |(_, p)| {
                words.len() >= t + p.len()
                    && words[t..t + p.len()].iter().zip(p.iter()).all(|(w, x)| word_matches(x, w))
            })
            .map(|(i, p)| (i, p.as_slice()))
    }

    /// Where the phrases stand in `words`: (phrase, start, end exclusive) of each match, by
    /// phrase, then by position.
    pub fn find(&self, words: &[&str]) -> Vec<(usize, usize, usize)> {
        let mut found = Vec::new();
        for t in 0..words.len() {
            found.extend(self.at(words, t).map(|(i, p)| (i, t, t + p.len())));
        }
        found.sort_unstable();
        found
    }

    /// Whether any phrase stands in `words` (the search stops at the first).
    pub fn any_in(&self, words: &[&str]) -> bool {
        (0..words.len()).any(|t| self.at(words, t).next().is_some())
    }
}
