//! Routing rules files: `rules/common.toml` (synonyms, ticket-type and impact cues shared by every
//! desk) and `rules/<desk>.toml` (one `[[route]]` per subcategory, with its keywords, patterns,
//! negative keywords, inbox and sender-domain signals) and `rules/<desk>.examples.toml` (messages
//! with the route they must get). Format: `rules/README.md`. Compiled once at load: one Aho-Corasick
//! automaton per desk, which finds the keywords and the route patterns' needles in one pass
//! ([`super::keywords`], [`super::patterns`]); nothing is compiled per message. (For the few
//! messages of `loket ingest`, [`Purpose::Few`], the keywords are looked up in their text order
//! and only the needles get an automaton, and a pattern's regex, where one must run, is compiled
//! when the first message that holds its literals needs it.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, MatchKind};
use serde::{Deserialize, Serialize};

use super::HashMap;
use super::keywords::Keywords;
use super::normalize::{fold, normalize};
use super::patterns::{Compile, RoutePatterns};
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
    /// Impact of incidents from the scope a message states: named classes with their level.
    #[serde(default)]
    pub impact_classes: BTreeMap<String, ImpactClass>,
    /// Counts of people or units that name an impact class ("6 developer", "12 kanwil").
    #[serde(default)]
    pub impact_counts: BTreeMap<String, ImpactCount>,
    /// A duty due soon ("harus dikirim … sore ini", "batas … hari ini") names an impact class.
    #[serde(default)]
    pub impact_due: Option<ImpactDue>,
    /// Pairs of cues near each other that name an impact class: a place named ("di bidang …"),
    /// a unit's own ("tim saya"), the public hit ("importir ga bisa bayar").
    #[serde(default)]
    pub impact_pairs: Vec<ImpactPair>,
    /// Urgency of incidents (for the priority matrix): `high` and `low` cues; medium otherwise.
    #[serde(default)]
    pub urgency_cues: BTreeMap<String, Weights>,
    #[serde(default = "default_question_mark")]
    pub question_mark_weight: f64,
    /// Polite request forms ("bisa dibantu", "mohon", "could you"): a sentence ending in `?`
    /// that holds one asks for an action, so its `?` counts for `request`, not `question`.
    #[serde(default)]
    pub polite_requests: Vec<String>,
    /// Explicit requests: a marker followed by an action beats failure words (see
    /// [`super::speech`]).
    #[serde(default)]
    pub speech: SpeechFile,
    /// Named cue sets every desk may reference (`use`, `against`).
    #[serde(default)]
    pub sets: BTreeMap<String, CueSet>,
}

/// A named block of cues, defined once and referenced by routes: `use = { NAME = factor }` adds
/// its weights (times the factor) to a route, `against = { NAME = factor }` subtracts them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CueSet {
    #[serde(default)]
    pub keywords: Weights,
    #[serde(default)]
    pub patterns: Weights,
}

/// `[speech]` of `common.toml`: request markers, request actions (a trailing `*` makes a prefix),
/// the failure and question words that stop the search, and how far an action may stand.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechFile {
    #[serde(default)]
    pub request_markers: Vec<String>,
    #[serde(default)]
    pub request_actions: Vec<String>,
    #[serde(default)]
    pub blockers: Vec<String>,
    #[serde(default)]
    pub not_after: Vec<String>,
    /// Phrases that say a problem is over ("sudah beres", "already fixed"): a system named only
    /// in such sentences is merely mentioned.
    #[serde(default)]
    pub resolved: Vec<String>,
    /// Phrases by which a body says its subject is wrong ("subjek salah, maksud saya …"): the
    /// subject then does not route.
    #[serde(default)]
    pub subject_disowned: Vec<String>,
    /// Action word forms with one `*` for the root (`di*kan`); see [`super::speech`].
    #[serde(default)]
    pub action_forms: Vec<String>,
    /// Words that are no action even where a form matches them ("dijelaskan").
    #[serde(default)]
    pub not_actions: Vec<String>,
    /// Words that ask only for a reported fault to be dealt with ("ditangani", "dicek",
    /// "segera"); see [`super::speech::SpeechCues::asks_only_handling`].
    #[serde(default)]
    pub handling: Vec<String>,
    /// Words that open what a handling word asks to be checked ("apakah": "mohon dicek apakah
    /// ada masalah di server"); see [`super::speech::SpeechCues::asks_only_handling`].
    #[serde(default)]
    pub handling_clauses: Vec<String>,
    /// Words that say the asker does the action ("sendiri"); see [`super::speech`].
    #[serde(default)]
    pub self_words: Vec<String>,
    /// Tags that make a question ask whether ("sih": "bisa dibuka dr rumah ga sih?"); handled as
    /// `self_words` are.
    #[serde(default)]
    pub whether_tags: Vec<String>,
    /// Particles after a question marker that ends a sentence ("bisa ga?").
    #[serde(default)]
    pub question_tails: Vec<String>,
    /// Question words that open a polite request right before a question marker ("apakah bisa").
    #[serde(default)]
    pub question_openers: Vec<String>,
    /// Markers of a question (a sentence ending in `?`) that asks for an action ("bisa").
    #[serde(default)]
    pub question_markers: Vec<String>,
    /// Words that ask how ("cara", "how"): a message whose questions hold one asks how to do
    /// it, not for the action ("bisa dijadwalkan ga? caranya gimana?").
    #[serde(default)]
    pub how_words: Vec<String>,
    /// Words that name the desk or its staff ("tim", "bapak"): "apakah tim bisa …?" asks for it.
    #[serde(default)]
    pub addressees: Vec<String>,
    /// Words that deny what follows ("bukan"): a request or question cue at most `within`
    /// words after one does not count ("bukan minta akun baru").
    #[serde(default)]
    pub negations: Vec<String>,
    /// A fault said as a negated verb ("OTP tidak pernah sampai", "belum muncul"): one of
    /// these, then (after any `negation_fillers`) a word none of `not_failures`.
    #[serde(default)]
    pub failure_negations: Vec<String>,
    #[serde(default)]
    pub negation_fillers: Vec<String>,
    #[serde(default)]
    pub not_failures: Vec<String>,
    /// A negation right after one of these is a question tag ("bisa ga …?", "sudah belum?").
    #[serde(default)]
    pub negation_tags_after: Vec<String>,
    /// A sentence holding one of these asks about what it negates ("blm keluar, kenapa ya").
    #[serde(default)]
    pub negation_asks: Vec<String>,
    /// What such a negated verb counts for `incident`, where no incident cue matched.
    #[serde(default)]
    pub failure_negation_weight: f64,
    #[serde(default = "default_within")]
    pub within: usize,
}

/// A scope class for the impact of incidents (see [`super::scope`]): the level it stands for and
/// its cues.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpactClass {
    /// `low`, `medium` or `high`; a desk class that extends a common class may leave it out.
    #[serde(default)]
    pub level: Option<Impact>,
    #[serde(default)]
    pub keywords: Weights,
    /// Classes this one bounds: when it counts, they do not ("only me" is no floor even where
    /// "my colleagues" stands; a service "slow but usable" is not down for the public).
    #[serde(default)]
    pub caps: Vec<String>,
    /// Where this class counts and the incident cues lead, the message stays an incident: an
    /// explicit request in it ("mohon segera dipulihkan" after a defacement) asks for the fix.
    #[serde(default)]
    pub incident: bool,
}

