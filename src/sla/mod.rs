//! Service levels: working calendars ([`calendar`]), the targets each desk promises, and the
//! clocks that measure them ([`Clock`]). Pure: every function takes `now`.
//!
//! A ticket has two clocks: **response** (until the first agent reply or action; the
//! acknowledgement is not a response) and **resolution** (until resolved). Each has a target in
//! working time, a warning threshold and a breach threshold. Pending on the requester pauses both;
//! reopening resumes the resolution clock where it stopped. Resolution targets come from the
//! subcategory's fulfilment time in the catalogue, or for incidents from the priority matrix
//! (urgency × impact → P1 3 h … P5 80 h), else the desk's default.

pub mod calendar;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::catalogue::Fulfilment;
use crate::domain::{Impact, Priority, TicketType};
pub use calendar::Calendar;

/// Durations as the documents state them: `30m`, `4h` (working hours), `2d` (working days).
pub fn parse_duration(s: &str, day_hours: f64) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: f64 = num.trim().parse().ok()?;
    if !(0.0..=100_000.0).contains(&n) {
        return None;
    }
    let minutes = match unit {
        "m" => n,
        "h" => n * 60.0,
        "d" => n * day_hours * 60.0,
        _ => return None,
    };
    Some(Duration::seconds((minutes * 60.0).round() as i64))
}

/// The SLA section of a desk in `loket.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaConfig {
    /// Working hours by weekday (`mon`…`sun`, `weekdays`, `mon-thu`): `"08:00-16:00"`, `"closed"`.
    pub hours: BTreeMap<String, String>,
    /// Holiday files (`seeds/holidays-id.toml`).
    #[serde(default)]
    pub holidays: Vec<std::path::PathBuf>,
    /// First-response target (`30m`, `1h`).
    pub response: String,
    /// Per-channel overrides of `response` (`email`, `telegram`, `whatsapp`).
    #[serde(default)]
    pub response_by_channel: BTreeMap<String, String>,
    /// `working` (default): the response clock runs on the working hours; `always`: around the clock.
    #[serde(default = "working")]
    pub response_calendar: String,
    /// Warning before the response breach, as working time elapsed (default 75 % of the target).
    #[serde(default)]
    pub response_warning: Option<String>,
    /// Resolution target when neither the catalogue nor the priority matrix gives one.
    #[serde(default = "default_resolution")]
    pub resolution: String,
    /// Warning on the resolution clock, as working time elapsed (DJPb: `8h`; default 75 %).
    #[serde(default)]
    pub resolution_warning: Option<String>,
    /// Resolution hours per priority (DJPb: P1 3, P2 8, P3 16, P4 24, P5 80).
    #[serde(default = "default_priority_hours")]
    pub priority_hours: BTreeMap<String, f64>,
    /// Urgency → impact → priority (the DJPb matrix).
    #[serde(default = "default_matrix")]
    pub matrix: BTreeMap<String, BTreeMap<String, String>>,
    /// Hours of one working day, for `d` durations (default: the longest open day).
    #[serde(default)]
    pub day_hours: Option<f64>,
    /// Resolution calendar per incident priority: `{ P1 = "always" }` runs a P1's resolution
    /// clock around the clock (DJPb: "3 jam" for P1); the others follow `hours`.
    #[serde(default)]
    pub priority_calendar: BTreeMap<String, String>,
}

