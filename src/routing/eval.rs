//! Measuring the router: the labelled-message format of `rules/labelled/routing-dev.jsonl`
//! (`loket rules eval`) and the examples inside the rules files (`loket rules test`).

use serde::{Deserialize, Serialize};

use super::{DeskRules, RouteDecision, RouteInput, Router, RulesError};
use crate::catalogue::Catalogue;
use crate::domain::{Impact, TicketType};

/// One labelled message.
#[derive(Debug, Clone, Deserialize)]
pub struct Labelled {
    pub id: String,
    pub desk: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    pub body: String,
    #[serde(default)]
    pub expected: Option<Expected>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub category: String,
    pub subcategory: String,
    #[serde(rename = "type")]
    pub ticket_type: Option<TicketType>,
    pub impact: Option<Impact>,
}

/// The fixed output line of `loket rules eval`.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub id: String,
    pub category: String,
    pub subcategory: String,
    #[serde(rename = "type")]
    pub ticket_type: Option<TicketType>,
    pub impact: Option<Impact>,
    pub confidence: f64,
}

/// The sender's email domain, if `from` holds an email address (chat handles and phone numbers
/// have none).
pub fn sender_domain(from: &str) -> Option<String> {
    crate::domain::EmailAddress::parse(from).ok().map(|a| a.domain().to_string())
}

/// The router's decision on a labelled message, without its reasons (as `rules eval` and
/// `rules suggest` route; the daemon routes with them, [`explain`]).
pub fn predict(
    router: &Router,
    catalogue: &Catalogue,
    inbox_address: &str,
    m: &Labelled,
) -> (Prediction, RouteDecision) {
    decide(router, catalogue, inbox_address, m, false)
}

/// [`predict`] with the decision's reasons ([`Router::explain`]).
pub fn explain(
    router: &Router,
    catalogue: &Catalogue,
    inbox_address: &str,
    m: &Labelled,
) -> (Prediction, RouteDecision) {
    decide(router, catalogue, inbox_address, m, true)
}

fn decide(
    router: &Router,
    catalogue: &Catalogue,
    inbox_address: &str,
    m: &Labelled,
    explain: bool,
) -> (Prediction, RouteDecision) {
    let domain = m.from.as_deref().and_then(sender_domain);
    let input = RouteInput {
        subject: m.subject.as_deref().unwrap_or(""),
        body: &m.body,
        sender_domain: domain.as_deref(),
        inbox_address,
    };
    let d = if explain { router.explain(catalogue, &input) } else { router.route(catalogue, &input) };
    (
        Prediction {
            id: m.id.clone(),
            category: d.category.clone(),
            subcategory: d.subcategory.clone(),
            ticket_type: d.ticket_type,
            impact: d.impact,
            confidence: d.confidence,
        },
        d,
    )
}

/// The labelled messages of a JSON-lines file, each label checked against its desk's catalogue:
/// a line that is not a labelled message, or whose label names a desk without a catalogue here or
/// a route its desk does not have (triage aside), is an error naming the file and line. What a
/// second opinion learns from (`rules/labelled/`, `rules eval --learn`).
pub fn read_labelled_file(
    path: &std::path::Path,
    catalogues: &[&Catalogue],
    others: OtherDesks,
) -> Result<Vec<Labelled>, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io { path: path.into(), source })?;
    let inv = |line: usize, message: String| RulesError::Invalid {
        path: path.into(),
        message: format!("line {line}: {message}"),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let m: Labelled = serde_json::from_str(line).map_err(|e| inv(i + 1, format!("not a labelled message: {e}")))?;
        if let Some(e) = &m.expected {
            let Some(cat) = catalogues.iter().find(|c| c.desk == m.desk) else {
                match others {
                    OtherDesks::Skipped => continue,
                    OtherDesks::Unchecked => {
                        out.push(m);
                        continue;
                    }
                    OtherDesks::Refused => return Err(inv(i + 1, format!("no desk `{}`", m.desk))),
                }
            };
            if e.category != crate::catalogue::TRIAGE_CATEGORY && cat.subcategory(&e.category, &e.subcategory).is_none()
            {
                return Err(inv(
                    i + 1,
                    format!("`{}/{}` is not a route of desk `{}`", e.category, e.subcategory, m.desk),
                ));
            }
        }
        out.push(m);
    }
    Ok(out)
}

/// What [`read_labelled_file`] makes of a line of a desk without a catalogue among those given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherDesks {
    /// An error: every desk a file given to `rules eval --learn` names must be configured.
    Refused,
    /// Left out: the router's `rules/labelled/` serves whichever desks are configured (as the
    /// rules directory's desk files do), and `loket ingest` loads only its inbox's desk.
    Skipped,
    /// Kept, their labels unchecked: the impact opinion learns every desk's incidents, whatever
    /// desks this process serves, so that `serve` and `ingest` decide alike.
    Unchecked,
}

