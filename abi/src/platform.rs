//! The platform a user program runs on: the real Linux kernel or the simulator.
//!
//! User-side protocol code is written once against [`Platform`] and compiles unchanged for
//! both backends. Everything a thread does that the kernel could observe or interleave with
//! goes through it: accesses to its own `struct rseq`, syscalls, the monotonic clock, CPU
//! work and accesses to memory shared with other threads. On the simulator each of these
//! calls is a point where the engine may deliver an interrupt.

use crate::ctrl::Revision;
use crate::seq::{SeqOutcome, Sequence};

/// A positive errno value returned by a failed syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
#[error("{} ({})", errno_name(self.0), self.0)]
pub struct Errno(pub i32);

impl Errno {
    /// `EPERM`.
    pub const EPERM: Errno = Errno(crate::consts::errno::EPERM);
    /// `ENXIO`.
    pub const ENXIO: Errno = Errno(crate::consts::errno::ENXIO);
    /// `EFAULT`.
    pub const EFAULT: Errno = Errno(crate::consts::errno::EFAULT);
    /// `EBUSY`.
    pub const EBUSY: Errno = Errno(crate::consts::errno::EBUSY);
    /// `EINVAL`.
    pub const EINVAL: Errno = Errno(crate::consts::errno::EINVAL);
    /// `ERANGE`.
    pub const ERANGE: Errno = Errno(crate::consts::errno::ERANGE);
    /// `ENOSYS`.
    pub const ENOSYS: Errno = Errno(crate::consts::errno::ENOSYS);
    /// `ENOTSUPP` (524, kernel-internal).
    pub const ENOTSUPP: Errno = Errno(crate::consts::errno::ENOTSUPP);

    /// The symbolic name (`"EINVAL"`), or `"E?"` for values this crate does not name.
    pub fn name(self) -> &'static str {
        errno_name(self.0)
    }
}

fn errno_name(e: i32) -> &'static str {
    use crate::consts::errno::*;
    match e {
        EPERM => "EPERM",
        ENXIO => "ENXIO",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EINVAL => "EINVAL",
        ERANGE => "ERANGE",
        ENOSYS => "ENOSYS",
        ENOTSUP => "ENOTSUP",
        ENOTSUPP => "ENOTSUPP",
        11 => "EAGAIN",
        4 => "EINTR",
        3 => "ESRCH",
        _ => "E?",
    }
}

/// Result of a syscall: the non-negative return value, or the errno.
pub type SysResult = Result<i64, Errno>;

/// A 32-bit word of memory shared between the threads of a program (a lock word, a futex,
/// a "keep running" flag). The index names the word; the platform decides where it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedWord(pub u32);

/// A point in a user program that a measurement cares about and the kernel never sees:
/// where a thread starts waiting for a lock, takes it, drops it, and where a critical
/// section (code it does not want to be preempted in) starts and ends.
///
/// Programs report them with [`Platform::mark`]. They cost nothing: the real kernel
/// backend ignores them, and the simulator only writes them to its event log, at the
/// thread's current time, without any simulated time passing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Marker {
    /// The thread starts trying to take `lock` (its wait starts).
    LockAttempt(SharedWord),
    /// The thread now holds `lock` (its wait ends, its hold starts).
    LockAcquired(SharedWord),
    /// The thread dropped `lock` (its hold ends).
    LockReleased(SharedWord),
    /// A critical section starts.
    CsEnter,
    /// The critical section ends.
    CsExit,
}

impl Marker {
    /// The marker's name: `lock_attempt`, `lock_acquired`, `lock_released`, `cs_enter`,
    /// `cs_exit` (what the event log and the script step `mark` use).
    pub fn name(self) -> &'static str {
        match self {
            Marker::LockAttempt(_) => "lock_attempt",
            Marker::LockAcquired(_) => "lock_acquired",
            Marker::LockReleased(_) => "lock_released",
            Marker::CsEnter => "cs_enter",
            Marker::CsExit => "cs_exit",
        }
    }

    /// The lock word a lock marker names (`None` for the critical-section markers).
    pub fn lock(self) -> Option<SharedWord> {
        match self {
            Marker::LockAttempt(w) | Marker::LockAcquired(w) | Marker::LockReleased(w) => Some(w),
            Marker::CsEnter | Marker::CsExit => None,
        }
    }
}

