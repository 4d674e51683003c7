//! The fidelity VM harness (`docs/fidelity.md`): a small kernel with the rseq time slice
//! extension, a busybox initramfs that runs the probes, and qemu to boot it.
//!
//! Everything here that does not need the network, a compiler or qemu is a pure function
//! and tested in the normal suite: the kernel option check ([`config`]), the initramfs
//! ([`initramfs`]), the boot command line and qemu's arguments ([`boot`]), a calibration console's profile
//! ([`calibrate`]) and the prerequisite report ([`prereq`]). `main.rs` strings
//! them together with apt-get, make and qemu.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod boot;
pub mod calibrate;
pub mod config;
pub mod initramfs;
pub mod prereq;

/// FNV-1a 64-bit: a cache key that stays the same across Rust versions and hosts.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The build cache key: the kernel source version and the option fragment. A new Debian
/// upload or an edited `kernel.config` gets its own build directory.
pub fn cache_key(source_version: &str, fragment: &str) -> String {
    let h = fnv1a(format!("{source_version}\n{fragment}").as_bytes());
    format!("{source_version}-{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_changes_with_the_fragment_and_the_version() {
        let a = cache_key("7.2.13-1", "CONFIG_RSEQ=y\n");
        assert_eq!(a, cache_key("7.2.13-1", "CONFIG_RSEQ=y\n"));
        assert_ne!(a, cache_key("7.2.13-1", "CONFIG_RSEQ=y\nCONFIG_ACPI=y\n"));
        assert_ne!(a, cache_key("7.2.14-1", "CONFIG_RSEQ=y\n"));
        assert!(a.starts_with("7.2.13-1-"));
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
