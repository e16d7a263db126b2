//! The text of `loket.toml` and the environment → checked, typed values, reading no other file:
//! the text read into the serde tree ([`super::file`]), secrets and `LOKET_*` overrides from the
//! environment, relative paths resolved against the file's directory, and every check that needs
//! nothing but the text and the environment. The files the text names (catalogues, holidays,
//! rules, templates) are listed in [`Files`] for the load step ([`super::load`]).

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::file::{
    AttachmentPolicy, GroupConfig, InboxConfig, Limits, OutboundConfig, ParticipantPolicy, RawConfig, StorageConfig,
    TelegramMode, TransportKind,
};
use super::{Agent, ConfigErrors, ConfigProblem, Secret, Telegram, Whatsapp, redact_url};
use crate::domain::{EmailAddress, Language};
use crate::sla::Sla;
use crate::ticket::NumberFormat;
use crate::ticket::token::Signer;

/// `loket.toml` read and checked by [`parse`]: its values, and the other files it names.
#[derive(Debug)]
pub struct Parsed {
    /// The file's values, or every problem the text has on its own.
    pub settings: Result<Settings, Vec<ConfigProblem>>,
    /// What the load step reads. Known even when `settings` has problems, so that the problems
    /// of those files are reported together with the text's.
    pub files: Files,
}

/// The values of a file without problems: everything of a [`Config`](super::Config) but what
/// comes from the files it names.
#[derive(Debug, Clone)]
pub struct Settings {
    pub storage: StorageConfig,
    pub outbound: OutboundConfig,
    pub limits: Limits,
    /// One per `[[desk]]`, in the file's order (as [`Files::desks`]).
    pub desks: Vec<DeskSettings>,
    pub signer: Option<Signer>,
    pub http: Option<std::net::SocketAddr>,
    /// `http.public_url` without a trailing slash.
    pub public_url: Option<String>,
}

/// A checked desk: a [`Desk`](super::Desk) without its catalogue and its holidays.
#[derive(Debug, Clone)]
pub struct DeskSettings {
    pub id: String,
    pub name: String,
    pub code: String,
    pub tz: chrono_tz::Tz,
    pub language: Language,
    pub number_format: NumberFormat,
    /// Every address of the desk: its inboxes' and `addresses`.
    pub own_addresses: Vec<EmailAddress>,
    pub inboxes: Vec<InboxConfig>,
    pub groups: Vec<GroupConfig>,
    pub agents: Vec<Agent>,
    pub attachments: Option<AttachmentPolicy>,
    /// As written; without it, the catalogue's `reopen_days`, else 7.
    pub reopen_days: Option<u32>,
    pub response_promise: Option<String>,
    pub participants: ParticipantPolicy,
    /// Lower-cased, without a leading `@`.
    pub participant_domains: Vec<String>,
    /// Checked, without the days of its holiday files.
    pub sla: Option<Sla>,
    pub telegram: Option<Telegram>,
    pub whatsapp: Option<Whatsapp>,
    pub hygiene: crate::mail::hygiene::Policy,
    pub retention: crate::privacy::Retention,
    pub webhooks: Vec<crate::webhook::Subscription>,
}

/// The files `loket.toml` names, resolved against its directory.
#[derive(Debug, Clone)]
pub struct Files {
    /// `loket.toml` itself: every problem names it.
    pub path: PathBuf,
    /// The templates directory.
    pub templates: PathBuf,
    /// The routing rules directory.
    pub rules: PathBuf,
    /// `storage.cache`: where the router keeps what it learned from the rules' labelled messages.
    pub cache: PathBuf,
    /// One per `[[desk]]`, in the file's order.
    pub desks: Vec<DeskFiles>,
    /// `security.token_secret_file`: the load step reads it (or makes it) into the signer.
    pub token_secret: Option<PathBuf>,
}

/// The files of one desk, and what of the text must agree with its catalogue.
#[derive(Debug, Clone)]
pub struct DeskFiles {
    /// How problems name the desk: ``desk[0] (`hero`)``.
    pub key: String,
    pub id: String,
    pub catalogue: PathBuf,
    /// `sla.holidays`.
    pub holidays: Vec<PathBuf>,
    /// Every group's `routes` of the form `category/subcategory` or `category/*`, with the key
    /// that names its group.
    pub routes: Vec<(String, String)>,
}

