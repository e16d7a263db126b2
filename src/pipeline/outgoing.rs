//! Outbound mail inside the pipeline's transaction: the template context of a ticket, the thread
//! headers, the per-sender limit on automatic replies (with one notice when it is reached), the
//! signed Message-IDs of agent notifications, and the outbox row.

use serde_json::json;

use super::{Here, Pipeline, PipelineError};
use crate::config::Agent;
use crate::domain::{Channel, Direction, EmailAddress, Language};
use crate::mail::compose;
use crate::mail::parse::{ParsedMail, sha256_hex};
use crate::store::{self, Ticket};
use crate::templates::{DeskCtx, MailContext, PersonCtx, TicketCtx};

/// A fresh, unguessable Message-ID part: outbound ids are unique by construction, never a hash
/// of time and counts (two messages of one transaction would collide).
fn fresh_unique() -> String {
    let mut bytes = [0u8; 10];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: a process-wide counter with the clock still never repeats here.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = format!("{}|{}|{}", std::process::id(), nanos.as_nanos(), n);
        return sha256_hex(seed.as_bytes())[..16].to_string();
    }
    hex::encode(bytes)[..16].to_string()
}

/// One message to queue.
pub(crate) struct OutMail {
    pub template: &'static str,
    pub to: EmailAddress,
    pub to_name: Option<String>,
    pub lang: Language,
    pub ctx: MailContext,
    /// `Auto-Submitted: auto-replied` and counted against the per-sender limit.
    pub auto_reply: bool,
    /// `Auto-Submitted: auto-generated` (notifications to agents).
    pub auto_generated: bool,
    /// Sign the Message-ID for this agent.
    pub token_for: Option<EmailAddress>,
    pub thread: Thread,
    /// Automatic replies sent to `to` in the last hour, when the caller already counted them.
    pub auto_replies_last_hour: Option<i64>,
    /// The stored message whose accepted files travel with this one (the requester's files to
    /// the agents, an agent's files to the requester), within `outbound.attachment_budget_bytes`.
    pub files_from: Option<i64>,
}

/// Where a message goes in its recipient's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Thread {
    /// Under the ids this recipient has already seen on the ticket (looked up in the store).
    Seen,
    /// Under the mail being answered: its Message-ID and References.
    Answering(String, Vec<String>),
    /// The first message of a ticket opened in this transaction: nothing to thread under.
    Fresh,
}

/// What the caller already knows about a message to the agents, so that the store is not asked
/// again in the same transaction.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Known {
    /// Inbound messages from the sender in the last hour, this one included.
    pub inbound_last_hour: Option<i64>,
    /// The ticket was opened in this transaction.
    pub new_ticket: bool,
    /// The stored message whose files go with the notifications.
    pub files_from: Option<i64>,
}

