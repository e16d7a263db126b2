//! `loket rules lint`: what makes a rules file hard to keep or quietly wrong. Pure: it reads the
//! parsed files and the compiled rules, never the store.
//!
//! - duplicated cues: a phrase both in a route's own table and in a set the route references, or
//!   in two sets one route references (only one counts); a ticket-type, impact-class or urgency
//!   cue defined in both `common.toml` and the desk file (the desk's replaces the common one); a block
//!   of three or more phrases written out in the own tables of more than two routes (make it a
//!   set);
//! - unused sets: a desk set no route references (`lint_common` reports the common sets no desk
//!   references);
//! - routes that can never win: all positive cues together stay below the threshold;
//! - routes without an example;
//! - ties: an example on which the two best routes score the same (settled by the documented
//!   order, or left to triage).

use std::collections::{BTreeMap, BTreeSet};

use super::rules::{CommonFile, DeskFile, effective};
use super::{DeskRules, RouteInput};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub kind: &'static str,
    pub message: String,
}

fn finding(kind: &'static str, message: String) -> Finding {
    Finding { kind, message }
}

/// Every finding for one desk. `rules` is `file` compiled; `default_inbox` is where examples
/// without an inbox arrive.
pub fn lint_desk(file: &DeskFile, common: &CommonFile, rules: &DeskRules, default_inbox: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let set_of = |name: &str| file.sets.get(name).or_else(|| common.sets.get(name));

    // Duplicated cues inside a route.
    for r in &file.routes {
        let mut from_sets: BTreeMap<(&str, &String), Vec<&String>> = BTreeMap::new();
        for (field, names) in [("keywords", &r.use_sets), ("negative", &r.against)] {
            for name in names.keys() {
                let Some(set) = set_of(name) else { continue };
                for p in set.keywords.keys() {
                    from_sets.entry((field, p)).or_default().push(name);
                }
            }
        }
        for ((field, p), names) in &from_sets {
            let own = if *field == "keywords" { &r.keywords } else { &r.negative };
            if own.contains_key(*p) {
                out.push(finding(
                    "duplicated cue",
                    format!(
                        "{}: {field} `{p}` is also in set `{}` (only the route's own weight counts)",
                        r.to, names[0]
                    ),
                ));
            }
            if names.len() > 1 {
                let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
                out.push(finding(
                    "duplicated cue",
                    format!("{}: `{p}` is in sets {} (only the largest weight counts)", r.to, names.join(", ")),
                ));
            }
        }
    }

    // Cues defined both in common.toml and in the desk file: the desk's replaces the common one,
    // so one of them is dead weight or a silent override; define each cue once.
    for (table, shared, own) in
        [("type_cues", &common.type_cues, &file.type_cues), ("urgency_cues", &common.urgency_cues, &file.urgency_cues)]
    {
        for (level, cues) in own {
            let Some(c) = shared.get(level) else { continue };
            for (p, w) in cues {
                if let Some(cw) = c.get(p) {
                    out.push(finding(
                        "duplicated cue",
                        format!("{table}.{level}: `{p}` = {w} is also in common.toml (= {cw}); define it once"),
                    ));
                }
            }
        }
    }
    for (class, cues) in &file.impact_classes {
        let Some(c) = common.impact_classes.get(class) else { continue };
        for (p, w) in &cues.keywords {
            if let Some(cw) = c.keywords.get(p) {
                out.push(finding(
                    "duplicated cue",
                    format!("impact_classes.{class}: `{p}` = {w} is also in common.toml (= {cw}); define it once"),
                ));
            }
        }
    }

    // Blocks of cues copied into more than two routes.
    for field in ["keywords", "negative", "patterns"] {
        let tables: Vec<BTreeSet<&String>> = file
            .routes
            .iter()
            .map(|r| match field {
                "keywords" => r.keywords.keys().collect(),
                "negative" => r.negative.keys().collect(),
                _ => r.patterns.keys().collect(),
            })
            .collect();
        let mut reported: BTreeSet<Vec<&String>> = BTreeSet::new();
        let n = tables.len();
        for a in 0..n {
            for b in a + 1..n {
                let ab: BTreeSet<&String> = tables[a].intersection(&tables[b]).copied().collect();
                if ab.len() < 3 {
                    continue;
                }
                for c in b + 1..n {
                    let block: Vec<&String> = ab.intersection(&tables[c]).copied().collect();
                    if block.len() < 3 || !reported.insert(block.clone()) {
                        continue;
                    }
                    let holders: Vec<&str> = (0..n)
                        .filter(|&i| block.iter().all(|p| tables[i].contains(p)))
                        .map(|i| file.routes[i].to.as_str())
                        .collect();
                    let shown: Vec<&str> = block.iter().take(6).map(|p| p.as_str()).collect();
                    out.push(finding(
                        "duplicated cue",
                        format!(
                            "{field} block of {} ({}{}) is written out in {} routes: {} (make it a set)",
                            block.len(),
                            shown.join(", "),
                            if block.len() > 6 { ", …" } else { "" },
                            holders.len(),
                            holders.join(", ")
                        ),
                    ));
                }
            }
        }
    }

    // Unused desk sets.
    let used: BTreeSet<&String> = file.routes.iter().flat_map(|r| r.use_sets.keys().chain(r.against.keys())).collect();
    for name in file.sets.keys().filter(|n| !used.contains(n)) {
        out.push(finding("unused set", format!("sets.{name}: no route references it")));
    }

    // Routes that can never win, routes without examples.
    let mut example_routes: BTreeSet<&str> = BTreeSet::new();
    for ex in &rules.examples {
        example_routes.insert(ex.route.as_str());
    }
    for r in &file.routes {
        let category = r.to.split('/').next().unwrap_or("");
        if let Ok(e) = effective(r, file, common, category) {
            let text: f64 = e.keywords.values().filter(|w| **w > 0.0).sum::<f64>() * file.subject_weight.max(1.0)
                + e.patterns.values().filter(|w| **w > 0.0).sum::<f64>();
            let signals: f64 = r.inbox.values().chain(r.sender_domains.values()).filter(|w| **w > 0.0).sum();
            if text + signals < file.threshold {
                out.push(finding(
                    "can never win",
                    format!(
                        "{}: all its cues together score {:.1}, below the threshold {:.1}",
                        r.to,
                        text + signals,
                        file.threshold
                    ),
                ));
            }
        }
        if !example_routes.contains(r.to.as_str()) {
            out.push(finding("no example", format!("{}: no [[example]] routes here", r.to)));
        }
    }

    // Ties on the examples.
    for (i, ex) in rules.examples.iter().enumerate() {
        let domain = ex.from.as_deref().and_then(super::eval::sender_domain);
        let input = RouteInput {
            subject: &ex.subject,
            body: &ex.body,
            sender_domain: domain.as_deref(),
            inbox_address: ex.inbox.as_deref().unwrap_or(default_inbox),
        };
        if let Some((a, b, settled)) = rules.tie(&input) {
            let how = if settled { "settled by the tie order" } else { "unsettled: triage" };
            out.push(finding("tie", format!("example[{i}]: {a} and {b} score the same ({how})")));
        }
    }
    out
}

