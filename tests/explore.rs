//! The explorer: the named races are found by exhaustive search with the verdicts the
//! catalogue (docs/races.md) states; broken programs give counterexamples that shrink to a
//! known minimal schedule and replay to the same failure; results never depend on the
//! number of workers.

mod support;
use support::{scratch, slicesim};

use std::path::Path;

use rseq_sim::Injection;
use slicesim::explore::{self, Report, Schedule, Setup, Stamped};
use slicesim::scenario::{self, Loaded, VerdictName};

fn load(name: &str) -> Loaded {
    scenario::load(Path::new(&format!("scenarios/races/{name}.toml")), &[]).unwrap()
}

fn exhaustive(l: &Loaded, jobs: usize) -> (Setup, Report) {
    let setup = Setup::new(l, &[], None).unwrap();
    let r = explore::exhaustive(l, &setup, l.scenario.scenario.seed, jobs).unwrap();
    (setup, r)
}

/// Explore `race` exhaustively and return the verdict of `condition` with its count;
/// every condition with an `expect` in the file must get it.
fn verdict(race: &str, condition: &str) -> (VerdictName, u64, Report) {
    let l = load(race);
    let (setup, r) = exhaustive(&l, 2);
    for (i, c) in setup.conditions.iter().enumerate() {
        if let Some(e) = c.expect {
            assert_eq!(r.verdict(i), e, "{race}: `{}`", c.name);
        }
    }
    let i = setup
        .conditions
        .iter()
        .position(|c| c.name == condition)
        .unwrap_or_else(|| panic!("{race} has no condition `{condition}`"));
    (r.verdict(i), r.held[i], r)
}

#[test]
fn race_yield_after_revoke_yield_returns_0_sometimes() {
    let (v, n, r) = verdict("yield-after-revoke", "yield returns 0");
    assert_eq!(v, VerdictName::Sometimes);
    assert!(n > 0 && n < r.runs);
    // Seven kinds, K = 2, one CPU: 1 + 23 + 233 schedules (a reschedule request on top of
    // a pending one is pruned as a plain interrupt).
    assert_eq!(r.by_depth, vec![1, 23, 233]);
    assert!(r.pruned > 0);
    assert_eq!(r.failing_runs, 0, "correct code breaks no invariant");
}

#[test]
fn race_late_grant_is_seen_and_yielded() {
    let (v, ..) = verdict("late-grant", "late grant, seen and yielded");
    assert_eq!(v, VerdictName::Sometimes);
}

#[test]
fn race_timer_expiry_before_yield_makes_it_return_0_never_1() {
    assert_eq!(
        verdict(
            "expiry-races-yield",
            "expiry before the yield: yield returns 0"
        )
        .0,
        VerdictName::Sometimes
    );
    assert_eq!(
        verdict("expiry-races-yield", "yield returns 1 after an expiry").0,
        VerdictName::Never
    );
}

#[test]
fn race_second_resched_revokes_and_never_grants_twice() {
    assert_eq!(
        verdict("second-resched", "revoked before the check").0,
        VerdictName::Sometimes
    );
    assert_eq!(
        verdict("second-resched", "granted twice").0,
        VerdictName::Never
    );
}

#[test]
fn race_remote_reschedule_is_swallowed_by_a_grant() {
    let (v, _, r) = verdict(
        "remote-resched-at-grant",
        "remote reschedule swallowed by a grant",
    );
    assert_eq!(v, VerdictName::Sometimes);
    assert_eq!(r.failing_runs, 0);
}

#[test]
fn race_v1_nonatomic_clear_breaks_views_agree_and_shrinks_to_one_interrupt() {
    let (v, _, r) = verdict(
        "v1-nonatomic-clear",
        "granted, never revoked, yet the user reads 0",
    );
    assert_eq!(v, VerdictName::Sometimes);
    assert_eq!(
        r.broken.keys().copied().collect::<Vec<_>>(),
        vec!["views-agree"]
    );
    let (first, violations) = r.first_failure.clone().unwrap();
    let l = load("v1-nonatomic-clear");
    let setup = Setup::new(&l, &[], None).unwrap();
    let shrunk = explore::shrink(&l, &setup, &first, &violations[0]).unwrap();
    // Minimal: one interrupt carrying a reschedule, landing inside the non-atomic clear,
    // between its load (point 3) and its store (point 4); the run ends right after the
    // load that sees the wiped word.
    assert_eq!(shrunk.schedule.inject, vec![(4, Injection::IrqResched)]);
    assert_eq!(shrunk.schedule.until, Some(4904));
    assert_eq!(shrunk.violations[0].property, "views-agree");
    // The schedule string replays to the same failure.
    let st = Stamped {
        stamp: explore::stamp(&l),
        schedule: shrunk.schedule.clone(),
    };
    let back = Stamped::parse(&st.to_string()).unwrap();
    let (o, _) = explore::run_schedule(&l, &setup, &back.schedule).unwrap();
    assert_eq!(o.violations, shrunk.violations);
}

