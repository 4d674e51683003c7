//! The real-kernel probe: the kernel selftest's loop (spec §9) on this machine's kernel.
//!
//! [`run`] does what `slice_test.c` does with the crate's port of it
//! ([`selftest_setup`], [`selftest_loop`], [`selftest_noise`]): pin to one CPU, register
//! the thread's own rseq area, enable the extension with prctl, start a noise thread (its
//! own [`LinuxPlatform`], sharing the `run` word) and run the main loop for the requested
//! duration. Along the way it records every result the kernel gave, so the report says
//! exactly what a kernel without the feature returns. `abi/examples/real_kernel_probe.rs`
//! is the command-line front end; [`ProbeReport::exit_code`] defines its exit codes.

use crate::consts::RSEQ_SIG;
use crate::ctrl::Revision;
use crate::platform::{CpuSet, Errno, Platform, SharedWord, SysResult, Syscall};
use crate::programs::selftest::{
    selftest_loop, selftest_noise, selftest_setup, SelftestCounters, SelftestParams,
    SelftestSetupError,
};
use crate::protocol::{self, RseqFlags, SetupError};

use super::{
    glibc_rseq, kernel_release, GlibcRseq, LinuxPlatform, RegisterError, SharedMem,
    DEFAULT_RSEQ_LEN, POST_MERGE_RSEQ_LEN,
};

/// The selftest variants the probe knows, by their `FIXTURE_VARIANT` names.
pub const VARIANTS: [&str; 3] = ["n2_2_50", "n50_2_50", "n2_2_50_no_yield"];

/// Exit code: setup succeeded, the loop ran and its counters satisfy the invariants.
pub const EXIT_OK: i32 = 0;
/// Exit code: bad command line.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: `sched_getaffinity`/`sched_setaffinity` failed.
pub const EXIT_AFFINITY: i32 = 3;
/// Exit code: registration failed because glibc owns the thread's rseq registration.
pub const EXIT_GLIBC_OWNS_RSEQ: i32 = 4;
/// Exit code: registration failed for another reason.
pub const EXIT_REGISTER: i32 = 5;
/// Exit code: `prctl(PR_RSEQ_SLICE_EXTENSION, SET, ENABLE)` failed (kernel without the
/// feature, feature disabled at boot, post-7.0 legacy registration, ...).
pub const EXIT_ENABLE: i32 = 6;
/// Exit code: the loop ran but its counters violate the selftest's invariants.
pub const EXIT_INVARIANTS: i32 = 7;

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// How long the main loop runs (`--duration-ms`, default 5000 like the selftest).
    pub duration_ms: u64,
    /// One of [`VARIANTS`] (`--variant`, default `n2_2_50`).
    pub variant: &'static str,
    /// Registration length (`--rseq-len`; default 64 for `--revision 7.2`, 32 for 7.0 and
    /// V1).
    pub rseq_len: u32,
    /// Protocol revision user code speaks (`--revision v1|7.0|7.2`, default 7.2; the old
    /// names `merged` and `post-merge` are accepted too).
    pub revision: Revision,
    /// Run the loop even when setup failed (`--force`): on a kernel that never grants,
    /// every section then counts as Success. The exit code still reports the failure.
    pub force: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            duration_ms: 5_000,
            variant: VARIANTS[0],
            rseq_len: POST_MERGE_RSEQ_LEN,
            revision: Revision::PostMerge,
            force: false,
        }
    }
}

/// Why the command line was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// `--help` was given.
    Help,
    /// A bad or unknown argument, with the reason.
    Bad(String),
}

/// The usage text of the probe.
pub const USAGE: &str = "usage: real_kernel_probe [--duration-ms N] \
     [--variant n2_2_50|n50_2_50|n2_2_50_no_yield] [--rseq-len N] \
     [--revision v1|7.0|7.2] [--force]";

impl ProbeOptions {
    /// Parse command-line arguments (without the program name).
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, ArgError> {
        let mut o = Self::default();
        let mut len_given = false;
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let (key, inline) = match arg.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| ArgError::Bad(format!("{name} needs a value")))
            };
            match key.as_str() {
                "-h" | "--help" => return Err(ArgError::Help),
                "--force" => o.force = true,
                "--duration-ms" => {
                    let v = value("--duration-ms")?;
                    o.duration_ms = v
                        .parse()
                        .map_err(|_| ArgError::Bad(format!("bad --duration-ms {v:?}")))?;
                }
                "--variant" => {
                    let v = value("--variant")?;
                    o.variant = VARIANTS
                        .into_iter()
                        .find(|&n| n == v)
                        .ok_or_else(|| ArgError::Bad(format!("unknown --variant {v:?}")))?;
                }
                "--rseq-len" => {
                    let v = value("--rseq-len")?;
                    o.rseq_len = v
                        .parse()
                        .ok()
                        .filter(|&n| n as usize <= super::AREA_SIZE)
                        .ok_or_else(|| ArgError::Bad(format!("bad --rseq-len {v:?} (max 256)")))?;
                }
                "--revision" => {
                    let v = value("--revision")?;
                    o.revision = Revision::from_name(&v)
                        .ok_or_else(|| ArgError::Bad(format!("unknown --revision {v:?}")))?;
                }
                _ => return Err(ArgError::Bad(format!("unknown argument {arg:?}"))),
            }
            len_given |= key == "--rseq-len";
        }
        // 7.0 and V1 kernels know only the 32-byte layout; 7.2 needs more for ABI v2.
        if !len_given && o.revision != Revision::PostMerge {
            o.rseq_len = DEFAULT_RSEQ_LEN;
        }
        Ok(o)
    }

    /// The selftest parameters: the variant's, with `total_ns` from `duration_ms`.
    /// Panics if `variant` is not one of [`VARIANTS`].
    pub fn params(&self) -> SelftestParams {
        let base = SelftestParams::variant(self.variant)
            .unwrap_or_else(|| panic!("unknown selftest variant {:?}", self.variant));
        SelftestParams {
            total_ns: self.duration_ms.saturating_mul(1_000_000),
            ..base
        }
    }
}

