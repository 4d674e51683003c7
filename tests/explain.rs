//! `slicesim explain` on the race scenarios: snapshot-tested narration (reviewed by hand),
//! plus the sentences a teacher relies on.

use std::path::Path;

use slicesim::{explain::explain, scenario};

fn story(file: &str) -> String {
    let l = scenario::load(Path::new(file), &[]).unwrap();
    let r = scenario::run(&l, None, None).unwrap();
    explain(&r.sim)
}

#[test]
fn explains_the_grant_revoke_race() {
    let s = story("scenarios/grant-revoke-race.toml");
    // The three acts of the race, each with the rule that decided it.
    assert!(s.contains("so it grants an extension instead of scheduling"));
    assert!(s.contains("an extension is never given twice, so it revokes the grant and schedules"));
    assert!(s.contains("rseq_slice_yield() returns 1: the CPU was given back within the extension"));
    assert!(s.contains("the unavoidable race of spec 8.3"));
    assert!(s.contains("In all: 3 granted, 0 expired, 2 revoked, 1 yielded, 0 aborted"));
    insta::assert_snapshot!("grant_revoke_race", s);
}

#[test]
fn explains_a_grant_running_out() {
    let s = story("scenarios/edge/grant-then-expiry.toml");
    assert!(s.contains("the enforcement timer fires while its task is still granted (spec 4.3)"));
    assert!(s.contains("the extension ran out: the enforcement timer forces the reschedule"));
    insta::assert_snapshot!("grant_then_expiry", s);
}

#[test]
fn explain_command_prints_the_story() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_slicesim"))
        .args(["explain", "scenarios/grant-revoke-race.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let s = String::from_utf8(o.stdout).unwrap();
    assert!(s.starts_with("grant-revoke-race: "), "{s}");
    assert!(s.contains("T0 is holder."));
}
