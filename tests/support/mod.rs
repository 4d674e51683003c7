//! Helpers shared by the root package's integration tests (each test file uses some).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// A fresh scratch folder under the system's temporary directory, named
/// `slicesim-{tag}-XXXXXX`, removed with everything in it when the value is dropped, so
/// also when the test fails (panics). Keep it in a variable for as long as the test uses
/// its files: `let d = scratch("x"); ... d.join("f")`. It derefs to the folder's `Path`.
pub struct Scratch(tempfile::TempDir);

/// Creates a [`Scratch`] folder whose name starts with `slicesim-{tag}-`.
pub fn scratch(tag: &str) -> Scratch {
    let prefix = format!("slicesim-{tag}-");
    Scratch(
        tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir()
            .expect("create a scratch folder"),
    )
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// Run the `slicesim` binary with `args`, from the package's root (where `scenarios/`
/// and `docs/` are).
pub fn slicesim(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_slicesim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run slicesim")
}

/// `rseq-slice-hist.py`'s logic on `trace-cmd report` text: per comm, durations of
/// start→cancel in whole µs (or -1 for EXPIRED), keyed by the hrtimer pointer.
pub fn slice_hist(text: &str) -> BTreeMap<String, BTreeMap<i64, u64>> {
    let mut pending: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut hist: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(": "))
    {
        let (head, rest) = l.split_once("]").unwrap();
        let comm = head.trim().rsplit_once('-').unwrap().0.to_string();
        let (ts, rest) = rest.trim().split_once(": ").unwrap();
        let (secs, nanos) = ts.split_once('.').unwrap();
        let ts_ns = secs.parse::<u64>().unwrap() * 1_000_000_000 + nanos.parse::<u64>().unwrap();
        let (event, fields) = rest.split_once(": ").unwrap();
        let field = |k: &str| {
            fields
                .split(' ')
                .find_map(|f| f.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .unwrap()
                .to_string()
        };
        match event {
            "hrtimer_start" if field("function").contains("rseq_slice_expired") => {
                pending.insert(field("hrtimer"), (ts_ns, comm));
            }
            "hrtimer_cancel" => {
                if let Some((start, comm)) = pending.remove(&field("hrtimer")) {
                    let d = ts_ns - start;
                    assert!(d > 0, "the script's harmonic mean fails on 0");
                    *hist
                        .entry(comm)
                        .or_default()
                        .entry((d / 1000) as i64)
                        .or_default() += 1;
                }
            }
            "hrtimer_expire_entry" => {
                if let Some((_, comm)) = pending.remove(&field("hrtimer")) {
                    *hist.entry(comm).or_default().entry(-1).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    hist
}
