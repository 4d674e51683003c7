//! A random campaign: the workloads, the selftests and the race catalogue run with
//! seeded tie-breaking, fresh seeds and random injections at every watched point, every
//! decision checked against the kernel code, until a number of decisions is reached
//! (`SLICESIM_ORACLE_CAMPAIGN_DECISIONS`, default 50,000; CI runs 1,000,000).
//!
//! Every run is a function of its index: the scenario (round robin), the seed (the
//! index) and the injection generator (seeded by the index), so a difference names the
//! run that reproduces it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kernel_oracle::diff::{Differ, Report};
use kernel_oracle::Kernel;
use rseq_sim::{Chooser, Draw, InjectPoint, Injection};

fn skip() -> bool {
    if let Err(e) = Kernel::lock() {
        eprintln!("SKIPPED: {e}");
        if std::env::var_os("SLICESIM_ORACLE_REQUIRED").is_some() {
            panic!("SLICESIM_ORACLE_REQUIRED is set but {e}");
        }
        return true;
    }
    false
}

/// splitmix64: a tiny seeded generator, so the campaign needs no other crate.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Draws from one generator and injects a random kind at about one watched point in 16,
/// at most `left` times per run.
struct Swarm {
    rng: Mix,
    left: u32,
}

impl Chooser for Swarm {
    fn draw(&mut self, _what: Draw) -> u64 {
        self.rng.next()
    }

    fn inject(&mut self, point: &InjectPoint) -> Option<Injection> {
        if self.left == 0 || self.rng.next() % 16 != 0 {
            return None;
        }
        let n = point.menu.len() as u64;
        if n == 0 {
            return None;
        }
        let k = point.menu.iter().nth((self.rng.next() % n) as usize)?;
        self.left -= 1;
        Some(k)
    }
}

fn files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut out = vec![root.join("grant-revoke-race.toml")];
    for dir in ["workloads", "selftest", "races"] {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .expect("scenario directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        fs.sort();
        out.extend(fs);
    }
    out
}

#[test]
fn a_random_campaign_decides_as_the_kernel_code() {
    if skip() {
        return;
    }
    let target: u64 = std::env::var("SLICESIM_ORACLE_CAMPAIGN_DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let loaded: Vec<_> = files()
        .iter()
        .filter_map(|f| slicesim::scenario::load(f, &[]).ok())
        // Only what the oracle checks: the 7.2 revision.
        .filter(|l| {
            slicesim::scenario::build_with(l, None, None, false)
                .is_ok_and(|b| b.sim.config().revision == rseq_abi::Revision::PostMerge)
        })
        .collect();
    assert!(loaded.len() > 5, "only {} scenarios", loaded.len());
    let mut all = Report::default();
    let started = Instant::now();
    let mut runs = 0u64;
    while all.total_checked() < target {
        let l = &loaded[(runs % loaded.len() as u64) as usize];
        let seed = runs;
        let swarm = Box::new(Swarm {
            rng: Mix(seed ^ 0x5eed),
            left: 3,
        });
        let tune = |c: &mut rseq_sim::SimConfig| c.tie_break = rseq_sim::TieBreak::Seeded;
        let mut b = slicesim::scenario::build_tuned(l, Some(seed), None, false, &tune, Some(swarm))
            .expect("bundled scenario builds");
        let ids: Vec<u32> = b.names.values().copied().collect();
        for id in ids {
            b.sim.watch(id);
        }
        let (differ, report) = Differ::new();
        report.lock().unwrap().context = format!(
            "campaign run {runs}: {} with seed {seed}, tie=seeded, Swarm(seed ^ 0x5eed, 3)",
            l.path.display()
        );
        b.sim.set_observer(Some(Box::new(differ)));
        b.sim.run_until(b.duration);
        b.sim.set_observer(None);
        all.merge(&report.lock().unwrap());
        runs += 1;
        if all.difference_count > 0 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "campaign: {runs} runs, {} decisions checked {:?}, skipped {:?}, {} differences, {secs:.1} s ({:.0} decisions/s)",
        all.total_checked(),
        all.checked,
        all.skipped,
        all.difference_count,
        all.total_checked() as f64 / secs.max(1e-9)
    );
    for d in &all.differences {
        eprintln!("{d}\n");
    }
    assert_eq!(
        all.difference_count, 0,
        "the model and the kernel code differ"
    );
}
