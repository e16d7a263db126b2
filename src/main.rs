//! The `loket` command line: serve, ingest, check-config, tickets, quarantine, migrate, oauth, api-key.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use loket::channel::maildir;
use loket::config::Config;
use loket::pipeline::{Action, Incoming};
use loket::serve::{App, serve};
use loket::store::{self, Store, TicketFilter};
use tokio_util::sync::CancellationToken;

/// sysexits.h codes the MTA understands.
const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_IOERR: u8 = 74;
const EX_TEMPFAIL: u8 = 75;
const EX_CONFIG: u8 = 78;

/// Standard output was closed by its reader (`loket tickets list | head -1`): the command stops
/// writing and exits 0, quietly, as other Unix tools do.
#[derive(Debug, thiserror::Error)]
#[error("standard output closed")]
struct PipeClosed;

/// The one way the CLI writes to standard output: a closed pipe becomes [`PipeClosed`] instead of
/// `println!`'s panic.
fn write_out(args: std::fmt::Arguments, newline: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) });
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(PipeClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to standard output")),
    }
}

/// `print!` that returns an error (see [`write_out`]) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => { write_out(format_args!($($t)*), false) };
}

/// `println!` that returns an error (see [`write_out`]) instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => { write_out(format_args!($($t)*), true) };
}

/// Where the configuration file was named: by default, `--config` or `LOKET_CONFIG`.
struct ConfigArg {
    path: PathBuf,
    source: Option<ValueSource>,
}

impl ConfigArg {
    /// Loads the configuration; a missing file names where Loket looked and how to point it
    /// elsewhere.
    fn load(&self) -> anyhow::Result<Config> {
        self.load_with(Config::load)
    }

