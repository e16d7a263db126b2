//! A request an agent brings to the desk for someone else, read from the agent's new mail: a
//! `#requester ADDRESS [Name]` line on top (a phone call, a walk-in), or a user's mail forwarded
//! to the desk (the forwarded header block names the original sender). Pure: the pipeline opens
//! the ticket for the person this names, who gets the acknowledgement; the agent's own words
//! above a forward stay with the agents as an internal note.

use std::sync::LazyLock;

use regex::Regex;

use super::command::{self, Command};
use crate::domain::EmailAddress;

/// How the agent named the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Command,
    Forward,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Command => "command",
            Via::Forward => "forward",
        }
    }
}

/// The request as the requester would have written it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBehalf {
    pub requester: EmailAddress,
    pub name: Option<String>,
    pub subject: String,
    /// The request: the agent's words after `#requester`, or the forwarded mail's body.
    pub text: String,
    /// For the agents only: the agent's words above a forwarded mail.
    pub note: String,
    pub via: Via,
}

/// "Fwd:", "FW:", "Tr:", "WG:", "Terusan:" in front of a subject.
static FORWARD_SUBJECT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*(?:fwd?|tr|wg|terusan|diteruskan)\s*:\s*").expect("regex"));
/// The line above a forwarded header block: "---------- Forwarded message ---------",
/// "-----Original Message-----", "Begin forwarded message:", Outlook's line of underscores.
static FORWARD_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[\s>]*(?:-{2,}\s*(?:forwarded message|original message|pesan (?:yang )?diteruskan|pesan asli|pesan terusan)\s*-{2,}|begin forwarded message\s*:?|(?:awal )?pesan yang diteruskan\s*:?|_{10,})\s*$",
    )
    .expect("regex")
});
/// One line of a forwarded header block: "From: Budi <budi@…>", "Dari: …", "*Subject:* …".
static HEADER_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[\s>]*\**\s*(from|dari|von|de|date|tanggal|sent|dikirim|terkirim|subject|perihal|subjek|to|kepada|cc|tembusan)\s*\**\s*:\s*\**\s*(.*)$")
        .expect("regex")
});

/// An address inside a header value that is not `Name <address>`.
static ADDRESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+").expect("regex"));

/// At most this many lines after a marker are read as the forwarded header block.
const MAX_HEADER_LINES: usize = 12;

/// What an agent's new mail (one that threads to no ticket) asks for: `Ok(None)` when it is the
/// agent's own request, `Err` when a `#requester` line cannot be followed (the reason, for the
/// agent). `is_desk` names the desk's own addresses and its agents, who are never a requester
/// this way.
pub fn read(subject: &str, text: &str, is_desk: impl Fn(&EmailAddress) -> bool) -> Result<Option<OnBehalf>, String> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let word = first.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    if matches!(word.trim_end_matches(':'), "#requester" | "#pemohon") {
        let reply = command::parse(text).map_err(|e| e.to_string())?;
        let [Command::Requester(requester, name)] = &reply.commands[..] else {
            return Err("#requester opens a ticket for someone else: no other command beside it".into());
        };
        if is_desk(requester) {
            return Err(format!("#requester {requester}: the desk's own address or an agent is not a requester"));
        }
        if reply.text.trim().is_empty() {
            return Err("#requester: write the request below the command line".into());
        }
        return Ok(Some(OnBehalf {
            requester: requester.clone(),
            name: name.clone(),
            subject: subject.to_string(),
            text: reply.text,
            note: String::new(),
            via: Via::Command,
        }));
    }
    Ok(forwarded(subject, text).filter(|b| !is_desk(&b.requester)))
}

