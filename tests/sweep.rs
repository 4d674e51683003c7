//! `slicesim sweep` and `merge`: a sweep split into 3 shards and merged equals the
//! unsharded sweep byte for byte, and rows do not depend on the number of workers.

use std::path::PathBuf;
use std::process::Command;

fn slicesim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_slicesim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run slicesim")
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("slicesim-sweep-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
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
    std::fs::remove_dir_all(&d).unwrap();
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
    std::fs::remove_dir_all(&d).unwrap();
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
}
