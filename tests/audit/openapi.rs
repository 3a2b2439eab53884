//! The decisions API against its OpenAPI document (`docs/openapi.json`, which the server also
//! serves): every route's real responses, success and error, are checked against the schema the
//! document gives for that route, method and status, and the status must be documented. A
//! small validator for the keywords the document uses ($ref, type, nullable, enum, format,
//! properties, required, additionalProperties, items). An object schema that lists properties
//! is closed unless it says `additionalProperties`: a field the API sends there must be
//! documented; one that lists none is free-form (the document describes it in words).

use crate::api::{app, call, token};
use crate::common::{PASSWORD, Seed, TestDb, seed};
use axum::http::StatusCode;
use iari::domain::Role;
use serde_json::{Value, json};

/// Why `v` does not match `schema` (empty when it does); `at` names the place in the body.
fn violations(doc: &Value, schema: &Value, v: &Value, at: &str) -> Vec<String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unsupported $ref {r}"));
        let target = &doc["components"]["schemas"][name];
        assert!(target.is_object(), "{r} is not in the document");
        return violations(doc, target, v, at);
    }
    if v.is_null() && schema["nullable"] == true {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(v)
    {
        out.push(format!("{at}: {v} not in {values:?}"));
    }
    let ok = match schema["type"].as_str() {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some(other) => panic!("unsupported type {other}"),
    };
    if !ok {
        out.push(format!("{at}: {v} is not of type {}", schema["type"]));
        return out;
    }
    if schema["format"] == "date-time" {
        let s = v.as_str().unwrap_or_default();
        if chrono::DateTime::parse_from_rfc3339(s).is_err() {
            out.push(format!("{at}: {s:?} is not an RFC 3339 date-time"));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema["properties"].as_object();
        let open = props.is_none() || schema["additionalProperties"] == true;
        for key in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(key.as_str().unwrap_or_default()) {
                out.push(format!("{at}: required {key} missing"));
            }
        }
        for (key, value) in obj {
            let here = format!("{at}.{key}");
            match (
                props.and_then(|p| p.get(key)),
                &schema["additionalProperties"],
            ) {
                (Some(s), _) => out.extend(violations(doc, s, value, &here)),
                (None, extra @ Value::Object(_)) => {
                    out.extend(violations(doc, extra, value, &here));
                }
                (None, _) if open => {}
                (None, _) => out.push(format!("{here}: not in the document")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            out.extend(violations(doc, items, item, &format!("{at}[{i}]")));
        }
    }
    out
}

/// Checks one real response against the document: its status is documented for `path` and
/// `method`, and its body matches that status's JSON schema.
fn conforms(doc: &Value, path: &str, method: &str, status: StatusCode, body: &Value) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = &op["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the document does not list"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status}: no schema");
    let errors = violations(doc, schema, body, "$");
    assert!(
        errors.is_empty(),
        "{method} {path} {status}:\n{}\nbody: {body}",
        errors.join("\n")
    );
}

/// (documented path, method, real URI, token, body, expected status)
type Case<'a> = (
    &'a str,
    &'a str,
    String,
    Option<&'a str>,
    Option<Value>,
    StatusCode,
);

#[tokio::test]
async fn every_route_answers_as_its_openapi_document_says() {
    let db = TestDb::new().await;
    let app = app(&db);
    let (s, doc) = call(&app, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let flagged = seed(
        &db.pool,
        &Seed {
            needs_review: true,
            ..Seed::default()
        },
    )
    .await;
    let released = seed(&db.pool, &Seed::default()).await;
    let tech = token(&db, "tech.doc", Role::Technologist).await;
    let sup = token(&db, "sup.doc", Role::Supervisor).await;
    let admin = token(&db, "admin.doc", Role::Admin).await;
    let (list, one, review) = (
        "/api/v1/decisions",
        "/api/v1/decisions/{id}",
        "/api/v1/decisions/{id}/review",
    );
    let id = format!("/api/v1/decisions/{flagged}");
    let rev = format!("{id}/review");
    let confirm = json!({"grade": "2+", "meaning": "confirmed", "password": PASSWORD});
    let retract = "/api/v1/decisions/{id}/retract";
    let ret = format!("/api/v1/decisions/{released}/retract");
    let withdraw =
        json!({"reason": {"code": "image_artefact", "text": "wrong well"}, "password": PASSWORD});
    let cases: Vec<Case> = vec![
        (list, "get", list.into(), Some(&tech), None, StatusCode::OK),
        (
            list,
            "get",
            format!("{list}?limit=1"),
            Some(&tech),
            None,
            StatusCode::OK,
        ),
        (
            list,
            "get",
            format!("{list}?grade=9%2B"),
            Some(&tech),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            list,
            "get",
            list.into(),
            None,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            list,
            "get",
            list.into(),
            Some(&admin),
            None,
            StatusCode::FORBIDDEN,
        ),
        (one, "get", id.clone(), Some(&tech), None, StatusCode::OK),
        (
            one,
            "get",
            format!("{list}/abc"),
            Some(&tech),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            one,
            "get",
            id.clone(),
            Some("wrong"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            one,
            "get",
            id.clone(),
            Some(&admin),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            one,
            "get",
            format!("{list}/424242"),
            Some(&tech),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            review,
            "post",
            rev.clone(),
            Some(&tech),
            Some(json!({"grade": "2+"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            review,
            "post",
            rev.clone(),
            None,
            Some(confirm.clone()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            review,
            "post",
            rev.clone(),
            Some(&admin),
            Some(confirm.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            review,
            "post",
            format!("{list}/424242/review"),
            Some(&sup),
            Some(confirm.clone()),
            StatusCode::NOT_FOUND,
        ),
        (
            review,
            "post",
            rev.clone(),
            Some(&tech),
            Some(confirm),
            StatusCode::CREATED,
        ),
        (
            retract,
            "post",
            ret.clone(),
            Some(&sup),
            Some(json!({"reason": {"code": "no_such_code"}, "password": PASSWORD})),
            StatusCode::BAD_REQUEST,
        ),
        (
            retract,
            "post",
            ret.clone(),
            None,
            Some(withdraw.clone()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            retract,
            "post",
            ret.clone(),
            Some(&tech),
            Some(withdraw.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            retract,
            "post",
            format!("{list}/424242/retract"),
            Some(&sup),
            Some(withdraw.clone()),
            StatusCode::NOT_FOUND,
        ),
        (
            retract,
            "post",
            ret.clone(),
            Some(&sup),
            Some(withdraw),
            StatusCode::CREATED,
        ),
        // After the review: the decision's provenance carries it, and the list its state.
        (one, "get", id.clone(), Some(&sup), None, StatusCode::OK),
        (list, "get", list.into(), Some(&sup), None, StatusCode::OK),
    ];
    for (path, method, uri, tok, body, want) in cases {
        let (s, v) = call(&app, &method.to_uppercase(), &uri, tok, body).await;
        assert_eq!(s, want, "{method} {uri}: {v}");
        conforms(&doc, path, method, s, &v);
    }
    db.drop().await;
}