fn working() -> String {
    "working".into()
}
fn default_resolution() -> String {
    "2d".into()
}
pub fn default_priority_hours() -> BTreeMap<String, f64> {
    [("P1", 3.0), ("P2", 8.0), ("P3", 16.0), ("P4", 24.0), ("P5", 80.0)]
        .into_iter()
        .map(|(k, v)| (k.into(), v))
        .collect()
}
pub fn default_matrix() -> BTreeMap<String, BTreeMap<String, String>> {
    let row = |h: &str, m: &str, l: &str| -> BTreeMap<String, String> {
        [("high", h), ("medium", m), ("low", l)].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    [("high", row("P1", "P2", "P3")), ("medium", row("P2", "P3", "P4")), ("low", row("P3", "P4", "P5"))]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// A desk's SLA, checked.
#[derive(Debug, Clone)]
pub struct Sla {
    pub working: Calendar,
    pub response_calendar: Calendar,
    pub response: Duration,
    pub response_by_channel: BTreeMap<String, Duration>,
    pub response_warning: Option<Duration>,
    pub resolution: Duration,
    pub resolution_warning: Option<Duration>,
    pub priority_hours: BTreeMap<Priority, f64>,
    pub matrix: BTreeMap<(Impact, Impact), Priority>,
    pub day_hours: f64,
    /// Priorities whose resolution clock runs around the clock (`priority_calendar`).
    pub always_priorities: std::collections::BTreeSet<Priority>,
    /// The around-the-clock calendar in the desk's time zone.
    pub always: Calendar,
}

impl Sla {
    /// Checks a desk's SLA section. The days of its holiday files are added with
    /// [`Sla::add_holidays`] once the configuration's load step has read them.
    pub fn from_config(cfg: &SlaConfig, tz: chrono_tz::Tz) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let working =
            Calendar::new(tz, &cfg.hours, BTreeMap::new()).map_err(|e| errors.push(format!("hours: {e}"))).ok();
        let day_hours = cfg.day_hours.unwrap_or_else(|| {
            cfg.hours
                .values()
                .filter_map(|h| calendar::parse_hours(h).ok())
                .map(|iv| iv.iter().map(|(a, b)| (*b - *a).num_minutes() as f64 / 60.0).sum::<f64>())
                .fold(0.0, f64::max)
                .round()
        });
        let dur = |key: &str, s: &str, errors: &mut Vec<String>| {
            parse_duration(s, day_hours).or_else(|| {
                errors.push(format!("{key}: `{s}` is not <n>m, <n>h or <n>d"));
                None
            })
        };
        let response = dur("response", &cfg.response, &mut errors);
        let mut by_channel = BTreeMap::new();
        for (ch, s) in &cfg.response_by_channel {
            if crate::domain::Channel::parse(ch).is_none() {
                errors.push(format!("response_by_channel.{ch}: unknown channel; known: email, telegram, whatsapp"));
            }
            if let Some(d) = dur(&format!("response_by_channel.{ch}"), s, &mut errors) {
                by_channel.insert(ch.clone(), d);
            }
        }
        let response_warning = cfg.response_warning.as_deref().and_then(|s| dur("response_warning", s, &mut errors));
        let resolution = dur("resolution", &cfg.resolution, &mut errors);
        let resolution_warning =
            cfg.resolution_warning.as_deref().and_then(|s| dur("resolution_warning", s, &mut errors));
        let mut priority_hours = BTreeMap::new();
        for (p, h) in &cfg.priority_hours {
            match Priority::parse(p) {
                Some(p) if *h > 0.0 => {
                    priority_hours.insert(p, *h);
                }
                _ => errors.push(format!("priority_hours.{p}: use P1..P5 with a positive number of hours")),
            }
        }
        let mut matrix = BTreeMap::new();
        for (u, row) in &cfg.matrix {
            for (i, p) in row {
                match (Impact::parse(u), Impact::parse(i), Priority::parse(p)) {
                    (Some(u), Some(i), Some(p)) => {
                        matrix.insert((u, i), p);
                    }
                    _ => errors
                        .push(format!("matrix.{u}.{i}: `{p}` (urgency and impact low|medium|high, priority P1..P5)")),
                }
            }
        }
        let response_calendar = match cfg.response_calendar.as_str() {
            "working" => working.clone(),
            "always" => Some(Calendar::always(tz)),
            other => {
                errors.push(format!("response_calendar: `{other}` must be working or always"));
                None
            }
        };
        let mut always_priorities = std::collections::BTreeSet::new();
        for (p, c) in &cfg.priority_calendar {
            match (Priority::parse(p), c.as_str()) {
                (Some(p), "always") => {
                    always_priorities.insert(p);
                }
                (Some(_), "working") => {}
                _ => errors.push(format!("priority_calendar.{p}: `{c}` (P1..P5 = working | always)")),
            }
        }
        match (working, response_calendar, response, resolution, errors.is_empty()) {
            (Some(working), Some(response_calendar), Some(response), Some(resolution), true) => Ok(Sla {
                working,
                response_calendar,
                response,
                response_by_channel: by_channel,
                response_warning,
                resolution,
                resolution_warning,
                priority_hours,
                matrix,
                day_hours,
                always_priorities,
                always: Calendar::always(tz),
            }),
            _ => Err(errors),
        }
    }

    /// Closes the working calendar on these days, and the response calendar when it follows the
    /// working hours (one that runs around the clock has no days off).
    pub fn add_holidays(&mut self, days: &BTreeMap<chrono::NaiveDate, calendar::Holiday>) {
        self.working.add_holidays(days);
        self.response_calendar.add_holidays(days);
    }

    /// Priority of an incident from the matrix (medium urgency when unknown).
    pub fn priority(&self, urgency: Option<Impact>, impact: Option<Impact>) -> Option<Priority> {
        self.matrix.get(&(urgency.unwrap_or(Impact::Medium), impact.unwrap_or(Impact::Low))).copied()
    }

    /// The calendar a resolution clock runs on: around the clock for an incident whose priority
    /// `priority_calendar` says so, else the working hours.
    pub fn resolution_calendar(&self, ticket_type: Option<TicketType>, priority: Option<Priority>) -> &Calendar {
        match priority {
            Some(p) if ticket_type == Some(TicketType::Incident) && self.always_priorities.contains(&p) => &self.always,
            _ => &self.working,
        }
    }

    /// When a service done on `event` (a local date) is due: `close_after_days` working days after
    /// the event day ("tiket ditutup 1 hari kerja setelah kegiatan"), at the end of that working
    /// day; the end of the event day itself when it is 0.
    pub fn event_due(&self, event: chrono::NaiveDate, close_after_days: u32) -> i64 {
        let next_day = event.succ_opt().unwrap_or(event);
        let start = self.working.start_of(next_day);
        if close_after_days == 0 {
            return start.timestamp_millis();
        }
        let work = Duration::seconds((f64::from(close_after_days) * self.day_hours * 3600.0) as i64);
        self.working.add(start, work).timestamp_millis()
    }

    /// The resolution target that makes a clock started at `now` on the working calendar due at
    /// `due` (None when `due` is not after `now`).
    pub fn target_until(&self, now: i64, due: i64) -> Option<Duration> {
        let t = self.working.working_between(utc(now), utc(due));
        (t > Duration::zero()).then_some(t)
    }

    pub fn response_target(&self, channel: crate::domain::Channel) -> Duration {
        self.response_by_channel.get(channel.as_str()).copied().unwrap_or(self.response)
    }

    /// Resolution target: the priority's hours for incidents, else the subcategory's fulfilment,
    /// else the desk default.
    pub fn resolution_target(
        &self,
        ticket_type: Option<TicketType>,
        priority: Option<Priority>,
        fulfilment: Option<Fulfilment>,
    ) -> Duration {
        if ticket_type == Some(TicketType::Incident)
            && let Some(h) = priority.and_then(|p| self.priority_hours.get(&p))
        {
            return Duration::seconds((h * 3600.0) as i64);
        }
        match fulfilment {
            Some(Fulfilment::Minutes(m)) => Duration::minutes(m as i64),
            Some(Fulfilment::WorkingHours(h)) => Duration::hours(h as i64),
            Some(Fulfilment::WorkingDays(d)) => Duration::seconds((d as f64 * self.day_hours * 3600.0) as i64),
            None => self.resolution,
        }
    }
}

/// Which clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    Response,
    Resolution,
}

