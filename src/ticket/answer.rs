//! Reading a requester's answer to a resolution notice ("your ticket is resolved, reply
//! 'Ya, sudah jelas' or 'Belum'"), in Indonesian and English, formal or chat style. Pure.
//!
//! The reply is cut to what the requester wrote now (quoted lines, reply headers and signatures
//! are dropped), split into clauses at punctuation, and each clause is folded and tokenized; chat
//! abbreviations and common typos are mapped to one canonical word (`gk`→`tidak`, `sdh`→`sudah`,
//! `makasih`→`thanks`). Then the rules, in this order:
//!
//! 1. Nothing left → [`Answer::Unclear`].
//! 2. Any sign that the problem persists → [`Answer::Reopen`]: "belum" (not "belum sempat/dicoba"),
//!    "not yet", a negated working state ("tidak bisa", "not working", "tidak berhasil"),
//!    "masih/tetap/still/persists" (unless followed by a working state or by "saya cek"), a
//!    failure word ("error", "gagal", "kendala") that is not itself negated or resolved
//!    ("tidak ada kendala lagi", "no more errors" and "masalah sudah teratasi" are not failures),
//!    or a reply made only of "tidak"/"no". In a question only failures and negated states count.
//! 3. Any doubt → [`Answer::Unclear`]: a question, a request, a contrast ("tapi", "but") with no
//!    failure named, or a deferral ("nanti saya coba dulu", "will check tomorrow").
//! 4. Any thanks, okay or working-state word → [`Answer::Confirm`].
//! 5. Otherwise (an unrelated message) → [`Answer::Unclear`]. The reader never guesses.

use serde::Serialize;

use crate::routing::normalize::fold;

/// What a requester's reply to a resolution notice says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The problem is solved; the ticket may close.
    Confirm,
    /// The problem persists; the ticket reopens.
    Reopen,
    /// A question, another subject, or a mix that cannot be decided.
    Unclear,
}

/// Negation words (after canonicalisation).
const NEG: &[&str] = &["tidak", "not", "no", "bukan", "never", "tanpa", "without", "jangan"];
/// Negations that turn a working state into a failure ("tidak bisa", "not working").
const NEG_STATE: &[&str] = &["tidak", "not", "bukan", "never"];
/// Words a bare "no" may come with.
const FILLER: &[&str] =
    &["pak", "bu", "bapak", "ibu", "mas", "mbak", "kak", "maaf", "mohon", "sorry", "saya", "sih", "deh"];
/// Words naming a failure.
const FAILURE: &[&str] = &[
    "error",
    "gagal",
    "fail",
    "failed",
    "failing",
    "fails",
    "failure",
    "kendala",
    "masalah",
    "permasalahan",
    "problem",
    "problems",
    "issue",
    "issues",
    "trouble",
    "bermasalah",
    "rusak",
    "mati",
    "hang",
    "crash",
    "crashing",
    "crashes",
    "offline",
    "putus",
    "terputus",
    "disconnect",
    "disconnecting",
    "disconnected",
    "ditolak",
    "denied",
    "broken",
    "bug",
    "kambuh",
    "lemot",
];
/// Words that, after a failure word, say it is gone ("errornya sudah hilang").
const RESOLVED: &[&str] =
    &["hilang", "gone", "teratasi", "selesai", "beres", "solved", "fixed", "resolved", "diperbaiki"];
/// Verbs of appearing: "masalah sudah tidak muncul lagi" negates the failure before them.
const APPEAR: &[&str] =
    &["muncul", "ada", "terjadi", "keluar", "appear", "appears", "happen", "happens", "occur", "occurs"];
