//! The scenario of issue 19: a technologist signs in, sees a flagged decision appear on the
//! worklist, opens it (the image loaded, five votes shown), presses a grade key and signs with a
//! reason; the final result reaches the LIS with the signer in OBX-16; the row leaves the
//! worklist; an auditor sees the signature and cannot sign. Every page is checked with axe and
//! photographed.

use crate::common::{PASSWORD, Seed, TestDb, user};
use crate::lis::FakeLis;
use crate::webdriver::{Driver, El};
use iari::app::{App, Task};
use iari::domain::Role;
use serde_json::{Value, json};
use sha2::Digest;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const AXE: &str = include_str!("vendor/axe-core/axe.min.js");
const AXE_SUMS: &str = include_str!("vendor/axe-core/SHA256SUMS");

fn screenshots() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("IARI_SCREENSHOTS")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target/screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The committed ensemble, grading bundled samples for the pages to show real votes.
struct Grader {
    settings: iari::config::Settings,
    engine: iari::classify::Engine,
}

impl Grader {
    fn load() -> Grader {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let env = std::collections::HashMap::from([
            (
                "IARI__MODELS__MANIFEST".to_string(),
                root.join("onnx/models/manifest.json").display().to_string(),
            ),
            ("IARI__INFERENCE__DEVICE".to_string(), "cpu".to_string()),
        ]);
        let settings = iari::config::Settings::load_from(None, Some(env)).unwrap();
        let engine = iari::classify::Engine::load(&settings).unwrap();
        Grader { settings, engine }
    }

    /// Grades `onnx/samples/<dir>/<file>` and stores it in `well` of plate P1 through the
    /// worker's batch write, with the worker's provenance; returns the decision id.
    async fn store(
        self: &Arc<Self>,
        pool: &sqlx::PgPool,
        well: &str,
        dir: &str,
        file: &str,
    ) -> i64 {
        use iari::classify::{ImageLimits, ImageTensor, decode};
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("onnx/samples")
            .join(dir)
            .join(file);
        let bytes = std::fs::read(path).unwrap();
        let me = self.clone();
        let b = bytes.clone();
        let (c, provenance) = tokio::task::spawn_blocking(move || {
            let img = decode(&b, &ImageLimits::from(&me.settings.images)).unwrap();
            let data = me.engine.preprocessor().run(&img.rgb);
            let sha256 = iari::domain::Sha256Digest::of(&b);
            let c = me
                .engine
                .classify(&[ImageTensor { sha256, data }])
                .unwrap()
                .pop()
                .unwrap();
            (c, iari::app::provenance(&me.engine))
        })
        .await
        .unwrap();
        let seed = Seed {
            well: well.into(),
            image: Some(bytes.clone()),
            ..Seed::default()
        };
        iari_kit::seed::written(pool, &seed, &bytes, &c, &provenance).await
    }
}

