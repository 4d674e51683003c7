//! The real-kernel [`Platform`]: raw Linux syscalls on x86_64 and aarch64.
//!
//! [`LinuxPlatform`] owns its thread's `struct rseq` area (256 bytes, aligned to 256, zeroed,
//! at a stable heap address, like the post-7.0 selftest's `rseq_abi`) and makes every
//! [`Syscall`] with `libc::syscall`, so a failure comes back as the exact errno the kernel
//! returned, including the kernel-internal `ENOTSUPP` (524) that the extension's prctl
//! leaks. Shared words live in a [`SharedMem`] that the platforms of several threads share.
//!
//! # Who owns the thread's rseq registration
//!
//! A thread has at most one rseq registration. glibc ≥ 2.35 registers its own area in every
//! thread it creates, so registering ours fails with `EINVAL` ("already registered with a
//! different pointer", spec §2.3 step 2). [`glibc_rseq`] detects that case through glibc's
//! exported `__rseq_size`/`__rseq_offset` and [`LinuxPlatform::register_own`] reports it as
//! [`RegisterError::GlibcOwnsRseq`] with the remedy: run with
//! `GLIBC_TUNABLES=glibc.pthread.rseq=0`, or use a static musl binary, where nobody
//! registers before us.
//!
//! # Soundness
//!
//! This is the only module of the crate with `unsafe` code. The kernel writes into a
//! registered area behind the compiler's back (on the registered thread's return to user
//! mode, like a signal handler would), so the area is only ever accessed through volatile
//! raw-pointer accesses, never through references. To keep the safe API sound:
//!
//! * [`LinuxPlatform`] is neither `Send` nor `Sync`: a registration belongs to the thread
//!   that made it, and only that thread's accesses are ordered with the kernel's writes.
//! * A registration that would let the kernel write outside memory this platform owns
//!   panics instead of reaching the kernel (see [`LinuxPlatform`]'s `syscall`).
//! * On drop, a registered area is unregistered; if that fails the area is leaked rather
//!   than freed, so the kernel can never write into freed memory.
//! * [`Syscall::Other`] refuses the few syscall numbers that would break Rust's assumptions
//!   even with zero arguments (`exit` of the thread, `vfork`, `rt_sigreturn`).

#![allow(unsafe_code)]

pub mod calibrate;
pub mod fidelity;
pub mod probe;

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::consts::{nr, RSEQ_ALLOC_ALIGN, RSEQ_FLAG_UNREGISTER};
use crate::ctrl::Revision;
use crate::layout::offset;
use crate::platform::{CpuSet, Errno, Platform, SharedWord, SysResult, Syscall};
use crate::seq::{SeqOutcome, Sequence};

#[cfg(target_arch = "x86_64")]
mod seq;

/// Size of the area each [`LinuxPlatform`] owns, and its alignment (the post-7.0 selftest's
/// `aligned(256)` `struct rseq_abi`).
pub const AREA_SIZE: usize = 256;

/// Default registration length: 32, the 7.0 feature size (`ORIG_RSEQ_SIZE`).
pub const DEFAULT_RSEQ_LEN: u32 = 32;

/// Registration length for post-7.0 kernels, which offer the extension only to
/// registrations larger than 32 bytes (spec §12.2).
pub const POST_MERGE_RSEQ_LEN: u32 = 64;

/// The remedy printed whenever glibc's own registration is in the way.
pub const GLIBC_HINT: &str = "glibc registered its own rseq area for this thread, so a second \
     registration fails with EINVAL; run with GLIBC_TUNABLES=glibc.pthread.rseq=0 (or build a \
     static musl binary) so this program can register its own area";

/// Bytes from a registered address the kernel may write (the 7.0 struct is 32 bytes; the
/// post-7.0 feature size is 33). A registration is only let through if this many bytes from
/// its address lie inside our area.
const KERNEL_WRITE_SPAN: u64 = 64;

/// Addresses at or above this are never user addresses on x86_64 or aarch64, so the kernel
/// rejects them (`access_ok` → `EFAULT`) without writing.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// `FUTEX_WAIT | FUTEX_PRIVATE_FLAG` (`include/uapi/linux/futex.h`).
const FUTEX_WAIT_PRIVATE: libc::c_long = 128;
/// `FUTEX_WAKE | FUTEX_PRIVATE_FLAG`.
const FUTEX_WAKE_PRIVATE: libc::c_long = 1 | 128;

/// `CLOCK_MONOTONIC` as a syscall argument.
const CLOCK_MONOTONIC: libc::c_long = libc::CLOCK_MONOTONIC as libc::c_long;

