//! Every constant of the time slice extension ABI, with its kernel name.
//!
//! Sources: `include/uapi/linux/rseq.h`, `include/uapi/linux/prctl.h`, the syscall tables
//! (`arch/x86/entry/syscalls/syscall_64.tbl`, `syscall_32.tbl`,
//! `include/uapi/asm-generic/unistd.h`) and `kernel/rseq.c` (spec §1.4–§1.6).

// --- rseq() flags -------------------------------------------------------------------------

/// `RSEQ_FLAG_UNREGISTER`: `rseq()` flag that unregisters the calling thread's area.
pub const RSEQ_FLAG_UNREGISTER: u32 = 1 << 0;
/// `RSEQ_FLAG_SLICE_EXT_DEFAULT_ON`: register with the slice extension already enabled
/// (merged 7.0; rejected with `EINVAL` by V1 kernels).
pub const RSEQ_FLAG_SLICE_EXT_DEFAULT_ON: u32 = 1 << 1;

// --- rseq CPU id sentinels ----------------------------------------------------------------

/// `RSEQ_CPU_ID_UNINITIALIZED` (-1): `cpu_id` before the kernel first wrote it.
pub const RSEQ_CPU_ID_UNINITIALIZED: i32 = -1;
/// `RSEQ_CPU_ID_REGISTRATION_FAILED` (-2): value user space stores when registration failed.
pub const RSEQ_CPU_ID_REGISTRATION_FAILED: i32 = -2;

// --- rseq_cs / rseq::flags bits -----------------------------------------------------------

/// `RSEQ_CS_FLAG_NO_RESTART_ON_PREEMPT_BIT` (historical, unsupported).
pub const RSEQ_CS_FLAG_NO_RESTART_ON_PREEMPT_BIT: u32 = 0;
/// `RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL_BIT` (historical, unsupported).
pub const RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL_BIT: u32 = 1;
/// `RSEQ_CS_FLAG_NO_RESTART_ON_MIGRATE_BIT` (historical, unsupported).
pub const RSEQ_CS_FLAG_NO_RESTART_ON_MIGRATE_BIT: u32 = 2;
/// `RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE_BIT`: bit 4 of `rseq::flags` (bit 3 is a deliberate gap).
pub const RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE_BIT: u32 = 4;
/// `RSEQ_CS_FLAG_SLICE_EXT_ENABLED_BIT`: bit 5 of `rseq::flags`.
pub const RSEQ_CS_FLAG_SLICE_EXT_ENABLED_BIT: u32 = 5;

/// `RSEQ_CS_FLAG_NO_RESTART_ON_PREEMPT` = 0x1.
pub const RSEQ_CS_FLAG_NO_RESTART_ON_PREEMPT: u32 = 1 << RSEQ_CS_FLAG_NO_RESTART_ON_PREEMPT_BIT;
/// `RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL` = 0x2.
pub const RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL: u32 = 1 << RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL_BIT;
/// `RSEQ_CS_FLAG_NO_RESTART_ON_MIGRATE` = 0x4.
pub const RSEQ_CS_FLAG_NO_RESTART_ON_MIGRATE: u32 = 1 << RSEQ_CS_FLAG_NO_RESTART_ON_MIGRATE_BIT;
/// `RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE` = 0x10: the kernel supports the extension for this
/// registration. Written by the kernel into `rseq::flags`; read-only for user space.
pub const RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE: u32 = 1 << RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE_BIT;
/// `RSEQ_CS_FLAG_SLICE_EXT_ENABLED` = 0x20: the extension is enabled for this thread.
pub const RSEQ_CS_FLAG_SLICE_EXT_ENABLED: u32 = 1 << RSEQ_CS_FLAG_SLICE_EXT_ENABLED_BIT;

// --- prctl --------------------------------------------------------------------------------

/// `PR_RSEQ_SLICE_EXTENSION`: prctl option controlling the extension.
pub const PR_RSEQ_SLICE_EXTENSION: i32 = 79;
/// `PR_RSEQ_SLICE_EXTENSION_GET`: arg2, query the enable state.
pub const PR_RSEQ_SLICE_EXTENSION_GET: u64 = 1;
/// `PR_RSEQ_SLICE_EXTENSION_SET`: arg2, change the enable state.
pub const PR_RSEQ_SLICE_EXTENSION_SET: u64 = 2;
/// `PR_RSEQ_SLICE_EXT_ENABLE`: arg3 bit for SET, and the GET result when enabled.
pub const PR_RSEQ_SLICE_EXT_ENABLE: u64 = 0x01;