/// The main loop's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRun {
    /// The six selftest counters.
    pub counters: SelftestCounters,
    /// Noise bursts the noise thread ran.
    pub noise_bursts: u64,
    /// [`SelftestCounters::check_invariants`].
    pub invariants: Result<(), String>,
}

/// Everything the probe observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    /// What was run.
    pub options: ProbeOptions,
    /// `uname -r`.
    pub kernel: String,
    /// What glibc did with rseq.
    pub glibc: GlibcRseq,
    /// Address of the area registered.
    pub rseq_addr: u64,
    /// The thread's CPU affinity right after setup (a single CPU once pinned).
    pub affinity: Option<CpuSet>,
    /// The full setup result from [`selftest_setup`] (`Ok(pinned CPU)`).
    pub setup: Result<Option<usize>, SelftestSetupError>,
    /// The registration result, classified; `None` if setup failed before registering.
    pub register: Option<Result<(), RegisterError>>,
    /// `prctl(PR_RSEQ_SLICE_EXTENSION, SET, ENABLE)`; `None` if not attempted.
    pub prctl_set: Option<Result<(), Errno>>,
    /// `prctl(PR_RSEQ_SLICE_EXTENSION, GET)`, raw result, always attempted after setup.
    pub prctl_get: SysResult,
    /// `rseq_slice_yield()` outside any grant (0 on a kernel with the feature).
    pub slice_yield: SysResult,
    /// `rseq::flags` after setup, if the area is registered.
    pub flags: Option<RseqFlags>,
    /// `rseq::cpu_id` after setup, if the area is registered.
    pub cpu_id: Option<i32>,
    /// The loop's result, if it ran.
    pub run: Option<ProbeRun>,
}

impl ProbeReport {
    /// Did setup (affinity, registration, prctl) succeed?
    pub fn setup_ok(&self) -> bool {
        self.setup.is_ok()
    }

    /// The process exit code for this report (the `EXIT_*` constants).
    pub fn exit_code(&self) -> i32 {
        match &self.setup {
            Err(SelftestSetupError::GetAffinity(_) | SelftestSetupError::SetAffinity(_)) => {
                EXIT_AFFINITY
            }
            Err(SelftestSetupError::Setup(SetupError::Register(_))) => match self.register {
                Some(Err(RegisterError::GlibcOwnsRseq { .. })) => EXIT_GLIBC_OWNS_RSEQ,
                _ => EXIT_REGISTER,
            },
            Err(SelftestSetupError::Setup(SetupError::Enable(_))) => EXIT_ENABLE,
            Ok(_) => match &self.run {
                Some(ProbeRun {
                    invariants: Err(_), ..
                }) => EXIT_INVARIANTS,
                _ => EXIT_OK,
            },
        }
    }
}

fn res<T>(r: &Result<T, Errno>, ok: impl FnOnce(&T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => format!("-1 {} ({})", e.name(), e.0),
    }
}

