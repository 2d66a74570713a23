//! Signing in to the web view with an API token, and the session that
//! follows: `GET/POST /signin`, `POST /signout`, and the [`Session`]
//! extractor every page and action takes.
//!
//! - The session cookie (`tend_session`) is HttpOnly, SameSite=Strict,
//!   and Secure when tend is reached over TLS (a `public_url` in https, or
//!   a proxy saying `X-Forwarded-Proto: https`). Its value is 32 random
//!   bytes; the store keeps only their SHA-256 and the token's SHA-256, so
//!   a stolen database opens no session. Scopes are the token's as
//!   configured now: removing a token from tend.toml ends its sessions.
//! - Every form carries a CSRF token derived from the session's secret
//!   (a different hash than the stored one), checked on every POST; the
//!   sign-in form, before any session, is checked against a cookie of its
//!   own (double submit). A POST whose `Origin` is another site is refused.
//! - Each request counts against the token's rate limit, like the API's.

use super::{Frame, WebError, bad_form, bad_query, render_status, see_other};
use crate::api::auth::Caller;
use crate::api::{ApiError, AppState};
use crate::serve::config::Scope;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Router, routing::post};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tend_session";
/// The sign-in form's own CSRF cookie.
const SIGNIN_COOKIE: &str = "tend_signin";
/// How long a session lasts after signing in. By default 12 hours.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long a sign-in form stays valid. By default 30 minutes.
const SIGNIN_FORM_LIFETIME: Duration = Duration::from_secs(30 * 60);

pub fn routes() -> Router<AppState> {
    Router::new().route("/signin", get(signin_form).post(sign_in)).route("/signout", post(sign_out))
}

/// A signed-in request: the token's caller, and the CSRF token its forms carry.
pub struct Session {
    pub caller: Caller,
    pub csrf: String,
    /// Hex SHA-256 of the cookie's value: the session's key in the store.
    id_sha256: String,
}

/// A form that carries the session's CSRF token.
pub trait CsrfField {
    fn csrf(&self) -> &str;
}

impl Session {
    /// The form of an action: parsed (400 naming the field otherwise), its
    /// CSRF token checked (403), and the `scope` the API's endpoint for
    /// the same action needs (403 with the API's message).
    pub fn action<F: CsrfField>(&self, form: Result<Form<F>, FormRejection>, scope: Scope) -> Result<F, WebError> {
        let Form(f) = form.map_err(bad_form)?;
        self.check_csrf(f.csrf())?;
        self.caller.require(scope)?;
        Ok(f)
    }

    /// Who an action is recorded as done by: `token:<name>`, as the API records it.
    pub fn by(&self) -> String {
        format!("token:{}", self.caller.name)
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), WebError> {
        if bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes())) {
            Ok(())
        } else {
            Err(WebError::Api(ApiError::Forbidden(
                "the form's CSRF token is missing or wrong; reload the page and try again".into(),
            )))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex(&h.finalize())
}

/// 32 random bytes from the operating system's generator, in hex.
fn secret() -> Result<String, WebError> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the system's random generator failed: {e}"))?;
    Ok(hex(&bytes))
}

/// The CSRF token of a session, from the cookie's value.
fn csrf_of(cookie_value: &str) -> String {
    sha256_hex(&[b"tend-web-csrf\0", cookie_value.as_bytes()])
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether the browser reached tend over TLS, as far as tend can tell.
fn over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    let public = state.service.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    public || forwarded
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Secure over TLS.
fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}", max_age.as_secs());
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Refuses a POST sent from another site's page (when the browser says so).
fn same_origin(parts: &Parts) -> Result<(), WebError> {
    if parts.method != Method::POST {
        return Ok(());
    }
    // No Origin, or an opaque one ("null", e.g. from privacy settings):
    // the CSRF token and the SameSite cookie decide.
    let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).filter(|o| *o != "null") else {
        return Ok(());
    };
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(WebError::Api(ApiError::Forbidden(format!(
            "this form was sent from {origin:?}, not from this site; open tend's own page and send it from there"
        ))))
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
        let sign_in = || WebError::SignIn { next: if parts.method == Method::GET { next.clone() } else { "/".into() } };
        let Some(value) = cookie(&parts.headers, SESSION_COOKIE).filter(|v| !v.is_empty()) else {
            return Err(sign_in());
        };
        let id_sha256 = sha256_hex(&[value.as_bytes()]);
        let now = crate::clock::now_ms();
        let Some(row) = state.service.store.session(&id_sha256, now).await? else { return Err(sign_in()) };
        let Some(caller) = state.auth.by_hash(&row.token_sha256) else { return Err(sign_in()) };
        same_origin(parts)?;
        state.auth.take(&caller.name)?;
        Ok(Session { caller, csrf: csrf_of(value), id_sha256 })
    }
}

