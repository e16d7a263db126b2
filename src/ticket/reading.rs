//! Reading a request and the replies after it: what the request still lacks of its subcategory's
//! requirements (the completeness check), the requester's language, and a rating reply after
//! resolution. Pure: text and the catalogue in, values out.

use crate::catalogue::{Missing, RequirementKind, Subcategory};
use crate::domain::{EmailAddress, Language, TicketType};

/// What a request still lacks of its subcategory's requirements. Requirements apply to requests
/// (Permohonan): questions and incident reports are never held back. A requirement counts only when
/// its condition holds for `text`, the request's subject and body. An attachment requirement is met
/// by at least one accepted attachment; the supervisor's requirement by an internal address other
/// than the sender's in CC.
pub fn missing_requirements(
    sub: &Subcategory,
    ticket_type: Option<TicketType>,
    text: &str,
    accepted_attachments: usize,
    sender: &EmailAddress,
    cc: &[EmailAddress],
    is_internal: impl Fn(&str) -> bool,
) -> Vec<Missing> {
    if ticket_type != Some(TicketType::Request) {
        return Vec::new();
    }
    let folded = crate::routing::normalize::fold(text);
    let supervisor_in_cc = || cc.iter().any(|a| a != sender && is_internal(a.domain()));
    let mut missing: Vec<Missing> = Vec::new();
    for r in sub.requirements.iter().filter(|r| r.condition.holds(&folded)) {
        let met = match r.kind {
            RequirementKind::Attachment => accepted_attachments > 0,
            RequirementKind::SupervisorCc => supervisor_in_cc(),
        };
        let m = Missing { kind: r.kind, item: r.item.clone() };
        if !met && !missing.contains(&m) {
            missing.push(m);
        }
    }
    missing
}

/// A piece of required information the request does not give (`malformed`: it names it, but the
/// value does not look like one, e.g. a kode satker that is not six digits).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InfoAsked {
    pub name: String,
    pub malformed: bool,
}

/// The subcategory's required information (`[[...info]]`) that the request's `text` does not give.
/// Questions are never asked for information. A field is given when one of its labels is followed,
/// within three words, by a value its pattern accepts (any value when it has no pattern), or, for a
/// field with a pattern, when any word of the request matches it; a label followed by no such
/// value makes the field malformed.
pub fn missing_info(sub: &Subcategory, ticket_type: Option<TicketType>, text: &str) -> Vec<InfoAsked> {
    if ticket_type == Some(TicketType::Question) || sub.info.is_empty() {
        return Vec::new();
    }
    let bounded = &text[..text.floor_char_boundary(64 * 1024)];
    let folded = crate::routing::normalize::fold(bounded);
    let words: Vec<&str> = folded.split_whitespace().collect();
    let mut out = Vec::new();
    for f in &sub.info {
        let fits = |w: &str| f.pattern.as_ref().is_none_or(|p| p.is_match(w));
        let mut labelled = false;
        let mut given = false;
        for label in &f.labels {
            let label_words: Vec<&str> = label.split_whitespace().collect();
            for i in 0..words.len().saturating_sub(label_words.len() - 1) {
                if words[i..i + label_words.len()] == label_words[..] {
                    labelled = true;
                    let after = &words[i + label_words.len()..];
                    if f.pattern.is_none() || after.iter().take(3).any(|w| fits(w)) {
                        given = true;
                    }
                }
            }
        }
        if !given && f.pattern.is_some() && words.iter().any(|w| fits(w)) {
            given = true;
        }
        if !given {
            out.push(InfoAsked { name: f.name.clone(), malformed: labelled });
        }
    }
    out
}

/// Language of a requester's text: `en` when English function words clearly outnumber Indonesian
/// ones, else `id`. The heuristic: counts of common short words of each language, among the first
/// 400 words.
pub fn detect_language(text: &str) -> Language {
    let (mut en, mut id) = (0, 0);
    for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(400) {
        let (e, i) = function_word(w);
        en += usize::from(e);
        id += usize::from(i);
    }
    if en >= 3 && en > id * 2 { Language::En } else { Language::Id }
}