/// A kind of counted thing for the impact of incidents (see [`super::scope::counts`]): a number
/// before one of its `nouns` ("6 developer", "12 kanwil") names the class of `classes` (class =
/// least count) with the largest least count reached.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpactCount {
    /// One word each; a trailing `*` makes it a prefix (`user*`: users).
    #[serde(default)]
    pub nouns: Vec<String>,
    #[serde(default)]
    pub classes: BTreeMap<String, u64>,
    /// The class a whole group of this kind stands for ("semua peserta": one event's, `unit`);
    /// default: the class of the largest least count ("semua pegawai": `organisation`).
    #[serde(default)]
    pub whole: Option<String>,
}

/// A duty due soon (see [`super::scope::due_soon`]): one of `obligations` (one word each) and
/// one of `times` (phrases) at most `within` words apart give the impact class `class`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpactDue {
    pub class: String,
    #[serde(default = "default_due_within")]
    pub within: usize,
    pub obligations: Vec<String>,
    pub times: Vec<String>,
}

fn default_due_within() -> usize {
    5
}

/// A pair of cues (see [`super::scope::pair_found`]): one of `first`, then one of `then` at most
/// `within` words later (either order unless `ordered`), give the impact class `class`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpactPair {
    /// What the pair stands for, for `rules explain` ("a place named").
    pub name: String,
    pub class: String,
    #[serde(default)]
    pub within: usize,
    #[serde(default = "default_true")]
    pub ordered: bool,
    pub first: Vec<String>,
    pub then: Vec<String>,
    /// Words right before a `first` cue that keep it from counting ("kami importir": one of
    /// them writing, not the public hit).
    #[serde(default)]
    pub not_after: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// "X unless Y within N words": the route's cue `cue` does not count where one of `near` stands
/// at most `within` words before or after it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unless {
    pub cue: String,
    pub near: Vec<String>,
    #[serde(default = "default_within")]
    pub within: usize,
}

fn default_within() -> usize {
    3
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
    /// The desk's impact classes: new ones (with a `level`), or more cues for a common class
    /// of the same name (a desk weight replaces the common one).
    #[serde(default)]
    pub impact_classes: BTreeMap<String, ImpactClass>,
    /// The desk's count kinds: new ones, or one that replaces the common kind of the same name.
    #[serde(default)]
    pub impact_counts: BTreeMap<String, ImpactCount>,
    #[serde(default)]
    pub urgency_cues: BTreeMap<String, Weights>,
    /// Named cue sets of this desk (a desk set hides a common set of the same name).
    #[serde(default)]
    pub sets: BTreeMap<String, CueSet>,
    /// A route keyword that stands only outside the sentences that ask or report (a system
    /// merely mentioned) counts this many times; 1 turns the rule off.
    #[serde(default = "default_mention_weight")]
    pub mention_weight: f64,
    /// `inherit` copies the sibling routes' keywords of at least this weight.
    #[serde(default = "default_inherit_min")]
    pub inherit_min_weight: f64,
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
fn default_mention_weight() -> f64 {
    0.5
}
fn default_inherit_min() -> f64 {
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
    /// Cue sets added to this route: set name → factor.
    #[serde(default, rename = "use")]
    pub use_sets: BTreeMap<String, f64>,
    /// Cue sets that speak against this route: set name → factor (subtracted).
    #[serde(default)]
    pub against: BTreeMap<String, f64>,
    /// The service's vocabulary: the keywords (weight at least the desk's `inherit_min_weight`)
    /// of the other routes of the same category, times this factor. For `gangguan` routes.
    #[serde(default)]
    pub inherit: Option<f64>,
    /// Cues that do not count next to the given words.
    #[serde(default)]
    pub unless: Vec<Unless>,
    /// Keywords of this route of which the message must hold one for the route to score at all
    /// ("a SAKTI user administration needs SAKTI named"); empty: no such need.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Scope classes this service stands for when it fails (`public = 1`: a public-facing
    /// service; `deadline = 1`: payments with a due date): added to the class's score when the
    /// route wins.
    #[serde(default)]
    pub scope: Weights,
    /// Last tie-breaker between routes with the same score (higher wins); see `rules/README.md`.
    #[serde(default)]
    pub priority: i32,
    /// Type when the cues say nothing; must be allowed by the subcategory.
    #[serde(default)]
    pub default_type: Option<TicketType>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    #[serde(default)]
    pub subject: String,
    pub body: String,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub inbox: Option<String>,
    /// Expected `category/subcategory` (or `triage/unknown`); in an examples file's grouped
    /// form, the key the example stands under.
    #[serde(default)]
    pub route: String,
    #[serde(default, rename = "type")]
    pub ticket_type: Option<TicketType>,
    #[serde(default)]
    pub impact: Option<Impact>,
}

/// What a matched phrase counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) enum Target {
    Route(usize),
    Against(usize),
    Type(TicketType),
    /// An impact class, by its index in [`DeskRules::impact_classes`].
    Impact(usize),
    Urgency(Impact),
    /// A phrase that says a problem is over (`[speech] resolved`): matched in the same one pass
    /// over the text as every cue, it marks its sentence as settled.
    Resolved,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Phrase {
    pub text: String,
    /// Words in `text` (the tie order prefers longer keywords).
    pub words: usize,
    pub targets: Vec<(Target, f64)>,
    /// What `targets` say about the sentence the phrase stands in.
    pub marks: Marks,
    /// The reason line of each target that is a type, scope or urgency cue (empty for the
    /// others), written the first time a message is explained with it and kept with the rules.
    #[serde(skip)]
    pub lines: std::sync::OnceLock<Box<[String]>>,
}

/// What a phrase's targets say about the sentence it stands in, read once when the rules
/// compile: routing asks it of every match, and a shared failure word targets dozens of routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Marks {
    /// It says a problem is over (`[speech] resolved`).
    pub resolved: bool,
    /// An incident or request type cue: the sentence reports a fault or asks for something.
    pub asks: bool,
    /// A question type cue.
    pub question: bool,
}

impl Marks {
    fn of(targets: &[(Target, f64)]) -> Self {
        let has = |f: fn(&Target) -> bool| targets.iter().any(|(t, _)| f(t));
        Self {
            resolved: has(|t| *t == Target::Resolved),
            asks: has(|t| matches!(t, Target::Type(TicketType::Incident | TicketType::Request))),
            question: has(|t| *t == Target::Type(TicketType::Question)),
        }
    }
}

