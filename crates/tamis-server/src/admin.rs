//! Login, the caller, users, API keys and the audit log.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::{AppState, Demo, Principal, json_status};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/me", get(me))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", axum::routing::patch(update_user))
        .route("/api-keys", get(list_keys).post(create_key))
        .route("/api-keys/{id}", delete(revoke_key))
        .route("/audit", get(audit))
}

/// A login.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Login {
    /// The user's email.
    pub email: String,
    /// The password.
    pub password: String,
}

/// Logs in: a session token (Ed25519 JWT) valid 24 hours.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, description = "token, expiry and user"), (status = 401, description = "wrong email or password")))]
pub async fn login(State(st): State<AppState>, Json(l): Json<Login>) -> Result<Response, ApiError> {
    let Some(user) = st.store().login(&l.email, &l.password).await? else {
        return Err(ApiError::unauthorized("wrong email or password"));
    };
    let (token, exp) = st.keys().issue(&user, st.config().token_ttl_secs)?;
    st.store()
        .audit(
            Some(&user.tenant_id),
            &user.id,
            "auth.login",
            &user.id,
            &json!({}),
        )
        .await?;
    Ok(json_status(
        StatusCode::OK,
        json!({"token": token, "token_type": "Bearer", "expires_at": exp, "user": user}),
    ))
}

/// The caller: user, tenant, role and (for an API key) scopes.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, description = "the caller")))]
pub async fn me(State(st): State<AppState>, p: Principal) -> Result<Json<Value>, ApiError> {
    let user = st.store().user(&p.tenant_id, &p.user_id).await?;
    let tenant = st.store().tenant(&p.tenant_id).await?;
    Ok(Json(
        json!({"user": user, "tenant": tenant, "principal": p}),
    ))
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    /// Login.
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// viewer, analyst, reviewer, engineer or admin.
    pub role: String,
}

/// Lists the tenant's users (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "admin", responses((status = 200, description = "users")))]
pub async fn list_users(State(st): State<AppState>, p: Principal) -> Result<Json<Value>, ApiError> {
    p.require("admin")?;
    p.may("admin")?;
    Ok(Json(
        json!({"users": st.store().users(&p.tenant_id).await?}),
    ))
}

/// Creates a user in the caller's tenant (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "admin", request_body = NewUser,
    responses((status = 201, description = "the user"), (status = 403, description = "not an admin")))]
pub async fn create_user(
    State(st): State<AppState>,
    p: Principal,
    Json(u): Json<NewUser>,
) -> Result<Response, ApiError> {
    p.require("admin")?;
    p.may("admin")?;
    if u.password.chars().count() < 8 {
        return Err(
            ApiError::bad_request("the password needs at least 8 characters")
                .with_details(json!({"field": "password"})),
        );
    }
    if !u.email.contains('@') {
        return Err(ApiError::bad_request("the email is not an address")
            .with_details(json!({"field": "email"})));
    }
    let user = st
        .store()
        .create_user(&p.tenant_id, &u.email, &u.password, &u.role)
        .await?;
    crate::audit(
        &st,
        &p,
        "user.create",
        &user.id,
        &json!({"role": user.role}),
    )
    .await?;
    Ok(json_status(StatusCode::CREATED, json!({"user": user})))
}

/// Changes to a user (each optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// admin, engineer, analyst, reviewer or viewer.
    pub role: Option<String>,
    /// Refuse their logins, session tokens and API keys.
    pub disabled: Option<bool>,
    /// A new password (at least 8 characters).
    pub password: Option<String>,
}

/// Changes a user of the caller's tenant (admin): role, disabled, password.
/// Session tokens and API keys follow at once on this server, within 5 s on others.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "admin", request_body = UserChange,
    params(("id" = String, Path)),
    responses((status = 200, description = "the user"), (status = 409, description = "an admin demoting or disabling themselves")))]
pub async fn update_user(
    State(st): State<AppState>,
    p: Principal,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(c): Json<UserChange>,
) -> Result<Json<Value>, ApiError> {
    p.require("admin")?;
    p.may("admin")?;
    if id == p.user_id
        && (c.disabled == Some(true) || c.role.as_deref().is_some_and(|r| r != "admin"))
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "an admin cannot demote or disable themselves; ask another admin",
        ));
    }
    if c.password.as_ref().is_some_and(|pw| pw.chars().count() < 8) {
        return Err(
            ApiError::bad_request("the password needs at least 8 characters")
                .with_details(json!({"field": "password"})),
        );
    }
    let user = st
        .store()
        .update_user(
            &p.tenant_id,
            &id,
            c.role.as_deref(),
            c.disabled,
            c.password.as_deref(),
        )
        .await?;
    st.users().changed(&user);
    crate::audit(
        &st,
        &p,
        "user.update",
        &user.id,
        &json!({"role": c.role, "disabled": c.disabled, "password_changed": c.password.is_some()}),
    )
    .await?;
    Ok(Json(json!({"user": user})))
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewKey {
    /// Label.
    pub name: String,
    /// `*`, `dataset:ID`, `action:NAME` (read, upload, download, profile, suggest, clean, dedup, pii, cancel, plan, admin, detokenize).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Rate-limit tier (free, premium, …; only an admin may choose).
    pub tier: Option<String>,
    /// Days until it expires (none: never).
    pub expires_in_days: Option<i64>,
    /// Acting as this user (admin only; default: the caller).
    pub user_id: Option<String>,
}

