//! `loket.toml`: desks and their inboxes, outbound mail, storage and limits. One serde tree with
//! `deny_unknown_fields`; secrets come from environment variables named in the file; `LOKET_*`
//! variables override a few keys. [`Config::load`] reports every problem at once, naming the key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use serde::Deserialize;

use crate::catalogue::Catalogue;
use crate::domain::{EmailAddress, Language};
use crate::routing::Router;
use crate::ticket::NumberFormat;
use crate::ticket::token::Signer;

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

/// A closed-set value as written in the file: the enum when the text names one of its variants,
/// else the text with serde's complaint (which lists the allowed values), so that the check
/// reports it together with every other problem instead of stopping at the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice<T> {
    Known(T),
    Unknown { value: String, error: String },
}

impl<T> Choice<T> {
    /// The value, or a problem `KEY: unknown variant `x`, expected …` pushed to `problems`.
    fn checked(&self, key: &str, problems: &mut Vec<String>) -> Option<T>
    where
        T: Copy,
    {
        match self {
            Choice::Known(v) => Some(*v),
            Choice::Unknown { error, .. } => {
                problems.push(format!("{key}: {error}"));
                None
            }
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Choice<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        let value = String::deserialize(d)?;
        let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> = value.as_str().into_deserializer();
        Ok(match T::deserialize(de) {
            Ok(v) => Choice::Known(v),
            Err(e) => Choice::Unknown { error: e.to_string(), value },
        })
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where tickets live.
    #[serde(default)]
    pub storage: StorageConfig,
    /// How outbound mail leaves.
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// Size and rate bounds.
    #[serde(default)]
    pub limits: Limits,
    /// Secrets for signed agent tokens.
    #[serde(default)]
    pub security: SecurityConfig,
    /// The HTTP server (health, metrics, tracking page); off when absent.
    #[serde(default)]
    pub http: Option<HttpConfig>,
    /// Directory of the message templates (`templates/<lang>/<name>.txt.j2`).
    #[serde(default = "default_templates")]
    pub templates: PathBuf,
    /// Directory of the routing rules (`rules/common.toml`, `rules/<desk>.toml`).
    #[serde(default = "default_rules")]
    pub rules: PathBuf,
    /// The service desks.
    #[serde(default, rename = "desk")]
    pub desks: Vec<DeskConfig>,
}

fn default_templates() -> PathBuf {
    PathBuf::from("templates")
}

fn default_rules() -> PathBuf {
    PathBuf::from("rules")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://PATH` (created when missing; its directory only when it is `var`) or
    /// `postgres://user@host:port/db`.
    /// Overridden by the environment variable `LOKET_DATABASE_URL`.
    #[serde(default = "default_db_url")]
    pub url: String,
    /// Largest number of pooled connections.
    #[serde(default = "default_pool")]
    pub max_connections: u32,
    /// SQLite `synchronous` pragma: `full` (default; a commit survives power loss) or `normal`.
    #[serde(default)]
    pub sqlite_synchronous: SqliteSynchronous,
}

/// SQLite's `synchronous` pragma, the two settings Loket allows with WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Every commit reaches the disk before it returns: it survives a power loss.
    #[default]
    Full,
    /// Commits are durable across a crash of Loket but the last ones may be lost with power.
    Normal,
}

fn default_db_url() -> String {
    "sqlite://var/loket.db".into()
}
fn default_pool() -> u32 {
    8
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { url: default_db_url(), max_connections: default_pool(), sqlite_synchronous: SqliteSynchronous::Full }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Deliver over SMTP (`[outbound.smtp]`).
    Smtp,
    /// Write one `.eml` file per message into `outbound.directory` (demo, tests).
    File,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// `smtp` or `file`.
    #[serde(default = "default_transport")]
    pub transport: TransportKind,
    /// Directory for the `file` transport.
    #[serde(default = "default_outdir")]
    pub directory: PathBuf,
    /// SMTP relay for the `smtp` transport.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// Delivery attempts before a message is marked failed.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay in seconds; doubles with every attempt up to `max_backoff_secs`.
    #[serde(default = "default_backoff")]
    pub initial_backoff_secs: u64,
    /// Longest retry delay in seconds.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    /// How often the worker looks for due messages when nothing woke it, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
}

fn default_transport() -> TransportKind {
    TransportKind::File
}
fn default_outdir() -> PathBuf {
    PathBuf::from("var/outbound")
}
fn default_attempts() -> u32 {
    30
}
fn default_backoff() -> u64 {
    2
}
fn default_max_backoff() -> u64 {
    900
}
fn default_poll_ms() -> u64 {
    1000
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            transport: default_transport(),
            directory: default_outdir(),
            smtp: None,
            max_attempts: default_attempts(),
            initial_backoff_secs: default_backoff(),
            max_backoff_secs: default_max_backoff(),
            poll_interval_ms: default_poll_ms(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain TCP (only for loopback test servers).
    None,
    /// Plain TCP upgraded with STARTTLS.
    Starttls,
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay host; with `oauth`, the provider's host when left out.
    #[serde(default)]
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    #[serde(default = "default_smtp_tls")]
    pub tls: TlsMode,
    /// Login name; no authentication when absent.
    #[serde(default)]
    pub user: Option<String>,
    /// Name of the environment variable that holds the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// PEM file of extra trusted CA certificates (private CAs, tests).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Seconds before an SMTP conversation is given up.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Authenticate with an OAuth2 bearer token (XOAUTH2) for `user` instead of a password.
    #[serde(default)]
    pub oauth: Option<crate::oauth::config::OAuthConfig>,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_tls() -> TlsMode {
    TlsMode::Starttls
}
fn default_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest raw message accepted, in bytes; larger mail is quarantined (IMAP, Maildir) or
    /// refused with EX_DATAERR so the MTA returns it to the sender (`loket ingest`).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Automatic replies to one sender within an hour before Loket stops answering them.
    #[serde(default = "default_rate")]
    pub auto_replies_per_sender_per_hour: u32,
    /// New tickets one sender may open within an hour (mail and chat). Past it, the sender's
    /// messages are recorded on their latest open ticket (or held, when they have none) and the
    /// agents hear of the flood once.
    #[serde(default = "default_new_tickets")]
    pub new_tickets_per_sender_per_hour: u32,
    /// Agent notifications one sender's messages may cause within an hour. Past it, the agents
    /// get one flood digest and the messages are recorded without a notification each.
    #[serde(default = "default_notifications")]
    pub agent_notifications_per_sender_per_hour: u32,
}

fn default_max_message() -> usize {
    25 * 1024 * 1024
}
fn default_rate() -> u32 {
    10
}
fn default_new_tickets() -> u32 {
    10
}
fn default_notifications() -> u32 {
    20
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: default_max_message(),
            auto_replies_per_sender_per_hour: default_rate(),
            new_tickets_per_sender_per_hour: default_new_tickets(),
            agent_notifications_per_sender_per_hour: default_notifications(),
        }
    }
}

