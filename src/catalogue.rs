//! The service catalogue of a desk (`seeds/<desk>.toml`): categories, subcategories, the ticket
//! types each allows, internal-only services, fulfilment times and requirements, and what the
//! documents ask of a request beyond them (issue #17): a schedule relative to an event date with a
//! minimum lead, required information with an optional pattern, a sender rule, fulfilment tiers.
//! Validated at load;
//! every problem is reported with the file and the key. Format: `seeds/FORMAT.md`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::TicketType;
use crate::lazy_regex::LazyRegex;
use crate::routing::normalize::fold;

/// The category every desk has for messages that fit nowhere in its catalogue.
pub const TRIAGE_CATEGORY: &str = "triage";
/// The subcategory of [`TRIAGE_CATEGORY`].
pub const TRIAGE_SUBCATEGORY: &str = "unknown";
/// Category letter of the triage queue in ticket numbers.
pub const TRIAGE_LETTER: char = 'T';

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A working-time duration as the documents state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fulfilment {
    Minutes(u32),
    WorkingHours(u32),
    WorkingDays(u32),
}

impl Fulfilment {
    pub fn parse(s: &str) -> Option<Self> {
        let (num, unit) = s.split_at(s.len().checked_sub(1)?);
        let n: u32 = num.parse().ok()?;
        match unit {
            "m" => Some(Self::Minutes(n)),
            "h" => Some(Self::WorkingHours(n)),
            "d" => Some(Self::WorkingDays(n)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Subcategory {
    pub id: String,
    pub name: String,
    pub reference: Option<String>,
    pub types: Vec<TicketType>,
    pub internal_only: bool,
    pub contact: Option<String>,
    pub description: Option<String>,
    pub fulfilment: Option<Fulfilment>,
    pub fulfilment_note: Option<String>,
    /// What a request must bring (documents, the supervisor in CC), each with the condition under
    /// which it applies. The legacy keys `requires_attachment` and `requires_supervisor_cc` load as
    /// unconditional entries here.
    pub requirements: Vec<Requirement>,
    pub requires_info: Vec<String>,
    /// Due relative to an event the request names (DC visits, conferences, broadcasts, surveys).
    pub schedule: Option<Schedule>,
    /// Information the request must give, each checked on its text (`[[...info]]`).
    pub info: Vec<InfoField>,
    /// Who may ask for the service.
    pub sender: SenderRule,
    /// The units the document limits the service to (checked by the agents; shown to them).
    pub sender_units: Vec<String>,
    /// Fulfilment times chosen by a quantity or variant named in the request (first that holds).
    pub tiers: Vec<Tier>,
}

impl Subcategory {
    /// The fulfilment time for a request whose text is `text`: the first tier whose condition
    /// holds, else the base `fulfilment`.
    pub fn fulfilment_for(&self, text: &str) -> Option<Fulfilment> {
        let folded = fold(text);
        self.tiers.iter().find(|t| t.condition.holds(&folded)).map(|t| t.fulfilment).or(self.fulfilment)
    }
}

/// A service tied to a date the requester names (a visit, a conference, a broadcast, a survey):
/// due `close_after_days` working days after the event when the document says so (else by the
/// `fulfilment` time), and to be asked for at least `min_lead_days` working days before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub close_after_days: Option<u32>,
    pub min_lead_days: u32,
}

/// A piece of information the request must give (kode satker, hostname, PIC).
#[derive(Debug, Clone)]
pub struct InfoField {
    /// What it is called, as the document calls it: the requester is asked for it by this name.
    pub name: String,
    /// Folded phrases that introduce the value in a request ("kode satker").
    pub labels: Vec<String>,
    /// What the value must look like (matched against the word after a label, or, without a
    /// label, against every word of the request).
    /// Compiled when a request first needs it ([`LazyRegex`]).
    pub pattern: Option<LazyRegex>,
}

/// Who may ask for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderRule {
    /// Anyone (default).
    #[default]
    Any,
    /// Only an address of the organisation (`internal_domains`).
    Internal,
    /// Only an official address (`official_domains`, the internal ones included).
    Official,
}

/// A fulfilment time chosen by what the request says (quantity or variant).
#[derive(Debug, Clone)]
pub struct Tier {
    pub condition: Condition,
    pub fulfilment: Fulfilment,
    /// The document's wording (agents and operators only).
    pub note: Option<String>,
}

/// What a requirement asks for: a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequirementKind {
    /// A document the request must carry as an attachment.
    Attachment,
    /// The supervisor's address in CC.
    SupervisorCc,
}

/// A requirement a request still lacks: what the templates name to the requester and the events
/// store (`{"kind": "attachment", "item": "..."}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Missing {
    pub kind: RequirementKind,
    /// The document's name in plain words (for `supervisor_cc`, a label the templates do not show).
    pub item: String,
}

