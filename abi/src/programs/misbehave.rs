//! Clients that break the rules of the time slice extension on purpose (spec §7, §11).
//!
//! Each program sets up through [`SliceExt::setup`] (mode [`MisbehaveParams::mode`]), then
//! runs [`MisbehaveParams::sections`] critical sections of [`MisbehaveParams::section_ns`]
//! busy time each, committing its misdeed whenever the situation for it arises, and returns
//! [`MisbehaveCounters`]. On a real kernel (or the simulator) a misdeed may be fatal: the
//! thread then dies with SIGSEGV and never returns; which ones are fatal, and when, is
//! exactly what these programs are for.
//!
//! They speak the platform's revision ([`Platform::revision`]): V1 (spec §11) uses the
//! `u32` control word with REQUEST in bit 0, GRANTED in bit 1 and the CPU-local
//! test-and-clear; merged uses the bytes. Leaving a section *without* the protocol's yield
//! (what these clients do instead) is the private `leave` below, the protocol's own
//! [`SliceExt::release`] minus the yield; every conforming step uses the helpers of
//! [`crate::protocol`].
//!
//! Every section is classified exactly once as `not_interrupted`, `granted_seen` or
//! `consumed` (see [`MisbehaveCounters::check_invariants`]).

use crate::consts::*;
use crate::ctrl::Revision;
use crate::layout::offset;
use crate::platform::{Errno, Platform, SysResult, Syscall};
use crate::protocol::{self, EnableMode, SetupError, SliceExt, SliceOutcome};

use super::Counters;

/// The reserved bytes [`reserved_bytes`] writes (merged: bytes 30 and 31 of `struct rseq`).
pub const RESERVED_JUNK: [u8; 2] = [0xa5, 0x5a];
/// The bits [`reserved_bytes`] sets beside REQUEST in the V1 `u32` (bits 16..31).
pub const V1_RESERVED_JUNK: u32 = 0xa55a_0000;

/// Which rule a misbehaving client breaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Misbehavior {
    /// [`never_yields`]: sees `granted`, ignores it and keeps running.
    #[default]
    NeverYields,
    /// [`writes_granted`]: stores `granted = 1` itself, then makes a syscall.
    WritesGranted,
    /// [`tampers_flags`]: clears `RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE`, then calls prctl SET.
    TampersFlags,
    /// [`request_while_granted`]: sets `request` again while a grant is outstanding.
    RequestWhileGranted,
    /// [`syscall_in_grant`]: leaves a grant with `getpid()` instead of yielding.
    SyscallInGrant,
    /// [`reserved_bytes`]: writes non-zero `__reserved` bytes.
    ReservedBytes,
}

impl Misbehavior {
    /// Every misbehaviour.
    pub const ALL: [Misbehavior; 6] = [
        Misbehavior::NeverYields,
        Misbehavior::WritesGranted,
        Misbehavior::TampersFlags,
        Misbehavior::RequestWhileGranted,
        Misbehavior::SyscallInGrant,
        Misbehavior::ReservedBytes,
    ];

    /// The program's name as used in scenario files (`never_yields`, …).
    pub fn name(self) -> &'static str {
        match self {
            Misbehavior::NeverYields => "never_yields",
            Misbehavior::WritesGranted => "writes_granted",
            Misbehavior::TampersFlags => "tampers_flags",
            Misbehavior::RequestWhileGranted => "request_while_granted",
            Misbehavior::SyscallInGrant => "syscall_in_grant",
            Misbehavior::ReservedBytes => "reserved_bytes",
        }
    }

    /// Parse a name produced by [`Self::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Parameters shared by every misbehaving client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MisbehaveParams {
    /// Critical sections to run.
    pub sections: u64,
    /// Busy time inside each section (CPU time, or clock time with `clock_section`).
    pub section_ns: u64,
    /// [`never_yields`]: busy time between two looks at `granted` while overstaying.
    pub poll_ns: u64,
    /// [`never_yields`]: give up waiting for the kernel to take a grant back after this
    /// long (monotonic clock), leaving the grant outstanding.
    pub overstay_limit_ns: u64,
    /// How to set the extension up.
    pub mode: EnableMode,
    /// Time each section on the monotonic clock (a clock-polling spin, as the kselftest's
    /// loop does) instead of burning `section_ns` of CPU time: an interrupt inside the
    /// section then eats into it, so the client leaves right after a grant's interrupt.
    /// The fidelity probes set it because [`Platform::burn`] on a real kernel is itself a
    /// clock-polling spin (`LinuxPlatform`): with it both sides run the same section.
    pub clock_section: bool,
}

