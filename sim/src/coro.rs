//! User threads as stackful coroutines (corosensei), and the simulator's [`Platform`].
//!
//! Each simulated thread runs its user program, unchanged, on its own coroutine stack. Every
//! platform call the engine must order (an access to `struct rseq`, a shared word, a
//! syscall) suspends the coroutine with a `Request` stamped with the thread's local time;
//! the engine performs it at that time and resumes the coroutine with the result.
//!
//! Pure time passing (clock reads, `burn`) is handled inside the coroutine while the local
//! clock stays strictly before the *horizon* (the time of the engine's next queued event):
//! nothing can interleave before then, so the result is identical and a busy-wait loop
//! costs no engine round trips. Panics in user code are caught here and reported as the
//! task's fault.
//!
//! Markers (`Platform::mark`) are kept here with the thread's local time and handed to
//! the engine with the next request (or the program's end), never with a round trip of
//! their own: reporting them changes neither the schedule nor the event count.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult, Yielder};
use rseq_abi::programs::Counters;
use rseq_abi::{
    CpuSet, Errno, Marker, Platform, Revision, SeqOutcome, SeqStep, Sequence, SharedWord,
    SysResult, Syscall,
};

/// A program a simulated thread runs: generic user code instantiated for [`SimPlatform`].
pub type SimProgram = Box<dyn for<'y> FnOnce(&mut SimPlatform<'y>) -> Counters>;

/// Bytes of simulated memory backing each thread's rseq area (like the post-7.0 selftest's
/// 256-byte-aligned area).
pub const RSEQ_AREA_SIZE: usize = 256;

/// An operation a user thread asks the engine to perform at a given time.
pub(crate) enum Op {
    /// Nothing: the end of a burn (or a clock read) that reached the horizon.
    Wait,
    /// A `Wait` after this many operations that took no time (the livelock budget).
    Still(u32),
    /// Load `size` bytes at `off` of the rseq area.
    Load { off: u8, size: u8 },
    /// Store `size` bytes of `val` at `off` of the rseq area.
    Store { off: u8, size: u8, val: u64 },
    /// CPU-local atomic test-and-clear of a bit in the u32 at `off`.
    TestAndClearBit { off: u8, bit: u8 },
    /// A syscall (boxed: `Syscall` carries a 128-byte `CpuSet`, and every request is
    /// moved through the coroutine switch).
    Syscall(Box<Syscall>),
    /// `sched_getaffinity`.
    GetAffinity,
    /// A shared-word access.
    Shared(SharedOp),
    /// Simulator-only: create a thread (`clone(CLONE_VM)`) or process (`fork`).
    Spawn { clone_vm: bool, program: SimProgram },
    /// Simulator-only: `execve` into another program.
    Exec { program: SimProgram },
    /// Simulator-only: map or unmap the thread's rseq area (to provoke faults).
    SetRseqMapped(bool),
    /// One instruction of a restartable sequence: the task's instruction pointer becomes
    /// that of instruction `at` ([`seq_ip`]), `op` runs, then the pointer is that of
    /// `after` (past the commit: outside the section). Indices, not addresses, keep `Op`
    /// (moved through every coroutine switch) as small as before sequences existed.
    Seq { at: u16, after: u16, op: SeqOp },
}

/// The instruction index of "outside any sequence" ([`crate::rseq::USER_IP`]).
pub(crate) const SEQ_OUTSIDE: u16 = u16::MAX;

/// The user instruction pointer of sequence instruction `at`.
pub(crate) fn seq_ip(at: u16) -> u64 {
    if at == SEQ_OUTSIDE {
        crate::rseq::USER_IP
    } else {
        SEQ_TEXT + 4 * u64::from(at)
    }
}

/// What a sequence instruction does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SeqOp {
    /// Nothing (the start of a burn, leaving the section early).
    Nop,
    /// Load the u32 at `off` of the rseq area (`cpu_id`).
    LoadArea(u8),
    /// A shared-word access.
    Shared(SharedOp),
}

