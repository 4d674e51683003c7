//! Syscall entry, bodies and exit.
//!
//! Follows `kernel/entry/syscall-common.c` (`syscall_trace_enter()` running the rseq slice
//! work before the syscall, spec §6.1) and the bodies of the syscalls programs use:
//! `rseq`, `prctl`, `rseq_slice_yield`, `sched_yield`, `clock_nanosleep`, `futex`,
//! `sched_{get,set}affinity`, `membarrier`, `clone`/`fork`/`execve` (spec §2.6) and exit.

use rseq_abi::consts::nr;
use rseq_abi::platform::{
    MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
};
use rseq_abi::{CpuSet, Errno, SysResult, Syscall};

use crate::coro::{SimProgram, Value};
use crate::cpu::CpuMode;
use crate::event::{Event, IrqKind};
use crate::sched::Prev;
use crate::sim::Simulation;
use crate::task::*;
use crate::trace::{LogKind, RevokePath};

/// A syscall as the kernel model sees it: the platform's syscalls plus the simulator-only
/// operations that are syscalls on a real machine.
pub(crate) enum KSys {
    Std(Syscall),
    GetAffinity,
    Spawn { clone_vm: bool, program: SimProgram },
    Exec { program: SimProgram },
    SetRseqMapped(bool),
    Exit(TaskExit),
}

impl KSys {
    fn name(&self) -> &'static str {
        match self {
            KSys::Std(s) => s.name(),
            KSys::GetAffinity => "sched_getaffinity",
            KSys::Spawn { clone_vm: true, .. } => "clone",
            KSys::Spawn {
                clone_vm: false, ..
            } => "fork",
            KSys::Exec { .. } => "execve",
            KSys::SetRseqMapped(true) => "mmap",
            KSys::SetRseqMapped(false) => "munmap",
            KSys::Exit(_) => "exit_group",
        }
    }

    /// The x86_64 syscall number (V1's yield number under V1).
    fn nr(&self, rev: rseq_abi::Revision) -> i64 {
        match self {
            KSys::Std(s) => match s {
                Syscall::Rseq { .. } => nr::X86_64_RSEQ,
                Syscall::Prctl { .. } => nr::X86_64_PRCTL,
                Syscall::RseqSliceYield => rev.slice_yield_nr(),
                Syscall::SchedYield => nr::X86_64_SCHED_YIELD,
                Syscall::Getpid => nr::X86_64_GETPID,
                Syscall::Nanosleep { .. } => 230,
                Syscall::FutexWait { .. } | Syscall::FutexWake { .. } => 202,
                Syscall::SchedSetaffinity(_) => 203,
                Syscall::Membarrier { .. } => nr::X86_64_MEMBARRIER,
                Syscall::Other { nr } => *nr,
            },
            KSys::GetAffinity => 204,
            KSys::Spawn { clone_vm: true, .. } => 56,
            KSys::Spawn {
                clone_vm: false, ..
            } => 57,
            KSys::Exec { .. } => 59,
            KSys::SetRseqMapped(true) => 9,
            KSys::SetRseqMapped(false) => 11,
            KSys::Exit(_) => 231,
        }
    }
}

/// What a syscall body did.
enum Body {
    /// Returned this value; exit to user after the syscall cost.
    Return(Value),
    /// Returned this value after waiting this long in the kernel (e.g. for IPIs).
    ReturnAfter(Value, u64),
    /// Completed with this value, but the task left the CPU on the way (sched_yield, a
    /// migration); its `kcont` carries the value to user space later.
    Switched(Value),
    /// The task blocked (or died); it resumes later with its `kcont`, if at all.
    Blocked,
}

impl Simulation {
    /// A sleep timer's latency beyond its expiry: one of the measured `timer_jitters`, or
    /// `U[0, timer_jitter)` where the machine lists none.
    fn sleep_jitter(&mut self) -> u64 {
        let draw = |s: &mut Self| s.chooser.draw(crate::choice::Draw::SleepJitter);
        match (self.cfg.timer_jitters_ns.len(), self.cfg.timer_jitter_ns) {
            (0, 0) => 0,
            (0, width) => draw(self) % width,
            (n, _) => {
                let i = (draw(self) % n as u64) as usize;
                self.cfg.timer_jitters_ns[i]
            }
        }
    }

