//! `loket report`: the monthly (or any period's) service report of one desk. Pure: [`build`]
//! takes the rows the store returns (`store::report`), the desk (its catalogue, agents, groups and
//! SLA), the period and `now`, and returns a [`Report`] of figures; it does no I/O. The figures
//! are rendered as a text table ([`table`]), CSV ([`csv`], [`breaches_csv`]), JSON (the
//! [`Report`] serialized) or the HTML page of `templates/<lang>/report.html.j2`, which says every
//! word and draws the charts.
//!
//! What counts (documented for supervisors in the README):
//! - the **cohort** is the tickets received in the period; response and resolution compliance,
//!   working times, satisfaction, reopenings, triage and the per-category, per-agent and per-group
//!   tables are about the cohort, as it stands when the report is made;
//! - a clock is **measured** once it stopped (first response; resolution of a resolved or closed
//!   ticket) or breached; it **breached** when the scheduler marked it so or when it stopped at or
//!   past its target; compliance is in-time ÷ measured;
//! - **resolved** counts tickets (of any age) resolved in the period; **open at the end** and the
//!   backlog by age count tickets received before the period's end and not finished by then;
//! - the **breaches** are every clock (of any ticket) that breached in the period, with how far
//!   past its target it went (working time, up to the period's end for a clock still running);
//! - medians are the middle value (the mean of the two middle ones), the 90th percentile is the
//!   nearest rank; times are working minutes on the desk's calendar.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate, TimeZone};
use serde::Serialize;

use crate::catalogue::{TRIAGE_CATEGORY, TRIAGE_SUBCATEGORY};
use crate::config::Desk;
use crate::domain::Language;
use crate::sla::ClockKind;
use crate::store::report::{ReportClock, ReportEvent, ReportTicket};
use crate::templates::When;

/// The reporting period: whole days in the desk's time zone, `to` inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// Epoch milliseconds of the period's first moment and of the moment after it ends.
    pub fn bounds(&self, tz: chrono_tz::Tz) -> (i64, i64) {
        (midnight(self.from, tz), midnight(self.to + chrono::Duration::days(1), tz))
    }
}

fn midnight(d: NaiveDate, tz: chrono_tz::Tz) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

/// Response or resolution figures of a set of tickets.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Figures {
    /// Clocks measured (stopped or breached) and how many kept their target.
    pub measured: usize,
    pub in_time: usize,
    pub compliance_pct: Option<f64>,
    /// Working minutes, over the stopped clocks.
    pub median_min: Option<f64>,
    pub p90_min: Option<f64>,
}

/// What a row of a breakdown is, when it is not a name from the catalogue or the configuration.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Special {
    /// The triage queue (`triage/unknown`): the templates name it.
    Triage,
    /// No agent or group holds the ticket.
    Unassigned,
    /// An id the catalogue or the configuration no longer knows.
    Unknown,
}

/// One row of a breakdown (category, subcategory, agent, group).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// The stable id (`aplikasi`, `aplikasi/sisp`, an agent's address, a group id).
    pub key: String,
    /// The catalogue's or configuration's name; absent for a [`Special`] row.
    pub name: Option<String>,
    pub special: Option<Special>,
    pub tickets: usize,
    pub response: Figures,
    pub resolution: Figures,
    pub ratings: usize,
    pub satisfaction: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Count {
    pub key: String,
    pub count: usize,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Satisfaction {
    pub ratings: usize,
    pub average: Option<f64>,
    /// Ratings of 1, 2, 3, 4 and 5.
    pub distribution: [usize; 5],
    /// Tickets whose requester was asked for a rating (or rated anyway).
    pub asked: usize,
    pub response_rate_pct: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Triage {
    /// Tickets of the cohort routed to `triage/unknown` on arrival.
    pub tickets: usize,
    /// Of those, moved to a service by an agent, and still waiting in triage.
    pub moved: usize,
    pub still_waiting: usize,
    /// Working minutes in triage of the moved ones; the longest wait counts the ones still
    /// waiting up to the period's end (or now), and one resolved in triage up to its resolution.
    pub median_wait_min: Option<f64>,
    pub longest_wait_min: Option<f64>,
}

/// The desk's own targets, as configured.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Targets {
    /// First response, working minutes; per channel where it differs.
    pub response_min: Option<f64>,
    pub response_by_channel: Vec<(String, f64)>,
    /// Resolution when neither the priority nor the catalogue gives one, working minutes.
    pub resolution_min: Option<f64>,
    /// Incidents: working hours per priority (`P1`…`P5`).
    pub priority_hours: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub received: usize,
    pub received_by_channel: Vec<Count>,
    pub resolved: usize,
    pub open_at_end: usize,
    pub response: Figures,
    pub resolution: Figures,
    pub satisfaction: Satisfaction,
    /// Tickets of the cohort reopened at least once, and as a share of those ever resolved.
    pub reopened: usize,
    pub reopen_rate_pct: Option<f64>,
    pub triage: Triage,
}

/// A day or a week of the trend.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    pub start: When,
    pub end: When,
    /// `YYYY-MM-DD` of `start`: the key in CSV and JSON.
    pub key: String,
    pub received: usize,
    pub by_channel: Vec<Count>,
    pub response: Figures,
}

/// A clock that breached in the period.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Breach {
    pub number: String,
    pub category: String,
    pub subcategory: String,
    pub category_name: Option<String>,
    pub subcategory_name: Option<String>,
    pub triage: bool,
    pub clock: ClockKind,
    pub breached_at: When,
    /// Working minutes past the target (up to the period's end for a clock still running).
    pub over_min: f64,
    /// Who held the ticket: the assignee's name, else the group's, else none.
    pub holder: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub desk: String,
    pub desk_name: String,
    pub from: When,
    pub to: When,
    /// `YYYY-MM-DD`.
    pub from_date: String,
    pub to_date: String,
    pub generated: When,
    pub has_sla: bool,
    pub targets: Targets,
    pub summary: Summary,
    /// `day` or `week`.
    pub trend_unit: &'static str,
    pub trend: Vec<Bucket>,
    /// Open tickets at the period's end by age: `0-1d`, `1-3d`, `3-7d`, `7-14d`, `14d+`.
    pub backlog: Vec<Count>,
    pub categories: Vec<Row>,
    pub subcategories: Vec<Row>,
    pub agents: Vec<Row>,
    pub groups: Vec<Row>,
    pub breaches: Vec<Breach>,
    pub reopened_tickets: Vec<String>,
}

