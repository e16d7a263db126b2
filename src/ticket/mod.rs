//! Tickets: the typed ticket and the decisions on it, numbering, the subject tag that threads
//! replies, who may act on a ticket, tokens, and reading requests and answers. Pure: no I/O, `now`
//! passed in.

pub mod answer;
pub mod behalf;
pub mod command;
pub mod decide;
pub mod event_date;
mod model;
mod number;
pub mod reading;
pub mod thread;
pub mod token;

pub use model::{Ticket, TicketPatch};
pub use number::{NumberFormat, NumberFormatError, TicketNumber, find_tags};
