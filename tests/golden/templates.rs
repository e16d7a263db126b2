//! Every message template as a reviewer reads it (issue #17, acceptance 2): each
//! `templates/id/<name>.txt.j2` (mail and chat messages; the HTML pages have their own tests), in
//! both languages, for each ticket type (a question, a request, an
//! incident report) and for a message still in triage, rendered from one sample context and kept
//! as `tests/golden/templates/<lang>/<template>.<variant>.txt` (subject, blank line, body). A change
//! of wording shows as a diff of these files; `UPDATE_GOLDEN=1` rewrites them.
//!
//! The variants: `question` (no name known: the greeting is "Bapak/Ibu"), `request` (a named
//! requester whose request lacks documents and a kode satker, for an event asked for too late),
//! `incident` (priority P2), `triage` (no category yet; an internal-only service asked for from
//! outside).

use loket::domain::Language;
use loket::templates::{MailContext, REQUIRED, ScheduleCtx, Templates, sample_context};

use std::collections::BTreeSet;

use crate::runner::{Golden, repo};

fn variant(name: &str) -> MailContext {
    let mut c = sample_context();
    c.ticket.internal_only_refused.clear();
    c.ticket.linked_number.clear();
    c.ticket.mentioned_number.clear();
    match name {
        "question" => {
            c.ticket.ticket_type = "question".into();
            c.ticket.priority.clear();
            c.ticket.category = "tik_1_konsultasi".into();
            c.ticket.subcategory = "sakti".into();
            c.ticket.category_name = "Layanan Konsultasi TIK".into();
            c.ticket.subcategory_name = "SAKTI".into();
            c.original_subject = "Cara revisi DIPA di SAKTI".into();
            c.requester.name.clear();
            c.missing.clear();
            c.refused.clear();
            c.info.clear();
            c.schedule = ScheduleCtx::default();
        }
        "request" => {
            c.ticket.ticket_type = "request".into();
            c.ticket.priority.clear();
            c.ticket.status = "pending".into();
            c.ticket.category = "itsm_14_conference".into();
            c.ticket.subcategory = "video_conference".into();
            c.ticket.category_name = "Layanan Conference".into();
            c.ticket.subcategory_name = "Pendampingan pelaksanaan video conference".into();
            c.original_subject = "Permohonan pendampingan video conference".into();
        }
        "incident" => {
            c.ticket.ticket_type = "incident".into();
            c.ticket.priority = "P2".into();
            c.missing.clear();
            c.refused.clear();
            c.info.clear();
            c.schedule = ScheduleCtx::default();
        }
        _ => {
            c.ticket.ticket_type.clear();
            c.ticket.priority.clear();
            c.ticket.category = "triage".into();
            c.ticket.subcategory = "unknown".into();
            c.ticket.category_name.clear();
            c.ticket.subcategory_name.clear();
            c.ticket.internal_only_refused = "SAKTI".into();
            c.original_subject = "Reset password user SAKTI".into();
            c.missing.clear();
            c.refused.clear();
            c.info.clear();
            c.schedule = ScheduleCtx::default();
        }
    }
    c
}

#[test]
fn every_template_in_both_languages_for_each_ticket_type() {
    let templates = Templates::load(&repo().join("templates")).expect("templates load");
    let root = repo().join("tests/golden/templates");
    let mut golden = Golden::in_folder("templates", &root, &["id", "en"], "txt");
    let mut names: BTreeSet<String> = REQUIRED.iter().map(|n| n.to_string()).collect();
    for f in std::fs::read_dir(repo().join("templates/id")).expect("templates/id") {
        let f = f.expect("entry").file_name().to_string_lossy().to_string();
        if let Some(name) = f.strip_suffix(".txt.j2").filter(|n| !n.starts_with('_')) {
            names.insert(name.to_string());
        }
    }
    assert!(names.len() > REQUIRED.len(), "the chat variants are covered too: {names:?}");
    for name in &names {
        for &lang in Language::ALL {
            for v in ["question", "request", "incident", "triage"] {
                let r =
                    templates.render(lang, name, &variant(v)).unwrap_or_else(|e| panic!("{lang}/{name} ({v}): {e}"));
                let mut text = String::new();
                if !r.subject.is_empty() {
                    text.push_str(&format!("Subject: {}\n\n", r.subject));
                }
                text.push_str(&r.body);
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                golden.check_text(&std::path::Path::new(lang.as_str()).join(format!("{name}.{v}.txt")), &text);
            }
        }
    }
    golden.finish();
}