/// The channels every report lists, in this order, then any other that occurs.
pub const CHANNELS: &[&str] = &["email", "telegram", "whatsapp"];

/// Backlog age buckets: key and upper bound in days.
pub const BACKLOG_AGES: &[(&str, i64)] = &[("0-1d", 1), ("1-3d", 3), ("3-7d", 7), ("7-14d", 14), ("14d+", i64::MAX)];

const MIN: f64 = 60_000.0;

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn pct(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| round1(100.0 * a as f64 / b as f64))
}

/// The middle value (the mean of the two middle ones), in minutes to 0.1.
pub fn median_min(v: &[i64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    let n = v.len();
    if n == 0 {
        return None;
    }
    let m = if n % 2 == 1 { v[n / 2] as f64 } else { (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0 };
    Some(round1(m / MIN))
}

/// The 90th percentile by nearest rank (the ⌈0.9·n⌉-th smallest), in minutes to 0.1.
pub fn p90_min(v: &[i64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    let n = v.len();
    if n == 0 {
        return None;
    }
    let rank = (9 * n).div_ceil(10).max(1);
    Some(round1(v[rank - 1] as f64 / MIN))
}

/// How one clock of one ticket stands at `at`.
struct Outcome {
    measured: bool,
    breached: bool,
    /// Working ms of a stopped clock.
    time_ms: Option<i64>,
}

struct Ctx<'a> {
    desk: &'a Desk,
    now: i64,
}

impl Ctx<'_> {
    fn calendar(&self, kind: ClockKind) -> Option<&crate::sla::calendar::Calendar> {
        self.desk.sla.as_ref().map(|s| if kind == ClockKind::Response { &s.response_calendar } else { &s.working })
    }

    /// Working ms the clock consumed by `at`.
    fn consumed(&self, c: &ReportClock, at: i64) -> i64 {
        match self.calendar(c.clock.kind) {
            Some(cal) => c.clock.consumed(at, cal),
            None => c.clock.consumed_ms,
        }
    }

    fn outcome(&self, t: &ReportTicket, c: Option<&ReportClock>) -> Outcome {
        let Some(c) = c else { return Outcome { measured: false, breached: false, time_ms: None } };
        let done = c.clock.stopped_at.is_some() && (c.clock.kind == ClockKind::Response || resolved(t));
        let breached = c.clock.state == crate::sla::SlaState::Breached
            || c.breached_at.is_some()
            || self.consumed(c, self.now) >= c.clock.target_ms;
        Outcome { measured: done || breached, breached, time_ms: done.then_some(c.clock.consumed_ms) }
    }

    fn figures<'t>(&self, ts: impl Iterator<Item = &'t ReportTicket>, kind: ClockKind) -> Figures {
        let (mut measured, mut in_time, mut times) = (0, 0, Vec::new());
        for t in ts {
            let o =
                self.outcome(t, if kind == ClockKind::Response { t.response.as_ref() } else { t.resolution.as_ref() });
            if o.measured {
                measured += 1;
                if !o.breached {
                    in_time += 1;
                }
            }
            times.extend(o.time_ms);
        }
        Figures {
            measured,
            in_time,
            compliance_pct: pct(in_time, measured),
            median_min: median_min(&times),
            p90_min: p90_min(&times),
        }
    }

    fn row(&self, key: String, name: Option<String>, special: Option<Special>, ts: &[&ReportTicket]) -> Row {
        let ratings: Vec<i64> = ts.iter().filter_map(|t| t.rating).collect();
        Row {
            key,
            name,
            special,
            tickets: ts.len(),
            response: self.figures(ts.iter().copied(), ClockKind::Response),
            resolution: self.figures(ts.iter().copied(), ClockKind::Resolution),
            ratings: ratings.len(),
            satisfaction: average(&ratings),
        }
    }

    /// Rows by `key`, largest first, then by name.
    fn breakdown(
        &self,
        cohort: &[&ReportTicket],
        key: impl Fn(&ReportTicket) -> String,
        name: impl Fn(&str) -> (Option<String>, Option<Special>),
    ) -> Vec<Row> {
        let mut by: BTreeMap<String, Vec<&ReportTicket>> = BTreeMap::new();
        for t in cohort {
            by.entry(key(t)).or_default().push(t);
        }
        let mut rows: Vec<Row> = by
            .into_iter()
            .map(|(k, ts)| {
                let (n, s) = name(&k);
                self.row(k, n, s, &ts)
            })
            .collect();
        rows.sort_by(|a, b| {
            b.tickets.cmp(&a.tickets).then_with(|| a.name.cmp(&b.name)).then_with(|| a.key.cmp(&b.key))
        });
        rows
    }

    fn finished_by(&self, t: &ReportTicket, at: i64) -> bool {
        t.closed_at.is_some_and(|c| c < at) || (resolved(t) && t.resolved_at.is_some_and(|r| r < at))
    }

    fn working_ms(&self, a: i64, b: i64) -> i64 {
        match self.calendar(ClockKind::Resolution) {
            Some(cal) => cal
                .working_between(
                    chrono::DateTime::from_timestamp_millis(a).unwrap_or_default(),
                    chrono::DateTime::from_timestamp_millis(b).unwrap_or_default(),
                )
                .num_milliseconds(),
            None => (b - a).max(0),
        }
    }
}

fn average(r: &[i64]) -> Option<f64> {
    (!r.is_empty()).then(|| (r.iter().sum::<i64>() as f64 / r.len() as f64 * 100.0).round() / 100.0)
}

