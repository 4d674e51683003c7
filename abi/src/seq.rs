//! Restartable sequences (`struct rseq_cs`) described as data, so that the same description
//! runs on the simulator, which places an instruction pointer on every step, and can be
//! checked against a real kernel's rules.
//!
//! A sequence is what per-CPU data structures are built from (the kernel's
//! `rseq_update_user_cs()` in `include/linux/rseq_entry.h`): user code publishes the
//! address of a descriptor in `rseq->rseq_cs`, runs instructions from `start_ip` up to a
//! single committing store (the last instruction before `start_ip + post_commit_offset`),
//! and if the kernel preempts, migrates or signals the thread in between, it moves the
//! instruction pointer to `abort_ip`, whose preceding four bytes hold the registration's
//! signature. The program sees that as [`SeqOutcome::Aborted`] and usually retries.
//!
//! The body is a short register program: four 32-bit registers, loads of this thread's
//! `cpu_id` and of shared words (indexed by a register, as a per-CPU array is), a compare
//! that leaves the section early, burns, and the commit.

use crate::platform::SharedWord;

/// Registers of a sequence body.
pub const SEQ_REGS: usize = 4;

/// One instruction of a sequence body. Registers are indices below [`SEQ_REGS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqStep {
    /// `r[dst] = rseq->cpu_id` (how per-CPU code picks its slot).
    LoadCpuId {
        /// Destination register.
        dst: u8,
    },
    /// `r[dst] = word[base + r[index]]` (or `word[base]` without an index).
    Load {
        /// Destination register.
        dst: u8,
        /// The first word of the array.
        base: SharedWord,
        /// Register added to `base`.
        index: Option<u8>,
    },
    /// Leave the section before the commit unless `r[reg] == val` (a compare and a branch
    /// to the failure path): the sequence ends with [`SeqOutcome::Failed`].
    ExpectEq {
        /// Register compared.
        reg: u8,
        /// Expected value.
        val: u32,
    },
    /// Spend `ns` of CPU time inside the section.
    Burn(u64),
    /// The committing store, the section's last instruction:
    /// `word[base + r[index]] = r[src] + add`.
    Commit {
        /// The first word of the array.
        base: SharedWord,
        /// Register added to `base`.
        index: Option<u8>,
        /// Register holding the value.
        src: u8,
        /// Added to it (wrapping).
        add: u32,
    },
}

/// A restartable sequence: its body, whose last step is its one [`SeqStep::Commit`].
#[derive(Clone, Copy, Debug)]
pub struct Sequence<'a> {
    /// The instructions, from `start_ip` on.
    pub steps: &'a [SeqStep],
}

impl Sequence<'_> {
    /// Is the body well formed: one commit, last, and registers in range?
    pub fn check(&self) -> Result<(), &'static str> {
        let reg_ok = |r: u8| (r as usize) < SEQ_REGS;
        let commits = self
            .steps
            .iter()
            .filter(|s| matches!(s, SeqStep::Commit { .. }))
            .count();
        if commits != 1 || !matches!(self.steps.last(), Some(SeqStep::Commit { .. })) {
            return Err("a sequence ends with its one commit");
        }
        let regs_ok = self.steps.iter().all(|s| match *s {
            SeqStep::LoadCpuId { dst } => reg_ok(dst),
            SeqStep::Load { dst, index, .. } => reg_ok(dst) && index.is_none_or(reg_ok),
            SeqStep::ExpectEq { reg, .. } => reg_ok(reg),
            SeqStep::Burn(_) => true,
            SeqStep::Commit { index, src, .. } => reg_ok(src) && index.is_none_or(reg_ok),
        });
        if !regs_ok {
            return Err("a register index is out of range");
        }
        Ok(())
    }
}

/// How a sequence ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqOutcome {
    /// The commit happened; the registers as they were at it.
    Committed([u32; SEQ_REGS]),
    /// An [`SeqStep::ExpectEq`] left the section before the commit.
    Failed([u32; SEQ_REGS]),
    /// The kernel moved the instruction pointer to `abort_ip`: the commit did not happen.
    Aborted,
    /// This platform cannot run sequences.
    Unsupported,
}