/// The area the kernel writes into: 256 bytes, aligned to 256. Only accessed through raw
/// pointers derived from `Box::into_raw`; the `UnsafeCell` documents that its contents change
/// behind the compiler's back.
#[repr(C, align(256))]
struct RseqArea(UnsafeCell<[u8; AREA_SIZE]>);

const _: () = assert!(core::mem::size_of::<RseqArea>() == AREA_SIZE);
const _: () = assert!(core::mem::align_of::<RseqArea>() == AREA_SIZE);

// ---------------------------------------------------------------------------------------
// Shared memory
// ---------------------------------------------------------------------------------------

/// Words of memory shared by the [`LinuxPlatform`]s of several threads (one platform per
/// thread, each with a clone of the same `SharedMem`). [`SharedWord`]`(i)` names word `i`.
#[derive(Clone, Debug)]
pub struct SharedMem {
    words: Arc<[AtomicU32]>,
}

impl SharedMem {
    /// `n` words, all zero.
    pub fn new(n: usize) -> Self {
        Self {
            words: (0..n).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Does it hold no word at all?
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The atomic behind `word`. Panics if `word` is out of range.
    pub fn word(&self, word: SharedWord) -> &AtomicU32 {
        let len = self.words.len();
        self.words.get(word.0 as usize).unwrap_or_else(|| {
            panic!(
                "SharedWord({}) out of range: this SharedMem has {len} words",
                word.0
            )
        })
    }
}

// ---------------------------------------------------------------------------------------
// glibc detection
// ---------------------------------------------------------------------------------------

/// What glibc did with rseq in this process, from its exported `__rseq_size` and
/// `__rseq_offset` (glibc ≥ 2.35).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlibcRseq {
    /// No `__rseq_size` symbol: not glibc ≥ 2.35 (e.g. musl), or a static binary where
    /// `dlsym` finds nothing. Nobody but us registers rseq.
    Absent,
    /// glibc with its registration disabled (`__rseq_size == 0`, e.g.
    /// `GLIBC_TUNABLES=glibc.pthread.rseq=0`): our own registration can succeed.
    Disabled {
        /// `__rseq_offset`: offset of glibc's (unused) area from the thread pointer.
        offset: Option<isize>,
    },
    /// glibc registered its own area in every thread; ours will fail with `EINVAL`.
    Registered {
        /// `__rseq_size`: the size glibc reports (the active feature size, e.g. 20 or 32).
        size: u32,
        /// `__rseq_offset`: offset of glibc's area from the thread pointer.
        offset: Option<isize>,
    },
}

impl GlibcRseq {
    /// Did glibc register rseq for its threads?
    pub fn owns_rseq(self) -> bool {
        matches!(self, GlibcRseq::Registered { .. })
    }
}

impl core::fmt::Display for GlibcRseq {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let off = |o: &Option<isize>| o.map_or_else(|| "?".to_string(), |o| o.to_string());
        match self {
            GlibcRseq::Absent => write!(f, "no __rseq_size symbol (not glibc >= 2.35, or static)"),
            GlibcRseq::Disabled { offset } => {
                write!(
                    f,
                    "glibc rseq disabled (__rseq_size 0, __rseq_offset {})",
                    off(offset)
                )
            }
            GlibcRseq::Registered { size, offset } => write!(
                f,
                "glibc owns rseq (__rseq_size {size}, __rseq_offset {})",
                off(offset)
            ),
        }
    }
}

/// Look up a data symbol in the global scope; null if absent.
fn dlsym_default(name: &core::ffi::CStr) -> *mut libc::c_void {
    // SAFETY: `name` is a NUL-terminated C string that outlives the call; RTLD_DEFAULT is a
    // valid pseudo-handle. dlsym only reads the string and returns a pointer or null.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// glibc's `__rseq_size` (an `unsigned int`), or `None` if the symbol does not exist
/// (musl, static binaries, glibc < 2.35).
pub fn glibc_rseq_size() -> Option<u32> {
    let p = dlsym_default(c"__rseq_size");
    if p.is_null() {
        return None;
    }
    // SAFETY: glibc defines `__rseq_size` as a `const unsigned int` that lives for the whole
    // process; dlsym returned its (suitably aligned) address.
    Some(unsafe { p.cast::<u32>().read_volatile() })
}

/// glibc's `__rseq_offset` (a `ptrdiff_t`), or `None` if the symbol does not exist.
pub fn glibc_rseq_offset() -> Option<isize> {
    let p = dlsym_default(c"__rseq_offset");
    if p.is_null() {
        return None;
    }
    // SAFETY: glibc defines `__rseq_offset` as a `const ptrdiff_t` that lives for the whole
    // process; dlsym returned its (suitably aligned) address.
    Some(unsafe { p.cast::<isize>().read_volatile() })
}

/// What glibc did with rseq in this process.
pub fn glibc_rseq() -> GlibcRseq {
    match glibc_rseq_size() {
        None => GlibcRseq::Absent,
        Some(0) => GlibcRseq::Disabled {
            offset: glibc_rseq_offset(),
        },
        Some(size) => GlibcRseq::Registered {
            size,
            offset: glibc_rseq_offset(),
        },
    }
}

/// Why our own registration failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The kernel said `EINVAL` and glibc has registered its own area for this thread.
    #[error(
        "rseq registration failed: {errno}: glibc owns rseq (__rseq_size {glibc_size}); run \
         with GLIBC_TUNABLES=glibc.pthread.rseq=0 or build a static musl binary"
    )]
    GlibcOwnsRseq {
        /// The errno the kernel returned (`EINVAL`).
        errno: Errno,
        /// glibc's `__rseq_size`.
        glibc_size: u32,
    },
    /// Any other failure, with the kernel's errno.
    #[error("rseq registration failed: {0}")]
    Kernel(Errno),
}