/// Working states that confirm on their own, and are failures when negated.
const STRONG_STATE: &[&str] = &[
    "jelas",
    "clear",
    "selesai",
    "beres",
    "normal",
    "lancar",
    "aman",
    "teratasi",
    "solved",
    "fixed",
    "resolved",
    "berhasil",
    "works",
    "working",
    "worked",
    "terhubung",
    "sesuai",
    "berfungsi",
    "good",
    "fine",
    "done",
    "baik",
];
/// Working states that confirm only after "sudah/already/now" ("sudah bisa"), and are failures when
/// negated ("tidak bisa").
const WEAK_STATE: &[&str] = &[
    "bisa",
    "dapat",
    "jalan",
    "berjalan",
    "masuk",
    "login",
    "can",
    "able",
    "work",
    "dipakai",
    "digunakan",
    "diakses",
    "diterima",
    "nyala",
    "menyala",
    "terbuka",
    "dibuka",
    "terdeteksi",
    "tersambung",
    "berubah",
    "perubahan",
    "change",
    "changed",
    "accepted",
];
/// Words that make a weak state a confirmation.
const ALREADY: &[&str] = &["sudah", "already", "now", "sekarang"];
/// Words saying the problem is still there.
const PERSIST: &[&str] = &["masih", "tetap", "still", "persists", "persist", "persisting", "keeps"];
/// Who is still somewhere: "saya masih di luar kota" is about the requester, not the problem.
const PERSON: &[&str] = &["saya", "kami", "i", "we"];
/// Checking verbs: "masih saya cek", "belum dicoba" defer the answer.
const CHECK: &[&str] = &[
    "cek", "dicek", "mengecek", "coba", "dicoba", "mencoba", "sempat", "tes", "dites", "test", "testing", "pantau",
    "check", "checking", "monitor", "tried", "try",
];
/// Confirmation words that are not states.
const CONFIRM: &[&str] = &[
    "ya",
    "ok",
    "sip",
    "mantap",
    "thanks",
    "alhamdulillah",
    "noted",
    "confirmed",
    "confirm",
    "betul",
    "benar",
    "great",
    "perfect",
];
/// Asking to close the ticket ("tiket boleh ditutup").
const CLOSE: &[&str] = &["ditutup", "tutup", "close", "closed"];
/// Contrast: with no failure named the reply cannot be decided.
const CONTRAST: &[&str] = &["tapi", "but", "however", "though", "although"];
/// Questions and requests about something else.
const QUESTION: &[&str] = &[
    "apakah",
    "kapan",
    "siapa",
    "bagaimana",
    "gimana",
    "gmn",
    "berapa",
    "kenapa",
    "mengapa",
    "dimana",
    "what",
    "when",
    "who",
    "how",
    "why",
    "where",
    "tanya",
    "minta",
    "tolong",
    "hubungi",
    "call",
    "info",
];
/// Deferring the answer to later.
const DEFER: &[&str] = &["nanti", "besok", "dulu", "sebentar", "cuti", "later", "tomorrow", "will", "kabari"];

/// Reads a requester's reply to a resolution notice. See the module documentation for the rules.
pub fn read_answer(text: &str) -> Answer {
    // What the requester wrote now; a quoted line never counts, even one the trimmer keeps (a
    // reply that is nothing but a quote).
    let own = crate::mail::trim::trim_reply_text(text);
    let own: Vec<&str> = own.lines().filter(|l| !l.trim_start().starts_with('>')).collect();
    let clauses = clauses(&own.join("\n"));
    let words: Vec<&str> = clauses.iter().flat_map(|c| c.words.iter().map(String::as_str)).collect();
    if words.is_empty() {
        return Answer::Unclear;
    }
    if words.iter().all(|w| NEG.contains(w) || FILLER.contains(w)) {
        return Answer::Reopen;
    }
    let mut signals = Signals::default();
    for clause in &clauses {
        clause.scan(&mut signals);
    }
    if signals.reopen {
        Answer::Reopen
    } else if signals.doubt {
        Answer::Unclear
    } else if signals.confirm || words.iter().all(|w| *w == "sudah" || FILLER.contains(w)) {
        Answer::Confirm
    } else {
        Answer::Unclear
    }
}

#[derive(Default)]
struct Signals {
    reopen: bool,
    doubt: bool,
    confirm: bool,
}

/// One clause: canonical words, and whether it ended with a question mark.
struct Clause {
    words: Vec<String>,
    question: bool,
}

impl Clause {
    fn scan(&self, s: &mut Signals) {
        let w: Vec<&str> = self.words.iter().map(String::as_str).collect();
        let at = |i: usize| w.get(i).copied().unwrap_or("");
        let negated_state = |i: usize| (1..=2).any(|d| i >= d && NEG_STATE.contains(&at(i - d)));
        if self.question {
            s.doubt = true;
        }
        for (i, word) in w.iter().copied().enumerate() {
            let state = STRONG_STATE.contains(&word) || WEAK_STATE.contains(&word);
            if state && negated_state(i) {
                s.reopen = true;
            } else if STRONG_STATE.contains(&word)
                || (WEAK_STATE.contains(&word) && (1..=3).any(|d| i >= d && ALREADY.contains(&at(i - d))))
            {
                s.confirm = true;
            }
            if FAILURE.contains(&word) {
                if failure_negated(&w, i) {
                    s.confirm = true;
                } else {
                    s.reopen = true;
                }
            }
            if word == "sama" && matches!(at(i + 1), "saja" | "aja") && !self.question {
                s.reopen = true;
            }
            if word == "not" && at(i + 1) == "yet" && !self.question {
                s.reopen = true;
            }
            if word == "belum" && !self.question {
                if CHECK.contains(&at(i + 1)) || CHECK.contains(&at(i + 2)) {
                    s.doubt = true;
                } else {
                    s.reopen = true;
                }
            }
            if PERSIST.contains(&word) && !self.question {
                let next = at(i + 1);
                if CHECK.contains(&next) || CHECK.contains(&at(i + 2)) || (i > 0 && PERSON.contains(&at(i - 1))) {
                    s.doubt = true;
                } else if !(STRONG_STATE.contains(&next) || WEAK_STATE.contains(&next)) {
                    s.reopen = true;
                }
            }
            if CONFIRM.contains(&word) {
                s.confirm = true;
            }
            if CLOSE.contains(&word) {
                if (1..=2).any(|d| i >= d && NEG.contains(&at(i - d))) {
                    s.doubt = true;
                } else {
                    s.confirm = true;
                }
            }
            let deferring = DEFER.contains(&word)
                || (word == "akan" && at(i + 1) != "tapi")
                || (word == "out" && at(i + 1) == "of" && at(i + 2) == "office");
            if CONTRAST.contains(&word) || QUESTION.contains(&word) || deferring {
                s.doubt = true;
            }
        }
    }
}

