//! Requester- and agent-facing text, rendered with minijinja from `templates/<lang>/`:
//! - `<name>.txt.j2`: a message; it defines a `subject` block and a `body` block (chat messages,
//!   `chat_*`, are the whole template).
//! - `<name>.html.j2`: a web page (the public tracking page, [`TrackPage`]); HTML-escaped.
//! - `_<name>.j2`: macros and words the others import (`_words.j2`: day and month names, dates
//!   and times from a [`When`], ticket statuses, the triage category's name).
//!
//! Indonesian (`id`) is the default; English (`en`) is available. No word a requester reads is
//! in the code: the code passes values (a status name, a [`When`]) and the templates say them.
//! Every template is compiled and rendered once with sample values at load, so
//! `loket check-config` catches errors before any requester does (`loket ingest`, which starts
//! once per mail, compiles only those it renders: [`Templates::on_demand`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::LazyLock;

use chrono::{Datelike, Timelike};
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use crate::catalogue::Missing;
use crate::catalogue::RequirementKind;
use crate::domain::Language;

/// The pages every language must have (`<name>.j2`).
pub const PAGES: &[&str] = &["track_page.html", "report.html"];

/// The macro files every language must have (`<name>.j2`).
pub const MACROS: &[&str] = &["_words", "_labels", "_files"];

/// The HTML layout every mail's HTML part is rendered with (`_layout.html.j2`): it receives the
/// rendered text of the message as escaped paragraphs ([`HtmlMail`]), so the wording lives only
/// in the `.txt.j2` templates.
pub const LAYOUT: &str = "_layout.html";

/// The short labels the code puts on chat buttons and lists, or in a subject it makes up, said by
/// `_labels.j2`'s `label(key)` macro; each must be non-empty in every language.
pub const LABELS: &[&str] = &[
    "cancel",
    "confirm_yes",
    "confirm_no",
    "chat_attachment_subject",
    "flow_question",
    "flow_request",
    "flow_incident",
    "flow_change",
    "flow_impact_low",
    "flow_impact_medium",
    "flow_impact_high",
    "chat_list_button",
    "chat_list_title",
];