    /// The user task `tid` on `cpu` enters a syscall.
    pub(crate) fn syscall_enter(&mut self, cpu: u32, tid: u32, sys: KSys) {
        self.cpus[cpu as usize].mode = CpuMode::Kernel;
        self.tasks[tid as usize].in_syscall = true;
        let c = &mut self.cpus[cpu as usize];
        c.gen = c.gen.wrapping_add(1);
        let nr = sys.nr(self.cfg.revision);
        self.emit(
            cpu,
            Some(tid),
            LogKind::SyscallEnter {
                name: sys.name(),
                nr,
            },
        );
        let delay = self.cfg.syscall_work_delay_ns;
        if delay > 0 && self.tasks[tid as usize].syscall_work_slice {
            // Entry code before syscall_trace_enter(): interrupts arriving now hit the
            // kernel with the grant still active (spec §13.5).
            self.tasks[tid as usize].kcont = KCont::SyscallWork { sys };
            let gen = self.cpus[cpu as usize].gen;
            self.push(self.now + delay, Event::KernelStep { cpu, gen });
            return;
        }
        self.syscall_work(cpu, tid, sys);
    }

    /// `syscall_trace_enter()`: the rseq slice work (spec §6.1), then the syscall.
    pub(crate) fn syscall_work(&mut self, cpu: u32, tid: u32, sys: KSys) {
        let nr = sys.nr(self.cfg.revision);
        if self.tasks[tid as usize].syscall_work_slice && self.rseq_syscall_enter_work(cpu, tid, nr)
        {
            // Steps 5–6: the reschedule point (preempt_enable on FULL/LAZY/RT,
            // cond_resched on NONE/VOLUNTARY; both reschedule here).
            if self.tasks[tid as usize].tif & TIF_NEED_RESCHED != 0 {
                self.tasks[tid as usize].kcont = KCont::SyscallEntryResched { sys };
                if self.schedule(cpu, Prev::Preempt) {
                    return;
                }
                let KCont::SyscallEntryResched { sys } =
                    std::mem::replace(&mut self.tasks[tid as usize].kcont, KCont::None)
                else {
                    unreachable!()
                };
                return self.syscall_after_resched_point(cpu, tid, sys);
            }
            return self.syscall_after_resched_point(cpu, tid, sys);
        }
        self.syscall_body(cpu, tid, sys);
    }

    /// Step 7 of the entry work, then the syscall itself.
    pub(crate) fn syscall_after_resched_point(&mut self, cpu: u32, tid: u32, sys: KSys) {
        self.rseq_syscall_enter_finish(cpu, tid);
        self.syscall_body(cpu, tid, sys);
    }

    fn syscall_body(&mut self, cpu: u32, tid: u32, sys: KSys) {
        let name = sys.name();
        match self.run_body(cpu, tid, sys) {
            Body::Return(v) => self.syscall_exit(cpu, tid, name, v, self.cfg.syscall_ns),
            Body::ReturnAfter(v, wait) => {
                self.syscall_exit(cpu, tid, name, v, wait + self.cfg.syscall_ns)
            }
            Body::Switched(v) => self.log_syscall_ret(cpu, tid, name, &v),
            Body::Blocked => {}
        }
    }

    fn log_syscall_ret(&mut self, cpu: u32, tid: u32, name: &'static str, v: &Value) {
        if let Value::Sys(ret) = v {
            let ret = *ret;
            self.emit(cpu, Some(tid), LogKind::SyscallExit { name, ret });
        }
    }

    /// The syscall returned `v`: log it and exit to user `delay` ns later.
    fn syscall_exit(&mut self, cpu: u32, tid: u32, name: &'static str, v: Value, delay: u64) {
        self.log_syscall_ret(cpu, tid, name, &v);
        if self.cpus[cpu as usize].curr == Some(tid) && self.tasks[tid as usize].alive() {
            self.tasks[tid as usize].kcont = KCont::ExitToUser { ret: Ret::Value(v) };
            let gen = self.cpus[cpu as usize].gen;
            self.push(self.now + delay, Event::KernelStep { cpu, gen });
        }
    }

