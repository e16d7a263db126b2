//! `loket report`: per category, subcategory and agent — tickets, first-response and resolution
//! compliance, median working times, satisfaction — as a table, CSV, JSON or an HTML page with
//! bar charts. Pure: aggregates rows the store returns.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::sla::ReportRow;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Group {
    /// `category`, `subcategory` or `agent`.
    pub dimension: String,
    pub key: String,
    pub tickets: usize,
    /// Responded (or breached) clocks, and how many of them kept the target.
    pub responses_measured: usize,
    pub responses_in_time: usize,
    pub response_compliance_pct: Option<f64>,
    pub resolutions_measured: usize,
    pub resolutions_in_time: usize,
    pub resolution_compliance_pct: Option<f64>,
    /// Median working minutes to the first response / to resolution.
    pub median_response_min: Option<f64>,
    pub median_resolution_min: Option<f64>,
    pub ratings: usize,
    pub satisfaction: Option<f64>,
}

fn median(mut v: Vec<i64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    let m = if n % 2 == 1 { v[n / 2] as f64 } else { (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0 };
    Some((m / 60_000.0 * 10.0).round() / 10.0)
}

fn pct(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| (1000.0 * a as f64 / b as f64).round() / 10.0)
}

/// Aggregates rows along one dimension.
pub fn group_by(rows: &[ReportRow], dimension: &str) -> Vec<Group> {
    let mut by: BTreeMap<String, Vec<&ReportRow>> = BTreeMap::new();
    for r in rows {
        let key = match dimension {
            "category" => r.category.clone(),
            "subcategory" => format!("{}/{}", r.category, r.subcategory),
            "total" => "all".to_string(),
            _ => r.assignee.clone().unwrap_or_else(|| "(unassigned)".into()),
        };
        by.entry(key).or_default().push(r);
    }
    by.into_iter()
        .map(|(key, rs)| {
            let resp: Vec<&&ReportRow> =
                rs.iter().filter(|r| r.response_done || r.response_state.as_deref() == Some("breached")).collect();
            let resp_ok = resp.iter().filter(|r| r.response_state.as_deref() != Some("breached")).count();
            let reso: Vec<&&ReportRow> =
                rs.iter().filter(|r| r.resolution_done || r.resolution_state.as_deref() == Some("breached")).collect();
            let reso_ok = reso.iter().filter(|r| r.resolution_state.as_deref() != Some("breached")).count();
            let ratings: Vec<i64> = rs.iter().filter_map(|r| r.rating).collect();
            Group {
                dimension: dimension.to_string(),
                key,
                tickets: rs.len(),
                responses_measured: resp.len(),
                responses_in_time: resp_ok,
                response_compliance_pct: pct(resp_ok, resp.len()),
                resolutions_measured: reso.len(),
                resolutions_in_time: reso_ok,
                resolution_compliance_pct: pct(reso_ok, reso.len()),
                median_response_min: median(rs.iter().filter_map(|r| r.response_ms).collect()),
                median_resolution_min: median(rs.iter().filter_map(|r| r.resolution_ms).collect()),
                ratings: ratings.len(),
                satisfaction: (!ratings.is_empty())
                    .then(|| (ratings.iter().sum::<i64>() as f64 / ratings.len() as f64 * 100.0).round() / 100.0),
            }
        })
        .collect()
}

/// The whole report: the total, then by category, subcategory and agent.
pub fn build(rows: &[ReportRow]) -> Vec<Group> {
    ["total", "category", "subcategory", "agent"].iter().flat_map(|d| group_by(rows, d)).collect()
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_else(|| "-".into())
}

pub const COLUMNS: &[&str] = &[
    "dimension",
    "key",
    "tickets",
    "response_compliance_pct",
    "resolution_compliance_pct",
    "median_response_min",
    "median_resolution_min",
    "ratings",
    "satisfaction",
];

fn cells(g: &Group) -> Vec<String> {
    vec![
        g.dimension.clone(),
        g.key.clone(),
        g.tickets.to_string(),
        opt(g.response_compliance_pct),
        opt(g.resolution_compliance_pct),
        opt(g.median_response_min),
        opt(g.median_resolution_min),
        g.ratings.to_string(),
        opt(g.satisfaction),
    ]
}

