//! Routing rules files: `rules/common.toml` (synonyms, ticket-type and impact cues shared by every
//! desk) and `rules/<desk>.toml` (one `[[route]]` per subcategory, with its keywords, patterns,
//! negative keywords, inbox and sender-domain signals, plus `[[example]]` messages with the
//! route they must get). Format: `rules/README.md`. Compiled once at load: one Aho-Corasick
//! automaton and one `RegexSet` per desk; nothing is compiled per message.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::RegexSet;
use serde::Deserialize;

use super::normalize::normalize;
use crate::catalogue::{Catalogue, TRIAGE_CATEGORY, TRIAGE_SUBCATEGORY};
use crate::domain::{Impact, TicketType};

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A phrase → weight table; keys are normalised like message text; a trailing `*` makes the last
/// word a prefix (`akses*` matches `aksesnya`).
pub type Weights = BTreeMap<String, f64>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonFile {
    #[serde(default)]
    pub synonyms: BTreeMap<String, String>,
    #[serde(default)]
    pub type_cues: BTreeMap<String, Weights>,
    #[serde(default)]
    pub impact_cues: BTreeMap<String, Weights>,
    /// Urgency of incidents (for the priority matrix): `high` and `low` cues; medium otherwise.
    #[serde(default)]
    pub urgency_cues: BTreeMap<String, Weights>,
    #[serde(default = "default_question_mark")]
    pub question_mark_weight: f64,
}

fn default_question_mark() -> f64 {
    1.5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskFile {
    pub desk: String,
    /// Minimum score for a route; below it the ticket goes to triage.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Multiplier for matches in the subject.
    #[serde(default = "default_subject_weight")]
    pub subject_weight: f64,
    /// Minimum impact-cue score for medium or high; below it an incident is low.
    #[serde(default = "default_impact_threshold")]
    pub impact_threshold: f64,
    #[serde(default)]
    pub synonyms: BTreeMap<String, String>,
    #[serde(default)]
    pub type_cues: BTreeMap<String, Weights>,
    #[serde(default)]
    pub impact_cues: BTreeMap<String, Weights>,
    #[serde(default)]
    pub urgency_cues: BTreeMap<String, Weights>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteRule>,
    #[serde(default, rename = "example")]
    pub examples: Vec<Example>,
}

fn default_threshold() -> f64 {
    3.0
}
fn default_subject_weight() -> f64 {
    1.5
}
fn default_impact_threshold() -> f64 {
    2.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// `category/subcategory` of the desk's catalogue.
    pub to: String,
    #[serde(default)]
    pub keywords: Weights,
    /// Regular expressions over the normalised text (lower case, no punctuation).
    #[serde(default)]
    pub patterns: Weights,
    /// Phrases that speak against this route; their weight is subtracted.
    #[serde(default)]
    pub negative: Weights,
    /// Inbox addresses (or their local parts) whose mail leans to this route.
    #[serde(default)]
    pub inbox: Weights,
    /// Sender domains (and their subdomains) that lean to this route.
    #[serde(default)]
    pub sender_domains: Weights,
    /// Type when the cues say nothing; must be allowed by the subcategory.
    #[serde(default)]
    pub default_type: Option<TicketType>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    #[serde(default)]
    pub subject: String,
    pub body: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub inbox: Option<String>,
    /// Expected `category/subcategory` (or `triage/unknown`).
    pub route: String,
    #[serde(default, rename = "type")]
    pub ticket_type: Option<TicketType>,
    #[serde(default)]
    pub impact: Option<Impact>,
}

/// What a matched phrase counts towards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Target {
    Route(usize),
    Against(usize),
    Type(TicketType),
    Impact(Impact),
    Urgency(Impact),
}

#[derive(Debug, Clone)]
pub(crate) struct Phrase {
    pub text: String,
    pub targets: Vec<(Target, f64)>,
}

/// One desk's rules, compiled.
#[derive(Debug)]
pub struct DeskRules {
    pub desk: String,
    pub threshold: f64,
    pub subject_weight: f64,
    pub impact_threshold: f64,
    pub question_mark_weight: f64,
    pub synonyms: HashMap<String, String>,
    pub routes: Vec<CompiledRoute>,
    pub examples: Vec<Example>,
    pub(crate) phrases: Vec<Phrase>,
    pub(crate) automaton: AhoCorasick,
    pub(crate) patterns: RegexSet,
    pub(crate) pattern_targets: Vec<(usize, f64, String)>,
    pub source: PathBuf,
}