    /// The file read as [`ConfigArg::load`] does, by `read` (which may create nothing, or
    /// load one desk); a missing file names where Loket looked and how to point it elsewhere.
    fn load_with(
        &self,
        read: impl FnOnce(&std::path::Path) -> Result<Config, loket::config::ConfigErrors>,
    ) -> anyhow::Result<Config> {
        if let Err(e) = std::fs::metadata(&self.path)
            && e.kind() == std::io::ErrorKind::NotFound
        {
            let shown = std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone());
            let named = match self.source {
                Some(ValueSource::CommandLine) => "named by --config".to_string(),
                Some(ValueSource::EnvVariable) => "named by LOKET_CONFIG".to_string(),
                _ => format!("the default, {} in the current directory", self.path.display()),
            };
            anyhow::bail!(
                "no configuration file at {} ({named}); run loket from the directory that holds loket.toml, or name the file with `--config PATH` or `LOKET_CONFIG=PATH`",
                shown.display()
            );
        }
        Ok(read(&self.path)?)
    }
}

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
        /// Message files, or directories of them (a Maildir: its `new/` and `cur/`), taken in
        /// one process and committed in batches of `limits.batch_messages`; without any, one
        /// message from standard input.
        files: Vec<PathBuf>,
    },
    /// Check the configuration, catalogues and templates, and open the store (without migrating);
    /// report every problem.
    CheckConfig {
        /// Do not open the store.
        #[arg(long)]
        offline: bool,
    },
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
    /// The service report of one desk for a period: summary, trends, categories, agents, breaches.
    Report {
        #[arg(long)]
        desk: String,
        /// First day (YYYY-MM-DD, desk time zone), inclusive.
        #[arg(long)]
        from: String,
        /// Last day (YYYY-MM-DD, desk time zone), inclusive.
        #[arg(long)]
        to: String,
        /// table, csv, breaches-csv, json or html.
        #[arg(long, default_value = "table")]
        format: String,
        /// Language of the HTML page: `id` or `en` (default: the desk's language).
        #[arg(long)]
        lang: Option<String>,
    },
    /// Inspect quarantined messages.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// Everything held about one person (subject access, UU 27/2022): their tickets with every
    /// message and event, mail from, to or naming them, files, chat identities; as JSON.
    Export {
        /// An email address, or a chat id `telegram:ID` / `whatsapp:NUMBER`.
        who: String,
        /// Write to FILE (made private, mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase one person (UU 27/2022 Pasal 8, 43): their tickets anonymised (numbers, categories,
    /// times, statuses and ratings kept), their addresses replaced everywhere, raw mail, files,
    /// participations and chat identities removed. Prints the counts; names no one.
    Forget {
        /// An email address, or a chat id `telegram:ID` / `whatsapp:NUMBER`.
        who: String,
        /// Required: erasure cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Apply every desk's `[desk.retention]` now (the daemon does it every hour): raw mail past
    /// its period purged, closed tickets past theirs anonymised. Prints the counts per desk.
    Retention,
    /// OAuth2 mailboxes (Microsoft 365, Google Workspace): sign in, and test each step.
    Oauth {
        #[command(subcommand)]
        command: OauthCommand,
    },
    /// Keys of the ticket API (`/api/v1`): make one (shown once), list them, revoke one.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Makes a key and prints it once (only its hash is kept): `loket api-key create --desk hero
    /// --scope write --name glpi`.
    Create {
        /// A desk the key may see (repeat for several).
        #[arg(long, required = true)]
        desk: Vec<String>,
        /// `read` (read tickets) or `write` (also open and change them).
        #[arg(long)]
        scope: String,
        /// Who uses the key (audit events name it).
        #[arg(long)]
        name: String,
    },
    /// Every key: id, name, desks, scope, when made and revoked (never the key).
    List,
    /// Revokes key ID: it is refused from the next call on.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum OauthCommand {
    /// Device-code sign-in for an inbox in refresh-token mode: prints the code and the URL, waits
    /// for the sign-in, stores the refresh token (encrypted).
    Login {
        #[arg(long)]
        inbox: String,
    },
    /// Stores a refresh token obtained elsewhere (Google Workspace: its device flow does not
    /// allow the Gmail scope), read from standard input, after checking it with one refresh.
    Import {
        #[arg(long)]
        inbox: String,
    },
    /// Tries each step of the inbox's OAuth login (token endpoint, scope, SASL exchange, mailbox
    /// access, and the SMTP relay when it uses OAuth) and names the first that fails, with the
    /// provider's or server's own words. Exits 1 on a failure.
    Test {
        #[arg(long)]
        inbox: String,
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
    /// Writes file N of a ticket (the numbers `tickets show` lists) to standard output:
    /// `loket tickets attachment A-HERO26000001 2 > file`.
    Attachment {
        number: String,
        n: i64,
        /// The desk, when several desks have a ticket with this number.
        #[arg(long)]
        desk: Option<String>,
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
        /// The rules alone, without the second opinion: why the rules chose a route the opinion
        /// held for a person.
        #[arg(long)]
        rules_only: bool,
    },
    /// Route every message of a labelled JSON-lines file; one JSON line per message on standard
    /// output, the scores (overall and per desk) on standard error.
    Eval {
        #[arg(long)]
        input: PathBuf,
        /// Labelled JSON-lines files to learn a second opinion from (one model per desk), in
        /// place of the one the router learns from `rules/labelled/`: the scores then show the
        /// rules with that opinion, applied by the router as it applies its own: a route it
        /// clearly contradicts goes to triage ([`loket::routing::examples`]).
        #[arg(long)]
        learn: Vec<PathBuf>,
        /// The rules alone, without the second opinion the router learns from
        /// `rules/labelled/`.
        #[arg(long, conflicts_with = "learn")]
        rules_only: bool,
    },
    /// Report duplicated cues, unused sets, routes that can never win, routes without examples
    /// and ties on the examples; exits 1 on any finding.
    Lint {
        #[arg(long)]
        desk: Option<String>,
    },
    /// For each ticket an agent re-routed with `#category` (recorded in the store): the words and
    /// phrases of its first message that would have routed it right, each checked by re-running
    /// the router with the cue added, with the desk's examples it would break. Applies nothing.
    Suggest {
        #[arg(long)]
        desk: String,
        /// Only corrections recorded on or after this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The agents' recorded corrections (`#category`, `#type`, `#priority`).
    Corrections {
        #[command(subcommand)]
        command: CorrectionsCommand,
    },
}

#[derive(Subcommand)]
enum CorrectionsCommand {
    /// One labelled JSON line per corrected ticket (its labels after the latest correction), in
    /// the format of `rules eval --input`: `loket rules corrections export --desk D > c.jsonl`.
    Export {
        #[arg(long)]
        desk: String,
        /// Only corrections recorded on or after this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One quarantined message: why, where from, its audit entries and its headers (`--raw`:
    /// the whole stored message, byte-exact, on standard output).
    Show {
        id: i64,
        #[arg(long)]
        raw: bool,
    },
    /// Runs a quarantined message through the pipeline again, once (spam and DMARC screens
    /// skipped: you looked at it); prints what became of it.
    Release { id: i64 },
    /// Deletes a quarantined message's bytes, with an audit entry.
    Drop { id: i64 },
}

/// The daemon's allocator (`loket::allocator` says why).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    loket::allocator::configure();
    let matches = Cli::command().get_matches();
    let source = matches.value_source("config");
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if matches!(cli.command, Command::Serve { .. } | Command::Migrate | Command::Ingest { .. }) {
        // Everything the daemon creates (the SQLite store and its -wal/-shm, spool and mail
        // directories, secrets) is private to the service's user (issue #19).
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    }
    let ingest = matches!(cli.command, Command::Ingest { .. });
    let filter = std::env::var("LOKET_LOG").unwrap_or_else(|_| if ingest { "warn".into() } else { "info".into() });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // `ingest` handles its messages one after another: one thread, no worker pool to start.
    let rt = if ingest {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.max_blocking_threads(loket::allocator::blocking_threads(loket::allocator::cores()));
        b
    }
    .enable_all()
    .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loket: cannot start the runtime: {e}");
            return ExitCode::from(EX_IOERR);
        }
    };
    let config = ConfigArg { path: cli.config.clone(), source };
    rt.block_on(run(cli, config))
}

fn load_config(config: &ConfigArg) -> Result<Config, ExitCode> {
    load_config_with(config, Config::load)
}

/// [`load_config`] by `read` (which may create nothing, or load one desk).
fn load_config_with(
    config: &ConfigArg,
    read: impl FnOnce(&std::path::Path) -> Result<Config, loket::config::ConfigErrors>,
) -> Result<Config, ExitCode> {
    config.load_with(read).map_err(|e| {
        eprintln!("loket: {e:#}");
        ExitCode::from(EX_CONFIG)
    })
}

async fn run(cli: Cli, config: ConfigArg) -> ExitCode {
    match cli.command {
        Command::CheckConfig { offline } => check_config(&config, offline).await,
        Command::Ingest { inbox, files } => ingest(&config, &inbox, &files).await,
        Command::Serve { drain_secs } => {
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let db = store::file::sqlite_path(&config.storage.url);
            let app = match App::open(config).await {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("loket: {e}");
                    return ExitCode::from(EX_TEMPFAIL);
                }
            };
            // One `serve` per SQLite file, taken before the HTTP port is bound, so that a second
            // one names the first instead of failing on the port. PostgreSQL takes several.
            let _lock = match db.map(|p| store::file::lock_instance(&p)).transpose() {
                Ok(l) => l,
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
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match Store::open(&config.storage).await {
                Ok(_) => report(outln!("migrations applied")),
                Err(e) => {
                    eprintln!("loket: {e}");
                    ExitCode::from(EX_TEMPFAIL)
                }
            }
        }
        Command::Tickets { command } => report(tickets(&config, command).await),
        Command::Rules { command } => match match command {
            RulesCommand::Suggest { .. } | RulesCommand::Corrections { .. } => rules_learned(&config, command).await,
            command => rules(&config, command),
        } {
            Ok(code) => code,
            Err(e) if e.is::<PipeClosed>() => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loket: {e:#}");
                ExitCode::from(EX_CONFIG)
            }
        },
        Command::Report { desk, from, to, format, lang } => {
            report(report_cmd(&config, &desk, &from, &to, &format, lang.as_deref()).await)
        }
        Command::Quarantine { command: QuarantineCommand::List { limit } } => {
            report(quarantine_list(&config, limit).await)
        }
        Command::Quarantine { command: QuarantineCommand::Show { id, raw } } => {
            report(quarantine_show(&config, id, raw).await)
        }
        Command::Quarantine { command: QuarantineCommand::Release { id } } => {
            report(quarantine_change(&config, id, true).await)
        }
        Command::Quarantine { command: QuarantineCommand::Drop { id } } => {
            report(quarantine_change(&config, id, false).await)
        }
        Command::Export { who, out } => report(export(&config, &who, out.as_deref()).await),
        Command::Forget { who, yes } => report(forget(&config, &who, yes).await),
        Command::Retention => report(retention(&config).await),
        Command::Oauth { command } => oauth(&config, command).await,
        Command::ApiKey { command } => report(api_key(&config, command).await),
    }
}

/// `loket api-key create|list|revoke`.
async fn api_key(config: &ConfigArg, command: ApiKeyCommand) -> anyhow::Result<()> {
    use loket::http::api::key;
    let config = config.load()?;
    let store = Store::open(&config.storage).await?;
    match command {
        ApiKeyCommand::Create { desk, scope, name } => {
            let Some(scope) = key::Scope::parse(&scope) else {
                anyhow::bail!("--scope {scope}: use read or write");
            };
            if let Some(d) = desk.iter().find(|d| config.desk(d).is_none()) {
                let known: Vec<_> = config.desks.iter().map(|d| d.id.as_str()).collect();
                anyhow::bail!("--desk {d}: no such desk; known: {}", known.join(", "));
            }
            let name = name.trim();
            anyhow::ensure!(!name.is_empty() && name.len() <= 100, "--name: 1 to 100 characters");
            let mut random = [0u8; key::SECRET_BYTES];
            getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let secret = key::secret_of(random);
            let id =
                store::api::insert_api_key(&store, name, &desk, scope, &key::hash(&secret), loket::now_ms()).await?;
            tracing::info!(key = id, scope = scope.as_str(), "api key created");
            outln!("{}", key::key_text(id, &secret))?;
            eprintln!("key {id} ({name}, {}, {}): shown once; only its hash is kept", scope.as_str(), desk.join(", "));
        }
        ApiKeyCommand::List => {
            let keys = store::api::api_keys(store.pool()).await?;
            if keys.is_empty() {
                eprintln!("no API keys");
            }
            for k in keys {
                let state = match k.revoked_at {
                    Some(at) => format!("revoked {}", fmt_time(at)),
                    None => "live".into(),
                };
                outln!(
                    "{}\t{}\t{}\t{}\t{}\t{state}",
                    k.id,
                    k.name,
                    k.desks.join(","),
                    k.scope.as_str(),
                    fmt_time(k.created_at)
                )?;
            }
        }
        ApiKeyCommand::Revoke { id } => {
            anyhow::ensure!(store::api::revoke_api_key(&store, id, loket::now_ms()).await?, "no live API key {id}");
            tracing::info!(key = id, "api key revoked");
            outln!("key {id} revoked")?;
        }
    }
    store.close().await;
    Ok(())
}

/// The addresses of the person `who` names (an address or a chat id), with their linked ones.
async fn person(store: &Store, who: &str) -> anyhow::Result<Vec<String>> {
    let Some(address) = loket::privacy::address_of(who) else {
        anyhow::bail!("`{who}` is neither an email address nor a chat id (telegram:ID, whatsapp:NUMBER)");
    };
    Ok(loket::store::privacy::person_addresses(store, &address).await?)
}

/// `loket export WHO [--out FILE]`.
async fn export(config: &ConfigArg, who: &str, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let config = config.load()?;
    let store = Store::open_read_only(&config.storage).await?;
    let addresses = person(&store, who).await?;
    let data = loket::store::privacy::export(&store, &addresses).await?;
    let text = serde_json::to_string_pretty(&data)?;
    store.close().await;
    match out {
        Some(path) => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            f.write_all(text.as_bytes())?;
            outln!(
                "{}: {} ticket(s), {} message(s)",
                path.display(),
                data["tickets"].as_array().map_or(0, Vec::len),
                data["messages"].as_array().map_or(0, Vec::len)
            )?;
        }
        None => outln!("{text}")?,
    }
    Ok(())
}

