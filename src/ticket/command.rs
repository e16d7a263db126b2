//! The agents' command grammar: lines starting with `#` at the top of a reply. Pure.
//!
//! ```text
//! #resolve [text]      resolved; the text (and the rest of the reply) is the resolution note
//! #pending [text]      waiting on the requester; the text is relayed
//! #assign AGENT|GROUP  assign to an agent (address or name) or a group id
//! #escalate            hand over to the next layer's group
//! #note [text]         internal note: nothing of this reply is relayed
//! #priority P1..P5     set the priority
//! #category CAT/SUB    move to another subcategory of the desk's catalogue
//! #type TYPE           question | request | incident | change (Indonesian names accepted)
//! #reject REASON       rejected; the reason is sent to the requester
//! #close               closed (with the rating request)
//! #cc ADDRESS          add ADDRESS as a participant (gets agents' replies and the resolution)
//! #uncc ADDRESS        remove a participant
//! #merge NUMBER        merge this ticket into the requester's other ticket NUMBER
//! #requester ADDRESS [Name]   (a new mail to the desk) open the ticket for ADDRESS
//! ```
//! Commands are case-insensitive; Indonesian aliases are accepted (`#selesai`, `#tunda`,
//! `#tugaskan`, `#eskalasi`, `#catatan`, `#prioritas`, `#kategori`, `#jenis`, `#tolak`, `#tutup`,
//! `#abaikan` for `#waive`, `#gabung` for `#merge`, `#pemohon` for `#requester`).

use super::TicketNumber;
use crate::domain::{EmailAddress, Priority, TicketType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Resolve,
    Pending,
    Assign(String),
    Escalate,
    Note,
    Priority(Priority),
    Category(String, String),
    Type(TicketType),
    Reject(String),
    Close,
    /// Waive the missing requirements of a request held for them (the agent checked otherwise).
    Waive,
    /// Add a participant: they get the agents' replies and the resolution notice.
    Cc(EmailAddress),
    /// Remove a participant.
    Uncc(EmailAddress),
    /// Merge this ticket into another open ticket of the same requester.
    Merge(TicketNumber),
    /// On a new mail to the desk: the ticket belongs to this address (and name), not the agent.
    Requester(EmailAddress, Option<String>),
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Resolve => "resolve",
            Command::Pending => "pending",
            Command::Assign(_) => "assign",
            Command::Escalate => "escalate",
            Command::Note => "note",
            Command::Priority(_) => "priority",
            Command::Category(..) => "category",
            Command::Type(_) => "type",
            Command::Reject(_) => "reject",
            Command::Close => "close",
            Command::Waive => "waive",
            Command::Cc(_) => "cc",
            Command::Uncc(_) => "uncc",
            Command::Merge(_) => "merge",
            Command::Requester(..) => "requester",
        }
    }
}

/// An agent's reply, split into commands and the text that remains.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentReply {
    pub commands: Vec<Command>,
    /// Text after the command lines, plus any text written on a `#resolve`, `#pending` or
    /// `#note` line (in front).
    pub text: String,
}