impl RequirementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequirementKind::Attachment => "attachment",
            RequirementKind::SupervisorCc => "supervisor_cc",
        }
    }
}

/// Item of a `supervisor_cc` requirement written without one (legacy key included). Templates
/// render their own sentence for this kind; the item only shows in events and to agents.
pub const SUPERVISOR_CC_ITEM: &str = "supervisor's address in CC";

/// One requirement of a subcategory.
#[derive(Debug, Clone)]
pub struct Requirement {
    pub kind: RequirementKind,
    /// The document's name in plain words: what the requester is told.
    pub item: String,
    /// When the requirement applies.
    pub condition: Condition,
    /// The catalogue's note for agents and operators; never sent to requesters.
    pub note: Option<String>,
}

impl Requirement {
    /// Whether the requirement applies to a request whose text (subject and body) is `text`.
    pub fn applies_to(&self, text: &str) -> bool {
        self.condition.holds(&fold(text))
    }
}

/// When a requirement applies, evaluated on the request's folded text
/// ([`crate::routing::normalize::fold`]: lowercase, accents removed, every run of other characters
/// one space). Phrases match whole words. With no `when_any` and no `when_regex` the requirement
/// always applies (unless an `unless_any` phrase is present).
#[derive(Debug, Clone, Default)]
pub struct Condition {
    /// Folded phrases (` word word `): the requirement applies when one is present...
    pub when_any: Vec<String>,
    /// ...or when this matches the folded text (case-insensitive; compiled when a request first
    /// needs it, [`LazyRegex`]).
    pub when_regex: Option<LazyRegex>,
    /// Folded phrases: the requirement never applies when one is present.
    pub unless_any: Vec<String>,
}

impl Condition {
    /// Whether the condition holds for `folded`, a text already passed through [`fold`].
    pub fn holds(&self, folded: &str) -> bool {
        if self.unless_any.iter().any(|p| folded.contains(p.as_str())) {
            return false;
        }
        if self.when_any.is_empty() && self.when_regex.is_none() {
            return true;
        }
        self.when_any.iter().any(|p| folded.contains(p.as_str()))
            || self.when_regex.as_ref().is_some_and(|r| r.is_match(folded))
    }

    pub fn is_unconditional(&self) -> bool {
        self.when_any.is_empty() && self.when_regex.is_none() && self.unless_any.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub reference: Option<String>,
    pub letter: char,
    pub subcategories: Vec<Subcategory>,
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    pub desk: String,
    pub name: String,
    pub internal_domains: Vec<String>,
    /// Domains counted as official addresses for `sender = "official"` (besides the internal ones).
    pub official_domains: Vec<String>,
    pub reopen_days: Option<u32>,
    pub categories: Vec<Category>,
}

impl Catalogue {
    /// Compiles every regex the catalogue holds (requirements' and tiers' `when_regex`, the
    /// information's `pattern`), which are otherwise compiled when a request first needs them:
    /// for a process that handles many requests (`serve`, `check-config`), so that no request waits
    /// for a compilation and a regex that does not compile (past a size limit) is an error at
    /// load. Each error names the service and the regex.
    pub fn compile_regexes(&self) -> Vec<String> {
        let mut errors = Vec::new();
        for c in &self.categories {
            for s in &c.subcategories {
                let conditions =
                    s.requirements.iter().map(|r| &r.condition).chain(s.tiers.iter().map(|t| &t.condition));
                let regexes = conditions
                    .filter_map(|c| c.when_regex.as_ref())
                    .chain(s.info.iter().filter_map(|f| f.pattern.as_ref()));
                for r in regexes {
                    if let Err(e) = r.compile() {
                        errors.push(format!("{}/{}: `{}` does not compile: {e}", c.id, s.id, r.as_str()));
                    }
                }
            }
        }
        errors
    }

    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    pub fn subcategory(&self, category: &str, sub: &str) -> Option<&Subcategory> {
        self.category(category)?.subcategories.iter().find(|s| s.id == sub)
    }

