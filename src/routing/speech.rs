//! Ticket type from the speech act. Pure: normalised words in, a decision out.
//!
//! An explicit request — a request marker ("tolong", "mohon", "please", "could you") followed
//! within a few words by a request action ("reset", "dibuatkan", "create"), with no failure or
//! question word between them ("tolong reset password saya", "mohon dibuatkan akun",
//! "please create a mailbox") — makes the ticket a request whatever failure words the message
//! also holds ("… karena tidak bisa login"). "Mohon info cara reset" is not one: a question word
//! stands between. The markers, actions and blockers are `rules/common.toml`'s `[speech]`.
//!
//! Actions are listed words, prefixes (`reset*`) and word forms: Indonesian asks for an action
//! with a verb's passive or imperative form ("mohon di…kan": "disediakan", "dibukakan"; chat
//! "di…in": "dipasangin"), so `action_forms` such as `di*kan` match any such verb whose root has
//! three letters or more, except the `not_actions` ("dijelaskan" asks for information, "digunakan"
//! describes). A question that asks for an action ("bisa ditambah kapasitasnya?", "could we get
//! …?") starts with one of the `question_markers` instead of a request marker.

use super::HashSet;
use super::phrases::Phrases;

/// Compiled `[speech]` cues.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SpeechCues {
    /// Markers, each as its words ("could you" → ["could", "you"]).
    pub markers: Phrases,
    /// Whole-word actions.
    pub actions: HashSet<String>,
    /// Action prefixes (written with a trailing `*`: `aktif*` matches `aktifkan`).
    pub action_prefixes: Vec<String>,
    /// Action word forms as (prefix, suffix): `di*kan` matches `disediakan` (a root of three
    /// letters or more between them).
    pub action_forms: Vec<(String, String)>,
    /// Words that are never actions, whatever form they have.
    pub not_actions: HashSet<String>,
    /// Words that ask only for a reported fault to be dealt with ("mohon segera ditangani").
    pub handling: HashSet<String>,
    /// Words that, after a handling word, open what is to be checked ("dicek apakah …").
    pub handling_clauses: HashSet<String>,
    /// Markers of a question that asks for an action ("bisa", "could we"), each as its words.
    pub question_markers: Phrases,
    /// Words that end the search for an action after a marker (failure and question words).
    pub blockers: HashSet<String>,
    /// Words that make the marker a condition or an intention, not a request, when they stand
    /// just before it ("kalau mau minta dibuatkan …", "if you could").
    pub not_after: HashSet<String>,
    /// How many words may stand between a marker and its action.
    pub within: usize,
    /// Words that say the asker does the action ("sendiri", "myself"): a question holding one
    /// asks whether they may or how, it asks the desk for no action ("boleh install sendiri?").
    pub self_words: HashSet<String>,
    /// Tags that make a question ask whether ("sih": "bisa dibuka dr rumah ga sih?"): it asks the
    /// desk for no action either.
    pub whether_tags: HashSet<String>,
    /// Particles that may follow a question marker at the end of a sentence ("bisa ga?",
    /// "boleh ya?").
    pub question_tails: HashSet<String>,
    /// Question words that, right before a question marker, open a polite request ("apakah
    /// bisa dibuatkan …?") instead of asking whether.
    pub question_openers: HashSet<String>,
    /// Words that name the desk or its staff ("pusintek", "tim", "bapak"): between a question
    /// opener and a marker they keep the polite form ("apakah tim bisa mendampingi …?").
    pub addressees: HashSet<String>,
    /// Words that ask how ("cara", "how"): questions holding one ask for no action.
    pub how_words: HashSet<String>,
    /// Words that deny the request or question cue right after them ("bukan minta …").
    pub negations: HashSet<String>,
    /// Negations that, before a verb, report a fault ("tidak", "belum", "never").
    pub failure_negations: HashSet<String>,
    /// Words that may stand between such a negation and its verb ("pernah", "juga").
    pub negation_fillers: HashSet<String>,
    /// Words after such a negation that report no fault ("perlu", "tahu", "ada").
    pub not_failures: HashSet<String>,
    /// Words after which such a negation is a question tag ("bisa ga", "sudah belum").
    pub negation_tags_after: HashSet<String>,
    /// Words that make a sentence ask about what it negates ("kenapa", "why").
    pub negation_asks: HashSet<String>,
    /// What a negated verb counts for `incident` where no incident cue matched (0: off).
    pub failure_negation_weight: f64,
}

