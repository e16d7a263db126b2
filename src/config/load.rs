//! The configuration's I/O: reading `loket.toml`, then the files it names (each desk's
//! catalogue and holiday files, the routing rules compiled against the catalogues, the
//! templates), reporting every problem at once with the key that names the file.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;

use super::check::Files;
use super::{ConfigErrors, ConfigProblem};
use crate::catalogue::Catalogue;
use crate::routing::Router;
use crate::sla::calendar::{Holiday, load_holidays};

/// What the files named by `loket.toml` hold.
#[derive(Debug)]
pub struct Loaded {
    /// One per `[[desk]]`, in the file's order (as [`Files::desks`]).
    pub desks: Vec<LoadedDesk>,
    /// Every desk's compiled routing rules.
    pub router: Router,
    /// The signer of `security.token_secret_file`.
    pub signer: Option<crate::ticket::token::Signer>,
}

/// A desk's catalogue and the days of its holiday files.
#[derive(Debug)]
pub struct LoadedDesk {
    pub catalogue: Catalogue,
    pub holidays: BTreeMap<NaiveDate, Holiday>,
}

/// The text of `loket.toml`.
pub fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![ConfigProblem(format!("{}: cannot read: {e}", path.display()))]))
}

/// How much of what the files hold is checked at load, and what may be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode<'a> {
    /// Everything: every desk's rules compiled, the templates rendered with sample values, a
    /// missing token secret file made (the daemon and the commands that work on tickets).
    Full,
    /// As `Full`, but nothing is created: a missing token secret file stays missing and the
    /// configuration has no signer (`check-config`, which only reads).
    Check,
    /// For `loket ingest --inbox NAME`, which starts once per mail: only the desk that owns
    /// `inbox` is loaded (`Config::load_for_inbox` leaves the others out of [`Files::desks`]);
    /// its rules are compiled when first needed, without their examples ([`Router::lazy`]; only
    /// `common.toml` is read here), and the templates are left to the one load that uses them
    /// (`App::open_for_ingest`, which parses them without rendering their samples).
    Ingest { inbox: &'a str },
}

/// Reads and checks the files `loket.toml` names; the catalogue must describe its desk and hold
/// every route the desk's groups name.
pub fn load(files: &Files, mode: Mode<'_>) -> Result<Loaded, Vec<ConfigProblem>> {
    let file = files.path.display().to_string();
    let p = |m: String| ConfigProblem(format!("{file}: {m}"));
    let mut problems = Vec::new();
    let mut desks = Vec::new();
    for d in &files.desks {
        let key = &d.key;
        let catalogue = match Catalogue::load(&d.catalogue) {
            Ok(c) => {
                if c.desk != d.id {
                    problems.push(p(format!(
                        "{key}.catalogue: {} describes desk `{}`, not `{}`",
                        d.catalogue.display(),
                        c.desk,
                        d.id
                    )));
                }
                for (gkey, route) in &d.routes {
                    let known = match route.split_once('/') {
                        Some((c_id, "*")) => c.category(c_id).is_some(),
                        Some((c_id, s_id)) => c.subcategory(c_id, s_id).is_some(),
                        None => false,
                    };
                    if !known {
                        problems.push(p(format!(
                            "{gkey}.routes: `{route}` is not a category/subcategory or category/* of the catalogue"
                        )));
                    }
                }
                // `ingest` compiles a regex of the catalogue when its one request needs it.
                if !matches!(mode, Mode::Ingest { .. }) {
                    let file = d.catalogue.display();
                    problems
                        .extend(c.compile_regexes().into_iter().map(|e| p(format!("{key}.catalogue: {file}: {e}"))));
                }
                Some(c)
            }
            Err(errs) => {
                problems.extend(errs.into_iter().map(|e| p(format!("{key}.catalogue: {e}"))));
                None
            }
        };
        let mut holidays = BTreeMap::new();
        for path in &d.holidays {
            match load_holidays(path) {
                Ok(h) => holidays.extend(h),
                Err(e) => problems.push(p(format!("{key}.sla.holidays: {e}"))),
            }
        }
        if let Some(catalogue) = catalogue {
            desks.push(LoadedDesk { catalogue, holidays });
        }
    }
    if !matches!(mode, Mode::Ingest { .. })
        && let Err(e) = crate::templates::Templates::load(&files.templates)
    {
        problems.push(p(format!("templates: {e}")));
    }
    if !files.rules.is_dir() {
        problems.push(p(format!("rules: {}: no such directory", files.rules.display())));
    }
    let catalogues: Vec<&Catalogue> = desks.iter().map(|d| &d.catalogue).collect();
    let router = match mode {
        Mode::Full => Router::load(&files.rules, &catalogues, Some(&files.cache)),
        // `check-config` reads and learns, and writes nothing.
        Mode::Check => Router::load(&files.rules, &catalogues, None),
        Mode::Ingest { .. } => Ok(Router::lazy(&files.rules, &catalogues, Some(&files.cache))),
    };
    let router = match router {
        Ok(r) => Some(r),
        Err(errs) => {
            problems.extend(errs.into_iter().map(|e| p(format!("rules: {e}"))));
            None
        }
    };
    let secret = files.token_secret.as_deref().filter(|f| mode != Mode::Check || f.exists());
    let signer = match secret.map(secret_file).transpose() {
        Ok(secret) => secret.map(|s| crate::ticket::token::Signer::new(&s)),
        Err(e) => {
            problems.push(p(format!("security.token_secret_file: {e}")));
            None
        }
    };
    match router {
        Some(router) if problems.is_empty() => Ok(Loaded { desks, router, signer }),
        _ => Err(problems),
    }
}

