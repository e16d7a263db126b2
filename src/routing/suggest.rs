//! `loket rules suggest`: for each ticket an agent re-routed (`#category`), the words and
//! two-word phrases of its first message that would have routed it right, ranked by how specific
//! they are to it, each checked by re-running the router with the cue added to the corrected
//! route, with the desk's examples it would break. Pure: rules text and examples in, suggestions
//! out; no store, no clock. Nothing is applied: the operator copies a cue into the rules file.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Serialize;

use super::rules::{self, CommonFile, DeskFile, DeskRules, Example, Target};
use super::{RouteInput, eval, normalize};
use crate::catalogue::{Catalogue, TRIAGE_CATEGORY};

/// A corrected message: the text routing saw and the route the agent chose.
#[derive(Debug, Clone)]
pub struct Case {
    /// Names the case in the output (the correction's id and ticket number).
    pub id: String,
    pub subject: String,
    pub body: String,
    pub sender_domain: Option<String>,
    /// `category/subcategory` the agent chose.
    pub expected: String,
}

/// How far to look.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Candidates tried by re-routing, per case (the most specific first).
    pub tries: usize,
    /// Suggestions kept per case.
    pub keep: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { tries: 15, keep: 5 }
    }
}

/// An example of the desk that a suggestion would break.
#[derive(Debug, Clone, Serialize)]
pub struct Broken {
    /// Index among the desk's examples (as `loket rules test` numbers them).
    pub example: usize,
    pub subject: String,
    pub expected: String,
    pub got: String,
}

/// One cue that routes the case right.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// Normalised phrase, as it would stand in the route's `keywords`.
    pub phrase: String,
    /// The smallest weight tried (multiples of the desk's threshold) that routes the case right.
    pub weight: f64,
    /// The desk's labelled texts (examples and other corrections) of another route that hold the
    /// phrase: the fewer, the more specific.
    pub elsewhere: usize,
    /// Of the same route.
    pub same_route: usize,
    pub breaks: Vec<Broken>,
}

/// The suggestions for one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseSuggestions {
    pub id: String,
    pub expected: String,
    /// The route the current rules give.
    pub routed_now: String,
    /// The current rules already route it right: nothing to suggest.
    pub already_right: bool,
    /// Why there is no suggestion, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub suggestions: Vec<Suggestion>,
}

/// The desk's rules from `text` (the rules file at `path`), with `examples` (those of its examples
/// file) added, and `extra` keywords `(route, phrase, weight)` written into the routes.
fn build(
    path: &Path,
    text: &str,
    examples: &[Example],
    common: &CommonFile,
    catalogue: &Catalogue,
    extra: Option<(&str, &str, f64)>,
) -> Result<DeskRules, String> {
    let mut file: DeskFile = toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
    file.examples.extend(examples.iter().cloned());
    if let Some((route, phrase, weight)) = extra {
        let r = file.routes.iter_mut().find(|r| r.to == route).ok_or_else(|| format!("no route `{route}`"))?;
        r.keywords.insert(phrase.to_string(), weight);
    }
    rules::compile(path, file, common, catalogue)
        .map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))
}

fn route_of(rules: &DeskRules, catalogue: &Catalogue, inbox: &str, c: &Case) -> String {
    rules
        .route(
            catalogue,
            &RouteInput {
                subject: &c.subject,
                body: &c.body,
                sender_domain: c.sender_domain.as_deref(),
                inbox_address: inbox,
            },
        )
        .route()
}

/// The examples' outcomes: `Some(got)` where an example fails.
fn example_failures(rules: &DeskRules, catalogue: &Catalogue, inbox: &str) -> HashMap<usize, String> {
    let (_, failures) = eval::run_desk_examples(rules, catalogue, inbox);
    failures.into_iter().map(|f| (f.index, f.got)).collect()
}

/// The text routing matches against: subject and trimmed body, normalised.
fn words_of(rules: &DeskRules, subject: &str, body: &str) -> String {
    let body = crate::mail::trim::trim_reply_text(body);
    normalize::normalize(&format!("{subject}\n{body}"), &rules.synonyms)
}

/// Candidate phrases of a text: words of three letters or more that are not numbers, and pairs
/// of adjacent words of two letters or more.
fn candidates(text: &str) -> BTreeSet<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let word_ok = |w: &str, min: usize| w.chars().count() >= min && !w.chars().all(|c| c.is_ascii_digit());
    let mut out = BTreeSet::new();
    for (i, w) in words.iter().enumerate() {
        if word_ok(w, 3) {
            out.insert(w.to_string());
        }
        if let Some(n) = words.get(i + 1)
            && word_ok(w, 2)
            && word_ok(n, 2)
            && w != n
        {
            out.insert(format!("{w} {n}"));
        }
    }
    out
}

