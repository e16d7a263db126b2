//! The service catalogue of a desk (`seeds/<desk>.toml`): categories, subcategories, the ticket
//! types each allows, internal-only services, fulfilment times and requirements. Validated at load;
//! every problem is reported with the file and the key. Format: `seeds/FORMAT.md`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::TicketType;

/// The category every desk has for messages that fit nowhere in its catalogue.
pub const TRIAGE_CATEGORY: &str = "triage";
/// The subcategory of [`TRIAGE_CATEGORY`].
pub const TRIAGE_SUBCATEGORY: &str = "unknown";
/// Category letter of the triage queue in ticket numbers.
pub const TRIAGE_LETTER: char = 'T';

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A working-time duration as the documents state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fulfilment {
    Minutes(u32),
    WorkingHours(u32),
    WorkingDays(u32),
}

impl Fulfilment {
    pub fn parse(s: &str) -> Option<Self> {
        let (num, unit) = s.split_at(s.len().checked_sub(1)?);
        let n: u32 = num.parse().ok()?;
        match unit {
            "m" => Some(Self::Minutes(n)),
            "h" => Some(Self::WorkingHours(n)),
            "d" => Some(Self::WorkingDays(n)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Subcategory {
    pub id: String,
    pub name: String,
    pub reference: Option<String>,
    pub types: Vec<TicketType>,
    pub internal_only: bool,
    pub contact: Option<String>,
    pub description: Option<String>,
    pub fulfilment: Option<Fulfilment>,
    pub fulfilment_note: Option<String>,
    pub requires_attachment: Option<String>,
    pub requires_supervisor_cc: bool,
    pub requires_info: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub reference: Option<String>,
    pub letter: char,
    pub subcategories: Vec<Subcategory>,
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    pub desk: String,
    pub name: String,
    pub internal_domains: Vec<String>,
    pub reopen_days: Option<u32>,
    pub categories: Vec<Category>,
}

impl Catalogue {
    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    pub fn subcategory(&self, category: &str, sub: &str) -> Option<&Subcategory> {
        self.category(category)?.subcategories.iter().find(|s| s.id == sub)
    }

    /// Category letter for ticket numbers; triage and unknown categories get [`TRIAGE_LETTER`].
    pub fn letter(&self, category: &str) -> char {
        self.category(category).map(|c| c.letter).unwrap_or(TRIAGE_LETTER)
    }

    /// Whether `domain` belongs to the desk's organisation (for internal-only services).
    pub fn is_internal_domain(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        self.internal_domains.iter().any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
    }

    pub fn load(path: &Path) -> Result<Self, Vec<CatalogueError>> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| vec![CatalogueError::Io { path: path.to_path_buf(), source }])?;
        Self::parse(path, &text)
    }

    /// Parses and validates a catalogue; `path` is used in error messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Self, Vec<CatalogueError>> {
        let invalid = |message: String| CatalogueError::Invalid { path: path.to_path_buf(), message };
        let raw: RawCatalogue = toml::from_str(text).map_err(|e| vec![invalid(e.to_string())])?;
        let mut errors = Vec::new();
        let mut categories = Vec::new();
        let mut seen_cat = HashSet::new();
        if raw.category.is_empty() {
            errors.push(invalid("no [[category]] entries".into()));
        }
        for (ci, c) in raw.category.into_iter().enumerate() {
            let key = format!("category[{ci}] (`{}`)", c.id);
            if !is_id(&c.id) || c.id == TRIAGE_CATEGORY {
                errors.push(invalid(format!("{key}.id: must be snake_case and not `{TRIAGE_CATEGORY}`")));
            }
            if !seen_cat.insert(c.id.clone()) {
                errors.push(invalid(format!("{key}.id: duplicate category id")));
            }
            let letter = match c.letter.chars().collect::<Vec<_>>()[..] {
                [l] if l.is_ascii_uppercase() && l != TRIAGE_LETTER => l,
                _ => {
                    errors.push(invalid(format!(
                        "{key}.letter: `{}` must be one capital letter A-Z other than {TRIAGE_LETTER}",
                        c.letter
                    )));
                    'X'
                }
            };
            let mut subs = Vec::new();
            let mut seen_sub = HashSet::new();
            if c.subcategory.is_empty() {
                errors.push(invalid(format!("{key}: no [[category.subcategory]] entries")));
            }
            for (si, s) in c.subcategory.into_iter().enumerate() {
                let skey = format!("{key}.subcategory[{si}] (`{}`)", s.id);
                if !is_id(&s.id) {
                    errors.push(invalid(format!("{skey}.id: must be snake_case")));
                }
                if !seen_sub.insert(s.id.clone()) {
                    errors.push(invalid(format!("{skey}.id: duplicate subcategory id")));
                }
                let mut types = Vec::new();
                for t in &s.types {
                    match TicketType::parse(t) {
                        Some(t) if !types.contains(&t) => types.push(t),
                        Some(_) => errors.push(invalid(format!("{skey}.types: `{t}` listed twice"))),
                        None => errors.push(invalid(format!(
                            "{skey}.types: unknown type `{t}`; known: question, request, incident"
                        ))),
                    }
                }
                if s.types.is_empty() {
                    errors.push(invalid(format!("{skey}.types: must not be empty")));
                }
                let fulfilment = match s.fulfilment.as_deref().map(|f| (f, Fulfilment::parse(f))) {
                    None => None,
                    Some((_, Some(f))) => Some(f),
                    Some((f, None)) => {
                        errors.push(invalid(format!(
                            "{skey}.fulfilment: `{f}` is not <n>h (working hours), <n>d (working days) or <n>m"
                        )));
                        None
                    }
                };
                subs.push(Subcategory {
                    id: s.id,
                    name: s.name,
                    reference: s.r#ref,
                    types,
                    internal_only: s.internal_only,
                    contact: s.contact,
                    description: s.description,
                    fulfilment,
                    fulfilment_note: s.fulfilment_note,
                    requires_attachment: s.requires_attachment,
                    requires_supervisor_cc: s.requires_supervisor_cc,
                    requires_info: s.requires_info,
                });
            }
            categories.push(Category { id: c.id, name: c.name, reference: c.r#ref, letter, subcategories: subs });
        }
        if !is_id(&raw.desk) {
            errors.push(invalid(format!("desk: `{}` must be snake_case", raw.desk)));
        }
        if errors.is_empty() {
            Ok(Catalogue {
                desk: raw.desk,
                name: raw.name,
                internal_domains: raw.internal_domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
                reopen_days: raw.reopen_days,
                categories,
            })
        } else {
            Err(errors)
        }
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    desk: String,
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    source: Option<String>,
    #[serde(default)]
    internal_domains: Vec<String>,
    #[serde(default)]
    reopen_days: Option<u32>,
    #[serde(default)]
    category: Vec<RawCategory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    id: String,
    name: String,
    #[serde(default)]
    r#ref: Option<String>,
    letter: String,
    #[serde(default)]
    subcategory: Vec<RawSubcategory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubcategory {
    id: String,
    name: String,
    #[serde(default)]
    r#ref: Option<String>,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    internal_only: bool,
    #[serde(default)]
    contact: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    fulfilment: Option<String>,
    #[serde(default)]
    fulfilment_note: Option<String>,
    #[serde(default)]
    requires_attachment: Option<String>,
    #[serde(default)]
    requires_supervisor_cc: bool,
    #[serde(default)]
    requires_info: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
desk = "hero"
name = "HERO"
internal_domains = ["kemendag.go.id"]
[[category]]
id = "aplikasi"
name = "Aplikasi"
letter = "A"
[[category.subcategory]]
id = "sigi"
name = "SIGI"
types = ["incident"]
internal_only = true
fulfilment = "4h"
"#;

    #[test]
    fn loads_a_valid_catalogue() {
        let c = Catalogue::parse(Path::new("hero.toml"), GOOD).unwrap();
        let s = c.subcategory("aplikasi", "sigi").unwrap();
        assert_eq!(s.types, vec![TicketType::Incident]);
        assert_eq!(s.fulfilment, Some(Fulfilment::WorkingHours(4)));
        assert_eq!(c.letter("aplikasi"), 'A');
        assert_eq!(c.letter(TRIAGE_CATEGORY), 'T');
        assert!(c.is_internal_domain("itjen.kemendag.go.id"));
        assert!(!c.is_internal_domain("notkemendag.go.id"));
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let bad = GOOD
            .replace("types = [\"incident\"]", "types = [\"kendala\"]")
            .replace("letter = \"A\"", "letter = \"T\"")
            .replace("\"4h\"", "\"4 jam\"");
        let errs = Catalogue::parse(Path::new("seeds/hero.toml"), &bad).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 3, "{text:?}");
        assert!(text.iter().all(|t| t.starts_with("seeds/hero.toml: category[0]")), "{text:?}");
        assert!(text.iter().any(|t| t.contains("unknown type `kendala`")));
        assert!(text.iter().any(|t| t.contains(".letter")));
        assert!(text.iter().any(|t| t.contains(".fulfilment")));
    }

    #[test]
    fn parses_fulfilment_units() {
        assert_eq!(Fulfilment::parse("30m"), Some(Fulfilment::Minutes(30)));
        assert_eq!(Fulfilment::parse("2d"), Some(Fulfilment::WorkingDays(2)));
        assert_eq!(Fulfilment::parse("d"), None);
        assert_eq!(Fulfilment::parse(""), None);
        assert_eq!(Fulfilment::parse("4x"), None);
    }
}
