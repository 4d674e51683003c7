//! Machine profiles (issue 14): a scenario's `[machine] profile`, `--profile` on the
//! commands, and which figure wins.

mod support;
use std::path::Path;

use slicesim::scenario;
use support::{scratch, slicesim, Scratch};

fn dir(name: &str) -> Scratch {
    scratch(&format!("profiles-{name}"))
}

fn scenario_text(machine: &str) -> String {
    format!(
        "[scenario]\nname = \"p\"\nduration = \"1ms\"\n[machine]\n{machine}\n[[task]]\nname = \"s\"\nprogram = \"spinner\"\n"
    )
}

fn jitter(path: &Path, sets: &[&str]) -> u64 {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let l = scenario::load(path, &sets).unwrap();
    scenario::build(&l, None, None)
        .unwrap()
        .sim
        .config()
        .timer_jitter_ns
}

#[test]
fn a_profile_sets_the_knobs_the_scenario_leaves_and_set_still_wins() {
    let d = dir("wins");
    let plain = d.join("plain.toml");
    std::fs::write(&plain, scenario_text("cpus = 1")).unwrap();
    let icount = d.join("icount.toml");
    std::fs::write(&icount, scenario_text("profile = \"qemu-icount0\"")).unwrap();
    let own = d.join("own.toml");
    std::fs::write(
        &own,
        scenario_text("profile = \"qemu-icount0\"\ntimer_jitter = \"3us\""),
    )
    .unwrap();
    assert_eq!(jitter(&plain, &[]), 750, "the default profile");
    assert_eq!(jitter(&icount, &[]), 735, "the profile's figure");
    assert_eq!(jitter(&own, &[]), 3_000, "the scenario's own key wins");
    assert_eq!(
        jitter(&icount, &["machine.timer_jitter=\"1us\""]),
        1_000,
        "--set wins"
    );
    assert_eq!(
        jitter(&plain, &["machine.profile=qemu-icount0"]),
        735,
        "a profile chosen on the command line"
    );
    // A profile file, relative to the scenario's folder.
    std::fs::write(
        d.join("mine.toml"),
        "[profile]\nname = \"mine\"\n[machine]\ntimer_jitter = \"7us\"\n",
    )
    .unwrap();
    let file = d.join("file.toml");
    std::fs::write(&file, scenario_text("profile = \"mine.toml\"")).unwrap();
    assert_eq!(jitter(&file, &[]), 7_000);
}

#[test]
fn the_commands_take_profile_and_a_wrong_one_is_an_invalid_scenario() {
    let d = dir("cli");
    let p = d.join("s.toml");
    std::fs::write(&p, scenario_text("cpus = 1")).unwrap();
    let out = slicesim(&["run", p.to_str().unwrap(), "--profile", "qemu-icount0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = slicesim(&["run", p.to_str().unwrap(), "--profile", "qemu-icount9"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("machine.profile") && err.contains("default, qemu-icount0"),
        "{err}"
    );
    // A profile may only set cost knobs.
    std::fs::write(
        d.join("bad.toml"),
        "[profile]\nname = \"bad\"\n[machine]\ncpus = 8\n",
    )
    .unwrap();
    let s = d.join("uses-bad.toml");
    std::fs::write(&s, scenario_text("profile = \"bad.toml\"")).unwrap();
    let out = slicesim(&["run", s.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("`cpus` is not a cost knob"), "{err}");
    assert!(
        err.contains("uses-bad.toml:"),
        "the scenario's position: {err}"
    );
}

#[test]
fn kernel_diff_simulates_on_the_profile_it_is_given() {
    let console = "tests/fixtures/vm-7.2.13-icount/full.console";
    let out = slicesim(&[
        "kernel-diff",
        console,
        "--profile",
        "qemu-icount0",
        "--report-rates",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("machine profile: qemu-icount0"), "{text}");
    let default = slicesim(&[
        "kernel-diff",
        console,
        "--profile",
        "default",
        "--report-rates",
    ]);
    assert!(String::from_utf8_lossy(&default.stdout).contains("machine profile: default"));
    assert_ne!(
        text,
        String::from_utf8_lossy(&default.stdout),
        "the profile changes the run"
    );
}

/// The measured profile (`slicesim-vm calibrate`, issue 14) loads, sets every cost knob, and
/// keeps the knobs no benchmark covers at the built-in figures.
#[test]
fn the_measured_icount_profile_loads_and_keeps_the_unmeasured_knobs_at_the_default() {
    use slicesim::profile::Profile;
    let measured = Profile::load("profiles/qemu-icount0.toml", None).unwrap();
    let default = Profile::load("default", None).unwrap();
    assert_eq!(measured.name, "qemu-icount0");
    assert_eq!(measured.knobs.len(), slicesim::profile::KNOBS.len());
    for k in [
        "fair_class",
        "sched_base_slice",
        "wakeup_gran",
        "sleeper_credit",
        "fast_clock_skew_ns",
        "syscall_work_delay",
    ] {
        assert_eq!(measured.knobs[k], default.knobs[k], "{k}");
    }
    let mut cfg = rseq_sim::SimConfig::default();
    measured.apply(&mut cfg);
    assert!(cfg.syscall_ns > 0 && cfg.ctx_switch_ns > 0 && cfg.irq_latency_ns > 0);
    let out = slicesim(&[
        "run",
        "scenarios/selftest/n2_2_50.toml",
        "--profile",
        "profiles/qemu-icount0.toml",
    ]);
    // The scenario's expectations are a real machine's; on the emulated one a vCPU stall
    // after a tick can expire a grant (as the icount kernel does now and then), so the
    // expectations of no expiry and no revoke may fail, and only those.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{text}");
    assert!(text.contains("of 13 expectations held"), "{text}");
    let failed: Vec<&str> = text.lines().filter(|l| l.contains("FAIL  ")).collect();
    assert!(
        failed
            .iter()
            .all(|l| l.contains("FAIL  expired = 0") || l.contains("FAIL  revoked = 0")),
        "{failed:?}"
    );
}
