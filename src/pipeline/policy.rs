//! Pure checks on an inbound mail: the desk's attachment policy (by name and by content), winmail.dat
//! (TNEF) unpacking, the subcategory's requirements (completeness check), the requester's language,
//! and the confirmation and rating replies after resolution.

use crate::catalogue::Subcategory;
use crate::config::AttachmentPolicy;
use crate::domain::{EmailAddress, TicketType};

/// An attachment as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub filename: String,
    pub accepted: bool,
    /// Why it was refused (Indonesian and English are rendered by the templates from this code).
    pub refusal: Option<Refusal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    TooLarge,
    TypeNotAllowed,
    ContentMismatch,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::TypeNotAllowed => "type_not_allowed",
            Refusal::ContentMismatch => "content_mismatch",
        }
    }
}

fn extension(name: &str) -> String {
    name.rsplit_once('.').map(|(_, e)| e.trim().to_ascii_lowercase()).unwrap_or_default()
}

/// Whether `data` looks like a file of extension `ext`. Formats with a signature must carry it;
/// formats without one (csv, txt) are accepted as they are.
pub fn content_matches(ext: &str, data: &[u8]) -> bool {
    let kind = infer::get(data).map(|k| k.extension());
    let ole = data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    let zip = data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06");
    match ext {
        "jpg" | "jpeg" => kind == Some("jpg"),
        "png" => kind == Some("png"),
        "gif" => kind == Some("gif"),
        "pdf" => kind == Some("pdf"),
        "zip" => zip,
        "rar" => kind == Some("rar"),
        "doc" | "xls" | "ppt" => ole,
        "docx" | "xlsx" | "pptx" => zip,
        _ => true,
    }
}

/// Applies `policy` to one attachment of `size` bytes whose first bytes are `head`.
pub fn check_attachment(
    policy: Option<&AttachmentPolicy>,
    filename: Option<&str>,
    size: usize,
    head: &[u8],
) -> Verdict {
    let name = filename.unwrap_or("").to_string();
    let Some(policy) = policy else {
        return Verdict { filename: name, accepted: true, refusal: None };
    };
    let ext = extension(&name);
    let data = head;
    let refusal = if size > policy.max_bytes {
        Some(Refusal::TooLarge)
    } else if !policy.allowed.is_empty() && !policy.allowed.iter().any(|a| a.eq_ignore_ascii_case(&ext)) {
        Some(Refusal::TypeNotAllowed)
    } else if !content_matches(&ext, data) {
        Some(Refusal::ContentMismatch)
    } else {
        None
    };
    Verdict { filename: name, accepted: refusal.is_none(), refusal }
}

/// Files inside a winmail.dat (TNEF) attachment: `(name, bytes)`. Malformed TNEF gives none.
pub fn unpack_tnef(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let data = data.to_vec();
    std::panic::catch_unwind(move || match tnef::read_attachments(&data) {
        Ok(list) => list
            .into_iter()
            .take(100)
            .map(|a| (a.transport_filename.clone().unwrap_or_else(|| a.title.clone()), a.data.to_vec()))
            .collect(),
        Err(_) => Vec::new(),
    })
    .unwrap_or_default()
}

pub fn is_tnef(filename: Option<&str>, content_type: &str) -> bool {
    filename.is_some_and(|f| f.eq_ignore_ascii_case("winmail.dat")) || content_type == "application/ms-tnef"
}

/// What a request still lacks of its subcategory's requirements. Requirements apply to requests
/// (Permohonan): questions and incident reports are never held back.
pub fn missing_requirements(
    sub: &Subcategory,
    ticket_type: Option<TicketType>,
    accepted_attachments: usize,
    sender: &EmailAddress,
    cc: &[EmailAddress],
    is_internal: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut missing = Vec::new();
    if ticket_type != Some(TicketType::Request) {
        return missing;
    }
    if let Some(doc) = &sub.requires_attachment
        && accepted_attachments == 0
    {
        missing.push(doc.clone());
    }
    if sub.requires_supervisor_cc && !cc.iter().any(|a| a != sender && is_internal(a.domain())) {
        missing.push("supervisor_cc".to_string());
    }
    missing
}