/// Resolved or closed now (a ticket reopened since is neither).
fn resolved(t: &ReportTicket) -> bool {
    matches!(t.status.as_str(), "resolved" | "closed")
}

fn is_triage(category: &str, subcategory: &str) -> bool {
    category == TRIAGE_CATEGORY && subcategory == TRIAGE_SUBCATEGORY
}

fn channel_counts<'t>(ts: impl Iterator<Item = &'t ReportTicket>) -> Vec<Count> {
    let mut by: BTreeMap<String, usize> = CHANNELS.iter().map(|c| (c.to_string(), 0)).collect();
    for t in ts {
        *by.entry(t.channel.clone()).or_default() += 1;
    }
    let mut out: Vec<Count> =
        CHANNELS.iter().map(|c| Count { key: c.to_string(), count: by.remove(*c).unwrap_or(0) }).collect();
    out.extend(by.into_iter().map(|(key, count)| Count { key, count }));
    out
}

/// The report of `desk` for `period`, made at `now`, from the rows of `store::report`.
pub fn build(desk: &Desk, period: &Period, now: i64, tickets: &[ReportTicket], events: &[ReportEvent]) -> Report {
    let tz = desk.tz;
    let (from, to) = period.bounds(tz);
    let ctx = Ctx { desk, now };
    let cohort: Vec<&ReportTicket> = tickets.iter().filter(|t| t.created_at >= from && t.created_at < to).collect();
    let mut events_of: BTreeMap<i64, Vec<&ReportEvent>> = BTreeMap::new();
    for e in events {
        events_of.entry(e.ticket_id).or_default().push(e);
    }
    let no_events = Vec::new();
    let evs = |t: &ReportTicket| events_of.get(&t.id).unwrap_or(&no_events);

    // Satisfaction.
    let ratings: Vec<i64> = cohort.iter().filter_map(|t| t.rating).filter(|r| (1..=5).contains(r)).collect();
    let mut distribution = [0; 5];
    for r in &ratings {
        distribution[(*r - 1) as usize] += 1;
    }
    let asked = cohort.iter().filter(|t| t.rating_requested_at.is_some() || t.rating.is_some()).count();
    let satisfaction = Satisfaction {
        ratings: ratings.len(),
        average: average(&ratings),
        distribution,
        asked,
        response_rate_pct: pct(ratings.len(), asked),
    };

    // Reopenings.
    let reopened: Vec<&ReportTicket> =
        cohort.iter().copied().filter(|t| evs(t).iter().any(|e| e.kind == "reopened")).collect();
    let ever_resolved =
        cohort.iter().filter(|t| t.resolved_at.is_some() || reopened.iter().any(|r| r.id == t.id)).count();

    // Triage: routed there on arrival; left it at the first category change.
    let mut triage = Triage::default();
    let (mut waits, mut longest) = (Vec::new(), None::<i64>);
    for t in &cohort {
        let e = evs(t);
        let routed = e.iter().find(|e| e.kind == "routed").map(|e| {
            let s = |k: &str| e.detail.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            (s("category"), s("subcategory"))
        });
        let arrived_in_triage = match routed {
            Some((c, s)) => is_triage(&c, &s),
            None => is_triage(&t.category, &t.subcategory),
        };
        if !arrived_in_triage {
            continue;
        }
        triage.tickets += 1;
        let left = e
            .iter()
            .find(|e| e.kind == "command" && e.detail.get("command").and_then(|c| c.as_str()) == Some("category"))
            .map(|e| e.at);
        let wait = match left {
            Some(at) => {
                triage.moved += 1;
                let w = ctx.working_ms(t.created_at, at);
                waits.push(w);
                w
            }
            None => {
                // Resolved (or closed) while in triage: it waited until then, and waits no more.
                let done = if resolved(t) { t.resolved_at.or(t.closed_at) } else { None };
                if done.is_none() {
                    triage.still_waiting += 1;
                }
                ctx.working_ms(t.created_at, done.unwrap_or(now).min(to))
            }
        };
        longest = Some(longest.map_or(wait, |l| l.max(wait)));
    }
    triage.median_wait_min = median_min(&waits);
    triage.longest_wait_min = longest.map(|l| round1(l as f64 / MIN));

    let summary = Summary {
        received: cohort.len(),
        received_by_channel: channel_counts(cohort.iter().copied()),
        resolved: tickets.iter().filter(|t| t.resolved_at.is_some_and(|r| r >= from && r < to)).count(),
        open_at_end: tickets.iter().filter(|t| t.created_at < to && !ctx.finished_by(t, to)).count(),
        response: ctx.figures(cohort.iter().copied(), ClockKind::Response),
        resolution: ctx.figures(cohort.iter().copied(), ClockKind::Resolution),
        satisfaction,
        reopened: reopened.len(),
        reopen_rate_pct: pct(reopened.len(), ever_resolved),
        triage,
    };

    // Trend: per day for up to 14 days, else per week (Monday to Sunday, cut at the period's ends).
    let days = (period.to - period.from).num_days() + 1;
    let trend_unit = if days <= 14 { "day" } else { "week" };
    let mut trend = Vec::new();
    let mut start = period.from;
    while start <= period.to {
        let mut end = start;
        if trend_unit == "week" {
            while end < period.to && end.weekday() != chrono::Weekday::Sun {
                end += chrono::Duration::days(1);
            }
        }
        let (a, b) = (midnight(start, tz), midnight(end + chrono::Duration::days(1), tz));
        let ts: Vec<&ReportTicket> = cohort.iter().copied().filter(|t| t.created_at >= a && t.created_at < b).collect();
        trend.push(Bucket {
            start: When::at(a, tz),
            end: When::at(midnight(end, tz), tz),
            key: start.format("%Y-%m-%d").to_string(),
            received: ts.len(),
            by_channel: channel_counts(ts.iter().copied()),
            response: ctx.figures(ts.iter().copied(), ClockKind::Response),
        });
        start = end + chrono::Duration::days(1);
    }

    // Backlog by age at the period's end.
    let mut backlog: Vec<Count> = BACKLOG_AGES.iter().map(|(k, _)| Count { key: k.to_string(), count: 0 }).collect();
    for t in tickets.iter().filter(|t| t.created_at < to && !ctx.finished_by(t, to)) {
        let age_days = (to - t.created_at) / 86_400_000;
        if let Some(i) = BACKLOG_AGES.iter().position(|(_, max)| age_days < *max) {
            backlog[i].count += 1;
        }
    }

    // Breakdowns.
    let cat = &desk.catalogue;
    let categories = ctx.breakdown(
        &cohort,
        |t| t.category.clone(),
        |k| match cat.category(k) {
            _ if k == TRIAGE_CATEGORY => (None, Some(Special::Triage)),
            Some(c) => (Some(c.name.clone()), None),
            None => (None, Some(Special::Unknown)),
        },
    );
    let subcategories = ctx.breakdown(
        &cohort,
        |t| format!("{}/{}", t.category, t.subcategory),
        |k| {
            let (c, s) = k.split_once('/').unwrap_or((k, ""));
            match (cat.category(c), cat.subcategory(c, s)) {
                _ if is_triage(c, s) => (None, Some(Special::Triage)),
                (Some(c), Some(s)) => (Some(format!("{} / {}", c.name, s.name)), None),
                _ => (None, Some(Special::Unknown)),
            }
        },
    );
    let agents = ctx.breakdown(
        &cohort,
        |t| t.assignee.clone().unwrap_or_default(),
        |k| {
            if k.is_empty() {
                (None, Some(Special::Unassigned))
            } else {
                match desk.find_agent(k) {
                    Some(a) => (Some(a.name.clone()), None),
                    None => (Some(k.to_string()), None),
                }
            }
        },
    );
    let groups = ctx.breakdown(
        &cohort,
        |t| t.group_id.clone().unwrap_or_default(),
        |k| {
            if k.is_empty() {
                (None, Some(Special::Unassigned))
            } else {
                match desk.group(k) {
                    Some(g) => (Some(g.name.clone()), None),
                    None => (None, Some(Special::Unknown)),
                }
            }
        },
    );

    // Breaches in the period, of any ticket.
    let mut breaches = Vec::new();
    for t in tickets {
        for c in [t.response.as_ref(), t.resolution.as_ref()].into_iter().flatten() {
            let end = to.min(now);
            let consumed = match c.clock.stopped_at {
                Some(_) => c.clock.consumed_ms,
                None => ctx.consumed(c, end),
            };
            let marked = c.clock.state == crate::sla::SlaState::Breached || c.breached_at.is_some();
            if !marked && consumed < c.clock.target_ms {
                continue;
            }
            // When it breached: the scheduler's stamp, else (a clock stopped past its target
            // between two scheduler runs) when it stopped, else when it was due.
            let Some(at) = c.breached_at.or(c.clock.stopped_at).or(c.clock.due_at) else { continue };
            if at < from || at >= to {
                continue;
            }
            let holder = t
                .assignee
                .as_deref()
                .map(|a| desk.find_agent(a).map(|x| x.name.clone()).unwrap_or_else(|| a.to_string()))
                .or_else(|| t.group_id.as_deref().and_then(|g| desk.group(g)).map(|g| g.name.clone()));
            breaches.push(Breach {
                number: t.number.clone(),
                category: t.category.clone(),
                subcategory: t.subcategory.clone(),
                category_name: cat.category(&t.category).map(|c| c.name.clone()),
                subcategory_name: cat.subcategory(&t.category, &t.subcategory).map(|s| s.name.clone()),
                triage: is_triage(&t.category, &t.subcategory),
                clock: c.clock.kind,
                breached_at: When::at(at, tz),
                over_min: round1((consumed - c.clock.target_ms).max(0) as f64 / MIN),
                holder,
            });
        }
    }
    let order: BTreeMap<&str, i64> = tickets.iter().map(|t| (t.number.as_str(), t.created_at)).collect();
    breaches.sort_by_key(|b| (order.get(b.number.as_str()).copied(), b.number.clone(), b.clock != ClockKind::Response));

    let targets = desk
        .sla
        .as_ref()
        .map(|s| Targets {
            response_min: Some(s.response.num_seconds() as f64 / 60.0),
            response_by_channel: s
                .response_by_channel
                .iter()
                .filter(|(_, d)| **d != s.response)
                .map(|(c, d)| (c.clone(), d.num_seconds() as f64 / 60.0))
                .collect(),
            resolution_min: Some(s.resolution.num_seconds() as f64 / 60.0),
            priority_hours: s.priority_hours.iter().map(|(p, h)| (p.as_str().to_string(), *h)).collect(),
        })
        .unwrap_or_default();

    let reopened_set: BTreeSet<&str> = reopened.iter().map(|t| t.number.as_str()).collect();
    Report {
        desk: desk.id.clone(),
        desk_name: desk.name.clone(),
        from: When::at(from, tz),
        to: When::at(midnight(period.to, tz), tz),
        from_date: period.from.format("%Y-%m-%d").to_string(),
        to_date: period.to.format("%Y-%m-%d").to_string(),
        generated: When::at(now, tz),
        has_sla: desk.sla.is_some(),
        targets,
        summary,
        trend_unit,
        trend,
        backlog,
        categories,
        subcategories,
        agents,
        groups,
        breaches,
        reopened_tickets: cohort
            .iter()
            .filter(|t| reopened_set.contains(t.number.as_str()))
            .map(|t| t.number.clone())
            .collect(),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// A row's name for the text table and CSV (English words for the special rows: both are for
/// operators; the HTML page takes its words from the templates).
fn plain_name(r: &Row) -> String {
    match (&r.name, r.special) {
        (Some(n), _) => n.clone(),
        (None, Some(Special::Triage)) => "Triage (not yet classified)".into(),
        (None, Some(Special::Unassigned)) => "(unassigned)".into(),
        (None, _) => format!("(unknown: {})", r.key),
    }
}

/// The columns of [`csv`], in order (documented in the README; stable).
pub const COLUMNS: &[&str] = &[
    "section",
    "key",
    "name",
    "tickets",
    "response_measured",
    "response_in_time",
    "response_compliance_pct",
    "median_response_min",
    "p90_response_min",
    "resolution_measured",
    "resolution_in_time",
    "resolution_compliance_pct",
    "median_resolution_min",
    "p90_resolution_min",
    "ratings",
    "satisfaction",
    "value",
];

/// The columns of [`breaches_csv`], in order (documented in the README; stable).
pub const BREACH_COLUMNS: &[&str] =
    &["number", "category", "subcategory", "service", "clock", "breached_at", "over_min", "holder"];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn csv_line(cells: &[String]) -> String {
    cells.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",") + "\n"
}

fn figure_cells(f: &Figures) -> [String; 5] {
    [f.measured.to_string(), f.in_time.to_string(), opt(f.compliance_pct), opt(f.median_min), opt(f.p90_min)]
}

fn row_cells(section: &str, r: &Row) -> Vec<String> {
    let mut c = vec![section.to_string(), r.key.clone(), plain_name(r), r.tickets.to_string()];
    c.extend(figure_cells(&r.response));
    c.extend(figure_cells(&r.resolution));
    c.extend([r.ratings.to_string(), opt(r.satisfaction), String::new()]);
    c
}

fn value_cells(section: &str, key: &str, value: String) -> Vec<String> {
    let mut c = vec![String::new(); COLUMNS.len()];
    c[0] = section.to_string();
    c[1] = key.to_string();
    c[COLUMNS.len() - 1] = value;
    c
}

/// Every figure of the report as one CSV table ([`COLUMNS`]): section `total` (the cohort),
/// `category`, `subcategory`, `agent`, `group` (rows with the figure columns); `channel`,
/// `trend` (key: the day or week's first day), `backlog` (key: the age bucket) and `rating`
/// (key: 1–5) with `tickets` and, for `trend`, the response columns; section `measure` with one
/// figure in `value` per key (`resolved`, `open_at_end`, `reopened`, `reopen_rate_pct`, …).
pub fn csv(r: &Report) -> String {
    let mut out = csv_line(&COLUMNS.iter().map(|c| c.to_string()).collect::<Vec<_>>());
    let s = &r.summary;
    let total = Row {
        key: "all".into(),
        name: Some(r.desk_name.clone()),
        special: None,
        tickets: s.received,
        response: s.response.clone(),
        resolution: s.resolution.clone(),
        ratings: s.satisfaction.ratings,
        satisfaction: s.satisfaction.average,
    };
    out.push_str(&csv_line(&row_cells("total", &total)));
    for c in &s.received_by_channel {
        let mut cells = value_cells("channel", &c.key, String::new());
        cells[3] = c.count.to_string();
        out.push_str(&csv_line(&cells));
    }
    for b in &r.trend {
        let mut cells = value_cells("trend", &b.key, String::new());
        cells[3] = b.received.to_string();
        for (i, v) in figure_cells(&b.response).into_iter().enumerate() {
            cells[4 + i] = v;
        }
        out.push_str(&csv_line(&cells));
    }
    for (section, rows) in
        [("category", &r.categories), ("subcategory", &r.subcategories), ("agent", &r.agents), ("group", &r.groups)]
    {
        for row in rows {
            out.push_str(&csv_line(&row_cells(section, row)));
        }
    }
    for b in &r.backlog {
        let mut cells = value_cells("backlog", &b.key, String::new());
        cells[3] = b.count.to_string();
        out.push_str(&csv_line(&cells));
    }
    for (i, n) in s.satisfaction.distribution.iter().enumerate() {
        let mut cells = value_cells("rating", &(i + 1).to_string(), String::new());
        cells[3] = n.to_string();
        out.push_str(&csv_line(&cells));
    }
    for (k, v) in measures(r) {
        out.push_str(&csv_line(&value_cells("measure", k, v)));
    }
    out
}

/// The single figures of the summary: (key, value) as in CSV's `measure` section.
pub fn measures(r: &Report) -> Vec<(&'static str, String)> {
    let s = &r.summary;
    let n = |v: usize| v.to_string();
    vec![
        ("received", n(s.received)),
        ("resolved", n(s.resolved)),
        ("open_at_end", n(s.open_at_end)),
        ("reopened", n(s.reopened)),
        ("reopen_rate_pct", opt(s.reopen_rate_pct)),
        ("ratings_asked", n(s.satisfaction.asked)),
        ("rating_response_rate_pct", opt(s.satisfaction.response_rate_pct)),
        ("triage_tickets", n(s.triage.tickets)),
        ("triage_moved", n(s.triage.moved)),
        ("triage_still_waiting", n(s.triage.still_waiting)),
        ("triage_median_wait_min", opt(s.triage.median_wait_min)),
        ("triage_longest_wait_min", opt(s.triage.longest_wait_min)),
        ("breaches", n(r.breaches.len())),
        ("target_response_min", opt(r.targets.response_min)),
        ("target_resolution_min", opt(r.targets.resolution_min)),
    ]
}

fn breach_service(b: &Breach) -> String {
    match (&b.category_name, &b.subcategory_name) {
        _ if b.triage => "Triage (not yet classified)".into(),
        (Some(c), Some(s)) => format!("{c} / {s}"),
        _ => format!("{}/{}", b.category, b.subcategory),
    }
}

fn when_iso(w: &When) -> String {
    format!("{:04}-{:02}-{:02} {:02}:{:02} {}", w.year, w.month, w.day, w.hour, w.minute, w.zone)
}

/// The breaches as CSV ([`BREACH_COLUMNS`]).
pub fn breaches_csv(r: &Report) -> String {
    let mut out = csv_line(&BREACH_COLUMNS.iter().map(|c| c.to_string()).collect::<Vec<_>>());
    for b in &r.breaches {
        out.push_str(&csv_line(&[
            b.number.clone(),
            b.category.clone(),
            b.subcategory.clone(),
            breach_service(b),
            b.clock.as_str().to_string(),
            when_iso(&b.breached_at),
            b.over_min.to_string(),
            b.holder.clone().unwrap_or_default(),
        ]));
    }
    out
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}

/// The text table: the summary, then each breakdown with the catalogue's names, then the breaches.
pub fn table(r: &Report) -> String {
    let s = &r.summary;
    let f = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_else(|| "-".into());
    let mut out = format!("{} — service report {} to {}\n\n", r.desk_name, r.from_date, r.to_date);
    let channels: Vec<String> = s.received_by_channel.iter().map(|c| format!("{} {}", c.key, c.count)).collect();
    out.push_str(&format!("Received        {} ({})\n", s.received, channels.join(", ")));
    out.push_str(&format!("Resolved        {}\nOpen at the end {}\n", s.resolved, s.open_at_end));
    for (label, fig) in [("First response ", &s.response), ("Resolution     ", &s.resolution)] {
        out.push_str(&format!(
            "{label} {} of {} in time ({} %), median {} min, 90th percentile {} min\n",
            fig.in_time,
            fig.measured,
            f(fig.compliance_pct),
            f(fig.median_min),
            f(fig.p90_min)
        ));
    }
    let d = &s.satisfaction.distribution;
    out.push_str(&format!(
        "Satisfaction    {} ratings, average {}, 1–5: {} {} {} {} {}, response rate {} %\n",
        s.satisfaction.ratings,
        f(s.satisfaction.average),
        d[0],
        d[1],
        d[2],
        d[3],
        d[4],
        f(s.satisfaction.response_rate_pct)
    ));
    out.push_str(&format!("Reopened        {} ({} %)\n", s.reopened, f(s.reopen_rate_pct)));
    out.push_str(&format!(
        "Triage          {} (moved {}, waiting {}), median wait {} min\n",
        s.triage.tickets,
        s.triage.moved,
        s.triage.still_waiting,
        f(s.triage.median_wait_min)
    ));
    for (title, rows) in
        [("CATEGORY", &r.categories), ("SERVICE", &r.subcategories), ("AGENT", &r.agents), ("GROUP", &r.groups)]
    {
        out.push_str(&format!(
            "\n{:<44} {:>7} {:>7} {:>8} {:>8} {:>9} {:>6}\n",
            title, "TICKETS", "RESP %", "MED RESP", "RESOL %", "MED RESOL", "SATIS"
        ));
        for row in rows {
            out.push_str(&format!(
                "{:<44} {:>7} {:>7} {:>8} {:>8} {:>9} {:>6}\n",
                cut(&plain_name(row), 44),
                row.tickets,
                f(row.response.compliance_pct),
                f(row.response.median_min),
                f(row.resolution.compliance_pct),
                f(row.resolution.median_min),
                f(row.satisfaction)
            ));
        }
    }
    out.push_str(&format!("\nBREACHES ({})\n", r.breaches.len()));
    for b in &r.breaches {
        out.push_str(&format!(
            "{:<18} {:<10} {:>8} min over  {:<40} {}\n",
            b.number,
            b.clock.as_str(),
            b.over_min,
            cut(&breach_service(b), 40),
            b.holder.as_deref().unwrap_or("-")
        ));
    }
    out
}

/// What `report.html` renders: the report as `r`.
#[derive(Debug, Serialize)]
pub struct Page<'a> {
    pub r: &'a Report,
}