/// Common sets that no desk references.
pub fn lint_common(common: &CommonFile, desks: &[&DeskFile]) -> Vec<Finding> {
    let used: BTreeSet<&String> =
        desks.iter().flat_map(|d| d.routes.iter()).flat_map(|r| r.use_sets.keys().chain(r.against.keys())).collect();
    common
        .sets
        .keys()
        .filter(|n| !used.contains(n))
        .map(|n| finding("unused set", format!("common.toml sets.{n}: no desk references it")))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::catalogue::Catalogue;
    use crate::routing::rules;

    fn repo(p: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
    }

    fn lint_text(text: &str) -> Vec<Finding> {
        let cat = Catalogue::load(&repo("seeds/hero.toml")).unwrap();
        let common = rules::load_common(&repo("rules/common.toml")).unwrap();
        let file: DeskFile = toml::from_str(text).unwrap();
        let compiled = rules::compile(Path::new("t.toml"), toml::from_str(text).unwrap(), &common, &cat).unwrap();
        lint_desk(&file, &common, &compiled, "hero@kemendag.go.id")
    }

    #[test]
    fn reports_each_kind_of_problem() {
        let found = lint_text(
            r#"
desk = "hero"
[type_cues.request]
"reset" = 2.5
"minta" = 3
[impact_classes.unit.keywords]
"lantai" = 1
[sets.unused.keywords]
"x" = 1
[sets.names.keywords]
"sigi" = 4
[[route]]
to = "aplikasi/sigi"
keywords = { "sigi" = 5, "gagal" = 1, "lambat" = 1, "hang" = 1 }
use = { names = 1 }
[[route]]
to = "aplikasi/intranet"
keywords = { "intranet" = 5, "gagal" = 1, "lambat" = 1, "hang" = 1 }
[[route]]
to = "aplikasi/e_sppd"
keywords = { "sppd" = 5, "gagal" = 1, "lambat" = 1, "hang" = 1 }
[[route]]
to = "aplikasi/tnde"
keywords = { "tnde" = 1 }
[[route]]
to = "aplikasi/hero"
keywords = { "sppd" = 5 }
[[example]]
body = "sigi"
route = "aplikasi/sigi"
[[example]]
body = "intranet"
route = "aplikasi/intranet"
[[example]]
body = "sppd"
route = "triage/unknown"
"#,
        );
        let text: Vec<String> = found.iter().map(|f| format!("{}: {}", f.kind, f.message)).collect();
        let has = |s: &str| text.iter().any(|t| t.contains(s));
        assert!(has("duplicated cue: aplikasi/sigi: keywords `sigi` is also in set `names`"), "{text:#?}");
        assert!(has("duplicated cue: type_cues.request: `reset` = 2.5 is also in common.toml (= 2.5)"), "{text:#?}");
        assert!(has("duplicated cue: type_cues.request: `minta` = 3 is also in common.toml (= 1.5)"), "{text:#?}");
        assert!(has("duplicated cue: impact_classes.unit: `lantai` = 1 is also in common.toml (= 1.5)"), "{text:#?}");
        assert!(has("keywords block of 3 (gagal, hang, lambat) is written out in 3 routes"), "{text:#?}");
        assert!(has("unused set: sets.unused"), "{text:#?}");
        assert!(!has("sets.names"), "{text:#?}");
        assert!(has("can never win: aplikasi/tnde: all its cues together score 1.5"), "{text:#?}");
        assert!(has("no example: aplikasi/e_sppd"), "{text:#?}");
        assert!(!has("no example: aplikasi/sigi"), "{text:#?}");
        assert!(
            has("tie: example[2]: aplikasi/e_sppd and aplikasi/hero score the same (unsettled: triage)"),
            "{text:#?}"
        );
    }

    #[test]
    fn common_sets_no_desk_uses_are_reported() {
        let common: CommonFile =
            toml::from_str("[sets.a.keywords]\n\"x\" = 1\n[sets.b.keywords]\n\"y\" = 1\n").unwrap();
        let desk: DeskFile =
            toml::from_str("desk = \"hero\"\n[[route]]\nto = \"aplikasi/sigi\"\nuse = { a = 1 }\n").unwrap();
        let found = lint_common(&common, &[&desk]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("sets.b"));
    }
}