/// One desk's rules, compiled (and kept between processes without their automaton and
/// opinions: [`DeskRules::to_kept`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct DeskRules {
    pub desk: String,
    pub threshold: f64,
    pub subject_weight: f64,
    pub impact_threshold: f64,
    pub mention_weight: f64,
    /// Impact classes: name and level, in name order.
    pub impact_classes: Vec<(String, Impact)>,
    /// Per impact class (same index), the classes it caps (see [`ImpactClass::caps`]).
    pub impact_caps: Vec<Vec<usize>>,
    /// The impact classes that keep a message an incident (see [`ImpactClass::incident`]).
    pub incident_classes: Vec<usize>,
    /// Counts of people or units that name an impact class (see [`super::scope::counts`]).
    pub impact_counts: Vec<super::scope::CountKind>,
    /// A duty due soon names an impact class (see [`super::scope::due_soon`]).
    pub impact_due: Option<super::scope::DueCues>,
    /// Pairs of cues that name an impact class (see [`super::scope::pair_found`]).
    pub impact_pairs: Vec<super::scope::PairCues>,
    /// The pairs' cues' first words (pair `i`'s `first` set `2i`, its `then` set `2i + 1`), for
    /// one look-up per word of a message: a pair none of whose `first` cues may start there is
    /// not searched, and the others are searched only where the index says a cue may start.
    pub impact_pair_starts: super::phrases::StartIndex,
    pub question_mark_weight: f64,
    /// Normalised polite request forms (see [`CommonFile::polite_requests`]).
    pub polite_requests: Vec<String>,
    /// Explicit request forms (see [`super::speech`]).
    pub speech: super::speech::SpeechCues,
    /// The phrases by which a body disowns its subject (see [`SpeechFile::subject_disowned`]).
    pub subject_disowned: WordPhrases,
    pub synonyms: HashMap<String, String>,
    pub routes: Vec<CompiledRoute>,
    /// The routes with `requires` (most have none: only these are checked per message).
    pub(crate) requiring: Vec<usize>,
    pub examples: Vec<Example>,
    /// The second opinion learned from the desk's labelled messages (`rules/labelled/*.jsonl`),
    /// if there are any ([`super::examples`]).
    #[serde(skip)]
    pub opinion: Option<std::sync::Arc<super::examples::Model>>,
    /// The impact opinion learned from every desk's labelled incidents, if there are any: it
    /// gives an incident's impact where it clearly reads another than the rules' scope classes
    /// ([`super::examples::impact_verdict`]).
    #[serde(skip)]
    pub impact_opinion: std::sync::Arc<super::examples::ImpactOpinion>,
    pub(crate) phrases: Vec<Phrase>,
    /// How the phrases and the patterns' needles are found ([`super::keywords`]); kept as the
    /// phrases' order alone.
    pub(crate) keywords: Keywords,
    pub(crate) patterns: RoutePatterns,
    /// For each distinct pattern of `patterns`: its text and the routes it counts for.
    pub(crate) pattern_targets: Vec<(String, Vec<(usize, f64)>)>,
    pub(crate) unless: Vec<CompiledUnless>,
    pub source: PathBuf,
}

/// A few phrases found as whole words of normalised text in one pass of an automaton.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct WordPhrases {
    phrases: Vec<String>,
    automaton: Option<AhoCorasick>,
}

impl From<Vec<String>> for WordPhrases {
    fn from(phrases: Vec<String>) -> Self {
        Self::new(phrases)
    }
}

impl From<WordPhrases> for Vec<String> {
    fn from(w: WordPhrases) -> Self {
        w.phrases
    }
}

impl WordPhrases {
    /// `phrases` already normalised; empty ones are dropped.
    pub fn new(phrases: impl IntoIterator<Item = String>) -> Self {
        let phrases: Vec<String> = phrases.into_iter().filter(|p| !p.is_empty()).collect();
        let automaton = (!phrases.is_empty())
            .then(|| AhoCorasick::builder().match_kind(MatchKind::Standard).build(&phrases).ok())
            .flatten();
        Self { phrases, automaton }
    }

    /// The first phrase that stands in `text` as whole words (a space or the text's edge on
    /// either side).
    pub fn find_in(&self, text: &str) -> Option<&str> {
        let automaton = self.automaton.as_ref()?;
        automaton
            .find_iter(text)
            .find(|m| {
                (m.start() == 0 || text[..m.start()].ends_with(' '))
                    && text[m.end()..].chars().next().is_none_or(|c| c == ' ')
            })
            .map(|m| self.phrases[m.pattern().as_usize()].as_str())
    }
}

/// A compiled [`Unless`]: route `route`'s keyword phrase `phrase` does not count next to `near`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CompiledUnless {
    pub route: usize,
    pub phrase: usize,
    pub cue: Vec<String>,
    pub near: Vec<Vec<String>>,
    pub within: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompiledRoute {
    pub category: String,
    pub subcategory: String,
    pub allowed: Vec<TicketType>,
    pub internal_only: bool,
    pub inbox: Vec<(String, f64)>,
    pub sender_domains: Vec<(String, f64)>,
    pub default_type: Option<TicketType>,
    /// Impact classes (index, weight) this service adds when it fails.
    pub scope: Vec<(usize, f64)>,
    /// Phrase ids of [`RouteRule::requires`]: the route scores nothing unless one matched.
    pub requires: Vec<usize>,
    pub priority: i32,
    /// Rank of `category/subcategory` in alphabetical order: the last, arbitrary but stable,
    /// order of routes that tie in every respect (they go to triage; this only fixes which one
    /// the reason names first).
    pub name_rank: usize,
}

pub fn load_common(path: &Path) -> Result<CommonFile, RulesError> {
    if !path.exists() {
        return Ok(CommonFile { question_mark_weight: default_question_mark(), ..Default::default() });
    }
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io { path: path.into(), source })?;
    toml::from_str(&text).map_err(|e| RulesError::Invalid { path: path.into(), message: e.to_string() })
}

/// The examples file next to a desk's rules file: `rules/<desk>.examples.toml`.
pub fn examples_path(path: &Path) -> PathBuf {
    path.with_extension("examples.toml")
}

/// The examples kept apart from the rules (`rules/<desk>.examples.toml`), in either form:
/// grouped under their route (`"category/subcategory" = [{ body = "…", type = "request" }, …]`,
/// one example a line) or `[[example]]` tables that name their `route`.
#[derive(Debug, Default)]
pub struct ExamplesFile {
    pub examples: Vec<Example>,
}

impl ExamplesFile {
    /// The `[[example]]`s first, then the grouped ones in route order. An example under a route
    /// key that names another route, or a key whose value is not a list of examples, is an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut examples: Vec<Example> = Vec::new();
        let mut grouped = Vec::new();
        for (key, value) in table {
            let list: Vec<Example> = value.try_into().map_err(|e| format!("`{key}`: {e}"))?;
            if key == "example" {
                examples.extend(list);
                continue;
            }
            for mut ex in list {
                if !ex.route.is_empty() && ex.route != key {
                    return Err(format!("`{key}`: an example under it names route `{}`", ex.route));
                }
                ex.route = key.clone();
                grouped.push(ex);
            }
        }
        examples.extend(grouped);
        Ok(Self { examples })
    }
}

/// Reads a desk's rules file and its examples file (if there is one), without compiling.
pub fn read_desk(path: &Path) -> Result<DeskFile, Vec<RulesError>> {
    let mut file = read_rules(path)?;
    file.examples.extend(read_examples(path)?);
    Ok(file)
}

/// The examples of the desk whose rules file is `path`, kept apart from it ([`examples_path`];
/// none when there is no such file).
pub fn read_examples(path: &Path) -> Result<Vec<Example>, Vec<RulesError>> {
    let ex = examples_path(path);
    if !ex.exists() {
        return Ok(Vec::new());
    }
    ExamplesFile::parse(&read_text(&ex)?)
        .map(|f| f.examples)
        .map_err(|message| vec![RulesError::Invalid { path: ex, message }])
}