impl RegisterError {
    /// Classify a failed registration of our own area: `EINVAL` while glibc owns rseq is
    /// [`RegisterError::GlibcOwnsRseq`], everything else [`RegisterError::Kernel`].
    pub fn classify(errno: Errno) -> Self {
        match (errno, glibc_rseq()) {
            (Errno::EINVAL, GlibcRseq::Registered { size, .. }) => RegisterError::GlibcOwnsRseq {
                errno,
                glibc_size: size,
            },
            _ => RegisterError::Kernel(errno),
        }
    }

    /// The errno the kernel returned.
    pub fn errno(&self) -> Errno {
        match *self {
            RegisterError::GlibcOwnsRseq { errno, .. } | RegisterError::Kernel(errno) => errno,
        }
    }

    /// What to do about it, if we know.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            RegisterError::GlibcOwnsRseq { .. } => Some(GLIBC_HINT),
            RegisterError::Kernel(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw syscalls
// ---------------------------------------------------------------------------------------

/// The raw-syscall convention turned into a [`SysResult`]: `-1` means "failed, errno set";
/// the errno is passed through unchanged (so `ENOTSUPP` = 524 stays 524).
fn sys_result(ret: libc::c_long, errno: i32) -> SysResult {
    if ret == -1 {
        Err(Errno(errno))
    } else {
        Ok(long(ret))
    }
}

/// A C `long` as `i64` (the identity on the 64-bit targets this module is written for).
#[allow(clippy::useless_conversion)]
fn long(x: libc::c_long) -> i64 {
    i64::from(x)
}

/// `syscall(nr, a0..a5)` through libc, errno read right after.
///
/// # Safety
/// Every argument the syscall interprets as a pointer must point to live memory of the size
/// and mutability the syscall reads or writes, for the duration of the call, and the
/// syscall must not break Rust's assumptions about the thread (stack, memory ownership).
unsafe fn raw_syscall(nr: libc::c_long, a: [libc::c_long; 6]) -> SysResult {
    // SAFETY: forwarded to the caller's contract.
    let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    let errno = if ret == -1 { last_errno() } else { 0 };
    sys_result(ret, errno)
}

/// The calling thread's `errno`.
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Syscall numbers [`Syscall::Other`] refuses: with zero arguments they would still end
/// the thread without unwinding (`exit`), share the stack with a child (`vfork`) or load a
/// garbage register frame (`rt_sigreturn`).
fn other_is_refused(nr_: i64) -> bool {
    #[cfg(target_arch = "x86_64")]
    if nr_ == long(libc::SYS_vfork) {
        return true;
    }
    nr_ == long(libc::SYS_exit) || nr_ == long(libc::SYS_rt_sigreturn)
}

/// Give SIGSEGV its default action (kill the process) back.
///
/// Rust's runtime installs a SIGSEGV handler to report stack overflows; for any other
/// SIGSEGV it restores the default action and returns, counting on the faulting
/// instruction to fault again. A SIGSEGV the kernel *sends* (`force_sig()` from a prctl
/// or the syscall-entry checks, spec §7) has no faulting instruction: the handler returns
/// and the program carries on as if nothing happened. A program that must die the way a
/// C program would calls this first.
pub fn default_sigsegv() -> Result<(), Errno> {
    // SAFETY: installing SIG_DFL for SIGSEGV has no memory-safety preconditions.
    if unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(Errno(last_errno()));
    }
    Ok(())
}

/// The kernel release (`uname -r`), e.g. `"6.18.44"`.
pub fn kernel_release() -> String {
    let mut u = MaybeUninit::<libc::utsname>::uninit();
    // SAFETY: `u` is a writable utsname-sized buffer; uname fills it on success.
    if unsafe { libc::uname(u.as_mut_ptr()) } != 0 {
        return String::from("?");
    }
    // SAFETY: uname returned 0, so the struct is initialised.
    let u = unsafe { u.assume_init() };
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `(major, minor)` of [`kernel_release`], if it parses.
pub fn kernel_version() -> Option<(u32, u32)> {
    let rel = kernel_release();
    let mut it = rel.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

// ---------------------------------------------------------------------------------------
// The platform
// ---------------------------------------------------------------------------------------

/// A registration of (part of) our own area that the kernel accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Registration {
    addr: u64,
    len: u32,
    sig: u32,
}

/// The real Linux kernel as a [`Platform`], for the thread that owns it.
///
/// Create one per thread (`LinuxPlatform::new(shared.clone())`), inside that thread: the
/// type is deliberately neither `Send` nor `Sync`, because an rseq registration belongs to
/// the thread that made it. Defaults: registration length [`DEFAULT_RSEQ_LEN`] (32, for
/// 7.0 kernels), [`Revision::Merged`], signature [`crate::consts::RSEQ_SIG`].
///
/// * Loads and stores are volatile accesses into the area; an offset beyond
///   `max(rseq_len, 32)` or a misaligned multi-byte access panics.
/// * `test_and_clear_bit_local` is a non-`LOCK` `btr` on x86_64 (exactly the V1 selftest's
///   instruction: atomic against interrupts on this CPU, not against other CPUs) and an
///   `AtomicU32::fetch_and` elsewhere.
/// * `syscall(Syscall::Rseq)` with a registering `flags` panics unless the kernel can only
///   write inside this platform's area (the address lies in it with 64 bytes to spare), or
///   the kernel is certain to refuse without writing (null, not 32-aligned, kernel half).
///   Unregistering is always let through: the kernel writes only to a registered area.
/// * `clock_ns` reads `CLOCK_MONOTONIC` through the vDSO (no syscall, so polling it inside
///   a critical section does not end a grant); `burn` busy-waits on it.
pub struct LinuxPlatform {
    /// From `Box::into_raw`; freed in `Drop` unless the kernel may still write to it.
    area: NonNull<RseqArea>,
    rseq_len: u32,
    sig: u32,
    revision: Revision,
    shared: SharedMem,
    registration: Option<Registration>,
    /// Countdown iterations per ns of a sequence's burns, measured when the platform is made
    /// (x86_64 only).
    seq_iters_per_ns: f64,
}

impl LinuxPlatform {
    /// A platform with a fresh zeroed area, sharing `shared` with other threads.
    ///
    /// On x86_64 it first measures how fast the sequences' burns count down (about 2 ms
    /// under qemu's instruction counter, a fraction of that on hardware): here, before the
    /// thread can ask for an extension or start a timed loop. Measured at the first
    /// sequence instead, the spinning ran inside that sequence's critical section, where
    /// it outlasted every extension (spec §4.3).
    pub fn new(shared: SharedMem) -> Self {
        let area = Box::new(RseqArea(UnsafeCell::new([0; AREA_SIZE])));
        #[cfg(target_arch = "x86_64")]
        let seq_iters_per_ns = seq::calibrate(&mut || Self::clock_monotonic_ns());
        #[cfg(not(target_arch = "x86_64"))]
        let seq_iters_per_ns = 0.0;
        Self {
            area: NonNull::from(Box::leak(area)),
            rseq_len: DEFAULT_RSEQ_LEN,
            sig: crate::consts::RSEQ_SIG,
            revision: Revision::Merged,
            shared,
            registration: None,
            seq_iters_per_ns,
        }
    }

    /// `CLOCK_MONOTONIC` in ns, through the vDSO.
    fn clock_monotonic_ns() -> u64 {
        let mut ts = MaybeUninit::<libc::timespec>::uninit();
        // SAFETY: `ts` is a writable timespec; clock_gettime (vDSO) fills it on success.
        let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, ts.as_mut_ptr()) };
        assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
        // SAFETY: clock_gettime returned 0, so `ts` is initialised.
        let ts = unsafe { ts.assume_init() };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// A platform without shared words.
    pub fn standalone() -> Self {
        Self::new(SharedMem::new(0))
    }

    /// Register with `len` bytes instead of 32: use [`POST_MERGE_RSEQ_LEN`] (64) on post-7.0
    /// kernels, which only offer the extension to registrations larger than 32 bytes.
    /// Panics if `len` exceeds [`AREA_SIZE`] or the area is registered.
    pub fn with_rseq_len(mut self, len: u32) -> Self {
        assert!(
            len as usize <= AREA_SIZE,
            "rseq_len {len} exceeds the {AREA_SIZE}-byte area"
        );
        assert!(
            self.registration.is_none(),
            "cannot change rseq_len while registered"
        );
        self.rseq_len = len;
        self
    }

    /// Speak `revision`: [`Revision::V1`] uses yield number 470 and makes user code treat
    /// the control word as V1's u32 bits; the kernel itself is whatever it is.
    pub fn with_revision(mut self, revision: Revision) -> Self {
        self.revision = revision;
        self
    }

    /// Register with signature `sig` instead of [`crate::consts::RSEQ_SIG`]. Panics if the
    /// area is registered.
    pub fn with_sig(mut self, sig: u32) -> Self {
        assert!(
            self.registration.is_none(),
            "cannot change the signature while registered"
        );
        self.sig = sig;
        self
    }

    /// The shared words.
    pub fn shared(&self) -> &SharedMem {
        &self.shared
    }

    /// Has the kernel accepted a registration of this area (and not yet unregistered it)?
    pub fn is_registered(&self) -> bool {
        self.registration.is_some()
    }

    /// `rseq::cpu_id` as the kernel wrote it (-1 before registration or after
    /// unregistration).
    pub fn cpu_id(&mut self) -> i32 {
        self.load_u32(offset::CPU_ID) as i32
    }

    /// Register this thread's own area with `flags` (`RSEQ_FLAG_*`), classifying a failure:
    /// `EINVAL` while glibc owns rseq becomes [`RegisterError::GlibcOwnsRseq`].
    pub fn register_own(&mut self, flags: u32) -> Result<(), RegisterError> {
        crate::protocol::register(self, flags).map_err(RegisterError::classify)
    }

    fn area_addr(&self) -> u64 {
        self.area.as_ptr() as u64
    }

    /// Pointer to `size` bytes at `off`, after the bounds and alignment checks.
    fn ptr_at(&self, off: usize, size: usize) -> *mut u8 {
        let limit = (self.rseq_len as usize).clamp(offset::END, AREA_SIZE);
        assert!(
            off.checked_add(size).is_some_and(|end| end <= limit),
            "rseq area access of {size} bytes at offset {off} is outside the registered \
             {limit} bytes"
        );
        assert!(
            off % size == 0,
            "misaligned {size}-byte rseq area access at offset {off}"
        );
        // In bounds of the allocation (checked above); `wrapping_add` keeps it safe code.
        self.area.as_ptr().cast::<u8>().wrapping_add(off)
    }

    /// Panic unless a registering `rseq()` call cannot make the kernel write outside our
    /// area (see the type's docs).
    fn check_rseq_target(&self, addr: u64, flags: u32) {
        if flags & RSEQ_FLAG_UNREGISTER != 0 {
            return;
        }
        let base = self.area_addr();
        let inside =
            addr >= base && addr.saturating_add(KERNEL_WRITE_SPAN) <= base + AREA_SIZE as u64;
        let refused = addr == 0 || addr % u64::from(RSEQ_ALLOC_ALIGN) != 0 || addr >= KERNEL_HALF;
        assert!(
            inside || refused,
            "LinuxPlatform refuses to register rseq memory it does not own (addr {addr:#x}, \
             own area {base:#x}..{:#x})",
            base + AREA_SIZE as u64
        );
    }

    fn rseq(&mut self, addr: u64, len: u32, flags: u32, sig: u32) -> SysResult {
        self.check_rseq_target(addr, flags);
        // SAFETY: a registering call targets our live area (with room for every field the
        // kernel writes) or an address the kernel refuses before writing (checked above);
        // an unregistering call only writes to the currently registered area, which is
        // either ours (kept alive until unregistered, see Drop) or glibc's.
        let r = unsafe {
            raw_syscall(
                nr::RSEQ as libc::c_long,
                [
                    addr as libc::c_long,
                    len as libc::c_long,
                    flags as libc::c_long,
                    sig as libc::c_long,
                    0,
                    0,
                ],
            )
        };
        if r.is_ok() {
            if flags & RSEQ_FLAG_UNREGISTER != 0 {
                if self.registration.is_some_and(|reg| reg.addr == addr) {
                    self.registration = None;
                }
            } else {
                self.registration = Some(Registration { addr, len, sig });
            }
        }
        r
    }

    fn timespec(ns: u64) -> libc::timespec {
        libc::timespec {
            tv_sec: (ns / 1_000_000_000) as _,
            tv_nsec: (ns % 1_000_000_000) as _,
        }
    }
}

impl Drop for LinuxPlatform {
    fn drop(&mut self) {
        if let Some(reg) = self.registration.take() {
            let unregistered = self.rseq(reg.addr, reg.len, RSEQ_FLAG_UNREGISTER, reg.sig);
            if unregistered.is_err() {
                // We cannot prove the kernel has stopped writing into the area (the
                // registration was changed behind our back by a raw rseq() call): leak it
                // rather than free memory the kernel might still write.
                return;
            }
        }
        // SAFETY: `area` came from `Box::into_raw` (via `Box::leak`) in `new`, is freed only
        // here, and no registration of it is active any more, so nothing writes to it.
        drop(unsafe { Box::from_raw(self.area.as_ptr()) });
    }
}

impl core::fmt::Debug for LinuxPlatform {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LinuxPlatform")
            .field("area", &self.area)
            .field("rseq_len", &self.rseq_len)
            .field("sig", &format_args!("{:#x}", self.sig))
            .field("revision", &self.revision)
            .field("registered", &self.registration.is_some())
            .field("shared_words", &self.shared.len())
            .finish()
    }
}

