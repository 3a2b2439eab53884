//! A cookie-keeping client over the workstation's router (no socket: `tower::oneshot`).

use crate::common::{PASSWORD, TestDb};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

/// Test settings: plain-HTTP cookies (no TLS in tests), the rest as shipped.
pub fn settings(db: &TestDb) -> iari::config::Settings {
    let mut s = crate::common::settings();
    s.database.url = iari::config::SecretUrl::new(&db.url);
    s.workstation.secure_cookies = false;
    s
}

pub fn router(db: &TestDb) -> axum::Router {
    router_with(db, |_| {})
}

/// The router with settings changed by `edit`.
pub fn router_with(db: &TestDb, edit: impl FnOnce(&mut iari::config::Settings)) -> axum::Router {
    let mut s = settings(db);
    edit(&mut s);
    let s = Arc::new(s);
    iari::http::web::routes(db.pool.clone(), s.clone())
        .merge(iari::http::api::routes(db.pool.clone(), &s.workstation))
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token the page's forms carry.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

/// A browser stand-in: keeps cookies, sends `Accept: text/html` when asked to.
pub struct Client {
    pub app: axum::Router,
    pub cookies: HashMap<String, String>,
}

impl Client {
    pub fn new(app: &axum::Router) -> Client {
        Client {
            app: app.clone(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        for v in resp.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (kv, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// GET as a program (no `Accept: text/html`).
    pub async fn get(&mut self, uri: &str) -> Answer {
        let req = Request::get(uri)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    /// GET as a browser navigating.
    pub async fn page(&mut self, uri: &str) -> Answer {
        let req = Request::get(uri)
            .header(header::COOKIE, self.cookie_header())
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    pub async fn post(&mut self, uri: &str, form: &[(&str, &str)]) -> Answer {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        let req = Request::post(uri)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.join("&")))
            .unwrap();
        self.send(req).await
    }

    /// Signs in through the form; returns the answer to the POST.
    pub async fn sign_in_with(&mut self, user: &str, password: &str) -> Answer {
        let form = self.page("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[("csrf", &csrf), ("username", user), ("password", password)],
        )
        .await
    }

    /// Signs in with the test password; panics unless it worked.
    pub async fn sign_in(&mut self, user: &str) {
        let a = self.sign_in_with(user, PASSWORD).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    }
}

pub fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