// --- kernel-internal constants that are visible to user space ----------------------------

/// `ORIG_RSEQ_SIZE`: the historical registration size (32); equal to the 7.0 feature size.
pub const ORIG_RSEQ_SIZE: u32 = 32;
/// `offsetof(struct rseq, end)` in the merged layout, exported as `AT_RSEQ_FEATURE_SIZE`.
pub const RSEQ_FEATURE_SIZE: u32 = 32;
/// `rseq_alloc_align()`: next power of two ≥ the feature size (32).
pub const RSEQ_ALLOC_ALIGN: u32 = 32;
/// `offsetof(struct rseq, end)` after the post-7.0 changes: a `__u8 __reserved` follows
/// `slice_ctrl` (Linux 7.2's uapi `rseq.h`, the "33 bytes" of spec §13.3).
pub const POST_MERGE_RSEQ_FEATURE_SIZE: u32 = 33;
/// `rseq_alloc_align()` for that size: the next power of two ≥ 33.
pub const POST_MERGE_RSEQ_ALLOC_ALIGN: u32 = 64;

/// The x86 `RSEQ_SIG` used by the selftests (the 4 bytes before every abort handler).
pub const RSEQ_SIG_X86: u32 = 0x5305_3053;
/// The signature this crate registers with on every architecture.
pub const RSEQ_SIG: u32 = RSEQ_SIG_X86;

// --- slice_ext_nsec -----------------------------------------------------------------------

/// Merged default of debugfs `rseq/slice_ext_nsec` (ns); also its minimum.
pub const SLICE_EXT_NSEC_DEFAULT: u32 = 5_000;
/// Merged minimum of `rseq/slice_ext_nsec`; smaller writes fail with `ERANGE`.
pub const SLICE_EXT_NSEC_MIN: u32 = 5_000;
/// Merged maximum of `rseq/slice_ext_nsec`; larger writes fail with `ERANGE`.
pub const SLICE_EXT_NSEC_MAX: u32 = 50_000;
/// V1 default of sysctl `kernel.rseq_slice_extension_nsec` (ns).
pub const V1_SLICE_EXT_NSEC_DEFAULT: u32 = 30_000;
/// V1 minimum of the sysctl.
pub const V1_SLICE_EXT_NSEC_MIN: u32 = 10_000;
/// V1 maximum of the sysctl.
pub const V1_SLICE_EXT_NSEC_MAX: u32 = 50_000;

// --- V1 control word (a plain u32) --------------------------------------------------------

/// V1 `RSEQ_SLICE_EXT_REQUEST_BIT`.
pub const V1_RSEQ_SLICE_EXT_REQUEST_BIT: u32 = 0;
/// V1 `RSEQ_SLICE_EXT_GRANTED_BIT`.
pub const V1_RSEQ_SLICE_EXT_GRANTED_BIT: u32 = 1;
/// V1 `RSEQ_SLICE_EXT_REQUEST` mask.
pub const V1_RSEQ_SLICE_EXT_REQUEST: u32 = 1 << V1_RSEQ_SLICE_EXT_REQUEST_BIT;
/// V1 `RSEQ_SLICE_EXT_GRANTED` mask.
pub const V1_RSEQ_SLICE_EXT_GRANTED: u32 = 1 << V1_RSEQ_SLICE_EXT_GRANTED_BIT;

/// Syscall numbers per table (spec §1.5).
pub mod nr {
    /// `__NR_rseq` on x86_64.
    pub const X86_64_RSEQ: i64 = 334;
    /// `__NR_rseq` on i386.
    pub const I386_RSEQ: i64 = 386;
    /// `__NR_rseq` in the asm-generic table (aarch64, riscv, loongarch).
    pub const GENERIC_RSEQ: i64 = 293;
    /// `__NR_rseq` on alpha.
    pub const ALPHA_RSEQ: i64 = 527;