/// Which addresses in To/Cc of a request become participants of its ticket: people who may add
/// messages to it (but never confirm, reopen or rate it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParticipantPolicy {
    /// Nobody but the requester and the agents.
    Off,
    /// Addresses in the requester's own domain (a supervisor in CC).
    #[default]
    SameDomain,
    /// Every address in To/Cc other than the desk's own.
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub listen: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Environment variable holding the secret that signs agents' reply tokens (required when a
    /// desk has agents; at least 16 bytes).
    #[serde(default)]
    pub token_secret_env: Option<String>,
}

/// A group of agents: layer 1 (the service desk) or a layer 2/3 resolver team.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub id: String,
    pub name: String,
    /// 1 = service desk; 2, 3 = resolver teams (`#escalate` goes one layer up).
    #[serde(default = "one")]
    pub layer: u8,
    /// Routes this group handles: `category/subcategory` or `category/*`. New tickets on them
    /// notify this group; everything else notifies layer 1.
    #[serde(default)]
    pub routes: Vec<String>,
}

fn one() -> u8 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub address: String,
    pub name: String,
    /// Group ids.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Supervisors get escalations.
    #[serde(default)]
    pub supervisor: bool,
}

/// What attachments a desk accepts (HERO: 2 MB each, JPG/JPEG/PNG/PDF/DOC/DOCX/XLS/XLSX/PPT/ZIP/RAR).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentPolicy {
    /// Largest attachment in bytes.
    #[serde(default = "default_attachment_max")]
    pub max_bytes: usize,
    /// Allowed file extensions (lower case, no dot); empty = any. Content is checked against the
    /// extension where the format has a signature.
    #[serde(default)]
    pub allowed: Vec<String>,
}