impl core::fmt::Display for Marker {
    /// `lock_acquired w0`, `cs_enter`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.lock() {
            Some(w) => write!(f, "{} w{}", self.name(), w.0),
            None => f.write_str(self.name()),
        }
    }
}

/// A CPU affinity mask of up to 1024 CPUs (the kernel's `CPU_SETSIZE`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CpuSet {
    bits: [u64; 16],
}

impl CpuSet {
    /// Largest CPU count a mask can describe.
    pub const CAPACITY: usize = 1024;

    /// The empty set.
    pub const fn empty() -> Self {
        Self { bits: [0; 16] }
    }

    /// CPUs `0..n`.
    pub fn first_n(n: usize) -> Self {
        let mut s = Self::empty();
        for cpu in 0..n.min(Self::CAPACITY) {
            s.insert(cpu);
        }
        s
    }

    /// Exactly one CPU.
    pub fn single(cpu: usize) -> Self {
        let mut s = Self::empty();
        s.insert(cpu);
        s
    }

    /// Add a CPU (ignored if ≥ [`Self::CAPACITY`]).
    pub fn insert(&mut self, cpu: usize) {
        if cpu < Self::CAPACITY {
            self.bits[cpu / 64] |= 1 << (cpu % 64);
        }
    }

    /// Remove a CPU.
    pub fn remove(&mut self, cpu: usize) {
        if cpu < Self::CAPACITY {
            self.bits[cpu / 64] &= !(1 << (cpu % 64));
        }
    }

    /// Is `cpu` in the set?
    pub fn contains(&self, cpu: usize) -> bool {
        cpu < Self::CAPACITY && self.bits[cpu / 64] & (1 << (cpu % 64)) != 0
    }

    /// Number of CPUs in the set.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Is the set empty?
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..Self::CAPACITY).filter(move |&c| self.contains(c))
    }

    /// The raw 64-bit words (the layout of the kernel's `cpu_set_t` on 64-bit hosts).
    pub fn words(&self) -> &[u64; 16] {
        &self.bits
    }

    /// Build from raw 64-bit words.
    pub fn from_words(bits: [u64; 16]) -> Self {
        Self { bits }
    }
}

impl Default for CpuSet {
    fn default() -> Self {
        Self::empty()
    }
}

impl core::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// `membarrier()` command that expedites rseq critical-section restarts on every CPU running
/// a thread of the caller's process (`MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ`).
pub const MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ: i32 = 1 << 7;
/// `membarrier()` registration for the command above.
pub const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ: i32 = 1 << 8;