impl Platform for LinuxPlatform {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn rseq_addr(&self) -> u64 {
        self.area_addr()
    }

    fn rseq_len(&self) -> u32 {
        self.rseq_len
    }

    fn rseq_sig(&self) -> u32 {
        self.sig
    }

    fn load_u8(&mut self, off: usize) -> u8 {
        let p = self.ptr_at(off, 1);
        // SAFETY: `p` is in bounds of our live area; volatile because the kernel writes it.
        unsafe { p.read_volatile() }
    }

    fn store_u8(&mut self, off: usize, val: u8) {
        let p = self.ptr_at(off, 1);
        // SAFETY: `p` is in bounds of our live area, which only raw pointers access.
        unsafe { p.write_volatile(val) }
    }

    fn load_u32(&mut self, off: usize) -> u32 {
        let p = self.ptr_at(off, 4).cast::<u32>();
        // SAFETY: in bounds and 4-aligned (the area is 256-aligned and `off % 4 == 0`).
        unsafe { p.read_volatile() }
    }

    fn store_u32(&mut self, off: usize, val: u32) {
        let p = self.ptr_at(off, 4).cast::<u32>();
        // SAFETY: in bounds and 4-aligned (the area is 256-aligned and `off % 4 == 0`).
        unsafe { p.write_volatile(val) }
    }

