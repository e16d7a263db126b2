//! The guided `/baru` flow, after HERO's ticket form: category → subcategory → type → impact
//! (incidents only) → subject → description. Only the services open to the requester are
//! offered; a step with one possible answer is skipped; `/batal` (or the button) cancels at any
//! step. The state is plain data, kept between messages in the store.

use serde::{Deserialize, Serialize};

use super::Button;
use crate::catalogue::Catalogue;
use crate::domain::{Impact, Language, TicketType};
use crate::templates::{TemplateError, Templates};

/// Longest subject kept (characters).
pub const MAX_SUBJECT_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Category,
    Subcategory,
    Type,
    Impact,
    Subject,
    Description,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub step: Step,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub subcategory: Option<String>,
    #[serde(default)]
    pub ticket_type: Option<TicketType>,
    #[serde(default)]
    pub impact: Option<Impact>,
    #[serde(default)]
    pub subject: Option<String>,
}

/// What to ask next: the step, its numbered options (empty for free text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub step: Step,
    pub options: Vec<Button>,
    /// The answer was not one of the options: ask again.
    pub retry: bool,
}

/// The completed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub category: String,
    pub subcategory: String,
    pub ticket_type: Option<TicketType>,
    pub impact: Option<Impact>,
    pub subject: String,
    pub description: String,
}

pub enum Advance {
    Ask(Flow, Prompt),
    Done(Form),
}

/// Data of the cancel button.
pub const CANCEL: &str = "f:x";

fn choice(i: usize, label: &str) -> Button {
    Button { label: label.to_string(), data: format!("f:{i}") }
}

/// The words of the flow's fixed choices, from the templates (`_labels.j2`'s `flow_*` keys): the
/// flow orders and matches them, the templates say them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowLabels {
    pub question: String,
    pub request: String,
    pub incident: String,
    pub change: String,
    pub impact_low: String,
    pub impact_medium: String,
    pub impact_high: String,
}

impl FlowLabels {
    /// The labels in `lang`.
    pub fn of(t: &Templates, lang: Language) -> Result<Self, TemplateError> {
        Ok(Self {
            question: t.label(lang, "flow_question")?,
            request: t.label(lang, "flow_request")?,
            incident: t.label(lang, "flow_incident")?,
            change: t.label(lang, "flow_change")?,
            impact_low: t.label(lang, "flow_impact_low")?,
            impact_medium: t.label(lang, "flow_impact_medium")?,
            impact_high: t.label(lang, "flow_impact_high")?,
        })
    }

    pub fn of_type(&self, t: TicketType) -> &str {
        match t {
            TicketType::Question => &self.question,
            TicketType::Request => &self.request,
            TicketType::Incident => &self.incident,
            TicketType::Change => &self.change,
        }
    }

    pub fn of_impact(&self, i: Impact) -> &str {
        match i {
            Impact::Low => &self.impact_low,
            Impact::Medium => &self.impact_medium,
            Impact::High => &self.impact_high,
        }
    }
}

const IMPACTS: [Impact; 3] = [Impact::Low, Impact::Medium, Impact::High];

/// Categories with at least one subcategory open to the requester.
fn categories(cat: &Catalogue, internal: bool) -> Vec<&crate::catalogue::Category> {
    cat.categories.iter().filter(|c| c.subcategories.iter().any(|s| internal || !s.internal_only)).collect()
}

fn subcategories<'c>(cat: &'c Catalogue, category: &str, internal: bool) -> Vec<&'c crate::catalogue::Subcategory> {
    cat.category(category)
        .map(|c| c.subcategories.iter().filter(|s| internal || !s.internal_only).collect())
        .unwrap_or_default()
}

/// Starts a flow.
pub fn start(cat: &Catalogue, internal: bool, labels: &FlowLabels) -> Advance {
    let flow = Flow {
        step: Step::Category,
        category: None,
        subcategory: None,
        ticket_type: None,
        impact: None,
        subject: None,
    };
    settle(flow, cat, internal, labels, false)
}

