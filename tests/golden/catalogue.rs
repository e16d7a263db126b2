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
                // Change tickets (`change_tickets`) are filed by agents, not a routing label.
                let types: Vec<&str> =
                    s.types.iter().filter(|t| **t != loket::domain::TicketType::Change).map(|t| t.as_str()).collect();
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

/// Issue #17, acceptance 3: the shipped `loket.toml` is the four desks as their documents describe
/// them, and `loket check-config` finds nothing wrong with it (offline: the store is not opened).
#[test]
fn the_shipped_configuration_checks_clean_with_every_inbox_the_seeds_name() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loket"))
        .args(["check-config", "--offline"])
        .current_dir(repo())
        .env_remove("LOKET_CONFIG")
        .env_remove("LOKET_DATABASE_URL")
        .output()
        .expect("loket runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check-config: {stdout}\n{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("loket.toml: ok (4 desk(s), 7 inbox(es), templates in templates)"), "{stderr}");
    // Other tests may have made the token secret already; checking makes nothing itself.
    for line in lines {
        assert!(line.starts_with("security.token_secret_file: not made yet"), "{stdout}");
    }
    let cfg = loket::config::Config::load(&repo().join("loket.toml")).unwrap_or_else(|e| panic!("{e}"));
    let hero = cfg.desk("hero").expect("hero");
    let addresses: Vec<String> = hero.inboxes.iter().map(|i| i.address.to_string()).collect();
    for a in [
        "hero@kemendag.go.id",
        "ska@kemendag.go.id",
        "layanandata.pdsi@kemendag.go.id",
        "orgpeg.pusdatin@kemendag.go.id",
    ] {
        assert!(addresses.contains(&a.to_string()), "{a} in {addresses:?}");
    }
    let policy = hero.attachments.as_ref().expect("HERO's attachment policy");
    assert_eq!((policy.max_bytes, policy.allowed.len()), (2 * 1024 * 1024, 11));
    for desk in &cfg.desks {
        let layers: Vec<u8> = desk.groups.iter().map(|g| g.layer).collect();
        assert!(layers.contains(&1) && layers.contains(&2), "{}: groups per layer {layers:?}", desk.id);
    }
    let djpb = cfg.desk("djpb").and_then(|d| d.sla.as_ref()).expect("DJPb's SLA");
    assert!(djpb.always_priorities.contains(&loket::domain::Priority::P1), "DJPb's P1 runs around the clock");
}

/// `http.public_url` (the acknowledgement's tracking link) must be an http(s) URL; a trailing slash
/// is dropped.
#[test]
fn the_public_url_is_checked_and_kept_without_its_trailing_slash() {
    let path = repo().join("loket.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let commented = "# public_url = \"https://helpdesk.example.go.id\"";
    assert!(text.contains(commented), "the shipped file shows the key");
    let with = |url: &str| text.replace(commented, &format!("public_url = \"{url}\""));
    let cfg = loket::config::Config::from_toml(&path, &with("https://helpdesk.example.go.id/"), |_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.public_url.as_deref(), Some("https://helpdesk.example.go.id"));
    for bad in ["helpdesk.example.go.id", "javascript:alert(1)", "https://x.test/?a=b", "https:// spaced.test"] {
        let err = loket::config::Config::from_toml(&path, &with(bad), |_| None).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("http.public_url")), "{bad}: {err:?}");
    }
}
