//! The smallest HERO desk — one inbox, the HERO catalogue — as `loket.toml` text, shared by the
//! benchmarks and the no-server batch tests (each includes this file with `#[path]`), so that
//! each names only what it adds.

use std::path::Path;
use std::sync::Arc;

use loket::config::Config;
use loket::pipeline::Pipeline;
use loket::store::Store;
use loket::templates::Templates;

/// What a test or benchmark adds to the smallest HERO desk; every text is TOML lines (ending in
/// a newline) for the place its field names.
pub struct Hero<'a> {
    /// The rules directory (the repository's `rules/` when `None`).
    pub rules: Option<&'a Path>,
    /// The templates directory (the repository's `templates/` when `None`).
    pub templates: Option<&'a Path>,
    /// Lines of `[storage]` (at least `url`).
    pub storage: &'a str,
    /// Lines of `[outbound]`, and its own tables after them.
    pub outbound: &'a str,
    /// Further top-level tables (`[limits]`, `[security]`).
    pub sections: &'a str,
    /// The desk's own keys, then its tables (`[desk.sla]`, `[[desk.group]]`, `[[desk.agent]]`).
    pub desk: &'a str,
    /// The inbox's address.
    pub address: &'a str,
    /// Lines of the inbox after its name and address (`[desk.inbox.imap]`).
    pub inbox: &'a str,
}

impl Default for Hero<'_> {
    fn default() -> Self {
        Hero {
            rules: None,
            templates: None,
            storage: "",
            outbound: "",
            sections: "",
            desk: "",
            address: "hero@desk.test",
            inbox: "",
        }
    }
}

/// `[storage]` lines for a SQLite store `loket.db` in `dir`.
#[allow(dead_code)] // not every includer uses it
pub fn sqlite_in(dir: &Path) -> String {
    format!("url = \"sqlite://{}\"\n", dir.join("loket.db").display())
}

/// A new request to the desk from `user{n}@example.test` about printer `n`, its Message-ID
/// `<{tag}-{n}@example.test>`.
#[allow(dead_code)] // not every includer uses it
pub fn printer_request(n: usize, tag: &str) -> Vec<u8> {
    format!(
        "From: user{n}@example.test\r\nTo: hero@desk.test\r\nSubject: Printer {n} rusak\r\n\
         Message-ID: <{tag}-{n}@example.test>\r\nDate: Mon, 05 Jan 2026 09:00:00 +0700\r\n\r\nPrinter rusak.\r\n"
    )
    .into_bytes()
}

impl Hero<'_> {
    /// The configuration text; `repo` is the checkout (templates, rules, catalogue).
    pub fn toml(&self, repo: &Path) -> String {
        let rules = self.rules.map_or_else(|| repo.join("rules"), Path::to_path_buf);
        let templates = self.templates.map_or_else(|| repo.join("templates"), Path::to_path_buf);
        format!(
            "templates = \"{t}\"\nrules = \"{r}\"\n[storage]\n{storage}[outbound]\n{outbound}{sections}\
             [[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HERO\"\ncatalogue = \"{s}\"\n{desk}\
             [[desk.inbox]]\nname = \"hero\"\naddress = \"{address}\"\n{inbox}",
            t = templates.display(),
            r = rules.display(),
            s = repo.join("seeds/hero.toml").display(),
            storage = self.storage,
            outbound = self.outbound,
            sections = self.sections,
            desk = self.desk,
            address = self.address,
            inbox = self.inbox,
        )
    }

    /// Writes the configuration to `dir/loket.toml` and starts a pipeline on it.
    #[allow(dead_code)] // not every includer starts a pipeline
    pub async fn pipeline(&self, repo: &Path, dir: &Path) -> (Pipeline, Store) {
        let path = dir.join("loket.toml");
        std::fs::write(&path, self.toml(repo)).unwrap();
        let cfg = Arc::new(Config::load(&path).unwrap());
        let templates = Arc::new(Templates::load(&cfg.templates).unwrap());
        let store = Store::open(&cfg.storage).await.unwrap();
        (Pipeline::new(store.clone(), cfg, templates, Arc::new(tokio::sync::Notify::new())), store)
    }
}
