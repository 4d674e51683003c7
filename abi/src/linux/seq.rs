//! Restartable sequences on the real kernel (x86_64): one assembly critical section that
//! interprets a [`Sequence`]'s steps between `start_ip` and its single committing store,
//! with a static `struct rseq_cs` descriptor and the signature before `abort_ip`, as
//! librseq lays them out (`tools/testing/selftests/rseq/rseq-x86.h`). The kernel's
//! `rseq_update_user_cs()` sees the instruction pointer anywhere in the interpreter as
//! inside the section, so a preemption, migration or signal anywhere before the commit
//! aborts the attempt, exactly as in the simulator.
//!
//! A burn inside the section is a countdown loop (the vDSO clock is outside the section),
//! calibrated against `CLOCK_MONOTONIC` when the platform is made, before the thread can
//! have asked for an extension.

use crate::seq::{SeqOutcome, SeqStep, Sequence, SEQ_REGS};

/// One encoded step: `[op, a, b, c]`.
type Encoded = [u32; 4];

const OP_LOAD_CPU: u32 = 0;
const OP_LOAD: u32 = 1;
const OP_EXPECT: u32 = 2;
const OP_BURN: u32 = 3;
const OP_COMMIT: u32 = 4;
/// "No index register".
const NO_REG: u32 = 0xff;

/// What the assembly returns.
const RET_COMMITTED: u32 = 0;
const RET_FAILED: u32 = 1;
const RET_ABORTED: u32 = 2;
const RET_OUT_OF_RANGE: u32 = 3;

/// Encode one step of a checked sequence, a burn as countdown iterations.
fn encode(step: &SeqStep, iters_per_ns: f64) -> Encoded {
    let reg = |r: Option<u8>| r.map_or(NO_REG, u32::from);
    match *step {
        SeqStep::LoadCpuId { dst } => [OP_LOAD_CPU, u32::from(dst), 0, 0],
        SeqStep::Load { dst, base, index } => [OP_LOAD, u32::from(dst), base.0, reg(index)],
        SeqStep::ExpectEq { reg, val } => [OP_EXPECT, u32::from(reg), val, 0],
        SeqStep::Burn(ns) => {
            let n = ((ns as f64) * iters_per_ns).ceil().max(1.0) as u64;
            [OP_BURN, n as u32, (n >> 32) as u32, 0]
        }
        SeqStep::Commit {
            base,
            index,
            src,
            add,
        } => [OP_COMMIT, base.0, reg(index) | u32::from(src) << 8, add],
    }
}

/// Sequences up to this many steps are encoded on the stack: the encoding runs inside the
/// caller's critical section, and a heap allocation there is time the simulator does not
/// charge.
const STACK_STEPS: usize = 16;

/// Count down `n` times with the same loop the sequence's burns use.
#[inline(never)]
fn spin(n: u64) {
    // SAFETY: a register-only countdown; no memory is touched.
    unsafe {
        core::arch::asm!(
            "2:",
            "test {n}, {n}",
            "jz 3f",
            "dec {n}",
            "jmp 2b",
            "3:",
            n = inout(reg) n => _,
            options(att_syntax, nomem, nostack),
        );
    }
}

/// Countdown iterations per ns, measured against `clock`: the best of three 200,000
/// iteration runs (under qemu's icount about 0.8 ms each).
pub(crate) fn calibrate(clock: &mut dyn FnMut() -> u64) -> f64 {
    let n = 200_000;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = clock();
        spin(n);
        let dt = clock().saturating_sub(t0).max(1);
        best = best.min(dt as f64);
    }
    n as f64 / best
}

