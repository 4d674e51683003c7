//! `slicesim step`, driven like a person would: through a pipe and through a real
//! pseudo-terminal (util-linux `script`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use slicesim::scenario;

#[test]
fn g_jumps_from_decision_to_decision() {
    let l = scenario::load(Path::new("scenarios/grant-revoke-race.toml"), &[]).unwrap();
    let b = scenario::build(&l, None, None).unwrap();
    let mut sim = b.sim;
    let mut input = std::io::Cursor::new(b"g\ng\ng\ng\ng\ng\nq\n".to_vec());
    let mut out = Vec::new();
    slicesim::step::run(&mut sim, b.duration, &mut input, &mut out).unwrap();
    let s = String::from_utf8(out).unwrap();
    // Stops: registration's R1, the first update's R4 (clears of a word already 0 are
    // revocation paths too), the first grant, the yield's R6, the second grant, its R2.
    let stops: Vec<&str> = s.lines().filter(|l| l.starts_with("-- at ")).collect();
    assert_eq!(stops.len(), 7, "initial state + 6 stops:\n{s}");
    assert!(stops[1].starts_with("-- at 1.300 us"), "{stops:?}");
    assert!(stops[2].starts_with("-- at 1.450 us"), "{stops:?}");
    assert!(stops[3].starts_with("-- at 3.300 us"), "{stops:?}");
    assert!(s.contains("revoke R1"));
    assert!(s.contains("revoke R4"));
    assert!(s.contains("grant [req=1 gr=0 rsv=0000] -> [req=0 gr=1 rsv=0000]"));
    assert!(
        s.contains("T0   holder           running   word [request=0 granted=1]  kernel granted=1")
    );
    // The header counts engine events and log lines apart: the lines printed between two
    // headers are the difference of the log-line counts.
    let mut last = 0usize;
    let mut printed = 0usize;
    for l in s.lines() {
        if l.starts_with("  + ") || l.starts_with("step>   + ") {
            printed += 1;
        }
        if let Some(n) = l
            .strip_prefix("-- at ")
            .and_then(|r| r.split("log line ").nth(1))
        {
            let n: usize = n.trim_end_matches(") --").parse().unwrap();
            assert_eq!(n - last, printed, "{l}");
            (last, printed) = (n, 0);
        }
    }
    assert!(s.contains("slice timer armed for 8.300 us (T0)"));
    assert!(s.contains("revoke R6"));
    assert!(s.contains("revoke R2"));
}

#[test]
fn step_runs_in_a_pseudo_terminal() {
    let bin = env!("CARGO_BIN_EXE_slicesim");
    let cmd = format!("{bin} step scenarios/grant-revoke-race.toml");
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("util-linux `script` provides the pseudo-terminal");
    child.stdin.as_mut().unwrap().write_all(b"g\nc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("step> "), "the prompt reaches the terminal: {s}");
    assert!(s.contains("grant [req=1 gr=0 rsv=0000]"), "{s}");
    assert!(s.contains("-- the run is over at 60.000 us --"), "{s}");
}

#[test]
fn v1_words_are_shown_as_bits_as_explain_tells_them() {
    let l = scenario::load(Path::new("scenarios/races/v1-nonatomic-clear.toml"), &[]).unwrap();
    let b = scenario::build(&l, None, None).unwrap();
    let mut sim = b.sim;
    let mut input = std::io::Cursor::new(b"c\n".to_vec());
    let mut out = Vec::new();
    slicesim::step::run(&mut sim, b.duration, &mut input, &mut out).unwrap();
    let s = String::from_utf8(out).unwrap();
    assert!(s.contains("word [REQUEST=0 GRANTED=0]"), "{s}");
    assert!(!s.contains("word [req="), "{s}");
    assert!(
        s.contains("user_store @28 [req=1 gr=0 rsv=0000] (V1: REQUEST=1 GRANTED=0)"),
        "{s}"
    );
}