#[test]
fn broken_never_yields_client_shrinks_to_one_interrupt() {
    let l = load("never-yields");
    let (_, r) = exhaustive(&l, 1);
    assert_eq!(
        r.broken.keys().copied().collect::<Vec<_>>(),
        vec!["condition"]
    );
    let (first, v) = r.first_failure.clone().unwrap();
    let setup = Setup::new(&l, &[], None).unwrap();
    let shrunk = explore::shrink(&l, &setup, &first, &v[0]).unwrap();
    assert_eq!(shrunk.schedule.inject.len(), 1);
    assert_eq!(shrunk.schedule.inject[0].1, Injection::IrqResched);
    // Granted at the interrupt's exit, expired slice_ext_nsec later: the run needs to last
    // just past the expiry.
    let until = shrunk.schedule.until.unwrap();
    assert!((8_000..10_000).contains(&until), "until {until}");
}

#[test]
fn results_do_not_depend_on_the_number_of_workers() {
    for race in ["yield-after-revoke", "v1-nonatomic-clear"] {
        let l = load(race);
        let (_, a) = exhaustive(&l, 1);
        let (_, b) = exhaustive(&l, 2);
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "{race}");
    }
    let l = load("yield-after-revoke");
    let setup = Setup::new(&l, &[], None).unwrap();
    let a = explore::random(&l, &setup, 5, 300, None, 1).unwrap();
    let b = explore::random(&l, &setup, 5, 300, None, 2).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let a = explore::random(&l, &setup, 5, 100, Some(2), 1).unwrap();
    let b = explore::random(&l, &setup, 5, 100, Some(2), 2).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[test]
fn random_and_pct_search_reach_the_yield_race() {
    let l = load("yield-after-revoke");
    let setup = Setup::new(&l, &[], None).unwrap();
    let i = setup
        .conditions
        .iter()
        .position(|c| c.name == "yield returns 0")
        .unwrap();
    let swarm = explore::random(&l, &setup, 1, 2000, None, 2).unwrap();
    assert!(
        swarm.held[i] > 0,
        "swarm never reached the race in 2000 runs"
    );
    let pct = explore::random(&l, &setup, 1, 2000, Some(2), 2).unwrap();
    assert!(
        pct.held[i] > 0,
        "PCT(2) never reached the race in 2000 runs"
    );
    // Random runs found by the search replay exactly: a failing random schedule of the
    // V1 client replays to its violation.
    let l = load("v1-nonatomic-clear");
    let setup = Setup::new(&l, &[], None).unwrap();
    let r = explore::random(&l, &setup, 3, 500, None, 2).unwrap();
    let (s, v) = r
        .first_failure
        .expect("the V1 race is easy to hit at random");
    assert!(s.seeded_ties);
    let (o, _) = explore::run_schedule(&l, &setup, &s).unwrap();
    assert_eq!(o.violations, v);
}

