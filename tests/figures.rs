//! The tutorial's figures are what `docs/figures/regenerate.sh` makes, byte for byte: this
//! runs each of its `"$SLICESIM" run ...` lines into a temporary folder and compares.

mod support;
use std::path::Path;
use std::process::Command;

use support::scratch;

#[test]
fn committed_figures_are_exactly_what_regenerate_sh_produces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("docs/figures/regenerate.sh")).unwrap();
    let tutorial = std::fs::read_to_string(root.join("docs/tutorial.md")).unwrap();
    let out = scratch("figures");
    let mut made = Vec::new();
    for line in script
        .lines()
        .filter(|l| l.starts_with("\"$SLICESIM\" run "))
    {
        let args: Vec<String> = line
            .split_whitespace()
            .skip(1)
            .map(|a| a.replace("\"$OUT", out.to_str().unwrap()).replace('"', ""))
            .collect();
        let o = Command::new(env!("CARGO_BIN_EXE_slicesim"))
            .args(&args)
            .current_dir(root)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let svg = args
            .iter()
            .skip_while(|a| *a != "--timeline-svg")
            .nth(1)
            .expect("each line writes a figure");
        let name = Path::new(svg)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let fresh = std::fs::read(svg).unwrap();
        let committed = std::fs::read(root.join("docs/figures").join(&name))
            .unwrap_or_else(|_| panic!("docs/figures/{name} is not committed"));
        assert!(
            fresh == committed,
            "docs/figures/{name} differs from what `{line}` makes: run docs/figures/regenerate.sh"
        );
        assert!(
            tutorial.contains(&format!("figures/{name}")),
            "docs/tutorial.md does not show {name}"
        );
        made.push(name);
    }
    assert!(made.len() >= 8, "{made:?}");
    // No stale figure: every committed SVG is one the script makes.
    for e in std::fs::read_dir(root.join("docs/figures")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.ends_with(".svg") || made.contains(&name),
            "docs/figures/{name} is not made by regenerate.sh"
        );
    }
}