/// Megabytes with one decimal, for the notes about files.
fn mb(bytes: i64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

impl OutMail {
    /// A message to the ticket's requester in the ticket's language.
    pub fn to_requester(t: &Ticket, template: &'static str, ctx: MailContext) -> Self {
        Self {
            template,
            to: t.requester_address.clone(),
            to_name: t.requester_name.clone(),
            lang: t.language,
            ctx,
            auto_reply: true,
            auto_generated: false,
            token_for: None,
            thread: Thread::Seen,
            auto_replies_last_hour: None,
            files_from: None,
        }
    }

    /// A message to an agent in the desk's language, with a signed Message-ID.
    pub fn to_agent(agent: &Agent, lang: Language, template: &'static str, mut ctx: MailContext) -> Self {
        ctx.agent = PersonCtx { name: agent.name.clone(), address: agent.address.to_string() };
        Self {
            template,
            to: agent.address.clone(),
            to_name: Some(agent.name.clone()),
            lang,
            ctx,
            auto_reply: false,
            auto_generated: true,
            token_for: Some(agent.address.clone()),
            thread: Thread::Seen,
            auto_replies_last_hour: None,
            files_from: None,
        }
    }

    /// Threads the message under `mail`.
    pub fn answering(mut self, mail: &ParsedMail) -> Self {
        if let Some(id) = &mail.message_id {
            self.thread = Thread::Answering(id.clone(), mail.references.clone());
        }
        self
    }

    /// Carries the accepted files of stored message `row` (None: none).
    pub fn with_files(mut self, row: Option<i64>) -> Self {
        self.files_from = row;
        self
    }

    /// A human's words relayed (agent replies): not marked automatic, not rate-limited.
    pub fn personal(mut self) -> Self {
        self.auto_reply = false;
        self
    }
}

impl Pipeline {
    /// Queues a mail that belongs to no ticket (an operators' alert, a chat address's code):
    /// `template` rendered in `lang` (text and HTML), sent from the inbox of `h` to `to`, with
    /// its outbox row in `tx`. `label` stands where a ticket number would (the subject tag);
    /// `seed` makes the Message-ID, so the same seed gives the same mail.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn queue_ticketless(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        to: &EmailAddress,
        to_name: Option<&str>,
        (template, lang, ctx): (&str, Language, &MailContext),
        label: &str,
        seed: &str,
    ) -> Result<(), PipelineError> {
        let desk = h.desk;
        let rendered = self.templates.render(lang, template, ctx)?;
        let html = self.templates.render_html(lang, &desk.name, &rendered, &[])?;
        let unique = sha256_hex(seed.as_bytes())[..16].to_string();
        let built = compose::reply(&compose::ReplySpec {
            from_name: &desk.name,
            from: &h.inbox_addr,
            to_name,
            to,
            ticket_number: label,
            in_reply_to: None,
            references: &[],
            text: &rendered,
            unique: &unique,
            now_ms: h.now,
            auto_replied: false,
            auto_generated: true,
            message_id: None,
            html: &html,
            files: &[],
        })?;
        record_mail(tx, self.store.files(), h, None, to, &built, Some(&built.raw), template, false).await?;
        Ok(())
    }

    /// What every message says about the desk.
    pub(crate) fn desk_ctx(&self, h: &Here<'_>) -> DeskCtx {
        let desk = h.desk;
        DeskCtx {
            id: desk.id.clone(),
            name: desk.name.clone(),
            address: h.inbox_addr.to_string(),
            response_promise: desk.response_promise.clone().unwrap_or_default(),
            reopen_days: desk.reopen_days,
            attachment_max_mb: desk
                .attachments
                .as_ref()
                .map(|p| format!("{}", (p.max_bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0))
                .unwrap_or_default(),
            attachment_types: desk
                .attachments
                .as_ref()
                .map(|p| p.allowed.iter().map(|a| a.to_ascii_uppercase()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            track_url: self.config.public_url.as_ref().map(|u| format!("{u}/lacak")).unwrap_or_default(),
        }
    }

    /// The context every message about ticket `t` starts from.
    pub(crate) fn base_ctx(&self, h: &Here<'_>, t: &Ticket) -> MailContext {
        let desk = h.desk;
        let (cat_name, sub_name) = match desk.catalogue.subcategory(&t.category, &t.subcategory) {
            Some(s) => {
                (desk.catalogue.category(&t.category).map(|c| c.name.clone()).unwrap_or_default(), s.name.clone())
            }
            // No names: the templates say "triage" in the requester's language.
            None if t.category == crate::catalogue::TRIAGE_CATEGORY => (String::new(), String::new()),
            None => (t.category.clone(), t.subcategory.clone()),
        };
        let created = chrono::DateTime::from_timestamp_millis(t.created_at)
            .unwrap_or_default()
            .with_timezone(&desk.tz)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string();
        MailContext {
            desk: self.desk_ctx(h),
            ticket: TicketCtx {
                number: t.number.to_string(),
                tag: t.number.tag(),
                category: t.category.clone(),
                subcategory: t.subcategory.clone(),
                category_name: cat_name,
                subcategory_name: sub_name,
                created,
                ticket_type: t.ticket_type.map(|v| v.as_str().to_string()).unwrap_or_default(),
                status: t.status.as_str().to_string(),
                priority: t.priority.map(|v| v.as_str().to_string()).unwrap_or_default(),
                internal_only_refused: String::new(),
                official_only: false,
                sender_units: desk
                    .catalogue
                    .subcategory(&t.category, &t.subcategory)
                    .map(|s| s.sender_units.clone())
                    .unwrap_or_default(),
                linked_number: String::new(),
                mentioned_number: String::new(),
            },
            requester: PersonCtx {
                name: t.requester_name.clone().unwrap_or_default(),
                address: t.requester_address.to_string(),
            },
            original_subject: t.subject.clone(),
            ..MailContext::default()
        }
    }

    /// Renders, builds and queues one message; returns its message row, or None when the
    /// per-sender limit on automatic replies suppressed it.
    pub(crate) async fn queue(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        out: OutMail,
    ) -> Result<Option<i64>, PipelineError> {
        let desk = h.desk;
        if out.auto_reply {
            let limit = self.config.limits.auto_replies_per_sender_per_hour as i64;
            let since = h.now - 3_600_000;
            let sent = match out.auto_replies_last_hour {
                Some(n) => n,
                None => store::count_auto_replies(tx, &desk.id, out.to.as_str(), since).await?,
            };
            if sent >= limit {
                let noticed = store::count_kind_since(tx, &desk.id, out.to.as_str(), "over_limit", since).await?;
                self.event(tx, h, t.id, "loket", "auto_reply_suppressed", &json!({ "template": out.template, "reason": format!("{sent} automatic replies to this sender in the last hour") })).await?;
                if noticed == 0 {
                    let notice = OutMail { template: "over_limit", auto_reply: false, ..out };
                    return Box::pin(self.queue_as(tx, h, t, notice, "over_limit")).await;
                }
                return Ok(None);
            }
        }
        let kind = out.template;
        self.queue_as(tx, h, t, out, kind).await
    }

    async fn queue_as(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        out: OutMail,
        kind: &str,
    ) -> Result<Option<i64>, PipelineError> {
        if out.token_for.is_none() && t.channel != Channel::Email && out.to.as_str() == t.requester_address.as_str() {
            return self.queue_to_chat(tx, h, t, out, kind).await;
        }
        self.queue_email(tx, h, t, out, kind).await
    }

    /// Renders, composes and queues one mail.
    pub(crate) async fn queue_email(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        out: OutMail,
        kind: &str,
    ) -> Result<Option<i64>, PipelineError> {
        let desk = h.desk;
        if let Err(e) = compose::addressable(&out.to) {
            // The ticket goes on; the agents see why this person got no mail.
            let detail = json!({ "template": out.template, "to": out.to.as_str(), "reason": e.to_string() });
            self.event(tx, h, t.id, "loket", "mail_not_addressable", &detail).await?;
            return Ok(None);
        }
        let mut text = self.templates.render(out.lang, out.template, &out.ctx)?;
        let unique = fresh_unique();
        let files = match out.files_from {
            Some(row) => self.files_of(tx, h, t, row, &out, &unique, &mut text).await?,
            None => Vec::new(),
        };
        // Thread headers hold only ids this recipient has already seen (messages it sent or was
        // sent), and never another agent's token (invariant 7).
        let (parent, references) = match &out.thread {
            Thread::Answering(id, refs) => (Some(id.clone()), refs.clone()),
            Thread::Fresh => (None, Vec::new()),
            Thread::Seen => {
                let thread = store::thread_ids_seen_by(tx, t.id, out.to.as_str(), 10).await?;
                let last = match out.token_for {
                    Some(_) => thread.last().cloned(),
                    None => store::last_inbound_id(tx, t.id, out.to.as_str()).await?.or_else(|| thread.last().cloned()),
                };
                let refs: Vec<String> = thread.iter().filter(|id| Some(*id) != last.as_ref()).cloned().collect();
                (last, refs)
            }
        };
        let visible = |ids: &[String]| {
            crate::ticket::token::visible_to(ids, self.config.signer.as_ref(), &desk.id, out.to.as_str())
        };
        let parent = parent.filter(|p| !visible(std::slice::from_ref(p)).is_empty());
        let references = visible(&references);
        let message_id = match (&out.token_for, &self.config.signer) {
            (Some(agent), Some(signer)) => {
                Some(signer.message_id(&desk.id, t.number.as_str(), agent.as_str(), &unique, h.inbox_addr.domain()))
            }
            _ => None,
        };
        let mail = Composition {
            lang: out.lang,
            desk_name: desk.name.clone(),
            from: h.inbox_addr.clone(),
            to_name: out.to_name.clone(),
            to: out.to.clone(),
            ticket_number: t.number.to_string(),
            in_reply_to: parent,
            references,
            text,
            unique,
            now_ms: h.now,
            auto_replied: out.auto_reply || kind == "over_limit",
            auto_generated: out.auto_generated,
            message_id,
            files,
        };
        let blobs = self.store.files();
        // In a batch, the HTML part and the MIME bytes are made behind the writer (`behind`).
        let row = match h.behind.filter(|b| b.reserve(mail.input_bytes())) {
            Some(behind) => {
                let envelope = compose::envelope(&mail.spec(""));
                let row = record_mail(tx, blobs, h, Some(t.id), &out.to, &envelope, None, kind, out.auto_reply).await?;
                let templates = self.templates.clone();
                behind.push(row, Box::new(move || Ok(mail.compose(&templates)?.raw)));
                row
            }
            None => {
                let built = mail.compose(&self.templates)?;
                let raw = Some(built.raw.as_slice());
                record_mail(tx, blobs, h, Some(t.id), &out.to, &built, raw, kind, out.auto_reply).await?
            }
        };
        Ok(Some(row))
    }

    /// The accepted files of stored message `row` that fit `outbound.attachment_budget_bytes`, in
    /// the order they came; the ones left out are named in a note added to `text` (for agents
    /// with the command that fetches them) and recorded as an event.
    #[allow(clippy::too_many_arguments)]
    async fn files_of(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        row: i64,
        out: &OutMail,
        unique: &str,
        text: &mut crate::templates::Rendered,
    ) -> Result<Vec<compose::OutFile>, PipelineError> {
        let budget = self.config.outbound.attachment_budget_bytes;
        let mut left = budget;
        let mut files = Vec::new();
        let mut omitted = Vec::new();
        for f in store::ticket_files(tx, t.id).await?.into_iter().filter(|f| f.message_row == row && f.accepted) {
            let name = f.filename.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("file-{}", f.n));
            let size = usize::try_from(f.size).unwrap_or(usize::MAX);
            let bytes = if size <= left { store::file_bytes(tx, self.store.files(), &f).await? } else { None };
            match bytes {
                Some((bytes, inline)) if bytes.len() <= left => {
                    left -= bytes.len();
                    let inline_cid = inline.then(|| format!("file{}.{unique}@{}", f.n, h.inbox_addr.domain()));
                    files.push(compose::OutFile {
                        filename: name,
                        content_type: f.content_type.clone(),
                        bytes,
                        inline_cid,
                    });
                }
                _ => omitted.push(crate::templates::OmittedFile { n: f.n, filename: name, size_mb: mb(f.size) }),
            }
        }
        if !omitted.is_empty() {
            let detail = json!({
                "to": out.to.as_str(),
                "files": omitted.iter().map(|o| o.n).collect::<Vec<_>>(),
                "budget_bytes": budget,
            });
            self.event(tx, h, t.id, "loket", "attachments_left_out", &detail).await?;
            let note = crate::templates::FilesNote {
                for_agent: out.token_for.is_some(),
                ticket: t.number.to_string(),
                files: omitted,
                budget_mb: format!("{}", (budget as f64 / 1_048_576.0 * 10.0).round() / 10.0),
            };
            let note = self.templates.files_note(out.lang, &note)?;
            // Before the signature, where the words of the message end.
            text.body = match text.body.split_once("\n--\n") {
                Some((main, signature)) => format!("{}\n\n{note}\n\n--\n{signature}", main.trim_end()),
                None => format!("{}\n\n{note}\n", text.body.trim_end()),
            };
        }
        Ok(files)
    }

    /// Sends every target agent a notification with its own signed token, about a message from
    /// `from`. Past the per-sender limit an hour, the agents get one flood digest instead and
    /// the messages stay on their tickets without a notification each.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn notify_agents(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        event: &str,
        text: &str,
        from: &EmailAddress,
        files_from: Option<i64>,
    ) -> Result<usize, PipelineError> {
        let mut ctx = self.base_ctx(h, t);
        ctx.event = event.to_string();
        ctx.text = text.to_string();
        self.notify_agents_with(tx, h, t, ctx, from, Known { files_from, ..Known::default() }).await
    }

    /// [`Pipeline::notify_agents`] with a context the caller prepared.
    pub(crate) async fn notify_agents_with(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        mut ctx: MailContext,
        from: &EmailAddress,
        known: Known,
    ) -> Result<usize, PipelineError> {
        let limit = self.config.limits.agent_notifications_per_sender_per_hour as i64;
        let received = match known.inbound_last_hour {
            Some(n) => n,
            None => store::count_inbound_since(tx, &h.desk.id, from.as_str(), h.now - 3_600_000).await?,
        };
        ctx.sender = PersonCtx { name: String::new(), address: from.to_string() };
        let template = if received <= limit {
            "agent_notification"
        } else if received == limit + 1 {
            self.metrics.flood(&h.desk.id, "digest_sent");
            tracing::warn!(desk = %h.desk.id, sender = %crate::mask_address(from.as_str()), received, "flood: agent notifications suppressed for an hour");
            let detail = json!({ "sender": from.as_str(), "messages_last_hour": received });
            self.event(tx, h, t.id, "loket", "flood_digest", &detail).await?;
            ctx.count = received;
            "agent_flood"
        } else {
            self.metrics.flood(&h.desk.id, "notification_suppressed");
            return Ok(0);
        };
        let targets = crate::ticket::decide::notify_targets(t, h.desk);
        for agent in &targets {
            let mut out = OutMail::to_agent(agent, h.desk.language, template, ctx.clone());
            if template == "agent_notification" {
                out = out.with_files(known.files_from);
            }
            if known.new_ticket {
                out.thread = Thread::Fresh;
            }
            self.queue(tx, h, t, out).await?;
        }
        Ok(targets.len())
    }

    /// One agent's notification about ticket `t` (assignments, escalations): agents' own actions,
    /// never limited.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn notify_agent(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        agent: &Agent,
        event: &str,
        text: &str,
        files_from: Option<i64>,
    ) -> Result<(), PipelineError> {
        let mut ctx = self.base_ctx(h, t);
        ctx.event = event.to_string();
        ctx.text = text.to_string();
        let out = OutMail::to_agent(agent, h.desk.language, "agent_notification", ctx).with_files(files_from);
        self.queue(tx, h, t, out).await?;
        Ok(())
    }
}