/// Where a sequence's descriptor (`struct rseq_cs`, 32 bytes, 32-aligned) is built in the
/// thread's 256-byte rseq area, and where the signature before `abort_ip` is: the model's
/// user memory is that area, so the abort handler's "text" lives there too.
pub const SEQ_DESC_OFF: usize = 192;
/// The signature's offset; `abort_ip` is the area's address plus this plus 4.
pub const SEQ_SIG_OFF: usize = 224;
/// `start_ip` of every sequence: a text address (the kernel never reads it), with one
/// instruction every 4 bytes.
pub const SEQ_TEXT: u64 = 0x0050_0000;

/// An access to a shared word.
impl Op {
    /// The operation in words, for a livelock report.
    pub(crate) fn describe(&self) -> String {
        match self {
            Op::Wait => "wait".to_string(),
            Op::Still(_) => "markers or burn(0)".to_string(),
            Op::Load { off, size } => format!("load of {size} bytes at rseq+{off}"),
            Op::Store { off, size, .. } => format!("store of {size} bytes at rseq+{off}"),
            Op::TestAndClearBit { off, bit } => format!("test-and-clear bit {bit} at rseq+{off}"),
            Op::Syscall(c) => format!("syscall {c:?}"),
            Op::GetAffinity => "sched_getaffinity".to_string(),
            Op::Shared(SharedOp::Load(w)) => format!("shared load of word {}", w.0),
            Op::Shared(SharedOp::Store(w, _)) => format!("shared store to word {}", w.0),
            Op::Shared(SharedOp::Cas(w, ..)) => format!("shared cas on word {}", w.0),
            Op::Shared(SharedOp::FetchAdd(w, _)) => format!("shared fetch_add on word {}", w.0),
            Op::Spawn { .. } => "spawn".to_string(),
            Op::Exec { .. } => "exec".to_string(),
            Op::SetRseqMapped(_) => "set rseq mapped".to_string(),
            Op::Seq { at, op, .. } => {
                format!("sequence instruction at {:#x} ({op:?})", seq_ip(*at))
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum SharedOp {
    Load(SharedWord),
    Store(SharedWord, u32),
    Cas(SharedWord, u32, u32),
    FetchAdd(SharedWord, u32),
}

/// Markers a thread reported since its last request, with their local times.
pub(crate) type Marks = Vec<(u64, Marker)>;

/// A request from a user thread: "at local time `at`, perform `op`", and the markers it
/// reported on the way (all at or before `at`).
pub(crate) struct Request {
    pub at: u64,
    pub op: Op,
    pub marks: Marks,
}

/// Zero-time operations a coroutine makes on its own before it hands control to the
/// engine (an [`Op::Still`] it counts against the livelock budget): a loop of markers or
/// `burn(0)` would otherwise never come back.
const STILL_MAX: u32 = 1024;

/// The result the engine hands back.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    None,
    U64(u64),
    Sys(SysResult),
    /// Boxed for the same reason as [`Op::Syscall`].
    Affinity(Box<Result<CpuSet, Errno>>),
    Cas(Result<u32, u32>),
    /// The kernel moved the instruction pointer to a sequence's `abort_ip`: the operation
    /// asked for did not happen.
    Aborted,
}

/// Resume input: the current time, the horizon, and the previous operation's result.
pub(crate) struct Resume {
    pub now: u64,
    pub horizon: u64,
    pub val: Value,
}

/// How a user program ended (from the coroutine's point of view).
pub(crate) enum Finished {
    Returned(Counters),
    Panicked(String),
}

/// Costs the platform charges for user-side operations, ns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Costs {
    pub clock_read_ns: u64,
    pub mem_access_ns: u64,
    pub shared_access_ns: u64,
}

/// Static facts about the thread a [`SimPlatform`] serves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ThreadInfo {
    pub task: u32,
    pub revision: Revision,
    pub rseq_addr: u64,
    pub rseq_len: u32,
    pub costs: Costs,
    /// Keep markers (only when the engine keeps its log: otherwise they are dropped at once).
    pub log_marks: bool,
}

/// The simulator's [`Platform`]: what a user program sees inside a simulation.
pub struct SimPlatform<'y> {
    yielder: &'y Yielder<Resume, Request>,
    now: u64,
    /// Engine time of the last round trip; local time beyond it is burn not yet charged.
    synced: u64,
    horizon: u64,
    info: ThreadInfo,
    marks: Marks,
    /// Markers and `burn(0)`s at local time `still_at` not yet reported to the engine
    /// (the coroutine's side of the livelock budget).
    still: u32,
    still_at: u64,
    /// Shared with the engine's `UserThread`.
    step: Rc<Cell<u32>>,
    /// The `post_commit_offset` of the sequence descriptor this thread last wrote.
    seq_desc: Option<u64>,
}

