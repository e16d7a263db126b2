//! SLA clocks inside the pipeline's transactions: started with a ticket, paused, resumed,
//! stopped and retargeted as the ticket changes ([`Pipeline::change`] is the one way tickets
//! change after creation), and checked by [`Pipeline::sla_tick`], which fires each warning and
//! breach once (a conditional state change), notifies the assignee or group, escalates breaches
//! to the supervisors, and auto-closes resolved tickets whose reopen window has passed.

use serde::Serialize;

use super::{Here, Pipeline, PipelineError};
use crate::config::Desk;
use crate::domain::TicketStatus;
use crate::sla::{Clock, ClockKind, Sla, SlaState, warn_threshold};
use crate::store::{self, Ticket, TicketPatch};
use crate::ticket::decide::{ClockMoves, Intent as Touch, clock_moves, decide};

/// What one scheduler tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    pub warnings: usize,
    pub breaches: usize,
    pub auto_closed: usize,
    pub reminders: usize,
    /// More work was due than one tick takes on.
    pub more: bool,
}

impl TickReport {
    pub fn fired(&self) -> usize {
        self.warnings + self.breaches + self.auto_closed + self.reminders
    }
}

/// How many clocks one tick handles (bounded transactions).
const TICK_BATCH: i64 = 200;

fn resolution_target(sla: &Sla, desk: &Desk, t: &Ticket) -> (chrono::Duration, chrono::Duration) {
    let ttype = t.ticket_type;
    let prio = t.priority;
    let fulfilment = desk.catalogue.subcategory(&t.category, &t.subcategory).and_then(|s| s.fulfilment);
    let target = sla.resolution_target(ttype, prio, fulfilment);
    (target, warn_threshold(target, sla.resolution_warning))
}

impl Pipeline {
    /// Starts a new ticket's clocks; sets an incident's priority from the matrix (in the store
    /// and in `t`). Returns the response deadline (for the acknowledgement).
    pub(crate) async fn start_clocks(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        target_override: Option<chrono::Duration>,
    ) -> Result<Option<i64>, PipelineError> {
        let Some(sla) = &h.desk.sla else { return Ok(None) };
        let paused = t.status == TicketStatus::Pending;
        let rt = sla.response_target(t.channel);
        let response = Clock::start(
            ClockKind::Response,
            rt,
            warn_threshold(rt, sla.response_warning),
            h.now,
            paused,
            &sla.response_calendar,
        );
        let (target, warn) = match target_override {
            // An event-dated service or a fulfilment tier (issue #17) sets the target.
            Some(target) => (target, warn_threshold(target, sla.resolution_warning)),
            None => resolution_target(sla, h.desk, t),
        };
        let resolution = Clock::start(
            ClockKind::Resolution,
            target,
            warn,
            h.now,
            paused,
            sla.resolution_calendar(t.ticket_type, t.priority),
        );
        let due = response.due_at;
        let clocks = [response, resolution].map(|clock| store::sla::ClockToInsert {
            ticket_id: t.id,
            desk: h.desk.id.clone(),
            clock,
        });
        match h.behind {
            // In a batch: inserted with the batch's others, before a read of clocks or the commit.
            Some(behind) => behind.queue_clocks(clocks),
            None => store::sla::insert_clocks(tx, &clocks).await?,
        }
        Ok(due)
    }

    /// Applies `patch` to ticket `t` (one UPDATE) and moves its clocks along; returns the ticket
    /// as it is now.
    pub(crate) async fn change(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        patch: &TicketPatch,
    ) -> Result<Ticket, PipelineError> {
        let after = patch.apply(t, h.now);
        let moves = clock_moves(t, &after, h.now, h.desk.reopen_days);
        let timers = store::Timers { auto_close_at: moves.auto_close, remind_at: moves.remind };
        store::update_ticket_and_timers(tx, t.id, patch, timers, h.now).await?;
        // A target the request's text set at creation (the event's date, a fulfilment tier) is
        // kept while the ticket stays on its service: a new priority or type does not undo it.
        let text_set = t.category == after.category
            && t.subcategory == after.subcategory
            && after.ticket_type != Some(crate::domain::TicketType::Incident)
            && h.desk
                .catalogue
                .subcategory(&after.category, &after.subcategory)
                .is_some_and(|s| s.schedule.is_some_and(|sc| sc.close_after_days.is_some()) || !s.tiers.is_empty());
        let moves = ClockMoves { retarget: moves.retarget && !text_set, ..moves };
        self.move_clocks(tx, h, &after, &moves).await?;
        Ok(after)
    }