/// `loket retention`.
async fn retention(config: &ConfigArg) -> anyhow::Result<()> {
    let config = config.load()?;
    let store = Store::open(&config.storage).await?;
    for (desk, expired) in loket::store::privacy::expire_all(&store, &config, loket::now_ms()).await {
        outln!("{desk} {}", serde_json::to_string(&expired?)?)?;
    }
    sweep(&store, &config).await?;
    store.close().await;
    Ok(())
}

/// `loket forget WHO --yes`.
async fn forget(config: &ConfigArg, who: &str, yes: bool) -> anyhow::Result<()> {
    if !yes {
        anyhow::bail!(
            "erasure cannot be undone: run `loket export {who}` first if the person asked for a copy, then `loket forget {who} --yes`"
        );
    }
    let config = config.load()?;
    let store = Store::open(&config.storage).await?;
    let addresses = person(&store, who).await?;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let pseudonym = loket::privacy::pseudonym(random);
    let actor = format!("operator:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
    let erased = loket::store::privacy::forget(&store, &addresses, &pseudonym, &actor, loket::now_ms()).await?;
    // The log and the output name no one: the counts only.
    tracing::info!(?erased, "personal data erased");
    outln!("{}", serde_json::to_string(&erased)?)?;
    sweep(&store, &config).await?;
    store.close().await;
    Ok(())
}

/// The files no row names any more, older than `storage.files_grace_secs`, deleted (after
/// `forget` and `retention`, as the daemon does every hour); the counts in the log.
async fn sweep(store: &Store, config: &loket::config::Config) -> anyhow::Result<()> {
    let grace = std::time::Duration::from_secs(config.storage.files_grace_secs);
    let swept = loket::store::blobs::sweep(store, loket::now_ms(), grace).await?;
    tracing::info!(files = swept.files, deleted = swept.deleted, "unreferenced files swept");
    Ok(())
}

/// `loket oauth login|test --inbox NAME`.
async fn oauth(config: &ConfigArg, command: OauthCommand) -> ExitCode {
    use loket::oauth::config::Flow;
    let c = match load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let name = match &command {
        OauthCommand::Login { inbox } | OauthCommand::Import { inbox } | OauthCommand::Test { inbox } => inbox.clone(),
    };
    let Some((_, inbox)) = c.inbox(&name) else {
        eprintln!("loket: no inbox named `{name}` in {}", config.path.display());
        return ExitCode::from(EX_USAGE);
    };
    let env = |k: &str| std::env::var(k).ok();
    let imap_oauth = inbox.imap.as_ref().and_then(|i| i.oauth.as_ref().map(|o| (i, o)));
    let checked = match (imap_oauth, &inbox.graph) {
        (Some((imap, o)), _) => o.check(&imap.user, &env).map_err(|p| ("imap.oauth", p)),
        (_, Some(g)) => g.oauth(&inbox.address, &env).map_err(|p| ("graph", p)),
        _ => {
            eprintln!("loket: inbox `{name}` has no [desk.inbox.imap.oauth] or [desk.inbox.graph] block");
            return ExitCode::from(EX_USAGE);
        }
    };
    let checked = match checked {
        Ok(c) => c,
        Err((block, problems)) => {
            eprintln!("loket: inbox `{name}`: {block}: {}", problems.join("; "));
            return ExitCode::from(EX_CONFIG);
        }
    };
    let store = match Store::open(&c.storage).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loket: {e}");
            return ExitCode::from(EX_TEMPFAIL);
        }
    };
    match command {
        OauthCommand::Login { .. } => {
            if checked.flow != Flow::RefreshToken {
                eprintln!(
                    "loket: inbox `{name}` uses client credentials: there is nothing to sign in; try `loket oauth test --inbox {name}`"
                );
                return ExitCode::from(EX_USAGE);
            }
            report(oauth_login(&checked, &store).await)
        }
        OauthCommand::Import { .. } => {
            if checked.flow != Flow::RefreshToken {
                eprintln!("loket: inbox `{name}` uses client credentials: it keeps no refresh token");
                return ExitCode::from(EX_USAGE);
            }
            report(oauth_import(&checked, &store).await)
        }
        OauthCommand::Test { .. } => match oauth_test(&c, inbox, &checked, &store).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) if e.is::<PipeClosed>() => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loket: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn oauth_login(o: &loket::oauth::config::OAuth, store: &Store) -> anyhow::Result<()> {
    use loket::channel::oauth;
    let start = oauth::device_start(o).await.context("device code")?;
    outln!("To sign in {}, open {} and enter the code {}", o.user, start.verification_uri, start.user_code)?;
    if let Some(m) = &start.message {
        outln!("({m})")?;
    }
    outln!("Waiting for the sign-in; the code expires in {} minutes.", (start.expires_in + 59) / 60)?;
    oauth::device_finish(o, store, &start).await.context("sign-in")?;
    outln!("Signed in: the refresh token for {} is stored, encrypted.", o.user)?;
    Ok(())
}

async fn oauth_import(o: &loket::oauth::config::OAuth, store: &Store) -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::stdin().take(64 * 1024).read_to_string(&mut text).context("reading the refresh token")?;
    let token = text.trim();
    anyhow::ensure!(!token.is_empty(), "no refresh token on standard input");
    loket::channel::oauth::import_refresh_token(o, store, token).await.context("checking the refresh token")?;
    outln!("Stored: the refresh token for {} works and is kept, encrypted.", o.user)?;
    Ok(())
}

/// Prints one line per step; false at the first step that fails.
async fn oauth_test(
    c: &Config,
    inbox: &loket::config::InboxConfig,
    o: &loket::oauth::config::OAuth,
    store: &Store,
) -> anyhow::Result<bool> {
    use loket::channel::{imap as ch, oauth};
    use loket::oauth::token;
    let fail = |step: &str, why: &dyn std::fmt::Display| -> anyhow::Result<bool> {
        outln!("{step}: FAILED: {why}")?;
        Ok(false)
    };
    outln!("configuration: ok ({:?}, {:?}, {} as {})", o.provider, o.flow, o.token_url, o.user)?;
    let source = oauth::shared(o, store);
    let tok = match source.access_token().await {
        Ok(t) => t,
        Err(e) => return fail("token endpoint", &e),
    };
    let left = source.status().access_expires_ms.map(|e| (e - loket::now_ms()) / 1000).unwrap_or(0);
    outln!("token endpoint: ok (access token for {left} s)")?;
    if let Some(g) = &inbox.graph {
        return graph_test(c, g, o, source, &tok.0, store).await;
    }
    let Some(imap) = &inbox.imap else { return Ok(true) };
    match token::jwt_claims(&tok.0) {
        Some((aud, perms)) if !aud.contains("outlook.office") || !token::grants(&perms, "imap") => {
            let why = format!(
                "the token is for `{aud}` with [{}]; IMAP needs the resource https://outlook.office.com with                  IMAP.AccessAsApp (app) or IMAP.AccessAsUser.All (delegated): add the permission to the app                  registration and grant admin consent",
                perms.join(", ")
            );
            return fail("scope", &why);
        }
        Some((aud, perms)) => outln!("scope: ok ({aud}: {})", perms.join(", "))?,
        None => outln!("scope: ok (opaque token; the provider checks it at login)")?,
    }
    let login = ch::Login::OAuth(source);
    let step = format!("SASL exchange (IMAP AUTHENTICATE {} at {}:{})", o.mechanism.sasl_name(), imap.host, imap.port);
    let mut session = match ch::open_session(imap, &login).await {
        Ok(s) => s,
        Err(e) => return fail(&step, &e),
    };
    outln!("{step}: ok")?;
    match session.select(&imap.folder).await {
        Ok(m) => outln!("mailbox access: ok ({} holds {} message(s))", imap.folder, m.exists)?,
        Err(e) => return fail("mailbox access", &format!("SELECT {}: {e}", imap.folder)),
    }
    let _ = session.logout().await;
    if let Some((smtp, o)) = c.outbound.smtp.as_ref().and_then(|s| Some((s, s.oauth.as_ref()?))) {
        let step = format!("SMTP relay (AUTH {} at {}:{})", o.mechanism.sasl_name(), smtp.host, smtp.port);
        let t = loket::channel::transport::Transport::from_config(&c.outbound, store)?;
        match t.check().await {
            Ok(()) => outln!("{step}: ok")?,
            Err(e) => return fail(&step, &e),
        }
    }
    Ok(true)
}

