//! The ticket list's query string, pure: `desk`, `status`, `category` (`CAT` or `CAT/SUB`),
//! `requester`, `limit` and `cursor` → a [`ListFilter`] inside the key's desks, or why not.
//! Pages run from the newest ticket down; the cursor is the last ticket's row id, opaque to
//! clients.

use std::collections::HashMap;

use crate::domain::{EmailAddress, TicketStatus};

/// Most tickets in one page, and the page size without `limit`.
pub const MAX_LIMIT: u32 = 100;
pub const DEFAULT_LIMIT: u32 = 25;

/// What a list asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// Never empty: the key's desks, or the one it named among them.
    pub desks: Vec<String>,
    pub status: Option<TicketStatus>,
    pub category: Option<String>,
    pub subcategory: Option<String>,
    pub requester: Option<EmailAddress>,
    /// Tickets older than this row id (the previous page's cursor).
    pub before: Option<i64>,
    pub limit: u32,
}

/// Why a query cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A desk the key does not see (answered as 404, like a desk that does not exist).
    #[error("no desk `{0}`")]
    UnknownDesk(String),
    #[error("{0}")]
    Invalid(String),
}

/// A cursor's text for the ticket row `id`.
pub fn cursor_of(id: i64) -> String {
    format!("t{id}")
}

fn parse_cursor(s: &str) -> Option<i64> {
    s.strip_prefix('t')?.parse().ok().filter(|n| *n > 0)
}

/// Reads the query `q` for a key that sees `desks`.
pub fn parse_list(q: &HashMap<String, String>, desks: &[String]) -> Result<ListFilter, QueryError> {
    let known = ["desk", "status", "category", "requester", "limit", "cursor"];
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(QueryError::Invalid(format!("unknown parameter `{k}`; known: {}", known.join(", "))));
    }
    let desks = match q.get("desk") {
        Some(d) if desks.contains(d) => vec![d.clone()],
        Some(d) => return Err(QueryError::UnknownDesk(d.clone())),
        None => desks.to_vec(),
    };
    let status = match q.get("status") {
        Some(s) => Some(TicketStatus::parse(s).ok_or_else(|| {
            let all: Vec<_> = TicketStatus::ALL.iter().map(|s| s.as_str()).collect();
            QueryError::Invalid(format!("status `{s}`: use one of {}", all.join(", ")))
        })?),
        None => None,
    };
    let (category, subcategory) = match q.get("category").map(|c| c.trim()) {
        None => (None, None),
        Some(c) => {
            let (cat, sub) = match c.split_once('/') {
                Some((cat, sub)) => (cat, Some(sub)),
                None => (c, None),
            };
            let word = |w: &str| !w.is_empty() && w.len() <= 100 && !w.contains('/');
            if !word(cat) || sub.is_some_and(|s| !word(s)) {
                return Err(QueryError::Invalid(format!("category `{c}`: use CATEGORY or CATEGORY/SUBCATEGORY")));
            }
            (Some(cat.to_string()), sub.map(str::to_string))
        }
    };
    let requester = match q.get("requester") {
        Some(r) => Some(EmailAddress::parse(r).map_err(|e| QueryError::Invalid(format!("requester `{r}`: {e}")))?),
        None => None,
    };
    let limit = match q.get("limit") {
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(QueryError::Invalid(format!("limit `{l}`: a number from 1 to {MAX_LIMIT}"))),
        },
        None => DEFAULT_LIMIT,
    };
    let before = match q.get("cursor") {
        Some(c) => {
            Some(parse_cursor(c).ok_or_else(|| QueryError::Invalid(format!("cursor `{c}` is not one this API gave")))?)
        }
        None => None,
    };
    Ok(ListFilter { desks, status, category, subcategory, requester, before, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn desks() -> Vec<String> {
        vec!["hero".into(), "hai".into()]
    }

    #[test]
    fn no_parameters_lists_every_desk_of_the_key() {
        let f = parse_list(&q(&[]), &desks()).unwrap();
        assert_eq!(f.desks, desks());
        assert_eq!((f.status, f.category, f.before, f.limit), (None, None, None, DEFAULT_LIMIT));
    }

    #[test]
    fn filters_are_read_and_typed() {
        let f = parse_list(
            &q(&[
                ("desk", "hai"),
                ("status", "open"),
                ("category", "aplikasi/sisp"),
                ("requester", "Budi@Example.TEST"),
                ("limit", "10"),
                ("cursor", &cursor_of(77)),
            ]),
            &desks(),
        )
        .unwrap();
        assert_eq!(f.desks, vec!["hai".to_string()]);
        assert_eq!(f.status, Some(TicketStatus::Open));
        assert_eq!((f.category.as_deref(), f.subcategory.as_deref()), (Some("aplikasi"), Some("sisp")));
        assert_eq!(f.requester.unwrap().as_str(), "budi@example.test");
        assert_eq!((f.limit, f.before), (10, Some(77)));
        let f = parse_list(&q(&[("category", "aplikasi")]), &desks()).unwrap();
        assert_eq!((f.category.as_deref(), f.subcategory), (Some("aplikasi"), None));
    }

    #[test]
    fn a_desk_outside_the_key_is_unknown_and_bad_values_are_named() {
        assert_eq!(parse_list(&q(&[("desk", "djpb")]), &desks()), Err(QueryError::UnknownDesk("djpb".into())));
        for (k, v) in [
            ("status", "done"),
            ("category", "a/b/c"),
            ("category", "/x"),
            ("requester", "nobody"),
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "ten"),
            ("cursor", "77"),
            ("cursor", "t-1"),
            ("sort", "asc"),
        ] {
            match parse_list(&q(&[(k, v)]), &desks()) {
                Err(QueryError::Invalid(why)) => assert!(why.contains(v) || why.contains(k), "{why}"),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
    }
}
