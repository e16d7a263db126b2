//! The `loket` command line: serve, ingest, check-config, tickets, quarantine, migrate.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use loket::config::Config;
use loket::pipeline::Action;
use loket::serve::{App, serve};
use loket::store::{self, Store, TicketFilter};
use tokio_util::sync::CancellationToken;

/// sysexits.h codes the MTA understands.
const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_IOERR: u8 = 74;
const EX_TEMPFAIL: u8 = 75;
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(name = "loket", version, about = "Ticket gateway daemon for IT service desks")]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, env = "LOKET_CONFIG", default_value = "loket.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch every inbox and deliver the outbox until SIGTERM.
    Serve {
        /// Seconds to let work in hand finish after SIGTERM.
        #[arg(long, default_value_t = 20)]
        drain_secs: u64,
    },
    /// Take one raw message from FILE or standard input (for an MTA pipe); prints one JSON line.
    Ingest {
        /// Inbox the message arrived at.
        #[arg(long)]
        inbox: String,
        file: Option<PathBuf>,
    },
    /// Check the configuration, catalogues and templates; report every problem.
    CheckConfig,
    /// Apply database migrations and exit.
    Migrate,
    /// Inspect tickets.
    Tickets {
        #[command(subcommand)]
        command: TicketsCommand,
    },
    /// Test, explain and evaluate the routing rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Service-level report for one desk: compliance, median times, satisfaction.
    Report {
        #[arg(long)]
        desk: String,
        /// First day (YYYY-MM-DD, desk time zone), inclusive.
        #[arg(long)]
        from: String,
        /// Last day (YYYY-MM-DD, desk time zone), inclusive.
        #[arg(long)]
        to: String,
        /// table, csv, json or html.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Inspect quarantined messages.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
}

#[derive(Subcommand)]
enum TicketsCommand {
    /// Newest tickets first.
    List {
        #[arg(long)]
        desk: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, default_value_t = 0)]
        offset: i64,
        #[arg(long)]
        json: bool,
    },
    /// One ticket with its messages and events.
    Show {
        number: String,
        #[arg(long)]
        json: bool,
    },
    /// Counts of tickets, messages, outbox states and quarantine.
    Stats,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Run the examples in the rules files; exits 1 on any mismatch.
    Test {
        #[arg(long)]
        desk: Option<String>,
    },
    /// Route one message (a raw email, or plain text) from FILE or standard input and show why.
    Explain {
        #[arg(long)]
        desk: String,
        file: Option<PathBuf>,
    },
    /// Route every message of a labelled JSON-lines file; one JSON line per message on standard
    /// output, the scores on standard error.
    Eval {
        #[arg(long)]
        input: PathBuf,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Ingest { .. });
    let filter = std::env::var("LOKET_LOG").unwrap_or_else(|_| if quiet { "warn".into() } else { "info".into() });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loket: cannot start the runtime: {e}");
            return ExitCode::from(EX_IOERR);
        }
    };
    rt.block_on(run(cli))
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("loket: {e}");
        ExitCode::from(EX_CONFIG)
    })
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CheckConfig => match Config::load(&cli.config) {
            Ok(c) => {
                println!(
                    "{}: ok ({} desk(s), {} inbox(es), templates in {})",
                    cli.config.display(),
                    c.desks.len(),
                    c.desks.iter().map(|d| d.inboxes.len()).sum::<usize>(),
                    c.templates.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("loket: {e}");
                ExitCode::from(EX_CONFIG)
            }
        },
        Command::Ingest { inbox, file } => ingest(&cli.config, &inbox, file).await,
        Command::Serve { drain_secs } => {
            let config = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let app = match App::open(config).await {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("loket: {e}");
                    return ExitCode::from(EX_TEMPFAIL);
                }
            };
            match serve(app, CancellationToken::new(), Duration::from_secs(drain_secs)).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("loket: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Migrate => {
            let config = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match Store::open(&config.storage).await {
                Ok(_) => {
                    println!("migrations applied");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("loket: {e}");
                    ExitCode::from(EX_TEMPFAIL)
                }
            }
        }
        Command::Tickets { command } => report(tickets(&cli.config, command).await),
        Command::Rules { command } => match rules(&cli.config, command) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("loket: {e:#}");
                ExitCode::from(EX_CONFIG)
            }
        },
        Command::Report { desk, from, to, format } => report(report_cmd(&cli.config, &desk, &from, &to, &format).await),
        Command::Quarantine { command: QuarantineCommand::List { limit } } => {
            report(quarantine_list(&cli.config, limit).await)
        }
    }
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loket: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn ingest(config: &std::path::Path, inbox: &str, file: Option<PathBuf>) -> ExitCode {
    let config = match load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.inbox(inbox).is_none() {
        let known: Vec<&str> = config.desks.iter().flat_map(|d| d.inboxes.iter().map(|i| i.name.as_str())).collect();
        eprintln!("loket: unknown inbox `{inbox}`; known: {}", known.join(", "));
        return ExitCode::from(EX_USAGE);
    }
    let max = config.limits.max_message_bytes;
    let mut raw = Vec::new();
    let read = match &file {
        Some(f) => std::fs::File::open(f).and_then(|h| h.take(max as u64 + 1).read_to_end(&mut raw)),
        None => std::io::stdin().lock().take(max as u64 + 1).read_to_end(&mut raw),
    };
    if let Err(e) = read {
        eprintln!("loket: cannot read the message: {e}");
        return ExitCode::from(EX_IOERR);
    }
    if raw.len() > max {
        eprintln!(
            "loket: message larger than limits.max_message_bytes ({max} bytes); refused so the MTA returns it to the sender"
        );
        return ExitCode::from(EX_DATAERR);
    }
    let app = match App::open(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loket: {e}");
            return ExitCode::from(EX_TEMPFAIL);
        }
    };
    match app.pipeline.process(inbox, &raw, loket::now_ms()).await {
        Ok(outcome) => {
            println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
            if outcome.action == Action::Created {
                tracing::debug!("acknowledgement queued; `loket serve` delivers it");
            }
            app.store.close().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loket: {e}");
            ExitCode::from(if e.is_temporary() { EX_TEMPFAIL } else { EX_USAGE })
        }
    }
}

fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()).unwrap_or_default()
}

async fn tickets(config: &std::path::Path, command: TicketsCommand) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    let store = Store::open(&config.storage).await.context("opening the store")?;
    match command {
        TicketsCommand::List { desk, status, limit, offset, json } => {
            let rows = store::list_tickets(store.pool(), &TicketFilter { desk, status, limit, offset }).await?;
            if json {
                for r in &rows {
                    println!("{}", serde_json::to_string(r)?);
                }
            } else {
                println!(
                    "{:<18} {:<8} {:<9} {:<40} {:<28} SUBJECT",
                    "NUMBER", "DESK", "STATUS", "CATEGORY", "REQUESTER"
                );
                for r in &rows {
                    let cat = format!("{}/{}", r.category, r.subcategory);
                    let subject: String = r.subject.chars().take(50).collect();
                    println!(
                        "{:<18} {:<8} {:<9} {:<40} {:<28} {}",
                        r.number, r.desk, r.status, cat, r.requester_address, subject
                    );
                }
            }
        }
        TicketsCommand::Show { number, json } => {
            let number = number.trim_start_matches('#').to_ascii_uppercase();
            let found = store::tickets_by_number(store.pool(), &number).await?;
            anyhow::ensure!(!found.is_empty(), "no ticket numbered {number}");
            for t in found {
                let messages = store::ticket_messages(store.pool(), t.id).await?;
                let events = store::ticket_events(store.pool(), t.id).await?;
                if json {
                    let clocks: Vec<_> =
                        store::sla::clocks_of(store.pool(), t.id).await?.into_iter().map(|c| c.clock).collect();
                    println!(
                        "{}",
                        serde_json::json!({ "ticket": t, "messages": messages, "events": events, "sla": clocks })
                    );
                    continue;
                }
                println!("Ticket #{} ({})", t.number, t.desk);
                println!("  status:    {}", t.status);
                println!("  category:  {}/{}", t.category, t.subcategory);
                println!("  type:      {}", t.ticket_type.map_or("-", |v| v.as_str()));
                println!("  requester: {} {}", t.requester_name.as_deref().unwrap_or(""), t.requester_address);
                println!("  subject:   {}", t.subject);
                println!("  created:   {}", fmt_time(t.created_at));
                println!("Messages:");
                for m in &messages {
                    println!(
                        "  {} {:<3} {:<16} {:<9} {} -> {} {}{}",
                        fmt_time(m.created_at),
                        m.direction,
                        m.kind,
                        m.action,
                        m.from_address.as_deref().unwrap_or("-"),
                        m.to_addresses.join(","),
                        m.subject,
                        m.delivery.as_deref().map(|d| format!(" [{d}]")).unwrap_or_default()
                    );
                    for a in &m.attachments {
                        println!(
                            "      attachment {} ({}, {} bytes)",
                            a.filename.as_deref().unwrap_or("-"),
                            a.content_type,
                            a.size
                        );
                    }
                }
                println!("Events:");
                for e in &events {
                    println!("  {} {:<24} {} via {} {}", fmt_time(e.at), e.kind, e.actor, e.channel, e.detail);
                }
                let clocks = store::sla::clocks_of(store.pool(), t.id).await?;
                if !clocks.is_empty() {
                    println!("SLA:");
                    for c in clocks {
                        let k = &c.clock;
                        let tz = config.desk(&t.desk).map(|d| d.tz).unwrap_or(chrono_tz::Asia::Jakarta);
                        let due = k
                            .due_at
                            .map(|d| loket::pipeline::human_time(d, tz, "en"))
                            .unwrap_or_else(|| if k.stopped_at.is_some() { "stopped".into() } else { "paused".into() });
                        println!(
                            "  {:<10} {:<8} due {:<44} used {} of {} min",
                            k.kind.as_str(),
                            k.state.as_str(),
                            due,
                            k.consumed_ms / 60_000,
                            k.target_ms / 60_000
                        );
                    }
                }
            }
        }
        TicketsCommand::Stats => {
            println!("{}", serde_json::to_string_pretty(&store::counts(store.pool()).await?)?);
        }
    }
    Ok(())
}

