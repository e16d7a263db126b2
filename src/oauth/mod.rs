//! OAuth2 for mailboxes at Microsoft 365 and Google Workspace, the pure part: the configuration
//! blocks and provider presets (`config`), the SASL messages XOAUTH2 and OAUTHBEARER (`sasl`),
//! reading token answers and deciding when to renew (`token`), sealing the stored refresh token
//! (`crypto`), and when the operators are told (`alert`). The HTTP calls and the token cache are
//! in `channel::oauth`.

pub mod alert;
pub mod config;
pub mod crypto;
pub mod sasl;
pub mod token;