/// Everything one mail of a ticket is composed from, owned, so that it can be composed on
/// another thread ([`super::behind`]).
struct Composition {
    lang: Language,
    desk_name: String,
    from: EmailAddress,
    to_name: Option<String>,
    to: EmailAddress,
    ticket_number: String,
    in_reply_to: Option<String>,
    references: Vec<String>,
    text: crate::templates::Rendered,
    unique: String,
    now_ms: i64,
    auto_replied: bool,
    auto_generated: bool,
    message_id: Option<String>,
    files: Vec<compose::OutFile>,
}

impl Composition {
    fn spec<'a>(&'a self, html: &'a str) -> compose::ReplySpec<'a> {
        compose::ReplySpec {
            from_name: &self.desk_name,
            from: &self.from,
            to_name: self.to_name.as_deref(),
            to: &self.to,
            ticket_number: &self.ticket_number,
            in_reply_to: self.in_reply_to.as_deref(),
            references: &self.references,
            text: &self.text,
            unique: &self.unique,
            now_ms: self.now_ms,
            auto_replied: self.auto_replied,
            auto_generated: self.auto_generated,
            message_id: self.message_id.clone(),
            html,
            files: &self.files,
        }
    }

    /// The text and files it holds: what composing it behind the writer keeps in memory.
    fn input_bytes(&self) -> usize {
        self.text.body.len() + self.files.iter().map(|f| f.bytes.len()).sum::<usize>()
    }

