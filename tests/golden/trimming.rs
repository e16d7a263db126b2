//! Reply trimming against the email_reply_trimmer (Discourse) fixtures as golden files: for each
//! `tests/corpus/email-reply-trimmer/emails/X.txt`, `tests/golden/trim/email-reply-trimmer/X.json`
//! pins Loket's trimmed text next to the trimmer's (`trimmed/X.txt`) and whether they agree after
//! white-space normalisation. The agreement ratio is printed and must stay at least 90 %.

use std::path::Path;

use loket::mail::trim::trim_reply;
use serde::Serialize;

use crate::runner::{Golden, corpus, normalise, read};

#[derive(Serialize)]
struct TrimCase {
    input: String,
    trimmed: String,
    elided_chars: usize,
    peer: Peer,
    agrees: bool,
}

#[derive(Serialize)]
struct Peer {
    source: &'static str,
    trimmed: String,
}

#[test]
fn reply_trimmer_cases_match_their_golden_files() {
    let dir = corpus().join("email-reply-trimmer");
    let mut names: Vec<String> = std::fs::read_dir(dir.join("emails"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    assert!(names.len() >= 60, "corpus incomplete: {} files under {}", names.len(), dir.display());
    let text = |sub: &str, name: &str| String::from_utf8_lossy(&read(&dir.join(sub).join(name))).to_string();
    let mut g = Golden::new("reply trimming", &["trim/email-reply-trimmer"]);
    let mut failing = Vec::new();
    for name in &names {
        let got = trim_reply(&text("emails", name));
        let want = text("trimmed", name);
        let agrees = normalise(&got.text) == normalise(&want);
        if !agrees {
            failing.push(name.as_str());
        }
        let case = TrimCase {
            input: format!("email-reply-trimmer/emails/{name}"),
            elided_chars: got.elided.chars().count(),
            trimmed: got.text,
            peer: Peer { source: "email_reply_trimmer (trimmed/)", trimmed: want.trim().to_string() },
            agrees,
        };
        let stem = name.strip_suffix(".txt").unwrap_or(name);
        g.check(&Path::new("trim/email-reply-trimmer").join(format!("{stem}.json")), &case);
    }
    let agree = names.len() - failing.len();
    let rate = agree as f64 / names.len() as f64;
    eprintln!("reply trimming: {agree}/{} agree with the corpus ({:.1} %)", names.len(), rate * 100.0);
    for name in &failing {
        eprintln!("  differs: {name}");
    }
    g.finish();
    assert!(rate >= 0.90, "agreement {:.1} % is below 90 %; differing: {failing:?}", rate * 100.0);
}
