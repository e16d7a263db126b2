//! Ticket type from the speech act. Pure: normalised words in, a decision out.
//!
//! An explicit request — a request marker ("tolong", "mohon", "please", "could you") followed
//! within a few words by a request action ("reset", "dibuatkan", "create"), with no failure or
//! question word between them ("tolong reset password saya", "mohon dibuatkan akun",
//! "please create a mailbox") — makes the ticket a request whatever failure words the message
//! also holds ("… karena tidak bisa login"). "Mohon info cara reset" is not one: a question word
//! stands between. The markers, actions and blockers are `rules/common.toml`'s `[speech]`.

use std::collections::HashSet;

/// Compiled `[speech]` cues.
#[derive(Debug, Clone, Default)]
pub struct SpeechCues {
    /// Markers, each as its words ("could you" → ["could", "you"]).
    pub markers: Vec<Vec<String>>,
    /// Whole-word actions.
    pub actions: HashSet<String>,
    /// Action prefixes (written with a trailing `*`: `aktif*` matches `aktifkan`).
    pub action_prefixes: Vec<String>,
    /// Words that end the search for an action after a marker (failure and question words).
    pub blockers: HashSet<String>,
    /// Words that make the marker a condition or an intention, not a request, when they stand
    /// just before it ("kalau mau minta dibuatkan …", "if you could").
    pub not_after: HashSet<String>,
    /// How many words may stand between a marker and its action.
    pub within: usize,
}

impl SpeechCues {
    fn is_action(&self, word: &str) -> bool {
        self.actions.contains(word) || self.action_prefixes.iter().any(|p| word.starts_with(p.as_str()))
    }

    /// The first explicit request in `words`: the marker and the action, as written.
    pub fn explicit_request(&self, words: &[&str]) -> Option<(String, String)> {
        for i in 0..words.len() {
            // Most words start no marker: one comparison of first words before the rest.
            if !self.markers.iter().any(|m| m.first().is_some_and(|f| f == words[i])) {
                continue;
            }
            for m in &self.markers {
                if m.is_empty() || words.len() < i + m.len() || !m.iter().zip(&words[i..]).all(|(a, b)| a == b) {
                    continue;
                }
                if i > 0 && self.not_after.contains(words[i - 1]) {
                    continue;
                }
                let start = i + m.len();
                for &w in words.iter().skip(start).take(self.within + 1) {
                    if self.blockers.contains(w) {
                        break;
                    }
                    if self.is_action(w) {
                        return Some((m.join(" "), w.to_string()));
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cues() -> SpeechCues {
        let words = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
        SpeechCues {
            markers: vec![vec!["tolong".into()], vec!["mohon".into()], vec!["could".into(), "you".into()]],
            actions: words(&["reset", "direset", "dibuatkan", "create"]),
            action_prefixes: vec!["aktif".into()],
            blockers: words(&["tidak", "cara", "bagaimana", "not"]),
            not_after: words(&["mau", "kalau"]),
            within: 3,
        }
    }

    fn find(text: &str) -> Option<(String, String)> {
        let words: Vec<&str> = text.split_whitespace().collect();
        cues().explicit_request(&words)
    }

    #[test]
    fn a_marker_followed_by_an_action_is_a_request() {
        assert_eq!(find("tolong reset password saya"), Some(("tolong".into(), "reset".into())));
        assert_eq!(find("mohon dibantu untuk dibuatkan akun"), Some(("mohon".into(), "dibuatkan".into())));
        assert_eq!(find("could you please create a mailbox"), Some(("could you".into(), "create".into())));
        assert_eq!(find("mohon diaktifkan kembali"), None, "`aktif*` is a prefix of a word, not of `diaktifkan`");
        assert_eq!(find("mohon aktifkan kembali"), Some(("mohon".into(), "aktifkan".into())));
    }

    #[test]
    fn failure_and_question_words_between_block_it() {
        assert_eq!(find("tolong sakti tidak bisa direset"), None);
        assert_eq!(find("mohon info cara reset password"), None);
        assert_eq!(find("could you not reset"), None);
        assert_eq!(find("kalau tolong reset"), None, "a condition, not a request");
        assert_eq!(find("mau mohon direset"), None);
    }

    #[test]
    fn the_action_must_be_near_the_marker() {
        assert_eq!(find("tolong dibantu karena kemarin saya lupa reset"), None);
        assert_eq!(find("reset tolong"), None, "the action follows the marker");
        assert_eq!(find(""), None);
        assert_eq!(find("could"), None);
    }
}
