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
    let mut input = std::io::Cursor::new(b"g\ng\ng\ng\nq\n".to_vec());
    let mut out = Vec::new();
    slicesim::step::run(&mut sim, b.duration, &mut input, &mut out).unwrap();
    let s = String::from_utf8(out).unwrap();
    // Stops: the first grant, the yield's R6, the second grant, its R2.
    let stops: Vec<&str> = s.lines().filter(|l| l.starts_with("-- at ")).collect();
    assert_eq!(stops.len(), 5, "initial state + 4 stops:\n{s}");
    assert!(stops[1].starts_with("-- at 3.300 us"), "{stops:?}");
    assert!(s.contains("grant [req=1 gr=0 rsv=0000] -> [req=0 gr=1 rsv=0000]"));
    assert!(
        s.contains("T0   holder           running   word [req=0 gr=1 rsv=0000]  kernel granted=1")
    );
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