/// Whether `word` (any case) is one of the English or Indonesian function words that
/// [`detect_language`] counts. Called for every word, so without an allocation for the words
/// that are plain ASCII; the longest function word has nine letters.
fn function_word(word: &str) -> (bool, bool) {
    const LONGEST: usize = 9;
    let mut buf = [0u8; LONGEST];
    let lower;
    let w: &str = if word.is_ascii() {
        if word.len() > LONGEST {
            return (false, false);
        }
        let b = &mut buf[..word.len()];
        b.copy_from_slice(word.as_bytes());
        b.make_ascii_lowercase();
        std::str::from_utf8(b).unwrap_or_default()
    } else {
        // Rare, and a few letters lower-case to ASCII (the Kelvin sign to `k`).
        lower = word.to_lowercase();
        &lower
    };
    let en = matches!(
        w,
        "the"
            | "and"
            | "is"
            | "are"
            | "to"
            | "of"
            | "my"
            | "i"
            | "please"
            | "can"
            | "not"
            | "cannot"
            | "with"
            | "for"
            | "this"
            | "it"
            | "we"
            | "you"
            | "have"
            | "has"
            | "was"
            | "since"
            | "our"
            | "thank"
            | "thanks"
            | "hello"
            | "dear"
            | "would"
    );
    let id = matches!(
        w,
        "dan"
            | "yang"
            | "saya"
            | "tidak"
            | "bisa"
            | "untuk"
            | "dengan"
            | "ini"
            | "itu"
            | "mohon"
            | "kami"
            | "di"
            | "ke"
            | "dari"
            | "ada"
            | "sudah"
            | "belum"
            | "terima"
            | "kasih"
            | "bapak"
            | "ibu"
            | "tolong"
            | "apakah"
            | "bagaimana"
            | "pada"
            | "akan"
    );
    (en, id)
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
mod tests {
    use super::*;
    use crate::catalogue::{Condition, Requirement, SUPERVISOR_CC_ITEM};

    fn requirement(kind: RequirementKind, item: &str, condition: Condition) -> Requirement {
        Requirement { kind, item: item.into(), condition, note: None }
    }

    fn sub_with(requirements: Vec<Requirement>) -> Subcategory {
        Subcategory {
            id: "inatrade".into(),
            name: "INATRADE".into(),
            reference: None,
            types: vec![TicketType::Question, TicketType::Request, TicketType::Incident],
            internal_only: true,
            contact: None,
            description: None,
            fulfilment: None,
            fulfilment_note: None,
            requirements,
            requires_info: vec![],
            ..Default::default()
        }
    }

    fn att(item: &str) -> Missing {
        Missing { kind: RequirementKind::Attachment, item: item.into() }
    }

    fn cc() -> Missing {
        Missing { kind: RequirementKind::SupervisorCc, item: SUPERVISOR_CC_ITEM.into() }
    }

    #[test]
    fn requirements_apply_to_requests() {
        let sub = sub_with(vec![
            requirement(RequirementKind::Attachment, "Surat resmi", Condition::default()),
            requirement(RequirementKind::SupervisorCc, SUPERVISOR_CC_ITEM, Condition::default()),
        ]);
        let me = EmailAddress::parse("a@kemendag.go.id").unwrap();
        let boss = EmailAddress::parse("boss@kemendag.go.id").unwrap();
        let outsider = EmailAddress::parse("boss@gmail.com").unwrap();
        let internal = |d: &str| d.ends_with("kemendag.go.id");
        let req = Some(TicketType::Request);
        assert_eq!(missing_requirements(&sub, req, "", 0, &me, &[], internal), vec![att("Surat resmi"), cc()]);
        assert!(missing_requirements(&sub, req, "", 1, &me, std::slice::from_ref(&boss), internal).is_empty());
        assert_eq!(missing_requirements(&sub, req, "", 1, &me, std::slice::from_ref(&me), internal), vec![cc()]);
        assert_eq!(missing_requirements(&sub, req, "", 1, &me, &[outsider], internal), vec![cc()]);
        assert!(missing_requirements(&sub, Some(TicketType::Incident), "", 0, &me, &[], internal).is_empty());
        assert!(missing_requirements(&sub, None, "", 0, &me, &[], internal).is_empty());
    }

    fn phrases(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| crate::routing::normalize::fold(p)).collect()
    }

    #[test]
    fn conditions_select_the_requirements_that_apply() {
        let collective = Condition {
            when_any: phrases(&["kolektif", "massal"]),
            when_regex: Some(
                crate::lazy_regex::LazyRegex::new(r"\b(3[1-9]|[4-9][0-9]|[1-9][0-9]{2,}) (akun|pegawai)\b", true)
                    .unwrap(),
            ),
            unless_any: vec![],
        };
        let not_reset =
            Condition { when_any: vec![], when_regex: None, unless_any: phrases(&["reset password", "MFA"]) };
        let sub = sub_with(vec![
            requirement(RequirementKind::Attachment, "Formulir kolektif", collective),
            requirement(RequirementKind::Attachment, "SK Penetapan", not_reset),
        ]);
        let me = EmailAddress::parse("a@kemenkeu.go.id").unwrap();
        let miss = |text: &str, attachments: usize| {
            missing_requirements(&sub, Some(TicketType::Request), text, attachments, &me, &[], |_| true)
        };
        // Unconditional except for resets; the collective form only for collective requests.
        assert_eq!(miss("Mohon dibuatkan akun untuk pegawai baru", 0), vec![att("SK Penetapan")]);
        assert_eq!(miss("Pembuatan akun KOLEKTIF", 0), vec![att("Formulir kolektif"), att("SK Penetapan")]);
        assert_eq!(miss("Akun untuk 45 pegawai", 0), vec![att("Formulir kolektif"), att("SK Penetapan")]);
        assert_eq!(miss("Akun untuk 12 pegawai", 0), vec![att("SK Penetapan")]);
        assert_eq!(miss("Akun untuk 300 akun", 0), vec![att("Formulir kolektif"), att("SK Penetapan")]);
        // Folding: case, accents and punctuation do not matter; phrases match whole words.
        assert!(miss("Mohon RESET-password saya", 0).is_empty());
        assert!(miss("mohon réset   password", 0).is_empty());
        assert!(miss("aktivasi mfa", 0).is_empty());
        assert_eq!(miss("aktivasi mfaku", 0), vec![att("SK Penetapan")]);
        assert_eq!(miss("kolektifitas", 0), vec![att("SK Penetapan")]);
        // One accepted attachment meets the attachment requirements.
        assert!(miss("Pembuatan akun kolektif", 1).is_empty());
    }

    #[test]
    fn unless_wins_over_when() {
        let c = Condition { when_any: phrases(&["akun"]), when_regex: None, unless_any: phrases(&["reset password"]) };
        assert!(c.holds(&crate::routing::normalize::fold("pembuatan akun")));
        assert!(!c.holds(&crate::routing::normalize::fold("reset password akun")));
        assert!(!c.holds(&crate::routing::normalize::fold("hosting")));
        assert!(Condition::default().holds(" apa saja "));
    }

    fn seed(desk: &str) -> crate::catalogue::Catalogue {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("seeds/{desk}.toml"));
        crate::catalogue::Catalogue::load(&path).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// What the real catalogue holds a request for: `text` is subject and body, no attachment, the
    /// supervisor in CC (so only documents count).
    fn held_for(desk: &str, category: &str, sub: &str, text: &str) -> Vec<Missing> {
        let cat = seed(desk);
        let sub = cat.subcategory(category, sub).unwrap_or_else(|| panic!("{desk} {category}/{sub}"));
        let me = EmailAddress::parse("pegawai@kemenkeu.go.id").unwrap();
        let boss = EmailAddress::parse("atasan@kemenkeu.go.id").unwrap();
        missing_requirements(sub, Some(TicketType::Request), text, 0, &me, &[boss], |_| true)
    }

    fn items(missing: &[Missing]) -> Vec<&str> {
        missing.iter().map(|m| m.item.as_str()).collect()
    }

    #[test]
    fn real_catalogues_hold_only_requests_whose_condition_applies() {
        let account = ("pusintek", "itsm_8_akun", "pembuatan_akun");
        let individual = "Permohonan akun email\nMohon dibuatkan akun email kedinasan untuk pegawai baru atas nama Rina Wati, NIP 199001012020122001.";
        assert_eq!(held_for(account.0, account.1, account.2, individual), vec![]);
        let collective = "Permohonan akun\nMohon pembuatan akun email kolektif untuk 45 pegawai baru di unit kami.";
        assert_eq!(
            items(&held_for(account.0, account.1, account.2, collective)),
            ["Format Lampiran Akun Individu Secara Kolektif"]
        );
        let many = "Mohon dibuatkan akun email untuk 45 pegawai CPNS";
        assert_eq!(held_for(account.0, account.1, account.2, many).len(), 1);
        // The supervisor in CC still counts everywhere it is asked for: the individual request
        // without CC lacks exactly that.
        let cat = seed("pusintek");
        let sub = cat.subcategory(account.1, account.2).unwrap();
        let me = EmailAddress::parse("pegawai@kemenkeu.go.id").unwrap();
        let no_cc = missing_requirements(sub, Some(TicketType::Request), individual, 0, &me, &[], |_| true);
        assert_eq!(no_cc.iter().map(|m| m.kind).collect::<Vec<_>>(), [RequirementKind::SupervisorCc]);

        let software = ("pusintek", "itsm_10_perangkat_lunak", "instalasi_perangkat_lunak");
        assert_eq!(
            held_for(software.0, software.1, software.2, "Mohon instalasi Adobe Acrobat di laptop saya"),
            vec![]
        );
        assert_eq!(
            held_for(software.0, software.1, software.2, "Mohon instalasi SPSS pada 12 laptop ruang rapat").len(),
            1
        );
        assert_eq!(
            held_for(
                "pusintek",
                "itsm_10_perangkat_lunak",
                "penyediaan_perangkat_lunak",
                "Mohon disediakan lisensi Microsoft Visio untuk saya"
            ),
            vec![]
        );

        let sakti = ("djpb", "tik_2_pengelolaan_user", "sakti");
        assert_eq!(
            held_for(sakti.0, sakti.1, sakti.2, "Reset password SAKTI\nmohon reset password SAKTI user saya"),
            vec![]
        );
        assert_eq!(held_for(sakti.0, sakti.1, sakti.2, "Mohon reset MFA SAKTI, NIK 3201xxxxxxxxxxxx"), vec![]);
        let new_user = held_for(
            sakti.0,
            sakti.1,
            sakti.2,
            "Pendaftaran user SAKTI\nMohon pendaftaran user SAKTI baru untuk operator di unit non satker kami.",
        );
        assert_eq!(new_user.len(), 1, "{new_user:?}");
        assert!(new_user[0].item.starts_with("SK Penetapan Pengguna SAKTI dan Form Pendaftaran"), "{new_user:?}");
        assert_eq!(new_user[0].kind, RequirementKind::Attachment);

        let m365 = ("djpb", "tik_5_infrastruktur_jaringan_keamanan", "microsoft_365");
        for help in [
            "Mohon bantuan reset password akun Microsoft 365 saya",
            "Mohon bantuan instalasi Office 365 versi desktop di laptop saya",
            "Authenticator di HP baru tidak bisa, mohon dibantu",
        ] {
            assert_eq!(held_for(m365.0, m365.1, m365.2, help), vec![], "{help}");
        }
        assert_eq!(held_for(m365.0, m365.1, m365.2, "Permohonan narasumber sharing session Office 365").len(), 1);

        let myintress = ("djpb", "tik_2_pengelolaan_user", "myintress");
        assert_eq!(
            items(&held_for(myintress.0, myintress.1, myintress.2, "Mohon penghapusan pengguna MyIntress a.n. Budi")),
            ["Surat Permintaan Penghapusan Pengguna"]
        );

        assert_eq!(
            held_for("hero", "aplikasi", "inatrade", "Mohon dibuatkan akun INATRADE untuk operator baru").len(),
            1
        );
        assert_eq!(
            held_for("hero", "aplikasi", "e_sppd", "Mohon perbaikan data perjalanan dinas saya di e-SPPD"),
            vec![]
        );
    }

    #[test]
    fn catalogue_notes_never_reach_requesters() {
        // Every requirement of every desk, as if its condition held (the text names every phrase
        // of every condition, and no reset): no item carries a note.
        for desk in ["hero", "pusintek", "djpb", "jateng"] {
            let cat = seed(desk);
            for c in &cat.categories {
                for s in &c.subcategories {
                    let mut texts = vec![String::new()];
                    for r in &s.requirements {
                        texts.push(r.condition.when_any.join(" "));
                    }
                    let me = EmailAddress::parse("pegawai@example.go.id").unwrap();
                    let mut seen = 0;
                    for text in &texts {
                        for m in missing_requirements(s, Some(TicketType::Request), text, 0, &me, &[], |_| false) {
                            seen += 1;
                            let lower = m.item.to_lowercase();
                            assert!(
                                !m.item.contains(['(', ')'])
                                    && !lower.contains("hanya untuk")
                                    && !lower.contains("tidak untuk"),
                                "{desk} {}/{}: {:?}",
                                c.id,
                                s.id,
                                m.item
                            );
                            assert!(!m.item.trim().is_empty(), "{desk} {}/{}", c.id, s.id);
                        }
                    }
                    let documents = s.requirements.iter().filter(|r| r.kind == RequirementKind::Attachment).count();
                    assert!(documents == 0 || seen > 0, "{desk} {}/{}: no requirement ever applies", c.id, s.id);
                }
            }
        }
    }

    #[test]
    fn language_heuristic() {
        assert_eq!(
            detect_language("Dear team, I cannot log in to the portal since this morning. Please help."),
            Language::En
        );
        assert_eq!(detect_language("Mohon bantuan, saya tidak bisa login ke portal sejak pagi."), Language::Id);
        assert_eq!(detect_language("SIGI error"), Language::Id);
        assert_eq!(detect_language(""), Language::Id);
        // Case, long words and non-ASCII letters: "THANKS", "PLEASE", "Dear" count; the Kelvin
        // sign lower-cases to "k", so "\u{212A}e" is "ke".
        assert_eq!(detect_language("THANKS. PLEASE help, Dear TEAM, administrator"), Language::En);
        assert_eq!(function_word("\u{212A}E"), (false, true));
        assert_eq!(function_word("Bagaimana"), (false, true));
        assert_eq!(function_word("bagaimanapun"), (false, false));
        assert_eq!(function_word("Ünd"), (false, false));
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