impl ClockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::Response => "response",
            ClockKind::Resolution => "resolution",
        }
    }
}

/// SLA state of a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlaState {
    Ok,
    Warning,
    Breached,
}

impl SlaState {
    pub fn as_str(self) -> &'static str {
        match self {
            SlaState::Ok => "ok",
            SlaState::Warning => "warning",
            SlaState::Breached => "breached",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(SlaState::Ok),
            "warning" => Some(SlaState::Warning),
            "breached" => Some(SlaState::Breached),
            _ => None,
        }
    }
}

/// A clock's stored state, in milliseconds of working time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Clock {
    pub kind: ClockKind,
    pub target_ms: i64,
    pub warn_ms: i64,
    /// Working time consumed before the current running segment.
    pub consumed_ms: i64,
    /// Start of the running segment; None while paused or stopped.
    pub running_since: Option<i64>,
    pub stopped_at: Option<i64>,
    pub state: SlaState,
    /// When the next threshold (warning, else breach) is reached, if running.
    pub next_check_at: Option<i64>,
    /// When the breach is due if the clock keeps running.
    pub due_at: Option<i64>,
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Warning threshold: explicit, else 75 % of the target; never beyond the target.
pub fn warn_threshold(target: Duration, explicit: Option<Duration>) -> Duration {
    explicit.unwrap_or(target * 3 / 4).min(target)
}