impl AgentReply {
    pub fn has(&self, name: &str) -> bool {
        self.commands.iter().any(|c| c.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(
        "unknown command `#{0}`; known: #resolve #pending #assign #escalate #note #priority #category #type #reject #close #waive #cc #uncc #merge #requester"
    )]
    Unknown(String),
    #[error("`#{0}` needs {1}")]
    MissingArgument(&'static str, &'static str),
    #[error("`#priority {0}`: use P1, P2, P3, P4 or P5")]
    BadPriority(String),
    #[error("`#type {0}`: use question, request, incident or change")]
    BadType(String),
    #[error("`#category {0}`: use CATEGORY/SUBCATEGORY")]
    BadCategory(String),
    #[error("`#{0} {1}`: {2}")]
    BadAddress(&'static str, String, String),
    #[error("`#merge {0}`: not a ticket number")]
    BadNumber(String),
    #[error("more than {0} commands")]
    TooMany(usize),
}

const MAX_COMMANDS: usize = 10;

/// A requester's name given with `#requester` is cut to this many characters.
const MAX_NAME_CHARS: usize = 100;

/// The address argument of `#cc`, `#uncc` and `#requester`.
fn address(command: &'static str, arg: &str) -> Result<EmailAddress, CommandError> {
    if arg.is_empty() {
        return Err(CommandError::MissingArgument(command, "an email address"));
    }
    EmailAddress::parse(arg).map_err(|e| CommandError::BadAddress(command, arg.to_string(), e))
}

/// Parses the leading `#` lines of `text` (blank lines between them are allowed).
pub fn parse(text: &str) -> Result<AgentReply, CommandError> {
    let mut commands = Vec::new();
    let mut inline = Vec::new();
    let mut rest_start = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let Some(cmd) = t.strip_prefix('#') else {
            rest_start = Some(i);
            break;
        };
        let (word, arg) = match cmd.split_once(char::is_whitespace) {
            Some((w, a)) => (w, a.trim()),
            None => (cmd, ""),
        };
        let word = word.trim_end_matches(':').to_ascii_lowercase();
        // "#A-HERO26000001" style ticket tags are not commands (`#merge [#A-…]` names one).
        let names_a_ticket = matches!(word.as_str(), "merge" | "gabung");
        if cmd.chars().next().is_none_or(|c| !c.is_ascii_alphabetic()) || (cmd.contains(['[', ']']) && !names_a_ticket)
        {
            rest_start = Some(i);
            break;
        }
        if !word.chars().all(|c| c.is_ascii_alphabetic()) {
            rest_start = Some(i);
            break;
        }
        let c = match word.as_str() {
            "resolve" | "resolved" | "selesai" | "solved" => {
                inline.push(arg.to_string());
                Command::Resolve
            }
            "pending" | "tunda" => {
                inline.push(arg.to_string());
                Command::Pending
            }
            "note" | "catatan" | "internal" => {
                inline.push(arg.to_string());
                Command::Note
            }
            "assign" | "tugaskan" => {
                if arg.is_empty() {
                    return Err(CommandError::MissingArgument("assign", "an agent or a group"));
                }
                Command::Assign(arg.split_whitespace().next().unwrap_or(arg).to_string())
            }
            "escalate" | "eskalasi" => Command::Escalate,
            "priority" | "prioritas" => {
                let p = arg.to_ascii_uppercase();
                Command::Priority(Priority::parse(&p).ok_or_else(|| CommandError::BadPriority(arg.to_string()))?)
            }
            "category" | "kategori" => {
                let (c, s) = arg.split_once('/').ok_or_else(|| CommandError::BadCategory(arg.to_string()))?;
                let (c, s) = (c.trim().to_ascii_lowercase(), s.trim().to_ascii_lowercase());
                if c.is_empty() || s.is_empty() {
                    return Err(CommandError::BadCategory(arg.to_string()));
                }
                Command::Category(c, s)
            }
            "type" | "jenis" | "tipe" => Command::Type(match arg.to_ascii_lowercase().as_str() {
                "question" | "pertanyaan" => TicketType::Question,
                "request" | "permohonan" => TicketType::Request,
                "incident" | "kendala" => TicketType::Incident,
                "change" | "perubahan" => TicketType::Change,
                _ => return Err(CommandError::BadType(arg.to_string())),
            }),
            "reject" | "tolak" => {
                if arg.is_empty() {
                    return Err(CommandError::MissingArgument("reject", "a reason"));
                }
                Command::Reject(arg.to_string())
            }
            "close" | "tutup" => Command::Close,
            "waive" | "abaikan" => Command::Waive,
            "cc" => Command::Cc(address("cc", arg)?),
            "uncc" => Command::Uncc(address("uncc", arg)?),
            "merge" | "gabung" => {
                if arg.is_empty() {
                    return Err(CommandError::MissingArgument("merge", "a ticket number"));
                }
                let n = arg.split_whitespace().next().unwrap_or(arg);
                let n = n.trim_matches(|c: char| c == '[' || c == ']' || c == '#');
                Command::Merge(TicketNumber::parse(n).ok_or_else(|| CommandError::BadNumber(arg.to_string()))?)
            }
            "requester" | "pemohon" => {
                let (addr, name) = match arg.split_once(char::is_whitespace) {
                    Some((a, n)) => (a, n.trim()),
                    None => (arg, ""),
                };
                let name = name.trim_matches('"').trim();
                let name = (!name.is_empty()).then(|| name.chars().take(MAX_NAME_CHARS).collect());
                Command::Requester(address("requester", addr)?, name)
            }
            other => return Err(CommandError::Unknown(other.to_string())),
        };
        commands.push(c);
        if commands.len() > MAX_COMMANDS {
            return Err(CommandError::TooMany(MAX_COMMANDS));
        }
    }
    let rest = rest_start.map(|i| lines[i..].join("\n")).unwrap_or_default();
    let mut parts: Vec<String> = inline.into_iter().filter(|s| !s.is_empty()).collect();
    if !rest.trim().is_empty() {
        parts.push(rest.trim().to_string());
    }
    Ok(AgentReply { commands, text: parts.join("\n\n") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_commands() {
        let r = parse("Halo Pak, sudah kami cek.\n#bukan perintah di tengah").unwrap();
        assert!(r.commands.is_empty());
        assert_eq!(r.text, "Halo Pak, sudah kami cek.\n#bukan perintah di tengah");
    }

    #[test]
    fn parses_every_command() {
        let r = parse(
            "#assign agent2@desk.test\n#priority p2\n#category aplikasi/SIGI\n#type kendala\n\n#resolve Sudah diperbaiki.\nSilakan dicoba lagi.",
        )
        .unwrap();
        assert_eq!(
            r.commands,
            vec![
                Command::Assign("agent2@desk.test".into()),
                Command::Priority(Priority::P2),
                Command::Category("aplikasi".into(), "sigi".into()),
                Command::Type(TicketType::Incident),
                Command::Resolve,
            ]
        );
        assert_eq!(r.text, "Sudah diperbaiki.\n\nSilakan dicoba lagi.");
        assert!(r.has("resolve"));
        assert_eq!(parse("#abaikan").unwrap().commands, vec![Command::Waive]);
        let r = parse("#ESCALATE\n#note cek log server\n#close\n#reject di luar layanan\n#pending").unwrap();
        assert_eq!(
            r.commands,
            vec![
                Command::Escalate,
                Command::Note,
                Command::Close,
                Command::Reject("di luar layanan".into()),
                Command::Pending
            ]
        );
        assert_eq!(r.text, "cek log server");
        assert_eq!(parse("#selesai").unwrap().commands, vec![Command::Resolve]);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(parse("#frobnicate now"), Err(CommandError::Unknown("frobnicate".into())));
        assert_eq!(parse("#priority P9"), Err(CommandError::BadPriority("P9".into())));
        assert_eq!(parse("#assign"), Err(CommandError::MissingArgument("assign", "an agent or a group")));
        assert_eq!(parse("#category sigi"), Err(CommandError::BadCategory("sigi".into())));
        assert_eq!(parse("#type bug"), Err(CommandError::BadType("bug".into())));
        assert_eq!(parse("#reject"), Err(CommandError::MissingArgument("reject", "a reason")));
        assert!(parse(&"#note\n".repeat(20)).is_err());
        assert!(parse("#frobnicate").unwrap_err().to_string().contains("#resolve"));
    }

    #[test]
    fn participants_merge_and_requester() {
        let r = parse("#cc Ani <Ani@Kemenkeu.go.id>\n#uncc x@y.test\n#gabung [#A-HERO26000002]").unwrap();
        assert_eq!(
            r.commands,
            vec![
                Command::Cc(EmailAddress::parse("ani@kemenkeu.go.id").unwrap()),
                Command::Uncc(EmailAddress::parse("x@y.test").unwrap()),
                Command::Merge(TicketNumber::parse("A-HERO26000002").unwrap()),
            ]
        );
        let r = parse("#requester budi@kemenkeu.go.id Budi Santoso\nPrinter rusak.").unwrap();
        assert_eq!(
            r.commands,
            vec![Command::Requester(EmailAddress::parse("budi@kemenkeu.go.id").unwrap(), Some("Budi Santoso".into()))]
        );
        assert_eq!(r.text, "Printer rusak.");
        assert!(matches!(parse("#cc budi"), Err(CommandError::BadAddress("cc", ..))));
        assert_eq!(parse("#requester"), Err(CommandError::MissingArgument("requester", "an email address")));
        assert_eq!(parse("#merge 12"), Err(CommandError::BadNumber("12".into())));
        assert_eq!(parse("#merge"), Err(CommandError::MissingArgument("merge", "a ticket number")));
        let long = format!("#requester a@b.test {}", "x".repeat(5_000));
        assert!(matches!(&parse(&long).unwrap().commands[0], Command::Requester(_, Some(n)) if n.len() == 100));
    }

    #[test]
    fn ticket_tags_and_numbers_are_text() {
        let r = parse("#A-HERO26000001 masih error\n#1 prioritas").unwrap();
        assert!(r.commands.is_empty());
    }
}
