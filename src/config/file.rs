//! The serde tree of `loket.toml`: [`RawConfig`] and its sections, `deny_unknown_fields`, a doc
//! comment and a default per key. Values only; [`super::check`] turns them into checked ones.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::Language;
use crate::ticket::NumberFormat;

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
    /// Directory of the content-addressed files: raw mail and chat files (`ab/<sha256>`).
    /// Default: `files` beside the SQLite file, `var/files` with PostgreSQL. Instances sharing a
    /// PostgreSQL store must share it too (one path on shared storage).
    #[serde(default)]
    pub files: Option<PathBuf>,
    /// Directory of what Loket can make again and keeps to start faster: the second opinions
    /// learned from `rules/labelled/` (`routing::learned`). Default: `cache` beside the SQLite
    /// file, `var/cache` with PostgreSQL.
    #[serde(default)]
    pub cache: Option<PathBuf>,
    /// Seconds a file no row references is kept before the sweep deletes it (a file written for
    /// a transaction that has not committed yet must outlive the transaction).
    #[serde(default = "default_files_grace")]
    pub files_grace_secs: u64,
    /// How a transaction's files reach the disk before it commits: `each_file` (default; each
    /// file and directory flushed, in parallel) or `file_system` (two `syncfs` calls for all of
    /// them, Linux; faster, but they also flush whatever else is waiting on that file system).
    #[serde(default)]
    pub files_flush: FilesFlush,
}

/// How the files directory flushes a transaction's files (`storage.files_flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilesFlush {
    /// Each file, then each directory (in parallel).
    #[default]
    EachFile,
    /// The whole file system at once (`syncfs`), where the platform has it.
    FileSystem,
}

fn default_files_grace() -> u64 {
    3600
}

impl StorageConfig {
    /// The files directory: `files` when given, else `files` beside the SQLite file, else
    /// `var/files`.
    pub fn files_dir(&self) -> PathBuf {
        self.files.clone().unwrap_or_else(|| self.beside_the_store("files"))
    }

    /// The cache directory: `cache` when given, else `cache` beside the SQLite file, else
    /// `var/cache`.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(|| self.beside_the_store("cache"))
    }

    /// `name` in the SQLite file's directory, else in `var`.
    fn beside_the_store(&self, name: &str) -> PathBuf {
        let sqlite = self.url.strip_prefix("sqlite:").map(|r| r.trim_start_matches("//"));
        match sqlite.map(|r| r.split_once('?').map_or(r, |(f, _)| f)) {
            Some(file) if !file.is_empty() && file != ":memory:" => {
                Path::new(file).parent().map_or_else(|| PathBuf::from(name), |d| d.join(name))
            }
            _ => Path::new("var").join(name),
        }
    }
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
        Self {
            url: default_db_url(),
            max_connections: default_pool(),
            sqlite_synchronous: SqliteSynchronous::Full,
            files: None,
            cache: None,
            files_grace_secs: default_files_grace(),
            files_flush: FilesFlush::EachFile,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Deliver over SMTP (`[outbound.smtp]`).
    Smtp,
    /// Write one `.eml` file per message into `outbound.directory` (demo, tests).
    File,
    /// Send through Microsoft Graph's `sendMail` from each message's sender mailbox
    /// (`[outbound.graph]`).
    Graph,
}

/// `[outbound.graph]`: the app that sends through Graph (`provider = "microsoft365"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphRelayConfig {
    /// The mailbox the credential is for (with client credentials, the app may send as every
    /// mailbox its access policy allows; each message goes from its own sender).
    pub user: String,
    /// Graph's base URL instead of `https://graph.microsoft.com` (tests, national clouds).
    #[serde(default)]
    pub endpoint: Option<String>,
    pub oauth: crate::oauth::config::OAuthConfig,
}

