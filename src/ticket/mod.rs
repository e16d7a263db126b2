//! Tickets: numbering, the subject tag that threads replies, who may act on a ticket, tokens.

pub mod answer;
pub mod command;
pub mod decide;
mod model;
mod number;
pub mod thread;
pub mod token;

pub use model::{Ticket, TicketPatch};
pub use number::{NumberFormat, NumberFormatError, TicketNumber, find_tags};