    fn store_u64(&mut self, off: usize, val: u64) {
        let p = self.ptr_at(off, 8).cast::<u64>();
        // SAFETY: in bounds and 8-aligned (the area is 256-aligned and `off % 8 == 0`).
        unsafe { p.write_volatile(val) }
    }

    fn load_u64(&mut self, off: usize) -> u64 {
        let p = self.ptr_at(off, 8).cast::<u64>();
        // SAFETY: in bounds and 8-aligned (the area is 256-aligned and `off % 8 == 0`).
        unsafe { p.read_volatile() }
    }

    fn test_and_clear_bit_local(&mut self, off: usize, bit: u32) -> bool {
        assert!(bit < 32, "bit {bit} is outside a 32-bit word");
        let p = self.ptr_at(off, 4);
        #[cfg(target_arch = "x86_64")]
        {
            let was_set: u8;
            // SAFETY: `p` is a 4-aligned in-bounds u32 of our area and `bit < 32`, so `btr`
            // (a single read-modify-write instruction, hence atomic against interrupts on
            // this CPU; no LOCK prefix, like the V1 selftest's `btrl`) touches only it.
            unsafe {
                core::arch::asm!(
                    "btr dword ptr [{p}], {bit:e}",
                    "setc {was}",
                    p = in(reg) p,
                    bit = in(reg) bit,
                    was = out(reg_byte) was_set,
                    options(nostack),
                );
            }
            was_set != 0
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let mask = 1u32 << bit;
            // SAFETY: `p` is a 4-aligned in-bounds u32 of our area; only this thread (and the
            // kernel, on this thread's behalf) accesses it, so no non-atomic access races.
            let word = unsafe { AtomicU32::from_ptr(p.cast::<u32>()) };
            word.fetch_and(!mask, Ordering::Relaxed) & mask != 0
        }
    }

