//! Shared by the examples: the Rust types generated from `packme/manifest.json` (the
//! ConnectMe seed's `GetUserRequest`, `IntroductionMessage`, `MathQuestionRequest`, ...),
//! compiled at build time by `packme::build`.

/// Generated from `packme/`; `proto::manifest::GetUserRequest` and friends.
pub mod proto {
    packme::include_generated!("manifest");
}

/// Logs to stderr at `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