impl SpeechCues {
    /// The faults said as negated verbs in `words`: one of `failure_negations`, any
    /// `negation_fillers`, then a word of three letters or more that is none of `not_failures`
    /// and no negation or filler itself ("otp tidak pernah sampai", "belum muncul", "video tidak
    /// keputer"), each as the words from the negation to the verb. "tidak perlu", "belum tahu"
    /// are none; nor is a question tag ("bisa ga hosting pakai PHP 8.3": after one of
    /// `negation_tags_after`), nor anything in words that ask (one of `negation_asks`: "kenapa").
    pub fn negated_verbs(&self, words: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        if self.failure_negation_weight <= 0.0 || words.iter().any(|w| self.negation_asks.contains(*w)) {
            return found;
        }
        for (i, w) in words.iter().enumerate() {
            if !self.failure_negations.contains(*w) || (i > 0 && self.negation_tags_after.contains(words[i - 1])) {
                continue;
            }
            let mut j = i + 1;
            while words.get(j).is_some_and(|x| self.negation_fillers.contains(*x)) {
                j += 1;
            }
            let Some(verb) = words.get(j) else { continue };
            if verb.len() >= 3
                && !self.not_failures.contains(*verb)
                && !self.failure_negations.contains(*verb)
                && !verb.bytes().all(|b| b.is_ascii_digit())
            {
                found.push(words[i..=j].join(" "));
            }
        }
        found
    }

    /// Whether `sentences` hold a request marker and every marker asks only for the fault to be
    /// dealt with: up to `within` words after it (in its sentence) are all `handling` words,
    /// or there are none ("Mohon segera ditangani.", "tolong dicek ya"), or they are until one of
    /// the `handling_clauses` opens what is to be checked ("Mohon dicek apakah ada masalah pada
    /// server"). A marker before any other word ("mohon diaktivasi", "tlg dikasih akses") asks
    /// for something.
    pub fn asks_only_handling<'a>(&self, sentences: impl Iterator<Item = &'a [&'a str]>) -> bool {
        let mut any = false;
        for words in sentences {
            for t in 0..words.len() {
                for (_, marker) in self.markers.at(words, t) {
                    any = true;
                    let after = &words[t + marker.len()..];
                    let mut handled = false;
                    for w in after.iter().take(self.within) {
                        if handled && self.handling_clauses.contains(*w) {
                            break;
                        }
                        if !self.handling.contains(*w) {
                            return false;
                        }
                        handled = true;
                    }
                }
            }
        }
        any
    }

    fn is_action(&self, word: &str) -> bool {
        if self.not_actions.contains(word) {
            return false;
        }
        self.actions.contains(word)
            || self.action_prefixes.iter().any(|p| word.starts_with(p.as_str()))
            || self.action_forms.iter().any(|(p, s)| {
                word.len() >= p.len() + s.len() + 3 && word.starts_with(p.as_str()) && word.ends_with(s.as_str())
            })
    }

    /// The first explicit request in `words`: the marker and the action, as written.
    pub fn explicit_request(&self, words: &[&str]) -> Option<(String, String)> {
        self.marker_then_action(&self.markers, words, false)
    }

    /// In the words of a sentence that ends in `?`: the first question that asks for an action
    /// ("bisa ditambah kapasitasnya", "could we get a subnet"), or an explicit request.
    /// A question marker counts only with no failure or question word before it in the sentence
    /// ("tidak bisa dibuka?" reports, "apakah … bisa dilakukan?" asks whether).
    /// The asker doing the action themselves ("sendiri") makes it no request; an imperative
    /// first and a question marker last ("tambah fitur export excel bisa?", "upgrade ram jadi
    /// 16 gb bisa ga?") asks for the action too.
    pub fn asked_action(&self, words: &[&str]) -> Option<(String, String)> {
        if words.iter().any(|w| self.self_words.contains(*w) || self.whether_tags.contains(*w)) {
            return None;
        }
        self.marker_then_action(&self.question_markers, words, true)
            .or_else(|| self.explicit_request(words))
            .or_else(|| self.action_then_marker(words))
    }