    fn syscall(&mut self, call: Syscall) -> SysResult {
        type L = libc::c_long;
        match call {
            Syscall::Rseq {
                addr,
                len,
                flags,
                sig,
            } => self.rseq(addr, len, flags, sig),
            Syscall::Prctl {
                option,
                arg2,
                arg3,
                arg4,
                arg5,
            } => {
                // SAFETY: prctl options used by the protocol take integers; other options
                // may take pointers, which a caller passing raw integers vouches for like
                // any C caller of prctl.
                unsafe {
                    raw_syscall(
                        libc::SYS_prctl,
                        [option as L, arg2 as L, arg3 as L, arg4 as L, arg5 as L, 0],
                    )
                }
            }
            Syscall::RseqSliceYield => {
                // SAFETY: rseq_slice_yield takes no arguments (ENOSYS where it is unknown).
                unsafe { raw_syscall(self.revision.slice_yield_nr() as L, [0; 6]) }
            }
            // SAFETY: sched_yield takes no arguments.
            Syscall::SchedYield => unsafe { raw_syscall(libc::SYS_sched_yield, [0; 6]) },
            // SAFETY: getpid takes no arguments.
            Syscall::Getpid => unsafe { raw_syscall(libc::SYS_getpid, [0; 6]) },
            Syscall::Nanosleep { ns } => {
                let ts = Self::timespec(ns);
                let tsp = &ts as *const libc::timespec as L;
                // SAFETY: `ts` is a live timespec for the call; the remainder pointer is null.
                unsafe {
                    raw_syscall(
                        libc::SYS_clock_nanosleep,
                        [CLOCK_MONOTONIC, 0, tsp, 0, 0, 0],
                    )
                }
            }
            Syscall::FutexWait { word, expected } => {
                let uaddr = self.shared.word(word).as_ptr() as L;
                // SAFETY: `uaddr` is a live, aligned AtomicU32 (kept alive by our Arc); the
                // timeout pointer is null (wait forever); the kernel only reads the word.
                unsafe {
                    raw_syscall(
                        libc::SYS_futex,
                        [uaddr, FUTEX_WAIT_PRIVATE, expected as L, 0, 0, 0],
                    )
                }
            }
            Syscall::FutexWake { word, count } => {
                let uaddr = self.shared.word(word).as_ptr() as L;
                let count = count.min(i32::MAX as u32) as L;
                // SAFETY: `uaddr` is a live, aligned AtomicU32; FUTEX_WAKE does not access it.
                unsafe { raw_syscall(libc::SYS_futex, [uaddr, FUTEX_WAKE_PRIVATE, count, 0, 0, 0]) }
            }
            Syscall::SchedSetaffinity(set) => {
                let words = *set.words();
                let len = core::mem::size_of_val(&words) as L;
                // SAFETY: `words` is a live 128-byte buffer and `len` says so; read-only.
                unsafe {
                    raw_syscall(
                        libc::SYS_sched_setaffinity,
                        [0, len, words.as_ptr() as L, 0, 0, 0],
                    )
                }
            }
            Syscall::Membarrier { cmd, flags, cpu_id } => {
                // SAFETY: membarrier takes only integers.
                unsafe {
                    raw_syscall(
                        libc::SYS_membarrier,
                        [cmd as L, flags as L, cpu_id as L, 0, 0, 0],
                    )
                }
            }
            Syscall::Other { nr } => {
                assert!(
                    !other_is_refused(nr),
                    "Syscall::Other {{ nr: {nr} }} would end or corrupt the calling thread; \
                     use a dedicated API"
                );
                // SAFETY: all six arguments are zero (null pointers), and the numbers that
                // would break Rust's assumptions even then are refused above.
                unsafe { raw_syscall(nr as L, [0; 6]) }
            }
        }
    }

