//! The trace exporters on real simulations: snapshots of every format on one small scripted
//! run, formats parsed back, and the derived views checked against the engine's own
//! counters on the kernel selftest workload.

mod support;

use std::collections::BTreeMap;

use prost::Message;
use rseq_abi::layout::offset;
use rseq_abi::programs::selftest::SelftestParams;
use rseq_abi::{protocol, CpuSet, CtrlWord, Platform, SharedWord, Syscall};
use rseq_sim::*;
use serde_json::Value;
use slicesim::export::perfetto::proto;
use slicesim::export::{render, ExportError, Format, Metadata, TaskInfo, TraceInput};

const US: u64 = 1_000;

fn prog(
    f: impl for<'y> FnOnce(&mut SimPlatform<'y>) -> Vec<(&'static str, i64)> + 'static,
) -> SimProgram {
    Box::new(f)
}

fn enable(p: &mut SimPlatform<'_>) {
    protocol::register(p, 0).expect("register");
    protocol::slice_ext_set(p, true).expect("enable");
}

fn pinned(name: &str, cpu: usize) -> TaskSpec {
    let mut t = TaskSpec::new(name);
    t.affinity = Some(CpuSet::single(cpu));
    t
}

/// Two CPUs, no tick, exact sleeps; every interrupt is scripted.
///
/// CPU 0: `holder` requests at 2 µs; `waker`'s sleep timer wakes it at 3.3 µs, which
/// preempts `holder` — who is granted an extension instead and yields it (`s_yielded`), the
/// CPU going to `waker`. CPU 1: `hog` requests, an injected device interrupt asking for a
/// reschedule gets it a grant at 5.3 µs, it keeps burning, the timer expires 5 µs later
/// (`s_expired`) and the grant is revoked on the way back to user (R2, `s_revoked`); at
/// 25 µs a SIGSEGV from outside kills it.
fn scenario() -> Simulation {
    let cfg = SimConfig {
        cpus: 2,
        hz: 0,
        load_balance: false,
        timer_slack_ns: 0,
        timer_jitter_ns: 0,
        // The CFS model with no wakeup granularity: the waker's wakeup preempts the holder
        // mid-section, the grant this trace is about.
        fair_class: rseq_sim::FairClass::Cfs,
        wakeup_gran_ns: 0,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    sim.spawn(
        pinned("waker", 0),
        prog(|p| {
            let _ = p.syscall(Syscall::Nanosleep { ns: 2 * US });
            p.burn(US);
            let _ = p.syscall(Syscall::Getpid);
            vec![]
        }),
    );
    sim.spawn(
        pinned("holder", 0),
        prog(|p| {
            enable(p);
            let now = p.clock_ns();
            p.burn(2 * US - now.min(2 * US));
            p.store_u8(offset::REQUEST, 1);
            p.burn(3 * US);
            let _ = p.load_u8(offset::REQUEST);
            if p.load_u8(offset::GRANTED) != 0 {
                let _ = p.syscall(Syscall::RseqSliceYield);
            }
            vec![]
        }),
    );
    sim.spawn(
        pinned("hog", 1),
        prog(|p| {
            enable(p);
            p.burn(2 * US);
            p.store_u8(offset::REQUEST, 1);
            p.burn(10 * US);
            let _ = p.load_u8(offset::GRANTED);
            p.burn(30 * US);
            vec![]
        }),
    );
    sim.inject_irq(5 * US, 1, IrqKind::Device(ReschedReq::Full));
    sim.send_signal(25 * US, 2, 11);
    sim.run_until(60 * US);
    sim
}

/// The kernel selftest workload (main thread and noise thread on CPU 1) for `run_ns`.
fn selftest(params: SelftestParams, run_ns: u64) -> Simulation {
    selftest_on(SimConfig::default(), params, run_ns)
}

fn selftest_on(cfg: SimConfig, params: SelftestParams, run_ns: u64) -> Simulation {
    let mut params = params;
    params.total_ns = run_ns;
    let mut sim = Simulation::new(cfg).unwrap();
    spawn_selftest(
        &mut sim,
        ("slice_test", "noise"),
        params,
        SharedWord(0),
        None,
    );
    sim.run_until(run_ns + 2_000_000);
    sim
}

fn rendered(sim: &Simulation, format: Format) -> Vec<u8> {
    render(format, &TraceInput::from_simulation(sim)).unwrap()
}

fn rendered_text(sim: &Simulation, format: Format) -> String {
    String::from_utf8(rendered(sim, format)).unwrap()
}

fn count(sim: &Simulation, pred: impl Fn(&LogKind) -> bool) -> usize {
    sim.log().iter().filter(|r| pred(&r.kind)).count()
}

// ---- snapshots ----------------------------------------------------------------------------

#[test]
fn snapshot_text() {
    insta::assert_snapshot!("text", rendered_text(&scenario(), Format::Text));
}

#[test]
fn snapshot_jsonl() {
    insta::assert_snapshot!("jsonl", rendered_text(&scenario(), Format::Jsonl));
}

#[test]
fn snapshot_chrome() {
    insta::assert_snapshot!("chrome", rendered_text(&scenario(), Format::Chrome));
}

#[test]
fn snapshot_ftrace() {
    insta::assert_snapshot!("ftrace", rendered_text(&scenario(), Format::Ftrace));
}

/// The binary format, decoded and printed one packet or event per line.
#[test]
fn snapshot_perfetto_decoded() {
    let trace = proto::Trace::decode(&rendered(&scenario(), Format::Perfetto)[..]).unwrap();
    let mut out = String::new();
    for p in &trace.packet {
        match &p.data {
            Some(proto::Data::TrackDescriptor(d)) => {
                out += &format!("track_descriptor {d:?}\n");
            }
            Some(proto::Data::FtraceEvents(b)) => {
                out += &format!("ftrace_events cpu={:?}\n", b.cpu);
                for e in &b.event {
                    out += &format!(
                        "  ts={:?} pid={:?} {:?}\n",
                        e.timestamp,
                        e.pid,
                        e.event.as_ref().unwrap()
                    );
                }
            }
            None => out += "empty packet\n",
        }
    }
    insta::assert_snapshot!("perfetto_decoded", out);
}

// ---- formats parse back -------------------------------------------------------------------

#[test]
fn jsonl_parses_back_with_header_and_every_event() {
    let sim = scenario();
    let text = rendered_text(&sim, Format::Jsonl);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let header = &lines[0];
    assert_eq!(header["format"], "slicesim-jsonl");
    assert_eq!(header["version"], 1);
    assert_eq!(header["revision"], "7.2");
    assert_eq!(header["cpus"], 2);
    assert_eq!(header["tasks"][1]["name"], "holder");
    assert_eq!(header["tasks"][1]["pid"], 1001);
    assert_eq!(header["stats"]["granted"], 2);
    assert_eq!(header["events"], sim.log().len());

    let events = &lines[1..];
    assert_eq!(events.len(), sim.log().len());
    for (e, r) in events.iter().zip(sim.log()) {
        assert_eq!(e["t_ns"], r.time);
        assert_eq!(e["cpu"], r.cpu);
        assert_eq!(e["task"].as_u64(), r.task.map(u64::from));
    }
    let of_kind = |k: &str| events.iter().filter(|e| e["kind"] == k).collect::<Vec<_>>();
    let grants = of_kind("grant");
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[0]["before"], serde_json::json!([1, 0, 0, 0]));
    assert_eq!(grants[0]["after"], serde_json::json!([0, 1, 0, 0]));
    assert_eq!(grants[0]["after_text"], "req=0 gr=1 rsv=0000");
    assert_eq!(grants[0]["expires_ns"], 8600);
    assert_eq!(of_kind("slice_syscall")[0]["outcome"], "yielded");
    assert_eq!(of_kind("timer_expire")[0]["hit"], true);
    let r2: Vec<_> = of_kind("revoke")
        .into_iter()
        .filter(|e| e["path"] == "R2")
        .collect();
    assert_eq!(r2.len(), 1);
    assert_eq!(r2[0]["was_granted"], true);
    let sig = &of_kind("signal")[0];
    assert_eq!(
        (sig["signo"].as_i64(), sig["cause"].as_str()),
        (Some(11), Some("external"))
    );
    assert_eq!(of_kind("switch")[0]["prev"], Value::Null);
    assert_eq!(of_kind("wakeup")[0]["woken"], 0);
    assert_eq!(of_kind("syscall_exit")[0]["ret"], 0);
}

