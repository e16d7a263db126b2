//! Raw mail → the pipeline's decisions: parse (or the quarantine reason), loop-guard kind, thread
//! tags, reply trimming, routing with the shipped HERO rules, and the acknowledgement's bytes.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use loket::catalogue::Catalogue;
use loket::domain::EmailAddress;
use loket::routing::{RouteInput, Router};

struct Fixture {
    catalogue: Catalogue,
    router: Router,
    own: Vec<EmailAddress>,
}

static FIX: LazyLock<Fixture> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let catalogue = Catalogue::load(&root.join("seeds/hero.toml")).expect("catalogue");
    let router = Router::load(&root.join("rules"), &[&catalogue]).expect("rules");
    Fixture { catalogue, router, own: vec![EmailAddress::parse("hero@kemendag.go.id").unwrap()] }
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIX;
    let _ = loket::mail::parse::idempotency_key(loket::mail::parse::sniff_message_id(data).as_deref(), data);
    let Ok(mail) = loket::mail::parse::parse(data) else { return };
    let kind = loket::mail::loopguard::classify(&mail, &f.own);
    let _ = kind.may_open_ticket();
    let _ = loket::ticket::find_tags(&mail.subject);
    let _ = loket::mail::trim::trim_reply(&mail.text);
    let domain = mail.requester().map(|m| m.address.domain().to_string());
    let decision = f.router.route(
        &f.catalogue,
        &RouteInput {
            subject: &mail.subject,
            body: &mail.text,
            sender_domain: domain.as_deref(),
            inbox_address: "hero@kemendag.go.id",
        },
    );
    assert!(decision.is_triage() || f.catalogue.subcategory(&decision.category, &decision.subcategory).is_some());
    if let Some(to) = mail.requester() {
        let from = EmailAddress::parse("hero@kemendag.go.id").unwrap();
        let built = loket::mail::compose::reply(&loket::mail::compose::ReplySpec {
            from_name: "HERO",
            from: &from,
            to_name: to.name.as_deref(),
            to: &to.address,
            ticket_number: "A-HERO26000001",
            in_reply_to: mail.message_id.as_deref(),
            references: &mail.references,
            text: &loket::templates::Rendered { subject: mail.subject.clone(), body: mail.text.clone() },
            unique: "0123456789abcdef",
            now_ms: 1_767_578_400_000,
            auto_replied: true,
            auto_generated: false,
            message_id: None,
            html: "<p>x</p>",
            files: &[],
        });
        if let Ok(b) = built {
            // What Loket sends parses back.
            assert!(loket::mail::parse::parse(&b.raw).is_ok());
        }
    }
});