    fn sched_getaffinity(&mut self) -> Result<CpuSet, Errno> {
        let mut words = [0u64; 16];
        let len = core::mem::size_of_val(&words) as libc::c_long;
        // SAFETY: `words` is a live, writable 128-byte buffer and `len` says so; the kernel
        // writes at most `len` bytes (it returns how many).
        unsafe {
            raw_syscall(
                libc::SYS_sched_getaffinity,
                [0, len, words.as_mut_ptr() as libc::c_long, 0, 0, 0],
            )
        }?;
        Ok(CpuSet::from_words(words))
    }

    fn clock_ns(&mut self) -> u64 {
        Self::clock_monotonic_ns()
    }

    /// x86_64: one assembly critical section interprets the steps (`linux/seq.rs`); it
    /// needs this thread's own registration with the default signature. Elsewhere, and
    /// without such a registration, [`SeqOutcome::Unsupported`].
    fn rseq_sequence(&mut self, seq: &Sequence<'_>) -> SeqOutcome {
        #[cfg(target_arch = "x86_64")]
        {
            if self.registration.is_none() || self.sig != crate::consts::RSEQ_SIG {
                return SeqOutcome::Unsupported;
            }
            let per_ns = self.seq_iters_per_ns;
            let words = self.shared.words.as_ptr().cast::<u32>().cast_mut();
            // SAFETY: our area is registered and alive (it outlives the registration);
            // `words` are the live shared words, which other threads access atomically.
            unsafe {
                seq::run(
                    seq,
                    self.area.as_ptr().cast::<u8>(),
                    words,
                    self.shared.words.len(),
                    per_ns,
                )
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = seq;
            SeqOutcome::Unsupported
        }
    }

    fn burn(&mut self, ns: u64) {
        let start = self.clock_ns();
        while self.clock_ns().saturating_sub(start) < ns {}
    }

    fn shared_load(&mut self, word: SharedWord) -> u32 {
        self.shared.word(word).load(Ordering::SeqCst)
    }

    fn shared_store(&mut self, word: SharedWord, val: u32) {
        self.shared.word(word).store(val, Ordering::SeqCst)
    }

    fn shared_cas(&mut self, word: SharedWord, old: u32, new: u32) -> Result<u32, u32> {
        self.shared
            .word(word)
            .compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst)
    }

