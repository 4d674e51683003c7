//! `slicesim sweep` and `merge`: a sweep split into 3 shards and merged equals the
//! unsharded sweep byte for byte, and rows do not depend on the number of workers.

mod support;
use support::{scratch, slicesim, Scratch};

fn tmp(tag: &str) -> Scratch {
    scratch(&format!("sweep-{tag}"))
}

const SCEN: &str = "scenarios/workloads/spinlock-ext.toml";
const VARY: &str = "machine.slice_ext_nsec=5000,20000";

fn files(prefix: &std::path::Path) -> Vec<Vec<u8>> {
    ["runs.csv", "summary.csv", "json"]
        .iter()
        .map(|e| std::fs::read(format!("{}.{e}", prefix.display())).unwrap())
        .collect()
}

#[test]
fn three_shards_merged_equal_the_whole_sweep_byte_for_byte() {
    let d = tmp("shards");
    let whole = d.join("whole");
    let o = slicesim(&[
        "sweep",
        SCEN,
        "--vary",
        VARY,
        "--seeds",
        "3",
        "--out",
        whole.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut parts = Vec::new();
    for k in 0..3 {
        let p = d.join(format!("part{k}"));
        let shard = format!("{k}/3");
        let o = slicesim(&[
            "sweep",
            SCEN,
            "--vary",
            VARY,
            "--seeds",
            "3",
            "--shard",
            &shard,
            "--out",
            p.to_str().unwrap(),
        ]);
        assert!(o.status.success());
        parts.push(format!("{}.json", p.display()));
    }
    let merged = d.join("merged");
    let mut args = vec!["merge"];
    args.extend(parts.iter().map(String::as_str));
    args.extend(["--out", merged.to_str().unwrap()]);
    assert!(slicesim(&args).status.success());
    assert_eq!(files(&whole), files(&merged));
    let runs = String::from_utf8(files(&whole)[0].clone()).unwrap();
    assert_eq!(
        runs.lines().count(),
        1 + 6,
        "header + 2 values x 3 seeds:\n{runs}"
    );
    let summary = String::from_utf8(files(&whole)[1].clone()).unwrap();
    assert!(
        summary.starts_with("machine.slice_ext_nsec,metric,n,mean,stddev,ci95\n5000,granted,3,"),
        "{summary}"
    );
}

#[test]
fn rows_do_not_depend_on_the_number_of_workers() {
    let d = tmp("jobs");
    let (a, b) = (d.join("a"), d.join("b"));
    for (p, j) in [(&a, "1"), (&b, "2")] {
        let o = slicesim(&[
            "sweep",
            SCEN,
            "--vary",
            VARY,
            "--seeds",
            "2",
            "--jobs",
            j,
            "--out",
            p.to_str().unwrap(),
        ]);
        assert!(o.status.success());
    }
    assert_eq!(files(&a), files(&b));
}

#[test]
fn a_bad_value_fails_before_any_run_with_the_scenario_error() {
    let o = slicesim(&[
        "sweep",
        SCEN,
        "--vary",
        "machine.preempt=full,lazzy",
        "--seeds",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean `lazy`?"));
}

#[test]
fn compare_shows_the_extension_cutting_grants_to_zero() {
    let o = slicesim(&[
        "compare",
        SCEN,
        "--b",
        "machine.slice_ext_boot=false",
        "--seeds",
        "3",
    ]);
    assert!(o.status.success());
    let s = String::from_utf8(o.stdout).unwrap();
    let granted = s.lines().find(|l| l.starts_with("granted")).unwrap();
    assert!(
        granted.contains("-100.0") && granted.ends_with("yes"),
        "{s}"
    );
    // The log metrics are compared too: without the extension more lock holders are
    // preempted inside their critical section.
    let preempted: Vec<f64> = s
        .lines()
        .find(|l| l.starts_with("cs_preempted "))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(preempted[1] > preempted[0], "{s}");
}

#[test]
fn sweep_rows_carry_the_run_metrics() {
    let d = tmp("metrics");
    let p = d.join("one");
    let o = slicesim(&[
        "sweep",
        SCEN,
        "--vary",
        "machine.slice_ext_nsec=20000",
        "--seeds",
        "2",
        "--out",
        p.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let runs = String::from_utf8(files(&p)[0].clone()).unwrap();
    let mut lines = runs.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.nth(1).unwrap().split(',').collect(); // run 1 = seed 1
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    // The same run on its own, with `run --metrics json`.
    let o = slicesim(&[
        "run",
        SCEN,
        "--set",
        "machine.slice_ext_nsec=20000",
        "--set",
        "scenario.seed=1",
        "--metrics",
        "json",
    ]);
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for (column, json) in [
        ("grant_length_ns_p50", &m["grant_length"]["p50"]),
        ("grant_length_ns_p99", &m["grant_length"]["p99"]),
        ("request_to_grant_ns_p99", &m["request_to_grant"]["p99"]),
        ("wakeup_to_run_ns_p99", &m["wakeup_to_run"]["p99"]),
        ("lock_wait_ns_p50", &m["lock_wait"]["p50"]),
        ("lock_wait_ns_p99", &m["lock_wait"]["p99"]),
        ("lock_hold_ns_p50", &m["lock_hold"]["p50"]),
        ("lock_hold_ns_p99", &m["lock_hold"]["p99"]),
        ("cs_total", &m["critical_sections"]["total"]),
        ("cs_preempted", &m["critical_sections"]["preempted"]),
        ("cs_grant_covered", &m["critical_sections"]["grant_covered"]),
        (
            "cs_no_grant_needed",
            &m["critical_sections"]["no_grant_needed"],
        ),
        ("grants_wasted", &m["grants_wasted"]),
    ] {
        assert_eq!(col(column), json.to_string(), "{column}\n{runs}");
    }
    assert!(col("lock_hold_ns_p50").parse::<u64>().unwrap() >= 2000);
}
