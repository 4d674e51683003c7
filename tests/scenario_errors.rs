//! One test per class of bad scenario input, asserting the message a user would see:
//! file, line, column, the offending key or value, and the closest valid spelling.

use std::path::Path;

use slicesim::scenario::{self, ScenarioError};

const GOOD: &str = r#"
[scenario]
name = "t"
duration = "10us"

[machine]
cpus = 1

[[task]]
name = "a"
program = "script"
steps = ["register", "burn 1us"]
"#;

fn err(src: &str) -> String {
    match scenario::parse(Path::new("s.toml"), src, &[]) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e) => e.to_string(),
    }
}

fn at(src: &str) -> (usize, usize, String) {
    match scenario::parse(Path::new("s.toml"), src, &[]) {
        Err(ScenarioError::Invalid {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_good_scenario_parses() {
    let l = scenario::parse(Path::new("s.toml"), GOOD, &[]).unwrap();
    assert_eq!(l.scenario.tasks.len(), 1);
}

#[test]
fn misspelt_key_names_file_line_column_and_the_closest_key() {
    let src = GOOD.replace("cpus = 1", "cpuz = 1");
    let (line, col, msg) = at(&src);
    assert_eq!((line, col), (7, 1), "{msg}");
    assert!(
        msg.contains("unknown field `cpuz`") && msg.contains("did you mean `cpus`?"),
        "{msg}"
    );
    assert!(err(&src).starts_with("s.toml:7:1: "));
}

#[test]
fn misspelt_program_names_the_closest_program() {
    let (line, _, msg) = at(&GOOD.replace("\"script\"", "\"scrpit\""));
    assert_eq!(line, 11);
    assert!(
        msg.contains("unknown variant `scrpit`") && msg.contains("did you mean `script`?"),
        "{msg}"
    );
}

#[test]
fn misspelt_value_of_an_enum_key_names_the_closest_value() {
    let src = GOOD.replace("cpus = 1", "cpus = 1\npreempt = \"lazzy\"");
    let (line, _, msg) = at(&src);
    assert_eq!(line, 8);
    assert!(msg.contains("did you mean `lazy`?"), "{msg}");
}

#[test]
fn bad_script_step_points_at_the_step() {
    let src = GOOD.replace("\"burn 1us\"", "\"burnn 1us\"");
    let (line, col, msg) = at(&src);
    assert_eq!(line, 12);
    assert_eq!(col, 22, "the column of the bad step string");
    assert!(
        msg.contains("step 2") && msg.contains("did you mean `burn`?"),
        "{msg}"
    );
}

#[test]
fn duration_without_unit_is_explained() {
    let (line, _, msg) = at(&GOOD.replace("\"10us\"", "\"10\""));
    assert_eq!(line, 4);
    assert!(msg.contains("needs a unit"), "{msg}");
}

#[test]
fn unknown_section_is_an_error() {
    let msg = err(&format!("{GOOD}\n[machnie]\nhz = 0\n"));
    assert!(
        msg.contains("unknown field `machnie`") && msg.contains("did you mean `machine`?"),
        "{msg}"
    );
}

#[test]
fn parameter_of_another_program_is_rejected() {
    let (line, _, msg) = at(&GOOD.replace("steps = ", "use_ext = true\nsteps = "));
    assert_eq!(line, 9, "the task's table");
    assert!(msg.contains("`use_ext` does not apply to program"), "{msg}");
}

#[test]
fn limits_give_clear_errors_not_oom() {
    let msg = err(&GOOD.replace("cpus = 1", "cpus = 100000"));
    assert!(
        msg.contains("cpus = 100000: must be between 1 and 1024"),
        "{msg}"
    );
    let msg = err(&GOOD.replace("name = \"a\"", "name = \"a\"\ncount = 1000000"));
    assert!(msg.contains("more than 100000 tasks"), "{msg}");
    let msg = err(&GOOD.replace("\"10us\"", "\"4000s\""));
    assert!(msg.contains("at most 1 hour"), "{msg}");
}

#[test]
fn slice_ext_nsec_out_of_range_is_erange_at_its_line() {
    let (line, _, msg) = at(&GOOD.replace("cpus = 1", "cpus = 1\nslice_ext_nsec = 1000"));
    assert_eq!(line, 8);
    assert!(msg.contains("ERANGE"), "{msg}");
}

#[test]
fn a_measured_delay_over_a_second_is_refused_at_its_line() {
    let src = GOOD.replace("cpus = 1", "cpus = 1\ntimer_jitters = [\"1us\", \"2s\"]");
    let (line, _, msg) = at(&src);
    assert_eq!(line, 8);
    assert!(
        msg.contains("timer_jitters: 2 delays, longest 2000000000 ns"),
        "{msg}"
    );
    let ok = GOOD.replace("cpus = 1", "cpus = 1\ntimer_jitters = [\"1us\", \"0ns\"]");
    assert!(scenario::parse(Path::new("s.toml"), &ok, &[]).is_ok());
}

#[test]
fn references_to_unknown_tasks_suggest_the_right_one() {
    let msg = err(&format!("{GOOD}\n[expect.task.b]\nexit = \"exited\"\n"));
    assert!(msg.contains("expectation for unknown task `b`"), "{msg}");
    let msg = err(&format!(
        "{GOOD}\n[[task]]\nname = \"c\"\nprogram = \"spinner\"\nthread_of = \"aa\"\n"
    ));
    assert!(
        msg.contains("thread_of `aa`") && msg.contains("did you mean `a`?"),
        "{msg}"
    );
}

#[test]
fn irq_on_a_missing_cpu_and_irq_without_timing_are_rejected() {
    let msg = err(&format!(
        "{GOOD}\n[[irq]]\ncpu = 3\nkind = \"device\"\nat = \"1us\"\n"
    ));
    assert!(msg.contains("irq on CPU 3 but the machine has 1"), "{msg}");
    let msg = err(&format!("{GOOD}\n[[irq]]\ncpu = 0\nkind = \"device\"\n"));
    assert!(
        msg.contains("exactly one of `at`, `every`, `rate_hz`"),
        "{msg}"
    );
}

#[test]
fn set_overrides_any_key_and_reports_bad_paths() {
    let l = scenario::parse(
        Path::new("s.toml"),
        GOOD,
        &[
            "machine.cpus=4".into(),
            "task.0.count=3".into(),
            "machine.preempt=lazy".into(),
        ],
    )
    .unwrap();
    assert_eq!(l.scenario.machine.cpus, Some(4));
    assert_eq!(l.scenario.tasks[0].get_ref().count, Some(3));
    let e = scenario::parse(Path::new("s.toml"), GOOD, &["task.7.count=3".into()]).unwrap_err();
    assert!(e.to_string().contains("index 7 out of range"), "{e}");
    let e = scenario::parse(Path::new("s.toml"), GOOD, &["machine.cpus=0".into()]).unwrap_err();
    assert!(e.to_string().contains("must be between 1 and 1024"), "{e}");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let e = scenario::load(Path::new("/nonexistent/x.toml"), &[]).unwrap_err();
    assert!(matches!(e, ScenarioError::Io { .. }));
    assert!(e.to_string().starts_with("/nonexistent/x.toml: "), "{e}");
}

#[test]
fn json_schema_describes_the_format() {
    let s: serde_json::Value = serde_json::from_str(&scenario::json_schema()).unwrap();
    let props = &s["properties"];
    for k in ["scenario", "machine", "task", "irq", "signal", "expect"] {
        assert!(props.get(k).is_some(), "schema lacks {k}");
    }
}

#[test]
fn thread_of_a_counted_task_names_one_copy() {
    let base = GOOD.replace("name = \"a\"", "name = \"a\"\ncount = 2");
    let msg = err(&format!(
        "{base}\n[[task]]\nname = \"c\"\nprogram = \"spinner\"\nthread_of = \"a\"\n"
    ));
    assert!(
        msg.contains("names 2 copies; pick one, e.g. `a.0`"),
        "{msg}"
    );
    let ok =
        format!("{base}\n[[task]]\nname = \"c\"\nprogram = \"spinner\"\nthread_of = \"a.1\"\n");
    assert!(scenario::parse(Path::new("s.toml"), &ok, &[]).is_ok());
    let msg = err(&format!(
        "{base}\n[[task]]\nname = \"c\"\nprogram = \"spinner\"\nthread_of = \"a.2\"\n"
    ));
    assert!(
        msg.contains("thread_of `a.2` is not an earlier task"),
        "{msg}"
    );
}

#[test]
fn parameter_errors_name_the_program_as_written_in_files() {
    let (_, _, msg) = at(&GOOD
        .replace("\"script\"", "\"spinlock\"")
        .replace("steps = [\"register\", \"burn 1us\"]", "enable = \"prctl\""));
    assert!(
        msg.contains("does not apply to program `spinlock`"),
        "{msg}"
    );
}

/// A value given by `--set` is not on any line of the file: the error names the override
/// instead of pointing at an unrelated line of the rewritten document.
#[test]
fn an_override_out_of_range_names_the_override() {
    let sets = ["machine.slice_ext_nsec=60000".to_string()];
    let e = match scenario::load(Path::new("scenarios/grant-revoke-race.toml"), &sets) {
        Ok(_) => panic!("60000 is out of range"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        e,
        "scenarios/grant-revoke-race.toml: --set machine.slice_ext_nsec=60000: machine: slice_ext_nsec = 60000: outside [5000, 50000] for revision 7.2 (ERANGE)"
    );
    // A file error found while overrides are applied still points into the file.
    let src = GOOD.replace("cpus = 1", "cpus = 0");
    let e = match scenario::parse(Path::new("s.toml"), &src, &["scenario.seed=3".to_string()]) {
        Err(ScenarioError::Invalid { line, message, .. }) => (line, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(e.0, 7, "{}", e.1);
}

/// Expectations written with the counters' old names get the new name in the failure.
#[test]
fn an_old_counter_name_gets_its_new_name() {
    let src = format!("{GOOD}\n[expect.task.a]\ncounters = {{ flags = 0 }}\n").replace(
        "\"register\", \"burn 1us\"",
        "\"register\", \"load flags\", \"burn 1us\"",
    );
    let l = scenario::parse(Path::new("s.toml"), &src, &[]).unwrap();
    let r = scenario::run(&l, None, None).unwrap();
    let fail = r
        .checks
        .iter()
        .find_map(|c| match &c.outcome {
            scenario::CheckOutcome::Fail(why) => Some(why.clone()),
            scenario::CheckOutcome::Pass => None,
        })
        .expect("the old name fails");
    assert!(fail.contains("no counter `flags`"), "{fail}");
    assert!(fail.contains("is the counter `read_flags` now"), "{fail}");
}
