//! Tickets: numbering and the subject tag that threads replies.

pub mod answer;
pub mod command;
mod number;
pub mod token;

pub use number::{NumberFormat, NumberFormatError, TicketNumber, find_tags};