#[derive(Debug, Clone)]
pub struct CompiledRoute {
    pub category: String,
    pub subcategory: String,
    pub allowed: Vec<TicketType>,
    pub internal_only: bool,
    pub inbox: Vec<(String, f64)>,
    pub sender_domains: Vec<(String, f64)>,
    pub default_type: Option<TicketType>,
}

pub fn load_common(path: &Path) -> Result<CommonFile, RulesError> {
    if !path.exists() {
        return Ok(CommonFile { question_mark_weight: default_question_mark(), ..Default::default() });
    }
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io { path: path.into(), source })?;
    toml::from_str(&text).map_err(|e| RulesError::Invalid { path: path.into(), message: e.to_string() })
}

/// Loads and compiles `path` for `catalogue`; every problem is reported.
pub fn load_desk(path: &Path, common: &CommonFile, catalogue: &Catalogue) -> Result<DeskRules, Vec<RulesError>> {
    let text = std::fs::read_to_string(path).map_err(|source| vec![RulesError::Io { path: path.into(), source }])?;
    parse_desk(path, &text, common, catalogue)
}

/// Parses and compiles the text of a desk's rules file (`path` names it in errors). Fuzzed.
pub fn parse_desk(
    path: &Path,
    text: &str,
    common: &CommonFile,
    catalogue: &Catalogue,
) -> Result<DeskRules, Vec<RulesError>> {
    let inv = |message: String| RulesError::Invalid { path: path.into(), message };
    let file: DeskFile = toml::from_str(text).map_err(|e| vec![inv(e.to_string())])?;
    compile(path, file, common, catalogue)
}