/// Suggestions for every case. `text` is the desk's rules file (at `path`), `examples` those of its
/// examples file; `others` are the desk's other labelled texts used only to rank specificity
/// (e.g. all recorded corrections); `inbox` the address the examples arrive at by default.
#[allow(clippy::too_many_arguments)]
pub fn suggest(
    path: &Path,
    text: &str,
    examples: &[Example],
    common: &CommonFile,
    catalogue: &Catalogue,
    inbox: &str,
    cases: &[Case],
    others: &[Case],
    limits: Limits,
) -> Result<Vec<CaseSuggestions>, String> {
    let base = build(path, text, examples, common, catalogue, None)?;
    let failing_before = example_failures(&base, catalogue, inbox);
    // The labelled texts to rank against: (route, normalised text).
    let mut labelled: Vec<(String, String)> =
        base.examples.iter().map(|e| (e.route.clone(), words_of(&base, &e.subject, &e.body))).collect();
    labelled.extend(others.iter().map(|c| (c.expected.clone(), words_of(&base, &c.subject, &c.body))));

    let mut out = Vec::new();
    for case in cases {
        let routed_now = route_of(&base, catalogue, inbox, case);
        let mut cs = CaseSuggestions {
            id: case.id.clone(),
            expected: case.expected.clone(),
            already_right: routed_now == case.expected,
            routed_now,
            note: None,
            suggestions: Vec::new(),
        };
        let target = base.routes.iter().position(|r| format!("{}/{}", r.category, r.subcategory) == case.expected);
        match target {
            _ if cs.already_right => {}
            _ if case.expected.starts_with(&format!("{TRIAGE_CATEGORY}/")) => {
                cs.note = Some("corrected to triage: a keyword cannot route there; consider a negative cue".into());
            }
            None => cs.note = Some(format!("no route `{}` in the rules", case.expected)),
            Some(t) => {
                cs.suggestions = for_case(
                    &base,
                    path,
                    text,
                    examples,
                    common,
                    catalogue,
                    inbox,
                    case,
                    t,
                    &labelled,
                    &failing_before,
                    limits,
                )?;
                if cs.suggestions.is_empty() {
                    cs.note = Some("no single word or phrase of the message routes it right".into());
                }
            }
        }
        out.push(cs);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn for_case(
    base: &DeskRules,
    path: &Path,
    text: &str,
    examples: &[Example],
    common: &CommonFile,
    catalogue: &Catalogue,
    inbox: &str,
    case: &Case,
    target: usize,
    labelled: &[(String, String)],
    failing_before: &HashMap<usize, String>,
    limits: Limits,
) -> Result<Vec<Suggestion>, String> {
    // Already cues of the target route (own keywords, sets, inherited): not suggested again.
    let known: BTreeSet<&str> = base
        .phrases
        .iter()
        .filter(|p| p.targets.iter().any(|&(t, w)| t == Target::Route(target) && w > 0.0))
        .map(|p| p.text.trim())
        .collect();
    let text_of_case = words_of(base, &case.subject, &case.body);
    let mut ranked: Vec<(usize, usize, usize, String)> = candidates(&text_of_case)
        .into_iter()
        .filter(|c| !known.contains(c.as_str()))
        .map(|c| {
            let needle = format!(" {c} ");
            let (mut elsewhere, mut same) = (0, 0);
            for (route, t) in labelled {
                if t.contains(&needle) {
                    if *route == case.expected { same += 1 } else { elsewhere += 1 }
                }
            }
            (elsewhere, same, text_of_case.matches(&needle).count(), c)
        })
        .collect();
    // The most specific first: least seen on other routes, most seen on this one, most often in
    // this message; then single words before phrases (a word unseen elsewhere generalises
    // further than a phrase that holds it), then alphabetical (stable output).
    ranked.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.cmp(&a.1))
            .then(b.2.cmp(&a.2))
            .then(a.3.contains(' ').cmp(&b.3.contains(' ')))
            .then(a.3.cmp(&b.3))
    });
    let route_name = case.expected.as_str();
    let mut out = Vec::new();
    for (elsewhere, same, _, phrase) in ranked.into_iter().take(limits.tries) {
        let mut found = None;
        for k in 1..=3 {
            let weight = base.threshold * k as f64;
            let rules = build(path, text, examples, common, catalogue, Some((route_name, &phrase, weight)))?;
            if route_of(&rules, catalogue, inbox, case) == case.expected {
                found = Some((weight, rules));
                break;
            }
        }
        let Some((weight, rules)) = found else { continue };
        let failing = example_failures(&rules, catalogue, inbox);
        let breaks = failing
            .iter()
            .filter(|(i, _)| !failing_before.contains_key(i))
            .map(|(&i, got)| {
                let e = &rules.examples[i];
                Broken {
                    example: i,
                    subject: if e.subject.is_empty() { e.body.chars().take(60).collect() } else { e.subject.clone() },
                    expected: e.route.clone(),
                    got: got.clone(),
                }
            })
            .collect::<Vec<_>>();
        out.push(Suggestion { phrase, weight, elsewhere, same_route: same, breaks });
    }
    // Those that break nothing first; the order of specificity otherwise.
    out.sort_by_key(|s| s.breaks.len());
    out.truncate(limits.keep);
    for s in &mut out {
        s.breaks.sort_by_key(|b| b.example);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
desk = "hero"
[[route]]
to = "aplikasi/sigi"
keywords = { "sigi" = 5, "rekap" = 3 }
[[route]]
to = "aplikasi/siasn"
keywords = { "siasn" = 5 }
[[example]]
body = "Rekap gaji bulan ini belum muncul"
route = "aplikasi/sigi"
[[example]]
body = "SIASN minta login ulang, gaji saya"
route = "aplikasi/siasn"
"#;

    fn case(id: &str, subject: &str, body: &str, expected: &str) -> Case {
        Case {
            id: id.into(),
            subject: subject.into(),
            body: body.into(),
            sender_domain: None,
            expected: expected.into(),
        }
    }

    fn run(cases: &[Case]) -> Vec<CaseSuggestions> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let cat = Catalogue::load(&root.join("seeds/hero.toml")).unwrap();
        let common = rules::load_common(&root.join("rules/common.toml")).unwrap();
        let path = Path::new("hero.toml");
        suggest(path, RULES, &[], &common, &cat, "hero@desk.test", cases, cases, Limits { tries: 40, keep: 40 })
            .unwrap()
    }

    #[test]
    fn a_nickname_is_suggested_checked_and_a_cue_that_breaks_an_example_is_reported() {
        let found = run(&[
            case("1", "Gajiku macet", "Gajiku gaji tidak terbuka", "aplikasi/siasn"),
            case("2", "", "SIGI tidak bisa dibuka", "aplikasi/sigi"),
            case("3", "", "printer di ruang operator SIGI rusak", "triage/unknown"),
        ]);
        let first = &found[0];
        assert_eq!((first.routed_now.as_str(), first.already_right), ("triage/unknown", false));
        let best = &first.suggestions[0];
        assert_eq!((best.phrase.as_str(), best.weight, best.elsewhere), ("gajiku", 3.0, 0));
        assert!(best.breaks.is_empty(), "{best:?}");
        // "gaji" is in the SIGI example too: routing it to SIASN breaks that example, and it is
        // ranked after the cues no other route's text holds.
        let gaji = first.suggestions.iter().find(|s| s.phrase == "gaji").expect("gaji routes it too");
        assert_eq!(gaji.elsewhere, 1);
        assert_eq!(gaji.breaks.iter().map(|b| b.expected.as_str()).collect::<Vec<_>>(), ["aplikasi/sigi"]);
        assert!(first.suggestions.iter().position(|s| s.phrase == "gaji") > Some(0));
        assert!(found[1].already_right && found[1].suggestions.is_empty());
        assert!(found[2].note.as_deref().is_some_and(|n| n.contains("triage")), "{:?}", found[2]);
        // Already a cue of the route: never suggested again.
        assert!(found.iter().flat_map(|c| &c.suggestions).all(|s| s.phrase != "sigi" && s.phrase != "siasn"));
    }

    #[test]
    fn candidates_are_words_and_adjacent_pairs_without_numbers() {
        let c = candidates(" ruang server kami 12 di dc ");
        for want in ["ruang", "server", "kami", "ruang server", "server kami", "di dc"] {
            assert!(c.contains(want), "{want} in {c:?}");
        }
        assert!(!c.contains("12") && !c.contains("kami 12") && !c.contains("di"), "{c:?}");
    }
}