    /// Category letter for ticket numbers; triage and unknown categories get [`TRIAGE_LETTER`].
    pub fn letter(&self, category: &str) -> char {
        self.category(category).map(|c| c.letter).unwrap_or(TRIAGE_LETTER)
    }

    /// Whether `domain` belongs to the desk's organisation (for internal-only services).
    pub fn is_internal_domain(&self, domain: &str) -> bool {
        self.sender_allowed(SenderRule::Internal, domain)
    }

    /// Whether an address of `domain` may ask for a service with this sender rule.
    pub fn sender_allowed(&self, rule: SenderRule, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        let under = |d: &String| domain == *d || domain.ends_with(&format!(".{d}"));
        match rule {
            SenderRule::Any => true,
            SenderRule::Internal => self.internal_domains.iter().any(under),
            SenderRule::Official => self.internal_domains.iter().chain(&self.official_domains).any(under),
        }
    }

    pub fn load(path: &Path) -> Result<Self, Vec<CatalogueError>> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| vec![CatalogueError::Io { path: path.to_path_buf(), source }])?;
        Self::parse(path, &text)
    }

    /// Parses and validates a catalogue; `path` is used in error messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Vec<CatalogueError>> {
        let invalid = |message: String| CatalogueError::Invalid { path: path.to_path_buf(), message };
        let raw: RawCatalogue = toml::from_str(text).map_err(|e| vec![invalid(e.to_string())])?;
        let mut errors = Vec::new();
        let mut categories = Vec::new();
        let mut seen_cat = HashSet::new();
        if raw.category.is_empty() {
            errors.push(invalid("no [[category]] entries".into()));
        }
        for (ci, c) in raw.category.into_iter().enumerate() {
            let key = format!("category[{ci}] (`{}`)", c.id);
            if !is_id(&c.id) || c.id == TRIAGE_CATEGORY {
                errors.push(invalid(format!("{key}.id: must be snake_case and not `{TRIAGE_CATEGORY}`")));
            }
            if !seen_cat.insert(c.id.clone()) {
                errors.push(invalid(format!("{key}.id: duplicate category id")));
            }
            let letter = match c.letter.chars().collect::<Vec<_>>()[..] {
                [l] if l.is_ascii_uppercase() && l != TRIAGE_LETTER => l,
                _ => {
                    errors.push(invalid(format!(
                        "{key}.letter: `{}` must be one capital letter A-Z other than {TRIAGE_LETTER}",
                        c.letter
                    )));
                    'X'
                }
            };
            let mut subs = Vec::new();
            let mut seen_sub = HashSet::new();
            if c.subcategory.is_empty() {
                errors.push(invalid(format!("{key}: no [[category.subcategory]] entries")));
            }
            for (si, s) in c.subcategory.into_iter().enumerate() {
                let skey = format!("{key}.subcategory[{si}] (`{}`)", s.id);
                if !is_id(&s.id) {
                    errors.push(invalid(format!("{skey}.id: must be snake_case")));
                }
                if !seen_sub.insert(s.id.clone()) {
                    errors.push(invalid(format!("{skey}.id: duplicate subcategory id")));
                }
                let mut types = Vec::new();
                for t in &s.types {
                    match TicketType::parse(t) {
                        Some(t) if !types.contains(&t) => types.push(t),
                        Some(_) => errors.push(invalid(format!("{skey}.types: `{t}` listed twice"))),
                        None => errors.push(invalid(format!(
                            "{skey}.types: unknown type `{t}`; known: question, request, incident, change"
                        ))),
                    }
                }
                if s.types.is_empty() {
                    errors.push(invalid(format!("{skey}.types: must not be empty")));
                }
                if raw.change_tickets && types.contains(&TicketType::Request) && !types.contains(&TicketType::Change) {
                    types.push(TicketType::Change);
                }
                let fulfilment = match s.fulfilment.as_deref().map(|f| (f, Fulfilment::parse(f))) {
                    None => None,
                    Some((_, Some(f))) => Some(f),
                    Some((f, None)) => {
                        errors.push(invalid(format!(
                            "{skey}.fulfilment: `{f}` is not <n>h (working hours), <n>d (working days) or <n>m"
                        )));
                        None
                    }
                };
                let requirements = requirements(&raw.desk, &skey, &s, &mut |m| errors.push(invalid(m)));
                let extra = extras(&raw.desk, &skey, &s, &mut |m| errors.push(invalid(m)));
                subs.push(Subcategory {
                    id: s.id,
                    name: s.name,
                    reference: s.r#ref,
                    types,
                    internal_only: s.internal_only,
                    contact: s.contact,
                    description: s.description,
                    fulfilment,
                    fulfilment_note: s.fulfilment_note,
                    requirements,
                    requires_info: s.requires_info,
                    schedule: extra.schedule,
                    info: extra.info,
                    sender: s.sender,
                    sender_units: s.sender_units,
                    tiers: extra.tiers,
                });
            }
            categories.push(Category { id: c.id, name: c.name, reference: c.r#ref, letter, subcategories: subs });
        }
        if !is_id(&raw.desk) {
            errors.push(invalid(format!("desk: `{}` must be snake_case", raw.desk)));
        }
        if errors.is_empty() {
            Ok(Catalogue {
                desk: raw.desk,
                name: raw.name,
                internal_domains: raw.internal_domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
                official_domains: raw.official_domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
                reopen_days: raw.reopen_days,
                categories,
            })
        } else {
            Err(errors)
        }
    }
}

