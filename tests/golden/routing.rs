//! Routing, measured without servers: the dev set's thresholds (acceptance 1, on
//! `tests/fixtures/eval/routing-dev.jsonl`), every rules file's examples with at least three per
//! subcategory (acceptance 2), and the `loket rules test` / `loket rules eval` commands.

use std::collections::BTreeMap;

use loket::config::Config;
use loket::routing::eval::{self, Labelled, Metrics};
use serde_json::Value;

use crate::runner::repo;

fn repo_config() -> Config {
    Config::load(&repo().join("loket.toml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn dev_set_meets_the_quality_bar() {
    let config = repo_config();
    let text = std::fs::read_to_string(repo().join("tests/fixtures/eval/routing-dev.jsonl")).unwrap();
    let mut metrics = Metrics::default();
    let mut misses = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let m: Labelled = serde_json::from_str(line).unwrap();
        let desk = config.desk(&m.desk).unwrap();
        let (p, _) = eval::predict(&config.router, &desk.catalogue, &desk.inboxes[0].address, &m);
        let e = m.expected.as_ref().unwrap();
        if (p.category.as_str(), p.subcategory.as_str()) != (e.category.as_str(), e.subcategory.as_str()) {
            misses
                .push(format!("{}: got {}/{} want {}/{}", m.id, p.category, p.subcategory, e.category, e.subcategory));
        }
        metrics.add(&p, e);
    }
    let summary = metrics.summary();
    eprintln!("routing dev set: {summary}\n{}", misses.join("\n"));
    assert_eq!(metrics.messages, 90);
    assert!(metrics.subcategory_pct() >= 90.0, "{summary}\n{}", misses.join("\n"));
    assert!(metrics.type_pct() >= 90.0, "{summary}");
    assert!(metrics.impact_pct() >= 80.0, "{summary}");
    assert!(metrics.triage_recall_pct() >= 80.0, "{summary}");
    assert!(metrics.confidently_wrong_pct() <= 5.0, "{summary}");
}

#[test]
fn rules_examples_pass_with_three_per_subcategory() {
    let config = repo_config();
    for desk in &config.desks {
        let (n, failures) = eval::run_examples(&config.router, &desk.catalogue, &desk.inboxes[0].address);
        let f: Vec<String> = failures
            .iter()
            .map(|f| format!("#{} want {} got {} ({})", f.index, f.expected, f.got, f.subject))
            .collect();
        assert!(failures.is_empty(), "{}: {} of {n} examples fail:\n{}", desk.id, failures.len(), f.join("\n"));
        let rules = config.router.desk(&desk.id).unwrap_or_else(|| panic!("no rules/{}.toml", desk.id));
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for ex in &rules.examples {
            *per.entry(ex.route.clone()).or_default() += 1;
        }
        for c in &desk.catalogue.categories {
            for s in &c.subcategories {
                let k = format!("{}/{}", c.id, s.id);
                assert!(
                    per.get(&k).copied().unwrap_or(0) >= 3,
                    "{}: {k} has {} examples",
                    desk.id,
                    per.get(&k).copied().unwrap_or(0)
                );
            }
        }
        assert!(per.get("triage/unknown").copied().unwrap_or(0) >= 3, "{}: triage examples", desk.id);
    }
}

#[test]
fn loket_rules_test_command_passes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
        .current_dir(repo())
        .args(["rules", "test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

/// `loket rules eval` keeps its fixed interface: one JSON object per message with exactly these keys.
#[test]
fn loket_rules_eval_interface() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
        .current_dir(repo())
        .args(["rules", "eval", "--input", "tests/fixtures/eval/routing-dev.jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 90);
    for v in &lines {
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys.len(), 6, "{v}");
        for k in ["id", "category", "subcategory", "type", "impact", "confidence"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("subcategory"));
}