fn default_attachment_max() -> usize {
    2 * 1024 * 1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskConfig {
    /// Short id (`hero`, `pusintek`, …); also the catalogue's `desk`.
    pub id: String,
    /// Name shown to requesters.
    pub name: String,
    /// Desk code in ticket numbers (`KORS` in `#A-KORS22000343`).
    pub code: String,
    /// IANA time zone of the desk's calendar.
    #[serde(default = "default_tz")]
    pub time_zone: String,
    /// Language of requester-facing text: `id` (default) or `en`.
    #[serde(default = "default_lang")]
    pub language: Choice<Language>,
    /// Ticket-number format; see `NumberFormat`.
    #[serde(default = "default_number_format")]
    pub number_format: String,
    /// Catalogue file (`seeds/<desk>.toml`).
    pub catalogue: PathBuf,
    /// Addresses of the desk besides its inboxes' (mail from them is never answered).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Where the desk's mail arrives.
    #[serde(default, rename = "inbox")]
    pub inboxes: Vec<InboxConfig>,
    /// Agent groups.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupConfig>,
    /// Agents and supervisors.
    #[serde(default, rename = "agent")]
    pub agents: Vec<AgentConfig>,
    /// Attachment policy; without it every attachment within the message limit is kept.
    #[serde(default)]
    pub attachments: Option<AttachmentPolicy>,
    /// Calendar days after resolution in which a reply reopens the ticket (default: the
    /// catalogue's `reopen_days`, else 7).
    #[serde(default)]
    pub reopen_days: Option<u32>,
    /// The response promise quoted in acknowledgements ("paling lambat 30 menit pada jam kerja").
    #[serde(default)]
    pub response_promise: Option<String>,
    /// Who in To/Cc of a request may also write on its ticket: `off`, `same-domain` (default) or
    /// `all`. Anyone else who writes to a ticket gets a ticket of their own.
    #[serde(default)]
    pub participants: ParticipantPolicy,
    /// Working calendar and service-level targets.
    #[serde(default)]
    pub sla: Option<crate::sla::SlaConfig>,
    /// The desk's Telegram bot.
    #[serde(default)]
    pub telegram: Option<TelegramConfig>,
    /// The desk's WhatsApp Business number (Cloud API).
    #[serde(default)]
    pub whatsapp: Option<WhatsappConfig>,
}

/// `[desk.telegram]`: a bot whose messages become tickets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// Environment variable holding the bot token (`123456:ABC…`).
    pub token_env: String,
    /// Bot API base URL (tests point it at a local fake).
    #[serde(default = "default_telegram_api")]
    pub api_url: String,
    /// `polling` (default: long polling `getUpdates`) or `webhook` (Telegram POSTs to
    /// `/telegram/<desk>` on the HTTP server).
    #[serde(default = "default_telegram_mode")]
    pub mode: Choice<TelegramMode>,
    /// Environment variable holding the webhook secret Telegram echoes in
    /// `X-Telegram-Bot-Api-Secret-Token` (required in webhook mode).
    #[serde(default)]
    pub webhook_secret_env: Option<String>,
    /// Seconds a `getUpdates` long poll waits.
    #[serde(default = "default_long_poll")]
    pub poll_timeout_secs: u32,
    /// Minutes after the last message in which free text continues the requester's active
    /// ticket instead of opening a new one.
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u32,
}

