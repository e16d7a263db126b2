//! Working-time calendars: weekly opening hours per weekday in a time zone, minus holidays. Pure
//! business-time arithmetic: [`Calendar::add`] (when does a working duration starting at an
//! instant end), [`Calendar::working_between`] (working time between two instants) and
//! [`Calendar::next_open`]. Instants are UTC; hours are read in the desk's time zone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// How far [`Calendar::add`] looks ahead before giving up (a calendar with almost no open time).
const MAX_DAYS: i64 = 3 * 366;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub name: String,
    pub kind: HolidayKind,
    pub provisional: bool,
}

/// What kind of day off a holiday is (the Indonesian government's lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HolidayKind {
    /// A national public holiday.
    #[default]
    Libur,
    /// Collective leave: government offices close.
    CutiBersama,
    /// A regional holiday.
    Regional,
}

/// A working calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub tz: Tz,
    /// Open intervals per weekday (Monday = 0), sorted, non-overlapping, within one day.
    week: [Vec<(NaiveTime, NaiveTime)>; 7],
    /// Whole days closed.
    pub holidays: BTreeMap<NaiveDate, Holiday>,
    always_open: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CalendarError {
    #[error("`{0}`: hours must look like \"08:00-16:00\" (several separated by commas), or \"closed\"")]
    BadHours(String),
    #[error("`{0}`: an interval must end after it starts (use 24:00 for midnight)")]
    Empty(String),
    #[error("`{0}` overlaps another interval")]
    Overlap(String),
    #[error("unknown weekday `{0}`; use mon tue wed thu fri sat sun")]
    BadDay(String),
    #[error("the calendar is never open")]
    NeverOpen,
    #[error("{0}: {1}")]
    Holidays(String, String),
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    let s = s.trim().replace('.', ":");
    if s == "24:00" {
        return NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999);
    }
    NaiveTime::parse_from_str(&s, "%H:%M").ok()
}

fn weekday_index(name: &str) -> Option<usize> {
    Some(match name.to_ascii_lowercase().as_str() {
        "mon" | "monday" | "senin" => 0,
        "tue" | "tuesday" | "selasa" => 1,
        "wed" | "wednesday" | "rabu" => 2,
        "thu" | "thursday" | "kamis" => 3,
        "fri" | "friday" | "jumat" => 4,
        "sat" | "saturday" | "sabtu" => 5,
        "sun" | "sunday" | "minggu" => 6,
        _ => return None,
    })
}

