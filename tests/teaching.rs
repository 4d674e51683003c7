//! What issue 17's newcomer tripped over, checked the way they met it: the default
//! scenario's report, the tutorial's steps and numbers against the tool's own output.

mod support;
use std::path::Path;

use slicesim::{explain::explain, scenario};
use support::scratch;

fn slicesim(args: &[&str]) -> String {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_slicesim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap()
}

fn read(p: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(p)).unwrap()
}

#[test]
fn the_default_report_does_not_mix_the_programs_view_with_the_kernels() {
    let s = slicesim(&["run", "scenarios/grant-revoke-race.toml"]);
    let tasks = s
        .lines()
        .find(|l| l.trim_start().starts_with("T0"))
        .expect("the task line");
    // Section 3 is the raced case, and the program counts it so.
    assert!(tasks.contains("raced=1"), "{tasks}");
    assert!(tasks.contains("yield_1=1"), "{tasks}");
    // The program's last read is named as one, not `granted=1` beside `sgrant: 3`.
    assert!(!tasks.contains(" granted="), "{tasks}");
    assert!(tasks.contains("read_granted=1"), "{tasks}");
    assert!(
        s.contains("tasks (each program's own counters: what it saw and did; the kernel's counts are rseq/stats):"),
        "{s}"
    );
}

#[test]
fn the_raced_section_runs_the_tutorials_four_lines() {
    let toml = read("scenarios/grant-revoke-race.toml");
    let steps = toml
        .lines()
        .find(|l| l.contains("\"load granted\""))
        .expect("section 3's steps");
    let order = [
        "\"request\"",
        "\"store request 0\"",
        "\"load granted\"",
        "\"yield\"",
    ];
    let pos: Vec<usize> = order.iter().map(|w| steps.find(w).expect(w)).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{steps}");
}

#[test]
fn the_tutorial_teaches_switching_on_and_the_whole_exit_sequence() {
    let t = read("docs/tutorial.md");
    assert!(t.contains("## 2. Switching it on"));
    assert!(t.contains("PR_RSEQ_SLICE_EXTENSION_SET"));
    assert!(t.contains("RSEQ_FLAG_SLICE_EXT_DEFAULT_ON"));
    assert!(t.contains("r = load slice_ctrl.request        // only to classify"));
    assert!(t.contains("unlock()                           // leave the section BEFORE yielding"));
    assert!(t.contains("**The grant/revoke race** is the window"));
    assert!(t.contains("only a syscall made while the grant is still active cancels it"));
    // README's phrase is defined where README sends newcomers.
    assert!(read("README.md").contains("grant/revoke race"));
    assert!(read("docs/protocol.md").contains("**The grant/revoke race**"));
}

#[test]
fn the_tutorials_numbers_are_the_tools() {
    let t = read("docs/tutorial.md");
    let l = scenario::load(Path::new("scenarios/grant-revoke-race.toml"), &[]).unwrap();
    let story = explain(&scenario::run(&l, None, None).unwrap().sim);
    for (tutorial, tool) in [
        ("reads `granted = 1` (□ `gr=1`) at 32.660 µs", "32.660 us  cpu0  T0 holder        loads granted: the thread reads granted = 1"),
        ("R2 revokes the\ngrant (33.8 µs)", "33.800 us  cpu0  T0 holder        on the way back to user mode the kernel finds NEED_RESCHED while the task already holds a grant"),
        ("(34.961 µs)", "34.961 us  cpu0  T0 holder        calls rseq_slice_yield()"),
        ("finds nothing else to run", "but nothing else is runnable, so the task keeps the CPU"),
    ] {
        assert!(t.contains(tutorial), "tutorial lacks {tutorial:?}");
        assert!(story.contains(tool), "explain lacks {tool:?}:\n{story}");
    }
}

#[test]
fn v1_words_read_as_bits_in_the_text_trace() {
    let dir = scratch("v1text");
    let trace = dir.join("v1.txt");
    slicesim(&[
        "run",
        "scenarios/races/v1-nonatomic-clear.toml",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    let t = std::fs::read_to_string(&trace).unwrap();
    assert!(
        t.contains("user_store @28 [req=1 gr=0 rsv=0000] (V1: REQUEST=1 GRANTED=0)"),
        "{t}"
    );
}
