//! Learning from agents (issue 18, acceptance 3), as one story on a SQLite store and the CLI:
//! a requester names SIGI by a nickname the rules do not know, so the ticket goes to triage; the
//! agent moves it with `#category aplikasi/sigi` (and sets `#priority p2`), which is recorded in
//! the store; `loket rules suggest` proposes a cue that would have routed it and breaks no desk
//! example; with that cue added to a copy of the rules, `loket rules eval` on the exported
//! corrections goes from 0/1 to 1/1 and `loket rules test` fails no more examples than before.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use loket::config::Config;
use loket::pipeline::Pipeline;
use loket::store::Store;
use loket::templates::Templates;
use serde_json::Value;

use crate::hero::{self, Hero};
use crate::runner::repo;

const SECRET_ENV: &str = "LEARNING_STORY_SECRET";
const SECRET: &str = "the learning story's token secret";

fn config_text(dir: &Path, rules: Option<&Path>) -> String {
    let db = hero::sqlite_in(dir);
    let out = format!("transport = \"file\"\ndirectory = \"{}\"\n", dir.join("out").display());
    Hero {
        rules,
        storage: &db,
        outbound: &out,
        sections: &format!("[security]\ntoken_secret_env = \"{SECRET_ENV}\"\n"),
        desk: "[[desk.group]]\nid = \"l1\"\nname = \"Service Desk\"\nlayer = 1\n\
               [[desk.agent]]\naddress = \"agus@desk.test\"\nname = \"Agus\"\ngroups = [\"l1\"]\n",
        ..Default::default()
    }
    .toml(&repo())
}