/// The files of the rules directory `dir` that may hold examples: every desk file and every
/// `*.examples.toml`, whichever desks are configured (`common.toml` aside), sorted.
pub fn example_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.file_name().is_some_and(|n| n != "common.toml"))
        .collect();
    files.sort();
    files
}

/// The incidents among the examples of `files` ([`example_files`]) whose impact is given, as
/// (text, impact): what the impact opinion learns besides the labelled incidents.
pub fn impact_examples(files: &[PathBuf]) -> Result<Vec<(String, String)>, Vec<RulesError>> {
    let mut out = Vec::new();
    for f in files {
        let examples = if f.to_string_lossy().ends_with(".examples.toml") {
            ExamplesFile::parse(&read_text(f)?)
                .map_err(|message| vec![RulesError::Invalid { path: f.clone(), message }])?
                .examples
        } else {
            read_rules(f)?.examples
        };
        out.extend(examples.into_iter().filter_map(|e| {
            let incident = e.ticket_type.is_none_or(|t| t == TicketType::Incident);
            let impact = e.impact.filter(|_| incident)?;
            Some((super::examples::text(&e.subject, &e.body), impact.as_str().to_string()))
        }));
    }
    Ok(out)
}

/// Reads a desk's rules file alone (its own `[[example]]`s kept, the examples file not read).
fn read_rules(path: &Path) -> Result<DeskFile, Vec<RulesError>> {
    toml::from_str(&read_text(path)?).map_err(|e| invalid(path, e))
}

fn read_text(p: &Path) -> Result<String, Vec<RulesError>> {
    std::fs::read_to_string(p).map_err(|source| vec![RulesError::Io { path: p.into(), source }])
}

fn invalid(p: &Path, e: toml::de::Error) -> Vec<RulesError> {
    vec![RulesError::Invalid { path: p.into(), message: e.to_string() }]
}

/// What a desk's rules are compiled for. Both route every message alike (the golden test
/// `routing::the_ingest_router_decides_the_dev_set_as_the_serve_router` compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Many messages and the checks (`serve`, `check-config`, `rules test`): the examples file
    /// read with the rules, and one keyword automaton that searches fastest (aho-corasick's own
    /// choice, a DFA or a contiguous NFA: [`super::keywords::Keywords::Automaton`]).
    Many,
    /// The few messages of one `loket ingest` process: no examples file, the keyword phrases
    /// looked up in their text order (which is kept with the rules) and an automaton only for the
    /// patterns' needles ([`super::keywords::Keywords::Sorted`]), and a route pattern's regex
    /// compiled only for a message that needs it to run ([`super::patterns`]).
    Few,
}

/// Loads and compiles `path` (and its examples file) for `catalogue`; every problem is reported.
pub fn load_desk(path: &Path, common: &CommonFile, catalogue: &Catalogue) -> Result<DeskRules, Vec<RulesError>> {
    load_desk_for(path, common, catalogue, Purpose::Many)
}

/// [`load_desk`] for `purpose`: [`Purpose::Few`] reads no examples file.
pub fn load_desk_for(
    path: &Path,
    common: &CommonFile,
    catalogue: &Catalogue,
    purpose: Purpose,
) -> Result<DeskRules, Vec<RulesError>> {
    let file = match purpose {
        Purpose::Many => read_desk(path)?,
        Purpose::Few => read_rules(path)?,
    };
    compile_for(path, file, common, catalogue, purpose)
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
    compile_for(path, file, common, catalogue, Purpose::Many)
}

