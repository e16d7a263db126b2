//! Impact of an incident from the scope its message states. Pure: the scores of the rules'
//! impact classes go in, the impact and the class behind it come out.
//!
//! A class (`[impact_classes.NAME]` in `rules/common.toml` or a desk file) is a named group of
//! cues for one kind of scope — how many are affected (`person`, `unit`, `organisation`,
//! `public`), which service (public-facing, a financial deadline), a security incident — with the
//! impact `level` it stands for. A class is present when its cues (and the winning route's
//! `scope` weight for it) reach the desk's `impact_threshold`. The impact is the highest level
//! among the present classes; with none, `low` (one person, or scope not stated).
//!
//! A count of people or units the message states ("6 developer", "300 pegawai", "semua 40
//! pegawai", "20+ users", "seluruh 12 kanwil") names a class too: [`counts`] reads a number
//! (digits, or a word such as "ratusan") followed, at most one counting word later, by a noun of a
//! `[impact_counts.KIND]` of the rules, and gives the class that kind assigns to that many.

use super::phrases::{Phrases, word_matches};
use crate::domain::Impact;

/// One kind of counted thing (`[impact_counts.KIND]`: staff, offices, rooms, the public), compiled:
/// its nouns (normalised words; a trailing `*` makes a prefix) and, per class (index into the
/// desk's impact classes), the least count that stands for it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CountKind {
    pub name: String,
    pub nouns: Vec<String>,
    /// (class, least count), in any order: the class with the largest least count reached wins.
    pub classes: Vec<(usize, u64)>,
    /// The class a whole group of this kind stands for ("semua peserta kelas": one class's),
    /// if not the one of the largest least count.
    pub whole: Option<usize>,
}

/// A count found in a message: the words as they stand, the number read, and the class.
#[derive(Debug, Clone, PartialEq)]
pub struct CountFound<'a> {
    pub text: String,
    pub number: u64,
    pub kind: &'a str,
    pub class: usize,
}

/// Number words and their value (a vague quantity counts as a typical number of it).
const NUMBER_WORDS: &[(&str, u64)] = &[
    ("satu", 1),
    ("dua", 2),
    ("tiga", 3),
    ("empat", 4),
    ("lima", 5),
    ("enam", 6),
    ("tujuh", 7),
    ("delapan", 8),
    ("sembilan", 9),
    ("sepuluh", 10),
    ("belasan", 12),
    ("puluhan", 20),
    ("ratusan", 200),
    ("ribuan", 2000),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("dozens", 24),
    ("hundreds", 200),
    ("thousands", 2000),
];

/// Words after which a number is a time, a code or a label, not a count: "dari jam 9, satu
/// lantai" is one floor from nine o'clock, "error 500 tiap responden" no 500 respondents, "PPh 21
/// pegawai" a tax on staff's pay.
const LABEL_WORDS: &[&str] = &[
    "jam", "pukul", "pk", "error", "kode", "code", "http", "status", "versi", "version", "port", "no", "nomor",
    "tanggal", "tahun", "pph", "pasal",
];

/// Words that may stand between a number and what it counts ("20 buah PC", "400 pelaku UMKM",
/// "hundreds of traders"); any other word ends the count: "30 naskah dinas" counts no office.
const SKIPPABLE: &[&str] =
    &["orang", "org", "buah", "unit", "lebih", "an", "para", "pelaku", "of", "more", "other", "lain"];

/// Words that multiply the number before them ("50 ribu orang").
const MULTIPLIERS: &[(&str, u64)] = &[("ribu", 1000), ("rb", 1000), ("thousand", 1000), ("juta", 1_000_000)];

/// The number a word stands for: digits (at most nine, and no leading zero: "01400" in
/// "ORA-01400" and a longer figure are codes, not counts), digits with chat's "-an" ("200an",
/// about 200), or a number word.
fn number(word: &str) -> Option<u64> {
    if let Some(digits) =
        word.strip_suffix("an").filter(|d| d.len() >= 2 && !d.starts_with('0') && d.bytes().all(|b| b.is_ascii_digit()))
    {
        return number(digits);
    }
    if !word.is_empty() && word.len() <= 9 && !word.starts_with('0') && word.bytes().all(|b| b.is_ascii_digit()) {
        return word.parse().ok();
    }
    NUMBER_WORDS.iter().find(|(w, _)| *w == word).map(|(_, n)| *n)
}

/// The kind whose nouns hold `word`, if any.
fn kind_of<'a>(kinds: &'a [CountKind], word: &str) -> Option<&'a CountKind> {
    kinds.iter().find(|k| k.nouns.iter().any(|noun| word_matches(noun, word)))
}