#[test]
fn chrome_json_parses_back_with_tracks_slices_instants_and_counters() {
    let sim = scenario();
    let doc: Value = serde_json::from_slice(&rendered(&sim, Format::Chrome)).unwrap();
    assert_eq!(doc["displayTimeUnit"], "ns");
    assert_eq!(doc["otherData"]["stats"]["expired"], 1);
    let ev = doc["traceEvents"].as_array().unwrap();
    let named = |ph: &str, name: &str| {
        ev.iter()
            .filter(|e| e["ph"] == ph && e["name"] == name)
            .collect::<Vec<_>>()
    };
    // Names: a process per CPU, a thread per task.
    let names: Vec<_> = ev
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["rseq/stats", "CPU 0", "CPU 1", "waker", "holder", "hog"]
    );
    assert_eq!(named("M", "thread_name").len(), 2 * 2 + 3);

    // The running track: one slice per switch to a task, the timestamps in µs.
    let switches_to_task = count(&sim, |k| matches!(k, LogKind::Switch { next: Some(_), .. }));
    let running: Vec<_> = ev
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "sched")
        .collect();
    assert_eq!(running.len(), switches_to_task);
    let holder = running.iter().find(|e| e["name"] == "T1 holder").unwrap();
    assert_eq!(
        (holder["ts"].as_f64(), holder["dur"].as_f64()),
        (Some(1.3), Some(4.423))
    );

    // Grant windows: the yielded one on holder, the expired one on hog.
    let grants = named("X", "grant");
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[0]["tid"], 1001);
    assert_eq!(grants[0]["args"]["end"], "yield");
    assert_eq!(grants[0]["args"]["duration_ns"], 5723 - 3600);
    assert_eq!(grants[1]["tid"], 1002);
    assert_eq!(grants[1]["args"]["end"], "timer expired");
    assert_eq!(grants[1]["dur"].as_f64(), Some(5.0));

    for (name, n) in [
        ("request", 2),
        ("grant", 2),
        ("yield", 1),
        ("revoke R2", 1),
        ("revoke R6", 1),
        ("timer expire", 1),
        ("SIGSEGV", 1),
    ] {
        assert_eq!(named("i", name).len(), n, "{name}");
    }
    // No-op clears (registration, ID updates with nothing to clear) are not instants.
    assert!(named("i", "revoke R1").is_empty() && named("i", "revoke R4").is_empty());

    // Counters: cumulative, ending at the engine's final values.
    let last = |name: &str| {
        named("C", name).last().unwrap()["args"][name]
            .as_u64()
            .unwrap()
    };
    let s = sim.stats();
    assert_eq!(
        [
            last("sgrant"),
            last("sexpir"),
            last("srevok"),
            last("syield"),
            last("sabort")
        ],
        [s.granted, s.expired, s.revoked, s.yielded, s.aborted]
    );
    // Sorted by time.
    let ts: Vec<f64> = ev.iter().map(|e| e["ts"].as_f64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn perfetto_decodes_to_one_sched_switch_per_switch_record() {
    for sim in [scenario(), selftest(SelftestParams::N2_2_50, 10_000_000)] {
        let bytes = rendered(&sim, Format::Perfetto);
        let trace = proto::Trace::decode(&bytes[..]).unwrap();
        let mut switches = Vec::new();
        let mut threads = BTreeMap::new();
        for p in &trace.packet {
            assert_eq!(p.trusted_packet_sequence_id, Some(1));
            match p.data.as_ref().unwrap() {
                proto::Data::TrackDescriptor(d) => {
                    if let Some(t) = &d.thread {
                        threads.insert(t.tid.unwrap(), t.thread_name.clone().unwrap());
                    }
                }
                proto::Data::FtraceEvents(b) => {
                    for e in &b.event {
                        if let Some(proto::Event::SchedSwitch(s)) = &e.event {
                            switches.push((e.timestamp.unwrap(), b.cpu.unwrap(), s.clone()));
                        }
                    }
                }
            }
        }
        let records: Vec<_> = sim
            .log()
            .iter()
            .filter_map(|r| match r.kind {
                LogKind::Switch { prev, next } => Some((r.time, r.cpu, prev, next)),
                _ => None,
            })
            .collect();
        assert_eq!(switches.len(), records.len());
        switches.sort_by_key(|s| (s.1, s.0));
        let mut records = records;
        records.sort_by_key(|r| (r.1, r.0));
        let pid = |t: Option<u32>| t.map_or(0, |t| 1000 + t as i32);
        for ((ts, cpu, s), (time, rcpu, prev, next)) in switches.iter().zip(&records) {
            assert_eq!((*ts, *cpu), (*time, *rcpu));
            assert_eq!(
                (s.prev_pid, s.next_pid),
                (Some(pid(*prev)), Some(pid(*next)))
            );
        }
        for (i, t) in sim.tasks().iter().enumerate() {
            assert_eq!(threads[&(1000 + i as i32)], t.name);
        }
    }
}

// ---- ftrace and the kernel's histogram script ---------------------------------------------

fn lines_of(text: &str, event: &str) -> usize {
    let needle = format!(": {event}: ");
    text.lines().filter(|l| l.contains(&needle)).count()
}

#[test]
fn ftrace_hrtimer_lines_match_the_timer_records() {
    let workloads = [
        scenario(),
        selftest(SelftestParams::N2_2_50, 10_000_000),
        selftest(SelftestParams::N50_2_50, 10_000_000),
    ];
    for sim in workloads {
        let text = rendered_text(&sim, Format::Ftrace);
        let arms = count(&sim, |k| matches!(k, LogKind::TimerArm { .. }));
        let expires = count(&sim, |k| matches!(k, LogKind::TimerExpire { .. }));
        let cancels = count(&sim, |k| matches!(k, LogKind::TimerCancel));
        assert!(arms > 0);
        assert_eq!(lines_of(&text, "hrtimer_start"), arms);
        assert_eq!(lines_of(&text, "hrtimer_expire_entry"), expires);
        assert_eq!(lines_of(&text, "hrtimer_expire_exit"), expires);
        // One per cancel record, plus one per start of a still-queued timer (the kernel's
        // hrtimer_start() dequeues first); these runs restart none.
        assert_eq!(lines_of(&text, "hrtimer_cancel"), cancels);
        assert_eq!(
            lines_of(&text, "sched_switch"),
            count(&sim, |k| matches!(k, LogKind::Switch { .. }))
        );
        assert_eq!(
            lines_of(&text, "sched_wakeup"),
            count(&sim, |k| matches!(k, LogKind::Wakeup { .. }))
        );
        // The histogram script sees every started timer end, by cancel or expiry.
        let hist = support::slice_hist(&text);
        let ended: u64 = hist.values().flat_map(|b| b.values()).sum();
        let still_queued = sim.cpus().iter().filter(|c| c.slice_timer.armed).count();
        assert_eq!(ended as usize + still_queued, arms);
    }
}

#[test]
fn ftrace_histogram_of_the_scenario() {
    let hist = support::slice_hist(&rendered_text(&scenario(), Format::Ftrace));
    let expected: BTreeMap<String, BTreeMap<i64, u64>> = [
        ("holder".to_string(), [(2, 1)].into()),
        ("hog".to_string(), [(-1, 1)].into()),
    ]
    .into();
    assert_eq!(hist, expected);
}

// ---- derived views against the engine -----------------------------------------------------

#[test]
fn chrome_counters_end_at_the_engine_counters_on_the_selftest() {
    for params in [
        SelftestParams::N2_2_50,
        SelftestParams::N50_2_50,
        SelftestParams::N2_2_50_NO_YIELD,
    ] {
        // 5 µs of timer jitter breaks the n50 noise thread's phase lock with the sections
        // (docs/fidelity.md), so its grants expire and every counter track moves.
        let cfg = SimConfig {
            timer_jitter_ns: 5_000,
            ..SimConfig::default()
        };
        let sim = selftest_on(cfg, params, 10_000_000);
        let doc: Value = serde_json::from_slice(&rendered(&sim, Format::Chrome)).unwrap();
        let ev = doc["traceEvents"].as_array().unwrap();
        let last = |name: &str| {
            ev.iter()
                .rev()
                .find(|e| e["ph"] == "C" && e["name"] == name)
                .unwrap()["args"][name]
                .as_u64()
                .unwrap()
        };
        let s = sim.stats();
        assert!(s.granted > 0, "{params:?}: {s:?}");
        // Each variant exercises its own counters: expiries with 50 µs sections, aborts
        // without the yield.
        if params.slice_ns > 5_000 {
            assert!(s.expired > 0 && s.revoked > 0, "{s:?}");
        }
        if params.no_yield {
            assert!(s.aborted > 0 && s.yielded == 0, "{s:?}");
        } else {
            assert!(s.yielded > 0, "{s:?}");
        }
        assert_eq!(
            [
                last("sgrant"),
                last("sexpir"),
                last("srevok"),
                last("syield"),
                last("sabort")
            ],
            [s.granted, s.expired, s.revoked, s.yielded, s.aborted],
            "{params:?}"
        );
        // Every grant has its window; none overlaps another of the same task.
        let mut windows: Vec<_> = ev
            .iter()
            .filter(|e| e["ph"] == "X" && e["name"] == "grant")
            .map(|e| (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap()))
            .collect();
        assert_eq!(windows.len() as u64, s.granted);
        windows.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(windows.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0 + 1e-9));
    }
}