/// Whether the failure word at `i` is negated ("tidak ada kendala", "no more errors", "not an
/// issue") or said to be gone ("masalah sudah teratasi", "error sudah tidak muncul lagi").
fn failure_negated(w: &[&str], i: usize) -> bool {
    if (1..=3).any(|d| i >= d && NEG.contains(&w[i - d])) {
        return true;
    }
    let after = &w[i + 1..(i + 5).min(w.len())];
    after.iter().enumerate().any(|(j, x)| {
        let negated_before = j > 0 && (NEG.contains(&after[j - 1]) || after[j - 1] == "belum");
        (RESOLVED.contains(x) && !negated_before) || (APPEAR.contains(x) && negated_before)
    })
}

/// Splits at clause punctuation and turns each clause into canonical words.
fn clauses(text: &str) -> Vec<Clause> {
    let mut lower = text.to_lowercase().replace('’', "'");
    for (from, to) in [
        ("can't", "cannot"),
        ("won't", "will not"),
        ("n't", " not"),
        ("👍", " ok "),
        ("👌", " ok "),
        ("🙏", " thanks "),
    ] {
        lower = lower.replace(from, to);
    }
    let mut out = Vec::new();
    let mut rest = lower.as_str();
    while !rest.is_empty() {
        let end = rest.find(['.', ',', ';', '!', '?', ':', '\n']).unwrap_or(rest.len());
        let question = rest[end..].starts_with('?');
        let words = canonical_words(&rest[..end]);
        if !words.is_empty() || question {
            out.push(Clause { words, question });
        }
        rest = rest.get(end + 1..).unwrap_or("");
    }
    out
}

/// Folds a clause and maps abbreviations, typos and two-word forms to canonical words.
fn canonical_words(clause: &str) -> Vec<String> {
    let folded = fold(clause);
    let raw: Vec<&str> = folded.split_whitespace().collect();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let w = raw[i];
        let next = raw.get(i + 1).copied().unwrap_or("");
        if matches!(w, "terima" | "trima" | "trm") && matches!(next, "kasih" | "kasi" | "ksh" | "kasih2") {
            out.push("thanks".to_string());
            i += 2;
            continue;
        }
        let c = canonical(w).or_else(|| w.strip_suffix("nya").filter(|s| s.len() >= 3).and_then(canonical));
        match c {
            Some(words) => out.extend(words.split(' ').map(str::to_string)),
            None => out.push(w.strip_suffix("nya").filter(|s| s.len() >= 3).unwrap_or(w).to_string()),
        }
        i += 1;
    }
    out
}