impl GraphRelayConfig {
    /// The checked OAuth block of the sending app (see `oauth::config::graph_oauth`).
    pub fn oauth(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<crate::oauth::config::OAuth, Vec<String>> {
        crate::oauth::config::graph_oauth(&self.oauth, self.endpoint.as_deref(), &self.user, env)
    }
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
    /// Microsoft Graph for the `graph` transport.
    #[serde(default)]
    pub graph: Option<GraphRelayConfig>,
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
    /// Messages one worker delivers at once (also the relay's connection pool: each connection
    /// carries many messages, one after the other).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Messages one sender mailbox may send a minute, where the provider caps it (Exchange
    /// Online: 30); rows over it wait for room (back-pressure, no failed attempt). Off by default.
    #[serde(default)]
    pub sender_per_minute: Option<u32>,
    /// Most bytes of files one outbound mail carries (the requester's files with an agent
    /// notification, an agent's files relayed to the requester); a file past it is left out
    /// with a note naming it (and, for agents, `loket tickets attachment NUMBER N`).
    #[serde(default = "default_attachment_budget")]
    pub attachment_budget_bytes: usize,
}

fn default_concurrency() -> usize {
    16
}

fn default_attachment_budget() -> usize {
    10 * 1024 * 1024
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
            concurrency: default_concurrency(),
            sender_per_minute: None,
            graph: None,
            attachment_budget_bytes: default_attachment_budget(),
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
    /// Tickets one agent may open for other people (`#requester`, a forwarded mail) within an
    /// hour. Past it, the agent's mail opens a ticket of their own and they are told why: a
    /// stolen agent mailbox cannot make the desk acknowledge strangers without bound.
    #[serde(default = "default_behalf")]
    pub behalf_tickets_per_agent_per_hour: u32,
    /// Most messages of one intake round (an IMAP fetch, a Maildir scan) recorded in one store
    /// transaction (group commit); a quiet inbox's round is one message.
    #[serde(default = "default_batch")]
    pub batch_messages: usize,
    /// Requests one ticket-API key gains a minute (its token bucket's refill).
    #[serde(default = "default_api_rate")]
    pub api_requests_per_minute: u32,
    /// Requests one ticket-API key may make at once (its token bucket's size).
    #[serde(default = "default_api_burst")]
    pub api_burst: u32,
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
fn default_behalf() -> u32 {
    30
}
fn default_batch() -> usize {
    64
}
fn default_api_rate() -> u32 {
    120
}
fn default_api_burst() -> u32 {
    60
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: default_max_message(),
            auto_replies_per_sender_per_hour: default_rate(),
            new_tickets_per_sender_per_hour: default_new_tickets(),
            agent_notifications_per_sender_per_hour: default_notifications(),
            behalf_tickets_per_agent_per_hour: default_behalf(),
            batch_messages: default_batch(),
            api_requests_per_minute: default_api_rate(),
            api_burst: default_api_burst(),
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
    /// The server's public base URL (`https://helpdesk.example.go.id`): acknowledgements link to the
    /// ticket's tracking page under it (`/lacak/NUMBER`). Without it they name the number only.
    #[serde(default)]
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Environment variable holding the secret that signs agents' reply tokens (required when a
    /// desk has agents; at least 16 bytes).
    #[serde(default)]
    pub token_secret_env: Option<String>,
    /// Or a file holding that secret, private to the service's user: made (32 random bytes, as
    /// hex, mode 0600) the first time the configuration is loaded without it.
    #[serde(default)]
    pub token_secret_file: Option<PathBuf>,
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
    pub language: Language,
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
    /// Domains whose addresses in To/Cc of a request are admitted as participants besides what
    /// `participants` admits (partner offices), unless `participants = "off"`.
    #[serde(default)]
    pub participant_domains: Vec<String>,
    /// Working calendar and service-level targets.
    #[serde(default)]
    pub sla: Option<crate::sla::SlaConfig>,
    /// The desk's Telegram bot.
    #[serde(default)]
    pub telegram: Option<TelegramConfig>,
    /// The desk's WhatsApp Business number (Cloud API).
    #[serde(default)]
    pub whatsapp: Option<WhatsappConfig>,
    /// Hygiene for public addresses: spam and DMARC failures (`[desk.hygiene]`, see
    /// `mail::hygiene`).
    #[serde(default)]
    pub hygiene: crate::mail::hygiene::Policy,
    /// How long personal data is kept (`[desk.retention]`, see `privacy::Retention`).
    #[serde(default)]
    pub retention: crate::privacy::Retention,
    /// Outbound webhooks (`[[desk.webhooks]]`): signed POSTs of ticket events to other systems.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// `[[desk.webhooks]]`: one receiver of the desk's ticket events (see `webhook`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where the events are POSTed (http or https).
    pub url: String,
    /// The events sent: `ticket.created`, `ticket.replied`, `ticket.status_changed`,
    /// `ticket.sla_warning`, `ticket.sla_breach`, `ticket.rated`.
    pub events: Vec<String>,
    /// Environment variable holding the signing secret (at least 16 bytes).
    pub secret_env: String,
    /// Seconds one POST may take (default 10, at most 60).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Hours an event is retried before it is given up (default 72).
    #[serde(default)]
    pub give_up_after_hours: Option<u64>,
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
    pub mode: TelegramMode,
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
    /// Approved templates per purpose, sent outside the 24-hour window instead of `template`
    /// (`[desk.whatsapp.templates.resolution]`, `.rating`, `.reminder`).
    #[serde(default)]
    pub templates: WhatsappTemplates,
}

/// `[desk.whatsapp.templates]`: the approved template for each purpose outside the 24-hour
/// window; a purpose without one uses `template`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappTemplates {
    /// The resolution notice (and the question whether the answer helped).
    pub resolution: Option<ApprovedTemplate>,
    /// The closing message that asks for a rating.
    pub rating: Option<ApprovedTemplate>,
    /// The reminder of a ticket waiting for the requester.
    pub reminder: Option<ApprovedTemplate>,
}

/// One approved WhatsApp template: its name, language, and the values of its body parameters
/// in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovedTemplate {
    pub name: String,
    #[serde(default = "default_template_lang")]
    pub language: String,
    #[serde(default = "default_template_params")]
    pub params: Vec<TemplateParam>,
}

