//! The licence boundary: the oracle links GPL-2.0 kernel code, so no package of the
//! workspace except the oracle itself may depend on it (normal or build dependencies:
//! what ends up in a binary). `cargo tree` on each of them must not name it.

use std::process::Command;

#[test]
fn nothing_else_in_the_workspace_depends_on_the_oracle() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for pkg in ["slicesim", "rseq-sim", "rseq-abi", "slicesim-vm"] {
        let out = Command::new(&cargo)
            .args(["tree", "--offline", "--locked", "--manifest-path", manifest])
            .args(["-p", pkg, "-e", "normal,build", "--prefix", "none"])
            .output()
            .expect("running cargo tree");
        assert!(
            out.status.success(),
            "cargo tree -p {pkg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(
            tree.contains(pkg),
            "cargo tree -p {pkg} printed no tree:\n{tree}"
        );
        assert!(
            !tree.lines().any(|l| l.starts_with("kernel-oracle ")),
            "{pkg} depends on the GPL-2.0 kernel-oracle:\n{tree}"
        );
    }
}

#[test]
fn the_oracle_is_gpl_and_unpublished() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("reading the manifest");
    assert!(manifest.contains("license = \"GPL-2.0-only\""));
    assert!(manifest.contains("publish = false"));
}