impl<'y> SimPlatform<'y> {
    fn call(&mut self, op: Op) -> Value {
        let r = self.yielder.suspend(Request {
            at: self.now,
            op,
            marks: std::mem::take(&mut self.marks),
        });
        self.now = r.now;
        self.synced = r.now;
        self.horizon = r.horizon;
        r.val
    }

    fn rseq_op(&mut self, op: Op) -> Value {
        let v = self.call(op);
        self.now += self.info.costs.mem_access_ns;
        v
    }

    fn shared_op(&mut self, op: SharedOp) -> Value {
        let v = self.call(Op::Shared(op));
        self.now += self.info.costs.shared_access_ns;
        v
    }

    /// Count an operation that never reaches the engine and lets no time pass (a marker,
    /// `burn(0)`); every [`STILL_MAX`] of them at one instant, go to the engine (a `Wait`
    /// at the same instant) so its livelock budget sees them.
    fn stand_still(&mut self) {
        if self.now != self.still_at {
            self.still_at = self.now;
            self.still = 0;
        }
        self.still += 1;
        if self.still >= STILL_MAX {
            self.still = 0;
            self.call(Op::Still(STILL_MAX));
        }
    }

    fn check(&self, off: usize, size: usize) -> u8 {
        assert!(
            off % size == 0 && off + size <= RSEQ_AREA_SIZE,
            "rseq area access of {size} bytes at offset {off} is misaligned or out of bounds"
        );
        off as u8
    }

    /// Simulator only: say which step of its own description the program is at (a script
    /// line, a state of a state machine: the program's choice of numbering). If the task is
    /// stopped (a livelock, a budget, a panic), its outcome names the last step announced
    /// ([`crate::Task::step`]). Costs one store; the engine does not see it otherwise.
    pub fn at_step(&mut self, step: u32) {
        self.step.set(step);
    }

    /// The simulated task id of this thread.
    pub fn task_id(&self) -> u32 {
        self.info.task
    }

    /// Simulator only: start a new thread of this process (`clone(CLONE_VM)`) running
    /// `program`; its kernel rseq state starts wiped (spec §2.6, R9). Returns its task id.
    pub fn spawn_thread(&mut self, program: SimProgram) -> SysResult {
        self.spawn(true, program)
    }

    /// Simulator only: `fork()` a child process running `program` (the simulator cannot
    /// clone a running coroutine, so the child runs the given program from its start). The
    /// child copies the parent's kernel rseq state and its rseq area bytes (spec §2.6, R10).
    pub fn fork(&mut self, program: SimProgram) -> SysResult {
        self.spawn(false, program)
    }

    fn spawn(&mut self, clone_vm: bool, program: SimProgram) -> SysResult {
        match self.call(Op::Spawn { clone_vm, program }) {
            Value::Sys(r) => r,
            v => unreachable!("spawn answered {v:?}"),
        }
    }

    /// Simulator only: `execve()` into `program`; never returns on success (spec §2.6, R8).
    pub fn exec(&mut self, program: SimProgram) -> Errno {
        match self.call(Op::Exec { program }) {
            Value::Sys(Err(e)) => e,
            v => unreachable!("exec answered {v:?}"),
        }
    }

