//! The C boundary: the entry points of `shim/wrap_*.c` and `shim/runtime.c`.
//!
//! The only `unsafe` of the crate is here. Every function is a plain C call on the
//! shim's global state; the callers in `lib.rs` hold the crate's one mutex, so no two
//! threads are ever inside the C code at once. Without the kernel source
//! (`cfg(oracle_stub)`) the same functions exist as inert Rust stand-ins that are never
//! reached: [`crate::Kernel`] cannot be obtained then.

/// `struct oracle_task` of `shim/shim.h`: the harness's flat view of one task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OracleTask {
    pub usrptr: u64,
    pub expires: u64,
    pub tif: u64,
    pub syscall_work: u64,
    pub len: u32,
    pub sig: u32,
    pub ids_cpu_id: u32,
    pub ids_mm_cid: u32,
    pub ids_node_id: u32,
    pub cpu: i32,
    pub mm_cid: i32,
    pub flags: u32,
    pub sched_switch: u8,
    pub ids_changed: u8,
    pub user_irq: u8,
    pub has_rseq: u8,
    pub fatal: u8,
    pub slowpath: u8,
    pub enabled: u8,
    pub granted: u8,
    pub yielded: u8,
    pub pad: [u8; 7],
}

/// `struct pt_regs` of the shim.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PtRegs {
    pub ip: u64,
    pub user: i32,
}

/// The number of `unsigned long` counters in `struct rseq_stats`.
pub const NR_STATS: usize = 13;
/// The number of values `oracle_effects()` fills.
pub const NR_EFFECTS: usize = 11;

#[cfg(not(oracle_stub))]
mod c {
    use super::{OracleTask, PtRegs};
    extern "C" {
        pub fn oracle_init();
        pub fn oracle_set_keys(slice_ext: bool, debug: bool);
        pub fn oracle_set_slice_ext_nsecs(ns: u32);
        pub fn oracle_slice_timer_get(armed: *mut bool, expires: *mut u64, cookie: *mut bool);
        pub fn oracle_slice_timer_set(armed: bool, expires: u64, cookie: bool);
        pub fn oracle_slice_timer_fire() -> i32;
        pub fn oracle_sys_rseq(addr: u64, len: u32, flags: i32, sig: u32) -> i64;
        pub fn oracle_sys_rseq_slice_yield() -> i64;
        pub fn oracle_prctl(arg2: u64, arg3: u64) -> i32;
        pub fn oracle_syscall_enter_work(nr: i64);
        pub fn oracle_handle_slowpath(regs: *mut PtRegs);
        pub fn oracle_signal_deliver(sig: i32, regs: *mut PtRegs);
        pub fn oracle_debug_syscall_return(regs: *mut PtRegs);
        pub fn oracle_sched_switch_event();
        pub fn oracle_nr_rseq_slice_yield() -> i64;
        pub fn oracle_task_load(t: *const OracleTask);
        pub fn oracle_task_store(t: *mut OracleTask);
        pub fn oracle_set_current(the_task: i32);
        pub fn oracle_umem_set(base: u64, bytes: *const u8, len: u64, mapped: i32);
        pub fn oracle_umem_get(bytes: *mut u8, len: u64);
        pub fn oracle_stats_get(v: *mut u64);
        pub fn oracle_stats_set(v: *const u64);
        pub fn oracle_nr_stats() -> u64;
        pub fn oracle_set_clock(ns: u64);
        pub fn oracle_set_preempt_model(model: i32);
        pub fn oracle_set_switch_on_schedule(on: i32);
        pub fn oracle_effects(out: *mut i32);
        pub fn oracle_reset_effects();
        pub fn oracle_grant(ti_work: u64) -> bool;
        pub fn oracle_rt_grant(ti_work: u64) -> bool;
        pub fn oracle_slice_ext_deny() -> u64;
        pub fn oracle_rt_slice_ext_deny() -> u64;
        pub fn oracle_exit_restart(regs: *mut PtRegs, ti_work: u64) -> bool;
        pub fn oracle_exit_loop(regs: *mut PtRegs, ti_work: u64) -> u64;
        pub fn oracle_irqentry_exit_cond_resched();
        pub fn oracle_exit_to_user_mode_work() -> u64;
        pub fn oracle_tif_bit(which: i32) -> u64;
    }
}

/// Safe wrappers: each one is a C call with no pointer kept beyond it.
#[cfg(not(oracle_stub))]
pub mod call {
    use super::*;

