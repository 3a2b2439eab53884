//! `iari outbox list / show / resend / park` as an operator runs them: the real binary against
//! this test's database.

use crate::common::*;
use std::process::Command;

fn iari(url: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iari"))
        .args(args)
        .env("IARI__DATABASE__URL", url)
        .env("USER", "labops")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn park_list_show_and_resend_from_the_command_line() {
    let (pool, url, _name) = crate::test_db::create("iari_test_deliver", 2).await;
    seed_decision(&pool, "CAP-1", "neg", ["neg"; 5], false).await;
    let m = &messages(&pool).await[0];
    let id = m.id.to_string();
    let (ok, text) = iari(&url, &["outbox", "list"]);
    assert!(ok && text.contains("0 message(s)"), "{text}");
    let (ok, text) = iari(&url, &["outbox", "resend", &id, "--by", "Dr. Weber"]);
    assert!(
        !ok && text.contains("is pending"),
        "only a parked message is resent: {text}"
    );
    let (ok, text) = iari(
        &url,
        &[
            "outbox",
            "park",
            &id,
            "--by",
            "Dr. Weber",
            "--reason",
            "LIS down for upgrade",
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = iari(&url, &["outbox", "list", "--state", "failed"]);
    assert!(
        ok && text.contains(&m.control_id) && text.contains("parked by Dr. Weber"),
        "{text}"
    );
    let (ok, text) = iari(&url, &["outbox", "resend", &id, "--by", "Dr. Weber"]);
    assert!(ok, "{text}");
    let (ok, text) = iari(&url, &["outbox", "show", &id]);
    assert!(ok, "{text}");
    assert!(
        text.contains("park by Dr. Weber (os user labops) from pending: LIS down for upgrade"),
        "{text}"
    );
    assert!(
        text.contains("resend by Dr. Weber (os user labops) from failed"),
        "{text}"
    );
    let (ok, text) = iari(&url, &["outbox", "show", &id, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(ok && v["state"] == "pending" && v["operations"].as_array().unwrap().len() == 2);
    let (ok, text) = iari(&url, &["outbox", "park", &id, "--by", ""]);
    assert!(!ok && text.contains("--by"), "{text}");
}
