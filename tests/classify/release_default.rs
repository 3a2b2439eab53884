//! The shipped default release policy reproduces today's fixed rule on the bundled samples:
//! each sample is classified by the real engine (as `iari eval` does), and the policy's release
//! is compared with the engine's `needs_review` (the fixed rule of `classify::vote` under the
//! default config), for the image as it is and with each flag plate QC and reagent expiry add.

use crate::common::{engine, repo, settings};
use iari::classify::ImageLimits;
use iari::classify::files::{RunOptions, classify_files, collect_images};
use iari::domain::Flag;
use iari::release::{Facts, Policy, Release, decide};

#[test]
fn the_default_policy_releases_every_sample_as_the_fixed_rule_does() {
    let s = settings(&[]);
    assert_eq!(s.decision.review_min_agreement, 1.0, "the default config");
    let files = collect_images(&[repo().join("onnx/samples")]).unwrap();
    assert_eq!(files.len(), 100);
    let opts = RunOptions {
        batch_size: 8,
        decode_threads: 1,
        limits: ImageLimits::from(&s.images),
    };
    let results = classify_files(engine(), &files, &opts, &|_| {});
    let policy = Policy::shipped_default();
    let (mut finals, mut reviews) = (0, 0);
    for r in &results {
        let c = r
            .outcome
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", r.path.display()));
        let v = decide(&policy, false, &Facts::of_classification(c));
        assert_eq!(
            v.release.needs_review(),
            c.outcome.needs_review,
            "{}: flags {:?} agreement {}",
            r.path.display(),
            c.outcome.flags,
            c.outcome.agreement
        );
        assert_ne!(v.release, Release::Withheld);
        if c.outcome.needs_review {
            reviews += 1;
        } else {
            finals += 1;
        }
        for flag in [Flag::ReagentExpired, Flag::QcMissing, Flag::QcFailed] {
            let mut f = Facts::of_classification(c);
            f.flags.insert(flag);
            let v = decide(&policy, false, &f);
            assert!(v.release.needs_review(), "{}: {flag}", r.path.display());
            assert_eq!(v.release == Release::Withheld, flag == Flag::QcFailed);
        }
    }
    // Both outcomes occur on the samples, so the comparison says something about each.
    assert!(
        finals > 0 && reviews > 0,
        "final {finals}, review {reviews}"
    );
}

/// `iari calibrate` on the bundled samples (synthetic): the file it writes is a valid policy
/// carrying the data set's hash, and re-applied to the same classifications its serious errors
/// released final have an upper 95 % bound under the rate asked for; at a rate the 100 samples
/// cannot support, it writes a policy that sends everything to review.
#[test]
fn calibrate_writes_a_policy_that_meets_its_rate_on_its_data() {
    use iari::release::simulate::{Case, Tally};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cal.toml");
    let run = |rate: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_iari"))
            .args([
                "calibrate",
                "onnx/samples",
                "--max-serious-release",
                rate,
                "--out",
            ])
            .arg(&out)
            .current_dir(repo())
            .env("IARI__INFERENCE__DEVICE", "cpu")
            .env("IARI__LOG__LEVEL", "warn")
            .output()
            .unwrap()
    };
    let o = run("0.1");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("# labelled images: neg 20, 1+ 20, 2+ 20, 3+ 20, 4+ 20"),
        "{text}"
    );
    assert!(text.contains("# data set sha256"), "{text}");
    let p = Policy::parse(text.as_bytes()).unwrap();
    let s = settings(&[]);
    let files = collect_images(&[repo().join("onnx/samples")]).unwrap();
    let opts = RunOptions {
        batch_size: 8,
        decode_threads: 1,
        limits: ImageLimits::from(&s.images),
    };
    let cases: Vec<Case> = classify_files(engine(), &files, &opts, &|_| {})
        .iter()
        .map(|r| Case {
            facts: Facts::of_classification(r.outcome.as_ref().unwrap()),
            truth: iari::classify::files::label_of(&r.path),
        })
        .collect();
    let t = Tally::of(&p, &cases);
    assert!(t.shares().serious_final.high < 0.1, "{t:?}");
    assert!(
        t.released_final > 0,
        "a rate of 10 % lets something through on 100 images"
    );
    assert_eq!(run("0.001").status.code(), Some(0));
    let strict = Policy::load(&out).unwrap();
    assert_eq!(Tally::of(&strict, &cases).released_final, 0);
}