/// Lists the tenant's API keys (admin; secrets are never shown again).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "admin", responses((status = 200, description = "keys")))]
pub async fn list_keys(State(st): State<AppState>, p: Principal) -> Result<Json<Value>, ApiError> {
    p.require("admin")?;
    p.may("admin")?;
    Ok(Json(
        json!({"api_keys": st.store().api_keys(&p.tenant_id).await?}),
    ))
}

/// Creates an API key; the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "admin", request_body = NewKey,
    responses((status = 201, description = "the key and its secret")))]
pub async fn create_key(
    State(st): State<AppState>,
    p: Principal,
    Json(k): Json<NewKey>,
) -> Result<Response, ApiError> {
    // A key cannot widen its own powers: only sessions make keys.
    if p.scopes.is_some() {
        return Err(ApiError::forbidden(
            "API keys cannot create API keys; log in",
        ));
    }
    let for_other = k.user_id.as_ref().is_some_and(|u| *u != p.user_id);
    if for_other || k.tier.is_some() {
        p.require("admin")?;
    }
    let user = st
        .store()
        .user(&p.tenant_id, k.user_id.as_deref().unwrap_or(&p.user_id))
        .await?;
    let scopes = if k.scopes.is_empty() {
        vec!["*".to_string()]
    } else {
        k.scopes
    };
    for s in &scopes {
        let ok = s == "*" || s.starts_with("dataset:") || s.starts_with("action:");
        if !ok {
            return Err(ApiError::bad_request(format!(
                "scope `{s}`: use `*`, `dataset:ID` or `action:NAME`"
            ))
            .with_details(json!({"field": "scopes"})));
        }
    }
    let tier = k.tier.unwrap_or_else(|| st.config().user_tier.clone());
    let expires = k
        .expires_in_days
        .map(|d| tamis_store::now_ms() + d.max(1) * 86_400_000);
    let (key, secret) = st
        .store()
        .create_api_key(&user, &k.name, &scopes, &tier, expires)
        .await?;
    crate::audit(
        &st,
        &p,
        "api_key.create",
        &key.id,
        &json!({"user": user.id, "scopes": scopes, "tier": tier}),
    )
    .await?;
    Ok(json_status(
        StatusCode::CREATED,
        json!({"api_key": key, "secret": secret}),
    ))
}

/// Revokes an API key (admin).
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "key id")), responses((status = 204, description = "revoked")))]
pub async fn revoke_key(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.require("admin")?;
    p.may("admin")?;
    st.store().revoke_api_key(&p.tenant_id, &id).await?;
    crate::audit(&st, &p, "api_key.revoke", &id, &json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Paging of the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// At most this many entries (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// The tenant's audit log, newest first (admin).
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", params(AuditQuery), responses((status = 200, description = "entries")))]
pub async fn audit(
    State(st): State<AppState>,
    p: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require("admin")?;
    p.may("admin")?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        json!({"entries": st.store().audit_log(&p.tenant_id, limit).await?}),
    ))
}

/// Creates the demo tenant, its admin and (when given) the example dataset,
/// unless the admin exists already.
pub async fn seed_demo(st: &AppState, demo: &Demo) -> Result<(), crate::ServeError> {
    let store = st.store();
    if store.login(&demo.email, &demo.password).await?.is_some() {
        return Ok(());
    }
    let tenant = match store.create_tenant("demo", 2, None).await {
        Ok(t) => t,
        Err(tamis_store::StoreError::Conflict(_)) => {
            tracing::warn!(
                "a tenant named demo exists but the demo admin does not log in; not seeding"
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let admin = store
        .create_user(&tenant.id, &demo.email, &demo.password, "admin")
        .await?;
    store
        .audit(
            Some(&tenant.id),
            "system",
            "demo.seed",
            &admin.id,
            &json!({}),
        )
        .await?;
    if let Some(file) = &demo.dataset {
        crate::datasets::ingest_file(st, &tenant.id, &admin.id, file, None)
            .await
            .map_err(|e| {
                crate::ServeError::Service(tamis_service::ServiceError::BadJob(format!(
                    "demo dataset {}: {}",
                    file.display(),
                    e.message
                )))
            })?;
    }
    Ok(())
}