/// How a Telegram bot receives its updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelegramMode {
    /// Long polling `getUpdates` under the inbox lease.
    Polling,
    /// Telegram POSTs updates to `/telegram/<desk>` on the HTTP server.
    Webhook,
}

/// `[desk.whatsapp]`: a WhatsApp Business number on the Cloud API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappConfig {
    /// The business phone number's id (`metadata.phone_number_id`).
    pub phone_number_id: String,
    /// Environment variable holding the Graph API access token.
    pub access_token_env: String,
    /// Environment variable holding the App Secret that signs webhooks (`X-Hub-Signature-256`).
    pub app_secret_env: String,
    /// Environment variable holding the webhook verify token (the GET handshake).
    pub verify_token_env: String,
    /// Graph API base URL with version (tests point it at a local fake).
    #[serde(default = "default_graph_url")]
    pub graph_url: String,
    /// Approved template sent instead of free text outside the 24-hour customer-service window;
    /// its one body parameter is the ticket number. Without it, a message outside the window
    /// fails with a clear error in the outbox (the ticket and its email copy are unaffected).
    #[serde(default)]
    pub template: Option<String>,
    /// Language code of that template (WhatsApp's codes: `id`, `en`, `en_US`, …).
    #[serde(default = "default_template_lang")]
    pub template_language: String,
    /// As for Telegram.
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u32,
}

fn default_telegram_api() -> String {
    "https://api.telegram.org".into()
}
fn default_telegram_mode() -> Choice<TelegramMode> {
    Choice::Known(TelegramMode::Polling)
}
fn default_long_poll() -> u32 {
    25
}
fn default_session_minutes() -> u32 {
    120
}
fn default_graph_url() -> String {
    "https://graph.facebook.com/v21.0".into()
}

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
}

fn default_tz() -> String {
    "Asia/Jakarta".into()
}
fn default_lang() -> Choice<Language> {
    Choice::Known(Language::Id)
}
fn default_template_lang() -> String {
    "id".into()
}
fn default_number_format() -> String {
    NumberFormat::DEFAULT.into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// Unique name (`loket ingest --inbox NAME`).
    pub name: String,
    /// The address mail to this inbox is sent to; replies go out from it.
    pub address: String,
    /// IMAP mailbox to watch.
    #[serde(default)]
    pub imap: Option<ImapConfig>,
    /// Maildir directory to watch (`new/` → `cur/`).
    #[serde(default)]
    pub maildir: Option<PathBuf>,
}

/// Where an inbox's mail comes from; the file gives `imap`, `maildir` or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKind<'a> {
    /// An IMAP folder `serve` watches.
    Imap(&'a ImapConfig),
    /// A Maildir `serve` watches.
    Maildir(&'a Path),
    /// Mail arrives only through `loket ingest` (an MTA pipe).
    Pipe,
}

impl InboxKind<'_> {
    /// `imap`, `maildir` or `pipe`: the inbox's kind in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            InboxKind::Imap(_) => "imap",
            InboxKind::Maildir(_) => "maildir",
            InboxKind::Pipe => "pipe",
        }
    }
}

