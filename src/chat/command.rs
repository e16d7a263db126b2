//! What a chat requester may type: commands in Indonesian with English aliases. Text that is not
//! a command is `None` (free text). Never panics on any input (fuzzed).

use crate::domain::Language;

/// A requester's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatCommand {
    Start,
    Help,
    New,
    Cancel,
    Status(String),
    Reply(String, String),
    Close(String),
    Rate(String, u8, String),
    Tickets,
    Email(String),
    Language(Language),
    /// A command that needs arguments it did not get, or an unknown one: the help says more.
    Invalid(String),
}

/// Parses `text` as a command; `None` when it is not one (does not start with `/`).
pub fn parse(text: &str) -> Option<ChatCommand> {
    let text = text.trim();
    let rest = text.strip_prefix('/')?;
    let (word, args) = match rest.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (rest, ""),
    };
    // Telegram appends the bot's name in groups: /status@desk_bot
    let word = word.split('@').next().unwrap_or("").to_lowercase();
    let mut it = args.splitn(2, char::is_whitespace);
    let first = it.next().unwrap_or("").trim();
    let tail = it.next().unwrap_or("").trim();
    let number = normalize_number(first);
    let need = |usage: &str| ChatCommand::Invalid(usage.to_string());
    Some(match word.as_str() {
        "start" => ChatCommand::Start,
        "bantuan" | "help" => ChatCommand::Help,
        "baru" | "new" => ChatCommand::New,
        "batal" | "cancel" => ChatCommand::Cancel,
        "tiket" | "tickets" => ChatCommand::Tickets,
        "status" | "lacak" | "track" => match number {
            Some(n) => ChatCommand::Status(n),
            None => need("status"),
        },
        "balas" | "reply" => match number {
            Some(n) if !tail.is_empty() => ChatCommand::Reply(n, tail.to_string()),
            _ => need("balas"),
        },
        "tutup" | "close" => match number {
            Some(n) => ChatCommand::Close(n),
            None => need("tutup"),
        },
        "nilai" | "rate" => {
            let mut t = tail.splitn(2, char::is_whitespace);
            let score = t.next().and_then(|s| s.parse::<u8>().ok()).filter(|s| (1..=5).contains(s));
            match (number, score) {
                (Some(n), Some(s)) => ChatCommand::Rate(n, s, t.next().unwrap_or("").trim().to_string()),
                _ => need("nilai"),
            }
        }
        "email" => {
            if first.is_empty() {
                need("email")
            } else {
                ChatCommand::Email(first.to_string())
            }
        }
        "bahasa" | "language" => match first.to_ascii_lowercase().as_str() {
            "id" | "indonesia" | "en" | "english" => {
                ChatCommand::Language(if first.starts_with('e') { Language::En } else { Language::Id })
            }
            _ => need("bahasa"),
        },
        _ => need("unknown"),
    })
}

/// A ticket number as typed (`#A-KORS26000001`, `a-kors26000001`) in its stored form, if it has
/// the shape of one.
pub fn normalize_number(s: &str) -> Option<String> {
    let s = s.trim().trim_start_matches('#').trim_matches(|c: char| c == '[' || c == ']' || c == ',' || c == '.');
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/')
        && s.chars().any(|c| c.is_ascii_digit());
    ok.then(|| s.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_in_both_languages() {
        assert_eq!(parse("/baru"), Some(ChatCommand::New));
        assert_eq!(parse("/new@desk_bot"), Some(ChatCommand::New));
        assert_eq!(parse("/lacak #a-hero26000001"), Some(ChatCommand::Status("A-HERO26000001".into())));
        assert_eq!(
            parse("/balas A-HERO26000001 sudah saya coba"),
            Some(ChatCommand::Reply("A-HERO26000001".into(), "sudah saya coba".into()))
        );
        assert_eq!(
            parse("/rate A-HERO26000001 5 mantap"),
            Some(ChatCommand::Rate("A-HERO26000001".into(), 5, "mantap".into()))
        );
        assert_eq!(parse("/nilai A-HERO26000001 9"), Some(ChatCommand::Invalid("nilai".into())));
        assert_eq!(parse("/status"), Some(ChatCommand::Invalid("status".into())));
        assert_eq!(parse("/tutup A-HERO26000001"), Some(ChatCommand::Close("A-HERO26000001".into())));
        assert_eq!(parse("/email a@b.test"), Some(ChatCommand::Email("a@b.test".into())));
        assert_eq!(parse("/bahasa en"), Some(ChatCommand::Language(Language::En)));
        assert_eq!(parse("/xyz"), Some(ChatCommand::Invalid("unknown".into())));
        assert_eq!(parse("printer rusak"), None);
        assert_eq!(parse("/status '; DROP TABLE tickets"), Some(ChatCommand::Invalid("status".into())));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s);
            let _ = parse(&format!("/{s}"));
        }
    }
}
