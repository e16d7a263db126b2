//! The second opinion's models kept between processes ([`super::kept`]). Learning a desk's
//! model from its labelled messages ([`super::examples`]) takes tens of milliseconds, reading it
//! back about one, and `loket ingest` starts once per mail: so a model learned is kept in the
//! cache directory (`storage.cache`) under the fingerprint of the labelled files it was learned
//! from (with the model's format and the trainer's settings), and read back while that
//! fingerprint holds. A model that does not read back is learned again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::examples::{self, Model, Reading};
use super::kept;

/// The labelled files of a rules directory (`labelled/*.jsonl`), by name.
#[derive(Debug, Clone, Default)]
pub struct LabelledFiles {
    pub files: Vec<PathBuf>,
}

impl LabelledFiles {
    /// Lists `dir`'s `*.jsonl` files (none when `dir` does not exist).
    pub fn list(dir: &Path) -> Self {
        let Ok(entries) = std::fs::read_dir(dir) else { return Self::default() };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        Self { files }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The name a desk's route model is kept under.
fn route_name(desk: &str) -> String {
    format!("opinion-{desk}")
}

/// The name the impact opinion is kept under: one model for every desk.
const IMPACT_NAME: &str = "impact";

/// `desk`'s model: read back from `cache` when kept there under the fingerprint of `files` and
/// the desk's own files that feed it (`also`: its rules and examples files), else learned from
/// `examples()` (called only then) and kept. `None` when there are no labelled files or nothing
/// to learn (fewer than two routes). A kept model is read back as `reading` says.
pub fn model<E>(
    files: &LabelledFiles,
    also: &[&Path],
    cache: Option<&Path>,
    desk: &str,
    reading: Reading,
    examples: impl FnOnce() -> Result<Vec<(String, String)>, E>,
) -> Result<Option<Arc<Model>>, E> {
    named(files, also, cache, &route_name(desk), reading, examples)
}

/// The impact opinion ([`super::examples`], its labels the impacts): one model for every desk,
/// learned from the labelled incidents of `files` and the rules' examples of incidents in `also`
/// (`examples()`), kept and read back as a desk's model is.
pub fn impact_model<E>(
    files: &LabelledFiles,
    also: &[&Path],
    cache: Option<&Path>,
    reading: Reading,
    examples: impl FnOnce() -> Result<Vec<(String, String)>, E>,
) -> Result<Option<Arc<Model>>, E> {
    named(files, also, cache, IMPACT_NAME, reading, examples)
}

fn named<E>(
    files: &LabelledFiles,
    also: &[&Path],
    cache: Option<&Path>,
    name: &str,
    reading: Reading,
    examples: impl FnOnce() -> Result<Vec<(String, String)>, E>,
) -> Result<Option<Arc<Model>>, E> {
    if files.is_empty() {
        return Ok(None);
    }
    let (path, fingerprint, settling) = place(files, also, cache, name);
    // A process that loads its configuration again (the test suites, many times) learns once.
    let key = (name.to_string(), fingerprint, reading);
    if !settling && let Some(m) = in_process().get(&key) {
        return Ok(Some(Arc::clone(m)));
    }
    let Some(model) = kept_or_learned(path.as_deref(), settling, name, reading, examples)? else { return Ok(None) };
    let model = Arc::new(model);
    if !settling {
        in_process().insert(key, Arc::clone(&model));
    }
    Ok(Some(model))
}

/// Where the model `name` learned from `files` and `also` is kept in `cache` (none without a
/// cache, or for a name that is not a plain file name part), the fingerprint it is kept under,
/// and whether one of the files is settling ([`fingerprint`]).
fn place(files: &LabelledFiles, also: &[&Path], cache: Option<&Path>, name: &str) -> (Option<PathBuf>, String, bool) {
    let paths: Vec<&Path> = files.files.iter().map(PathBuf::as_path).chain(also.iter().copied()).collect();
    let (fingerprint, settling) = kept::fingerprint(&[examples::MAGIC, examples::settings().as_bytes()], &paths);
    (cache.and_then(|c| kept::kept_path(c, name, &fingerprint)), fingerprint, settling)
}

/// The model kept at `path` (read back as `reading` says), else learned from `examples()` and
/// kept there (unless `settling`).
fn kept_or_learned<E>(
    path: Option<&Path>,
    settling: bool,
    name: &str,
    reading: Reading,
    examples: impl FnOnce() -> Result<Vec<(String, String)>, E>,
) -> Result<Option<Model>, E> {
    if let Some(path) = path
        && let Ok(bytes) = std::fs::read(path)
    {
        match Model::read(bytes, reading) {
            Ok(m) => return Ok(Some(m)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "kept second opinion unreadable; learning it again")
            }
        }
    }
    let learned = Model::train(&examples()?);
    if let (Some(path), Some(m), false) = (path, &learned, settling)
        && let Err(e) = kept::keep(path, name, &m.to_bytes())
    {
        // Only time is lost (the next process learns it too), and a process without write access
        // (a read-only `ingest`, `tickets list` as another user) must not be noisy about it.
        tracing::info!(path = %path.display(), error = %e, "cannot keep the second opinion; it is learned again next time");
    }
    Ok(learned)
}

/// The models this process has read or learned, by name and fingerprint.
type Held = HashMap<(String, String, Reading), Arc<Model>>;

fn in_process() -> std::sync::MutexGuard<'static, Held> {
    static MODELS: OnceLock<Mutex<Held>> = OnceLock::new();
    MODELS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn examples() -> Vec<(String, String)> {
        ["lupa password email", "reset password akun", "wifi lantai 3 mati", "sinyal wifi lemah"]
            .iter()
            .zip(["akun/password", "akun/password", "jaringan/wifi", "jaringan/wifi"])
            .map(|(t, r)| (t.to_string(), r.to_string()))
            .collect()
    }