    pub fn init() {
        // SAFETY: no arguments; sets up the shim's static slice timer.
        unsafe { c::oracle_init() }
    }
    pub fn set_keys(slice_ext: bool, debug: bool) {
        // SAFETY: plain values.
        unsafe { c::oracle_set_keys(slice_ext, debug) }
    }
    pub fn set_slice_ext_nsecs(ns: u32) {
        // SAFETY: plain value.
        unsafe { c::oracle_set_slice_ext_nsecs(ns) }
    }
    pub fn slice_timer_get() -> (bool, u64, bool) {
        let (mut a, mut e, mut c) = (false, 0u64, false);
        // SAFETY: three valid, exclusive out-pointers to locals.
        unsafe { c::oracle_slice_timer_get(&mut a, &mut e, &mut c) };
        (a, e, c)
    }
    pub fn slice_timer_set(armed: bool, expires: u64, cookie: bool) {
        // SAFETY: plain values.
        unsafe { c::oracle_slice_timer_set(armed, expires, cookie) }
    }
    pub fn slice_timer_fire() -> i32 {
        // SAFETY: calls the timer function installed by `init()`; -1 if none.
        unsafe { c::oracle_slice_timer_fire() }
    }
    pub fn sys_rseq(addr: u64, len: u32, flags: i32, sig: u32) -> i64 {
        // SAFETY: the address is a simulated user address, only ever used through the
        // shim's checked user-memory window.
        unsafe { c::oracle_sys_rseq(addr, len, flags, sig) }
    }
    pub fn sys_rseq_slice_yield() -> i64 {
        // SAFETY: no arguments.
        unsafe { c::oracle_sys_rseq_slice_yield() }
    }
    pub fn prctl(arg2: u64, arg3: u64) -> i32 {
        // SAFETY: plain values.
        unsafe { c::oracle_prctl(arg2, arg3) }
    }
    pub fn syscall_enter_work(nr: i64) {
        // SAFETY: plain value.
        unsafe { c::oracle_syscall_enter_work(nr) }
    }
    pub fn handle_slowpath(regs: &mut PtRegs) {
        // SAFETY: a valid, exclusive pointer for the duration of the call.
        unsafe { c::oracle_handle_slowpath(regs) }
    }
    pub fn signal_deliver(sig: i32, regs: &mut PtRegs) {
        // SAFETY: as above.
        unsafe { c::oracle_signal_deliver(sig, regs) }
    }
    pub fn debug_syscall_return(regs: &mut PtRegs) {
        // SAFETY: as above.
        unsafe { c::oracle_debug_syscall_return(regs) }
    }
    pub fn sched_switch_event() {
        // SAFETY: no arguments.
        unsafe { c::oracle_sched_switch_event() }
    }
    pub fn nr_rseq_slice_yield() -> i64 {
        // SAFETY: returns a constant.
        unsafe { c::oracle_nr_rseq_slice_yield() }
    }
    pub fn task_load(t: &OracleTask) {
        // SAFETY: a valid pointer to a #[repr(C)] mirror of struct oracle_task.
        unsafe { c::oracle_task_load(t) }
    }
    pub fn task_store() -> OracleTask {
        let mut t = OracleTask::default();
        // SAFETY: a valid, exclusive pointer to the mirror.
        unsafe { c::oracle_task_store(&mut t) };
        t
    }
    pub fn set_current(the_task: bool) {
        // SAFETY: plain value.
        unsafe { c::oracle_set_current(i32::from(the_task)) }
    }
    pub fn umem_set(base: u64, bytes: &[u8], mapped: bool) {
        // SAFETY: the C side copies at most 256 bytes and at most `len`.
        unsafe { c::oracle_umem_set(base, bytes.as_ptr(), bytes.len() as u64, i32::from(mapped)) }
    }
    pub fn umem_get(bytes: &mut [u8]) {
        // SAFETY: the C side writes at most `len` (and at most 256) bytes.
        unsafe { c::oracle_umem_get(bytes.as_mut_ptr(), bytes.len() as u64) }
    }
    pub fn stats_get() -> [u64; NR_STATS] {
        let mut v = [0u64; NR_STATS];
        // SAFETY: `nr_stats()` is checked to be NR_STATS when the kernel is locked.
        unsafe { c::oracle_stats_get(v.as_mut_ptr()) };
        v
    }
    pub fn stats_set(v: &[u64; NR_STATS]) {
        // SAFETY: as above.
        unsafe { c::oracle_stats_set(v.as_ptr()) }
    }
    pub fn nr_stats() -> usize {
        // SAFETY: returns a constant.
        unsafe { c::oracle_nr_stats() as usize }
    }
    pub fn set_clock(ns: u64) {
        // SAFETY: plain value.
        unsafe { c::oracle_set_clock(ns) }
    }
    pub fn set_preempt_model(model: i32) {
        // SAFETY: plain value.
        unsafe { c::oracle_set_preempt_model(model) }
    }
    pub fn set_switch_on_schedule(on: bool) {
        // SAFETY: plain value.
        unsafe { c::oracle_set_switch_on_schedule(i32::from(on)) }
    }
    pub fn effects() -> [i32; NR_EFFECTS] {
        let mut v = [0i32; NR_EFFECTS];
        // SAFETY: the C side fills exactly NR_EFFECTS ints.
        unsafe { c::oracle_effects(v.as_mut_ptr()) };
        v
    }
    pub fn reset_effects() {
        // SAFETY: no arguments.
        unsafe { c::oracle_reset_effects() }
    }
    pub fn grant(ti_work: u64, rt: bool) -> bool {
        // SAFETY: plain value; the C code works on the loaded task.
        unsafe {
            if rt {
                c::oracle_rt_grant(ti_work)
            } else {
                c::oracle_grant(ti_work)
            }
        }
    }
    pub fn slice_ext_deny(rt: bool) -> u64 {
        // SAFETY: returns a constant.
        unsafe {
            if rt {
                c::oracle_rt_slice_ext_deny()
            } else {
                c::oracle_slice_ext_deny()
            }
        }
    }
    pub fn exit_restart(regs: &mut PtRegs, ti_work: u64) -> bool {
        // SAFETY: a valid, exclusive pointer for the duration of the call.
        unsafe { c::oracle_exit_restart(regs, ti_work) }
    }
    pub fn exit_loop(regs: &mut PtRegs, ti_work: u64) -> u64 {
        // SAFETY: as above.
        unsafe { c::oracle_exit_loop(regs, ti_work) }
    }
    pub fn irqentry_exit_cond_resched() {
        // SAFETY: no arguments.
        unsafe { c::oracle_irqentry_exit_cond_resched() }
    }
    pub fn exit_to_user_mode_work() -> u64 {
        // SAFETY: returns a constant.
        unsafe { c::oracle_exit_to_user_mode_work() }
    }
    pub fn tif_bit(which: i32) -> u64 {
        // SAFETY: returns a constant (0 for an unknown index).
        unsafe { c::oracle_tif_bit(which) }
    }
}

