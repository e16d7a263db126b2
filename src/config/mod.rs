//! `loket.toml` → [`Config`], in two steps. [`parse`] (in [`check`]) turns the text and the
//! environment into checked values without reading any other file: the serde tree of
//! [`file`](mod@file) with `deny_unknown_fields`, secrets from environment variables named in the
//! file, `LOKET_*` variables overriding a few keys. [`load()`](load::load) (in [`load`]) reads the
//! files the text names: each desk's catalogue and holidays, the routing rules, the templates.
//! [`Config::load`] does both and reports every problem of both at once, naming the key.

pub mod check;
pub mod file;
pub mod load;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalogue::Catalogue;
use crate::domain::{EmailAddress, Language};
use crate::routing::Router;
use crate::ticket::NumberFormat;
use crate::ticket::token::Signer;

pub use check::{DeskFiles, DeskSettings, Files, Parsed, Settings, parse};
pub use file::{
    AgentConfig, ApprovedTemplate, AttachmentPolicy, DeskConfig, FilesFlush, GraphConfig, GroupConfig, HttpConfig,
    ImapConfig, InboxConfig, InboxKind, Limits, OutboundConfig, ParticipantPolicy, RawConfig, SecurityConfig,
    SmtpConfig, SqliteSynchronous, StorageConfig, TelegramConfig, TelegramMode, TemplateParam, TlsMode, TransportKind,
    WhatsappConfig, WhatsappTemplates,
};
pub use load::{Loaded, LoadedDesk};

/// A problem in the configuration, with the file and key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem(pub String);

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

/// A secret read from the environment; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A checked Telegram bot.
#[derive(Debug, Clone)]
pub struct Telegram {
    pub token: Secret,
    pub api_url: reqwest::Url,
    pub mode: TelegramMode,
    pub webhook_secret: Option<Secret>,
    pub poll_timeout_secs: u32,
    pub session_minutes: u32,
}

/// A checked WhatsApp number.
#[derive(Debug, Clone)]
pub struct Whatsapp {
    pub phone_number_id: String,
    pub access_token: Secret,
    pub app_secret: Secret,
    pub verify_token: Secret,
    pub graph_url: String,
    pub template: Option<String>,
    pub template_language: String,
    pub session_minutes: u32,
    pub templates: WhatsappTemplates,
}

/// A checked configuration with each desk's catalogue loaded.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub storage: StorageConfig,
    pub outbound: OutboundConfig,
    pub limits: Limits,
    pub templates: PathBuf,
    pub rules: PathBuf,
    /// Every desk (for `loket ingest`, only its inbox's: [`Config::load_for_inbox`]).
    pub desks: Vec<Desk>,
    /// Every desk's compiled routing rules (for `loket ingest`, its desk's, compiled when first
    /// needed).
    pub router: Arc<Router>,
    /// Signs and checks agents' reply tokens (None when no desk has agents).
    pub signer: Option<Signer>,
    /// Where the HTTP server listens, if it runs.
    pub http: Option<std::net::SocketAddr>,
    /// The HTTP server's public base URL (`http.public_url`), without a trailing slash.
    pub public_url: Option<String>,
}

/// A desk ready to use.
#[derive(Debug, Clone)]
pub struct Desk {
    pub id: String,
    pub name: String,
    pub code: String,
    pub tz: chrono_tz::Tz,
    pub language: Language,
    pub number_format: NumberFormat,
    pub catalogue: Catalogue,
    /// Every address of the desk: its inboxes' and `addresses`.
    pub own_addresses: Vec<EmailAddress>,
    pub inboxes: Vec<InboxConfig>,
    pub groups: Vec<GroupConfig>,
    pub agents: Vec<Agent>,
    pub attachments: Option<AttachmentPolicy>,
    pub reopen_days: u32,
    pub response_promise: Option<String>,
    pub participants: ParticipantPolicy,
    /// Domains always admitted as participants (unless the policy is `off`).
    pub participant_domains: Vec<String>,
    pub sla: Option<crate::sla::Sla>,
    pub telegram: Option<Telegram>,
    pub whatsapp: Option<Whatsapp>,
    /// Spam and DMARC-failure handling (`[desk.hygiene]`).
    pub hygiene: crate::mail::hygiene::Policy,
    /// How long personal data is kept (`[desk.retention]`).
    pub retention: crate::privacy::Retention,
    /// Outbound webhook subscriptions (`[[desk.webhooks]]`).
    pub webhooks: Vec<crate::webhook::Subscription>,
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub address: EmailAddress,
    pub name: String,
    pub groups: Vec<String>,
    pub supervisor: bool,
}

