//! The corpus run: all 1,178 third-party messages of `tests/corpus/` (listed with their classes
//! in `tests/corpus/classes.tsv`, the team's header and MIME heuristics) through the pure
//! decisions that say whether Loket acknowledges a new mail: parse, the loop guard
//! (`mail::loopguard`) and the hygiene screen (`mail::hygiene`, the desk's default policy), as a
//! fresh desk would see them (no ticket to thread to). The table by class is a golden file
//! (`tests/golden/mail-run/acknowledgements.txt`) and is printed; automatic mail (bounces, delay
//! and delivery reports, feedback reports, read receipts, auto-replies, auto-generated mail,
//! mailing lists, bulk) gets no acknowledgement at all.

use std::collections::BTreeMap;
use std::path::Path;

use loket::mail::hygiene::{self, Policy};
use loket::mail::loopguard;
use loket::mail::parse;

use crate::runner::{Golden, corpus, golden_root, read};

/// The classes of `classes.tsv` that machines write.
const AUTOMATIC: &[&str] = &[
    "bounce",
    "dsn_delayed",
    "delivery_report",
    "feedback_report",
    "read_receipt",
    "auto_reply",
    "auto_generated",
    "mailing_list",
    "bulk",
];

/// Messages that `classes.tsv`'s heuristics put in an automatic class although a person wrote
/// them, with why; the run acknowledges them and says so in the table.
const WRITTEN_BY_PEOPLE: &[(&str, &str)] = &[(
    "sisimai/bsd/lhost-sendmail-14.eml",
    "a person forwarding a bounce to the desk (\"Fwd: Returned mail: see transcript for details\", \
     \"Forward the message.\"); the heuristic read the forwarded report",
)];

#[derive(Default)]
struct Row {
    messages: usize,
    parsed: usize,
    opens_ticket: usize,
    acknowledged: usize,
}

/// Whether a fresh desk would acknowledge this mail: it parses, the loop guard lets it open a
/// ticket and be answered, and the hygiene screen passes it.
fn acknowledged(raw: &[u8]) -> (bool, bool, bool) {
    let Ok(mail) = parse::parse(raw) else { return (false, false, false) };
    let kind = loopguard::classify(&mail, &[]);
    let screen = hygiene::screen(&mail, &Policy::default(), None);
    (true, kind.may_open_ticket(), kind.may_open_ticket() && kind.may_auto_reply() && screen.may_acknowledge())
}

#[test]
fn the_corpus_run_acknowledges_no_automatic_mail() {
    let list = String::from_utf8(read(&corpus().join("classes.tsv"))).expect("classes.tsv is UTF-8");
    let mut table: BTreeMap<String, Row> = BTreeMap::new();
    let mut total = Row::default();
    let mut wrong = Vec::new();
    for line in list.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (Some(path), Some(classes)) = (cols.next(), cols.next()) else { panic!("classes.tsv: bad line {line:?}") };
        let (parsed, opens, acked) = acknowledged(&read(&corpus().join(path)));
        let classes: Vec<&str> = classes.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
        let count = |r: &mut Row| {
            r.messages += 1;
            r.parsed += usize::from(parsed);
            r.opens_ticket += usize::from(opens);
            r.acknowledged += usize::from(acked);
        };
        for c in &classes {
            count(table.entry(c.to_string()).or_default());
        }
        count(&mut total);
        if acked && classes.iter().any(|c| AUTOMATIC.contains(c)) {
            wrong.push(format!("{path} ({})", classes.join(",")));
        }
    }
    assert_eq!(total.messages, 1178, "classes.tsv lists every corpus message");
    let mut text = String::from(
        "Corpus run: each message of tests/corpus/classes.tsv through parse, loop guard and hygiene screen\n\
         (a fresh desk, default policy). A message counts once in each of its classes.\n\n",
    );
    text.push_str(&format!(
        "{:<18} {:>9} {:>9} {:>13} {:>13}  {}\n",
        "class", "messages", "parsed", "opens ticket", "acknowledged", "automatic"
    ));
    let mut automatic_acks = 0;
    for (class, r) in table.iter().chain([(&"all messages".to_string(), &total)]) {
        let automatic = AUTOMATIC.contains(&class.as_str());
        if automatic {
            automatic_acks += r.acknowledged;
        }
        text.push_str(&format!(
            "{:<18} {:>9} {:>9} {:>13} {:>13}  {}\n",
            class,
            r.messages,
            r.parsed,
            r.opens_ticket,
            r.acknowledged,
            if automatic { "yes" } else { "" }
        ));
    }
    let people: Vec<&String> =
        wrong.iter().filter(|w| WRITTEN_BY_PEOPLE.iter().any(|(p, _)| w.starts_with(&format!("{p} ")))).collect();
    let machines: Vec<&String> = wrong.iter().filter(|w| !people.contains(w)).collect();
    text.push_str(&format!(
        "\nAcknowledged messages of an automatic class: {} (acknowledgements counted once per class above: {})\n\
         of them written by a person (the class is the heuristic's mistake): {}\n",
        wrong.len(),
        automatic_acks,
        people.len()
    ));
    for (p, why) in WRITTEN_BY_PEOPLE {
        text.push_str(&format!("  {p}: {why}\n"));
    }
    text.push_str(&format!("Acknowledgements to automatic mail: {}\n", machines.len()));
    for m in &machines {
        text.push_str(&format!("  {m}\n"));
    }
    eprintln!("{text}");
    let mut g = Golden::in_folder("corpus run", &golden_root(), &["mail-run"], "txt");
    g.check_text(Path::new("mail-run/acknowledgements.txt"), &text);
    g.finish();
    assert_eq!(
        people.len(),
        WRITTEN_BY_PEOPLE.len(),
        "each listed person's mail is in an automatic class and acknowledged"
    );
    assert!(
        machines.is_empty(),
        "automatic mail acknowledged:\n{}",
        machines.iter().map(|m| m.as_str()).collect::<Vec<_>>().join("\n")
    );
}