/// The canonical form of a chat abbreviation or typo (possibly two words), if it has one.
fn canonical(w: &str) -> Option<&'static str> {
    let c = match w {
        "sdh" | "udh" | "udah" | "sudh" | "dah" | "sdah" | "sudah" => "sudah",
        "blm" | "blum" | "belom" | "blom" | "belum" => "belum",
        "gk" | "ga" | "gak" | "nggak" | "ngga" | "enggak" | "engga" | "tdk" | "tak" | "gag" | "kagak" | "tidak" => {
            "tidak"
        }
        "gabisa" | "gakbisa" | "gbs" | "gabs" | "gkbs" | "gkbisa" | "tdkbisa" | "nggakbisa" => "tidak bisa",
        "cannot" => "not can",
        "msh" | "masi" | "msih" | "masih" => "masih",
        "ttp" | "tetep" | "tetp" | "ttep" | "tetap" => "tetap",
        "lg" | "lgi" | "lagi" => "lagi",
        "sy" | "aku" | "saya" => "saya",
        "bs" | "bsa" | "bisa" => "bisa",
        "tp" | "tpi" | "tetapi" | "namun" | "tapi" => "tapi",
        "sip" | "siap" | "sipp" | "siip" => "sip",
        "mantap" | "mantul" | "mantab" | "mantep" | "mantaap" => "mantap",
        "eror" | "err" | "erorr" | "errors" | "galat" | "error" => "error",
        "jls" | "jelas" => "jelas",
        "iya" | "iyaa" | "iyah" | "yaa" | "yes" | "yep" | "yup" | "yeah" | "y" | "ya" => "ya",
        "skrg" | "skrng" | "sekarang" => "sekarang",
        "konek" | "connect" | "connected" | "terkoneksi" | "terhubung" => "terhubung",
        "terimakasih" | "trimakasih" | "terimaksih" | "makasih" | "makasi" | "mksh" | "mks" | "trims" | "tq"
        | "thx" | "tks" | "thanks" | "thank" | "thnx" | "tengkyu" | "trmksh" | "thankyou" | "ty" => "thanks",
        _ if w.len() >= 2 && w.starts_with("ok") && w.chars().all(|c| matches!(c, 'o' | 'k' | 'e' | 'y' | 'h')) => "ok",
        _ => return None,
    };
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/answers.tsv");

    #[test]
    fn plain_cases() {
        assert_eq!(read_answer("Ya, sudah jelas"), Answer::Confirm);
        assert_eq!(read_answer("Baik, terima kasih"), Answer::Confirm);
        assert_eq!(read_answer("Terimakasih pak"), Answer::Confirm);
        assert_eq!(read_answer("Mantap, terima kasih"), Answer::Confirm);
        assert_eq!(read_answer("Terima kasih, tetapi saya belum bisa login"), Answer::Reopen);
        assert_eq!(read_answer("Sudah saya coba, tetap gagal"), Answer::Reopen);
        assert_eq!(read_answer("Ok tapi error lagi"), Answer::Reopen);
        assert_eq!(read_answer("tidak"), Answer::Reopen);
        assert_eq!(read_answer("No"), Answer::Reopen);
        assert_eq!(read_answer("Sudah tidak ada kendala lagi"), Answer::Confirm);
        assert_eq!(read_answer("No more errors"), Answer::Confirm);
        assert_eq!(read_answer("kapan ya bisa dicek?"), Answer::Unclear);
        assert_eq!(read_answer(""), Answer::Unclear);
        assert_eq!(read_answer("   \n  "), Answer::Unclear);
    }

    #[test]
    fn quoted_text_and_signatures_do_not_count() {
        let quoted = "Terima kasih\n\nPada Sen, 5 Jan 2026 09.00, Service Desk <hero@kemendag.go.id> menulis:\n\
                      > Balas Ya, sudah jelas atau Belum. Masih error?";
        assert_eq!(read_answer(quoted), Answer::Confirm);
        assert_eq!(read_answer("> Ya, sudah jelas"), Answer::Unclear);
        assert_eq!(read_answer("Belum\n-- \nBudi\nYa, sudah jelas"), Answer::Reopen);
        assert_eq!(read_answer("Ya\n-----Original Message-----\nBelum"), Answer::Confirm);
    }

    #[test]
    fn serializes_snake_case() {
        assert_eq!(serde_json::to_string(&Answer::Unclear).ok().as_deref(), Some("\"unclear\""));
    }

    #[test]
    fn labelled_replies() {
        let mut total = 0usize;
        let mut right = 0usize;
        let mut false_confirms = 0usize;
        let mut per_class = [0usize; 3];
        for line in FIXTURE.lines() {
            if line.trim().is_empty() {
                continue;
            }
            let (label, text) = line.split_once('\t').unwrap_or((line, ""));
            let expected = match label {
                "confirm" => Answer::Confirm,
                "reopen" => Answer::Reopen,
                "unclear" => Answer::Unclear,
                other => panic!("bad label {other:?} in answers.tsv"),
            };
            per_class[expected as usize] += 1;
            let text = text.replace("\\n", "\n");
            let got = read_answer(text.trim());
            total += 1;
            if got == expected {
                right += 1;
            } else {
                println!("MISMATCH expected {expected:?} got {got:?}: {text:?}");
                if got == Answer::Confirm {
                    false_confirms += 1;
                }
            }
        }
        let accuracy = right as f64 / total as f64;
        println!("{right}/{total} = {:.1} %, per class {per_class:?}", accuracy * 100.0);
        assert!(total >= 170, "{total} lines");
        assert!(per_class[0] >= 70 && per_class[1] >= 60 && per_class[2] >= 25, "{per_class:?}");
        assert_eq!(false_confirms, 0, "replies read as Confirm that are not");
        assert!(accuracy >= 0.97, "accuracy {accuracy}");
    }
}