pub fn table(groups: &[Group]) -> String {
    let mut out = format!(
        "{:<11} {:<44} {:>7} {:>9} {:>9} {:>10} {:>10} {:>7} {:>6}\n",
        "DIMENSION", "KEY", "TICKETS", "RESP %", "RESOL %", "MED RESP", "MED RESOL", "RATINGS", "SATIS"
    );
    for g in groups {
        let c = cells(g);
        out.push_str(&format!(
            "{:<11} {:<44} {:>7} {:>9} {:>9} {:>10} {:>10} {:>7} {:>6}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
        ));
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

pub fn csv(groups: &[Group]) -> String {
    let mut out = COLUMNS.join(",") + "\n";
    for g in groups {
        out.push_str(&cells(g).iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart (inline SVG) of one percentage per group.
fn bars(title: &str, groups: &[&Group], value: impl Fn(&Group) -> Option<f64>) -> String {
    let h = 22 * groups.len() + 30;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg width=\"720\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    for (i, g) in groups.iter().enumerate() {
        let y = 20 + i * 22;
        let v = value(g);
        let w = v.map(|x| (x.clamp(0.0, 100.0) * 4.0) as usize).unwrap_or(0);
        let color = match v {
            Some(x) if x >= 90.0 => "#2e7d32",
            Some(x) if x >= 75.0 => "#f9a825",
            Some(_) => "#c62828",
            None => "#9e9e9e",
        };
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"260\" y=\"{}\" width=\"{w}\" height=\"16\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 12,
            esc(&g.key.chars().take(40).collect::<String>()),
            y,
            265 + w,
            y + 12,
            v.map(|x| format!("{x}%")).unwrap_or_else(|| "-".into())
        ));
    }
    svg.push_str("</svg></figure>\n");
    svg
}

pub fn html(title: &str, groups: &[Group]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"id\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:nth-child(2),th:nth-child(2){{text-align:left}}figure{{margin:1em 0}}</style>\
         </head><body><h1>{t}</h1>\n",
        t = esc(title)
    );
    let cats: Vec<&Group> = groups.iter().filter(|g| g.dimension == "category").collect();
    let agents: Vec<&Group> = groups.iter().filter(|g| g.dimension == "agent").collect();
    out.push_str(&bars("First-response compliance by category (%)", &cats, |g| g.response_compliance_pct));
    out.push_str(&bars("Resolution compliance by category (%)", &cats, |g| g.resolution_compliance_pct));
    out.push_str(&bars("First-response compliance by agent (%)", &agents, |g| g.response_compliance_pct));
    out.push_str("<table><thead><tr>");
    for c in COLUMNS {
        out.push_str(&format!("<th>{c}</th>"));
    }
    out.push_str("</tr></thead><tbody>\n");
    for g in groups {
        out.push_str("<tr>");
        for c in cells(g) {
            out.push_str(&format!("<td>{}</td>", esc(&c)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        cat: &str,
        agent: Option<&str>,
        resp: Option<(&str, i64)>,
        reso: Option<(&str, i64)>,
        rating: Option<i64>,
    ) -> ReportRow {
        ReportRow {
            number: "X".into(),
            category: cat.into(),
            subcategory: "s".into(),
            assignee: agent.map(Into::into),
            status: if reso.is_some() { "closed".into() } else { "open".into() },
            rating,
            response_state: resp.map(|(s, _)| s.into()),
            response_done: resp.is_some(),
            response_ms: resp.map(|(_, m)| m),
            resolution_state: reso.map(|(s, _)| s.into()),
            resolution_done: reso.is_some(),
            resolution_ms: reso.map(|(_, m)| m),
        }
    }

    #[test]
    fn compliance_medians_and_satisfaction() {
        let rows = vec![
            row("aplikasi", Some("a@x"), Some(("ok", 10 * 60_000)), Some(("ok", 120 * 60_000)), Some(5)),
            row("aplikasi", Some("a@x"), Some(("breached", 90 * 60_000)), Some(("warning", 60 * 60_000)), Some(3)),
            row("jaringan", None, Some(("ok", 20 * 60_000)), None, None),
            row("jaringan", None, None, None, None),
        ];
        let g = build(&rows);
        let total = &g[0];
        assert_eq!((total.dimension.as_str(), total.tickets), ("total", 4));
        assert_eq!(total.response_compliance_pct, Some(66.7));
        assert_eq!(total.resolution_compliance_pct, Some(100.0));
        assert_eq!(total.median_response_min, Some(20.0));
        assert_eq!(total.satisfaction, Some(4.0));
        let app = g.iter().find(|x| x.dimension == "category" && x.key == "aplikasi").unwrap();
        assert_eq!((app.tickets, app.response_compliance_pct, app.median_response_min), (2, Some(50.0), Some(50.0)));
        assert!(g.iter().any(|x| x.dimension == "agent" && x.key == "(unassigned)" && x.tickets == 2));
        let c = csv(&g);
        assert!(c.starts_with("dimension,key,tickets"));
        assert_eq!(c.lines().count(), g.len() + 1);
        let h = html("Laporan <HERO>", &g);
        assert!(h.contains("<svg") && h.contains("Laporan &lt;HERO&gt;") && h.contains("66.7"));
        assert!(table(&g).contains("aplikasi"));
    }
}