/// Per desk, the text and route (`category/subcategory`) of each message of `sets` with labels.
pub fn examples_by_desk(sets: &[Labelled]) -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let mut per_desk: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for m in sets {
        if let Some(e) = &m.expected {
            let text = super::examples::text(m.subject.as_deref().unwrap_or(""), &m.body);
            per_desk.entry(m.desk.clone()).or_default().push((text, format!("{}/{}", e.category, e.subcategory)));
        }
    }
    per_desk
}

/// One model per desk, trained on the labelled messages of `sets` ([`super::examples`]).
pub fn models(sets: &[Labelled]) -> std::collections::BTreeMap<String, super::examples::Model> {
    examples_by_desk(sets)
        .into_iter()
        .filter_map(|(desk, ex)| Some((desk, super::examples::Model::train(&ex)?)))
        .collect()
}

/// The text and impact (`low`, `medium`, `high`) of each labelled incident of `sets`, every
/// desk's: what the impact opinion learns ([`super::examples`]). How far an incident reaches reads
/// alike at every desk, and one model learned from all of them generalised better than one per
/// desk (BENCHMARKS.md, "Impact from labelled incidents").
pub fn impact_examples(sets: &[Labelled]) -> Vec<(String, String)> {
    sets.iter()
        .filter_map(|m| {
            let e = m.expected.as_ref()?;
            let impact = e.impact.filter(|_| e.ticket_type == Some(TicketType::Incident))?;
            Some((super::examples::text(m.subject.as_deref().unwrap_or(""), &m.body), impact.as_str().to_string()))
        })
        .collect()
}

/// Scores over a labelled set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    pub messages: usize,
    pub subcategory_correct: usize,
    pub type_correct: usize,
    pub impact_labelled: usize,
    pub impact_correct: usize,
    pub triage_expected: usize,
    pub triage_recalled: usize,
    pub triage_predicted: usize,
    pub confidently_wrong: usize,
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 { 100.0 } else { 100.0 * a as f64 / b as f64 }
}

impl Metrics {
    pub fn add(&mut self, p: &Prediction, e: &Expected) {
        self.messages += 1;
        let pair_ok = p.category == e.category && p.subcategory == e.subcategory;
        let expected_triage = e.category == crate::catalogue::TRIAGE_CATEGORY;
        let predicted_triage = p.category == crate::catalogue::TRIAGE_CATEGORY;
        self.subcategory_correct += pair_ok as usize;
        self.type_correct += (p.ticket_type == e.ticket_type) as usize;
        if let Some(i) = e.impact {
            self.impact_labelled += 1;
            self.impact_correct += (p.impact == Some(i)) as usize;
        }
        self.triage_expected += expected_triage as usize;
        self.triage_recalled += (expected_triage && predicted_triage) as usize;
        self.triage_predicted += predicted_triage as usize;
        self.confidently_wrong += (!predicted_triage && !pair_ok) as usize;
    }

    pub fn subcategory_pct(&self) -> f64 {
        pct(self.subcategory_correct, self.messages)
    }
    pub fn type_pct(&self) -> f64 {
        pct(self.type_correct, self.messages)
    }
    pub fn impact_pct(&self) -> f64 {
        pct(self.impact_correct, self.impact_labelled)
    }
    pub fn triage_recall_pct(&self) -> f64 {
        pct(self.triage_recalled, self.triage_expected)
    }
    pub fn triage_precision_pct(&self) -> f64 {
        pct(self.triage_recalled, self.triage_predicted)
    }
    pub fn confidently_wrong_pct(&self) -> f64 {
        pct(self.confidently_wrong, self.messages)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} messages: subcategory {:.1}% ({}/{}), type {:.1}%, impact {:.1}% ({}/{}), triage recall {:.1}% ({}/{}), \
             triage precision {:.1}%, confidently wrong {:.1}% ({})",
            self.messages,
            self.subcategory_pct(),
            self.subcategory_correct,
            self.messages,
            self.type_pct(),
            self.impact_pct(),
            self.impact_correct,
            self.impact_labelled,
            self.triage_recall_pct(),
            self.triage_recalled,
            self.triage_expected,
            self.triage_precision_pct(),
            self.confidently_wrong_pct(),
            self.confidently_wrong,
        )
    }
}

/// A failed rules-file example.
#[derive(Debug, Clone)]
pub struct ExampleFailure {
    pub desk: String,
    pub index: usize,
    pub expected: String,
    pub got: String,
    pub subject: String,
}

