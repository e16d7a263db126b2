//! The pure mail leaves: raw bytes → [`parse::ParsedMail`] (with [`bounce`] reports read and
//! winmail.dat unpacked), who wrote it ([`loopguard::MailKind`]), what the sender wrote now
//! ([`trim`]), the desk's [`attachments`] policy, and the outbound bytes ([`compose`]).
//!
//! Nothing here touches the store, the network or a runtime: no `crate::store`, no tokio, no
//! clock — `now` is passed in. The [`crate::pipeline`] joins these decisions with the store.

pub mod attachments;
pub mod bounce;
pub mod charset;
pub mod compose;
pub mod hygiene;
pub mod loopguard;
pub mod parse;
pub mod trim;

#[cfg(test)]
mod tests {
    /// The mail leaves and the SLA arithmetic do no I/O and read no clock: no `use` of the store,
    /// channels, HTTP, the pipeline, tokio, sqlx or reqwest, and no `now()` outside the tests
    /// (a test may time itself).
    #[test]
    fn the_mail_leaves_and_the_sla_arithmetic_do_no_io() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("mail"))
            .expect("src/mail")
            .map(|e| e.expect("src/mail entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        files.sort();
        assert!(files.len() >= 7, "{files:?}");
        files.extend([root.join("sla/mod.rs"), root.join("sla/calendar.rs")]);
        for path in &files {
            let name = path.strip_prefix(&root).unwrap_or(path).display();
            let source = std::fs::read_to_string(path).expect("readable source");
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            for line in source.lines().map(str::trim) {
                for banned in
                    ["crate::store", "crate::channel", "crate::http", "crate::pipeline", "tokio", "sqlx", "reqwest"]
                {
                    assert!(!(line.starts_with("use ") && line.contains(banned)), "{name}: `{line}`");
                }
            }
            for line in code.lines().map(str::trim) {
                for clock in ["SystemTime::now", "Utc::now", "Local::now", "Instant::now"] {
                    assert!(!line.contains(&format!("{clock}()")), "{name} reads the clock: `{line}`");
                }
            }
        }
    }
}
