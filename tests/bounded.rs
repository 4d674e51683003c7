//! Bounded by construction (issue 15): every accepted input ends in bounded time and
//! memory, each case of the issue as a user would meet it. No test measures wall time:
//! memory is shown by the number of log records held at once, budgets by their messages.

mod support;
use std::path::{Path, PathBuf};

use slicesim::budget::{BudgetArgs, CHUNK_EVENTS};
use slicesim::scenario::{self, RunOptions};
use support::{scratch, slicesim, Scratch};

/// A fresh folder for one test's files, removed when the test ends.
fn dir(name: &str) -> Scratch {
    scratch(&format!("bounded-{name}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const SPINNERS: &str = r#"
[scenario]
name = "spinners"
duration = "DURATION"
[machine]
cpus = CPUS
hz = 10000
[[task]]
name = "spin"
program = "spinner"
count = CPUS
"#;

fn spinners(cpus: u32, duration: &str) -> String {
    SPINNERS
        .replace("CPUS", &cpus.to_string())
        .replace("DURATION", duration)
}

#[test]
fn a_long_run_without_a_whole_log_output_keeps_a_bounded_log() {
    let d = dir("flat");
    let mut peaks = Vec::new();
    for duration in ["50ms", "2s"] {
        let p = write(&d, "s.toml", &spinners(8, duration));
        let l = scenario::load(&p, &[]).unwrap();
        let o = RunOptions::default();
        let r = scenario::run_streamed(&l, &o, &mut |_, _| Ok(()), &mut |_, _| {}).unwrap();
        // Ten times longer produces ten times the records ...
        peaks.push((r.logged, r.peak_kept));
    }
    let ((short_logged, short_peak), (long_logged, long_peak)) = (peaks[0], peaks[1]);
    assert!(long_logged > 5 * short_logged, "{peaks:?}");
    assert!(long_logged > 4 * CHUNK_EVENTS, "{peaks:?}");
    // ... but what is held at once does not grow with simulated time: at most about a
    // chunk's records.
    assert!(long_peak <= 4 * CHUNK_EVENTS, "{peaks:?}");
    assert!(long_peak < long_logged / 4, "{peaks:?}");
    assert!(short_peak <= long_peak, "{peaks:?}");
    // Kept whole, it is the whole log.
    let l = scenario::load(&d.join("s.toml"), &[]).unwrap();
    let o = RunOptions {
        keep_log: true,
        ..RunOptions::default()
    };
    let r = scenario::run_streamed(&l, &o, &mut |_, _| Ok(()), &mut |_, _| {}).unwrap();
    assert_eq!(r.peak_kept, long_logged);
    assert_eq!(r.sim.log().len() as u64, long_logged);
}

#[test]
fn streaming_the_log_changes_neither_the_run_nor_its_log_expectations() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/workloads/spinlock-ext.toml");
    let l = scenario::load(&p, &[]).unwrap();
    let kept = scenario::run(&l, None, None).unwrap();
    let mut hash = Vec::new();
    let o = RunOptions::default();
    let streamed = scenario::run_streamed(
        &l,
        &o,
        &mut |_, rs| {
            hash.extend(rs.iter().map(|r| r.to_string()));
            Ok(())
        },
        &mut |_, _| {},
    )
    .unwrap();
    let whole: Vec<String> = kept.sim.log().iter().map(|r| r.to_string()).collect();
    assert_eq!(hash, whole);
    assert_eq!(streamed.logged, whole.len() as u64);
    assert_eq!(
        format!("{:?}", streamed.checks),
        format!("{:?}", kept.checks)
    );
    assert_eq!(streamed.sim.stats(), kept.sim.stats());
}

#[test]
fn the_1024_cpu_hour_stops_at_the_events_budget_with_how_to_raise_it() {
    let d = dir("1024");
    let p = write(&d, "s.toml", &spinners(1024, "3600s"));
    let out = slicesim(&["run", p.to_str().unwrap(), "--max-events", "300000"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("simulated events budget"), "{err}");
    assert!(err.contains("--max-events"), "{err}");
    assert!(err.contains("max_events"), "{err}");
    assert!(out.stdout.is_empty(), "no report of a stopped run");
}

#[test]
fn a_budget_table_in_the_scenario_sets_the_budget_and_a_flag_overrides_it() {
    let d = dir("table");
    let s = spinners(4, "1s") + "[budget]\nmax_events = 20000\n";
    let p = write(&d, "s.toml", &s);
    let out = slicesim(&["run", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let s = spinners(4, "1ms") + "[budget]\nmax_events = 20000\n";
    let p = write(&d, "s.toml", &s);
    let out = slicesim(&["run", p.to_str().unwrap(), "--max-events", "100000000"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn many_script_tasks_stop_at_a_budget_not_at_the_host_memory() {
    let d = dir("scripts");
    let s = r#"
[scenario]
name = "many-scripts"
duration = "3600s"
[machine]
cpus = 64
[[task]]
name = "w"
program = "script"
count = 5000
steps = ["register", "enable", "loop 1000", "request", "burn 1us", "release", "end"]
"#;
    let p = write(&d, "s.toml", s);
    let out = slicesim(&["run", p.to_str().unwrap(), "--max-events", "200000"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("--max-events"), "{err}");
}

#[test]
fn until_obeys_the_one_hour_limit_of_duration() {
    let out = slicesim(&[
        "run",
        "scenarios/edge/grant-then-yield.toml",
        "--until",
        "100000000s",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("over the limit of 1h"));
    // The library refuses it too.
    let l = scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/edge/grant-then-yield.toml"),
        &[],
    )
    .unwrap();
    let e = scenario::run(&l, None, Some(100_000_000_000_000_000))
        .err()
        .unwrap();
    assert!(e.to_string().contains("over the limit"), "{e}");
}

#[test]
fn too_many_tables_are_refused_before_parsing_and_a_big_file_before_reading() {
    let d = dir("tables");
    let mut s = String::from("[scenario]\nname = \"irqs\"\nduration = \"1ms\"\n");
    for i in 0..10_001 {
        s.push_str(&format!("[[irq]]\ncpu = 0\nkind = \"device\"\nat = {i}\n"));
    }
    let p = write(&d, "irqs.toml", &s);
    let out = slicesim(&["run", p.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    // The 10 001st table's line: 3 header lines, 4 lines per table.
    assert!(err.contains(&format!(":{}:1:", 4 + 4 * 10_000)), "{err}");
    assert!(err.contains("more than 10000 [[irq]]"), "{err}");

    let big = format!("{s}# {}\n", "x".repeat(5 << 20));
    let p = write(&d, "big.toml", &big);
    let out = slicesim(&["run", p.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--max-file-mib"), "{err}");
    // Raised, it is read, and then the tables are counted.
    let out = slicesim(&["run", p.to_str().unwrap(), "--max-file-mib", "16"]);
    assert!(text(&out.stderr).contains("more than 10000"));
}

/// Scenarios whose one task makes time stand still, and what its outcome names: the
/// operation, and for a script the step and its line in the file.
const ZERO_COST: [(&str, &str, &str); 3] = [
    (
        "spin",
        "[machine]\ncpus = 2\nshared_access = \"0ns\"\n[[task]]\nname = \"locker\"\nprogram = \"spinlock\"\ncount = 3\n",
        "(last: shared load of word 0)",
    ),
    (
        "marks",
        "[[task]]\nname = \"marker\"\nprogram = \"script\"\nsteps = [\"loop 1000000000\", \"mark cs_enter\", \"end\"]\n",
        "(last: markers or burn(0)); give the operations a cost or raise max_ops_per_instant [at script step 2 `mark cs_enter`, line 7]",
    ),
    (
        "loads",
        "[machine]\nmem_access = \"0ns\"\n[[task]]\nname = \"loader\"\nprogram = \"script\"\nsteps = [\"register\", \"loop 1000000000\", \"load request\", \"end\"]\n",
        "(last: load of 1 bytes at rseq+28); give the operations a cost or raise max_ops_per_instant [at script step 3 `load request`, line 9]",
    ),
];

#[test]
fn zero_cost_loops_end_as_a_livelock_of_that_task_and_the_run_goes_on() {
    let d = dir("livelock");
    for (name, body, names) in ZERO_COST {
        let s = format!("[scenario]\nname = \"{name}\"\nduration = \"1ms\"\n{body}");
        let p = write(&d, &format!("{name}.toml"), &s);
        let out = slicesim(&["run", p.to_str().unwrap()]);
        let so = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert!(so.contains("livelock: "), "{name}: {so}");
        assert!(
            so.contains(names),
            "{name}: the outcome names {names}\n{so}"
        );
        assert!(so.contains("max_ops_per_instant"), "{name}: {so}");
        assert!(
            so.contains("until 1000000 ns"),
            "{name}: the run reaches its end\n{so}"
        );
        // Raised, the same loop is stopped later.
        let out = slicesim(&[
            "run",
            p.to_str().unwrap(),
            "--max-ops-per-instant",
            "200000",
        ]);
        let so = text(&out.stdout);
        let ops: u64 = so
            .split("livelock: ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((200_000..210_000).contains(&ops), "{name}: {so}");
    }
}

#[test]
fn every_task_has_a_finite_step_budget_by_default() {
    let b = slicesim::budget::Budget::resolve(&Default::default(), None, &BudgetArgs::default());
    assert!(b.max_user_steps < u64::MAX);
    let d = dir("steps");
    let s = "[scenario]\nname = \"steps\"\nduration = \"1s\"\n[[task]]\nname = \"loader\"\nprogram = \"script\"\nsteps = [\"register\", \"loop 1000000000\", \"load request\", \"end\"]\n";
    let p = write(&d, "s.toml", s);
    let out = slicesim(&["run", p.to_str().unwrap(), "--max-user-steps", "5000"]);
    assert!(text(&out.stdout).contains("exceeded the step budget of 5000"));
}

#[test]
fn explore_caps_k_like_the_scenario_key_and_estimates_the_space() {
    let out = slicesim(&[
        "explore",
        "scenarios/workloads/spinlock-ext.toml",
        "--exhaustive",
        "--max-interrupts",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("at most 8"));
    let out = slicesim(&[
        "explore",
        "scenarios/races/yield-after-revoke.toml",
        "--exhaustive",
    ]);
    assert!(text(&out.stdout).contains("estimate: about "));
}

#[test]
fn a_long_description_prints_cut() {
    let d = dir("desc");
    let s = format!(
        "[scenario]\nname = \"d\"\ndescription = \"{}\"\nduration = \"10us\"\n",
        "word ".repeat(200_000)
    );
    let p = write(&d, "s.toml", &s);
    for cmd in ["run", "explain"] {
        let out = slicesim(&[cmd, p.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(out.stdout.len() < 4000, "{cmd}: {} bytes", out.stdout.len());
        assert!(text(&out.stdout).contains("word word"));
    }
}

#[test]
fn invalid_utf8_is_an_invalid_scenario_with_its_position() {
    let d = dir("utf8");
    let p = d.join("s.toml");
    std::fs::write(&p, b"[scenario]\nname = \"ab\xffc\"\nduration = \"1ms\"\n").unwrap();
    let out = slicesim(&["run", p.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("s.toml:2:11: invalid UTF-8 (byte 0xff)"),
        "{err}"
    );
}

#[test]
fn outputs_are_all_or_nothing_and_checked_before_the_run() {
    let d = dir("outputs");
    let html = d.join("run.html");
    let out = slicesim(&[
        "run",
        "scenarios/edge/grant-then-yield.toml",
        "--html",
        html.to_str().unwrap(),
        "--trace",
        "/nonexistent-dir/run.log",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stderr).contains("/nonexistent-dir/run.log"));
    assert!(out.stdout.is_empty(), "nothing runs: {}", text(&out.stdout));
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    // Both writable: both written, no temporary file left.
    let svg = d.join("run.svg");
    let out = slicesim(&[
        "run",
        "scenarios/edge/grant-then-yield.toml",
        "--html",
        html.to_str().unwrap(),
        "--timeline-svg",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["run.html", "run.svg"]);
    // The same file twice is refused before the run.
    let out = slicesim(&[
        "run",
        "scenarios/edge/grant-then-yield.toml",
        "--html",
        html.to_str().unwrap(),
        "--trace",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text(&out.stderr).contains("same file"));
}

#[test]
fn every_command_checks_its_output_files_before_it_runs() {
    // Each of these would run for a while before writing: an unwritable file is an error
    // (exit 4, naming it) before anything runs, and nothing is printed or left behind.
    let bad = "/nonexistent-dir/out";
    let cases: [&[&str]; 5] = [
        &["check", "scenarios/edge", "--junit", bad],
        &[
            "sweep",
            "scenarios/edge/grant-then-yield.toml",
            "--vary",
            "machine.slice_ext_nsec=5000,10000",
            "--out",
            bad,
        ],
        &[
            "sweep",
            "scenarios/edge/grant-then-yield.toml",
            "--vary",
            "machine.slice_ext_nsec=5000",
            "--plot",
            bad,
        ],
        &[
            "explore",
            "scenarios/races/yield-after-revoke.toml",
            "--exhaustive",
            "--save",
            bad,
        ],
        &[
            "explore",
            "scenarios/races/yield-after-revoke.toml",
            "--exhaustive",
            "--witness-dir",
            "/nonexistent-dir",
        ],
    ];
    for args in cases {
        let out = slicesim(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {err}");
        assert!(err.contains("/nonexistent-dir"), "{args:?}: {err}");
        assert!(
            !text(&out.stdout).contains("passed") && !text(&out.stdout).contains("space:"),
            "{args:?} ran: {}",
            text(&out.stdout)
        );
    }
    // An explorer's counterexample file exists only if the search finds one.
    let d = dir("explore-outputs");
    let save = d.join("cx.schedule");
    let out = slicesim(&[
        "explore",
        "scenarios/races/yield-after-revoke.toml",
        "--exhaustive",
        "--max-interrupts",
        "1",
        "--save",
        save.to_str().unwrap(),
        "--witness-dir",
        d.to_str().unwrap(),
    ]);
    assert!(out.status.code().is_some(), "{}", text(&out.stderr));
    let names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "no temporary file left: {names:?}"
    );
    assert_eq!(
        save.exists(),
        text(&out.stdout).contains("counterexample"),
        "{names:?}"
    );
}

#[test]
fn a_whole_log_output_is_capped_by_its_budget() {
    let d = dir("cap");
    let p = write(&d, "s.toml", &spinners(8, "100ms"));
    let html = d.join("run.html");
    let out = slicesim(&[
        "run",
        p.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--max-log-events",
        "1000",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("--max-log-events"), "{err}");
    assert!(!html.exists());
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        1,
        "only the scenario"
    );
}

/// Run `scen` with a `format` trace twice: alone, where it streams (and so passes a kept-log
/// budget far below the run's events), and beside `--html`, which keeps the log whole and
/// renders the trace from it; the two files must be the same bytes.
fn streamed_trace_is_the_whole_one(format: &str, scen: &str) -> Vec<u8> {
    let d = dir(&format!("stream-{format}"));
    let (a, b, html) = (d.join("a.trace"), d.join("b.trace"), d.join("b.html"));
    let out = slicesim(&[
        "run",
        scen,
        "--trace",
        a.to_str().unwrap(),
        "--format",
        format,
        "--max-log-events",
        "1000",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = slicesim(&[
        "run",
        scen,
        "--trace",
        b.to_str().unwrap(),
        "--format",
        format,
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(ta.len() > 10_000);
    assert_eq!(ta, tb);
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a.trace", "b.html", "b.trace"],
        "no scratch file left"
    );
    ta
}

#[test]
fn a_jsonl_trace_streams_and_is_the_same_file_as_one_rendered_whole() {
    streamed_trace_is_the_whole_one("jsonl", "scenarios/workloads/spinlock-ext.toml");
}

#[test]
fn a_text_trace_streams_and_is_the_same_file_as_one_rendered_whole() {
    let t = streamed_trace_is_the_whole_one("text", "scenarios/workloads/spinlock-ext.toml");
    assert!(text(&t).contains("# rseq/stats at the end of the run:"));
}

#[test]
fn an_ftrace_trace_streams_and_is_the_same_file_as_one_rendered_whole() {
    let t = streamed_trace_is_the_whole_one("ftrace", SLEEPY);
    // The streamed writer learns a sleeping task's prev_state after the fact.
    assert!(text(&t).contains("prev_state=S"));
}

/// A bundled scenario whose tasks sleep and are woken (`prev_state=S` in ftrace).
const SLEEPY: &str = "scenarios/selftest/n2_2_50.toml";

/// Every streaming format, fed the log in chunks of many sizes (so a sleeping task's
/// `prev_state` is often learned a chunk later), gives the whole-log rendering's bytes.
#[test]
fn streamed_formats_are_the_whole_rendering_at_any_chunk_size() {
    use slicesim::export::{render, Format, StreamWriter, TraceInput};
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(SLEEPY);
    let l = scenario::load(&p, &[]).unwrap();
    let r = scenario::run(&l, None, None).unwrap();
    let input = TraceInput::from_simulation(&r.sim).with_workload("chunks");
    let log = r.sim.log();
    for format in Format::ALL {
        let Some(_) = StreamWriter::new(format, input.cpus) else {
            assert!(matches!(format, Format::Chrome));
            continue;
        };
        let whole = render(format, &input).unwrap();
        for size in [1, 7, 100, 4096, log.len().max(1)] {
            let mut w = StreamWriter::new(format, input.cpus).unwrap();
            let mut body = std::io::Cursor::new(Vec::new());
            for chunk in log.chunks(size) {
                w.records(&input, chunk, &mut body).unwrap();
            }
            let mut got = w.header(&input, log.len()).unwrap();
            got.extend(body.into_inner());
            got.extend(w.footer(&input));
            assert!(got == whole, "{format} in chunks of {size}");
        }
    }
}

/// A script task stopped by a panic names the step it was at, also in a forked child,
/// which runs lines of its parent's script.
#[test]
fn a_stopped_script_names_its_step_and_line_even_in_a_forked_child() {
    let d = dir("step-note");
    let s = "[scenario]\nname = \"panics\"\nduration = \"1ms\"\n[[task]]\nname = \"p\"\nprogram = \"script\"\nsteps = [\n  \"fork\",\n  \"burn 1us\",\n  \"panic\",\n  \"end\",\n  \"burn 5us\",\n]\n";
    let p = write(&d, "panics.toml", s);
    let out = slicesim(&["run", p.to_str().unwrap()]);
    let so = text(&out.stdout);
    assert!(
        so.contains("p.child") && so.contains("[at script step 3 `panic`, line 10]"),
        "{so}"
    );
    // The parent ended normally: no note.
    let parent = so.lines().find(|l| l.contains(" p ")).unwrap();
    assert!(!parent.contains("[at script step"), "{parent}");
}

/// Ctrl-C in the middle of a run that writes a streamed trace and an HTML timeline leaves
/// nothing behind: neither output, nor a temporary file, nor the trace's scratch body.
#[cfg(unix)]
#[test]
fn ctrl_c_during_a_run_leaves_no_file_behind() {
    let d = dir("ctrl-c");
    let scen = write(&d, "long.toml", &spinners(64, "3600s"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slicesim"))
        .args(["run", scen.to_str().unwrap()])
        .arg("--trace")
        .arg(d.join("t.jsonl"))
        .arg("--html")
        .arg(d.join("t.html"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    // Wait until the run has staged its outputs (the temporary files exist), then interrupt.
    let staged = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        names().iter().any(|n| n.ends_with(".tmp"))
    });
    assert!(staged, "the run never staged its outputs: {:?}", names());
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted: {status:?}");
    assert_eq!(names(), ["long.toml"], "only the scenario is left");
}

/// A streamed perfetto trace writes many bundles per CPU and learns a sleeping task's
/// `prev_state` after its bundle (even its chunk) was written: every `sched_switch` still
/// carries the state the ftrace rendering of the same run shows, switch for switch.
#[test]
fn streamed_perfetto_patches_prev_state_across_bundles_and_chunks() {
    use prost::Message;
    use slicesim::export::perfetto::proto;
    use slicesim::export::{render, Format, StreamWriter, TraceInput};
    let s = "[scenario]\nname = \"sleepers\"\nduration = \"250ms\"\n[machine]\ncpus = 1\n[[task]]\nname = \"s\"\nprogram = \"sleeper\"\nthink = \"10us\"\nhold = \"5us\"\ncount = 3\n";
    let d = dir("perfetto-patch");
    let l = scenario::load(&write(&d, "s.toml", s), &[]).unwrap();
    let r = scenario::run(&l, None, None).unwrap();
    let input = TraceInput::from_simulation(&r.sim);
    let log = r.sim.log();
    let mut w = StreamWriter::new(Format::Perfetto, input.cpus).unwrap();
    let mut body = std::io::Cursor::new(Vec::new());
    for chunk in log.chunks(1000) {
        w.records(&input, chunk, &mut body).unwrap();
    }
    let mut bytes = w.header(&input, log.len()).unwrap();
    bytes.extend(body.into_inner());
    bytes.extend(w.footer(&input));
    let trace = proto::Trace::decode(&bytes[..]).unwrap();
    let mut bundles = 0;
    let mut got = Vec::new();
    for p in &trace.packet {
        if let Some(proto::Data::FtraceEvents(b)) = &p.data {
            bundles += 1;
            for e in &b.event {
                if let Some(proto::Event::SchedSwitch(s)) = &e.event {
                    got.push(match s.prev_state.unwrap() {
                        0 => "R",
                        1 => "S",
                        0x10 => "X",
                        0x20 => "Z",
                        v => panic!("prev_state {v}"),
                    });
                }
            }
        }
    }
    let ftrace = String::from_utf8(render(Format::Ftrace, &input).unwrap()).unwrap();
    let want: Vec<&str> = ftrace
        .lines()
        .filter(|l| l.contains("sched_switch:"))
        .map(|l| {
            l.split("prev_state=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        })
        .collect();
    assert!(bundles > 3, "several bundles: {bundles}");
    assert!(
        want.iter().filter(|s| **s == "S").count() > 4096,
        "many sleeps"
    );
    assert_eq!(got, want);
}

/// Metrics, their plot and a perfetto trace no longer need the whole log: a run far longer
/// than the kept-log budget computes them as the log streams by (the same metrics as a run
/// that keeps its log, which `Metrics::compute` reads whole).
#[test]
fn metrics_plot_and_perfetto_stream_past_the_kept_log_budget() {
    let d = dir("metrics-stream");
    let p = write(&d, "s.toml", &spinners(8, "100ms"));
    let (plot, trace) = (d.join("m.svg"), d.join("t.perfetto"));
    let out = slicesim(&[
        "run",
        p.to_str().unwrap(),
        "--metrics",
        "json",
        "--plot",
        plot.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--format",
        "perfetto",
        "--max-log-events",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(plot.exists() && trace.exists());
    let streamed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The same run keeping its whole log (an HTML timeline needs it) computes them whole.
    let html = d.join("t.html");
    let whole = slicesim(&[
        "run",
        p.to_str().unwrap(),
        "--metrics",
        "json",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole.stderr));
    let whole: serde_json::Value = serde_json::from_slice(&whole.stdout).unwrap();
    assert_eq!(streamed, whole);
    assert!(streamed["cpus"][0]["running_ns"].as_u64().unwrap() > 0);
    // The log is longer than the budget: kept whole, it is stopped.
    let capped = slicesim(&[
        "run",
        p.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--max-log-events",
        "1000",
    ]);
    assert_eq!(capped.status.code(), Some(5), "{}", text(&capped.stderr));
}

/// Every explored run obeys the scenario's budgets as `run` does, with the same flags: a
/// search over a one-hour, 1024-CPU scenario stops at the events budget (exit 5) instead
/// of running for hours, whether the unperturbed run (exhaustive) or a random one hits it.
#[test]
fn explore_runs_obey_the_budgets_and_say_which() {
    let d = dir("explore-budget");
    let p = write(&d, "long.toml", &spinners(1024, "3600s"));
    for mode in ["--exhaustive", "--random"] {
        let out = slicesim(&[
            "explore",
            p.to_str().unwrap(),
            mode,
            "--runs",
            "3",
            "--max-events",
            "2000000",
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{mode}: {err}");
        assert!(
            err.contains("simulated events budget") && err.contains("--max-events"),
            "{mode}: {err}"
        );
    }
}
