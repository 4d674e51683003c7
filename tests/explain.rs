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
    assert!(s.contains("an extension is never given twice, so it revokes the grant"));
    assert!(s.contains("rseq_slice_yield() returns 1: the CPU was given back within the extension"));
    // The key moment, told: the thread reads granted = 1, then the grant is revoked.
    assert!(s.contains("the thread reads granted = 1"), "{s}");
    assert!(s.contains(
        "rseq_slice_yield() returns 0: the thread read granted = 1 at 32.660 us, but R2 ended the grant at 33.800 us before the yield entered: the grant/revoke race (§8.3"
    ), "{s}");
    // One task: nothing else can run, so R2 does not "schedule" anyone.
    assert!(!s.contains("revokes the grant and schedules"), "{s}");
    assert!(
        s.contains("and calls schedule(), but nothing else is runnable, so the task keeps the CPU")
    );
    // An interrupt that will revoke is never announced as one that "may grant".
    let lines: Vec<&str> = s.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("R2, §3.2 step 4, s_revoked") {
            let irq = lines[..i]
                .iter()
                .rev()
                .find(|l| l.contains("arrives while"))
                .unwrap();
            assert!(!irq.contains("may grant"), "{irq}");
            assert!(irq.contains("would end the grant"), "{irq}");
        }
    }
    assert!(s.contains("In all: 3 granted, 0 expired, 2 revoked, 1 yielded, 0 aborted"));
    insta::assert_snapshot!("grant_revoke_race", s);
}

#[test]
fn explains_a_grant_running_out() {
    let s = story("scenarios/edge/grant-then-expiry.toml");
    assert!(s.contains("the enforcement timer fires while its task is still granted (§4.3)"));
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

fn line_with<'a>(s: &'a str, what: &str) -> &'a str {
    s.lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line with {what:?} in\n{s}"))
}

#[test]
fn every_refused_grant_says_why() {
    // Kernel entered by a syscall: no user_irq.
    let s = story("scenarios/tutorial/why-no-grant.toml");
    assert!(s.contains("NEED_RESCHED_LAZY is pending; no grant: the kernel was entered by a syscall, not by an interrupt from user mode, so user_irq is clear (§3.3, §3.2 step 2)"), "{s}");
    // No registration at all.
    assert!(
        s.contains("no grant: the task has no rseq registration (§2.3, §3.2 step 2)"),
        "{s}"
    );
    // Registered, never enabled.
    let s = story("scenarios/edge/r3-wipes-unenabled-request.toml");
    assert!(s.contains("no grant: the task never enabled the extension (no prctl(PR_RSEQ_SLICE_EXTENSION_SET), no RSEQ_FLAG_SLICE_EXT_DEFAULT_ON registration"), "{s}");
    // PREEMPT_RT's rule, not "other exit work".
    let s = story("scenarios/edge/rt-lazy-only.toml");
    assert!(
        s.contains("no grant: on PREEMPT_RT only lazy reschedules may be extended"),
        "{s}"
    );
    assert!(!s.contains("but so is other exit work"), "{s}");
    // Other exit work: a pending signal.
    let s = story("scenarios/edge/signal-denies-grant.toml");
    assert!(
        s.contains("NEED_RESCHED is pending, but so is other exit work (a signal"),
        "{s}"
    );
    // An enabled task without a request.
    let s = story("scenarios/edge/lazy-preemption.toml");
    assert!(s.contains("is pending but request=0: nothing to extend, the kernel schedules normally (§3.2 step 5)"), "{s}");
    // The boot switch.
    let s = story("scenarios/edge/boot-switch-off.toml");
    assert!(
        s.contains("no grant: the extension is switched off at boot"),
        "{s}"
    );
}

#[test]
fn the_lazy_flag_is_named_as_such() {
    let s = story("scenarios/edge/lazy-preemption.toml");
    assert!(
        s.contains("the kernel finds NEED_RESCHED_LAZY, request=1 and no other work, so it grants"),
        "{s}"
    );
}

