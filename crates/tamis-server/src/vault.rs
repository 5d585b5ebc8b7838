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

use tamis_privacy::anonymize::{Rekey, Rekeyed};

use crate::error::ApiError;
use crate::{AppState, Principal};

/// The role that may detokenize (the most powerful: reading PII back in clear).
pub const DETOKENIZE_ROLE: &str = "admin";

/// The most tokens one request may ask for.
pub const MAX_TOKENS: usize = 10_000;

/// The largest vault file `/vault/import` takes in one request.
pub const IMPORT_LIMIT: usize = 64 << 20;

/// Vault entries one page of a re-encryption reads and writes.
const REKEY_PAGE: i64 = 500;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/vault/detokenize", post(detokenize))
        .route("/vault/rekey", post(rekey))
        // A vault file is one JSON body: up to 64 MiB (about 500,000
        // entries) here, not the API's 8 MiB; a larger one goes in parts.
        .route(
            "/vault/import",
            post(import).layer(axum::extract::DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
}

/// The server's vault keys, or 503 saying how to give them.
fn held_keys(st: &AppState) -> Result<&tamis_privacy::anonymize::Keys, ApiError> {
    st.config().vault_keys.as_ref().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "vault_key_missing",
            "this server holds no vault key: start it with TAMIS_ENCRYPTION_KEYS (the key the workers tokenize with)",
        )
    })
}

/// Re-encrypts the caller's tenant's vault under the current key (the last
/// of TAMIS_ENCRYPTION_KEYS), so that after a rotation the old keys can be
/// dropped from the server. Entries under a key the server no longer holds
/// are left as they are and counted in `undecryptable`. Admin only; audited
/// by counts. Running it again has nothing left to do.
#[utoipa::path(post, path = "/api/v1/vault/rekey", tag = "privacy",
    responses((status = 200, description = "`checked`, `rekeyed`, `undecryptable` entries and the `key` they are under now"),
        (status = 403, description = "not an admin, or an API key without the `admin` action"),
        (status = 503, description = "this server holds no vault key")))]
pub async fn rekey(State(st): State<AppState>, p: Principal) -> Result<Json<Value>, ApiError> {
    p.require(DETOKENIZE_ROLE)?;
    p.may("admin")?;
    let keys = held_keys(&st)?;
    let mut tally = Rekeyed::default();
    let mut after = String::new();
    loop {
        let page = st
            .store()
            .vault_page(&p.tenant_id, &after, REKEY_PAGE)
            .await?;
        let Some((last, _)) = page.last() else { break };
        after = last.clone();
        let mut changed = Vec::new();
        for (token, mut enc) in page {
            if tally.add(rekey_entry(keys, &enc)?, &mut enc) {
                changed.push((token, enc));
            }
        }
        st.store().set_vault_entries(&p.tenant_id, &changed).await?;
    }
    let key = keys.current.clone();
    st.store()
        .audit(
            Some(&p.tenant_id),
            &p.actor,
            "vault.rekey",
            "vault",
            &json!({"checked": tally.checked, "rekeyed": tally.rekeyed, "undecryptable": tally.undecryptable, "key": key}),
        )
        .await?;
    Ok(Json(json!({
        "checked": tally.checked,
        "rekeyed": tally.rekeyed,
        "undecryptable": tally.undecryptable,
        "key": key,
    })))
}

/// A token vault file as `tamis clean` writes it (`--vault`, default
/// `tamis-vault.json`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct Import {
    /// Token (`tok_` and 24 hex digits) → `enc:<key id>:<hex>`.
    pub entries: std::collections::BTreeMap<String, String>,
}

/// Imports a vault file the CLI wrote into the caller's tenant's vault, so
/// that tokens from `tamis clean` runs can be read back on the server. Every
/// entry must decrypt under a key the server holds, or nothing is imported;
/// entries are stored under the server's current key. A token the tenant
/// already holds is kept (a token always stands for the same value).
/// Admin only; audited by counts.
#[utoipa::path(post, path = "/api/v1/vault/import", tag = "privacy", request_body = Import,
    responses((status = 200, description = "`entries` read, `added` (new to the vault), `rekeyed` (re-encrypted on the way in)"),
        (status = 400, description = "no entries, a malformed token, or entries the server's keys cannot decrypt (nothing imported)"),
        (status = 403, description = "not an admin, or an API key without the `admin` action"),
        (status = 503, description = "this server holds no vault key")))]
pub async fn import(
    State(st): State<AppState>,
    p: Principal,
    Json(r): Json<Import>,
) -> Result<Json<Value>, ApiError> {
    p.require(DETOKENIZE_ROLE)?;
    p.may("admin")?;
    let keys = held_keys(&st)?;
    if r.entries.is_empty() {
        return Err(ApiError::bad_request("the vault has no entries")
            .with_details(json!({"field": "entries"})));
    }
    if let Some(bad) = r.entries.keys().find(|t| !is_token(t)) {
        return Err(ApiError::bad_request(format!(
            "`{bad}` is not a token (tokens are `tok_` and 24 hex digits)"
        ))
        .with_details(json!({"field": "entries"})));
    }
    let mut tally = Rekeyed::default();
    let mut entries = Vec::with_capacity(r.entries.len());
    let mut unread: std::collections::BTreeMap<String, u64> = Default::default();
    for (token, mut enc) in r.entries {
        let outcome = rekey_entry(keys, &enc)?;
        if let Rekey::Undecryptable(_) = &outcome {
            // Key ids are names, not secrets: say which keys are missing.
            let id = tamis_privacy::anonymize::key_id(&enc)
                .unwrap_or("?")
                .to_string();
            *unread.entry(id).or_default() += 1;
        }
        tally.add(outcome, &mut enc);
        entries.push((token, enc));
    }
    if tally.undecryptable > 0 {
        return Err(ApiError::bad_request(format!(
            "{} of {} entries cannot be decrypted with this server's keys (they name the keys {}); start the server with those keys in TAMIS_ENCRYPTION_KEYS, or export the vault again; nothing was imported",
            tally.undecryptable,
            tally.checked,
            unread
                .iter()
                .map(|(k, n)| format!("`{k}` ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_details(json!({"field": "entries", "undecryptable": tally.undecryptable})));
    }
    let added = st.store().put_vault_entries(&p.tenant_id, &entries).await?;
    st.store()
        .audit(
            Some(&p.tenant_id),
            &p.actor,
            "vault.import",
            "vault",
            &json!({"entries": tally.checked, "added": added, "rekeyed": tally.rekeyed}),
        )
        .await?;
    Ok(Json(json!({
        "entries": tally.checked,
        "added": added,
        "rekeyed": tally.rekeyed,
    })))
}

/// Whether `t` has the shape of a vault token: `tok_` and 24 hex digits.
fn is_token(t: &str) -> bool {
    t.strip_prefix("tok_")
        .is_some_and(|h| h.len() == 24 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn rekey_entry(keys: &tamis_privacy::anonymize::Keys, enc: &str) -> Result<Rekey, ApiError> {
    tamis_privacy::anonymize::rekey(keys, enc).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "vault_key_missing",
            e.to_string(),
        )
    })
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
    let keys = held_keys(&st)?;
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