impl Desk {
    pub fn is_own_address(&self, a: &EmailAddress) -> bool {
        self.own_addresses.contains(a)
    }

    pub fn agent(&self, a: &EmailAddress) -> Option<&Agent> {
        self.agents.iter().find(|x| x.address == *a)
    }

    /// An agent by address or (case-insensitive) name.
    pub fn find_agent(&self, key: &str) -> Option<&Agent> {
        let k = key.trim().to_lowercase();
        self.agents.iter().find(|a| a.address.as_str() == k || a.name.to_lowercase() == k)
    }

    pub fn group(&self, id: &str) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id))
    }

    /// The group that handles a route: the most specific `routes` entry, else layer 1.
    pub fn group_for(&self, category: &str, subcategory: &str) -> Option<&GroupConfig> {
        let exact = format!("{category}/{subcategory}");
        let wild = format!("{category}/*");
        self.groups
            .iter()
            .find(|g| g.routes.contains(&exact))
            .or_else(|| self.groups.iter().find(|g| g.routes.contains(&wild)))
            .or_else(|| self.layer1())
    }

    pub fn layer1(&self) -> Option<&GroupConfig> {
        self.groups.iter().filter(|g| g.layer == 1).min_by_key(|g| g.id.clone())
    }

    /// The group one layer above `group` that handles the route (for `#escalate`).
    pub fn next_layer(&self, group: Option<&str>, category: &str, subcategory: &str) -> Option<&GroupConfig> {
        let current = group.and_then(|g| self.group(g)).map(|g| g.layer).unwrap_or(1);
        let exact = format!("{category}/{subcategory}");
        let wild = format!("{category}/*");
        let above = |g: &&GroupConfig| g.layer > current;
        self.groups
            .iter()
            .filter(above)
            .filter(|g| g.routes.iter().any(|r| *r == exact || *r == wild))
            .min_by_key(|g| g.layer)
            .or_else(|| self.groups.iter().filter(above).min_by_key(|g| g.layer))
    }

    pub fn members(&self, group: &str) -> Vec<&Agent> {
        self.agents.iter().filter(|a| a.groups.iter().any(|g| g.eq_ignore_ascii_case(group))).collect()
    }

    pub fn supervisors(&self) -> Vec<&Agent> {
        self.agents.iter().filter(|a| a.supervisor).collect()
    }
}

