//! Who is calling: JWTs signed with Ed25519, and API keys.
//!
//! A JWT (`POST /api/v1/auth/login`) is valid for 24 hours and carries the
//! user, tenant and role; it is checked by signature alone, so reads cost no
//! database query. The key pair comes from the configuration or, in the
//! embedded default, is generated on first start under `DATA_DIR/keys/`.
//! An API key (`Authorization: Bearer tamis_…` or `X-API-Key`) is looked up by
//! its prefix and compared by hash; it acts as its user, limited by its scopes.

use std::path::{Path, PathBuf};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tamis_store::{ROLES, User};

use crate::AppState;
use crate::error::ApiError;

/// Errors of key handling.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("JWT key `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file is not an Ed25519 PEM key.
    #[error("JWT key `{path}` is not an Ed25519 PEM key: {message}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The signing and verifying keys of session tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(Ed25519)")
    }
}

/// The private key's file name under the key directory.
pub const PRIVATE_KEY_FILE: &str = "jwt-ed25519.pem";
/// The public key's file name under the key directory.
pub const PUBLIC_KEY_FILE: &str = "jwt-ed25519.pub.pem";

impl JwtKeys {
    /// Reads a PEM key pair (PKCS#8 private, SPKI public).
    pub fn from_files(private: &Path, public: &Path) -> Result<JwtKeys, KeyError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| KeyError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let bad = |p: &Path, e: jsonwebtoken::errors::Error| KeyError::Bad {
            path: p.to_path_buf(),
            message: e.to_string(),
        };
        Ok(JwtKeys {
            encoding: EncodingKey::from_ed_pem(&read(private)?).map_err(|e| bad(private, e))?,
            decoding: DecodingKey::from_ed_pem(&read(public)?).map_err(|e| bad(public, e))?,
        })
    }

    /// Reads the key pair under `dir`, generating it first if it is missing
    /// (the private key is written with mode 0600).
    pub fn load_or_generate(dir: &Path) -> Result<JwtKeys, KeyError> {
        let (private, public) = (dir.join(PRIVATE_KEY_FILE), dir.join(PUBLIC_KEY_FILE));
        if !private.exists() {
            generate(dir, &private, &public)?;
            tracing::info!(dir = %dir.display(), "generated a new Ed25519 key pair for session tokens");
        }
        JwtKeys::from_files(&private, &public)
    }

    /// A fresh key pair held in memory only (tests).
    pub fn ephemeral() -> Result<JwtKeys, KeyError> {
        let (private, public) = new_pair(Path::new("<memory>"))?;
        let bad = |e: jsonwebtoken::errors::Error| KeyError::Bad {
            path: "<memory>".into(),
            message: e.to_string(),
        };
        Ok(JwtKeys {
            encoding: EncodingKey::from_ed_pem(private.as_bytes()).map_err(bad)?,
            decoding: DecodingKey::from_ed_pem(public.as_bytes()).map_err(bad)?,
        })
    }

    /// Signs a session token for `user`, valid `ttl_secs`.
    pub fn issue(&self, user: &User, ttl_secs: i64) -> Result<(String, i64), ApiError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        let claims = Claims {
            sub: user.id.clone(),
            tid: user.tenant_id.clone(),
            role: user.role.clone(),
            iat: now,
            iat_ms: now_ms,
            exp: now + ttl_secs,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, claims.exp))
    }

    /// Checks a token's signature and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.leeway = 5;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("the session token has expired; log in again")
                }
                _ => ApiError::unauthorized("the session token is not valid"),
            })
    }
}

fn new_pair(path: &Path) -> Result<(String, String), KeyError> {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let bad = |message: String| KeyError::Bad {
        path: path.to_path_buf(),
        message,
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| bad(format!("no OS randomness: {e}")))?;
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private = sk
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| bad(e.to_string()))?
        .to_string();
    let public = sk
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| bad(e.to_string()))?;
    Ok((private, public))
}

