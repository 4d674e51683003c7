//! The kernel command line and qemu's arguments for one boot.
//!
//! The options are the kernel's own (checked against `kernel/sched/core.c` and
//! `kernel/rseq.c` of the source the harness builds): `preempt=full|lazy` (needs
//! `CONFIG_PREEMPT_DYNAMIC`), `rseq_slice_ext=0` (the static key off), `rseq_debug=1` (the
//! syscall-entry checks of spec §7 item 3).

use std::path::Path;

/// The vCPUs of a boot or a calibration unless `--vcpus` says otherwise.
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

/// How the guest's clock runs under TCG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The guest clock follows the host's while kernel code runs tens of times slower:
    /// timings are not hardware-like (plain TCG, and KVM).
    Host,
    /// qemu's instruction counting: guest time advances `2^shift` ns per instruction,
    /// never with the host (`-icount shift=N,align=off,sleep=off`): runs are nearly
    /// reproducible and timings are shaped like hardware's (issue 14).
    Icount {
        /// ns per instruction = 2^shift.
        shift: u8,
    },
}

impl Clock {
    /// For labels and reports: `host`, `icount0`.
    pub fn name(self) -> String {
        match self {
            Clock::Host => "host".into(),
            Clock::Icount { shift } => format!("icount{shift}"),
        }
    }

    /// Parse `host`, `icount` (shift 0) or `icount=N` (N at most 10).
    pub fn parse(s: &str) -> Result<Clock, String> {
        match s {
            "host" => Ok(Clock::Host),
            "icount" => Ok(Clock::Icount { shift: 0 }),
            _ => {
                let n = s
                    .strip_prefix("icount=")
                    .ok_or_else(|| format!("unknown clock {s:?}: host, icount or icount=SHIFT"))?;
                let shift: u8 = n
                    .parse()
                    .ok()
                    .filter(|&v| v <= 10)
                    .ok_or_else(|| format!("icount shift {n:?}: an integer from 0 to 10"))?;
                Ok(Clock::Icount { shift })
            }
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
    /// Boot the kernel built with event tracing (`config::TRACE_FRAGMENT`); recorded as
    /// `slicesim.trace=1` on the command line.
    pub trace: bool,
    /// Virtual CPUs (`-smp`); at least 2, the probes pinning to CPU 1.
    pub vcpus: u32,
}

impl Default for Boot {
    fn default() -> Self {
        Self {
            preempt: Preempt::Full,
            slice_ext: true,
            debug: false,
            slice_ext_nsec: None,
            trace: false,
            vcpus: VCPUS,
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
        if self.trace {
            s += " slicesim.trace=1";
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
        if self.vcpus != VCPUS {
            s += &format!("-{}cpus", self.vcpus);
        }
        if self.trace {
            s += "-traced";
        }
        s
    }
}

/// qemu-system-x86_64's arguments: no display, the serial console on stdio, no reboot.
pub fn qemu_args(
    kernel: &Path,
    initrd: &Path,
    boot: &Boot,
    accel: Accel,
    clock: Clock,
) -> Vec<String> {
    let mut a: Vec<String> = vec!["-accel".into(), accel.name().into()];
    if accel == Accel::Kvm {
        a.extend(["-cpu".into(), "host".into()]);
    }
    if let (Accel::Tcg, Clock::Icount { shift }) = (accel, clock) {
        a.extend([
            "-icount".into(),
            format!("shift={shift},align=off,sleep=off"),
        ]);
    }
    a.extend(
        [
            "-smp",
            &boot.vcpus.to_string(),
            "-m",
            &MEMORY_MIB.to_string(),
            "-nographic",
            "-no-reboot",
            "-kernel",
            &kernel.display().to_string(),
            "-initrd",
            &initrd.display().to_string(),
            "-append",
            &format!("{} {}", boot.cmdline(), clock_param(accel, clock)),
        ]
        .map(String::from),
    );
    a
}

/// The boot parameter that records the guest clock on the kernel's command line (unknown
/// to the kernel, which leaves it alone), so that the console's `meta cmdline` says
/// whether its timings are deterministic: `slicesim.clock=icount0`, `=host` or `=kvm`.
/// `slicesim kernel-diff` holds rates to the kernel's only for an icount console.
pub fn clock_param(accel: Accel, clock: Clock) -> String {
    let name = match accel {
        Accel::Kvm => "kvm".to_string(),
        Accel::Tcg => clock.name(),
    };
    format!("slicesim.clock={name}")
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
            trace: true,
            vcpus: 2,
        };
        assert_eq!(
            b.cmdline(),
            "console=ttyS0 quiet panic=-1 preempt=lazy rseq_slice_ext=0 rseq_debug=1 slicesim.trace=1"
        );
        assert_eq!(b.label(), "lazy-noext-debug-ext50000-2cpus-traced");
        let smp = qemu_args(Path::new("k"), Path::new("i"), &b, Accel::Tcg, Clock::Host);
        let at = smp.iter().position(|x| x == "-smp").unwrap();
        assert_eq!(smp[at + 1], "2");
    }

    #[test]
    fn qemu_gets_four_vcpus_the_accelerator_and_the_command_line() {
        let a = qemu_args(
            Path::new("/k"),
            Path::new("/i"),
            &Boot::default(),
            Accel::Tcg,
            Clock::Host,
        );
        let after = |flag: &str| a[a.iter().position(|x| x == flag).unwrap() + 1].clone();
        assert_eq!(after("-accel"), "tcg");
        assert_eq!(after("-smp"), "4");
        assert_eq!(after("-kernel"), "/k");
        assert_eq!(after("-initrd"), "/i");
        assert_eq!(
            after("-append"),
            format!("{} slicesim.clock=host", Boot::default().cmdline()),
            "the guest clock is recorded on the command line"
        );
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
            Clock::Icount { shift: 0 },
        );
        assert!(k.windows(2).any(|w| w == ["-cpu", "host"]));
        assert!(
            !k.contains(&"-icount".to_string()),
            "KVM has no instruction counting"
        );
    }

    #[test]
    fn an_icount_clock_ties_guest_time_to_instructions_under_tcg() {
        let a = qemu_args(
            Path::new("/k"),
            Path::new("/i"),
            &Boot::default(),
            Accel::Tcg,
            Clock::Icount { shift: 0 },
        );
        let at = a.iter().position(|x| x == "-icount").unwrap();
        assert_eq!(a[at + 1], "shift=0,align=off,sleep=off");
        assert_eq!(Clock::parse("icount"), Ok(Clock::Icount { shift: 0 }));
        assert_eq!(Clock::parse("icount=3"), Ok(Clock::Icount { shift: 3 }));
        assert_eq!(Clock::parse("host"), Ok(Clock::Host));
        assert!(Clock::parse("icount=11").is_err());
        assert!(Clock::parse("wall").unwrap_err().contains("host, icount"));
        assert_eq!(Clock::Icount { shift: 0 }.name(), "icount0");
    }
}