/// The syscalls the protocol and its programs use.
///
/// A dedicated variant exists for everything whose effect the simulator models; any other
/// syscall is [`Syscall::Other`], which is enough to exercise "a syscall inside a grant".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// `rseq(addr, len, flags, sig)`.
    Rseq {
        /// User address of the area (or any address, to provoke errors).
        addr: u64,
        /// Registered length.
        len: u32,
        /// `RSEQ_FLAG_*`.
        flags: u32,
        /// Signature.
        sig: u32,
    },
    /// `prctl(option, arg2, arg3, arg4, arg5)`.
    Prctl {
        /// `PR_*` option.
        option: i32,
        /// arg2.
        arg2: u64,
        /// arg3.
        arg3: u64,
        /// arg4.
        arg4: u64,
        /// arg5.
        arg5: u64,
    },
    /// `rseq_slice_yield()`: number 471 on merged kernels, 470 on V1.
    RseqSliceYield,
    /// `sched_yield()`.
    SchedYield,
    /// `getpid()`: the selftest's "any other syscall".
    Getpid,
    /// `clock_nanosleep(CLOCK_MONOTONIC, 0, ns)`: relative sleep.
    Nanosleep {
        /// Relative sleep time.
        ns: u64,
    },
    /// `futex(word, FUTEX_WAIT_PRIVATE, expected)`: sleep while `*word == expected`.
    FutexWait {
        /// The shared word.
        word: SharedWord,
        /// Value the word must still hold for the caller to sleep.
        expected: u32,
    },
    /// `futex(word, FUTEX_WAKE_PRIVATE, count)`: wake up to `count` waiters.
    FutexWake {
        /// The shared word.
        word: SharedWord,
        /// How many waiters at most.
        count: u32,
    },
    /// `sched_setaffinity(0, mask)`.
    SchedSetaffinity(CpuSet),
    /// `membarrier(cmd, flags, cpu_id)`.
    Membarrier {
        /// `MEMBARRIER_CMD_*`.
        cmd: i32,
        /// Flags.
        flags: u32,
        /// Target CPU for `MEMBARRIER_CMD_FLAG_CPU`.
        cpu_id: i32,
    },
    /// Any other syscall by number, without arguments.
    Other {
        /// The syscall number.
        nr: i64,
    },
}

impl Syscall {
    /// The x86_64 syscall `nr` with raw arguments, as the kernel's syscall table would
    /// dispatch it: `rseq`, `prctl`, `sched_yield`, `getpid` and `membarrier` get their
    /// typed variant (arguments truncated to the C types, as the kernel does); any other
    /// number, `rseq_slice_yield` of either revision included, is [`Syscall::Other`].
    pub fn decode(nr: i64, args: [u64; 6]) -> Syscall {
        use crate::consts::nr;
        match nr {
            nr::X86_64_RSEQ => Syscall::Rseq {
                addr: args[0],
                len: args[1] as u32,
                flags: args[2] as u32,
                sig: args[3] as u32,
            },
            nr::X86_64_PRCTL => Syscall::Prctl {
                option: args[0] as i32,
                arg2: args[1],
                arg3: args[2],
                arg4: args[3],
                arg5: args[4],
            },
            nr::X86_64_SCHED_YIELD => Syscall::SchedYield,
            nr::X86_64_GETPID => Syscall::Getpid,
            nr::X86_64_MEMBARRIER => Syscall::Membarrier {
                cmd: args[0] as i32,
                flags: args[1] as u32,
                cpu_id: args[2] as i32,
            },
            nr => Syscall::Other { nr },
        }
    }

    /// The syscall's name as `strace` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            Syscall::Rseq { .. } => "rseq",
            Syscall::Prctl { .. } => "prctl",
            Syscall::RseqSliceYield => "rseq_slice_yield",
            Syscall::SchedYield => "sched_yield",
            Syscall::Getpid => "getpid",
            Syscall::Nanosleep { .. } => "clock_nanosleep",
            Syscall::FutexWait { .. } => "futex_wait",
            Syscall::FutexWake { .. } => "futex_wake",
            Syscall::SchedSetaffinity(_) => "sched_setaffinity",
            Syscall::Membarrier { .. } => "membarrier",
            Syscall::Other { .. } => "syscall",
        }
    }
}

/// What a user thread can do that the kernel may observe or interleave with.
///
/// Offsets in the `load_*`/`store_*` methods are byte offsets into the thread's own
/// `struct rseq` (see [`crate::layout::offset`]). Multi-byte accesses are single, aligned,
/// native-endian accesses on the platform's machine: exactly what a C program's volatile
/// access compiles to. An offset outside the registered area is a bug in the caller and
/// panics.
pub trait Platform {
    /// The protocol revision this platform's kernel speaks: it decides the control word's
    /// layout and the `rseq_slice_yield` number user code must use.
    fn revision(&self) -> Revision;