fn generate(dir: &Path, private: &Path, public: &Path) -> Result<(), KeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (sk, pk) = new_pair(private)?;
    let tmp = dir.join(".jwt-ed25519.pem.tmp");
    {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp).map_err(io(&tmp))?;
        f.write_all(sk.as_bytes()).map_err(io(&tmp))?;
    }
    std::fs::write(public, pk).map_err(io(public))?;
    std::fs::rename(&tmp, private).map_err(io(private))
}

/// What a session token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The tenant id.
    pub tid: String,
    /// The role.
    pub role: String,
    /// Issued (s).
    pub iat: i64,
    /// Issued (ms): a password change refuses tokens issued before it, to
    /// the millisecond (0 in tokens from before this claim: `iat` counts).
    #[serde(default)]
    pub iat_ms: i64,
    /// Expires (s).
    pub exp: i64,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// The tenant every query is scoped to.
    pub tenant_id: String,
    /// The user (an API key acts as its user).
    pub user_id: String,
    /// The user's role.
    pub role: String,
    /// Who the audit log names: the user id, or `key:ID` for an API key.
    pub actor: String,
    /// The API key's scopes (`None` for a session: everything the role allows).
    pub scopes: Option<Vec<String>>,
    /// The rate-limit tier.
    pub tier: String,
}

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap_or(0)
}

impl Principal {
    /// Refuses (403) a caller whose role is below `role`.
    pub fn require(&self, role: &str) -> Result<(), ApiError> {
        if rank(&self.role) >= rank(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {role} role or above; you are {}",
                self.role
            )))
        }
    }

    fn scoped(&self, kind: &str) -> Option<Vec<&str>> {
        let scopes = self.scopes.as_ref()?;
        if scopes.iter().any(|s| s == "*") {
            return None;
        }
        let prefix = format!("{kind}:");
        let of: Vec<&str> = scopes
            .iter()
            .filter_map(|s| s.strip_prefix(&prefix))
            .collect();
        (!of.is_empty()).then_some(of)
    }

    /// Refuses (403) an API key whose scopes leave out `action`.
    pub fn may(&self, action: &str) -> Result<(), ApiError> {
        match self.scoped("action") {
            Some(allowed) if !allowed.contains(&action) && !allowed.contains(&"*") => {
                Err(ApiError::forbidden(format!(
                    "this API key may not `{action}` (its actions: {})",
                    allowed.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }

    /// Refuses (403) an API key whose scopes leave out this dataset.
    pub fn may_use_dataset(&self, dataset_id: &str) -> Result<(), ApiError> {
        match self.scoped("dataset") {
            Some(allowed) if !allowed.contains(&dataset_id) => Err(ApiError::forbidden(
                "this API key is not scoped to this dataset",
            )),
            _ => Ok(()),
        }
    }

    /// Both checks for an action on a dataset.
    pub fn may_on(&self, action: &str, dataset_id: &str) -> Result<(), ApiError> {
        self.may(action)?;
        self.may_use_dataset(dataset_id)
    }
}

/// The credential a request presents: a bearer token, an API key header, or
/// (for WebSockets and download links, which cannot set headers) an
/// `access_token` query parameter.
fn presented(parts: &Parts) -> Option<String> {
    let h: &HeaderMap = &parts.headers;
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(t.trim().to_string());
        }
    }
    if let Some(v) = h.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    parts.uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("access_token="))
            .map(String::from)
    })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let Some(cred) = presented(parts) else {
            return Err(ApiError::unauthorized(
                "log in (POST /api/v1/auth/login) and send `Authorization: Bearer TOKEN`, or send an API key",
            ));
        };
        if tamis_store::secret::api_key_prefix(&cred).is_some() {
            let Some((key, user)) = st.store().find_api_key(&cred).await? else {
                return Err(ApiError::unauthorized(
                    "the API key is not valid, has expired or was revoked",
                ));
            };
            return Ok(Principal {
                tenant_id: user.tenant_id,
                user_id: user.id,
                role: user.role,
                actor: format!("key:{}", key.id),
                scopes: Some(key.scopes),
                tier: key.tier,
            });
        }
        let c = st.keys().verify(&cred)?;
        // The token proves who; the user's current record says whether they
        // may still act, and as what (a role change or a disabled account
        // takes effect within USER_TTL, at once on this server).
        let issued_ms = c.iat_ms.max(c.iat.saturating_mul(1000));
        let role = st.users().current(st, &c.tid, &c.sub, issued_ms).await?;
        Ok(Principal {
            tenant_id: c.tid,
            user_id: c.sub.clone(),
            role,
            actor: c.sub,
            scopes: None,
            tier: st.config().user_tier.clone(),
        })
    }
}

