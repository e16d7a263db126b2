//! SLA clock (issue 5): deadlines on each seed desk's calendar (the repository's `loket.toml`),
//! the priority matrix, pause and resume, and the scheduler with an injected clock against the
//! private Dovecot and Postfix.

use chrono::{DateTime, Duration, TimeZone, Utc};
use loket::catalogue::Fulfilment;
use loket::config::Config;
use loket::domain::{Impact, Priority, TicketType};
use loket::pipeline::Action;
use loket::sla::{Clock, ClockKind, SlaState};
use loket::store;

use crate::harness::*;

fn repo_config() -> Config {
    Config::load(&repo().join("loket.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn wib(s: &str) -> DateTime<Utc> {
    let tz: chrono_tz::Tz = "Asia/Jakarta".parse().unwrap();
    tz.from_local_datetime(&chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn response_due(desk: &str, at: &str) -> DateTime<Utc> {
    let c = repo_config();
    let sla = c.desk(desk).unwrap().sla.clone().unwrap();
    sla.response_calendar.add(wib(at), sla.response_target(loket::domain::Channel::Email))
}

#[test]
fn response_deadlines_on_each_desks_calendar() {
    // Jateng, Friday afternoon: 10 minutes, but Friday closes at 14:00 → Monday 07:05.
    assert_eq!(response_due("jateng", "2026-01-09 13:55"), wib("2026-01-12 07:05"));
    // Jateng, Thursday within hours.
    assert_eq!(response_due("jateng", "2026-01-08 15:00"), wib("2026-01-08 15:10"));
    // Jateng, weekend intake → Monday 07:10.
    assert_eq!(response_due("jateng", "2026-01-10 09:00"), wib("2026-01-12 07:10"));
    // DJPb on the eve of a holiday: Wednesday 13 May 2026 15:30 + 1 working hour; 14 May (Kenaikan)
    // and 15 May (cuti bersama) are closed, then the weekend → Monday 18 May 08:30.
    assert_eq!(response_due("djpb", "2026-05-13 15:30"), wib("2026-05-18 08:30"));
    // Pusintek, overnight intake (7x24 intake, 30 minutes of working time) → next day 08:30.
    assert_eq!(response_due("pusintek", "2026-01-19 22:00"), wib("2026-01-20 08:30"));
    // Pusintek across Idulfitri 2026 (20–24 March closed): Thursday 19 March is Nyepi too.
    assert_eq!(response_due("pusintek", "2026-03-17 16:45"), wib("2026-03-25 08:15"));
    // HERO, ordinary morning.
    assert_eq!(response_due("hero", "2026-07-06 09:00"), wib("2026-07-06 10:00"));
}

#[test]
fn every_cell_of_the_priority_matrix() {
    let c = repo_config();
    let sla = c.desk("djpb").unwrap().sla.clone().unwrap();
    let start = wib("2026-07-06 08:00"); // a Monday with no holiday for two weeks
    let expect = [
        ((Impact::High, Impact::High), Priority::P1, "2026-07-06 11:00"),
        ((Impact::High, Impact::Medium), Priority::P2, "2026-07-06 16:00"),
        ((Impact::High, Impact::Low), Priority::P3, "2026-07-07 16:00"),
        ((Impact::Medium, Impact::High), Priority::P2, "2026-07-06 16:00"),
        ((Impact::Medium, Impact::Medium), Priority::P3, "2026-07-07 16:00"),
        ((Impact::Medium, Impact::Low), Priority::P4, "2026-07-08 16:00"),
        ((Impact::Low, Impact::High), Priority::P3, "2026-07-07 16:00"),
        ((Impact::Low, Impact::Medium), Priority::P4, "2026-07-08 16:00"),
        ((Impact::Low, Impact::Low), Priority::P5, "2026-07-17 16:00"),
    ];
    for ((urgency, impact), prio, due) in expect {
        assert_eq!(sla.priority(Some(urgency), Some(impact)), Some(prio), "{urgency:?} × {impact:?}");
        let target = sla.resolution_target(Some(TicketType::Incident), Some(prio), None);
        assert_eq!(sla.working.add(start, target), wib(due), "{prio}");
    }
    // Unknown urgency counts as medium.
    assert_eq!(sla.priority(None, Some(Impact::High)), Some(Priority::P2));
    // Requests take the catalogue's fulfilment time: Pusintek password reset, 4 working hours.
    let p = c.desk("pusintek").unwrap();
    let ful = p.catalogue.subcategory("itsm_8_akun", "reset_password").unwrap().fulfilment;
    assert_eq!(ful, Some(Fulfilment::WorkingHours(4)));
    let psla = p.sla.clone().unwrap();
    let target = psla.resolution_target(Some(TicketType::Request), None, ful);
    assert_eq!(
        psla.working.add(wib("2026-07-06 15:00"), target),
        wib("2026-07-07 10:00"),
        "Pusintek works until 17:00"
    );
    // 2 working days at DJPb are 16 working hours.
    assert_eq!(
        sla.resolution_target(Some(TicketType::Request), None, Some(Fulfilment::WorkingDays(2))),
        Duration::hours(16)
    );
}

#[test]
fn pending_pauses_and_reopening_resumes() {
    let c = repo_config();
    let sla = c.desk("djpb").unwrap().sla.clone().unwrap();
    let cal = &sla.working;
    let ms = |s: &str| wib(s).timestamp_millis();
    let mut clock =
        Clock::start(ClockKind::Resolution, Duration::hours(8), Duration::hours(4), ms("2026-07-06 08:00"), false, cal);
    assert_eq!(clock.due_at, Some(ms("2026-07-06 16:00")));
    assert_eq!(clock.next_check_at, Some(ms("2026-07-06 12:00")), "the warning comes first");
    clock.pause(ms("2026-07-06 10:00"), cal);
    assert_eq!((clock.consumed_ms, clock.due_at, clock.next_check_at), (2 * 3_600_000, None, None));
    assert_eq!(clock.state_at(ms("2026-07-10 10:00"), cal), SlaState::Ok, "paused time does not count");
    clock.resume(ms("2026-07-08 08:00"), cal);
    assert_eq!(clock.due_at, Some(ms("2026-07-08 14:00")));
    assert_eq!(clock.state_at(ms("2026-07-08 12:30"), cal), SlaState::Warning);
    clock.stop(ms("2026-07-08 13:00"), cal);
    assert_eq!(clock.state_at(ms("2026-07-20 13:00"), cal), SlaState::Warning, "stopped: no breach");
    clock.reopen(ms("2026-07-09 08:00"), cal);
    assert_eq!(clock.due_at, Some(ms("2026-07-09 09:00")), "reopening resumes where it stopped");
}

/// Acceptance 2: the scheduler with an injected clock: warnings and breaches fire once each, the
/// supervisor's mailbox (Dovecot) receives the escalation, and nothing fires again after a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_fires_once_and_escalates_by_email() {
    let _smtp = MAIL_SERVERS.read().await;
    let w = World::new(
        "sched",
        WorldOptions {
            imap: false,
            agents: true,
            desk_extra: format!(
                "[desk.sla]\nhours = {{ weekdays = \"08:00-16:00\" }}\nholidays = [\"{}\"]\nresponse = \"1h\"\nresolution = \"16h\"\nresolution_warning = \"8h\"\n",
                repo().join("seeds/holidays-id.toml").display()
            ),
            ..Default::default()
        },
    )
    .await;
    let (p, store) = pipeline(&w).await;
    let t0 = wib("2026-07-06 09:00").timestamp_millis();
    let m = mail(
        &w.addr("budi"),
        &w.desk_addr,
        "Internet putus",
        &format!("{}-1@example.test", w.tag),
        "",
        "Jaringan internet di ruangan saya putus.",
    );
    let o = p.process("hero", &m, t0).await.unwrap();
    assert_eq!(o.action, Action::Created);
    let number = o.ticket.unwrap();
    let t = ticket(&store, &number).await;
    let ack = outbound(&store, &number).await.into_iter().find(|(k, _, _, _)| k == "acknowledgement").unwrap().3;
    assert!(ack.contains("paling lambat Senin, 6 Juli 2026 pukul 10.00 WIB"), "{ack}");

    let hour = 3_600_000;
    // 09:40: nothing due yet. 09:50: response warning (75 % of 1 h). 10:05: response breach.
    assert_eq!(p.sla_tick(t0 + 40 * 60_000).await.unwrap().fired(), 0);
    let r = p.sla_tick(t0 + 50 * 60_000).await.unwrap();
    assert_eq!((r.warnings, r.breaches), (1, 0));
    let r = p.sla_tick(t0 + hour + 5 * 60_000).await.unwrap();
    assert_eq!((r.warnings, r.breaches), (0, 1));
    // The same moment again, and a new scheduler on the same store ("restart"): nothing fires.
    assert_eq!(p.sla_tick(t0 + hour + 6 * 60_000).await.unwrap().fired(), 0);
    let (p2, _) = pipeline(&w).await;
    assert_eq!(p2.sla_tick(t0 + hour + 7 * 60_000).await.unwrap().fired(), 0);
    // Resolution of this incident (medium urgency, low impact → P4, 24 working hours): warning
    // after 8 working hours (Tuesday 09:00), breach after 24 (Thursday 09:00).
    assert_eq!((t.ticket_type.map(|v| v.as_str()), t.priority.map(|v| v.as_str())), (Some("incident"), Some("P4")));
    let r = p2.sla_tick(wib("2026-07-07 09:01").timestamp_millis()).await.unwrap();
    assert_eq!((r.warnings, r.breaches), (1, 0));
    assert_eq!(p2.sla_tick(wib("2026-07-08 16:00").timestamp_millis()).await.unwrap().fired(), 0);
    let r = p2.sla_tick(wib("2026-07-09 09:01").timestamp_millis()).await.unwrap();
    assert_eq!((r.warnings, r.breaches), (0, 1));
    assert_eq!(p2.sla_tick(wib("2026-07-20 09:00").timestamp_millis()).await.unwrap().fired(), 0);
    let events: Vec<String> =
        store::ticket_events(store.pool(), t.id).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(events.iter().filter(|k| *k == "sla_warning").count(), 2);
    assert_eq!(events.iter().filter(|k| *k == "sla_breached").count(), 2);

    // Deliver the outbox over SMTP: the supervisor's mailbox gets the two breach escalations.
    let cfg = w.config();
    let worker = loket::outbox::OutboxWorker::new(
        &cfg.outbound,
        store.clone(),
        Default::default(),
        std::sync::Arc::new(tokio::sync::Notify::new()),
        "test".into(),
    )
    .unwrap();
    while worker.deliver_due().await.unwrap() > 0 {}
    let boss = wait_mailbox(&w.agent("boss"), "INBOX", 2).await;
    let subjects: Vec<String> = boss.iter().map(|m| parsed(m).subject).collect();
    assert!(subjects.iter().all(|s| s.contains("SLA TERLAMPAUI") && s.contains(number.as_str())), "{subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("tanggapan")) && subjects.iter().any(|s| s.contains("penyelesaian")));
    // The layer-1 agent got both warnings and both breaches.
    assert_eq!(
        wait_mailbox(&w.agent("agent1"), "INBOX", 5).await.len(),
        5,
        "new-ticket notice, 2 warnings, 2 breaches"
    );
}

/// Resolved tickets auto-close with a notice when the requester stays silent through the reopen
/// window; the first agent action stops the response clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_close_after_the_reopen_window() {
    let w = World::new(
        "autoclose",
        WorldOptions {
            imap: false,
            outbound_smtp: false,
            agents: true,
            desk_extra: "[desk.sla]\nhours = { weekdays = \"08:00-16:00\" }\nresponse = \"1h\"\n".into(),
            ..Default::default()
        },
    )
    .await;
    let (p, store) = pipeline(&w).await;
    let t0 = wib("2026-07-06 09:00").timestamp_millis();
    let m = mail(
        &w.addr("budi"),
        &w.desk_addr,
        "Internet putus",
        &format!("{}-1@example.test", w.tag),
        "",
        "Jaringan internet putus.",
    );
    let number = p.process("hero", &m, t0).await.unwrap().ticket.unwrap();
    let notif = outbound(&store, &number).await.into_iter().find(|(k, _, _, _)| k == "agent_notification").unwrap().2;
    let r = mail(
        &w.agent("agent1"),
        &w.desk_addr,
        "Re:",
        &format!("{}-a@desk.test", w.tag),
        &format!("In-Reply-To: <{notif}>\r\n"),
        "#resolve Kabel sudah diganti.",
    );
    p.process("hero", &r, t0 + 10 * 60_000).await.unwrap();
    let t = ticket(&store, &number).await;
    assert_eq!(t.status.as_str(), "resolved");
    let clocks = store::sla::clocks_of(store.pool(), t.id).await.unwrap();
    assert!(clocks.iter().all(|c| c.clock.stopped_at.is_some() && c.clock.state == SlaState::Ok), "{clocks:?}");
    let day = 86_400_000;
    assert_eq!(p.sla_tick(t0 + 6 * day).await.unwrap().auto_closed, 0);
    assert_eq!(p.sla_tick(t0 + 7 * day + 11 * 60_000).await.unwrap().auto_closed, 1);
    assert_eq!(p.sla_tick(t0 + 8 * day).await.unwrap().auto_closed, 0);
    let t = ticket(&store, &number).await;
    assert_eq!(t.status.as_str(), "closed");
    assert!(outbound(&store, &number).await.iter().any(|(k, _, _, b)| k == "auto_closed" && b.contains("7 hari")));

    // The CLI shows the clocks and reports compliance.
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
            .arg("--config")
            .arg(&w.config_path)
            .args(args)
            .env("LOKET_TEST_TOKEN_SECRET", TOKEN_SECRET)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let show: serde_json::Value = serde_json::from_str(&run(&["tickets", "show", &number, "--json"])).unwrap();
    let sla = show["sla"].as_array().unwrap();
    assert_eq!(sla.len(), 2);
    assert!(sla.iter().all(|c| c["state"] == "ok" && c["stopped_at"].is_i64()), "{sla:?}");
    let text = run(&["tickets", "show", &number]);
    assert!(text.contains("SLA:") && text.contains("response"), "{text}");
    let report: serde_json::Value = serde_json::from_str(&run(&[
        "report",
        "--desk",
        "hero",
        "--from",
        "2026-07-01",
        "--to",
        "2026-07-31",
        "--format",
        "json",
    ]))
    .unwrap();
    let total = &report["summary"];
    assert_eq!(total["received"].as_i64(), Some(1));
    assert_eq!(total["response"]["compliance_pct"].as_f64(), Some(100.0));
    assert_eq!(total["response"]["median_min"].as_f64(), Some(10.0));
    let html = run(&["report", "--desk", "hero", "--from", "2026-07-01", "--to", "2026-07-31", "--format", "html"]);
    assert!(html.contains("<svg") && html.contains("</html>"));
    let csv = run(&["report", "--desk", "hero", "--from", "2026-07-01", "--to", "2026-07-31", "--format", "csv"]);
    assert!(csv.lines().next().unwrap().starts_with("section,key,name,tickets"));
    let empty = run(&["report", "--desk", "hero", "--from", "2025-01-01", "--to", "2025-01-31"]);
    assert!(empty.contains("Received        0 (email 0"), "nothing received: {empty}");
}