    /// The HTML rendering of its text (in the desk's layout) and the mail's bytes.
    fn compose(&self, templates: &crate::templates::Templates) -> Result<compose::Outgoing, PipelineError> {
        let images: Vec<String> = self.files.iter().filter_map(|f| f.inline_cid.clone()).collect();
        let html = templates.render_html(self.lang, &self.desk_name, &self.text, &images)?;
        Ok(compose::reply(&self.spec(&html))?)
    }
}

/// A composed mail recorded as an outbound message (of ticket `ticket`, or of none) and queued
/// with its outbox row; returns the message's row. `raw`: its bytes, or `None` when they are
/// being composed behind the writer ([`store::set_composed_raw`] writes them before the commit).
#[allow(clippy::too_many_arguments)]
async fn record_mail(
    tx: &mut store::Tx,
    files: &store::blobs::Files,
    h: &Here<'_>,
    ticket: Option<i64>,
    to: &EmailAddress,
    built: &compose::Outgoing,
    raw: Option<&[u8]>,
    kind: &str,
    auto_reply: bool,
) -> Result<i64, PipelineError> {
    let desk = &h.desk.id;
    let key = format!("out:{}", built.message_id);
    let row = store::insert_message(
        tx,
        files,
        &store::NewMessage {
            desk,
            ticket_id: ticket,
            direction: Direction::Outbound.as_str(),
            channel: Channel::Email.as_str(),
            inbox: Some(&h.inbox.name),
            idempotency_key: &key,
            message_id: Some(&built.message_id),
            kind,
            action: "queued",
            reason: None,
            peer_address: Some(to.as_str()),
            from_address: Some(&built.sender),
            to_addresses: &built.recipients,
            subject: &built.subject,
            body_text: &built.body,
            raw,
            size: raw.map_or(0, <[u8]>::len),
            auto_reply,
            now: h.now,
        },
    )
    .await?;
    let queued = store::NewOutbox {
        desk: desk.clone(),
        ticket_id: ticket,
        message_row: row,
        sender: built.sender.clone(),
        recipients: built.recipients.clone(),
        now: h.now,
    };
    // In a batch, the outbox rows go in one statement before the commit, in the order queued.
    match h.behind {
        Some(behind) => behind.queue_outbox(queued),
        None => store::insert_outbox(tx, &[queued]).await?,
    }
    Ok(row)
}
