//! The public tracking page: `/lacak` (a form) and `/lacak/NUMBER` (status, category, public
//! timeline, deadlines). It shows nothing personal: no addresses, no names, no message bodies,
//! no agent identities. Indonesian by default, English with `?lang=en`.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::HttpState;
use crate::pipeline::human_time;
use crate::store;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn lang(q: &HashMap<String, String>) -> &'static str {
    if q.get("lang").is_some_and(|l| l == "en") { "en" } else { "id" }
}

fn page(lang: &str, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title><style>body{{font-family:sans-serif;max-width:44em;margin:2em auto;padding:0 1em}}\
         table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}\
         .status{{font-size:1.3em;font-weight:bold}}</style></head><body><h1>{t}</h1>{body}</body></html>\n",
        t = esc(title)
    )
}

fn form_html(lang: &str, message: &str) -> String {
    let (title, label, button) = if lang == "en" {
        ("Track a ticket", "Ticket number", "Track")
    } else {
        ("Lacak Tiket", "Nomor tiket", "Lacak")
    };
    page(
        lang,
        title,
        &format!(
            "{message}<form method=\"get\" action=\"/lacak\"><label for=\"nomor\">{label}</label> \
             <input id=\"nomor\" name=\"nomor\" placeholder=\"A-HERO26000001\" required maxlength=\"40\"> \
             <input type=\"hidden\" name=\"lang\" value=\"{lang}\"><button type=\"submit\">{button}</button></form>"
        ),
    )
}

pub async fn form(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lang = lang(&q);
    if let Some(n) = q.get("nomor").map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !s.allow(peer.ip(), crate::now_ms()) {
            return too_many(lang);
        }
        return match crate::ticket::TicketNumber::parse(n) {
            Some(n) => Redirect::to(&format!("/lacak/{}?lang={lang}", n.as_str())).into_response(),
            None => {
                let msg = if lang == "en" { "That is not a ticket number." } else { "Nomor tiket tidak valid." };
                (StatusCode::BAD_REQUEST, Html(form_html(lang, &format!("<p>{msg}</p>")))).into_response()
            }
        };
    }
    Html(form_html(lang, "")).into_response()
}

fn too_many(lang: &str) -> Response {
    let msg = if lang == "en" {
        "Too many lookups; try again in a minute."
    } else {
        "Terlalu banyak pencarian; coba lagi sebentar."
    };
    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "60")], Html(form_html(lang, &format!("<p>{msg}</p>"))))
        .into_response()
}

/// The public wording of an event, or None when the event is internal.
fn public_event(kind: &str, detail: &serde_json::Value, lang: &str) -> Option<&'static str> {
    let en = lang == "en";
    Some(match kind {
        "created" => {
            if en {
                "Ticket received"
            } else {
                "Tiket diterima"
            }
        }
        "acknowledgement_queued" => {
            if en {
                "Acknowledgement sent"
            } else {
                "Tanda terima dikirim"
            }
        }
        "message_received" => {
            if en {
                "Message from the requester"
            } else {
                "Pesan dari pemohon"
            }
        }
        "sent_to_requester" => match detail["template"].as_str() {
            Some("agent_reply") => {
                if en {
                    "Staff replied"
                } else {
                    "Petugas menanggapi"
                }
            }
            Some("resolution") => {
                if en {
                    "Resolved"
                } else {
                    "Diselesaikan"
                }
            }
            Some("rejection") => {
                if en {
                    "Rejected"
                } else {
                    "Ditolak"
                }
            }
            Some("closed_rating") => {
                if en {
                    "Closed"
                } else {
                    "Ditutup"
                }
            }
            _ => return None,
        },
        "command" => match detail["command"].as_str() {
            Some("assign") | Some("escalate") => {
                if en {
                    "Handled by staff"
                } else {
                    "Ditangani petugas"
                }
            }
            Some("pending") => {
                if en {
                    "Waiting for the requester"
                } else {
                    "Menunggu tanggapan pemohon"
                }
            }
            _ => return None,
        },
        "requirements_missing" => {
            if en {
                "Waiting for requirements"
            } else {
                "Menunggu kelengkapan persyaratan"
            }
        }
        "requirements_complete" => {
            if en {
                "Requirements complete"
            } else {
                "Persyaratan lengkap"
            }
        }
        "reopened" => {
            if en {
                "Reopened"
            } else {
                "Dibuka kembali"
            }
        }
        "confirmed" => {
            if en {
                "Resolution confirmed"
            } else {
                "Penyelesaian dikonfirmasi"
            }
        }
        "closed" => {
            if en {
                "Closed"
            } else {
                "Ditutup"
            }
        }
        "rated" => {
            if en {
                "Rated"
            } else {
                "Dinilai"
            }
        }
        _ => return None,
    })
}