impl MisbehaveParams {
    /// 100 sections of 2 µs of CPU time, 500 ns polls, 1 ms overstay limit, enabled with
    /// prctl.
    pub const DEFAULT: MisbehaveParams = MisbehaveParams {
        sections: 100,
        section_ns: 2_000,
        poll_ns: 500,
        overstay_limit_ns: 1_000_000,
        mode: EnableMode::Prctl,
        clock_section: false,
    };
}

impl Default for MisbehaveParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a misbehaving client did and saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MisbehaveCounters {
    /// Which program produced these.
    pub kind: Misbehavior,
    /// Setup failure, if any (the program then runs with an unused handle).
    pub setup_error: Option<SetupError>,
    /// Whether setup left the extension in use.
    pub ext_active: bool,
    /// Critical sections run.
    pub sections: u64,
    /// Sections that ended with `request` still set.
    pub not_interrupted: u64,
    /// Sections that ended with `granted` visible.
    pub granted_seen: u64,
    /// Sections that ended with the request consumed and no grant visible.
    pub consumed: u64,
    /// Times the rule was broken.
    pub misdeeds: u64,
    /// Syscalls made right after a misdeed.
    pub syscalls: u64,
    /// Of those, how many returned an error.
    pub syscall_errors: u64,
    /// Of those, how many returned 1 (`rseq_slice_yield`: "yielded within a grant").
    pub syscall_returned_1: u64,
    /// The errno of the last failing one (0: none).
    pub last_errno: i32,
    /// Protocol-conforming yields (`rseq_slice_yield` after a real grant) made.
    pub yields: u64,
    /// Of those, how many returned 0 (grant revoked before the syscall, spec §8.3).
    pub raced: u64,
    /// [`never_yields`]: grants the kernel took back while the client kept running.
    pub overstay_revoked: u64,
    /// [`never_yields`]: grants still visible when the overstay limit was reached.
    pub overstay_at_limit: u64,
    /// [`never_yields`]: total time spent running on with `granted` visible.
    pub overstay_ns_total: u64,
    /// [`never_yields`]: longest such time.
    pub overstay_ns_max: u64,
    /// [`reserved_bytes`]: sections whose reserved bytes were still set when leaving.
    pub reserved_intact: u64,
    /// [`reserved_bytes`]: sections whose reserved bytes had been zeroed by a kernel clear.
    pub reserved_wiped: u64,
}

impl MisbehaveCounters {
    fn new(kind: Misbehavior, ext: &SliceExt, setup_error: Option<SetupError>) -> Self {
        Self {
            kind,
            setup_error,
            ext_active: ext.is_active(),
            ..Default::default()
        }
    }

    /// The counters by name: the common ones, then those of this program's kind.
    pub fn counters(&self) -> Counters {
        let mut out = vec![
            ("ext_active", i64::from(self.ext_active)),
            ("sections", self.sections as i64),
            ("not_interrupted", self.not_interrupted as i64),
            ("granted_seen", self.granted_seen as i64),
            ("consumed", self.consumed as i64),
            ("misdeeds", self.misdeeds as i64),
            ("syscalls", self.syscalls as i64),
            ("syscall_errors", self.syscall_errors as i64),
            ("syscall_returned_1", self.syscall_returned_1 as i64),
            ("last_errno", i64::from(self.last_errno)),
        ];
        match self.kind {
            Misbehavior::NeverYields => out.extend([
                ("overstay_revoked", self.overstay_revoked as i64),
                ("overstay_at_limit", self.overstay_at_limit as i64),
                ("overstay_ns_total", self.overstay_ns_total as i64),
                ("overstay_ns_max", self.overstay_ns_max as i64),
            ]),
            Misbehavior::WritesGranted | Misbehavior::TampersFlags => {
                out.extend([("yields", self.yields as i64), ("raced", self.raced as i64)])
            }
            Misbehavior::ReservedBytes => out.extend([
                ("yields", self.yields as i64),
                ("raced", self.raced as i64),
                ("reserved_intact", self.reserved_intact as i64),
                ("reserved_wiped", self.reserved_wiped as i64),
            ]),
            Misbehavior::RequestWhileGranted | Misbehavior::SyscallInGrant => {}
        }
        out
    }