/// The requirements of raw subcategory `s` (key `skey` in desk `desk`): the legacy keys first, as
/// unconditional requirements, then the `[[category.subcategory.requirement]]` tables. Problems go
/// to `error`.
fn requirements(desk: &str, skey: &str, s: &RawSubcategory, error: &mut dyn FnMut(String)) -> Vec<Requirement> {
    let mut out = Vec::new();
    if let Some(doc) = &s.requires_attachment {
        out.push(Requirement {
            kind: RequirementKind::Attachment,
            item: doc.trim().to_string(),
            condition: Condition::default(),
            note: None,
        });
    }
    if s.requires_supervisor_cc {
        out.push(Requirement {
            kind: RequirementKind::SupervisorCc,
            item: SUPERVISOR_CC_ITEM.to_string(),
            condition: Condition::default(),
            note: None,
        });
    }
    for (ri, r) in s.requirement.iter().enumerate() {
        let rkey = format!("desk `{desk}`, {skey}.requirement[{ri}]");
        let item = match (r.kind, r.item.as_deref().map(str::trim)) {
            (_, Some(item)) if !item.is_empty() => {
                if item.contains(['(', ')']) {
                    error(format!(
                        "{rkey}.item: `{item}` must be the document's name in plain words; \
                         put parenthesised notes in `note` and conditions in `when_any`/`unless_any`"
                    ));
                }
                item.to_string()
            }
            (RequirementKind::SupervisorCc, None) => SUPERVISOR_CC_ITEM.to_string(),
            _ => {
                error(format!("{rkey}.item: must name what is needed (required for kind `attachment`)"));
                String::new()
            }
        };
        let mut phrases = |key: &str, list: &[String]| -> Vec<String> {
            let mut folded = Vec::new();
            for p in list {
                let f = fold(p);
                if f.trim().is_empty() {
                    error(format!("{rkey}.{key}: `{p}` has no letters or digits"));
                } else {
                    folded.push(f);
                }
            }
            folded
        };
        let when_any = phrases("when_any", &r.when_any);
        let unless_any = phrases("unless_any", &r.unless_any);
        let when_regex = match r.when_regex.as_deref().map(|re| LazyRegex::new(re, true)) {
            None => None,
            Some(Ok(re)) => Some(re),
            Some(Err(e)) => {
                error(format!(
                    "{rkey}.when_regex: invalid regex `{}`: {e}",
                    r.when_regex.as_deref().unwrap_or_default()
                ));
                None
            }
        };
        out.push(Requirement {
            kind: r.kind,
            item,
            condition: Condition { when_any, when_regex, unless_any },
            note: r.note.clone(),
        });
    }
    out
}