impl InboxConfig {
    /// The inbox's source (the check refuses an inbox with both `imap` and `maildir`).
    pub fn kind(&self) -> InboxKind<'_> {
        match (&self.imap, &self.maildir) {
            (Some(imap), _) => InboxKind::Imap(imap),
            (None, Some(path)) => InboxKind::Maildir(path),
            (None, None) => InboxKind::Pipe,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    /// IMAP host; with `oauth`, the provider's host when left out.
    #[serde(default)]
    pub host: String,
    #[serde(default = "default_imap_port")]
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    #[serde(default = "default_imap_tls")]
    pub tls: TlsMode,
    pub user: String,
    /// Name of the environment variable that holds the password (or give `oauth`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Log in with an OAuth2 bearer token (XOAUTH2 or OAUTHBEARER) instead of a password.
    #[serde(default)]
    pub oauth: Option<crate::oauth::config::OAuthConfig>,
    /// PEM file of extra trusted CA certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Folder to read.
    #[serde(default = "default_folder")]
    pub folder: String,
    /// Folder processed mail is moved to (created when missing). Without it, processed mail is
    /// flagged `\Seen` and `$LoketDone` and stays.
    #[serde(default)]
    pub processed_folder: Option<String>,
    /// Use IDLE when the server offers it (else poll).
    #[serde(default = "yes")]
    pub idle: bool,
    /// Seconds between polls without IDLE, and the longest IDLE before it is renewed.
    #[serde(default = "default_poll_secs")]
    pub poll_interval_secs: u64,
}

fn default_imap_port() -> u16 {
    993
}
fn default_imap_tls() -> TlsMode {
    TlsMode::Tls
}
fn default_folder() -> String {
    "INBOX".into()
}
fn yes() -> bool {
    true
}
fn default_poll_secs() -> u64 {
    60
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
    pub desks: Vec<Desk>,
    /// Every desk's compiled routing rules.
    pub router: Arc<Router>,
    /// Signs and checks agents' reply tokens (None when no desk has agents).
    pub signer: Option<Signer>,
    /// Where the HTTP server listens, if it runs.
    pub http: Option<std::net::SocketAddr>,
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
    pub sla: Option<crate::sla::Sla>,
    pub telegram: Option<Telegram>,
    pub whatsapp: Option<Whatsapp>,
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
    /// Reads, overrides from the environment and checks; relative paths are taken from the
    /// directory of the file.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![ConfigProblem(format!("{}: cannot read: {e}", path.display()))]))?;
        Self::from_toml(path, &text, |k| std::env::var(k).ok())
    }