/// A kind that counts people (its least count is two or more: staff, the public, participants),
/// not places (one office, one room already is a class).
fn counts_people(kind: &CountKind) -> bool {
    kind.classes.iter().map(|(_, l)| *l).min().is_some_and(|l| l >= 2)
}

/// Words that take a whole group of people: "semua pegawai", "seluruh user", "all users".
const WHOLE_WORDS: &[&str] = &["semua", "seluruh", "segenap", "all", "every"];
/// Words that are themselves a whole group of people: "everyone" is "all people" (the kind that
/// counts "people"), bounded like it: "everyone in our bureau" is one unit's people.
const WHOLE_PEOPLE: &[&str] = &["everyone", "everybody"];
/// The noun such a word stands for.
const PEOPLE_NOUN: &str = "people";
/// A word that may stand between such a word and the people: "semua para pegawai", "all our
/// users"; or between a bounding "di" / "in" and the place: "in our bureau".
const WHOLE_FILLERS: &[&str] = &["para", "the", "our", "this"];
/// Before a place or unit, these say the group is that place's or unit's: "semua pegawai di biro umum".
const BOUND_BEFORE: &[&str] = &["di", "pada", "in", "of", "at"];

/// Every count of a known noun in `words` (normalised text split on spaces): a number, an
/// optional multiplier ("ribu"), then the noun directly or after one counting word ("300
/// pegawai", "20 buah PC"; "6 orang developer" counts "orang" itself), unless a counted noun
/// stands just before the number ("lantai 2 kanwil": a label; but a number word directly before
/// a noun counts: "teman satu subbag"). Each count gives the class of the highest least count it
/// reaches in its kind; a count below every least count gives nothing.
pub fn counts<'a>(words: &[&str], kinds: &'a [CountKind]) -> Vec<CountFound<'a>> {
    let mut out = Vec::new();
    let is_noun = |w: &str| kind_of(kinds, w).is_some();
    for i in 0..words.len() {
        if WHOLE_WORDS.contains(&words[i]) || WHOLE_PEOPLE.contains(&words[i]) {
            out.extend(whole_group(words, i, kinds));
            continue;
        }
        let Some(mut n) = number(words[i]) else { continue };
        if i > 0 && LABEL_WORDS.contains(&words[i - 1]) {
            continue;
        }
        // "2.000 peserta", "10,000 users": groups of three digits after the first (the
        // punctuation is a space once normalised) continue the number.
        let mut next = i + 1;
        if words[i].len() <= 3 && words[i].bytes().all(|b| b.is_ascii_digit()) {
            while let Some(group) = words.get(next).filter(|w| w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit())) {
                n = n.saturating_mul(1000).saturating_add(group.parse::<u64>().unwrap_or(0));
                next += 1;
            }
        }
        // "lantai 2", "gedung 3": a number after such a noun labels it, it counts nothing. A
        // number word directly before a counted noun counts all the same: in "teman satu subbag"
        // "satu" is the whole subsection, not a label of "teman". So does a number between two
        // nouns that count people ("tim developer 6 orang"): it says how many of them.
        let word_before_noun = !words[i].as_bytes()[0].is_ascii_digit() && words.get(i + 1).is_some_and(|w| is_noun(w));
        let people_before = i > 0 && kind_of(kinds, words[i - 1]).is_some_and(counts_people);
        if i > 0 && is_noun(words[i - 1]) && !word_before_noun {
            let people_after = words.get(next).and_then(|w| kind_of(kinds, w)).is_some_and(counts_people);
            if !(people_before && people_after) {
                continue;
            }
        }
        if let Some((_, m)) = words.get(next).and_then(|w| MULTIPLIERS.iter().find(|(x, _)| x == w)) {
            n = n.saturating_mul(*m);
            next += 1;
        }
        // "error 413. Seluruh tim …": a whole group after the number is its own.
        let found = (next..(next + 2).min(words.len()))
            .take_while(|&j| !WHOLE_WORDS.contains(&words[j]))
            .take_while(|&j| j == next || SKIPPABLE.contains(&words[next]))
            .find_map(|j| kind_of(kinds, words[j]).map(|k| (j, k)));
        let Some((j, kind)) = found else { continue };
        let class = kind.classes.iter().filter(|(_, least)| n >= *least).max_by_key(|(_, least)| *least);
        if let Some(&(class, _)) = class {
            out.push(CountFound { text: words[i..=j].join(" "), number: n, kind: &kind.name, class });
        }
    }
    out
}

