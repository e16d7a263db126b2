//! The service report (issue 21): four weeks of a desk's tickets scripted through the real
//! pipeline with an injected clock (responses, resolutions, breaches, reopenings, ratings,
//! triage), the report's figures checked against values this test computes on its own (working
//! minutes counted minute by minute on the desk's hours, not with Loket's calendar), and the HTML
//! page rendered in headless Chromium at phone and A4 widths.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use loket::store;

use crate::harness::*;

fn wib(s: &str) -> i64 {
    let tz: chrono_tz::Tz = "Asia/Jakarta".parse().unwrap();
    tz.from_local_datetime(&chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
        .unwrap()
        .timestamp_millis()
}

/// Working minutes in `[a, b)` on the test desk's hours (Monday–Friday 08:00–16:00 WIB, no
/// holidays), counted minute by minute.
fn working_min(a: i64, b: i64) -> i64 {
    let tz: chrono_tz::Tz = "Asia/Jakarta".parse().unwrap();
    let mut n = 0;
    let mut t = a;
    while t < b {
        let l = DateTime::<Utc>::from_timestamp_millis(t).unwrap().with_timezone(&tz);
        if l.weekday().num_days_from_monday() < 5 && (8..16).contains(&l.hour()) {
            n += 1;
        }
        t += 60_000;
    }
    n
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    (n > 0).then(|| if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

fn p90(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    // Nearest rank: the smallest value with at least 90 % of the values at or below it.
    (n > 0).then(|| v[(1..=n).find(|r| *r as f64 >= 0.9 * n as f64).unwrap() - 1])
}

fn pct(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| (1000.0 * a as f64 / b as f64).round() / 10.0)
}

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// What happens to one scripted ticket.
#[derive(Debug, Clone, Default)]
struct Plan {
    at: i64,
    subject: &'static str,
    body: &'static str,
    /// Minutes after arrival of the first agent action (`#assign`, or `#category` out of triage).
    respond: Option<i64>,
    /// Calendar minutes after arrival of the resolution.
    resolve: Option<i64>,
    /// Minutes after the resolution of the requester's "still broken" (reopen), then the second
    /// resolution this many minutes after the reopening.
    reopen: Option<(i64, i64)>,
    confirm: bool,
    rating: Option<i64>,
}

/// What the test recorded about a ticket as it played it.
#[derive(Debug, Clone, Default)]
struct Ledger {
    number: String,
    created: i64,
    category: String,
    subcategory: String,
    triage: bool,
    responded: Option<i64>,
    /// Resolution segments: (start, stop) of the resolution clock; the last may be open.
    segments: Vec<(i64, Option<i64>)>,
    resolved_final: Option<i64>,
    reopened: bool,
    rating: Option<i64>,
    asked: bool,
    assignee_name: Option<String>,
    group_name: Option<String>,
    resolution_target_min: i64,
}

const NETWORK: (&str, &str) = ("Internet putus", "Jaringan internet di ruangan saya putus sejak pagi.");
const SISP: (&str, &str) = ("SISP tidak bisa diakses", "Aplikasi SISP error sejak pagi, tidak bisa login.");
const VAGUE: (&str, &str) = ("Mohon bantuan", "Selamat pagi, mohon bantuannya untuk hal yang kemarin saya sampaikan.");

fn plans() -> Vec<Plan> {
    let mut out = Vec::new();
    let monday = wib("2026-07-06 00:00");
    let day = 86_400_000;
    for i in 0..20i64 {
        let d = (i / 5) * 7 + (i % 5); // Monday to Friday of weeks 1–4
        let at = monday + d * day + (9 + i % 3) * 3_600_000 + (i % 4) * 7 * 60_000;
        let (subject, body) = match i % 5 {
            0 | 3 => SISP,
            2 if i % 10 == 2 => VAGUE,
            _ => NETWORK,
        };
        let respond = match i {
            17 | 19 => None, // never answered
            _ => Some([95, 12, 30, 48][(i % 4) as usize]),
        };
        let resolve = match (i % 5, respond) {
            (_, None) => None,
            (0, _) => Some(180),
            (1, _) => Some(day / 60_000 + 60),
            (2, _) => Some(3 * day / 60_000 + 30),
            (3, _) if i < 15 => Some(9 * day / 60_000),
            _ => None,
        };
        let reopen = (resolve.is_some() && i % 6 == 1).then_some((120, 240));
        let confirm = resolve.is_some() && i % 7 != 5;
        let rating = confirm.then(|| [5, 4, 3, 5, 2, 4, 1][(i % 7) as usize]).filter(|_| i % 4 != 2);
        out.push(Plan { at, subject, body, respond, resolve, reopen, confirm, rating });
    }
    out
}

enum Step {
    Create(usize),
    Respond(usize),
    Resolve(usize),
    Reopen(usize),
    Confirm(usize),
    Rate(usize),
    /// The scheduler's last run in the period.
    Tick,
}

/// Acceptance 1–3 on SQLite, with the page in Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_a_desk_is_reported_as_it_happened() {
    a_month(false).await;
}

/// Acceptance 1 on PostgreSQL: the same month, the same figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_a_desk_is_reported_the_same_on_postgresql() {
    a_month(true).await;
}

