//! Impact of an incident from the scope its message states. Pure: the scores of the rules'
//! impact classes go in, the impact and the class behind it come out.
//!
//! A class (`[impact_classes.NAME]` in `rules/common.toml` or a desk file) is a named group of
//! cues for one kind of scope — how many are affected (`person`, `unit`, `organisation`,
//! `public`), which service (public-facing, a financial deadline), a security incident — with the
//! impact `level` it stands for. A class is present when its cues (and the winning route's
//! `scope` weight for it) reach the desk's `impact_threshold`. The impact is the highest level
//! among the present classes; with none, `low` (one person, or scope not stated).

use crate::domain::Impact;

/// One class's score for a message.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore<'a> {
    pub name: &'a str,
    pub level: Impact,
    pub score: f64,
}

/// The impact of an incident and the class that decided it (`None`: no class reached the
/// threshold, so the impact is `low`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeImpact<'a> {
    pub impact: Impact,
    pub class: Option<&'a ClassScore<'a>>,
}

/// The highest level among the classes whose score reaches `threshold`; between classes of that
/// level, the higher score, then the name (so the answer never depends on the order of files).
pub fn impact_of<'a>(classes: &'a [ClassScore<'a>], threshold: f64) -> ScopeImpact<'a> {
    let best = classes.iter().filter(|c| c.score >= threshold).max_by(|a, b| {
        a.level
            .cmp(&b.level)
            .then(a.score.partial_cmp(&b.score).unwrap_or(std::cmp::Ordering::Equal))
            .then(b.name.cmp(a.name))
    });
    ScopeImpact { impact: best.map(|c| c.level).unwrap_or(Impact::Low), class: best }
}

/// The sentence `rules explain` shows for an incident's impact.
pub fn explain(found: &ScopeImpact<'_>, threshold: f64) -> String {
    match found.class {
        Some(c) => {
            format!("impact {} from scope class `{}` ({:.1}, threshold {threshold:.1})", found.impact, c.name, c.score)
        }
        None => format!("impact low: no scope class reached {threshold:.1} (one person, or scope not stated)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &'static str, level: Impact, score: f64) -> ClassScore<'static> {
        ClassScore { name, level, score }
    }

    #[test]
    fn no_class_reaching_the_threshold_is_low() {
        let cs = [class("unit", Impact::Medium, 1.5), class("organisation", Impact::High, 1.0)];
        let f = impact_of(&cs, 2.0);
        assert_eq!((f.impact, f.class), (Impact::Low, None));
        assert!(explain(&f, 2.0).contains("no scope class reached 2.0"));
        assert_eq!(impact_of(&[], 2.0).impact, Impact::Low);
    }

    #[test]
    fn the_highest_level_present_wins_not_the_highest_score() {
        let cs = [class("unit", Impact::Medium, 6.0), class("security_breach", Impact::High, 2.0)];
        let f = impact_of(&cs, 2.0);
        assert_eq!(f.impact, Impact::High);
        assert_eq!(f.class.map(|c| c.name), Some("security_breach"));
        assert_eq!(explain(&f, 2.0), "impact high from scope class `security_breach` (2.0, threshold 2.0)");
    }

    #[test]
    fn a_low_class_explains_a_low_impact() {
        let cs = [class("person", Impact::Low, 3.0)];
        let f = impact_of(&cs, 2.0);
        assert_eq!((f.impact, f.class.map(|c| c.name)), (Impact::Low, Some("person")));
    }

    #[test]
    fn equal_levels_go_to_the_higher_score_then_the_name_whatever_the_order() {
        let a = [class("public", Impact::High, 3.0), class("organisation", Impact::High, 4.0)];
        let b = [class("organisation", Impact::High, 4.0), class("public", Impact::High, 3.0)];
        assert_eq!(impact_of(&a, 2.0).class.map(|c| c.name), Some("organisation"));
        assert_eq!(impact_of(&b, 2.0).class.map(|c| c.name), Some("organisation"));
        let c = [class("public", Impact::High, 3.0), class("organisation", Impact::High, 3.0)];
        let d = [class("organisation", Impact::High, 3.0), class("public", Impact::High, 3.0)];
        assert_eq!(impact_of(&c, 2.0).class.map(|c| c.name), Some("organisation"));
        assert_eq!(impact_of(&d, 2.0).class.map(|c| c.name), Some("organisation"));
    }
}