/// Run `seq` once on the registered `area` (its `rseq_cs` at byte 8, `cpu_id` at byte 4),
/// with `words` the shared words.
///
/// # Safety
/// `area` points to the thread's registered, live rseq area; `words` to `len` live,
/// 4-aligned `u32`s that other threads only access atomically.
pub(crate) unsafe fn run(
    seq: &Sequence<'_>,
    area: *mut u8,
    words: *mut u32,
    len: usize,
    iters_per_ns: f64,
) -> SeqOutcome {
    if let Err(why) = seq.check() {
        panic!("invalid restartable sequence: {why}");
    }
    let mut stack = [[0u32; 4]; STACK_STEPS];
    let heap: Vec<Encoded>;
    let steps: &[Encoded] = if seq.steps.len() <= STACK_STEPS {
        for (e, step) in stack.iter_mut().zip(seq.steps) {
            *e = encode(step, iters_per_ns);
        }
        &stack[..seq.steps.len()]
    } else {
        heap = seq.steps.iter().map(|s| encode(s, iters_per_ns)).collect();
        &heap
    };
    let (body, commit) = steps.split_at(steps.len() - 1);
    let mut regs = [0u32; SEQ_REGS];
    let ret: u32;
    // SAFETY: the caller guarantees `area` and `words`; `body`, `commit` and `regs` are
    // live for the whole block; every word index is checked against `len` before it is
    // used; register indices were checked by `Sequence::check`. The descriptor is static
    // data; the signature is never executed (jumped over).
    unsafe {
        core::arch::asm!(
            // rseq->rseq_cs = &descriptor: the instruction before start_ip.
            "leaq 30f(%rip), %rax",
            "movq %rax, 8({area})",
            // start_ip
            "10:",
            "cmpq {end}, {step}",
            "jae 20f",
            "movl ({step}), %eax",
            "cmpl $0, %eax",
            "je 11f",
            "cmpl $1, %eax",
            "je 12f",
            "cmpl $2, %eax",
            "je 13f",
            "jmp 14f",
            // LoadCpuId: r[a] = rseq->cpu_id
            "11:",
            "movl 4({area}), %eax",
            "movl 4({step}), %r11d",
            "movl %eax, ({regs},%r11,4)",
            "addq $16, {step}",
            "jmp 10b",
            // Load: r[a] = words[b + r[c]]
            "12:",
            "movl 8({step}), %eax",
            "movl 12({step}), %r11d",
            "cmpl $0xff, %r11d",
            "je 121f",
            "addl ({regs},%r11,4), %eax",
            "121:",
            "cmpq {len}, %rax",
            "jae 41f",
            "movl ({words},%rax,4), %eax",
            "movl 4({step}), %r11d",
            "movl %eax, ({regs},%r11,4)",
            "addq $16, {step}",
            "jmp 10b",
            // ExpectEq: leave unless r[a] == b
            "13:",
            "movl 4({step}), %r11d",
            "movl ({regs},%r11,4), %eax",
            "cmpl 8({step}), %eax",
            "jne 42f",
            "addq $16, {step}",
            "jmp 10b",
            // Burn: count down a | b << 32
            "14:",
            "movl 8({step}), %eax",
            "shlq $32, %rax",
            "movl 4({step}), %r11d",
            "orq %r11, %rax",
            "141:",
            "testq %rax, %rax",
            "jz 142f",
            "decq %rax",
            "jmp 141b",
            "142:",
            "addq $16, {step}",
            "jmp 10b",
            // The commit: words[a + r[b & 0xff]] = r[b >> 8] + c
            "20:",
            "movl 4({end}), %eax",
            "movl 8({end}), %r11d",
            "andl $0xff, %r11d",
            "cmpl $0xff, %r11d",
            "je 21f",
            "addl ({regs},%r11,4), %eax",
            "21:",
            "cmpq {len}, %rax",
            "jae 41f",
            "movl 8({end}), %r11d",
            "shrl $8, %r11d",
            "andl $0xff, %r11d",
            "movl ({regs},%r11,4), %r11d",
            "addl 12({end}), %r11d",
            "movl %r11d, ({words},%rax,4)",
            // post_commit_ip
            "22:",
            "movl ${committed}, %eax",
            "jmp 49f",
            "41:",
            "movl ${out_of_range}, %eax",
            "jmp 49f",
            "42:",
            "movl ${failed}, %eax",
            "jmp 49f",
            // The signature, then abort_ip.
            ".long {sig}",
            "43:",
            "movl ${aborted}, %eax",
            "49:",
            // struct rseq_cs { version, flags, start_ip, post_commit_offset, abort_ip }
            ".pushsection __rseq_cs, \"aw\"",
            ".balign 32",
            "30:",
            ".long 0, 0",
            ".quad 10b, 22b - 10b, 43b",
            ".popsection",
            area = in(reg) area,
            words = in(reg) words,
            len = in(reg) len,
            regs = in(reg) regs.as_mut_ptr(),
            step = inout(reg) body.as_ptr() => _,
            end = in(reg) commit.as_ptr(),
            sig = const crate::consts::RSEQ_SIG,
            committed = const RET_COMMITTED,
            failed = const RET_FAILED,
            aborted = const RET_ABORTED,
            out_of_range = const RET_OUT_OF_RANGE,
            out("rax") ret,
            out("r11") _,
            options(att_syntax, nostack),
        );
    }
    match ret {
        RET_COMMITTED => SeqOutcome::Committed(regs),
        RET_FAILED => SeqOutcome::Failed(regs),
        RET_ABORTED => SeqOutcome::Aborted,
        _ => panic!("a restartable sequence addressed a shared word beyond the {len} there are"),
    }
}