/// Reads the text into the serde tree. A value outside a closed set (`tls = "ssl"`: any enum of
/// the tree) or an unknown key does not end the reading: it becomes a problem naming the key
/// (and for a closed set the value and the choices) and its line, the entry is dropped so that
/// the key's default stands in (every closed-set key has one; the file is refused all the same),
/// and the reading starts again. So every such problem is reported at once. Any other error
/// (syntax, a wrong type, a missing key) ends the reading and is shown with its line. The
/// problems come in the order of their lines, the one that ended the reading last.
fn read_tree(text: &str) -> (Option<RawConfig>, Vec<String>) {
    let mut table = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => return (None, vec![e.to_string().trim_end().to_string()]),
    };
    let mut found = Vec::new();
    let in_line_order = |mut found: Vec<(usize, String)>| {
        found.sort_by_key(|(line, _)| *line);
        found.into_iter().map(|(_, p)| p).collect::<Vec<_>>()
    };
    loop {
        let mut e = match RawConfig::deserialize(toml::de::Deserializer::from(table.clone())) {
            Ok(raw) => return (Some(raw), in_line_order(found)),
            Err(e) => e,
        };
        let closed_set = e.message().starts_with("unknown variant ");
        if let Some(span) = e.span()
            && let Some(key) = remove_entry_at(table.get_mut(), &span, closed_set, "")
        {
            let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
            found.push((line, format!("{key}: {} (line {line})", e.message().trim_end())));
            continue;
        }
        e.set_input(Some(text));
        let mut problems = in_line_order(found);
        problems.push(e.to_string().trim_end().to_string());
        return (None, problems);
    }
}

