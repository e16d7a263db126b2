//! Composing a batch's outbound mails behind the writer. Rendering a mail's HTML part and
//! building its MIME bytes (quoted-printable bodies, attachments in base64) is most of the CPU a
//! new ticket costs the writer, and nothing in the transaction reads those bytes: the writer
//! records each mail's row with its Message-ID, subject and text, and hands the composition to
//! a task on the blocking pool ([`Behind::push`]); before the batch commits it takes the
//! bytes back ([`Behind::finish`]) and writes them into their rows. A composition that fails is
//! the failure of the message that queued the mail, as when it is composed in place.
//!
//! The task composes what is queued, in order, and ends when nothing is: it never holds a pool
//! thread while it waits for the writer (the next mail queued starts another). So the pool may be
//! bounded: no task in it waits for another task, and a writer that needs a pool thread (a file
//! to write) gets one however many batches are under way.
//!
//! The batch's email outbox rows and its audit events wait here too ([`Behind::queue_outbox`],
//! [`Behind::queue_events`]) and go in one statement each before the commit, in the order queued
//! (a round trip each, on PostgreSQL). Nothing in the batch reads outbox rows; the two reads of
//! events on the writer's path (an agent's openings for others this hour, a ticket's first route
//! for a correction) insert the events queued before them first.
//!
//! New tickets' SLA clocks wait here as well ([`Behind::queue_clocks`]); the one read of clocks on
//! the writer's path (moving a ticket's clocks) inserts the clocks queued before it first.
//!
//! Ticket numbers too: the batch reads (and, in its transaction, locks) a desk's counter for a
//! year once, numbers the batch's further tickets from it ([`Behind::next_seq`]) and writes where
//! it got to once, before the commit; a run that rolls back forgets them with everything else.
//!
//! Bounded: the inputs of the compositions under way hold at most [`BEHIND_BYTES`]; past them
//! the writer composes in place ([`Behind::reserve`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::PipelineError;
use crate::store;

/// The bytes (texts and files) one batch's compositions under way may hold.
pub const BEHIND_BYTES: usize = 8 * 1024 * 1024;

/// A composition: the mail's bytes, or why they cannot be made.
pub(crate) type Job = Box<dyn FnOnce() -> Result<Vec<u8>, PipelineError> + Send>;

/// One composed mail: its batch message, its row and its bytes.
struct Done {
    index: usize,
    row: i64,
    raw: Result<Vec<u8>, PipelineError>,
}

/// The compositions queued and not yet taken by a task, and whether a task is taking them.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<(usize, i64, Job)>,
    running: bool,
}

#[derive(Default)]
struct State {
    /// The batch message being applied; its compositions are its own.
    index: usize,
    /// Input bytes handed over so far.
    bytes: usize,
    queue: Arc<Mutex<Queue>>,
    /// The tasks started, in order: each ran after the one before it had ended.
    workers: Vec<tokio::task::JoinHandle<Vec<Done>>>,
    /// Emails' outbox rows not yet inserted, in the order queued.
    outbox: Vec<store::NewOutbox>,
    /// Audit events not yet inserted, in order.
    events: Vec<store::EventToInsert>,
    /// New tickets' clocks not yet inserted.
    clocks: Vec<store::sla::ClockToInsert>,
    /// Ticket counters read in this run: (desk, year, the last number handed out, the stored one).
    counters: Vec<(String, i32, i64, i64)>,
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A task's work: the queued compositions, in order, until none is left.
fn drain(queue: &Mutex<Queue>) -> Vec<Done> {
    let mut done = Vec::new();
    loop {
        let next = {
            let mut q = lock(queue);
            let next = q.jobs.pop_front();
            q.running = next.is_some();
            next
        };
        let Some((index, row, job)) = next else { return done };
        done.push(Done { index, row, raw: composed(job) });
    }
}

/// A composition's result; a panic is that mail's failure, never the writer's.
fn composed(job: Job) -> Result<Vec<u8>, PipelineError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
        .unwrap_or_else(|_| Err(PipelineError::Behind { reason: "the composition panicked".into(), temporary: false }))
}