/// A value a template's body parameter takes from the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateParam {
    /// The ticket number.
    Number,
    /// The ticket's subject.
    Subject,
    /// The requester's name (empty when unknown).
    Name,
    /// The desk's name.
    Desk,
}

fn default_template_params() -> Vec<TemplateParam> {
    vec![TemplateParam::Number]
}

fn default_telegram_api() -> String {
    "https://api.telegram.org".into()
}
fn default_telegram_mode() -> TelegramMode {
    TelegramMode::Polling
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

fn default_tz() -> String {
    "Asia/Jakarta".into()
}
fn default_lang() -> Language {
    Language::Id
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
    /// First-connection cut-off (`YYYY-MM-DD`, midnight in the desk's time zone): mail that
    /// arrived before it (older mail already in the folder) is recorded without an
    /// acknowledgement.
    #[serde(default)]
    pub since: Option<chrono::NaiveDate>,
    /// A Microsoft 365 mailbox read through Microsoft Graph (for tenants without IMAP).
    #[serde(default)]
    pub graph: Option<GraphConfig>,
}

/// `[desk.inbox.graph]`: a mailbox read by Graph delta queries; a message is moved to
/// `processed_folder` only after its commit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// The mailbox (its address or user id); the inbox's address when left out.
    #[serde(default)]
    pub user: Option<String>,
    /// The folder read (a well-known name such as `inbox`, or a folder id).
    #[serde(default = "default_graph_folder")]
    pub folder: String,
    /// Where a message goes once committed (created when missing).
    #[serde(default = "default_graph_processed")]
    pub processed_folder: String,
    /// Seconds between delta queries.
    #[serde(default = "default_graph_poll")]
    pub poll_interval_secs: u64,
    /// Graph's base URL instead of `https://graph.microsoft.com` (tests, national clouds).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The app registration (`provider = "microsoft365"`); its token is asked for Graph.
    pub oauth: crate::oauth::config::OAuthConfig,
}

impl GraphConfig {
    /// The mailbox read: `user`, else the inbox's address.
    pub fn mailbox<'a>(&'a self, inbox_address: &'a str) -> &'a str {
        self.user.as_deref().unwrap_or(inbox_address)
    }

    /// The checked OAuth block for this inbox's mailbox (see `oauth::config::graph_oauth`).
    pub fn oauth(
        &self,
        inbox_address: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<crate::oauth::config::OAuth, Vec<String>> {
        crate::oauth::config::graph_oauth(&self.oauth, self.endpoint.as_deref(), self.mailbox(inbox_address), env)
    }
}

fn default_graph_folder() -> String {
    "inbox".into()
}
fn default_graph_processed() -> String {
    "Processed".into()
}
fn default_graph_poll() -> u64 {
    30
}

/// Where an inbox's mail comes from; the file gives `imap`, `maildir`, `graph` or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKind<'a> {
    /// An IMAP folder `serve` watches.
    Imap(&'a ImapConfig),
    /// A Maildir `serve` watches.
    Maildir(&'a Path),
    /// A Microsoft 365 mailbox `serve` reads through Graph.
    Graph(&'a GraphConfig),
    /// Mail arrives only through `loket ingest` (an MTA pipe).
    Pipe,
}

impl InboxKind<'_> {
    /// `imap`, `maildir` or `pipe`: the inbox's kind in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            InboxKind::Imap(_) => "imap",
            InboxKind::Maildir(_) => "maildir",
            InboxKind::Graph(_) => "graph",
            InboxKind::Pipe => "pipe",
        }
    }
}

impl InboxConfig {
    /// The inbox's source (the check refuses an inbox with more than one).
    pub fn kind(&self) -> InboxKind<'_> {
        match (&self.imap, &self.maildir, &self.graph) {
            (Some(imap), _, _) => InboxKind::Imap(imap),
            (None, Some(path), _) => InboxKind::Maildir(path),
            (None, None, Some(graph)) => InboxKind::Graph(graph),
            (None, None, None) => InboxKind::Pipe,
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