    /// User address of this thread's own `struct rseq` area.
    fn rseq_addr(&self) -> u64;

    /// Length to register the area with (32 on 7.0; larger for post-7.0 kernels).
    fn rseq_len(&self) -> u32;

    /// Signature to register with.
    fn rseq_sig(&self) -> u32 {
        crate::consts::RSEQ_SIG
    }

    /// Volatile byte load from the thread's `struct rseq`.
    fn load_u8(&mut self, off: usize) -> u8;
    /// Volatile byte store to the thread's `struct rseq`.
    fn store_u8(&mut self, off: usize, val: u8);
    /// Volatile aligned 32-bit load from the thread's `struct rseq`.
    fn load_u32(&mut self, off: usize) -> u32;
    /// Volatile aligned 32-bit store to the thread's `struct rseq`.
    fn store_u32(&mut self, off: usize, val: u32);
    /// Volatile aligned 64-bit store to the thread's `struct rseq` (e.g. `rseq_cs`).
    fn store_u64(&mut self, off: usize, val: u64);
    /// Volatile aligned 64-bit load from the thread's `struct rseq` (e.g. `rseq_cs`).
    fn load_u64(&mut self, off: usize) -> u64;

    /// CPU-local atomic test-and-clear of `bit` in the 32-bit word at `off` (x86 `btr`
    /// without `lock`): the V1 protocol's required way to clear REQUEST. Returns whether
    /// the bit was set. Atomic with respect to interrupts on the same CPU.
    fn test_and_clear_bit_local(&mut self, off: usize, bit: u32) -> bool;

    /// Make a syscall.
    fn syscall(&mut self, call: Syscall) -> SysResult;

    /// `sched_getaffinity(0)`.
    fn sched_getaffinity(&mut self) -> Result<CpuSet, Errno>;

    /// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
    fn clock_ns(&mut self) -> u64;

    /// Spend `ns` nanoseconds of CPU time in user mode (a busy loop on a real machine).
    ///
    /// The simulator spends exactly `ns` of the thread's user time: an interrupt or a
    /// preemption inside the burn delays its end. A real kernel's platform can only poll
    /// the clock (`LinuxPlatform` spins until `ns` have passed on `CLOCK_MONOTONIC`), so
    /// there the interrupt's time counts towards `ns`. Where the outcome depends on where an
    /// interrupt falls inside a busy stretch, and the program must do the same on both,
    /// time the stretch on the clock with [`crate::protocol::spin_until`] instead.
    fn burn(&mut self, ns: u64);

    /// Load a shared word (sequentially consistent).
    fn shared_load(&mut self, word: SharedWord) -> u32;
    /// Store a shared word (sequentially consistent).
    fn shared_store(&mut self, word: SharedWord, val: u32);
    /// Compare-and-exchange a shared word: `Ok(old)` if it held `old` and now holds `new`,
    /// `Err(actual)` otherwise.
    fn shared_cas(&mut self, word: SharedWord, old: u32, new: u32) -> Result<u32, u32>;
    /// Atomically add to a shared word, returning the previous value.
    fn shared_fetch_add(&mut self, word: SharedWord, val: u32) -> u32;

    /// Report a [`Marker`] for measurements (lock hold and wait times, preempted critical
    /// sections). It must not change what the program does or how long it takes: the
    /// default, and the real kernel backend, do nothing.
    fn mark(&mut self, _marker: Marker) {}

    /// Run a restartable sequence ([`crate::seq`]) once: publish its descriptor in
    /// `rseq->rseq_cs`, run its body, and report whether it committed or the kernel
    /// aborted it. The simulator places an instruction pointer on every step; the
    /// real-kernel backend runs one x86_64 assembly critical section that interprets the
    /// steps. The default (and any other architecture) answers
    /// [`SeqOutcome::Unsupported`].
    fn rseq_sequence(&mut self, _seq: &Sequence<'_>) -> SeqOutcome {
        SeqOutcome::Unsupported
    }
}