/// The messages every language must have (`<name>.txt.j2`).
pub const REQUIRED: &[&str] = &[
    "acknowledgement",
    "agent_notification",
    "agent_flood",
    "confirm_question",
    "agent_reply",
    "agent_confirmation",
    "agent_refused",
    "incomplete",
    "resolution",
    "closed_rating",
    "closed_by_desk",
    "requirements_waived",
    "rating_thanks",
    "reopened",
    "rejection",
    "attachments_refused",
    "over_limit",
    "pending_reminder",
    "sla_alert",
    "oauth_alert",
    "email_code",
    "auto_closed",
    "chat_help",
    "chat_flow",
    "chat_status",
    "chat_tickets",
    "chat_notice",
    "chat_private_only",
    "undelivered_by_chat",
    "participant_copy",
    "merged",
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{path}: cannot read: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: missing (every language needs it)")]
    Missing(String),
    #[error("{name}: {source}")]
    Render { name: String, source: minijinja::Error },
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

pub struct Templates {
    env: Environment<'static>,
    /// Every template's name (`lang/stem`), compiled or not yet ([`Templates::on_demand`]).
    names: HashSet<String>,
    /// The mail templates that are their subject block, line breaks and their body block, and
    /// nothing else: rendered whole, the body is what follows the subject (one rendering).
    two_blocks: HashSet<String>,
}

/// A mail template laid out as its subject block, line breaks, its body block and at most one
/// line break (which `trim_blocks` and `keep_trailing_newline = false` take away), with no other
/// block (counted apart: the pattern's body could span a third).
static TWO_BLOCKS: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(?s)\A\{% block subject %\}.*?\{% endblock %\}\n*\{% block body %\}.*\{% endblock %\}\n?\z")
        .expect("a valid pattern")
});

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Templates {
    /// Parses every template of `dir` ([`Templates::parse`]) and renders each once with sample
    /// values, so that `loket check-config` and the daemon's start catch an error before any
    /// requester does.
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let t = Self::parse(dir)?;
        t.check()?;
        Ok(t)
    }

    /// Reads and compiles every template of `dir` (a syntax error or a missing template is an
    /// error) without rendering any: the first half of [`Templates::load`].
    pub fn parse(dir: &Path) -> Result<Self, TemplateError> {
        Self::read(dir, true)
    }

    /// Reads every template of `dir` (a missing template is an error) and compiles each only
    /// when it is first rendered: for `loket ingest`, which starts once per mail and renders
    /// two or three of a hundred templates (compiling them all was a tenth of its work). A
    /// syntax error is reported when the template is rendered, naming it; `check-config` and
    /// the daemon's start find it before any mail does ([`Templates::load`]).
    pub fn on_demand(dir: &Path) -> Result<Self, TemplateError> {
        Self::read(dir, false)
    }

    fn read(dir: &Path, compile_now: bool) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        let mut two_blocks = HashSet::new();
        let mut names = HashSet::new();
        // The sources of the templates to be compiled when first rendered.
        let mut sources: HashMap<String, String> = HashMap::new();
        env.set_trim_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_auto_escape_callback(auto_escape);
        for &lang in Language::ALL {
            let ldir = dir.join(lang.as_str());
            let entries = std::fs::read_dir(&ldir)
                .map_err(|source| TemplateError::Io { path: ldir.display().to_string(), source })?;
            for entry in entries {
                let entry = entry.map_err(|source| TemplateError::Io { path: ldir.display().to_string(), source })?;
                let fname = entry.file_name().to_string_lossy().to_string();
                // Messages are named without their extension; pages keep `.html`, which turns
                // on HTML escaping (see [`auto_escape`]); macro files keep their `_` prefix.
                let stem = if let Some(stem) = fname.strip_suffix(".txt.j2") {
                    stem
                } else if let Some(page) =
                    fname.strip_suffix(".j2").filter(|n| n.ends_with(".html") || n.starts_with('_'))
                {
                    page
                } else {
                    continue;
                };
                let path = entry.path();
                let src = std::fs::read_to_string(&path)
                    .map_err(|source| TemplateError::Io { path: path.display().to_string(), source })?;
                let name = format!("{lang}/{stem}");
                if TWO_BLOCKS.is_match(&src) && src.matches("{% block ").count() == 2 {
                    two_blocks.insert(name.clone());
                }
                if compile_now {
                    env.add_template_owned(name.clone(), src)
                        .map_err(|source| TemplateError::Render { name: format!("{}", path.display()), source })?;
                } else {
                    sources.insert(name.clone(), src);
                }
                names.insert(name);
            }
            let messages = REQUIRED.iter().map(|r| (*r, format!("{r}.txt.j2")));
            let others = PAGES.iter().chain(MACROS).chain(&[LAYOUT]).map(|r| (*r, format!("{r}.j2")));
            for (req, file) in messages.chain(others) {
                if !names.contains(&format!("{lang}/{req}")) {
                    return Err(TemplateError::Missing(format!("{}/{file}", ldir.display())));
                }
            }
        }
        if !compile_now {
            env.set_loader(move |name| Ok(sources.get(name).cloned()));
        }
        Ok(Self { env, names, two_blocks })
    }

    /// Every template rendered with sample values (pages, messages, labels, the HTML layout, the
    /// files note) in every language.
    fn check(&self) -> Result<(), TemplateError> {
        let t = self;
        let names: Vec<String> = t.env.templates().map(|(n, _)| n.to_string()).collect();
        for name in names {
            let (lang, stem) = name.split_once('/').unwrap_or(("id", &name));
            let lang = Language::parse(lang).unwrap_or_default();
            if stem.starts_with('_') {
                continue; // imported by the others, rendered with them
            } else if stem == "report.html" {
                t.render_page(lang, stem, &crate::report::Page { r: &crate::report::sample() })?;
            } else if stem.ends_with(".html") {
                t.render_page(lang, stem, &sample_track_page())?;
                t.render_page(lang, stem, &TrackPage { notice: "invalid".into(), ..Default::default() })?;
            } else {
                t.render(lang, stem, &sample_context())?;
            }
        }
        for &lang in Language::ALL {
            for key in LABELS {
                t.label(lang, key)?;
            }
            let sample = t.render(lang, "acknowledgement", &sample_context())?;
            t.render_html(lang, "HERO", &sample, &["img1@loket".to_string()])?;
            t.files_note(lang, &sample_files_note(true))?;
            t.files_note(lang, &sample_files_note(false))?;
        }
        Ok(())
    }

    /// The label `key` (one of [`LABELS`]) in `lang`, from `_labels.j2`. An unknown key or an
    /// empty label is an error.
    pub fn label(&self, lang: Language, key: &str) -> Result<String, TemplateError> {
        let full = format!("{lang}/_labels");
        let err = |source| TemplateError::Render { name: format!("{full} ({key})"), source };
        let tmpl = self.env.get_template(&full).map_err(err)?;
        let mut captured = tmpl.render_captured(()).map_err(err)?;
        let label = captured
            .with_state_mut(|state| state.call_macro("label", &[minijinja::Value::from(key)]))
            .map_err(err)?
            .trim()
            .to_string();
        if label.is_empty() {
            return Err(err(minijinja::Error::new(minijinja::ErrorKind::UndefinedError, "no label")));
        }
        Ok(label)
    }

    /// Renders the web page `lang/name` (a `.html` template, HTML-escaped). Strings in `ctx` are
    /// made one line first, as for messages.
    pub fn render_page(&self, lang: Language, name: &str, ctx: &impl Serialize) -> Result<String, TemplateError> {
        let full = format!("{lang}/{name}");
        let err = |source| TemplateError::Render { name: full.clone(), source };
        let tmpl = self.env.get_template(&full).map_err(err)?;
        let mut value = serde_json::to_value(ctx)
            .map_err(|e| err(minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())))?;
        flatten_strings(&mut value, "");
        let mut page = tmpl.render(minijinja::Value::from_serialize(&value)).map_err(err)?;
        page.push('\n');
        Ok(page)
    }

    /// The HTML part of a mail whose text part is `text`: the layout `_layout.html` with the text
    /// as escaped paragraphs (lines kept, links clickable) and `images` (content ids) shown below.
    pub fn render_html(
        &self,
        lang: Language,
        desk: &str,
        text: &Rendered,
        images: &[String],
    ) -> Result<String, TemplateError> {
        // The signature (from a line `--` on) comes after the images, in smaller print.
        let (main, footer) = match text.body.split_once("\n--\n") {
            Some((main, footer)) => (main, footer),
            None => (text.body.as_str(), ""),
        };
        let ctx = HtmlMail {
            lang: lang.as_str().to_string(),
            desk: desk.to_string(),
            subject: text.subject.clone(),
            paragraphs: html_paragraphs(main),
            images: images.to_vec(),
            footer: html_paragraphs(footer),
        };
        let full = format!("{lang}/{LAYOUT}");
        let err = |source| TemplateError::Render { name: full.clone(), source };
        let tmpl = self.env.get_template(&full).map_err(err)?;
        let mut page = tmpl.render(minijinja::Value::from_serialize(&ctx)).map_err(err)?;
        page.push('\n');
        Ok(page)
    }

    /// The note added to a mail's text when files were left out of it (`_files.j2`): which, why,
    /// and for agents the command that fetches them.
    pub fn files_note(&self, lang: Language, note: &FilesNote) -> Result<String, TemplateError> {
        let full = format!("{lang}/_files");
        let err = |source| TemplateError::Render { name: full.clone(), source };
        let tmpl = self.env.get_template(&full).map_err(err)?;
        let mut value = serde_json::to_value(note)
            .map_err(|e| err(minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())))?;
        flatten_strings(&mut value, "");
        Ok(tmpl.render(minijinja::Value::from_serialize(&value)).map_err(err)?.trim().to_string())
    }

    /// Whether `lang/name` exists (chat templates are optional per message).
    pub fn has(&self, lang: Language, name: &str) -> bool {
        self.names.contains(&format!("{lang}/{name}"))
    }

    /// Renders `lang/name`. Every string in `ctx` is made one line first, except the multi-line [`MULTILINE`] fields, and file names are
    /// shown with [`file_name_for_display`]: a name or subject cannot add lines to a body.
    pub fn render(&self, lang: Language, name: &str, ctx: &impl Serialize) -> Result<Rendered, TemplateError> {
        let full = format!("{lang}/{name}");
        let err = |source| TemplateError::Render { name: full.clone(), source };
        let tmpl = self.env.get_template(&full).map_err(err)?;
        let mut value = serde_json::to_value(ctx)
            .map_err(|e| err(minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())))?;
        flatten_strings(&mut value, "");
        let ctx = minijinja::Value::from_serialize(&value);
        if name.starts_with("chat_") {
            // Chat messages have no subject: the whole template is the text.
            let body = tmpl.render(&ctx).map_err(err)?;
            return Ok(Rendered { subject: String::new(), body: body.trim().to_string() });
        }
        let mut captured = tmpl.render_captured(&ctx).map_err(err)?;
        let subject = captured.with_state_mut(|state| state.render_block("subject")).map_err(err)?;
        let whole = self.two_blocks.contains(&full).then(|| captured.output().strip_prefix(subject.as_str())).flatten();
        let body = match whole {
            Some(body) => body.to_string(),
            None => captured.with_state_mut(|state| state.render_block("body")).map_err(err)?,
        };
        Ok(Rendered {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            body: body.trim_start_matches('\n').to_string(),
        })
    }
}

/// What the HTML layout of a mail reads.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HtmlMail {
    pub lang: String,
    pub desk: String,
    pub subject: String,
    /// Paragraphs (text between blank lines) → lines → pieces of text, some of them links.
    pub paragraphs: Vec<Vec<Vec<Piece>>>,
    /// Content ids of inline images, shown after the text.
    pub images: Vec<String>,
    /// The signature's paragraphs (the text after a line `--`), shown last in smaller print.
    pub footer: Vec<Vec<Vec<Piece>>>,
}

/// A piece of a line: text, a link when `href` is set (only `http`/`https`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Piece {
    pub text: String,
    pub href: String,
}