#[test]
fn every_format_is_deterministic() {
    let (a, b) = (scenario(), scenario());
    for f in Format::ALL {
        assert_eq!(rendered(&a, f), rendered(&b, f), "{f}");
    }
}

#[test]
fn format_names_round_trip() {
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>().unwrap(), f);
    }
    let e = "svg".parse::<Format>().unwrap_err();
    assert!(e.to_string().contains("perfetto"), "{e}");
}

// ---- hand-built inputs --------------------------------------------------------------------

fn meta() -> Metadata {
    Metadata {
        revision: rseq_abi::Revision::Merged,
        preempt: Preempt::Full,
        endian: rseq_abi::Endian::Little,
        seed: 0,
        hz: 0,
        slice_ext_nsec: 5000,
        rseq_debug: false,
        end_ns: 100,
        workload: Some("hand-built".into()),
    }
}

fn rec(time: u64, cpu: u32, task: Option<u32>, kind: LogKind) -> LogRecord {
    LogRecord {
        time,
        cpu,
        task,
        kind,
    }
}

fn input(log: &[LogRecord], cpus: u32) -> TraceInput<'_> {
    TraceInput {
        log,
        tasks: vec![TaskInfo {
            name: "a-task-with-a-long-name",
            process: 0,
        }],
        cpus,
        stats: SliceStats::default(),
        meta: meta(),
    }
}

