//! The date of the event a request is about (a DC visit, a video conference, a broadcast), read
//! from its text in the forms Indonesian and English requesters write: "Senin, 12 Januari 2026",
//! "12/01/2026", "2026-01-12", "12 Jan", "January 12, 2026", "besok pukul 09.00", "lusa",
//! "Selasa depan", "next Tuesday". Pure: `today` (the desk's local date) is passed in.
//!
//! Rules: a written date (day, month, optional year) wins over a relative one ("besok", a
//! weekday); among written dates the first one not before `today` counts (a request may cite an
//! earlier letter's date); a date without a year is the next such day from `today`. A weekday
//! ("Selasa", "Selasa depan", "next Tuesday") is its next occurrence after `today`; one said of the
//! past ("sejak Senin", "Senin lalu", "last Monday") is not an event. The first time of day after
//! "pukul", "jam", "pkl" or "at" is the event's time. Only the first 16 KiB of text are read.

use std::sync::LazyLock;

use chrono::{Datelike, Days, NaiveDate, NaiveTime, Weekday};
use regex::Regex;

/// The event's date and, when the request gives it, its time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDate {
    pub date: NaiveDate,
    pub time: Option<NaiveTime>,
}

const MONTHS: &str = "januari|january|jan|februari|pebruari|february|feb|maret|march|mar|april|apr|mei|may|juni|june|jun|juli|july|jul|agustus|august|agu|agt|aug|september|sept|sep|oktober|october|okt|oct|november|nov|desember|december|des|dec";
const WEEKDAYS: &str =
    "senin|selasa|rabu|kamis|jumat|jum'at|sabtu|minggu|monday|tuesday|wednesday|thursday|friday|saturday|sunday";

static NUMERIC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})\b").expect("numeric date regex"));
static ISO: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b").expect("iso date regex"));
static DAY_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"\b(\d{{1,2}})\s+({MONTHS})\b\.?(?:\s+(\d{{4}})\b)?")).expect("day month regex")
});
static MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"\b({MONTHS})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?"))
        .expect("month day regex")
});
static WEEKDAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:\b(sejak|since|last|next)\s+)?(?:\bhari\s+)?\b({WEEKDAYS})\b(?:\s+(depan|lalu|kemarin|yang lalu)\b)?"
    ))
    .expect("weekday regex")
});
static RELATIVE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(besok|lusa|tomorrow)\b").expect("relative date regex"));
static TIME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:pukul|jam|pkl\.?|at)\s*(\d{1,2})(?:[.:](\d{2}))?\b").expect("time regex"));

fn month(word: &str) -> Option<u32> {
    let m = match word {
        w if w.starts_with("jan") => 1,
        w if w.starts_with("feb") || w.starts_with("peb") => 2,
        w if w.starts_with("mar") => 3,
        w if w.starts_with("apr") => 4,
        "mei" | "may" => 5,
        w if w.starts_with("jun") => 6,
        w if w.starts_with("jul") => 7,
        w if w.starts_with("ag") || w.starts_with("aug") => 8,
        w if w.starts_with("sep") => 9,
        w if w.starts_with("okt") || w.starts_with("oct") => 10,
        w if w.starts_with("nov") => 11,
        w if w.starts_with("des") || w.starts_with("dec") => 12,
        _ => return None,
    };
    Some(m)
}

fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "senin" | "monday" => Weekday::Mon,
        "selasa" | "tuesday" => Weekday::Tue,
        "rabu" | "wednesday" => Weekday::Wed,
        "kamis" | "thursday" => Weekday::Thu,
        "jumat" | "jum'at" | "friday" => Weekday::Fri,
        "sabtu" | "saturday" => Weekday::Sat,
        "minggu" | "sunday" => Weekday::Sun,
        _ => return None,
    })
}

/// A day and month without a year: the next such day from `today` (today included).
fn next_of(day: u32, month: u32, today: NaiveDate) -> Option<NaiveDate> {
    let this = NaiveDate::from_ymd_opt(today.year(), month, day);
    match this {
        Some(d) if d >= today => Some(d),
        _ => NaiveDate::from_ymd_opt(today.year() + 1, month, day),
    }
}

fn num(s: Option<regex::Match<'_>>) -> Option<u32> {
    s?.as_str().parse().ok()
}