/// Language of a requester's text: `en` when English function words clearly outnumber Indonesian
/// ones, else `id`. The heuristic: counts of common short words of each language.
pub fn detect_language(text: &str) -> &'static str {
    const EN: &[&str] = &[
        "the", "and", "is", "are", "to", "of", "my", "i", "please", "can", "not", "cannot", "with", "for", "this",
        "it", "we", "you", "have", "has", "was", "since", "our", "thank", "thanks", "hello", "dear", "would",
    ];
    const ID: &[&str] = &[
        "dan",
        "yang",
        "saya",
        "tidak",
        "bisa",
        "untuk",
        "dengan",
        "ini",
        "itu",
        "mohon",
        "kami",
        "di",
        "ke",
        "dari",
        "ada",
        "sudah",
        "belum",
        "terima",
        "kasih",
        "bapak",
        "ibu",
        "tolong",
        "apakah",
        "bagaimana",
        "pada",
        "akan",
    ];
    let (mut en, mut id) = (0, 0);
    for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(400) {
        let w = w.to_lowercase();
        en += EN.contains(&w.as_str()) as usize;
        id += ID.contains(&w.as_str()) as usize;
    }
    if en >= 3 && en > id * 2 { "en" } else { "id" }
}

/// A rating reply: a digit 1–5 first (also "5/5", "bintang 5", "nilai 4"), then an optional comment.
pub fn parse_rating(text: &str) -> Option<(u8, String)> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let lower = line.to_lowercase();
    let rest = ["bintang", "nilai", "rating", "skor"]
        .iter()
        .find_map(|p| lower.strip_prefix(p).map(|r| r.trim_start_matches([':', ' '])))
        .unwrap_or(&lower);
    let mut chars = rest.chars();
    let d = chars.next()?.to_digit(10)?;
    let after = chars.as_str();
    if !(1..=5).contains(&d) || after.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let after = after.trim_start_matches("/5").trim_start_matches(['.', ',', ')', ' ', '-', ':']).trim();
    let offset = line.len() - after.len().min(line.len());
    let mut comment = line[offset..].trim().to_string();
    let more: Vec<&str> =
        text.lines().map(str::trim).skip_while(|l| l.is_empty()).skip(1).filter(|l| !l.is_empty()).collect();
    if !more.is_empty() {
        if !comment.is_empty() {
            comment.push('\n');
        }
        comment.push_str(&more.join("\n"));
    }
    comment.truncate(comment.char_indices().nth(1000).map(|(i, _)| i).unwrap_or(comment.len()));
    Some((d as u8, comment))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn hero_policy() -> AttachmentPolicy {
        AttachmentPolicy {
            max_bytes: 2 * 1024 * 1024,
            allowed: ["jpg", "jpeg", "png", "pdf", "doc", "docx", "xls", "xlsx", "ppt", "zip", "rar"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    #[test]
    fn attachments_are_checked_by_name_size_and_content() {
        let p = hero_policy();
        let chk = |name: &str, data: &[u8]| check_attachment(Some(&p), Some(name), data.len(), data).refusal;
        let pdf = b"%PDF-1.4\n...".to_vec();
        assert_eq!(chk("surat.pdf", &pdf), None);
        assert_eq!(chk("surat.PDF", &pdf), None);
        assert_eq!(chk("run.exe", b"MZ\x90\0"), Some(Refusal::TypeNotAllowed));
        assert_eq!(chk("fake.pdf", b"MZ\x90\0 not a pdf"), Some(Refusal::ContentMismatch));
        assert_eq!(check_attachment(Some(&p), Some("big.pdf"), 3 * 1024 * 1024, &pdf).refusal, Some(Refusal::TooLarge));
        assert!(check_attachment(None, Some("anything.exe"), 2, b"MZ").accepted);
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        assert_eq!(chk("layar.png", &png), None);
        assert_eq!(chk("layar.jpg", &png), Some(Refusal::ContentMismatch));
    }

    /// A minimal TNEF stream with one attached file (MS-OXTNEF attribute layout).
    pub(crate) fn tnef_with(name: &str, data: &[u8]) -> Vec<u8> {
        fn attr(out: &mut Vec<u8>, level: u8, id: u32, data: &[u8]) {
            out.push(level);
            out.extend(id.to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend(data);
            let sum = data.iter().fold(0u16, |s, b| s.wrapping_add(*b as u16));
            out.extend(sum.to_le_bytes());
        }
        let date: Vec<u8> = [2026u16, 1, 5, 9, 0, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut rend = vec![1, 0];
        rend.extend([0u8; 12]);
        let mut title = name.as_bytes().to_vec();
        title.push(0);
        let mut out = vec![0x78, 0x9f, 0x3e, 0x22, 0x01, 0x00];
        attr(&mut out, 1, 0x0008_9006, &[0, 0, 1, 0]);
        let mut cp = 1252u32.to_le_bytes().to_vec();
        cp.extend(0u32.to_le_bytes());
        attr(&mut out, 1, 0x0006_9007, &cp);
        attr(&mut out, 2, 0x0006_9002, &rend);
        attr(&mut out, 2, 0x0001_8010, &title);
        attr(&mut out, 2, 0x0003_8012, &date);
        attr(&mut out, 2, 0x0003_8013, &date);
        attr(&mut out, 2, 0x0006_800F, data);
        attr(&mut out, 2, 0x0006_9005, &[]);
        out
    }

    #[test]
    fn winmail_dat_is_unpacked() {
        let files = unpack_tnef(&tnef_with("surat.pdf", b"%PDF-1.4 isi"));
        assert_eq!(files, vec![("surat.pdf".to_string(), b"%PDF-1.4 isi".to_vec())]);
        // Truncated at every length: never a panic, never garbage.
        let full = tnef_with("a.txt", b"hello");
        for n in 0..full.len() {
            let _ = unpack_tnef(&full[..n]);
        }
    }

    #[test]
    fn malformed_tnef_yields_nothing() {
        assert!(unpack_tnef(b"not tnef").is_empty());
        assert!(unpack_tnef(&[0x78, 0x9f, 0x3e, 0x22, 0, 0]).is_empty());
        assert!(is_tnef(Some("WINMAIL.DAT"), "application/octet-stream"));
        assert!(is_tnef(None, "application/ms-tnef"));
    }

    #[test]
    fn requirements_apply_to_requests() {
        let sub = Subcategory {
            id: "inatrade".into(),
            name: "INATRADE".into(),
            reference: None,
            types: vec![TicketType::Question, TicketType::Request, TicketType::Incident],
            internal_only: true,
            contact: None,
            description: None,
            fulfilment: None,
            fulfilment_note: None,
            requires_attachment: Some("Surat resmi".into()),
            requires_supervisor_cc: true,
            requires_info: vec![],
        };
        let me = EmailAddress::parse("a@kemendag.go.id").unwrap();
        let boss = EmailAddress::parse("boss@kemendag.go.id").unwrap();
        let internal = |d: &str| d.ends_with("kemendag.go.id");
        assert_eq!(
            missing_requirements(&sub, Some(TicketType::Request), 0, &me, &[], internal),
            vec!["Surat resmi", "supervisor_cc"]
        );
        assert!(missing_requirements(&sub, Some(TicketType::Request), 1, &me, &[boss], internal).is_empty());
        assert_eq!(
            missing_requirements(&sub, Some(TicketType::Request), 1, &me, std::slice::from_ref(&me), internal),
            vec!["supervisor_cc"]
        );
        assert!(missing_requirements(&sub, Some(TicketType::Incident), 0, &me, &[], internal).is_empty());
    }

    #[test]
    fn language_heuristic() {
        assert_eq!(detect_language("Dear team, I cannot log in to the portal since this morning. Please help."), "en");
        assert_eq!(detect_language("Mohon bantuan, saya tidak bisa login ke portal sejak pagi."), "id");
        assert_eq!(detect_language("SIGI error"), "id");
        assert_eq!(detect_language(""), "id");
    }

    #[test]
    fn rating_replies() {
        assert_eq!(parse_rating("5 terima kasih"), Some((5, "terima kasih".into())));
        assert_eq!(parse_rating("4/5 cukup cepat"), Some((4, "cukup cepat".into())));
        assert_eq!(parse_rating("Bintang 3"), Some((3, String::new())));
        assert_eq!(parse_rating("\n2. lambat\nbaris dua"), Some((2, "lambat\nbaris dua".into())));
        assert_eq!(parse_rating("10 jam menunggu"), None);
        assert_eq!(parse_rating("0"), None);
        assert_eq!(parse_rating("terima kasih"), None);
    }
}