    fn run_body(&mut self, cpu: u32, tid: u32, sys: KSys) -> Body {
        let sys_ret = |r: SysResult| Body::Return(Value::Sys(r));
        match sys {
            KSys::Std(call) => match call {
                Syscall::Rseq {
                    addr,
                    len,
                    flags,
                    sig,
                } => sys_ret(self.sys_rseq(cpu, tid, addr, len, flags, sig)),
                Syscall::Prctl {
                    option,
                    arg2,
                    arg3,
                    arg4,
                    arg5,
                } => sys_ret(self.sys_prctl(cpu, tid, option, [arg2, arg3, arg4, arg5])),
                Syscall::RseqSliceYield => sys_ret(self.sys_rseq_slice_yield(tid)),
                Syscall::Other { nr } if nr == self.cfg.revision.slice_yield_nr() => {
                    sys_ret(self.sys_rseq_slice_yield(tid))
                }
                Syscall::Other { .. } => sys_ret(Ok(0)),
                Syscall::Getpid => sys_ret(Ok(i64::from(self.tasks[tid as usize].mm))),
                Syscall::SchedYield => {
                    let ok = Value::Sys(Ok(0));
                    self.tasks[tid as usize].kcont = KCont::ExitToUser {
                        ret: Ret::Value(ok.clone()),
                    };
                    if self.schedule(cpu, Prev::Yield) {
                        return Body::Switched(ok);
                    }
                    self.tasks[tid as usize].kcont = KCont::None;
                    Body::Return(ok)
                }
                Syscall::Nanosleep { ns } => {
                    let slack = match self.tasks[tid as usize].policy {
                        Policy::Normal => self.cfg.timer_slack_ns,
                        Policy::Fifo(_) => 0,
                    };
                    let jitter = self.sleep_jitter();
                    // hrtimer_set_expires_range_ns(): soft expiry at the request, hard
                    // expiry `slack` later; the interrupt fires at the hard one (plus the
                    // latency jitter) unless another hrtimer interrupt on this CPU finds
                    // the soft one passed first (`expire_soft_sleep_timers()`).
                    let soft = self.now + ns;
                    let ns = ns + slack + jitter;
                    self.block(cpu, tid);
                    let t = &mut self.tasks[tid as usize];
                    t.sleep_gen = t.sleep_gen.wrapping_add(1);
                    let gen = t.sleep_gen;
                    if slack > 0 {
                        self.cpus[cpu as usize].sleep_timers.push((soft, tid, gen));
                    }
                    self.push(
                        self.now + ns,
                        Event::Irq {
                            cpu,
                            kind: IrqKind::SleepTimer,
                            gen,
                            task: tid,
                        },
                    );
                    self.schedule(cpu, Prev::Gone);
                    Body::Blocked
                }
                Syscall::FutexWait { word, expected } => {
                    if self.shared_word(word) != expected {
                        return sys_ret(Err(Errno(11)));
                    }
                    self.block(cpu, tid);
                    self.futex.entry(word.0).or_default().push_back(tid);
                    self.schedule(cpu, Prev::Gone);
                    Body::Blocked
                }
                Syscall::FutexWake { word, count } => {
                    let mut woken = 0;
                    while woken < count {
                        let Some(w) = self.futex.get_mut(&word.0).and_then(|q| q.pop_front())
                        else {
                            break;
                        };
                        self.tasks[w as usize].kcont = KCont::ExitToUser {
                            ret: Ret::Value(Value::Sys(Ok(0))),
                        };
                        self.wake_up(w);
                        woken += 1;
                    }
                    sys_ret(Ok(i64::from(woken)))
                }
                Syscall::SchedSetaffinity(mask) => {
                    let mut m = mask;
                    for c in self.cfg.cpus..CpuSet::CAPACITY {
                        m.remove(c);
                    }
                    if m.is_empty() {
                        return sys_ret(Err(Errno::EINVAL));
                    }
                    self.tasks[tid as usize].affinity = m;
                    let ok = Value::Sys(Ok(0));
                    self.tasks[tid as usize].kcont = KCont::ExitToUser {
                        ret: Ret::Value(ok.clone()),
                    };
                    if self.migrate_current_if_needed(cpu, tid) {
                        return Body::Switched(ok);
                    }
                    self.tasks[tid as usize].kcont = KCont::None;
                    Body::Return(ok)
                }
                Syscall::Membarrier { cmd, .. } => {
                    // The expedited command waits for its IPIs (smp_call_function_many
                    // with wait): the caller returns once the last one has landed.
                    let (r, sent) = self.sys_membarrier(cpu, tid, cmd);
                    let wait = if sent { self.cfg.ipi_latency_ns } else { 0 };
                    Body::ReturnAfter(Value::Sys(r), wait)
                }
            },
            KSys::GetAffinity => Body::Return(Value::Affinity(Box::new(Ok(self.tasks
                [tid as usize]
                .affinity)))),
            KSys::Spawn { clone_vm, program } => sys_ret(Ok(i64::from(
                self.copy_process(cpu, tid, clone_vm, program),
            ))),
            KSys::Exec { program } => {
                self.exec(cpu, tid, program);
                Body::Blocked
            }
            KSys::SetRseqMapped(m) => {
                self.tasks[tid as usize].mem.mapped = m;
                sys_ret(Ok(0))
            }
            KSys::Exit(how) => {
                self.kill_now(cpu, tid, how);
                Body::Blocked
            }
        }
    }

    fn block(&mut self, cpu: u32, tid: u32) {
        self.update_curr(cpu);
        self.tasks[tid as usize].state = TaskState::Sleeping;
    }

