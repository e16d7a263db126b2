//! A batch's work that needs no store, done before the writer reaches it: each mail parsed and,
//! when it looks like a new request, routed. It runs on the blocking pool, one message after
//! another, while the writer applies the messages before it; the writer takes each result in
//! order, so the parsing and the routing of a batch overlap its statements and its flushes
//! instead of adding to them. The results are the ones the writer would make itself: `create`
//! uses a route made ahead only for the very mail it was made for, and routes any other itself
//! ([`route`] is the one rule for both). A message the writer prepares itself (a batch of one,
//! or past the copied bytes' budget) is only parsed: `create` routes it if it opens a ticket,
//! after the duplicate check, as it always did.

use tokio::sync::mpsc;

use crate::config::{Config, Desk};
use crate::domain::EmailAddress;
use crate::mail::loopguard;
use crate::mail::parse::{self, ParseError, ParsedMail};
use crate::routing::{RouteDecision, RouteInput};
use crate::ticket::thread::ThreadKeys;

/// One message, prepared.
pub(crate) struct Prepared {
    pub mail: Result<ParsedMail, ParseError>,
    /// The route of a mail that looks like a new request: no ticket tag or thread reference, not
    /// an agent's, from a person. A reply, an agent's mail or an automatic one is routed only if
    /// it does open a ticket, by `create` itself.
    pub route: Option<RouteDecision>,
    /// The idempotency key of a parsed mail (`parse::idempotency_key`, a SHA-256 of the bytes
    /// when there is no Message-ID): made here once, off the writer's path.
    pub key: Option<String>,
}

/// The route of `mail` arriving at the inbox `inbox_addr` of `desk`: the router's decision with
/// its reasons (the `routed` event), from the subject, the text and the requester's domain.
pub(crate) fn route(config: &Config, desk: &Desk, inbox_addr: &EmailAddress, mail: &ParsedMail) -> RouteDecision {
    config.router.explain(
        &desk.catalogue,
        &RouteInput {
            subject: &mail.subject,
            body: &mail.text,
            sender_domain: mail.requester().map(|r| r.address.domain()),
            inbox_address: inbox_addr.as_str(),
        },
    )
}

impl Prepared {
    /// `raw` parsed by the writer itself, in place; `create` routes it if it opens a ticket.
    pub fn in_place(raw: &[u8]) -> Self {
        let mail = parse::parse(raw);
        Prepared { key: key_of(&mail, raw), mail, route: None }
    }
}

fn key_of(mail: &Result<ParsedMail, ParseError>, raw: &[u8]) -> Option<String> {
    mail.as_ref().ok().map(|m| parse::idempotency_key(m.message_id.as_deref(), raw))
}

/// Parses `raw` and routes it when it looks like a new request (see [`Prepared::route`]).
pub(crate) fn prepare(config: &Config, desk: &Desk, inbox_addr: Option<&EmailAddress>, raw: &[u8]) -> Prepared {
    let mail = parse::parse(raw);
    let route = match (&mail, inbox_addr) {
        (Ok(m), Some(addr)) if looks_new(desk, m) => Some(route(config, desk, addr, m)),
        _ => None,
    };
    Prepared { key: key_of(&mail, raw), mail, route }
}

/// A mail that would open a ticket if nothing is found for it: from a person who is not an agent,
/// of a kind that may open a ticket, with no ticket tag or thread reference.
pub(crate) fn looks_new(desk: &Desk, mail: &ParsedMail) -> bool {
    // An agent's new mail is opened for someone else (`on_behalf`), with that person's words.
    let Some(from) = &mail.from else { return false };
    if desk.agent(&from.address).is_some() {
        return false;
    }
    if !loopguard::classify(mail, &desk.own_addresses).may_open_ticket() {
        return false;
    }
    let keys = ThreadKeys::of(&mail.subject, &mail.references, &mail.in_reply_to, &mail.reported_message_ids);
    keys.numbers.is_empty() && keys.message_ids.is_empty()
}

/// The bytes of a batch copied for the task ahead, at most: the messages past them (a batch of
/// large mails) are prepared by the writer in place, as a batch of one is.
pub(crate) const AHEAD_BYTES: usize = 8 << 20;

/// A batch's preparations, made on the blocking pool in order and taken by the writer in order.
/// Each is kept once taken, so that a batch that runs again (a message poisoned) reuses them.
pub(crate) struct Ahead {
    rx: mpsc::UnboundedReceiver<Prepared>,
    done: Vec<Prepared>,
}