#[test]
fn a_revoke_that_schedules_names_who_runs() {
    let s = story("scenarios/edge/second-resched-revokes.toml");
    let l = line_with(&s, "R2, §3.2 step 4, s_revoked");
    assert!(l.ends_with("and schedules: T1 other runs next"), "{l}");
}

#[test]
fn syscall_returns_are_told_at_the_return() {
    // getpid() enters at 7.301 us; a lazy reschedule interrupt hits it at 9.000 us inside
    // the kernel; it returns at 9.301 us, and is told there, after the interrupt.
    let s = story("scenarios/tutorial/why-no-grant.toml");
    let ret = line_with(&s, "getpid() returns");
    assert!(ret.trim_start().starts_with("9.301 us"), "{ret}");
    let pos = |w: &str| s.find(w).unwrap();
    assert!(
        pos("getpid() returns") > pos("a device interrupt asking for a lazy reschedule arrives")
    );
}

#[test]
fn v1_words_are_told_as_bits() {
    let s = story("scenarios/races/v1-nonatomic-clear.toml");
    assert!(!s.contains("request=1 granted="), "{s}");
    let l = line_with(&s, "stores request = 1");
    assert!(l.contains("(§8.1)"), "{l}");
}

#[test]
fn brief_keeps_the_old_density() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_slicesim"))
        .args(["explain", "--brief", "scenarios/grant-revoke-race.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let brief = String::from_utf8(o.stdout).unwrap();
    assert!(brief.contains("so it grants an extension instead of scheduling"));
    assert!(!brief.contains("loads granted"), "{brief}");
    let full = story("scenarios/grant-revoke-race.toml");
    assert!(brief.lines().count() < full.lines().count());
}

/// Issue 12 item 14: a store is told as what it wrote, where: a reserved byte or `granted`
/// is never "clears request on leaving its critical section".
#[test]
fn issue12_item14_stores_are_told_by_what_they_wrote() {
    let s = story("scenarios/edge/misbehave-reserved-bytes.toml");
    let l = line_with(
        &s,
        "stores 0xa5 into a reserved byte of the word (offset 30)",
    );
    assert!(l.contains("__reserved must stay 0"), "{l}");
    assert!(!l.contains("leaving its critical section"), "{l}");
    line_with(
        &s,
        "stores 0x5a into a reserved byte of the word (offset 31)",
    );
    line_with(&s, "stores request = 0 on leaving its critical section");
    let s = story("scenarios/edge/misbehave-writes-granted.toml");
    let l = line_with(&s, "stores granted = 1");
    assert!(l.contains("only the kernel may write granted"), "{l}");
    let l = line_with(&s, "stores granted = 0");
    assert!(!l.contains("leaving its critical section"), "{l}");
    for l in s
        .lines()
        .filter(|l| l.contains("leaving its critical section"))
    {
        assert!(l.contains("stores request = 0"), "{l}");
    }
}

#[test]
fn the_hrtick_is_named_as_the_reason_a_request_ends() {
    // Two spinners on one CPU: the second is queued beside the first, whose request the
    // hrtick ends at its virtual deadline (EEVDF, sched_feat(HRTICK) in Linux 7.2).
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("hrtick.toml");
    std::fs::write(
        &f,
        "[scenario]\nname = \"hrtick\"\nduration = \"1ms\"\n[machine]\ncpus = 1\n\
         [[task]]\nname = \"a\"\nprogram = \"spinner\"\n\
         [[task]]\nname = \"b\"\nprogram = \"spinner\"\nstart = \"100us\"\n",
    )
    .unwrap();
    let s = story(f.to_str().unwrap());
    assert!(
        s.contains("the scheduler's hrtick: the running task reached its virtual deadline"),
        "{s}"
    );
    let off = scenario::load(&f, &["machine.hrtick=false".into()]).unwrap();
    let s = explain(&scenario::run(&off, None, None).unwrap().sim);
    assert!(!s.contains("hrtick"), "{s}");
}
