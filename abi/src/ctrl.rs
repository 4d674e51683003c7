//! The slice control word as bytes, for both protocol revisions, on either byte order.
//!
//! The merged ABI (spec §1.2) is a union of bytes `{request, granted, __reserved}` and a
//! host-endian `u32 all`; V1 (spec §11) was a plain `u32` with REQUEST in bit 0 and GRANTED
//! in bit 1. The kernel reads and writes `all` as one 32-bit access, so the simulator keeps
//! the four bytes and converts with an explicit [`Endian`]: the result never depends on the
//! host the simulator runs on.

use crate::consts::{V1_RSEQ_SLICE_EXT_GRANTED, V1_RSEQ_SLICE_EXT_REQUEST};

/// Which revision of the time slice extension protocol a kernel (or scenario) speaks, named
/// by the kernel that runs it: `v1`, `7.0`, `7.2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Revision {
    /// `v1`: Thomas Gleixner's first posting (2025-09-08): u32 control word with bits,
    /// syscall 470, any other syscall inside a grant is fatal, 30 µs sysctl default.
    V1,
    /// `7.0` (alias `merged`): the state merged for Linux 7.0.
    Merged,
    /// `7.2` (alias `post-merge`, the default): Linux 7.2, what a user's machine runs:
    /// 7.0 plus the post-merge fixes (spec §12: extension only for registrations larger
    /// than 32 bytes, AVAILABLE only when enabled at boot) and the exit-to-user rseq update
    /// of the 7.2 source (`docs/kernel-model.md`).
    #[default]
    PostMerge,
}

impl Revision {
    /// Every revision, in chronological order.
    pub const ALL: [Revision; 3] = [Revision::V1, Revision::Merged, Revision::PostMerge];

    /// Every accepted spelling: the names, then the older aliases.
    pub const NAMES: [&'static str; 5] = ["v1", "7.0", "7.2", "merged", "post-merge"];

    /// The `rseq_slice_yield` syscall number of this revision (generic/x86 tables).
    pub fn slice_yield_nr(self) -> i64 {
        match self {
            Revision::V1 => crate::consts::nr::V1_RSEQ_SLICE_YIELD,
            Revision::Merged | Revision::PostMerge => crate::consts::nr::RSEQ_SLICE_YIELD,
        }
    }

    /// Whether the control word is the V1 bit layout.
    pub fn is_v1(self) -> bool {
        self == Revision::V1
    }

    /// The revision called `name`: its name (`v1`, `7.0`, `7.2`) or an older alias
    /// (`merged`, `post-merge`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "merged" => Some(Revision::Merged),
            "post-merge" => Some(Revision::PostMerge),
            _ => Self::ALL.into_iter().find(|r| r.name() == name),
        }
    }

    /// The revision's name, after the kernel that runs it: `v1`, `7.0`, `7.2`.
    pub fn name(self) -> &'static str {
        match self {
            Revision::V1 => "v1",
            Revision::Merged => "7.0",
            Revision::PostMerge => "7.2",
        }
    }
}

/// Byte order of the (simulated or real) machine whose `u32 all` is being interpreted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Least significant byte first (x86, most arm64/riscv systems).
    #[default]
    Little,
    /// Most significant byte first (s390, some powerpc/mips).
    Big,
}

impl Endian {
    /// The byte order of the machine this code was compiled for.
    pub const NATIVE: Endian = if cfg!(target_endian = "little") {
        Endian::Little
    } else {
        Endian::Big
    };

    /// Interpret four memory bytes as a `u32` in this byte order.
    pub fn u32_from(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }

    /// Lay a `u32` out as four memory bytes in this byte order.
    pub fn u32_to(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
}

/// The control word as it sits in memory: four bytes, interpreted per revision.
///
/// Merged layout: byte 0 = `request`, byte 1 = `granted`, bytes 2..3 = `__reserved`,
/// whatever the byte order. V1 layout: a `u32` whose bit 0 is REQUEST and bit 1 is GRANTED,
/// so which *byte* holds them depends on the byte order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtrlWord {
    /// The bytes at `struct rseq` offsets 28..32, in memory order.
    pub bytes: [u8; 4],
}

impl CtrlWord {
    /// All four bytes zero (what every kernel clear writes).
    pub const ZERO: CtrlWord = CtrlWord { bytes: [0; 4] };

    /// Wrap four memory bytes.
    pub fn from_bytes(bytes: [u8; 4]) -> Self {
        Self { bytes }
    }

    /// The compound `all` view in the given byte order.
    pub fn all(self, endian: Endian) -> u32 {
        endian.u32_from(self.bytes)
    }

    /// Build from an `all` value in the given byte order.
    pub fn from_all(all: u32, endian: Endian) -> Self {
        Self {
            bytes: endian.u32_to(all),
        }
    }

    /// Merged: the `request` byte.
    pub fn request(self) -> u8 {
        self.bytes[0]
    }

    /// Merged: the `granted` byte.
    pub fn granted(self) -> u8 {
        self.bytes[1]
    }

    /// Merged: the `__reserved` bytes in memory order.
    pub fn reserved(self) -> [u8; 2] {
        [self.bytes[2], self.bytes[3]]
    }

    /// Merged grant write: `request = 0`, `granted = 1`, `__reserved` preserved (spec §3.2
    /// step 6).
    pub fn granted_from(self) -> Self {
        Self {
            bytes: [0, 1, self.bytes[2], self.bytes[3]],
        }
    }

    /// The word the debug check expects at syscall entry: only `granted` equal to the
    /// kernel's grant state, everything else zero (spec §7 item 3).
    pub fn expected(kernel_granted: bool) -> Self {
        Self {
            bytes: [0, u8::from(kernel_granted), 0, 0],
        }
    }

    /// V1: REQUEST bit (bit 0 of the `u32`).
    pub fn v1_request(self, endian: Endian) -> bool {
        self.all(endian) & V1_RSEQ_SLICE_EXT_REQUEST != 0
    }

    /// V1: GRANTED bit (bit 1 of the `u32`).
    pub fn v1_granted(self, endian: Endian) -> bool {
        self.all(endian) & V1_RSEQ_SLICE_EXT_GRANTED != 0
    }

    /// Is an extension requested, per revision? (Merged: `request` byte non-zero.)
    pub fn is_requested(self, rev: Revision, endian: Endian) -> bool {
        if rev.is_v1() {
            self.v1_request(endian)
        } else {
            self.request() != 0
        }
    }

    /// Is the granted indication set, per revision?
    pub fn is_granted(self, rev: Revision, endian: Endian) -> bool {
        if rev.is_v1() {
            self.v1_granted(endian)
        } else {
            self.granted() != 0
        }
    }

    /// The word after the kernel grants, per revision. V1 clears REQUEST and sets GRANTED
    /// in the `u32`, preserving the other bits.
    pub fn after_grant(self, rev: Revision, endian: Endian) -> Self {
        if rev.is_v1() {
            let all = (self.all(endian) & !V1_RSEQ_SLICE_EXT_REQUEST) | V1_RSEQ_SLICE_EXT_GRANTED;
            Self::from_all(all, endian)
        } else {
            self.granted_from()
        }
    }
}

impl core::fmt::Display for CtrlWord {
    /// `req=R gr=G rsv=XXXX` in memory order, e.g. `req=1 gr=0 rsv=0000`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "req={} gr={} rsv={:02x}{:02x}",
            self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]
        )
    }
}