/// Removes the entry whose key is written at `span` (an unknown key), or whose value is the
/// string written there when `closed_set`; returns its key as the checks name keys
/// (``desk[0] (`hero`).inbox[1] (`helpdesk`).imap.tls``).
fn remove_entry_at(table: &mut DeTable<'_>, span: &Range<usize>, closed_set: bool, prefix: &str) -> Option<String> {
    let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    let mut hit = None;
    for (k, v) in table.iter_mut() {
        let key = join(k.get_ref());
        if k.span() == *span || (closed_set && v.span() == *span && v.get_ref().is_str()) {
            hit = Some((k.get_ref().to_string(), key));
            break;
        }
        let found = match v.get_mut() {
            DeValue::Table(t) => remove_entry_at(t, span, closed_set, &key),
            DeValue::Array(items) => items.iter_mut().enumerate().find_map(|(i, item)| match item.get_mut() {
                DeValue::Table(t) => {
                    let label = ["id", "name"]
                        .iter()
                        .find_map(|n| t.get(*n).and_then(|v| v.get_ref().as_str()))
                        .map(|l| format!(" (`{l}`)"))
                        .unwrap_or_default();
                    remove_entry_at(t, span, closed_set, &format!("{key}[{i}]{label}"))
                }
                _ => None,
            }),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    let (k, key) = hit?;
    table.remove(k.as_str());
    Some(key)
}

/// Checks a configuration text without reading any other file; `env` looks up environment
/// variables. `Err` only when the text cannot be read as the tree at all; otherwise
/// [`Parsed::settings`] holds the values or every problem.
pub fn parse(path: &Path, text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Parsed, ConfigErrors> {
    let file = path.display().to_string();
    let p = |m: String| ConfigProblem(format!("{file}: {m}"));
    let (raw, tree_problems) = read_tree(text);
    let mut problems: Vec<ConfigProblem> = tree_problems.into_iter().map(p).collect();
    let Some(mut raw) = raw else { return Err(ConfigErrors(problems)) };
    if let Some(url) = env("LOKET_DATABASE_URL") {
        raw.storage.url = url;
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let resolve = |q: &Path| if q.is_absolute() { q.to_path_buf() } else { base.join(q) };

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
    // The files and cache directories, resolved like the SQLite file (their defaults sit beside it).
    raw.storage.files = Some(resolve(&raw.storage.files_dir()));
    raw.storage.cache = Some(resolve(&raw.storage.cache_dir()));

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
    match (&raw.outbound.transport, &raw.outbound.graph) {
        (TransportKind::Graph, None) => {
            problems.push(p("outbound.graph: required when outbound.transport = \"graph\"".into()))
        }
        (TransportKind::Graph, Some(g)) => {
            if let Err(found) = g.oauth(&env) {
                problems.extend(found.into_iter().map(|e| p(format!("outbound.graph.{e}"))));
            }
        }
        _ => {}
    }
    if raw.outbound.max_attempts == 0 {
        problems.push(p("outbound.max_attempts: must be at least 1".into()));
    }
    if !(1..=256).contains(&raw.outbound.concurrency) {
        problems.push(p("outbound.concurrency: must be from 1 to 256".into()));
    }
    if raw.outbound.sender_per_minute == Some(0) {
        problems.push(p("outbound.sender_per_minute: must be at least 1 (leave it out for no limit)".into()));
    }
    // A relay with a provider preset keeps to the provider's own cap unless the file sets one.
    if raw.outbound.sender_per_minute.is_none() {
        let provider = match raw.outbound.transport {
            TransportKind::Smtp => raw.outbound.smtp.as_ref().and_then(|s| s.oauth.as_ref()).map(|o| o.provider),
            TransportKind::Graph => raw.outbound.graph.as_ref().map(|g| g.oauth.provider),
            TransportKind::File => None,
        };
        raw.outbound.sender_per_minute = provider.and_then(crate::oauth::config::Provider::sends_per_minute);
    }
    if !(1..=1000).contains(&raw.limits.batch_messages) {
        problems.push(p("limits.batch_messages: must be from 1 to 1000".into()));
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
    let mut desk_files = Vec::new();
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
        let nf = NumberFormat::parse(&d.number_format)
            .map_err(|e| problems.push(p(format!("{key}.number_format: {e}"))))
            .ok();
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
                    // Every mail the inbox sends carries it in `From`.
                    if let Err(e) = crate::mail::compose::addressable(&a) {
                        problems.push(p(format!("{ikey}.address: {e}")));
                    }
                    if !own.contains(&a) {
                        own.push(a)
                    }
                }
                Err(e) => problems.push(p(format!("{ikey}.address: {e}"))),
            }
            if [ib.imap.is_some(), ib.maildir.is_some(), ib.graph.is_some()].iter().filter(|x| **x).count() > 1 {
                problems.push(p(format!("{ikey}: give one of `imap`, `maildir` and `graph`")));
            }
            if let Some(g) = &ib.graph {
                if let Err(found) = g.oauth(&ib.address, &env) {
                    problems.extend(found.into_iter().map(|e| p(format!("{ikey}.graph.{e}"))));
                }
                if g.poll_interval_secs == 0 {
                    problems.push(p(format!("{ikey}.graph.poll_interval_secs: must be at least 1")));
                }
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
        if d.retention.raw_mail_days == Some(0) || d.retention.closed_ticket_days == Some(0) {
            problems.push(p(format!("{key}.retention: a period is at least 1 day (leave it out to keep forever)")));
        }
        if d.hygiene.spam_score_limit.is_some_and(|l| !l.is_finite()) {
            problems.push(p(format!("{key}.hygiene.spam_score_limit: must be a number")));
        }
        let mut group_ids = HashSet::new();
        let mut routes = Vec::new();
        for (j, g) in d.groups.iter().enumerate() {
            let gkey = format!("{key}.group[{j}] (`{}`)", g.id);
            if !group_ids.insert(g.id.to_ascii_lowercase()) {
                problems.push(p(format!("{gkey}.id: duplicate group id")));
            }
            if !(1..=3).contains(&g.layer) {
                problems.push(p(format!("{gkey}.layer: must be 1, 2 or 3")));
            }
            for r in &g.routes {
                if r.contains('/') {
                    routes.push((gkey.clone(), r.clone()));
                } else {
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
                    // An agent who could be sent no mail would never hear of a ticket.
                    if let Err(e) = crate::mail::compose::addressable(&addr) {
                        problems.push(p(format!("{akey}.address: {e}")));
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
            (Some(s), Some(tz)) => match Sla::from_config(s, tz) {
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
            let webhook = t.mode == TelegramMode::Webhook;
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
                mode: t.mode,
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
            let purposes = [
                ("resolution", &w.templates.resolution),
                ("rating", &w.templates.rating),
                ("reminder", &w.templates.reminder),
            ];
            for (purpose, t) in purposes {
                if let Some(t) = t
                    && (t.name.is_empty()
                        || t.name.len() > 512
                        || !t.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                {
                    problems.push(p(format!(
                        "{key}.whatsapp.templates.{purpose}.name: `{}` is not a WhatsApp template name (a-z, 0-9, _)",
                        t.name
                    )));
                }
            }
            Some(Whatsapp {
                phone_number_id: w.phone_number_id.clone(),
                access_token: access_token?,
                app_secret: app_secret?,
                verify_token: verify_token?,
                graph_url: w.graph_url.trim_end_matches('/').to_string(),
                template: w.template.clone(),
                template_language: w.template_language.clone(),
                templates: w.templates.clone(),
                session_minutes: w.session_minutes,
            })
        });
        let (webhooks, wrong) = check_webhooks(&key, &d.webhooks, &env);
        problems.extend(wrong.into_iter().map(p));
        desk_files.push(DeskFiles {
            key: key.clone(),
            id: d.id.clone(),
            catalogue: resolve(&d.catalogue),
            holidays: d.sla.iter().flat_map(|s| &s.holidays).map(|h| resolve(h)).collect(),
            routes,
        });
        if let (Some(tz), Some(number_format)) = (tz, nf) {
            desks.push(DeskSettings {
                id: d.id.clone(),
                name: d.name.clone(),
                code: d.code.clone(),
                tz,
                language: d.language,
                number_format,
                own_addresses: own,
                inboxes,
                groups: d.groups.clone(),
                agents,
                attachments: d.attachments.clone(),
                reopen_days: d.reopen_days,
                response_promise: d.response_promise.clone(),
                participants: d.participants,
                participant_domains: d
                    .participant_domains
                    .iter()
                    .map(|x| x.trim().trim_start_matches('@').to_ascii_lowercase())
                    .filter(|x| !x.is_empty())
                    .collect(),
                sla,
                telegram,
                whatsapp,
                hygiene: d.hygiene.clone(),
                retention: d.retention,
                webhooks,
            });
        }
    }
    let any_agents = raw.desks.iter().any(|d| !d.agents.is_empty());
    if raw.security.token_secret_env.is_some() && raw.security.token_secret_file.is_some() {
        problems.push(p("security: give `token_secret_env` or `token_secret_file`, not both".into()));
    }
    let token_secret = raw.security.token_secret_file.as_deref().map(resolve);
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
        None if any_agents && token_secret.is_none() => {
            problems
                .push(p("security.token_secret_env (or token_secret_file): required when a desk has agents".into()));
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
    let public_url = raw.http.as_ref().and_then(|h| h.public_url.as_deref()).and_then(|u| {
        let u = u.trim().trim_end_matches('/');
        let ok = (u.starts_with("https://") || u.starts_with("http://"))
            && u.len() > "https://".len()
            && !u.contains(|c: char| c.is_whitespace() || c == '?' || c == '#');
        if !ok {
            problems.push(p(format!("http.public_url: `{u}` is not an http(s) URL without query or fragment")));
        }
        ok.then(|| u.to_string())
    });
    let files = Files {
        path: path.to_path_buf(),
        templates: resolve(&raw.templates),
        rules: resolve(&raw.rules),
        cache: raw.storage.cache_dir(),
        desks: desk_files,
        token_secret,
    };
    let settings = if problems.is_empty() {
        Ok(Settings {
            storage: raw.storage,
            outbound: raw.outbound,
            limits: raw.limits,
            desks,
            signer,
            http,
            public_url,
        })
    } else {
        Err(problems)
    };
    Ok(Parsed { settings, files })
}

/// `[[desk.webhooks]]` checked: http(s) URLs, each once per desk; events from the closed set;
/// the secret from the environment (at least 16 bytes); bounded timeout and give-up time. Returns
/// the subscriptions and every problem (with `key`, the desk's place in the file).
fn check_webhooks(
    key: &str,
    raw: &[super::file::WebhookConfig],
    env: &impl Fn(&str) -> Option<String>,
) -> (Vec<crate::webhook::Subscription>, Vec<String>) {
    use crate::webhook::{DEFAULT_GIVE_UP_HOURS, DEFAULT_TIMEOUT_SECS, EventType, MAX_TIMEOUT_SECS, Subscription};
    let mut subs = Vec::new();
    let mut problems = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for (i, w) in raw.iter().enumerate() {
        let wkey = format!("{key}.webhooks[{i}]");
        let url = match reqwest::Url::parse(&w.url) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => Some(u),
            _ => {
                problems.push(format!("{wkey}.url: `{}` is not an http(s) URL", redact_url(&w.url)));
                None
            }
        };
        if let Some(u) = &url
            && !keys.insert(crate::webhook::subscription_key(u.as_str()))
        {
            problems.push(format!("{wkey}.url: the desk already has a subscription to this URL"));
        }
        let mut events = Vec::new();
        if w.events.is_empty() {
            problems.push(format!("{wkey}.events: name at least one event"));
        }
        for e in &w.events {
            match EventType::parse(e.trim()) {
                Some(e) if !events.contains(&e) => events.push(e),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                    problems.push(format!("{wkey}.events: unknown event `{e}`; known: {}", known.join(", ")));
                }
            }
        }
        let secret = match env(&w.secret_env) {
            Some(v) if v.trim().len() >= 16 => Some(Secret(v.trim().to_string())),
            Some(_) => {
                problems.push(format!("{wkey}.secret_env: `{}` must hold at least 16 bytes", w.secret_env));
                None
            }
            None => {
                problems.push(format!("{wkey}.secret_env: environment variable `{}` is not set", w.secret_env));
                None
            }
        };
        let timeout = w.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
        if !(1..=MAX_TIMEOUT_SECS).contains(&timeout) {
            problems.push(format!("{wkey}.timeout_secs: between 1 and {MAX_TIMEOUT_SECS}"));
        }
        let give_up = w.give_up_after_hours.unwrap_or(DEFAULT_GIVE_UP_HOURS);
        if !(1..=24 * 30).contains(&give_up) {
            problems.push(format!("{wkey}.give_up_after_hours: between 1 and 720 (30 days)"));
        }
        if let (Some(url), Some(secret)) = (url, secret) {
            subs.push(Subscription {
                url,
                events,
                secret,
                timeout: std::time::Duration::from_secs(timeout),
                give_up_after: std::time::Duration::from_secs(give_up * 3600),
            });
        }
    }
    (subs, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A desk whose catalogue, holidays, rules and templates exist nowhere.
    const NOWHERE: &str = "/nonexistent-loket-config/loket.toml";

    fn problems(text: &str) -> Vec<String> {
        let out = match parse(Path::new(NOWHERE), text, |_| None) {
            Ok(Parsed { settings: Err(problems), .. }) => problems,
            Ok(Parsed { settings: Ok(_), .. }) => panic!("no problem found in {text}"),
            Err(ConfigErrors(problems)) => problems,
        };
        out.into_iter().map(|p| p.0).collect()
    }

    #[test]
    fn every_value_outside_a_closed_set_is_reported_with_the_other_problems() {
        let text = "[storage]\nsqlite_synchronous = \"off\"\n\
                    [outbound]\ntransport = \"pigeon\"\n\
                    [outbound.smtp]\nhost = \"h\"\ntls = \"ssl\"\n\
                    [limits]\nmax_message_bytes = 10\n\
                    [[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HE RO\"\nlanguage = \"fr\"\n\
                    participants = \"everyone\"\ncatalogue = \"seeds/hero.toml\"\n\
                    [desk.telegram]\ntoken_env = \"TG\"\nmode = \"push\"\n\
                    [[desk.inbox]]\nname = \"a\"\naddress = \"hero@example.test\"\n\
                    [desk.inbox.imap]\nhost = \"h\"\ntls = \"ssl3\"\nuser = \"u\"\npassword_env = \"P\"\n";
        let all = problems(text);
        for needle in [
            "storage.sqlite_synchronous: unknown variant `off`, expected `full` or `normal`",
            "outbound.transport: unknown variant `pigeon`, expected one of `smtp`, `file`, `graph`",
            "outbound.smtp.tls: unknown variant `ssl`, expected one of `none`, `starttls`, `tls`",
            "desk[0] (`hero`).language: unknown variant `fr`, expected `id` or `en`",
            "desk[0] (`hero`).participants: unknown variant `everyone`, expected one of `off`, `same-domain`, `all`",
            "desk[0] (`hero`).telegram.mode: unknown variant `push`, expected `polling` or `webhook`",
            "desk[0] (`hero`).inbox[0] (`a`).imap.tls: unknown variant `ssl3`, expected one of `none`, `starttls`, `tls`",
            "limits.max_message_bytes: must be at least 1024",
            "desk[0] (`hero`).code: `HE RO` must be letters and digits",
            "desk[0] (`hero`).telegram.token_env: environment variable `TG` is not set",
            "desk[0] (`hero`).inbox[0] (`a`).imap.password_env: environment variable `P` is not set",
        ] {
            let hits = all.iter().filter(|p| p.contains(needle)).count();
            assert_eq!(hits, 1, "{needle} in {all:#?}");
        }
        assert!(all.iter().all(|p| p.starts_with(&format!("{NOWHERE}: "))), "{all:#?}");
    }

    #[test]
    fn addresses_no_mail_can_be_sent_from_or_to_are_refused() {
        let text = "[security]\ntoken_secret_env = \"PATH\"\n\
                    [[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HERO\"\ncatalogue = \"seeds/hero.toml\"\n\
                    [[desk.group]]\nid = \"l1\"\nname = \"L1\"\nlayer = 1\n\
                    [[desk.agent]]\naddress = \"agus..santoso@example.test\"\nname = \"Agus\"\ngroups = [\"l1\"]\n\
                    [[desk.inbox]]\nname = \"a\"\naddress = \"hero@-desk.test\"\n";
        let all = problems(text);
        for needle in [
            "desk[0] (`hero`).agent[0] (`agus..santoso@example.test`).address: address `agus..santoso@example.test` \
             cannot be used in a header",
            "desk[0] (`hero`).inbox[0] (`a`).address: address `hero@-desk.test` cannot be used in a header",
        ] {
            let hits = all.iter().filter(|p| p.contains(needle)).count();
            assert_eq!(hits, 1, "{needle} in {all:#?}");
        }
    }

    #[test]
    fn webhook_subscriptions_are_checked_with_every_problem_named() {
        let desk = "[[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HERO\"\ncatalogue = \"seeds/hero.toml\"\n";
        let hook = |url: &str, events: &str, secret: &str, extra: &str| {
            format!("[[desk.webhooks]]\nurl = \"{url}\"\nevents = [{events}]\nsecret_env = \"{secret}\"\n{extra}")
        };
        let text = format!(
            "{desk}{}{}{}",
            hook("ftp://x.test/", "\"ticket.created\", \"ticket.deleted\"", "NOPE", "timeout_secs = 0\n"),
            hook("https://glpi.test/hook", "", "SHORT", "give_up_after_hours = 0\n"),
            hook("https://glpi.test/hook", "\"ticket.rated\"", "GOOD", ""),
        );
        let env = |k: &str| match k {
            "SHORT" => Some("short".to_string()),
            "GOOD" => Some("a-secret-of-enough-length".to_string()),
            _ => None,
        };
        let all = match parse(Path::new(NOWHERE), &text, env) {
            Ok(Parsed { settings: Err(problems), .. }) | Err(ConfigErrors(problems)) => {
                problems.into_iter().map(|p| p.0).collect::<Vec<_>>()
            }
            Ok(Parsed { settings: Ok(_), .. }) => panic!("no problem found"),
        };
        for needle in [
            "desk[0] (`hero`).webhooks[0].url: `ftp://x.test/` is not an http(s) URL",
            "desk[0] (`hero`).webhooks[0].events: unknown event `ticket.deleted`; known: ticket.created, \
             ticket.replied, ticket.status_changed, ticket.sla_warning, ticket.sla_breach, ticket.rated",
            "desk[0] (`hero`).webhooks[0].secret_env: environment variable `NOPE` is not set",
            "desk[0] (`hero`).webhooks[0].timeout_secs: between 1 and 60",
            "desk[0] (`hero`).webhooks[1].events: name at least one event",
            "desk[0] (`hero`).webhooks[1].secret_env: `SHORT` must hold at least 16 bytes",
            "desk[0] (`hero`).webhooks[1].give_up_after_hours: between 1 and 720",
            "desk[0] (`hero`).webhooks[2].url: the desk already has a subscription to this URL",
        ] {
            assert_eq!(all.iter().filter(|p| p.contains(needle)).count(), 1, "{needle} in {all:#?}");
        }
        assert!(!all.iter().any(|p| p.contains("a-secret-of")), "a secret in a message: {all:#?}");
    }

    #[test]
    fn closed_sets_and_unknown_keys_are_reported_together_and_other_errors_end_the_reading() {
        // Read in the order of the keys (outbound before storage), reported in the order of the lines.
        let text = "[storage]\nsqlite_synchronous = \"off\"\nurl = 5\n\
                    [outbound]\ntransport = \"x\"\nurll = 1\n[limits]\nmax_message_bytes = 10\n";
        let all = problems(text);
        assert_eq!(all.len(), 4, "the checks of values wait for a tree read whole: {all:#?}");
        for (i, needle) in [
            "storage.sqlite_synchronous: unknown variant `off`, expected `full` or `normal` (line 2)",
            "outbound.transport: unknown variant `x`, expected one of `smtp`, `file`, `graph` (line 5)",
            "outbound.urll: unknown field `urll`, expected one of `transport`,",
            "line 3",
        ]
        .into_iter()
        .enumerate()
        {
            assert!(all[i].contains(needle), "{needle} in {all:#?}");
        }
        assert!(all[2].ends_with("(line 6)"), "{all:#?}");
        assert!(all[3].contains("invalid type: integer `5`"), "a wrong type ends the reading: {all:#?}");
        let all = problems("[storage\n");
        assert!(all.len() == 1 && all[0].contains("line 1"), "{all:#?}");
    }

    #[test]
    fn a_microsoft_relay_keeps_to_thirty_mails_a_minute_per_mailbox_unless_the_file_says_otherwise() {
        let rate = |extra: &str| {
            let text = format!(
                "[outbound]\ntransport = \"smtp\"\n{extra}[outbound.smtp]\nhost = \"127.0.0.1\"\nuser = \"hero@example.test\"\n\
                 [outbound.smtp.oauth]\nprovider = \"microsoft365\"\ntenant = \"contoso.onmicrosoft.com\"\n\
                 client_id = \"app\"\nclient_secret_env = \"S\"\n\
                 [[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HERO\"\ncatalogue = \"seeds/hero.toml\"\n\
                 [[desk.inbox]]\nname = \"hero\"\naddress = \"hero@example.test\"\n"
            );
            let env = |k: &str| (k == "S").then(|| "secret".to_string());
            match parse(Path::new(NOWHERE), &text, env) {
                Ok(Parsed { settings: Ok(s), .. }) => s.outbound.sender_per_minute,
                Ok(Parsed { settings: Err(p), .. }) => panic!("{p:?}"),
                Err(ConfigErrors(p)) => panic!("{p:?}"),
            }
        };
        assert_eq!(rate(""), Some(30));
        assert_eq!(rate("sender_per_minute = 100\n"), Some(100));
        let zero = problems("[outbound]\nsender_per_minute = 0\n");
        assert_eq!(zero.iter().filter(|p| p.contains("outbound.sender_per_minute: must be at least 1")).count(), 1);
    }

    #[test]
    fn parsing_reads_no_file_and_lists_the_files_to_load() {
        let text = "templates = \"tpl\"\nrules = \"/elsewhere/rules\"\n\
                    [[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HERO\"\ncatalogue = \"seeds/hero.toml\"\n\
                    [desk.sla]\nhours = { weekdays = \"08:00-16:00\" }\nholidays = [\"seeds/holidays-id.toml\"]\n\
                    response = \"1h\"\n\
                    [[desk.group]]\nid = \"l1\"\nname = \"L1\"\nroutes = [\"akun/*\", \"nonsense\"]\n\
                    [[desk.inbox]]\nname = \"a\"\naddress = \"hero@example.test\"\n";
        let Parsed { settings, files } = parse(Path::new(NOWHERE), text, |_| None).unwrap();
        let all: Vec<String> = settings.unwrap_err().into_iter().map(|p| p.0).collect();
        assert_eq!(all.len(), 1, "only the route without a slash is wrong without the catalogue: {all:#?}");
        assert!(all[0].contains("group[0] (`l1`).routes: `nonsense`"), "{all:#?}");

        let ok = text.replace(", \"nonsense\"", "");
        let Parsed { settings, files: ok_files } = parse(Path::new(NOWHERE), &ok, |_| None).unwrap();
        let settings = settings.unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(settings.desks.len(), 1);
        assert!(
            settings.desks[0].sla.as_ref().unwrap().working.holidays.is_empty(),
            "holidays come with the load step"
        );
        let dir = Path::new("/nonexistent-loket-config");
        for f in [&files, &ok_files] {
            assert_eq!(f.templates, dir.join("tpl"));
            assert_eq!(f.rules, Path::new("/elsewhere/rules"));
            assert_eq!(f.desks[0].catalogue, dir.join("seeds/hero.toml"));
            assert_eq!(f.desks[0].holidays, [dir.join("seeds/holidays-id.toml")]);
            assert_eq!(f.desks[0].routes, [("desk[0] (`hero`).group[0] (`l1`)".to_string(), "akun/*".to_string())]);
        }
    }
}
