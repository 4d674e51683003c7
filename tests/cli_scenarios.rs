//! `slicesim run`, `check`, `list` and `schema`, driven as a user or CI would, with the
//! documented exit codes: 0 ok, 1 expectation failed, 3 invalid scenario, 4 I/O error.

mod support;
use support::{scratch, slicesim, Scratch};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmpdir(tag: &str) -> Scratch {
    scratch(tag)
}

const PASSING: &str = r#"
[scenario]
name = "passing"
duration = "20us"
[machine]
cpus = 1
hz = 0
[[task]]
name = "t"
program = "script"
steps = ["register", "enable", "request", "burn 5us", "release"]
[[irq]]
cpu = 0
kind = "device_resched"
at = "3us"
[expect]
granted = 1
yielded = 1
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn run_prints_stats_tasks_and_expectations_and_exits_0() {
    let o = slicesim(&["run", "scenarios/grant-revoke-race.toml"]);
    let s = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{s}");
    assert!(s.contains("sgrant:                3"), "{s}");
    assert!(s.contains("13 of 13 expectations held"), "{s}");
}

#[test]
fn run_exit_codes_for_failed_expectation_invalid_file_and_missing_file() {
    let d = tmpdir("codes");
    let failing = write(
        &d,
        "failing.toml",
        &PASSING.replace("granted = 1", "granted = 2"),
    );
    let o = slicesim(&["run", failing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("FAIL  granted = 2 (got 1)"));
    let invalid = write(&d, "invalid.toml", &PASSING.replace("hz = 0", "hzz = 0"));
    let o = slicesim(&["run", invalid.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("invalid.toml:7:1: unknown field `hzz`") && err.contains("did you mean `hz`?"),
        "{err}"
    );
    let o = slicesim(&["run", "/nonexistent.toml"]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "an unreadable file is an I/O error"
    );
}

#[test]
fn run_set_and_seed_overrides_change_the_run() {
    let o = slicesim(&[
        "run",
        "scenarios/grant-revoke-race.toml",
        "--set",
        "machine.slice_ext_boot=false",
    ]);
    let s = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the expectations no longer hold with the key off"
    );
    assert!(s.contains("sgrant:                0"), "{s}");
    let o = slicesim(&["run", "scenarios/grant-revoke-race.toml", "--until", "10us"]);
    assert!(stdout(&o).contains("until 10000 ns"));
}

#[test]
fn check_runs_a_folder_with_results_independent_of_jobs_and_writes_junit() {
    let d = tmpdir("check");
    write(&d, "a.toml", PASSING);
    write(&d, "b.toml", &PASSING.replace("\"passing\"", "\"second\""));
    let junit = d.join("out.xml");
    let one = slicesim(&[
        "check",
        d.to_str().unwrap(),
        "--jobs",
        "1",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let two = slicesim(&["check", d.to_str().unwrap(), "--jobs", "2"]);
    assert_eq!(one.status.code(), Some(0), "{}", stdout(&one));
    assert_eq!(
        stdout(&one),
        stdout(&two),
        "same report for 1 and 2 workers"
    );
    assert!(stdout(&one).contains("2 passed, 0 failed"));
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(
        x.contains("<testsuite name=\"slicesim\" tests=\"2\" failures=\"0\">"),
        "{x}"
    );
    write(&d, "c.toml", &PASSING.replace("yielded = 1", "yielded = 5"));
    let o = slicesim(&["check", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    write(&d, "d.toml", "not toml at all [");
    let o = slicesim(&["check", d.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "an invalid scenario outranks a failed expectation"
    );
}

#[test]
fn check_bundled_scenarios_all_pass() {
    let o = slicesim(&["check", "scenarios"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn list_names_programs_and_bundled_scenarios() {
    let s = stdout(&slicesim(&["list"]));
    for p in [
        "selftest",
        "spinlock",
        "misbehave",
        "script",
        "grant-revoke-race.toml",
    ] {
        assert!(s.contains(p), "{p} missing in\n{s}");
    }
}

#[test]
fn schema_is_json() {
    let o = slicesim(&["schema"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["properties"]["machine"].is_object());
}

#[test]
fn run_writes_any_trace_format() {
    let d = tmpdir("fmt");
    let out = d.join("t.jsonl");
    let o = slicesim(&[
        "run",
        "scenarios/grant-revoke-race.toml",
        "--trace",
        out.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 50);
    assert!(
        text.contains("revoke"),
        "the race's revocations are in the trace"
    );
}

#[test]
fn selftest_scenarios_print_the_selftest_counters_in_its_format() {
    let d = tmpdir("st");
    let f = write(
        &d,
        "st.toml",
        r#"
[scenario]
name = "st"
duration = "30ms"
[[task]]
name = "main"
program = "selftest"
total = "20ms"
[[task]]
name = "noise"
program = "selftest_noise"
thread_of = "main"
cpus = [1]
[expect.task.main]
exit = "exited"
counters = { aborted = 0, yielded = ">=1" }
"#,
    );
    let o = slicesim(&["run", f.to_str().unwrap()]);
    let s = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{s}");
    assert!(s.contains("T0 main (selftest format):\n# Total "), "{s}");
    assert!(s.contains("# Raced "), "{s}");
}

#[test]
fn list_and_run_survive_a_closed_pipe() {
    for args in [
        &["list"][..],
        &["run", "scenarios/workloads/spinlock-ext.toml"][..],
    ] {
        closed_pipe(args);
    }
}

fn closed_pipe(args: &[&str]) {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_slicesim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?} {err}");
    assert!(!err.contains("panic"), "{err}");
}

#[test]
fn stats_prints_only_the_debugfs_counters() {
    let o = slicesim(&["stats", "scenarios/grant-revoke-race.toml"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "sgrant:                3\nsexpir:                0\nsrevok:                2\nsyield:                1\nsabort:                0\n"
    );
}

#[test]
fn bad_usage_exits_2_and_every_subcommand_has_examples() {
    let o = slicesim(&["run"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    for sub in ["run", "check", "list", "stats", "schema", "abi", "selftest"] {
        let o = slicesim(&[sub, "--help"]);
        let s = stdout(&o);
        assert!(s.contains("Example"), "`{sub} --help` has no example:\n{s}");
    }
}
