//! A long generative run: `cargo run --release --example soak -- --cases N [--seed S]
//! [--out DIR]`. Each case is a generated scenario or a mutated bundled one
//! (`slicesim::soak`); every failure is shrunk and saved as `DIR/fail-SEED.toml`
//! (default `soak-failures/`). Exits 1 if any case failed.

use std::path::{Path, PathBuf};

use slicesim::soak;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let cases: u64 = arg("--cases").map_or(1000, |v| v.parse().expect("--cases N"));
    let seed: u64 = arg("--seed").map_or(0, |v| v.parse().expect("--seed S"));
    let out = PathBuf::from(arg("--out").unwrap_or_else(|| "soak-failures".into()));
    let bundled = bundled(Path::new("scenarios"));
    let scratch = std::env::temp_dir().join(format!("slicesim-soak-{}.toml", std::process::id()));
    let (mut failed, mut ran, mut invalid, mut budget) = (0, 0, 0, 0);
    for i in 0..cases {
        let case = seed.wrapping_add(i);
        let bytes = if case % 2 == 0 || bundled.is_empty() {
            soak::generate(case).into_bytes()
        } else {
            let text = std::fs::read_to_string(&bundled[(case as usize / 2) % bundled.len()])
                .expect("read a bundled scenario");
            soak::mutate(&text, case)
        };
        match soak::check_case(&scratch, &bytes) {
            Ok(soak::Verdict::Ran { .. }) => ran += 1,
            Ok(soak::Verdict::Invalid(_)) => invalid += 1,
            Ok(soak::Verdict::Budget(_)) => budget += 1,
            Err(why) => {
                failed += 1;
                std::fs::create_dir_all(&out).expect("create the failures folder");
                let small = soak::shrink(&scratch, &bytes);
                let file = out.join(format!("fail-{case}.toml"));
                std::fs::write(&file, &small).expect("save the failing case");
                eprintln!("case {case}: {why} (saved shrunk as {})", file.display());
            }
        }
        if (i + 1) % 100 == 0 {
            eprintln!(
                "{} cases: {ran} ran, {invalid} invalid, {budget} budget, {failed} failed",
                i + 1
            );
        }
    }
    let _ = std::fs::remove_file(&scratch);
    println!("{cases} cases: {ran} ran, {invalid} invalid, {budget} stopped by a budget, {failed} failed");
    std::process::exit(i32::from(failed > 0));
}

/// Every `*.toml` under `dir`, sorted.
fn bundled(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(bundled(&p));
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    out.sort();
    out
}
