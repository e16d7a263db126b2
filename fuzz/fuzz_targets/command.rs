//! The command grammars: agents' `#commands` in a reply, requesters' chat commands, ticket
//! numbers and tokens in Message-IDs, and the guided form fed arbitrary answers.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use loket::catalogue::Catalogue;
use loket::chat::flow::{self, Advance};

static HERO: LazyLock<Catalogue> = LazyLock::new(|| {
    Catalogue::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/hero.toml")).expect("catalogue")
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = loket::ticket::command::parse(&text);
    let _ = loket::chat::command::parse(&text);
    let _ = loket::chat::command::normalize_number(&text);
    let _ = loket::ticket::token::tokens_in(&[text.to_string()]);
    let _ = loket::ticket::find_tags(&text);
    // The form, answered line by line.
    let mut state = match flow::start(&HERO, data.first().is_some_and(|b| b & 1 == 1), "id") {
        Advance::Ask(f, _) => f,
        Advance::Done(_) => return,
    };
    for answer in text.lines().take(12) {
        match flow::advance(state, &HERO, false, "en", answer) {
            Advance::Ask(f, p) => {
                assert!(p.options.len() <= 100);
                state = f;
            }
            Advance::Done(form) => {
                assert!(HERO.subcategory(&form.category, &form.subcategory).is_some(), "{form:?}");
                return;
            }
        }
    }
});
