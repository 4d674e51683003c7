//! The user side of the time slice extension, written once for every platform.
//!
//! Follows `Documentation/userspace-api/rseq.rst` (spec §8.1) for the merged protocol and
//! the V1 posting (spec §8.2, §11) for V1. Registration and prctl follow spec §2.3–§2.4.

use crate::consts::*;
use crate::ctrl::Revision;
use crate::layout::offset;
use crate::platform::{Errno, Platform, SysResult, Syscall};

/// `rseq(own area, len, flags, sig)`: register this thread's own `struct rseq`.
pub fn register<P: Platform + ?Sized>(p: &mut P, flags: u32) -> Result<(), Errno> {
    let call = Syscall::Rseq {
        addr: p.rseq_addr(),
        len: p.rseq_len(),
        flags,
        sig: p.rseq_sig(),
    };
    p.syscall(call).map(drop)
}

/// `rseq(own area, len, RSEQ_FLAG_UNREGISTER, sig)`.
pub fn unregister<P: Platform + ?Sized>(p: &mut P) -> Result<(), Errno> {
    let call = Syscall::Rseq {
        addr: p.rseq_addr(),
        len: p.rseq_len(),
        flags: RSEQ_FLAG_UNREGISTER,
        sig: p.rseq_sig(),
    };
    p.syscall(call).map(drop)
}

/// `prctl(PR_RSEQ_SLICE_EXTENSION, arg2, arg3, arg4, arg5)` with raw arguments.
pub fn prctl_slice<P: Platform + ?Sized>(
    p: &mut P,
    arg2: u64,
    arg3: u64,
    arg4: u64,
    arg5: u64,
) -> SysResult {
    p.syscall(Syscall::Prctl {
        option: PR_RSEQ_SLICE_EXTENSION,
        arg2,
        arg3,
        arg4,
        arg5,
    })
}

/// `PR_RSEQ_SLICE_EXTENSION_GET`: is the extension enabled for this thread?
pub fn slice_ext_get<P: Platform + ?Sized>(p: &mut P) -> Result<bool, Errno> {
    prctl_slice(p, PR_RSEQ_SLICE_EXTENSION_GET, 0, 0, 0)
        .map(|v| v as u64 & PR_RSEQ_SLICE_EXT_ENABLE != 0)
}

/// `PR_RSEQ_SLICE_EXTENSION_SET`: enable or disable the extension for this thread.
pub fn slice_ext_set<P: Platform + ?Sized>(p: &mut P, enable: bool) -> Result<(), Errno> {
    let arg3 = if enable { PR_RSEQ_SLICE_EXT_ENABLE } else { 0 };
    prctl_slice(p, PR_RSEQ_SLICE_EXTENSION_SET, arg3, 0, 0).map(drop)
}

/// The feature-status bits of `rseq::flags` (spec §1.4, §2.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RseqFlags(pub u32);

impl RseqFlags {
    /// `RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE`: the kernel offers the extension.
    pub fn available(self) -> bool {
        self.0 & RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE != 0
    }

    /// `RSEQ_CS_FLAG_SLICE_EXT_ENABLED`: the extension is enabled for this thread.
    pub fn enabled(self) -> bool {
        self.0 & RSEQ_CS_FLAG_SLICE_EXT_ENABLED != 0
    }
}

/// Read `rseq::flags` from the thread's own area.
pub fn read_flags<P: Platform + ?Sized>(p: &mut P) -> RseqFlags {
    RseqFlags(p.load_u32(offset::FLAGS))
}

/// How a critical section ended, from the user's point of view (spec §8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceOutcome {
    /// The extension is not in use on this thread; the control word was not touched.
    Unused,
    /// `request` was still set: no grant happened and no rseq update wiped it.
    NotInterrupted,
    /// `granted` was set: the thread called `rseq_slice_yield()`, which returned this.
    /// `Ok(1)`: the CPU was relinquished within the extension; `Ok(0)`: the grant was
    /// revoked between the check and the syscall (spec §8.3).
    Yielded(SysResult),
    /// `request` had been consumed and no grant is visible: the grant was revoked (expiry,
    /// second reschedule, IPI) or the request wiped by a switch or pending work.
    Consumed,
}

/// Why the extension cannot be used on this thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// `rseq()` registration failed with this errno.
    #[error("rseq registration failed: {0}")]
    Register(Errno),
    /// `PR_RSEQ_SLICE_EXTENSION_SET` failed with this errno.
    #[error("prctl(PR_RSEQ_SLICE_EXTENSION, SET, ENABLE) failed: {0}")]
    Enable(Errno),
}

/// How a thread set up (or failed to set up) the extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableMode {
    /// Register with flags 0, then `prctl(SET, ENABLE)` (the selftest's way).
    Prctl,
    /// Register with `RSEQ_FLAG_SLICE_EXT_DEFAULT_ON`.
    DefaultOn,
    /// Register only; leave the extension off.
    Off,
}