impl Config {
    /// Reads `loket.toml`, checks it ([`parse`]) and loads the files it names ([`load`]);
    /// relative paths are taken from the directory of the file, environment variables from the
    /// process.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = load::read(path)?;
        Self::from_toml(path, &text, |k| std::env::var(k).ok())
    }

    /// [`Config::load`] that creates nothing: a missing `security.token_secret_file` stays
    /// missing (and the configuration has no signer), for `check-config`.
    pub fn load_to_check(path: &Path) -> Result<Self, ConfigErrors> {
        let text = load::read(path)?;
        Self::from_toml_with(path, &text, |k| std::env::var(k).ok(), load::Mode::Check)
    }

    /// [`Config::load`] for `loket ingest --inbox NAME` ([`load::Mode::Ingest`]), which starts
    /// once per mail: the whole file is checked, but only the desk that owns the inbox is loaded
    /// and kept (its catalogue and holidays; the other desks' files are not read). Its routing
    /// rules are compiled when first needed ([`Router::lazy`]), so the caller compiles them with
    /// [`Router::prepare`] and sees their problems there; the templates are checked when
    /// `App::open_for_ingest` parses them. When no desk owns the inbox every desk is loaded, so
    /// the caller can name the inboxes there are.
    pub fn load_for_inbox(path: &Path, inbox: &str) -> Result<Self, ConfigErrors> {
        let text = load::read(path)?;
        Self::from_toml_with(path, &text, |k| std::env::var(k).ok(), load::Mode::Ingest { inbox })
    }

    /// Checks a configuration text and loads the files it names; `env` looks up environment
    /// variables. The problems of the text and of those files are reported together.
    pub fn from_toml(path: &Path, text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        Self::from_toml_with(path, text, env, load::Mode::Full)
    }

    fn from_toml_with(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
        mode: load::Mode<'_>,
    ) -> Result<Self, ConfigErrors> {
        let Parsed { mut settings, mut files } = parse(path, text, env)?;
        // `ingest` keeps only its inbox's desk: the others' files are not read.
        if let load::Mode::Ingest { inbox } = mode
            && let Ok(s) = &mut settings
            && let Some(desk) = s.desks.iter().find(|d| d.inboxes.iter().any(|i| i.name == inbox)).map(|d| d.id.clone())
        {
            s.desks.retain(|d| d.id == desk);
            files.desks.retain(|d| d.id == desk);
        }
        let loaded = load::load(&files, mode);
        match (settings, loaded) {
            (Ok(settings), Ok(loaded)) => Ok(Self::assemble(settings, files, loaded)),
            (settings, loaded) => Err(ConfigErrors(
                settings.err().into_iter().flatten().chain(loaded.err().into_iter().flatten()).collect(),
            )),
        }
    }

    /// A checked file and what its files hold: both have one entry per desk, in the file's order.
    fn assemble(settings: Settings, files: Files, loaded: Loaded) -> Self {
        let desks = settings
            .desks
            .into_iter()
            .zip(loaded.desks)
            .map(|(d, LoadedDesk { catalogue, holidays })| {
                let mut sla = d.sla;
                if let Some(sla) = &mut sla {
                    sla.add_holidays(&holidays);
                }
                Desk {
                    reopen_days: d.reopen_days.or(catalogue.reopen_days).unwrap_or(7),
                    id: d.id,
                    name: d.name,
                    code: d.code,
                    tz: d.tz,
                    language: d.language,
                    number_format: d.number_format,
                    catalogue,
                    own_addresses: d.own_addresses,
                    inboxes: d.inboxes,
                    groups: d.groups,
                    agents: d.agents,
                    attachments: d.attachments,
                    response_promise: d.response_promise,
                    participants: d.participants,
                    participant_domains: d.participant_domains,
                    sla,
                    telegram: d.telegram,
                    whatsapp: d.whatsapp,
                    hygiene: d.hygiene,
                    retention: d.retention,
                    webhooks: d.webhooks,
                }
            })
            .collect();
        Config {
            path: files.path,
            storage: settings.storage,
            outbound: settings.outbound,
            limits: settings.limits,
            templates: files.templates,
            rules: files.rules,
            desks,
            router: Arc::new(loaded.router),
            signer: settings.signer.or(loaded.signer),
            http: settings.http,
            public_url: settings.public_url,
        }
    }

    pub fn desk(&self, id: &str) -> Option<&Desk> {
        self.desks.iter().find(|d| d.id == id)
    }

    /// The desk and inbox of an inbox name.
    pub fn inbox(&self, name: &str) -> Option<(&Desk, &InboxConfig)> {
        self.desks.iter().find_map(|d| d.inboxes.iter().find(|i| i.name == name).map(|i| (d, i)))
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_path(p: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = repo_path("loket.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = Config::from_toml(&path, &text, |_| None).unwrap();
        assert!(cfg.desk("hero").is_some());
        assert!(cfg.storage.url.starts_with("sqlite://"));
        let sla = cfg.desk("hero").unwrap().sla.as_ref().unwrap();
        let new_year = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        assert!(sla.working.holiday(new_year).is_some(), "the holiday files reach the desk's calendar");
    }

    #[test]
    fn the_problems_of_the_text_and_of_the_files_it_names_come_together() {
        let path = repo_path("loket.toml");
        let text = "[[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HE RO\"\nparticipants = \"some\"\n\
                    catalogue = \"seeds/missing.toml\"\n[[desk.inbox]]\nname = \"a\"\naddress = \"hero@example.test\"\n";
        let all = Config::from_toml(&path, text, |_| None).unwrap_err().to_string();
        for needle in
            ["participants: unknown variant `some`", "(`hero`).code", "(`hero`).catalogue: ", "seeds/missing.toml"]
        {
            assert!(all.contains(needle), "missing {needle} in {all}");
        }
    }

    #[test]
    fn reports_every_problem_at_once() {
        let path = repo_path("loket.toml");
        let text = r#"
[storage]
url = "mysql://x"
[outbound]
transport = "smtp"
[[desk]]
id = "hero"
name = "HERO"
code = "HE RO"
time_zone = "Asia/Jakrta"
number_format = "{nope}"
catalogue = "seeds/hero.toml"
[[desk.inbox]]
name = "a"
address = "not-an-address"
[desk.inbox.imap]
host = "h"
user = "u"
password_env = "LOKET_TEST_UNSET_VAR"
"#;
        let errs = Config::from_toml(&path, text, |_| None).unwrap_err();
        let all = errs.to_string();
        for needle in [
            "storage.url",
            "outbound.smtp",
            "desk[0] (`hero`).code",
            "time_zone: unknown time zone `Asia/Jakrta`",
            "number_format",
            "inbox[0] (`a`).address",
            "LOKET_TEST_UNSET_VAR",
        ] {
            assert!(all.contains(needle), "missing {needle} in {all}");
        }
        assert!(all.contains("loket.toml"), "{all}");
    }

    #[test]
    fn chat_channels_are_checked_and_their_secrets_never_printed() {
        let path = repo_path("loket.toml");
        let desk = |extra: &str| {
            format!(
                "[[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HERO\"\ncatalogue = \"seeds/hero.toml\"\n{extra}\n\
                 [[desk.inbox]]\nname = \"a\"\naddress = \"hero@example.test\"\n"
            )
        };
        let bad = desk(
            "[desk.telegram]\ntoken_env = \"TG_UNSET\"\napi_url = \"ftp://x\"\nmode = \"push\"\n\
             [desk.whatsapp]\nphone_number_id = \"12ab\"\naccess_token_env = \"WA_T\"\napp_secret_env = \"WA_S\"\n\
             verify_token_env = \"WA_V\"\n",
        );
        let all = Config::from_toml(&path, &bad, |_| None).unwrap_err().to_string();
        for needle in [
            "telegram.token_env: environment variable `TG_UNSET` is not set",
            "telegram.api_url",
            "telegram.mode: unknown variant `push`, expected `polling` or `webhook`",
            "whatsapp.phone_number_id",
            "whatsapp.app_secret_env",
            "whatsapp: the webhook needs the [http] server",
        ] {
            assert!(all.contains(needle), "missing {needle} in {all}");
        }
        let good = format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n{}",
            desk(
                "[desk.telegram]\ntoken_env = \"TG\"\n[desk.whatsapp]\nphone_number_id = \"123\"\n\
                  access_token_env = \"WA\"\napp_secret_env = \"WA\"\nverify_token_env = \"WA\"\n"
            )
        );
        let cfg = Config::from_toml(&path, &good, |k| {
            k.starts_with("WA")
                .then(|| "wa".into())
                .or(Some("s3cr3t-value".into()))
                .filter(|_| k != "LOKET_DATABASE_URL")
        })
        .unwrap();
        let d = cfg.desk("hero").unwrap();
        assert_eq!(d.telegram.as_ref().unwrap().token.0, "s3cr3t-value");
        assert!(!format!("{cfg:?}").contains("s3cr3t-value"), "secrets are not in Debug output");
    }

    /// `check-config` (`Mode::Check`) leaves a missing token secret file missing; the daemon's
    /// load makes it, and checking then reads it.
    #[test]
    fn checking_makes_no_token_secret_and_loading_makes_it() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("var/token-secret");
        let path = repo_path("loket.toml");
        let shipped = std::fs::read_to_string(&path).unwrap();
        let text = shipped.replace("\"var/token-secret\"", &format!("{:?}", secret.display().to_string()));
        assert_ne!(text, shipped, "the shipped file names var/token-secret");
        let env = |_: &str| None;
        let checked = Config::from_toml_with(&path, &text, env, load::Mode::Check).unwrap_or_else(|e| panic!("{e}"));
        assert!(checked.signer.is_none() && !secret.exists() && !dir.path().join("var").exists());
        let loaded = Config::from_toml(&path, &text, env).unwrap();
        assert!(loaded.signer.is_some() && secret.is_file());
        let checked = Config::from_toml_with(&path, &text, env, load::Mode::Check).unwrap();
        assert!(checked.signer.is_some());
    }

    #[test]
    fn the_production_example_is_valid() {
        let path = repo_path("deploy/loket.prod.toml");
        let root = format!("{}/", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap().replace("/etc/loket/", &root);
        let cfg = Config::from_toml(&path, &text, |k| match k {
            "LOKET_TOKEN_SECRET" => Some("0123456789abcdef0123".into()),
            "LOKET_SMTP_PASSWORD" | "LOKET_IMAP_PASSWORD" => Some("x".into()),
            _ => None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.storage.url.starts_with("postgres://"));
        assert_eq!(cfg.storage.cache_dir(), Path::new("/var/lib/loket/cache"), "the unit's state directory");
        assert_eq!(cfg.desks[0].agents.len(), 3);
        assert!(cfg.desks[0].sla.is_some() && cfg.http.is_some() && cfg.signer.is_some());
        assert_eq!(cfg.desks[0].hygiene.dmarc_fail, crate::mail::hygiene::Action::Quarantine);
        assert_eq!(cfg.desks[0].inboxes[0].since, chrono::NaiveDate::from_ymd_opt(2026, 1, 1));
    }

    #[test]
    fn hygiene_values_outside_their_sets_are_named() {
        let path = repo_path("loket.toml");
        let text = "[[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HERO\"\ncatalogue = \"seeds/hero.toml\"\n\
                    [desk.hygiene]\nspam = \"delete\"\n[[desk.inbox]]\nname = \"a\"\naddress = \"hero@example.test\"\n\
                    since = \"yesterday\"\n";
        let all = Config::from_toml(&path, text, |_| None).unwrap_err().to_string();
        assert!(all.contains("unknown variant `delete`, expected `no-acknowledgement` or `quarantine`"), "{all}");
        let text = text.replace("spam = \"delete\"", "spam = \"quarantine\"");
        let all = Config::from_toml(&path, &text, |_| None).unwrap_err().to_string();
        assert!(all.contains("since") && all.contains("yesterday"), "{all}");
    }

    #[test]
    fn closed_sets_name_the_key_the_value_and_the_choices() {
        let path = repo_path("loket.toml");
        let text = "[[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HE RO\"\nlanguage = \"fr\"\n\
                    catalogue = \"seeds/hero.toml\"\n[[desk.inbox]]\nname = \"a\"\naddress = \"hero@example.test\"\n";
        let all = Config::from_toml(&path, text, |_| None).unwrap_err().to_string();
        for needle in
            ["desk[0] (`hero`).language: unknown variant `fr`, expected `id` or `en`", "desk[0] (`hero`).code"]
        {
            assert!(all.contains(needle), "missing {needle} in {all}");
        }
        let err = Config::from_toml(&path, "[storage]\nsqlite_synchronous = \"off\"\n", |_| None).unwrap_err();
        let all = err.to_string();
        assert!(
            all.contains("sqlite_synchronous") && all.contains("unknown variant `off`, expected `full` or `normal`"),
            "{all}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = Config::from_toml(&path, &text, |_| None).unwrap();
        assert_eq!(cfg.storage.sqlite_synchronous, SqliteSynchronous::Full);
        assert_eq!(cfg.desk("hero").unwrap().language, Language::Id);
        assert!(cfg.desks.iter().flat_map(|d| &d.inboxes).all(|i| i.kind() != InboxKind::Pipe || i.maildir.is_none()));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let path = repo_path("loket.toml");
        let err = Config::from_toml(&path, "[storage]\nurll = 'x'\n", |_| None).unwrap_err();
        assert!(err.to_string().contains("unknown field `urll`"), "{err}");
    }

    #[test]
    fn env_overrides_database_url_and_passwords_are_redacted() {
        let path = repo_path("loket.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = Config::from_toml(&path, &text, |k| {
            (k == "LOKET_DATABASE_URL").then(|| "postgres://u:secret@h/db".to_string())
        })
        .unwrap();
        assert_eq!(cfg.storage.url, "postgres://u:secret@h/db");
        assert_eq!(redact_url(&cfg.storage.url), "postgres://u:***@h/db");
    }
}
