//! Rules files: arbitrary text as a desk's rules file is refused with errors or compiled; what
//! compiles routes arbitrary messages to a catalogue entry or triage. The shipped rules route
//! the same input too.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use loket::catalogue::Catalogue;
use loket::routing::RouteInput;
use loket::routing::rules::{self, CommonFile};

struct Fixture {
    catalogue: Catalogue,
    common: CommonFile,
    shipped: loket::routing::DeskRules,
}

static FIX: LazyLock<Fixture> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let catalogue = Catalogue::load(&root.join("seeds/hero.toml")).expect("catalogue");
    let common = rules::load_common(&root.join("rules/common.toml")).expect("common");
    let shipped = rules::load_desk(&root.join("rules/hero.toml"), &common, &catalogue).expect("hero rules");
    Fixture { catalogue, common, shipped }
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIX;
    let text = String::from_utf8_lossy(data);
    let (file, message) = text.split_once("\n---\n").unwrap_or((&text, "website kemendag error"));
    let input = RouteInput {
        subject: message,
        body: message,
        sender_domain: Some("example.test"),
        inbox_address: "hero@kemendag.go.id",
    };
    let d = f.shipped.route(&f.catalogue, &input);
    assert!(d.is_triage() || f.catalogue.subcategory(&d.category, &d.subcategory).is_some());
    let file = format!("desk = \"hero\"\n{file}");
    if let Ok(compiled) = rules::parse_desk(Path::new("fuzz.toml"), &file, &f.common, &f.catalogue) {
        let d = compiled.route(&f.catalogue, &input);
        assert!(d.is_triage() || f.catalogue.subcategory(&d.category, &d.subcategory).is_some());
    }
});