pub fn compile(
    path: &Path,
    file: DeskFile,
    common: &CommonFile,
    catalogue: &Catalogue,
) -> Result<DeskRules, Vec<RulesError>> {
    let inv = |message: String| RulesError::Invalid { path: path.into(), message };
    let mut errors = Vec::new();
    if file.desk != catalogue.desk {
        errors.push(inv(format!("desk = `{}` but the catalogue is for `{}`", file.desk, catalogue.desk)));
    }
    let mut synonyms: HashMap<String, String> = HashMap::new();
    for (k, v) in common.synonyms.iter().chain(file.synonyms.iter()) {
        let key = normalize(k, &HashMap::new());
        let key = key.trim();
        if key.contains(' ') || key.is_empty() {
            errors.push(inv(format!("synonyms: `{k}` must be one word")));
            continue;
        }
        synonyms.insert(key.to_string(), normalize(v, &HashMap::new()).trim().to_string());
    }
    let mut phrase_index: HashMap<String, usize> = HashMap::new();
    let mut phrases: Vec<Phrase> = Vec::new();
    let mut add = |raw: &str, target: Target, weight: f64, errors: &mut Vec<RulesError>, key: &str| {
        let prefix = raw.trim_end().ends_with('*');
        let n = normalize(raw.trim_end().trim_end_matches('*'), &synonyms);
        if n.trim().is_empty() {
            errors.push(inv(format!("{key}: `{raw}` has no letters or digits")));
            return;
        }
        if !weight.is_finite() {
            errors.push(inv(format!("{key}: weight of `{raw}` is not a number")));
            return;
        }
        let text = if prefix { n.trim_end().to_string() } else { n };
        let i = *phrase_index.entry(text.clone()).or_insert_with(|| {
            phrases.push(Phrase { text, targets: Vec::new() });
            phrases.len() - 1
        });
        phrases[i].targets.push((target, weight));
    };
    type CueTarget = fn(&str) -> Option<Target>;
    type CueTable<'t> = (&'t str, &'t BTreeMap<String, Weights>, &'t BTreeMap<String, Weights>, CueTarget, &'t str);
    let cue_tables: [CueTable; 3] = [
        (
            "type_cues",
            &common.type_cues,
            &file.type_cues,
            |n| TicketType::parse(n).map(Target::Type),
            "question, request, incident",
        ),
        (
            "impact_cues",
            &common.impact_cues,
            &file.impact_cues,
            |n| Impact::parse(n).map(Target::Impact),
            "low, medium, high",
        ),
        (
            "urgency_cues",
            &common.urgency_cues,
            &file.urgency_cues,
            |n| Impact::parse(n).map(Target::Urgency),
            "low, medium, high",
        ),
    ];
    for (table, shared, own, target_of, known) in cue_tables {
        for (name, cues) in shared.iter().chain(own.iter()) {
            match target_of(name) {
                Some(target) => {
                    for (p, w) in cues {
                        add(p, target, *w, &mut errors, &format!("{table}.{name}"));
                    }
                }
                None => errors.push(inv(format!("{table}.{name}: unknown; known: {known}"))),
            }
        }
    }
    let mut routes = Vec::new();
    let mut regexes = Vec::new();
    let mut pattern_targets = Vec::new();
    let mut seen = HashMap::new();
    for (i, r) in file.routes.iter().enumerate() {
        let key = format!("route[{i}] (`{}`)", r.to);
        let Some((cat, sub)) = r.to.split_once('/') else {
            errors.push(inv(format!("{key}.to: must be `category/subcategory`")));
            continue;
        };
        let Some(s) = catalogue.subcategory(cat, sub) else {
            let known: Vec<String> = catalogue
                .categories
                .iter()
                .flat_map(|c| c.subcategories.iter().map(move |s| format!("{}/{}", c.id, s.id)))
                .filter(|k| k.split('/').next() == Some(cat) || k.contains(sub))
                .collect();
            errors.push(inv(format!("{key}.to: unknown subcategory `{}`; known: {}", r.to, known.join(", "))));
            continue;
        };
        if let Some(prev) = seen.insert(r.to.clone(), i) {
            errors.push(inv(format!("{key}.to: `{}` already has route[{prev}]", r.to)));
        }
        if let Some(t) = r.default_type
            && !s.types.contains(&t)
        {
            errors.push(inv(format!("{key}.default_type: `{t}` is not allowed for `{}`", r.to)));
        }
        let idx = routes.len();
        for (p, w) in &r.keywords {
            add(p, Target::Route(idx), *w, &mut errors, &format!("{key}.keywords"));
        }
        for (p, w) in &r.negative {
            add(p, Target::Against(idx), *w, &mut errors, &format!("{key}.negative"));
        }
        for (p, w) in &r.patterns {
            match regex::Regex::new(p) {
                Ok(_) => {
                    regexes.push(p.clone());
                    pattern_targets.push((idx, *w, p.clone()));
                }
                Err(e) => errors.push(inv(format!("{key}.patterns: `{p}`: {e}"))),
            }
        }
        routes.push(CompiledRoute {
            category: cat.to_string(),
            subcategory: sub.to_string(),
            allowed: s.types.clone(),
            internal_only: s.internal_only,
            inbox: r.inbox.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect(),
            sender_domains: r.sender_domains.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect(),
            default_type: r.default_type,
        });
    }
    for (i, ex) in file.examples.iter().enumerate() {
        let ok = ex.route == format!("{TRIAGE_CATEGORY}/{TRIAGE_SUBCATEGORY}")
            || ex.route.split_once('/').is_some_and(|(c, s)| catalogue.subcategory(c, s).is_some());
        if !ok {
            errors.push(inv(format!("example[{i}].route: unknown `{}`", ex.route)));
        }
    }
    let automaton = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .build(phrases.iter().map(|p| p.text.as_str()))
        .map_err(|e| vec![inv(format!("cannot compile keywords: {e}"))]);
    let patterns = RegexSet::new(&regexes).map_err(|e| vec![inv(format!("cannot compile patterns: {e}"))]);
    let (automaton, patterns) = match (automaton, patterns) {
        (Ok(a), Ok(p)) if errors.is_empty() => (a, p),
        (a, p) => {
            errors.extend(a.err().into_iter().flatten());
            errors.extend(p.err().into_iter().flatten());
            return Err(errors);
        }
    };
    Ok(DeskRules {
        desk: file.desk,
        threshold: file.threshold,
        subject_weight: file.subject_weight,
        impact_threshold: file.impact_threshold,
        question_mark_weight: common.question_mark_weight,
        synonyms,
        routes,
        examples: file.examples,
        phrases,
        automaton,
        patterns,
        pattern_targets,
        source: path.to_path_buf(),
    })
}