fn status_label(status: &str, lang: &str) -> &'static str {
    let en = lang == "en";
    match status {
        "new" => {
            if en {
                "Received"
            } else {
                "Diterima"
            }
        }
        "open" => {
            if en {
                "In progress"
            } else {
                "Dalam proses"
            }
        }
        "pending" => {
            if en {
                "Waiting for you"
            } else {
                "Menunggu tanggapan Anda"
            }
        }
        "resolved" => {
            if en {
                "Resolved"
            } else {
                "Diselesaikan"
            }
        }
        "closed" => {
            if en {
                "Closed"
            } else {
                "Ditutup"
            }
        }
        "rejected" => {
            if en {
                "Rejected"
            } else {
                "Ditolak"
            }
        }
        _ => "-",
    }
}

pub async fn ticket(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lang = lang(&q);
    if !s.allow(peer.ip(), crate::now_ms()) {
        return too_many(lang);
    }
    let not_found = || {
        let msg =
            if lang == "en" { "No ticket with that number." } else { "Tiket dengan nomor tersebut tidak ditemukan." };
        (StatusCode::NOT_FOUND, Html(form_html(lang, &format!("<p>{msg}</p>")))).into_response()
    };
    let Some(number) = crate::ticket::TicketNumber::parse(&number) else { return not_found() };
    let tickets = match store::tickets_by_number(s.store.pool(), number.as_str()).await {
        Ok(t) => t,
        Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response(),
    };
    let Some(t) = tickets.into_iter().next() else { return not_found() };
    let Some(desk) = s.config.desk(&t.desk) else { return not_found() };
    let events = store::ticket_events(s.store.pool(), t.id).await.unwrap_or_default();
    let clocks = store::sla::clocks_of(s.store.pool(), t.id).await.unwrap_or_default();
    let en = lang == "en";
    let category = match desk.catalogue.subcategory(&t.category, &t.subcategory) {
        Some(sub) => {
            format!("{} / {}", desk.catalogue.category(&t.category).map(|c| c.name.as_str()).unwrap_or(""), sub.name)
        }
        None => (if en { "Triage (to be classified)" } else { "Triase (akan diklasifikasikan)" }).to_string(),
    };
    let mut rows = String::new();
    let mut last: Option<&str> = None;
    for e in &events {
        if let Some(label) = public_event(&e.kind, &e.detail, lang) {
            if last == Some(label) {
                continue;
            }
            last = Some(label);
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&human_time(e.at, desk.tz, lang)),
                esc(label)
            ));
        }
    }
    let mut deadlines = String::new();
    for c in &clocks {
        let k = &c.clock;
        let what = match (k.kind, en) {
            (crate::sla::ClockKind::Response, true) => "First response",
            (crate::sla::ClockKind::Response, false) => "Tanggapan pertama",
            (_, true) => "Resolution",
            (_, false) => "Penyelesaian",
        };
        let when = match (k.due_at, k.stopped_at) {
            (_, Some(at)) => format!("{} {}", if en { "done" } else { "selesai" }, human_time(at, desk.tz, lang)),
            (Some(d), None) => format!("{} {}", if en { "by" } else { "paling lambat" }, human_time(d, desk.tz, lang)),
            (None, None) => (if en { "paused" } else { "dijeda" }).to_string(),
        };
        deadlines.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", esc(what), esc(&when)));
    }
    let (l_status, l_cat, l_desk, l_time, l_dead) = if en {
        ("Status", "Category", "Service desk", "Timeline", "Deadlines")
    } else {
        ("Status", "Kategori", "Layanan", "Riwayat", "Batas waktu")
    };
    let body = format!(
        "<p class=\"status\">{l_status}: {status}</p><table><tr><th>{l_desk}</th><td>{desk}</td></tr>\
         <tr><th>{l_cat}</th><td>{cat}</td></tr></table><h2>{l_time}</h2><table>{rows}</table>{dl}\
         <p><a href=\"/lacak?lang={lang}\">{back}</a></p>",
        status = esc(status_label(t.status.as_str(), lang)),
        desk = esc(&desk.name),
        cat = esc(&category),
        dl = if deadlines.is_empty() { String::new() } else { format!("<h2>{l_dead}</h2><table>{deadlines}</table>") },
        back = if en { "Track another ticket" } else { "Lacak tiket lain" },
    );
    let title = format!("{} #{}", if en { "Ticket" } else { "Tiket" }, t.number);
    Html(page(lang, &title, &body)).into_response()
}
