//! Reply trimming against the email_reply_trimmer (Discourse) fixtures: `emails/X.txt` trimmed
//! must equal `trimmed/X.txt` after white-space normalisation, for at least 90 % of the files.
//! Only reads files: needs none of the test servers.

use loket::pipeline::trim::trim_reply;

use crate::harness::repo;

fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn trimming_agrees_with_the_reply_trimmer_corpus() {
    let corpus = repo().join("../shared/corpus/email-reply-trimmer");
    let mut names: Vec<String> = std::fs::read_dir(corpus.join("emails"))
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    assert!(names.len() >= 60, "corpus incomplete: {} files under {}", names.len(), corpus.display());
    let read = |dir: &str, name: &str| {
        let p = corpus.join(dir).join(name);
        String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).to_string()
    };
    let mut failing = Vec::new();
    for name in &names {
        let got = trim_reply(&read("emails", name));
        if normalise(&got.text) != normalise(&read("trimmed", name)) {
            failing.push(name.as_str());
        }
    }
    let agree = names.len() - failing.len();
    let rate = agree as f64 / names.len() as f64;
    eprintln!("reply trimming: {agree}/{} agree with the corpus ({:.1} %)", names.len(), rate * 100.0);
    for name in &failing {
        eprintln!("  differs: {name}");
    }
    assert!(rate >= 0.90, "agreement {:.1} % is below 90 %; differing: {failing:?}", rate * 100.0);
}