    /// An action among the first two words, a one-word question marker last (then only
    /// `question_tails`), no failure or question word before the marker.
    fn action_then_marker(&self, words: &[&str]) -> Option<(String, String)> {
        let mut end = words.len();
        while end > 1 && self.question_tails.contains(words[end - 1]) {
            end -= 1;
        }
        let last = *words.get(end.checked_sub(1)?)?;
        if !self.question_markers.at(&[last], 0).any(|(_, m)| m.len() == 1) {
            return None;
        }
        let body = &words[..end - 1];
        if body.iter().any(|w| self.blockers.contains(*w)) {
            return None;
        }
        let action = body.iter().take(2).find(|w| self.is_action(w))?;
        Some((last.to_string(), action.to_string()))
    }

    fn marker_then_action(&self, markers: &Phrases, words: &[&str], clean_before: bool) -> Option<(String, String)> {
        for i in 0..words.len() {
            // Most words start no marker: one look-up of first words before the rest.
            if !markers.may_start(words[i]) {
                continue;
            }
            // "apakah bisa dibuatkan …?": an opener right before the marker is part of the
            // polite form; a question word anywhere else before it asks whether.
            // "apakah tim bisa mendampingi …?": the desk addressed between them is part of it too.
            let before = match i.checked_sub(1) {
                Some(j) if self.question_openers.contains(words[j]) => &words[..j],
                Some(j)
                    if self.addressees.contains(words[j])
                        && j.checked_sub(1).is_some_and(|o| self.question_openers.contains(words[o])) =>
                {
                    &words[..j - 1]
                }
                _ => &words[..i],
            };
            if clean_before && before.iter().any(|w| self.blockers.contains(*w)) {
                return None;
            }
            for (_, m) in markers.at(words, i) {
                if i > 0 && self.not_after.contains(words[i - 1]) {
                    continue;
                }
                // "bukan minta install baru": a denied request asks for nothing.
                if words[i.saturating_sub(self.within)..i].iter().any(|w| self.negations.contains(*w)) {
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

/// The items of a numbered list in `text` ("1) reset password …, 2) buatin akun …, 3) wifi …"):
/// markers `1.`, `1)` or `(1)` at a line's start or after a space, followed by a space, numbered
/// 1, 2, 3 … in order (at most [`MAX_ITEMS`]). Each item runs to the next marker; the last one to a
/// blank line or the end. Fewer than two items: none.
pub fn numbered_items(text: &str) -> Vec<&str> {
    // Most messages hold no list: their first marker is looked for by the library's search.
    if !text.contains("1.") && !text.contains("1)") {
        return Vec::new();
    }
    let bytes = text.as_bytes();
    // (the marker's start, the item's start) of 1, 2, 3 … in order.
    let mut marks: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() && marks.len() < MAX_ITEMS {
        let want = b'1' + marks.len() as u8;
        let open = usize::from(bytes[i] == b'(');
        let at = i + open;
        let after_space = i == 0 || bytes[i - 1].is_ascii_whitespace();
        let closes = |b: u8| if open == 1 { b == b')' } else { b == b'.' || b == b')' };
        if after_space
            && bytes.get(at) == Some(&want)
            && bytes.get(at + 1).is_some_and(|&b| closes(b))
            && bytes.get(at + 2).is_some_and(|b| b.is_ascii_whitespace())
        {
            marks.push((i, at + 2));
            i = at + 2;
        } else {
            i += 1;
        }
    }
    if marks.len() < 2 {
        return Vec::new();
    }
    let ends = marks.iter().skip(1).map(|&(m, _)| m);
    let mut items: Vec<&str> = marks.iter().zip(ends).map(|(&(_, s), e)| &text[s..e]).collect();
    let last = &text[marks[marks.len() - 1].1..];
    let end = ["\n\n", "\n\r\n"].iter().filter_map(|blank| last.find(blank)).min().unwrap_or(last.len());
    items.push(&last[..end]);
    items.into_iter().map(str::trim).collect()
}

/// The most items of a numbered list [`numbered_items`] reads.
pub const MAX_ITEMS: usize = 9;

#[cfg(test)]
mod tests {
    use super::*;

    fn cues() -> SpeechCues {
        let words = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
        SpeechCues {
            markers: Phrases::new(vec![
                vec!["tolong".into()],
                vec!["mohon".into()],
                vec!["could".into(), "you".into()],
            ]),
            actions: words(&["reset", "direset", "dibuatkan", "create"]),
            action_prefixes: vec!["aktif".into()],
            action_forms: Vec::new(),
            not_actions: HashSet::default(),
            handling: words(&["segera", "ditangani", "dicek", "ya"]),
            handling_clauses: words(&["apakah", "kenapa"]),
            question_markers: Phrases::new(vec![vec!["bisa".into()]]),
            blockers: words(&["tidak", "cara", "bagaimana", "apakah", "not"]),
            not_after: words(&["mau", "kalau"]),
            within: 3,
            self_words: words(&["sendiri", "myself"]),
            whether_tags: words(&["sih"]),
            question_tails: words(&["tidak", "ya"]),
            question_openers: words(&["apakah"]),
            addressees: words(&["tim"]),
            how_words: words(&["cara", "how"]),
            negations: words(&["bukan"]),
            failure_negations: words(&["tidak", "belum", "never"]),
            negation_fillers: words(&["pernah"]),
            not_failures: words(&["perlu", "tahu", "punya"]),
            negation_tags_after: words(&["bisa", "sudah"]),
            negation_asks: words(&["kenapa"]),
            failure_negation_weight: 2.0,
        }
    }

    fn negated(text: &str) -> Vec<String> {
        cues().negated_verbs(&text.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn a_negated_verb_reports_a_fault_unless_it_needs_knows_or_asks() {
        assert_eq!(negated("otp nya tidak pernah nyampe ke hp"), vec!["tidak pernah nyampe".to_string()]);
        assert_eq!(negated("angka kredit belum muncul padahal sudah diajukan"), vec!["belum muncul".to_string()]);
        assert_eq!(negated("the code never arrives"), vec!["never arrives".to_string()]);
        // Need, knowledge, possession: no fault.
        assert!(negated("tidak perlu buru buru saya belum tahu belum punya akun").is_empty());
        // A question tag ("bisa ga …?", "sudah belum"), or a sentence that asks why.
        assert!(negated("bisa tidak hosting pakai php").is_empty());
        assert!(negated("sudah belum diproses").is_empty());
        assert!(negated("angka kredit belum keluar kenapa ya").is_empty());
        // Off with no weight.
        let off = SpeechCues { failure_negation_weight: 0.0, ..cues() };
        assert!(off.negated_verbs(&["tidak", "muncul"]).is_empty());
    }

    fn find(text: &str) -> Option<(String, String)> {
        let words: Vec<&str> = text.split_whitespace().collect();
        cues().explicit_request(&words)
    }

    #[test]
    fn the_desk_addressed_between_opener_and_marker_keeps_the_polite_form() {
        let c = cues();
        let asked = |t: &str| c.asked_action(&t.split_whitespace().collect::<Vec<_>>()).map(|(_, a)| a);
        assert_eq!(asked("apakah tim bisa reset password saya"), Some("reset".to_string()));
        assert_eq!(asked("apakah akun saya bisa direset"), None);
    }

    #[test]
    fn a_denied_request_asks_for_nothing() {
        let c = cues();
        let words = |t: &'static str| t.split_whitespace().collect::<Vec<_>>();
        assert_eq!(c.explicit_request(&words("bukan mohon reset ya")), None);
        assert!(c.explicit_request(&words("mohon reset ya")).is_some());
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
    fn verb_forms_are_actions_except_the_listed_ones() {
        let mut c = cues();
        c.action_forms = vec![("di".into(), "kan".into()), ("di".into(), "in".into())];
        c.not_actions = ["dijelaskan".to_string()].into_iter().collect();
        let find = |t: &str| c.explicit_request(&t.split_whitespace().collect::<Vec<_>>());
        assert_eq!(find("mohon disediakan ruang rapat"), Some(("mohon".into(), "disediakan".into())));
        assert_eq!(find("tolong dipasangin kabel"), Some(("tolong".into(), "dipasangin".into())));
        assert_eq!(find("mohon dijelaskan prosedurnya"), None, "asks for information");
        assert_eq!(find("mohon dikan"), None, "no root");
        assert_eq!(find("mohon dingin"), None, "a root of three letters or more");
        assert_eq!(find("mohon maaf aplikasi tidak bisa digunakan"), None, "a failure word between");
    }

    #[test]
    fn a_question_may_ask_for_an_action() {
        let c = cues();
        let asked = |t: &str| c.asked_action(&t.split_whitespace().collect::<Vec<_>>());
        assert_eq!(asked("kuota email saya bisa direset"), Some(("bisa".into(), "direset".into())));
        assert_eq!(asked("tolong reset password"), Some(("tolong".into(), "reset".into())));
        assert_eq!(asked("bagaimana cara agar bisa tidak direset"), None);
        assert_eq!(asked("apakah akun saya bisa direset"), None, "asks whether");
        assert_eq!(asked("apakah bisa direset akun saya"), Some(("bisa".into(), "direset".into())), "a polite opener");
        assert_eq!(asked("bagaimana apakah bisa direset"), None, "a question word before the opener");
        assert_eq!(asked("sigi tidak bisa dibuka"), None, "reports a failure");
        assert_eq!(asked("apakah bisa"), None);
        assert_eq!(c.explicit_request(&["bisa", "direset"]), None, "not a request marker outside a question");
    }

    #[test]
    fn an_imperative_asked_with_a_marker_at_the_end_asks_for_an_action() {
        let c = cues();
        let asked = |t: &str| c.asked_action(&t.split_whitespace().collect::<Vec<_>>());
        assert_eq!(asked("reset password email kantor bisa"), Some(("bisa".into(), "reset".into())));
        assert_eq!(asked("min reset kuota bisa tidak"), Some(("bisa".into(), "reset".into())), "a tail particle");
        assert_eq!(asked("email saya reset bisa"), None, "the action must open the sentence");
        assert_eq!(asked("reset password bagaimana bisa"), None, "a question word before the marker");
        assert_eq!(asked("reset bisa tidak dibuka"), None, "the marker must end the sentence");
        assert_eq!(asked("bisa"), None);
        assert_eq!(asked("tidak"), None);
    }

    #[test]
    fn an_action_the_asker_does_themselves_is_no_request() {
        let c = cues();
        let asked = |t: &str| c.asked_action(&t.split_whitespace().collect::<Vec<_>>());
        assert_eq!(asked("vps bisa direset sendiri"), None);
        assert_eq!(asked("can i reset it myself"), None);
        assert_eq!(asked("vps bisa direset"), Some(("bisa".into(), "direset".into())));
    }

    #[test]
    fn the_action_must_be_near_the_marker() {
        assert_eq!(find("tolong dibantu karena kemarin saya lupa reset"), None);
        assert_eq!(find("reset tolong"), None, "the action follows the marker");
        assert_eq!(find(""), None);
        assert_eq!(find("could"), None);
    }

    #[test]
    fn a_marker_may_ask_only_for_the_fault_to_be_handled() {
        let c = cues();
        let only = |sentences: &[&str]| {
            let split: Vec<Vec<&str>> = sentences.iter().map(|s| s.split_whitespace().collect()).collect();
            c.asks_only_handling(split.iter().map(Vec::as_slice))
        };
        assert!(only(&["api gateway 503 sejak pagi", "mohon segera ditangani"]));
        assert!(only(&["sigi error tolong dicek ya", "mohon"]), "a marker with nothing after it");
        assert!(!only(&["akun digit belum aktif mohon diaktivasi"]), "a marker before another word asks for it");
        assert!(!only(&["tolong dicek", "mohon dibuatkan akun"]), "every marker counts");
        assert!(!only(&["sigi error sejak pagi"]), "no marker at all");
        // Set 43: what is to be checked follows the handling word.
        assert!(only(&["aplikasi sangat lambat", "mohon dicek apakah ada masalah pada server"]));
        assert!(!only(&["mohon apakah ada masalah"]), "a clause only after a handling word");
        assert!(!only(&["mohon dibuatkan apakah bisa"]), "an action before it asks for it");
    }
    #[test]
    fn a_numbered_list_gives_its_items_in_order() {
        let items = numbered_items(
            "Mohon bantuan:\n1. reset password email\n2) hak akses folder\n3. room vicon Jumat\n\nTerima kasih",
        );
        assert_eq!(items, ["reset password email", "hak akses folder", "room vicon Jumat"]);
        assert_eq!(numbered_items("1. a\r\n2. b\r\n\r\nSalam"), ["a", "b"], "the last item ends at a blank line");
        assert_eq!(
            numbered_items("Min sekalian ya: 1) reset intranet, 2) akun e-SPPD"),
            ["reset intranet,", "akun e-SPPD"]
        );
        assert_eq!(numbered_items("(1) SPAN lemot (2) printer macet"), ["SPAN lemot", "printer macet"]);
        assert!(numbered_items("Lantai 1. Semua PC mati").is_empty(), "one number is no list");
        assert!(numbered_items("versi 2.1. lalu 1.2 juga").is_empty(), "numbers inside words are no markers");
        assert!(numbered_items("2. kedua 1. pertama").is_empty(), "a list starts at 1");
        assert_eq!(numbered_items("1. a 3. b 2. c"), ["a 3. b", "c"], "in order: 3 waits for 2");
    }
}