/// The prompt of the flow's current step, skipping steps with a single answer.
fn settle(mut flow: Flow, cat: &Catalogue, internal: bool, labels: &FlowLabels, retry: bool) -> Advance {
    loop {
        let options: Vec<Button> = match flow.step {
            Step::Category => {
                let cats = categories(cat, internal);
                if cats.len() == 1 {
                    flow.category = Some(cats[0].id.clone());
                    flow.step = Step::Subcategory;
                    continue;
                }
                cats.iter().enumerate().map(|(i, c)| choice(i, &c.name)).collect()
            }
            Step::Subcategory => {
                let subs = subcategories(cat, flow.category.as_deref().unwrap_or(""), internal);
                if subs.len() == 1 {
                    flow.subcategory = Some(subs[0].id.clone());
                    flow.step = Step::Type;
                    continue;
                }
                subs.iter().enumerate().map(|(i, s)| choice(i, &s.name)).collect()
            }
            Step::Type => {
                let types = types_of(cat, &flow);
                if types.len() <= 1 {
                    flow.ticket_type = types.first().copied();
                    flow.step = next_after_type(flow.ticket_type);
                    continue;
                }
                types.iter().enumerate().map(|(i, t)| choice(i, labels.of_type(*t))).collect()
            }
            Step::Impact => IMPACTS.iter().enumerate().map(|(i, x)| choice(i, labels.of_impact(*x))).collect(),
            Step::Subject | Step::Description => Vec::new(),
        };
        return Advance::Ask(flow.clone(), Prompt { step: flow.step, options, retry });
    }
}

fn types_of(cat: &Catalogue, flow: &Flow) -> Vec<TicketType> {
    cat.subcategory(flow.category.as_deref().unwrap_or(""), flow.subcategory.as_deref().unwrap_or(""))
        .map(|s| s.types.clone())
        .unwrap_or_default()
}

fn next_after_type(t: Option<TicketType>) -> Step {
    if t == Some(TicketType::Incident) { Step::Impact } else { Step::Subject }
}

/// Which option an answer picks: a button (`f:2`), a typed number (`3`, 1-based) or a typed label.
fn pick(answer: &str, options: &[Button]) -> Option<usize> {
    let a = answer.trim();
    if let Some(i) = a.strip_prefix("f:").and_then(|n| n.parse::<usize>().ok()) {
        return (i < options.len()).then_some(i);
    }
    if let Ok(n) = a.trim_end_matches('.').parse::<usize>() {
        return (1..=options.len()).contains(&n).then(|| n - 1);
    }
    options.iter().position(|o| o.label.eq_ignore_ascii_case(a))
}