/// `oauth test`'s steps after the token for a Graph inbox: the token's audience and roles, the
/// folder's delta query, and the `sendMail` transport's token when the outbox uses Graph.
async fn graph_test(
    c: &Config,
    g: &loket::config::GraphConfig,
    o: &loket::oauth::config::OAuth,
    source: std::sync::Arc<loket::channel::oauth::TokenSource>,
    token: &str,
    store: &Store,
) -> anyhow::Result<bool> {
    use loket::oauth::config::GRAPH_RESOURCE;
    let fail = |step: &str, why: &dyn std::fmt::Display| -> anyhow::Result<bool> {
        outln!("{step}: FAILED: {why}")?;
        Ok(false)
    };
    match loket::oauth::token::jwt_claims(token) {
        Some((aud, perms)) if !aud.contains("graph.microsoft.com") || !loket::oauth::token::grants(&perms, "graph") => {
            let why = format!(
                "the token is for `{aud}` with [{}]; a Graph inbox needs the resource {GRAPH_RESOURCE} with \
                 Mail.ReadWrite and Mail.Send: add the permissions to the app registration and grant admin consent",
                perms.join(", ")
            );
            return fail("scope", &why);
        }
        Some((aud, perms)) => outln!("scope: ok ({aud}: {})", perms.join(", "))?,
        None => outln!("scope: ok (opaque token; Graph checks it)")?,
    }
    let client = loket::channel::graph::GraphClient::new(g.endpoint.as_deref(), source);
    let step = format!("mailbox access (Graph delta of `{}` for {})", g.folder, o.user);
    match client.delta(&o.user, &g.folder, None).await {
        Ok((ids, _)) => outln!("{step}: ok ({} message(s) waiting)", ids.len())?,
        Err(e) => return fail(&step, &e),
    }
    if c.outbound.transport == loket::config::TransportKind::Graph {
        let t = loket::channel::transport::Transport::from_config(&c.outbound, store)?;
        match t.check().await {
            Ok(()) => outln!("sendMail transport: ok")?,
            Err(e) => return fail("sendMail transport", &e),
        }
    }
    Ok(true)
}

/// `check-config`: the file, catalogues, rules and templates, then the store (unless `offline`).
async fn check_config(config: &ConfigArg, offline: bool) -> ExitCode {
    // Checking creates nothing: not the store, not the token secret file.
    let c = match load_config_with(config, Config::load_to_check) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let line = outln!(
        "{}: ok ({} desk(s), {} inbox(es), templates in {})",
        config.path.display(),
        c.desks.len(),
        c.desks.iter().map(|d| d.inboxes.len()).sum::<usize>(),
        c.templates.display()
    );
    let line = line.and_then(|()| {
        if c.signer.is_none() && c.desks.iter().any(|d| !d.agents.is_empty()) {
            outln!("security.token_secret_file: not made yet; `loket serve` makes it (mode 0600)")
        } else {
            Ok(())
        }
    });
    if offline || line.is_err() {
        return report(line);
    }
    match Store::check(&c.storage).await {
        Ok(found) => {
            if let Err(e) = outln!("store {found}") {
                return report(Err(e));
            }
        }
        Err(e) => {
            eprintln!("loket: store: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    }
    match check_oauth(&c).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EX_CONFIG),
        Err(e) => report(Err(e)),
    }
}

/// `check-config`'s OAuth step: each client-credentials app asks its token endpoint for a token
/// (the provider's own words on failure); refresh-token credentials are left to `loket oauth
/// test`, which may spend and store a rotated token.
async fn check_oauth(c: &Config) -> anyhow::Result<bool> {
    use loket::oauth::config::Flow;
    let env = |k: &str| std::env::var(k).ok();
    let mut blocks = Vec::new();
    for (_, inbox) in c.desks.iter().flat_map(|d| d.inboxes.iter().map(move |i| (d, i))) {
        if let Some(imap) = &inbox.imap
            && let Some(o) = &imap.oauth
        {
            blocks.push((format!("inbox {}", inbox.name), o.check(&imap.user, &env)));
        }
    }
    for inbox in c.desks.iter().flat_map(|d| d.inboxes.iter()) {
        if let Some(g) = &inbox.graph {
            blocks.push((format!("inbox {} (graph)", inbox.name), g.oauth(&inbox.address, &env)));
        }
    }
    if let Some(smtp) = &c.outbound.smtp
        && let (Some(o), Some(user)) = (&smtp.oauth, &smtp.user)
    {
        blocks.push(("outbound.smtp".to_string(), o.check(user, &env)));
    }
    if let Some(g) = &c.outbound.graph {
        let checked = g.oauth(&env);
        blocks.push(("outbound.graph".to_string(), checked));
    }
    let mut ok = true;
    for (what, checked) in blocks {
        match checked {
            Err(problems) => {
                outln!("{what}: oauth: FAILED: {}", problems.join("; "))?;
                ok = false;
            }
            Ok(o) if o.flow == Flow::RefreshToken => {
                outln!("{what}: oauth: refresh-token mode; `loket oauth test` checks the stored grant")?
            }
            Ok(o) => match loket::channel::oauth::fetch_client_credentials(&o).await {
                Ok(_) => outln!("{what}: oauth: token endpoint ok ({})", o.token_url)?,
                Err(e) => {
                    outln!("{what}: oauth: token endpoint FAILED: {e}")?;
                    ok = false;
                }
            },
        }
    }
    Ok(ok)
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<PipeClosed>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loket: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `inbox` is configured, or the usage error naming those that are.
fn known_inbox(config: &Config, inbox: &str) -> Result<(), ExitCode> {
    if config.inbox(inbox).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = config.desks.iter().flat_map(|d| d.inboxes.iter().map(|i| i.name.as_str())).collect();
    eprintln!("loket: unknown inbox `{inbox}`; known: {}", known.join(", "));
    Err(ExitCode::from(EX_USAGE))
}

/// The message files `paths` name: files as given, and the files of each directory in name
/// order — a Maildir's `cur/` and `new/` together, in the order of the delivery times their names
/// start with (a reply waiting in `new/` after the request read long ago in `cur/`), listed as
/// `serve` lists `new/` ([`maildir::listing`]); else the directory's own files.
fn message_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        if p.join("new").is_dir() || p.join("cur").is_dir() {
            for d in [p.join("cur"), p.join("new")].into_iter().filter(|d| d.is_dir()) {
                files.extend(maildir::listing(&d)?.into_iter().map(|n| (n.clone(), d.join(n))));
            }
        } else {
            for e in std::fs::read_dir(p)?.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().to_string();
                if e.path().is_file() && !name.starts_with('.') {
                    files.push((name, e.path()));
                }
            }
        }
        files.sort();
        out.extend(files.into_iter().map(|(_, path)| path));
    }
    Ok(out)
}

