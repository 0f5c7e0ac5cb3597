//! Shared by the examples: the Rust types generated from `packme/manifest.json` (the
//! ConnectMe seed's `GetUserRequest`, `IntroductionMessage`, `MathQuestionRequest`, ...),
//! compiled at build time by `packme::build`.

/// Generated from `packme/`; `proto::manifest::GetUserRequest` and friends.
pub mod proto {
    packme::include_generated!("manifest");
}