/// How long a user's role and state are trusted before they are read again.
pub const USER_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Users' current roles and states, read at most every [`USER_TTL`] per user,
/// so session tokens follow role changes and disabled accounts without a
/// database read on every request.
#[derive(Debug, Default)]
pub struct UserCache(std::sync::Mutex<std::collections::HashMap<String, Known>>);

/// What the cache knows of a user: the role (`None`: disabled or gone), the
/// instant (ms) before which their session tokens are refused, and when it was read.
type Known = (Option<String>, i64, std::time::Instant);

impl UserCache {
    /// The user's current role; 401 when the account is disabled or gone, or
    /// when the token was issued (`issued_ms`) before the password last changed.
    pub async fn current(
        &self,
        st: &AppState,
        tenant: &str,
        id: &str,
        issued_ms: i64,
    ) -> Result<String, ApiError> {
        let cached = {
            let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
            m.get(id)
                .filter(|(_, _, at)| at.elapsed() < USER_TTL)
                .map(|(role, after, _)| (role.clone(), *after))
        };
        let (role, valid_after) = match cached {
            Some(r) => r,
            None => {
                let asked = std::time::Instant::now();
                let (role, after) = match st.store().user(tenant, id).await {
                    Ok(u) => ((!u.disabled).then_some(u.role), u.tokens_valid_after),
                    Err(tamis_store::StoreError::NotFound(_)) => (None, 0),
                    Err(e) => return Err(e.into()),
                };
                self.put(id, role.clone(), after, asked);
                (role, after)
            }
        };
        let role = role.ok_or_else(|| {
            ApiError::unauthorized("this account is disabled or no longer exists; ask an admin")
        })?;
        if issued_ms < valid_after {
            return Err(ApiError::unauthorized(
                "this session ended when the password was changed; log in again",
            ));
        }
        Ok(role)
    }

    /// Records a user as changed on this server, so the change applies at once.
    pub fn changed(&self, user: &tamis_store::User) {
        let role = (!user.disabled).then(|| user.role.clone());
        self.put(
            &user.id,
            role,
            user.tokens_valid_after,
            std::time::Instant::now(),
        );
    }

    /// Stores what was read at `asked`, unless something newer is there (a
    /// read that started before a change must not put the old state back).
    fn put(&self, id: &str, role: Option<String>, valid_after: i64, asked: std::time::Instant) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(id).is_some_and(|(_, _, at)| *at > asked) {
            return;
        }
        if m.len() > 100_000 {
            m.retain(|_, (_, _, at)| at.elapsed() < USER_TTL);
        }
        m.insert(id.to_string(), (role, valid_after, asked));
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    /// A read that started before a change cannot put the old state back.
    #[test]
    fn an_older_read_does_not_undo_a_change() {
        let c = UserCache::default();
        let read_started = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        c.put("u1", None, 0, std::time::Instant::now()); // disabled, here and now
        c.put("u1", Some("admin".into()), 0, read_started); // the stale read lands
        let m = c.0.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(m.get("u1").map(|(r, _, _)| r.clone()), Some(None));
    }
}
