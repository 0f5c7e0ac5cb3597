//! The `jwt_auth` example's server: HS256 JSON Web Tokens checked at the upgrade with the
//! `jsonwebtoken` crate (signature, expiry, algorithm), the subject becoming the client's
//! user and the role its metadata. Here so that the example and its test share it.

use std::time::{SystemTime, UNIX_EPOCH};

use connectme::{AuthError, AuthRequest, Identity, Server};
use jsonwebtoken::{decode, encode, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The demo's signing secret. A real server reads it from its configuration.
const SECRET: &[u8] = b"connectme-example-secret-change-me";

/// What the example's tokens claim.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The user's role, kept as identity metadata.
    pub role: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

impl Claims {
    /// Claims for `user` with `role`, valid for `seconds` from now (negative: expired).
    pub fn new(user: &str, role: &str, seconds: i64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            sub: user.to_owned(),
            role: role.to_owned(),
            exp: now.saturating_add_signed(seconds),
        }
    }
}

/// A token for `claims`, signed with the example's secret.
pub fn mint(claims: &Claims) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("HS256 signing cannot fail")
}

/// Checks the request's bearer token: the identity, or 401.
pub fn check(request: &AuthRequest) -> Result<Identity, AuthError> {
    let token = request
        .token()
        .ok_or_else(|| AuthError::Unauthorized("no token".into()))?;
    // HS256 only and `exp` required; 5 s of clock skew allowed.
    let mut validation = Validation::default();
    validation.leeway = 5;
    let claims = decode::<Claims>(token, &DecodingKey::from_secret(SECRET), &validation)
        .map_err(|error| AuthError::Unauthorized(format!("invalid token: {error}")))?
        .claims;
    let mut identity = Identity::user(claims.sub);
    identity.metadata.insert("role".into(), claims.role);
    Ok(identity)
}

/// Starts a server on `addr` that accepts only clients with a valid token.
pub fn server(addr: &str) -> std::io::Result<Server> {
    Server::builder()
        .addr(addr)?
        .authenticate(|request: AuthRequest| async move { check(&request) })
        .start()
}