/// Files a mail does not carry, for the note `_files.j2` says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FilesNote {
    /// The note is for an agent (it names `loket tickets attachment`).
    pub for_agent: bool,
    pub ticket: String,
    pub files: Vec<OmittedFile>,
    /// The per-message budget in MB.
    pub budget_mb: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OmittedFile {
    /// The file's number on the ticket (`loket tickets attachment TICKET N`).
    pub n: i64,
    pub filename: String,
    /// Size in MB, one decimal.
    pub size_mb: String,
}

fn sample_files_note(for_agent: bool) -> FilesNote {
    FilesNote {
        for_agent,
        ticket: "A-HERO26000001".into(),
        files: vec![OmittedFile { n: 2, filename: "rekaman.mp4".into(), size_mb: "30.0".into() }],
        budget_mb: "10".into(),
    }
}

/// A mail body as HTML paragraphs: blank lines separate paragraphs, lines stay lines, runs of
/// spaces stay visible, `http(s)://` links become links. Nothing here is HTML yet: the layout
/// escapes every piece.
pub fn html_paragraphs(body: &str) -> Vec<Vec<Vec<Piece>>> {
    let mut paragraphs = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    let flush = |lines: &mut Vec<String>, paragraphs: &mut Vec<Vec<Vec<Piece>>>| {
        if !lines.is_empty() {
            paragraphs.push(lines.drain(..).map(|l| line_pieces(&l)).collect());
        }
    };
    for line in body.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            flush(&mut lines, &mut paragraphs);
            continue;
        }
        match lines.last_mut() {
            Some(prev) if wrapped(prev, line) => {
                prev.push(' ');
                prev.push_str(line);
            }
            _ => lines.push(line.to_string()),
        }
    }
    flush(&mut lines, &mut paragraphs);
    paragraphs
}

/// Whether `next` continues `prev` as one sentence the text template wrapped (so the HTML lets
/// the reader's window wrap it): `prev` is a long line not ending a heading, and `next` starts
/// no indented, listed or numbered line, nor a field of its own ("Subjek:    Printer macet",
/// below a long "Pemohon:" line in an agent's notification).
fn wrapped(prev: &str, next: &str) -> bool {
    let starts_item = next.starts_with([' ', '\t', '-', '*', '•', '#', '>', '|'])
        || next.chars().next().is_some_and(|c| c.is_ascii_digit())
        || is_field(next);
    prev.chars().count() >= 60 && !prev.ends_with(':') && !prev.starts_with([' ', '-', '*', '•', '>']) && !starts_item
}

/// A line that starts with a field's label: a capitalised word or two of letters, a colon, then
/// a space ("Subjek:    …", "Kategori: …", "Ticket status: …"; a wrapped sentence goes on in lower
/// case: "yaitu: pukul 10.00").
fn is_field(line: &str) -> bool {
    let Some((label, rest)) = line.split_once(':') else { return false };
    let words = label.split(' ').count();
    rest.starts_with(' ')
        && (1..=2).contains(&words)
        && label.chars().count() <= 20
        && label.chars().all(|c| c.is_alphabetic() || c == ' ')
        && label.chars().next().is_some_and(char::is_uppercase)
}

/// One line's pieces; spaces after the first of a run become no-break spaces so that indents and
/// aligned columns survive HTML's white-space rules.
fn line_pieces(line: &str) -> Vec<Piece> {
    let mut kept = String::with_capacity(line.len());
    let mut prev_space = true; // a leading space is kept too
    for c in line.chars() {
        kept.push(if c == ' ' && prev_space { '\u{a0}' } else { c });
        prev_space = c == ' ';
    }
    let line = kept.as_str();
    let mut pieces = Vec::new();
    let mut rest = line;
    while let Some(start) = ["https://", "http://"].iter().filter_map(|p| rest.find(p)).min() {
        let tail = &rest[start..];
        let mut end = tail.find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"')).unwrap_or(tail.len());
        while end > 0 && tail[..end].ends_with(['.', ',', ';', ':', ')', ']', '!', '?', '\'']) {
            end -= 1;
        }
        let url = &tail[..end];
        if url.len() <= "https://".len() {
            // A bare scheme: text, and look further on.
            let cut = start + end.max(1);
            let cut = (cut..=rest.len()).find(|i| rest.is_char_boundary(*i)).unwrap_or(rest.len());
            pieces.push(Piece { text: rest[..cut].to_string(), href: String::new() });
            rest = &rest[cut..];
            continue;
        }
        if start > 0 {
            pieces.push(Piece { text: rest[..start].to_string(), href: String::new() });
        }
        pieces.push(Piece { text: url.to_string(), href: url.to_string() });
        rest = &tail[end..];
    }
    if !rest.is_empty() {
        pieces.push(Piece { text: rest.to_string(), href: String::new() });
    }
    pieces
}

/// HTML escaping for pages (`*.html`), none for messages: a mail or chat body is plain text.
fn auto_escape(name: &str) -> AutoEscape {
    if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None }
}

/// Context fields whose strings may keep several lines (message bodies); every other string a
/// template reads is made one line by [`one_line`].
pub const MULTILINE: &[&str] = &["text"];

/// Context fields holding a file name a requester chose; shown with [`file_name_for_display`].
const FILE_NAMES: &[&str] = &["filename"];

/// The longest one-line value, in characters, before it is cut with "…".
const ONE_LINE_MAX: usize = 300;

/// Makes every string in a serialized context one line, keyed by the field it is in (a list's
/// items by the list's field).
fn flatten_strings(value: &mut serde_json::Value, key: &str) {
    match value {
        serde_json::Value::String(s) if FILE_NAMES.contains(&key) => *s = file_name_for_display(s),
        serde_json::Value::String(s) if !MULTILINE.contains(&key) => *s = one_line(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| flatten_strings(v, key)),
        serde_json::Value::Object(map) => map.iter_mut().for_each(|(k, v)| flatten_strings(v, k)),
        _ => {}
    }
}

/// Whether `c` breaks a line or reorders text: control characters (CR, LF, TAB, NUL, C1), the
/// Unicode line and paragraph separators, and bidirectional marks, embeddings, overrides and
/// isolates.
fn is_line_breaking(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `s` as one line: every run of control characters, line separators, bidi controls and spaces
/// becomes one space, the ends are trimmed, and more than 300 characters are cut with "…".
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars() {
        if is_line_breaking(c) || c.is_whitespace() {
            gap = true;
            continue;
        }
        if gap && !out.is_empty() {
            out.push(' ');
        }
        gap = false;
        out.push(c);
    }
    if out.chars().count() > ONE_LINE_MAX {
        out = out.chars().take(ONE_LINE_MAX - 1).collect::<String>().trim_end().to_string();
        out.push('…');
    }
    out
}

/// A requester's file name as shown in a mail body: one line, and when it looks like a link (a
/// scheme `://`, `www.`, an `@`, or a domain followed by a path like `evil.test/`) defanged the way
/// security teams write links, `.` as `[.]` and `://` as `[:]//`, so no mail client makes it a
/// link. Plain names (`surat permohonan.pdf`) are unchanged.
pub fn file_name_for_display(name: &str) -> String {
    let flat = one_line(name);
    let lower = flat.to_lowercase();
    let domain_path = lower.split_whitespace().any(|word| {
        word.split_once('/').is_some_and(|(host, _)| {
            let parts: Vec<&str> = host.split('.').collect();
            parts.len() >= 2 && parts.iter().all(|p| !p.is_empty() && p.chars().any(char::is_alphanumeric))
        })
    });
    if lower.contains("://") || lower.contains("www.") || lower.contains('@') || domain_path {
        flat.replace("://", "[:]//").replace('.', "[.]")
    } else {
        flat
    }
}

