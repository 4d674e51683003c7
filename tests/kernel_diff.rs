//! `slicesim kernel-diff` and the comparison behind it, without a VM: the "kernel" side is
//! a frame the simulator itself produced, then edited the way a disagreeing kernel would.

mod support;
use support::{scratch, slicesim};

use rseq_abi::programs::probes::Frame;
use slicesim::fidelity::{self, KernelSetup, Verdict};

const CMDLINE: &str = "console=ttyS0 quiet panic=-1 preempt=full";

/// What the VM would print if the kernel behaved exactly like the simulator.
fn sim_frame(names: &[&str], cmdline: &str) -> Frame {
    let setup = KernelSetup::from_cmdline(cmdline).unwrap();
    let mut f = fidelity::run_in_sim(names, &setup.sim_config(0)).unwrap();
    f.meta = vec![
        ("kernel".into(), "7.2.13".into()),
        ("cmdline".into(), cmdline.into()),
        ("cpus".into(), "4".into()),
        ("revision".into(), "post-merge".into()),
    ];
    f
}

fn set(frame: &mut Frame, probe: &str, key: &str, value: i64) {
    let rec = frame.probes.iter_mut().find(|p| p.probe == probe).unwrap();
    rec.results.iter_mut().find(|(k, _)| k == key).unwrap().1 = value;
}