/// [`compile`] for `purpose` (which chooses the keyword automaton and when the route patterns'
/// regexes are compiled: [`super::patterns::Compile`]).
pub fn compile_for(
    path: &Path,
    file: DeskFile,
    common: &CommonFile,
    catalogue: &Catalogue,
    purpose: Purpose,
) -> Result<DeskRules, Vec<RulesError>> {
    let inv = |message: String| RulesError::Invalid { path: path.into(), message };
    let mut errors = Vec::new();
    if file.desk != catalogue.desk {
        errors.push(inv(format!("desk = `{}` but the catalogue is for `{}`", file.desk, catalogue.desk)));
    }
    let mut synonyms: HashMap<String, String> = HashMap::default();
    for (k, v) in common.synonyms.iter().chain(file.synonyms.iter()) {
        let key = normalize(k, &HashMap::default());
        let key = key.trim();
        if key.contains(' ') || key.is_empty() {
            errors.push(inv(format!("synonyms: `{k}` must be one word")));
            continue;
        }
        synonyms.insert(key.to_string(), normalize(v, &HashMap::default()).trim().to_string());
    }
    let mut phrase_index: HashMap<String, usize> = HashMap::default();
    let mut phrases: Vec<Phrase> = Vec::new();
    // Each spelling normalised once: a shared set's cues come to every route that uses it.
    let mut spelled: HashMap<String, usize> = HashMap::default();
    let mut add = |raw: &str, target: Target, weight: f64, errors: &mut Vec<RulesError>, key: std::fmt::Arguments| {
        let i = match spelled.get(raw) {
            Some(&i) => i,
            None => {
                let prefix = raw.trim_end().ends_with('*');
                let n = normalize(raw.trim_end().trim_end_matches('*'), &synonyms);
                if n.trim().is_empty() {
                    errors.push(inv(format!("{key}: `{raw}` has no letters or digits")));
                    return;
                }
                let text = if prefix { n.trim_end().to_string() } else { n };
                let i = match phrase_index.get(&text) {
                    Some(&i) => i,
                    None => {
                        let words = text.split_whitespace().count();
                        phrase_index.insert(text.clone(), phrases.len());
                        phrases.push(Phrase {
                            text,
                            words,
                            targets: Vec::new(),
                            marks: Marks::default(),
                            lines: Default::default(),
                        });
                        phrases.len() - 1
                    }
                };
                spelled.insert(raw.to_string(), i);
                i
            }
        };
        if !weight.is_finite() {
            errors.push(inv(format!("{key}: weight of `{raw}` is not a number")));
            return;
        }
        // Two spellings of one phrase ("licence", "license"; "eror", "error") are one cue: it
        // counts once for a target, at its largest weight.
        match phrases[i].targets.iter_mut().find(|(t, _)| *t == target) {
            Some(slot) if weight.abs() > slot.1.abs() => slot.1 = weight,
            Some(_) => {}
            None => phrases[i].targets.push((target, weight)),
        }
    };
    type CueTarget = fn(&str) -> Option<Target>;
    type CueTable<'t> = (&'t str, &'t BTreeMap<String, Weights>, &'t BTreeMap<String, Weights>, CueTarget, &'t str);
    let cue_tables: [CueTable; 2] = [
        (
            "type_cues",
            &common.type_cues,
            &file.type_cues,
            |n| TicketType::parse(n).map(Target::Type),
            "question, request, incident",
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
        // A desk's cue replaces the common cue of the same phrase and level: each counts once.
        let mut merged: BTreeMap<&String, BTreeMap<&String, f64>> = BTreeMap::new();
        for (name, cues) in shared.iter().chain(own.iter()) {
            let level = merged.entry(name).or_default();
            for (p, w) in cues {
                level.insert(p, *w);
            }
        }
        for (name, cues) in merged {
            match target_of(name) {
                Some(target) => {
                    for (p, w) in cues {
                        add(p, target, w, &mut errors, format_args!("{table}.{name}"));
                    }
                }
                None => errors.push(inv(format!("{table}.{name}: unknown; known: {known}"))),
            }
        }
    }
    // Impact classes: the common ones, extended or added to by the desk's.
    type ClassSlot<'a> = (Option<Impact>, BTreeMap<&'a String, f64>, Vec<&'a String>, bool);
    let mut classes: BTreeMap<&String, ClassSlot<'_>> = BTreeMap::new();
    for (name, class) in common.impact_classes.iter().chain(file.impact_classes.iter()) {
        let slot = classes.entry(name).or_default();
        if class.level.is_some() {
            slot.0 = class.level;
        }
        for (p, w) in &class.keywords {
            slot.1.insert(p, *w);
        }
        // A desk's `caps` replaces the common class's.
        if !class.caps.is_empty() {
            slot.2 = class.caps.iter().collect();
        }
        slot.3 |= class.incident;
    }
    let mut impact_classes: Vec<(String, Impact)> = Vec::new();
    let mut caps_named: Vec<(String, Vec<&String>)> = Vec::new();
    let mut incident_classes = Vec::new();
    for (i, (name, (level, cues, caps, incident))) in classes.into_iter().enumerate() {
        let Some(level) = level else {
            errors.push(inv(format!("impact_classes.{name}.level: missing (low, medium or high)")));
            continue;
        };
        if incident {
            incident_classes.push(impact_classes.len());
        }
        impact_classes.push((name.clone(), level));
        caps_named.push((name.clone(), caps));
        for (p, w) in cues {
            add(p, Target::Impact(i), w, &mut errors, format_args!("impact_classes.{name}.keywords"));
        }
    }
    for r in &common.speech.resolved {
        add(r, Target::Resolved, 1.0, &mut errors, format_args!("speech.resolved"));
    }
    let mut impact_caps: Vec<Vec<usize>> = Vec::new();
    for (name, caps) in caps_named {
        let mut ids = Vec::new();
        for c in caps {
            match impact_classes.iter().position(|(n, _)| n == c) {
                Some(i) if *c != name => ids.push(i),
                Some(_) => errors.push(inv(format!("impact_classes.{name}.caps: `{c}` is the class itself"))),
                None => errors.push(inv(format!("impact_classes.{name}.caps: `{c}` is no impact class"))),
            }
        }
        impact_caps.push(ids);
    }
    // Count kinds: the common ones, a desk kind of the same name replacing the common one.
    let mut count_kinds: BTreeMap<&String, &ImpactCount> = BTreeMap::new();
    for (name, kind) in common.impact_counts.iter().chain(file.impact_counts.iter()) {
        count_kinds.insert(name, kind);
    }
    let mut impact_counts = Vec::new();
    for (name, kind) in count_kinds {
        let key = format!("impact_counts.{name}");
        let mut nouns = Vec::new();
        for raw in &kind.nouns {
            let prefix = raw.trim_end().ends_with('*');
            let n = normalize(raw.trim_end().trim_end_matches('*'), &synonyms);
            let word = n.trim();
            if word.is_empty() || word.contains(' ') {
                errors.push(inv(format!("{key}.nouns: `{raw}` must be one word")));
                continue;
            }
            nouns.push(if prefix { format!("{word}*") } else { word.to_string() });
        }
        let mut classes = Vec::new();
        for (class, least) in &kind.classes {
            match impact_classes.iter().position(|(n, _)| n == class) {
                Some(c) => classes.push((c, *least)),
                None => {
                    let known: Vec<&str> = impact_classes.iter().map(|(n, _)| n.as_str()).collect();
                    errors.push(inv(format!(
                        "{key}.classes: unknown impact class `{class}`; known: {}",
                        known.join(", ")
                    )))
                }
            }
        }
        let whole = kind.whole.as_ref().and_then(|w| match impact_classes.iter().position(|(n, _)| n == w) {
            Some(c) if classes.iter().any(|(x, _)| *x == c) => Some(c),
            _ => {
                errors.push(inv(format!("{key}.whole: `{w}` is none of the kind's classes")));
                None
            }
        });
        impact_counts.push(super::scope::CountKind { name: name.clone(), nouns, classes, whole });
    }
    let impact_due = common.impact_due.as_ref().and_then(|due| {
        let Some(class) = impact_classes.iter().position(|(n, _)| *n == due.class) else {
            errors.push(inv(format!("impact_due.class: unknown impact class `{}`", due.class)));
            return None;
        };
        let mut obligations = Vec::new();
        for raw in &due.obligations {
            let n = normalize(raw, &synonyms);
            match n.split_whitespace().collect::<Vec<_>>().as_slice() {
                [w] => obligations.push(w.to_string()),
                _ => errors.push(inv(format!("impact_due.obligations: `{raw}` must be one word"))),
            }
        }
        let times: Vec<Vec<String>> =
            due.times.iter().map(|raw| normalized_words(raw, &synonyms)).filter(|t| !t.is_empty()).collect();
        Some(super::scope::DueCues { class, within: due.within, obligations, times })
    });
    let mut impact_pairs = Vec::new();
    for (i, pair) in common.impact_pairs.iter().enumerate() {
        let Some(class) = impact_classes.iter().position(|(n, _)| *n == pair.class) else {
            errors.push(inv(format!("impact_pairs[{i}].class: unknown impact class `{}`", pair.class)));
            continue;
        };
        let phrases = |raws: &[String]| -> Vec<Vec<String>> {
            raws.iter()
                .map(|raw| {
                    let prefix = raw.trim_end().ends_with('*');
                    let mut words: Vec<String> = normalize(raw.trim_end().trim_end_matches('*'), &synonyms)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                    if prefix && let Some(last) = words.last_mut() {
                        last.push('*');
                    }
                    words
                })
                .filter(|p| !p.is_empty())
                .collect()
        };
        let (first, then) = (phrases(&pair.first), phrases(&pair.then));
        if first.is_empty() || then.is_empty() {
            errors.push(inv(format!("impact_pairs[{i}]: `first` and `then` need a cue each")));
            continue;
        }
        impact_pairs.push(super::scope::PairCues {
            name: pair.name.clone(),
            class,
            within: pair.within,
            ordered: pair.ordered,
            first: super::phrases::Phrases::new(first),
            then: super::phrases::Phrases::new(then),
            not_after: pair.not_after.iter().flat_map(|w| normalized_words(w, &synonyms)).collect(),
        });
    }
    let mut routes = Vec::new();
    let mut regexes: Vec<String> = Vec::new();
    let mut pattern_targets: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
    let mut pattern_index: HashMap<String, usize> = HashMap::default();
    // The routes (their keys) that name each distinct pattern.
    let mut pattern_keys: Vec<Vec<String>> = Vec::new();
    let mut pending_unless: Vec<(usize, String, &Unless)> = Vec::new();
    let mut seen = HashMap::default();
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
        let eff = match effective(r, &file, common, cat) {
            Ok(e) => e,
            Err(m) => {
                errors.push(inv(format!("{key}.{m}")));
                continue;
            }
        };
        for (p, w) in &eff.keywords {
            add(p, Target::Route(idx), *w, &mut errors, format_args!("{key}.keywords"));
        }
        for (p, w) in &eff.negative {
            add(p, Target::Against(idx), *w, &mut errors, format_args!("{key}.negative"));
        }
        for (p, w) in &eff.patterns {
            if !w.is_finite() {
                errors.push(inv(format!("{key}.patterns: weight of `{p}` is not a number")));
                continue;
            }
            // Each distinct pattern compiled once, in the set below; a pattern that keeps the
            // set from compiling is named there, under every route that has it.
            let n = *pattern_index.entry(p.to_string()).or_insert_with(|| {
                regexes.push(p.to_string());
                pattern_targets.push((p.to_string(), Vec::new()));
                pattern_keys.push(Vec::new());
                regexes.len() - 1
            });
            pattern_keys[n].push(key.clone());
            pattern_targets[n].1.push((idx, *w));
        }
        let mut scope = Vec::new();
        for (name, w) in &r.scope {
            match impact_classes.iter().position(|(n, _)| n == name) {
                Some(c) if w.is_finite() => scope.push((c, *w)),
                Some(_) => errors.push(inv(format!("{key}.scope: weight of `{name}` is not a number"))),
                None => {
                    let known: Vec<&str> = impact_classes.iter().map(|(n, _)| n.as_str()).collect();
                    errors.push(inv(format!("{key}.scope: unknown impact class `{name}`; known: {}", known.join(", "))))
                }
            }
        }
        for (u, rule) in r.unless.iter().enumerate() {
            pending_unless.push((idx, format!("{key}.unless[{u}]"), rule));
        }
        routes.push(CompiledRoute {
            category: cat.to_string(),
            subcategory: sub.to_string(),
            allowed: s.types.clone(),
            internal_only: s.internal_only,
            inbox: r.inbox.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect(),
            sender_domains: r.sender_domains.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect(),
            default_type: r.default_type,
            scope,
            requires: Vec::new(),
            priority: r.priority,
            name_rank: 0,
        });
    }
    let mut by_name: Vec<usize> = (0..routes.len()).collect();
    by_name.sort_by(|a, b| {
        (&routes[*a].category, &routes[*a].subcategory).cmp(&(&routes[*b].category, &routes[*b].subcategory))
    });
    for (rank, r) in by_name.into_iter().enumerate() {
        routes[r].name_rank = rank;
    }
    for (idx, r) in file.routes.iter().enumerate().filter(|(_, r)| !r.requires.is_empty()) {
        let key = format!("route[{idx}] (`{}`).requires", r.to);
        let Some(route) = routes.iter().position(|c| format!("{}/{}", c.category, c.subcategory) == r.to) else {
            continue;
        };
        for need in &r.requires {
            let norm = normalize(need.trim_end().trim_end_matches('*'), &synonyms);
            let norm = if need.trim_end().ends_with('*') { norm.trim_end().to_string() } else { norm };
            match phrase_index
                .get(&norm)
                .copied()
                .filter(|&p| phrases[p].targets.iter().any(|&(t, w)| t == Target::Route(route) && w > 0.0))
            {
                Some(p) => routes[route].requires.push(p),
                None => errors.push(inv(format!("{key}: `{need}` is not a keyword of this route"))),
            }
        }
    }
    let mut unless = Vec::new();
    for (idx, key, rule) in pending_unless {
        let words = |t: &str| -> Vec<String> {
            normalize(t.trim_end_matches('*'), &synonyms).split_whitespace().map(str::to_string).collect()
        };
        let norm = normalize(rule.cue.trim_end().trim_end_matches('*'), &synonyms);
        let norm = if rule.cue.trim_end().ends_with('*') { norm.trim_end().to_string() } else { norm };
        let phrase = phrase_index
            .get(&norm)
            .copied()
            .filter(|&p| phrases[p].targets.iter().any(|(t, _)| *t == Target::Route(idx)));
        let near: Vec<Vec<String>> = rule.near.iter().map(|n| words(n)).filter(|w| !w.is_empty()).collect();
        match phrase {
            Some(phrase) if !near.is_empty() => {
                unless.push(CompiledUnless { route: idx, phrase, cue: words(&rule.cue), near, within: rule.within })
            }
            Some(_) => errors.push(inv(format!("{key}.near: no words"))),
            None => errors.push(inv(format!("{key}.cue: `{}` is not a keyword of this route", rule.cue))),
        }
    }
    let speech = &common.speech;
    let other_words = [
        &speech.request_markers,
        &speech.request_actions,
        &speech.blockers,
        &speech.not_after,
        &speech.not_actions,
        &speech.question_markers,
        &common.polite_requests,
    ]
    .into_iter()
    .flatten()
    .map(String::as_str);
    add_nya_forms(&mut synonyms, &phrases, other_words);
    for (i, ex) in file.examples.iter().enumerate() {
        let ok = ex.route == format!("{TRIAGE_CATEGORY}/{TRIAGE_SUBCATEGORY}")
            || ex.route.split_once('/').is_some_and(|(c, s)| catalogue.subcategory(c, s).is_some());
        if ex.route.is_empty() {
            errors.push(inv(format!("example[{i}]: no route")));
        } else if !ok {
            errors.push(inv(format!("example[{i}].route: unknown `{}`", ex.route)));
        }
    }
    let compile = match purpose {
        Purpose::Many => Compile::AtLoad,
        Purpose::Few => Compile::WhenNeeded,
    };
    // A pattern that does not parse (or, for many messages, compile) is named under every route
    // that has it.
    let patterns = RoutePatterns::new(&regexes, compile).map_err(|bad| {
        bad.iter()
            .flat_map(|(i, e)| {
                let p = &regexes[*i];
                pattern_keys[*i].iter().map(move |key| inv(format!("{key}.patterns: `{p}`: {e}")))
            })
            .collect::<Vec<_>>()
    });
    let keywords = match &patterns {
        Ok(set) => Keywords::new(&phrases, set.needles(), purpose)
            .map_err(|e| vec![inv(format!("cannot compile keywords: {e}"))]),
        Err(_) => Err(Vec::new()),
    };
    let (keywords, patterns) = match (keywords, patterns) {
        (Ok(k), Ok(p)) if errors.is_empty() => (k, p),
        (k, p) => {
            errors.extend(k.err().into_iter().flatten());
            errors.extend(p.err().into_iter().flatten());
            return Err(errors);
        }
    };
    for p in &mut phrases {
        p.marks = Marks::of(&p.targets);
    }
    Ok(DeskRules {
        desk: file.desk,
        threshold: file.threshold,
        subject_weight: file.subject_weight,
        impact_threshold: file.impact_threshold,
        mention_weight: file.mention_weight,
        impact_classes,
        impact_caps,
        incident_classes,
        impact_counts,
        impact_due,
        impact_pair_starts: super::phrases::StartIndex::new(impact_pairs.iter().flat_map(|p| [&p.first, &p.then])),
        impact_pairs,
        question_mark_weight: common.question_mark_weight,
        polite_requests: common
            .polite_requests
            .iter()
            .map(|p| normalize(p, &synonyms))
            .filter(|p| !p.trim().is_empty())
            .collect(),
        speech: compile_speech(&common.speech, &synonyms),
        subject_disowned: WordPhrases::new(
            common.speech.subject_disowned.iter().map(|p| normalize(p, &synonyms).trim().to_string()),
        ),
        synonyms,
        requiring: routes.iter().enumerate().filter(|(_, r)| !r.requires.is_empty()).map(|(i, _)| i).collect(),
        routes,
        examples: file.examples,
        opinion: None,
        impact_opinion: Default::default(),
        phrases,
        keywords,
        patterns,
        pattern_targets,
        unless,
        source: path.to_path_buf(),
    })
}

