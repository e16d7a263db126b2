//! Reply trimming: what the sender wrote now, without the quoted history, the forwarded or
//! embedded previous mail and the signature. The original body is stored elsewhere, so nothing is
//! lost; [`Trimmed::elided`] holds what was cut.
//!
//! Pure and bounded: one pass classifies every line, a few linear passes decide which lines stay.
//! Regular expressions only ever see short strings (markers and headers are short; longer lines
//! are plain text or quotes by definition), so a 256 KB body with megabyte-long lines costs no more
//! than reading it.
//!
//! How a body is read:
//!
//! 1. Every line gets a kind: empty, text, quote (`>`, `Name>`), marker (an attribution line such
//!    as "On … wrote:" / "Pada … menulis:", also when a client wrapped it over up to five lines,
//!    "-----Original Message-----", "---------- Forwarded message ---------", "Begin forwarded
//!    message:"), header (a block of at least three `From:`/`Sent:`/`To:`/`Subject:` lines in one of
//!    many languages, Indonesian `Dari:`/`Dikirim:`/`Kepada:`/`Perihal:` included, with at least
//!    one sender field), delimiter (`-- `, a rule of five or more `-_=+~#*`, Gmail's `ᐧ`) or
//!    mobile signature ("Sent from my iPhone", "Dikirim dari iPhone saya", "Get Outlook for …").
//!    Lines inside a fenced code block are always text.
//! 2. A body with none of these markers is returned as it is (only surrounding blank space goes).
//! 3. The first delimiter or header block after some text cuts the rest.
//! 4. Attribution markers: when the sender wrote nothing before the first marker, and all the text
//!    comes after the quoted history (bottom posting, or a forward without a comment), only that
//!    text is kept. Otherwise a marker after some text cuts the rest when no quote follows it
//!    (unquoted history, Outlook style), or when only the quote and a short trailer (fewer than
//!    seven lines of text: a footer or signature) follow it. A marker followed by quotes answered
//!    in between (interleaved reply) is only removed itself.
//! 5. Quotes, markers and mobile signatures after the last line of text go; quotes between lines of
//!    text stay (the sender answers them).
//!
//! Sign-offs ("Best regards", "Salam", "Terima kasih") are kept: they are part of what the person
//! wrote, and the reference corpus keeps them too.

use std::sync::LazyLock;

use regex::Regex;

/// What the sender wrote now, and what was cut (quote, signature, forwarded history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trimmed {
    pub text: String,
    pub elided: String,
}

/// Longest line (in bytes) that may be a marker, header or signature; also the longest joined
/// multi-line marker.
const MAX_MARKER_LEN: usize = 400;
/// Longest line (in bytes) that may be a mobile signature.
const MAX_SIGNATURE_LEN: usize = 160;
/// How many following lines a wrapped attribution line may span.
const MAX_MARKER_CONTINUATION: usize = 4;
/// Text after a quoted history that is shorter than this is a trailer (footer, signature).
const SHORT_TRAILER_LINES: usize = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Text,
    Quote,
    /// Attribution or forward/original-message line: previous mail starts here.
    Marker,
    /// Part of a block of mail headers (From:, Sent:, …).
    Header,
    /// Signature delimiter or separator rule.
    Delimiter,
    /// Mobile-client signature ("Sent from my iPhone").
    Signature,
}

/// Words that end an attribution line ("wrote", in the languages mail clients write it in).
const WROTE: &str = r"wrote|writes|schrieb|schreef|geschreven|a\s+écrit|a\s+ecrit|ha\s+scritto|scrisse|escribió|escribio|escreveu|skrev|kirjoitti|napisał|napisała|napisal|napisala|napisao|napsal|написал|написала|написав|пише|писал|menulis|yazdı|írta|a\s+scris|έγραψε";