/// What a subcategory asks beyond its requirements: schedule, information, tiers.
struct Extras {
    schedule: Option<Schedule>,
    info: Vec<InfoField>,
    tiers: Vec<Tier>,
}

fn extras(desk: &str, skey: &str, s: &RawSubcategory, error: &mut dyn FnMut(String)) -> Extras {
    let schedule = s.schedule.as_ref().map(|r| {
        let skey = format!("desk `{desk}`, {skey}.schedule");
        if r.close_after_days.unwrap_or(0) > 60 || r.min_lead_days > 60 {
            error(format!("{skey}: days must be at most 60"));
        }
        if r.close_after_days.is_none() && r.min_lead_days == 0 {
            error(format!("{skey}: needs `close_after_days` or `min_lead_days`"));
        }
        if r.close_after_days.is_some() && s.fulfilment.is_some() {
            error(format!("{skey}.close_after_days: a service due after its event has no `fulfilment`"));
        }
        Schedule { close_after_days: r.close_after_days, min_lead_days: r.min_lead_days }
    });
    let mut info = Vec::new();
    for (i, f) in s.info.iter().enumerate() {
        let ikey = format!("desk `{desk}`, {skey}.info[{i}]");
        let name = f.name.trim();
        if name.is_empty() || name.contains(['(', ')']) {
            error(format!("{ikey}.name: `{name}` must name the information in plain words"));
        }
        let labels: Vec<String> = f.labels.iter().map(|l| fold(l)).filter(|l| !l.trim().is_empty()).collect();
        if labels.len() != f.labels.len() {
            error(format!("{ikey}.labels: every label needs letters or digits"));
        }
        let pattern = match f.pattern.as_deref().map(|re| LazyRegex::new(re, false)) {
            None => None,
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                error(format!("{ikey}.pattern: invalid regex `{}`: {e}", f.pattern.as_deref().unwrap_or_default()));
                None
            }
        };
        if labels.is_empty() && pattern.is_none() {
            error(format!("{ikey}: needs `labels` or `pattern` (how to see it in a request)"));
        }
        info.push(InfoField { name: name.to_string(), labels, pattern });
    }
    let mut tiers = Vec::new();
    for (i, t) in s.tier.iter().enumerate() {
        let tkey = format!("desk `{desk}`, {skey}.tier[{i}]");
        let fulfilment = Fulfilment::parse(&t.fulfilment).unwrap_or_else(|| {
            error(format!("{tkey}.fulfilment: `{}` is not <n>h, <n>d or <n>m", t.fulfilment));
            Fulfilment::WorkingDays(0)
        });
        let when_any: Vec<String> = t.when_any.iter().map(|p| fold(p)).filter(|p| !p.trim().is_empty()).collect();
        let unless_any: Vec<String> = t.unless_any.iter().map(|p| fold(p)).filter(|p| !p.trim().is_empty()).collect();
        let when_regex = match t.when_regex.as_deref().map(|re| LazyRegex::new(re, true)) {
            None => None,
            Some(Ok(re)) => Some(re),
            Some(Err(e)) => {
                error(format!("{tkey}.when_regex: invalid regex: {e}"));
                None
            }
        };
        if when_any.is_empty() && when_regex.is_none() {
            error(format!("{tkey}: needs `when_any` or `when_regex` (a tier without a condition is the base)"));
        }
        tiers.push(Tier {
            condition: Condition { when_any, when_regex, unless_any },
            fulfilment,
            note: t.note.clone(),
        });
    }
    if !s.sender_units.is_empty() && s.sender == SenderRule::Any {
        error(format!("desk `{desk}`, {skey}.sender_units: needs `sender = \"internal\"` or `\"official\"`"));
    }
    Extras { schedule, info, tiers }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    desk: String,
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    source: Option<String>,
    #[serde(default)]
    internal_domains: Vec<String>,
    #[serde(default)]
    official_domains: Vec<String>,
    /// The desk keeps change tickets apart (Pusintek: Service/Incident/Change): every service that
    /// takes requests takes change requests too.
    #[serde(default)]
    change_tickets: bool,
    #[serde(default)]
    reopen_days: Option<u32>,
    #[serde(default)]
    category: Vec<RawCategory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    id: String,
    name: String,
    #[serde(default)]
    r#ref: Option<String>,
    letter: String,
    #[serde(default)]
    subcategory: Vec<RawSubcategory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubcategory {
    id: String,
    name: String,
    #[serde(default)]
    r#ref: Option<String>,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    internal_only: bool,
    #[serde(default)]
    contact: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    fulfilment: Option<String>,
    #[serde(default)]
    fulfilment_note: Option<String>,
    #[serde(default)]
    requires_attachment: Option<String>,
    #[serde(default)]
    requires_supervisor_cc: bool,
    #[serde(default)]
    requires_info: Vec<String>,
    #[serde(default)]
    requirement: Vec<RawRequirement>,
    #[serde(default)]
    schedule: Option<RawSchedule>,
    #[serde(default)]
    info: Vec<RawInfo>,
    #[serde(default)]
    sender: SenderRule,
    #[serde(default)]
    sender_units: Vec<String>,
    #[serde(default)]
    tier: Vec<RawTier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    #[serde(default)]
    close_after_days: Option<u32>,
    #[serde(default)]
    min_lead_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInfo {
    name: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    pattern: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    fulfilment: String,
    #[serde(default)]
    when_any: Vec<String>,
    #[serde(default)]
    when_regex: Option<String>,
    #[serde(default)]
    unless_any: Vec<String>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequirement {
    #[serde(default)]
    item: Option<String>,
    kind: RequirementKind,
    #[serde(default)]
    when_any: Vec<String>,
    #[serde(default)]
    unless_any: Vec<String>,
    #[serde(default)]
    when_regex: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
desk = "hero"
name = "HERO"
internal_domains = ["kemendag.go.id"]
[[category]]
id = "aplikasi"
name = "Aplikasi"
letter = "A"
[[category.subcategory]]
id = "sigi"
name = "SIGI"
types = ["incident"]
internal_only = true
fulfilment = "4h"
"#;

    #[test]
    fn loads_a_valid_catalogue() {
        let c = Catalogue::parse(Path::new("hero.toml"), GOOD).unwrap();
        let s = c.subcategory("aplikasi", "sigi").unwrap();
        assert_eq!(s.types, vec![TicketType::Incident]);
        assert_eq!(s.fulfilment, Some(Fulfilment::WorkingHours(4)));
        assert_eq!(c.letter("aplikasi"), 'A');
        assert_eq!(c.letter(TRIAGE_CATEGORY), 'T');
        assert!(c.is_internal_domain("itjen.kemendag.go.id"));
        assert!(!c.is_internal_domain("notkemendag.go.id"));
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let bad = GOOD
            .replace("types = [\"incident\"]", "types = [\"kendala\"]")
            .replace("letter = \"A\"", "letter = \"T\"")
            .replace("\"4h\"", "\"4 jam\"");
        let errs = Catalogue::parse(Path::new("seeds/hero.toml"), &bad).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 3, "{text:?}");
        assert!(text.iter().all(|t| t.starts_with("seeds/hero.toml: category[0]")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("unknown type `kendala`")));
        assert!(text.iter().any(|t| t.contains(".letter")));
        assert!(text.iter().any(|t| t.contains(".fulfilment")));
    }

    const WITH_REQUIREMENTS: &str = r#"
[[category.subcategory.requirement]]
item = "Format Lampiran Akun Kolektif"
kind = "attachment"
when_any = ["Kolektif", "lebih dari 30"]
when_regex = '\b(3[1-9]|[4-9][0-9]) pegawai\b'
unless_any = ["reset password"]
note = "hanya untuk pembuatan akun kolektif lebih dari 30 akun"

[[category.subcategory.requirement]]
kind = "supervisor_cc"
"#;

    #[test]
    fn loads_requirement_tables_and_legacy_keys() {
        let text = GOOD.replace("fulfilment = \"4h\"", "fulfilment = \"4h\"\nrequires_attachment = \"Surat resmi\"")
            + WITH_REQUIREMENTS;
        let c = Catalogue::parse(Path::new("hero.toml"), &text).unwrap();
        let r = &c.subcategory("aplikasi", "sigi").unwrap().requirements;
        let summary: Vec<(RequirementKind, &str, bool)> =
            r.iter().map(|r| (r.kind, r.item.as_str(), r.condition.is_unconditional())).collect();
        assert_eq!(
            summary,
            vec![
                (RequirementKind::Attachment, "Surat resmi", true),
                (RequirementKind::Attachment, "Format Lampiran Akun Kolektif", false),
                (RequirementKind::SupervisorCc, SUPERVISOR_CC_ITEM, true),
            ]
        );
        let collective = &r[1];
        assert_eq!(collective.note.as_deref(), Some("hanya untuk pembuatan akun kolektif lebih dari 30 akun"));
        assert!(collective.applies_to("Pembuatan akun KOLEKTIF"));
        assert!(collective.applies_to("akun untuk 45 pegawai"));
        assert!(!collective.applies_to("akun untuk 12 pegawai"));
        assert!(!collective.applies_to("akun untuk pegawai baru"));
        assert!(!collective.applies_to("reset password akun kolektif"));
    }

    #[test]
    fn a_bad_requirement_is_a_load_error_naming_file_desk_subcategory_and_regex() {
        let bad = WITH_REQUIREMENTS.replace(r"'\b(3[1-9]", r"'\b(3[1-9");
        let errs = Catalogue::parse(Path::new("seeds/hero.toml"), &(GOOD.to_string() + &bad)).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(text.len(), 1, "{text:?}");
        for needle in ["seeds/hero.toml", "desk `hero`", "(`sigi`)", "requirement[0].when_regex", r"\b(3[1-9"] {
            assert!(text[0].contains(needle), "{needle} in {text:?}");
        }
        // Notes in the item, a missing item, an unknown kind.
        let noted = WITH_REQUIREMENTS.replace("Kolektif\"\nkind", "Kolektif (lebih dari 30 akun)\"\nkind");
        let errs = Catalogue::parse(Path::new("hero.toml"), &(GOOD.to_string() + &noted)).unwrap_err();
        assert!(errs[0].to_string().contains("requirement[0].item"), "{errs:?}");
        let no_item = WITH_REQUIREMENTS.replace("item = \"Format Lampiran Akun Kolektif\"\n", "");
        let errs = Catalogue::parse(Path::new("hero.toml"), &(GOOD.to_string() + &no_item)).unwrap_err();
        assert!(errs[0].to_string().contains("requirement[0].item"), "{errs:?}");
        let kind = WITH_REQUIREMENTS.replace("\"attachment\"", "\"lampiran\"");
        assert!(Catalogue::parse(Path::new("hero.toml"), &(GOOD.to_string() + &kind)).is_err());
    }

    /// A regex of good syntax that compiles past the regex crate's size limit loads (a request
    /// compiles it when it needs it, and it then matches nothing), but the daemon's and
    /// `check-config`'s compilation at load names it; the shipped catalogues' regexes all compile.
    #[test]
    fn a_regex_past_the_size_limit_is_named_by_the_compilation_at_load() {
        let huge = WITH_REQUIREMENTS.replace(r"'\b(3[1-9]|[4-9][0-9]) pegawai\b'", r"'(\w{100}){100}'");
        assert_ne!(huge, WITH_REQUIREMENTS);
        let c = Catalogue::parse(Path::new("hero.toml"), &(GOOD.to_string() + &huge)).unwrap();
        let errs = c.compile_regexes();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains(r"(\w{100}){100}") && errs[0].contains("does not compile"), "{errs:?}");
        let r = &c.subcategory("aplikasi", "sigi").unwrap().requirements;
        let collective = r.iter().find(|r| r.condition.when_regex.is_some()).unwrap();
        assert!(!collective.applies_to("akun untuk 45 pegawai"));
        assert!(collective.applies_to("akun kolektif untuk 45 pegawai"));
        for desk in ["hero", "pusintek", "djpb", "jateng"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("seeds/{desk}.toml"));
            assert_eq!(Catalogue::load(&path).unwrap().compile_regexes(), Vec::<String>::new(), "{desk}");
        }
    }

    const EXTRAS: &str = r#"