/// Runs every example of `desk`'s rules file; returns (examples run, failures).
pub fn run_examples(router: &Router, catalogue: &Catalogue, default_inbox: &str) -> (usize, Vec<ExampleFailure>) {
    match router.desk(&catalogue.desk) {
        Some(rules) => run_desk_examples(rules, catalogue, default_inbox),
        None => (0, Vec::new()),
    }
}

/// [`run_examples`] on one desk's compiled rules (what-if runs: `rules suggest`).
pub fn run_desk_examples(
    rules: &DeskRules,
    catalogue: &Catalogue,
    default_inbox: &str,
) -> (usize, Vec<ExampleFailure>) {
    let mut failures = Vec::new();
    for (i, ex) in rules.examples.iter().enumerate() {
        let domain = ex.from.as_deref().and_then(sender_domain);
        let d = rules.route(
            catalogue,
            &RouteInput {
                subject: &ex.subject,
                body: &ex.body,
                sender_domain: domain.as_deref(),
                inbox_address: ex.inbox.as_deref().unwrap_or(default_inbox),
            },
        );
        let mut want = ex.route.clone();
        let mut got = d.route();
        if let Some(t) = ex.ticket_type {
            want.push_str(&format!(" {t}"));
            got.push_str(&format!(" {}", d.ticket_type.map(|t| t.as_str()).unwrap_or("-")));
        }
        if let Some(i) = ex.impact {
            want.push_str(&format!(" {i}"));
            got.push_str(&format!(" {}", d.impact.map(|t| t.as_str()).unwrap_or("-")));
        }
        if want != got {
            failures.push(ExampleFailure {
                desk: catalogue.desk.clone(),
                index: i,
                expected: want,
                got,
                subject: if ex.subject.is_empty() { ex.body.chars().take(60).collect() } else { ex.subject.clone() },
            });
        }
    }
    (rules.examples.len(), failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(id: &str, desk: &str, body: &str, route: Option<&str>) -> Labelled {
        Labelled {
            id: id.into(),
            desk: desk.into(),
            channel: None,
            from: None,
            subject: None,
            body: body.into(),
            expected: route.map(|r| {
                let (category, subcategory) = r.split_once('/').unwrap();
                Expected { category: category.into(), subcategory: subcategory.into(), ticket_type: None, impact: None }
            }),
        }
    }

    /// Three routes of one desk, five messages each; a message without labels and another desk's
    /// message teach the desk's model nothing.
    fn sets() -> Vec<Labelled> {
        let mut out = Vec::new();
        for (route, texts) in [
            (
                "akun/password",
                [
                    "lupa password email",
                    "reset password akun",
                    "password terkunci",
                    "ganti password",
                    "password salah terus",
                ],
            ),
            (
                "jaringan/wifi",
                [
                    "wifi lantai 3 mati",
                    "wifi kantor putus",
                    "sinyal wifi lemah",
                    "wifi tidak konek",
                    "wifi lambat sekali",
                ],
            ),
            (
                "aplikasi/sigi",
                ["sigi error login", "sigi tidak bisa dibuka", "laporan sigi gagal", "sigi lambat", "menu sigi hilang"],
            ),
        ] {
            for (i, t) in texts.iter().enumerate() {
                out.push(labelled(&format!("{route}-{i}"), "hero", t, Some(route)));
            }
        }
        out.push(labelled("u", "hero", "printer rusak", None));
        out.push(labelled("o", "djpb", "span error", Some("aplikasi/span")));
        out
    }

    #[test]
    fn a_desk_model_learns_from_its_own_labelled_messages_only() {
        let models = models(&sets());
        assert_eq!(models.keys().collect::<Vec<_>>(), ["hero"], "djpb has one route: nothing to learn");
        assert_eq!(models["hero"].routes(), ["akun/password", "aplikasi/sigi", "jaringan/wifi"]);
    }

    #[test]
    fn messages_labelled_for_triage_teach_the_model_to_send_their_like_there() {
        let mut sets = sets();
        for (i, t) in ["printer kantor macet", "printer tidak bisa cetak", "tinta printer habis", "printer rusak lagi"]
            .iter()
            .enumerate()
        {
            sets.push(labelled(&format!("t{i}"), "hero", t, Some("triage/unknown")));
        }
        let models = models(&sets);
        let model = &models["hero"];
        let text = super::super::examples::text("", "printer di ruang rapat macet tidak bisa cetak");
        let j = super::super::examples::judge(model, &model.scores(&text), "aplikasi/sigi", false);
        assert!(
            matches!(&j, super::super::examples::Judgement::Overrules { best, .. } if best == "triage/unknown"),
            "{j:?}"
        );
    }
}