/// The HTML page of the report in `lang` (`templates/<lang>/report.html.j2`).
pub fn html(
    templates: &crate::templates::Templates,
    lang: Language,
    r: &Report,
) -> Result<String, crate::templates::TemplateError> {
    templates.render_page(lang, "report.html", &Page { r })
}

/// A report with every section filled, for checking the templates at load.
pub fn sample() -> Report {
    let w = When { weekday: 0, day: 1, month: 6, year: 2026, hour: 0, minute: 0, zone: "WIB".into() };
    let fig =
        Figures { measured: 3, in_time: 2, compliance_pct: Some(66.7), median_min: Some(42.0), p90_min: Some(95.5) };
    let row = |key: &str, name: Option<&str>, special| Row {
        key: key.into(),
        name: name.map(Into::into),
        special,
        tickets: 3,
        response: fig.clone(),
        resolution: fig.clone(),
        ratings: 1,
        satisfaction: Some(4.0),
    };
    let counts = CHANNELS.iter().map(|c| Count { key: c.to_string(), count: 1 }).collect::<Vec<_>>();
    Report {
        desk: "hero".into(),
        desk_name: "HERO".into(),
        from: w.clone(),
        to: When { day: 30, ..w.clone() },
        from_date: "2026-06-01".into(),
        to_date: "2026-06-30".into(),
        generated: w.clone(),
        has_sla: true,
        targets: Targets {
            response_min: Some(60.0),
            response_by_channel: vec![("telegram".into(), 30.0)],
            resolution_min: Some(960.0),
            priority_hours: vec![("P1".into(), 3.0)],
        },
        summary: Summary {
            received: 3,
            received_by_channel: counts.clone(),
            resolved: 2,
            open_at_end: 1,
            response: fig.clone(),
            resolution: Figures::default(),
            satisfaction: Satisfaction {
                ratings: 1,
                average: Some(4.0),
                distribution: [0, 0, 0, 1, 0],
                asked: 2,
                response_rate_pct: Some(50.0),
            },
            reopened: 1,
            reopen_rate_pct: Some(50.0),
            triage: Triage {
                tickets: 1,
                moved: 1,
                still_waiting: 0,
                median_wait_min: Some(30.0),
                longest_wait_min: Some(30.0),
            },
        },
        trend_unit: "week",
        trend: vec![Bucket {
            start: w.clone(),
            end: w.clone(),
            key: "2026-06-01".into(),
            received: 3,
            by_channel: counts,
            response: fig.clone(),
        }],
        backlog: BACKLOG_AGES.iter().map(|(k, _)| Count { key: k.to_string(), count: 1 }).collect(),
        categories: vec![row("aplikasi", Some("Aplikasi"), None), row("triage", None, Some(Special::Triage))],
        subcategories: vec![row("x/y", None, Some(Special::Unknown))],
        agents: vec![row("", None, Some(Special::Unassigned))],
        groups: vec![row("l1", Some("Service Desk"), None)],
        breaches: vec![Breach {
            number: "A-HERO26000001".into(),
            category: "triage".into(),
            subcategory: "unknown".into(),
            category_name: None,
            subcategory_name: None,
            triage: true,
            clock: ClockKind::Response,
            breached_at: w,
            over_min: 12.5,
            holder: None,
        }],
        reopened_tickets: vec!["A-HERO26000001".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        let m = |v: &[i64]| v.iter().map(|x| x * 60_000).collect::<Vec<_>>();
        assert_eq!(median_min(&[]), None);
        assert_eq!(median_min(&m(&[5])), Some(5.0));
        assert_eq!(median_min(&m(&[30, 10, 20, 40])), Some(25.0));
        assert_eq!(p90_min(&m(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])), Some(9.0));
        assert_eq!(p90_min(&m(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])), Some(10.0));
        assert_eq!(p90_min(&m(&[7])), Some(7.0));
        assert_eq!(pct(2, 3), Some(66.7));
        assert_eq!(pct(0, 0), None);
    }

    #[test]
    fn csv_has_the_documented_columns_and_one_line_per_figure() {
        let r = sample();
        let c = csv(&r);
        let header = c.lines().next().unwrap();
        assert_eq!(header, COLUMNS.join(","));
        assert!(c.lines().all(|l| l.split(',').count() == COLUMNS.len()), "{c}");
        assert!(c.contains("\ncategory,aplikasi,Aplikasi,3,"), "{c}");
        assert!(c.contains("\nmeasure,open_at_end,"), "{c}");
        let b = breaches_csv(&r);
        assert_eq!(b.lines().next().unwrap(), BREACH_COLUMNS.join(","));
        assert!(
            b.contains("A-HERO26000001,triage,unknown,Triage (not yet classified),response,2026-06-01 00:00 WIB,12.5,")
        );
        let t = table(&r);
        assert!(
            t.contains("Aplikasi") && t.contains("Triage (not yet classified)") && t.contains("(unassigned)"),
            "{t}"
        );
    }

    fn djpb() -> Desk {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("loket.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        crate::config::Config::from_toml(&path, &text, |_| None).unwrap().desk("djpb").unwrap().clone()
    }

    fn at(s: &str) -> i64 {
        let tz: chrono_tz::Tz = "Asia/Jakarta".parse().unwrap();
        tz.from_local_datetime(&chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
            .unwrap()
            .timestamp_millis()
    }

    fn clock(
        kind: ClockKind,
        target_min: i64,
        consumed_min: i64,
        running_since: Option<i64>,
        stopped_at: Option<i64>,
    ) -> ReportClock {
        ReportClock {
            clock: crate::sla::Clock {
                kind,
                target_ms: target_min * 60_000,
                warn_ms: target_min * 45_000,
                consumed_ms: consumed_min * 60_000,
                running_since,
                stopped_at,
                state: crate::sla::SlaState::Ok,
                next_check_at: None,
                due_at: running_since.map(|s| s + (target_min - consumed_min) * 60_000),
            },
            breached_at: None,
        }
    }

    fn ticket(id: i64, channel: &str, category: &str, created: &str) -> ReportTicket {
        ReportTicket {
            id,
            number: format!("T{id}"),
            category: category.into(),
            subcategory: "x".into(),
            channel: channel.into(),
            status: "open".into(),
            assignee: None,
            group_id: None,
            created_at: at(created),
            resolved_at: None,
            closed_at: None,
            rating: None,
            rating_requested_at: None,
            response: None,
            resolution: None,
        }
    }

    /// What counts, on DJPb's calendar (Monday–Friday 08:00–16:00): three channels, a clock that
    /// stopped past its target between two scheduler runs, a clock still running past it, a
    /// category the catalogue no longer has, a ticket carried into the period, days as the trend.
    #[test]
    fn build_counts_what_the_readme_says() {
        let desk = djpb();
        let period = Period {
            from: NaiveDate::from_ymd_opt(2026, 7, 6).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 7, 10).unwrap(),
        };
        let mut t1 = ticket(1, "email", "aplikasi", "2026-07-06 09:00");
        t1.status = "closed".into();
        t1.resolved_at = Some(at("2026-07-06 11:00"));
        t1.closed_at = Some(at("2026-07-06 12:00"));
        t1.rating = Some(5);
        t1.rating_requested_at = t1.closed_at;
        t1.response = Some(clock(ClockKind::Response, 60, 30, None, Some(at("2026-07-06 09:30"))));
        t1.resolution = Some(clock(ClockKind::Resolution, 960, 120, None, Some(at("2026-07-06 11:00"))));
        let mut t2 = ticket(2, "telegram", "aplikasi", "2026-07-06 10:00");
        t2.response = Some(clock(ClockKind::Response, 60, 90, None, Some(at("2026-07-06 11:30"))));
        let mut t3 = ticket(3, "whatsapp", "hapus", "2026-07-07 09:00");
        t3.response = Some(clock(ClockKind::Response, 60, 0, Some(at("2026-07-07 09:00")), None));
        let t4 = ticket(4, "email", "aplikasi", "2026-06-30 09:00");
        let now = at("2026-07-10 12:00");
        let r = build(&desk, &period, now, &[t4, t1, t2, t3], &[]);
        let s = &r.summary;
        assert_eq!((s.received, s.resolved, s.open_at_end), (3, 1, 3));
        let ch: Vec<usize> = s.received_by_channel.iter().map(|c| c.count).collect();
        assert_eq!(ch, [1, 1, 1]);
        assert_eq!(
            (s.response.measured, s.response.in_time),
            (3, 1),
            "90 minutes of 60 missed, and so did the unanswered"
        );
        assert_eq!((s.response.median_min, s.response.p90_min), (Some(60.0), Some(90.0)));
        assert_eq!((s.resolution.measured, s.resolution.in_time, s.resolution.median_min), (1, 1, Some(120.0)));
        assert_eq!(s.satisfaction.distribution, [0, 0, 0, 0, 1]);
        assert_eq!((r.trend_unit, r.trend.len(), r.trend[0].received, r.trend[1].received), ("day", 5, 2, 1));
        let backlog: Vec<(&str, usize)> = r.backlog.iter().map(|b| (b.key.as_str(), b.count)).collect();
        assert_eq!(backlog, [("0-1d", 0), ("1-3d", 0), ("3-7d", 2), ("7-14d", 1), ("14d+", 0)]);
        assert!(
            r.categories.iter().any(|c| c.key == "hapus" && c.special == Some(Special::Unknown) && c.name.is_none())
        );
        let breaches: Vec<(&str, f64)> = r.breaches.iter().map(|b| (b.number.as_str(), b.over_min)).collect();
        // T3: Tuesday 09:00 to Friday 12:00 is 7 + 8 + 8 + 4 working hours, less the hour allowed.
        assert_eq!(breaches, [("T2", 30.0), ("T3", 27.0 * 60.0 - 60.0)]);
    }

    /// A ticket in triage waits until an agent moves it, or until it is resolved there; only the
    /// one still open waits on with the clock.
    #[test]
    fn a_ticket_resolved_in_triage_waits_no_more() {
        let desk = djpb();
        let period = Period {
            from: NaiveDate::from_ymd_opt(2026, 7, 6).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 7, 10).unwrap(),
        };
        let mut done = ticket(1, "email", "triage", "2026-07-06 09:00");
        done.subcategory = "unknown".into();
        done.status = "closed".into();
        done.resolved_at = Some(at("2026-07-06 10:00"));
        done.closed_at = Some(at("2026-07-06 11:00"));
        let triage = |now: &str, tickets: &[ReportTicket]| build(&desk, &period, at(now), tickets, &[]).summary.triage;
        for now in ["2026-07-07 09:00", "2026-07-09 15:00"] {
            let t = triage(now, std::slice::from_ref(&done));
            assert_eq!((t.tickets, t.moved, t.still_waiting, t.longest_wait_min), (1, 0, 0, Some(60.0)), "at {now}");
        }
        let mut open = ticket(2, "email", "triage", "2026-07-06 09:00");
        open.subcategory = "unknown".into();
        let t = triage("2026-07-06 12:00", &[done, open]);
        assert_eq!((t.tickets, t.still_waiting, t.longest_wait_min), (2, 1, Some(180.0)));
    }

    /// Nothing to count is said, not shown as dashes.
    #[test]
    fn empty_states_are_explained() {
        let desk = djpb();
        let t = crate::templates::Templates::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"))
            .unwrap();
        let period = Period {
            from: NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 7, 31).unwrap(),
        };
        let empty = build(&desk, &period, at("2026-08-01 09:00"), &[], &[]);
        let page = visible_text(&html(&t, Language::Id, &empty).unwrap());
        for sentence in [
            "Tidak ada tiket yang masuk pada periode ini.",
            "Belum ada penilaian dari pemohon pada periode ini.",
            "Tidak ada tiket yang masih terbuka di akhir periode.",
            "Tidak ada tiket yang melampaui target layanan pada periode ini.",
        ] {
            assert!(page.contains(sentence), "{sentence}");
        }
        // One ticket, just arrived: received, nothing answered yet.
        let mut fresh = ticket(1, "email", "aplikasi", "2026-07-31 15:50");
        fresh.response = Some(clock(ClockKind::Response, 60, 0, Some(fresh.created_at), None));
        let r = build(&desk, &period, at("2026-07-31 15:55"), &[fresh], &[]);
        let en = visible_text(&html(&t, Language::En, &r).unwrap());
        assert!(en.contains("No ticket has had a response in this period yet"), "{en}");
        let id = visible_text(&html(&t, Language::Id, &r).unwrap());
        assert!(id.contains("Belum ada tiket yang ditanggapi pada periode ini"), "{id}");
    }

    /// The visible text of a page: tags, comments, styles and entities' markup removed.
    pub fn visible_text(html: &str) -> String {
        let body = html.split("</style>").last().unwrap_or(html);
        let mut out = String::new();
        let mut in_tag = false;
        for c in body.chars() {
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    out.push(' ');
                }
                _ if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn both_languages_render_with_names_and_no_field_names() {
        let t = crate::templates::Templates::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"))
            .unwrap();
        let r = sample();
        for (lang, words) in [
            (Language::Id, ["Laporan Layanan", "Triase (belum terklasifikasi)", "Belum ditugaskan"]),
            (Language::En, ["Service Report", "Triage (not yet classified)", "Not assigned"]),
        ] {
            let page = html(&t, lang, &r).unwrap();
            assert!(!page.contains("<script"), "no scripts");
            assert!(page.contains("<svg") && page.contains("<title id="), "charts with titles");
            let text = visible_text(&page);
            for w in words {
                assert!(text.contains(w), "{lang}: {w} missing in {text}");
            }
            assert!(text.contains("Aplikasi") && text.contains("Service Desk"), "{text}");
            for token in text.split(|c: char| c.is_whitespace() || ",.;:()·".contains(c)) {
                assert!(!token.contains('_') && !token.contains("triage/") && token != "email", "{lang}: `{token}`");
                assert!(
                    !["none", "None", "null", "undefined", "NaN", "x/y", "l1"].contains(&token),
                    "{lang}: `{token}`"
                );
            }
        }
    }
}