/// Attribution with the verb at the end: "On …, X <x@y> wrote:", "Pada …, X menulis:",
/// "… написал:", "… 写道：", Zoho's "---- On … wrote ----".
static WROTE_AT_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)(?:\b(?:{WROTE})(?:\s*\(a\))?|写道|寫道|書きました)\s*(?:[:：]\s*-*|-{{2,}})\s*$"))
        .expect("regex")
});
/// A "wrote" verb anywhere (German/Scandinavian "Am … schrieb X <x@y>:", "X <x@y> schrieb am …:").
static WROTE_ANYWHERE: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!(r"(?i)\b(?:{WROTE})\b")).expect("regex"));
/// "X <x@y> schrieb am …": the verb right after the address.
static SCHRIEB_AFTER_ADDRESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?i)>\s*(?:{WROTE})\b")).expect("regex"));
/// How attribution lines begin: "On", "Le", "Am", "Op", "Il", "El", "Em", "Den", "Dnia", "Pada
/// (tanggal)", "At", or a date.
static ON_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:(?:on|le|am|op|il|el|em|den|dne|dnia|w\s+dniu|pada(?:\s+tanggal)?|at|в|у)\s|\d)")
        .expect("regex")
});
static TIME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d{1,2}[:.]\d{2}").expect("regex"));
/// An address in angle brackets, as attribution lines carry it: `<x@y>`, `<mailto:x@y>`.
static ANGLE_ADDRESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:<|&lt;)\s*(?:mailto:)?[^\s<>@]+@").expect("regex"));
/// Old Gmail: "2016-03-03 17:21 GMT+01:00 Some One <x@y>:".
static DATE_GMT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\s+\d{1,2}:\d{2}(?::\d{2})?\s+GMT[+-]\d{1,2}(?::?\d{2})?\b")
        .expect("regex")
});
/// "2013/7/20 sam via Discourse Meta <info@discourse.org>".
static DATE_ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b.{0,160}<[^\s<>@]+@[^\s<>]+>\s*:?\s*$").expect("regex")
});
/// "-----Original Message-----", "---------- Forwarded message ---------", "-----Pesan Asli-----":
/// dashes, a letter, then letters, spaces, apostrophes and dots (group 1, whose length
/// [`is_dashed_title`] bounds), dashes. (`\p{L}[\p{L}\s'’.]{2,48}?\s*` in one regex compiled the
/// Unicode class 48 times: some 85 M instructions, in every `loket ingest` process.)
static DASHED_TITLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[*_\s]*-{2,}\s*\p{L}([\p{L}\s'’.]*)-{2,}[*_\s]*$").expect("regex"));
/// Apple Mail's forward introduction.
static BEGIN_FORWARD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:begin forwarded message|awal pesan yang diteruskan|pesan yang diteruskan|anfang der weitergeleiteten nachricht|début du message réexpédié|inicio del mensaje reenviado|início da mensagem reencaminhada)\s*[:：]?\s*$",
    )
    .expect("regex")
});
/// Every match of [`BEGIN_FORWARD`] in ASCII text holds one of these (see [`super::Words`]).
static BEGIN_FORWARD_WORDS: super::Words =
    super::Words::new(&["forwarded", "diteruskan", "weitergeleiteten", "reenviado", "reencaminhada"]);
/// Outlook's one-line header: "From: X Sent: Y To: Z Subject: W".
static ONE_LINE_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[*_]*(?:from|dari|von|de|da|van)[*_]*\s*:.{1,200}?\b(?:sent|dikirim|gesendet|enviado|envoyé|verzonden|date|tanggal)[*_]*\s*:",
    )
    .expect("regex")
});
/// An address tail that a client wrapped onto the next line: "info@foo.bar>:", ">:".
static ADDRESS_TAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:<?\s*[^\s<>@]*@[^\s<>]*)?>?\s*[:：]\s*$").expect("regex"));

/// A mail header field at the start of a line; group 1 is the field name.
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*[*_]*(from|von|dari|de|da|från|fra|van|от|od|lähettäjä|kimden|sent|date|datum|data|fecha|tanggal|dikirim|terkirim|gesendet|enviado|enviada(?:\s+em)?|envoyé|inviato|skickat|sendt|verzonden|lähetetty|отправлено|wysłano|to|an|a|à|para|till|til|aan|kepada|кому|do|cc|bcc|kopie|tembusan|subject|betreff|oggetto|asunto|assunto|objet|ämne|emne|onderwerp|perihal|subjek|тема|temat|aihe|reply-to|risposta|antwort\s+an|balas\s+ke|responder\s+a)[*_]*\s*[:：]",
    )
    .expect("regex")
});
const SENDER_FIELDS: &[&str] =
    &["from", "von", "dari", "de", "da", "från", "fra", "van", "от", "od", "lähettäjä", "kimden"];
const DATE_FIELDS: &[&str] = &[
    "sent",
    "date",
    "datum",
    "data",
    "fecha",
    "tanggal",
    "dikirim",
    "terkirim",
    "gesendet",
    "enviado",
    "enviada em",
    "envoyé",
    "inviato",
    "skickat",
    "sendt",
    "verzonden",
    "lähetetty",
    "отправлено",
    "wysłano",
];

/// A header field that a line starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Sender,
    Date,
    Other,
}

/// Signatures that mobile and web clients append.
static MOBILE_SIGNATURE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^[(<\[\s]*(?:
            (?:sent|sending|envoyé|enviado|enviada|inviato|verzonden|verstuurd|gesendet|dikirim|dikirimkan|terkirim|sendt|skickat|wysłane|wysłano|отправлено)
              \s+(?:from|with|via|by|using|depuis|desde|do|da|de|met|vanaf|von|mit|dari|dengan|melalui|lewat|fra|från|med|z|с|из)\b
          | from\s+my\s+(?:iphone|ipad|ipod|android|mobile|phone|cell|smartphone|tablet|samsung|galaxy|blackberry|huawei|xiaomi|pixel|nokia|htc)
          | \S+\s+from\s+(?:my\s+)?(?:mobile|phone|cell)\b
          | von\s+meinem\s.{1,60}\sgesendet
          | diese\s+nachricht\s+wurde\s.{1,100}\sgesendet
          | (?:get|dapatkan|obtener|obtenir|scarica|hol\s+dir)\s+\[?outlook\s+(?:for|untuk|para|pour|per|für)\b
          | (?:從|从)我的.{1,30}(?:傳送|发送|寄出)
        )",
    )
    .expect("regex")
});

/// Every match of [`MOBILE_SIGNATURE`] in ASCII text holds one of these (see [`super::Words`]).
static MOBILE_SIGNATURE_WORDS: super::Words =
    super::Words::new(&["sen", "envia", "inviato", "verzonden", "verstuurd", "kirim", "skickat", "from", "outlook"]);