/// Where `loket ingest` reads a message.
enum Source {
    Stdin,
    File(PathBuf),
}

/// Why a message was not handed to the pipeline.
enum Unread {
    Io(std::io::Error),
    TooLarge,
}

/// The message at `source`, refused unread past `max` bytes.
fn read_message(source: &Source, max: usize) -> Result<Vec<u8>, Unread> {
    let mut raw = Vec::new();
    let limit = max as u64 + 1;
    match source {
        Source::Stdin => std::io::stdin().lock().take(limit).read_to_end(&mut raw),
        Source::File(f) => std::fs::File::open(f).and_then(|h| h.take(limit).read_to_end(&mut raw)),
    }
    .map_err(Unread::Io)?;
    if raw.len() > max { Err(Unread::TooLarge) } else { Ok(raw) }
}

/// From how many messages `loket ingest` routes as the daemon does (one keyword automaton, the
/// models' look-up tables built: [`loket::routing::Router::expect_many`]); fewer are routed with
/// what costs nothing to set up and a little more a message.
const INGEST_MANY: usize = 32;

/// `loket ingest --inbox NAME [FILE|DIR…]`, as an MTA pipes one message (standard input or one
/// file) or for many at once (several files, directories), committed in batches of
/// `limits.batch_messages` (group commit); one message is a batch of one. It starts fast: only
/// the inbox's desk is loaded (its catalogue; its rules compiled without their examples), the
/// templates are parsed without rendering their samples, and the store is migrated only when it
/// is new or behind.
///
/// One message: its outcome as one JSON line; exit 0 recorded, 74 unreadable, 65 too large (the
/// MTA returns it to the sender), 75 store trouble (the MTA retries), 64 refused by the pipeline.
/// Many: one JSON line per message, with its file, and an unreadable or too large file on its own
/// line while the others go on; exit 0 when every message was recorded, 75 when the store failed
/// for some, 65 when some were refused.
async fn ingest(config: &ConfigArg, inbox: &str, paths: &[PathBuf]) -> ExitCode {
    let config = match load_config_with(config, |path| Config::load_for_inbox(path, inbox)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = known_inbox(&config, inbox) {
        return code;
    }
    let one = match paths {
        [] => Some(Source::Stdin),
        [f] if !f.is_dir() => Some(Source::File(f.clone())),
        _ => None,
    };
    let single = one.is_some();
    let sources: Vec<Source> = match one {
        Some(s) => vec![s],
        None => match message_files(paths) {
            Ok(f) => f.into_iter().map(Source::File).collect(),
            Err(e) => {
                eprintln!("loket: cannot list the messages: {e}");
                return ExitCode::from(EX_IOERR);
            }
        },
    };
    if sources.len() >= INGEST_MANY {
        config.router.expect_many();
    }
    if let Some((desk, _)) = config.inbox(inbox)
        && let Err(problems) = config.router.prepare(&desk.catalogue)
    {
        eprintln!("loket: {}: rules: {}", config.path.display(), problems.join("; "));
        return ExitCode::from(EX_CONFIG);
    }
    let (max, batch) = (config.limits.max_message_bytes, config.limits.batch_messages.max(1));
    let line = |source: &Source, v: serde_json::Value| {
        let mut v = v;
        if let Source::File(f) = source
            && !single
        {
            v["file"] = serde_json::json!(f);
        }
        // A reader that went away changes nothing of what was recorded.
        let _ = outln!("{v}");
    };
    let mut config = Some(config);
    let mut app: Option<App> = None;
    let (mut temporary, mut refused) = (false, false);
    for chunk in sources.chunks(batch) {
        let mut read = Vec::with_capacity(chunk.len());
        for source in chunk {
            match read_message(source, max) {
                Ok(raw) => read.push((source, raw)),
                Err(Unread::Io(e)) if single => {
                    eprintln!("loket: cannot read the message: {e}");
                    return ExitCode::from(EX_IOERR);
                }
                Err(Unread::TooLarge) if single => {
                    eprintln!(
                        "loket: message larger than limits.max_message_bytes ({max} bytes); refused so the MTA returns it to the sender"
                    );
                    return ExitCode::from(EX_DATAERR);
                }
                Err(e) => {
                    refused = true;
                    let error = match e {
                        Unread::Io(e) => format!("cannot read: {e}"),
                        Unread::TooLarge => format!("larger than limits.max_message_bytes ({max} bytes)"),
                    };
                    line(source, serde_json::json!({ "error": error }));
                }
            }
        }
        if read.is_empty() {
            continue;
        }
        if let Some(config) = config.take() {
            // Opened once the first message is in hand: a message refused unread needs no store.
            app = match App::open_for_ingest(config).await {
                Ok(a) => Some(a),
                Err(e @ loket::serve::ServeError::Templates(_)) => {
                    eprintln!("loket: {e}");
                    return ExitCode::from(EX_CONFIG);
                }
                Err(e) => {
                    eprintln!("loket: {e}");
                    return ExitCode::from(EX_TEMPFAIL);
                }
            };
        }
        let Some(app) = &app else { break };
        let now = loket::now_ms();
        let incoming: Vec<Incoming> = read.iter().map(|(_, raw)| Incoming { raw, now }).collect();
        let results = app.pipeline.process_batch(inbox, &incoming).await;
        for ((source, _), r) in read.iter().zip(results) {
            match r {
                Ok(outcome) => {
                    if outcome.action == Action::Created {
                        tracing::debug!("acknowledgement queued; `loket serve` delivers it");
                    }
                    line(source, serde_json::to_value(&outcome).unwrap_or_default());
                }
                Err(e) => {
                    let error = match &e {
                        loket::pipeline::PipelineError::Store(s) if let Some(hint) = s.hint() => format!("{e}; {hint}"),
                        _ => e.to_string(),
                    };
                    temporary |= e.is_temporary();
                    refused |= !e.is_temporary();
                    if single {
                        eprintln!("loket: {error}");
                        return ExitCode::from(if e.is_temporary() { EX_TEMPFAIL } else { EX_USAGE });
                    }
                    line(source, serde_json::json!({ "error": error }));
                }
            }
        }
    }
    if let Some(app) = app {
        app.store.close().await;
        // The process ends here: taking the router, the models and the templates apart piece by
        // piece is 3 % of its instructions (no destructor of theirs does anything else).
        std::mem::forget(app);
    }
    ExitCode::from(if temporary {
        EX_TEMPFAIL
    } else if refused {
        EX_DATAERR
    } else {
        0
    })
}

fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()).unwrap_or_default()
}