impl Ahead {
    /// Starts preparing the messages of a batch at `inbox` (`raws`, in order) on the blocking
    /// pool: the first of them, as many as fit in `budget` bytes together (copies of them go to
    /// the task).
    pub fn start<'r>(
        config: std::sync::Arc<Config>,
        inbox: &str,
        raws: impl IntoIterator<Item = &'r [u8]>,
        budget: usize,
    ) -> Self {
        let mut left = budget;
        let raws: Vec<Vec<u8>> = raws
            .into_iter()
            .map_while(|raw| {
                left = left.checked_sub(raw.len())?;
                Some(raw.to_vec())
            })
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let inbox = inbox.to_string();
        tokio::task::spawn_blocking(move || {
            let Some((desk, ib)) = config.inbox(&inbox) else { return };
            let addr = EmailAddress::parse(&ib.address).ok();
            for raw in &raws {
                // The writer is gone (its batch failed or was dropped): stop.
                if tx.send(prepare(&config, desk, addr.as_ref(), raw)).is_err() {
                    return;
                }
            }
        });
        Ahead { rx, done: Vec::new() }
    }

    /// The messages prepared so far, from the first, without waiting for the task.
    pub fn ready(&mut self) -> &[Prepared] {
        while let Ok(next) = self.rx.try_recv() {
            self.done.push(next);
        }
        &self.done
    }

    /// Message `i` of `batch` (the raws the task was started with), prepared: waiting for the task
    /// if need be, and made in place ([`Prepared::in_place`]) past the budget or should the task be
    /// gone (it never panics on input, but a runtime shutting down drops it).
    pub async fn get<'b>(&mut self, i: usize, batch: impl Fn(usize) -> &'b [u8]) -> &Prepared {
        while self.done.len() <= i {
            let next = match self.rx.recv().await {
                Some(p) => p,
                None => Prepared::in_place(batch(self.done.len())),
            };
            self.done.push(next);
        }
        &self.done[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example configuration: HERO with its rules and an agent, `agen1@kemendag.go.id`.
    fn config() -> Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("loket.toml");
        Config::from_toml(&path, &std::fs::read_to_string(&path).unwrap(), |_| None).unwrap()
    }

    fn mail(from: &str, extra: &str, subject: &str) -> Vec<u8> {
        format!(
            "From: {from}\r\nTo: hero@kemendag.go.id\r\nSubject: {subject}\r\nMessage-ID: <a@example.test>\r\n{extra}\r\n\
             Mohon bantuan, akun INATRADE saya terkunci dan tidak bisa login.\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_new_request_is_routed_ahead_with_the_decision_the_writer_makes() {
        let cfg = config();
        let (desk, ib) = cfg.inbox("hero").unwrap();
        let addr = EmailAddress::parse(&ib.address).unwrap();
        let p = prepare(&cfg, desk, Some(&addr), &mail("budi@example.test", "", "Akun terkunci"));
        let parsed = p.mail.as_ref().unwrap();
        let ahead = p.route.as_ref().expect("a new request is routed ahead");
        assert_eq!(ahead, &route(&cfg, desk, &addr, parsed));
        assert_ne!(ahead.category, crate::catalogue::TRIAGE_CATEGORY, "{ahead:?}");
    }

    #[test]
    fn replies_agents_automatic_mail_and_unparsed_mail_are_not_routed_ahead() {
        let cfg = config();
        let (desk, ib) = cfg.inbox("hero").unwrap();
        let addr = EmailAddress::parse(&ib.address).unwrap();
        let cases = [
            mail("budi@example.test", "In-Reply-To: <x@kemendag.go.id>\r\n", "Re: Akun terkunci"),
            mail("budi@example.test", "", "Re: [#HERO-A-2026-000001] Akun terkunci"),
            mail("agen1@kemendag.go.id", "", "Akun terkunci"),
            mail("budi@example.test", "Auto-Submitted: auto-replied\r\n", "Akun terkunci"),
            b"not a mail at all".to_vec(),
        ];
        for raw in &cases {
            let p = prepare(&cfg, desk, Some(&addr), raw);
            assert!(p.route.is_none(), "{}", String::from_utf8_lossy(raw));
        }
        // Without the inbox's address there is no route either (the writer fails the mail there).
        assert!(prepare(&cfg, desk, None, &mail("budi@example.test", "", "Akun")).route.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_prepared_in_order_within_its_budget_and_the_rest_is_made_in_place() {
        let cfg = config();
        let cfg = std::sync::Arc::new(cfg);
        let raws: Vec<Vec<u8>> =
            (0..5).map(|i| mail(&format!("u{i}@example.test"), "", &format!("Permintaan {i}"))).collect();
        let slices = || raws.iter().map(Vec::as_slice);
        let mut ahead = Ahead::start(cfg.clone(), "hero", slices(), AHEAD_BYTES);
        for i in [0, 3, 1, 4, 2] {
            let p = ahead.get(i, |_| panic!("the task ahead made every one")).await;
            assert_eq!(p.mail.as_ref().unwrap().subject, format!("Permintaan {i}"));
            assert!(p.route.is_some(), "routed ahead");
        }
        let made_here = std::sync::Mutex::new(Vec::new());
        let here = |j: usize| {
            made_here.lock().unwrap().push(j);
            raws[j].as_slice()
        };
        // An unknown inbox: the task ahead ends at once, and each is made here, in order (parsed
        // only: `create` routes it).
        let mut gone = Ahead::start(cfg.clone(), "nowhere", slices(), AHEAD_BYTES);
        let p = gone.get(2, here).await;
        assert_eq!(p.mail.as_ref().unwrap().subject, "Permintaan 2");
        assert!(p.route.is_none());
        assert_eq!(std::mem::take(&mut *made_here.lock().unwrap()), [0, 1, 2]);
        // A budget for two of them: the task ahead makes those, the writer the rest.
        let two = raws[0].len() + raws[1].len() + raws[2].len() - 1;
        let mut within = Ahead::start(cfg.clone(), "hero", slices(), two);
        for i in 0..5 {
            let p = within.get(i, here).await;
            assert_eq!(p.mail.as_ref().unwrap().subject, format!("Permintaan {i}"));
            assert_eq!(p.route.is_some(), i < 2, "message {i}");
        }
        assert_eq!(*made_here.lock().unwrap(), [2, 3, 4]);
    }
}
