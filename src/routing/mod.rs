//! Routing: which category, subcategory, ticket type and impact a new ticket gets, within its
//! desk's catalogue. Pure: [`DeskRules::route`] takes the message's text and signals and returns
//! a [`RouteDecision`]; [`DeskRules::explain`] returns the same decision with the reasons behind it. The body is cut with the pipeline's reply
//! trimmer ([`crate::mail::trim::trim_reply`]) first (a forward whose own text is only a cover note keeps the
//! mail it forwards). Below the desk's threshold, or when an external
//! sender asks for an internal-only service, the ticket goes to `triage/unknown`: nothing is
//! forced into a wrong queue. Rules are plain files (`rules/`), compiled once: every desk's at load
//! ([`Router::load`]), or only the desk a message needs, when it first needs them ([`Router::lazy`]).
//! Labelled messages in `rules/labelled/*.jsonl`, when there are any, teach each desk a second
//! opinion on its rules' route ([`examples`]), learned when the desk's rules compile (or read back
//! where a process before kept it, [`learned`]): it keeps the rules' route or sends the message to
//! triage, or takes one of the rules' own candidates (their runner-up, or a route they left open);
//! it never brings a route of its own.

pub mod eval;
pub mod examples;
pub mod kept;
mod keywords;
pub mod learned;
pub mod lint;
pub mod normalize;
mod patterns;
pub mod phrases;
pub mod rules;
pub mod scope;
pub mod speech;
pub mod suggest;

/// The routing's maps and sets, hashed with FxHash (`rustc-hash`): their keys are the rules' own
/// words and cue numbers, fixed when the rules load; a message's words are only looked up, never
/// inserted, so a sender cannot choose colliding keys. SipHash cost about 8 % of a route.
pub(crate) type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;
pub(crate) type HashSet<T> = rustc_hash::FxHashSet<T>;
use std::path::Path;

use serde::Serialize;

use crate::catalogue::{Catalogue, TRIAGE_CATEGORY, TRIAGE_SUBCATEGORY};
use crate::domain::{Impact, TicketType};
use patterns::{Field, Held};
use rules::Target;
pub use rules::{DeskRules, RulesError};

/// What the router decided, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteDecision {
    pub category: String,
    pub subcategory: String,
    pub ticket_type: Option<TicketType>,
    pub impact: Option<Impact>,
    /// Urgency of an incident (for the priority matrix).
    pub urgency: Option<Impact>,
    pub confidence: f64,
    pub reasons: Vec<String>,
    /// Set when an internal-only service was asked for by an external sender (the
    /// acknowledgement explains it); names the service.
    pub internal_only_refused: Option<String>,
    /// The refused service takes official (kedinasan) addresses, not only the organisation's own
    /// (the catalogue's `sender = "official"`): the acknowledgement says so.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub official_only: bool,
    /// What the desk's second opinion made of the rules' route, where it was asked (the rules
    /// routed the message and the desk has one). Its reasons line says the same in words.
    #[serde(skip)]
    pub opinion: Option<Opinion>,
}

/// What a desk's second opinion ([`examples::judge`]) made of the rules' route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opinion {
    /// It agreed, or leaned elsewhere by little: the route kept.
    Kept,
    /// It was not clear what the message is: the route kept.
    Unclear,
    /// It clearly pointed elsewhere, but the route was won by a cue whose words its labelled
    /// messages never had: kept.
    UnknownCue,
    /// It clearly pointed elsewhere: the message held for a person (triage).
    Held,
    /// The rules left the message to a person with a candidate (their best route below the
    /// threshold, or two routes tied); it clearly said one of them, which was taken.
    Settled,
    /// It clearly said the rules' runner-up (a route with at least half their threshold),
    /// which was taken over their best.
    RunnerUp,
}

impl RouteDecision {
    pub fn triage(reason: impl Into<String>) -> Self {
        Self {
            category: TRIAGE_CATEGORY.into(),
            subcategory: TRIAGE_SUBCATEGORY.into(),
            ticket_type: None,
            impact: None,
            urgency: None,
            confidence: 0.0,
            reasons: vec![reason.into()],
            internal_only_refused: None,
            official_only: false,
            opinion: None,
        }
    }

    pub fn is_triage(&self) -> bool {
        self.category == TRIAGE_CATEGORY
    }

    pub fn route(&self) -> String {
        format!("{}/{}", self.category, self.subcategory)
    }
}

/// What the router looks at.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    pub subject: &'a str,
    pub body: &'a str,
    /// The sender's email domain, when the sender has an email address (chat users have none).
    pub sender_domain: Option<&'a str>,
    /// The address the message arrived at.
    pub inbox_address: &'a str,
}

/// Every desk's compiled rules: all compiled at load ([`Router::load`], for `serve` and the
/// checks), or each when first needed ([`Router::lazy`], for `loket ingest`, which handles one
/// desk's mail and should not pay for compiling the others').
#[derive(Debug, Default)]
pub struct Router {
    /// `common.toml`: read when a desk's rules are first compiled (not where they are kept).
    common_path: std::path::PathBuf,
    common: std::sync::OnceLock<Result<rules::CommonFile, String>>,
    desks: HashMap<String, DeskSlot>,
    /// `rules/labelled/*.jsonl`, listed (read only where a model must be learned).
    labelled: learned::LabelledFiles,
    /// Where learned second opinions and a lazy router's compiled rules are kept between
    /// processes (`storage.cache`, [`kept`]).
    cache: Option<std::path::PathBuf>,
    /// The rules directory's desk and examples files ([`rules::example_files`]): the impact
    /// opinion learns their examples of incidents.
    example_files: Vec<std::path::PathBuf>,
    /// A lazy router's impact opinion, loaded when an incident first needs it.
    deferred: std::sync::OnceLock<std::sync::Arc<examples::ImpactOpinion>>,
    /// A lazy router's desk will route many messages ([`Router::expect_many`]).
    many: std::sync::atomic::AtomicBool,
}

/// One desk's rules file and, once compiled, its rules or the problems that kept them from
/// compiling.
#[derive(Debug)]
struct DeskSlot {
    path: std::path::PathBuf,
    compiled: std::sync::OnceLock<Result<DeskRules, Vec<String>>>,
}

/// The directory of labelled messages under the rules directory: every `*.jsonl` file in it, in
/// the format of `rules eval`, teaches its desks' second opinion ([`examples`]).
pub const LABELLED_DIR: &str = "labelled";

/// Reads `files` ([`eval::read_labelled_file`]): per desk, each labelled message's text and route.
fn read_labelled(
    files: &[std::path::PathBuf],
    catalogues: &[&Catalogue],
    others: eval::OtherDesks,
) -> Result<std::collections::BTreeMap<String, Vec<(String, String)>>, RulesError> {
    let mut sets = Vec::new();
    for path in files {
        sets.extend(eval::read_labelled_file(path, catalogues, others)?);
    }
    Ok(eval::examples_by_desk(&sets))
}

/// The rules' own examples as labelled messages (text, route): what they were written to route
/// is also what the desk's second opinion learns.
fn rules_examples<'e>(
    examples: impl IntoIterator<Item = &'e rules::Example>,
) -> impl Iterator<Item = (String, String)> {
    examples.into_iter().map(|e| (examples::text(&e.subject, &e.body), e.route.clone()))
}

/// `rules` with its second opinion and the impact opinion (none when there is nothing to learn).
fn with_opinion(
    mut rules: DeskRules,
    opinion: Option<std::sync::Arc<examples::Model>>,
    impact: std::sync::Arc<examples::ImpactOpinion>,
) -> DeskRules {
    rules.opinion = opinion;
    rules.impact_opinion = impact;
    rules
}

/// The impact opinion of the labelled files `labelled` and the rules directory's `example_files`:
/// read back from `cache` where it is kept, else learned from `incidents()` (every desk's labelled
/// incidents, [`eval::impact_examples`]) and the example files' examples of incidents
/// ([`rules::impact_examples`]).
fn impact_model(
    labelled: &learned::LabelledFiles,
    example_files: &[std::path::PathBuf],
    cache: Option<&Path>,
    reading: examples::Reading,
    incidents: impl FnOnce() -> Result<Vec<(String, String)>, Vec<RulesError>>,
) -> Result<Option<std::sync::Arc<examples::Model>>, Vec<RulesError>> {
    let also: Vec<&Path> = example_files.iter().map(std::path::PathBuf::as_path).collect();
    learned::impact_model(labelled, &also, cache, reading, || impact_lessons(incidents()?, example_files))
}

/// What the impact opinion learns: the labelled `incidents` and the examples of incidents in the
/// rules directory's `example_files`.
fn impact_lessons(
    mut incidents: Vec<(String, String)>,
    example_files: &[std::path::PathBuf],
) -> Result<Vec<(String, String)>, Vec<RulesError>> {
    incidents.extend(rules::impact_examples(example_files)?);
    Ok(incidents)
}

/// What a lazy router's rules are compiled for: `loket ingest`'s few messages.
const LAZY: rules::Purpose = rules::Purpose::Few;