/// The event date `text` names, if any (see the module's rules).
pub fn find(text: &str, today: NaiveDate) -> Option<EventDate> {
    let text = text[..text.floor_char_boundary(16 * 1024)].to_lowercase();
    let mut written: Vec<(usize, NaiveDate)> = Vec::new();
    let full = |y: Option<u32>, m: Option<u32>, d: Option<u32>| match (y, m, d) {
        (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d),
        (None, Some(m), Some(d)) => next_of(d, m, today),
        _ => None,
    };
    for c in NUMERIC.captures_iter(&text) {
        if let Some(d) = full(num(c.get(3)), num(c.get(2)), num(c.get(1))) {
            written.push((c.get(0).map_or(0, |m| m.start()), d));
        }
    }
    for c in ISO.captures_iter(&text) {
        if let Some(d) = full(num(c.get(1)), num(c.get(2)), num(c.get(3))) {
            written.push((c.get(0).map_or(0, |m| m.start()), d));
        }
    }
    for c in DAY_MONTH.captures_iter(&text) {
        if let Some(d) = full(num(c.get(3)), c.get(2).and_then(|m| month(m.as_str())), num(c.get(1))) {
            written.push((c.get(0).map_or(0, |m| m.start()), d));
        }
    }
    for c in MONTH_DAY.captures_iter(&text) {
        if let Some(d) = full(num(c.get(3)), c.get(1).and_then(|m| month(m.as_str())), num(c.get(2))) {
            written.push((c.get(0).map_or(0, |m| m.start()), d));
        }
    }
    written.sort();
    let date = written.iter().map(|(_, d)| *d).find(|d| *d >= today).or_else(|| {
        let mut relative: Vec<(usize, NaiveDate)> = Vec::new();
        for c in RELATIVE.captures_iter(&text) {
            let days = if c.get(1).is_some_and(|m| m.as_str() == "lusa") { 2 } else { 1 };
            if let Some(d) = today.checked_add_days(Days::new(days)) {
                relative.push((c.get(0).map_or(0, |m| m.start()), d));
            }
        }
        for c in WEEKDAY.captures_iter(&text) {
            let past = matches!(c.get(1).map(|m| m.as_str()), Some("sejak" | "since" | "last"))
                || matches!(c.get(3).map(|m| m.as_str()), Some("lalu" | "kemarin" | "yang lalu"));
            let Some(w) = c.get(2).and_then(|m| weekday(m.as_str())) else { continue };
            if past {
                continue;
            }
            let ahead = (w.num_days_from_monday() + 7 - today.weekday().num_days_from_monday()) % 7;
            let ahead = if ahead == 0 { 7 } else { ahead };
            if let Some(d) = today.checked_add_days(Days::new(u64::from(ahead))) {
                relative.push((c.get(0).map_or(0, |m| m.start()), d));
            }
        }
        relative.sort();
        relative.first().map(|(_, d)| *d)
    })?;
    let time = TIME.captures_iter(&text).find_map(|c| {
        let h = num(c.get(1))?;
        let m = num(c.get(2)).unwrap_or(0);
        NaiveTime::from_hms_opt(h, m, 0)
    });
    Some(EventDate { date, time })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 5 January 2026.
    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
    }

    fn date(text: &str) -> Option<String> {
        find(text, today()).map(|e| match e.time {
            Some(t) => format!("{} {}", e.date, t.format("%H:%M")),
            None => e.date.to_string(),
        })
    }

    #[test]
    fn reads_the_forms_requesters_write() {
        let cases = [
            ("Kegiatan pada Senin, 12 Januari 2026 pukul 09.00 WIB", Some("2026-01-12 09:00")),
            ("video conference tanggal 12/01/2026", Some("2026-01-12")),
            ("on 2026-01-14 at 10:30", Some("2026-01-14 10:30")),
            ("rapat 20 Feb", Some("2026-02-20")),
            ("Meeting on January 12, 2026", Some("2026-01-12")),
            ("besok pukul 09.00", Some("2026-01-06 09:00")),
            ("lusa", Some("2026-01-07")),
            ("Selasa depan kami rapat", Some("2026-01-06")),
            ("next Tuesday please", Some("2026-01-06")),
            ("hari Senin", Some("2026-01-12")),
            ("rapat 3 Januari", Some("2027-01-03")),
            ("no date here", None),
            ("sejak Senin aplikasi error", None),
            ("Senin lalu sudah kami kirim", None),
            ("31/02/2026", None),
        ];
        for (text, want) in cases {
            assert_eq!(date(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn a_written_date_wins_and_an_earlier_letter_is_skipped() {
        assert_eq!(
            date("Menindaklanjuti surat tanggal 2 Januari 2026, mohon dukungan vicon besok, Rabu 14 Januari 2026")
                .as_deref(),
            Some("2026-01-14")
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Any text (dates and words of both languages mixed in) is read without a panic, and the
        /// event found is never before today.
        #[test]
        fn any_text_gives_no_date_or_one_not_in_the_past(
            s in "(([0-9]{1,4}[/.-]){0,2}[0-9]{1,4}|senin|selasa|depan|lalu|sejak|besok|lusa|next|pukul 9\\.30|januari|feb|[a-z]{1,8}|[ ,.])*"
        ) {
            if let Some(e) = find(&s, today()) {
                proptest::prop_assert!(e.date >= today(), "{s:?} -> {e:?}");
            }
        }
    }

    #[test]
    fn never_panics_on_odd_text() {
        for t in ["99/99/9999", "0 januari", "pukul 99.99", "ç日本 12 mei", &"1/".repeat(20_000)] {
            let _ = find(t, today());
        }
    }
}