async fn tickets(config: &ConfigArg, command: TicketsCommand) -> anyhow::Result<()> {
    let config = config.load()?;
    let store = Store::open_read_only(&config.storage).await?;
    match command {
        TicketsCommand::List { desk, status, limit, offset, json } => {
            let filter = TicketFilter { desk, status, limit, offset };
            let rows = store::list_tickets(store.pool(), &filter).await?;
            if rows.is_empty() {
                let mut none = "no tickets".to_string();
                if let Some(d) = &filter.desk {
                    none.push_str(&format!(" on desk {d}"));
                }
                if let Some(st) = &filter.status {
                    none.push_str(&format!(" with status {st}"));
                }
                if filter.offset > 0 {
                    none.push_str(&format!(" past the first {}", filter.offset));
                }
                // JSON lines stay empty; the words go to standard error there.
                if json {
                    eprintln!("loket: {none}");
                } else {
                    outln!("{none}")?;
                }
            } else if json {
                for r in &rows {
                    outln!("{}", serde_json::to_string(r)?)?;
                }
            } else {
                outln!(
                    "{:<18} {:<8} {:<9} {:<40} {:<28} SUBJECT",
                    "NUMBER",
                    "DESK",
                    "STATUS",
                    "CATEGORY",
                    "REQUESTER"
                )?;
                for r in &rows {
                    let cat = format!("{}/{}", r.category, r.subcategory);
                    let subject: String = r.subject.chars().take(50).collect();
                    outln!(
                        "{:<18} {:<8} {:<9} {:<40} {:<28} {}",
                        r.number,
                        r.desk,
                        r.status,
                        cat,
                        r.requester_address,
                        subject
                    )?;
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
                    outln!(
                        "{}",
                        serde_json::json!({ "ticket": t, "messages": messages, "events": events, "sla": clocks })
                    )?;
                    continue;
                }
                outln!("Ticket #{} ({})", t.number, t.desk)?;
                outln!("  status:    {}", t.status)?;
                outln!("  category:  {}/{}", t.category, t.subcategory)?;
                outln!("  type:      {}", t.ticket_type.map_or("-", |v| v.as_str()))?;
                outln!("  requester: {} {}", t.requester_name.as_deref().unwrap_or(""), t.requester_address)?;
                outln!("  subject:   {}", t.subject)?;
                outln!("  created:   {}", fmt_time(t.created_at))?;
                outln!("Messages:")?;
                let mut file_n = 0;
                for m in &messages {
                    outln!(
                        "  {} {:<3} {:<16} {:<9} {} -> {} {}{}",
                        fmt_time(m.created_at),
                        m.direction,
                        m.kind,
                        m.action,
                        m.from_address.as_deref().unwrap_or("-"),
                        m.to_addresses.join(","),
                        m.subject,
                        m.delivery.as_deref().map(|d| format!(" [{d}]")).unwrap_or_default()
                    )?;
                    for a in &m.attachments {
                        file_n += 1;
                        outln!(
                            "      attachment {file_n}: {} ({}, {} bytes)",
                            a.filename.as_deref().unwrap_or("-"),
                            a.content_type,
                            a.size
                        )?;
                    }
                }
                outln!("Events:")?;
                for e in &events {
                    outln!("  {} {:<24} {} via {} {}", fmt_time(e.at), e.kind, e.actor, e.channel, e.detail)?;
                }
                let clocks = store::sla::clocks_of(store.pool(), t.id).await?;
                if !clocks.is_empty() {
                    outln!("SLA:")?;
                    for c in clocks {
                        let k = &c.clock;
                        let tz = config.desk(&t.desk).map(|d| d.tz).unwrap_or(chrono_tz::Asia::Jakarta);
                        let due = k
                            .due_at
                            .map(|d| {
                                // Operator output: the date in figures, no words to translate.
                                chrono::DateTime::from_timestamp_millis(d)
                                    .unwrap_or_default()
                                    .with_timezone(&tz)
                                    .format("%Y-%m-%d %H:%M %Z")
                                    .to_string()
                            })
                            .unwrap_or_else(|| if k.stopped_at.is_some() { "stopped".into() } else { "paused".into() });
                        outln!(
                            "  {:<10} {:<8} due {:<44} used {} of {} min",
                            k.kind.as_str(),
                            k.state.as_str(),
                            due,
                            k.consumed_ms / 60_000,
                            k.target_ms / 60_000
                        )?;
                    }
                }
            }
        }
        TicketsCommand::Attachment { number, n, desk } => {
            let number = number.trim_start_matches('#').to_ascii_uppercase();
            let found: Vec<_> = store::tickets_by_number(store.pool(), &number)
                .await?
                .into_iter()
                .filter(|t| desk.as_deref().is_none_or(|d| t.desk == d))
                .collect();
            let t = match &found[..] {
                [] => anyhow::bail!("no ticket numbered {number}"),
                [t] => t,
                _ => anyhow::bail!("several desks have a ticket numbered {number}: name one with --desk"),
            };
            let mut conn = store.pool().acquire().await?;
            let files = store::ticket_files(&mut conn, t.id).await?;
            let Some(file) = files.iter().find(|f| f.n == n) else {
                anyhow::bail!(
                    "ticket {number} has {} file(s); there is no file {n} (see `loket tickets show {number}`)",
                    files.len()
                );
            };
            let Some((bytes, _)) = store::file_bytes(&mut conn, store.files(), file).await? else {
                anyhow::bail!("the bytes of file {n} of ticket {number} are no longer stored");
            };
            let mut out = std::io::stdout().lock();
            match out.write_all(&bytes).and_then(|()| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Err(PipeClosed.into()),
                Err(e) => return Err(anyhow::Error::new(e).context("writing to standard output")),
            }
            let name = file.filename.as_deref().unwrap_or("-");
            eprintln!("loket: file {n} of ticket {number}: {name} ({}, {} bytes)", file.content_type, bytes.len());
        }
        TicketsCommand::Stats => {
            outln!("{}", serde_json::to_string_pretty(&store::counts(store.pool()).await?)?)?;
        }
    }
    Ok(())
}

async fn quarantine_list(config: &ConfigArg, limit: i64) -> anyhow::Result<()> {
    let config = config.load()?;
    let store = Store::open_read_only(&config.storage).await?;
    let rows = store::list_quarantine(store.pool(), limit).await?;
    if rows.is_empty() {
        outln!("quarantine is empty")?;
    }
    for q in rows {
        outln!("{} {} {} {} {} bytes: {}", q.id, fmt_time(q.created_at), q.state, q.inbox, q.size, q.reason)?;
    }
    Ok(())
}

async fn quarantine_show(config: &ConfigArg, id: i64, raw: bool) -> anyhow::Result<()> {
    let config = config.load()?;
    let store = Store::open_read_only(&config.storage).await?;
    let (q, audit) = store::show_quarantine(store.pool(), store.files(), id)
        .await?
        .with_context(|| format!("no quarantined message {id}"))?;
    if raw {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        return match out.write_all(&q.raw).and_then(|()| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        };
    }
    outln!("id:       {}", q.id)?;
    outln!("desk:     {}", q.desk)?;
    outln!("inbox:    {}", q.inbox)?;
    outln!("received: {}", fmt_time(q.created_at))?;
    outln!("reason:   {}", q.reason)?;
    let kept = if q.dropped_at.is_some() {
        "dropped".to_string()
    } else if (q.raw.len() as i64) < q.size {
        format!("headers only ({} of {} bytes)", q.raw.len(), q.size)
    } else {
        format!("{} bytes", q.size)
    };
    outln!("stored:   {kept}")?;
    let state = match (q.released_at, q.dropped_at) {
        (Some(at), _) => format!("released {}", fmt_time(at)),
        (_, Some(at)) => format!("dropped {}", fmt_time(at)),
        _ => "held".to_string(),
    };
    outln!("state:    {state}")?;
    for a in &audit {
        outln!("audit:    {} {} by {}: {}", fmt_time(a.at), a.action, a.actor, a.detail)?;
    }
    // The header section, flattened to printable text, at most 64 KiB.
    let end = q.raw.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| q.raw.windows(2).position(|w| w == b"\n\n"));
    let head = &q.raw[..end.unwrap_or(q.raw.len()).min(64 * 1024)];
    if !head.is_empty() {
        outln!("")?;
        for line in String::from_utf8_lossy(head).lines() {
            let line: String = line.chars().map(|c| if c.is_control() && c != '\t' { '\u{FFFD}' } else { c }).collect();
            outln!("{line}")?;
        }
    }
    Ok(())
}

