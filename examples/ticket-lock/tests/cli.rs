//! The crate's own command-line tool: every slicesim subcommand, with `ticket_lock`
//! registered, on the crate's scenario files.

use std::process::{Command, Output};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ticket-lock-sim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the tool runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn its_scenario_runs_and_meets_its_expectations() {
    let out = tool(&["run", "scenarios/two-threads.toml"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("4 of 4 expectations held"), "{stdout}");
    let out = tool(&["check", "scenarios"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn its_scenario_explores_with_the_invariants() {
    let out = tool(&[
        "explore",
        "scenarios/two-threads.toml",
        "--exhaustive",
        "--jobs",
        "1",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("invariants: all held"), "{stdout}");
}

#[test]
fn a_misspelt_parameter_is_an_error_with_its_position_and_the_closest_key() {
    // Removed (with the file) when the test ends, even if it fails.
    let dir = tempfile::Builder::new()
        .prefix("ticket-lock-cli-")
        .tempdir()
        .unwrap();
    let bad = dir.path().join("bad.toml");
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/two-threads.toml"),
    )
    .unwrap()
    .replace(
        "params = { iterations = 200,",
        "params = { iteratons = 200,",
    );
    std::fs::write(&bad, &src).unwrap();
    let out = tool(&["run", bad.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("bad.toml:18:12: unknown field `iteratons`"),
        "{err}"
    );
    assert!(err.contains("did you mean `iterations`?"), "{err}");
    // An override of a parameter is checked the same way and named as given.
    let out = tool(&[
        "run",
        "scenarios/two-threads.toml",
        "--set",
        "task.1.params.iteratons=5",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("--set task.1.params.iteratons=5: unknown field `iteratons`"),
        "{err}"
    );
    let out = tool(&[
        "run",
        "scenarios/two-threads.toml",
        "--set",
        "task.0.params.iterations=5",
    ]);
    assert!(
        text(&out.stdout).contains("FAIL  task a acquired = 200 (got 5)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_schema_and_the_list_include_the_registered_program() {
    let out = tool(&["schema"]);
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rule = &schema["$defs"]["TaskDef"]["allOf"][0];
    assert_eq!(rule["if"]["properties"]["program"]["const"], "ticket_lock");
    assert!(rule["then"]["properties"]["params"]["properties"]["hold_ns"].is_object());
    let out = tool(&["list"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ticket_lock"), "{stdout}");
    assert!(stdout.contains("hold_ns"), "{stdout}");
}

#[test]
#[cfg(target_os = "linux")]
fn the_same_lock_runs_on_the_host_kernel_with_or_without_the_extension() {
    let out = Command::new(env!("CARGO_BIN_EXE_ticket-lock-host"))
        .arg("2000")
        .output()
        .expect("the host binary runs");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("counter = 4000 (acquisitions: 4000)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("extension in use") || stdout.contains("not offered by this kernel"),
        "{stdout}"
    );
}