/// The format of kept rules ([`DeskRules::to_kept`]); the build that reads them is in their
/// fingerprint ([`super::kept::build`]).
const KEPT: &[u8; 8] = b"LOKETRC\x01";

impl DeskRules {
    /// These rules as kept between processes: a header, the CRC-32 of the body, and the body
    /// (postcard). Without the automaton (it has no kept form: [`DeskRules::from_kept`] builds it
    /// again), the second opinions (kept on their own, [`super::learned`]) and the explanations'
    /// lines written so far.
    pub fn to_kept(&self) -> Result<Vec<u8>, String> {
        let body = postcard::to_allocvec(self).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(KEPT.len() + 4 + body.len());
        out.extend_from_slice(KEPT);
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// These rules (compiled for [`Purpose::Few`], or read back) made ready for many messages:
    /// their keywords searched by one automaton, as [`Purpose::Many`]'s are.
    pub(crate) fn search_many(&mut self) -> Result<(), String> {
        self.keywords = Keywords::new(&self.phrases, self.patterns.needles(), Purpose::Many)
            .map_err(|e| format!("cannot compile keywords: {e}"))?;
        Ok(())
    }

    /// Rules kept by [`DeskRules::to_kept`] (from rules compiled for [`Purpose::Few`]), with their
    /// automaton built again; an error for bytes that are not such rules whole.
    pub fn from_kept(bytes: &[u8]) -> Result<Self, String> {
        let rest = bytes.strip_prefix(KEPT.as_slice()).ok_or("not kept rules of this format")?;
        let (sum, body) = rest.split_at_checked(4).ok_or("damaged: cut short")?;
        if crc32fast::hash(body).to_le_bytes() != sum {
            return Err("damaged: the body does not match its checksum".into());
        }
        let mut rules: Self = postcard::from_bytes(body).map_err(|e| e.to_string())?;
        rules.keywords = std::mem::replace(&mut rules.keywords, Keywords::unbuilt())
            .rebuilt(&rules.phrases, rules.patterns.needles())?;
        Ok(rules)
    }
}

/// What compiling a desk's rules reads of its catalogue (the desk, and each subcategory's name,
/// types and whether it is internal only), as bytes for the kept rules' fingerprint: another
/// catalogue compiles them again.
pub fn catalogue_inputs(catalogue: &Catalogue) -> Option<Vec<u8>> {
    let subcategories: Vec<(&str, &str, bool, &[TicketType])> = catalogue
        .categories
        .iter()
        .flat_map(|c| c.subcategories.iter().map(|s| (c.id.as_str(), s.id.as_str(), s.internal_only, &s.types[..])))
        .collect();
    postcard::to_allocvec(&(&catalogue.desk, subcategories)).ok()
}

/// The "-nya" form of a cue word (Indonesian "its", "the": "sertifikatnya", "aksesnya") reads as
/// the word: `WORDnya` → `WORD` for every word of four letters or more in a cue, unless a synonym
/// already maps that form or the form is itself a word of a cue or of `other` (the speech and
/// polite-request forms: "caranya" stays a question cue).
fn add_nya_forms<'a>(synonyms: &mut HashMap<String, String>, phrases: &[Phrase], other: impl Iterator<Item = &'a str>) {
    let cue_words: super::HashSet<&str> = phrases.iter().flat_map(|p| p.text.split_whitespace()).collect();
    let other: Vec<String> = other.map(fold).collect();
    let other_words: super::HashSet<&str> = other.iter().flat_map(|t| t.split_whitespace()).collect();
    let mut form = String::new();
    for w in &cue_words {
        if w.chars().count() < 4 || !w.chars().all(char::is_alphabetic) || w.ends_with("nya") {
            continue;
        }
        form.clear();
        form.push_str(w);
        form.push_str("nya");
        let taken = |f: &str| cue_words.contains(f) || other_words.contains(f) || synonyms.contains_key(f);
        if !taken(&form) {
            synonyms.insert(form.clone(), w.to_string());
        }
    }
}

