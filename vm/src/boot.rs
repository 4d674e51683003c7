//! The kernel command line and qemu's arguments for one boot.
//!
//! The options are the kernel's own (checked against `kernel/sched/core.c` and
//! `kernel/rseq.c` of the source the harness builds): `preempt=full|lazy` (needs
//! `CONFIG_PREEMPT_DYNAMIC`), `rseq_slice_ext=0` (the static key off), `rseq_debug=1` (the
//! syscall-entry checks of spec §7 item 3).

use std::path::Path;

/// The vCPUs of every boot.
pub const VCPUS: u32 = 4;
/// Guest memory, MiB.
pub const MEMORY_MIB: u32 = 256;

/// `preempt=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preempt {
    /// `preempt=full`.
    Full,
    /// `preempt=lazy`.
    Lazy,
}

/// qemu's accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
    /// Software emulation (TCG): always works, times are not hardware-like.
    Tcg,
}

impl Accel {
    /// The name qemu's `-accel` takes.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The boot options the harness exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boot {
    /// Preemption model.
    pub preempt: Preempt,
    /// `rseq_slice_ext=0` when false.
    pub slice_ext: bool,
    /// `rseq_debug=1` when true.
    pub debug: bool,
    /// debugfs `rseq/slice_ext_nsec` to set before the probes (not a boot option: `/init`
    /// writes it); `None` keeps the kernel's default.
    pub slice_ext_nsec: Option<u32>,
}

impl Default for Boot {
    fn default() -> Self {
        Self {
            preempt: Preempt::Full,
            slice_ext: true,
            debug: false,
            slice_ext_nsec: None,
        }
    }
}

impl Boot {
    /// The kernel command line: serial console, quiet (kernel messages would interleave
    /// with the results), the options, and `panic=-1` so a panic reboots, which
    /// `-no-reboot` turns into qemu exiting.
    pub fn cmdline(&self) -> String {
        let mut s = String::from("console=ttyS0 quiet panic=-1");
        s += match self.preempt {
            Preempt::Full => " preempt=full",
            Preempt::Lazy => " preempt=lazy",
        };
        if !self.slice_ext {
            s += " rseq_slice_ext=0";
        }
        if self.debug {
            s += " rseq_debug=1";
        }
        s
    }

    /// A short name for file names: `full`, `lazy-debug`, `full-noext`, `full-ext50000`, …
    pub fn label(&self) -> String {
        let mut s = String::from(match self.preempt {
            Preempt::Full => "full",
            Preempt::Lazy => "lazy",
        });
        if !self.slice_ext {
            s += "-noext";
        }
        if self.debug {
            s += "-debug";
        }
        if let Some(ns) = self.slice_ext_nsec {
            s += &format!("-ext{ns}");
        }
        s
    }
}

/// qemu-system-x86_64's arguments: no display, the serial console on stdio, no reboot.
pub fn qemu_args(kernel: &Path, initrd: &Path, boot: &Boot, accel: Accel) -> Vec<String> {
    let mut a: Vec<String> = vec!["-accel".into(), accel.name().into()];
    if accel == Accel::Kvm {
        a.extend(["-cpu".into(), "host".into()]);
    }
    a.extend(
        [
            "-smp",
            &VCPUS.to_string(),
            "-m",
            &MEMORY_MIB.to_string(),
            "-nographic",
            "-no-reboot",
            "-kernel",
            &kernel.display().to_string(),
            "-initrd",
            &initrd.display().to_string(),
            "-append",
            &boot.cmdline(),
        ]
        .map(String::from),
    );
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_reaches_the_command_line() {
        assert_eq!(
            Boot::default().cmdline(),
            "console=ttyS0 quiet panic=-1 preempt=full"
        );
        let b = Boot {
            preempt: Preempt::Lazy,
            slice_ext: false,
            debug: true,
            slice_ext_nsec: Some(50_000),
        };
        assert_eq!(
            b.cmdline(),
            "console=ttyS0 quiet panic=-1 preempt=lazy rseq_slice_ext=0 rseq_debug=1"
        );
        assert_eq!(b.label(), "lazy-noext-debug-ext50000");
    }

    #[test]
    fn qemu_gets_four_vcpus_the_accelerator_and_the_command_line() {
        let a = qemu_args(
            Path::new("/k"),
            Path::new("/i"),
            &Boot::default(),
            Accel::Tcg,
        );
        let after = |flag: &str| a[a.iter().position(|x| x == flag).unwrap() + 1].clone();
        assert_eq!(after("-accel"), "tcg");
        assert_eq!(after("-smp"), "4");
        assert_eq!(after("-kernel"), "/k");
        assert_eq!(after("-initrd"), "/i");
        assert_eq!(after("-append"), Boot::default().cmdline());
        assert!(a.contains(&"-no-reboot".to_string()));
        assert!(
            !a.contains(&"-cpu".to_string()),
            "TCG keeps qemu's default CPU"
        );
        let k = qemu_args(
            Path::new("/k"),
            Path::new("/i"),
            &Boot::default(),
            Accel::Kvm,
        );
        assert!(k.windows(2).any(|w| w == ["-cpu", "host"]));
    }
}
