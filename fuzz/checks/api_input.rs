//! Decisions API input check: the query string of `GET /api/v1/decisions` and the JSON body of
//! `POST /api/v1/decisions/{id}/review`, parsed by the same axum extractors and the same
//! checks the handlers use (`audit::Filter::parse`, `http::api::ReviewBody::into_request`).
//! Shared by the cargo-fuzz target and the bounded stable run (`tests/fuzz`). The first byte
//! picks which: even, the rest is a query string; odd, a review body.
//!
//! Asserts: no panic; an accepted filter's page size is within 1..=MAX_LIMIT and an explicit
//! `limit` is the one asked for; a refused filter is `Invalid` (a 400, never a database error);
//! an accepted review names a grade that reads back as itself; a refused review is a 400.

use axum::Json;
use axum::extract::Query;
use axum::http::{StatusCode, Uri};
use iari::audit::query::MAX_LIMIT;
use iari::audit::{AuditError, Filter};
use iari::http::api::ReviewBody;

/// The check on one input.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check_query(rest);
    } else {
        check_review(rest);
    }
}

fn check_query(query: &[u8]) {
    // Only what can reach the server as a request target: URI bytes.
    let Ok(uri) = format!("/api/v1/decisions?{}", String::from_utf8_lossy(query)).parse::<Uri>()
    else {
        return;
    };
    let Ok(Query(filter)) = Query::<Filter>::try_from_uri(&uri) else {
        return;
    };
    match filter.parse() {
        Ok(parsed) => {
            assert!((1..=MAX_LIMIT).contains(&parsed.limit()), "{filter:?}");
            if let Some(asked) = filter.limit {
                assert_eq!(parsed.limit(), asked);
            }
        }
        Err(AuditError::Invalid(_)) => {}
        Err(e) => panic!("{filter:?}: {e} is not a 400"),
    }
}

fn check_review(body: &[u8]) {
    let Ok(Json(review)) = Json::<ReviewBody>::from_bytes(body) else {
        return;
    };
    match review.into_request() {
        Ok((req, _password)) => {
            let again: iari::domain::Grade = req.grade.to_string().parse().unwrap();
            assert_eq!(again, req.grade);
            assert!(req.meaning.is_some());
        }
        Err(e) => assert_eq!(e.0, StatusCode::BAD_REQUEST, "{}", e.1),
    }
}