impl core::fmt::Display for ProbeReport {
    /// The probe's output: `#`-prefixed TAP comment lines, then the selftest's counters.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let o = &self.options;
        let p = o.params();
        writeln!(
            f,
            "# rseq time slice extension probe, kernel {}",
            self.kernel
        )?;
        writeln!(
            f,
            "# variant {}: duration {} ms, slice {} ns, noise {} ns, sleep {} ns, no_yield {}",
            o.variant, o.duration_ms, p.slice_ns, p.noise_ns, p.sleep_ns, p.no_yield
        )?;
        writeln!(
            f,
            "# revision {}: rseq nr {}, rseq_slice_yield nr {}",
            o.revision.name(),
            crate::consts::nr::RSEQ,
            o.revision.slice_yield_nr()
        )?;
        writeln!(f, "# glibc: {}", self.glibc)?;
        match &self.setup {
            Err(SelftestSetupError::GetAffinity(e)) => writeln!(f, "# sched_getaffinity: {e}")?,
            Err(SelftestSetupError::SetAffinity(e)) => writeln!(f, "# sched_setaffinity: {e}")?,
            _ => {}
        }
        if let Some(mask) = &self.affinity {
            writeln!(f, "# affinity after setup: {mask:?}")?;
        }
        if let Some(reg) = &self.register {
            let r = reg.as_ref().map_err(RegisterError::errno);
            writeln!(
                f,
                "# rseq(addr {:#x}, len {}, flags 0x0, sig {:#x}) = {}",
                self.rseq_addr,
                o.rseq_len,
                RSEQ_SIG,
                res(&r, |_| "0".into())
            )?;
        }
        if let Some(cpu) = self.cpu_id {
            writeln!(f, "# rseq::cpu_id = {cpu}")?;
        }
        if let Some(set) = &self.prctl_set {
            writeln!(
                f,
                "# prctl(PR_RSEQ_SLICE_EXTENSION, SET, ENABLE, 0, 0) = {}",
                res(set, |_| "0".into())
            )?;
        }
        writeln!(
            f,
            "# prctl(PR_RSEQ_SLICE_EXTENSION, GET, 0, 0, 0) = {}",
            res(&self.prctl_get, |v| v.to_string())
        )?;
        writeln!(
            f,
            "# rseq_slice_yield() = {}",
            res(&self.slice_yield, |v| v.to_string())
        )?;
        if let Some(fl) = self.flags {
            writeln!(
                f,
                "# rseq::flags = {:#010x} (AVAILABLE {}, ENABLED {})",
                fl.0,
                u8::from(fl.available()),
                u8::from(fl.enabled())
            )?;
        }
        if let Err(e) = &self.setup {
            writeln!(f, "# setup failed: {e}")?;
            if let Some(hint) = self.register.and_then(|r| r.err()).and_then(|e| e.hint()) {
                writeln!(f, "# hint: {hint}")?;
            }
        }
        if let Some(run) = &self.run {
            if self.setup.is_err() {
                writeln!(f, "# --force: loop ran without the extension")?;
            }
            write!(f, "{}", run.counters)?;
            writeln!(f, "# Noise bursts {:12}", run.noise_bursts)?;
            match &run.invariants {
                Ok(()) => writeln!(f, "# invariants hold")?,
                Err(e) => writeln!(f, "# INVARIANT VIOLATED: {e}")?,
            }
        }
        writeln!(f, "# exit code {}", self.exit_code())
    }
}

/// Run the probe on the calling thread. The thread's CPU affinity is restored afterwards
/// and its registration dropped (the platform unregisters on drop).
pub fn run(options: &ProbeOptions) -> ProbeReport {
    let params = options.params();
    let shared = SharedMem::new(1);
    let run_word = SharedWord(0);
    let mut p = LinuxPlatform::new(shared.clone())
        .with_rseq_len(options.rseq_len)
        .with_revision(options.revision);
    let original_affinity = p.sched_getaffinity();

    let setup = selftest_setup(&mut p);
    let register = match &setup {
        Err(SelftestSetupError::GetAffinity(_) | SelftestSetupError::SetAffinity(_)) => None,
        Err(SelftestSetupError::Setup(SetupError::Register(e))) => {
            Some(Err(RegisterError::classify(*e)))
        }
        _ => Some(Ok(())),
    };
    let prctl_set = match &setup {
        Ok(_) => Some(Ok(())),
        Err(SelftestSetupError::Setup(SetupError::Enable(e))) => Some(Err(*e)),
        Err(_) => None,
    };
    let prctl_get =
        protocol::prctl_slice(&mut p, crate::consts::PR_RSEQ_SLICE_EXTENSION_GET, 0, 0, 0);
    let slice_yield = p.syscall(Syscall::RseqSliceYield);
    let affinity = p.sched_getaffinity().ok();
    let (flags, cpu_id) = if p.is_registered() {
        (Some(protocol::read_flags(&mut p)), Some(p.cpu_id()))
    } else {
        (None, None)
    };

    let run = (setup.is_ok() || options.force).then(|| {
        p.shared_store(run_word, 1);
        let noise_shared = shared.clone();
        let noise = std::thread::Builder::new()
            .name("probe-noise".into())
            .spawn(move || {
                let mut n = LinuxPlatform::new(noise_shared);
                selftest_noise(&mut n, &params, run_word)
            })
            .expect("spawning the noise thread");
        let counters = selftest_loop(&mut p, &params);
        p.shared_store(run_word, 0);
        let noise_bursts = noise.join().expect("noise thread panicked");
        ProbeRun {
            counters,
            noise_bursts,
            invariants: counters.check_invariants(params.no_yield),
        }
    });

    if let Ok(mask) = original_affinity {
        let _ = p.syscall(Syscall::SchedSetaffinity(mask));
    }
    ProbeReport {
        options: options.clone(),
        kernel: kernel_release(),
        glibc: glibc_rseq(),
        rseq_addr: p.rseq_addr(),
        affinity,
        setup,
        register,
        prctl_set,
        prctl_get,
        slice_yield,
        flags,
        cpu_id,
        run,
    }
}