/// Without the source: the same surface, inert (never reached: no `Kernel` exists).
#[cfg(oracle_stub)]
#[allow(missing_docs, clippy::missing_const_for_fn)]
pub mod call {
    use super::*;
    pub fn init() {}
    pub fn set_keys(_: bool, _: bool) {}
    pub fn set_slice_ext_nsecs(_: u32) {}
    pub fn slice_timer_get() -> (bool, u64, bool) {
        (false, 0, false)
    }
    pub fn slice_timer_set(_: bool, _: u64, _: bool) {}
    pub fn slice_timer_fire() -> i32 {
        -1
    }
    pub fn sys_rseq(_: u64, _: u32, _: i32, _: u32) -> i64 {
        -38
    }
    pub fn sys_rseq_slice_yield() -> i64 {
        -38
    }
    pub fn prctl(_: u64, _: u64) -> i32 {
        -22
    }
    pub fn syscall_enter_work(_: i64) {}
    pub fn handle_slowpath(_: &mut PtRegs) {}
    pub fn signal_deliver(_: i32, _: &mut PtRegs) {}
    pub fn debug_syscall_return(_: &mut PtRegs) {}
    pub fn sched_switch_event() {}
    pub fn nr_rseq_slice_yield() -> i64 {
        471
    }
    pub fn task_load(_: &OracleTask) {}
    pub fn task_store() -> OracleTask {
        OracleTask::default()
    }
    pub fn set_current(_: bool) {}
    pub fn umem_set(_: u64, _: &[u8], _: bool) {}
    pub fn umem_get(_: &mut [u8]) {}
    pub fn stats_get() -> [u64; NR_STATS] {
        [0; NR_STATS]
    }
    pub fn stats_set(_: &[u64; NR_STATS]) {}
    pub fn nr_stats() -> usize {
        NR_STATS
    }
    pub fn set_clock(_: u64) {}
    pub fn set_preempt_model(_: i32) {}
    pub fn set_switch_on_schedule(_: bool) {}
    pub fn effects() -> [i32; NR_EFFECTS] {
        [0; NR_EFFECTS]
    }
    pub fn reset_effects() {}
    pub fn grant(_: u64, _: bool) -> bool {
        false
    }
    pub fn slice_ext_deny(_: bool) -> u64 {
        0
    }
    pub fn exit_restart(_: &mut PtRegs, _: u64) -> bool {
        false
    }
    pub fn exit_loop(_: &mut PtRegs, ti_work: u64) -> u64 {
        ti_work
    }
    pub fn irqentry_exit_cond_resched() {}
    pub fn exit_to_user_mode_work() -> u64 {
        0
    }
    pub fn tif_bit(which: i32) -> u64 {
        1 << which
    }
}