/// "semua pegawai", "seluruh user": a whole group of people (a kind whose least count is two or
/// more: staff, the public; not rooms or offices, where "seluruh ruangan" is one whole room) is as
/// many as the kind's largest least count. A place or unit right after the group, or after "di"
/// ("semua pegawai di biro umum", "seluruh staf bagian keuangan"), bounds
/// the group: it is that one place or unit, with its kind's first class (the least count's).
fn whole_group<'a>(words: &[&str], i: usize, kinds: &'a [CountKind]) -> Option<CountFound<'a>> {
    let kind_of = |w: &str| kind_of(kinds, w);
    let (j, kind) = if WHOLE_PEOPLE.contains(&words[i]) {
        (i, kind_of(PEOPLE_NOUN)?)
    } else {
        let mut j = i + 1;
        if words.get(j).is_some_and(|w| WHOLE_FILLERS.contains(w)) {
            j += 1;
        }
        (j, kind_of(words.get(j)?)?)
    };
    let least = kind.classes.iter().map(|(_, l)| *l).min()?;
    if least < 2 {
        // Places: "seluruh ruangan" is one whole room, no group. But where every count of the
        // kind is one class ("semua kanwil", "seluruh KPPN", "all offices": each office alone
        // is an organisation), all of them are that class too.
        return match kind.classes.as_slice() {
            [(class, number)] => {
                Some(CountFound { text: words[i..=j].join(" "), number: *number, kind: &kind.name, class: *class })
            }
            _ => None,
        };
    }
    let k = j + 1;
    // "semua operator gaji di biro keuangan": a bounding "di" may stand up to two words after
    // the group (what the people are), not past another group.
    let bound = (k..(k + 3).min(words.len()))
        .take_while(|&b| !WHOLE_WORDS.contains(&words[b]))
        .find(|&b| BOUND_BEFORE.contains(&words[b]));
    let place = match (bound, words.get(k)) {
        (Some(b), _) => {
            let p = if words.get(b + 1).is_some_and(|f| WHOLE_FILLERS.contains(f)) { b + 2 } else { b + 1 };
            words.get(p).map(|w| (p, *w))
        }
        (None, Some(p)) => Some((k, *p)),
        _ => None,
    };
    if let Some((at, place)) = place
        && let Some(one) = kind_of(place).filter(|p| p.name != kind.name)
    {
        let &(class, _) = one.classes.iter().min_by_key(|(_, l)| *l)?;
        return Some(CountFound { text: words[i..=at].join(" "), number: 1, kind: &one.name, class });
    }
    let &(class, number) = match kind.whole {
        Some(w) => kind.classes.iter().find(|(c, _)| *c == w)?,
        None => kind.classes.iter().max_by_key(|(_, l)| *l)?,
    };
    Some(CountFound { text: words[i..=j].join(" "), number, kind: &kind.name, class })
}

/// A duty due soon (`[impact_due]` in the rules), compiled: an obligation or limit word
/// ("harus", "batas", "must") and a near time ("hari ini", "besok", "by noon") at most `within`
/// words apart, in either order, stand for `class` (the rules give `deadline`: one person
/// blocked on a time-critical duty). Times are phrases of normalised words.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct DueCues {
    pub class: usize,
    pub within: usize,
    pub obligations: Vec<String>,
    pub times: Vec<Vec<String>>,
}

/// The first obligation and near time of `due` that stand at most `due.within` words apart in
/// `words` ("jam 3 sore ini harus dikirim": "sore ini … harus"), as the words from one to the
/// other; `None` without such a pair.
pub fn due_soon(words: &[&str], due: &DueCues) -> Option<String> {
    let obliged: Vec<usize> = (0..words.len()).filter(|&i| due.obligations.iter().any(|o| o == words[i])).collect();
    if obliged.is_empty() {
        return None;
    }
    // A time can pair only with an obligation at most `within` words away: the other words are
    // not compared (the first pair found is the same).
    let longest = due.times.iter().map(Vec::len).max().unwrap_or(0);
    let mut near = vec![false; words.len()];
    for &o in &obliged {
        let from = o.saturating_sub(due.within + longest);
        let to = (o + due.within + 2).min(words.len());
        near[from..to].fill(true);
    }
    for t in (0..words.len()).filter(|&t| near[t]) {
        for time in &due.times {
            let n = time.len();
            if n == 0 || t + n > words.len() || words[t..t + n].iter().zip(time).any(|(w, x)| w != x) {
                continue;
            }
            for &o in &obliged {
                // Words between the two (0 when they touch).
                let gap = if o >= t + n {
                    o - (t + n)
                } else if o < t {
                    t - o - 1
                } else {
                    continue;
                };
                if gap <= due.within {
                    let (a, b) = (o.min(t), o.max(t + n - 1));
                    return Some(words[a..=b].join(" "));
                }
            }
        }
    }
    None
}

