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