impl Router {
    /// Loads `dir/common.toml` and compiles `dir/<desk>.toml` for every catalogue, with each
    /// desk's second opinion and the impact opinion: every labelled line is read and checked, and
    /// a model is read back from `cache` where it is kept there ([`learned`]), else learned (and
    /// kept). A desk without a rules file routes everything to triage.
    pub fn load(dir: &Path, catalogues: &[&Catalogue], cache: Option<&Path>) -> Result<Self, Vec<RulesError>> {
        let mut router = Self::lazy(dir, catalogues, cache);
        let common = rules::load_common(&router.common_path).map_err(|e| vec![e])?;
        let mut sets = Vec::new();
        for path in &router.labelled.files {
            sets.extend(eval::read_labelled_file(path, catalogues, eval::OtherDesks::Unchecked).map_err(|e| vec![e])?);
        }
        let reading = examples::Reading::Built;
        let impact =
            impact_model(&router.labelled, &router.example_files, cache, reading, || Ok(eval::impact_examples(&sets)))?;
        let impact = std::sync::Arc::new(examples::ImpactOpinion::ready(impact));
        let mut labelled = eval::examples_by_desk(&sets);
        let mut errors = Vec::new();
        for cat in catalogues {
            let Some(slot) = router.desks.get(&cat.desk) else { continue };
            let mut examples = labelled.remove(&cat.desk).unwrap_or_default();
            let compiled = rules::load_desk(&slot.path, &common, cat).map(|r| {
                let opinion = router.opinion(&slot.path, &cat.desk, reading, || {
                    examples.extend(rules_examples(&r.examples));
                    Ok::<_, std::convert::Infallible>(examples)
                });
                with_opinion(r, opinion.unwrap_or_else(|never| match never {}), impact.clone())
            });
            match compiled {
                Ok(r) => {
                    if let Some(slot) = router.desks.get_mut(&cat.desk) {
                        slot.compiled = std::sync::OnceLock::from(Ok(r));
                    }
                }
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() { Ok(router) } else { Err(errors) }
    }

    /// Notes which desks have a rules file and which labelled files there are; a desk's rules
    /// are compiled when [`Router::prepare`] (or, failing that, [`Router::route`]) first needs
    /// them, for a few messages ([`rules::Purpose::Few`]: without the examples file, with the
    /// keywords that need no building, [`keywords::Keywords::Sorted`]; they route alike), or
    /// read back from `cache` where they are kept compiled ([`kept::desk_rules`]); and its second
    /// opinion read back from `cache` (in place, [`examples::Reading::InPlace`]) or, where it is
    /// not kept there, learned from the desk's labelled lines (other desks' lines are not read).
    /// `dir/common.toml` is read only to compile a desk's rules.
    pub fn lazy(dir: &Path, catalogues: &[&Catalogue], cache: Option<&Path>) -> Self {
        let labelled = learned::LabelledFiles::list(&dir.join(LABELLED_DIR));
        let desks = catalogues
            .iter()
            .map(|cat| (cat.desk.clone(), dir.join(format!("{}.toml", cat.desk))))
            .filter(|(_, path)| path.exists())
            .map(|(desk, path)| (desk, DeskSlot { path, compiled: std::sync::OnceLock::new() }))
            .collect();
        Self {
            common_path: dir.join("common.toml"),
            common: std::sync::OnceLock::new(),
            desks,
            labelled,
            cache: cache.map(Path::to_path_buf),
            example_files: rules::example_files(dir),
            deferred: Default::default(),
            many: Default::default(),
        }
    }

    /// Drops every compiled desk's second opinion and the impact opinion: the rules alone
    /// (`rules eval --rules-only`).
    pub fn without_opinions(&mut self) {
        self.with_opinions(Default::default());
        self.with_impact_opinion(None);
    }

    /// Puts in place of every compiled desk's impact opinion one learned, as the router learns
    /// it, from the labelled incidents of `sets` and the rules directory's examples of incidents
    /// (`rules eval --learn`).
    pub fn with_impact_opinion_learned_from(&mut self, sets: &[eval::Labelled]) -> Result<(), Vec<RulesError>> {
        let lessons = impact_lessons(eval::impact_examples(sets), &self.example_files)?;
        self.with_impact_opinion(examples::Model::train(&lessons));
        Ok(())
    }

    /// Puts `model` in place of every compiled desk's impact opinion.
    fn with_impact_opinion(&mut self, model: Option<examples::Model>) {
        let model = std::sync::Arc::new(examples::ImpactOpinion::ready(model.map(std::sync::Arc::new)));
        for slot in self.desks.values_mut() {
            if let Some(Ok(rules)) = slot.compiled.get_mut() {
                rules.impact_opinion = std::sync::Arc::clone(&model);
            }
        }
    }

    /// The impact opinion of a lazy router's desks: read back (or learned from every desk's
    /// labelled incidents, where it is not kept) when an incident first needs it. A labelled
    /// file that cannot be read then leaves the incident with its scope classes' impact; the
    /// desk's route opinion, read when the desk compiled, names the file and line.
    fn deferred_impact(&self) -> std::sync::Arc<examples::ImpactOpinion> {
        let deferred = self.deferred.get_or_init(|| {
            let (labelled, example_files, cache) = (self.labelled.clone(), self.example_files.clone(), self.cache.clone());
            let reading = self.lazy_reading();
            std::sync::Arc::new(examples::ImpactOpinion::deferred(move || {
                let learned = impact_model(&labelled, &example_files, cache.as_deref(), reading, || {
                    let mut sets = Vec::new();
                    for path in &labelled.files {
                        sets.extend(eval::read_labelled_file(path, &[], eval::OtherDesks::Unchecked).map_err(|e| vec![e])?);
                    }
                    Ok(eval::impact_examples(&sets))
                });
                learned.unwrap_or_else(|errors| {
                    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    tracing::warn!(errors = ?errors, "the impact opinion cannot be learned; incidents keep the scope classes' impact");
                    None
                })
            }))
        });
        std::sync::Arc::clone(deferred)
    }

    /// Puts `models` in place of the compiled desks' second opinions, a desk without one in
    /// `models` left with none (`rules eval --learn`, which brings its own).
    pub fn with_opinions(&mut self, mut models: std::collections::BTreeMap<String, examples::Model>) {
        for (desk, slot) in &mut self.desks {
            if let Some(Ok(rules)) = slot.compiled.get_mut() {
                rules.opinion = models.remove(desk).map(std::sync::Arc::new);
            }
        }
    }

    /// `desk`'s second opinion, fed by the labelled files and the desk's rules file at `path` and
    /// its examples file: read back from the cache where it is kept (as `reading` says), else
    /// learned from `examples()` ([`learned::model`]).
    fn opinion<E>(
        &self,
        path: &Path,
        desk: &str,
        reading: examples::Reading,
        examples: impl FnOnce() -> Result<Vec<(String, String)>, E>,
    ) -> Result<Option<std::sync::Arc<examples::Model>>, E> {
        let also = [path, &rules::examples_path(path)];
        learned::model(&self.labelled, &also, self.cache.as_deref(), desk, reading, examples)
    }

    /// Tells a lazy router that its desks will route many messages (a batch of `loket ingest`):
    /// a desk compiled from now on searches its keywords with one automaton and builds its
    /// models' look-up tables, as the daemon does, where for a few messages building them would
    /// cost more than it saves ([`rules::Purpose::Few`], [`examples::Reading::InPlace`]).
    pub fn expect_many(&self) {
        self.many.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// How a lazy router reads its kept models back: in place for a few messages, nothing built.
    fn lazy_reading(&self) -> examples::Reading {
        if self.many.load(std::sync::atomic::Ordering::Relaxed) {
            examples::Reading::Built
        } else {
            examples::Reading::InPlace
        }
    }

    /// Compiles `catalogue`'s desk's rules, if not done yet; their problems, if any.
    pub fn prepare(&self, catalogue: &Catalogue) -> Result<(), Vec<String>> {
        match self.compiled(catalogue) {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(problems)) => Err(problems.clone()),
        }
    }

    fn compiled(&self, catalogue: &Catalogue) -> Option<&Result<DeskRules, Vec<String>>> {
        let slot = self.desks.get(&catalogue.desk)?;
        Some(slot.compiled.get_or_init(|| {
            let problems = |errors: Vec<RulesError>| errors.iter().map(ToString::to_string).collect::<Vec<_>>();
            let rules = kept::desk_rules(self.cache.as_deref(), &slot.path, &self.common_path, catalogue, || {
                let common = self
                    .common
                    .get_or_init(|| rules::load_common(&self.common_path).map_err(|e| e.to_string()))
                    .as_ref()
                    .map_err(|e| vec![e.clone()])?;
                rules::load_desk_for(&slot.path, common, catalogue, LAZY).map_err(problems)
            })?;
            let mut rules = rules;
            if self.many.load(std::sync::atomic::Ordering::Relaxed) {
                rules.search_many().map_err(|e| vec![e])?;
            }
            let opinion = self.opinion(&slot.path, &catalogue.desk, self.lazy_reading(), || {
                let by_desk = read_labelled(&self.labelled.files, &[catalogue], eval::OtherDesks::Skipped);
                let mut examples = by_desk.map_err(|e| problems(vec![e]))?.remove(&catalogue.desk).unwrap_or_default();
                // The rules' own examples: the rules file's, compiled with them, and the examples
                // file's, which this router's rules were compiled without.
                let apart = rules::read_examples(&slot.path).map_err(problems)?;
                examples.extend(rules_examples(rules.examples.iter().chain(&apart)));
                Ok::<_, Vec<String>>(examples)
            })?;
            Ok(with_opinion(rules, opinion, self.deferred_impact()))
        }))
    }

    /// The desk's compiled rules, if it has a rules file and they were compiled without problems.
    pub fn desk(&self, desk: &str) -> Option<&DeskRules> {
        self.desks.get(desk).and_then(|s| s.compiled.get()).and_then(|r| r.as_ref().ok())
    }

    /// The decision for `input`, without its reasons ([`DeskRules::route`]).
    pub fn route(&self, catalogue: &Catalogue, input: &RouteInput<'_>) -> RouteDecision {
        self.with_rules(catalogue, |r| r.route(catalogue, input))
    }

    /// The decision for `input` with its reasons ([`DeskRules::explain`]).
    pub fn explain(&self, catalogue: &Catalogue, input: &RouteInput<'_>) -> RouteDecision {
        self.with_rules(catalogue, |r| r.explain(catalogue, input))
    }

    fn with_rules(&self, catalogue: &Catalogue, decide: impl FnOnce(&DeskRules) -> RouteDecision) -> RouteDecision {
        match self.compiled(catalogue) {
            None => RouteDecision::triage(format!("no rules/{}.toml: new tickets wait in triage", catalogue.desk)),
            Some(Ok(r)) => decide(r),
            Some(Err(problems)) => {
                tracing::error!(desk = %catalogue.desk, problems = %problems.join("; "), "routing rules do not compile");
                RouteDecision::triage(format!(
                    "rules/{}.toml does not compile (`loket check-config` names the problems): new tickets wait in triage",
                    catalogue.desk
                ))
            }
        }
    }
}

/// A score as `{:.1}` writes it, to tenths. `std`'s exact float formatting cost about 7 % of a
/// route (its slow path ran for most scores), so a score is rounded by integer arithmetic; only
/// one within a hair of a half tenth, where that could round otherwise, is left to `std`.
pub(crate) struct Tenths(pub f64);

/// The lines of `rules explain` (a decision's reasons), written only when asked for: the daemon
/// and `rules eval` route without them, and writing them was about a fifth of a route.
#[derive(Debug, Default)]
struct Notes(Option<Vec<String>>);

impl Notes {
    fn new(explain: bool) -> Self {
        // A decision has about a dozen lines: one allocation.
        Self(explain.then(|| Vec::with_capacity(16)))
    }

    fn on(&self) -> bool {
        self.0.is_some()
    }

    /// Adds the line `line` writes, when explaining.
    fn add(&mut self, line: impl FnOnce() -> String) {
        if let Some(lines) = &mut self.0 {
            lines.push(line());
        }
    }

    fn into_lines(self) -> Vec<String> {
        self.0.unwrap_or_default()
    }
}

/// `v` to tenths as `{:.1}` (`plus`: `{:+.1}`) writes it, in pieces handed to `out`: a sign,
/// the whole number and the tenth. `std`'s formatting machinery was most of the cost of a
/// reason line.
fn tenths_pieces(v: f64, plus: bool, mut out: impl FnMut(&str)) {
    let y = (v * 10.0).abs();
    // Below 1e9 the product is off the exact one by less than 1.2e-7, so rounding it to a whole
    // number gives the exact result unless it lies within that of a half. (Casts, not `trunc` and
    // `round`: those are calls into libm here.)
    let whole = y as u64;
    let half = y - whole as f64 == 0.5;
    let t = if y.is_nan() || y >= 1e9 || (!half && ((y - whole as f64) - 0.5).abs() < 1e-6) {
        None
    } else if half {
        // Exactly a half tenth when `v * 10` was exact (`v * 8` and `v * 2` are, and the sum
        // lost nothing), as quarter weights give: `std` rounds it to the even tenth.
        (v * 2.0 == v * 10.0 - v * 8.0).then_some(whole + (whole & 1))
    } else {
        Some((y + 0.5) as u64)
    };
    let Some(t) = t else {
        return out(&if plus { format!("{v:+.1}") } else { format!("{v:.1}") });
    };
    if v.is_sign_negative() {
        out("-");
    } else if plus {
        out("+");
    }
    out(itoa::Buffer::new().format(t / 10));
    out(TENTHS[(t % 10) as usize]);
}

/// A tenth's digit after its point.
const TENTHS: [&str; 10] = [".0", ".1", ".2", ".3", ".4", ".5", ".6", ".7", ".8", ".9"];

fn write_tenths(f: &mut std::fmt::Formatter<'_>, v: f64, plus: bool) -> std::fmt::Result {
    let mut result = Ok(());
    tenths_pieces(v, plus, |s| result = result.and_then(|()| f.write_str(s)));
    result
}

/// A reason line: the score `w` with its sign, then `parts`, into a string sized once.
fn signed_line(w: f64, parts: &[&str]) -> String {
    let mut line = Line(String::with_capacity(8 + parts.iter().map(|p| p.len()).sum::<usize>())).signed(w);
    for p in parts {
        line = line.s(p);
    }
    line.0
}

/// A reason line written piece by piece: `core::fmt`'s machinery cost more than the text.
pub(crate) struct Line(String);

impl Line {
    pub(crate) fn new() -> Self {
        Self(String::with_capacity(96))
    }

    pub(crate) fn s(mut self, s: &str) -> Self {
        self.0.push_str(s);
        self
    }

    /// `v` as `{:.1}` writes it.
    pub(crate) fn tenths(mut self, v: f64) -> Self {
        tenths_pieces(v, false, |p| self.0.push_str(p));
        self
    }

    /// `v` as `{:+.1}` writes it.
    pub(crate) fn signed(mut self, v: f64) -> Self {
        tenths_pieces(v, true, |p| self.0.push_str(p));
        self
    }

    /// A weight as `{}` writes it ("2", "1.5", "0.25"): whole numbers and tenths directly, any
    /// other value through `std`.
    pub(crate) fn weight(mut self, w: f64) -> Self {
        let y = w * 10.0;
        let k = y.round();
        // `k / 10` is then the double nearest that decimal of at most eight digits, which is the
        // shortest text that reads back as `w`.
        if y == k && k.abs() < 1e8 && k / 10.0 == w && !(w == 0.0 && w.is_sign_negative()) {
            let t = k.abs() as u64;
            if w < 0.0 {
                self.0.push('-');
            }
            self.0.push_str(itoa::Buffer::new().format(t / 10));
            if !t.is_multiple_of(10) {
                self.0.push_str(TENTHS[(t % 10) as usize]);
            }
        } else {
            use std::fmt::Write;
            let _ = write!(self.0, "{w}");
        }
        self
    }

    /// "category/subcategory scored N.N": how a decision's line names its route.
    pub(crate) fn route_scored(self, route: &rules::CompiledRoute, score: f64) -> Self {
        self.s(&route.category).s("/").s(&route.subcategory).s(" scored ").tenths(score)
    }

    /// "scope class `name`": how an impact reason's line names its class.
    pub(crate) fn scope_class(name: &str) -> Self {
        Self::new().s("scope class `").s(name)
    }

    /// A line that starts with [`Line::route_scored`].
    pub(crate) fn scored(route: &rules::CompiledRoute, score: f64) -> Self {
        Self::new().route_scored(route, score)
    }

    pub(crate) fn done(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Tenths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_tenths(f, self.0, false)
    }
}

/// Why a route gained or lost score; put into words only for the route that wins.
#[derive(Debug, Clone, Copy)]
enum Why {
    Keyword(usize, &'static str),
    NotCounted(usize),
    /// A keyword that stands only right after a negation ("bukan minta install").
    Denied(usize),
    /// A negative cue that stands only in sentences saying a problem is over or a system works.
    SaidToWork(usize),
    Negative(usize, &'static str),
    Pattern(usize),
    Inbox,
    Domain,
    /// None of the route's `requires` keywords stands in the message.
    Requires,
}

/// A message's text as routing reads it: the body cut by the reply trimmer, subject and body
/// normalised, and where the body's sentences end.
struct Text {
    body_raw: String,
    subject: String,
    body: String,
    sentence_ends: Vec<usize>,
}

/// The words of a [`Text`], split once for every reading that needs them.
struct Split<'a> {
    /// The subject's words, then the body's.
    all: Vec<&'a str>,
    /// How many of `all` are the subject's.
    subject: usize,
    /// For each body sentence, where its words end in `all`.
    sentence_ends: Vec<usize>,
}

impl<'a> Split<'a> {
    fn new(text: &'a Text) -> Self {
        // Normalised text is words between single ASCII spaces (see [`normalize::fold`]).
        let words = |t: &'a str| t.split(' ').filter(|w| !w.is_empty());
        // At most one word in two bytes: room for all of them at once.
        let mut all: Vec<&str> = Vec::with_capacity((text.subject.len() + text.body.len()) / 2);
        all.extend(words(&text.subject));
        let subject = all.len();
        let mut sentence_ends = Vec::with_capacity(text.sentence_ends.len());
        let mut start = 0;
        for &end in &text.sentence_ends {
            all.extend(words(&text.body[start..end]));
            sentence_ends.push(all.len());
            start = end;
        }
        Self { all, subject, sentence_ends }
    }

    fn subject(&self) -> &[&'a str] {
        &self.all[..self.subject]
    }

    fn body(&self) -> &[&'a str] {
        &self.all[self.subject..]
    }

    /// The words of each body sentence, in order.
    fn sentences(&self) -> impl Iterator<Item = &[&'a str]> {
        let starts = std::iter::once(self.subject).chain(self.sentence_ends.iter().copied());
        starts.zip(&self.sentence_ends).map(|(s, &e)| &self.all[s..e])
    }

    /// The subject's words, then each body sentence's: the spans a reading must not cross.
    fn segments(&self) -> impl Iterator<Item = &[&'a str]> {
        std::iter::once(self.subject()).chain(self.sentences())
    }
}

/// What the cues of a message add up to, before the decision.
struct Scoring {
    /// The subject holds a question cue; the body's sentences that do.
    subject_asks: bool,
    asking_sentences: HashSet<usize>,
    scores: Vec<Score>,
    /// The phrases found, what the route scores were summed from.
    cues: Cues,
    /// The reasons that are no phrase's: patterns, inbox, sender domain, `requires`.
    reasons: Vec<(usize, f64, Why)>,
    type_score: HashMap<TicketType, f64>,
    /// Per impact class (index of `DeskRules::impact_classes`).
    impact_score: Vec<f64>,
    urgency_score: HashMap<Impact, f64>,
    cue_reasons: Notes,
    domain: Option<String>,
}

/// Where a message's phrases stand and what stops one counting for a route: what the route
/// scores are summed from ([`DeskRules::route_part`]), kept so that the winner's keyword reasons
/// are written from the phrases after the decision. A shared failure word targets dozens of
/// routes; a reason kept for each would be dropped unread.
#[derive(Default)]
struct Cues {
    /// Found in the subject or the body, in phrase order.
    found: Vec<usize>,
    in_subject: HashSet<usize>,
    in_body: HashSet<usize>,
    /// Stands only right after a negation ([`DeskRules::denied_cues`]).
    denied: HashSet<usize>,
    /// (route, phrase) of an `unless` rule: whether the cue stands free of it in (subject, body).
    unless_fields: HashMap<(usize, usize), (bool, bool)>,
    /// Routes whose body keywords are mentions only ([`DeskRules::mentioned_only`]).
    mentioned_only: HashSet<usize>,
    /// A reply's subject counted as a mention ([`DeskRules::demote_reply_subject`]).
    reply_subject_demoted: bool,
    /// Body phrases that stand only in sentences saying a problem is over or a system works
    /// ([`DeskRules::only_settled`]).
    settled_only: HashSet<usize>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Score {
    route: f64,
    /// Words of the longest keyword that counted for the route (tie-breaker).
    specific: usize,
    /// The message arrived at one of the route's inboxes (tie-breaker).
    inbox: bool,
}

/// Whether `cue` (words) occurs in `words` at least once with none of `near` within `within`
/// words of it.
/// The body's phrases that stand only in `settled` sentences (ones that say a problem is over or
/// a system works, and report no fault) and not in the subject: what such a sentence names is no
/// evidence against a route.
fn only_settled(settled: &HashSet<usize>, located: &[(usize, usize)], in_subject: &HashSet<usize>) -> HashSet<usize> {
    if settled.is_empty() {
        return HashSet::default();
    }
    let (mut inside, outside) = in_and_out(settled, located);
    inside.retain(|id| !outside.contains(id) && !in_subject.contains(id));
    inside
}

/// The body's phrases found in one of `sentences`, and those found in another sentence (a phrase
/// may be in both).
fn in_and_out(sentences: &HashSet<usize>, located: &[(usize, usize)]) -> (HashSet<usize>, HashSet<usize>) {
    let (mut inside, mut outside) = (HashSet::default(), HashSet::default());
    for &(id, sentence) in located {
        if sentences.contains(&sentence) {
            inside.insert(id);
        } else {
            outside.insert(id);
        }
    }
    (inside, outside)
}

fn free_occurrence(words: &[&str], cue: &[String], near: &[Vec<String>], within: usize) -> bool {
    let at = |i: usize, phrase: &[String]| {
        phrase.iter().enumerate().all(|(k, w)| {
            words.get(i + k).is_some_and(|x| if k + 1 == phrase.len() { x.starts_with(w.as_str()) } else { x == w })
        })
    };
    let n = cue.len().max(1);
    (0..words.len()).filter(|&i| at(i, cue)).any(|i| {
        !near.iter().any(|y| {
            let m = y.len().max(1);
            (0..words.len()).filter(|&j| at(j, y)).any(|j| {
                // Words between the two (0 when they touch or overlap).
                let gap = if j >= i + n { j - (i + n) } else { i.saturating_sub(j + m) };
                gap <= within
            })
        })
    })
}

/// Why a question counts as a request that beats failure words (see [`DeskRules::polite_question`]).
const ASKED_ACTION: &str = "a question that asks for an action";

impl DeskRules {
    /// The phrases found in the subject, those found in the body with the sentence each stands
    /// in, and what the route patterns' needles held: one search of the keywords in each text.
    fn find(&self, text: &Text) -> (HashSet<usize>, Vec<(usize, usize)>, Held) {
        let mut held = self.patterns.held();
        // Sized for a usual message's hits, so that neither grows while the keywords are searched.
        let mut in_subject = HashSet::with_capacity_and_hasher(16, Default::default());
        self.keywords.each(&self.phrases, &text.subject, true, |id, _, end| match id.checked_sub(self.phrases.len()) {
            None => {
                in_subject.insert(id);
            }
            Some(needle) => self.patterns.hold(&mut held, needle, &text.subject, end, Field::Subject),
        });
        let mut located = Vec::with_capacity(64);
        self.keywords.each(&self.phrases, &text.body, true, |id, start, end| {
            match id.checked_sub(self.phrases.len()) {
                None => {
                    // A phrase of several words stands in one sentence: "ikon rusak semua. halaman
                    // lain normal" holds no "semua halaman".
                    let sentence = text.sentence_ends.partition_point(|&e| e <= start + 1);
                    if text.sentence_ends.partition_point(|&e| e < end) == sentence {
                        located.push((id, sentence));
                    }
                }
                Some(needle) => self.patterns.hold(&mut held, needle, &text.body, end, Field::Body),
            }
        });
        (in_subject, located, held)
    }

    /// The route patterns that match, in index order, from what `held` says (the subject's
    /// needles only `with_subject`).
    fn pattern_matches(&self, held: &Held, text: &Text, with_subject: bool) -> Vec<usize> {
        let Text { subject, body, .. } = text;
        let joined = || if with_subject { [subject.as_str(), body.as_str()].concat() } else { body.clone() };
        self.patterns.matches(held, with_subject, subject.is_ascii() && body.is_ascii(), joined)
    }

    fn read(&self, input: &RouteInput<'_>) -> Text {
        let subject = normalize::normalize(input.subject, &self.synonyms);
        // The pipeline's reply trimmer: quoted history, forwarded headers and signatures do not
        // route. Except a forward whose own words are only a cover note ("Mohon bantuan, detail di
        // bawah."): there the forwarded mail says what is asked, and routes with the note.
        // What was cut is kept only for a forward: every other message trims as the pipeline does.
        let body_raw = if is_forward_subject(input.subject) {
            let trimmed = crate::mail::trim::trim_reply(input.body);
            if !trimmed.elided.is_empty() && trimmed.text.split_whitespace().count() <= COVER_NOTE_WORDS {
                format!("{}\n\n{}", trimmed.text, trimmed.elided)
            } else {
                trimmed.text
            }
        } else {
            crate::mail::trim::trim_reply_text(input.body)
        };
        let (body, sentence_ends) = normalize::normalize_sentences(&body_raw, &self.synonyms);
        Text { body_raw, subject, body, sentence_ends }
    }

    fn score(&self, input: &RouteInput<'_>, text: &Text, split: &Split<'_>, explain: bool) -> Scoring {
        let body = &text.body;
        // Body matches with the sentence each stands in.
        let (in_subject, located, held) = self.find(text);
        let in_body: HashSet<usize> = located.iter().map(|(id, _)| *id).collect();
        let reply = is_reply_subject(input.subject);
        let settled = self.settled_sentences(&located);
        let mut mentioned_only = self.mentioned_only(&in_subject, &located, reply, &settled);
        mentioned_only.extend(self.only_in_resolved(&settled, &located));
        let mut scores = vec![Score::default(); self.routes.len()];
        // The reasons that are no phrase's (pattern, inbox, domain, requires), when explaining.
        let mut reasons: Vec<(usize, f64, Why)> = Vec::new();
        let mut type_score: HashMap<TicketType, f64> = HashMap::default();
        let mut impact_score = vec![0.0; self.impact_classes.len()];
        let mut urgency_score: HashMap<Impact, f64> = HashMap::default();
        let mut cue_reasons = Notes::new(explain);
        // "X unless Y within N words": where X stands (subject, body) only next to Y, it does
        // not count for the route.
        let mut unless_fields: HashMap<(usize, usize), (bool, bool)> = HashMap::default();
        for u in &self.unless {
            if in_subject.contains(&u.phrase) || in_body.contains(&u.phrase) {
                let (s, b) = (split.subject(), split.body());
                let free = (
                    in_subject.contains(&u.phrase) && free_occurrence(s, &u.cue, &u.near, u.within),
                    in_body.contains(&u.phrase) && free_occurrence(b, &u.cue, &u.near, u.within),
                );
                let slot = unless_fields.entry((u.route, u.phrase)).or_insert((true, true));
                slot.0 &= free.0;
                slot.1 &= free.1;
            }
        }
        // In phrase order, not the sets' hash order: the same message gets the same reasons in
        // the same order, and its scores are summed in the same order, every run.
        let mut found: Vec<usize> = in_subject.union(&in_body).copied().collect();
        found.sort_unstable();
        let denied = self.denied_cues(body, &in_subject);
        let settled_only = if settled.is_empty() {
            HashSet::default()
        } else {
            // A sentence that also reports a fault ("gagal terus, katanya passphrase salah padahal
            // udah bener") says nothing works.
            let faulty: HashSet<usize> = located
                .iter()
                .filter(|(id, _)| {
                    self.phrases[*id].targets.iter().any(|&(t, w)| t == Target::Type(TicketType::Incident) && w > 0.0)
                })
                .map(|&(_, s)| s)
                .collect();
            let calm: HashSet<usize> = settled.difference(&faulty).copied().collect();
            only_settled(&calm, &located, &in_subject)
        };
        let mut cues = Cues {
            found,
            in_subject,
            in_body,
            denied,
            unless_fields,
            mentioned_only,
            reply_subject_demoted: false,
            settled_only,
        };
        for &id in &cues.found {
            let p = &self.phrases[id];
            let subject = cues.in_subject.contains(&id);
            for (k, &(target, w)) in p.targets.iter().enumerate() {
                match target {
                    Target::Route(_) | Target::Against(_) => {
                        if let Some((r, part, why)) = self.route_part(&cues, id, subject, target, w) {
                            match why {
                                Why::Keyword(..) => {
                                    scores[r].route += part;
                                    if w > 0.0 {
                                        scores[r].specific = scores[r].specific.max(p.words);
                                    }
                                }
                                Why::Negative(..) => scores[r].route += part,
                                _ => {}
                            }
                        }
                    }
                    Target::Type(t) if t != TicketType::Incident && cues.denied.contains(&id) => {
                        cue_reasons.add(|| [t.as_str(), " cue \"", p.text.trim(), "\" not counted (denied)"].concat());
                    }
                    Target::Type(t) => {
                        *type_score.entry(t).or_default() += w;
                        cue_reasons.add(|| self.cue_line(id, k).to_owned());
                    }
                    Target::Impact(class) => {
                        impact_score[class] += w;
                        cue_reasons.add(|| self.cue_line(id, k).to_owned());
                    }
                    Target::Resolved => {}
                    Target::Urgency(level) => {
                        *urgency_score.entry(level).or_default() += w;
                        cue_reasons.add(|| self.cue_line(id, k).to_owned());
                    }
                }
            }
        }
        if reply {
            self.demote_reply_subject(&mut cues, &mut scores);
        }
        if !self.patterns.is_empty() {
            // A reply's subject that does not say what the message is about speaks through no
            // pattern either ("RE: Reset password email" above "sekarang mohon shared folder").
            for i in self.pattern_matches(&held, text, !cues.reply_subject_demoted) {
                let targets = &self.pattern_targets[i].1;
                for &(r, w) in targets {
                    scores[r].route += w;
                    if explain {
                        reasons.push((r, w, Why::Pattern(i)));
                    }
                }
            }
        }
        let inbox = input.inbox_address.to_ascii_lowercase();
        let inbox_local = inbox.split('@').next().unwrap_or("");
        let domain = input.sender_domain.map(|d| d.to_ascii_lowercase());
        for (r, route) in self.routes.iter().enumerate() {
            for (addr, w) in &route.inbox {
                if *addr == inbox || (!addr.contains('@') && addr == inbox_local) {
                    scores[r].route += w;
                    scores[r].inbox = true;
                    if explain {
                        reasons.push((r, *w, Why::Inbox));
                    }
                }
            }
            if let Some(d) = &domain {
                for (sd, w) in &route.sender_domains {
                    if d == sd || d.strip_suffix(sd.as_str()).is_some_and(|p| p.ends_with('.')) {
                        scores[r].route += w;
                        if explain {
                            reasons.push((r, *w, Why::Domain));
                        }
                    }
                }
            }
        }
        // A route that requires one of its keywords ("sakti" for SAKTI's user administration)
        // scores nothing without it, whatever else it shares with its siblings ("reset mfa").
        for &r in &self.requiring {
            let route = &self.routes[r];
            if scores[r].route > 0.0
                && !route.requires.iter().any(|p| cues.in_subject.contains(p) || cues.in_body.contains(p))
            {
                if explain {
                    reasons.push((r, -scores[r].route, Why::Requires));
                }
                scores[r].route = 0.0;
                scores[r].specific = 0;
            }
        }
        let is_question = |id: usize| self.phrases[id].marks.question;
        let subject_asks = cues.in_subject.iter().any(|&id| is_question(id));
        let asking_sentences = located.iter().filter(|(id, _)| is_question(*id)).map(|(_, s)| *s).collect();
        Scoring {
            subject_asks,
            asking_sentences,
            scores,
            cues,
            reasons,
            type_score,
            impact_score,
            urgency_score,
            cue_reasons,
            domain,
        }
    }

    /// The subject of a reply or a forward ("Re: VPS down") names the thread's first topic; the
    /// new text may be about another ("VPS sudah normal, sekarang mohon subdomain baru"). When
    /// the body alone gives some route the threshold, a keyword that stands only in such a
    /// subject counts `mention_weight` times (one that stands in the body too counts as a body
    /// match, unless only mentioned there), so the old topic does not outvote the new one; `rules explain` marks it
    /// "subject of a reply". Without such a body the subject keeps its weight: "Re: SIGI" above
    /// "masih belum bisa" is still about SIGI.
    fn demote_reply_subject(&self, cues: &mut Cues, scores: &mut [Score]) {
        let mut from_subject = vec![0.0; scores.len()];
        for (r, w, _) in self.subject_parts(cues) {
            from_subject[r] += w;
        }
        let body_reaches = scores.iter().zip(&from_subject).any(|(s, subj)| s.route - subj >= self.threshold);
        if !body_reaches || from_subject.iter().all(|w| *w == 0.0) {
            return;
        }
        for (r, w, why) in self.subject_parts(cues) {
            let (new, _) = self.as_reply_subject(cues, r, w, why);
            scores[r].route += new - w;
        }
        cues.reply_subject_demoted = true;
    }

    /// What the subject's phrases give their routes, counted as the subject's (in phrase order).
    fn subject_parts<'a>(&'a self, cues: &'a Cues) -> impl Iterator<Item = (usize, f64, Why)> + 'a {
        cues.found.iter().filter(|id| cues.in_subject.contains(id)).flat_map(move |&id| {
            self.phrases[id]
                .targets
                .iter()
                .filter_map(move |&(t, w)| self.route_part(cues, id, true, t, w))
                .filter(|(_, _, why)| matches!(why, Why::Keyword(_, "subject") | Why::Negative(_, "subject")))
        })
    }

    /// A subject keyword's part once the reply's subject counts as a mention
    /// ([`Self::demote_reply_subject`]); any other part as it is.
    fn as_reply_subject(&self, cues: &Cues, r: usize, w: f64, why: Why) -> (f64, Why) {
        let id = match why {
            Why::Keyword(id, "subject") | Why::Negative(id, "subject") => id,
            _ => return (w, why),
        };
        let mult =
            if cues.in_body.contains(&id) && !cues.mentioned_only.contains(&r) { 1.0 } else { self.mention_weight };
        let why = match why {
            Why::Negative(..) => Why::Negative(id, "subject of a reply"),
            _ => Why::Keyword(id, "subject of a reply"),
        };
        (w / self.subject_weight * mult, why)
    }

    /// What the route target `target` (weight `w`) of phrase `id`, found in the message (in its
    /// subject: `subject`), gives its route: the route, the score and why. The one place that
    /// says how a keyword counts; the scores are summed from it, and the winner's reasons are
    /// written from it. `None` for a target that is no route's.
    fn route_part(&self, cues: &Cues, id: usize, subject: bool, target: Target, w: f64) -> Option<(usize, f64, Why)> {
        let (mult, field) = if subject { (self.subject_weight, "subject") } else { (1.0, "body") };
        match target {
            // "bukan minta install baru, SPSS saya error": a route cue denied asks nothing.
            Target::Route(r) if w > 0.0 && cues.denied.contains(&id) => Some((r, 0.0, Why::Denied(id))),
            Target::Route(r) => {
                let unless = if cues.unless_fields.is_empty() { None } else { cues.unless_fields.get(&(r, id)) };
                let (mult, field) = match unless {
                    None => (mult, field),
                    Some((true, _)) => (self.subject_weight, "subject"),
                    Some((false, true)) => (1.0, "body"),
                    Some((false, false)) => return Some((r, 0.0, Why::NotCounted(id))),
                };
                // A system named outside the sentences that ask or report counts less.
                let (mult, field) = if field == "body" && w > 0.0 && cues.mentioned_only.contains(&r) {
                    (self.mention_weight, "body, mentioned only")
                } else {
                    (mult, field)
                };
                Some((r, w * mult, Why::Keyword(id, field)))
            }
            // "scan aja, ga usah pentest": a phrase denied speaks against no route either.
            Target::Against(r) if cues.denied.contains(&id) => Some((r, 0.0, Why::Denied(id))),
            // "Listrik dan UPS sudah normal": a system said to work speaks against no route.
            Target::Against(r) if cues.settled_only.contains(&id) => Some((r, 0.0, Why::SaidToWork(id))),
            Target::Against(r) => Some((r, -w * mult, Why::Negative(id, field))),
            _ => None,
        }
    }

    /// The reason line of target `k` of phrase `id` when it is a type, scope or urgency cue,
    /// written once for the life of the rules.
    fn cue_line(&self, id: usize, k: usize) -> &str {
        let p = &self.phrases[id];
        let lines = p.lines.get_or_init(|| {
            let text = p.text.trim();
            p.targets
                .iter()
                .map(|&(target, w)| match target {
                    Target::Type(t) => format!("{t} cue \"{text}\" +{w}"),
                    Target::Impact(class) => {
                        format!("scope class `{}` cue \"{text}\" +{w}", self.impact_classes[class].0)
                    }
                    Target::Urgency(level) => format!("{level} urgency cue \"{text}\" +{w}"),
                    _ => String::new(),
                })
                .collect()
        });
        &lines[k]
    }

    /// The reasons route `r` won by, added to `lines` in the order its score was summed: its
    /// keywords' (from the phrases found), then the others (`reasons`: patterns, inbox, domain,
    /// `requires`).
    fn reasons_for(
        &self,
        cues: &Cues,
        reasons: &[(usize, f64, Why)],
        r: usize,
        (inbox, domain): (&str, &str),
        lines: &mut Vec<String>,
    ) {
        for &id in &cues.found {
            let subject = cues.in_subject.contains(&id);
            for &(target, w) in &self.phrases[id].targets {
                if !matches!(target, Target::Route(x) | Target::Against(x) if x == r) {
                    continue;
                }
                if let Some((_, part, why)) = self.route_part(cues, id, subject, target, w) {
                    let (part, why) = if cues.reply_subject_demoted {
                        self.as_reply_subject(cues, r, part, why)
                    } else {
                        (part, why)
                    };
                    lines.push(self.reason_line(part, why, inbox, domain));
                }
            }
        }
        lines.extend(
            reasons.iter().filter(|(x, _, _)| *x == r).map(|&(_, w, why)| self.reason_line(w, why, inbox, domain)),
        );
    }

    fn reason_line(&self, w: f64, why: Why, inbox: &str, domain: &str) -> String {
        let text = |id: usize| self.phrases[id].text.trim();
        match why {
            Why::Keyword(id, field) => signed_line(w, &[" keyword \"", text(id), "\" in ", field]),
            Why::NotCounted(id) => signed_line(w, &[" keyword \"", text(id), "\" not counted (unless)"]),
            Why::Denied(id) => signed_line(w, &[" keyword \"", text(id), "\" not counted (denied)"]),
            Why::SaidToWork(id) => signed_line(w, &[" negative \"", text(id), "\" not counted (said to work)"]),
            Why::Negative(id, field) => signed_line(w, &[" negative \"", text(id), "\" in ", field]),
            Why::Pattern(i) => signed_line(w, &[" pattern /", &self.pattern_targets[i].0, "/"]),
            Why::Inbox => signed_line(w, &[" arrived at ", inbox]),
            Why::Domain => signed_line(w, &[" sender domain ", domain]),
            Why::Requires => signed_line(w, &[" none of the keywords the route requires"]),
        }
    }

    /// The body's sentences that say a problem is over (`[speech]`'s `resolved`: keyword
    /// phrases, found in the one search of the text that finds every cue).
    fn settled_sentences(&self, located: &[(usize, usize)]) -> HashSet<usize> {
        located.iter().filter(|(id, _)| self.phrases[*id].marks.resolved).map(|&(_, s)| s).collect()
    }

    /// Routes whose keywords in the body all stand in sentences that say a problem is over
    /// ("masalah SAKTI kemarin sudah beres"), when another route has a keyword elsewhere in the
    /// body: the thread's past is merely mentioned; the new sentences say what is asked.
    fn only_in_resolved(&self, settled: &HashSet<usize>, located: &[(usize, usize)]) -> HashSet<usize> {
        if settled.is_empty() || self.mention_weight == 1.0 {
            return HashSet::default();
        }
        // The routes the phrases count for.
        let routes = |ids: HashSet<usize>| -> HashSet<usize> {
            ids.into_iter()
                .flat_map(|id| self.phrases[id].targets.iter())
                .filter_map(|&(t, w)| match t {
                    Target::Route(r) if w > 0.0 => Some(r),
                    _ => None,
                })
                .collect()
        };
        let (inside, outside) = in_and_out(settled, located);
        let (inside, outside) = (routes(inside), routes(outside));
        if outside.is_empty() {
            return HashSet::default();
        }
        inside.difference(&outside).copied().collect()
    }

    /// What the message is about: the subject and the body's sentences that hold a failure or a
    /// request cue (an incident or request type cue). When those give some route the threshold,
    /// a route with no keyword in them (a system merely mentioned: "… data dari SIGI aman")
    /// counts its keywords `mention_weight` times. Returns those routes; empty when the rule
    /// does not apply.
    /// The subject of a reply (`reply`) names the thread's first topic, not necessarily this
    /// message's: it does not say what the message is about.
    /// A sentence that says a problem is over (`settled`) tells the past: it is no focus.
    fn mentioned_only(
        &self,
        in_subject: &HashSet<usize>,
        located: &[(usize, usize)],
        reply: bool,
        settled: &HashSet<usize>,
    ) -> HashSet<usize> {
        if self.mention_weight == 1.0 {
            return HashSet::default();
        }
        let asks = |id: usize| self.phrases[id].marks.asks;
        let focus: HashSet<usize> =
            located.iter().filter(|(id, s)| asks(*id) && !settled.contains(s)).map(|(_, s)| *s).collect();
        if focus.is_empty() {
            return HashSet::default();
        }
        let in_focus = located.iter().filter(|(_, s)| focus.contains(s)).map(|(id, _)| *id);
        let mut about = vec![0.0; self.routes.len()];
        let subject = in_subject.iter().copied().filter(|_| !reply);
        for id in subject.chain(in_focus) {
            let mult = if !reply && in_subject.contains(&id) { self.subject_weight } else { 1.0 };
            for &(t, w) in &self.phrases[id].targets {
                if let (Target::Route(r), true) = (t, w > 0.0) {
                    about[r] += w * mult;
                }
            }
        }
        if !about.iter().any(|s| *s >= self.threshold) {
            return HashSet::default();
        }
        let mut mentioned = HashSet::default();
        for (id, _) in located {
            for &(t, w) in &self.phrases[*id].targets {
                if let (Target::Route(r), true) = (t, w > 0.0)
                    && about[r] == 0.0
                {
                    mentioned.insert(r);
                }
            }
        }
        mentioned
    }

    /// The first explicit request ([`speech`]) in the subject or a sentence of the body that
    /// holds no question cue ("mohon dibuatkan aplikasi, templatenya dimana?" asks). Works on the
    /// words [`Self::read`] normalised and [`Split`] split: nothing is normalised or split twice.
    fn explicit_request(&self, scored: &Scoring, split: &Split<'_>) -> Option<(String, String)> {
        if !scored.subject_asks
            && let Some(found) = self.speech.explicit_request(split.subject())
        {
            return Some(found);
        }
        split
            .sentences()
            .enumerate()
            .filter(|(k, _)| !scored.asking_sentences.contains(k))
            .find_map(|(_, words)| self.speech.explicit_request(words))
    }

    /// The sentences of `text` that end in `?`, normalised, in order. A sentence starts after a
    /// line break, a `!`, or a `.` that a space follows (as [`normalize::sentences`] splits):
    /// the dots of "pukul 10.00?" or "kemendag.go.id?" end no sentence.
    fn question_sentences(&self, text: &str, out: &mut Vec<String>) {
        let mut rest = text;
        while let Some(end) = rest.find('?') {
            let head = &rest.as_bytes()[..end];
            let start = (0..head.len())
                .rev()
                .find(|&i| match head[i] {
                    b'!' | b'\n' => true,
                    b'.' => head.get(i + 1).is_some_and(|c| c.is_ascii_whitespace()),
                    _ => false,
                })
                .map(|i| i + 1)
                .unwrap_or(0);
            out.push(normalize::normalize(&rest[start..end], &self.synonyms));
            rest = &rest[end + 1..];
        }
    }

    /// The phrases that stand in the body only right after a negation ("bukan minta akun
    /// baru": "minta" and "akun baru" at most `within` words after "bukan") and not in the
    /// subject: a request or question cue there is denied, not asked. Only where the body holds
    /// a negation does this look at the matches again.
    fn denied_cues(&self, body: &str, in_subject: &HashSet<usize>) -> HashSet<usize> {
        let mut denied = HashSet::default();
        let negations = &self.speech.negations;
        if negations.is_empty() || !body.split_whitespace().any(|w| negations.contains(w)) {
            return denied;
        }
        let mut free = HashSet::default();
        self.keywords.each(&self.phrases, body, false, |id, start, _| {
            let near = body[..start].split_whitespace().rev().take(self.speech.within).any(|w| negations.contains(w));
            if near {
                denied.insert(id)
            } else {
                free.insert(id)
            };
        });
        denied.retain(|id| !free.contains(id) && !in_subject.contains(id));
        denied
    }

    /// The polite request form in one of the `asked` sentences (those that end in `?`,
    /// normalised), if any.
    fn polite_question(&self, asked: &[String]) -> Option<&str> {
        if self.polite_requests.is_empty() && self.speech.markers.is_empty() && self.speech.question_markers.is_empty()
        {
            return None;
        }
        let mut phrase = None;
        for sentence in asked {
            // "tolong reset password saya?": an explicit request asked as a question.
            let words: Vec<&str> = sentence.split_whitespace().collect();
            if self.speech.explicit_request(&words).is_some() {
                return Some("an explicit request");
            }
            // "bisa ditambah kapasitasnya?", "bs diaktifin lg ga?": a question that asks for an
            // action, also where a polite phrase stands in it.
            if self.speech.asked_action(&words).is_some() {
                return Some(ASKED_ACTION);
            }
            if phrase.is_none() {
                phrase = self.polite_requests.iter().find(|p| sentence.contains(p.as_str())).map(String::as_str);
            }
        }
        phrase
    }

    /// The word of [`speech::SpeechCues::self_words`] ("sendiri") or of its `whether_tags`
    /// ("sih") in one of the `asked` sentences, if any, and whether it is a tag: the asker asks
    /// about doing something themselves, or asks whether.
    fn own_action_asked(&self, asked: &[String]) -> Option<(String, bool)> {
        asked.iter().find_map(|sentence| {
            sentence.split_whitespace().find_map(|w| {
                let tag = self.speech.whether_tags.contains(w);
                (tag || self.speech.self_words.contains(w)).then(|| (w.to_string(), tag))
            })
        })
    }

    /// The two best routes when their scores tie exactly (for `loket rules lint`): the route
    /// names and whether the documented order settled it.
    pub fn tie(&self, input: &RouteInput<'_>) -> Option<(String, String, bool)> {
        let text = self.read(input);
        let scored = self.score(input, &text, &Split::new(&text), false);
        let order = self.order(&scored.scores);
        let (&a, &b) = (order.first()?, order.get(1)?);
        let (sa, sb) = (&scored.scores[a], &scored.scores[b]);
        if sa.route < self.threshold || (sa.route * 1e9).round() != (sb.route * 1e9).round() {
            return None;
        }
        let name = |r: usize| format!("{}/{}", self.routes[r].category, self.routes[r].subcategory);
        Some((name(a), name(b), self.tie_key(&scored.scores, a) != self.tie_key(&scored.scores, b)))
    }

    /// The reason to leave a message to a person when it lists numbered items
    /// ([`speech::numbered_items`]) that the rules, routing each item alone, send to two routes or
    /// more: several requests for different services in one message.
    fn several_services(&self, input: &RouteInput<'_>, body: &str) -> Option<String> {
        let items = speech::numbered_items(body);
        let mut found: Vec<(usize, usize)> = Vec::with_capacity(items.len());
        for (k, item) in items.iter().enumerate() {
            let alone = RouteInput { subject: "", body: item, ..*input };
            let text = self.read(&alone);
            let scored = self.score(&alone, &text, &Split::new(&text), false);
            if let Some(&b) = self.order(&scored.scores).first()
                && scored.scores[b].route >= self.threshold
            {
                found.push((k + 1, b));
            }
        }
        // Two routes or more: some item's route differs from the first's.
        let several = found.first().is_some_and(|&(_, first)| found.iter().any(|&(_, r)| r != first));
        several.then(|| {
            let each = found
                .iter()
                .map(|&(k, r)| format!("item {k}: {}/{}", self.routes[r].category, self.routes[r].subcategory))
                .collect::<Vec<_>>()
                .join(", ");
            format!("several requests for different services ({each}): a person splits them")
        })
    }

    /// The decision for `input`, without its reasons (the daemon's and `rules eval`'s routing).
    pub fn route(&self, catalogue: &Catalogue, input: &RouteInput<'_>) -> RouteDecision {
        self.decide(catalogue, input, false)
    }

    /// The decision for `input` with the reasons behind it (`rules explain`): the same decision
    /// as [`Self::route`].
    pub fn explain(&self, catalogue: &Catalogue, input: &RouteInput<'_>) -> RouteDecision {
        self.decide(catalogue, input, true)
    }

    fn decide(&self, catalogue: &Catalogue, input: &RouteInput<'_>, explain: bool) -> RouteDecision {
        let mut input = input.bounded();
        let mut text = self.read(&input);
        // "Maaf, subjek salah, maksud saya …": the body disowns the subject, which then routes
        // nothing (not the rules, not the second opinion).
        let disowned = self.subject_disowned.find_in(&text.body);
        if disowned.is_some() {
            input.subject = "";
            text.subject.clear();
        }
        let input = &input;
        let split = Split::new(&text);
        let mut scored = self.score(input, &text, &split, explain);
        let body_raw = &text.body_raw;
        let scores = std::mem::take(&mut scored.scores);
        let reasons = std::mem::take(&mut scored.reasons);
        let cues = std::mem::take(&mut scored.cues);
        let mut type_score = std::mem::take(&mut scored.type_score);
        let mut impact_score = std::mem::take(&mut scored.impact_score);
        let urgency_score = std::mem::take(&mut scored.urgency_score);
        let mut cue_reasons = std::mem::take(&mut scored.cue_reasons);
        let domain = scored.domain.take();
        let qmarks = input.subject.contains('?') || body_raw.contains('?');
        // The sentences that ask, normalised once for the readings below.
        let mut asked = Vec::new();
        if qmarks {
            self.question_sentences(input.subject, &mut asked);
            self.question_sentences(body_raw, &mut asked);
        }
        // A question that names the action it asks for ("bisa ditambah kapasitasnya?").
        let mut asked_action = false;
        if qmarks {
            // A question that asks for an action ("bisa dibantu reset password?") is a request.
            let mut polite = self.polite_question(&asked);
            // "bisa dijadwalkan otomatis ga? caranya gimana?": it asks how to do it, not for it.
            if polite == Some(ASKED_ACTION)
                && asked.iter().any(|s| s.split_whitespace().any(|w| self.speech.how_words.contains(w)))
            {
                polite = None;
            }
            asked_action = polite == Some(ASKED_ACTION);
            // "boleh install docker sendiri?": the asker would do it, so it asks whether, twice over.
            // Not where the message reports a fault: in "kenapa SPAN logout sendiri terus?" the
            // system does it by itself.
            let reported = type_score.get(&TicketType::Incident).is_some_and(|w| *w > 0.0);
            let own = if polite.is_none() && !reported { self.own_action_asked(&asked) } else { None };
            let (t, w) = match (polite, &own) {
                (Some(_), _) => (TicketType::Request, self.question_mark_weight),
                (None, Some(_)) => (TicketType::Question, 2.0 * self.question_mark_weight),
                (None, None) => (TicketType::Question, self.question_mark_weight),
            };
            *type_score.entry(t).or_default() += w;
            cue_reasons.add(|| {
                match (polite, own) {
                    (Some(p), _) => Line::new().s("request cue \"?\" after \"").s(p.trim()).s("\" +"),
                    (None, Some((o, false))) => {
                        Line::new().s("question cue \"?\" (the asker does it: \"").s(&o).s("\") +")
                    }
                    (None, Some((o, true))) => {
                        Line::new().s("question cue \"?\" (it asks whether: \"").s(&o).s("\") +")
                    }
                    (None, None) => Line::new().s("question cue \"?\" +"),
                }
                .weight(w)
                .done()
            });
        }

        // A fault said as a negated verb ("OTP tidak pernah sampai", "belum muncul") where no
        // incident cue matched: the failure words are open-ended, the negation is not. Only in
        // the subject and the sentences that ask nothing: in "bisa ga hosting pake PHP 8.3?" and
        // "blm keluar, kenapa ya" the negation asks.
        if type_score.get(&TicketType::Incident).copied().unwrap_or(0.0) == 0.0
            && self.speech.failure_negation_weight > 0.0
        {
            let subject = (!scored.subject_asks).then(|| split.subject());
            let told = subject.into_iter().chain(
                split.sentences().enumerate().filter(|(k, _)| !scored.asking_sentences.contains(k)).map(|(_, w)| w),
            );
            let found = told.into_iter().find_map(|words| {
                self.speech.negated_verbs(words).into_iter().find(|f| !asked.iter().any(|a| a.contains(f.as_str())))
            });
            if let Some(found) = found {
                let w = self.speech.failure_negation_weight;
                *type_score.entry(TicketType::Incident).or_default() += w;
                cue_reasons
                    .add(|| Line::new().s("incident cue \"").s(&found).s("\" (a negated verb) +").weight(w).done());
            }
        }
        let mut order = self.order(&scores);
        // The speech act against the route's types: a message that asks for an action (an
        // explicit request, or a question naming its action) is no report of a fault, so a
        // route that takes only incidents (a service's `gangguan`, a call centre's complaints)
        // yields to the runner-up when that takes requests and reaches the threshold too.
        let explicit = self.explicit_request(&scored, &split);
        let asks_action = explicit.is_some() || asked_action;
        // A message that only reports a fault: incident cues, no request cue or marker ("mohon
        // diaktivasi"), fewer question cues, and it asks for no action.
        let cue = |t: TicketType| type_score.get(&t).copied().unwrap_or(0.0);
        // A marker that asks only for the fault to be handled ("… berhenti. Mohon segera
        // ditangani.") asks for nothing else: the fault still outweighs it.
        let handling_only =
            || cue(TicketType::Incident) > cue(TicketType::Request) && self.speech.asks_only_handling(split.segments());
        let reports = !asks_action
            && cue(TicketType::Incident) > cue(TicketType::Question)
            && ((cue(TicketType::Request) == 0.0 && !self.speech.markers.any_in(&split.all)) || handling_only());
        let mut yielded = None;
        if let (Some(&a), Some(&b)) = (order.first(), order.get(1)) {
            let (ra, rb) = (&self.routes[a], &self.routes[b]);
            if asks_action
                && !ra.allowed.contains(&TicketType::Request)
                && rb.allowed.contains(&TicketType::Request)
                && scores[b].route >= self.threshold
            {
                yielded = Some(format!(
                    "{}/{} scored {} but takes only incidents, and the message asks for an action",
                    ra.category,
                    ra.subcategory,
                    Tenths(scores[a].route)
                ));
                order.swap(0, 1);
            }
            // The mirror: a message that only reports a fault asks no sub-service for anything, so
            // a route that takes no incidents yields to the best route of its own service that does
            // (of its category, the service's `gangguan`; or of its subcategory id in another
            // category, DJPb's consultation on the same application), also past a sibling that
            // takes none either and ties it, when that reaches the threshold and six tenths of its
            // score (a sub-service's name in the subject weighs half again: "API Gateway
            // production 503"), and is not merely mentioned.
            let takes_fault = |k: usize| {
                let rk = &self.routes[k];
                (ra.category == rk.category || ra.subcategory == rk.subcategory)
                    && rk.allowed.contains(&TicketType::Incident)
                    && !cues.mentioned_only.contains(&k)
                    && scores[k].route >= self.threshold
                    && scores[k].route >= FAULT_YIELD_SHARE * scores[a].route
            };
            if yielded.is_none()
                && reports
                && !ra.allowed.contains(&TicketType::Incident)
                && let Some(k) = (0..scores.len())
                    .filter(|&k| k != a && takes_fault(k))
                    .max_by(|&x, &y| self.tie_key(&scores, x).cmp(&self.tie_key(&scores, y)))
            {
                yielded = Some(format!(
                    "{}/{} scored {} but takes no incidents, and the message reports a fault",
                    ra.category,
                    ra.subcategory,
                    Tenths(scores[a].route)
                ));
                order.retain(|&r| r != k);
                order.insert(0, k);
            }
        }
        // A sender outside the desk's domains settles a tie between an internal-only route and
        // one open to them: the open one ("our company cannot upload … in INATRADE" is the call
        // centre's, not the internal INATRADE's).
        let mut open_settles = false;
        if let (Some(&a), Some(&b)) = (order.first(), order.get(1))
            && domain.as_deref().is_some_and(|d| !catalogue.is_internal_domain(d))
            && self.routes[a].internal_only != self.routes[b].internal_only
            && self.tie_key(&scores, a) == self.tie_key(&scores, b)
        {
            if self.routes[a].internal_only {
                order.swap(0, 1);
            }
            open_settles = true;
        }
        let mut best = order.first().copied();
        let mut best_score = best.map(|b| scores[b].route).unwrap_or(0.0);
        let mut second_score = order.get(1).map(|s| scores[*s].route.max(0.0)).unwrap_or(0.0);
        // An exact tie that the documented order cannot settle is not settled by file order:
        // such a message waits in triage. A message that asks for an action has settled a tie
        // between a route that takes requests (now first) and one that does not; one that only
        // reports a fault, a tie between a route that takes incidents (now first) and one that
        // does not.
        let unsettled = match (order.first(), order.get(1)) {
            (Some(&a), Some(&b)) => {
                let (ra, rb) = (&self.routes[a], &self.routes[b]);
                let settles = |t: TicketType| ra.allowed.contains(&t) && !rb.allowed.contains(&t);
                let settled = open_settles
                    || (asks_action && settles(TicketType::Request))
                    || (reports && settles(TicketType::Incident));
                self.tie_key(&scores, a) == self.tie_key(&scores, b) && !settled
            }
            _ => false,
        };
        // The message as the opinions read it, folded once for both (the route's, the impact's).
        let folded_text = std::cell::OnceCell::new();
        let folded = || folded_text.get_or_init(|| examples::Folded::new(&examples::text(input.subject, input.body)));
        // The second opinion learned from the desk's labelled messages, scored once, where the
        // rules have a candidate (a route with at least half the threshold).
        let half = self.threshold / 2.0;
        let opinion = self.opinion.as_ref().filter(|_| best_score >= half).map(|m| (m.as_ref(), m.scores_of(folded())));
        // A cue of route `r` that the labelled messages never had: what the rules know there,
        // the opinion does not (an operator's new keyword, a product's new name).
        let unknown_cue = |model: &examples::Model, r: usize| {
            cues.found.iter().copied().find_map(|id| {
                let p = &self.phrases[id];
                let counts = p.targets.iter().any(|&(t, w)| matches!(t, Target::Route(x) if x == r) && w > 0.0);
                (counts && !model.knows(&p.text)).then(|| p.text.trim())
            })
        };
        // Where the rules alone leave the message to a person although they have a candidate
        // (their best route below the threshold but at least half of it, or two routes tied),
        // or where their runner-up has at least half the threshold, the labelled messages may
        // choose among the rules' own candidates: when they clearly say one, it is taken. They
        // never bring a route of their own, and never turn from a winner whose cue they never had.
        let picked = match (best, &opinion) {
            (Some(b), Some((m, ms))) if best_score < self.threshold => self.settle(m, ms, &[b]),
            (Some(_), Some((m, ms))) if unsettled => self.settle(m, ms, &order[..2]),
            (Some(b), Some((m, ms))) => match order.get(1) {
                Some(&r2) if scores[r2].route >= half => {
                    self.settle(m, ms, &[r2]).filter(|_| unknown_cue(m, b).is_none())
                }
                _ => None,
            },
            _ => None,
        };
        // Which way it chose: what the rules left open, or their runner-up over their winner.
        let chose =
            picked.map(|_| if best_score < self.threshold || unsettled { Opinion::Settled } else { Opinion::RunnerUp });
        if let Some((c, _)) = picked {
            let other = order.iter().copied().find(|&o| o != c);
            (best, best_score) = (Some(c), scores[c].route);
            second_score = other.map(|o| scores[o].route.max(0.0)).unwrap_or(0.0);
        }
        let mut decision = match best {
            Some(b) if best_score >= self.threshold && unsettled && picked.is_none() => {
                let other = &self.routes[order[1]];
                let r = &self.routes[b];
                RouteDecision::triage(format!(
                    "{}/{} and {}/{} tie at {} (same longest keyword, inbox and priority)",
                    r.category,
                    r.subcategory,
                    other.category,
                    other.subcategory,
                    Tenths(best_score)
                ))
            }
            Some(b) if best_score >= self.threshold || picked.is_some() => {
                let route = &self.routes[b];
                // The route's lines, then the type's and the impact's (`cue_reasons`): sized once.
                let mut rs = Vec::with_capacity(if cue_reasons.on() { 32 } else { 0 });
                if cue_reasons.on() {
                    rs.push(
                        Line::scored(route, best_score)
                            .s(" (threshold ")
                            .tenths(self.threshold)
                            .s(", runner-up ")
                            .tenths(second_score)
                            .s(")")
                            .done(),
                    );
                    rs.extend(yielded);
                    let inbox = input.inbox_address.to_ascii_lowercase();
                    if let (Some((_, margin)), Some(how)) = (picked, chose) {
                        let what = match how {
                            Opinion::RunnerUp => "the rules' runner-up taken over their best",
                            _ => "it settles what the rules left open",
                        };
                        rs.push(format!(
                            "second opinion: labelled messages like this one are {}/{}, {} ahead of the next: {what}",
                            route.category,
                            route.subcategory,
                            Tenths(f64::from(margin))
                        ));
                    }
                    self.reasons_for(&cues, &reasons, b, (&inbox, domain.as_deref().unwrap_or("")), &mut rs);
                }
                RouteDecision {
                    category: route.category.clone(),
                    subcategory: route.subcategory.clone(),
                    ticket_type: None,
                    impact: None,
                    urgency: None,
                    confidence: confidence(best_score, second_score, self.threshold),
                    reasons: rs,
                    internal_only_refused: None,
                    official_only: false,
                    opinion: chose,
                }
            }
            Some(b) if best_score > 0.0 => {
                let r = &self.routes[b];
                RouteDecision::triage(
                    Line::new()
                        .s("best route ")
                        .route_scored(r, best_score)
                        .s(", below the threshold ")
                        .tenths(self.threshold)
                        .done(),
                )
            }
            _ => RouteDecision::triage("no rule matched"),
        };

        // Several numbered requests, each for another service ("1) reset password email, 2) hak
        // akses folder, 3) room vicon Jumat"): one ticket cannot go to them all; a person splits it.
        if !decision.is_triage()
            && let Some(why) = self.several_services(input, body_raw)
        {
            decision = RouteDecision::triage(why);
        }

        // The second opinion learned from the desk's labelled messages: it keeps the rules' route
        // or sends the message to triage; it never brings a route of its own.
        // (It has nothing to say on the rules' triage, which always stands: not asked.)
        if let (Some((model, ms)), false, None) = (&opinion, decision.is_triage(), picked) {
            // Looked for only where the opinion would overrule: it folds every cue of the winner.
            let unknown = || best.and_then(|b| unknown_cue(model, b));
            self.second_opinion(model, ms, &mut decision, unknown, cue_reasons.on());
        }

        // Internal-only services are not opened for senders outside the desk's domains.
        if let (Some(b), false) = (best, decision.is_triage()) {
            let route = &self.routes[b];
            // The sender rule (`sender = "internal" | "official"`, issue #17) is answered the same way.
            let rule = catalogue.subcategory(&route.category, &route.subcategory).map(|s| s.sender).unwrap_or_default();
            if let Some(d) = &domain
                && ((route.internal_only && !catalogue.is_internal_domain(d)) || !catalogue.sender_allowed(rule, d))
            {
                let name = catalogue
                    .subcategory(&route.category, &route.subcategory)
                    .map(|s| s.name.clone())
                    .unwrap_or_else(|| route.subcategory.clone());
                let mut t = RouteDecision::triage(format!(
                    "{}/{} is internal-only and {d} is not an internal domain",
                    route.category, route.subcategory
                ));
                t.internal_only_refused = Some(name);
                t.official_only = !route.internal_only && rule == crate::catalogue::SenderRule::Official;
                t.opinion = decision.opinion;
                decision = t;
            }
        }

        // Ticket type: the best-scoring type the subcategory allows.
        let allowed: Vec<TicketType> = if decision.is_triage() {
            TicketType::ALL.to_vec()
        } else {
            best.map(|b| self.routes[b].allowed.clone()).unwrap_or_default()
        };
        let default_type = if decision.is_triage() { None } else { best.and_then(|b| self.routes[b].default_type) };
        let mut ttype = None;
        let mut top = 0.0;
        for t in [TicketType::Incident, TicketType::Request, TicketType::Question] {
            let s = type_score.get(&t).copied().unwrap_or(0.0);
            if allowed.contains(&t) && s > top {
                top = s;
                ttype = Some(t);
            }
        }
        // An explicit request ("tolong reset …", "please create …") beats failure words.
        // With no type cue at all, it beats the route's default type too ("mohon update berita …").
        // Not where an incident is reported in the words of a class that keeps it one (a
        // compromise: "… Hacked by …. Mohon segera diturunkan"): the request asks for the fix.
        let kept = (ttype == Some(TicketType::Incident))
            .then(|| self.incident_classes.iter().copied().find(|&c| impact_score[c] >= self.impact_threshold))
            .flatten();
        if let Some(c) = kept {
            if let Some((marker, action)) = explicit.as_ref() {
                cue_reasons.add(|| {
                    Line::new()
                        .s("incident: scope class `")
                        .s(&self.impact_classes[c].0)
                        .s("` keeps it one; the explicit request \"")
                        .s(marker)
                        .s(" … ")
                        .s(action)
                        .s("\" asks for the fix")
                        .done()
                });
            }
        } else if ttype != Some(TicketType::Request) && allowed.contains(&TicketType::Request) {
            if let Some((marker, action)) = explicit {
                ttype = Some(TicketType::Request);
                cue_reasons.add(|| {
                    Line::new()
                        .s("request: the explicit request \"")
                        .s(&marker)
                        .s(" … ")
                        .s(&action)
                        .s("\" beats the other type cues")
                        .done()
                });
            } else if asked_action {
                ttype = Some(TicketType::Request);
                cue_reasons.add(|| ["request: ", ASKED_ACTION, " beats the other type cues"].concat());
            }
        }
        let ttype = ttype.or(default_type).or_else(|| (allowed.len() == 1).then(|| allowed[0])).or_else(|| {
            [TicketType::Request, TicketType::Question, TicketType::Incident].into_iter().find(|t| allowed.contains(t))
        });
        decision.ticket_type = ttype;
        let mut impact_reason = None;
        let mut impact_opinion = None;
        if ttype == Some(TicketType::Incident) {
            // The service's own scope (public-facing, a payment deadline) counts when it is the route.
            if let (Some(b), false) = (best, decision.is_triage()) {
                for &(class, w) in &self.routes[b].scope {
                    impact_score[class] += w;
                    cue_reasons.add(|| {
                        format!(
                            "scope class `{}` +{w} (the service {})",
                            self.impact_classes[class].0,
                            decision.route()
                        )
                    });
                }
            }
            // A count of people or units ("6 developer", "12 kanwil") names its class outright.
            // Counted within the subject and within each sentence: a number never counts the
            // noun that opens the next one ("Error 504" then "Petugas …", "'HTTP 500'. Direktorat
            // lain …").
            for found in split.segments().flat_map(|segment| scope::counts(segment, &self.impact_counts)) {
                impact_score[found.class] += self.impact_threshold;
                cue_reasons.add(|| {
                    Line::scope_class(&self.impact_classes[found.class].0)
                        .s("` from the count \"")
                        .s(&found.text)
                        .s("\" (")
                        .s(found.kind)
                        .s(": ")
                        .s(itoa::Buffer::new().format(found.number))
                        .s(") +")
                        .weight(self.impact_threshold)
                        .done()
                });
            }
            // A duty due soon ("harus dikirim … sore ini", "batas usulan hari ini") names its class too.
            let words = &split.all;
            if let Some(due) = &self.impact_due
                && let Some(text) = scope::due_soon(words, due)
            {
                impact_score[due.class] += self.impact_threshold;
                cue_reasons.add(|| {
                    Line::scope_class(&self.impact_classes[due.class].0)
                        .s("` from the duty due soon \"")
                        .s(&text)
                        .s("\" +")
                        .weight(self.impact_threshold)
                        .done()
                });
            }
            // A pair of cues: a place named ("di bidang anggaran"), the public hit ("importir ga bisa bayar").
            // Each word looked up once for every pair's two sets (the `first` of pair `i` is set
            // `2i` of the index, its `then` `2i + 1`).
            let starts = self.impact_pair_starts.starts(words);
            let candidates = starts.iter().fold(0, |all, s| all | s);
            for (i, pair) in self.impact_pairs.iter().enumerate() {
                if !self.impact_pair_starts.may_hold(candidates, 2 * i) {
                    continue;
                }
                let (first, then) = (phrases::StartIndex::bit(2 * i), phrases::StartIndex::bit(2 * i + 1));
                if let Some(span) = scope::pair_found_at(words, pair, &starts, first, then) {
                    impact_score[pair.class] += self.impact_threshold;
                    cue_reasons.add(|| {
                        Line::scope_class(&self.impact_classes[pair.class].0)
                            .s("` from ")
                            .s(&pair.name)
                            .s(" \"")
                            .s(&words[span].join(" "))
                            .s("\" +")
                            .weight(self.impact_threshold)
                            .done()
                    });
                }
            }
            let mut classes: Vec<scope::ClassScore> = self
                .impact_classes
                .iter()
                .zip(&impact_score)
                .map(|((name, level), score)| scope::ClassScore { name, level: *level, score: *score })
                .collect();
            for (by, capped) in scope::apply_caps(&mut classes, &self.impact_caps, self.impact_threshold) {
                cue_reasons.add(|| {
                    format!(
                        "scope class `{}` not counted: `{}` bounds it",
                        self.impact_classes[capped].0, self.impact_classes[by].0
                    )
                });
            }
            let found = scope::impact_of(&classes, self.impact_threshold);
            decision.impact = Some(found.impact);
            if cue_reasons.on() {
                impact_reason = Some(scope::explain(&found, self.impact_threshold));
            }
            // The impact opinion, learned from every desk's labelled incidents: where it reads
            // another level than the scope classes, its level stands (BENCHMARKS.md, "Impact
            // from labelled incidents"). Both lines are the reasons.
            if let Some(model) = self.impact_opinion.model()
                && let Some((level, margin)) = examples::impact_verdict(model, folded())
                && level != found.impact
            {
                decision.impact = Some(level);
                if cue_reasons.on() {
                    impact_opinion = Some(
                        Line::new()
                            .s("impact ")
                            .s(level.as_str())
                            .s(": labelled incidents like this one are ")
                            .s(level.as_str())
                            .s(" (")
                            .tenths(f64::from(margin))
                            .s(" ahead of the next), not ")
                            .s(found.impact.as_str())
                            .done(),
                    );
                }
            }
        }
        if ttype == Some(TicketType::Incident) {
            let hi = urgency_score.get(&Impact::High).copied().unwrap_or(0.0);
            let lo = urgency_score.get(&Impact::Low).copied().unwrap_or(0.0);
            decision.urgency = Some(if hi >= self.impact_threshold && hi >= lo {
                Impact::High
            } else if lo >= self.impact_threshold {
                Impact::Low
            } else {
                Impact::Medium
            });
        }
        decision.reasons.extend(cue_reasons.into_lines());
        decision.reasons.extend(impact_reason);
        decision.reasons.extend(impact_opinion);
        if let (Some(phrase), true) = (disowned, explain) {
            decision.reasons.insert(
                0,
                format!("the body says the subject is wrong (\"{}\"): the subject is not read", phrase.trim()),
            );
        }
        decision
    }

    /// The second opinion ([`examples::judge`]) on the rules' `decision`: kept, or sent to triage
    /// where the desk's labelled messages clearly point elsewhere and the winning route's cues
    /// are words they had (`unknown_cue` names one they never had); the rules stay the only thing
    /// that routes. With a line of reasons when `explain`.
    /// Which of the rules' `candidates` the desk's labelled messages clearly say, with the
    /// model's lead over its runner-up.
    fn settle(&self, model: &examples::Model, scores: &[f32], candidates: &[usize]) -> Option<(usize, f32)> {
        let (theirs, margin) = examples::clear_best(model, scores)?;
        let (category, subcategory) = theirs.split_once('/')?;
        candidates
            .iter()
            .copied()
            .find(|&c| self.routes[c].category == category && self.routes[c].subcategory == subcategory)
            .map(|c| (c, margin))
    }

    fn second_opinion<'c>(
        &self,
        model: &examples::Model,
        scores: &[f32],
        decision: &mut RouteDecision,
        unknown_cue: impl FnOnce() -> Option<&'c str>,
        explain: bool,
    ) {
        use examples::Judgement;
        let rules_route = decision.route();
        let line = |s: String| if explain { vec![s] } else { Vec::new() };
        let opinion = match examples::judge(model, scores, &rules_route, decision.is_triage()) {
            Judgement::Agrees => Opinion::Kept,
            Judgement::Close { best: theirs, gap } => {
                decision.reasons.extend(line(format!(
                    "second opinion: labelled messages like this one lean to {theirs}, {} ahead of {rules_route}: kept",
                    Tenths(f64::from(gap))
                )));
                Opinion::Kept
            }
            Judgement::Overrules { best: theirs, .. } if let Some(cue) = unknown_cue() => {
                decision.reasons.extend(line(format!(
                    "second opinion: labelled messages like this one are {theirs}, but they never had \"{cue}\", \
                     the rules' cue for {rules_route}: kept"
                )));
                Opinion::UnknownCue
            }
            Judgement::Overrules { best: theirs, margin } => {
                // The rules stay the only thing that routes: a route the labelled messages
                // clearly contradict goes to a person (triage), never to the opinion's route.
                *decision = RouteDecision::triage(format!(
                    "second opinion: labelled messages like this one are {theirs}, {} ahead of the next; \
                     the rules' {rules_route} is held for a person to decide",
                    Tenths(f64::from(margin))
                ));
                Opinion::Held
            }
            // The labelled messages do not say clearly what the message is: they do not outweigh
            // the rules (their own examples among them) that say it.
            Judgement::Unclear { best: theirs, margin, gap } => {
                decision.reasons.extend(line({
                    let against = if gap.is_finite() {
                        format!("{} ahead of the rules' {rules_route}", Tenths(f64::from(gap)))
                    } else {
                        format!("and none is {rules_route}, the rules' route")
                    };
                    format!(
                        "second opinion: labelled messages like this one lean to {theirs} ({} ahead of the next), \
                         {against}: not clear, the rules' route kept",
                        Tenths(f64::from(margin)),
                    )
                }));
                Opinion::Unclear
            }
        };
        decision.opinion = Some(opinion);
    }
}

impl DeskRules {
    /// Scores compared to 1e-9, so that sums in another order still tie.
    fn tie_key(&self, scores: &[Score], r: usize) -> (i64, usize, bool, i32) {
        let s = &scores[r];
        // Most routes score nothing: no rounding (a call into libm here) for them.
        let score = if s.route == 0.0 { 0 } else { (s.route * 1e9).round() as i64 };
        (score, s.specific, s.inbox, self.routes[r].priority)
    }

    /// The best two routes: by score, then (on equal scores) the route whose longest matched
    /// keyword has more words, then the route whose inbox the message arrived at, then the
    /// higher `priority`. File order never decides; a tie left after that goes to triage.
    /// One pass, no sort: this runs for every message.
    fn order(&self, scores: &[Score]) -> Vec<usize> {
        let key = |r: usize| (self.tie_key(scores, r), std::cmp::Reverse(self.routes[r].name_rank));
        // The best two with their keys, each key computed once.
        let mut top = Vec::with_capacity(2);
        for r in 0..scores.len() {
            let k = key(r);
            match top.len() {
                0 => top.push((k, r)),
                1 => {
                    if k > top[0].0 {
                        top.insert(0, (k, r))
                    } else {
                        top.push((k, r))
                    }
                }
                _ => {
                    if k > top[0].0 {
                        top[1] = std::mem::replace(&mut top[0], (k, r));
                    } else if k > top[1].0 {
                        top[1] = (k, r);
                    }
                }
            }
        }
        top.into_iter().map(|(_, r)| r).collect()
    }
}

/// A reply's or a forward's subject: "Re:", "RE :", "Fwd:", "FW:", "AW:", "Bls:" first.
fn is_reply_subject(subject: &str) -> bool {
    subject_prefix_is(subject, &["re", "fw", "fwd", "aw", "wg", "sv", "tr", "bls", "balas"])
}

/// A forward's subject: "Fwd:", "FW:", "WG:", "TR:" first.
fn is_forward_subject(subject: &str) -> bool {
    subject_prefix_is(subject, &["fw", "fwd", "wg", "tr"])
}

/// Whether the subject's first word before a colon is one of `prefixes` (lower case), in any case.
fn subject_prefix_is(subject: &str, prefixes: &[&str]) -> bool {
    subject.trim_start().split_once(':').is_some_and(|(p, _)| prefixes.iter().any(|x| p.trim().eq_ignore_ascii_case(x)))
}

/// The least share of the best score a sibling that takes incidents needs to take a message
/// that only reports a fault from a sub-service that takes none.
const FAULT_YIELD_SHARE: f64 = 0.6;

/// The most words a forward's own text may have and still be only a cover note for the mail it
/// forwards ("Mohon ditindaklanjuti segera.", "FYI, please see below").
const COVER_NOTE_WORDS: usize = 6;

/// The most of a message's subject and body (in bytes, cut back to a character) that routing
/// reads: a person says what a mail is about in its subject and its first paragraphs, and
/// routing's work grows with the text, so a mail of megabytes (up to `limits.max_message_bytes`)
/// costs no more than this. Far above any labelled message (the longest body is 1,186
/// characters), and room for a cover note above a forwarded mail.
pub const ROUTED_BYTES: usize = 16 * 1024;

impl<'a> RouteInput<'a> {
    /// The input as routing reads it: subject and body each cut to [`ROUTED_BYTES`].
    fn bounded(&self) -> RouteInput<'a> {
        use crate::chat::cut;
        RouteInput { subject: cut(self.subject, ROUTED_BYTES), body: cut(self.body, ROUTED_BYTES), ..*self }
    }
}

fn confidence(best: f64, second: f64, threshold: f64) -> f64 {
    if best <= 0.0 {
        return 0.0;
    }
    let margin = ((best - second) / best).clamp(0.0, 1.0);
    let strength = best / (best + threshold);
    ((margin + strength) / 2.0 * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::catalogue::Catalogue;

    fn repo(p: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
    }

    /// Scores to tenths exactly as `std` writes them: the half tenths that binary fractions hit
    /// (0.25, 0.35, 1.05), signs, negative zero, and any value.
    #[test]
    fn tenths_are_written_as_std_writes_them() {
        for v in [
            0.0, -0.0, 0.25, 0.35, 0.45, 0.75, 1.05, 1.25, 2.5, -0.04, -0.25, -1.75, 0.05, 0.15, 3.0, 3.25, 12.349_999,
            1e12, -7.75,
        ] {
            assert_eq!(Tenths(v).to_string(), format!("{v:.1}"), "{v}");
            assert_eq!(signed_line(v, &[]), format!("{v:+.1}"), "{v}");
        }
    }

    proptest::proptest! {
        #[test]
        fn tenths_match_std_for_any_score(v in -1.0e4f64..1.0e4, w in proptest::num::f64::ANY) {
            proptest::prop_assert_eq!(Tenths(v).to_string(), format!("{v:.1}"));
            proptest::prop_assert_eq!(Tenths(w).to_string(), format!("{w:.1}"));
            proptest::prop_assert_eq!(signed_line(v, &[" x"]), format!("{v:+.1} x"));
            proptest::prop_assert_eq!(signed_line(w, &[]), format!("{w:+.1}"));
            proptest::prop_assert_eq!(Line::new().weight(w).done(), format!("{w}"));
            proptest::prop_assert_eq!(Line::new().weight(v).done(), format!("{v}"));
        }

        /// Weights as rules files give them (tenths, quarters) are written as `{}` writes them.
        #[test]
        fn weights_are_written_as_std_writes_them(k in -100_000i64..100_000, d in 1i64..=8) {
            let w = k as f64 / d as f64;
            proptest::prop_assert_eq!(Line::new().weight(w).done(), format!("{w}"));
            // Quarters and eighths land on exact half tenths, which `std` rounds to even.
            proptest::prop_assert_eq!(Line::new().tenths(w).done(), format!("{w:.1}"));
            proptest::prop_assert_eq!(signed_line(w, &[]), format!("{w:+.1}"));
        }
    }

    /// The route patterns found through the keyword automaton's needles are those one `RegexSet`
    /// finds over the subject and body joined (as routing found them before), on every dev and
    /// training message and every rules example, with and without the subject, in the daemon's
    /// form (compiled at load) and `ingest`'s (compiled when needed).
    #[test]
    fn route_patterns_find_what_a_regex_set_finds_on_the_labelled_messages() {
        let mut messages: Vec<eval::Labelled> = Vec::new();
        let dirs = [repo("rules/labelled"), repo("tests/fixtures/eval")];
        for entry in dirs.iter().flat_map(|d| std::fs::read_dir(d).unwrap()) {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Not the held-out set: this test reads what it routes.
            if name.starts_with("routing-") && name.ends_with(".jsonl") && !name.contains("heldout") {
                let text = std::fs::read_to_string(&path).unwrap();
                messages
                    .extend(text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()));
            }
        }
        assert!(messages.len() > 1000, "{} messages", messages.len());
        let common = rules::load_common(&repo("rules/common.toml")).unwrap();
        let (mut compared, mut matched) = (0, 0);
        for desk in ["hero", "pusintek", "djpb", "jateng"] {
            let cat = Catalogue::load(&repo(&format!("seeds/{desk}.toml"))).unwrap();
            let path = repo(&format!("rules/{desk}.toml"));
            let many = rules::load_desk_for(&path, &common, &cat, rules::Purpose::Many).unwrap();
            let few = rules::load_desk_for(&path, &common, &cat, rules::Purpose::Few).unwrap();
            let set = regex::RegexSet::new(many.pattern_targets.iter().map(|(p, _)| p)).unwrap();
            let texts = messages
                .iter()
                .filter(|m| m.desk == desk)
                .map(|m| (m.subject.as_deref().unwrap_or(""), m.body.as_str()))
                .chain(many.examples.iter().map(|e| (e.subject.as_str(), e.body.as_str())));
            for (subject, body) in texts {
                let input = RouteInput { subject, body, sender_domain: None, inbox_address: "" };
                for rules in [&many, &few] {
                    let text = rules.read(&input);
                    let (_, _, held) = rules.find(&text);
                    for with_subject in [true, false] {
                        let joined =
                            if with_subject { [text.subject.as_str(), &text.body].concat() } else { text.body.clone() };
                        let want: Vec<usize> = set.matches(&joined).iter().collect();
                        assert_eq!(
                            rules.pattern_matches(&held, &text, with_subject),
                            want,
                            "{desk}: {subject:?} {body:?}"
                        );
                        compared += 1;
                        matched += want.len();
                    }
                }
            }
        }
        assert!(compared > 4000 && matched > 1000, "{compared} texts compared, {matched} patterns matched");
    }

    /// The shipped catalogue and common cues, with a small rules file of our own.
    fn hero() -> (Catalogue, DeskRules) {
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let common = rules::load_common(&repo("rules/common.toml")).unwrap();
        let file: rules::DeskFile = toml::from_str(
            r#"
desk = "hero"
[[route]]
to = "aplikasi/sigi"
keywords = { "sigi" = 5, "rekap gaji*" = 4 }
[[route]]
to = "aplikasi/intranet"
keywords = { "intranet" = 5 }
[[route]]
to = "layanan_data/jaringan"
keywords = { "internet" = 4, "jaringan" = 3 }
negative = { "wifi" = 4 }
[[route]]
to = "call_center/e_ska"
keywords = { "permohonan ska" = 4 }
inbox = { "ska@kemendag.go.id" = 4 }
"#,
        )
        .unwrap();
        let rules = rules::compile(Path::new("test.toml"), file, &common, &cat).unwrap();
        (cat, rules)
    }

    fn route(subject: &str, body: &str, domain: Option<&str>) -> RouteDecision {
        let (cat, r) = hero();
        r.explain(&cat, &RouteInput { subject, body, sender_domain: domain, inbox_address: "hero@kemendag.go.id" })
    }

    #[test]
    fn a_subject_the_body_disowns_routes_nothing() {
        let subject = "SIGI tidak bisa dibuka";
        assert_eq!(route(subject, "Mohon info jam layanan.", None).route(), "aplikasi/sigi");
        assert!(route(subject, "Maaf, subjek salah. Mohon info jam layanan.", None).is_triage());
        let d = route(subject, "Maaf, salah subjek, maksud saya intranet tidak bisa dibuka.", None);
        assert_eq!(d.route(), "aplikasi/intranet");
        assert!(d.reasons[0].contains("the subject is not read"), "{:?}", d.reasons);
        // At the very start or end of the body too; a subject merely said to be short is read.
        assert!(route(subject, "subjek salah", None).is_triage());
        assert_eq!(route(subject, "Subjeknya singkat, maaf.", None).route(), "aplikasi/sigi");
    }

    #[test]
    fn routing_reads_a_bounded_start_of_the_text() {
        // A body of a mail's own words past the bound, with no sign-off or quote for the trimmer
        // to cut at: the cue at its start routes, the same cue only past the bound does not.
        let filler = "kami sampaikan laporan kegiatan minggu ini dengan rincian berikut. ".repeat(400);
        assert!(filler.len() > ROUTED_BYTES);
        assert_eq!(route("Laporan", &format!("SIGI tidak bisa dibuka. {filler}"), None).route(), "aplikasi/sigi");
        assert!(route("Laporan", &format!("{filler} SIGI tidak bisa dibuka."), None).is_triage());
        // A cut inside a character is moved back to its start: no panic on any text.
        let wide = "é".repeat(ROUTED_BYTES);
        assert_eq!(crate::chat::cut(&wide, ROUTED_BYTES + 1).len(), ROUTED_BYTES);
        assert!(route(&wide, &wide, None).is_triage());
    }

    #[test]
    fn routes_by_keyword_and_records_why() {
        let d = route("SIGI tidak bisa dibuka", "Sejak pagi error 500.", Some("kemendag.go.id"));
        assert_eq!(d.route(), "aplikasi/sigi");
        assert_eq!(d.ticket_type, Some(TicketType::Incident), "SIGI allows only incidents");
        assert_eq!(d.impact, Some(Impact::Low));
        assert!(d.reasons.iter().any(|r| r.contains("keyword \"sigi\" in subject")), "{:?}", d.reasons);
        assert!(d.confidence > 0.5);
    }

    #[test]
    fn nothing_is_forced_below_the_threshold() {
        let d = route("Printer rusak", "Printer di ruangan saya tidak bisa mencetak.", Some("kemendag.go.id"));
        assert!(d.is_triage(), "{d:?}");
        assert_eq!(d.ticket_type, Some(TicketType::Incident));
    }

    #[test]
    fn prefix_keywords_negatives_and_inbox_signals() {
        assert_eq!(route("", "rekap gajinya salah semua", Some("kemendag.go.id")).route(), "aplikasi/sigi");
        // "internet" (+4) minus "wifi" (-4) stays below the threshold.
        assert!(route("", "internet wifi lantai 2", Some("kemendag.go.id")).is_triage());
        let (cat, r) = hero();
        let d = r.route(
            &cat,
            &RouteInput {
                subject: "Status",
                body: "mohon dicek",
                sender_domain: Some("pt.co.id"),
                inbox_address: "SKA@kemendag.go.id",
            },
        );
        assert_eq!(d.route(), "call_center/e_ska");
    }

    #[test]
    fn type_cues_pick_an_allowed_type() {
        let q = route("Cara reset password intranet?", "Bagaimana caranya?", Some("kemendag.go.id"));
        assert_eq!((q.route().as_str(), q.ticket_type), ("aplikasi/intranet", Some(TicketType::Question)));
        let r = route("Reset password intranet", "Mohon direset password intranet saya.", Some("kemendag.go.id"));
        assert_eq!(r.ticket_type, Some(TicketType::Request));
        // Intranet allows only question and request: an error report still gets an allowed type.
        let e = route("Intranet error", "intranet tidak bisa login", Some("kemendag.go.id"));
        assert!(matches!(e.ticket_type, Some(TicketType::Question | TicketType::Request)), "{e:?}");
    }

    #[test]
    fn a_polite_question_asking_for_an_action_is_a_request() {
        let r = route("Intranet", "Selamat pagi. Bisa dibantu untuk akun intranet saya?", Some("kemendag.go.id"));
        assert_eq!(r.ticket_type, Some(TicketType::Request), "{:?}", r.reasons);
        assert!(r.reasons.iter().any(|x| x.contains("request cue \"?\" after \"bisa dibantu\"")), "{:?}", r.reasons);
        // The form must stand in the sentence that asks: here the question is another sentence.
        let q = route("Intranet", "Mohon dibantu. Akun intranet saya yang mana?", Some("kemendag.go.id"));
        assert_eq!(q.ticket_type, Some(TicketType::Question), "{:?}", q.reasons);
        // A dot inside a time or an address ends no sentence: the form still stands in it.
        for body in [
            "Selamat pagi. Bisa dibantu untuk akun intranet saya sebelum pukul 10.00?",
            "Bisa dibantu untuk akun intranet.kemendag.go.id saya?",
        ] {
            let r = route("Intranet", body, Some("kemendag.go.id"));
            assert!(
                r.reasons.iter().any(|x| x.contains("request cue \"?\" after \"bisa dibantu\"")),
                "{body}: {:?}",
                r.reasons
            );
        }
    }

    #[test]
    fn a_forward_with_only_a_cover_note_routes_with_the_mail_it_forwards() {
        let forwarded = "---------- Forwarded message ---------\nFrom: Kepala Bagian Umum <umum@kemendag.go.id>\n\
                         Date: Rab, 15 Mei 2024 06.40\nSubject: Internet\n\n\
                         Internet mati total, semua pegawai tidak bisa bekerja";
        let note = route("Fwd: Internet", &format!("Mohon bantuan, detail di bawah.\n\n{forwarded}"), None);
        assert_eq!((note.ticket_type, note.impact), (Some(TicketType::Incident), Some(Impact::High)), "{note:?}");
        // Own words beyond a cover note say what is asked; the forwarded mail stays cut.
        let own = format!("Mohon dibantu, internet di laptop saya tidak bisa connect.\n\n{forwarded}");
        assert_eq!(route("Fwd: Internet", &own, None).impact, Some(Impact::Low));
        // Not a forward: a reply's quoted history never routes.
        let reply = "Masih sama.\n\nPada Rab, 15 Mei 2024 06.40, Umum <umum@kemendag.go.id> menulis:\n\
                     > Internet mati total, semua pegawai tidak bisa bekerja";
        assert_ne!(route("Re: Internet", reply, None).impact, Some(Impact::High));
    }

    #[test]
    fn impact_cues() {
        let high =
            route("Internet mati", "Internet mati total, semua pegawai tidak bisa bekerja", Some("kemendag.go.id"));
        assert_eq!((high.ticket_type, high.impact), (Some(TicketType::Incident), Some(Impact::High)));
        let medium = route("Internet lambat", "internet putus putus di satu lantai", Some("kemendag.go.id"));
        assert_eq!(medium.impact, Some(Impact::Medium), "{:?}", medium.reasons);
        let low = route("Internet", "internet di laptop saya tidak bisa connect", Some("kemendag.go.id"));
        assert_eq!(low.impact, Some(Impact::Low));
    }

    #[test]
    fn chat_abbreviations_count_as_words() {
        let d = route("", "min sy gk bs buka sigi dr td pagi", None);
        assert_eq!(d.route(), "aplikasi/sigi");
        assert!(d.reasons.iter().any(|r| r.contains("\"tidak bisa\"")), "{:?}", d.reasons);
    }

    #[test]
    fn internal_only_services_are_refused_for_external_senders() {
        let external = route("SIGI error", "SIGI tidak bisa diakses", Some("gmail.com"));
        assert!(external.is_triage());
        assert_eq!(external.internal_only_refused.as_deref(), Some("Sistem Pelaporan Gaji (SIGI)"));
        let internal = route("SIGI error", "SIGI tidak bisa diakses", Some("itjen.kemendag.go.id"));
        assert_eq!(internal.route(), "aplikasi/sigi");
        // Chat senders have no email domain: the rule cannot apply.
        assert_eq!(route("SIGI error", "SIGI tidak bisa diakses", None).route(), "aplikasi/sigi");
    }

    #[test]
    fn quoted_text_and_signatures_are_not_scored() {
        let d = route(
            "Re: pertanyaan",
            "Terima kasih.\n\nPada Sen, 5 Jan 2026 Admin menulis:\n> SIGI sudah normal\n",
            None,
        );
        assert!(d.is_triage(), "{d:?}");
    }

    #[test]
    fn quoted_history_after_an_outlook_or_gmail_marker_does_not_route() {
        // The old cutter of routing missed both (Indonesian header fields, Gmail's forward marker).
        for marker in ["-----Pesan Asli-----", "---------- Forwarded message ---------"] {
            let body = format!(
                "Terima kasih, sudah beres.\n\n{marker}\nDari: Admin <a@kemendag.go.id>\nTanggal: Sen, 5 Jan 2026\nPerihal: SIGI\nKepada: saya\n\nSIGI error, rekap gaji tidak bisa dibuka.\n"
            );
            let d = route("Re: laporan", &body, Some("kemendag.go.id"));
            assert!(d.is_triage(), "{marker}: {d:?}");
        }
    }

    #[test]
    fn bad_rules_are_reported_with_their_key() {
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let common = rules::CommonFile::default();
        let file: rules::DeskFile = toml::from_str(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/sigii\"\n[[route]]\nto = \"aplikasi/intranet\"\npatterns = { '(' = 1 }\ndefault_type = \"incident\"\n",
        )
        .unwrap();
        let errs: Vec<String> = rules::compile(Path::new("rules/hero.toml"), file, &common, &cat)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(errs.iter().any(|e| e.contains("route[0] (`aplikasi/sigii`).to: unknown subcategory")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("route[1] (`aplikasi/intranet`).patterns")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("default_type: `incident` is not allowed")), "{errs:?}");
        // A class may only bound another known class.
        let file: rules::DeskFile = toml::from_str(
            "desk = \"hero\"\n[impact_classes.person]\nlevel = \"low\"\ncaps = [\"units\", \"person\"]\n[impact_classes.unit]\nlevel = \"medium\"\n",
        )
        .unwrap();
        let errs: Vec<String> = rules::compile(Path::new("rules/hero.toml"), file, &common, &cat)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(errs.iter().any(|e| e.contains("impact_classes.person.caps: `units` is no impact class")), "{errs:?}");
        assert!(
            errs.iter().any(|e| e.contains("impact_classes.person.caps: `person` is the class itself")),
            "{errs:?}"
        );
    }
    fn compile_hero(text: &str) -> DeskRules {
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let common = rules::load_common(&repo("rules/common.toml")).unwrap();
        let file: rules::DeskFile = toml::from_str(text).unwrap();
        rules::compile(Path::new("test.toml"), file, &common, &cat).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn route_with(r: &DeskRules, subject: &str, body: &str) -> RouteDecision {
        route_from(r, subject, body, None)
    }

    /// HERO rules that know SIGI, the intranet and both INATRADEs (the call centre's, open to
    /// everyone; the internal one).
    const HERO_FOUR_ROUTES: &str = r#"
desk = "hero"
[[route]]
to = "aplikasi/sigi"
keywords = { "sigi" = 4, "laporan" = 2 }
[[route]]
to = "aplikasi/intranet"
keywords = { "intranet" = 5 }
[[route]]
to = "call_center/inatrade"
keywords = { "inatrade" = 4 }
[[route]]
to = "aplikasi/inatrade"
keywords = { "izin ekspor" = 1 }
"#;

    /// [`HERO_FOUR_ROUTES`] with a second opinion learned from [`labelled`].
    fn hero_with_opinion() -> DeskRules {
        opinionated(HERO_FOUR_ROUTES)
    }

    /// HERO rules `text` with a second opinion learned from [`labelled`].
    fn opinionated(text: &str) -> DeskRules {
        with_opinion(
            compile_hero(text),
            examples::Model::train(&labelled()).map(std::sync::Arc::new),
            Default::default(),
        )
    }

    /// The internal INATRADE, which [`HERO_FOUR_ROUTES`] with "izin impor" = 2 scores and the
    /// labelled messages clearly say, taken by the opinion (`how`) from inside and refused from
    /// outside.
    fn taken_inside_refused_outside(body: &str, how: Opinion) {
        let r = opinionated(&HERO_FOUR_ROUTES.replace("\"izin ekspor\" = 1", "\"izin impor\" = 2"));
        let inside = route_from(&r, "", body, Some("kemendag.go.id"));
        assert_eq!((inside.route(), inside.opinion), ("aplikasi/inatrade".into(), Some(how)), "{inside:?}");
        let outside = route_from(&r, "", body, Some("gmail.com"));
        assert!(outside.is_triage() && outside.internal_only_refused.is_some(), "{outside:?}");
    }

    fn five(text: &str) -> Vec<String> {
        (1..=5).map(|i| format!("{text} {}", ["", "lagi", "hari ini", "mohon bantuan", "segera"][i - 1])).collect()
    }

    /// Labelled messages: pengumuman pages are the intranet's, a licence dashboard for staff is
    /// the internal INATRADE's, a printer is nobody's (triage).
    fn labelled() -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (text, route) in [
            ("halaman pengumuman pegawai tidak tampil", "aplikasi/intranet"),
            ("inatrade dashboard verifikator izin impor kosong", "aplikasi/inatrade"),
            ("printer ruang rapat macet tidak bisa cetak", "triage/unknown"),
            ("sigi pelaporan gaji bulanan gagal disimpan", "aplikasi/sigi"),
        ] {
            out.extend(five(text).into_iter().map(|t| (t, route.to_string())));
        }
        out
    }

    fn route_from(r: &DeskRules, subject: &str, body: &str, domain: Option<&str>) -> RouteDecision {
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        r.explain(&cat, &RouteInput { subject, body, sender_domain: domain, inbox_address: "hero@kemendag.go.id" })
    }

    #[test]
    fn a_second_opinion_cannot_hold_back_a_route_won_by_a_cue_it_never_saw() {
        // An operator's new keyword for SIGI ("gajiku", an app's new name): the labelled messages
        // never had it, so their clear lean elsewhere does not hold the rules' route back.
        let rules = HERO_FOUR_ROUTES.replace("\"sigi\" = 4,", "\"sigi\" = 4, \"gajiku\" = 4,");
        let r = opinionated(&rules);
        let model = r.opinion.as_ref().unwrap();
        assert!(!model.knows("gajiku") && model.knows("halaman pengumuman") && model.knows("sigi"));
        let body = "gajiku: halaman pengumuman pegawai tidak tampil";
        let d = route_from(&r, "", body, None);
        assert_eq!((d.route(), d.confidence), {
            let alone = route_from(&compile_hero(&rules), "", body, None);
            (alone.route(), alone.confidence)
        });
        assert_eq!(d.route(), "aplikasi/sigi");
        let line = d.reasons.iter().find(|l| l.starts_with("second opinion")).expect("its line");
        assert!(line.contains("never had \"gajiku\", the rules' cue for aplikasi/sigi: kept"), "{line}");
        assert_eq!(d.opinion, Some(Opinion::UnknownCue));
        // Where the rules' cue is one they had, the same lean holds the route for a person.
        let d = route_from(&r, "", "sigi: halaman pengumuman pegawai tidak tampil", None);
        assert!(d.is_triage(), "{d:?}");
        assert_eq!(d.opinion, Some(Opinion::Held));
    }

    #[test]
    fn a_second_opinion_holds_a_route_its_labelled_messages_clearly_contradict_for_a_person() {
        let r = hero_with_opinion();
        assert!(r.opinion.is_some());
        let without = compile_hero(HERO_FOUR_ROUTES);
        // "sigi" leads the rules to SIGI; the labelled messages say the intranet's notices. The
        // rules stay the only thing that routes: the message goes to triage, with both named.
        let body = "sigi: halaman pengumuman pegawai tidak tampil";
        assert_eq!(route_from(&without, "", body, None).route(), "aplikasi/sigi");
        let d = route_from(&r, "", body, None);
        assert!(d.is_triage() && d.confidence == 0.0, "{d:?}");
        assert_eq!(d.opinion, Some(Opinion::Held));
        assert!(
            d.reasons
                .iter()
                .any(|l| l.starts_with("second opinion: labelled messages like this one are aplikasi/intranet")
                    && l.ends_with("the rules' aplikasi/sigi is held for a person to decide")),
            "{:?}",
            d.reasons
        );
        // What both agree on is the rules' decision as it was.
        let agreed = route_from(&r, "SIGI", "pelaporan gaji bulanan gagal disimpan", None);
        assert_eq!(agreed.opinion, Some(Opinion::Kept));
        assert_eq!(
            RouteDecision { opinion: None, ..agreed },
            route_from(&without, "SIGI", "pelaporan gaji bulanan gagal disimpan", None)
        );
        // A message like the ones labelled for triage goes there.
        let d = route_from(&r, "", "sigi: printer ruang rapat macet tidak bisa cetak", None);
        assert!(d.is_triage() && d.confidence == 0.0, "{d:?}");
    }

    #[test]
    fn a_second_opinion_settles_what_the_rules_left_open_among_their_own_candidates() {
        let r = hero_with_opinion();
        let without = compile_hero(HERO_FOUR_ROUTES);
        // "laporan" gives SIGI 2.0, below the threshold (3.0) but at least half of it; the
        // labelled messages clearly say SIGI too: the rules' own candidate is taken.
        let body = "laporan gaji bulanan gagal disimpan";
        assert!(route_from(&without, "", body, None).is_triage());
        let d = route_from(&r, "", body, None);
        assert_eq!((d.route(), d.opinion), ("aplikasi/sigi".into(), Some(Opinion::Settled)), "{d:?}");
        assert!(d.reasons.iter().any(|l| l.ends_with("it settles what the rules left open")), "{:?}", d.reasons);
        assert_eq!(d.ticket_type, Some(TicketType::Incident));
        // Where they say another route, the opinion brings no route of its own: triage stays.
        let d = route_from(&r, "", "laporan: halaman pengumuman pegawai tidak tampil", None);
        assert!(d.is_triage(), "{d:?}");
        // Two routes tied (SIGI and the call centre's INATRADE, 4.0 each): the labelled messages
        // choose between the two.
        let body = "sigi inatrade pelaporan gaji bulanan gagal disimpan";
        assert!(route_from(&without, "", body, None).is_triage());
        let d = route_from(&r, "", body, None);
        assert_eq!((d.route(), d.opinion), ("aplikasi/sigi".into(), Some(Opinion::Settled)), "{d:?}");
        // A route it settles is still refused to a sender it is not open to: the internal
        // INATRADE, below the threshold with "izin impor" and clearly what the labelled messages
        // say, is taken from inside and refused from outside.
        taken_inside_refused_outside("dashboard verifikator izin impor kosong", Opinion::Settled);
    }

    #[test]
    fn a_second_opinion_may_take_the_rules_runner_up_over_their_best() {
        let rules = HERO_FOUR_ROUTES.replace("\"intranet\" = 5", "\"intranet\" = 3");
        let r = opinionated(&rules);
        let without = compile_hero(&rules);
        // SIGI wins the rules (4.0), the intranet is their runner-up (3.0, above half the
        // threshold); the labelled messages clearly say the intranet's notices: it is taken.
        let body = "sigi intranet: halaman pengumuman pegawai tidak tampil";
        assert_eq!(route_from(&without, "", body, None).route(), "aplikasi/sigi");
        let d = route_from(&r, "", body, None);
        assert_eq!((d.route(), d.opinion), ("aplikasi/intranet".into(), Some(Opinion::RunnerUp)), "{d:?}");
        assert!(d.reasons.iter().any(|l| l.ends_with("the rules' runner-up taken over their best")), "{:?}", d.reasons);
        // Never a route the rules did not score: without an intranet cue, the message is held.
        let d = route_from(&r, "", "sigi: halaman pengumuman pegawai tidak tampil", None);
        assert!(d.is_triage() && d.opinion == Some(Opinion::Held), "{d:?}");
        // Never over a winner whose cue the labelled messages never had.
        let r2 = opinionated(&HERO_FOUR_ROUTES.replace("\"sigi\" = 4,", "\"sigi\" = 4, \"gajiku\" = 4,"));
        let d = route_from(&r2, "", "gajiku intranet: halaman pengumuman pegawai tidak tampil", None);
        assert_eq!((d.route(), d.opinion), ("aplikasi/sigi".into(), Some(Opinion::UnknownCue)), "{d:?}");
        // And a runner-up it takes is still refused to a sender it is not open to.
        taken_inside_refused_outside("inatrade: dashboard verifikator izin impor kosong", Opinion::RunnerUp);
    }

    #[test]
    fn the_second_opinion_never_routes_so_no_message_can_be_worded_into_an_internal_service() {
        let r = hero_with_opinion();
        // The rules say the call centre's INATRADE (open to everyone); the labelled messages say
        // the internal INATRADE. From inside or outside, the opinion only holds the message for a
        // person: it never opens the internal service.
        let body = "inatrade: dashboard verifikator izin impor kosong";
        let without = compile_hero(HERO_FOUR_ROUTES);
        assert_eq!(route_from(&without, "", body, Some("gmail.com")).route(), "call_center/inatrade");
        for domain in ["kemendag.go.id", "gmail.com"] {
            let d = route_from(&r, "", body, Some(domain));
            assert!(d.is_triage(), "{domain}: {d:?}");
            assert_eq!(d.opinion, Some(Opinion::Held), "{domain}");
            assert!(d.reasons.iter().any(|l| l.contains("are aplikasi/inatrade")), "{domain}: {:?}", d.reasons);
        }
    }

    #[test]
    fn an_unclear_second_opinion_keeps_the_rules_route_and_says_why() {
        let r = hero_with_opinion();
        // Words of two labelled services at once, and the rules' route (the call centre) is one
        // the labelled messages never name.
        let text = "inatrade: halaman pengumuman dan dashboard verifikator";
        let d = route_from(&r, "", text, Some("kemendag.go.id"));
        let alone = route_from(&compile_hero(HERO_FOUR_ROUTES), "", text, Some("kemendag.go.id"));
        assert!(!d.is_triage(), "{d:?}");
        assert_eq!((d.route(), d.confidence), (alone.route(), alone.confidence));
        let line = d.reasons.iter().find(|l| l.starts_with("second opinion")).expect("its line");
        assert!(line.contains("not clear, the rules' route kept"), "{line}");
        assert_eq!(d.opinion, Some(Opinion::Unclear));
    }

    /// A rules directory with the repository's common and HERO files and `labelled/a.jsonl`.
    fn rules_dir_with_labelled(lines: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in ["common.toml", "hero.toml", "hero.examples.toml"] {
            std::fs::copy(repo(&format!("rules/{f}")), dir.path().join(f)).unwrap();
        }
        std::fs::create_dir(dir.path().join(LABELLED_DIR)).unwrap();
        std::fs::write(dir.path().join(LABELLED_DIR).join("a.jsonl"), lines).unwrap();
        dir
    }

    fn labelled_line(desk: &str, body: &str, route: &str) -> String {
        let (category, subcategory) = route.split_once('/').unwrap();
        serde_json::json!({"id": "x", "desk": desk, "body": body,
            "expected": {"category": category, "subcategory": subcategory, "type": null, "impact": null}})
        .to_string()
            + "\n"
    }

    #[test]
    fn the_router_learns_each_desks_second_opinion_from_the_labelled_directory() {
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        // Incidents with their impact teach the impact opinion too, whatever their desk.
        let incident = |desk: &str, (text, level): &(String, String)| {
            serde_json::json!({"id": "i", "desk": desk, "body": text,
                "expected": {"category": "aplikasi", "subcategory": "sigi", "type": "incident", "impact": level}})
            .to_string()
                + "\n"
        };
        let incidents = labelled_incidents();
        let lines: String = labelled()
            .iter()
            .map(|(t, r)| labelled_line("hero", t, r))
            .chain(incidents.iter().enumerate().map(|(i, x)| incident(if i % 2 == 0 { "hero" } else { "jateng" }, x)))
            .chain([String::new(), "{\"id\": \"u\", \"desk\": \"hero\", \"body\": \"no label\"}\n".into()])
            .collect();
        let dir = rules_dir_with_labelled(&lines);
        let router = Router::load(dir.path(), &[&cat], None).unwrap();
        let model = router.desk("hero").unwrap().opinion.as_ref().expect("learned at load");
        let impact = router.desk("hero").unwrap().impact_opinion.model().expect("learned at load");
        // Every desk's labelled incidents, and the rules directory's examples of incidents.
        let mut taught = incidents.clone();
        taught.extend(rules::impact_examples(&rules::example_files(dir.path())).unwrap());
        assert!(taught.len() > incidents.len(), "the rules' examples give impacts too");
        assert_eq!(impact.to_bytes(), examples::Model::train(&taught).unwrap().to_bytes());
        // The labelled lines' routes, and the routes of the rules' own examples.
        for route in ["aplikasi/inatrade", "aplikasi/intranet", "aplikasi/sigi", "triage/unknown", "aplikasi/siasn"] {
            assert!(model.routes().iter().any(|r| r == route), "{route}: {:?}", model.routes());
        }
        // `loket ingest`'s router learns the same when the desk's rules compile.
        let lazy = Router::lazy(dir.path(), &[&cat], None);
        assert!(lazy.desk("hero").is_none());
        lazy.prepare(&cat).unwrap();
        assert_eq!(lazy.desk("hero").unwrap().opinion.as_ref().unwrap().to_bytes(), model.to_bytes());
        // The impact opinion only when an incident needs it: `ingest`'s one message is mostly none.
        let deferred = &lazy.desk("hero").unwrap().impact_opinion;
        let asked = RouteInput { subject: "", body: "Mohon info jam layanan.", sender_domain: None, inbox_address: "" };
        assert_ne!(lazy.route(&cat, &asked).ticket_type, Some(TicketType::Incident));
        assert!(!deferred.loaded());
        let broken =
            RouteInput { subject: "SIGI error", body: "SIGI error sejak pagi", sender_domain: None, inbox_address: "" };
        assert_eq!(lazy.route(&cat, &broken).ticket_type, Some(TicketType::Incident));
        assert!(deferred.loaded());
        assert_eq!(deferred.model().unwrap().to_bytes(), impact.to_bytes());
        // Kept in the cache by `serve`'s router (the files settled), read back by `ingest`'s: it
        // does not read the labelled file, which now holds a line that could not be learned
        // (of the same size, with the same time: what the fingerprint cannot tell apart).
        let cache = dir.path().join("cache");
        let path = dir.path().join(LABELLED_DIR).join("a.jsonl");
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for f in [&path, &dir.path().join("hero.toml"), &dir.path().join("hero.examples.toml")] {
            std::fs::File::options().write(true).open(f).unwrap().set_modified(past).unwrap();
        }
        Router::load(dir.path(), &[&cat], Some(&cache)).unwrap();
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2, "the desk's opinion and the impact opinion");
        std::fs::write(&path, "x".repeat(lines.len())).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(past).unwrap();
        let kept = Router::lazy(dir.path(), &[&cat], Some(&cache));
        kept.prepare(&cat).unwrap();
        assert_eq!(kept.desk("hero").unwrap().opinion.as_ref().unwrap().to_bytes(), model.to_bytes());
        assert_eq!(kept.desk("hero").unwrap().impact_opinion.model().unwrap().to_bytes(), impact.to_bytes());
        // Read in place by `ingest`'s router for a few messages; for many (a batch), built as the
        // daemon builds it, with the keywords searched by one automaton: the same decisions.
        let many = Router::lazy(dir.path(), &[&cat], Some(&cache));
        many.expect_many();
        many.prepare(&cat).unwrap();
        let (few_rules, many_rules) = (kept.desk("hero").unwrap(), many.desk("hero").unwrap());
        assert!(few_rules.opinion.as_ref().unwrap().read_in_place());
        assert!(!many_rules.opinion.as_ref().unwrap().read_in_place());
        assert_eq!(many_rules.opinion.as_ref().unwrap().to_bytes(), model.to_bytes());
        assert!(few_rules.keywords.order().is_some() && many_rules.keywords.order().is_none());
        for input in [&asked, &broken] {
            assert_eq!(many.explain(&cat, input), kept.explain(&cat, input), "{}", input.body);
        }
        assert!(!many.desk("hero").unwrap().impact_opinion.model().unwrap().read_in_place());
        // A time that moved is a change: read, and the bad line reported.
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(past - std::time::Duration::from_secs(1))
            .unwrap();
        let changed = Router::lazy(dir.path(), &[&cat], Some(&cache));
        assert!(changed.prepare(&cat).unwrap_err()[0].contains("not a labelled message"));
        // `rules eval --learn` puts its own model in place of the one learned; `--rules-only` none.
        let mut router = router;
        let other = examples::Model::train(&labelled()).unwrap();
        router.with_opinions([("hero".to_string(), other.clone())].into());
        assert_eq!(router.desk("hero").unwrap().opinion.as_ref().unwrap().to_bytes(), other.to_bytes());
        router.without_opinions();
        assert!(router.desk("hero").unwrap().opinion.is_none());
        assert!(router.desk("hero").unwrap().impact_opinion.model().is_none());
        // Without the directory: no opinion, the rules alone.
        std::fs::remove_dir_all(dir.path().join(LABELLED_DIR)).unwrap();
        assert!(Router::load(dir.path(), &[&cat], None).unwrap().desk("hero").unwrap().opinion.is_none());
    }

    /// `loket ingest`'s router keeps a desk's compiled rules in the cache and reads them back
    /// while their files, this build and the catalogue are unchanged: the rules file and
    /// `common.toml` are then not read at all (here they hold, at the same size and time, what
    /// would not compile); a change to any of them, a damaged kept file or files that just
    /// changed mean compiling.
    #[test]
    fn a_lazy_routers_rules_are_kept_compiled_and_read_back_while_their_files_are_unchanged() {
        use std::os::unix::fs::PermissionsExt;
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let dir = rules_dir_with_labelled("");
        let cache = dir.path().join("cache");
        let files = [dir.path().join("hero.toml"), dir.path().join("common.toml")];
        // The opinions' files too: settled, the opinions are kept and read back as well.
        let others = [dir.path().join("hero.examples.toml"), dir.path().join(LABELLED_DIR).join("a.jsonl")];
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let settle = |t: std::time::SystemTime| {
            for f in files.iter().chain(&others) {
                std::fs::File::options().write(true).open(f).unwrap().set_modified(t).unwrap();
            }
        };
        let kept = || -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&cache)
                .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().to_string()).collect())
                .unwrap_or_default();
            names.retain(|n| n.starts_with("rules-"));
            names
        };
        let input = RouteInput {
            subject: "SIGI error",
            body: "Aplikasi SIGI error sejak pagi, seluruh bidang tidak bisa input data. Mohon bantuannya.",
            sender_domain: Some("kemendag.go.id"),
            inbox_address: "hero@kemendag.go.id",
        };
        let decided = |router: &Router, cat: &Catalogue| router.explain(cat, &input);
        // Files that just changed: compiled, not kept.
        let fresh = Router::lazy(dir.path(), &[&cat], Some(&cache));
        let expected = decided(&fresh, &cat);
        assert!(kept().is_empty(), "{:?}", kept());
        assert_eq!(expected.subcategory, "sigi", "{expected:?}");
        // Settled: kept, private.
        settle(past);
        let first = Router::lazy(dir.path(), &[&cat], Some(&cache));
        assert_eq!(decided(&first, &cat), expected);
        let names = kept();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("rules-hero-") && names[0].ends_with(".bin"), "{names:?}");
        assert_eq!(std::fs::metadata(cache.join(&names[0])).unwrap().permissions().mode() & 0o777, 0o600);
        // Read back: the files are not read (they would not compile now).
        let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        for (f, text) in files.iter().zip(&originals) {
            std::fs::write(f, vec![b'['; text.len()]).unwrap();
        }
        settle(past);
        let read_back = Router::lazy(dir.path(), &[&cat], Some(&cache));
        read_back.prepare(&cat).unwrap();
        assert_eq!(decided(&read_back, &cat), expected);
        // A time that moved is a change: compiled, and the files' problem reported.
        settle(past - std::time::Duration::from_secs(1));
        let problems = Router::lazy(dir.path(), &[&cat], Some(&cache)).prepare(&cat).unwrap_err();
        assert!(problems[0].contains("common.toml"), "{problems:?}");
        // So is another catalogue: compiled again, kept in place of the old.
        for (f, text) in files.iter().zip(&originals) {
            std::fs::write(f, text).unwrap();
        }
        settle(past);
        Router::lazy(dir.path(), &[&cat], Some(&cache)).prepare(&cat).unwrap();
        let before = kept();
        let mut other = cat.clone();
        let sigi = other.categories.iter_mut().flat_map(|c| &mut c.subcategories).find(|s| s.id == "sigi").unwrap();
        sigi.internal_only = !sigi.internal_only;
        let changed = Router::lazy(dir.path(), &[&other], Some(&cache));
        changed.prepare(&other).unwrap();
        assert!(!changed.desk("hero").unwrap().routes.iter().find(|r| r.subcategory == "sigi").unwrap().internal_only);
        let after = kept();
        assert_eq!(after.len(), 1, "{after:?}");
        assert_ne!(after, before);
        // A damaged kept file: compiled again (the same decision) and kept whole again.
        let path = cache.join(&after[0]);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        assert!(rules::DeskRules::from_kept(&bytes).is_err());
        let mended = Router::lazy(dir.path(), &[&other], Some(&cache));
        assert_eq!(decided(&mended, &other), decided(&changed, &other));
        assert!(rules::DeskRules::from_kept(&std::fs::read(&path).unwrap()).is_ok());
        // Without a cache: compiled, as before.
        assert_eq!(decided(&Router::lazy(dir.path(), &[&cat], None), &cat), expected);
    }

    #[test]
    fn a_labelled_line_that_cannot_be_learned_is_an_error_naming_its_file_and_line() {
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let good = labelled_line("hero", "wifi mati", "triage/unknown");
        for (bad, says) in [
            ("{not json\n".to_string(), "line 2: not a labelled message"),
            (
                labelled_line("hero", "printer", "aplikasi/printer_pribadi"),
                "line 2: `aplikasi/printer_pribadi` is not a route of desk `hero`",
            ),
        ] {
            let dir = rules_dir_with_labelled(&(good.clone() + &bad));
            let Err(e) = Router::load(dir.path(), &[&cat], None) else { panic!("{bad} was learned from") };
            let e = e[0].to_string();
            assert!(e.contains("a.jsonl") && e.contains(says), "{e}");
            // `loket ingest`'s router reads the lines when the desk's rules compile.
            let problems = Router::lazy(dir.path(), &[&cat], None).prepare(&cat).unwrap_err();
            assert!(problems[0].contains("a.jsonl") && problems[0].contains(says), "{problems:?}");
        }
        // A line of a desk that is not configured is not the router's business, as that desk's
        // rules file is not: a configuration of fewer desks uses the same rules directory.
        let other = labelled_line("pajak", "spt tidak bisa dikirim", "aplikasi/efiling");
        let dir = rules_dir_with_labelled(&(good.clone() + &other));
        let eager = Router::load(dir.path(), &[&cat], None).unwrap();
        let lazy = Router::lazy(dir.path(), &[&cat], None);
        lazy.prepare(&cat).unwrap();
        let bytes = |r: &Router| r.desk("hero").unwrap().opinion.as_ref().map(|m| m.to_bytes());
        assert_eq!(bytes(&eager), bytes(&lazy));
    }

    #[test]
    fn shared_sets_are_added_and_subtracted_with_their_factor() {
        let r = compile_hero(
            r#"
desk = "hero"
[sets.failing.keywords]
"tidak bisa" = 2
"error" = 2
[sets.failing.patterns]
'\bmati\b' = 1
[sets.sigi_names.keywords]
"sigi" = 4
"pelaporan gaji" = 4
[[route]]
to = "aplikasi/sigi"
use = { sigi_names = 1, failing = 0.5 }
[[route]]
to = "aplikasi/intranet"
keywords = { "intranet" = 5, "error" = 0.5 }
use = { failing = 1 }
against = { sigi_names = 2 }
"#,
        );
        let d = route_with(&r, "", "SIGI error, tidak bisa dibuka");
        assert_eq!(d.route(), "aplikasi/sigi");
        // 4 (sigi) + 0.5 * (2 + 2) from the set.
        assert!(d.reasons[0].contains("scored 6.0"), "{:?}", d.reasons);
        // The route's own weight of a phrase wins over the set's: intranet gets 5 + 0.5 + 2, and
        // `against` takes 2 * 4 for "sigi".
        let d = route_with(&r, "", "intranet error tidak bisa");
        assert!(d.reasons[0].contains("aplikasi/intranet scored 7.5"), "{:?}", d.reasons);
        let d = route_with(&r, "", "intranet sigi mati");
        assert!(d.reasons[0].contains("aplikasi/sigi scored 4.5"), "{:?}", d.reasons);
        assert!(d.reasons[0].contains("runner-up 0.0"), "{:?}", d.reasons);
    }

    #[test]
    fn gangguan_routes_inherit_their_service_vocabulary() {
        let text = r#"
desk = "hero"
inherit_min_weight = 2
[[route]]
to = "layanan_data/permintaan_data_ska"
keywords = { "data ska" = 6, "ska" = 0.5 }
[[route]]
to = "layanan_data/jaringan"
keywords = { "internet" = 4 }
inherit = 0.5
"#;
        let r = compile_hero(text);
        let d = route_with(&r, "", "internet data ska");
        // jaringan: 4 + 0.5 * 6 ("ska" weighs 0.5, below inherit_min_weight: not inherited).
        assert!(d.reasons[0].contains("layanan_data/jaringan scored 7.0 (threshold 3.0, runner-up 6.5)"), "{d:?}");
    }

    #[test]
    fn a_cue_does_not_count_next_to_its_unless_words() {
        let r = compile_hero(
            r#"
desk = "hero"
[[route]]
to = "aplikasi/intranet"
keywords = { "lisensi" = 4 }
unless = [{ cue = "lisensi", near = ["sudah punya", "sudah ada"], within = 2 }]
"#,
        );
        assert_eq!(route_with(&r, "", "mohon lisensi office").route(), "aplikasi/intranet");
        let d = route_with(&r, "", "kami sudah punya lisensi office, mohon instalasi");
        assert!(d.is_triage(), "{d:?}");
        // Too far away to be about the same thing: it counts again.
        let far = route_with(&r, "", "kami sudah punya laptop baru di kantor cabang jadi mohon lisensi office");
        assert_eq!(far.route(), "aplikasi/intranet");
        // An unless rule must name a keyword of its route.
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let common = rules::load_common(&repo("rules/common.toml")).unwrap();
        let file: rules::DeskFile = toml::from_str(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"x\" = 4 }\nunless = [{ cue = \"y\", near = [\"z\"] }]\n",
        )
        .unwrap();
        let errs = rules::compile(Path::new("t.toml"), file, &common, &cat).unwrap_err();
        assert!(errs[0].to_string().contains("unless[0].cue: `y` is not a keyword"), "{errs:?}");
    }

    #[test]
    fn ties_follow_the_documented_order_never_the_file_order() {
        let make = |first: &str, second: &str| {
            compile_hero(&format!("desk = \"hero\"\n[[route]]\n{first}\n[[route]]\n{second}\n"))
        };
        let a = "to = \"aplikasi/intranet\"\nkeywords = { \"portal pegawai\" = 4 }";
        let b = "to = \"aplikasi/e_sppd\"\nkeywords = { \"portal\" = 2, \"pegawai\" = 2 }";
        // Same score 4: the longer keyword (more specific) wins, whatever the file order.
        for r in [make(a, b), make(b, a)] {
            assert_eq!(route_with(&r, "", "portal pegawai").route(), "aplikasi/intranet");
        }
        // Equal in every respect: the higher priority wins, in either order...
        let c = "to = \"aplikasi/intranet\"\nkeywords = { \"portal\" = 4 }\npriority = 1";
        let d = "to = \"aplikasi/e_sppd\"\nkeywords = { \"portal\" = 4 }";
        for r in [make(c, d), make(d, c)] {
            assert_eq!(route_with(&r, "", "portal").route(), "aplikasi/intranet");
        }
        // ...and without one the message waits in triage, saying why.
        let c = "to = \"aplikasi/intranet\"\nkeywords = { \"portal\" = 4 }";
        let r = make(c, d);
        let t = route_with(&r, "", "portal");
        assert!(t.is_triage() && t.reasons[0].contains("tie at 4.0"), "{t:?}");
        let input =
            RouteInput { subject: "", body: "portal", sender_domain: None, inbox_address: "hero@kemendag.go.id" };
        assert_eq!(r.tie(&input).map(|t| t.2), Some(false));
    }

    #[test]
    fn a_desk_cue_replaces_the_common_cue_of_the_same_phrase() {
        // common.toml: "reset" = 2.5 for request. The desk says 1: it counts once, at 1.
        let r = compile_hero(
            "desk = \"hero\"\n[type_cues.request]\n\"reset\" = 1\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"intranet\" = 5 }\n",
        );
        let d = route_with(&r, "", "reset intranet");
        let cues: Vec<&String> = d.reasons.iter().filter(|r| r.contains("request cue \"reset\"")).collect();
        assert_eq!(cues.len(), 1, "{:?}", d.reasons);
        assert!(cues[0].ends_with("+1"), "{cues:?}");
    }

    #[test]
    fn a_scope_the_message_bounds_is_not_counted_and_explain_says_so() {
        // "the others are fine": one person, though the fault keeps coming back.
        let one = route("Wifi", "wifi saya putus putus terus, yang lain aman", None);
        assert_eq!(one.impact, Some(Impact::Low), "{one:?}");
        assert!(one.reasons.iter().any(|r| r == "scope class `degraded` not counted: `person` bounds it"), "{one:?}");
        let many = route("Wifi", "wifi saya putus putus terus", None);
        assert_eq!(many.impact, Some(Impact::Medium), "{many:?}");
        // Slow for the public but usable: degraded, not down.
        let slow = route("Website", "website kemendag lambat sekali dibuka masyarakat, masih bisa tapi lama", None);
        assert_eq!(slow.impact, Some(Impact::Medium), "{slow:?}");
        assert!(slow.reasons.iter().any(|r| r == "scope class `public` not counted: `degraded` bounds it"), "{slow:?}");
        let down = route("Website", "website kemendag tidak bisa dibuka masyarakat", None);
        assert_eq!(down.impact, Some(Impact::High), "{down:?}");
    }

    #[test]
    fn a_route_that_requires_a_keyword_scores_nothing_without_it() {
        let rules = |requires: &str| {
            compile_hero(&format!(
                "desk = \"hero\"\n[[route]]\nto = \"aplikasi/siasn\"\n{requires}\nkeywords = {{ siasn = 3, \"reset mfa\" = 6 }}\n\
                 [[route]]\nto = \"aplikasi/intranet\"\nkeywords = {{ intranet = 3, \"reset mfa\" = 2 }}\n"
            ))
        };
        let free = rules("");
        assert_eq!(route_with(&free, "", "tolong reset mfa intranet saya").route(), "aplikasi/siasn");
        let needs = rules("requires = [\"siasn\"]");
        let d = route_with(&needs, "", "tolong reset mfa intranet saya");
        assert_eq!(d.route(), "aplikasi/intranet", "{:?}", d.reasons);
        assert_eq!(route_with(&needs, "", "tolong reset mfa siasn saya").route(), "aplikasi/siasn");
        // Only the route's own keywords can be required.
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let common = rules::load_common(&repo("rules/common.toml")).unwrap();
        let file: rules::DeskFile = toml::from_str(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/siasn\"\nrequires = [\"sigi\"]\nkeywords = { siasn = 3 }\n",
        )
        .unwrap();
        let errs = rules::compile(Path::new("t.toml"), file, &common, &cat).unwrap_err();
        assert!(
            errs.iter().any(|e| e.to_string().contains("requires: `sigi` is not a keyword of this route")),
            "{errs:?}"
        );
    }

    #[test]
    fn a_question_about_doing_it_oneself_is_a_question() {
        let own = route("SIASN", "Boleh saya install aplikasi SIASN sendiri di laptop?", Some("kemendag.go.id"));
        assert_eq!(own.ticket_type, Some(TicketType::Question), "{:?}", own.reasons);
        assert!(own.reasons.iter().any(|r| r.contains("the asker does it: \"sendiri\"")), "{:?}", own.reasons);
        let asked = route("SIASN", "Boleh diinstalkan aplikasi SIASN di laptop saya?", Some("kemendag.go.id"));
        assert_eq!(asked.ticket_type, Some(TicketType::Request), "{:?}", asked.reasons);
        // An imperative with the marker last asks for the action too.
        let tail = route("SIASN", "reset password SIASN saya bisa ga?", Some("kemendag.go.id"));
        assert_eq!(tail.ticket_type, Some(TicketType::Request), "{:?}", tail.reasons);
        // A system that does it by itself is a fault, not the asker doing it.
        let itself = route("SIASN", "Kenapa SIASN logout sendiri terus ya?", Some("kemendag.go.id"));
        assert_eq!(itself.ticket_type, Some(TicketType::Incident), "{:?}", itself.reasons);
        assert!(!itself.reasons.iter().any(|r| r.contains("the asker does it")), "{:?}", itself.reasons);
        // "… ga sih?" asks whether it can be done, not for the desk to do it.
        let whether = route("SIASN", "SIASN bisa dibuka dr rumah ga sih?", Some("kemendag.go.id"));
        assert_eq!(whether.ticket_type, Some(TicketType::Question), "{:?}", whether.reasons);
        assert!(whether.reasons.iter().any(|r| r.contains("it asks whether: \"sih\"")), "{:?}", whether.reasons);
    }

    #[test]
    fn impact_comes_from_a_scope_class_that_explain_names() {
        let high = route("Internet mati", "Internet mati total, semua pegawai tidak bisa bekerja", None);
        assert_eq!(high.impact, Some(Impact::High));
        assert!(high.reasons.iter().any(|r| r.starts_with("impact high from scope class `organisation`")), "{high:?}");
        let breach = route("Internet", "Jaringan kantor kena ransomware, file terenkripsi semua", None);
        assert_eq!(breach.impact, Some(Impact::High));
        assert!(breach.reasons.iter().any(|r| r.contains("scope class `security_breach`")), "{breach:?}");
        let threat = route("Internet", "Internet saya error setelah klik link phishing", None);
        assert_eq!(threat.impact, Some(Impact::Medium), "{threat:?}");
        let unit = route("Internet", "Internet di ruangan tim kami tidak bisa connect", None);
        assert!(unit.reasons.iter().any(|r| r.starts_with("impact medium from scope class `unit`")), "{unit:?}");
        let low = route("Internet", "internet tidak bisa connect", None);
        assert_eq!(low.impact, Some(Impact::Low));
        assert!(low.reasons.iter().any(|r| r.starts_with("impact low: no scope class reached 2.0")), "{low:?}");
        // Not an incident: no impact.
        assert_eq!(route("Internet", "Bagaimana cara daftar internet tamu?", None).impact, None);
    }

    /// Labelled incidents for an impact opinion: "antrean loket" (a public counter's queue) is
    /// high, "laptop saya" low, "satu bidang" medium — words no scope class of the rules has.
    fn labelled_incidents() -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (texts, level) in [
            (
                [
                    "sigi error, antrean loket pelayanan memanjang",
                    "intranet mati, antrean loket penuh warga",
                    "antrean loket macet, sigi gagal simpan",
                ],
                "high",
            ),
            (
                [
                    "sigi error di laptop saya saja",
                    "intranet lambat di laptop saya",
                    "laptop saya tidak bisa buka sigi",
                ],
                "low",
            ),
            (
                [
                    "sigi gagal untuk satu bidang",
                    "intranet tidak bisa dibuka satu bidang",
                    "satu bidang tidak bisa simpan sigi",
                ],
                "medium",
            ),
        ] {
            out.extend(texts.iter().map(|t| (t.to_string(), level.to_string())));
        }
        out
    }

    #[test]
    fn the_impact_opinion_gives_an_incidents_impact_where_it_reads_another_level_and_says_why() {
        let text = ("SIGI error", "SIGI error sejak pagi, antrean loket pelayanan jadi panjang");
        let rules = compile_hero(HERO_FOUR_ROUTES);
        let alone = route_with(&rules, text.0, text.1);
        assert_eq!((alone.ticket_type, alone.impact), (Some(TicketType::Incident), Some(Impact::Low)), "{alone:?}");
        let model = examples::Model::train(&labelled_incidents()).map(std::sync::Arc::new);
        let rules = with_opinion(compile_hero(HERO_FOUR_ROUTES), None, examples::ImpactOpinion::ready(model).into());
        let d = route_with(&rules, text.0, text.1);
        assert_eq!(d.impact, Some(Impact::High), "{d:?}");
        let i = d
            .reasons
            .iter()
            .position(|r| r.starts_with("impact low: no scope class reached"))
            .expect("the rules' line");
        assert!(
            d.reasons[i + 1].starts_with("impact high: labelled incidents like this one are high (")
                && d.reasons[i + 1].ends_with(" ahead of the next), not low"),
            "{:?}",
            d.reasons
        );
        // Where it reads the rules' level, nothing changes and nothing more is said.
        let mine = route_with(&rules, "SIGI error", "SIGI error di laptop saya");
        assert_eq!(mine.impact, Some(Impact::Low), "{mine:?}");
        assert!(!mine.reasons.iter().any(|r| r.contains("labelled incidents")), "{:?}", mine.reasons);
    }

    #[test]
    fn a_count_of_people_or_offices_gives_the_impact_and_explain_names_it() {
        let unit = route("Internet", "Internet mati sejak pagi, 6 developer tidak bisa kerja", None);
        assert_eq!(unit.impact, Some(Impact::Medium), "{unit:?}");
        assert!(
            unit.reasons.iter().any(|r| r.contains("scope class `unit` from the count \"6 developer\"")),
            "{unit:?}"
        );
        assert!(unit.reasons.iter().any(|r| r.starts_with("impact medium from scope class `unit`")), "{unit:?}");
        let org = route("Internet", "Internet mati di seluruh 12 kanwil", None);
        assert_eq!(org.impact, Some(Impact::High), "{org:?}");
        let many = route("Internet", "internet error, semua 40 pegawai tidak bisa kerja", None);
        assert_eq!(many.impact, Some(Impact::High), "{many:?}");
        // A floor's number is no count of offices; one person is no unit.
        assert_eq!(route("Internet", "internet lantai 2 kantor mati", None).impact, Some(Impact::Low));
        assert_eq!(route("Internet", "internet error, 1 pegawai tidak bisa kerja", None).impact, Some(Impact::Low));
        // A number counts within its own sentence or subject: an error code that ends one does
        // not count the people or offices that open the next.
        let code_then_staff = route("Internet error 504", "Pegawai tidak bisa kerja.", None);
        assert_eq!(code_then_staff.impact, Some(Impact::Low), "{code_then_staff:?}");
        let code_then_offices =
            route("Internet", "Internet mati, muncul kode 500. Kanwil lain tidak ada masalah.", None);
        assert_eq!(code_then_offices.impact, Some(Impact::Low), "{code_then_offices:?}");
        assert!(!code_then_offices.reasons.iter().any(|r| r.contains("from the count")), "{code_then_offices:?}");
        // The same number and noun in one sentence still count.
        assert_eq!(route("Internet", "Internet mati. 500 pegawai tidak bisa kerja.", None).impact, Some(Impact::High));
    }

    #[test]
    fn a_public_facing_service_down_is_high_and_its_class_is_named() {
        let text = |scope: &str| {
            format!(
                "desk = \"hero\"\n[[route]]\nto = \"layanan_data/jaringan\"\nkeywords = {{ \"internet\" = 4 }}\n{scope}\n"
            )
        };
        let public = compile_hero(&text("scope = { public = 1 }"));
        let d = route_with(&public, "", "internet tidak bisa diakses sejak pagi");
        assert_eq!((d.ticket_type, d.impact), (Some(TicketType::Incident), Some(Impact::High)), "{d:?}");
        assert!(
            d.reasons.iter().any(|r| r.contains("scope class `public` +1 (the service layanan_data/jaringan)")),
            "{d:?}"
        );
        // The same words for a service that is not public-facing; and a single failure of it.
        let plain = compile_hero(&text(""));
        assert_eq!(route_with(&plain, "", "internet tidak bisa diakses sejak pagi").impact, Some(Impact::Low));
        assert_eq!(route_with(&public, "", "internet saya error").impact, Some(Impact::Low));
        // An unknown class is an error naming the known ones.
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let common = rules::load_common(&repo("rules/common.toml")).unwrap();
        let file: rules::DeskFile = toml::from_str(&text("scope = { publik = 1 }")).unwrap();
        let errs = rules::compile(Path::new("t.toml"), file, &common, &cat).unwrap_err();
        assert!(errs[0].to_string().contains("scope: unknown impact class `publik`; known: "), "{errs:?}");
    }

    #[test]
    fn a_class_that_keeps_an_incident_outweighs_an_explicit_request_to_fix_it() {
        // A desk class marked `incident` (as the shipped `security_breach` is): where its cues
        // count, "mohon segera diaktifkan kembali" asks for the fix of the incident reported.
        let rules = |flag: &str| {
            compile_hero(&format!(
                r#"
desk = "hero"
[[route]]
to = "aplikasi/tnde"
keywords = {{ "tnde" = 5 }}
[impact_classes.takedown]
level = "high"
{flag}
[impact_classes.takedown.keywords]
"diturunkan paksa" = 3
"#
            ))
        };
        let body = "TNDE diturunkan paksa dan tidak bisa dibuka sejak pagi. Mohon segera diaktifkan kembali.";
        let kept = route_with(&rules("incident = true"), "", body);
        assert_eq!(kept.ticket_type, Some(TicketType::Incident), "{kept:?}");
        assert_eq!(kept.impact, Some(Impact::High), "{kept:?}");
        assert!(
            kept.reasons.iter().any(|x| x.contains(
                "incident: scope class `takedown` keeps it one; the explicit request \"mohon … diaktifkan\" asks for the fix"
            )),
            "{kept:?}"
        );
        let plain = route_with(&rules(""), "", body);
        assert_eq!(plain.ticket_type, Some(TicketType::Request), "{plain:?}");
        assert!(plain.reasons.iter().any(|x| x.contains("explicit request \"mohon … diaktifkan\"")), "{plain:?}");
        // A message with the class's cue and no explicit request is an incident either way.
        let fault = "TNDE diturunkan paksa dan tidak bisa dibuka sejak pagi.";
        assert_eq!(route_with(&rules(""), "", fault).ticket_type, Some(TicketType::Incident));
    }

    #[test]
    fn an_explicit_request_verb_beats_failure_words() {
        let r =
            route("Internet", "Tolong pasang internet di ruang rapat, sekarang tidak bisa connect sama sekali", None);
        assert_eq!(r.ticket_type, Some(TicketType::Request), "{r:?}");
        assert!(r.reasons.iter().any(|x| x.contains("explicit request \"tolong … pasang\"")), "{r:?}");
        let en = route("Internet", "Please create a guest internet account, the old one failed", None);
        assert_eq!(en.ticket_type, Some(TicketType::Request), "{en:?}");
        // Asking to look at a failure is no request; nor is asking how.
        let i = route("Internet", "internet tidak bisa connect, tolong dicek", None);
        assert_eq!(i.ticket_type, Some(TicketType::Incident), "{i:?}");
        let q = route("Internet", "Mohon info cara reset internet kantor?", None);
        assert_eq!(q.ticket_type, Some(TicketType::Question), "{q:?}");
        // A question that asks for an action is a request.
        let p = route("Intranet", "tlg reset pw intranet sy?", None);
        assert_eq!(p.ticket_type, Some(TicketType::Request), "{p:?}");
    }

    #[test]
    fn a_question_that_names_its_action_beats_failure_words() {
        let body = "Internet di ruang rapat tidak bisa connect sama sekali. Bisa dipasangkan access point baru?";
        let r = route("Internet", body, None);
        assert_eq!(r.ticket_type, Some(TicketType::Request), "{r:?}");
        assert!(r.reasons.iter().any(|x| x.contains("a question that asks for an action beats")), "{r:?}");
        // Reporting that it cannot, or asking whether it can, is no request.
        let i = route("Internet", "Internet di ruang rapat tidak bisa dibuka?", None);
        assert_ne!(i.ticket_type, Some(TicketType::Request), "{i:?}");
        let q = route("Internet", "Apakah internet kantor bisa dinaikkan kecepatannya?", None);
        assert_eq!(q.ticket_type, Some(TicketType::Question), "{q:?}");
        // A polite phrase of `polite_requests` in the question ("bisa diaktifkan") does not hide
        // the action it names: the fault words ("expired") still lose to it.
        let chat = route("", "min akun wifi kemendag sy expired, bs diaktifin lg ga?", None);
        assert_eq!(chat.ticket_type, Some(TicketType::Request), "{chat:?}");
        assert!(chat.reasons.iter().any(|x| x.contains("a question that asks for an action beats")), "{chat:?}");
    }

    #[test]
    fn a_system_merely_mentioned_counts_less_than_the_one_asked_about() {
        let text = |extra: &str| {
            format!(
                "desk = \"hero\"\n{extra}\n[[route]]\nto = \"aplikasi/sigi\"\nkeywords = {{ \"sigi\" = 5 }}\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = {{ \"intranet\" = 4 }}\n"
            )
        };
        let body = "Intranet tidak bisa dibuka sejak pagi. Rekap yang saya ambil dari SIGI aman.";
        let d = route_with(&compile_hero(&text("")), "", body);
        assert_eq!(d.route(), "aplikasi/intranet", "{d:?}");
        let off = compile_hero(&text("mention_weight = 1"));
        assert_eq!(route_with(&off, "", body).route(), "aplikasi/sigi");
        // SIGI in the failing sentence: it is what the message is about.
        let d = route_with(&compile_hero(&text("")), "", "SIGI tidak bisa dibuka. Intranet normal.");
        assert_eq!(d.route(), "aplikasi/sigi");
        // Without a sentence that asks or reports, every mention counts.
        let d = route_with(&compile_hero(&text("")), "", "Intranet. SIGI.");
        assert_eq!(d.route(), "aplikasi/sigi");
        // The route asked about keeps the rest of its keywords whole; the other is marked.
        let sigi = compile_hero(&text("").replace("\"sigi\" = 5", "\"sigi\" = 5, \"rekap gaji\" = 2"));
        let d = route_with(&sigi, "", "SIGI tidak bisa dibuka. Rekap gaji bulan lalu aman.");
        assert!(d.reasons.iter().any(|r| r == "+2.0 keyword \"rekap gaji\" in body"), "{d:?}");
        let d = route_with(&sigi, "", "Intranet tidak bisa dibuka. Rekap gaji dari SIGI bulan lalu aman, SIGI normal.");
        assert_eq!(d.route(), "aplikasi/intranet", "{d:?}");
    }

    #[test]
    fn a_reply_subject_does_not_outvote_the_new_topic_of_the_body() {
        let rules = || {
            compile_hero(
                "desk = \"hero\"\n[[route]]\nto = \"aplikasi/sigi\"\nkeywords = { \"sigi\" = 5 }\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"intranet\" = 4 }\n",
            )
        };
        let r = rules();
        let body = "Terima kasih, yang kemarin sudah beres. Sekarang intranet tidak bisa dibuka.";
        // A new message with this subject is about SIGI (7.5 against 4)...
        assert_eq!(route_with(&r, "SIGI error", body).route(), "aplikasi/sigi");
        // ...a reply's subject names the old thread: the body's new topic wins, and explain says why.
        let d = route_with(&r, "Re: SIGI error", body);
        assert_eq!(d.route(), "aplikasi/intranet", "{d:?}");
        let d = route_with(&r, "RE : SIGI error", "SIGI sudah normal. Sekarang intranet tidak bisa dibuka.");
        assert_eq!(d.route(), "aplikasi/intranet", "{d:?}");
        // A reply whose body names no route of its own is still about the thread's topic.
        let d = route_with(&r, "Fwd: SIGI error", "masih belum bisa, mohon dicek lagi");
        assert_eq!(d.route(), "aplikasi/sigi", "{d:?}");
        assert!(d.reasons.iter().any(|x| x == "+7.5 keyword \"sigi\" in subject"), "{d:?}");
        // Nor does a pattern that matches only in such a subject.
        let p = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/sigi\"\nkeywords = { \"sigi\" = 5 }\npatterns = { 'sigi\\s+error' = 6 }\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"intranet\" = 4 }\n",
        );
        assert_eq!(route_with(&p, "Re: SIGI error", body).route(), "aplikasi/intranet");
        assert_eq!(route_with(&p, "SIGI error", body).route(), "aplikasi/sigi");
        assert!(is_reply_subject("Re: x") && is_reply_subject(" FW: x") && is_reply_subject("Bls: x"));
        assert!(!is_reply_subject("Rekap: x") && !is_reply_subject("Reset password"));
    }

    #[test]
    fn a_request_is_not_routed_to_an_incident_only_route_when_the_runner_up_takes_it() {
        // aplikasi/sigi takes only incidents; aplikasi/intranet takes questions and requests.
        let r = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/sigi\"\nkeywords = { \"sigi\" = 5 }\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"intranet\" = 4 }\n",
        );
        let d = route_with(&r, "", "Mohon dibuatkan akun intranet untuk operator SIGI");
        assert_eq!((d.route(), d.ticket_type), ("aplikasi/intranet".into(), Some(TicketType::Request)), "{d:?}");
        assert!(d.reasons.iter().any(|x| x.contains("aplikasi/sigi scored 5.0 but takes only incidents")), "{d:?}");
        // A report of a fault stays; so does a request whose runner-up is below the threshold.
        assert_eq!(route_with(&r, "", "SIGI error, intranet juga lambat").route(), "aplikasi/sigi");
        assert_eq!(route_with(&r, "", "Mohon dibuatkan rekap SIGI").route(), "aplikasi/sigi");
    }

    #[test]
    fn a_fault_report_yields_to_the_sibling_that_takes_incidents() {
        // aplikasi/intranet takes questions and requests; aplikasi/sigi, of the same category, only incidents.
        let r = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"intranet\" = 5 }\n[[route]]\nto = \"aplikasi/sigi\"\nkeywords = { \"sigi\" = 4 }\n",
        );
        let d = route_with(&r, "", "intranet dan sigi error sejak pagi");
        assert_eq!((d.route(), d.ticket_type), ("aplikasi/sigi".into(), Some(TicketType::Incident)), "{d:?}");
        assert!(d.reasons.iter().any(|x| x.contains("aplikasi/intranet scored 5.0 but takes no incidents")), "{d:?}");
        // A request marker that asks only for the fault to be dealt with asks for nothing else.
        let handled = route_with(&r, "", "intranet dan sigi error sejak pagi. Mohon segera ditangani.");
        assert_eq!(handled.route(), "aplikasi/sigi", "{handled:?}");
        // In English too (set 39: "… no longer detects its ceiling camera. Could someone take a look?").
        let looked = route_with(&r, "", "The intranet and SIGI no longer load: error 500. Could someone take a look?");
        assert_eq!(looked.route(), "aplikasi/sigi", "{looked:?}");
        // A message that asks for an action stays, also where the action is no known verb form.
        assert_eq!(route_with(&r, "", "tolong reset intranet saya, sigi juga error").route(), "aplikasi/intranet");
        assert_eq!(
            route_with(&r, "", "intranet dan sigi error sejak pagi, mohon diaktivasi lagi").route(),
            "aplikasi/intranet"
        );
        // So does one whose runner-up is far behind (under six tenths of the best); two thirds
        // is near enough.
        let with = |intranet: u32| {
            compile_hero(&format!(
                "desk = \"hero\"\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = {{ \"intranet\" = {intranet} }}\n[[route]]\nto = \"aplikasi/sigi\"\nkeywords = {{ \"sigi\" = 4 }}\n"
            ))
        };
        assert_eq!(route_with(&with(8), "", "intranet dan sigi error sejak pagi").route(), "aplikasi/intranet");
        assert_eq!(route_with(&with(6), "", "intranet dan sigi error sejak pagi").route(), "aplikasi/sigi");
    }

    #[test]
    fn a_fault_report_yields_past_two_siblings_that_take_none() {
        // aplikasi/intranet (questions, requests) and aplikasi/akses_satu_data (requests) tie on
        // a shared word; aplikasi/sigi, of the same category, takes incidents and comes third.
        let with = |sigi: &str| {
            compile_hero(&format!(
                "desk = \"hero\"\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = {{ \"akun\" = 5 }}\n[[route]]\nto = \"aplikasi/akses_satu_data\"\nkeywords = {{ \"akun\" = 5 }}\n[[route]]\nto = \"aplikasi/sigi\"\nkeywords = {{ \"sigi\" = {sigi} }}\n"
            ))
        };
        let d = route_with(&with("4"), "", "akun sigi error sejak pagi");
        assert_eq!((d.route(), d.ticket_type), ("aplikasi/sigi".into(), Some(TicketType::Incident)), "{d:?}");
        assert!(
            d.reasons.iter().any(|x| x.contains("but takes no incidents, and the message reports a fault")),
            "{d:?}"
        );
        // Under six tenths of the best, the tie stays, and so does a request.
        assert!(route_with(&with("2.5"), "", "akun sigi error sejak pagi").is_triage());
        assert!(route_with(&with("4"), "", "mohon dibuatkan akun sigi").is_triage());
    }

    #[test]
    fn a_phrase_does_not_span_two_sentences() {
        let r =
            compile_hero("desk = \"hero\"\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"akun email\" = 5 }\n");
        assert_eq!(route_with(&r, "", "mohon reset akun email saya").route(), "aplikasi/intranet");
        // A comma joins; a full stop before white space ends the sentence.
        assert_eq!(route_with(&r, "", "mohon reset akun, email saya").route(), "aplikasi/intranet");
        assert!(route_with(&r, "", "ini sudah akun. Email saya penuh").is_triage());
    }

    #[test]
    fn a_denied_phrase_speaks_against_no_route() {
        let r = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"intranet\" = 8 }\nnegative = { \"sigi\" = 3 }\n",
        );
        // "sigi" right after a negation ("tanpa", "usah", "bukan") is denied: not subtracted.
        let d = route_with(&r, "", "mohon reset akun intranet saya. bukan sigi ya");
        assert!(d.reasons.iter().any(|x| x.contains("\"sigi\" not counted (denied)")), "{d:?}");
        assert!(d.reasons.iter().any(|x| x.contains("scored 8.0")), "{d:?}");
        // Free, it still counts against the route.
        let d = route_with(&r, "", "akun intranet dan sigi saya mohon direset");
        assert!(d.reasons.iter().any(|x| x.contains("negative \"sigi\"")), "{d:?}");
        // Said to work, it speaks against no route either (set 38: "Listrik dan UPS sudah
        // normal"; "Subdomain ditjen lain yang saya cek masih normal").
        let d = route_with(&r, "", "akun intranet saya mohon direset. sigi masih normal kok");
        assert!(d.reasons.iter().any(|x| x.contains("\"sigi\" not counted (said to work)")), "{d:?}");
        assert!(d.reasons.iter().any(|x| x.contains("scored 8.0")), "{d:?}");
        // English denies as Indonesian does (set 38: "the data centre (DC, not the DRC)").
        let d = route_with(&r, "", "please reset my intranet account, not the sigi one");
        assert!(d.reasons.iter().any(|x| x.contains("\"sigi\" not counted (denied)")), "{d:?}");
    }

    #[test]
    fn numbered_requests_for_different_services_go_to_a_person() {
        let r = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"intranet\" = 5 }\n\
             [[route]]\nto = \"aplikasi/e_sppd\"\nkeywords = { \"e sppd\" = 5 }\n",
        );
        // Set 41: three requests to three services in one message; a ticket cannot go to them all.
        let d = route_with(
            &r,
            "",
            "Min sekalian ya: 1) reset password intranet anak magang, 2) buatin akun e-SPPD buat saya",
        );
        assert!(d.is_triage(), "{d:?}");
        assert!(
            d.reasons.iter().any(|x| x.contains("item 1: aplikasi/intranet, item 2: aplikasi/e_sppd")),
            "{:?}",
            d.reasons
        );
        // The same list for one service, or steps that route nowhere alone, route as before.
        let d = route_with(
            &r,
            "",
            "Mohon bantuan:\n1. reset password intranet\n2. buka blokir akun intranet\n\nTerima kasih",
        );
        assert_eq!(d.route(), "aplikasi/intranet", "{d:?}");
        let d = route_with(&r, "", "e-SPPD error waktu simpan: 1. buka menu SPPD 2. klik simpan 3. muncul error");
        assert_eq!(d.route(), "aplikasi/e_sppd", "{d:?}");
        // Without the list, the two services named in one sentence are the rules' to weigh.
        let d = route_with(&r, "", "reset password intranet, sama akun e-SPPD buat saya ya");
        assert!(!d.reasons.iter().any(|x| x.contains("several requests")), "{d:?}");
    }

    #[test]
    fn a_tie_between_a_route_that_takes_requests_and_one_that_does_not_follows_the_speech_act() {
        let r = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/sigi\"\nkeywords = { \"sigi\" = 5 }\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"intranet\" = 5 }\n",
        );
        // Same score, same longest keyword: a request goes where requests are taken.
        let d = route_with(&r, "", "tolong dibuatkan akun intranet untuk operator sigi");
        assert_eq!((d.route(), d.ticket_type), ("aplikasi/intranet".into(), Some(TicketType::Request)), "{d:?}");
        // A report of a fault goes where incidents are taken.
        let d = route_with(&r, "", "sigi dan intranet error");
        assert_eq!((d.route(), d.ticket_type), ("aplikasi/sigi".into(), Some(TicketType::Incident)), "{d:?}");
        // A message that does neither stays unsettled: triage.
        assert!(route_with(&r, "", "sigi dan intranet").is_triage());
        // So does a fault report that ties two routes that both take incidents.
        let r = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/sigi\"\nkeywords = { \"sigi\" = 5 }\n[[route]]\nto = \"aplikasi/tnde\"\nkeywords = { \"tnde\" = 5 }\n",
        );
        assert!(route_with(&r, "", "sigi dan tnde error").is_triage());
    }

    #[test]
    fn an_outside_sender_settles_a_tie_for_the_route_open_to_them() {
        // aplikasi/inatrade is internal-only; call_center/inatrade is open to businesses.
        let r = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/inatrade\"\nkeywords = { \"inatrade\" = 5 }\n[[route]]\nto = \"call_center/inatrade\"\nkeywords = { \"inatrade\" = 5 }\n",
        );
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let route = |domain: Option<&str>| {
            let body = "our company cannot upload documents in INATRADE";
            r.explain(
                &cat,
                &RouteInput { subject: "", body, sender_domain: domain, inbox_address: "hero@kemendag.go.id" },
            )
        };
        assert_eq!(route(Some("globalfoods.co.id")).route(), "call_center/inatrade");
        // From inside, or with no domain (a chat), the tie stays unsettled.
        assert!(route(Some("kemendag.go.id")).is_triage());
        assert!(route(None).is_triage());
    }

    #[test]
    fn a_fault_report_yields_to_the_consultation_on_the_same_application() {
        // DJPb: tik_2_pengelolaan_user/digit takes questions and requests, tik_1_konsultasi/digit
        // (another category, the same subcategory id) questions and incidents.
        let cat = Catalogue::load(&repo("seeds/djpb.toml")).unwrap();
        let common = rules::load_common(&repo("rules/common.toml")).unwrap();
        let text = "desk = \"djpb\"\n[[route]]\nto = \"tik_2_pengelolaan_user/digit\"\nkeywords = { \"akun digit\" = 5 }\n[[route]]\nto = \"tik_1_konsultasi/digit\"\nkeywords = { \"digit\" = 4 }\n";
        let file: rules::DeskFile = toml::from_str(text).unwrap();
        let r = rules::compile(Path::new("test.toml"), file, &common, &cat).unwrap();
        let route = |body: &str| {
            r.explain(
                &cat,
                &RouteInput { subject: "", body, sender_domain: None, inbox_address: "hai.djpb@kemenkeu.go.id" },
            )
        };
        let d = route("akun digit error sejak pagi");
        assert_eq!((d.route(), d.ticket_type), ("tik_1_konsultasi/digit".into(), Some(TicketType::Incident)), "{d:?}");
        // A request marker keeps the user administration ("akun digit sy blm aktif, mohon diaktivasi").
        assert_eq!(route("akun digit belum aktif, mohon diaktivasi").route(), "tik_2_pengelolaan_user/digit");
    }

    #[test]
    fn an_explicit_request_without_other_type_cues_beats_the_default_type() {
        let r = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/siasn\"\ndefault_type = \"incident\"\nkeywords = { \"siasn\" = 5 }\n",
        );
        assert_eq!(route_with(&r, "", "Mohon update foto profil siasn saya").ticket_type, Some(TicketType::Request));
        assert_eq!(route_with(&r, "", "Profil siasn saya").ticket_type, Some(TicketType::Incident));
    }

    #[test]
    fn a_system_named_only_where_its_problem_is_over_is_merely_mentioned() {
        let r = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"aplikasi/sigi\"\nkeywords = { \"sigi\" = 5 }\n[[route]]\nto = \"aplikasi/intranet\"\nkeywords = { \"intranet\" = 4 }\n",
        );
        let body =
            "Terima kasih, masalah SIGI kemarin sudah beres. Pertanyaan lain: menu intranet untuk cuti ada di mana?";
        let d = route_with(&r, "", body);
        assert_eq!(d.route(), "aplikasi/intranet", "{d:?}");
        // Without the words that close it, SIGI is what the message is about.
        let d = route_with(
            &r,
            "",
            "Terima kasih, masalah SIGI kemarin. Pertanyaan lain: menu intranet untuk cuti ada di mana?",
        );
        assert_eq!(d.route(), "aplikasi/sigi", "{d:?}");
        // Named in the closed sentence and again in a new one: it counts whole.
        let d = route_with(&r, "", "SIGI kemarin sudah beres. Sekarang SIGI error lagi, intranet juga");
        assert_eq!(d.route(), "aplikasi/sigi", "{d:?}");
        // A system said to work beside the one asked about is merely mentioned too (set 38:
        // "akun intranet & TNDE udah aktif, tinggal akses ke portal satu data").
        let d = route_with(&r, "", "Akun SIGI saya udah aktif. Tinggal menu intranet untuk cuti ada di mana?");
        assert_eq!(d.route(), "aplikasi/intranet", "{d:?}");
    }

    #[test]
    fn english_inflections_and_chat_slang_are_normalised() {
        let r = compile_hero(
            "desk = \"hero\"\n[[route]]\nto = \"layanan_data/izin_data_center\"\nkeywords = { \"data center\" = 5 }\n[[route]]\nto = \"layanan_data/email\"\nkeywords = { \"email\" = 3, \"password\" = 1 }\n",
        );
        assert_eq!(route_with(&r, "", "izin masuk DC besok").route(), "layanan_data/izin_data_center");
        assert_eq!(route_with(&r, "", "access to the data centre").route(), "layanan_data/izin_data_center");
        let d = route_with(&r, "", "our emails and passwords");
        assert_eq!(d.route(), "layanan_data/email");
        assert!(d.reasons.iter().any(|x| x.contains("\"password\"")), "{d:?}");
    }

    #[test]
    fn a_lazy_router_compiles_a_desk_when_first_needed_and_names_its_problems() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(repo("rules/common.toml"), dir.path().join("common.toml")).unwrap();
        std::fs::copy(repo("rules/hero.toml"), dir.path().join("hero.toml")).unwrap();
        std::fs::write(dir.path().join("djpb.toml"), "desk = \"djpb\"\n[[route]]\nto = \"no/such\"\n").unwrap();
        let hero = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let djpb = Catalogue::load(&repo("seeds/djpb.toml")).unwrap();
        let jateng = Catalogue::load(&repo("seeds/jateng.toml")).unwrap();

        // The eager load reports the broken desk; the lazy one reads no desk's file.
        assert!(Router::load(dir.path(), &[&hero, &djpb], None).is_err());
        let router = Router::lazy(dir.path(), &[&hero, &djpb, &jateng], None);
        assert!(router.desk("hero").is_none() && router.desk("djpb").is_none(), "nothing compiled yet");

        router.prepare(&hero).unwrap();
        assert!(router.desk("hero").is_some());
        assert!(router.desk("djpb").is_none(), "only the desk asked for is compiled");
        let problems = router.prepare(&djpb).unwrap_err();
        assert!(problems.iter().any(|p| p.contains("no/such")), "{problems:?}");
        assert_eq!(router.prepare(&djpb).unwrap_err(), problems, "the problems stay, not compiled again");

        let input = RouteInput {
            subject: "Tidak bisa login SIMPEG",
            body: "Mohon bantuan",
            sender_domain: Some("kemendag.go.id"),
            inbox_address: "hero@kemendag.go.id",
        };
        let eager = Router::load(dir.path(), &[&hero], None).unwrap();
        assert_eq!(router.route(&hero, &input), eager.route(&hero, &input), "lazy and eager route alike");
        let broken = router.route(&djpb, &input);
        assert!(broken.is_triage() && broken.reasons[0].contains("does not compile"), "{broken:?}");
        let none = router.route(&jateng, &input);
        assert!(none.is_triage() && none.reasons[0].contains("no rules/jateng.toml"), "{none:?}");
        // A desk without a rules file has nothing to compile.
        router.prepare(&jateng).unwrap();
    }
}
