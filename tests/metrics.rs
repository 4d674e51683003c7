//! Metrics from the event log: values computed by hand on small scenarios, agreement with
//! the ftrace export, determinism, and logging leaving the simulation unchanged.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use rseq_abi::programs::selftest::SelftestParams;
use rseq_abi::SharedWord;
use rseq_sim::{SimConfig, Simulation};
use slicesim::export::{render, Format, TraceInput};
use slicesim::metrics::{self, Metrics, MetricsError, MetricsFormat};
use slicesim::scenario;

fn run(path: &str, seed: Option<u64>) -> Simulation {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let l = scenario::load(&root.join(path), &[]).unwrap();
    let r = scenario::run(&l, seed, None).unwrap();
    assert!(r.passed(), "{path}: expectations hold");
    r.sim
}

#[test]
fn grant_revoke_race_by_hand() {
    let m = Metrics::compute(&run("scenarios/grant-revoke-race.toml", None)).unwrap();
    // From the log (ns):
    //   2000 user_store req=1; 3300 grant; 5304 slice_end yielded   -> 2004, request 1300
    //  15454 user_store req=1; 16300 grant; 17300 revoke R2          -> 1000, request 846
    //  29358 user_store req=1; 30300 grant; 33800 revoke R2          -> 3500, request 942
    let g = &m.grant_length;
    assert_eq!((g.count, g.min, g.max), (3, 1000, 3500));
    assert_eq!((g.p50, g.p90, g.p99, g.p99_9), (2004, 3500, 3500, 3500));
    assert_eq!(g.mean, (2004.0 + 1000.0 + 3500.0) / 3.0);
    let q = &m.request_to_grant;
    assert_eq!((q.count, q.min, q.p50, q.max), (3, 846, 942, 1300));
    assert_eq!(
        m.grant_ends,
        [("revoke R2".to_string(), 2), ("yield".to_string(), 1)].into()
    );
    assert_eq!(m.grants_wasted, 0);
    // One task, never woken.
    assert_eq!(m.wakeup_to_run.count, 0);
    // Timer: 3300 -> cancel 5304 (2 us); the two after R2 fire later (hit=0): EXPIRED.
    let h = &m.slice_hist["holder"];
    assert_eq!(h.us, [(2, 1)].into());
    assert_eq!(h.expired, 2);
    // T0 runs from the switch at 500 ns to the switch to idle at 35111 ns (section 3
    // clears `request` before its `load granted`: one more user access, 1 ns).
    assert_eq!(m.run_ns, 60_000);
    assert_eq!(m.cpus.len(), 1);
    assert_eq!(m.cpus[0].running_ns, 34_611);
    assert_eq!(m.cpus[0].busy_ns, 34_611);
    assert_eq!(m.cpus[0].utilisation, 34_611.0 / 60_000.0);
}

#[test]
fn grant_then_expiry_by_hand() {
    let m = Metrics::compute(&run("scenarios/edge/grant-then-expiry.toml", None)).unwrap();
    // 2000 request; 3300 grant (expires 8300); 8300 hrtimer_expire hit=1; 8600 revoke R2.
    let g = &m.grant_length;
    assert_eq!(
        (g.count, g.min, g.p50, g.p99, g.max),
        (1, 5000, 5000, 5000, 5000)
    );
    assert_eq!(m.grant_ends, [("expired".to_string(), 1)].into());
    assert_eq!(m.grants_wasted, 1);
    assert_eq!(m.request_to_grant.max, 1300);
    assert_eq!(m.slice_hist["holder"].us, BTreeMap::new());
    assert_eq!(m.slice_hist["holder"].expired, 1);
}