/// Trims a reply body: see the module documentation for the rules. Never panics; linear in the
/// size of `body`.
pub fn trim_reply(body: &str) -> Trimmed {
    trim(body, true)
}

/// The text of [`trim_reply`] alone: what the sender wrote now, without writing out what was cut.
pub fn trim_reply_text(body: &str) -> String {
    trim(body, false).text
}

fn trim(body: &str, with_elided: bool) -> Trimmed {
    let normalized = if body.contains('\r') {
        std::borrow::Cow::Owned(body.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(body)
    };
    let lines: Vec<&str> = normalized.split('\n').collect();
    let kinds = classify(&lines);
    let keep = decide(&kinds);
    let mut text = Vec::new();
    let mut elided = Vec::new();
    for (line, kept) in lines.iter().zip(&keep) {
        if *kept {
            text.push(*line)
        } else if with_elided {
            elided.push(*line)
        }
    }
    Trimmed { text: tidy(&text.join("\n")), elided: if with_elided { tidy(&elided.join("\n")) } else { String::new() } }
}

/// Drops leading blank lines (keeping the first line's indentation) and trailing white space.
fn tidy(s: &str) -> String {
    let mut start = 0;
    for line in s.split_inclusive('\n') {
        if !is_blank(line) {
            break;
        }
        start += line.len();
    }
    s[start..].trim_end().to_string()
}

fn is_blank(line: &str) -> bool {
    line.chars()
        .all(|c| c.is_whitespace() || matches!(c, '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}'))
}

/// The line without quote characters in front ("> > ", ">>").
fn unquoted(line: &str) -> &str {
    line.trim_start_matches(|c: char| c == '>' || c.is_whitespace()).trim_end()
}

fn is_quote(line: &str) -> bool {
    let t = line.trim_start();
    if t.starts_with('>') {
        return true;
    }
    // Supercite style: "Name> text", "C>".
    let name_len = t.bytes().take_while(u8::is_ascii_alphabetic).count();
    (1..=12).contains(&name_len)
        && t[name_len..].starts_with('>')
        && t[name_len + 1..].chars().next().is_none_or(char::is_whitespace)
}

/// A dashed title line ([`DASHED_TITLE`]): after the first letter, 2 to 48 characters of the
/// title, white space before the closing dashes not counted beyond them.
fn is_dashed_title(s: &str) -> bool {
    // The regex is compiled only for a line that opens with dashes.
    if !s.trim_start_matches(|c: char| c == '*' || c == '_' || c.is_whitespace()).starts_with("--") {
        return false;
    }
    let Some(title) = DASHED_TITLE.captures(s).and_then(|c| c.get(1)) else { return false };
    let n = title.as_str().chars().count();
    let trailing_space = title.as_str().chars().rev().take_while(|c| c.is_whitespace()).count();
    n >= 2 && n - trailing_space <= 48
}

/// Whether `s` (quote characters already removed) is a complete attribution or forward line.
/// Each regex is tried (and so, in a process that reads one message, compiled) only on a line
/// that has what it needs: a leading digit, a colon, a last character that can end it, one of
/// its words.
fn is_marker(s: &str) -> bool {
    if s.len() > MAX_MARKER_LEN {
        return false;
    }
    if is_dashed_title(s) || (BEGIN_FORWARD_WORDS.may_hold(s) && BEGIN_FORWARD.is_match(s)) {
        return true;
    }
    let s = s.trim_start_matches(|c: char| c == '-' || c == '*' || c == '_' || c.is_whitespace());
    // `\d` is a numeric character; ONE_LINE_HEADER needs a `:`.
    let dated = s.chars().next().is_some_and(char::is_numeric);
    if (dated && (DATE_GMT.is_match(s) || DATE_ADDRESS.is_match(s))) || (s.contains(':') && ONE_LINE_HEADER.is_match(s))
    {
        return true;
    }
    let digit = s.bytes().any(|b| b.is_ascii_digit());
    let at = s.contains('@');
    if s.trim_end().ends_with([':', '：', '-']) && WROTE_AT_END.is_match(s) {
        return at || (digit && (s.contains(',') || s.contains('，') || s.contains('"') || TIME.is_match(s)));
    }
    // "Am 03.02.2016 schrieb X <x@y>:", "X <x@y> schrieb am Di., 16. Aug. 2016 um 12:52 Uhr:".
    let ends_colon = s.ends_with(':') || s.ends_with('：');
    ends_colon
        && digit
        && ANGLE_ADDRESS.is_match(s)
        && WROTE_ANYWHERE.is_match(s)
        && (ON_START.is_match(s) || SCHRIEB_AFTER_ADDRESS.is_match(s))
}

/// Whether a line may begin an attribution that the client wrapped over several lines.
fn may_start_marker(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_MARKER_LEN
        && (ON_START.is_match(s) || s.contains('<') || s.contains('@') || WROTE_ANYWHERE.is_match(s))
}

fn is_delimiter(t: &str, previous: Option<Kind>) -> bool {
    if t == "--" || (!t.is_empty() && t.chars().all(|c| c == 'ᐧ')) {
        return true;
    }
    let mut count = 0;
    let mut only_rule = true; // only '-' or '=': a setext heading underline when under text
    for c in t.chars() {
        match c {
            '-' | '=' => count += 1,
            '_' | '+' | '~' | '#' | '*' | '—' | '–' => {
                count += 1;
                only_rule = false;
            }
            c if c.is_whitespace() => {}
            _ => return false,
        }
    }
    count >= 5 && !(only_rule && previous == Some(Kind::Text))
}

fn classify(lines: &[&str]) -> Vec<Kind> {
    let n = lines.len();
    let fenced = fences(lines);
    let mut kinds = Vec::with_capacity(n);
    let mut header_candidate = vec![None::<Field>; n];
    for (i, line) in lines.iter().enumerate() {
        let kind = if is_blank(line) {
            Kind::Empty
        } else if fenced[i] || line.len() > MAX_MARKER_LEN {
            if !fenced[i] && is_quote(line) { Kind::Quote } else { Kind::Text }
        } else if is_marker(unquoted(line)) {
            Kind::Marker
        } else if is_quote(line) {
            Kind::Quote
        } else if is_delimiter(line.trim(), kinds.last().copied()) {
            Kind::Delimiter
        } else if line.len() <= MAX_SIGNATURE_LEN
            && MOBILE_SIGNATURE_WORDS.may_hold(line)
            && MOBILE_SIGNATURE.is_match(line.trim())
        {
            Kind::Signature
        } else {
            if let Some(c) = line.contains([':', '：']).then(|| HEADER.captures(line)).flatten() {
                let name = c[1].split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
                header_candidate[i] = Some(if SENDER_FIELDS.contains(&name.as_str()) {
                    Field::Sender
                } else if DATE_FIELDS.contains(&name.as_str()) {
                    Field::Date
                } else {
                    Field::Other
                });
            }
            Kind::Text
        };
        kinds.push(kind);
    }
    mark_header_blocks(&header_candidate, &mut kinds);
    join_wrapped_markers(lines, &fenced, &mut kinds);
    kinds
}

/// Lines inside fenced code blocks (``` or ~~~), fence lines included; an unclosed fence is no fence.
fn fences(lines: &[&str]) -> Vec<bool> {
    let mut fenced = vec![false; lines.len()];
    let mut open: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            match open.take() {
                Some(start) => fenced[start..=i].iter_mut().for_each(|f| *f = true),
                None => open = Some(i),
            }
        }
    }
    fenced
}