    /// Checks a configuration text; `env` looks up environment variables.
    pub fn from_toml(path: &Path, text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let file = path.display().to_string();
        let p = |m: String| ConfigProblem(format!("{file}: {m}"));
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| ConfigErrors(vec![p(e.to_string())]))?;
        if let Some(url) = env("LOKET_DATABASE_URL") {
            raw.storage.url = url;
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |q: &Path| if q.is_absolute() { q.to_path_buf() } else { base.join(q) };
        let mut problems = Vec::new();

        // storage
        let url = raw.storage.url.clone();
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.trim_start_matches("//");
            let (file_part, query) = rest.split_once('?').unwrap_or((rest, ""));
            if file_part.is_empty() {
                problems.push(p("storage.url: sqlite URL without a file path".into()));
            } else if file_part != ":memory:" {
                let resolved = resolve(Path::new(file_part));
                let q = if query.is_empty() { String::new() } else { format!("?{query}") };
                raw.storage.url = format!("sqlite://{}{q}", resolved.display());
            }
        } else if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            problems.push(p(format!("storage.url: `{}` must start with sqlite:// or postgres://", redact_url(&url))));
        }
        if raw.storage.max_connections == 0 {
            problems.push(p("storage.max_connections: must be at least 1".into()));
        }

        // outbound
        raw.outbound.directory = resolve(&raw.outbound.directory);
        match (&raw.outbound.transport, &mut raw.outbound.smtp) {
            (TransportKind::Smtp, None) => {
                problems.push(p("outbound.smtp: required when outbound.transport = \"smtp\"".into()))
            }
            (_, Some(smtp)) => {
                let used = raw.outbound.transport == TransportKind::Smtp;
                problems.extend(crate::oauth::config::check_smtp(smtp, used, &env).into_iter().map(p));
                if let Some(var) = &smtp.password_env
                    && env(var).is_none()
                    && raw.outbound.transport == TransportKind::Smtp
                {
                    problems.push(p(format!("outbound.smtp.password_env: environment variable `{var}` is not set")));
                }
                if smtp.oauth.is_none() && smtp.password_env.is_some() != smtp.user.is_some() {
                    problems.push(p("outbound.smtp: `user` and `password_env` go together".into()));
                }
                if let Some(ca) = &smtp.ca_file {
                    smtp.ca_file = Some(resolve(ca));
                }
            }
            _ => {}
        }
        if raw.outbound.max_attempts == 0 {
            problems.push(p("outbound.max_attempts: must be at least 1".into()));
        }
        if raw.limits.max_message_bytes < 1024 {
            problems.push(p("limits.max_message_bytes: must be at least 1024".into()));
        }

        // desks
        if raw.desks.is_empty() {
            problems.push(p("no [[desk]] configured".into()));
        }
        let mut desk_ids = HashSet::new();
        let mut inbox_names = HashSet::new();
        let mut desks = Vec::new();
        for (i, d) in raw.desks.iter().enumerate() {
            let key = format!("desk[{i}] (`{}`)", d.id);
            if !desk_ids.insert(d.id.clone()) {
                problems.push(p(format!("{key}.id: duplicate desk id")));
            }
            if d.code.is_empty() || !d.code.chars().all(|c| c.is_ascii_alphanumeric()) {
                problems.push(p(format!("{key}.code: `{}` must be letters and digits", d.code)));
            }
            let tz = match d.time_zone.parse::<chrono_tz::Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    problems.push(p(format!("{key}.time_zone: unknown time zone `{}`", d.time_zone)));
                    None
                }
            };
            let mut choice_problems = Vec::new();
            let language = d.language.checked(&format!("{key}.language"), &mut choice_problems);
            let nf = NumberFormat::parse(&d.number_format)
                .map_err(|e| problems.push(p(format!("{key}.number_format: {e}"))))
                .ok();
            let catalogue = match Catalogue::load(&resolve(&d.catalogue)) {
                Ok(c) => {
                    if c.desk != d.id {
                        problems.push(p(format!(
                            "{key}.catalogue: {} describes desk `{}`, not `{}`",
                            d.catalogue.display(),
                            c.desk,
                            d.id
                        )));
                    }
                    Some(c)
                }
                Err(errs) => {
                    problems.extend(errs.into_iter().map(|e| p(format!("{key}.catalogue: {e}"))));
                    None
                }
            };
            let mut own = Vec::new();
            for (j, a) in d.addresses.iter().enumerate() {
                match EmailAddress::parse(a) {
                    Ok(a) => own.push(a),
                    Err(e) => problems.push(p(format!("{key}.addresses[{j}]: {e}"))),
                }
            }
            if d.inboxes.is_empty() {
                problems.push(p(format!("{key}: no [[desk.inbox]] configured")));
            }
            let mut inboxes = Vec::new();
            for (j, ib) in d.inboxes.iter().enumerate() {
                let ikey = format!("{key}.inbox[{j}] (`{}`)", ib.name);
                let mut ib = ib.clone();
                if !inbox_names.insert(ib.name.clone()) {
                    problems.push(p(format!("{ikey}.name: duplicate inbox name")));
                }
                match EmailAddress::parse(&ib.address) {
                    Ok(a) => {
                        if !own.contains(&a) {
                            own.push(a)
                        }
                    }
                    Err(e) => problems.push(p(format!("{ikey}.address: {e}"))),
                }
                if ib.imap.is_some() && ib.maildir.is_some() {
                    problems.push(p(format!("{ikey}: give `imap` or `maildir`, not both")));
                }
                if let Some(imap) = &mut ib.imap {
                    let found = crate::oauth::config::check_imap(imap, &env);
                    problems.extend(found.into_iter().map(|e| p(format!("{ikey}.imap.{e}"))));
                    if imap.poll_interval_secs == 0 {
                        problems.push(p(format!("{ikey}.imap.poll_interval_secs: must be at least 1")));
                    }
                    if let Some(ca) = &imap.ca_file {
                        imap.ca_file = Some(resolve(ca));
                    }
                }
                if let Some(m) = &ib.maildir {
                    ib.maildir = Some(resolve(m));
                }
                inboxes.push(ib);
            }
            let mut group_ids = HashSet::new();
            for (j, g) in d.groups.iter().enumerate() {
                let gkey = format!("{key}.group[{j}] (`{}`)", g.id);
                if !group_ids.insert(g.id.to_ascii_lowercase()) {
                    problems.push(p(format!("{gkey}.id: duplicate group id")));
                }
                if !(1..=3).contains(&g.layer) {
                    problems.push(p(format!("{gkey}.layer: must be 1, 2 or 3")));
                }
                for r in &g.routes {
                    let ok = match (r.split_once('/'), &catalogue) {
                        (Some((c, "*")), Some(cat)) => cat.category(c).is_some(),
                        (Some((c, s)), Some(cat)) => cat.subcategory(c, s).is_some(),
                        (None, _) => false,
                        (_, None) => true,
                    };
                    if !ok {
                        problems.push(p(format!(
                            "{gkey}.routes: `{r}` is not a category/subcategory or category/* of the catalogue"
                        )));
                    }
                }
            }
            let mut agents = Vec::new();
            for (j, a) in d.agents.iter().enumerate() {
                let akey = format!("{key}.agent[{j}] (`{}`)", a.address);
                match EmailAddress::parse(&a.address) {
                    Ok(addr) => {
                        if own.contains(&addr) {
                            problems.push(p(format!("{akey}.address: an agent cannot use the desk's own address")));
                        }
                        agents.push(Agent {
                            address: addr,
                            name: a.name.clone(),
                            groups: a.groups.clone(),
                            supervisor: a.supervisor,
                        });
                    }
                    Err(e) => problems.push(p(format!("{akey}.address: {e}"))),
                }
                for g in &a.groups {
                    if !group_ids.contains(&g.to_ascii_lowercase()) {
                        problems.push(p(format!("{akey}.groups: unknown group `{g}`")));
                    }
                }
            }
            if !d.agents.is_empty() && !d.groups.iter().any(|g| g.layer == 1) {
                problems.push(p(format!("{key}: agents are configured but no group has layer = 1")));
            }
            if let Some(pol) = &d.attachments
                && pol.max_bytes == 0
            {
                problems.push(p(format!("{key}.attachments.max_bytes: must be at least 1")));
            }
            let sla = match (&d.sla, tz) {
                (Some(s), Some(tz)) => match crate::sla::Sla::from_config(s, tz, &base) {
                    Ok(s) => Some(s),
                    Err(errs) => {
                        problems.extend(errs.into_iter().map(|e| p(format!("{key}.sla.{e}"))));
                        None
                    }
                },
                _ => None,
            };
            let secret = |field: &str, var: &str, problems: &mut Vec<ConfigProblem>| match env(var) {
                Some(v) if !v.trim().is_empty() => Some(Secret(v.trim().to_string())),
                _ => {
                    problems.push(p(format!("{key}.{field}: environment variable `{var}` is not set")));
                    None
                }
            };
            let telegram = d.telegram.as_ref().and_then(|t| {
                let token = secret("telegram.token_env", &t.token_env, &mut problems);
                let api_url = match reqwest::Url::parse(t.api_url.trim_end_matches('/')) {
                    Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Some(u),
                    _ => {
                        problems.push(p(format!("{key}.telegram.api_url: `{}` is not an http(s) URL", t.api_url)));
                        None
                    }
                };
                let mode = t.mode.checked(&format!("{key}.telegram.mode"), &mut choice_problems);
                let webhook = mode == Some(TelegramMode::Webhook);
                let webhook_secret = match (&t.webhook_secret_env, webhook) {
                    (Some(var), _) => secret("telegram.webhook_secret_env", var, &mut problems),
                    (None, true) => {
                        problems.push(p(format!("{key}.telegram.webhook_secret_env: required in webhook mode")));
                        None
                    }
                    (None, false) => None,
                };
                if webhook && raw.http.is_none() {
                    problems.push(p(format!("{key}.telegram.mode: webhook mode needs the [http] server")));
                }
                if t.poll_timeout_secs > 50 {
                    problems.push(p(format!("{key}.telegram.poll_timeout_secs: at most 50")));
                }
                Some(Telegram {
                    token: token?,
                    api_url: api_url?,
                    mode: mode?,
                    webhook_secret,
                    poll_timeout_secs: t.poll_timeout_secs,
                    session_minutes: t.session_minutes,
                })
            });
            let whatsapp = d.whatsapp.as_ref().and_then(|w| {
                let access_token = secret("whatsapp.access_token_env", &w.access_token_env, &mut problems);
                let app_secret = secret("whatsapp.app_secret_env", &w.app_secret_env, &mut problems);
                let verify_token = secret("whatsapp.verify_token_env", &w.verify_token_env, &mut problems);
                if raw.http.is_none() {
                    problems.push(p(format!("{key}.whatsapp: the webhook needs the [http] server")));
                }
                if w.phone_number_id.is_empty() || !w.phone_number_id.chars().all(|c| c.is_ascii_digit()) {
                    problems.push(p(format!("{key}.whatsapp.phone_number_id: `{}` must be digits", w.phone_number_id)));
                }
                if !(w.graph_url.starts_with("http://") || w.graph_url.starts_with("https://")) {
                    problems.push(p(format!("{key}.whatsapp.graph_url: `{}` is not an http(s) URL", w.graph_url)));
                }
                Some(Whatsapp {
                    phone_number_id: w.phone_number_id.clone(),
                    access_token: access_token?,
                    app_secret: app_secret?,
                    verify_token: verify_token?,
                    graph_url: w.graph_url.trim_end_matches('/').to_string(),
                    template: w.template.clone(),
                    template_language: w.template_language.clone(),
                    session_minutes: w.session_minutes,
                })
            });
            problems.extend(choice_problems.into_iter().map(p));
            if let (Some(tz), Some(nf), Some(catalogue), Some(language)) = (tz, nf, catalogue, language) {
                let reopen_days = d.reopen_days.or(catalogue.reopen_days).unwrap_or(7);
                desks.push(Desk {
                    id: d.id.clone(),
                    name: d.name.clone(),
                    code: d.code.clone(),
                    tz,
                    language,
                    number_format: nf,
                    catalogue,
                    own_addresses: own,
                    inboxes,
                    groups: d.groups.clone(),
                    agents,
                    attachments: d.attachments.clone(),
                    reopen_days,
                    response_promise: d.response_promise.clone(),
                    participants: d.participants,
                    sla,
                    telegram,
                    whatsapp,
                });
            }
        }
        let any_agents = raw.desks.iter().any(|d| !d.agents.is_empty());
        let signer = match &raw.security.token_secret_env {
            Some(var) => match env(var) {
                Some(secret) if secret.len() >= 16 => Some(Signer::new(secret.as_bytes())),
                Some(_) => {
                    problems.push(p(format!("security.token_secret_env: `{var}` must hold at least 16 bytes")));
                    None
                }
                None => {
                    problems.push(p(format!("security.token_secret_env: environment variable `{var}` is not set")));
                    None
                }
            },
            None if any_agents => {
                problems.push(p("security.token_secret_env: required when a desk has agents".into()));
                None
            }
            None => None,
        };
        let http = match &raw.http {
            Some(h) => match h.listen.parse::<std::net::SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    problems.push(p(format!("http.listen: `{}` is not an address:port", h.listen)));
                    None
                }
            },
            None => None,
        };
        let templates = resolve(&raw.templates);
        if let Err(e) = crate::templates::Templates::load(&templates) {
            problems.push(p(format!("templates: {e}")));
        }
        let rules = resolve(&raw.rules);
        let router = match Router::load(&rules, &desks.iter().map(|d| &d.catalogue).collect::<Vec<_>>()) {
            Ok(r) => Some(r),
            Err(errs) => {
                problems.extend(errs.into_iter().map(|e| p(format!("rules: {e}"))));
                None
            }
        };
        match (problems.is_empty(), router) {
            (true, Some(router)) => Ok(Config {
                path: path.to_path_buf(),
                storage: raw.storage,
                outbound: raw.outbound,
                limits: raw.limits,
                templates,
                rules,
                desks,
                router: Arc::new(router),
                signer,
                http,
            }),
            _ => Err(ConfigErrors(problems)),
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
        assert_eq!(cfg.desks[0].agents.len(), 3);
        assert!(cfg.desks[0].sla.is_some() && cfg.http.is_some() && cfg.signer.is_some());
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