/// Applies an answer (button data or typed text) to the flow.
pub fn advance(flow: Flow, cat: &Catalogue, internal: bool, labels: &FlowLabels, answer: &str) -> Advance {
    let current = match settle(flow, cat, internal, labels, false) {
        Advance::Ask(f, p) => (f, p),
        done => return done,
    };
    let (mut flow, prompt) = current;
    let text = answer.trim();
    match flow.step {
        Step::Category | Step::Subcategory | Step::Type | Step::Impact => {
            let Some(i) = pick(text, &prompt.options) else { return settle(flow, cat, internal, labels, true) };
            match flow.step {
                Step::Category => {
                    flow.category = categories(cat, internal).get(i).map(|c| c.id.clone());
                    flow.step = Step::Subcategory;
                }
                Step::Subcategory => {
                    let subs = subcategories(cat, flow.category.as_deref().unwrap_or(""), internal);
                    flow.subcategory = subs.get(i).map(|s| s.id.clone());
                    flow.step = Step::Type;
                }
                Step::Type => {
                    flow.ticket_type = types_of(cat, &flow).get(i).copied();
                    flow.step = next_after_type(flow.ticket_type);
                }
                _ => {
                    flow.impact = IMPACTS.get(i).copied();
                    flow.step = Step::Subject;
                }
            }
            settle(flow, cat, internal, labels, false)
        }
        Step::Subject => {
            if text.is_empty() || text.starts_with("f:") {
                return settle(flow, cat, internal, labels, true);
            }
            flow.subject = Some(text.chars().take(MAX_SUBJECT_CHARS).collect());
            flow.step = Step::Description;
            settle(flow, cat, internal, labels, false)
        }
        Step::Description => {
            if text.is_empty() || text.starts_with("f:") {
                return settle(flow, cat, internal, labels, true);
            }
            Advance::Done(Form {
                category: flow.category.unwrap_or_default(),
                subcategory: flow.subcategory.unwrap_or_default(),
                ticket_type: flow.ticket_type,
                impact: flow.impact,
                subject: flow.subject.unwrap_or_default(),
                description: text.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> FlowLabels {
        let t = Templates::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")).unwrap();
        FlowLabels::of(&t, Language::Id).unwrap()
    }

    fn hero() -> Catalogue {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/hero.toml");
        Catalogue::load(&path).expect("hero catalogue")
    }

    fn ask(a: Advance) -> (Flow, Prompt) {
        match a {
            Advance::Ask(f, p) => (f, p),
            Advance::Done(f) => panic!("finished early: {f:?}"),
        }
    }

    #[test]
    fn the_form_in_order_with_typed_and_pressed_answers() {
        let cat = hero();
        let (f, p) = ask(start(&cat, false, &id()));
        assert_eq!(p.step, Step::Category);
        let app = cat.categories.iter().position(|c| c.id == "aplikasi").expect("aplikasi");
        let (f, p) = ask(advance(f, &cat, false, &id(), &format!("f:{app}")));
        assert_eq!(p.step, Step::Subcategory);
        let portal = p.options.iter().position(|o| o.label.starts_with("Portal Satu Data")).expect("portal offered");
        let (f, p) = ask(advance(f, &cat, false, &id(), &format!("{}", portal + 1)));
        assert_eq!(p.step, Step::Type);
        let (f, p) = ask(advance(f, &cat, false, &id(), "Kendala"));
        assert_eq!((p.step, f.ticket_type), (Step::Impact, Some(TicketType::Incident)));
        let (f, p) = ask(advance(f, &cat, false, &id(), "99"));
        assert!(p.retry && p.step == Step::Impact, "an answer that is no option asks again");
        let (f, p) = ask(advance(f, &cat, false, &id(), "f:2"));
        assert_eq!((p.step, f.impact), (Step::Subject, Some(Impact::High)));
        let (f, p) = ask(advance(f, &cat, false, &id(), "Tidak bisa login portal"));
        assert_eq!(p.step, Step::Description);
        match advance(f, &cat, false, &id(), "Muncul pesan error 500 sejak pagi") {
            Advance::Done(form) => {
                assert_eq!((form.category.as_str(), form.subcategory.as_str()), ("aplikasi", "portal_satu_data"));
                assert_eq!(form.subject, "Tidak bisa login portal");
            }
            Advance::Ask(_, p) => panic!("not done: {p:?}"),
        }
    }

    #[test]
    fn internal_only_services_are_offered_only_to_internal_requesters() {
        let cat = hero();
        let internal_only: Vec<_> = cat
            .categories
            .iter()
            .flat_map(|c| c.subcategories.iter().map(move |s| (c, s)))
            .filter(|(_, s)| s.internal_only)
            .collect();
        assert!(!internal_only.is_empty(), "the HERO catalogue has internal-only services");
        for (c, s) in internal_only {
            let (f, p) = ask(start(&cat, false, &id()));
            if let Some(i) = p.options.iter().position(|o| o.label == c.name) {
                let (_, p) = ask(advance(f, &cat, false, &id(), &format!("f:{i}")));
                assert!(p.options.iter().all(|o| o.label != s.name), "{} offered to an outsider", s.name);
            }
        }
    }
}