fn loket(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loket"))
        .env(SECRET_ENV, SECRET)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn mail(from: &str, subject: &str, id: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: hero@desk.test\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Thu, 3 Dec 2026 09:00:00 +0700\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         {headers}\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The `subcategory` figure of `rules eval`'s summary: (right, all).
fn subcategory_score(stderr: &[u8]) -> (usize, usize) {
    let text = String::from_utf8_lossy(stderr);
    let first = text.lines().next().unwrap_or_default();
    let inside = first.split("subcategory").nth(1).and_then(|s| s.split('(').nth(1)).and_then(|s| s.split(')').next());
    let (a, b) = inside.and_then(|s| s.split_once('/')).unwrap_or_else(|| panic!("no subcategory score in {text}"));
    (a.trim().parse().unwrap(), b.trim().parse().unwrap())
}

/// Examples failing under `rules test` (its last line: "N passed, M failed").
fn failing_examples(o: &Output) -> usize {
    let text = String::from_utf8_lossy(&o.stdout);
    let last = text.lines().last().unwrap_or_default();
    last.split(", ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"))
}

/// A copy of the repository's rules with `phrase = weight` added to the keywords of `route`.
fn rules_with(dir: &Path, route: &str, phrase: &str, weight: f64) -> PathBuf {
    let to = dir.join("rules-copy");
    std::fs::create_dir_all(&to).unwrap();
    // The rules files; the labelled messages are linked, not copied.
    for e in std::fs::read_dir(repo().join("rules")).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            std::os::unix::fs::symlink(e.path(), to.join(e.file_name())).unwrap();
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let path = to.join("hero.toml");
    let mut doc: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let routes = doc.get_mut("route").and_then(|r| r.as_array_mut()).expect("[[route]]");
    let r = routes.iter_mut().find(|r| r.get("to").and_then(|t| t.as_str()) == Some(route)).expect("the route");
    let r = r.as_table_mut().unwrap();
    let keywords = r.entry("keywords").or_insert_with(|| toml::Value::Table(Default::default()));
    keywords.as_table_mut().unwrap().insert(phrase.into(), toml::Value::Float(weight));
    std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
    to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_category_correction_is_recorded_suggested_and_improves_eval() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("loket.toml");
    let text = config_text(dir.path(), None);
    std::fs::write(&config, &text).unwrap();
    let env = |k: &str| (k == SECRET_ENV).then(|| SECRET.to_string());
    let cfg = Arc::new(Config::from_toml(&config, &text, env).unwrap());
    let templates = Arc::new(Templates::load(&cfg.templates).unwrap());
    let store = Store::open(&cfg.storage).await.unwrap();
    let pipeline = Pipeline::new(store.clone(), cfg.clone(), templates, Arc::new(tokio::sync::Notify::new()));

    // 1. A requester calls SIGI by the nickname "Gajiku": no rule knows it, the ticket waits in triage.
    let now = 1_796_000_000_000;
    let first = mail(
        "Rina Operator <rina.operator@kemendag.go.id>",
        "Gajiku macet",
        "gajiku-1@kemendag.go.id",
        "",
        "Selamat pagi,\r\nGajiku tidak mau terbuka sejak pagi.\r\nTerima kasih,\r\nRina",
    );
    let out = pipeline.process("hero", &first, now).await.unwrap();
    let number = out.ticket.expect("a ticket").to_string();
    let row = sqlx::query_as::<_, (String, String)>("SELECT category, subcategory FROM tickets WHERE number = $1")
        .bind(&number)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(row, ("triage".to_string(), "unknown".to_string()), "the story needs a ticket the rules misroute");

    // 2. The agent answers the notification: #category and #priority, signed by the token.
    let signer = cfg.signer.as_ref().expect("the token secret is set");
    let id = signer.message_id("hero", &number, "agus@desk.test", "n1", "desk.test");
    let reply = mail(
        "Agus <agus@desk.test>",
        &format!("Re: [#{number}] Gajiku macet"),
        "agus-1@desk.test",
        &format!("In-Reply-To: <{id}>\r\nReferences: <{id}>\r\n"),
        "#category aplikasi/sigi\r\n#type kendala\r\n#priority p2\r\nGajiku adalah SIGI.",
    );
    pipeline.process("hero", &reply, now + 60_000).await.unwrap();
    // A reply in the agent's name without the token (a forged From) changes and records nothing.
    let forged = mail(
        "Agus <agus@desk.test>",
        &format!("Re: [#{number}] Gajiku macet"),
        "forged-1@elsewhere.test",
        "",
        "#category aplikasi/exim\r\n#priority p1",
    );
    pipeline.process("hero", &forged, now + 120_000).await.unwrap();
    let rows = loket::store::corrections::corrections(store.pool(), "hero", 0).await.unwrap();
    let fields: Vec<(&str, &str)> = rows.iter().map(|c| (c.field.as_str(), c.corrected.as_str())).collect();
    assert_eq!(fields, vec![("category", "aplikasi/sigi"), ("type", "incident"), ("priority", "P2")]);
    assert_eq!(rows[0].routed.as_deref(), Some("triage/unknown"), "what the router said");
    assert_eq!(rows[0].previous.as_deref(), Some("triage/unknown"));
    let c = &rows[0];
    assert_eq!((c.ticket_number.as_str(), c.agent.as_str()), (number.as_str(), "agus@desk.test"));
    assert_eq!(
        (c.category.as_str(), c.subcategory.as_str(), c.ticket_type.as_deref()),
        ("aplikasi", "sigi", Some("incident"))
    );
    assert_eq!(c.subject, "Gajiku macet");
    assert!(c.body.contains("Gajiku tidak mau terbuka"), "{}", c.body);
    assert_eq!(c.sender_domain.as_deref(), Some("kemendag.go.id"), "the domain only, never the address");
    assert!(!c.body.contains("rina.operator") && !c.subject.contains("rina.operator"));
    store.close().await;

    // 3. `rules suggest` proposes cues that route it; the best one breaks no desk example.
    let suggested: Value =
        serde_json::from_str(&ok(&loket(&config, &["rules", "suggest", "--desk", "hero", "--json"]))).unwrap();
    let case = &suggested["cases"][0];
    assert_eq!(suggested["cases"].as_array().unwrap().len(), 1, "{suggested:#}");
    assert_eq!((case["ticket"].as_str(), case["expected"].as_str()), (Some(number.as_str()), Some("aplikasi/sigi")));
    assert_eq!(case["routed_now"], "triage/unknown");
    let best = &case["suggestions"][0];
    assert_eq!(best["phrase"], "gajiku", "{suggested:#}");
    assert_eq!(best["breaks"].as_array().unwrap().len(), 0, "{suggested:#}");
    let weight = best["weight"].as_f64().unwrap();
    let text_out = ok(&loket(&config, &["rules", "suggest", "--desk", "hero"]));
    assert!(text_out.contains("\"gajiku\" = ") && text_out.contains("breaks no example"), "{text_out}");

    // 4. Evaluated on the exported corrections: 0/1 with the rules as they are ...
    let export = ok(&loket(&config, &["rules", "corrections", "export", "--desk", "hero"]));
    assert_eq!(export.lines().count(), 1, "one corrected ticket: {export}");
    let line: Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert_eq!(line["expected"]["subcategory"], "sigi");
    let labelled = dir.path().join("corrections.jsonl");
    std::fs::write(&labelled, &export).unwrap();
    let labelled_arg = labelled.to_str().unwrap();
    let before = loket(&config, &["rules", "eval", "--input", labelled_arg]);
    assert_eq!(subcategory_score(&ok_stderr(&before)), (0, 1));
    let tested_before = loket(&config, &["rules", "test", "--desk", "hero"]);

    // ... and 1/1 once the operator copies the suggestion into (a copy of) the rules file, with
    // no more failing examples than before.
    let copy = rules_with(dir.path(), "aplikasi/sigi", "gajiku", weight);
    let config2 = dir.path().join("loket-copy.toml");
    std::fs::write(&config2, config_text(dir.path(), Some(&copy))).unwrap();
    let after = loket(&config2, &["rules", "eval", "--input", labelled_arg]);
    assert_eq!(subcategory_score(&ok_stderr(&after)), (1, 1));
    let tested_after = loket(&config2, &["rules", "test", "--desk", "hero"]);
    assert_eq!(failing_examples(&tested_after), failing_examples(&tested_before), "no desk example broke");
    // The suggestion changed nothing by itself: the original rules still send it to triage.
    let again = loket(&config, &["rules", "eval", "--input", labelled_arg]);
    assert_eq!(subcategory_score(&ok_stderr(&again)), (0, 1));
}

fn ok_stderr(o: &Output) -> Vec<u8> {
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    o.stderr.clone()
}