    /// A labelled directory whose one file last changed `ago` before now.
    fn labelled(dir: &Path, ago: Duration) {
        std::fs::create_dir_all(dir).unwrap();
        let f = dir.join("a.jsonl");
        std::fs::write(&f, "{}\n").unwrap();
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(SystemTime::now() - ago).unwrap();
    }

    /// [`model`] without the models this process holds: what another `loket ingest` process
    /// would get.
    fn model<E>(
        files: &LabelledFiles,
        also: &[&Path],
        cache: Option<&Path>,
        desk: &str,
        examples: impl FnOnce() -> Result<Vec<(String, String)>, E>,
    ) -> Result<Option<Model>, E> {
        if files.is_empty() {
            return Ok(None);
        }
        let name = route_name(desk);
        let (path, _, settling) = place(files, also, cache, &name);
        kept_or_learned(path.as_deref(), settling, &name, Reading::InPlace, examples)
    }

    #[test]
    fn the_impact_opinion_is_kept_apart_and_a_desk_keeps_only_its_own_models() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, cache) = (tmp.path().join("labelled"), tmp.path().join("cache"));
        labelled(&dir, Duration::from_secs(60));
        let files = LabelledFiles::list(&dir);
        let levels = || {
            let texts =
                ["sigi error di laptop saya", "laptop saya lambat", "semua kantor offline", "seluruh kantor mati"];
            Ok::<_, ()>(
                texts.iter().zip(["low", "low", "high", "high"]).map(|(t, l)| (t.to_string(), l.to_string())).collect(),
            )
        };
        for desk in ["hero-x", "hero"] {
            model(&files, &[], Some(&cache), desk, || Ok::<_, ()>(examples())).unwrap().unwrap();
        }
        let impact = impact_model(&files, &[], Some(&cache), Reading::Built, levels).unwrap().expect("learned");
        assert_eq!(impact.routes(), ["high", "low"]);
        let names = kept(&cache);
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(
            names[0].starts_with("impact-")
                && names[1].starts_with("opinion-hero-")
                && names[2].starts_with("opinion-hero-x-")
        );
        // Learned again for another fingerprint, desk `hero`'s model replaces its own old one only.
        std::fs::write(dir.join("b.jsonl"), "{}\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(dir.join("b.jsonl"))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        model(&LabelledFiles::list(&dir), &[], Some(&cache), "hero", || Ok::<_, ()>(examples())).unwrap().unwrap();
        let after = kept(&cache);
        assert_eq!(after.len(), 3, "{after:?}");
        assert!(after.contains(&names[0]) && after.contains(&names[2]) && !after.contains(&names[1]), "{after:?}");
    }

    #[test]
    fn a_process_learns_a_model_once_and_not_while_its_files_settle() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("labelled");
        let mut asked = 0;
        let mut ask = |files: &LabelledFiles| {
            super::model(files, &[], None, "memo", Reading::Built, || {
                asked += 1;
                Ok::<_, ()>(examples())
            })
            .unwrap()
            .unwrap()
        };
        labelled(&dir, Duration::ZERO);
        ask(&LabelledFiles::list(&dir));
        ask(&LabelledFiles::list(&dir));
        labelled(&dir, Duration::from_secs(60));
        let a = ask(&LabelledFiles::list(&dir));
        let b = ask(&LabelledFiles::list(&dir));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(asked, 3, "twice while settling, once settled");
    }

    fn kept(cache: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(cache)
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn a_model_is_learned_once_kept_private_and_read_back_while_its_files_are_unchanged() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let (dir, cache) = (tmp.path().join("labelled"), tmp.path().join("cache"));
        labelled(&dir, Duration::from_secs(60));
        let files = LabelledFiles::list(&dir);
        let mut learned = 0;
        let first = model(&files, &[], Some(&cache), "hero", || {
            learned += 1;
            Ok::<_, ()>(examples())
        })
        .unwrap()
        .unwrap();
        let names = kept(&cache);
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("opinion-hero-") && names[0].ends_with(".bin"), "{names:?}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&cache), mode(&cache.join(&names[0]))), (0o700, 0o600));
        // Read back, not learned: the examples are not asked for (they would say otherwise).
        let again = model(&LabelledFiles::list(&dir), &[], Some(&cache), "hero", || {
            learned += 1;
            Ok::<_, ()>(Vec::new())
        })
        .unwrap()
        .unwrap();
        assert_eq!(learned, 1);
        assert_eq!(again.to_bytes(), first.to_bytes());
        // A changed file: learned again, kept under the new fingerprint, the old one gone.
        labelled(&dir, Duration::from_secs(30));
        let mut more = examples();
        more.push(("printer macet".into(), "perangkat/printer".into()));
        let changed =
            model(&LabelledFiles::list(&dir), &[], Some(&cache), "hero", || Ok::<_, ()>(more)).unwrap().unwrap();
        assert_eq!(changed.routes().len(), 3);
        let now = kept(&cache);
        assert_eq!(now.len(), 1);
        assert_ne!(now, names);
        // So does a change to one of the desk's own files that feed it (its examples).
        let examples_file = tmp.path().join("hero.examples.toml");
        let ex = [examples_file.as_path()];
        let mut asked = 0;
        for _ in 0..2 {
            model(&LabelledFiles::list(&dir), &ex, Some(&cache), "hero", || {
                asked += 1;
                Ok::<_, ()>(examples())
            })
            .unwrap();
        }
        labelled(&tmp.path().join("x"), Duration::ZERO);
        std::fs::rename(tmp.path().join("x/a.jsonl"), &examples_file).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&examples_file)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        for _ in 0..2 {
            model(&LabelledFiles::list(&dir), &ex, Some(&cache), "hero", || {
                asked += 1;
                Ok::<_, ()>(examples())
            })
            .unwrap();
        }
        assert_eq!(asked, 2, "learned when first seen missing, and when it appeared");
    }

    #[test]
    fn files_that_just_changed_damaged_models_and_no_cache_mean_learning_in_the_process() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, cache) = (tmp.path().join("labelled"), tmp.path().join("cache"));
        // No labelled files: nothing to learn, nothing asked for.
        assert!(model(&LabelledFiles::list(&dir), &[], Some(&cache), "hero", || Err("read")).unwrap().is_none());
        // Just changed: used, not kept.
        labelled(&dir, Duration::ZERO);
        let files = LabelledFiles::list(&dir);
        assert!(model(&files, &[], Some(&cache), "hero", || Ok::<_, ()>(examples())).unwrap().is_some());
        assert!(kept(&cache).is_empty());
        // Settled, kept; then damaged: learned again (and kept again).
        labelled(&dir, Duration::from_secs(60));
        let files = LabelledFiles::list(&dir);
        model(&files, &[], Some(&cache), "hero", || Ok::<_, ()>(examples())).unwrap();
        let name = cache.join(&kept(&cache)[0]);
        std::fs::write(&name, b"LOKETSV\x03 not a model").unwrap();
        let mut learned = false;
        let m = model(&files, &[], Some(&cache), "hero", || {
            learned = true;
            Ok::<_, ()>(examples())
        })
        .unwrap();
        assert!(learned && m.is_some());
        assert!(Model::from_bytes(&std::fs::read(&name).unwrap()).is_ok());
        // No cache directory, or a desk name that is no file name: learned, nothing written.
        assert!(model(&files, &[], None, "hero", || Ok::<_, ()>(examples())).unwrap().is_some());
        assert!(model(&files, &[], Some(&cache), "../x", || Ok::<_, ()>(examples())).unwrap().is_some());
        assert_eq!(kept(&cache).len(), 1);
        // A cache directory whose parent is missing: learned, and the parent is not made (a
        // store's missing directory is named, never made).
        assert!(
            model(&files, &[], Some(&tmp.path().join("missing/cache")), "hero", || Ok::<_, ()>(examples()))
                .unwrap()
                .is_some()
        );
        assert!(!tmp.path().join("missing").exists());
        // An error reading the examples is the caller's.
        assert_eq!(
            model(&files, &[], Some(&tmp.path().join("other")), "hero", || Err::<Vec<_>, _>("bad line")).err(),
            Some("bad line")
        );
    }
}