/// What a batch run leaves to write before its commit.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    /// Composed mails: their rows and bytes.
    pub composed: Vec<(i64, Vec<u8>)>,
    /// Outbox rows, in the order queued.
    pub outbox: Vec<store::NewOutbox>,
    /// Audit events, in order.
    pub events: Vec<store::EventToInsert>,
    /// New tickets' clocks.
    pub clocks: Vec<store::sla::ClockToInsert>,
    /// Ticket counters to write: (desk, year, last number handed out), where it moved past the
    /// stored one.
    pub counters: Vec<(String, i32, i64)>,
}

/// One batch run's compositions, outbox rows and events (see the module's documentation).
pub(crate) struct Behind {
    budget: usize,
    state: Mutex<State>,
}

impl Behind {
    pub fn new(budget: usize) -> Self {
        Self { budget, state: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The writer now applies batch message `index`.
    pub fn at(&self, index: usize) {
        self.state().index = index;
    }

    /// Whether a composition of `bytes` input may go behind; counts it when it may.
    pub fn reserve(&self, bytes: usize) -> bool {
        let mut state = self.state();
        if state.bytes.saturating_add(bytes) > self.budget {
            return false;
        }
        state.bytes += bytes;
        true
    }

    /// Composes the mail of row `row` behind the writer (after [`Behind::reserve`]): queued for
    /// the running task, or for a task started now when none runs.
    pub fn push(&self, row: i64, job: Job) {
        let mut state = self.state();
        let index = state.index;
        let start = {
            let mut q = lock(&state.queue);
            q.jobs.push_back((index, row, job));
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            let queue = Arc::clone(&state.queue);
            state.workers.push(tokio::task::spawn_blocking(move || drain(&queue)));
        }
    }

    /// Queues an email's outbox row for the batch's one insert ([`Behind::finish`]).
    pub fn queue_outbox(&self, row: store::NewOutbox) {
        self.state().outbox.push(row);
    }

    /// The outbox rows queued so far, for a caller that inserts a row of its own (a chat
    /// message's) after them.
    pub fn take_outbox(&self) -> Vec<store::NewOutbox> {
        std::mem::take(&mut self.state().outbox)
    }

    /// Queues audit events for the batch's one insert ([`Behind::finish`]).
    pub fn queue_events(&self, events: impl IntoIterator<Item = store::EventToInsert>) {
        self.state().events.extend(events);
    }

    /// The events queued so far, for a caller about to read the ticket's events.
    pub fn take_events(&self) -> Vec<store::EventToInsert> {
        std::mem::take(&mut self.state().events)
    }

    /// Queues new clocks for the batch's one insert ([`Behind::finish`]).
    pub fn queue_clocks(&self, clocks: impl IntoIterator<Item = store::sla::ClockToInsert>) {
        self.state().clocks.extend(clocks);
    }

    /// The clocks queued so far, for a caller about to read clocks.
    pub fn take_clocks(&self) -> Vec<store::sla::ClockToInsert> {
        std::mem::take(&mut self.state().clocks)
    }

    /// The next ticket number of `desk` for `year`, when this run has read its counter
    /// ([`Behind::counter_read`]); `None`: read it from the store.
    pub fn next_seq(&self, desk: &str, year: i32) -> Option<i64> {
        let mut state = self.state();
        let counter = state.counters.iter_mut().find(|(d, y, ..)| d == desk && *y == year)?;
        counter.2 += 1;
        Some(counter.2)
    }

    /// The counter of `desk` for `year` as the store just handed out `last` (and stored it).
    pub fn counter_read(&self, desk: &str, year: i32, last: i64) {
        self.state().counters.push((desk.to_string(), year, last, last));
    }

    /// Every composed mail's row and bytes once all are done, and the outbox rows and events
    /// queued; or the first failure and the batch message whose mail it was.
    pub async fn finish(self) -> Result<Finished, (usize, PipelineError)> {
        let State { index, workers, outbox, events, clocks, counters, .. } =
            self.state.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut done = Vec::new();
        for worker in workers {
            // Each task ran until the queue was empty, and a mail queued after that started the
            // next one, so the tasks' results are every mail. A task that did not run to its end
            // (the runtime shutting down) loses nothing that was committed: the batch is rolled
            // back and tried again.
            done.extend(worker.await.map_err(|e| {
                (index, PipelineError::Behind { reason: format!("the composing task ended: {e}"), temporary: true })
            })?);
        }
        let composed: Result<Vec<_>, _> =
            done.into_iter().map(|d| d.raw.map(|raw| (d.row, raw)).map_err(|e| (d.index, e))).collect();
        let counters =
            counters.into_iter().filter(|c| c.2 > c.3).map(|(desk, year, last, _)| (desk, year, last)).collect();
        Ok(Finished { composed: composed?, outbox, events, clocks, counters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(bytes: &'static [u8]) -> Job {
        Box::new(move || Ok(bytes.to_vec()))
    }

    #[tokio::test]
    async fn every_mail_comes_back_with_its_row() {
        let behind = Behind::new(BEHIND_BYTES);
        assert!(Behind::new(BEHIND_BYTES).finish().await.unwrap().composed.is_empty(), "nothing pushed, nothing back");
        for (i, (row, bytes)) in [(7, &b"seven"[..]), (3, b"three"), (9, b"nine")].into_iter().enumerate() {
            behind.at(i);
            behind.push(row, job(bytes));
        }
        let mut back = behind.finish().await.unwrap().composed;
        back.sort();
        assert_eq!(back, [(3, b"three".to_vec()), (7, b"seven".to_vec()), (9, b"nine".to_vec())]);
    }

    #[tokio::test]
    async fn a_failure_or_a_panic_is_the_failure_of_the_message_that_queued_it() {
        for panics in [false, true] {
            let behind = Behind::new(BEHIND_BYTES);
            behind.at(0);
            behind.push(1, job(b"fine"));
            behind.at(4);
            behind.push(2, job(b"fine too"));
            behind.push(
                3,
                Box::new(move || {
                    if panics {
                        panic!("a bug in composing");
                    }
                    Err(PipelineError::InboxAddress("x".into()))
                }),
            );
            behind.at(5);
            behind.push(4, job(b"after it"));
            let (index, e) = behind.finish().await.unwrap_err();
            assert_eq!(index, 4);
            assert!(!e.is_temporary(), "{e}: the message's own failure");
            assert_eq!(e.to_string().contains("panicked"), panics, "{e}");
        }
    }

    #[test]
    fn a_composing_task_holds_no_pool_thread_while_the_writer_has_nothing_for_it() {
        // One pool thread: a task that waited for the writer's next mail would keep the file
        // write below from ever running.
        let rt = tokio::runtime::Builder::new_current_thread().max_blocking_threads(1).enable_time().build().unwrap();
        rt.block_on(async {
            let behind = Behind::new(BEHIND_BYTES);
            behind.at(0);
            behind.push(1, job(b"first"));
            let other = tokio::task::spawn_blocking(|| "a file written");
            let waited = tokio::time::timeout(std::time::Duration::from_secs(30), other).await;
            assert_eq!(waited.expect("the pool thread came free").unwrap(), "a file written");
            behind.at(1);
            behind.push(2, job(b"second"));
            behind.push(3, job(b"third"));
            let back = behind.finish().await.unwrap().composed;
            assert_eq!(back, [(1, b"first".to_vec()), (2, b"second".to_vec()), (3, b"third".to_vec())], "in order");
        });
    }

    #[test]
    fn inputs_past_the_budget_are_composed_in_place() {
        let behind = Behind::new(100);
        assert!(behind.reserve(60));
        assert!(!behind.reserve(41), "160 bytes would be held");
        assert!(behind.reserve(40));
        assert!(!behind.reserve(1));
    }
}
