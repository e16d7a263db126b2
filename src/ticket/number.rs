//! Ticket numbers. The default format follows HERO's `#A-KORS22000343`: category letter, desk code,
//! two-digit year and a six-digit sequence per desk and year. A desk may configure its own format
//! from the placeholders `{letter}`, `{code}`, `{yy}`, `{yyyy}` and `{seq}` / `{seq:0N}`.

use std::fmt;

use serde::Serialize;

/// A ticket number as shown to people, without the leading `#`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TicketNumber(String);

impl TicketNumber {
    /// Accepts what [`find_tags`] would find: 3-40 characters of A-Z, 0-9 and `-`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('#').to_ascii_uppercase();
        let ok = (3..=40).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
            && s.chars().any(|c| c.is_ascii_digit());
        ok.then_some(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag Loket puts into subjects: `[#A-HERO26000001]`.
    pub fn tag(&self) -> String {
        format!("[#{}]", self.0)
    }
}

/// Reads as the text it is: made only by [`TicketNumber::parse`] or a desk's format.
impl std::ops::Deref for TicketNumber {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TicketNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every `[#NUMBER]` tag in a subject, in order of appearance.
pub fn find_tags(subject: &str) -> Vec<TicketNumber> {
    let mut out = Vec::new();
    let mut rest = subject;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        match after.find(']') {
            Some(end) if end <= 40 => {
                if let Some(n) = TicketNumber::parse(&after[..end]) {
                    out.push(n);
                }
                rest = &after[end..];
            }
            _ => rest = after,
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Letter,
    Code,
    Yy,
    Yyyy,
    Seq(usize),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NumberFormatError {
    #[error("unknown placeholder `{{{0}}}`; known: {{letter}}, {{code}}, {{yy}}, {{yyyy}}, {{seq}}, {{seq:0N}}")]
    UnknownPlaceholder(String),
    #[error("unclosed `{{`")]
    Unclosed,
    #[error("the format must contain {{seq}} exactly once")]
    NeedsOneSeq,
    #[error("literal text may only use A-Z, 0-9 and `-`: `{0}`")]
    BadLiteral(String),
}

/// A parsed ticket-number format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberFormat(Vec<Piece>);

impl Default for NumberFormat {
    fn default() -> Self {
        Self::parse(Self::DEFAULT).expect("default format is valid")
    }
}

impl NumberFormat {
    pub const DEFAULT: &'static str = "{letter}-{code}{yy}{seq:06}";

    pub fn parse(s: &str) -> Result<Self, NumberFormatError> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            if let Some(body) = rest.strip_prefix('{') {
                let end = body.find('}').ok_or(NumberFormatError::Unclosed)?;
                let name = &body[..end];
                pieces.push(match name {
                    "letter" => Piece::Letter,
                    "code" => Piece::Code,
                    "yy" => Piece::Yy,
                    "yyyy" => Piece::Yyyy,
                    "seq" => Piece::Seq(1),
                    _ => match name.strip_prefix("seq:0").map(str::parse::<usize>) {
                        Some(Ok(w)) if (1..=12).contains(&w) => Piece::Seq(w),
                        _ => return Err(NumberFormatError::UnknownPlaceholder(name.to_string())),
                    },
                });
                rest = &body[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let lit = &rest[..end];
                if !lit.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-') {
                    return Err(NumberFormatError::BadLiteral(lit.to_string()));
                }
                pieces.push(Piece::Lit(lit.to_string()));
                rest = &rest[end..];
            }
        }
        if pieces.iter().filter(|p| matches!(p, Piece::Seq(_))).count() != 1 {
            return Err(NumberFormatError::NeedsOneSeq);
        }
        Ok(Self(pieces))
    }

    /// Renders a number. `code` is upper-cased and stripped to A-Z/0-9 so the result always
    /// parses as a [`TicketNumber`].
    pub fn render(&self, letter: char, code: &str, year: i32, seq: i64) -> TicketNumber {
        let mut s = String::new();
        for p in &self.0 {
            match p {
                Piece::Lit(l) => s.push_str(l),
                Piece::Letter => s.push(letter.to_ascii_uppercase()),
                Piece::Code => {
                    s.extend(code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()))
                }
                Piece::Yy => s.push_str(&format!("{:02}", year.rem_euclid(100))),
                Piece::Yyyy => s.push_str(&format!("{year:04}")),
                Piece::Seq(w) => s.push_str(&format!("{seq:0w$}", w = *w)),
            }
        }
        TicketNumber(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format_matches_hero_shape() {
        let n = NumberFormat::default().render('A', "kors", 2022, 343);
        assert_eq!(n.as_str(), "A-KORS22000343");
        assert_eq!(n.tag(), "[#A-KORS22000343]");
        assert_eq!(TicketNumber::parse(n.as_str()), Some(n));
    }

    #[test]
    fn custom_formats() {
        let f = NumberFormat::parse("SD-{yyyy}-{seq:05}").unwrap();
        assert_eq!(f.render('B', "x", 2026, 7).as_str(), "SD-2026-00007");
        assert_eq!(NumberFormat::parse("{letter}{code}"), Err(NumberFormatError::NeedsOneSeq));
        assert!(matches!(NumberFormat::parse("{seq}{oops}"), Err(NumberFormatError::UnknownPlaceholder(_))));
        assert!(matches!(NumberFormat::parse("a{seq}"), Err(NumberFormatError::BadLiteral(_))));
        assert_eq!(NumberFormat::parse("{seq"), Err(NumberFormatError::Unclosed));
    }

    #[test]
    fn finds_tags_in_subjects() {
        let tags = find_tags("Re: [#A-HERO26000012] Printer [#b-hero26000013] [#] [#x]");
        let tags: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
        assert_eq!(tags, vec!["A-HERO26000012", "B-HERO26000013"]);
        assert!(find_tags("AW: no tag here").is_empty());
        assert!(find_tags("[#").is_empty());
    }
}