/// `"07:00-15:30"`, `"08:00-12:00, 13:00-17:00"`, `"closed"`, `"00:00-24:00"`.
pub fn parse_hours(s: &str) -> Result<Vec<(NaiveTime, NaiveTime)>, CalendarError> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("closed") || t.eq_ignore_ascii_case("tutup") {
        return Ok(Vec::new());
    }
    let mut out: Vec<(NaiveTime, NaiveTime)> = Vec::new();
    for part in t.split(',') {
        let (a, b) = part.split_once('-').ok_or_else(|| CalendarError::BadHours(s.into()))?;
        let (a, b) = (parse_time(a), parse_time(b));
        let (Some(a), Some(b)) = (a, b) else { return Err(CalendarError::BadHours(s.into())) };
        if b <= a {
            return Err(CalendarError::Empty(part.trim().into()));
        }
        out.push((a, b));
    }
    out.sort();
    if out.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(CalendarError::Overlap(s.into()));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct HolidayFile {
    #[serde(default)]
    holiday: Vec<HolidayEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayEntry {
    date: toml::value::Datetime,
    name: String,
    #[serde(default)]
    kind: HolidayKind,
    #[serde(default)]
    provisional: bool,
}

/// Reads a holiday file (`seeds/holidays-id.toml`).
pub fn load_holidays(path: &Path) -> Result<BTreeMap<NaiveDate, Holiday>, CalendarError> {
    let err = |m: String| CalendarError::Holidays(path.display().to_string(), m);
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let file: HolidayFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (i, h) in file.holiday.into_iter().enumerate() {
        let d = h.date.date.ok_or_else(|| err(format!("holiday[{i}].date: a date (YYYY-MM-DD) is required")))?;
        let date = NaiveDate::from_ymd_opt(d.year as i32, d.month as u32, d.day as u32)
            .ok_or_else(|| err(format!("holiday[{i}].date: invalid date")))?;
        out.insert(date, Holiday { name: h.name, kind: h.kind, provisional: h.provisional });
    }
    Ok(out)
}

impl Calendar {
    /// Open around the clock, every day.
    pub fn always(tz: Tz) -> Self {
        let all = vec![(NaiveTime::MIN, NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).expect("valid"))];
        Self { tz, week: std::array::from_fn(|_| all.clone()), holidays: BTreeMap::new(), always_open: true }
    }

    /// From weekday → hours strings (missing days are closed) and holidays.
    pub fn new(
        tz: Tz,
        hours: &BTreeMap<String, String>,
        holidays: BTreeMap<NaiveDate, Holiday>,
    ) -> Result<Self, CalendarError> {
        let mut week: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        for (day, h) in hours {
            let days: Vec<usize> = match day.to_ascii_lowercase().as_str() {
                "weekdays" | "mon-fri" => (0..5).collect(),
                "mon-thu" => (0..4).collect(),
                "every_day" | "daily" => (0..7).collect(),
                d => vec![weekday_index(d).ok_or_else(|| CalendarError::BadDay(day.clone()))?],
            };
            let iv = parse_hours(h)?;
            for d in days {
                week[d] = iv.clone();
            }
        }
        if week.iter().all(|d| d.is_empty()) {
            return Err(CalendarError::NeverOpen);
        }
        Ok(Self { tz, week, holidays, always_open: false })
    }

    /// Closes the calendar on these days; a calendar open around the clock stays open.
    pub fn add_holidays(&mut self, days: &BTreeMap<NaiveDate, Holiday>) {
        if !self.always_open {
            self.holidays.extend(days.iter().map(|(d, h)| (*d, h.clone())));
        }
    }

    fn intervals(&self, date: NaiveDate) -> &[(NaiveTime, NaiveTime)] {
        if !self.always_open && self.holidays.contains_key(&date) {
            return &[];
        }
        &self.week[date.weekday().num_days_from_monday() as usize]
    }

    fn utc(&self, date: NaiveDate, t: NaiveTime) -> DateTime<Utc> {
        let local = date.and_time(t);
        match self.tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(x) => x.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
            // A gap (spring forward): the first instant after it.
            chrono::LocalResult::None => self.tz.from_utc_datetime(&local).with_timezone(&Utc),
        }
    }

    /// The open intervals (UTC) of the local day `date`.
    fn day(&self, date: NaiveDate) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let last = NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).expect("valid");
        self.intervals(date).iter().map(move |&(a, b)| {
            let end = if b == last { self.utc(date + Duration::days(1), NaiveTime::MIN) } else { self.utc(date, b) };
            (self.utc(date, a), end)
        })
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        let d = self.local_date(t);
        self.day(d).any(|(a, b)| a <= t && t < b)
    }

    /// The first open instant at or after `t`.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.add(t, Duration::zero())
    }

    /// The instant at which `work` of working time, starting at `start`, has passed. A zero
    /// duration gives the first open instant at or after `start`. Never ends inside closed hours
    /// (except for a zero duration on a closed calendar day, which moves to the next opening).
    pub fn add(&self, start: DateTime<Utc>, work: Duration) -> DateTime<Utc> {
        let mut left = work.max(Duration::zero());
        let mut date = self.local_date(start) - Duration::days(1);
        for _ in 0..MAX_DAYS {
            for (a, b) in self.day(date).collect::<Vec<_>>() {
                if b <= start {
                    continue;
                }
                let from = a.max(start);
                let span = b - from;
                if left <= span {
                    return from + left;
                }
                left -= span;
            }
            date += Duration::days(1);
        }
        start + work
    }

    /// Working time between `a` and `b` (zero when `b <= a`).
    pub fn working_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        if b <= a {
            return Duration::zero();
        }
        let mut total = Duration::zero();
        let mut date = self.local_date(a) - Duration::days(1);
        let end_date = self.local_date(b) + Duration::days(1);
        let mut guard = 0;
        while date <= end_date && guard < MAX_DAYS * 4 {
            for (x, y) in self.day(date) {
                let (s, e) = (x.max(a), y.min(b));
                if e > s {
                    total += e - s;
                }
            }
            date += Duration::days(1);
            guard += 1;
        }
        total
    }

    /// Whether the local day `date` has opening hours (not a closed weekday, not a holiday).
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !self.intervals(date).is_empty()
    }

    /// The working days from `from` (included) to `to` (excluded): how many working days ahead of
    /// an event on `to` a request made on `from` is ("H-5" when it is 5). Capped at 400.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        from.iter_days().take_while(|d| *d < to).take(400).filter(|d| self.is_working_day(*d)).count() as u32
    }

    /// The instant the local day `date` begins.
    pub fn start_of(&self, date: NaiveDate) -> DateTime<Utc> {
        self.utc(date, NaiveTime::MIN)
    }

    pub fn holiday(&self, date: NaiveDate) -> Option<&Holiday> {
        self.holidays.get(&date)
    }

    /// Days of the week with opening hours (Monday = 0), for display.
    pub fn open_weekdays(&self) -> BTreeSet<u8> {
        (0..7u8).filter(|d| !self.week[*d as usize].is_empty()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jakarta() -> Tz {
        "Asia/Jakarta".parse().unwrap()
    }

    fn cal(hours: &[(&str, &str)], holidays: &[&str]) -> Calendar {
        let h = hours.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let hol = holidays
            .iter()
            .map(|d| {
                (d.parse().unwrap(), Holiday { name: "libur".into(), kind: HolidayKind::Libur, provisional: false })
            })
            .collect();
        Calendar::new(jakarta(), &h, hol).unwrap()
    }

    fn wib(s: &str) -> DateTime<Utc> {
        jakarta()
            .from_local_datetime(&chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn parses_hours() {
        assert_eq!(parse_hours("closed").unwrap(), vec![]);
        assert_eq!(parse_hours("08:00-12:00, 13.00-17:00").unwrap().len(), 2);
        assert!(matches!(parse_hours("8-16"), Err(CalendarError::BadHours(_))));
        assert!(matches!(parse_hours("16:00-08:00"), Err(CalendarError::Empty(_))));
        assert!(matches!(parse_hours("08:00-12:00,11:00-13:00"), Err(CalendarError::Overlap(_))));
        assert!(parse_hours("00:00-24:00").is_ok());
        let e = Calendar::new(
            jakarta(),
            &[("mon".to_string(), "closed".to_string())].into_iter().collect(),
            BTreeMap::new(),
        );
        assert_eq!(e.unwrap_err(), CalendarError::NeverOpen);
        let e = Calendar::new(
            jakarta(),
            &[("funday".to_string(), "08:00-09:00".to_string())].into_iter().collect(),
            BTreeMap::new(),
        );
        assert!(matches!(e, Err(CalendarError::BadDay(_))));
    }

    #[test]
    fn adds_working_time_across_nights_weekends_and_holidays() {
        let c = cal(&[("weekdays", "08:00-16:00")], &["2026-01-16"]);
        // Thursday 15:30 + 1 h → Thursday's last 30 min, Friday is a holiday → Monday 08:30.
        assert_eq!(c.add(wib("2026-01-15 15:30"), Duration::hours(1)), wib("2026-01-19 08:30"));
        // Saturday intake: the clock starts Monday 08:00.
        assert_eq!(c.add(wib("2026-01-17 10:00"), Duration::minutes(30)), wib("2026-01-19 08:30"));
        assert_eq!(c.next_open(wib("2026-01-17 10:00")), wib("2026-01-19 08:00"));
        // Exactly a day's work from opening ends at closing time, not the next morning.
        assert_eq!(c.add(wib("2026-01-19 08:00"), Duration::hours(8)), wib("2026-01-19 16:00"));
        assert_eq!(c.working_between(wib("2026-01-15 15:00"), wib("2026-01-19 09:00")), Duration::hours(2));
        assert!(c.is_open(wib("2026-01-19 08:00")) && !c.is_open(wib("2026-01-19 16:00")));
    }

    fn arb_instant() -> impl Strategy<Value = DateTime<Utc>> {
        // 2025-12-01 .. 2026-03-01, minute resolution.
        (0i64..(90 * 24 * 60)).prop_map(|m| wib("2025-12-01 00:00") + Duration::minutes(m))
    }

    fn arb_work() -> impl Strategy<Value = Duration> {
        (0i64..(40 * 60)).prop_map(Duration::minutes)
    }

    fn jateng() -> Calendar {
        cal(
            &[("mon-thu", "07:00-15:30"), ("fri", "07:00-14:00")],
            &["2025-12-25", "2025-12-26", "2026-01-01", "2026-01-16"],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn add_is_monotonic(t in arb_instant(), a in arb_work(), b in arb_work()) {
            let c = jateng();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(c.add(t, lo) <= c.add(t, hi));
            prop_assert!(c.add(t, lo) >= t);
        }

        #[test]
        fn add_is_additive(t in arb_instant(), a in arb_work(), b in arb_work()) {
            let c = jateng();
            prop_assert_eq!(c.add(c.add(t, a), b), c.add(t, a + b));
        }

        #[test]
        fn never_ends_inside_closed_hours(t in arb_instant(), a in arb_work()) {
            let c = jateng();
            let end = c.add(t, a);
            if a > Duration::zero() {
                prop_assert!(c.is_open(end - Duration::nanoseconds(1)), "{} ends in closed hours", end);
            } else {
                prop_assert!(c.is_open(end));
            }
        }

        #[test]
        fn working_between_inverts_add(t in arb_instant(), a in arb_work()) {
            let c = jateng();
            prop_assert_eq!(c.working_between(t, c.add(t, a)), a);
        }
    }
}