[[category.subcategory]]
id = "vicon"
name = "Video conference"
types = ["request"]
schedule = { close_after_days = 1, min_lead_days = 7 }
sender = "official"
sender_units = ["Unit TIK"]

[[category.subcategory.info]]
name = "Kode satker"
labels = ["kode satker"]
pattern = '^\d{6}$'

[[category.subcategory]]
id = "akun"
name = "Akun"
types = ["request"]
fulfilment = "1d"

[[category.subcategory.tier]]
fulfilment = "5d"
when_any = ["kolektif"]
when_regex = '\b(3[1-9]|[4-9][0-9]) akun\b'
"#;

    #[test]
    fn loads_schedule_information_sender_rule_and_tiers() {
        let text = GOOD.replace("internal_domains", "official_domains = [\"go.id\"]\ninternal_domains") + EXTRAS;
        let c = Catalogue::parse(Path::new("hero.toml"), &text).unwrap();
        let v = c.subcategory("aplikasi", "vicon").unwrap();
        assert_eq!(v.schedule, Some(Schedule { close_after_days: Some(1), min_lead_days: 7 }));
        assert_eq!(v.sender, SenderRule::Official);
        assert_eq!(v.sender_units, vec!["Unit TIK".to_string()]);
        assert_eq!(v.info[0].name, "Kode satker");
        assert!(v.info[0].pattern.as_ref().unwrap().is_match("012345"));
        assert!(c.sender_allowed(SenderRule::Official, "kppn.go.id"));
        assert!(c.sender_allowed(SenderRule::Official, "kemendag.go.id"));
        assert!(!c.sender_allowed(SenderRule::Official, "gmail.com"));
        assert!(!c.sender_allowed(SenderRule::Internal, "kppn.go.id"));
        assert!(c.sender_allowed(SenderRule::Any, "gmail.com"));
        let a = c.subcategory("aplikasi", "akun").unwrap();
        assert_eq!(a.fulfilment_for("buat akun untuk 45 akun"), Some(Fulfilment::WorkingDays(5)));
        assert_eq!(a.fulfilment_for("akun KOLEKTIF"), Some(Fulfilment::WorkingDays(5)));
        assert_eq!(a.fulfilment_for("akun untuk 3 pegawai"), Some(Fulfilment::WorkingDays(1)));
    }

    #[test]
    fn bad_extras_are_load_errors_naming_the_key() {
        let bad = EXTRAS
            .replace("types = [\"request\"]\nschedule", "types = [\"request\"]\nfulfilment = \"2d\"\nschedule")
            .replace("sender = \"official\"\n", "")
            .replace(r"'^\d{6}$'", r"'^\d{6$'")
            .replace("when_any = [\"kolektif\"]\nwhen_regex = '\\b(3[1-9]|[4-9][0-9]) akun\\b'\n", "")
            + "\n[[category.subcategory]]\nid = \"x\"\nname = \"X\"\ntypes = [\"request\"]\n\
               [[category.subcategory.info]]\nname = \"PIC (nama)\"\n";
        let errs = Catalogue::parse(Path::new("seeds/hero.toml"), &(GOOD.to_string() + &bad)).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for needle in [
            "schedule.close_after_days",
            "sender_units",
            "info[0].pattern",
            "tier[0]: needs `when_any`",
            "info[0].name: `PIC (nama)`",
            "info[0]: needs `labels` or `pattern`",
        ] {
            assert!(
                text.iter().any(|t| t.contains(needle) && t.starts_with("seeds/hero.toml")),
                "{needle} in {text:#?}"
            );
        }
    }

    #[test]
    fn parses_fulfilment_units() {
        assert_eq!(Fulfilment::parse("30m"), Some(Fulfilment::Minutes(30)));
        assert_eq!(Fulfilment::parse("2d"), Some(Fulfilment::WorkingDays(2)));
        assert_eq!(Fulfilment::parse("d"), None);
        assert_eq!(Fulfilment::parse(""), None);
        assert_eq!(Fulfilment::parse("4x"), None);
    }
}