/// Values a template can use; the pipeline fills them in. Fields a message has no use for are
/// empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MailContext {
    pub desk: DeskCtx,
    pub ticket: TicketCtx,
    pub requester: PersonCtx,
    /// Subject of the mail being answered (or the ticket's subject).
    pub original_subject: String,
    /// The text the message carries: an agent's reply, a resolution note, the requester's message
    /// (in notifications to agents).
    pub text: String,
    /// Requirements still missing: `m.kind` (`attachment`, `supervisor_cc`) and `m.item`, the
    /// document's name in plain words.
    pub missing: Vec<Missing>,
    /// Attachments refused by the desk's policy.
    pub refused: Vec<RefusedCtx>,
    /// What an agent's commands changed (confirmation to the agent).
    pub changes: Vec<String>,
    /// A reason: why an agent's reply was refused, why a ticket was rejected.
    pub reason: String,
    /// The agent a notification goes to.
    pub agent: PersonCtx,
    /// Notification about: `new`, `reply`, `participant`, `reopened`, `assigned`, `escalated`,
    /// `requirements`.
    pub event: String,
    /// Who wrote the message a notification is about (a participant, a flooding sender).
    pub sender: PersonCtx,
    /// How many messages a flood digest is about.
    pub count: i64,
    /// Chat-only values (guided flow, notices, ticket lists).
    pub chat: ChatCtx,
    /// The deadline the message is about: the first-response deadline in an acknowledgement
    /// (the promise "paling lambat …"), the clock's due time in an SLA alert.
    pub deadline: Option<When>,
    /// Required information the request does not give (`name`, `malformed`): asked for in the
    /// acknowledgement, shown to the agents.
    pub info: Vec<crate::ticket::reading::InfoAsked>,
    /// A service done on an event date (the catalogue's `schedule`).
    pub schedule: ScheduleCtx,
}

/// What the acknowledgement and the agents' notification say of an event-dated service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScheduleCtx {
    /// The event's date (and time, when given) as read from the request.
    pub event: Option<When>,
    /// Whether the request named a time of day for the event.
    pub event_time: bool,
    /// When the ticket is due (working days after the event).
    pub due: Option<When>,
    /// The service is event-dated and the request names no date: ask for it.
    pub ask_date: bool,
    /// Asked for fewer working days ahead than the document's minimum.
    pub short: bool,
    pub lead_days: u32,
    pub min_lead_days: u32,
}

/// A moment as the desk's clock shows it, in parts, for a template to say in its language
/// (`_words.j2`'s `when` macro: "Senin, 5 Januari 2026 pukul 09.30 WIB").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct When {
    /// Day of the week, 0 = Monday … 6 = Sunday.
    pub weekday: u32,
    /// Day of the month, 1–31.
    pub day: u32,
    /// Month, 1 = January … 12 = December.
    pub month: u32,
    pub year: i32,
    pub hour: u32,
    pub minute: u32,
    /// The zone's abbreviation (WIB, WITA, WIT, UTC).
    pub zone: String,
}

impl When {
    /// Epoch milliseconds `ms` on the clock of `tz`.
    pub fn at(ms: i64, tz: chrono_tz::Tz) -> Self {
        let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().with_timezone(&tz);
        Self {
            weekday: t.weekday().num_days_from_monday(),
            day: t.day(),
            month: t.month(),
            year: t.year(),
            hour: t.hour(),
            minute: t.minute(),
            zone: t.format("%Z").to_string(),
        }
    }
}

