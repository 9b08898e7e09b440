//! Who may use the admin listener: with `admin.token` set, a bearer token
//! (API clients) or the session cookie the login page sets (browsers).
//! Tokens are compared as digests, in constant time; the cookie holds a
//! digest of the token, never the token.

use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::dashboard;
use crate::config::Secret;
use crate::response::{HttpResponse, redirect};
use crate::verify::constant_time_eq;

const COOKIE_NAME: &str = "hookd_admin";

/// Changes sent without a bearer token must carry this header, which a
/// cross-site form cannot send, so a page open in the operator's browser
/// cannot replay or purge through the cookie.
pub const CSRF_HEADER: &str = "x-hookd-request";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No token configured.
    Open,
    Bearer,
    Cookie,
    Denied,
}

/// The configured token, if any.
#[derive(Clone)]
pub struct Gate {
    token: Secret,
}

impl Gate {
    pub fn new(token: Secret) -> Self {
        Self { token }
    }

    pub fn check(&self, req: &Request<Incoming>) -> Auth {
        let token = self.token.expose();
        if token.is_empty() {
            return Auth::Open;
        }
        let bearer = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(given) = bearer {
            return if token_matches(token, given) {
                Auth::Bearer
            } else {
                Auth::Denied
            };
        }
        let cookie = req
            .headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE_NAME)
            .map(|(_, value)| value.to_owned());
        match cookie {
            Some(given) if constant_time_eq(cookie_value(token).as_bytes(), given.as_bytes()) => {
                Auth::Cookie
            }
            _ => Auth::Denied,
        }
    }

    /// `POST /login`: sets the session cookie for the right token.
    pub async fn login(&self, req: Request<Incoming>) -> HttpResponse {
        let body = Limited::new(req.into_body(), 4096)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let form = super::query_map(std::str::from_utf8(&body).ok());
        let given = form.get("token").map(String::as_str).unwrap_or("");
        let expected = self.token.expose();
        if !expected.is_empty() && !token_matches(expected, given) {
            let mut page = dashboard::login_page(Some("That token is not right."));
            *page.status_mut() = StatusCode::UNAUTHORIZED;
            return page;
        }
        // HttpOnly keeps page scripts from reading the session, SameSite keeps
        // other sites from sending it.
        let mut response = redirect("/");
        if let Ok(cookie) = HeaderValue::from_str(&format!(
            "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict",
            cookie_value(given)
        )) {
            response.headers_mut().insert(SET_COOKIE, cookie);
        }
        response
    }
}

pub fn logout() -> HttpResponse {
    let mut response = redirect("/login");
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("hookd_admin=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// The cookie holds a digest of the token, never the token itself, so it
/// is always a valid cookie value and useless outside hookd.
fn cookie_value(token: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"hookd-admin-session:");
    ctx.update(token.as_bytes());
    hex::encode(ctx.finish())
}

/// Compares digests so neither content nor length leaks through timing.
fn token_matches(expected: &str, given: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    constant_time_eq(digest(expected).as_ref(), digest(given).as_ref())
}
