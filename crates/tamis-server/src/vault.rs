//! The token vault: turning tokens back into values.
//!
//! A clean job whose plan tokenizes a column keeps each token's value,
//! encrypted with the server's vault key, in its tenant's vault. Only an
//! admin may read values back, only on a server that holds the key, and each
//! call is audited (how many tokens, never which values).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::{AppState, Principal};

/// The role that may detokenize (the most powerful: reading PII back in clear).
pub const DETOKENIZE_ROLE: &str = "admin";

/// The most tokens one request may ask for.
pub const MAX_TOKENS: usize = 10_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/vault/detokenize", post(detokenize))
}

/// Tokens to read back.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Detokenize {
    /// Tokens (`tok_…`) as a tokenizing clean job wrote them; at most 10,000.
    pub tokens: Vec<String>,
}

/// Turns tokens of the caller's tenant back into values (admin; the server
/// must hold the vault key). Unknown tokens are listed in `missing`.
#[utoipa::path(post, path = "/api/v1/vault/detokenize", tag = "privacy", request_body = Detokenize,
    responses((status = 200, description = "`values` (token → value) and `missing`"),
        (status = 400, description = "no tokens, or too many"),
        (status = 403, description = "not an admin, or an API key without the `detokenize` action"),
        (status = 503, description = "this server holds no vault key")))]
pub async fn detokenize(
    State(st): State<AppState>,
    p: Principal,
    Json(r): Json<Detokenize>,
) -> Result<Json<Value>, ApiError> {
    p.require(DETOKENIZE_ROLE)?;
    p.may("detokenize")?;
    let Some(keys) = st.config().vault_keys.as_ref() else {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "vault_key_missing",
            "this server holds no vault key: start it with TAMIS_ENCRYPTION_KEYS (the key the workers tokenize with)",
        ));
    };
    if r.tokens.is_empty() || r.tokens.len() > MAX_TOKENS {
        return Err(ApiError::bad_request(format!(
            "give 1 to {MAX_TOKENS} tokens (got {})",
            r.tokens.len()
        ))
        .with_details(json!({"field": "tokens"})));
    }
    let mut tokens = r.tokens.clone();
    tokens.sort();
    tokens.dedup();
    let entries = st.store().vault_entries(&p.tenant_id, &tokens).await?;
    let vault = tamis_privacy::anonymize::Vault {
        entries: entries.into_iter().collect(),
    };
    let mut values = serde_json::Map::new();
    let mut missing = Vec::new();
    let mut undecryptable = 0usize;
    for t in &tokens {
        if !vault.entries.contains_key(t) {
            missing.push(t.clone());
            continue;
        }
        match vault.detokenise(keys, t) {
            Ok(v) => {
                values.insert(t.clone(), Value::String(v));
            }
            // Encrypted under a key this server no longer holds.
            Err(_) => {
                undecryptable += 1;
                missing.push(t.clone());
            }
        }
    }
    st.store()
        .audit(
            Some(&p.tenant_id),
            &p.actor,
            "vault.detokenize",
            "vault",
            &json!({"tokens": tokens.len(), "found": values.len(), "missing": missing.len(), "undecryptable": undecryptable}),
        )
        .await?;
    Ok(Json(
        json!({"values": values, "missing": missing, "undecryptable": undecryptable}),
    ))
}