/// What the public tracking page (`track_page.html`) shows: the look-up form (no `number`) or
/// one ticket. Names of statuses, events and clocks are keys; the template says them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrackPage {
    /// Why the form is shown again: `invalid` (not a ticket number), `not_found`, `too_many`.
    pub notice: String,
    /// The ticket shown; empty on the form.
    pub number: String,
    /// The ticket's status (`new`, `open`, `pending`, `resolved`, `closed`, `rejected`).
    pub status: String,
    /// The desk's name.
    pub desk: String,
    /// Category and subcategory names; both empty while the ticket waits in triage.
    pub category_name: String,
    pub subcategory_name: String,
    /// The public timeline, oldest first.
    pub events: Vec<TrackEvent>,
    /// The ticket's SLA clocks.
    pub deadlines: Vec<TrackDeadline>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TrackEvent {
    pub at: When,
    /// What happened, as a public key: `created`, `acknowledged`, `requester_message`,
    /// `staff_replied`, `resolved`, `rejected`, `closed`, `handled`, `waiting_requester`,
    /// `waiting_requirements`, `requirements_complete`, `reopened`, `confirmed`, `rated`.
    pub what: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TrackDeadline {
    /// `response` or `resolution`.
    pub clock: String,
    /// `done` (stopped at `at`), `due` (by `at`) or `paused` (no `at`).
    pub state: String,
    pub at: Option<When>,
}

/// A tracking page with every kind of row, for checking the page templates at load.
pub fn sample_track_page() -> TrackPage {
    let at = When { weekday: 0, day: 5, month: 1, year: 2026, hour: 9, minute: 5, zone: "WIB".into() };
    let what = [
        "created",
        "acknowledged",
        "requester_message",
        "staff_replied",
        "resolved",
        "rejected",
        "closed",
        "handled",
        "waiting_requester",
        "waiting_requirements",
        "requirements_complete",
        "reopened",
        "confirmed",
        "rated",
    ];
    TrackPage {
        notice: String::new(),
        number: "A-HERO26000001".into(),
        status: "pending".into(),
        desk: "HERO".into(),
        category_name: "Aplikasi".into(),
        subcategory_name: "SIGI".into(),
        events: what.iter().map(|w| TrackEvent { at: at.clone(), what: (*w).into() }).collect(),
        deadlines: vec![
            TrackDeadline { clock: "response".into(), state: "done".into(), at: Some(at.clone()) },
            TrackDeadline { clock: "resolution".into(), state: "due".into(), at: Some(at) },
            TrackDeadline { clock: "resolution".into(), state: "paused".into(), at: None },
        ],
    }
}

/// What the chat templates (`chat_*`) read besides the ticket.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChatCtx {
    /// The guided flow's step: category, subcategory, type, impact, subject, description.
    pub step: String,
    /// The step's numbered options.
    pub options: Vec<String>,
    /// The last answer was not one of the options.
    pub retry: bool,
    /// Which notice `chat_notice` shows.
    pub notice: String,
    /// The command whose usage a notice explains; a number or address the requester typed.
    pub arg: String,
    /// The requester's open tickets.
    pub tickets: Vec<TicketLine>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TicketLine {
    pub number: String,
    pub status: String,
    pub subject: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeskCtx {
    pub id: String,
    pub name: String,
    pub address: String,
    /// The desk's response promise, e.g. "paling lambat 30 menit".
    pub response_promise: String,
    pub reopen_days: u32,
    /// Largest attachment in MB and allowed extensions, when the desk has a policy.
    pub attachment_max_mb: String,
    pub attachment_types: String,
    /// The tracking page's base (`http.public_url` + `/lacak`), when the server has a public URL.
    pub track_url: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TicketCtx {
    pub number: String,
    pub tag: String,
    pub category: String,
    pub subcategory: String,
    /// Category and subcategory names; both empty while the ticket waits in triage
    /// (`_words.j2`'s `category` macro names it).
    pub category_name: String,
    pub subcategory_name: String,
    pub created: String,
    /// question, request or incident, when known.
    pub ticket_type: String,
    pub status: String,
    pub priority: String,
    /// The internal-only service an external sender asked for (the ticket waits in triage).
    pub internal_only_refused: String,
    /// The refused service takes official (kedinasan) addresses (`sender = "official"`), not
    /// only the organisation's own.
    pub official_only: bool,
    /// The units the service is limited to (the catalogue's `sender_units`): for agents to check.
    pub sender_units: Vec<String>,
    /// The earlier ticket a new one continues.
    pub linked_number: String,
    /// The ticket a stranger named when writing (for agents only, never for the sender).
    pub mentioned_number: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PersonCtx {
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RefusedCtx {
    pub filename: String,
    /// too_large, type_not_allowed or content_mismatch.
    pub reason: String,
}

pub fn sample_context() -> MailContext {
    MailContext {
        desk: DeskCtx {
            id: "hero".into(),
            name: "HERO".into(),
            address: "hero@example.test".into(),
            response_promise: "paling lambat 30 menit".into(),
            reopen_days: 7,
            attachment_max_mb: "2".into(),
            attachment_types: "JPG, PNG, PDF".into(),
            track_url: "https://hero.example.test/lacak".into(),
        },
        ticket: TicketCtx {
            number: "A-HERO26000001".into(),
            tag: "[#A-HERO26000001]".into(),
            category: "aplikasi".into(),
            subcategory: "sigi".into(),
            category_name: "Aplikasi".into(),
            subcategory_name: "SIGI".into(),
            created: "2026-01-05 09:00 WIB".into(),
            ticket_type: "incident".into(),
            status: "open".into(),
            priority: "P3".into(),
            internal_only_refused: "SIGI".into(),
            official_only: false,
            sender_units: vec!["Unit TIK di lingkungan Kemenkeu".into()],
            linked_number: "A-HERO26000000".into(),
            mentioned_number: "A-HERO26000002".into(),
        },
        requester: PersonCtx { name: "Budi".into(), address: "budi@example.test".into() },
        original_subject: "SIGI tidak bisa diakses".into(),
        text: "Sudah kami perbaiki.".into(),
        missing: vec![
            Missing { kind: RequirementKind::Attachment, item: "Surat resmi".into() },
            Missing { kind: RequirementKind::SupervisorCc, item: crate::catalogue::SUPERVISOR_CC_ITEM.into() },
        ],
        refused: vec![RefusedCtx { filename: "a.exe".into(), reason: "type_not_allowed".into() }],
        changes: vec!["status: resolved".into()],
        reason: "no valid token".into(),
        agent: PersonCtx { name: "Agus".into(), address: "agus@example.test".into() },
        event: "new".into(),
        sender: PersonCtx { name: String::new(), address: "someone@example.test".into() },
        count: 21,
        chat: ChatCtx {
            step: "category".into(),
            options: vec!["Aplikasi".into(), "Jaringan".into()],
            retry: true,
            notice: "not_found".into(),
            arg: "A-HERO26000009".into(),
            tickets: vec![TicketLine {
                number: "A-HERO26000001".into(),
                status: "open".into(),
                subject: "SIGI tidak bisa diakses".into(),
            }],
        },
        deadline: Some(When { weekday: 0, day: 5, month: 1, year: 2026, hour: 10, minute: 0, zone: "WIB".into() }),
        info: vec![crate::ticket::reading::InfoAsked { name: "Kode satker".into(), malformed: true }],
        schedule: ScheduleCtx {
            event: Some(When { weekday: 1, day: 13, month: 1, year: 2026, hour: 9, minute: 0, zone: "WIB".into() }),
            event_time: true,
            due: Some(When { weekday: 2, day: 14, month: 1, year: 2026, hour: 17, minute: 0, zone: "WIB".into() }),
            ask_date: false,
            short: true,
            lead_days: 2,
            min_lead_days: 7,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mail_template_has_an_html_rendering_of_its_own_text() {
        let t = shipped();
        let mut ctx = sample_context();
        ctx.text =
            "Baris <b>satu</b> & \"dua\"\n\nLihat https://desk.example.test/a?b=1&c=2.\njavascript:alert(1)".into();
        for name in REQUIRED.iter().filter(|n| !n.starts_with("chat_")) {
            for &lang in Language::ALL {
                let text = t.render(lang, name, &ctx).unwrap();
                let html = t.render_html(lang, "HERO <Test>", &text, &["f1.x@desk.test".into()]).unwrap();
                assert!(
                    html.starts_with("<!DOCTYPE html>") && html.contains(&format!("lang=\"{lang}\"")),
                    "{lang}/{name}"
                );
                assert!(
                    html.contains("HERO &lt;Test&gt;") && html.contains("src=\"cid:f1.x@desk.test\""),
                    "{lang}/{name}"
                );
                assert!(!html.contains("<b>") && !html.contains("<script"), "{lang}/{name}: escaped");
                if text.body.contains("Baris <b>satu</b>") {
                    assert!(html.contains("Baris &lt;b&gt;satu&lt;&#x2f;b&gt; &amp; &quot;dua&quot;"), "{html}");
                    assert!(
                        html.contains("<a href=\"https:&#x2f;&#x2f;desk.example.test&#x2f;a?b=1&amp;c=2\""),
                        "{html}"
                    );
                    assert!(!html.contains("href=\"javascript"), "{html}");
                }
            }
        }
    }

    #[test]
    fn a_mail_is_rendered_once_where_its_template_is_two_blocks() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let shipped = Templates::parse(&root).unwrap();
        for name in REQUIRED.iter().filter(|n| !n.starts_with("chat_")) {
            for &lang in Language::ALL {
                assert!(shipped.two_blocks.contains(&format!("{lang}/{name}")), "{lang}/{name}");
            }
        }
        // Text outside the two blocks: the body is the body block's alone, rendered on its own.
        let dir = tempfile::tempdir().unwrap();
        for &lang in Language::ALL {
            std::fs::create_dir(dir.path().join(lang.as_str())).unwrap();
            for entry in std::fs::read_dir(root.join(lang.as_str())).unwrap() {
                let p = entry.unwrap().path();
                std::fs::copy(&p, dir.path().join(lang.as_str()).join(p.file_name().unwrap())).unwrap();
            }
        }
        let ack = dir.path().join("id/acknowledgement.txt.j2");
        let text = std::fs::read_to_string(&ack).unwrap();
        std::fs::write(&ack, format!("{text}\nCATATAN DI LUAR BLOK\n")).unwrap();
        let custom = Templates::parse(dir.path()).unwrap();
        assert!(!custom.two_blocks.contains("id/acknowledgement"));
        let ctx = sample_context();
        let mine = custom.render(Language::Id, "acknowledgement", &ctx).unwrap();
        assert!(!mine.body.contains("CATATAN DI LUAR BLOK"), "{}", mine.body);
        assert_eq!(mine, shipped.render(Language::Id, "acknowledgement", &ctx).unwrap());
        // So does a third block after the body.
        std::fs::write(&ack, format!("{text}\n{{% block note %}}CATATAN{{% endblock %}}\n")).unwrap();
        let custom = Templates::parse(dir.path()).unwrap();
        assert!(!custom.two_blocks.contains("id/acknowledgement"));
        assert_eq!(custom.render(Language::Id, "acknowledgement", &ctx).unwrap().body, mine.body);
    }

    #[test]
    fn paragraphs_lines_and_links() {
        let p = html_paragraphs("Satu\n  dua  tiga\n\n\nhttp://a.test/x), dan https:// saja\n");
        assert_eq!(p.len(), 2);
        let long = "Terima kasih telah menghubungi HERO. Permintaan Anda telah kami terima dan dicatat";
        let q = html_paragraphs(&format!("{long}\ndengan nomor:\n  #A-1\nSalam,\nHERO\n"));
        let texts: Vec<String> = q[0].iter().map(|l| l.iter().map(|p| p.text.as_str()).collect()).collect();
        assert_eq!(texts, [format!("{long} dengan nomor:"), "\u{a0}\u{a0}#A-1".into(), "Salam,".into(), "HERO".into()]);
        // A field below a long field stays a line of its own (an agent's notification).
        let fields = "Pemohon:   Bambang Permana <bambang57@sinarharapan-logistik.co.id>\nSubjek:    Printer macet\n";
        let f = html_paragraphs(fields);
        let lines: Vec<String> = f[0].iter().map(|l| l.iter().map(|p| p.text.as_str()).collect()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].starts_with("Subjek:"), "{lines:?}");
        // Prose that a colon ends the first word of still flows on.
        assert_eq!(html_paragraphs(&format!("{long}\nyaitu: pukul 10.00\n"))[0].len(), 1);
        assert_eq!(p[0].len(), 2);
        assert_eq!(p[0][1], vec![Piece { text: "\u{a0}\u{a0}dua \u{a0}tiga".into(), href: String::new() }]);
        assert_eq!(p[1][0][0], Piece { text: "http://a.test/x".into(), href: "http://a.test/x".into() });
        assert_eq!(p[1][0][1].href, "");
        assert_eq!(p[1][0].iter().map(|x| x.text.as_str()).collect::<String>(), "http://a.test/x), dan https:// saja");
    }

    #[test]
    fn a_note_names_the_files_left_out() {
        let t = shipped();
        for &lang in Language::ALL {
            let agent = t.files_note(lang, &sample_files_note(true)).unwrap();
            assert!(
                agent.contains("loket tickets attachment A-HERO26000001 2") && agent.contains("rekaman.mp4"),
                "{agent}"
            );
            assert!(agent.contains("30.0 MB") && agent.contains("10 MB"), "{agent}");
            let requester = t.files_note(lang, &sample_files_note(false)).unwrap();
            assert!(requester.contains("rekaman.mp4") && !requester.contains("loket"), "{requester}");
        }
    }

    #[test]
    fn shipped_templates_render_in_both_languages() {
        let t = Templates::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")).unwrap();
        let id = t.render(Language::Id, "acknowledgement", &sample_context()).unwrap();
        assert!(id.subject.contains("[#A-HERO26000001]"), "{id:?}");
        assert!(id.body.contains("A-HERO26000001"));
        assert!(id.body.contains("Terima kasih"), "{}", id.body);
        for name in REQUIRED {
            for &lang in Language::ALL {
                let r = t.render(lang, name, &sample_context()).unwrap();
                let chat = name.starts_with("chat_");
                assert!(chat == r.subject.is_empty() && !r.body.trim().is_empty(), "{lang}/{name}");
            }
        }
        let en = t.render(Language::En, "acknowledgement", &sample_context()).unwrap();
        assert!(en.body.contains("Thank you"), "{}", en.body);
        // Missing requirements are named by item and kind, never by their internal label.
        for (lang, name, document, cc) in [
            (
                Language::Id,
                "acknowledgement",
                "Surat resmi (sebagai lampiran)",
                "alamat email atasan Anda (minimal setingkat eselon III/IV) pada kolom CC",
            ),
            (
                Language::Id,
                "incomplete",
                "Surat resmi (sebagai lampiran)",
                "alamat email atasan Anda (minimal setingkat eselon III/IV) pada kolom CC",
            ),
            (
                Language::En,
                "acknowledgement",
                "Surat resmi (as an attachment)",
                "your supervisor (at least echelon III/IV) in CC",
            ),
            (
                Language::En,
                "incomplete",
                "Surat resmi (as an attachment)",
                "your supervisor (at least echelon III/IV) in CC",
            ),
            (Language::Id, "chat_incomplete", "Surat resmi (sebagai dokumen)", "kolom CC"),
            (Language::En, "chat_acknowledgement", "Surat resmi (as a document)", "in CC"),
        ] {
            let body = t.render(lang, name, &sample_context()).unwrap().body;
            assert!(body.contains(document) && body.contains(cc), "{lang}/{name}: {body}");
            assert!(!body.contains("supervisor_cc"), "{body}");
        }
    }

    fn shipped() -> Templates {
        Templates::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")).unwrap()
    }

    #[test]
    fn dates_deadlines_and_triage_are_said_by_the_templates() {
        let t = shipped();
        let mut ctx = sample_context();
        let id = t.render(Language::Id, "acknowledgement", &ctx).unwrap().body;
        assert!(
            id.contains("Petugas kami akan menanggapi paling lambat Senin, 5 Januari 2026 pukul 10.00 WIB.\n"),
            "{id}"
        );
        assert!(id.contains("Kategori: Aplikasi / SIGI\n"), "{id}");
        let en = t.render(Language::En, "acknowledgement", &ctx).unwrap().body;
        assert!(en.contains("Our staff will respond by Monday 5 January 2026 at 10:00 WIB.\n"), "{en}");
        let chat = t.render(Language::Id, "chat_acknowledgement", &ctx).unwrap().body;
        assert!(chat.contains("paling lambat Senin, 5 Januari 2026 pukul 10.00 WIB."), "{chat}");
        // Every weekday and month by name, minutes and hours padded.
        ctx.deadline =
            Some(When { weekday: 6, day: 31, month: 12, year: 2028, hour: 7, minute: 5, zone: "WITA".into() });
        ctx.event = "resolution_breached".into();
        let alert = t.render(Language::Id, "sla_alert", &ctx).unwrap().body;
        assert!(alert.contains("telah terlampaui (Minggu, 31 Desember 2028 pukul 07.05 WITA)."), "{alert}");
        let alert = t.render(Language::En, "sla_alert", &ctx).unwrap().body;
        assert!(alert.contains("has passed (Sunday 31 December 2028 at 07:05 WITA)."), "{alert}");
        // Without a deadline, the desk's configured promise; without either, no promise.
        ctx.deadline = None;
        let id = t.render(Language::Id, "acknowledgement", &ctx).unwrap().body;
        assert!(id.contains("Petugas kami akan menanggapi paling lambat 30 menit.\n"), "{id}");
        ctx.desk.response_promise.clear();
        assert!(!t.render(Language::Id, "acknowledgement", &ctx).unwrap().body.contains("menanggapi"));
        // A ticket in triage has no category names; the template names triage.
        ctx.ticket.category_name.clear();
        ctx.ticket.subcategory_name.clear();
        for (lang, name, words) in [
            (Language::Id, "acknowledgement", "Kategori: Belum ditentukan\n"),
            (Language::En, "acknowledgement", "Category: Not yet determined\n"),
            (Language::Id, "chat_status", "Kategori: Belum ditentukan\n"),
            (Language::En, "chat_acknowledgement", "Category: Not yet determined\n"),
        ] {
            let body = t.render(lang, name, &ctx).unwrap().body;
            assert!(body.contains(words), "{lang}/{name}: {body}");
        }
    }

    #[test]
    fn the_tracking_page_is_said_by_its_templates() {
        let t = shipped();
        let page = sample_track_page();
        let id = t.render_page(Language::Id, "track_page.html", &page).unwrap();
        assert!(id.starts_with("<!DOCTYPE html>\n<html lang=\"id\">"), "{id}");
        for words in [
            "<title>Tiket #A-HERO26000001</title>",
            "<p class=\"status\">Status: Menunggu tanggapan Anda</p>",
            "<th>Kategori</th><td>Aplikasi / SIGI</td>",
            "<tr><td>Senin, 5 Januari 2026 pukul 09.05 WIB</td><td>Tiket diterima</td></tr>",
            "<td>Menunggu kelengkapan persyaratan</td>",
            "<td>Tanggapan pertama</td><td>selesai Senin, 5 Januari 2026 pukul 09.05 WIB</td>",
            "<td>Penyelesaian</td><td>paling lambat Senin, 5 Januari 2026 pukul 09.05 WIB</td>",
            "<td>Penyelesaian</td><td>dijeda</td>",
            "<a href=\"/lacak?lang=id\">Lacak tiket lain</a>",
        ] {
            assert!(id.contains(words), "id page lacks {words}: {id}");
        }
        let en = t.render_page(Language::En, "track_page.html", &page).unwrap();
        for words in [
            "<html lang=\"en\">",
            "<title>Ticket #A-HERO26000001</title>",
            "Status: Waiting for you",
            "<tr><td>Monday 5 January 2026 at 09:05 WIB</td><td>Ticket received</td></tr>",
            "<td>First response</td><td>done Monday 5 January 2026 at 09:05 WIB</td>",
            "<td>Resolution</td><td>by Monday 5 January 2026 at 09:05 WIB</td>",
            "<a href=\"/lacak?lang=en\">Track another ticket</a>",
        ] {
            assert!(en.contains(words), "en page lacks {words}: {en}");
        }
        // Every public event key has words in both languages (an unknown key would show as is).
        for &lang in Language::ALL {
            let html = t.render_page(lang, "track_page.html", &page).unwrap();
            for e in &page.events {
                assert!(!html.contains(&format!("<td>{}</td>", e.what)), "{lang}: no words for {}", e.what);
            }
        }
        // The form, with each notice.
        for (lang, notice, words) in [
            (Language::Id, "", "<title>Lacak Tiket</title>"),
            (Language::Id, "invalid", "<p>Nomor tiket tidak valid.</p>"),
            (Language::Id, "not_found", "<p>Tiket dengan nomor tersebut tidak ditemukan.</p>"),
            (Language::Id, "too_many", "<p>Terlalu banyak pencarian; coba lagi sebentar.</p>"),
            (Language::En, "", "<title>Track a ticket</title>"),
            (Language::En, "invalid", "<p>That is not a ticket number.</p>"),
            (Language::En, "not_found", "<p>No ticket with that number.</p>"),
            (Language::En, "too_many", "<p>Too many lookups; try again in a minute.</p>"),
        ] {
            let html = t
                .render_page(lang, "track_page.html", &TrackPage { notice: notice.into(), ..Default::default() })
                .unwrap();
            assert!(html.contains(words) && html.contains("<form method=\"get\" action=\"/lacak\">"), "{html}");
            assert!(html.contains(&format!("name=\"lang\" value=\"{lang}\"")), "{html}");
        }
    }

    #[test]
    fn labels_are_said_by_the_templates() {
        let t = shipped();
        for (lang, key, label) in [
            (Language::Id, "cancel", "✖ Batal"),
            (Language::En, "cancel", "✖ Cancel"),
            (Language::Id, "confirm_yes", "Ya, sudah jelas"),
            (Language::En, "confirm_no", "Not yet"),
            (Language::Id, "chat_attachment_subject", "Lampiran melalui chat"),
            (Language::En, "flow_incident", "Problem (incident)"),
            (Language::Id, "flow_impact_high", "Tinggi: banyak pengguna/seluruh layanan"),
        ] {
            assert_eq!(t.label(lang, key).unwrap(), label, "{lang}/{key}");
        }
        assert!(t.label(Language::Id, "no_such_label").is_err());
    }

    /// The string literals of a Rust source, without comments and without what follows its first
    /// top-level `#[cfg(test)]` (the tests).
    fn literals(src: &str) -> Vec<String> {
        let code = src.split("\n#[cfg(test)]").next().unwrap_or(src);
        let mut out = Vec::new();
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let mut chars = line.chars();
            let mut current: Option<String> = None;
            while let Some(c) = chars.next() {
                match (&mut current, c) {
                    (None, '"') => current = Some(String::new()),
                    (None, '/') if chars.clone().next() == Some('/') => break,
                    (None, _) => {}
                    (Some(s), '\\') => {
                        s.push(c);
                        s.extend(chars.next());
                    }
                    (Some(_), '"') => out.extend(current.take()),
                    (Some(s), _) => s.push(c),
                }
            }
            out.extend(current);
        }
        out
    }

    /// Words a requester reads live in templates: none of these may come back into the code
    /// that answers requesters (tests and comments aside).
    #[test]
    fn no_requester_words_in_code() {
        const FORBIDDEN: &[&str] = &[
            "Tiket",
            "tiket",
            "paling lambat",
            "pukul",
            "Triase",
            "Triage (",
            "diklasifikasikan",
            "Lacak",
            "Januari",
            "Februari",
            "Maret",
            "April",
            "Mei",
            "Juni",
            "Juli",
            "Agustus",
            "Oktober",
            "Desember",
            "Senin",
            "Selasa",
            "Rabu",
            "Kamis",
            "Jumat",
            "Sabtu",
            "Minggu",
            "Diterima",
            "Diselesaikan",
            "Ditutup",
            "Ditolak",
            "Menunggu",
            "Dalam proses",
            "selesai",
            "dijeda",
            "Batal",
            "Belum",
            "sudah jelas",
            "Lampiran",
            "Pertanyaan",
            "Permohonan",
            "Kendala",
            "Rendah",
            "Sedang",
            "Tinggi",
            "Terlalu banyak",
            "tidak valid",
            "tidak ditemukan",
            "January",
            "Monday",
            "Ticket received",
            "Track a ticket",
            "Cancel",
            "Pilih",
            "All clear",
            "all clear",
            "Not yet",
            "Attachment sent",
            "to be classified",
        ];
        const ALLOWED: &[(&str, &str)] = &[
            // Words requesters type, not read: the chat command `tiket` (also `/tiket`).
            ("chat/command.rs", "tiket"),
        ];
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![root.join("http/track.rs"), root.join("ticket/reading.rs")];
        for dir in ["pipeline", "mail", "channel", "chat"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                files.push(e.unwrap().path());
            }
        }
        let mut found = Vec::new();
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
            let src = std::fs::read_to_string(f).unwrap();
            let allowed = |lit: &str| ALLOWED.iter().any(|(file, l)| f.ends_with(file) && lit == *l);
            for lit in literals(&src).into_iter().filter(|l| !allowed(l)) {
                for w in FORBIDDEN.iter().filter(|w| lit.contains(**w)) {
                    found.push(format!("{}: {w:?} in \"{lit}\"", f.display()));
                }
            }
        }
        assert!(found.is_empty(), "requester-facing words in code; move them to templates/:\n{}", found.join("\n"));
        // The scanner sees what it should.
        assert_eq!(literals("let a = \"x \\\" y\"; // \"z\"\n#[cfg(test)]\nmod tests { \"w\" }"), ["x \\\" y"]);
    }

    #[test]
    fn pages_are_html_escaped_and_messages_are_not() {
        let t = shipped();
        let mut page = sample_track_page();
        page.desk = "<script>alert(1)</script> & \"Co\"".into();
        page.category_name = "<b>Aplikasi</b>".into();
        page.number = "A-HERO26000001<i>".into();
        for &lang in Language::ALL {
            let html = t.render_page(lang, "track_page.html", &page).unwrap();
            assert!(!html.contains("<script>") && !html.contains("<b>") && !html.contains("<i>"), "{html}");
            assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; &quot;Co&quot;"), "{html}");
        }
        let mut ctx = sample_context();
        ctx.desk.name = "A & B <Helpdesk>".into();
        let body = t.render(Language::Id, "acknowledgement", &ctx).unwrap().body;
        assert!(body.contains("Terima kasih telah menghubungi A & B <Helpdesk>."), "{body}");
    }

    /// A copy of the shipped templates, in which `change` then writes (it is given each language's
    /// folder).
    fn shipped_copy(change: impl Fn(&Path)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for &lang in Language::ALL {
            let to = dir.path().join(lang.as_str());
            std::fs::create_dir_all(&to).unwrap();
            for e in std::fs::read_dir(shipped.join(lang.as_str())).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
            change(&to);
        }
        dir
    }

    #[test]
    fn a_broken_template_is_reported_by_name() {
        let dir = shipped_copy(|lang| {
            std::fs::write(
                lang.join("acknowledgement.txt.j2"),
                "{% block subject %}x{% endblock %}{% block body %}{{ ticket.number | nosuchfilter }}{% endblock %}",
            )
            .unwrap();
        });
        let err = Templates::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("acknowledgement"), "{err}");
    }

    /// `ingest`'s templates compile when first rendered: one with a syntax error does not stop the
    /// others, and rendering it is an error naming it; a missing one is an error at once, as when
    /// every template is compiled.
    #[test]
    fn templates_on_demand_compile_when_rendered_and_name_the_broken_one() {
        let dir =
            shipped_copy(|lang| std::fs::write(lang.join("resolution.txt.j2"), "{% block subject %}{{ x").unwrap());
        assert!(Templates::parse(dir.path()).unwrap_err().to_string().contains("resolution"));
        let t = Templates::on_demand(dir.path()).unwrap();
        let ack = t.render(Language::Id, "acknowledgement", &sample_context()).unwrap();
        assert_eq!(ack, shipped().render(Language::Id, "acknowledgement", &sample_context()).unwrap());
        assert!(t.has(Language::Id, "resolution"));
        let err = t.render(Language::Id, "resolution", &sample_context()).unwrap_err().to_string();
        assert!(err.contains("id/resolution"), "{err}");
        std::fs::remove_file(dir.path().join("en").join("acknowledgement.txt.j2")).unwrap();
        let err = Templates::on_demand(dir.path()).unwrap_err().to_string();
        assert!(err.contains("acknowledgement.txt.j2"), "{err}");
    }

    #[test]
    fn one_line_flattens_breaks_and_bidi() {
        assert_eq!(one_line("Halo\r\nBcc: x@evil.test"), "Halo Bcc: x@evil.test");
        assert_eq!(one_line("  Budi \u{2028}\u{202E}Santoso\u{2069}\t\0 "), "Budi Santoso");
        assert_eq!(one_line("a\u{85}b\u{2029}c\u{200F}d"), "a b c d");
        assert_eq!(one_line("Surat permohonan"), "Surat permohonan");
        assert_eq!(one_line("\r\n"), "");
        let long = one_line(&"x".repeat(500));
        assert_eq!(long.chars().count(), 300);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn file_names_that_look_like_links_are_defanged() {
        assert_eq!(file_name_for_display("surat permohonan.pdf"), "surat permohonan.pdf");
        assert_eq!(file_name_for_display("Laporan Q1 v2.0.xlsx"), "Laporan Q1 v2.0.xlsx");
        assert_eq!(
            file_name_for_display("laporan verifikasi di http://evil.test/login.exe"),
            "laporan verifikasi di http[:]//evil[.]test/login[.]exe"
        );
        assert_eq!(file_name_for_display("buka www.evil.test.pdf"), "buka www[.]evil[.]test[.]pdf");
        assert_eq!(file_name_for_display("evil.test/login.exe"), "evil[.]test/login[.]exe");
        assert_eq!(file_name_for_display("admin@evil.test.pdf"), "admin@evil[.]test[.]pdf");
        assert_eq!(file_name_for_display("scan\r\nBcc: x.pdf"), "scan Bcc: x.pdf");
    }

    #[test]
    fn requester_values_cannot_add_lines_to_a_body() {
        let t = Templates::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")).unwrap();
        let mut ctx = sample_context();
        ctx.original_subject = "Halo\r\nBcc: x@evil.test".into();
        ctx.requester.name = "Budi\nPemohon: someone".into();
        ctx.refused = vec![RefusedCtx {
            filename: "laporan verifikasi di http://evil.test/login.exe\nBcc: y@evil.test".into(),
            reason: "type_not_allowed".into(),
        }];
        ctx.text = "Baris satu\nBaris dua".into();
        for &lang in Language::ALL {
            let r = t.render(lang, "agent_notification", &ctx).unwrap();
            assert!(!r.subject.contains('\n') && !r.subject.contains('\r'), "{}", r.subject);
            assert!(!r.body.lines().any(|l| l.trim_start().starts_with("Bcc:")), "{}", r.body);
            let requester_lines = r.body.lines().filter(|l| l.contains("Pemohon:") || l.contains("Requester:")).count();
            assert!(requester_lines <= 1, "{}", r.body);
            assert!(r.body.contains("Baris satu\nBaris dua"), "the message text keeps its lines: {}", r.body);
            let r = t.render(lang, "attachments_refused", &ctx).unwrap();
            assert!(!r.body.lines().any(|l| l.trim_start().starts_with("Bcc:")), "{}", r.body);
            assert!(r.body.contains("http[:]//evil[.]test/login[.]exe"), "{}", r.body);
            assert!(!r.body.contains("http://evil"), "{}", r.body);
        }
    }
}
