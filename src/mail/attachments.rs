//! The desk's attachment policy, checked by name, size and content (`infer`), and winmail.dat (TNEF)
//! unpacking. Pure: takes the bytes, returns a [`Verdict`].

use crate::config::AttachmentPolicy;

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

/// One attachment's bytes, as [`extract`] finds it in a raw mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBytes {
    pub filename: Option<String>,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// A raster image (PNG, JPEG, GIF, WebP) the mail showed inside its text
    /// (`Content-Disposition: inline` or a `Content-ID`): relayed inline in the HTML part.
    pub inline: bool,
}

/// The attachments of `raw` with their bytes, in the order and numbering of
/// `parse::ParsedMail::attachments` (winmail.dat unpacked the same way), so that the k-th
/// `attachments` row of a stored message is the k-th file here. Unparseable mail gives none.
pub fn extract(raw: &[u8]) -> Vec<FileBytes> {
    use mail_parser::{MessageParser, MimeHeaders};
    let Some(msg) = MessageParser::default().parse(raw) else { return Vec::new() };
    let mut out = Vec::new();
    for part in msg.attachments().take(crate::mail::parse::MAX_ATTACHMENTS) {
        let filename = part.attachment_name().map(str::to_string);
        let content_type = part
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")).to_ascii_lowercase())
            .unwrap_or_else(|| "application/octet-stream".into());
        let data = part.contents();
        if is_tnef(filename.as_deref(), &content_type) {
            let inner = unpack_tnef(data);
            if !inner.is_empty() {
                for (name, bytes) in inner.into_iter().take(crate::mail::parse::MAX_ATTACHMENTS) {
                    out.push(FileBytes {
                        filename: Some(name),
                        content_type: "application/octet-stream".into(),
                        bytes,
                        inline: false,
                    });
                }
                continue;
            }
        }
        // Raster images only: an SVG is a document that may carry scripts, never shown inline.
        let image = matches!(content_type.as_str(), "image/png" | "image/jpeg" | "image/gif" | "image/webp");
        let disposition_inline = part.content_disposition().is_some_and(|d| d.is_inline());
        let inline = image && (disposition_inline || part.content_id().is_some());
        out.push(FileBytes { filename, content_type, bytes: data.to_vec(), inline });
    }
    out
}

pub fn is_tnef(filename: Option<&str>, content_type: &str) -> bool {
    filename.is_some_and(|f| f.eq_ignore_ascii_case("winmail.dat")) || content_type == "application/ms-tnef"
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
    fn extracted_files_follow_the_parsed_numbering() {
        use base64::Engine;
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR rest".to_vec();
        let tnef = tnef_with("surat.pdf", b"%PDF-1.4 isi");
        let raw = format!(
            "From: a@example.test\r\nTo: d@example.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhalo\r\n\
             --b\r\nContent-Type: image/png\r\nContent-ID: <img1@x>\r\nContent-Disposition: inline; filename=layar.png\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b\r\nContent-Type: application/ms-tnef\r\n\
             Content-Disposition: attachment; filename=winmail.dat\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            b64(&png),
            b64(&tnef)
        );
        let files = extract(raw.as_bytes());
        let parsed = crate::mail::parse::parse(raw.as_bytes()).unwrap();
        assert_eq!(files.len(), parsed.attachments.len());
        for (f, a) in files.iter().zip(&parsed.attachments) {
            assert_eq!(crate::mail::parse::sha256_hex(&f.bytes), a.sha256);
            assert_eq!(f.filename, a.filename);
        }
        assert_eq!(files[0].bytes, png);
        assert!(files[0].inline);
        assert_eq!(files[1].bytes, b"%PDF-1.4 isi");
        assert!(!files[1].inline);
        assert!(extract(b"").is_empty());
    }

    #[test]
    fn malformed_tnef_yields_nothing() {
        assert!(unpack_tnef(b"not tnef").is_empty());
        assert!(unpack_tnef(&[0x78, 0x9f, 0x3e, 0x22, 0, 0]).is_empty());
        assert!(is_tnef(Some("WINMAIL.DAT"), "application/octet-stream"));
        assert!(is_tnef(None, "application/ms-tnef"));
    }
}
