//! The catalogues in `seeds/` load, and use exactly the label space routing is evaluated against
//! (`tests/fixtures/eval/labels.json`): same categories, subcategories and allowed types per desk.

use std::collections::BTreeMap;

use loket::catalogue::Catalogue;
use serde_json::Value;

use crate::runner::repo;

#[test]
fn seeds_match_the_routing_label_space() {
    let labels: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("tests/fixtures/eval/labels.json")).unwrap())
            .unwrap();
    for desk in ["hero", "pusintek", "djpb", "jateng"] {
        let cat = Catalogue::load(&repo().join(format!("seeds/{desk}.toml"))).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(cat.desk, desk);
        let mut ours = BTreeMap::new();
        for c in &cat.categories {
            for s in &c.subcategories {
                let types: Vec<&str> = s.types.iter().map(|t| t.as_str()).collect();
                ours.insert(format!("{}/{}", c.id, s.id), (types.join(","), s.internal_only));
            }
        }
        let mut theirs = BTreeMap::new();
        for (cid, c) in labels["desks"][desk]["categories"].as_object().unwrap() {
            for (sid, s) in c["subcategories"].as_object().unwrap() {
                let types: Vec<&str> = s["types"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
                let internal = s["recipients"].as_array().is_some_and(|r| r.len() == 1 && r[0] == "internal");
                theirs.insert(format!("{cid}/{sid}"), (types.join(","), internal));
            }
        }
        assert_eq!(ours, theirs, "desk {desk}");
    }
}