#[test]
fn ftrace_restarting_a_queued_timer_cancels_it_first_as_the_kernel_traces() {
    let granted = CtrlWord::from_bytes([0, 1, 0, 0]);
    let log = [
        rec(
            10,
            0,
            Some(0),
            LogKind::Grant {
                before: CtrlWord::from_bytes([1, 0, 0, 0]),
                after: granted,
                expires: 5010,
            },
        ),
        rec(10, 0, Some(0), LogKind::TimerArm { expires: 5010 }),
        rec(40, 0, Some(0), LogKind::TimerArm { expires: 5010 }),
        rec(70, 0, Some(0), LogKind::TimerCancel),
    ];
    let text = String::from_utf8(render(Format::Ftrace, &input(&log, 1)).unwrap()).unwrap();
    let events: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(": hrtimer"))
        .map(|l| l.split(": ").nth(1).unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "hrtimer_start",
            "hrtimer_cancel",
            "hrtimer_start",
            "hrtimer_cancel"
        ]
    );
    // comm is cut to 15 bytes, as TASK_COMM_LEN does.
    assert!(text.contains(" a-task-with-a-l-1000  [000]     0.000000010: hrtimer_start: "));
    // The script counts two slices: 30 ns (restart) and 30 ns (cancel), both bucket 0.
    assert_eq!(
        support::slice_hist(&text),
        [("a-task-with-a-l".to_string(), [(0, 2)].into())].into()
    );
}