/// Attribution lines that a client wrapped over up to five lines ("On …, X <" / "x@y> wrote:").
/// A wrapped attribution must carry an address, so that wrapped prose is never taken for one.
fn join_wrapped_markers(lines: &[&str], fenced: &[bool], kinds: &mut [Kind]) {
    let n = lines.len();
    let mut i = 0;
    while i < n {
        if fenced[i] {
            i += 1;
            continue;
        }
        let first = unquoted(lines[i]);
        if kinds[i] == Kind::Marker {
            // "2016-10-24 15:36 GMT+02:00 Foo bar <" / "info@foo.bar>:"
            if !(first.ends_with(':') || first.ends_with('：') || first.ends_with('-')) {
                for j in i + 1..n.min(i + 3) {
                    let s = unquoted(lines[j]);
                    if s.is_empty() || fenced[j] {
                        continue;
                    }
                    if s.len() <= MAX_MARKER_LEN && ADDRESS_TAIL.is_match(s) {
                        kinds[i..=j].iter_mut().for_each(|k| *k = Kind::Marker);
                        i = j;
                    }
                    break;
                }
            }
            i += 1;
            continue;
        }
        match wrapped_marker_end(lines, fenced, kinds, i) {
            Some(j) => {
                // A later line that opens the same marker the usual way ("On …", "Pada …", a
                // date) starts it: the prose before it stays prose.
                let from = (i + 1..j)
                    .rev()
                    .find(|&k| {
                        ON_START.is_match(unquoted(lines[k])) && wrapped_marker_end(lines, fenced, kinds, k) == Some(j)
                    })
                    .unwrap_or(i);
                kinds[from..=j].iter_mut().for_each(|k| *k = Kind::Marker);
                i = j + 1;
            }
            None => i += 1,
        }
    }
}

/// The last line of a wrapped marker that starts at line `i`, if one does.
fn wrapped_marker_end(lines: &[&str], fenced: &[bool], kinds: &[Kind], i: usize) -> Option<usize> {
    let first = unquoted(lines[i]);
    // It ends only where the joined lines hold an address (below): with none in reach, no regex
    // of `may_start_marker` need be tried (or compiled).
    let reach = &lines[i..lines.len().min(i + 1 + MAX_MARKER_CONTINUATION)];
    if !reach.iter().any(|l| l.contains('@') || l.contains("&lt;")) {
        return None;
    }
    if fenced[i] || !matches!(kinds[i], Kind::Text | Kind::Quote) || !may_start_marker(first) {
        return None;
    }
    let mut joined = String::with_capacity(MAX_MARKER_LEN);
    joined.push_str(first);
    for j in i + 1..lines.len().min(i + 1 + MAX_MARKER_CONTINUATION) {
        let s = unquoted(lines[j]);
        // A complete marker of its own ends the search, unless it is the rest of an address that
        // this line opened ("… Budi <" / "budi@x> wrote:").
        let unclosed = joined.matches('<').count() > joined.matches('>').count();
        if kinds[j] == Kind::Header || fenced[j] || (kinds[j] == Kind::Marker && !unclosed) {
            return None;
        }
        if s.is_empty() {
            continue;
        }
        if joined.len() + 1 + s.len() > MAX_MARKER_LEN {
            return None;
        }
        joined.push(' ');
        joined.push_str(s);
        if (joined.contains('@') || joined.contains("&lt;")) && is_marker(&joined) {
            return Some(j);
        }
    }
    None
}