    /// `__NR_rseq_slice_yield` (merged 7.0) on x86_64, i386, arm, asm-generic and most tables.
    pub const RSEQ_SLICE_YIELD: i64 = 471;
    /// `__NR_rseq_slice_yield` on x86_64.
    pub const X86_64_RSEQ_SLICE_YIELD: i64 = RSEQ_SLICE_YIELD;
    /// `__NR_rseq_slice_yield` on i386.
    pub const I386_RSEQ_SLICE_YIELD: i64 = RSEQ_SLICE_YIELD;
    /// `__NR_rseq_slice_yield` in the asm-generic table (aarch64, riscv, loongarch).
    pub const GENERIC_RSEQ_SLICE_YIELD: i64 = RSEQ_SLICE_YIELD;
    /// `__NR_rseq_slice_yield` on alpha.
    pub const ALPHA_RSEQ_SLICE_YIELD: i64 = 581;
    /// mips o32 base (4000) + 471.
    pub const MIPS_O32_RSEQ_SLICE_YIELD: i64 = 4471;
    /// mips n64 base (5000) + 471.
    pub const MIPS_N64_RSEQ_SLICE_YIELD: i64 = 5471;
    /// mips n32 base (6000) + 471.
    pub const MIPS_N32_RSEQ_SLICE_YIELD: i64 = 6471;
    /// `__NR_rseq_slice_yield` in V1..V5 of the series.
    pub const V1_RSEQ_SLICE_YIELD: i64 = 470;

    /// `__NR_getpid` on x86_64 (the selftest's "any other syscall").
    pub const X86_64_GETPID: i64 = 39;
    /// `__NR_getpid` in the asm-generic table.
    pub const GENERIC_GETPID: i64 = 172;
    /// `__NR_sched_yield` on x86_64.
    pub const X86_64_SCHED_YIELD: i64 = 24;
    /// `__NR_sched_yield` in the asm-generic table.
    pub const GENERIC_SCHED_YIELD: i64 = 124;
    /// `__NR_prctl` on x86_64.
    pub const X86_64_PRCTL: i64 = 157;
    /// `__NR_prctl` in the asm-generic table.
    pub const GENERIC_PRCTL: i64 = 167;
    /// `__NR_membarrier` on x86_64.
    pub const X86_64_MEMBARRIER: i64 = 324;

    /// `__NR_rseq` for the architecture this crate is compiled for.
    #[cfg(target_arch = "x86_64")]
    pub const RSEQ: i64 = X86_64_RSEQ;
    /// `__NR_rseq` for the architecture this crate is compiled for.
    #[cfg(target_arch = "x86")]
    pub const RSEQ: i64 = I386_RSEQ;
    /// `__NR_rseq` for the architecture this crate is compiled for.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    pub const RSEQ: i64 = GENERIC_RSEQ;
}

/// Errno values the protocol returns (positive, as in `errno`).
pub mod errno {
    /// `EPERM`: signature mismatch on (re/un)registration.
    pub const EPERM: i32 = 1;
    /// `ENXIO`: prctl SET without an rseq registration.
    pub const ENXIO: i32 = 6;
    /// `EFAULT`: user memory fault.
    pub const EFAULT: i32 = 14;
    /// `EBUSY`: identical re-registration.
    pub const EBUSY: i32 = 16;
    /// `EINVAL`: invalid argument.
    pub const EINVAL: i32 = 22;
    /// `ERANGE`: `slice_ext_nsec` outside its range.
    pub const ERANGE: i32 = 34;
    /// `ENOSYS`: syscall not implemented (kernel without the feature, or a `COND_SYSCALL` stub).
    pub const ENOSYS: i32 = 38;
    /// `ENOTSUP` (= `EOPNOTSUPP`, 95): *not* what this feature returns; see [`ENOTSUPP`].
    pub const ENOTSUP: i32 = 95;
    /// `ENOTSUPP` (524): kernel-internal errno that leaks to user space from prctl when the
    /// extension is compiled out or disabled at boot.
    pub const ENOTSUPP: i32 = 524;
}

/// Signal numbers the protocol raises or that matter to it.
pub mod signal {
    /// `SIGSEGV`: every protocol violation.
    pub const SIGSEGV: i32 = 11;
    /// `SIGKILL`.
    pub const SIGKILL: i32 = 9;
    /// `SIGUSR1`: used by scenarios as a caught, harmless signal.
    pub const SIGUSR1: i32 = 10;
}