    /// Every section classified exactly once; syscall results within syscalls made; races
    /// within yields; overstays within grants seen.
    pub fn check_invariants(&self) -> Result<(), String> {
        let sum = self.not_interrupted + self.granted_seen + self.consumed;
        if sum != self.sections {
            return Err(format!(
                "not_interrupted+granted_seen+consumed = {sum} != sections {}",
                self.sections
            ));
        }
        if self.syscall_errors + self.syscall_returned_1 > self.syscalls {
            return Err(format!("syscall results exceed syscalls {}", self.syscalls));
        }
        if self.raced > self.yields {
            return Err(format!("raced {} > yields {}", self.raced, self.yields));
        }
        if self.overstay_revoked + self.overstay_at_limit > self.granted_seen {
            return Err(format!(
                "overstays exceed granted_seen {}",
                self.granted_seen
            ));
        }
        Ok(())
    }

    fn classify(&mut self, left: Left) {
        if left.granted {
            self.granted_seen += 1;
        } else if left.requested {
            self.not_interrupted += 1;
        } else {
            self.consumed += 1;
        }
    }

    fn classify_outcome(&mut self, outcome: SliceOutcome) {
        match outcome {
            SliceOutcome::NotInterrupted => self.not_interrupted += 1,
            SliceOutcome::Yielded(r) => {
                self.granted_seen += 1;
                self.yields += 1;
                if r == Ok(0) {
                    self.raced += 1;
                }
            }
            // An unused handle never requested: the kernel cannot have seen a request.
            SliceOutcome::Consumed | SliceOutcome::Unused => self.consumed += 1,
        }
    }

    fn syscall_result(&mut self, r: SysResult) {
        self.syscalls += 1;
        match r {
            Ok(1) => self.syscall_returned_1 += 1,
            Ok(_) => {}
            Err(Errno(e)) => {
                self.syscall_errors += 1;
                self.last_errno = e;
            }
        }
    }
}

/// Run the misbehaving program `kind`.
pub fn run<P: Platform + ?Sized>(
    p: &mut P,
    kind: Misbehavior,
    params: &MisbehaveParams,
) -> MisbehaveCounters {
    match kind {
        Misbehavior::NeverYields => never_yields(p, params),
        Misbehavior::WritesGranted => writes_granted(p, params),
        Misbehavior::TampersFlags => tampers_flags(p, params),
        Misbehavior::RequestWhileGranted => request_while_granted(p, params),
        Misbehavior::SyscallInGrant => syscall_in_grant(p, params),
        Misbehavior::ReservedBytes => reserved_bytes(p, params),
    }
}

/// How a section was left without yielding.
#[derive(Clone, Copy, Debug)]
struct Left {
    requested: bool,
    granted: bool,
}

/// [`SliceExt::release`] without the yield: merged, load `request`, store 0, load
/// `granted`; V1, CPU-local test-and-clear of REQUEST, then (if it was clear) GRANTED.
/// An unused handle touches nothing and reports "consumed".
fn leave<P: Platform + ?Sized>(p: &mut P, ext: &SliceExt) -> Left {
    if !ext.is_active() {
        return Left {
            requested: false,
            granted: false,
        };
    }
    if ext.revision().is_v1() {
        if p.test_and_clear_bit_local(offset::SLICE_CTRL, V1_RSEQ_SLICE_EXT_REQUEST_BIT) {
            return Left {
                requested: true,
                granted: false,
            };
        }
        let granted = p.load_u32(offset::SLICE_CTRL) & V1_RSEQ_SLICE_EXT_GRANTED != 0;
        return Left {
            requested: false,
            granted,
        };
    }
    let requested = p.load_u8(offset::REQUEST) != 0;
    p.store_u8(offset::REQUEST, 0);
    let granted = p.load_u8(offset::GRANTED) != 0;
    Left { requested, granted }
}