    /// Moves the SLA clocks of a ticket that changed as `moves` says (`ticket::decide::clock_moves`).
    async fn move_clocks(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        after: &Ticket,
        m: &ClockMoves,
    ) -> Result<(), PipelineError> {
        let Some(sla) = &h.desk.sla else { return Ok(()) };
        if !(m.stop_response
            || m.pause
            || m.resume
            || m.stop_resolution
            || m.reopen_resolution
            || m.stop_all
            || m.retarget)
        {
            return Ok(());
        }
        if let Some(behind) = h.behind {
            // The clocks a batch has queued so far (this ticket's among them, when it is new).
            store::sla::insert_clocks(tx, &behind.take_clocks()).await?;
        }
        for row in store::sla::clocks_of(&mut **tx, after.id).await? {
            let (cal, kind) = match row.clock.kind {
                ClockKind::Response => (&sla.response_calendar, ClockKind::Response),
                ClockKind::Resolution => {
                    (sla.resolution_calendar(after.ticket_type, after.priority), ClockKind::Resolution)
                }
            };
            let mut c = row.clock.clone();
            if kind == ClockKind::Response && m.stop_response {
                c.stop(h.now, cal);
            }
            if m.pause {
                c.pause(h.now, cal);
            }
            if m.resume {
                c.resume(h.now, cal);
            }
            if kind == ClockKind::Resolution && m.stop_resolution {
                c.stop(h.now, cal);
            }
            if kind == ClockKind::Resolution && m.reopen_resolution {
                c.reopen(h.now, cal);
            }
            if m.stop_all {
                c.stop(h.now, cal);
            }
            if kind == ClockKind::Resolution && m.retarget {
                let (target, warn) = resolution_target(sla, h.desk, after);
                c.retarget(target, warn, cal);
            }
            if c != row.clock {
                store::sla::save_clock(tx, row.id, &c).await?;
            }
        }
        Ok(())
    }

    /// One pass of the response check at `now`: fires due warnings and breaches (once each) and
    /// auto-closes resolved tickets past their reopen window.
    pub async fn sla_tick(&self, now: i64) -> Result<TickReport, PipelineError> {
        let mut report = TickReport::default();
        let mut tx = self.store.begin().await?;
        let due = store::sla::due_clocks(&mut tx, self.store.backend(), now, TICK_BATCH).await?;
        report.more = due.len() as i64 == TICK_BATCH;
        for row in due {
            let Some(t) = store::ticket_by_id(&mut tx, row.ticket_id).await? else { continue };
            let Some((desk, inbox)) = self.ticket_home(&t) else { continue };
            let Some(sla) = &desk.sla else {
                let mut c = row.clock.clone();
                c.next_check_at = None;
                store::sla::save_clock(&mut tx, row.id, &c).await?;
                continue;
            };
            let h = self.here(desk, inbox, now)?;
            let cal = if row.clock.kind == ClockKind::Response {
                &sla.response_calendar
            } else {
                sla.resolution_calendar(t.ticket_type, t.priority)
            };
            let target_state = row.clock.state_at(now, cal);
            let mut c = row.clock.clone();
            let mut from = row.clock.state;
            for to in [SlaState::Warning, SlaState::Breached] {
                if from == SlaState::Breached || (to == SlaState::Breached && target_state != SlaState::Breached) {
                    break;
                }
                if to == SlaState::Warning && from != SlaState::Ok {
                    continue;
                }
                if store::sla::fire(&mut tx, row.id, from, to, now).await? {
                    let touch = Touch::ClockDue { clock: row.clock.kind, to, due_at: row.clock.due_at };
                    let d = decide(&t, &touch, desk, now);
                    self.settle(&mut tx, &h, &t, d, None).await?;
                    if to == SlaState::Warning {
                        report.warnings += 1;
                    } else {
                        report.breaches += 1;
                    }
                }
                from = to;
            }
            c.state = from;
            c.schedule(cal);
            store::sla::save_clock(&mut tx, row.id, &c).await?;
        }
        let closing = store::sla::due_auto_close(&mut tx, self.store.backend(), now, TICK_BATCH).await?;
        report.more |= closing.len() as i64 == TICK_BATCH;
        for id in closing {
            let Some(t) = store::ticket_by_id(&mut tx, id).await? else { continue };
            let Some((desk, inbox)) = self.ticket_home(&t) else { continue };
            let h = self.here(desk, inbox, now)?;
            if t.status != TicketStatus::Resolved {
                store::sla::set_auto_close(&mut tx, t.id, None).await?;
                continue;
            }
            let d = decide(&t, &Touch::AutoClose, desk, now);
            self.settle(&mut tx, &h, &t, d, None).await?;
            report.auto_closed += 1;
        }
        let reminders = store::sla::due_reminders(&mut tx, self.store.backend(), now, TICK_BATCH).await?;
        report.more |= reminders.len() as i64 == TICK_BATCH;
        for id in reminders {
            store::sla::set_remind(&mut tx, id, None).await?;
            let Some(t) = store::ticket_by_id(&mut tx, id).await? else { continue };
            let Some((desk, inbox)) = self.ticket_home(&t) else { continue };
            let h = self.here(desk, inbox, now)?;
            let d = decide(&t, &Touch::Remind, desk, now);
            report.reminders += d.sends.len();
            self.settle(&mut tx, &h, &t, d, None).await?;
        }
        self.store.commit(tx).await?;
        if report.fired() > 0 {
            self.outbox_wakeup.notify_one();
        }
        Ok(report)
    }

    fn ticket_home(&self, t: &Ticket) -> Option<(&Desk, &crate::config::InboxConfig)> {
        let desk = self.config.desk(&t.desk)?;
        let inbox =
            t.inbox.as_deref().and_then(|i| desk.inboxes.iter().find(|x| x.name == i)).or(desk.inboxes.first())?;
        Some((desk, inbox))
    }
}
