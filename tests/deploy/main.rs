//! The shipped deployment (`docker-compose.yml`, `Dockerfile`, `.dockerignore`,
//! `deploy/postgres-init`) read as text: no default passwords, ports on 127.0.0.1 only, the
//! worker on its own login (a member of `iari_worker`, not the database owner), a one-shot
//! `iari migrate` the worker waits for, base images pinned by digest, the HL7 volume owned by
//! the image's non-root user, and a build context without build output or secrets.
//!
//! The compose file is read by indentation (no YAML parser in the dependency tree): enough for
//! the block style this file is written in, and a change of style fails here loudly.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Lines without comments or blank ones, with their indentation.
fn lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| (l.len() - l.trim_start().len(), l.trim().to_string()))
        .collect()
}

/// The lines nested under the first `key:` line at `indent`.
fn block(lines: &[(usize, String)], indent: usize, key: &str) -> Vec<(usize, String)> {
    let head = format!("{key}:");
    let Some(at) = lines.iter().position(|(i, l)| *i == indent && *l == head) else {
        return Vec::new();
    };
    lines[at + 1..]
        .iter()
        .take_while(|(i, _)| *i > indent)
        .cloned()
        .collect()
}

fn service(compose: &[(usize, String)], name: &str) -> Vec<(usize, String)> {
    let services = block(compose, 0, "services");
    let s = block(&services, 2, name);
    assert!(!s.is_empty(), "docker-compose.yml has no service {name}");
    s
}

/// The value of `key: value` directly inside `block` (any depth), quotes removed.
fn value(block: &[(usize, String)], key: &str) -> Option<String> {
    let prefix = format!("{key}:");
    block.iter().find_map(|(_, l)| {
        l.strip_prefix(&prefix)
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

/// The user of a `postgres://user:password@host/db` URL.
fn url_user(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split([':', '@']).next().unwrap_or("")
}

fn pinned(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(name, digest)| {
        !name.is_empty()
            && digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[test]
fn compose_interpolations_have_no_defaults() {
    let text = read("docker-compose.yml");
    let mut seen = 0;
    for piece in text.split("${").skip(1) {
        let inner = piece.split('}').next().unwrap();
        let (name, rest) = inner.split_at(inner.find(':').unwrap_or(inner.len()));
        assert!(
            rest.starts_with(":?") && rest.len() > 2,
            "${{{inner}}}: a variable must be required (${{{name}:?message}}), never defaulted"
        );
        seen += 1;
    }
    assert!(seen >= 4, "the passwords come from the environment");
}

#[test]
fn compose_publishes_ports_on_loopback_only() {
    let compose = lines(&read("docker-compose.yml"));
    let mut ports = 0;
    for name in ["rabbitmq", "postgres", "worker"] {
        let s = service(&compose, name);
        let Some(at) = s.iter().position(|(_, l)| l == "ports:") else {
            continue;
        };
        let indent = s[at].0;
        for (_, l) in s[at + 1..].iter().take_while(|(i, _)| *i > indent) {
            let port = l.trim_start_matches("- ").trim_matches('"');
            assert!(port.starts_with("127.0.0.1:"), "{name}: port {port}");
            ports += 1;
        }
    }
    assert!(ports >= 4, "found {ports} published ports");
}

#[test]
fn worker_connects_with_its_own_login_after_migrate() {
    let compose = lines(&read("docker-compose.yml"));
    let owner = value(&service(&compose, "postgres"), "POSTGRES_USER").unwrap();
    let worker = service(&compose, "worker");
    let url = value(&worker, "IARI__DATABASE__URL").unwrap();
    let user = url_user(&url);
    assert!(
        !user.is_empty() && user != owner && user != "postgres",
        "the worker connects as {user:?}, the owner is {owner:?}"
    );
    let migrate = service(&compose, "migrate");
    assert_eq!(value(&migrate, "command").as_deref(), Some("[\"migrate\"]"));
    let migrate_url = value(&migrate, "IARI__DATABASE__URL").unwrap();
    assert_eq!(url_user(&migrate_url), owner, "migrate runs as the owner");
    let depends = block(&worker, 4, "depends_on");
    assert_eq!(
        value(&block(&depends, 6, "migrate"), "condition").as_deref(),
        Some("service_completed_successfully")
    );
    // The worker's login exists, is a member of iari_worker and nothing else, and the script
    // that makes it is mounted where PostgreSQL runs it.
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/postgres-init/10-iari-roles.sh");
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let init = read("deploy/postgres-init/10-iari-roles.sh");
    let create = format!("CREATE ROLE {user} LOGIN PASSWORD :'app_password' IN ROLE iari_worker;");
    assert!(init.contains(&create), "{create}");
    // So does the workstation's (`iari serve`), a member of iari_workstation only, after migrate.
    let web = service(&compose, "workstation");
    assert_eq!(value(&web, "command").as_deref(), Some("[\"serve\"]"));
    let web_url = value(&web, "IARI__DATABASE__URL").unwrap();
    let web_user = url_user(&web_url);
    assert!(web_user != owner && web_user != user, "{web_user:?}");
    let create =
        format!("CREATE ROLE {web_user} LOGIN PASSWORD :'web_password' IN ROLE iari_workstation;");
    assert!(init.contains(&create), "{create}");
    assert_eq!(
        value(
            &block(&block(&web, 4, "depends_on"), 6, "migrate"),
            "condition"
        )
        .as_deref(),
        Some("service_completed_successfully")
    );
    assert!(
        service(&compose, "postgres")
            .iter()
            .any(|(_, l)| l == "- ./deploy/postgres-init:/docker-entrypoint-initdb.d:ro")
    );
}

#[test]
fn base_images_are_pinned_by_digest() {
    let compose = lines(&read("docker-compose.yml"));
    let images: Vec<String> = compose
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("image:").map(|v| v.trim().to_string()))
        .collect();
    let dockerfile = read("Dockerfile");
    let froms: Vec<String> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    assert_eq!((images.len(), froms.len()), (2, 2));
    for image in images.iter().chain(&froms) {
        assert!(pinned(image), "{image} is not pinned by digest");
    }
}

#[test]
fn the_image_runs_unprivileged_and_owns_its_hl7_volume() {
    let dockerfile = read("Dockerfile");
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(
        runtime.contains("\nUSER iari\n"),
        "the runtime stage runs as iari"
    );
    assert!(runtime.contains("mkdir -p /app/out/hl7 && chown iari:iari /app/out /app/out/hl7"));
    let compose = lines(&read("docker-compose.yml"));
    let worker = service(&compose, "worker");
    assert_eq!(
        value(&worker, "IARI__LIS__DIR").as_deref(),
        Some("/app/out/hl7")
    );
    assert!(worker.iter().any(|(_, l)| l == "- hl7-out:/app/out/hl7"));
}

#[test]
fn the_build_context_leaves_out_build_output_and_secrets() {
    let ignore = read(".dockerignore");
    let entries: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in [
        "target",
        ".ort",
        ".venv*",
        "onnx/train/.data",
        ".git",
        ".env",
    ] {
        assert!(entries.contains(&needed), ".dockerignore lacks {needed}");
    }
}