    /// `membarrier()`: registration, or `membarrier_private_expedited()`
    /// (`kernel/sched/membarrier.c`) sending `ipi_rseq()` to every other CPU running a
    /// thread of the process. Returns the result and whether IPIs were sent.
    fn sys_membarrier(&mut self, cpu: u32, tid: u32, cmd: i32) -> (SysResult, bool) {
        let mm = self.tasks[tid as usize].mm;
        match cmd {
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ => {
                self.membarrier_registered.insert(mm, true);
                (Ok(0), false)
            }
            MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ => {
                if !self
                    .membarrier_registered
                    .get(&mm)
                    .copied()
                    .unwrap_or(false)
                {
                    return (Err(Errno::EPERM), false);
                }
                let targets: Vec<u32> = (0..self.cfg.cpus as u32)
                    .filter(|&c| c != cpu)
                    .filter(|&c| {
                        self.cpus[c as usize]
                            .curr
                            .is_some_and(|t| self.tasks[t as usize].mm == mm)
                    })
                    .collect();
                let sent = !targets.is_empty();
                for c in targets {
                    self.send_ipi(c, IrqKind::MembarrierIpi);
                }
                (Ok(0), sent)
            }
            _ => (Err(Errno::EINVAL), false),
        }
    }

    /// `copy_process()` for `clone(CLONE_VM)` (R9: wiped rseq state, own area) and
    /// `fork()` (R10: copied rseq state and area bytes, new mm), both through `rseq_fork()`
    /// (`include/linux/rseq.h`); 7.2 then sets the child's `ids_changed` in `sched_fork()`.
    fn copy_process(&mut self, cpu: u32, parent: u32, clone_vm: bool, program: SimProgram) -> u32 {
        let p = &self.tasks[parent as usize];
        let pnice = p.nice;
        let (pname, pmm, paff, ppol, prseq, pbytes, parea, plen) = (
            p.name.clone(),
            p.mm,
            p.affinity,
            p.policy,
            p.rseq.clone(),
            p.mem.bytes,
            p.mem.area,
            p.rseq_len,
        );
        let mm = if clone_vm { pmm } else { self.new_mm() };
        let suffix = if clone_vm { "thread" } else { "child" };
        let child = self.new_task(format!("{pname}.{suffix}"), mm, program);
        let c = &mut self.tasks[child as usize];
        c.affinity = paff;
        c.policy = ppol;
        c.nice = pnice;
        c.rseq_len = plen;
        c.cpu = cpu;
        if clone_vm {
            let w = c.ctrl();
            self.emit(
                cpu,
                Some(child),
                LogKind::Revoke {
                    path: RevokePath::R9CloneVm,
                    before: w,
                    after: w,
                    was_granted: false,
                },
            );
        } else {
            // The COW copy: same addresses, same bytes, same kernel state.
            c.mem.area = parea;
            c.mem.bytes = pbytes;
            c.rseq = prseq;
            // wake_up_new_task() places the child with __set_task_cpu(), which marks its
            // IDs changed; its first switch-in raises the rseq update, so its first return
            // to user rewrites the IDs and clears the copied word (R4).
            c.rseq.ids_changed = true;
            let w = c.ctrl();
            let was = c.rseq.granted;
            self.emit(
                cpu,
                Some(child),
                LogKind::Revoke {
                    path: RevokePath::R10Fork,
                    before: w,
                    after: w,
                    was_granted: was,
                },
            );
        }
        self.tasks[child as usize].start_ns = self.now;
        self.push(self.now, Event::TaskStart { task: child });
        child
    }

    /// `execve()` → `rseq_execve()` (`include/linux/rseq.h`): the kernel rseq state is wiped
    /// (R8), the new program gets a fresh area.
    fn exec(&mut self, cpu: u32, tid: u32, program: SimProgram) {
        let t = &mut self.tasks[tid as usize];
        let was = t.rseq.granted;
        let w = t.ctrl();
        t.rseq = RseqTask::default();
        t.mem.bytes = [0; crate::coro::RSEQ_AREA_SIZE];
        t.mem.mapped = true;
        t.program = Some(program);
        self.emit(
            cpu,
            Some(tid),
            LogKind::Revoke {
                path: RevokePath::R8Exec,
                before: w,
                after: w,
                was_granted: was,
            },
        );
        self.release_thread(tid);
        self.emit(
            cpu,
            Some(tid),
            LogKind::SyscallExit {
                name: "execve",
                ret: Ok(0),
            },
        );
        self.tasks[tid as usize].kcont = KCont::ExitToUser { ret: Ret::Start };
        let gen = self.cpus[cpu as usize].gen;
        self.push(
            self.now + self.cfg.syscall_ns,
            Event::KernelStep { cpu, gen },
        );
    }
}