/// A pair of cues that names an impact class (`[[impact_pairs]]` in the rules), compiled: one of
/// `first` and then one of `then` at most `within` words later (in either order unless
/// `ordered`): a place named ("di" … "bidang": "di bidang anggaran"), a unit's own ("tim" …
/// "saya"), the public hit by the fault ("importir" … "tidak": "importir ga bisa bayar").
/// Phrases of normalised words; a trailing `*` on a word makes it a prefix.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct PairCues {
    pub name: String,
    pub class: usize,
    pub within: usize,
    pub ordered: bool,
    pub first: Phrases,
    pub then: Phrases,
    /// Words right before a `first` cue that keep it from counting ("kami importir").
    pub not_after: Vec<String>,
}

/// The first pair of `pair` in `words`, as the span of words from one cue to the other; `None` without
/// such a pair.
pub fn pair_found(words: &[&str], pair: &PairCues) -> Option<std::ops::Range<usize>> {
    pair_found_at(words, pair, &[], None, None)
}

/// [`pair_found`] with the words where its cues may start already known: `starts` from the pairs'
/// [`StartIndex`](super::phrases::StartIndex), `first` and `then` the bits of the pair's two
/// sets in it, where they have one (see [`Phrases::find_at`](super::phrases::Phrases::find_at)).
pub fn pair_found_at(
    words: &[&str],
    pair: &PairCues,
    starts: &[u64],
    first: Option<u64>,
    then: Option<u64>,
) -> Option<std::ops::Range<usize>> {
    pair_between(words, pair, pair.first.find_at(words, starts, first), || pair.then.find_at(words, starts, then))
}

/// The first pair of `pair` made of the `first` cues found and the `then` cues (searched only
/// when a first cue stands).
fn pair_between(
    words: &[&str],
    pair: &PairCues,
    first: Vec<(usize, usize, usize)>,
    then: impl FnOnce() -> Vec<(usize, usize, usize)>,
) -> Option<std::ops::Range<usize>> {
    let firsts: Vec<(usize, usize)> = first
        .into_iter()
        .map(|(_, f0, f1)| (f0, f1))
        .filter(|&(f0, _)| f0 == 0 || !pair.not_after.iter().any(|w| w == words[f0 - 1]))
        .collect();
    if firsts.is_empty() {
        return None;
    }
    let mut best: Option<(usize, usize)> = None;
    for (_, t0, t1) in then() {
        for &(f0, f1) in &firsts {
            let gap = if t0 >= f1 {
                t0 - f1
            } else if !pair.ordered && f0 >= t1 {
                f0 - t1
            } else {
                continue;
            };
            if gap <= pair.within {
                let span = (f0.min(t0), f1.max(t1));
                if best.is_none_or(|b| span.0 < b.0) {
                    best = Some(span);
                }
            }
        }
    }
    best.map(|(a, b)| a..b)
}

/// One class's score for a message.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore<'a> {
    pub name: &'a str,
    pub level: Impact,
    pub score: f64,
}

/// The impact of an incident and the class that decided it (`None`: no class reached the
/// threshold, so the impact is `low`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeImpact<'a> {
    pub impact: Impact,
    pub class: Option<&'a ClassScore<'a>>,
}