/// `loket quarantine release|drop ID`.
async fn quarantine_change(config: &ConfigArg, id: i64, release: bool) -> anyhow::Result<()> {
    let config = config.load()?;
    let app = App::open(config).await?;
    let actor = format!("operator:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
    let now = loket::now_ms();
    if release {
        let outcome = app.pipeline.release_quarantined(id, &actor, now).await?;
        outln!("{}", serde_json::to_string(&outcome)?)?;
    } else {
        app.pipeline.drop_quarantined(id, &actor, now).await?;
        outln!("quarantined message {id} dropped")?;
    }
    app.store.close().await;
    Ok(())
}

fn desk_inbox(desk: &loket::config::Desk) -> String {
    desk.inboxes.first().map(|i| i.address.clone()).unwrap_or_else(|| format!("{}@localhost", desk.id))
}

fn rules(config: &ConfigArg, command: RulesCommand) -> anyhow::Result<ExitCode> {
    use loket::routing::{RouteInput, eval};
    let mut config = config.load()?;
    match command {
        RulesCommand::Test { desk } => {
            let mut total = 0;
            let mut failed = 0;
            for d in config.desks.iter().filter(|d| desk.as_deref().is_none_or(|x| x == d.id)) {
                let (n, failures) = eval::run_examples(&config.router, &d.catalogue, &desk_inbox(d));
                total += n;
                failed += failures.len();
                outln!("{}: {} examples, {} failed", d.id, n, failures.len())?;
                for f in failures {
                    outln!("  FAIL {}#{}: expected {}, got {} ({})", f.desk, f.index, f.expected, f.got, f.subject)?;
                }
            }
            anyhow::ensure!(desk.is_none() || total > 0, "no examples for desk {}", desk.unwrap_or_default());
            outln!("{} passed, {} failed", total - failed, failed)?;
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        RulesCommand::Explain { desk, file, rules_only } => {
            if rules_only {
                std::sync::Arc::get_mut(&mut config.router)
                    .context("the router is shared; cannot set its second opinions aside")?
                    .without_opinions();
            }
            let d = config.desk(&desk).with_context(|| format!("unknown desk `{desk}`"))?;
            let mut raw = Vec::new();
            match file {
                Some(f) => raw = std::fs::read(&f).with_context(|| f.display().to_string())?,
                None => {
                    std::io::stdin().lock().take(16 * 1024 * 1024).read_to_end(&mut raw)?;
                }
            }
            let (subject, body, domain) = match loket::mail::parse::parse(&raw) {
                Ok(m) => (m.subject.clone(), m.text.clone(), m.from.map(|f| f.address.domain().to_string())),
                Err(_) => (String::new(), String::from_utf8_lossy(&raw).to_string(), None),
            };
            let inbox = desk_inbox(d);
            let decision = config.router.explain(
                &d.catalogue,
                &RouteInput { subject: &subject, body: &body, sender_domain: domain.as_deref(), inbox_address: &inbox },
            );
            outln!("route:      {}", decision.route())?;
            outln!("type:       {}", decision.ticket_type.map(|t| t.as_str()).unwrap_or("-"))?;
            outln!("impact:     {}", decision.impact.map(|t| t.as_str()).unwrap_or("-"))?;
            outln!("confidence: {}", decision.confidence)?;
            outln!("because:")?;
            for r in &decision.reasons {
                outln!("  {r}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Lint { desk } => {
            use loket::routing::{lint, rules};
            let common = rules::load_common(&config.rules.join("common.toml")).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut files = Vec::new();
            let mut findings = 0;
            for d in &config.desks {
                let path = config.rules.join(format!("{}.toml", d.id));
                let Some(compiled) = config.router.desk(&d.id) else { continue };
                let file = rules::read_desk(&path).map_err(|e| {
                    anyhow::anyhow!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))
                })?;
                if desk.as_deref().is_none_or(|x| x == d.id) {
                    let found = lint::lint_desk(&file, &common, compiled, &desk_inbox(d));
                    outln!("{}: {} finding(s)", d.id, found.len())?;
                    for f in &found {
                        outln!("  {}: {}", f.kind, f.message)?;
                    }
                    findings += found.len();
                }
                files.push(file);
            }
            if desk.is_none() {
                let found = lint::lint_common(&common, &files.iter().collect::<Vec<_>>());
                outln!("common: {} finding(s)", found.len())?;
                for f in &found {
                    outln!("  {}: {}", f.kind, f.message)?;
                }
                findings += found.len();
            }
            Ok(if findings == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        RulesCommand::Eval { input, learn, rules_only } => {
            let catalogues: Vec<_> = config.desks.iter().map(|d| &d.catalogue).collect();
            let mut sets = Vec::new();
            for path in &learn {
                sets.extend(eval::read_labelled_file(path, &catalogues, eval::OtherDesks::Refused)?);
            }
            let router = std::sync::Arc::get_mut(&mut config.router)
                .context("the router is shared; cannot change its second opinions")?;
            if rules_only {
                router.without_opinions();
            } else if !learn.is_empty() {
                let models = eval::models(&sets);
                let desks: Vec<&str> = models.keys().map(String::as_str).collect();
                eprintln!(
                    "second opinion learned from {} labelled messages (desks: {})",
                    sets.iter().filter(|m| m.expected.is_some()).count(),
                    if desks.is_empty() { "none".to_string() } else { desks.join(", ") }
                );
                router.with_opinions(models);
                router
                    .with_impact_opinion_learned_from(&sets)
                    .map_err(|e| anyhow::anyhow!(e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))?;
            }
            // What the opinion made of the rules' routes: kept (agreeing, close, or won by a cue it
            // never had), held for a person, kept where it was not clear, settled where the rules
            // left it open, turned to the rules' runner-up.
            let mut judged = [0usize; 5];
            let text = std::fs::read_to_string(&input).with_context(|| input.display().to_string())?;
            let mut metrics = eval::Metrics::default();
            let mut per_desk: std::collections::BTreeMap<String, eval::Metrics> = Default::default();
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let m: eval::Labelled = serde_json::from_str(line)
                    .with_context(|| format!("{} line {}: not a labelled message", input.display(), i + 1))?;
                let d = config
                    .desk(&m.desk)
                    .with_context(|| format!("{} line {}: unknown desk `{}`", input.display(), i + 1, m.desk))?;
                let (p, decision) = eval::predict(&config.router, &d.catalogue, &desk_inbox(d), &m);
                if let Some(opinion) = decision.opinion {
                    use loket::routing::Opinion;
                    judged[match opinion {
                        Opinion::Kept | Opinion::UnknownCue => 0,
                        Opinion::Held => 1,
                        Opinion::Unclear => 2,
                        Opinion::Settled => 3,
                        Opinion::RunnerUp => 4,
                    }] += 1;
                }
                outln!("{}", serde_json::to_string(&p)?)?;
                if let Some(e) = &m.expected {
                    metrics.add(&p, e);
                    per_desk.entry(m.desk.clone()).or_default().add(&p, e);
                }
            }
            eprintln!("{}", metrics.summary());
            for (desk, m) in &per_desk {
                eprintln!("  {desk}: {}", m.summary());
            }
            if judged.iter().any(|n| *n > 0) {
                let [kept, overruled, unclear, settled, runner_up] = judged;
                eprintln!(
                    "second opinion: {kept} routes kept, {unclear} kept where it was not clear, {overruled} held for a person, \
                     {settled} settled where the rules left it open, {runner_up} turned to the rules' runner-up"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Suggest { .. } | RulesCommand::Corrections { .. } => {
            unreachable!("the store-reading rules commands go to rules_learned")
        }
    }
}

/// UTC milliseconds of the start of `day` (YYYY-MM-DD); 0 without one.
fn since_ms(day: Option<&str>) -> anyhow::Result<i64> {
    let Some(day) = day else { return Ok(0) };
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").with_context(|| format!("`{day}`: use YYYY-MM-DD"))?;
    Ok(d.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis())
}

/// The latest correction of each ticket (its labels after every correction so far).
fn latest_per_ticket(rows: &[store::corrections::Correction]) -> Vec<&store::corrections::Correction> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<_> = rows.iter().rev().filter(|c| seen.insert(c.ticket_number.clone())).collect();
    out.reverse();
    out
}

/// `rules suggest` and `rules corrections`: they read the agents' corrections from the store.
async fn rules_learned(config: &ConfigArg, command: RulesCommand) -> anyhow::Result<ExitCode> {
    use loket::routing::{rules as r, suggest};
    let config = config.load()?;
    let store = Store::open_read_only(&config.storage).await?;
    let read = |desk: &str, since: Option<&str>| {
        let since = since_ms(since);
        let desk = desk.to_string();
        let pool = store.pool().clone();
        async move {
            let rows = store::corrections::corrections(&pool, &desk, since?)
                .await
                .context("reading the recorded corrections (has `loket migrate` run since the upgrade?)")?;
            anyhow::Ok(rows)
        }
    };
    match command {
        RulesCommand::Corrections { command: CorrectionsCommand::Export { desk, since } } => {
            config.desk(&desk).with_context(|| format!("unknown desk `{desk}`"))?;
            let rows = read(&desk, since.as_deref()).await?;
            let latest = latest_per_ticket(&rows);
            for c in &latest {
                let line = serde_json::json!({
                    "id": format!("{}-{}", c.ticket_number, c.id),
                    "desk": c.desk,
                    // Only the sender's domain is kept (a routing signal); the local part is a placeholder.
                    "from": c.sender_domain.as_ref().map(|d| format!("requester@{d}")),
                    "subject": c.subject,
                    "body": c.body,
                    "expected": { "category": c.category, "subcategory": c.subcategory, "type": c.ticket_type, "impact": null },
                    "notes": format!("#{} by {}: {} -> {} (router said {})", c.field, c.agent,
                        c.previous.as_deref().unwrap_or("-"), c.corrected, c.routed.as_deref().unwrap_or("-")),
                });
                outln!("{line}")?;
            }
            eprintln!("{desk}: {} corrected ticket(s) from {} correction(s)", latest.len(), rows.len());
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Suggest { desk, since, json } => {
            let d = config.desk(&desk).with_context(|| format!("unknown desk `{desk}`"))?;
            let rows = read(&desk, since.as_deref()).await?;
            let common = r::load_common(&config.rules.join("common.toml")).map_err(|e| anyhow::anyhow!("{e}"))?;
            let path = config.rules.join(format!("{desk}.toml"));
            let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
            let ex_path = r::examples_path(&path);
            let examples = if ex_path.exists() {
                let t = std::fs::read_to_string(&ex_path).with_context(|| ex_path.display().to_string())?;
                r::ExamplesFile::parse(&t).map_err(|e| anyhow::anyhow!("{}: {e}", ex_path.display()))?.examples
            } else {
                Vec::new()
            };
            let case = |c: &store::corrections::Correction| suggest::Case {
                id: format!("{} (correction {})", c.ticket_number, c.id),
                subject: c.subject.clone(),
                body: c.body.clone(),
                sender_domain: c.sender_domain.clone(),
                expected: format!("{}/{}", c.category, c.subcategory),
            };
            let latest = latest_per_ticket(&rows);
            let others: Vec<_> = latest.iter().map(|c| case(c)).collect();
            // Re-routed tickets: their labels now, and their latest #category (who, what the router said).
            let routed: Vec<_> = latest
                .iter()
                .filter_map(|c| {
                    let moved =
                        rows.iter().rev().find(|x| x.ticket_number == c.ticket_number && x.field == "category")?;
                    Some((c, moved))
                })
                .collect();
            let cases: Vec<_> = routed.iter().map(|(c, _)| case(c)).collect();
            let routed: Vec<_> = routed.into_iter().map(|(_, moved)| moved).collect();
            let found = suggest::suggest(
                &path,
                &text,
                &examples,
                &common,
                &d.catalogue,
                &desk_inbox(d),
                &cases,
                &others,
                suggest::Limits::default(),
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            if json {
                let cases: Vec<_> = found
                    .iter()
                    .zip(&routed)
                    .map(|(s, c)| {
                        serde_json::json!({
                            "ticket": c.ticket_number, "agent": c.agent, "routed": c.routed, "subject": c.subject,
                            "expected": s.expected, "routed_now": s.routed_now, "already_right": s.already_right,
                            "note": s.note, "suggestions": s.suggestions,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&serde_json::json!({ "desk": desk, "cases": cases }))?)?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!("{desk}: {} re-routed ticket(s) among {} correction(s)", cases.len(), rows.len())?;
            for (s, c) in found.iter().zip(&routed) {
                let text: String = format!("{} / {}", c.subject, c.body.replace('\n', " ")).chars().take(100).collect();
                outln!(
                    "\n{} by {}: router said {}, agent chose {}",
                    c.ticket_number,
                    c.agent,
                    c.routed.as_deref().unwrap_or("-"),
                    s.expected
                )?;
                outln!("  text: {text}")?;
                outln!("  the rules now route it to {}", s.routed_now)?;
                if s.already_right {
                    outln!("  nothing to suggest: the current rules route it right")?;
                    continue;
                }
                if let Some(n) = &s.note {
                    outln!("  {n}")?;
                }
                if !s.suggestions.is_empty() {
                    outln!("  add to the keywords of [[route]] to = \"{}\" in {}:", s.expected, path.display())?;
                }
                for g in &s.suggestions {
                    let breaks = if g.breaks.is_empty() {
                        "breaks no example".to_string()
                    } else {
                        format!(
                            "breaks {} example(s): {}",
                            g.breaks.len(),
                            g.breaks
                                .iter()
                                .map(|b| format!(
                                    "#{} {} (expected {}, would get {})",
                                    b.example, b.subject, b.expected, b.got
                                ))
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    };
                    outln!(
                        "    \"{}\" = {}    # in {} other labelled text(s), {} of this route; {breaks}",
                        g.phrase,
                        g.weight,
                        g.elsewhere,
                        g.same_route
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        _ => unreachable!("only the store-reading rules commands come here"),
    }
}

async fn report_cmd(
    config: &ConfigArg,
    desk: &str,
    from: &str,
    to: &str,
    format: &str,
    lang: Option<&str>,
) -> anyhow::Result<()> {
    use chrono::NaiveDate;
    let config = config.load()?;
    let d = config.desk(desk).with_context(|| format!("unknown desk `{desk}`"))?;
    let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| format!("`{s}`: use YYYY-MM-DD"));
    let period = loket::report::Period { from: day(from)?, to: day(to)? };
    anyhow::ensure!(period.from <= period.to, "--from must not be after --to");
    let lang = match lang {
        None => d.language,
        Some(l) => loket::domain::Language::parse(l).with_context(|| {
            let all: Vec<&str> = loket::domain::Language::ALL.iter().map(|l| l.as_str()).collect();
            format!("unknown language `{l}`; use {}", all.join(" or "))
        })?,
    };
    anyhow::ensure!(
        ["table", "csv", "breaches-csv", "json", "html"].contains(&format),
        "unknown format `{format}`; use table, csv, breaches-csv, json or html"
    );
    let (f, t) = period.bounds(d.tz);
    let store = Store::open_read_only(&config.storage).await?;
    let tickets = store::report::report_tickets(store.pool(), desk, f, t).await?;
    let events = store::report::report_events(store.pool(), desk, f, t).await?;
    if tickets.is_empty() {
        // On standard error: the formats stay machine-readable.
        eprintln!("loket: no tickets on desk {desk} from {from} to {to}");
    }
    let now = chrono::Utc::now().timestamp_millis();
    let r = loket::report::build(d, &period, now, &tickets, &events);
    match format {
        "table" => out!("{}", loket::report::table(&r))?,
        "csv" => out!("{}", loket::report::csv(&r))?,
        "breaches-csv" => out!("{}", loket::report::breaches_csv(&r))?,
        "json" => outln!("{}", serde_json::to_string_pretty(&r)?)?,
        _ => {
            let templates = loket::templates::Templates::load(&config.templates)?;
            out!("{}", loket::report::html(&templates, lang, &r)?)?
        }
    }
    Ok(())
}