    /// Simulator only: unmap (`false`) or map back (`true`) this thread's rseq area, so the
    /// kernel's next access to it faults (spec §7).
    pub fn set_rseq_mapped(&mut self, mapped: bool) {
        self.call(Op::SetRseqMapped(mapped));
    }
}

impl Platform for SimPlatform<'_> {
    fn revision(&self) -> Revision {
        self.info.revision
    }

    fn rseq_addr(&self) -> u64 {
        self.info.rseq_addr
    }

    fn rseq_len(&self) -> u32 {
        self.info.rseq_len
    }

    fn load_u8(&mut self, off: usize) -> u8 {
        let off = self.check(off, 1);
        match self.rseq_op(Op::Load { off, size: 1 }) {
            Value::U64(v) => v as u8,
            v => unreachable!("load answered {v:?}"),
        }
    }

    fn store_u8(&mut self, off: usize, val: u8) {
        let off = self.check(off, 1);
        self.rseq_op(Op::Store {
            off,
            size: 1,
            val: val.into(),
        });
    }

    fn load_u32(&mut self, off: usize) -> u32 {
        let off = self.check(off, 4);
        match self.rseq_op(Op::Load { off, size: 4 }) {
            Value::U64(v) => v as u32,
            v => unreachable!("load answered {v:?}"),
        }
    }

    fn store_u32(&mut self, off: usize, val: u32) {
        let off = self.check(off, 4);
        self.rseq_op(Op::Store {
            off,
            size: 4,
            val: val.into(),
        });
    }

    fn store_u64(&mut self, off: usize, val: u64) {
        let off = self.check(off, 8);
        self.rseq_op(Op::Store { off, size: 8, val });
    }

    fn load_u64(&mut self, off: usize) -> u64 {
        let off = self.check(off, 8);
        match self.rseq_op(Op::Load { off, size: 8 }) {
            Value::U64(v) => v,
            v => unreachable!("load answered {v:?}"),
        }
    }

    fn test_and_clear_bit_local(&mut self, off: usize, bit: u32) -> bool {
        assert!(bit < 32, "bit {bit} out of range");
        let off = self.check(off, 4);
        match self.rseq_op(Op::TestAndClearBit {
            off,
            bit: bit as u8,
        }) {
            Value::U64(v) => v != 0,
            v => unreachable!("test_and_clear answered {v:?}"),
        }
    }

    fn syscall(&mut self, call: Syscall) -> SysResult {
        match self.call(Op::Syscall(Box::new(call))) {
            Value::Sys(r) => r,
            v => unreachable!("syscall answered {v:?}"),
        }
    }

    fn sched_getaffinity(&mut self) -> Result<CpuSet, Errno> {
        match self.call(Op::GetAffinity) {
            Value::Affinity(r) => *r,
            v => unreachable!("getaffinity answered {v:?}"),
        }
    }

    fn clock_ns(&mut self) -> u64 {
        let t = self.now;
        if t < self.horizon {
            self.now = t + self.info.costs.clock_read_ns;
            return t;
        }
        self.call(Op::Wait);
        let t = self.now;
        self.now = t + self.info.costs.clock_read_ns;
        t
    }

    fn burn(&mut self, ns: u64) {
        if ns == 0 {
            self.stand_still();
        }
        let end = self.now.saturating_add(ns);
        if end < self.horizon {
            self.now = end;
        } else {
            self.now = end;
            self.call(Op::Wait);
        }
    }

    fn shared_load(&mut self, word: SharedWord) -> u32 {
        match self.shared_op(SharedOp::Load(word)) {
            Value::U64(v) => v as u32,
            v => unreachable!("shared load answered {v:?}"),
        }
    }

    fn shared_store(&mut self, word: SharedWord, val: u32) {
        self.shared_op(SharedOp::Store(word, val));
    }

    fn shared_cas(&mut self, word: SharedWord, old: u32, new: u32) -> Result<u32, u32> {
        match self.shared_op(SharedOp::Cas(word, old, new)) {
            Value::Cas(r) => r,
            v => unreachable!("cas answered {v:?}"),
        }
    }

    fn shared_fetch_add(&mut self, word: SharedWord, val: u32) -> u32 {
        match self.shared_op(SharedOp::FetchAdd(word, val)) {
            Value::U64(v) => v as u32,
            v => unreachable!("fetch_add answered {v:?}"),
        }
    }

    fn rseq_sequence(&mut self, seq: &Sequence<'_>) -> SeqOutcome {
        if let Err(why) = seq.check() {
            panic!("invalid restartable sequence: {why}");
        }
        assert!(
            seq.steps.len() < usize::from(SEQ_OUTSIDE),
            "a restartable sequence of {} instructions is too long",
            seq.steps.len()
        );
        let n = seq.steps.len() as u64;
        let post_commit = 4 * n;
        let area = self.info.rseq_addr;
        let abort_ip = area + SEQ_SIG_OFF as u64 + 4;
        // The descriptor and the signature, written once (real code has them static).
        if self.seq_desc != Some(post_commit) {
            use rseq_abi::layout::cs_offset;
            self.store_u32(SEQ_DESC_OFF + cs_offset::VERSION, 0);
            self.store_u32(SEQ_DESC_OFF + cs_offset::FLAGS, 0);
            self.store_u64(SEQ_DESC_OFF + cs_offset::START_IP, SEQ_TEXT);
            self.store_u64(SEQ_DESC_OFF + cs_offset::POST_COMMIT_OFFSET, post_commit);
            self.store_u64(SEQ_DESC_OFF + cs_offset::ABORT_IP, abort_ip);
            let sig = self.rseq_sig();
            self.store_u32(SEQ_SIG_OFF, sig);
            self.seq_desc = Some(post_commit);
        }
        // Publish it: the instruction before start_ip.
        self.store_u64(
            rseq_abi::layout::offset::RSEQ_CS,
            area + SEQ_DESC_OFF as u64,
        );
        let mut r = [0u32; rseq_abi::seq::SEQ_REGS];
        let word = |base: SharedWord, index: Option<u8>, r: &[u32]| {
            SharedWord(base.0.wrapping_add(index.map_or(0, |i| r[i as usize])))
        };
        for (i, step) in seq.steps.iter().enumerate() {
            let at = i as u16;
            let (op, cost, after) = match *step {
                SeqStep::LoadCpuId { .. } => (
                    SeqOp::LoadArea(rseq_abi::layout::offset::CPU_ID as u8),
                    self.info.costs.mem_access_ns,
                    at,
                ),
                SeqStep::Load { base, index, .. } => (
                    SeqOp::Shared(SharedOp::Load(word(base, index, &r))),
                    self.info.costs.shared_access_ns,
                    at,
                ),
                SeqStep::ExpectEq { reg, val } => {
                    if r[reg as usize] == val {
                        continue;
                    }
                    // The branch out of the section.
                    let out = Op::Seq {
                        at: SEQ_OUTSIDE,
                        after: SEQ_OUTSIDE,
                        op: SeqOp::Nop,
                    };
                    if let Value::Aborted = self.call(out) {
                        return SeqOutcome::Aborted;
                    }
                    return SeqOutcome::Failed(r);
                }
                SeqStep::Burn(ns) => {
                    // The instruction pointer moves here when the burn starts.
                    if let Value::Aborted = self.call(Op::Seq {
                        at,
                        after: at,
                        op: SeqOp::Nop,
                    }) {
                        return SeqOutcome::Aborted;
                    }
                    let end = self.now.saturating_add(ns);
                    self.now = end;
                    if end >= self.horizon {
                        if let Value::Aborted = self.call(Op::Wait) {
                            return SeqOutcome::Aborted;
                        }
                    }
                    continue;
                }
                SeqStep::Commit {
                    base,
                    index,
                    src,
                    add,
                } => (
                    SeqOp::Shared(SharedOp::Store(
                        word(base, index, &r),
                        r[src as usize].wrapping_add(add),
                    )),
                    self.info.costs.shared_access_ns,
                    at + 1,
                ),
            };
            let v = self.call(Op::Seq { at, after, op });
            self.now += cost;
            match (v, *step) {
                (Value::Aborted, _) => return SeqOutcome::Aborted,
                (Value::U64(v), SeqStep::LoadCpuId { dst } | SeqStep::Load { dst, .. }) => {
                    r[dst as usize] = v as u32;
                }
                _ => {}
            }
        }
        SeqOutcome::Committed(r)
    }

    fn mark(&mut self, marker: Marker) {
        self.stand_still();
        if self.info.log_marks {
            self.marks.push((self.now, marker));
        }
    }
}

