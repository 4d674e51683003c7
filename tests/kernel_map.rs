//! `docs/kernel-map.md` stays true: every model function it names exists in `sim/src`, and
//! every Linux 7.2.13 function it cites is defined where it says, when `slicesim-vm`'s
//! cache holds the source (skipped otherwise, with a message).

use std::path::{Path, PathBuf};

struct Row {
    line: usize,
    model_file: String,
    model_fn: String,
    kernel_fn: String,
    kernel_file: String,
    kernel_line: usize,
}

/// The text between the first pair of backticks in `cell`, and after it.
fn ticked(cell: &str) -> Option<(&str, &str)> {
    let a = cell.find('`')?;
    let b = a + 1 + cell[a + 1..].find('`')?;
    Some((&cell[a + 1..b], &cell[b + 1..]))
}

fn rows() -> Vec<Row> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docs/kernel-map.md")).unwrap();
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        // "", model, kernel, where, left out, ""
        if cells.len() != 6 || !cells[1].starts_with('`') {
            continue;
        }
        let (model_file, rest) = ticked(cells[1]).expect("model file");
        let (model_fn, _) = ticked(rest).unwrap_or_else(|| panic!("line {}: model fn", i + 1));
        let (kernel_fn, _) =
            ticked(cells[2]).unwrap_or_else(|| panic!("line {}: kernel fn", i + 1));
        let (kernel_file, kernel_line) = cells[3]
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("line {}: file:line", i + 1));
        out.push(Row {
            line: i + 1,
            model_file: model_file.to_string(),
            model_fn: model_fn.to_string(),
            kernel_fn: kernel_fn.to_string(),
            kernel_file: kernel_file.to_string(),
            kernel_line: kernel_line
                .parse()
                .unwrap_or_else(|_| panic!("line {}: line number", i + 1)),
        });
    }
    out
}

#[test]
fn every_model_function_in_the_kernel_map_exists() {
    let rows = rows();
    assert!(rows.len() > 40, "the map lost rows: {}", rows.len());
    let sim = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/src");
    let mut unnamed = Vec::new();
    for r in &rows {
        let src = std::fs::read_to_string(sim.join(&r.model_file))
            .unwrap_or_else(|e| panic!("kernel-map.md:{}: {}: {e}", r.line, r.model_file));
        let lines: Vec<&str> = src.lines().collect();
        let at = lines
            .iter()
            .position(|l| {
                l.contains(&format!("fn {}(", r.model_fn))
                    || l.contains(&format!("fn {}<", r.model_fn))
            })
            .unwrap_or_else(|| {
                panic!(
                    "kernel-map.md:{}: no fn {} in sim/src/{}",
                    r.line, r.model_fn, r.model_file
                )
            });
        // Its doc comment names the kernel function it follows.
        let doc: String = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with("///") || l.trim_start().starts_with("#["))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let name = r.kernel_fn.split('(').next_back().unwrap_or(&r.kernel_fn);
        let name = name.trim_start_matches('_');
        if !doc.contains(name) {
            unnamed.push(format!(
                "kernel-map.md:{}: the doc comment of {} (sim/src/{}) does not name `{}`",
                r.line, r.model_fn, r.model_file, r.kernel_fn
            ));
        }
    }
    assert!(unnamed.is_empty(), "{}", unnamed.join("\n"));
}

/// `linux-source-7.2` unpacked by `slicesim-vm`, if there.
fn kernel_tree() -> Option<PathBuf> {
    let cache = std::env::var_os("SLICESIM_VM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/slicesim-vm")))?;
    let mut versions: Vec<PathBuf> = std::fs::read_dir(cache.join("src"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("linux-source-7.2")))
        .filter(|p| p.is_dir())
        .collect();
    versions.sort();
    versions.pop()
}

#[test]
fn every_kernel_function_in_the_kernel_map_is_defined_where_it_says() {
    let Some(tree) = kernel_tree() else {
        eprintln!("SKIPPED: no linux-source-7.2 in slicesim-vm's cache (run `cargo run -p slicesim-vm -- fetch-source --series 7.2`)");
        return;
    };
    for r in rows() {
        let path = tree.join(&r.kernel_file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("kernel-map.md:{}: {}: {e}", r.line, path.display()));
        let lines: Vec<&str> = text.lines().collect();
        let needle = if r.kernel_fn.contains('(') {
            r.kernel_fn.clone()
        } else {
            format!("{}(", r.kernel_fn)
        };
        let lo = r.kernel_line.saturating_sub(3).max(1);
        let hi = (r.kernel_line + 3).min(lines.len());
        let found = (lo..=hi).any(|n| {
            let l = lines[n - 1];
            // A definition starts in column 0 (a call or a comment is indented).
            l.contains(&needle)
                && !l.starts_with([' ', '\t', '*', '/'])
                && !l.trim_end().ends_with(';')
        });
        assert!(
            found,
            "kernel-map.md:{}: {} is not defined at {}:{}",
            r.line, r.kernel_fn, r.kernel_file, r.kernel_line
        );
    }
}