/// The words of `text` normalised with `synonyms`.
fn normalized_words(text: &str, synonyms: &HashMap<String, String>) -> Vec<String> {
    normalize(text, synonyms).split_whitespace().map(str::to_string).collect()
}

fn compile_speech(file: &SpeechFile, synonyms: &HashMap<String, String>) -> super::speech::SpeechCues {
    use super::phrases::Phrases;
    let words = |t: &str| normalized_words(t, synonyms);
    let mut cues = super::speech::SpeechCues { within: file.within, ..Default::default() };
    cues.markers = Phrases::new(file.request_markers.iter().map(|m| words(m)).collect());
    for a in &file.request_actions {
        let prefix = a.trim_end().ends_with('*');
        // An action is one word (a synonym may make it several: the last one is the verb).
        if let Some(w) = words(a.trim_end().trim_end_matches('*')).last() {
            if prefix {
                cues.action_prefixes.push(w.clone());
            } else {
                cues.actions.insert(w.clone());
            }
        }
    }
    cues.blockers = file.blockers.iter().flat_map(|b| words(b)).collect();
    cues.not_after = file.not_after.iter().flat_map(|b| words(b)).collect();
    cues.action_forms = file
        .action_forms
        .iter()
        .filter_map(|f| f.split_once('*'))
        .map(|(p, s)| (fold(p).trim().to_string(), fold(s).trim().to_string()))
        .collect();
    cues.not_actions = file.not_actions.iter().flat_map(|b| words(b)).collect();
    cues.handling = file.handling.iter().flat_map(|b| words(b)).collect();
    cues.handling_clauses = file.handling_clauses.iter().flat_map(|b| words(b)).collect();
    cues.self_words = file.self_words.iter().flat_map(|b| words(b)).collect();
    cues.whether_tags = file.whether_tags.iter().flat_map(|b| words(b)).collect();
    cues.question_tails = file.question_tails.iter().flat_map(|b| words(b)).collect();
    cues.question_openers = file.question_openers.iter().flat_map(|b| words(b)).collect();
    cues.how_words = file.how_words.iter().flat_map(|b| words(b)).collect();
    cues.failure_negations = file.failure_negations.iter().flat_map(|b| words(b)).collect();
    cues.negation_fillers = file.negation_fillers.iter().flat_map(|b| words(b)).collect();
    cues.not_failures = file.not_failures.iter().flat_map(|b| words(b)).collect();
    cues.negation_tags_after = file.negation_tags_after.iter().flat_map(|b| words(b)).collect();
    cues.negation_asks = file.negation_asks.iter().flat_map(|b| words(b)).collect();
    cues.failure_negation_weight = file.failure_negation_weight;
    cues.addressees = file.addressees.iter().flat_map(|b| words(b)).collect();
    cues.negations = file.negations.iter().flat_map(|b| words(b)).collect();
    cues.question_markers = Phrases::new(file.question_markers.iter().map(|m| words(m)).collect());
    cues
}