    fn shared_fetch_add(&mut self, word: SharedWord, val: u32) -> u32 {
        self.shared.word(word).fetch_add(val, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_passes_through_unchanged() {
        assert_eq!(sys_result(-1, 524), Err(Errno::ENOTSUPP));
        assert_eq!(sys_result(-1, 22), Err(Errno::EINVAL));
        assert_eq!(sys_result(0, 0), Ok(0));
        assert_eq!(sys_result(7, 0), Ok(7));
    }

    #[test]
    fn area_is_256_aligned_and_zeroed() {
        let mut p = LinuxPlatform::standalone().with_rseq_len(AREA_SIZE as u32);
        assert_eq!(p.rseq_addr() % AREA_SIZE as u64, 0);
        assert!((0..AREA_SIZE).all(|off| p.load_u8(off) == 0));
    }

    /// Real restartable sequences on the host kernel: the same `percpu_counter` program
    /// the simulator runs, its sequence aborted by real preemptions (a second thread spins
    /// on the same CPU), every update made exactly once. glibc owns rseq in a normal
    /// process, so the work runs in a child test process started with
    /// `GLIBC_TUNABLES=glibc.pthread.rseq=0`; a kernel without rseq skips.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn restartable_sequences_abort_and_retry_on_the_host_kernel() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "linux::tests::sequences_on_the_host_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains("SKIPPED") {
            eprintln!("{}", text.lines().find(|l| l.contains("SKIPPED")).unwrap());
            return;
        }
        assert!(text.contains("RESULT "), "{text}");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    #[ignore = "run by restartable_sequences_abort_and_retry_on_the_host_kernel"]
    fn sequences_on_the_host_child() {
        use crate::programs::percpu::{percpu_counter, PercpuParams};
        use std::sync::atomic::AtomicBool;
        let shared = SharedMem::new(100 + 1024);
        let mut p = LinuxPlatform::new(shared.clone());
        if let Err(e) = p.register_own(0) {
            println!("SKIPPED: rseq registration failed: {e}");
            return;
        }
        p.syscall(Syscall::SchedSetaffinity(CpuSet::single(0)))
            .expect("pin to CPU 0");
        // A CPU hog on the same CPU: the scheduler must preempt the sequences.
        let stop = Arc::new(AtomicBool::new(false));
        let hog = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut q = LinuxPlatform::standalone();
                q.syscall(Syscall::SchedSetaffinity(CpuSet::single(0)))
                    .expect("pin the hog");
                while !stop.load(Ordering::Relaxed) {
                    q.burn(100_000);
                }
            })
        };
        let params = PercpuParams {
            hold_ns: 1_000_000,
            think_ns: 0,
            iterations: 200,
            ..PercpuParams::DEFAULT
        };
        let c = percpu_counter(&mut p, &params);
        stop.store(true, Ordering::Relaxed);
        hog.join().unwrap();
        assert!(!c.unsupported, "{c:?}");
        assert_eq!(c.commits, 200);
        assert_eq!(
            shared.word(SharedWord(100)).load(Ordering::SeqCst),
            200,
            "CPU 0's counter: every update exactly once"
        );
        assert!(
            c.aborts > 0,
            "200 sections of 1 ms beside a hog: some are preempted"
        );
        println!("RESULT commits={} aborts={}", c.commits, c.aborts);
    }
}