fn write_console(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_boot_options_choose_the_simulated_kernel() {
    let s = KernelSetup::from_cmdline("console=ttyS0 preempt=lazy rseq_slice_ext=0 rseq_debug=1")
        .unwrap();
    assert_eq!(s.preempt, rseq_sim::Preempt::Lazy);
    assert!(!s.slice_ext_boot);
    assert!(s.rseq_debug);
    let d = KernelSetup::from_cmdline("console=ttyS0 rseq_debug=bogus").unwrap();
    assert_eq!(
        d,
        KernelSetup::default(),
        "an unparsable bool is ignored, as the kernel does"
    );
    assert!(KernelSetup::from_cmdline("preempt=rt").is_err());
}

#[test]
fn the_probes_give_the_kernel_errnos_in_the_simulator() {
    let f = sim_frame(&["registration", "prctl_flags"], CMDLINE);
    let reg = f.probe("registration").unwrap();
    let get = |k: &str| reg.results.iter().find(|(x, _)| x == k).unwrap().1;
    assert_eq!(get("unknown_flag"), -22);
    assert_eq!(get("kernel_address"), -14);
    assert_eq!(get("again_same"), -16);
    assert_eq!(get("again_other_sig"), -1);
    assert_eq!(get("unregister"), 0);
    let pr = f.probe("prctl_flags").unwrap();
    let get = |k: &str| pr.results.iter().find(|(x, _)| x == k).unwrap().1;
    assert_eq!(get("unreg_set_enable"), -6, "ENXIO before registration");
    assert_eq!(get("flags_enabled"), 0x30, "AVAILABLE | ENABLED");
    assert_eq!(get("exit"), 0);
}

#[test]
fn an_identical_kernel_agrees_and_a_changed_errno_is_a_disagreement() {
    let sim = sim_frame(&["registration", "tampers_flags"], CMDLINE);
    let rows = fidelity::compare(&sim, &sim, 0.1);
    assert!(rows.iter().all(|r| r.verdict == Verdict::Equal), "{rows:?}");

    let mut kernel = sim.clone();
    set(&mut kernel, "registration", "again_same", -22);
    let rows = fidelity::compare(&kernel, &sim, 0.1);
    let bad: Vec<_> = rows.iter().filter(|r| r.verdict.fails()).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(
        (bad[0].key.as_str(), bad[0].kernel, bad[0].sim),
        ("again_same", Some(-22), Some(-16))
    );
    let table = fidelity::render(&rows);
    assert!(
        table.contains("| registration | again_same | discrete | -22 | -16 | DIFFERS |"),
        "{table}"
    );
    assert!(table.contains("1 discrete disagreements"));
}

#[test]
fn rates_are_compared_as_shares_within_the_tolerance() {
    let sim = sim_frame(&["selftest_n2_2_50"], CMDLINE);
    let total = sim.probe("selftest_n2_2_50").unwrap().results[0].1;
    let mut kernel = sim.clone();
    // A slower machine: a tenth of the sections, the same shape.
    set(&mut kernel, "selftest_n2_2_50", "total", total / 10);
    set(&mut kernel, "selftest_n2_2_50", "success", total / 10);
    let rows = fidelity::compare(&kernel, &sim, 0.1);
    let row = |k: &str| rows.iter().find(|r| r.key == k).unwrap().verdict;
    assert!(matches!(row("total"), Verdict::Within { .. }));
    assert!(matches!(row("success"), Verdict::Within { .. }));
    // Half the sections scheduled out on the kernel, none in the simulator: a shape change.
    set(&mut kernel, "selftest_n2_2_50", "scheduled", total / 20);
    let rows = fidelity::compare(&kernel, &sim, 0.1);
    let v = rows.iter().find(|r| r.key == "scheduled").unwrap().verdict;
    assert_eq!(v, Verdict::RateDiffers { delta: 0.0 });
    assert!(!v.fails(), "a rate never fails the exit code");
}

/// A probe without a loop `total` (the sequence probes) has its rates taken per committed
/// update: twice the kernel's grants per update is outside, not only "both non-zero".
#[test]
fn sequence_probe_rates_are_shares_of_their_commits() {
    let sim = sim_frame(&["seq_under_ext"], CMDLINE);
    let mut kernel = sim.clone();
    let get = |f: &Frame, k: &str| {
        f.probe("seq_under_ext")
            .unwrap()
            .results
            .iter()
            .find(|(key, _)| key == k)
            .unwrap()
            .1
    };
    let granted = get(&sim, "stats.sgrant");
    assert!(granted > 10, "the probe gets grants: {granted}");
    let rows = fidelity::compare(&kernel, &sim, 0.1);
    let tests = fidelity::rate_tests(&kernel, &sim, &rows);
    let test = |key: &str| tests.iter().find(|t| t.key == key).cloned();
    let yielded = test("yielded").expect("a rate test per commits");
    assert_eq!(yielded.base, "commits");
    assert!(yielded.holds(), "{yielded:?}");
    for key in ["yielded", "stats.sgrant", "stats.syield"] {
        let v = get(&sim, key);
        set(&mut kernel, "seq_under_ext", key, 2 * v);
    }
    let rows = fidelity::compare(&kernel, &sim, 0.1);
    let tests = fidelity::rate_tests(&kernel, &sim, &rows);
    let doubled = tests.iter().find(|t| t.key == "stats.sgrant").unwrap();
    assert_eq!(doubled.base, "commits");
    assert!(!doubled.holds(), "{doubled:?}");
}

#[test]
fn kernel_diff_exits_0_on_agreement_1_on_a_discrete_disagreement_4_on_a_cut_frame() {
    let names = [
        "registration",
        "prctl_flags",
        "default_on_legacy",
        "tampers_flags",
    ];
    let sim = sim_frame(&names, CMDLINE);
    let dir = scratch("kernel-diff");
    let ok = write_console(
        &dir,
        "ok.console",
        &format!("Booting from ROM...\n{}SLICESIM-VM DONE\n", sim.render()),
    );
    let out = slicesim(&["kernel-diff", ok.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("| tampers_flags | exit | discrete | 11 | 11 | equal |"),
        "{stdout}"
    );

    let mut kernel = sim.clone();
    set(&mut kernel, "tampers_flags", "exit", 0);
    let bad = write_console(&dir, "bad.console", &kernel.render());
    let out = slicesim(&["kernel-diff", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("| tampers_flags | exit | discrete | 0 | 11 | DIFFERS |"));

    // The VM died half-way through the frame: whole lines up to there.
    let text = sim.render();
    let lines: Vec<&str> = text.lines().collect();
    let half = lines[..lines.len() / 2].join("\n") + "\n";
    let cut = write_console(&dir, "cut.console", &half);
    let out = slicesim(&["kernel-diff", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no END line"));
}

/// The console output of real runs on Linux 7.2.13 (Debian's linux-source-7.2, built by
/// `slicesim-vm`, TCG, 4 vCPUs; terminal escapes stripped), one per boot configuration.
/// The simulator must keep agreeing with every discrete answer that kernel gave.
#[test]
fn the_simulator_agrees_with_every_discrete_answer_of_linux_7_2() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vm-7.2.13");
    for config in [
        "full",
        "lazy",
        "full-debug",
        "lazy-debug",
        "full-noext",
        "full-ext50000",
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{config}.console"))).unwrap();
        let kernel = Frame::parse(&text).unwrap();
        assert_eq!(kernel.meta("kernel"), Some("7.2.13"));
        let setup = KernelSetup::from_frame(&kernel).unwrap();
        let names: Vec<&str> = kernel.probes.iter().map(|p| p.probe.as_str()).collect();
        let sim = fidelity::run_in_sim(&names, &setup.sim_config(0)).unwrap();
        let rows = fidelity::compare(&kernel, &sim, 0.25);
        let bad: Vec<_> = rows.iter().filter(|r| r.verdict.fails()).collect();
        assert!(bad.is_empty(), "{config}: {bad:#?}");
        assert!(rows.len() > 150, "{config}: every probe reported");
    }
    // The issue-12 probes (Linux 7.2.13 paths found by reading the source), same kernel.
    let dir12 = dir.with_file_name("vm-7.2.13-issue12");
    for config in ["full", "lazy", "full-debug", "lazy-debug"] {
        let text = std::fs::read_to_string(dir12.join(format!("{config}.console"))).unwrap();
        let kernel = Frame::parse(&text).unwrap();
        assert_eq!(kernel.meta("kernel"), Some("7.2.13"));
        let setup = KernelSetup::from_frame(&kernel).unwrap();
        let names: Vec<&str> = kernel.probes.iter().map(|p| p.probe.as_str()).collect();
        assert_eq!(names.len(), 6, "{config}: every issue-12 probe ran");
        let sim = fidelity::run_in_sim(&names, &setup.sim_config(0)).unwrap();
        let rows = fidelity::compare(&kernel, &sim, 0.25);
        let bad: Vec<_> = rows.iter().filter(|r| r.verdict.fails()).collect();
        assert!(bad.is_empty(), "issue12 {config}: {bad:#?}");
    }
    // The boot options reached the kernel and the simulator alike.
    let text = std::fs::read_to_string(dir.join("lazy-debug.console")).unwrap();
    let setup = KernelSetup::from_frame(&Frame::parse(&text).unwrap()).unwrap();
    assert_eq!(
        (setup.preempt, setup.rseq_debug),
        (rseq_sim::Preempt::Lazy, true)
    );
}

/// The issue-12 probes in the simulator, as Linux 7.2.13's source says they must come out
/// (the VM fixtures under `tests/fixtures/vm-7.2.13-issue12` hold the kernel's answers).
#[test]
fn the_issue12_probes_give_linux_7_2_answers_in_the_simulator() {
    let names = [
        "legacy_ids_after_switch",
        "v2_ids_after_switch",
        "unregister_ids",
        "register_clears_word",
        "debug_syscall_return",
        "rseq_cs_syscall_migrate",
    ];
    let get = |f: &Frame, probe: &str, key: &str| {
        f.probe(probe)
            .unwrap()
            .results
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    };
    for cmdline in [CMDLINE, "console=ttyS0 quiet panic=-1 preempt=lazy"] {
        let f = sim_frame(&names, cmdline);
        assert_eq!(get(&f, "legacy_ids_after_switch", "rewritten"), Some(1));
        assert_eq!(get(&f, "v2_ids_after_switch", "kept"), Some(1));
        assert_eq!(get(&f, "unregister_ids", "cpu_id_start"), Some(0));
        assert_eq!(get(&f, "unregister_ids", "cpu_id"), Some(-1));
        assert_eq!(get(&f, "unregister_ids", "reserved"), Some(0xab));
        assert_eq!(get(&f, "register_clears_word", "request"), Some(0));
        assert_eq!(get(&f, "register_clears_word", "reserved"), Some(0));
        assert_eq!(get(&f, "debug_syscall_return", "getpid_returned"), Some(1));
        assert_eq!(get(&f, "rseq_cs_syscall_migrate", "migrated"), Some(1));
        for n in names {
            assert_eq!(get(&f, n, "exit"), Some(0), "{n}");
        }
    }
    let debug = sim_frame(
        &names,
        "console=ttyS0 quiet panic=-1 preempt=full rseq_debug=1",
    );
    for n in [
        "legacy_ids_after_switch",
        "debug_syscall_return",
        "rseq_cs_syscall_migrate",
    ] {
        assert_eq!(get(&debug, n, "exit"), Some(11), "{n} under rseq_debug");
    }
    // A v2 task that entered the kernel by a syscall and kept its IDs gets no rseq update
    // at all (rseq_sched_switch_event() raises nothing), so even rseq_debug has nothing
    // to check on the way out of the sleep.
    assert_eq!(get(&debug, "v2_ids_after_switch", "kept"), Some(1));
    assert_eq!(get(&debug, "unregister_ids", "cpu_id_start"), Some(0));
}

/// Restartable sequences against Linux 7.2.13 in the VM under qemu's instruction-counting
/// clock (`tests/fixtures/vm-7.2.13-icount`, `slicesim-vm run --clock icount`, issue 18):
/// every update is made exactly once on both sides, a sequence under an extension is
/// aborted only when its extension ran out (none are, on either side, since the real
/// backend stopped measuring its burn rate inside the first sequence), and the abort count
/// of 30 µs sequences beside the noise thread is the kernel's within the tolerance (610 and
/// 641 in the VM, 622 and 655 in the simulator). The `stats.*` deltas are issue 14's rate comparison and are
/// left out here.
#[test]
fn restartable_sequences_agree_with_linux_7_2_under_icount() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vm-7.2.13-icount");
    for config in ["full", "lazy"] {
        let text = std::fs::read_to_string(dir.join(format!("{config}.console"))).unwrap();
        let kernel = Frame::parse(&text).unwrap();
        assert_eq!(kernel.meta("kernel"), Some("7.2.13"));
        let setup = KernelSetup::from_frame(&kernel).unwrap();
        let names = ["seq_preempted", "seq_under_ext"];
        let sim = fidelity::run_in_sim(&names, &setup.sim_config(0)).unwrap();
        let rows = fidelity::compare(&kernel, &sim, 0.25);
        let seq: Vec<_> = rows
            .iter()
            .filter(|r| r.probe.starts_with("seq_"))
            .collect();
        assert!(seq.len() >= 20, "{config}: both probes compared");
        let bad: Vec<_> = seq
            .iter()
            .filter(|r| r.verdict.fails() && !r.key.starts_with("stats."))
            .collect();
        assert!(bad.is_empty(), "{config}: {bad:#?}");
        let value = |frame: &Frame, probe: &str, key: &str| {
            frame
                .probe(probe)
                .unwrap()
                .results
                .iter()
                .find(|(k, _)| k == key)
                .map_or(0, |(_, v)| *v)
        };
        assert_eq!(value(&kernel, "seq_preempted", "counter"), 2000);
        assert!(value(&kernel, "seq_preempted", "aborts") > 100);
        for (side, frame) in [("kernel", &kernel), ("simulator", &sim)] {
            let aborts = value(frame, "seq_under_ext", "aborts");
            let expired = value(frame, "seq_under_ext", "stats.sexpir");
            assert!(
                aborts <= expired,
                "{config}, {side}: {aborts} extended sequences aborted, {expired} expiries"
            );
        }
    }
}

/// Rates against the uncertainty of their own counts (issue 14): every rate gets the
/// kernel's 95 % interval, its relative difference and a z-test; a rate holds within 10 %
/// or within what its counts allow. A console taken under the instruction-counting clock
/// (`slicesim.clock=icount0` on its command line) holds the simulator to its rates: exit 6
/// when one does not hold, distinct from a discrete disagreement's 1; `--report-rates`
/// only reports. A plain-TCG console's rates are the emulator's: reported unless
/// `--fail-on-rates`.
#[test]
fn kernel_diff_holds_icount_rates_and_fails_with_its_own_code() {
    let console = "tests/fixtures/vm-7.2.13-icount/full.console";
    // The built-in machine is not qemu's: its n2_2_50 loop runs 16 % more iterations.
    let out = slicesim(&["kernel-diff", console, "--profile", "default"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(text.contains("0 discrete disagreements"), "{text}");
    assert!(
        text.contains("rates: held to the kernel's (guest clock icount0)"),
        "{text}"
    );
    let total = text
        .lines()
        .find(|l| l.starts_with("| selftest_n2_2_50 | total |") && l.contains(" % |"))
        .unwrap_or_else(|| panic!("no total rate row: {text}"));
    assert!(total.ends_with("OUTSIDE |"), "{total}");
    let report = slicesim(&[
        "kernel-diff",
        console,
        "--profile",
        "default",
        "--report-rates",
    ]);
    assert_eq!(report.status.code(), Some(0));
    let tcg = "tests/fixtures/vm-7.2.13/full.console";
    let out = slicesim(&["kernel-diff", tcg]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("rates: reported only"), "{text}");
    assert!(
        text.contains("OUTSIDE"),
        "plain TCG's rates are not the kernel's: {text}"
    );
    let strict = slicesim(&["kernel-diff", tcg, "--fail-on-rates"]);
    assert_eq!(strict.status.code(), Some(6));
}

/// Without `--profile`, an icount console is simulated on the profile measured on its own
/// machine (4 or 2 vCPUs), and says so; a plain-TCG console keeps the built-in figures.
#[test]
fn kernel_diff_picks_the_profile_measured_on_the_consoles_machine() {
    for (console, name) in [
        (
            "tests/fixtures/vm-7.2.13-icount/full.console",
            "qemu-icount0 ",
        ),
        (
            "tests/fixtures/vm-7.2.13-icount-2cpus/full.console",
            "qemu-icount0-2cpus ",
        ),
    ] {
        let chosen = slicesim(&["kernel-diff", console]);
        let named = slicesim(&["kernel-diff", console, "--profile", name.trim()]);
        let text = String::from_utf8_lossy(&chosen.stdout).into_owned();
        assert!(
            text.contains(&format!("machine profile: {name}"))
                && text.contains("measured on this console's machine"),
            "{text}"
        );
        // The same simulation as naming the profile: every row but the header line.
        let rows = |o: &std::process::Output| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with('|'))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(&chosen), rows(&named), "{console}");
    }
    let tcg = slicesim(&["kernel-diff", "tests/fixtures/vm-7.2.13/full.console"]);
    let text = String::from_utf8_lossy(&tcg.stdout).into_owned();
    assert!(text.contains("machine profile: default\n"), "{text}");
}

/// The rates outside their tolerance on the consoles of 2-vCPU boots
/// (`tests/fixtures/vm-7.2.13-icount-2cpus`, profile `qemu-icount0-2cpus`), console by
/// console; on 4 vCPUs every rate holds. One console's n50_2_50 expiries: 216 of 2,738
/// grants on `lazy` against the simulator's 261 of 2,798, where `lazy-debug` had 255 and
/// two earlier boots of the same kernel 233 and 248: the kernel's own spread from boot
/// to boot, wider than the counts' interval (docs/fidelity.md).
const KNOWN_GAPS_2CPUS: [(&str, &str, &str); 2] = [
    ("lazy", "selftest_n50_2_50", "scheduled per total"),
    ("lazy", "selftest_n50_2_50", "stats.srevok per stats.sgrant"),
];

/// The configurations every fixture directory has a console of.
const CONFIGS: [&str; 7] = [
    "full",
    "full-2",
    "full-3",
    "lazy",
    "full-debug",
    "lazy-debug",
    "full-ext50000",
];

/// Hold the simulator on `profile` to every console in `dir`: no discrete disagreement,
/// and no rate outside its tolerance unless `known(console, probe, rate)` says it is a
/// known gap; every known gap must still be outside somewhere (a gap that holds everywhere
/// is closed and must leave the list); the 50 µs-extension console holds everything.
fn hold_rates(dir: &str, profile: &str, known: &[(&str, &str, &str)]) {
    let is_known = |config: &str, p: &str, r: &str| {
        known
            .iter()
            .any(|&(c, kp, kr)| (c == "*" || c == config) && kp == p && kr == r)
    };
    let mut report = String::new();
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for config in CONFIGS {
        let console = format!("{dir}/{config}.console");
        let out = slicesim(&["kernel-diff", &console, "--profile", profile]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains(" 0 discrete disagreements"),
            "{config}: {text}"
        );
        let outside: Vec<(String, String)> = text
            .lines()
            .filter(|l| l.ends_with("| OUTSIDE |"))
            .map(|l| {
                let c: Vec<&str> = l.split('|').map(str::trim).collect();
                (c[1].to_string(), c[2].to_string())
            })
            .collect();
        let new: Vec<_> = outside
            .iter()
            .filter(|(p, r)| !is_known(config, p, r))
            .collect();
        assert!(
            new.is_empty(),
            "{dir}/{config}: rates that held before: {new:?}\n{text}"
        );
        let want = if outside.is_empty() { 0 } else { 6 };
        assert_eq!(out.status.code(), Some(want), "{config}: {text}");
        report += &format!("{config}: {} known gaps\n", outside.len());
        if config == "full-ext50000" {
            assert!(outside.is_empty(), "{text}");
        }
        seen.extend(outside.into_iter().map(|(p, r)| (config.to_string(), p, r)));
    }
    eprintln!("{dir}:\n{report}");
    // A gap that no console shows any more has been closed: take it off the list, so that
    // it cannot come back unnoticed.
    let closed: Vec<_> = known
        .iter()
        .filter(|(c, p, r)| {
            !seen
                .iter()
                .any(|(sc, sp, sr)| (*c == "*" || sc == c) && sp == p && sr == r)
        })
        .collect();
    assert!(
        closed.is_empty(),
        "{dir}: known gaps that now hold everywhere: {closed:?}"
    );
}

/// Issue 14 in CI: every icount console of the 4-vCPU boots (three boots of
/// `preempt=full`, `lazy`, both with `rseq_debug=1`, and `slice_ext_nsec` 50000) against
/// the simulator on the profile measured on the same machine: every rate holds, within
/// 10 % or its counts' interval.
#[test]
fn every_icount_console_holds_its_rates_on_the_measured_profile() {
    hold_rates("tests/fixtures/vm-7.2.13-icount", "qemu-icount0", &[]);
}

/// The same on 2-vCPU boots (`slicesim-vm run --vcpus 2`) and the profile calibrated on
/// one: the configuration with the fewest emulator stalls the probes can run on.
#[test]
fn every_2_vcpu_icount_console_holds_its_rates_on_its_profile() {
    hold_rates(
        "tests/fixtures/vm-7.2.13-icount-2cpus",
        "qemu-icount0-2cpus",
        &KNOWN_GAPS_2CPUS,
    );
}
