//! `--plot`: SVG figures of a run's metrics and of a sweep, written whole.

mod support;
use support::{scratch, slicesim};

/// `slicesim run SCENARIO --plot FILE`: the SVG it wrote.
fn run_plot(scenario: &str, tag: &str) -> String {
    let d = scratch(&format!("plot-{tag}"));
    let f = d.join("plot.svg");
    let o = slicesim(&["run", scenario, "--plot", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(&f).unwrap()
}

#[test]
fn run_plot_draws_the_slice_histogram_and_percentiles() {
    let svg = run_plot("scenarios/grant-revoke-race.toml", "run");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("scenario grant-revoke-race"));
    assert!(
        svg.contains("grant length (n = 3)"),
        "the race has three grants"
    );
    assert!(
        svg.lines().any(|l| l.trim() == "EXP"),
        "the EXPIRED bucket is labelled"
    );
}

#[test]
fn run_plot_draws_lock_wait_and_hold_where_the_program_marks_them() {
    let svg = run_plot("scenarios/workloads/lock-markers-by-hand.toml", "lock");
    assert!(svg.contains("lock wait (n = 2)"), "two acquisitions");
    assert!(svg.contains("lock hold (n = 2)"), "two holds");
}

#[test]
fn sweep_plot_draws_a_panel_per_counter_against_the_varied_key() {
    let d = scratch("plot-sweep");
    let f = d.join("plot.svg");
    let o = slicesim(&[
        "sweep",
        "scenarios/workloads/spinlock-ext.toml",
        "--vary",
        "machine.slice_ext_nsec=5000,20000",
        "--seeds",
        "2",
        "--plot",
        f.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(&f).unwrap();
    // Text nodes stand on lines of their own.
    let texts = [
        "granted",
        "expired",
        "revoked",
        "yielded",
        "machine.slice_ext_nsec",
        "20000",
    ];
    for t in texts {
        assert!(svg.lines().any(|l| l.trim() == t), "missing text {t}");
    }
}