/// The forwarded mail inside `text`, when there is one with a readable sender.
fn forwarded(subject: &str, text: &str) -> Option<OnBehalf> {
    let fwd_subject = FORWARD_SUBJECT.is_match(subject);
    let lines: Vec<&str> = text.lines().collect();
    // The header block starts at a From line right after a marker, or, in a subject that says
    // "Fwd:", at the first From line.
    let (marker, start) = lines.iter().enumerate().find_map(|(i, l)| {
        let is_from = HEADER_LINE.captures(l).is_some_and(|c| is_from_name(&c[1]));
        if !is_from {
            return None;
        }
        let above = lines[..i].iter().rposition(|l| !l.trim().is_empty());
        match above {
            Some(j) if FORWARD_MARKER.is_match(lines[j]) => Some((j, i)),
            _ if fwd_subject => Some((i, i)),
            _ => None,
        }
    })?;
    let mut from = None;
    let mut fwd_subject_line = None;
    let mut end = start;
    for (i, l) in lines.iter().enumerate().skip(start).take(MAX_HEADER_LINES) {
        if l.trim().is_empty() {
            break;
        }
        let Some(c) = HEADER_LINE.captures(l) else { break };
        let (name, value) = (c[1].to_ascii_lowercase(), c[2].trim().trim_end_matches('*').trim().to_string());
        if is_from_name(&name) && from.is_none() {
            from = Some(value);
        } else if matches!(name.as_str(), "subject" | "perihal" | "subjek") {
            fwd_subject_line = Some(value);
        }
        end = i + 1;
    }
    let from = from?;
    // "Budi <budi@…>", "budi@…", Outlook's "Budi [mailto:budi@…]".
    let requester = EmailAddress::parse(&from)
        .ok()
        .or_else(|| ADDRESS.find(&from).and_then(|m| EmailAddress::parse(m.as_str()).ok()))?;
    let name = from
        .rfind(['<', '['])
        .map(|i| from[..i].trim().trim_matches(|c| c == '"' || c == '\'' || c == '*').trim().to_string())
        .filter(|n| !n.is_empty() && n.len() <= 100);
    let unquote = |l: &&str| l.strip_prefix("> ").or_else(|| l.strip_prefix('>')).unwrap_or(l).to_string();
    let body: Vec<String> = lines[end..].iter().map(unquote).collect();
    let note = lines[..marker].join("\n").trim().to_string();
    let subject = fwd_subject_line
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| FORWARD_SUBJECT.replace(subject, "").trim().to_string());
    Some(OnBehalf { requester, name, subject, text: body.join("\n").trim().to_string(), note, via: Via::Forward })
}

/// A mail forwarded as an attachment (`message/rfc822`, "forward as attachment", under a `Fwd:`
/// subject): the first
/// attached message with a readable sender that is not the desk's (`is_desk`), with its subject
/// and text; `note` (the agent's own words) stays with the agents. `raw` is the agent's whole mail,
/// already within the desk's size and MIME limits.
pub fn attached(subject: &str, raw: &[u8], note: &str, is_desk: impl Fn(&EmailAddress) -> bool) -> Option<OnBehalf> {
    // Only a mail that says it forwards: an .eml attached to the agent's own request is evidence.
    if !FORWARD_SUBJECT.is_match(subject) {
        return None;
    }
    let msg = mail_parser::MessageParser::default().parse(raw)?;
    msg.parts.iter().find_map(|p| {
        let mail_parser::PartType::Message(inner) = &p.body else { return None };
        let addr = inner.from()?.first()?;
        let requester = EmailAddress::parse(addr.address()?).ok().filter(|a| !is_desk(a))?;
        let name = addr.name().map(|n| n.trim().to_string()).filter(|n| !n.is_empty() && n.len() <= 100);
        Some(OnBehalf {
            requester,
            name,
            subject: inner.subject().unwrap_or_default().trim().to_string(),
            text: inner.body_text(0).map(|t| t.trim().to_string()).unwrap_or_default(),
            note: note.trim().to_string(),
            via: Via::Forward,
        })
    })
}