async fn a_month(pg: bool) {
    let w = World::new(
        "report",
        WorldOptions {
            pg,
            imap: false,
            outbound_smtp: false,
            agents: true,
            desk_extra: "[desk.sla]\nhours = { weekdays = \"08:00-16:00\" }\nresponse = \"1h\"\nresolution = \"16h\"\n"
                .into(),
            ..Default::default()
        },
    )
    .await;
    let (p, store) = pipeline(&w).await;
    let requester = |i: usize| w.addr(&format!("req{i}"));

    // The period: four weeks, Monday 6 July to Sunday 2 August 2026. Ticket 20 arrives before it
    // (answered, never resolved: its resolution clock breaches inside the period), ticket 21 after.
    let mut plans = plans();
    plans.push(Plan {
        at: wib("2026-07-01 10:00"),
        subject: NETWORK.0,
        body: NETWORK.1,
        respond: Some(10),
        ..Default::default()
    });
    plans.push(Plan { at: wib("2026-08-04 09:00"), subject: SISP.0, body: SISP.1, ..Default::default() });
    let (from, to) = (wib("2026-07-06 00:00"), wib("2026-08-03 00:00"));

    let mut steps: Vec<(i64, Step)> = Vec::new();
    for (i, pl) in plans.iter().enumerate() {
        steps.push((pl.at, Step::Create(i)));
        if let Some(r) = pl.respond {
            steps.push((pl.at + r * 60_000, Step::Respond(i)));
        }
        if let Some(s) = pl.resolve {
            let resolved = pl.at + s * 60_000;
            steps.push((resolved, Step::Resolve(i)));
            let mut last = resolved;
            if let Some((a, b)) = pl.reopen {
                steps.push((resolved + a * 60_000, Step::Reopen(i)));
                last = resolved + (a + b) * 60_000;
                steps.push((last, Step::Resolve(i)));
            }
            if pl.confirm {
                steps.push((last + 30 * 60_000, Step::Confirm(i)));
                if pl.rating.is_some() {
                    steps.push((last + 45 * 60_000, Step::Rate(i)));
                }
            }
        }
    }
    steps.push((to - 60_000, Step::Tick));
    steps.sort_by_key(|(t, s)| (*t, matches!(s, Step::Create(_)) as u8 ^ 1));

    let mut ledger: Vec<Ledger> = vec![Ledger::default(); plans.len()];
    let last_to = |store: store::Store, number: String, agent: String| async move {
        outbound(&store, &number)
            .await
            .into_iter()
            .rev()
            .find(|(_, to, _, _)| to.contains(&agent))
            .unwrap_or_else(|| panic!("{number}: nothing sent to {agent}"))
            .2
    };
    let mut n = 0;
    for (at, step) in steps {
        // The scheduler runs before each step in the period (after it, nothing is scheduled: the
        // report is made as of the period's end plus the one late ticket).
        if at < to {
            p.sla_tick(at).await.unwrap();
        }
        n += 1;
        let tag = |i: usize, l: &Ledger| format!("Re: [#{}] {}", l.number, plans[i].subject);
        let mid = format!("{}-{n}@example.test", w.tag);
        match step {
            Step::Create(i) => {
                let m = mail(&requester(i), &w.desk_addr, plans[i].subject, &mid, "", plans[i].body);
                let number = p.process("hero", &m, at).await.unwrap().ticket.unwrap();
                let t = ticket(&store, &number).await;
                let triage = t.category == "triage";
                assert_eq!(triage, plans[i].subject == VAGUE.0, "{number}: routed to {}/{}", t.category, t.subcategory);
                ledger[i] = Ledger {
                    number: number.to_string(),
                    created: at,
                    category: t.category.clone(),
                    subcategory: t.subcategory.clone(),
                    triage,
                    segments: vec![(at, None)],
                    ..Default::default()
                };
            }
            Step::Respond(i) => {
                let l = &mut ledger[i];
                // Service Desk (Agus) holds network tickets and triage; Tim Aplikasi (Sari) SISP.
                let (agent, name, command) = if l.triage {
                    ("agent1", None, "#category aplikasi/sisp\nSaya teruskan ke Tim Aplikasi.".to_string())
                } else if l.category == "aplikasi" {
                    ("agent2", Some("Sari"), "#assign Sari\nSedang kami periksa.".to_string())
                } else {
                    ("agent1", Some("Agus"), "#assign Agus\nSedang kami periksa.".to_string())
                };
                let token_of = last_to(store.clone(), l.number.clone(), w.agent(agent)).await;
                let m = mail(
                    &w.agent(agent),
                    &w.desk_addr,
                    "Re:",
                    &mid,
                    &format!("In-Reply-To: <{token_of}>\r\n"),
                    &command,
                );
                p.process("hero", &m, at).await.unwrap();
                let t = ticket(&store, &l.number).await;
                assert!(t.first_response_at.is_some(), "{}: responded", l.number);
                l.responded = Some(at);
                l.assignee_name = name.map(Into::into);
                if l.triage {
                    assert_eq!((t.category.as_str(), t.subcategory.as_str()), ("aplikasi", "sisp"));
                }
                l.group_name = Some(if t.category == "aplikasi" { "Tim Aplikasi" } else { "Service Desk" }.to_string());
            }
            Step::Resolve(i) => {
                let l = &mut ledger[i];
                let agent = if ticket(&store, &l.number).await.category == "aplikasi" { "agent2" } else { "agent1" };
                let token_of = last_to(store.clone(), l.number.clone(), w.agent(agent)).await;
                let m = mail(
                    &w.agent(agent),
                    &w.desk_addr,
                    "Re:",
                    &mid,
                    &format!("In-Reply-To: <{token_of}>\r\n"),
                    "#resolve Sudah kami perbaiki, silakan dicoba kembali.",
                );
                p.process("hero", &m, at).await.unwrap();
                assert_eq!(ticket(&store, &l.number).await.status.as_str(), "resolved", "{}", l.number);
                l.segments.last_mut().unwrap().1 = Some(at);
                l.resolved_final = Some(at);
            }
            Step::Reopen(i) => {
                let l = &mut ledger[i];
                let m = mail(&requester(i), &w.desk_addr, &tag(i, l), &mid, "", "Masih error, belum bisa dipakai.");
                p.process("hero", &m, at).await.unwrap();
                assert_eq!(ticket(&store, &l.number).await.status.as_str(), "open", "{} reopened", l.number);
                l.segments.push((at, None));
                l.resolved_final = None;
                l.reopened = true;
            }
            Step::Confirm(i) => {
                let l = &mut ledger[i];
                let m = mail(&requester(i), &w.desk_addr, &tag(i, l), &mid, "", "Ya, sudah jelas. Terima kasih.");
                p.process("hero", &m, at).await.unwrap();
                assert_eq!(ticket(&store, &l.number).await.status.as_str(), "closed", "{} closed", l.number);
                l.asked = true;
            }
            Step::Tick => {}
            Step::Rate(i) => {
                let l = &mut ledger[i];
                let r = plans[i].rating.unwrap();
                let m = mail(&requester(i), &w.desk_addr, &tag(i, l), &mid, "", &format!("{r} terima kasih"));
                p.process("hero", &m, at).await.unwrap();
                assert_eq!(ticket(&store, &l.number).await.rating.map(i64::from), Some(r), "{} rated", l.number);
                l.rating = Some(r);
            }
        }
    }
    // Resolved tickets nobody confirmed close by themselves 7 days on (and ask for a rating);
    // the resolution targets the clocks were given.
    for l in &mut ledger {
        if l.resolved_final.is_some_and(|r| r + 7 * 86_400_000 <= to - 60_000) {
            l.asked = true;
        }
        let t = ticket(&store, &l.number).await;
        let clocks = store::sla::clocks_of(store.pool(), t.id).await.unwrap();
        l.resolution_target_min =
            clocks.iter().find(|c| c.clock.kind == loket::sla::ClockKind::Resolution).unwrap().clock.target_ms / 60_000;
    }

    // The report, through the real binary, as a supervisor runs it after the month.
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
            .arg("--config")
            .arg(&w.config_path)
            .args(["report", "--desk", "hero", "--from", "2026-07-06", "--to", "2026-08-02"])
            .args(args)
            .env("LOKET_TEST_TOKEN_SECRET", TOKEN_SECRET)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&run(&["--format", "json"])).unwrap();
    let s = &json["summary"];

    // Independent figures. The cohort: tickets received in the period.
    let cohort: Vec<&Ledger> = ledger.iter().filter(|l| l.created >= from && l.created < to).collect();
    assert_eq!(cohort.len(), 20);
    assert_eq!(s["received"], cohort.len());
    assert_eq!(s["received_by_channel"][0], serde_json::json!({"key": "email", "count": 20}));
    let resolved = ledger.iter().filter(|l| l.resolved_final.is_some_and(|r| r >= from && r < to)).count();
    assert_eq!(s["resolved"], resolved);
    let open_at_end: Vec<&Ledger> =
        ledger.iter().filter(|l| l.created < to && l.resolved_final.is_none_or(|r| r >= to)).collect();
    assert_eq!(s["open_at_end"], open_at_end.len());
    assert!(open_at_end.iter().any(|l| l.created < from), "the ticket carried into the period is open");

    // First response: a clock is measured once answered, or once past its hour (the two never
    // answered are, by now); in time within 60 working minutes.
    let resp: Vec<f64> = cohort.iter().filter_map(|l| l.responded.map(|r| working_min(l.created, r) as f64)).collect();
    let unanswered = cohort.iter().filter(|l| l.responded.is_none()).count();
    assert_eq!(unanswered, 2);
    let resp_in_time = resp.iter().filter(|m| **m < 60.0).count();
    assert_eq!(s["response"]["measured"], resp.len() + unanswered);
    assert_eq!(s["response"]["in_time"], resp_in_time);
    assert_eq!(s["response"]["compliance_pct"].as_f64(), pct(resp_in_time, resp.len() + unanswered));
    assert_eq!(s["response"]["median_min"].as_f64(), median(&resp).map(r1));
    assert_eq!(s["response"]["p90_min"].as_f64(), p90(&resp).map(r1));

    // Resolution: working minutes over the clock's segments against the clock's target.
    let reso_time = |l: &Ledger, end: i64| -> i64 {
        l.segments.iter().map(|(a, b)| working_min(*a, b.unwrap_or(end).min(end))).sum()
    };
    let now = Utc::now().timestamp_millis();
    let mut reso_times = Vec::new();
    let (mut reso_measured, mut reso_in_time) = (0, 0);
    for l in &cohort {
        if l.resolved_final.is_some() {
            let m = reso_time(l, i64::MAX);
            reso_times.push(m as f64);
            reso_measured += 1;
            if m < l.resolution_target_min {
                reso_in_time += 1;
            }
        } else if reso_time(l, now) >= l.resolution_target_min {
            reso_measured += 1;
        }
    }
    assert_eq!(s["resolution"]["measured"], reso_measured);
    assert_eq!(s["resolution"]["in_time"], reso_in_time);
    assert_eq!(s["resolution"]["median_min"].as_f64(), median(&reso_times).map(r1));
    assert_eq!(s["resolution"]["p90_min"].as_f64(), p90(&reso_times).map(r1));
    assert!(reso_in_time > 0 && reso_in_time < reso_measured, "the script has both: {reso_in_time}/{reso_measured}");

    // Satisfaction, reopenings, triage.
    let ratings: Vec<i64> = cohort.iter().filter_map(|l| l.rating).collect();
    assert!(ratings.len() >= 4, "{ratings:?}");
    let avg = (ratings.iter().sum::<i64>() as f64 / ratings.len() as f64 * 100.0).round() / 100.0;
    assert_eq!(s["satisfaction"]["ratings"], ratings.len());
    assert_eq!(s["satisfaction"]["average"].as_f64(), Some(avg));
    let dist: Vec<usize> = (1..=5).map(|k| ratings.iter().filter(|r| **r == k).count()).collect();
    assert_eq!(s["satisfaction"]["distribution"], serde_json::json!(dist));
    let asked = cohort.iter().filter(|l| l.asked).count();
    assert_eq!(s["satisfaction"]["asked"], asked);
    assert_eq!(s["satisfaction"]["response_rate_pct"].as_f64(), pct(ratings.len(), asked));
    let reopened: Vec<&str> = cohort.iter().filter(|l| l.reopened).map(|l| l.number.as_str()).collect();
    assert!(!reopened.is_empty());
    let ever_resolved = cohort.iter().filter(|l| l.segments.iter().any(|(_, b)| b.is_some())).count();
    assert_eq!(s["reopened"], reopened.len());
    assert_eq!(s["reopen_rate_pct"].as_f64(), pct(reopened.len(), ever_resolved));
    assert_eq!(json["reopened_tickets"], serde_json::json!(reopened));
    let triage: Vec<&&Ledger> = cohort.iter().filter(|l| l.triage).collect();
    assert_eq!(triage.len(), 2);
    let waits: Vec<f64> = triage.iter().filter_map(|l| l.responded.map(|r| working_min(l.created, r) as f64)).collect();
    assert_eq!(s["triage"]["tickets"], triage.len());
    assert_eq!(s["triage"]["moved"], waits.len());
    assert_eq!(s["triage"]["median_wait_min"].as_f64(), median(&waits).map(r1));

    // Per category and per agent.
    let mut by_cat: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_agent: BTreeMap<String, usize> = BTreeMap::new();
    for l in &cohort {
        let t = ticket(&store, &l.number).await;
        *by_cat.entry(t.category.clone()).or_default() += 1;
        *by_agent.entry(l.assignee_name.clone().unwrap_or_default()).or_default() += 1;
    }
    let rows = |k: &str, f: &dyn Fn(&serde_json::Value) -> String| -> BTreeMap<String, usize> {
        json[k].as_array().unwrap().iter().map(|r| (f(r), r["tickets"].as_u64().unwrap() as usize)).collect()
    };
    assert_eq!(rows("categories", &|r| r["key"].as_str().unwrap().to_string()), by_cat);
    assert_eq!(
        rows("agents", &|r| r["name"].as_str().map(str::to_string).unwrap_or_default()),
        by_agent,
        "agents by name; the unassigned row has none"
    );
    let sari = json["agents"].as_array().unwrap().iter().find(|r| r["name"] == "Sari").unwrap();
    let sari_resp: Vec<f64> = cohort
        .iter()
        .filter(|l| l.assignee_name.as_deref() == Some("Sari"))
        .filter_map(|l| l.responded.map(|r| working_min(l.created, r) as f64))
        .collect();
    assert_eq!(sari["response"]["median_min"].as_f64(), median(&sari_resp).map(r1));

    // The breaches: every clock that went past its target in the period, of any ticket.
    let mut expected: BTreeSet<(String, String, String)> = BTreeSet::new();
    for l in &ledger {
        let (resp_min, resp_over) = match l.responded {
            Some(r) => (working_min(l.created, r), working_min(l.created, r) - 60),
            None => (working_min(l.created, to), working_min(l.created, to) - 60),
        };
        if l.created < to && resp_min >= 60 {
            expected.insert((l.number.clone(), "response".into(), format!("{}", resp_over as f64)));
        }
        let end = l.resolved_final.map(|_| i64::MAX).unwrap_or(to);
        let m = reso_time(l, end);
        if l.created < to && m >= l.resolution_target_min && l.resolved_final.is_none_or(|r| r < to) {
            expected.insert((
                l.number.clone(),
                "resolution".into(),
                format!("{}", (m - l.resolution_target_min) as f64),
            ));
        }
    }
    let got: BTreeSet<(String, String, String)> = json["breaches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["number"].as_str().unwrap().into(),
                b["clock"].as_str().unwrap().into(),
                format!("{}", b["over_min"].as_f64().unwrap()),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert!(got.iter().any(|(n, _, _)| *n == ledger[20].number), "the carried-over ticket breached in the period");
    assert!(!json.to_string().contains(&ledger[21].number), "the ticket after the period is not in it");

    // Trend: four weeks, the received counts add up.
    let trend = json["trend"].as_array().unwrap();
    assert_eq!((json["trend_unit"].as_str(), trend.len()), (Some("week"), 4));
    assert!(trend.iter().all(|b| b["received"] == 5), "{trend:?}");

    // CSV: the documented columns, and the same figures.
    let csv = run(&["--format", "csv"]);
    assert_eq!(csv.lines().next().unwrap(), loket::report::COLUMNS.join(","));
    let total = csv.lines().find(|l| l.starts_with("total,")).unwrap();
    assert!(total.contains(&format!(",{},{},{},", cohort.len(), resp.len() + unanswered, resp_in_time)), "{total}");
    assert!(csv.contains(&format!("\nmeasure,open_at_end,{}", ",".repeat(14))), "{csv}");
    let bcsv = run(&["--format", "breaches-csv"]);
    assert_eq!(bcsv.lines().count(), expected.len() + 1);
    // The text table names services as the catalogue does.
    let table = run(&[]);
    assert!(table.contains("Aplikasi / SISP") && table.contains("Agus") && !table.contains("aplikasi/sisp"), "{table}");

    if pg {
        return; // the pages are the same; Chromium runs once, on the SQLite month
    }

    // Acceptance 3: both languages, no field name or raw id visible.
    let dir = artefacts();
    let mut pages = Vec::new();
    for lang in ["id", "en"] {
        let html = run(&["--format", "html", "--lang", lang]);
        let text = visible_text(&html);
        let words: &[&str] = if lang == "id" {
            &["Laporan Layanan", "Tanggapan pertama tepat waktu", "Aplikasi / SISP", "Tim Aplikasi", "Belum ditugaskan"]
        } else {
            &["Service Report", "First response in time", "Aplikasi / SISP", "Tim Aplikasi", "Not assigned"]
        };
        for wd in words {
            assert!(text.contains(wd), "{lang}: `{wd}` missing");
        }
        for l in &ledger[..21] {
            assert!(l.created >= to || !l.reopened || text.contains(&l.number));
        }
        let raw: BTreeSet<String> = ledger
            .iter()
            .flat_map(|l| [l.category.clone(), l.subcategory.clone(), format!("{}/{}", l.category, l.subcategory)])
            .chain(["email", "l1", "apps", "triage", "unknown", "0-1d", "14d+"].map(String::from))
            .chain(["agent1", "agent2"].map(|a| w.agent(a)))
            .collect();
        for token in text.split(|c: char| c.is_whitespace() || ",;:()·".contains(c)) {
            let token = token.trim_end_matches('.');
            assert!(!token.contains('_'), "{lang}: field name `{token}` visible");
            assert!(!raw.contains(token), "{lang}: raw id `{token}` visible");
            assert!(!["null", "none", "None", "undefined", "NaN"].contains(&token), "{lang}: `{token}`");
        }
        let path = dir.join(format!("report-{lang}.html"));
        std::fs::write(&path, &html).unwrap();
        pages.push(path);
    }

    // Acceptance 2: headless Chromium at a phone's width and A4's; screenshots kept; nothing
    // overflows sideways (and the check does catch a page that does).
    for page in &pages {
        let stem = page.file_stem().unwrap().to_string_lossy().to_string();
        for width in [390, 794] {
            let shot = dir.join(format!("{stem}-{width}.png"));
            let (viewport, scroll, over) = layout(page, width, "", Some(&shot));
            let png = std::fs::read(&shot).expect("screenshot written");
            assert!(png.starts_with(b"\x89PNG") && png.len() > 5000, "a real screenshot");
            println!("screenshot: {}", shot.display());
            assert_eq!(viewport, width, "the page is laid out at {width} px");
            assert!(
                scroll <= width && over.is_empty(),
                "{stem} at {width} px: scrollWidth {scroll}, overflowing: {over:?}"
            );
        }
        let pdf = dir.join(format!("{stem}.pdf"));
        chromium(&["--no-pdf-header-footer", &format!("--print-to-pdf={}", pdf.display())], page);
        assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"), "printed on A4");
        println!("pdf: {}", pdf.display());
    }
    let (_, scroll, over) = layout(&pages[0], 390, "<div style=\"width:1200px\">lebar</div>", None);
    assert!(scroll > 390 && !over.is_empty(), "the check sees a wide element: {scroll} {over:?}");
}

