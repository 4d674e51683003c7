//! The committed measured profiles are provably from the committed calibration consoles:
//! converting `tests/fixtures/vm-7.2.13-icount/calibrate.console` gives
//! `profiles/qemu-icount0.toml` byte for byte, and the 2-vCPU boot's console
//! `profiles/qemu-icount0-2cpus.toml` (issue 14).

use slicesim_vm::calibrate::profile_from_console;

#[test]
fn the_measured_profiles_are_the_committed_consoles() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (dir, name) in [
        ("vm-7.2.13-icount", "qemu-icount0"),
        ("vm-7.2.13-icount-2cpus", "qemu-icount0-2cpus"),
    ] {
        let console_path = format!("tests/fixtures/{dir}/calibrate.console");
        let console = std::fs::read_to_string(root.join(&console_path)).unwrap();
        let profile = std::fs::read_to_string(root.join(format!("profiles/{name}.toml"))).unwrap();
        let converted = profile_from_console(&console, name).unwrap();
        assert_eq!(
            converted, profile,
            "regenerate with `slicesim-vm calibrate --from-console {console_path} --out profiles/{name}.toml --name {name}`"
        );
    }
}