/// Is `granted` visible, per revision?
fn granted_visible<P: Platform + ?Sized>(p: &mut P, rev: Revision) -> bool {
    if rev.is_v1() {
        p.load_u32(offset::SLICE_CTRL) & V1_RSEQ_SLICE_EXT_GRANTED != 0
    } else {
        p.load_u8(offset::GRANTED) != 0
    }
}

fn section<P: Platform + ?Sized>(p: &mut P, ext: &SliceExt, params: &MisbehaveParams) {
    ext.request(p);
    section_work(p, params.section_ns, params.clock_section);
}

/// The section's busy time: `ns` of CPU time, or `ns` on the clock ([`MisbehaveParams::clock_section`]).
fn section_work<P: Platform + ?Sized>(p: &mut P, ns: u64, on_clock: bool) {
    if ns > 0 {
        super::busy(p, ns, on_clock);
    }
}

/// Sees `granted`, ignores it, and keeps running (spec §4, §3.2 step 4, §7 "not fatal").
///
/// Shows that the extension is enforced without the client's cooperation: the enforcement
/// timer (§4.3) sets need-resched when the grant's time is up, and the next exit to user
/// revokes the grant and schedules (§3.2 step 4, R2), after which the client sees `granted`
/// back at 0. After each section that ends granted, the client keeps burning `poll_ns` at a
/// time and looking at `granted` until it clears (`overstay_revoked`) or
/// `overstay_limit_ns` passes (`overstay_at_limit`); the time it ran on is
/// `overstay_ns_*`, bounded by `slice_ext_nsec` plus the scheduling latency on a correct
/// kernel. No syscall is ever made, so nothing is fatal in either revision.
pub fn never_yields<P: Platform + ?Sized>(
    p: &mut P,
    params: &MisbehaveParams,
) -> MisbehaveCounters {
    let (ext, err) = SliceExt::setup(p, params.mode);
    let mut c = MisbehaveCounters::new(Misbehavior::NeverYields, &ext, err);
    for _ in 0..params.sections {
        c.sections += 1;
        section(p, &ext, params);
        let left = leave(p, &ext);
        c.classify(left);
        if !left.granted {
            continue;
        }
        c.misdeeds += 1;
        let t0 = p.clock_ns();
        loop {
            if params.poll_ns > 0 {
                p.burn(params.poll_ns);
            }
            let still = granted_visible(p, ext.revision());
            let ran = p.clock_ns().saturating_sub(t0);
            if !still {
                c.overstay_revoked += 1;
            } else if ran >= params.overstay_limit_ns {
                c.overstay_at_limit += 1;
            } else {
                continue;
            }
            c.overstay_ns_total += ran;
            c.overstay_ns_max = c.overstay_ns_max.max(ran);
            break;
        }
    }
    c
}

