//! Byte-exact mirrors of `struct rseq`, `struct rseq_cs` and `struct rseq_slice_ctrl`.
//!
//! Follows `include/uapi/linux/rseq.h` as merged for Linux 7.0 (spec §1.1–§1.3). Every
//! offset, size and alignment in the spec's tables is asserted at compile time below, so a
//! layout change cannot build.

use core::mem::{align_of, offset_of, size_of};

/// `struct rseq_slice_ctrl`: the 4-byte time slice extension control word.
///
/// The kernel declares it as a union of `{u8 request; u8 granted; u16 __reserved}` and a
/// `u32 all`. This mirror keeps the byte view (no `unsafe` union reads); [`Self::all`] gives
/// the host-endian compound view. See [`crate::ctrl`] for endian-explicit access.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RseqSliceCtrl {
    /// Set to non-zero by user space to ask for an extension; cleared by user or kernel.
    pub request: u8,
    /// Written only by the kernel: 1 while an extension is granted.
    pub granted: u8,
    /// No semantics; zeroed by every kernel clear, preserved by the grant write.
    pub reserved: u16,
}

impl RseqSliceCtrl {
    /// The `all` view as the host reads it (host-endian `u32`).
    pub fn all(&self) -> u32 {
        u32::from_ne_bytes(self.to_bytes())
    }

    /// The four bytes in memory order.
    pub fn to_bytes(&self) -> [u8; 4] {
        let r = self.reserved.to_ne_bytes();
        [self.request, self.granted, r[0], r[1]]
    }

    /// Build from the four bytes in memory order.
    pub fn from_bytes(b: [u8; 4]) -> Self {
        Self {
            request: b[0],
            granted: b[1],
            reserved: u16::from_ne_bytes([b[2], b[3]]),
        }
    }
}

/// `struct rseq`: the per-thread area registered with the `rseq()` syscall.
#[repr(C, align(32))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rseq {
    /// Kernel-written CPU number, always valid (user read-only).
    pub cpu_id_start: u32,
    /// Kernel-written CPU number or a negative `RSEQ_CPU_ID_*` sentinel (user read-only).
    pub cpu_id: u32,
    /// Pointer to the active `struct rseq_cs` or 0 (32-bit ABIs use the low word).
    pub rseq_cs: u64,
    /// Feature status bits (`RSEQ_CS_FLAG_SLICE_EXT_*`), written by the kernel.
    pub flags: u32,
    /// Kernel-written NUMA node id.
    pub node_id: u32,
    /// Kernel-written memory-map concurrency id.
    pub mm_cid: u32,
    /// The slice extension control word.
    pub slice_ctrl: RseqSliceCtrl,
}

/// `struct rseq_cs`: a restartable critical section descriptor (unchanged by the feature).
#[repr(C, align(32))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RseqCs {
    /// Must be 0.
    pub version: u32,
    /// Must be 0 in debug mode.
    pub flags: u32,
    /// First instruction of the section.
    pub start_ip: u64,
    /// Length of the section in bytes.
    pub post_commit_offset: u64,
    /// Abort handler; the 4 bytes before it hold the registered signature.
    pub abort_ip: u64,
}

/// Byte offsets inside `struct rseq` (spec §1.1), the unit in which user code and the
/// simulator address the area.
pub mod offset {
    /// `cpu_id_start`.
    pub const CPU_ID_START: usize = 0;
    /// `cpu_id`.
    pub const CPU_ID: usize = 4;
    /// `rseq_cs`.
    pub const RSEQ_CS: usize = 8;
    /// `flags`.
    pub const FLAGS: usize = 16;
    /// `node_id`.
    pub const NODE_ID: usize = 20;
    /// `mm_cid`.
    pub const MM_CID: usize = 24;
    /// `slice_ctrl` (also `slice_ctrl.all` and `slice_ctrl.request`).
    pub const SLICE_CTRL: usize = 28;
    /// `slice_ctrl.request`.
    pub const REQUEST: usize = 28;
    /// `slice_ctrl.granted`.
    pub const GRANTED: usize = 29;
    /// `slice_ctrl.__reserved`.
    pub const RESERVED: usize = 30;
    /// `end[]`, i.e. the feature size.
    pub const END: usize = 32;
}

/// Byte offsets inside `struct rseq_cs` (spec §1.3).
pub mod cs_offset {
    /// `version`.
    pub const VERSION: usize = 0;
    /// `flags`.
    pub const FLAGS: usize = 4;
    /// `start_ip`.
    pub const START_IP: usize = 8;
    /// `post_commit_offset`.
    pub const POST_COMMIT_OFFSET: usize = 16;
    /// `abort_ip`.
    pub const ABORT_IP: usize = 24;
}

// Compile-time checks of every figure in the spec's layout tables.
const _: () = {
    assert!(offset_of!(Rseq, cpu_id_start) == offset::CPU_ID_START);
    assert!(offset_of!(Rseq, cpu_id) == offset::CPU_ID);
    assert!(offset_of!(Rseq, rseq_cs) == offset::RSEQ_CS);
    assert!(offset_of!(Rseq, flags) == offset::FLAGS);
    assert!(offset_of!(Rseq, node_id) == offset::NODE_ID);
    assert!(offset_of!(Rseq, mm_cid) == offset::MM_CID);
    assert!(offset_of!(Rseq, slice_ctrl) == offset::SLICE_CTRL);
    assert!(offset::SLICE_CTRL + offset_of!(RseqSliceCtrl, request) == offset::REQUEST);
    assert!(offset::SLICE_CTRL + offset_of!(RseqSliceCtrl, granted) == offset::GRANTED);
    assert!(offset::SLICE_CTRL + offset_of!(RseqSliceCtrl, reserved) == offset::RESERVED);
    assert!(size_of::<Rseq>() == offset::END);
    assert!(size_of::<Rseq>() == 32);
    assert!(align_of::<Rseq>() == 32);
    assert!(size_of::<RseqSliceCtrl>() == 4);
    assert!(align_of::<RseqSliceCtrl>() == 4);
    assert!(offset_of!(RseqCs, version) == cs_offset::VERSION);
    assert!(offset_of!(RseqCs, flags) == cs_offset::FLAGS);
    assert!(offset_of!(RseqCs, start_ip) == cs_offset::START_IP);
    assert!(offset_of!(RseqCs, post_commit_offset) == cs_offset::POST_COMMIT_OFFSET);
    assert!(offset_of!(RseqCs, abort_ip) == cs_offset::ABORT_IP);
    assert!(size_of::<RseqCs>() == 32);
    assert!(align_of::<RseqCs>() == 32);
    assert!(crate::consts::RSEQ_FEATURE_SIZE as usize == offset::END);
    assert!(crate::consts::ORIG_RSEQ_SIZE as usize == size_of::<Rseq>());
};