/// A route's cues after its sets and inheritance are resolved: every phrase once. Its own
/// weight wins; otherwise the largest a referenced set (or the inherited vocabulary) gives. The
/// phrases are the rules files' own (a desk's sets reach most of its routes: copying them was a
/// twentieth of compiling Pusintek's rules).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effective<'a> {
    pub keywords: BTreeMap<&'a str, f64>,
    pub negative: BTreeMap<&'a str, f64>,
    pub patterns: BTreeMap<&'a str, f64>,
}

/// Resolves `r`'s `use`, `against` and `inherit` against the desk's and the common sets; `Err`
/// names the key at fault (an unknown set, a factor that is not a number).
pub fn effective<'a>(
    r: &'a RouteRule,
    file: &'a DeskFile,
    common: &'a CommonFile,
    category: &str,
) -> Result<Effective<'a>, String> {
    let borrowed = |w: &'a Weights| w.iter().map(|(p, w)| (p.as_str(), *w)).collect::<BTreeMap<_, _>>();
    let mut e =
        Effective { keywords: borrowed(&r.keywords), negative: borrowed(&r.negative), patterns: borrowed(&r.patterns) };
    let set_of = |name: &str| file.sets.get(name).or_else(|| common.sets.get(name));
    // `p` at `w` unless the route gives it a weight of its own (`own`), at the largest weight.
    let merge = |into: &mut BTreeMap<&'a str, f64>, own: bool, p: &'a str, w: f64| {
        if !own {
            let slot = into.entry(p).or_insert(w);
            if w.abs() > slot.abs() {
                *slot = w;
            }
        }
    };
    let mut patterns = BTreeMap::new();
    for (table, sets, sign) in [("use", &r.use_sets, 1.0), ("against", &r.against, -1.0)] {
        for (name, factor) in sets {
            let Some(set) = set_of(name) else {
                let mut known: Vec<&String> = file.sets.keys().chain(common.sets.keys()).collect();
                known.sort();
                known.dedup();
                let known: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
                return Err(format!("{table}: unknown set `{name}`; known: {}", known.join(", ")));
            };
            if !factor.is_finite() {
                return Err(format!("{table}: factor of `{name}` is not a number"));
            }
            for (p, w) in &set.keywords {
                if sign > 0.0 {
                    merge(&mut e.keywords, r.keywords.contains_key(p), p, w * factor);
                } else {
                    merge(&mut e.negative, r.negative.contains_key(p), p, w * factor);
                }
            }
            for (p, w) in &set.patterns {
                merge(&mut patterns, r.patterns.contains_key(p), p, sign * w * factor);
            }
        }
    }
    if let Some(factor) = r.inherit {
        if !factor.is_finite() {
            return Err("inherit: not a number".into());
        }
        let mut vocab = BTreeMap::new();
        for sib in file.routes.iter().filter(|s| s.to != r.to && s.to.split('/').next() == Some(category)) {
            for (p, w) in &sib.keywords {
                if *w >= file.inherit_min_weight {
                    merge(&mut vocab, false, p, *w);
                }
            }
        }
        // Each inherited phrase once (`vocab` is a map): one the route has by now stays its own.
        for (p, w) in vocab {
            let own = e.keywords.contains_key(p);
            merge(&mut e.keywords, own, p, w * factor);
        }
    }
    for (p, w) in patterns {
        e.patterns.insert(p, w);
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pattern that does not parse is named under its route for a few messages too, though
    /// nothing is compiled then.
    #[test]
    fn a_broken_pattern_is_named_for_few_messages_as_for_many() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cat = Catalogue::load(&root.join("seeds/hero.toml")).unwrap();
        let text =
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/intranet\"\npatterns = { '(' = 1, 'intranet\\s+\\w+' = 1 }\n";
        for purpose in [Purpose::Many, Purpose::Few] {
            let file: DeskFile = toml::from_str(text).unwrap();
            let errs: Vec<String> = compile_for(Path::new("hero.toml"), file, &CommonFile::default(), &cat, purpose)
                .unwrap_err()
                .iter()
                .map(|e| e.to_string())
                .collect();
            assert_eq!(errs.len(), 1, "{purpose:?}: {errs:?}");
            assert!(errs[0].contains("route[0] (`aplikasi/intranet`).patterns: `(`"), "{purpose:?}: {errs:?}");
        }
    }

    #[test]
    fn examples_file_reads_both_forms() {
        let text = r#"
"aplikasi/sigi" = [
  { type = "incident", impact = "low", subject = "SIGI", body = "SIGI error" },
  { body = "rekap gaji", route = "aplikasi/sigi" },
]

[[example]]
body = "printer rusak"
route = "triage/unknown"
"#;
        let ex = ExamplesFile::parse(text).unwrap().examples;
        let got: Vec<(&str, &str)> = ex.iter().map(|e| (e.route.as_str(), e.body.as_str())).collect();
        assert_eq!(
            got,
            [("triage/unknown", "printer rusak"), ("aplikasi/sigi", "SIGI error"), ("aplikasi/sigi", "rekap gaji")]
        );
        assert_eq!(ex[1].ticket_type, Some(TicketType::Incident));
        assert_eq!(ex[1].impact, Some(Impact::Low));
        assert_eq!(ex[1].subject, "SIGI");
    }

    fn phrase(text: &str) -> Phrase {
        Phrase {
            text: format!(" {text} "),
            words: text.split_whitespace().count(),
            targets: Vec::new(),
            marks: Marks::default(),
            lines: Default::default(),
        }
    }

    #[test]
    fn nya_forms_read_as_the_cue_word() {
        let mut synonyms: HashMap<String, String> = [("zoomnya".to_string(), "zoom".to_string())].into_iter().collect();
        let phrases = [
            phrase("sertifikat elektronik"),
            phrase("vpn"),
            phrase("cara"),
            phrase("caranya"),
            phrase("12345"),
            phrase("bantuan"),
        ];
        add_nya_forms(&mut synonyms, &phrases, ["mohon bantuannya", "bantuan"].into_iter());
        assert_eq!(synonyms.get("sertifikatnya").map(String::as_str), Some("sertifikat"));
        assert_eq!(synonyms.get("elektroniknya").map(String::as_str), Some("elektronik"));
        assert!(!synonyms.contains_key("vpnnya"), "three letters: too short to be sure");
        assert!(!synonyms.contains_key("caranya"), "a cue word of its own");
        assert!(!synonyms.contains_key("12345nya"));
        assert!(!synonyms.contains_key("bantuannya"), "a word of the speech forms");
        assert_eq!(synonyms.len(), 3, "{synonyms:?}");
        let text = normalize("Sertifikatnya sudah kedaluwarsa", &synonyms);
        assert_eq!(text, " sertifikat sudah kedaluwarsa ");
    }

    #[test]
    fn examples_file_refuses_a_mismatched_route_and_unknown_keys() {
        let e = ExamplesFile::parse("\"a/b\" = [{ body = \"x\", route = \"c/d\" }]").unwrap_err();
        assert!(e.contains("names route `c/d`"), "{e}");
        let e = ExamplesFile::parse("\"a/b\" = [{ body = \"x\", typo = 1 }]").unwrap_err();
        assert!(e.contains("typo"), "{e}");
        let e = ExamplesFile::parse("\"a/b\" = 3").unwrap_err();
        assert!(e.contains("`a/b`"), "{e}");
    }
}
