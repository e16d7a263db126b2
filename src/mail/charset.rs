//! Text whose charset is missing or wrong, read as its writer meant it. Pure.
//!
//! Real mail carries raw 8-bit bytes in headers and file names (GBK, Shift_JIS, Latin-1 … with no
//! declaration), encoded words whose declared charset does not fit their bytes, and bodies
//! declared `us-ascii` or `iso-8859-1` that hold UTF-8. mail-parser decodes those lossily; this
//! module decodes them again from the raw bytes: the declared charset when the bytes fit it,
//! else UTF-8 when they are valid UTF-8, else the charset `chardetng` detects (`encoding_rs`
//! decodes).

use encoding_rs::Encoding;

/// The charset `chardetng` detects for 8-bit text, when it is confident (its guess scored
/// higher than another candidate); a few stray bytes get none.
pub fn detect(bytes: &[u8]) -> Option<&'static Encoding> {
    let high = bytes.iter().filter(|b| !b.is_ascii()).count();
    if high == 0 {
        return None;
    }
    if high < 4 {
        // Too few bytes to detect anything: a Latin-1 letter inside a word ("Hofj\xE4geralle")
        // is read as one; stray bytes ("\xFF\xFE") are not turned into letters.
        return latin_letters_in_words(bytes).then_some(encoding_rs::WINDOWS_1252);
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    let (enc, sure) = detector.guess_assess(None, true);
    sure.then_some(enc)
}

/// Whether every non-ASCII byte is a Latin-1 letter (À–ý without × and ÷) next to an ASCII
/// letter.
fn latin_letters_in_words(bytes: &[u8]) -> bool {
    let letter = |i: Option<usize>| i.and_then(|i| bytes.get(i)).is_some_and(u8::is_ascii_alphabetic);
    bytes.iter().enumerate().filter(|(_, b)| !b.is_ascii()).all(|(i, b)| {
        (0xC0..=0xFD).contains(b) && *b != 0xD7 && *b != 0xF7 && (letter(i.checked_sub(1)) || letter(Some(i + 1)))
    })
}

/// Decodes `bytes`: with the declared charset when it is known and the bytes decode without
/// error, else as UTF-8 when valid, else with the charset detected in them (or `fallback`, the
/// one detected in the whole header section), else lossily (undecodable bytes become U+FFFD).
pub fn decode_bytes(bytes: &[u8], declared: Option<&str>) -> String {
    decode_with(bytes, declared, None)
}