/// Stores `granted = 1` itself, then makes a syscall (spec §1.2: `granted` is written only
/// by the kernel; §7 item 3).
///
/// Sections that end with a real grant are left correctly (`rseq_slice_yield`, counted in
/// `yields`). After every other section the client forges a grant (merged: `granted` byte
/// = 1; V1: the word = GRANTED) and "yields" with `rseq_slice_yield()`, then zeroes the
/// byte again (the kernel does not clear the word when it holds no grant). The debug check
/// at syscall entry (§6.1 step 2) runs only while the slice work bit is set, i.e. after a
/// grant was armed and before the next syscall: it catches the forgery when an earlier
/// grant was revoked without a syscall (expiry, second reschedule, IPI) — then the kernel
/// expects `all == 0` and finds `granted == 1` → SIGSEGV. Without the debug check, or when
/// no grant was armed, the forged yield simply returns 0.
pub fn writes_granted<P: Platform + ?Sized>(
    p: &mut P,
    params: &MisbehaveParams,
) -> MisbehaveCounters {
    let (ext, err) = SliceExt::setup(p, params.mode);
    let v1 = ext.revision().is_v1();
    let mut c = MisbehaveCounters::new(Misbehavior::WritesGranted, &ext, err);
    for _ in 0..params.sections {
        c.sections += 1;
        section(p, &ext, params);
        let left = leave(p, &ext);
        c.classify(left);
        if left.granted {
            c.yields += 1;
            if p.syscall(Syscall::RseqSliceYield) == Ok(0) {
                c.raced += 1;
            }
            continue;
        }
        c.misdeeds += 1;
        if v1 {
            p.store_u32(offset::SLICE_CTRL, V1_RSEQ_SLICE_EXT_GRANTED);
        } else {
            p.store_u8(offset::GRANTED, 1);
        }
        let r = p.syscall(Syscall::RseqSliceYield);
        c.syscall_result(r);
        if v1 {
            p.store_u32(offset::SLICE_CTRL, 0);
        } else {
            p.store_u8(offset::GRANTED, 0);
        }
    }
    c
}

/// Clears `RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE` in `rseq::flags`, then calls
/// `prctl(PR_RSEQ_SLICE_EXTENSION, SET)` (spec §2.4 steps 4–6, §7 item 4).
///
/// Each section is a correct [`SliceExt::critical_section`]. After it the client loads
/// `rseq::flags`, stores it back without AVAILABLE, and asks prctl to *change* the enable
/// state (disable when enabled, enable when not): a SET that matches the current state
/// returns 0 before reading the flags (§2.4 step 4), so only a state change reaches the
/// check. The kernel answers SIGSEGV and `-EFAULT` (counted in `syscall_errors`,
/// `last_errno` = 14). The client then restores the original flags and asks for the
/// original state again, so the next round changes state again; the restoring prctl is
/// not counted. Identical in both revisions.
pub fn tampers_flags<P: Platform + ?Sized>(
    p: &mut P,
    params: &MisbehaveParams,
) -> MisbehaveCounters {
    let (ext, err) = SliceExt::setup(p, params.mode);
    let mut c = MisbehaveCounters::new(Misbehavior::TampersFlags, &ext, err);
    let original_state = ext.is_active();
    for _ in 0..params.sections {
        c.sections += 1;
        let (section_ns, on_clock) = (params.section_ns, params.clock_section);
        let ((), outcome) = ext.critical_section(p, |p| section_work(p, section_ns, on_clock));
        c.classify_outcome(outcome);
        let flags = protocol::read_flags(p).0;
        p.store_u32(offset::FLAGS, flags & !RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE);
        c.misdeeds += 1;
        let r = protocol::slice_ext_set(p, !original_state).map(|()| 0);
        c.syscall_result(r);
        p.store_u32(offset::FLAGS, flags);
        let _ = protocol::slice_ext_set(p, original_state);
    }
    c
}

/// Sets `request` again while a grant is outstanding, then yields (spec §7 item 3).
///
/// After each section that ends granted, the client stores `request = 1` (V1: sets the
/// REQUEST bit beside GRANTED with a load and a store) and calls `rseq_slice_yield()`. The
/// debug check at that syscall's entry expects `{granted = 1, everything else 0}` and finds
/// `request` set → SIGSEGV. Without the debug check the yield proceeds and the kernel's
/// clear (§6.1 step 7) wipes the stale request; the client clears it too (merged: byte
/// store; V1: test-and-clear) in case the grant had been revoked before its store.
pub fn request_while_granted<P: Platform + ?Sized>(
    p: &mut P,
    params: &MisbehaveParams,
) -> MisbehaveCounters {
    let (ext, err) = SliceExt::setup(p, params.mode);
    let v1 = ext.revision().is_v1();
    let mut c = MisbehaveCounters::new(Misbehavior::RequestWhileGranted, &ext, err);
    for _ in 0..params.sections {
        c.sections += 1;
        section(p, &ext, params);
        let left = leave(p, &ext);
        c.classify(left);
        if !left.granted {
            continue;
        }
        c.misdeeds += 1;
        if v1 {
            let all = p.load_u32(offset::SLICE_CTRL);
            p.store_u32(offset::SLICE_CTRL, all | V1_RSEQ_SLICE_EXT_REQUEST);
        } else {
            p.store_u8(offset::REQUEST, 1);
        }
        let r = p.syscall(Syscall::RseqSliceYield);
        c.syscall_result(r);
        if v1 {
            p.test_and_clear_bit_local(offset::SLICE_CTRL, V1_RSEQ_SLICE_EXT_REQUEST_BIT);
        } else {
            p.store_u8(offset::REQUEST, 0);
        }
    }
    c
}

