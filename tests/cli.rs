//! The command line, driven as a user would.

mod support;
use support::{scratch, slicesim};

#[test]
fn selftest_prints_the_selftest_counters_and_stats() {
    let out = slicesim(&["selftest", "--seconds", "0.05"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    for line in [
        "# Total ",
        "# Success ",
        "# Yielded ",
        "# Aborted ",
        "# Scheduled ",
        "# Raced ",
        "# sgrant: ",
    ] {
        assert!(s.contains(line), "missing {line:?} in\n{s}");
    }
    assert!(!s.contains("invariant violated"), "{s}");
}

#[test]
fn selftest_is_deterministic_and_writes_a_whole_trace() {
    let dir = scratch("cli");
    let (a, b) = (dir.join("a.log"), dir.join("b.log"));
    for p in [&a, &b] {
        let out = slicesim(&[
            "selftest",
            "--seconds",
            "0.01",
            "--seed",
            "3",
            "--trace",
            p.to_str().unwrap(),
        ]);
        assert!(out.status.success());
    }
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(ta.len() > 1000);
    assert_eq!(ta, tb, "same seed, same trace");
    assert!(String::from_utf8(ta)
        .unwrap()
        .contains(" grant [req=1 gr=0 rsv=0000] -> [req=0 gr=1 rsv=0000]"));
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = slicesim(&["selftest", "--variant", "n3"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("n2_2_50"),
        "lists the valid variants"
    );
    let out = slicesim(&["selftest", "--slice-ext-nsec", "1000"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ERANGE"));
}

#[test]
fn abi_summary_names_the_syscall() {
    let out = slicesim(&["abi"]);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("__NR_rseq_slice_yield = 471 (V1: 470"));
}

/// Run the selftest for 10 ms with `--trace FILE --format format`; the file's bytes.
fn selftest_trace(format: Option<&str>) -> Vec<u8> {
    let name = format.unwrap_or("default");
    let dir = scratch(&format!("cli-{name}"));
    let path = dir.join(format!("trace.{name}"));
    let mut args = vec![
        "selftest",
        "--seconds",
        "0.01",
        "--trace",
        path.to_str().unwrap(),
    ];
    if let Some(f) = format {
        args.extend(["--format", f]);
    }
    let out = slicesim(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!("({})", format.unwrap_or("text"))),
        "{stdout}"
    );
    let bytes = std::fs::read(&path).unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [format!("trace.{name}")],
        "written whole, no temporary left"
    );
    bytes
}

#[test]
fn trace_format_text_is_the_default() {
    let text = String::from_utf8(selftest_trace(Some("text"))).unwrap();
    assert!(
        text.starts_with("# slicesim trace, text timeline\n"),
        "{}",
        &text[..200]
    );
    assert!(text.contains("# workload: selftest n2_2_50\n"));
    assert!(text.contains(" grant [req=1 gr=0 rsv=0000] -> [req=0 gr=1 rsv=0000]"));
    assert_eq!(selftest_trace(None), text.into_bytes());
}

#[test]
fn trace_format_jsonl() {
    let text = String::from_utf8(selftest_trace(Some("jsonl"))).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["format"], "slicesim-jsonl");
    assert_eq!(lines[0]["version"], 1);
    assert_eq!(lines[0]["workload"], "selftest n2_2_50");
    assert_eq!(lines[0]["events"], lines.len() - 1);
    assert!(lines[1..].iter().any(|e| e["kind"] == "grant"));
}

#[test]
fn trace_format_chrome() {
    let doc: serde_json::Value = serde_json::from_slice(&selftest_trace(Some("chrome"))).unwrap();
    assert_eq!(doc["displayTimeUnit"], "ns");
    let ev = doc["traceEvents"].as_array().unwrap();
    assert!(ev.iter().any(|e| e["ph"] == "X" && e["name"] == "grant"));
    assert!(ev.iter().any(|e| e["ph"] == "C" && e["name"] == "sgrant"));
}

#[test]
fn trace_format_perfetto() {
    use prost::Message;
    use slicesim::export::perfetto::proto;
    let trace = proto::Trace::decode(&selftest_trace(Some("perfetto"))[..]).unwrap();
    let (mut threads, mut switches) = (Vec::new(), 0);
    for p in trace.packet {
        match p.data {
            Some(proto::Data::TrackDescriptor(d)) => {
                threads.extend(d.thread.and_then(|t| t.thread_name));
            }
            Some(proto::Data::FtraceEvents(b)) => {
                switches += b
                    .event
                    .iter()
                    .filter(|e| matches!(e.event, Some(proto::Event::SchedSwitch(_))))
                    .count();
            }
            None => {}
        }
    }
    assert_eq!(threads, ["slice_test", "noise"]);
    assert!(switches > 10, "{switches}");
}

#[test]
fn trace_format_ftrace() {
    let text = String::from_utf8(selftest_trace(Some("ftrace"))).unwrap();
    assert!(text.contains("\ncpus=2\n"));
    assert!(text.contains(": hrtimer_start: hrtimer=0x"));
    assert!(text.contains(" function=rseq_slice_expired "));
    assert!(text.contains(": hrtimer_cancel: hrtimer=0x"));
    assert!(text.contains(": sched_switch: prev_comm="));
}

#[test]
fn trace_format_needs_a_trace_file() {
    let out = slicesim(&["selftest", "--format", "jsonl"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--trace"));
    let out = slicesim(&["selftest", "--trace", "x", "--format", "svg"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("perfetto"));
}

#[test]
fn an_output_named_dash_is_an_error_not_a_file_called_dash() {
    let out = slicesim(&[
        "run",
        "scenarios/edge/grant-then-yield.toml",
        "--trace",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(4), "an output error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("output `-`") && err.contains("name a file"),
        "{err}"
    );
    assert!(
        !std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("-")
            .exists(),
        "no file named `-` is left behind"
    );
}

#[test]
fn selftest_runs_on_a_machine_profile_and_rejects_an_unknown_one() {
    let run = |profile: Option<&str>| {
        let mut args = vec!["selftest", "--variant", "n50_2_50", "--seconds", "0.05"];
        if let Some(p) = profile {
            args.extend(["--profile", p]);
        }
        let out = slicesim(&args);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let measured = run(Some("qemu-icount0"));
    assert!(
        measured.contains("machine profile qemu-icount0"),
        "{measured}"
    );
    let default = run(None);
    assert!(default.contains("machine profile default"), "{default}");
    // The measured machine's costs (3 µs interrupts, 3.7 µs switches) change the counts.
    let counts = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with("# Total") || l.starts_with("# Yielded"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_ne!(counts(&measured), counts(&default));
    assert_eq!(
        run(Some("default")).replace("default", ""),
        default.replace("default", "")
    );

    let out = slicesim(&["selftest", "--seconds", "0.01", "--profile", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown profile \"nope\""), "{err}");
}