/// Runs of header lines (one wrapped line allowed between two of them) that have at least three
/// fields, the sender and the date among them, become [`Kind::Header`]. (A memo that starts
/// "Dari: … / Kepada: … / Perihal: …" has no date field and stays text.)
fn mark_header_blocks(candidate: &[Option<Field>], kinds: &mut [Kind]) {
    let n = kinds.len();
    let mut i = 0;
    while i < n {
        let Some(first) = candidate[i] else {
            i += 1;
            continue;
        };
        let (mut fields, mut has_sender, mut has_date, mut last) = (1, first == Field::Sender, first == Field::Date, i);
        let mut j = i + 1;
        while j < n {
            if let Some(f) = candidate[j] {
                fields += 1;
                has_sender |= f == Field::Sender;
                has_date |= f == Field::Date;
                last = j;
                j += 1;
            } else if j == last + 1 && kinds[j] == Kind::Text && j + 1 < n && candidate[j + 1].is_some() {
                j += 1; // a wrapped value ("Subject: a long" / "subject")
            } else {
                break;
            }
        }
        if fields >= 3 && has_sender && has_date {
            kinds[i..=last].iter_mut().for_each(|k| *k = Kind::Header);
        }
        i = last + 1;
    }
}

/// Which lines are kept.
fn decide(kinds: &[Kind]) -> Vec<bool> {
    let n = kinds.len();
    let is_reply_marker = |k: &Kind| !matches!(k, Kind::Empty | Kind::Text);
    if !kinds.iter().any(is_reply_marker) {
        return vec![true; n];
    }

    // The first delimiter or header block after some text ends what the sender wrote.
    let mut end = n;
    let mut seen_text = false;
    for (i, k) in kinds.iter().enumerate() {
        match k {
            Kind::Text => seen_text = true,
            Kind::Delimiter | Kind::Header if seen_text => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let ks = &kinds[..end];

    let Some(first_text) = ks.iter().position(|k| *k == Kind::Text) else {
        // Nothing but quotes: a bare quote is kept, quoted history with its attribution is not.
        let history = ks.contains(&Kind::Marker);
        return (0..n).map(|i| i < end && !history && matches!(kinds[i], Kind::Quote | Kind::Empty)).collect();
    };
    let is_quotish = |k: &Kind| matches!(k, Kind::Quote | Kind::Marker);
    let last_quote = ks.iter().rposition(is_quotish);

    let mut start = 0;
    if last_quote.is_some_and(|q| q < first_text) && ks[..first_text].contains(&Kind::Marker) {
        // Bottom posting or a forward without comment: the history first, the new text after it.
        start = first_text;
    } else {
        // quote_after[i]: a quote at or after i; next_text[i]: first text at or after i.
        let mut quote_after = vec![false; end + 1];
        let mut next_text = vec![None; end + 1];
        for i in (0..end).rev() {
            quote_after[i] = quote_after[i + 1] || ks[i] == Kind::Quote;
            next_text[i] = if ks[i] == Kind::Text { Some(i) } else { next_text[i + 1] };
        }
        let trailer_lines = last_quote.map_or(0, |q| ks[q + 1..].iter().filter(|k| **k == Kind::Text).count());
        let mut seen_text = false;
        for (i, k) in ks.iter().enumerate() {
            match k {
                Kind::Text => seen_text = true,
                Kind::Marker if seen_text => {
                    let unquoted_history = !quote_after[i + 1];
                    let only_trailer = match next_text[i + 1] {
                        None => true,
                        Some(t) => last_quote.is_some_and(|q| t > q) && trailer_lines < SHORT_TRAILER_LINES,
                    };
                    if unquoted_history || only_trailer {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    // Quotes, markers and signatures after the last line of text go.
    if let Some(last_text) = kinds[start..end].iter().rposition(|k| *k == Kind::Text) {
        end = start + last_text + 1;
    }
    (0..n)
        .map(|i| {
            (start..end).contains(&i) && matches!(kinds[i], Kind::Text | Kind::Quote | Kind::Empty | Kind::Signature)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dashed title's regex as it was, one regex with the counted repetition.
    static COUNTED_DASHED_TITLE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[*_\s]*-{2,}\s*\p{L}[\p{L}\s'’.]{2,48}?\s*-{2,}[*_\s]*$").unwrap());

    #[test]
    fn dashed_titles_are_what_the_counted_regex_said() {
        let mut lines: Vec<String> = [
            "-----Original Message-----",
            "---------- Forwarded message ---------",
            "-----Pesan Asli-----",
            "*-----Original Message-----*",
            "-- ",
            "--",
            "-- a --",
            "-- ab --",
            "--ab--",
            "-- 12 --",
            "-- Re: x --",
        ]
        .map(String::from)
        .to_vec();
        // Titles of every length around the bounds, with white space and dots before the dashes.
        for n in 0..=52 {
            for tail in ["", " ", "    ", ".", " . ", "\u{2003}"] {
                for first in ["A", "É", "1", " ", "’"] {
                    lines.push(format!("---{first}{}{tail}---", "b".repeat(n)));
                    lines.push(format!("_ -- {first}{}{tail}--- *", "ж ".repeat(n / 2)));
                }
            }
        }
        for line in &lines {
            assert_eq!(is_dashed_title(line), COUNTED_DASHED_TITLE.is_match(line), "{line:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Any line of dashes, letters, spaces and the title's punctuation: the same answer.
        #[test]
        fn any_dashed_line_is_what_the_counted_regex_said(line in "[-*_ \t\u{2003}aÉж’'.1:]{0,70}") {
            proptest::prop_assert_eq!(is_dashed_title(&line), COUNTED_DASHED_TITLE.is_match(&line));
        }

        /// Lines shaped like dashed titles, of every length around the bound.
        #[test]
        fn any_dashed_title_is_what_the_counted_regex_said(
            line in "[*_ ]{0,3}-{1,4} {0,2}[aÉ1 ][aж ’.\t\u{2003}]{0,55}-{1,3}[*_ ]{0,2}"
        ) {
            proptest::prop_assert_eq!(is_dashed_title(&line), COUNTED_DASHED_TITLE.is_match(&line));
        }

        /// The text alone is the text of the whole trim, CR line ends or not.
        #[test]
        fn the_text_alone_is_the_text_of_the_trim(
            lines in proptest::collection::vec(
                "(> |-- |On 1 Jan 2026, A <a@b.c> wrote:|Sent from my iPhone|From: a@b.c|)[a-z :\r]{0,20}",
                0..8,
            )
        ) {
            let body = lines.join("\n");
            proptest::prop_assert_eq!(trim_reply_text(&body), trim_reply(&body).text);
        }
    }

    /// The forward and signature regexes are tried only on lines that hold one of their words:
    /// every ASCII line they match holds one, and ordinary prose holds none.
    #[test]
    fn line_regexes_are_tried_only_where_their_words_are() {
        crate::mail::assert_needles_cover(BEGIN_FORWARD.as_str(), &BEGIN_FORWARD_WORDS);
        crate::mail::assert_needles_cover(MOBILE_SIGNATURE.as_str(), &MOBILE_SIGNATURE_WORDS);
        for line in ["Selamat pagi,", "Saya tidak bisa login ke aplikasi SIMPEG.", "Terima kasih."] {
            assert!(!BEGIN_FORWARD_WORDS.holds(line), "{line}");
            assert!(!MOBILE_SIGNATURE_WORDS.holds(line), "{line}");
        }
        // Words beyond ASCII are always tried.
        for sig in ["Envoyé de mon iPhone", "Отправлено с iPhone", "Sent from my iPhone"] {
            assert_eq!(text(&format!("Printer sudah normal.\n\n{sig}\n")), "Printer sudah normal.", "{sig}");
        }
        assert_eq!(text("Halo\n\nDébut du message réexpédié :\n\nDe: x\n"), "Halo");
    }

    fn text(body: &str) -> String {
        trim_reply(body).text
    }

    #[test]
    fn empty_and_blank_bodies() {
        assert_eq!(trim_reply(""), Trimmed { text: String::new(), elided: String::new() });
        assert_eq!(trim_reply(" \n\r\n\t\n"), Trimmed { text: String::new(), elided: String::new() });
    }

    #[test]
    fn message_without_reply_marker_is_unchanged() {
        let body = "Halo tim IT,\n\nPrinter lantai 3 macet sejak pagi.\n- sudah restart\n- kertas sudah diganti\n\nOn Monday I wrote about this too.\n=====\n\nSalam,\nBudi";
        assert_eq!(trim_reply(body), Trimmed { text: body.to_string(), elided: String::new() });
        let code = "See:\n```\n#####\n> not a quote\n-- \n```\nDone.";
        assert_eq!(text(code), code);
    }

    #[test]
    fn gmail_english_one_and_two_lines() {
        let body = "Works now, thanks!\n\nOn Mon, Jan 5, 2026 at 9:00 AM Budi Santoso <budi@example.co.id> wrote:\n\n> Is the VPN down?\n> Budi\n";
        let t = trim_reply(body);
        assert_eq!(t.text, "Works now, thanks!");
        assert!(t.elided.starts_with("On Mon, Jan 5, 2026") && t.elided.ends_with("> Budi"), "{t:?}");
        let wrapped = "Works now.\n\nOn Mon, Jan 5, 2026 at 9:00 AM Budi Santoso <\nbudi@example.co.id> wrote:\n\n> Is the VPN down?";
        assert_eq!(text(wrapped), "Works now.");
        let wrote_alone =
            "Works now.\n\nOn Mon, Jan 5, 2026 at 9:00 AM, Budi <budi@example.co.id>\nwrote:\n\n> Is the VPN down?";
        assert_eq!(text(wrote_alone), "Works now.");
    }

    #[test]
    fn gmail_indonesian() {
        let body = "Sudah bisa login, terima kasih.\n\nPada Sen, 5 Jan 2026 pukul 09.00, Budi <b@x> menulis:\n\n> Mohon reset password saya.\n";
        assert_eq!(text(body), "Sudah bisa login, terima kasih.");
        let tanggal = "Baik.\n\nPada tanggal Sen, 5 Jan 2026 09.00, \"Helpdesk\" <helpdesk@x.co.id> menulis:\n> Tiket Anda sudah dibuat.";
        assert_eq!(text(tanggal), "Baik.");
        let wrapped = "Baik.\n\nPada tanggal Sen, 5 Jan 2026 09.00, Helpdesk <\nhelpdesk@x.co.id> menulis:\n\n> Tiket Anda sudah dibuat.";
        assert_eq!(text(wrapped), "Baik.");
        // Thunderbird / Apple Mail in Indonesian, history not quoted.
        let unquoted = "Oke.\n\nPada 05/01/26 09.00, Budi menulis:\nMohon bantuannya.";
        assert_eq!(text(unquoted), "Oke.");
    }

    #[test]
    fn outlook_english_headers_and_original_message() {
        let body = "Please close the ticket.\n\n-----Original Message-----\nFrom: Service Desk <desk@example.com>\nSent: Monday, January 5, 2026 9:00 AM\nTo: Budi <budi@example.com>\nSubject: [#IT-2026-0001] Printer\n\nYour ticket was created.";
        let t = trim_reply(body);
        assert_eq!(t.text, "Please close the ticket.");
        assert!(t.elided.starts_with("-----Original Message-----") && t.elided.ends_with("created."));
        let separator = "Done.\n________________________________\nFrom: Service Desk <desk@example.com>\nSent: Monday, January 5, 2026 9:00 AM\nTo: Budi\nSubject: Printer\n\nOld text";
        assert_eq!(text(separator), "Done.");
        let bare = "Done.\n\nFrom: Service Desk <desk@example.com>\nSent: Monday, January 5, 2026 9:00 AM\nTo: Budi\nSubject: Printer\n\nOld text";
        assert_eq!(text(bare), "Done.");
    }

    #[test]
    fn outlook_indonesian_headers() {
        let body = "Masalah sudah selesai.\n\nSalam,\nSiti\n\nDari: Helpdesk TI <helpdesk@contoh.go.id>\nDikirim: Senin, 05 Januari 2026 09.00\nKepada: Siti <siti@contoh.go.id>\nPerihal: [#TI-2026-0042] Email tidak bisa kirim\n\nTiket Anda sudah kami terima.";
        assert_eq!(text(body), "Masalah sudah selesai.\n\nSalam,\nSiti");
        let separated = "Terima kasih.\n________________________________\nDari: Helpdesk TI <helpdesk@contoh.go.id>\nDikirim: Senin, 05 Januari 2026 09.00\nKepada: Siti\nCc: Atasan\nPerihal: Tiket";
        assert_eq!(text(separated), "Terima kasih.");
        let pesan_asli = "Oke.\n\n-----Pesan Asli-----\nDari: Helpdesk\nTerkirim: kemarin\nIsi lama";
        assert_eq!(text(pesan_asli), "Oke.");
    }

    #[test]
    fn memo_headers_without_a_date_are_text() {
        let body = "Mohon diproses:\n\nDari: Budi\nKepada: HRD\nPerihal: Cuti tahunan\n\nSaya ingin cuti 3 hari.\n\n> Silakan isi formulir.";
        assert_eq!(
            text(body),
            "Mohon diproses:\n\nDari: Budi\nKepada: HRD\nPerihal: Cuti tahunan\n\nSaya ingin cuti 3 hari."
        );
    }

    #[test]
    fn prose_before_a_wrapped_attribution_stays() {
        let body = "Thanks @budi, I only have\ntime on 12 Jan. I will tell you then...\nPada Sen, 5 Jan 2026 09.00 Budi <\nb@x.co.id> menulis:\n\n> old";
        assert_eq!(text(body), "Thanks @budi, I only have\ntime on 12 Jan. I will tell you then...");
    }

    #[test]
    fn mobile_signatures_at_the_end_go() {
        for sig in [
            "Dikirim dari Yahoo Mail di Android",
            "Dikirim dari iPhone saya",
            "Dikirim dari ponsel cerdas Samsung Galaxy saya.",
            "Sent from my iPhone",
            "Get Outlook for Android",
            "Dapatkan Outlook untuk Android",
        ] {
            let t = trim_reply(&format!("Printer sudah normal.\n\n{sig}\n"));
            assert_eq!(t.text, "Printer sudah normal.", "{sig}");
            assert_eq!(t.elided, sig);
        }
        // Not at the end: part of what the person wrote.
        let middle = "Sent from my iPhone\nbut the reply never arrived.";
        assert_eq!(text(middle), middle);
    }

    #[test]
    fn apple_mail_with_signature_and_quote() {
        let body = "Yes, please.\n\nSent from my iPhone\n\n> On Jan 5, 2026, at 09:00, Budi <budi@example.com> wrote:\n>\n> Shall we replace the toner?\n";
        let t = trim_reply(body);
        assert_eq!(t.text, "Yes, please.");
        assert!(t.elided.starts_with("Sent from my iPhone"));
        let unquoted =
            "Yes.\n\nOn Jan 5, 2026, at 09:00, Budi <budi@example.com> wrote:\n\nShall we replace the toner?";
        assert_eq!(text(unquoted), "Yes.");
    }

    #[test]
    fn interleaved_reply_keeps_answers_and_their_quotes() {
        let body = "Hi,\n\nOn Mon, Jan 5, 2026 at 9:00 AM Desk <desk@example.com> wrote:\n> Which floor?\nThird floor.\n> Which printer model?\nHP LaserJet 4250.\n> Anything else?\n>\n> Desk\n";
        let t = trim_reply(body);
        assert_eq!(t.text, "Hi,\n\n> Which floor?\nThird floor.\n> Which printer model?\nHP LaserJet 4250.");
        assert!(t.elided.starts_with("On Mon, Jan 5") && t.elided.ends_with("> Desk"), "{t:?}");
        // Without a greeting on top.
        let bottom = "On 05/01/2026 09:00, Desk wrote:\n> Which floor?\nThird.\n> Model?\nHP.";
        assert_eq!(text(bottom), "> Which floor?\nThird.\n> Model?\nHP.");
    }

    #[test]
    fn bottom_posting_keeps_only_the_new_text() {
        let body = "On Mon, Jan 5, 2026 at 9:00 AM Desk <desk@example.com> wrote:\n\n> Is it fixed?\n>\n\nYes, it works again.";
        assert_eq!(text(body), "Yes, it works again.");
    }

    #[test]
    fn signature_delimiter() {
        let body = "Restarted the router.\n\n-- \nBudi Santoso\nIT Support\n+62 21 555 0000";
        let t = trim_reply(body);
        assert_eq!(t.text, "Restarted the router.");
        assert_eq!(t.elided, "-- \nBudi Santoso\nIT Support\n+62 21 555 0000");
    }

    #[test]
    fn forward_without_comment_keeps_the_forwarded_mail() {
        let body = "---------- Pesan terusan ---------\nDari: Budi <budi@x.co.id>\nDate: Sen, 5 Jan 2026 pukul 09.00\nSubject: Laptop rusak\nTo: <it@x.co.id>\n\n\nLayar laptop saya bergaris.";
        assert_eq!(text(body), "Layar laptop saya bergaris.");
    }

    #[test]
    fn crlf_and_only_quotes() {
        let body = "Line one\r\nline two\r\n\r\nOn Mon, Jan 5, 2026 at 9:00 AM Desk <d@x.com> wrote:\r\n> old\r\n";
        assert_eq!(text(body), "Line one\nline two");
        assert_eq!(text("> only a quote\n> here"), "> only a quote\n> here");
        assert_eq!(text("> On Mon, Jan 5, 2026 at 9:00 AM Desk <d@x.com> wrote:\n>\n>> old\n"), "");
    }

    #[test]
    fn prose_that_merely_looks_like_an_attribution_is_kept() {
        let body = "On 5 Jan the backup job wrote:\nERROR 0x80070005 access denied\n\nSince then nothing.\n\n> earlier question\n";
        assert_eq!(text(body), "On 5 Jan the backup job wrote:\nERROR 0x80070005 access denied\n\nSince then nothing.");
        let wrapped = "On 5 Jan, the server crashed.\nI called Budi\nand he wrote:\nreboot it\n-- \nSiti";
        assert_eq!(text(wrapped), "On 5 Jan, the server crashed.\nI called Budi\nand he wrote:\nreboot it");
        let setext = "Summary\n=======\nAll fine.\n\n> old";
        assert_eq!(text(setext), "Summary\n=======\nAll fine.");
    }

    #[test]
    fn hostile_input_does_not_panic_and_stays_linear() {
        let huge_line = "x".repeat(300_000);
        assert_eq!(text(&huge_line), huge_line);
        let long_quote = format!("ok\n> {}\n", "y".repeat(300_000));
        assert_eq!(text(&long_quote), "ok");
        assert_eq!(text("a\0b\n> \0\n"), "a\0b");
        let many = "On Mon, Jan 5, 2026 at 9:00 AM X <x@y.z> wrote:\n>\n".repeat(6_000); // ~300 KB
        let started = std::time::Instant::now();
        assert_eq!(text(&many), "");
        let wrapped = "On 5 Jan <\n".repeat(30_000);
        let _ = trim_reply(&wrapped);
        // Every line may start a wrapped marker and carries an address: the most regex work.
        let addresses = "1, On 5 Jan 2026 09:00 <a@b.c x\n".repeat(8_000); // 256 KB
        let _ = trim_reply(&addresses);
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
        // Pseudo-random bodies from the pieces markers are made of.
        let pieces = [
            "On ",
            "Mon, 5 Jan 2026 09:00",
            ", ",
            "<a@b.c>",
            " wrote:",
            "menulis:",
            "\n",
            "\r\n",
            ">",
            "> ",
            "--",
            "-- \n",
            "_____",
            "From: x\n",
            "Sent: y\n",
            "To: z\n",
            "```",
            "ᐧ",
            "é",
            "\0",
            "Sent from my iPhone",
            " ",
            "写道：",
            "-----Original Message-----",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2_000 {
            let mut body = String::new();
            for _ in 0..(seed % 60) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                body.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let t = trim_reply(&body);
            assert!(t.text.len() <= body.len() && t.elided.len() <= body.len(), "{body:?}");
        }
    }
}
