//! Tickets: numbering and the subject tag that threads replies.

mod number;

pub use number::{NumberFormat, NumberFormatError, TicketNumber, find_tags};
