//! The committed measured profile is provably from the committed calibration console:
//! converting `tests/fixtures/vm-7.2.13-icount/calibrate.console` gives
//! `profiles/qemu-icount0.toml` byte for byte (issue 14).

use slicesim_vm::calibrate::profile_from_console;

#[test]
fn the_measured_profile_is_the_committed_consoles() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let console =
        std::fs::read_to_string(root.join("tests/fixtures/vm-7.2.13-icount/calibrate.console"))
            .unwrap();
    let profile = std::fs::read_to_string(root.join("profiles/qemu-icount0.toml")).unwrap();
    let converted = profile_from_console(&console, "qemu-icount0").unwrap();
    assert_eq!(
        converted, profile,
        "regenerate with `slicesim-vm calibrate --from-console tests/fixtures/vm-7.2.13-icount/calibrate.console --out profiles/qemu-icount0.toml --name qemu-icount0`"
    );
}