async fn quarantine_list(config: &std::path::Path, limit: i64) -> anyhow::Result<()> {
    let config = Config::load(config)?;
    let store = Store::open(&config.storage).await.context("opening the store")?;
    for q in store::list_quarantine(store.pool(), limit).await? {
        println!("{} {} {} {} bytes: {}", q.id, fmt_time(q.created_at), q.inbox, q.size, q.reason);
    }
    Ok(())
}

fn desk_inbox(desk: &loket::config::Desk) -> String {
    desk.inboxes.first().map(|i| i.address.clone()).unwrap_or_else(|| format!("{}@localhost", desk.id))
}

fn rules(config: &std::path::Path, command: RulesCommand) -> anyhow::Result<ExitCode> {
    use loket::routing::{RouteInput, eval};
    let config = Config::load(config)?;
    match command {
        RulesCommand::Test { desk } => {
            let mut total = 0;
            let mut failed = 0;
            for d in config.desks.iter().filter(|d| desk.as_deref().is_none_or(|x| x == d.id)) {
                let (n, failures) = eval::run_examples(&config.router, &d.catalogue, &desk_inbox(d));
                total += n;
                failed += failures.len();
                println!("{}: {} examples, {} failed", d.id, n, failures.len());
                for f in failures {
                    println!("  FAIL {}#{}: expected {}, got {} ({})", f.desk, f.index, f.expected, f.got, f.subject);
                }
            }
            anyhow::ensure!(desk.is_none() || total > 0, "no examples for desk {}", desk.unwrap_or_default());
            println!("{} passed, {} failed", total - failed, failed);
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        RulesCommand::Explain { desk, file } => {
            let d = config.desk(&desk).with_context(|| format!("unknown desk `{desk}`"))?;
            let mut raw = Vec::new();
            match file {
                Some(f) => raw = std::fs::read(&f).with_context(|| f.display().to_string())?,
                None => {
                    std::io::stdin().lock().take(16 * 1024 * 1024).read_to_end(&mut raw)?;
                }
            }
            let (subject, body, domain) = match loket::pipeline::parse::parse(&raw) {
                Ok(m) => (m.subject.clone(), m.text.clone(), m.from.map(|f| f.address.domain().to_string())),
                Err(_) => (String::new(), String::from_utf8_lossy(&raw).to_string(), None),
            };
            let inbox = desk_inbox(d);
            let decision = config.router.route(
                &d.catalogue,
                &RouteInput { subject: &subject, body: &body, sender_domain: domain.as_deref(), inbox_address: &inbox },
            );
            println!("route:      {}", decision.route());
            println!("type:       {}", decision.ticket_type.map(|t| t.as_str()).unwrap_or("-"));
            println!("impact:     {}", decision.impact.map(|t| t.as_str()).unwrap_or("-"));
            println!("confidence: {}", decision.confidence);
            println!("because:");
            for r in &decision.reasons {
                println!("  {r}");
            }
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Eval { input } => {
            let text = std::fs::read_to_string(&input).with_context(|| input.display().to_string())?;
            let mut metrics = eval::Metrics::default();
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let m: eval::Labelled = serde_json::from_str(line)
                    .with_context(|| format!("{} line {}: not a labelled message", input.display(), i + 1))?;
                let d = config
                    .desk(&m.desk)
                    .with_context(|| format!("{} line {}: unknown desk `{}`", input.display(), i + 1, m.desk))?;
                let (p, _) = eval::predict(&config.router, &d.catalogue, &desk_inbox(d), &m);
                println!("{}", serde_json::to_string(&p)?);
                if let Some(e) = &m.expected {
                    metrics.add(&p, e);
                }
            }
            eprintln!("{}", metrics.summary());
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn report_cmd(config: &std::path::Path, desk: &str, from: &str, to: &str, format: &str) -> anyhow::Result<()> {
    use chrono::{NaiveDate, TimeZone};
    let config = Config::load(config)?;
    let d = config.desk(desk).with_context(|| format!("unknown desk `{desk}`"))?;
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| format!("`{s}`: use YYYY-MM-DD"));
    let (f, t) = (day(from)?, day(to)? + chrono::Duration::days(1));
    anyhow::ensure!(f < t, "--from must not be after --to");
    let ms = |date: NaiveDate| {
        d.tz.from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .map(|x| x.timestamp_millis())
            .unwrap_or(0)
    };
    let store = Store::open(&config.storage).await.context("opening the store")?;
    let rows = store::sla::report_rows(store.pool(), desk, ms(f), ms(t)).await?;
    let groups = loket::report::build(&rows);
    match format {
        "table" => print!("{}", loket::report::table(&groups)),
        "csv" => print!("{}", loket::report::csv(&groups)),
        "json" => println!("{}", serde_json::to_string_pretty(&groups)?),
        "html" => print!("{}", loket::report::html(&format!("Laporan layanan {} {from} – {to}", d.name), &groups)),
        other => anyhow::bail!("unknown format `{other}`; use table, csv, json or html"),
    }
    Ok(())
}