impl Clock {
    /// A clock started at `now` (paused when `paused`).
    pub fn start(kind: ClockKind, target: Duration, warn: Duration, now: i64, paused: bool, cal: &Calendar) -> Self {
        let mut c = Clock {
            kind,
            target_ms: target.num_milliseconds(),
            warn_ms: warn.num_milliseconds(),
            consumed_ms: 0,
            running_since: (!paused).then_some(now),
            stopped_at: None,
            state: SlaState::Ok,
            next_check_at: None,
            due_at: None,
        };
        c.schedule(cal);
        c
    }

    /// Working time consumed by `now`.
    pub fn consumed(&self, now: i64, cal: &Calendar) -> i64 {
        self.consumed_ms
            + self.running_since.map(|s| cal.working_between(utc(s), utc(now)).num_milliseconds()).unwrap_or(0)
    }

    /// Recomputes `due_at` and `next_check_at` from the running segment.
    pub fn schedule(&mut self, cal: &Calendar) {
        match self.running_since {
            Some(since) if self.stopped_at.is_none() => {
                let at = |consumed_target: i64| {
                    let left = (consumed_target - self.consumed_ms).max(0);
                    cal.add(utc(since), Duration::milliseconds(left)).timestamp_millis()
                };
                self.due_at = Some(at(self.target_ms));
                self.next_check_at = match self.state {
                    SlaState::Ok => Some(at(self.warn_ms)),
                    SlaState::Warning => self.due_at,
                    SlaState::Breached => None,
                };
            }
            _ => {
                self.next_check_at = None;
                self.due_at = None;
            }
        }
    }

    pub fn pause(&mut self, now: i64, cal: &Calendar) {
        if let Some(_s) = self.running_since {
            self.consumed_ms = self.consumed(now, cal);
            self.running_since = None;
            self.schedule(cal);
        }
    }

    pub fn resume(&mut self, now: i64, cal: &Calendar) {
        if self.running_since.is_none() && self.stopped_at.is_none() {
            self.running_since = Some(now);
            self.schedule(cal);
        }
    }

    /// Stops for good (responded, resolved, closed). A resolved ticket that is reopened calls
    /// [`Clock::reopen`].
    pub fn stop(&mut self, now: i64, cal: &Calendar) {
        if self.stopped_at.is_none() {
            self.consumed_ms = self.consumed(now, cal);
            self.running_since = None;
            self.stopped_at = Some(now);
            self.schedule(cal);
        }
    }

    pub fn reopen(&mut self, now: i64, cal: &Calendar) {
        if self.stopped_at.is_some() {
            self.stopped_at = None;
            self.running_since = Some(now);
            self.schedule(cal);
        }
    }

    /// Changes the target (a new priority), keeping what was consumed.
    pub fn retarget(&mut self, target: Duration, warn: Duration, cal: &Calendar) {
        self.target_ms = target.num_milliseconds();
        self.warn_ms = warn.num_milliseconds();
        self.schedule(cal);
    }

    /// The state the clock is in at `now` (never goes back from breached).
    pub fn state_at(&self, now: i64, cal: &Calendar) -> SlaState {
        let consumed = self.consumed(now, cal);
        if self.state == SlaState::Breached || consumed >= self.target_ms {
            SlaState::Breached
        } else if self.state == SlaState::Warning || consumed >= self.warn_ms {
            SlaState::Warning
        } else {
            SlaState::Ok
        }
    }
}