/// Where the report's pages, screenshots and PDFs are kept: `target/report-artefacts/`.
fn artefacts() -> PathBuf {
    let dir = repo().join("target/report-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The visible text of a page: what is outside tags, after the style sheet.
fn visible_text(html: &str) -> String {
    let body = html.split("</style>").last().unwrap();
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
    out.replace("&amp;", "&")
}

/// Runs Debian's headless Chromium on a local file and returns standard output.
pub(crate) fn chromium(extra: &[&str], page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("chromium (installed by scripts/testenv/install.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Lays `page` (with `extra` added to its body) out in a frame `width` px wide — headless
/// Chromium's window is at least 500 px wide, a frame can be narrower — optionally takes a
/// screenshot, and returns the frame's viewport width, the document's scroll width and the HTML
/// elements whose right edge passes the viewport. The measuring script is the wrapper's; the
/// report has none.
pub(crate) fn layout(page: &Path, width: u32, extra: &str, shot: Option<&Path>) -> (u32, u32, Vec<String>) {
    let copy =
        page.with_file_name(format!("frame-{}-{}.html", page.file_stem().unwrap().to_string_lossy(), extra.len()));
    std::fs::write(&copy, std::fs::read_to_string(page).unwrap().replace("</body>", &format!("{extra}</body>")))
        .unwrap();
    let height = if shot.is_some() { 3200 } else { 900 };
    let wrapper = format!(
        r#"<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="{src}" style="width:{width}px;height:{height}px;border:0;display:block"></iframe><pre id="out"></pre>
<script>
window.addEventListener('load', () => {{
  const d = document.getElementById('f').contentDocument;
  const w = d.documentElement.clientWidth;
  const svg = 'http://www.w3.org/2000/svg';
  const over = [...d.body.querySelectorAll('*')]
    .filter(e => e.namespaceURI !== svg || e.localName === 'svg')
    .filter(e => e.getBoundingClientRect().right > w + 0.5)
    .map(e => e.localName + '.' + e.className + '@' + Math.round(e.getBoundingClientRect().right));
  document.getElementById('out').textContent = 'OVER' + 'FLOW ' + w + ' ' + d.documentElement.scrollWidth + ' ' + over.slice(0, 8).join(' ');
}});
</script></body></html>"#,
        src = copy.file_name().unwrap().to_string_lossy()
    );
    let frame = page.with_file_name(format!("wrapper-{width}-{}.html", extra.len()));
    std::fs::write(&frame, wrapper).unwrap();
    let window = format!("--window-size={},{height}", width.max(500) + 10);
    let dom =
        chromium(&["--allow-file-access-from-files", "--virtual-time-budget=5000", &window, "--dump-dom"], &frame);
    if let Some(shot) = shot {
        let _ = std::fs::remove_file(shot);
        chromium(
            &[
                "--allow-file-access-from-files",
                "--virtual-time-budget=5000",
                &window,
                &format!("--screenshot={}", shot.display()),
            ],
            &frame,
        );
    }
    let line = dom
        .split("OVERFLOW ")
        .nth(1)
        .unwrap_or_else(|| panic!("the probe ran: {dom}"))
        .split("</pre>")
        .next()
        .unwrap()
        .to_string();
    let mut parts = line.split_whitespace();
    let viewport = parts.next().unwrap().parse().unwrap();
    let scroll = parts.next().unwrap().parse().unwrap();
    (viewport, scroll, parts.map(String::from).collect())
}
