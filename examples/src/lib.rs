//! Shared by the examples: the Rust types generated from `packme/manifest.json` (the
//! ConnectMe seed's `GetUserRequest`, `IntroductionMessage`, `MathQuestionRequest`, ...),
//! compiled at build time by `packme::build`.

pub mod chat;
pub mod game;
pub mod json_echo;
pub mod jwt;
pub mod web_chat;

/// Generated from `packme/`; `proto::manifest::GetUserRequest` and friends.
pub mod proto {
    packme::include_generated!("manifest");
}

/// Logs to stderr at `RUST_LOG` (default `info`), in colour only when stderr is a terminal
/// and `NO_COLOR` is unset (no escape codes in a log file or a pipe).
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .try_init();
}
