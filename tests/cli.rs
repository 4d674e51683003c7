//! The command line, driven as a user would.

use std::process::Command;

fn slicesim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_slicesim"))
        .args(args)
        .output()
        .expect("run slicesim")
}

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
    let dir = std::env::temp_dir().join(format!("slicesim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
    std::fs::remove_dir_all(&dir).unwrap();
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