fn selftest(params: SelftestParams, run_ns: u64, log: bool) -> Simulation {
    let mut params = params;
    params.total_ns = run_ns;
    let cfg = SimConfig {
        log,
        log_user_accesses: log,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    rseq_sim::spawn_selftest(
        &mut sim,
        ("slice_test", "noise"),
        params,
        SharedWord(0),
        None,
    );
    sim.run_until(run_ns + 2_000_000);
    sim
}

#[test]
fn slice_hist_agrees_with_the_ftrace_export() {
    let sims = [
        run("scenarios/grant-revoke-race.toml", None),
        run("scenarios/edge/grant-then-expiry.toml", None),
        selftest(SelftestParams::N2_2_50, 10_000_000, true),
        selftest(SelftestParams::N50_2_50, 10_000_000, true),
    ];
    for sim in &sims {
        let text =
            String::from_utf8(render(Format::Ftrace, &TraceInput::from_simulation(sim)).unwrap())
                .unwrap();
        let from_script = support::slice_hist(&text);
        let m = Metrics::compute(sim).unwrap();
        let mut ours: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
        for (task, h) in &m.slice_hist {
            let b = ours.entry(task.chars().take(15).collect()).or_default();
            for (&us, &n) in &h.us {
                b.insert(us as i64, n);
            }
            if h.expired > 0 {
                b.insert(-1, h.expired);
            }
        }
        assert!(!ours.is_empty());
        assert_eq!(ours, from_script);
    }
}

#[test]
fn the_selftest_has_samples_everywhere() {
    let m = Metrics::compute(&selftest(SelftestParams::N2_2_50, 10_000_000, true)).unwrap();
    assert!(m.grant_length.count > 10);
    assert!(m.request_to_grant.count > 10);
    assert!(m.wakeup_to_run.count > 10);
    let ended: u64 = m.grant_ends.values().sum();
    assert_eq!(
        ended,
        m.grant_length.count + m.grant_ends.get("open").unwrap_or(&0)
    );
    assert!(m.grant_length.p50 <= m.grant_length.p99);
    assert!(m.grant_length.p99 <= m.grant_length.max);
    // Grants end at the latest at their expiry, 5 µs after they start.
    assert!(m.grant_length.max <= 5_000, "{:?}", m.grant_length);
    for c in &m.cpus {
        assert!((0.0..=1.0).contains(&c.utilisation));
    }
}

#[test]
fn same_seed_same_json_in_every_format() {
    for f in MetricsFormat::ALL {
        let a = metrics::render(
            f,
            &Metrics::compute(&run("scenarios/selftest/n2_2_50.toml", Some(7))).unwrap(),
        );
        let b = metrics::render(
            f,
            &Metrics::compute(&run("scenarios/selftest/n2_2_50.toml", Some(7))).unwrap(),
        );
        assert_eq!(a, b, "{f:?}");
    }
}

#[test]
fn logging_does_not_change_the_simulation() {
    let on = selftest(SelftestParams::N2_2_50, 20_000_000, true);
    let off = selftest(SelftestParams::N2_2_50, 20_000_000, false);
    assert!(!on.log().is_empty());
    assert!(off.log().is_empty());
    assert_eq!(on.stats(), off.stats());
    assert_eq!(on.now(), off.now());
    assert_eq!(on.events_processed(), off.events_processed());
    for (a, b) in on.tasks().iter().zip(off.tasks()) {
        assert_eq!(a.counters, b.counters, "task {}", a.name);
        assert_eq!(a.exit, b.exit, "task {}", a.name);
    }
    for (a, b) in on.cpus().iter().zip(off.cpus()) {
        assert_eq!(a.busy_ns, b.busy_ns);
        assert_eq!(a.stats, b.stats);
    }
    assert_eq!(Metrics::compute(&off), Err(MetricsError::NoLog));
}

#[test]
fn csv_has_one_value_per_row() {
    let m = Metrics::compute(&run("scenarios/grant-revoke-race.toml", None)).unwrap();
    let csv = metrics::render(MetricsFormat::Csv, &m);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("metric,stat,value"));
    for l in lines {
        assert_eq!(l.split(',').count(), 3, "{l}");
    }
    assert!(csv.contains("\ngrant_length_ns,p99,3500\n"));
    assert!(csv.contains("\nslice_hist.holder,EXPIRED,2\n"));
    let json: serde_json::Value =
        serde_json::from_str(&metrics::render(MetricsFormat::Json, &m)).unwrap();
    assert_eq!(json["grant_length"]["p50"], 2004);
    assert_eq!(json["grant_ends"]["yield"], 1);
}