/// Screenshot as `<name>.png`, then axe: no serious or critical violation on the page.
async fn check(d: &Driver, name: &str) {
    let png = d.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: screenshot is a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
    let loaded = d
        .execute(&format!("{AXE}\n;return typeof axe;"), vec![])
        .await
        .unwrap();
    assert_eq!(loaded, "object", "axe-core loaded on {name}");
    let v = d
        .execute_async(
            "var done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(function (r) {\
               done(r.violations.map(function (v) { return {id: v.id, impact: v.impact,\
                 help: v.help, target: v.nodes.map(function (n) { return n.target; })}; }));\
             }).catch(function (e) { done({error: String(e)}); });",
        )
        .await
        .unwrap();
    assert!(v.get("error").is_none(), "{name}: axe failed: {v}");
    let bad: Vec<&Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| matches!(x["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(bad.is_empty(), "{name}: accessibility violations: {bad:#?}");
}

async fn sign_in(d: &Driver, base: &str, user: &str) {
    d.goto(&format!("{base}/login")).await.unwrap();
    let u = d.find("[data-test=username]").await.unwrap();
    d.type_into(&u, user).await.unwrap();
    let p = d.find("[data-test=password]").await.unwrap();
    d.type_into(&p, PASSWORD).await.unwrap();
    d.click(&d.find("[data-test=login]").await.unwrap())
        .await
        .unwrap();
    d.wait_for("[data-test=signed-in-as]", Duration::from_secs(10))
        .await
        .unwrap();
}

async fn sign_out(d: &Driver) {
    let b = d.find("header form button[type=submit]").await.unwrap();
    d.click(&b).await.unwrap();
    d.wait_for("[data-test=login]", Duration::from_secs(10))
        .await
        .unwrap();
}

/// Polls until the image element has loaded; its natural width.
async fn natural_width(d: &Driver, img: &El) -> i64 {
    for _ in 0..50 {
        let w = d
            .execute(
                "var i = arguments[0]; return i.complete ? i.naturalWidth : -1;",
                vec![Driver::arg(img)],
            )
            .await
            .unwrap();
        if w.as_i64().unwrap_or(-1) >= 0 {
            return w.as_i64().unwrap_or(0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    0
}

/// The LIS's copy of the message for `filler` with status `status` (OBR-25), within 20 s.
async fn lis_message(lis: &FakeLis, filler: &str, status: &str) -> String {
    for _ in 0..200 {
        for f in lis.received() {
            let text = String::from_utf8_lossy(&f).into_owned();
            let obr = text
                .split('\r')
                .find(|s| s.starts_with("OBR|"))
                .unwrap_or("");
            let fields: Vec<&str> = obr.split('|').collect();
            if fields.get(3).is_some_and(|f| f.starts_with(filler))
                && fields.get(25) == Some(&status)
            {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no {status} message for {filler} reached the LIS: {:?}",
        lis.received()
    );
}

/// The scenario's one long future outgrows a test thread's default stack in a debug build: it
/// runs on a thread and runtime with room.
#[test]
fn a_technologist_signs_and_an_auditor_checks() {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(16 << 20)
                .enable_all()
                .build()
                .unwrap()
                .block_on(Box::pin(scenario()))
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn scenario() {
    let sum = format!("{:x}", sha2::Sha256::digest(AXE.as_bytes()));
    assert!(
        AXE_SUMS.starts_with(&sum),
        "vendored axe.min.js does not match SHA256SUMS"
    );
    let db = TestDb::new().await;
    let lis = FakeLis::start(vec![]).await;
    let mut s = crate::common::settings();
    s.database.url = iari::config::SecretUrl::new(&db.url);
    s.http.addr = "127.0.0.1:0".parse().unwrap();
    s.workstation.secure_cookies = false;
    s.workstation.worklist_refresh_ms = 1000;
    s.lis = crate::lis::lis_settings(&lis.addr);
    let cancel = CancellationToken::new();
    let app = App::start(
        Arc::new(s),
        &[Task::Workstation, Task::Sender],
        cancel.clone(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.http_addr.unwrap());
    user(&db.pool, "tech.browser", Role::Technologist).await;
    user(&db.pool, "audit.browser", Role::Auditor).await;
    user(&db.pool, "admin.browser", Role::Admin).await;
    // A plate of bundled (synthetic) sample wells graded by the committed ensemble, stored as
    // the worker stores them: all four final.
    let grader = Arc::new(Grader::load());
    for (well, dir, file) in [
        ("A1", "neg", "neg-000.png"),
        ("A2", "1+", "1p-000.png"),
        ("A3", "2+", "2p-000.png"),
        ("B1", "4+", "4p-000.png"),
    ] {
        grader.store(&db.pool, well, dir, file).await;
    }

    let d = Driver::start(crate::ports::free_port()).await.unwrap();
    d.goto(&format!("{base}/login")).await.unwrap();
    check(&d, "login").await;
    sign_in(&d, &base, "tech.browser").await;
    assert!(d.url().await.unwrap().ends_with("/worklist"));
    // Nothing awaits review yet: every well of the plate was released.
    d.wait_for("#worklist-body[data-count='0']", Duration::from_secs(5))
        .await
        .unwrap();

    // A newly flagged decision appears without a reload: a 3+ well the ensemble grades 3+ with
    // one model at 2+ (disagree_adjacent; so do 2.0.0 and 2.1.0).
    let new_id = grader.store(&db.pool, "C3", "3+", "3p-002.png").await;
    let row = format!("[data-test=worklist-row][data-decision-id='{new_id}']");
    d.wait_for(&row, Duration::from_secs(5)).await.unwrap();
    check(&d, "worklist").await;

    d.click(&d.find(&format!("{row} a")).await.unwrap())
        .await
        .unwrap();
    let img = d
        .wait_for("[data-test=well-image]", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(natural_width(&d, &img).await > 0, "the well image loaded");
    assert_eq!(
        d.find_all("[data-test=votes] [data-test=vote]")
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        d.find_all("[data-test=plate-cell]").await.unwrap().len(),
        96
    );
    check(&d, "decision").await;

    // Key 2 picks 2+ (a correction of the ensemble's 3+), then the signature.
    d.press("2").await.unwrap();
    let pw = d
        .wait_for("[data-test=sign-password]", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(d.url().await.unwrap().contains("grade=2%2B"));
    check(&d, "signature").await;
    d.type_into(&pw, PASSWORD).await.unwrap();
    d.click(
        &d.find("[data-test=sign-reason] option[value=visual_read]")
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    d.type_into(
        &d.find("#comment").await.unwrap(),
        "weaker rim than the ensemble read",
    )
    .await
    .unwrap();
    d.click(&d.find("[data-test=sign-submit]").await.unwrap())
        .await
        .unwrap();
    d.wait_for("[data-test=signed-note]", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        d.find_all(&row).await.unwrap().is_empty(),
        "the row left the worklist"
    );

    // The LIS has the final result, the signer in OBX-16 and OBR-32.
    let filler = iari::domain::FillerNumber::for_decision(new_id);
    let msg = lis_message(&lis, filler.as_str(), "F").await;
    let obx = msg.split('\r').find(|s| s.starts_with("OBX|1|")).unwrap();
    assert_eq!(
        obx.split('|').nth(16),
        Some("tech.browser^Tester^TECH.BROWSER"),
        "{obx}"
    );
    assert!(obx.contains("|2+^"), "the signed grade: {obx}");
    let obr = msg.split('\r').find(|s| s.starts_with("OBR|")).unwrap();
    assert_eq!(
        obr.split('|').nth(32),
        Some("tech.browser&Tester&TECH.BROWSER")
    );

    d.goto(&format!("{base}/plates/P1")).await.unwrap();
    d.wait_for(
        "[data-test=plate-cell][data-well=C3] a",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    check(&d, "plate").await;
    sign_out(&d).await;

    // The auditor sees the signature and the HL7 history, and has nothing to sign with.
    sign_in(&d, &base, "audit.browser").await;
    d.goto(&format!("{base}/decisions/{new_id}?grade=3%2B"))
        .await
        .unwrap();
    let sig = d
        .wait_for("[data-test=signature]", Duration::from_secs(5))
        .await
        .unwrap();
    let text = d.text(&sig).await.unwrap();
    assert!(
        text.contains("Corrected 2+") && text.contains("TECH.BROWSER Tester"),
        "{text}"
    );
    for hook in ["sign-submit", "sign-password", "grade-3", "confirm"] {
        assert!(
            d.find_all(&format!("[data-test={hook}]"))
                .await
                .unwrap()
                .is_empty(),
            "{hook}"
        );
    }
    let acked = d
        .execute(
            "return Array.from(document.querySelectorAll('[data-test=hl7-message]'))\
             .map(function (r) { return r.textContent; }).join(' | ');",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        acked.as_str().unwrap().contains("AA"),
        "ACKs shown: {acked}"
    );
    check(&d, "decision-auditor").await;
    d.goto(&format!("{base}/audit?plate=P1&signer=tech.browser"))
        .await
        .unwrap();
    assert_eq!(d.find_all("[data-test=audit-row]").await.unwrap().len(), 1);
    check(&d, "audit").await;
    sign_out(&d).await;

    sign_in(&d, &base, "admin.browser").await;
    d.goto(&format!("{base}/admin/users")).await.unwrap();
    assert_eq!(d.find_all("[data-test=account]").await.unwrap().len(), 3);
    check(&d, "admin-users").await;
    d.goto(&format!("{base}/worklist")).await.unwrap();
    let forbidden = d.execute("return document.title;", vec![]).await.unwrap();
    assert_eq!(
        forbidden,
        json!("Not allowed · IARI workstation"),
        "an admin sees no results"
    );

    d.quit().await;
    cancel.cancel();
    app.join().await;
    db.drop().await;
}