/// `next` if it is a path of this site, else `/`.
fn local(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

/// Percent-encodes a query component.
pub fn encode_component(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInQuery {
    next: Option<String>,
}

#[derive(Serialize)]
struct SignInPage {
    next: String,
    form_csrf: String,
    error: Option<String>,
}

/// The sign-in page, with a fresh form token in its own cookie.
fn signin_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: String,
    error: Option<String>,
) -> Result<Response, WebError> {
    let form_csrf = secret()?;
    let frame = Frame { user: None, csrf: String::new(), section: "signin", live: String::new() };
    let mut r = render_status(status, "signin.html", &frame, SignInPage { next, form_csrf: form_csrf.clone(), error })?;
    let c = set_cookie(SIGNIN_COOKIE, &form_csrf, "/signin", SIGNIN_FORM_LIFETIME, over_tls(state, headers));
    r.headers_mut().append(header::SET_COOKIE, c);
    Ok(r)
}

async fn signin_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<SignInQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let Query(q) = q.map_err(bad_query)?;
    signin_page(&s, &headers, StatusCode::OK, local(q.next.as_deref()), None)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

async fn sign_in(
    State(s): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, WebError> {
    let Form(f) = form.map_err(bad_form)?;
    let next = local(f.next.as_deref());
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(f.csrf.as_bytes())) {
        let why = "the sign-in form expired or was not sent from this site's page; sign in again from this page";
        return signin_page(&s, &headers, StatusCode::FORBIDDEN, next, Some(why.into()));
    }
    let token = f.token.trim();
    if token.is_empty() {
        return signin_page(&s, &headers, StatusCode::UNAUTHORIZED, next, Some("enter an API token".into()));
    }
    let Some((caller, token_sha256)) = s.auth.identify(token) else {
        let why = "this token is not valid: it matches no token of tend.toml (or TEND_TOKEN)";
        return signin_page(&s, &headers, StatusCode::UNAUTHORIZED, next, Some(why.into()));
    };
    s.auth.take(&caller.name)?;
    let value = secret()?;
    let expires = crate::clock::now_ms() + SESSION_LIFETIME.as_millis() as i64;
    s.service.store.open_session(&sha256_hex(&[value.as_bytes()]), &token_sha256, &caller.name, expires).await?;
    tracing::info!(token = %caller.name, "web view: signed in");
    let tls = over_tls(&s, &headers);
    let mut r = see_other(&next);
    r.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &value, "/", SESSION_LIFETIME, tls));
    r.headers_mut().append(header::SET_COOKIE, set_cookie(SIGNIN_COOKIE, "", "/signin", Duration::ZERO, tls));
    Ok(r)
}

/// A form with nothing but its CSRF token (sign out, cancel).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfForm {
    pub csrf: String,
}

impl CsrfField for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn sign_out(
    session: Session,
    State(s): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, WebError> {
    session.action(form, Scope::Read)?;
    s.service.store.close_session(&session.id_sha256).await?;
    let mut r = see_other("/signin");
    let c = set_cookie(SESSION_COOKIE, "", "/", Duration::ZERO, over_tls(&s, &headers));
    r.headers_mut().append(header::SET_COOKIE, c);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_signing_in() {
        assert_eq!(local(Some("/runs?status=failed")), "/runs?status=failed");
        assert_eq!(local(Some("//evil.example/")), "/");
        assert_eq!(local(Some("https://evil.example/")), "/");
        assert_eq!(local(Some("/\\evil.example")), "/");
        assert_eq!(local(None), "/");
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; tend_session=abc"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "tend_session"), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_over_tls() {
        let c = set_cookie(SESSION_COOKIE, "v", "/", SESSION_LIFETIME, true);
        assert_eq!(c, "tend_session=v; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure");
        let c = set_cookie(SESSION_COOKIE, "v", "/", SESSION_LIFETIME, false);
        assert_eq!(c, "tend_session=v; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict");
    }

    #[test]
    fn the_csrf_token_is_not_the_stored_hash_of_the_cookie() {
        assert_ne!(csrf_of("v"), sha256_hex(&[b"v"]));
        assert_eq!(csrf_of("v").len(), 64);
    }
}