/// The token secret in `path`, made when missing: 32 random bytes as hex, mode 0600, in a
/// directory made when missing. A file that others may read, or a secret under 16 bytes, is
/// refused.
fn secret_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = path.display();
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for {name}: {e}"))?;
        // Written whole beside it, then linked in: a reader never sees half a secret, and of two
        // processes making it at once the second reads the first's.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("{name}: cannot make it: {e}"))?;
        f.write_all(hex::encode(bytes).as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("{name}: {e}"))?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("{name}: cannot make it: {e}")),
        }
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{name}: {e}"))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{name}: others may read it (mode {:o}); `chmod 600` it",
            meta.permissions().mode() & 0o777
        ));
    }
    let secret = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?.trim().as_bytes().to_vec();
    if secret.len() < 16 {
        return Err(format!("{name}: the secret must hold at least 16 bytes"));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_secret_file_is_made_private_once_and_a_readable_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/token-secret");
        let first = secret_file(&path).unwrap();
        assert_eq!(first.len(), 64, "32 random bytes as hex");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(secret_file(&path).unwrap(), first, "made once, then read");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(secret_file(&path).unwrap_err().contains("others may read it"));
        let short = dir.path().join("short");
        std::fs::write(&short, "abc").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(secret_file(&short).unwrap_err().contains("at least 16 bytes"));
    }
    use crate::config::{Parsed, parse};

    #[test]
    fn the_parse_step_needs_no_file_and_the_load_step_names_each_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loket.toml");
        let text = "templates = \"no-templates\"\nrules = \"no-rules\"\n\
                    [[desk]]\nid = \"hero\"\nname = \"HERO\"\ncode = \"HERO\"\ncatalogue = \"no-seeds/hero.toml\"\n\
                    [desk.sla]\nhours = { weekdays = \"08:00-16:00\" }\nholidays = [\"no-seeds/holidays.toml\"]\n\
                    response = \"1h\"\n\
                    [[desk.inbox]]\nname = \"a\"\naddress = \"hero@example.test\"\n";
        let Parsed { settings, files } = parse(&path, text, |_| None).unwrap();
        assert!(settings.is_ok(), "{settings:?}");
        let all: Vec<String> = load(&files, Mode::Full).unwrap_err().into_iter().map(|p| p.0).collect();
        let named = |key: &str, missing: &str| {
            let missing = dir.path().join(missing).display().to_string();
            all.iter().any(|p| p.starts_with(&format!("{}: {key}: {missing}", path.display())))
        };
        assert!(named("desk[0] (`hero`).catalogue", "no-seeds/hero.toml"), "{all:#?}");
        assert!(named("desk[0] (`hero`).sla.holidays", "no-seeds/holidays.toml"), "{all:#?}");
        assert!(named("templates", "no-templates"), "{all:#?}");
        assert!(named("rules", "no-rules"), "{all:#?}");
        assert_eq!(all.len(), 4, "{all:#?}");
    }

    #[test]
    fn the_catalogue_must_describe_its_desk_and_hold_the_routes() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = "[[desk]]\nid = \"pusintek\"\nname = \"P\"\ncode = \"PUS\"\ncatalogue = \"seeds/hero.toml\"\n\
                    [[desk.group]]\nid = \"l1\"\nname = \"L1\"\nroutes = [\"nope/*\"]\n\
                    [[desk.inbox]]\nname = \"a\"\naddress = \"p@example.test\"\n";
        let files = parse(&repo.join("loket.toml"), text, |_| None).unwrap().files;
        let all: Vec<String> = load(&files, Mode::Full).unwrap_err().into_iter().map(|p| p.0).collect();
        for needle in [
            "desk[0] (`pusintek`).catalogue: ",
            "describes desk `hero`, not `pusintek`",
            "desk[0] (`pusintek`).group[0] (`l1`).routes: `nope/*` is not a category/subcategory or category/*",
        ] {
            assert!(all.iter().any(|p| p.contains(needle)), "missing {needle} in {all:#?}");
        }
    }
}