#[test]
fn run_metrics_on_the_command_line() {
    let cli = |f: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_slicesim"))
            .args(["run", "scenarios/grant-revoke-race.toml", "--metrics", f])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let o = cli("json");
    assert_eq!(o.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["grant_length"]["max"], 3500);
    let o = cli("csv");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("metric,stat,value\n"));
    let o = cli("table");
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("13 of 13 expectations held"), "{s}");
    assert!(s.contains("grant ends: revoke R2=2 yield=1"), "{s}");
    assert!(s.contains("critical sections: none marked"), "{s}");
    // No grant ran out while granted, yet the kernel view's EXPIRED bucket has the two
    // stale timers: each line says what it counts, so they do not contradict each other.
    assert!(
        s.contains("grants wasted (ran out while still granted, s_expired): 0"),
        "{s}"
    );
    assert!(
        s.contains("EXPIRED counts every firing of the timer, also a stale one"),
        "{s}"
    );
    assert!(s.contains("      EXPIRED          2"), "{s}");
    assert_eq!(cli("xml").status.code(), Some(2));
    let stats = std::process::Command::new(env!("CARGO_BIN_EXE_slicesim"))
        .args([
            "stats",
            "scenarios/grant-revoke-race.toml",
            "--metrics",
            "json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(stats.status.code(), Some(2));
}

#[test]
fn lock_markers_by_hand() {
    let m = Metrics::compute(&run("scenarios/workloads/lock-markers-by-hand.toml", None)).unwrap();
    // From the log (ns), as the scenario's comment explains:
    //   section 1: lock_attempt 1600, lock_acquired 2601, grant 3300, lock_released 5901
    //   section 2: cs_enter 11054, cs_exit 13054, nothing in between
    //   section 3: attempt = acquired 18054; switch T0 -> T1 at 20300 (runnable);
    //              back at 26900 with 1054 ns of burn left: released 27954
    //   section 4: cs_enter 29954, sleeps (switch T0 -> idle, wakeup 34954), exit 35754
    //   section 5: cs_enter 35754, then the program ends: open
    let w = &m.lock_wait;
    assert_eq!((w.count, w.min, w.p50, w.max), (2, 0, 0, 1001));
    let h = &m.lock_hold;
    assert_eq!((h.count, h.min, h.p50, h.max), (2, 3300, 3300, 9900));
    assert_eq!(h.mean, (3300.0 + 9900.0) / 2.0);
    let cs = &m.critical_sections;
    assert_eq!(
        (
            cs.total,
            cs.preempted,
            cs.blocked,
            cs.grant_covered,
            cs.no_grant_needed,
            cs.open
        ),
        (4, 1, 1, 1, 1, 1)
    );
    assert_eq!(cs.preempted_pct, 25.0);
    assert_eq!(cs.blocked_pct, 25.0);
    assert_eq!(cs.grant_covered_pct, 25.0);
    let csv = metrics::render(MetricsFormat::Csv, &m);
    assert!(csv.contains("\nlock_hold_ns,max,9900\n"), "{csv}");
    assert!(csv.contains("\ncritical_sections,preempted,1\n"), "{csv}");
    assert!(
        csv.contains("\ncritical_sections,preempted_pct,25.00\n"),
        "{csv}"
    );
}

#[test]
fn the_extension_keeps_lock_holders_from_being_preempted() {
    // The same spin lock workload, same seed, with and without the extension.
    for seed in [7, 8] {
        let sim = run("scenarios/workloads/spinlock-ext.toml", Some(seed));
        let on = Metrics::compute(&sim).unwrap();
        // One wait and one hold per acquisition the threads counted themselves.
        let acquisitions: i64 = sim
            .tasks()
            .iter()
            .flat_map(|t| &t.counters)
            .filter(|(name, _)| *name == "acquisitions")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(on.lock_hold.count as i64, acquisitions, "seed {seed}");
        assert_eq!(on.lock_wait.count, on.lock_hold.count, "seed {seed}");
        let off =
            Metrics::compute(&run("scenarios/workloads/spinlock-noext.toml", Some(seed))).unwrap();
        let (a, b) = (&on.critical_sections, &off.critical_sections);
        assert!(
            b.preempted > a.preempted,
            "seed {seed}: preempted inside the lock: ext {a:?} vs no ext {b:?}"
        );
        assert!(a.grant_covered > 0 && b.grant_covered == 0, "seed {seed}");
        // Every acquisition is one hold and one critical section.
        assert_eq!(on.lock_hold.count, a.total + a.open);
        assert_eq!(off.lock_hold.count, b.total + b.open);
        // A preempted holder keeps the lock for a whole time slice or more.
        assert!(off.lock_hold.max > 100 * on.lock_hold.p50, "seed {seed}");
    }
}

#[test]
fn markers_change_neither_the_run_nor_the_metrics() {
    // Markers only reach the log: with the log off the spin lock run is the same run.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let l = scenario::load(&root.join("scenarios/workloads/spinlock-noext.toml"), &[]).unwrap();
    let on = scenario::build_with(&l, None, None, true).unwrap();
    let off = scenario::build_with(&l, None, None, false).unwrap();
    let (mut on, mut off) = (on.sim, off.sim);
    on.run_until(5_000_000);
    off.run_until(5_000_000);
    assert!(on
        .log()
        .iter()
        .any(|r| matches!(r.kind, rseq_sim::LogKind::Mark(_))));
    assert_eq!(on.stats(), off.stats());
    assert_eq!(on.events_processed(), off.events_processed());
    for (a, b) in on.tasks().iter().zip(off.tasks()) {
        assert_eq!(a.counters, b.counters, "task {}", a.name);
    }
    for (a, b) in on.cpus().iter().zip(off.cpus()) {
        assert_eq!(a.busy_ns, b.busy_ns);
    }
    // The log is in time order, markers included.
    assert!(on.log().windows(2).all(|w| w[0].time <= w[1].time));
    // Writing a trace does not change the metrics either.
    let cli = |trace: bool| {
        let mut args = vec![
            "run",
            "scenarios/workloads/spinlock-ext.toml",
            "--metrics",
            "json",
        ];
        let dir = support::scratch("marks");
        let path = dir.join("marks.jsonl");
        let path = path.to_str().unwrap().to_string();
        if trace {
            args.extend(["--trace", &path]);
        }
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_slicesim"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        // stdout is the JSON alone; `--trace`'s "trace: N events in FILE" goes to stderr.
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).contains("trace: "),
            trace,
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let (with, without) = (cli(true), cli(false));
    let json: serde_json::Value = serde_json::from_str(&with).unwrap();
    assert!(json["lock_hold"]["count"].as_u64().unwrap() > 250);
    assert_eq!(with, without);
}

#[test]
fn lock_markers_show_mutual_exclusion_across_cpus() {
    // Two CPUs run ahead of the engine's clock independently; in the log (time order) the
    // holds of the four threads never overlap, and every thread's markers come in
    // protocol order.
    let sim = run("scenarios/workloads/spinlock-ext.toml", Some(3));
    let mut holder: Option<u32> = None;
    let mut last: BTreeMap<u32, rseq_abi::Marker> = BTreeMap::new();
    let mut holds = 0;
    for r in sim.log() {
        let (rseq_sim::LogKind::Mark(m), Some(t)) = (&r.kind, r.task) else {
            continue;
        };
        use rseq_abi::Marker::*;
        let prev = last.insert(t, *m);
        let expected_prev = match m {
            LockAttempt(_) => vec![None, Some(LockReleased(SharedWord(0)))],
            LockAcquired(_) => vec![Some(LockAttempt(SharedWord(0)))],
            CsEnter => vec![Some(LockAcquired(SharedWord(0)))],
            CsExit => vec![Some(CsEnter)],
            LockReleased(_) => vec![Some(CsExit)],
        };
        assert!(
            expected_prev.contains(&prev),
            "T{t} {m} after {prev:?} at {}",
            r.time
        );
        match m {
            LockAcquired(_) => {
                assert_eq!(holder, None, "T{t} acquires at {} while held", r.time);
                holder = Some(t);
            }
            LockReleased(_) => {
                assert_eq!(holder, Some(t), "T{t} releases at {}", r.time);
                holder = None;
                holds += 1;
            }
            _ => {}
        }
    }
    assert!(holds > 250, "{holds}");
}