#[test]
fn cli_explore_saves_a_schedule_that_run_replays() {
    let dir = scratch("explore");
    let file = dir.join("v1.schedule");
    let scenario = "scenarios/races/v1-nonatomic-clear.toml";
    let out = slicesim(&[
        "explore",
        scenario,
        "--exhaustive",
        "--save",
        file.to_str().unwrap(),
        "--witness-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "a violation exits 1");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("views-agree"), "{text}");
    assert!(text.contains("shrunk in"), "{text}");
    assert!(
        text.contains("the explorer injects `irq+resched`"),
        "{text}"
    );
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("inject=4:irq+resched"), "{saved}");
    let svg = dir.join("v1.svg");
    let out = slicesim(&[
        "run",
        scenario,
        "--schedule",
        file.to_str().unwrap(),
        "--timeline-svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("VIOLATION views-agree at 4903 ns"), "{text}");
    // explain and stats replay it too.
    let out = slicesim(&["explain", scenario, "--schedule", file.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("the explorer injects `irq+resched`"),
        "{text}"
    );
    let out = slicesim(&["stats", scenario, "--schedule", file.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("sgrant:                1\n"), "{text}");
    // The figure of the replay marks the injected event, with its kind and in the legend.
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.contains("inject irq+resched at point 4"),
        "no injected marker"
    );
    assert!(
        svg.contains("explorer&apos;s injected event") || svg.contains("explorer's injected event")
    );
    // Output is the same with one and two workers (timings go to stderr).
    let one = slicesim(&[
        "explore",
        scenario,
        "--exhaustive",
        "--jobs",
        "1",
        "--no-shrink",
    ]);
    let two = slicesim(&[
        "explore",
        scenario,
        "--exhaustive",
        "--jobs",
        "2",
        "--no-shrink",
    ]);
    assert_eq!(one.stdout, two.stdout);
    // A schedule made for another scenario text is refused.
    let out = slicesim(&[
        "run",
        "scenarios/races/never-yields.toml",
        "--schedule",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("would not replay the same run"));
}

#[test]
fn cli_explore_correct_code_exits_0_and_prints_verdicts() {
    let wdir = scratch("witness");
    let out = slicesim(&[
        "explore",
        "scenarios/races/yield-after-revoke.toml",
        "--exhaustive",
        "--witness-dir",
        wdir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("257 schedules run (by number of injections: 1 + 23 + 233)"),
        "{text}"
    );
    assert!(text.contains("invariants: all held in 257 runs"), "{text}");
    // Each Sometimes verdict is shown by a shrunk run, saved and told.
    assert!(
        text.contains(
            "witness of `yield returns 0` (Sometimes): a run where it holds, 2 injected event(s)"
        ),
        "{text}"
    );
    assert!(text.contains("annotated timeline:"), "{text}");
    assert!(wdir
        .join("yield-after-revoke.yield-returns-0.schedule")
        .exists());
    assert!(
        text.lines()
            .any(|l| l.contains("yield returns 0") && l.contains("Sometimes")),
        "{text}"
    );
    // A misspelt --task is a usage error naming the closest task; no mode is one too.
    let out = slicesim(&[
        "explore",
        "scenarios/races/late-grant.toml",
        "--exhaustive",
        "--task",
        "holdr",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `holder`?"));
    let out = slicesim(&["explore", "scenarios/races/late-grant.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<--exhaustive|--random|--catalog>"));
    // A misspelt kind in [explore] names the key and the closest kind.
    let bad_dir = scratch("bad");
    let bad = bad_dir.join("bad.toml");
    let src = std::fs::read_to_string("scenarios/races/late-grant.toml")
        .unwrap()
        .replace("\"irq+resched\"]", "\"irq+reshed\"]");
    std::fs::write(&bad, src).unwrap();
    let out = slicesim(&["explore", bad.to_str().unwrap(), "--exhaustive"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown kind `irq+reshed`") && err.contains("irq+resched"),
        "{err}"
    );
}

#[test]
fn plain_schedule_replays_the_scenario_as_written() {
    // No injections, FIFO ties, the scenario's seed: the same run as `slicesim run`.
    let l = scenario::load(Path::new("scenarios/grant-revoke-race.toml"), &[]).unwrap();
    let setup = Setup::new(&l, &[], None).unwrap();
    let (o, r) = explore::run_schedule(&l, &setup, &Schedule::plain(0)).unwrap();
    let plain = scenario::run(&l, None, None).unwrap();
    assert_eq!(r.sim.log_hash(), plain.sim.log_hash());
    assert!(o.violations.is_empty(), "{:?}", o.violations);
}

#[test]
fn races_md_catalogue_is_what_the_explorer_prints() {
    let doc = std::fs::read_to_string("docs/races.md").unwrap();
    let begin = "<!-- BEGIN slicesim explore --catalog scenarios/races -->\n";
    let end = "<!-- END slicesim explore --catalog scenarios/races -->";
    let (_, rest) = doc.split_once(begin).expect("begin marker");
    let (section, _) = rest.split_once(end).expect("end marker");
    let out = slicesim(&["explore", "--catalog", "scenarios/races", "--jobs", "1"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        section,
        String::from_utf8(out.stdout).unwrap(),
        "docs/races.md is stale: regenerate its catalogue with `slicesim explore --catalog scenarios/races`"
    );
}

#[test]
fn a_correct_task_that_panics_is_a_violation_and_the_campaign_survives() {
    let src = r#"
[scenario]
name = "panics"
duration = "20us"
[machine]
cpus = 1
hz = 0
[[task]]
name = "holder"
program = "script"
steps = ["register", "enable", "burn 1us", "request", "burn 2us", "release", "panic"]
"#;
    let l = scenario::parse(Path::new("panics.toml"), src, &[]).unwrap();
    let setup = Setup::new(&l, &[], Some(1)).unwrap();
    let r = explore::exhaustive(&l, &setup, 0, 1).unwrap();
    assert_eq!(r.failing_runs, r.runs, "every run panics");
    assert!(r.runs > 1, "the search went on after the first panic");
    let (s, v) = r.first_failure.unwrap();
    assert!(
        s.inject.is_empty(),
        "the unperturbed run is the first failure"
    );
    assert_eq!(v[0].property, "correct-code-no-fault");
    assert!(
        v[0].detail.contains("script step `panic`"),
        "{}",
        v[0].detail
    );
}

#[test]
fn an_exhaustive_search_too_large_for_its_bound_says_so() {
    let l = load("yield-after-revoke");
    let setup = Setup {
        max_schedules: 100,
        ..Setup::new(&l, &[], None).unwrap()
    };
    let r = explore::exhaustive(&l, &setup, 0, 2).unwrap();
    assert!(r.truncated);
    assert_eq!(r.runs, 100);
    // The first 100 in run order, whatever the number of workers.
    assert_eq!(r.by_depth, vec![1, 23, 76]);
    let out = slicesim(&[
        "explore",
        "scenarios/races/yield-after-revoke.toml",
        "--exhaustive",
        "--max-schedules",
        "100",
        "--no-shrink",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("TRUNCATED at --max-schedules 100"), "{text}");
    assert!(text.contains("not an exhaustive search"), "{text}");
}

#[test]
fn a_stopped_campaign_reports_what_finished_as_interrupted() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let l = load("yield-after-revoke");
    let setup = Setup::new(&l, &[], None).unwrap();
    let (stop, done) = (AtomicBool::new(false), AtomicU64::new(0));
    // Stop after the 50th run, as Ctrl-C would.
    let progress = || {
        if done.fetch_add(1, Ordering::Relaxed) + 1 == 50 {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let ctl = explore::Control {
        stop: &stop,
        progress: &progress,
    };
    let r = explore::exhaustive_with(&l, &setup, 0, 1, ctl).unwrap();
    assert!(r.interrupted);
    assert_eq!(
        r.runs, 50,
        "one worker stops right after the run that set the flag"
    );
    assert_eq!(r.by_depth.iter().sum::<u64>(), 50);
    stop.store(false, Ordering::Relaxed);
    done.store(0, Ordering::Relaxed);
    let r = explore::random_with(&l, &setup, 1, 400, None, 1, ctl).unwrap();
    assert!(r.interrupted);
    assert_eq!(r.runs, 50);
    // Without a stop nothing is marked.
    let r = explore::exhaustive(&l, &setup, 0, 2).unwrap();
    assert!(!r.interrupted && r.runs == 257);
}

#[test]
fn every_verdict_has_a_witness_that_replays() {
    let l = load("yield-after-revoke");
    let (setup, r) = exhaustive(&l, 2);
    for (i, c) in setup.conditions.iter().enumerate() {
        assert_eq!(r.verdict(i), VerdictName::Sometimes, "{}", c.name);
        let (_, s) = r.witnesses[i].held.clone().expect("a run where it held");
        // Shrunk, it still holds, and replays to the same.
        let note = explore::Violation {
            property: "condition",
            at: 0,
            detail: String::new(),
        };
        let sh = explore::shrink_to(&l, &setup, &s, explore::Goal::Holds(i), &note).unwrap();
        let (o, _) = explore::run_schedule(&l, &setup, &sh.schedule).unwrap();
        assert!(o.held[i], "{}: shrunk witness no longer holds", c.name);
        assert!(sh.schedule.inject.len() <= s.inject.len());
        // Where it sometimes fails, there is a run showing that too.
        let (_, f, kind) = r.witnesses[i]
            .failed
            .clone()
            .expect("a run where it failed");
        let (o, _) = explore::run_schedule(&l, &setup, &f).unwrap();
        assert_eq!(o.failures[i].as_deref(), Some(kind.as_str()));
    }
    // The same witnesses whatever the number of workers.
    let (_, one) = exhaustive(&l, 1);
    for (a, b) in one.witnesses.iter().zip(&r.witnesses) {
        assert_eq!(a.held.as_ref().map(|h| &h.1), b.held.as_ref().map(|h| &h.1));
        assert_eq!(
            a.failed.as_ref().map(|f| &f.1),
            b.failed.as_ref().map(|f| &f.1)
        );
    }
}

/// An `always` condition on a script counter: runs cut short have no counters at all, so
/// a shrinker that only asked "does it still fail?" ended at a 1 ns run failing with
/// "no counter `raced`". The shrunk run must fail the way the original did.
#[test]
fn shrinking_keeps_the_failures_kind() {
    let dir = scratch("kind");
    let text = std::fs::read_to_string("scenarios/races/yield-after-revoke.toml").unwrap();
    let text = format!(
        "{text}\n[[explore.condition]]\nname = \"never raced\"\nexpect = \"always\"\n[explore.condition.holds.task.holder]\ncounters = {{ raced = 0 }}\n\n[[explore.condition]]\nname = \"raced\"\nexpect = \"never\"\n[explore.condition.holds.task.holder]\ncounters = {{ raced = 1 }}\n"
    );
    assert!(text.contains("never raced"));
    let file = dir.join("always-raced.toml");
    std::fs::write(&file, text).unwrap();
    let l = scenario::load(&file, &[]).unwrap();
    let (setup, r) = exhaustive(&l, 2);
    let (s, v) = r.first_failure.clone().expect("raced happens in some run");
    assert!(v[0].detail.contains("`never raced` does not hold"), "{v:?}");
    let sh = explore::shrink(&l, &setup, &s, &v[0]).unwrap();
    let detail = &sh
        .violations
        .iter()
        .find(|v| v.property == "condition")
        .unwrap()
        .detail;
    assert!(detail.contains("raced = 0: got 1"), "{detail}");
    assert!(!detail.contains("no counter"), "{detail}");
    // And the CLI prints and saves the failing witness of the mismatched verdict.
    let out = slicesim(&[
        "explore",
        file.to_str().unwrap(),
        "--exhaustive",
        "--witness-dir",
        dir.to_str().unwrap(),
        "--save",
        dir.join("c.schedule").to_str().unwrap(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("witness of `never raced` (Sometimes): a run where it does not hold"),
        "{text}"
    );
    assert!(
        text.contains("witness of `yield returns 0` (Sometimes): a run where it holds"),
        "{text}"
    );
    // `expect = "never"` that happens: not only MISMATCH, but the run where it held, told.
    assert!(text.contains("expected Never: MISMATCH"), "{text}");
    let w = text
        .split("witness of `raced` (Sometimes): a run where it holds")
        .nth(1)
        .expect("a witness for the mismatched never");
    assert!(w.contains("annotated timeline:"), "{w}");
    assert!(w.contains("rseq_slice_yield() returns 0"), "{w}");
    let saved =
        std::fs::read_to_string(dir.join("yield-after-revoke.never-raced.schedule")).unwrap();
    assert!(saved.contains("slicesim-schedule/1"), "{saved}");
}

/// A schedule saved when 7.0 was the default names revision `merged`; the same scenario
/// file now runs 7.2, so replaying it would be another run: refused, saying how to pin 7.0.
#[test]
fn a_schedule_made_for_another_revision_is_refused_with_the_fix() {
    let l = load("late-grant");
    let mine = explore::stamp(&l);
    assert_eq!(mine.revision, "7.2", "the default revision");
    let mut old = mine.clone();
    old.revision = "merged".into();
    let e = explore::check_stamp(&l, &old).unwrap_err();
    assert!(e.contains("revision merged"), "{e}");
    assert!(e.contains("revision = \"7.0\""), "{e}");
    // The old name of the same revision is the same revision.
    let mut alias = mine.clone();
    alias.revision = "post-merge".into();
    assert_eq!(explore::check_stamp(&l, &alias), Ok(()));
}