type Co = Coroutine<Resume, Request, (Finished, Marks), DefaultStack>;

/// A user thread: its coroutine, or nothing once it finished.
pub(crate) struct UserThread {
    co: Co,
    /// The step its program announced last ([`SimPlatform::at_step`]), [`NO_STEP`] if none:
    /// shared with the program so that reading it when the thread is stopped (a livelock,
    /// a budget, a panic) costs the running program nothing but a store.
    step: Rc<Cell<u32>>,
}

/// No step announced.
const NO_STEP: u32 = u32::MAX;

/// What resuming a thread produced.
pub(crate) enum Step {
    Request(Request),
    /// The program ended, with the markers it reported after its last request.
    Finished(Finished, Marks),
}

impl UserThread {
    /// Create a thread that will run `program` on a stack from `pool` (or a new one).
    pub fn new(
        info: ThreadInfo,
        program: SimProgram,
        pool: &mut Vec<DefaultStack>,
        stack_size: usize,
    ) -> std::io::Result<Self> {
        let stack = match pool.pop() {
            Some(s) => s,
            None => DefaultStack::new(stack_size)?,
        };
        let step = Rc::new(Cell::new(NO_STEP));
        let announced = Rc::clone(&step);
        let co = Coroutine::with_stack(
            stack,
            move |yielder: &Yielder<Resume, Request>, first: Resume| {
                let mut p = SimPlatform {
                    step: announced,
                    yielder,
                    now: first.now,
                    synced: first.now,
                    horizon: first.horizon,
                    info,
                    marks: Marks::new(),
                    still: 0,
                    still_at: u64::MAX,
                    seq_desc: None,
                };
                let how = match catch_unwind(AssertUnwindSafe(|| program(&mut p))) {
                    Ok(counters) => {
                        // Time burnt locally after the last round trip is real CPU time:
                        // the exit happens when it ends, and an interrupt may still cut it.
                        if p.now > p.synced {
                            p.call(Op::Wait);
                        }
                        Finished::Returned(counters)
                    }
                    Err(payload) => Finished::Panicked(panic_message(payload.as_ref())),
                };
                (how, p.marks)
            },
        );
        Ok(Self { co, step })
    }

    /// The step the program announced last, if it announced any.
    pub fn step(&self) -> Option<u32> {
        Some(self.step.get()).filter(|&s| s != NO_STEP)
    }

    /// Run the thread until its next request or its end.
    pub fn resume(&mut self, r: Resume) -> Step {
        match self.co.resume(r) {
            CoroutineResult::Yield(req) => Step::Request(req),
            CoroutineResult::Return((f, marks)) => Step::Finished(f, marks),
        }
    }

    /// Tear the thread down (unwinding a suspended program) and return its stack.
    pub fn into_stack(mut self) -> DefaultStack {
        self.co.force_unwind();
        self.co.into_stack()
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request and its answer cross the coroutine switch by value: sequences must
    /// not make the hot path's operations bigger (24 bytes, as before them).
    #[test]
    fn operations_stay_small() {
        assert!(
            std::mem::size_of::<Op>() <= 24,
            "{}",
            std::mem::size_of::<Op>()
        );
        assert!(
            std::mem::size_of::<Value>() <= 16,
            "{}",
            std::mem::size_of::<Value>()
        );
    }
}