#[test]
fn text_uses_lanes_up_to_eight_cpus_and_a_prefix_beyond() {
    let log = [
        rec(1500, 3, Some(0), LogKind::TaskStart),
        rec(
            2000,
            3,
            None,
            LogKind::Switch {
                prev: None,
                next: Some(0),
            },
        ),
        rec(2500, 0, None, LogKind::ExitToUser),
    ];
    let lanes = String::from_utf8(render(Format::Text, &input(&log, 4)).unwrap()).unwrap();
    assert!(lanes.contains("#    time/us  cpu0"), "{lanes}");
    assert!(
        lanes.contains("       2.500  idle: exit_to_user"),
        "{lanes}"
    );
    let many = String::from_utf8(render(Format::Text, &input(&log, 9)).unwrap()).unwrap();
    assert!(
        many.contains("       1.500  cpu3    T0 a-task-with-a-long-name: task_start"),
        "{many}"
    );
    assert!(!many.contains("time/us"));
}

#[test]
fn inconsistent_inputs_are_errors_not_panics() {
    let start = |t, cpu, task| rec(t, cpu, Some(task), LogKind::TaskStart);
    let cases: [(Vec<LogRecord>, &str); 4] = [
        (vec![start(0, 2, 0)], "CPU 2, but the trace has 2 CPUs"),
        (
            vec![start(0, 0, 7)],
            "names task 7, but the trace has 1 tasks",
        ),
        (
            vec![rec(0, 0, Some(0), LogKind::Wakeup { task: 9, cpu: 0 })],
            "names task 9",
        ),
        (
            vec![start(5, 0, 0), start(4, 0, 0)],
            "event 1 at 4 ns comes after an event at 5 ns",
        ),
    ];
    for (log, msg) in cases {
        for f in Format::ALL {
            let e: ExportError = render(f, &input(&log, 2)).unwrap_err();
            assert!(e.to_string().contains(msg), "{f}: {e}");
        }
    }
}