/// The highest level among the classes whose score reaches `threshold`; between classes of that
/// level, the higher score, then the name (so the answer never depends on the order of files).
pub fn impact_of<'a>(classes: &'a [ClassScore<'a>], threshold: f64) -> ScopeImpact<'a> {
    let best = classes.iter().filter(|c| c.score >= threshold).max_by(|a, b| {
        a.level
            .cmp(&b.level)
            .then(a.score.partial_cmp(&b.score).unwrap_or(std::cmp::Ordering::Equal))
            .then(b.name.cmp(a.name))
    });
    ScopeImpact { impact: best.map(|c| c.level).unwrap_or(Impact::Low), class: best }
}

/// Classes that bound others (`caps` in the rules: `person` caps `unit`, "only me" where "my
/// colleagues" also stands; `degraded` caps `public`, a site slow for its visitors but usable):
/// each class present (score at least `threshold`) sets the score of every present class it caps
/// to zero. One pass over the classes present before any is capped, so the answer does not
/// depend on their order. Returns the (capping, capped) pairs, for `rules explain`.
pub fn apply_caps(classes: &mut [ClassScore<'_>], caps: &[Vec<usize>], threshold: f64) -> Vec<(usize, usize)> {
    let present: Vec<bool> = classes.iter().map(|c| c.score >= threshold).collect();
    let mut capped = Vec::new();
    for (i, bounds) in caps.iter().enumerate() {
        if present.get(i).copied().unwrap_or(false) {
            capped.extend(bounds.iter().filter(|&&j| present.get(j).copied().unwrap_or(false)).map(|&j| (i, j)));
        }
    }
    for &(_, j) in &capped {
        classes[j].score = 0.0;
    }
    capped
}

/// The sentence `rules explain` shows for an incident's impact.
pub fn explain(found: &ScopeImpact<'_>, threshold: f64) -> String {
    match found.class {
        Some(c) => super::Line::new()
            .s("impact ")
            .s(found.impact.as_str())
            .s(" from scope class `")
            .s(c.name)
            .s("` (")
            .tenths(c.score)
            .s(", threshold ")
            .tenths(threshold)
            .s(")")
            .done(),
        None => super::Line::new()
            .s("impact low: no scope class reached ")
            .tenths(threshold)
            .s(" (one person, or scope not stated)")
            .done(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &'static str, level: Impact, score: f64) -> ClassScore<'static> {
        ClassScore { name, level, score }
    }

    fn kinds() -> Vec<CountKind> {
        // Classes by index: 0 unit, 1 organisation, 2 public.
        vec![
            CountKind {
                name: "staff".into(),
                nouns: vec!["pegawai".into(), "developer*".into(), "user*".into(), "orang".into(), "people".into()],
                classes: vec![(1, 30), (0, 2)],
                whole: None,
            },
            CountKind {
                name: "offices".into(),
                nouns: vec!["kanwil".into(), "kantor".into()],
                // As in the rules: one whole office is an organisation (a place, not people).
                classes: vec![(1, 1)],
                whole: None,
            },
            CountKind { name: "rooms".into(), nouns: vec!["biro".into()], classes: vec![(0, 1), (1, 3)], whole: None },
            CountKind {
                name: "public".into(),
                nouns: vec!["warga".into()],
                classes: vec![(0, 2), (2, 10)],
                whole: None,
            },
            CountKind {
                name: "participants".into(),
                nouns: vec!["peserta".into()],
                classes: vec![(0, 2), (1, 100)],
                whole: Some(0),
            },
        ]
    }

    fn count_classes(text: &str) -> Vec<(String, u64, usize)> {
        let k = kinds();
        let words: Vec<&str> = text.split_whitespace().collect();
        counts(&words, &k).into_iter().map(|c| (c.text, c.number, c.class)).collect()
    }

    #[test]
    fn a_count_of_people_or_units_names_the_class_its_kind_gives_that_many() {
        assert_eq!(count_classes("server kami crash 6 developer nganggur"), vec![("6 developer".into(), 6, 0)]);
        assert_eq!(count_classes("semua 40 pegawai tidak bisa login"), vec![("40 pegawai".into(), 40, 1)]);
        assert_eq!(count_classes("20 users affected"), vec![("20 users".into(), 20, 0)]);
        assert_eq!(count_classes("seluruh 12 kanwil terdampak"), vec![("12 kanwil".into(), 12, 1)]);
        // The noun may stand one word after the number; a multiplier and number words count.
        assert_eq!(count_classes("6 orang developer"), vec![("6 orang".into(), 6, 0)]);
        assert_eq!(count_classes("50 ribu warga"), vec![("50 ribu warga".into(), 50_000, 2)]);
        assert_eq!(count_classes("ratusan warga mengeluh"), vec![("ratusan warga".into(), 200, 2)]);
        // A number word after a counted noun still counts when a counted noun follows it directly.
        assert_eq!(count_classes("rekan dua kanwil terdampak"), vec![("dua kanwil".into(), 2, 1)]);
        assert!(count_classes("kantor 2 kanwil").is_empty());
        // Chat's "200an" is about 200; a single digit with "an" is no such count.
        assert_eq!(count_classes("200an pegawai"), vec![("200an pegawai".into(), 200, 1)]);
        assert_eq!(count_classes("20an orang"), vec![("20an orang".into(), 20, 0)]);
        assert!(count_classes("2an pegawai 0200an pegawai").is_empty());
    }

    #[test]
    fn everyone_is_a_whole_group_and_a_kind_may_say_what_its_whole_group_is() {
        assert_eq!(count_classes("everyone gets an error"), vec![("everyone".into(), 30, 1)]);
        // "in our bureau" bounds it like "semua pegawai di biro umum".
        assert_eq!(
            count_classes("error for everyone in our biro since 10"),
            vec![("everyone in our biro".into(), 1, 0)]
        );
        assert_eq!(count_classes("everybody di biro umum"), vec![("everybody di biro".into(), 1, 0)]);
        // All of one class's participants are one unit's; a hundred participants are many.
        assert_eq!(count_classes("semua peserta kelas ekspor"), vec![("semua peserta".into(), 2, 0)]);
        assert_eq!(count_classes("300 peserta menunggu"), vec![("300 peserta".into(), 300, 1)]);
        assert_eq!(count_classes("bimtek 80 peserta"), vec![("80 peserta".into(), 80, 0)]);
    }

    fn due() -> DueCues {
        DueCues {
            class: 3,
            within: 5,
            obligations: vec!["harus".into(), "batas".into(), "must".into()],
            times: vec![vec!["hari".into(), "ini".into()], vec!["besok".into()], vec!["sore".into(), "ini".into()]],
        }
    }

    fn due_in(text: &str) -> Option<String> {
        due_soon(&text.split_whitespace().collect::<Vec<_>>(), &due())
    }

    #[test]
    fn an_obligation_near_a_near_time_is_a_duty_due_soon() {
        assert_eq!(due_in("gaji harus dibayar besok").as_deref(), Some("harus dibayar besok"));
        // Either order; the words between at most `within`.
        assert_eq!(due_in("padahal jam 3 sore ini harus dikirim").as_deref(), Some("sore ini harus"));
        assert_eq!(due_in("batas usulan hari ini").as_deref(), Some("batas usulan hari ini"));
        assert_eq!(due_in("batas a b c d e f hari ini"), None);
        // At most `within` words apart on either side, however far into the message.
        let far = "x ".repeat(40);
        assert_eq!(due_in(&format!("{far}batas a b c d e hari ini")).as_deref(), Some("batas a b c d e hari ini"));
        assert_eq!(
            due_in(&format!("{far}hari ini a b c d e harus {far}")).as_deref(),
            Some("hari ini a b c d e harus")
        );
        assert_eq!(due_in(&format!("{far}hari ini a b c d e f harus {far}")), None);
        assert_eq!(due_in(&format!("{far}harus a b c d e f sore ini")), None);
        // A time alone, or an obligation alone, is no duty.
        assert_eq!(due_in("error sejak hari ini"), None);
        assert_eq!(due_in("harus restart terus"), None);
    }

    #[test]
    fn a_whole_group_of_people_counts_as_many_unless_a_place_bounds_it() {
        assert_eq!(count_classes("seluruh pegawai tidak bisa login"), vec![("seluruh pegawai".into(), 30, 1)]);
        assert_eq!(count_classes("all our users"), vec![("all our users".into(), 30, 1)]);
        // One place's people: the class one of that place stands for.
        assert_eq!(count_classes("semua pegawai di kanwil timur"), vec![("semua pegawai di kanwil".into(), 1, 1)]);
        assert_eq!(count_classes("seluruh pegawai kantor kami"), vec![("seluruh pegawai kantor".into(), 1, 1)]);
        // "semua 40 pegawai" is the number's; a whole place is no group of people.
        assert_eq!(count_classes("semua 40 pegawai"), vec![("40 pegawai".into(), 40, 1)]);
        let rooms = [CountKind {
            name: "rooms".into(),
            nouns: vec!["ruangan".into()],
            classes: vec![(0, 1), (1, 3)],
            whole: None,
        }];
        assert!(counts(&["seluruh", "ruangan"], &rooms).is_empty());
        // Every office of a kind whose one office is already a class: that class.
        assert_eq!(count_classes("semua kanwil tidak bisa akses"), vec![("semua kanwil".into(), 1, 1)]);
        // A number does not reach over a whole group: "error 413. Seluruh tim …".
        assert_eq!(count_classes("error 413 seluruh pegawai"), vec![("seluruh pegawai".into(), 30, 1)]);
    }

    #[test]
    fn digit_groups_continue_a_number_and_a_number_between_people_counts() {
        // "2.000 peserta", "10,000 users": the punctuation is a space once normalised.
        assert_eq!(count_classes("data 2 000 peserta bocor"), vec![("2 000 peserta".into(), 2000, 1)]);
        assert_eq!(count_classes("10 000 users"), vec![("10 000 users".into(), 10000, 1)]);
        // A group of two digits is no thousands ("jam 10.30").
        assert_eq!(count_classes("1 30 pegawai"), vec![("30 pegawai".into(), 30, 1)]);
        // "tim developer 6 orang": how many developers, not a label.
        assert_eq!(count_classes("developer 6 orang nganggur"), vec![("6 orang".into(), 6, 0)]);
        // A label still: a number between a place and another kind ("biro 2 kanwil").
        assert!(count_classes("biro 2 kanwil").is_empty());
    }

    #[test]
    fn a_bounding_place_may_stand_two_words_after_the_group() {
        assert_eq!(
            count_classes("semua pegawai gaji di biro keuangan"),
            vec![("semua pegawai gaji di biro".into(), 1, 0)]
        );
        // Past two words it bounds nothing.
        assert_eq!(count_classes("semua pegawai tidak bisa login di biro"), vec![("semua pegawai".into(), 30, 1)]);
    }

    fn pair(first: &[&str], then: &[&str], within: usize, ordered: bool) -> PairCues {
        let phrases =
            |ps: &[&str]| Phrases::new(ps.iter().map(|p| p.split(' ').map(str::to_string).collect()).collect());
        PairCues {
            name: "p".into(),
            class: 0,
            within,
            ordered,
            first: phrases(first),
            then: phrases(then),
            not_after: vec!["kami".into()],
        }
    }

    fn pair_in(text: &str, p: &PairCues) -> Option<String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        pair_found(&words, p).map(|r| words[r].join(" "))
    }

    #[test]
    fn a_pair_of_cues_near_each_other_is_found() {
        let place = pair(&["di", "ruang"], &["bidang", "lantai"], 0, true);
        assert_eq!(pair_in("intranet di ruang bidang anggaran putus", &place).as_deref(), Some("ruang bidang"));
        assert_eq!(pair_in("wifi di lantai 5 mati", &place).as_deref(), Some("di lantai"));
        assert_eq!(pair_in("bidang di sini", &place), None, "ordered: `then` after `first`");
        let hit = pair(&["importir", "pelaku usaha"], &["tidak", "can t"], 2, true);
        assert_eq!(pair_in("importir tidak bisa bayar", &hit).as_deref(), Some("importir tidak"));
        assert_eq!(pair_in("pelaku usaha di sini can t log in", &hit).as_deref(), Some("pelaku usaha di sini can t"));
        assert_eq!(pair_in("importir a b c tidak", &hit), None, "too far apart");
        assert_eq!(pair_in("kami importir tidak bisa bayar", &hit), None, "one of them writing");
        let either = pair(&["harus"], &["besok"], 1, false);
        assert_eq!(pair_in("besok pagi harus", &either).as_deref(), Some("besok pagi harus"));
        let prefix = pair(&["reader*"], &["cannot"], 0, true);
        assert_eq!(pair_in("readers cannot open", &prefix).as_deref(), Some("readers cannot"));
    }

    #[test]
    fn numbers_that_count_nothing_known_give_no_class() {
        // One person is below every least count of staff; a figure, a floor number, a price.
        assert!(count_classes("1 pegawai saja").is_empty());
        assert!(count_classes("lantai 5 gedung 2 error 500 bayar 2 jt").is_empty());
        assert!(count_classes("nomor 1234567890123 pegawai").is_empty(), "a long figure is an id");
        assert!(count_classes("pesan ora 01400 kanwil").is_empty(), "a leading zero makes a code");
        // A noun two words after the number is too far to be what it counts.
        assert!(count_classes("300 kali dalam sehari pegawai").is_empty());
        // One word between counts only when it is a counting word: "30 naskah kantor" names
        // documents, "3 buah kanwil" three offices, "hundreds of users" many users.
        assert!(count_classes("ada 30 naskah kantor yang gagal").is_empty());
        assert_eq!(count_classes("3 buah kanwil").len(), 1);
        assert_eq!(count_classes("hundreds of users"), vec![("hundreds of users".into(), 200, 1)]);
        assert!(count_classes("").is_empty());
        // A number after a counted noun labels it ("kantor 2", the second office).
        assert!(count_classes("lan kantor 2 kanwil putus").is_empty());
        assert_eq!(count_classes("kantor 2 dan 3 kanwil").len(), 1);
        // A time, an error code, a date: the number labels it ("dari jam 9, satu lantai").
        assert!(count_classes("mati dari jam 9 pegawai").is_empty());
        assert!(count_classes("error 500 tiap warga").is_empty());
        assert!(count_classes("sejak tanggal 12 pegawai kanwil").is_empty());
        assert!(count_classes("potongan pph 21 pegawai salah").is_empty());
        assert_eq!(count_classes("dari jam 9 12 pegawai"), vec![("12 pegawai".into(), 12, 0)]);
        // "ke" is no label: "ke 5 kanwil" counts five offices.
        assert_eq!(count_classes("link ke 5 kanwil putus").len(), 1);
    }

    #[test]
    fn a_class_present_caps_the_classes_it_bounds_and_only_those() {
        // 0 person (caps unit, degraded), 1 unit, 2 degraded (caps public), 3 public.
        let caps = vec![vec![1, 2], vec![], vec![3], vec![]];
        let mut cs = [
            class("person", Impact::Low, 3.0),
            class("unit", Impact::Medium, 2.0),
            class("degraded", Impact::Medium, 2.5),
            class("public", Impact::High, 2.0),
        ];
        // Both caps come from the classes present before capping: degraded, though capped by
        // person, still bounds public.
        assert_eq!(apply_caps(&mut cs, &caps, 2.0), vec![(0, 1), (0, 2), (2, 3)]);
        assert_eq!(impact_of(&cs, 2.0).impact, Impact::Low);
        // Without the person cue, unit counts: medium; public stays capped by degraded.
        let mut cs = [
            class("person", Impact::Low, 1.0),
            class("unit", Impact::Medium, 2.0),
            class("degraded", Impact::Medium, 2.0),
            class("public", Impact::High, 2.5),
        ];
        assert_eq!(apply_caps(&mut cs, &caps, 2.0), vec![(2, 3)]);
        assert_eq!(impact_of(&cs, 2.0).impact, Impact::Medium);
        // A class below the threshold caps nothing: the public outage stands.
        let mut cs = [
            class("person", Impact::Low, 0.0),
            class("unit", Impact::Medium, 0.0),
            class("degraded", Impact::Medium, 1.5),
            class("public", Impact::High, 2.5),
        ];
        assert!(apply_caps(&mut cs, &caps, 2.0).is_empty());
        assert_eq!(impact_of(&cs, 2.0).impact, Impact::High);
    }

    #[test]
    fn no_class_reaching_the_threshold_is_low() {
        let cs = [class("unit", Impact::Medium, 1.5), class("organisation", Impact::High, 1.0)];
        let f = impact_of(&cs, 2.0);
        assert_eq!((f.impact, f.class), (Impact::Low, None));
        assert!(explain(&f, 2.0).contains("no scope class reached 2.0"));
        assert_eq!(impact_of(&[], 2.0).impact, Impact::Low);
    }

    #[test]
    fn the_highest_level_present_wins_not_the_highest_score() {
        let cs = [class("unit", Impact::Medium, 6.0), class("security_breach", Impact::High, 2.0)];
        let f = impact_of(&cs, 2.0);
        assert_eq!(f.impact, Impact::High);
        assert_eq!(f.class.map(|c| c.name), Some("security_breach"));
        assert_eq!(explain(&f, 2.0), "impact high from scope class `security_breach` (2.0, threshold 2.0)");
    }

    #[test]
    fn a_low_class_explains_a_low_impact() {
        let cs = [class("person", Impact::Low, 3.0)];
        let f = impact_of(&cs, 2.0);
        assert_eq!((f.impact, f.class.map(|c| c.name)), (Impact::Low, Some("person")));
    }

    #[test]
    fn equal_levels_go_to_the_higher_score_then_the_name_whatever_the_order() {
        let a = [class("public", Impact::High, 3.0), class("organisation", Impact::High, 4.0)];
        let b = [class("organisation", Impact::High, 4.0), class("public", Impact::High, 3.0)];
        assert_eq!(impact_of(&a, 2.0).class.map(|c| c.name), Some("organisation"));
        assert_eq!(impact_of(&b, 2.0).class.map(|c| c.name), Some("organisation"));
        let c = [class("public", Impact::High, 3.0), class("organisation", Impact::High, 3.0)];
        let d = [class("organisation", Impact::High, 3.0), class("public", Impact::High, 3.0)];
        assert_eq!(impact_of(&c, 2.0).class.map(|c| c.name), Some("organisation"));
        assert_eq!(impact_of(&d, 2.0).class.map(|c| c.name), Some("organisation"));
    }
}