/// [`decode_bytes`] with the charset detected over more text as the fallback.
pub fn decode_with(bytes: &[u8], declared: Option<&str>, fallback: Option<&'static Encoding>) -> String {
    if let Some(enc) = declared.and_then(|l| Encoding::for_label(l.trim().as_bytes())) {
        if let Some(text) = enc.decode_without_bom_handling_and_without_replacement(bytes) {
            return text.into_owned();
        }
        if bytes.is_ascii() {
            // A 7-bit charset (ISO-2022-JP, UTF-7 …) with a broken sequence: its own decoder,
            // lossily, reads more than UTF-8 would.
            return enc.decode_without_bom_handling(bytes).0.into_owned();
        }
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    match detect(bytes).or(fallback) {
        Some(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Whether a raw header value holds something a plain decoder gets wrong: raw 8-bit bytes that
/// are not UTF-8, or an encoded word whose bytes do not fit its declared charset.
pub fn repaired(raw: &[u8]) -> bool {
    if !raw.is_ascii() && std::str::from_utf8(raw).is_err() {
        return true;
    }
    let mut i = 0;
    while let Some(at) = raw[i..].windows(2).position(|w| w == b"=?") {
        let start = i + at;
        match encoded_word_bytes(&raw[start..]) {
            Some((charset, bytes, used)) => {
                let fits = Encoding::for_label(charset.trim().as_bytes())
                    .is_none_or(|enc| enc.decode_without_bom_handling_and_without_replacement(&bytes).is_some());
                if !fits {
                    return true;
                }
                i = start + used;
            }
            None => i = start + 2,
        }
    }
    false
}

/// Whether text decoded by mail-parser lost bytes (U+FFFD in it).
pub fn lost_bytes(s: &str) -> bool {
    s.contains('\u{FFFD}')
}

/// A raw header value (the bytes after `Name:`): unfolded, RFC 2047 encoded words decoded (their
/// bytes read with [`decode_bytes`], so a wrong declaration does not lose them), raw 8-bit runs
/// decoded by detection; white space between adjacent encoded words dropped.
pub fn decode_header(raw: &[u8], fallback: Option<&'static Encoding>) -> String {
    let unfolded: Vec<u8> = raw.iter().map(|b| if *b == b'\r' || *b == b'\n' { b' ' } else { *b }).collect();
    // Plain runs (charset None) and encoded words (their charset and bytes); adjacent words of
    // one charset are joined before decoding (mailers split a character, or an ISO-2022-JP
    // escape sequence, between two words).
    let mut segments: Vec<(Option<String>, Vec<u8>)> = Vec::new();
    let mut i = 0;
    while i < unfolded.len() {
        if unfolded[i..].starts_with(b"=?")
            && let Some((charset, bytes, used)) = encoded_word_bytes(&unfolded[i..])
        {
            if let Some((None, gap)) = segments.last()
                && gap.iter().all(u8::is_ascii_whitespace)
                && segments.len() >= 2
                && segments[segments.len() - 2].0.is_some()
            {
                segments.pop();
            }
            match segments.last_mut() {
                Some((Some(cs), b)) if cs.eq_ignore_ascii_case(&charset) => b.extend(bytes),
                _ => segments.push((Some(charset), bytes)),
            }
            i += used;
            continue;
        }
        match segments.last_mut() {
            Some((None, b)) => b.push(unfolded[i]),
            _ => segments.push((None, vec![unfolded[i]])),
        }
        i += 1;
    }
    let out: String = segments.iter().map(|(cs, b)| decode_with(b, cs.as_deref(), fallback)).collect();
    collapse_spaces(out.trim())
}

fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One encoded word at the start of `s`: its charset, its bytes and the length it spans.
fn encoded_word_bytes(s: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    // =?charset?B|Q?text?=
    let rest = &s[2..];
    let q1 = rest.iter().position(|b| *b == b'?')?;
    let charset = std::str::from_utf8(&rest[..q1]).ok()?;
    // RFC 2231 language suffix: charset*lang.
    let charset = charset.split('*').next().unwrap_or(charset);
    let mode = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let body = &rest[q1 + 3..];
    let end = body.windows(2).position(|w| w == b"?=")?;
    let text = &body[..end];
    if text.len() > 4096 || text.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let bytes = match mode.to_ascii_uppercase() {
        b'B' => {
            use base64::Engine;
            let trimmed: Vec<u8> = text.iter().copied().filter(|b| *b != b'=').collect();
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(&trimmed).ok()?
        }
        b'Q' => q_decode(text),
        _ => return None,
    };
    Some((charset.to_string(), bytes, 2 + q1 + 3 + end + 2))
}

fn q_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'_' => out.push(b' '),
            b'=' if text.len() >= i + 3 => {
                match std::str::from_utf8(&text[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'='),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn percent_decode(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The value of parameter `name` (e.g. `filename`) in a raw `Content-Disposition` or
/// `Content-Type` value, decoded whole: RFC 2231 continuations (`name*0*=`, `name*1*=` …) joined
/// as bytes before their charset decodes them (a character split between two pieces survives),
/// quoted values unquoted, encoded words and raw 8-bit bytes decoded as [`decode_header`] does.
pub fn param(raw: &[u8], name: &str, fallback: Option<&'static Encoding>) -> Option<String> {
    // The raw bytes of each piece: (number, extended, value).
    let mut pieces: Vec<(u32, bool, Vec<u8>)> = Vec::new();
    let mut plain: Option<Vec<u8>> = None;
    for (key, value) in params(raw) {
        let key = key.to_ascii_lowercase();
        let Some(rest) = key.strip_prefix(&name.to_ascii_lowercase()) else { continue };
        if rest.is_empty() {
            plain = Some(value);
        } else if rest == "*" {
            pieces.push((0, true, value));
        } else if let Some(n) = rest.strip_prefix('*') {
            let (n, ext) = match n.strip_suffix('*') {
                Some(n) => (n, true),
                None => (n, false),
            };
            if let Ok(n) = n.parse::<u32>() {
                pieces.push((n, ext, value));
            }
        }
    }
    if !pieces.is_empty() {
        pieces.sort_by_key(|p| p.0);
        pieces.truncate(100);
        let mut charset: Option<String> = None;
        let mut bytes = Vec::new();
        for (i, (_, ext, value)) in pieces.iter().enumerate() {
            let v = String::from_utf8_lossy(value).to_string();
            if *ext {
                let v = if i == 0 {
                    // charset'language'value
                    let mut parts = v.splitn(3, '\'');
                    match (parts.next(), parts.next(), parts.next()) {
                        (Some(cs), Some(_), Some(val)) => {
                            charset = Some(cs.to_string()).filter(|c| !c.is_empty());
                            val.to_string()
                        }
                        _ => v,
                    }
                } else {
                    v
                };
                bytes.extend(percent_decode(&v));
            } else {
                bytes.extend_from_slice(value);
            }
        }
        let s = decode_with(&bytes, charset.as_deref(), fallback);
        return Some(s).filter(|s| !s.trim().is_empty());
    }
    plain.map(|v| decode_header(&v, fallback)).filter(|s| !s.trim().is_empty())
}

/// `key=value` parameters of a raw header value after its first `;`: the key and the value's
/// bytes, unquoted.
fn params(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Some(first) = raw.iter().position(|b| *b == b';') else { return out };
    let mut i = first + 1;
    let n = raw.len();
    while i < n && out.len() < 200 {
        while i < n && (raw[i].is_ascii_whitespace() || raw[i] == b';') {
            i += 1;
        }
        let ks = i;
        while i < n && raw[i] != b'=' && raw[i] != b';' {
            i += 1;
        }
        if i >= n || raw[i] == b';' {
            continue;
        }
        let key = String::from_utf8_lossy(&raw[ks..i]).trim().to_string();
        i += 1;
        while i < n && (raw[i] == b' ' || raw[i] == b'\t') {
            i += 1;
        }
        let mut value = Vec::new();
        if i < n && raw[i] == b'"' {
            i += 1;
            while i < n && raw[i] != b'"' {
                if raw[i] == b'\\' && i + 1 < n {
                    i += 1;
                }
                if raw[i] != b'\r' && raw[i] != b'\n' {
                    value.push(raw[i]);
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < n && raw[i] != b';' && !raw[i].is_ascii_whitespace() {
                value.push(raw[i]);
                i += 1;
            }
        }
        out.push((key, value));
    }
    out
}

/// A text body's raw bytes (after its transfer encoding for 7bit, 8bit and unknown encodings)
/// that the part declares as US-ASCII or Latin-1 but that are valid UTF-8 with non-ASCII
/// characters: read as UTF-8 (a Latin-1 text is almost never valid UTF-8 by chance).
pub fn utf8_mislabelled(bytes: &[u8], declared: Option<&str>) -> Option<String> {
    let declared = declared.unwrap_or("us-ascii").trim().to_ascii_lowercase();
    let latin = ["us-ascii", "ascii", "iso-8859-1", "latin1", "iso_8859-1", "windows-1252", "cp1252", "ansi_x3.4-1968"];
    if !latin.contains(&declared.as_str()) || bytes.is_ascii() {
        return None;
    }
    std::str::from_utf8(bytes).ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_8bit_is_detected() {
        // "测试附件" in GBK.
        let gbk = encoding_rs::GBK.encode("绩效管理,究竟谁错了").0;
        assert_eq!(decode_bytes(&gbk, None), "绩效管理,究竟谁错了");
        let sjis = encoding_rs::SHIFT_JIS.encode("ツール").0;
        assert_eq!(decode_bytes(&sjis, Some("iso-2022-jp")), "ツール");
        assert_eq!(decode_bytes("Hofjägeralle".as_bytes(), None), "Hofjägeralle");
    }

    #[test]
    fn headers_and_encoded_words() {
        assert_eq!(decode_header(b" =?ISO-2022-JP?B?g2OBW4OL?= EXAMPLE", None), "ツール EXAMPLE");
        assert_eq!(decode_header(b" =?utf-8?Q?a_b?= =?utf-8?Q?c?=\r\n\td", None), "a bc d");
        assert_eq!(decode_header(b"plain text", None), "plain text");
        // Two stray bytes: no confident guess, nothing invented.
        assert_eq!(decode_header(b"\xFF\xFE", None), "\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn rfc2231_continuations_are_joined_before_decoding() {
        let raw = b"attachment;\r\n filename*0*=UTF-8''%E6%B5%8B%E8;\r\n filename*1*=%AF%95.txt";
        assert_eq!(param(raw, "filename", None).as_deref(), Some("测试.txt"));
        let raw = b"attachment; filename*=iso-8859-1''Fran%E7ais.pdf";
        assert_eq!(param(raw, "filename", None).as_deref(), Some("Français.pdf"));
        assert_eq!(param(b"attachment; filename=\"a b.pdf\"", "filename", None).as_deref(), Some("a b.pdf"));
        assert_eq!(param(b"attachment", "filename", None), None);
    }

    proptest::proptest! {
        /// Any bytes: no panic, and what comes out is text (no control characters invented
        /// beyond those in the input).
        #[test]
        fn any_bytes_decode_without_panic(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode_header(&raw, None);
            let _ = decode_header(&raw, Some(encoding_rs::GBK));
            let _ = param(&raw, "filename", None);
            let _ = repaired(&raw);
            let _ = detect(&raw);
            let _ = utf8_mislabelled(&raw, Some("us-ascii"));
        }

        /// Encoded words and RFC 2231 pieces built from arbitrary parts: no panic.
        #[test]
        fn encoded_words_and_continuations_without_panic(cs in "[a-zA-Z0-9_*-]{0,12}", mode in "[BbQqX]", text in "[ -~]{0,40}", n in 0u8..5) {
            let word = format!("=?{cs}?{mode}?{text}?= =?{cs}?{mode}?{text}?=");
            let _ = decode_header(word.as_bytes(), None);
            let _ = repaired(word.as_bytes());
            let pieces: String = (0..n).map(|i| format!("; filename*{i}*={cs}'en'{text}")).collect();
            let _ = param(format!("attachment{pieces}").as_bytes(), "filename", None);
        }
    }

    #[test]
    fn utf8_in_a_us_ascii_body() {
        assert_eq!(utf8_mislabelled("caf\u{e9}".as_bytes(), Some("us-ascii")).as_deref(), Some("café"));
        assert_eq!(utf8_mislabelled(b"caf\xe9", Some("iso-8859-1")), None);
        assert_eq!(utf8_mislabelled("café".as_bytes(), Some("utf-8")), None);
        assert_eq!(utf8_mislabelled(b"plain", None), None);
    }
}