/// A thread's handle on the extension: which protocol to speak, and whether to speak it.
///
/// Obtained from [`SliceExt::setup`]; when setup failed, [`SliceExt::critical_section`]
/// degrades to running the section without touching the control word, which is the
/// correct behaviour on a kernel without the feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceExt {
    revision: Revision,
    active: bool,
}

impl SliceExt {
    /// A handle that never touches the control word.
    pub fn unused(revision: Revision) -> Self {
        Self {
            revision,
            active: false,
        }
    }

    /// A handle that uses the protocol without doing any setup (the caller did it).
    pub fn assume_enabled(revision: Revision) -> Self {
        Self {
            revision,
            active: true,
        }
    }

    /// Register this thread and enable the extension per `mode`.
    ///
    /// Returns the handle and, if the extension is unusable, the first error; the handle is
    /// then [`SliceExt::unused`]. Registration that fails with `EBUSY` (already registered
    /// by us, e.g. a second call) counts as success.
    pub fn setup<P: Platform + ?Sized>(p: &mut P, mode: EnableMode) -> (Self, Option<SetupError>) {
        let rev = p.revision();
        let flags = match mode {
            EnableMode::DefaultOn => RSEQ_FLAG_SLICE_EXT_DEFAULT_ON,
            EnableMode::Prctl | EnableMode::Off => 0,
        };
        match register(p, flags) {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(e) => return (Self::unused(rev), Some(SetupError::Register(e))),
        }
        match mode {
            EnableMode::Off => (Self::unused(rev), None),
            EnableMode::DefaultOn => {
                if read_flags(p).enabled() {
                    (Self::assume_enabled(rev), None)
                } else {
                    // The flag was accepted but the kernel did not enable (boot switch off,
                    // or post-7.0 legacy registration): the prctl says why.
                    match slice_ext_set(p, true) {
                        Ok(()) => (Self::assume_enabled(rev), None),
                        Err(e) => (Self::unused(rev), Some(SetupError::Enable(e))),
                    }
                }
            }
            EnableMode::Prctl => match slice_ext_set(p, true) {
                Ok(()) => (Self::assume_enabled(rev), None),
                Err(e) => (Self::unused(rev), Some(SetupError::Enable(e))),
            },
        }
    }

    /// Is the protocol in use on this thread?
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The protocol revision spoken.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Ask for an extension (first half of [`Self::critical_section`]).
    pub fn request<P: Platform + ?Sized>(&self, p: &mut P) {
        if !self.active {
            return;
        }
        if self.revision.is_v1() {
            // V1: a plain store of REQUEST; the kernel sets GRANTED only after REQUEST.
            p.store_u32(offset::SLICE_CTRL, V1_RSEQ_SLICE_EXT_REQUEST);
        } else {
            p.store_u8(offset::REQUEST, 1);
        }
    }

    /// Leave the critical section (second half of [`Self::critical_section`]).
    ///
    /// Merged (spec §8.1): read `request` only to classify, store 0 unconditionally, then
    /// yield if `granted` is set. V1 (spec §8.2): CPU-local test-and-clear of REQUEST; if it
    /// was still set we are done, else check GRANTED.
    pub fn release<P: Platform + ?Sized>(&self, p: &mut P) -> SliceOutcome {
        if !self.active {
            return SliceOutcome::Unused;
        }
        if self.revision.is_v1() {
            if p.test_and_clear_bit_local(offset::SLICE_CTRL, V1_RSEQ_SLICE_EXT_REQUEST_BIT) {
                return SliceOutcome::NotInterrupted;
            }
            if p.load_u32(offset::SLICE_CTRL) & V1_RSEQ_SLICE_EXT_GRANTED != 0 {
                return SliceOutcome::Yielded(p.syscall(Syscall::RseqSliceYield));
            }
            return SliceOutcome::Consumed;
        }
        let was_requested = p.load_u8(offset::REQUEST) != 0;
        p.store_u8(offset::REQUEST, 0);
        if p.load_u8(offset::GRANTED) != 0 {
            // A grant that landed between the load and the store is seen here (spec §8.3).
            SliceOutcome::Yielded(p.syscall(Syscall::RseqSliceYield))
        } else if was_requested {
            SliceOutcome::NotInterrupted
        } else {
            SliceOutcome::Consumed
        }
    }

    /// Run `section` with an extension requested, then leave per the protocol.
    pub fn critical_section<P: Platform + ?Sized, R>(
        &self,
        p: &mut P,
        section: impl FnOnce(&mut P) -> R,
    ) -> (R, SliceOutcome) {
        self.request(p);
        let r = section(p);
        let outcome = self.release(p);
        (r, outcome)
    }
}

/// Busy-wait until `span_ns` have elapsed since `start_ns`, polling the clock like the
/// selftest's `elapsed()` loop.
pub fn spin_until<P: Platform + ?Sized>(p: &mut P, start_ns: u64, span_ns: u64) {
    while p.clock_ns().saturating_sub(start_ns) < span_ns {}
}