fn is_from_name(name: &str) -> bool {
    matches!(name.to_ascii_lowercase().as_str(), "from" | "dari" | "von" | "de")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn desk(x: &EmailAddress) -> bool {
        x.domain() == "desk.test"
    }

    #[test]
    fn a_requester_line_names_the_requester() {
        let b = read("Printer lantai 3", "#requester budi@kemenkeu.go.id Budi Santoso\n\nPrinter macet.", desk)
            .unwrap()
            .unwrap();
        assert_eq!(
            (b.requester, b.name.as_deref(), b.via),
            (a("budi@kemenkeu.go.id"), Some("Budi Santoso"), Via::Command)
        );
        assert_eq!((b.subject.as_str(), b.text.as_str(), b.note.as_str()), ("Printer lantai 3", "Printer macet.", ""));
        assert!(read("x", "#requester agus@desk.test\nx", desk).unwrap_err().contains("agent"));
        assert!(read("x", "#requester budi@x.test\n#priority P1\nx", desk).unwrap_err().contains("no other command"));
        assert!(read("x", "#requester budi\nx", desk).is_err());
        assert!(read("x", "#requester budi@x.test", desk).unwrap_err().contains("below"));
        assert_eq!(read("Printer", "Printer saya rusak.", desk), Ok(None), "the agent's own request");
    }

    #[test]
    fn a_forwarded_mail_names_its_sender() {
        let gmail = "Mohon dibantu, beliau menelepon juga.\n\n---------- Forwarded message ---------\n\
                     From: Budi Santoso <budi@kemenkeu.go.id>\nDate: Mon, 5 Jan 2026 at 08:00\n\
                     Subject: VPN tidak tersambung\nTo: <agus@desk.test>\n\nVPN gagal sejak pagi.\nTerima kasih.";
        let b = read("Fwd: VPN tidak tersambung", gmail, desk).unwrap().unwrap();
        assert_eq!(
            (b.requester, b.name.as_deref(), b.via),
            (a("budi@kemenkeu.go.id"), Some("Budi Santoso"), Via::Forward)
        );
        assert_eq!(b.subject, "VPN tidak tersambung");
        assert_eq!(b.text, "VPN gagal sejak pagi.\nTerima kasih.");
        assert_eq!(b.note, "Mohon dibantu, beliau menelepon juga.");

        let outlook = "\n________________________________\nDari: ani@kemenkeu.go.id\nDikirim: Senin\n\
                       Kepada: Agus\nPerihal: Email penuh\n\n> Kotak surat saya penuh.";
        let b = read("FW: Email penuh", outlook, desk).unwrap().unwrap();
        assert_eq!((b.requester.as_str(), b.name, b.subject.as_str()), ("ani@kemenkeu.go.id", None, "Email penuh"));
        assert_eq!((b.text.as_str(), b.note.as_str()), ("Kotak surat saya penuh.", ""));

        let outlook = "-----Original Message-----\nFrom: Eko Saputra [mailto:eko@kemenkeu.go.id]\n\
                       Terkirim: Senin\nKepada: Agus\nSubjek: Akun terkunci\n\nAkun saya terkunci.";
        let b = read("FW: Akun", outlook, desk).unwrap().unwrap();
        assert_eq!((b.requester.as_str(), b.name.as_deref()), ("eko@kemenkeu.go.id", Some("Eko Saputra")));
        assert_eq!((b.subject.as_str(), b.text.as_str()), ("Akun terkunci", "Akun saya terkunci."));

        // A forward of the agent's own or the desk's mail, or no sender at all: the agent's own.
        let own = "---------- Forwarded message ---------\nFrom: sari@desk.test\n\nx";
        assert_eq!(read("Fwd: x", own, desk), Ok(None));
        assert_eq!(read("Fwd: x", "Tolong dicek.", desk), Ok(None));
        let no_address = "-----Original Message-----\nFrom: Budi\nSubject: x\n\ny";
        assert_eq!(read("Fwd: x", no_address, desk), Ok(None));
        // Forwarded as an attachment.
        let raw = "From: agus@desk.test\r\nTo: desk@desk.test\r\nSubject: Fwd: Printer\r\nMIME-Version: 1.0\r\n\
                   Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
                   Mohon dibantu.\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n\
                   From: Fitri <fitri@kemenkeu.go.id>\r\nSubject: Printer macet\r\nContent-Type: text/plain\r\n\r\n\
                   Printer lantai 4 macet.\r\n--b--\r\n";
        let b = attached("Fwd: Printer", raw.as_bytes(), " Mohon dibantu.\n", desk).unwrap();
        assert_eq!((b.requester.as_str(), b.name.as_deref()), ("fitri@kemenkeu.go.id", Some("Fitri")));
        assert_eq!(
            (b.subject.as_str(), b.text.as_str(), b.note.as_str()),
            ("Printer macet", "Printer lantai 4 macet.", "Mohon dibantu.")
        );
        assert!(
            attached("Fwd: x", raw.replace("fitri@kemenkeu.go.id", "sari@desk.test").as_bytes(), "", desk).is_none()
        );
        assert!(attached("Lihat lampiran", raw.as_bytes(), "", desk).is_none(), "not said to be a forward");
        assert!(attached("Fwd: x", b"From: a@b.test\r\n\r\nhalo", "", desk).is_none());

        // A From line in the middle of an ordinary mail is not a forward.
        assert_eq!(read("Laporan", "Halo,\nFrom: budi@kemenkeu.go.id dia bilang error.", desk), Ok(None));
    }
}