/// Leaves a grant with `getpid()` instead of `rseq_slice_yield()` (spec §6.1, §11).
///
/// Merged: legal but discouraged — the syscall-entry work ends the grant, reschedules and
/// counts `s_aborted` (§3.4); the syscall then runs normally. V1: any syscall other than
/// the yield inside a grant is fatal (SIGSEGV). The selftest's `no_yield` variant does the
/// same; this client exists to run it under V1 and with misbehaviour statistics.
pub fn syscall_in_grant<P: Platform + ?Sized>(
    p: &mut P,
    params: &MisbehaveParams,
) -> MisbehaveCounters {
    let (ext, err) = SliceExt::setup(p, params.mode);
    let mut c = MisbehaveCounters::new(Misbehavior::SyscallInGrant, &ext, err);
    for _ in 0..params.sections {
        c.sections += 1;
        section(p, &ext, params);
        let left = leave(p, &ext);
        c.classify(left);
        if left.granted {
            c.misdeeds += 1;
            let r = p.syscall(Syscall::Getpid);
            c.syscall_result(r);
        }
    }
    c
}

/// Writes non-zero `__reserved` bytes (spec §1.2, §7 item 3).
///
/// Merged: before each request the client stores [`RESERVED_JUNK`] into bytes 30 and 31,
/// then follows the protocol ([`SliceExt::request`], [`SliceExt::release`]). Just before
/// leaving it looks at the reserved bytes: a grant write preserves them
/// (`reserved_intact`), every kernel clear zeroes them (`reserved_wiped`). When a grant is
/// left with `rseq_slice_yield()` the debug check sees non-zero reserved bytes → SIGSEGV;
/// without the debug check they are harmless. V1 (no `__reserved` field): the request store
/// itself carries [`V1_RESERVED_JUNK`] in the upper bits of the word.
pub fn reserved_bytes<P: Platform + ?Sized>(
    p: &mut P,
    params: &MisbehaveParams,
) -> MisbehaveCounters {
    let (ext, err) = SliceExt::setup(p, params.mode);
    let v1 = ext.revision().is_v1();
    let mut c = MisbehaveCounters::new(Misbehavior::ReservedBytes, &ext, err);
    for _ in 0..params.sections {
        c.sections += 1;
        c.misdeeds += 1;
        if v1 {
            // The protocol's request is a plain store of the whole word: carry the junk in it.
            let request = if ext.is_active() {
                V1_RSEQ_SLICE_EXT_REQUEST
            } else {
                0
            };
            p.store_u32(offset::SLICE_CTRL, request | V1_RESERVED_JUNK);
        } else {
            p.store_u8(offset::RESERVED, RESERVED_JUNK[0]);
            p.store_u8(offset::RESERVED + 1, RESERVED_JUNK[1]);
            ext.request(p);
        }
        section_work(p, params.section_ns, params.clock_section);
        let intact = if v1 {
            p.load_u32(offset::SLICE_CTRL) & V1_RESERVED_JUNK == V1_RESERVED_JUNK
        } else {
            p.load_u8(offset::RESERVED) == RESERVED_JUNK[0]
                && p.load_u8(offset::RESERVED + 1) == RESERVED_JUNK[1]
        };
        if intact {
            c.reserved_intact += 1;
        } else {
            c.reserved_wiped += 1;
        }
        let outcome = ext.release(p);
        c.classify_outcome(outcome);
    }
    c
}
