//! Kernel entry and exit: `irqentry_enter_from_user_mode()`, interrupt handlers, and
//! `exit_to_user_mode_loop()` with the grant decision.
//!
//! Follows `kernel/entry/common.c` and `include/linux/irq-entry-common.h` (spec §3.1,
//! §3.3, §4.2). An interrupt from user mode sets `user_irq`, runs its handler at once, and
//! the exit work runs after the configured interrupt latency. Interrupts raised during that
//! latency (the hard irq, interrupts off) wait: the exit loop's `local_irq_enable()` takes
//! them before the grant decision, or, with no exit work, they enter from user mode after
//! the return. Interrupts that arrive while the CPU is otherwise in the kernel only run
//! their handler (no `user_irq`), and their effects are seen by the pending exit work.
//! `vcpu_stall` is not the kernel's: an emulator freezing a vCPU (`SimConfig::tick_stalls`).

use crate::config::Preempt;
use crate::cpu::CpuMode;
use crate::event::{Event, IrqKind, ReschedReq};
use crate::sched::Prev;
use crate::sim::Simulation;
use crate::task::*;
use crate::trace::LogKind;

/// Where a tick's vCPU stall falls (`Simulation::draw_tick_stall`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TickStallAt {
    /// Before the tick's handler: the CPU stands still with the tick pending.
    Entry,
    /// From the tick's return to user mode.
    Exit,
}

impl Simulation {
    /// An interrupt of `kind` arrives at `cpu`: entry, handler, then `irqentry_exit()`
    /// (`kernel/entry/common.c`): the exit to user mode, or the return into the kernel.
    pub(crate) fn irq(&mut self, cpu: u32, kind: IrqKind, gen: u32, task: u32) {
        if !self.irq_is_current(cpu, kind, gen, task) {
            return;
        }
        if self.now < self.cpus[cpu as usize].irqs_off_until {
            // Raised while interrupts are off (the hard irq of an interrupt from user
            // mode): pending in the APIC until the exit enables them.
            self.cpus[cpu as usize].pending_irqs.push((kind, gen, task));
            return;
        }
        // tick_stalls: the stall this tick draws, and whether the other vCPUs' turn comes
        // before its handler or after its exit.
        let mut stall_after_exit = 0;
        if kind == IrqKind::Tick && !std::mem::take(&mut self.cpus[cpu as usize].tick_stalled) {
            match self.draw_tick_stall(cpu) {
                Some((ns, TickStallAt::Entry)) => {
                    let user = self.cpus[cpu as usize].mode == CpuMode::User;
                    self.vcpu_stall(cpu, ns);
                    if user {
                        // Frozen with its interrupt pending: the handler runs at the end.
                        let c = &mut self.cpus[cpu as usize];
                        c.tick_stalled = true;
                        c.pending_irqs.push((kind, gen, task));
                        return;
                    }
                }
                Some((ns, TickStallAt::Exit)) => stall_after_exit = ns,
                None => {}
            }
        }
        let mode = self.cpus[cpu as usize].mode;
        let curr = self.cpus[cpu as usize].curr;
        let from_user = mode == CpuMode::User;
        if kind == IrqKind::Exception && !from_user {
            // Exceptions are injected "from user mode"; with no user code running there is
            // nothing to fault.
            return;
        }
        if let (true, Some(tid)) = (from_user, curr) {
            self.irqentry_enter_from_user_mode(cpu, tid);
        }
        self.emit(cpu, curr, LogKind::IrqEnter { kind, from_user });
        self.irq_handler(cpu, kind, task);
        match (from_user, self.cpus[cpu as usize].curr) {
            (true, Some(tid)) if self.tasks[tid as usize].alive() => {
                self.tasks[tid as usize].kcont = KCont::ExitToUser { ret: Ret::Continue };
                let gen = self.cpus[cpu as usize].gen;
                let exit_at = self.now + self.cfg.irq_latency_ns;
                self.cpus[cpu as usize].irqs_off_until = exit_at;
                // hrtimer_interrupt() defers reprogramming the timer to the exit.
                self.cpus[cpu as usize].rearm_deferred = kind.is_hrtimer();
                self.push(exit_at, Event::KernelStep { cpu, gen });
            }
            (false, Some(tid)) if self.irqentry_exit_cond_resched(tid) => {
                self.schedule(cpu, Prev::Preempt);
            }
            _ => {
                if self.cpus[cpu as usize].mode == CpuMode::Idle
                    && !self.cpus[cpu as usize].rq.is_empty()
                {
                    self.schedule(cpu, Prev::Gone);
                }
            }
        }
        if stall_after_exit > 0 {
            // After the exit step is queued, so a stall at its instant follows it.
            let at = self.now + self.cfg.irq_latency_ns;
            self.push(
                at,
                Event::VcpuStall {
                    cpu,
                    ns: stall_after_exit,
                },
            );
        }
    }

    /// `irqentry_exit_to_kernel_mode()` → `irqentry_exit_cond_resched()`: on a preemptible
    /// kernel (`raw_irqentry_exit_cond_resched()`, `kernel/entry/common.c`) an interrupt
    /// that returns into a syscall preempts it when `TIF_NEED_RESCHED`
    /// (not the lazy bit) is set. Only syscall bodies are preemptible here: the exit work
    /// after an interrupt from user mode runs with interrupts disabled until its loop,
    /// whose reschedule point is the grant decision.
    fn irqentry_exit_cond_resched(&self, tid: u32) -> bool {
        let t = &self.tasks[tid as usize];
        self.cfg.preempt.is_preemptible()
            && t.in_syscall
            && t.alive()
            && t.tif & TIF_NEED_RESCHED != 0
    }

    /// Timers carry generations: a cancelled or re-armed one pops stale.
    fn irq_is_current(&self, cpu: u32, kind: IrqKind, gen: u32, task: u32) -> bool {
        let c = &self.cpus[cpu as usize];
        match kind {
            IrqKind::Tick => c.tick_on && c.tick_gen == gen,
            IrqKind::SliceTimer => c.slice_timer.armed && c.slice_timer.gen == gen,
            IrqKind::Hrtick => c.hrtick.armed && c.hrtick.gen == gen,
            IrqKind::SleepTimer => {
                let t = &self.tasks[task as usize];
                t.sleep_gen == gen && t.state == TaskState::Sleeping
            }
            _ => true,
        }
    }

    /// `irqentry_enter_from_user_mode()`: set `user_irq`; the user operation in progress
    /// is cut, keeping what is left of its burn.
    fn irqentry_enter_from_user_mode(&mut self, cpu: u32, tid: u32) {
        let now = self.now;
        let c = &mut self.cpus[cpu as usize];
        c.gen = c.gen.wrapping_add(1);
        c.mode = CpuMode::Kernel;
        let t = &mut self.tasks[tid as usize];
        t.rseq.user_irq = true;
        t.pending_remaining = t.pending_at.saturating_sub(now);
        self.marks.cut(tid, now);
    }

    fn irq_handler(&mut self, cpu: u32, kind: IrqKind, task: u32) {
        match kind {
            IrqKind::Device(ReschedReq::None) | IrqKind::Exception | IrqKind::ReschedIpi => {}
            IrqKind::SignalKick => {}
            IrqKind::Device(ReschedReq::Lazy) => self.resched_curr(cpu, true, "device_irq"),
            IrqKind::Device(ReschedReq::Full) => self.resched_curr(cpu, false, "device_irq"),
            IrqKind::MembarrierIpi => {
                // ipi_rseq(): the same hook as a context switch (spec §5); a legacy
                // registration is forced to a full update, even in kernel mode (7.2).
                if let Some(tid) = self.cpus[cpu as usize].curr {
                    match self.tasks[tid as usize].rseq.reg {
                        Some(r) if !r.v2 => self.rseq_force_update(tid),
                        _ => self.rseq_sched_switch_event(tid),
                    }
                }
            }
            IrqKind::Tick => {
                self.scheduler_tick(cpu);
                self.tick_rearm(cpu);
                self.expire_soft_sleep_timers(cpu);
            }
            IrqKind::SliceTimer => {
                self.rseq_slice_expired(cpu);
                self.expire_soft_sleep_timers(cpu);
            }
            IrqKind::SleepTimer => {
                self.sleep_timer_fired(task);
                self.expire_soft_sleep_timers(cpu);
            }
            IrqKind::Hrtick => {
                self.hrtick(cpu);
                self.expire_soft_sleep_timers(cpu);
            }
        }
    }

    /// `tick_stalls`: this tick's vCPU stall, if any, and where it falls. qemu's `-icount`
    /// runs the vCPUs round-robin in index order (`rr_cpu_thread_fn()`), so of the other
    /// vCPUs with work when a tick comes due, those before this one take their turn before
    /// its handler runs, and those after it at its next kick: the timer reprogramming of
    /// its exit (`qemu_timer_notify_cb()`), the slice timer's arm after a grant. A drawn
    /// stall belongs to one of the other vCPUs, spread evenly by its index: before the
    /// handler with odds `cpu / (cpus − 1)`, after the exit otherwise.
    fn draw_tick_stall(&mut self, cpu: u32) -> Option<(u64, TickStallAt)> {
        let s = &self.cfg.tick_stalls;
        if s.stalls_ns.is_empty() {
            return None;
        }
        let ticks = s.ticks;
        let i = self.chooser.draw(crate::choice::Draw::TickStall) % ticks;
        let ns = self
            .cfg
            .tick_stalls
            .stalls_ns
            .get(i as usize)
            .copied()
            .unwrap_or(0);
        if ns == 0 {
            return None;
        }
        let others = self.cfg.cpus.saturating_sub(1).max(1) as u64;
        let at = if i % others < u64::from(cpu) {
            TickStallAt::Entry
        } else {
            TickStallAt::Exit
        };
        Some((ns, at))
    }

    /// The emulator gives another vCPU its turn: a task running user code on `cpu` is
    /// frozen for `ns` (its operation cut, nothing entering the kernel), and interrupts
    /// due meanwhile wait for it. A CPU in the kernel takes it at its next return to user
    /// mode (the model's kernel paths are timed as wholes); an idle one is not affected.
    pub(crate) fn vcpu_stall(&mut self, cpu: u32, ns: u64) {
        let c = &mut self.cpus[cpu as usize];
        let (CpuMode::User, Some(tid)) = (c.mode, c.curr) else {
            if c.mode == CpuMode::Kernel {
                c.deferred_stall_ns += ns;
            }
            return;
        };
        let now = self.now;
        let c = &mut self.cpus[cpu as usize];
        c.gen = c.gen.wrapping_add(1);
        c.mode = CpuMode::Kernel;
        c.irqs_off_until = now + ns;
        let gen = c.gen;
        let t = &mut self.tasks[tid as usize];
        t.pending_remaining = t.pending_at.saturating_sub(now);
        t.kcont = KCont::StallEnd;
        self.marks.cut(tid, now);
        self.push(now + ns, Event::KernelStep { cpu, gen });
    }

    /// A sleep's hrtimer fires: `hrtimer_wakeup()` wakes the sleeper, whose syscall
    /// returns 0.
    fn sleep_timer_fired(&mut self, task: u32) {
        let t = &mut self.tasks[task as usize];
        // Its other expiry (hard or soft) is now stale.
        t.sleep_gen = t.sleep_gen.wrapping_add(1);
        t.kcont = KCont::ExitToUser {
            ret: Ret::Value(crate::coro::Value::Sys(Ok(0))),
        };
        self.wake_up(task);
    }

    /// `__hrtimer_run_queues()`: an hrtimer interrupt expires every timer of its CPU whose
    /// soft expiry has passed, so a sleep with slack ends at the first hrtimer interrupt
    /// (the tick, another sleep's timer, the slice timer) after its requested time, and
    /// only at its hard expiry if none comes. Under icount Linux ended 98 of 1,000 50 µs
    /// sleeps that way (docs/fidelity.md).
    fn expire_soft_sleep_timers(&mut self, cpu: u32) {
        if self.cpus[cpu as usize].sleep_timers.is_empty() {
            return;
        }
        let now = self.now;
        let timers = std::mem::take(&mut self.cpus[cpu as usize].sleep_timers);
        let mut keep = Vec::with_capacity(timers.len());
        let mut due = Vec::new();
        for (soft, tid, gen) in timers {
            let t = &self.tasks[tid as usize];
            if t.sleep_gen != gen || t.state != TaskState::Sleeping {
                continue;
            }
            if soft <= now {
                due.push(tid);
            } else {
                keep.push((soft, tid, gen));
            }
        }
        self.cpus[cpu as usize].sleep_timers = keep;
        for tid in due {
            self.sleep_timer_fired(tid);
        }
    }

    /// The current task of `cpu` continues in the kernel (after its entry latency, or after
    /// being switched in).
    pub(crate) fn kernel_continue(&mut self, cpu: u32) {
        let Some(tid) = self.cpus[cpu as usize].curr else {
            return;
        };
        match std::mem::replace(&mut self.tasks[tid as usize].kcont, KCont::None) {
            KCont::None => {}
            KCont::ExitToUser { ret } => self.exit_to_user_mode(cpu, tid, ret),
            KCont::SyscallEntryResched { sys } => self.syscall_after_resched_point(cpu, tid, sys),
            KCont::SyscallWork { sys } => self.syscall_work(cpu, tid, sys),
            KCont::StallEnd => {
                // Not a kernel exit: the user operation just goes on, and what came due
                // while the vCPU was frozen is taken now, from user mode.
                self.cpus[cpu as usize].mode = CpuMode::User;
                self.continue_user_op(cpu, tid);
                self.requeue_pending_irqs(cpu);
            }
        }
    }

    /// `TIF_SLICE_EXT_DENY`: exit work that makes the grant decision revoke/deny.
    fn slice_ext_deny_mask(&self) -> u32 {
        let mut m = EXIT_TO_USER_MODE_WORK & !(TIF_NEED_RESCHED | TIF_NEED_RESCHED_LAZY);
        if self.cfg.preempt == Preempt::Rt {
            // On PREEMPT_RT only lazy reschedules may be extended.
            m |= TIF_NEED_RESCHED;
        }
        m
    }

    /// `exit_to_user_mode_prepare()` → `exit_to_user_mode_loop()` (spec §3.1), then return
    /// to user mode delivering `ret`.
    pub(crate) fn exit_to_user_mode(&mut self, cpu: u32, tid: u32, ret: Ret) {
        if std::mem::take(&mut self.tasks[tid as usize].in_syscall) {
            // syscall_exit_to_user_mode_work(): the debug `rseq_cs` check runs before the
            // exit work loop, so its SIGSEGV is delivered on this exit.
            self.rseq_debug_syscall_return(cpu, tid);
        }
        let mut ti_work = self.tasks[tid as usize].tif;
        if ti_work & EXIT_TO_USER_MODE_WORK != 0 {
            // The loop's first pass enables interrupts: what came in during the hard irq
            // is taken now, before the grant decision, and may preempt the task outright.
            if ti_work & (EXIT_TO_USER_MODE_WORK & !TIF_RSEQ) != 0
                && self.take_pending_irqs_in_kernel(cpu, tid)
            {
                self.tasks[tid as usize].kcont = KCont::ExitToUser { ret };
                self.rearm_before_schedule(cpu);
                if self.schedule(cpu, Prev::Preempt) {
                    return; // the exit runs again when switched back in
                }
                let KCont::ExitToUser { ret: r } =
                    std::mem::replace(&mut self.tasks[tid as usize].kcont, KCont::None)
                else {
                    unreachable!()
                };
                return self.exit_to_user_mode(cpu, tid, r);
            }
            ti_work = self.tasks[tid as usize].tif;
            let deny = self.slice_ext_deny_mask();
            loop {
                while ti_work & (EXIT_TO_USER_MODE_WORK & !TIF_RSEQ) != 0 {
                    if ti_work & (TIF_NEED_RESCHED | TIF_NEED_RESCHED_LAZY) != 0
                        && !self.rseq_grant_slice_extension(cpu, tid, ti_work & deny)
                    {
                        if !self.tasks[tid as usize].alive() {
                            return;
                        }
                        self.tasks[tid as usize].kcont = KCont::ExitToUser { ret };
                        self.rearm_before_schedule(cpu);
                        if self.schedule(cpu, Prev::Preempt) {
                            return; // continues here when switched back in
                        }
                        let KCont::ExitToUser { ret: r } =
                            std::mem::replace(&mut self.tasks[tid as usize].kcont, KCont::None)
                        else {
                            unreachable!()
                        };
                        return self.exit_to_user_mode(cpu, tid, r);
                    }
                    if ti_work & TIF_SIGPENDING != 0 && self.do_signal(cpu, tid) {
                        return; // killed
                    }
                    if ti_work & TIF_NOTIFY_RESUME != 0 {
                        self.tasks[tid as usize].tif &= !TIF_NOTIFY_RESUME;
                        self.rseq_handle_notify_resume(cpu, tid);
                    }
                    if ti_work & TIF_OTHER_WORK != 0 {
                        self.tasks[tid as usize].tif &= !TIF_OTHER_WORK;
                    }
                    if !self.tasks[tid as usize].alive() {
                        return;
                    }
                    ti_work = self.tasks[tid as usize].tif;
                }
                if !self.rseq_exit_to_user_mode_restart(cpu, tid, ti_work) {
                    break;
                }
                if !self.tasks[tid as usize].alive() {
                    return;
                }
                ti_work = self.tasks[tid as usize].tif;
            }
        }
        // The rseq events are cleared on every exit to user.
        let r = &mut self.tasks[tid as usize].rseq;
        r.user_irq = false;
        r.sched_switch = false;
        r.ids_changed = false;
        self.emit(cpu, Some(tid), LogKind::ExitToUser);
        self.resume_user(cpu, tid, ret);
        // No exit work: interrupts stayed off to the return (`iret` enables them), so
        // what came in meanwhile enters from user mode, inside a grant just made.
        self.requeue_pending_irqs(cpu);
    }

    /// Interrupts are enabled in the kernel (the exit loop's `local_irq_enable()`): run
    /// the pending ones' handlers there, in arrival order. If one leaves `TIF_NEED_RESCHED`
    /// on a preemptible kernel its `irqentry_exit()` preempts the task
    /// (`raw_irqentry_exit_cond_resched()`) before the loop reaches the grant decision:
    /// returns true then. After an hrtimer interrupt the timer is not yet reprogrammed
    /// (`TIF_HRTIMER_REARM`): hrtimers that came due stay silent until the grant decision
    /// (`rseq_grant_slice_extension()` → `hrtimer_rearm_deferred_tif()`), the schedule
    /// (`hrtick_schedule_enter()`) or the return rearms it, and fire after that.
    fn take_pending_irqs_in_kernel(&mut self, cpu: u32, tid: u32) -> bool {
        self.cpus[cpu as usize].irqs_off_until = 0;
        if self.cpus[cpu as usize].pending_irqs.is_empty() {
            return false;
        }
        let mut pending = std::mem::take(&mut self.cpus[cpu as usize].pending_irqs);
        if self.cpus[cpu as usize].rearm_deferred {
            let (silent, now): (Vec<_>, Vec<_>) =
                pending.into_iter().partition(|(k, _, _)| k.is_hrtimer());
            self.cpus[cpu as usize].pending_irqs = silent;
            pending = now;
        }
        let mut took = false;
        for (kind, gen, task) in pending {
            if !self.irq_is_current(cpu, kind, gen, task) {
                continue;
            }
            took = true;
            self.emit(
                cpu,
                Some(tid),
                LogKind::IrqEnter {
                    kind,
                    from_user: false,
                },
            );
            self.irq_handler(cpu, kind, task);
        }
        let t = &self.tasks[tid as usize];
        took && t.alive() && self.cfg.preempt.is_preemptible() && t.tif & TIF_NEED_RESCHED != 0
    }

    /// `__schedule()` → `hrtick_schedule_enter()` takes over a deferred rearm: the
    /// hrtimers that came due fire around the switch.
    fn rearm_before_schedule(&mut self, cpu: u32) {
        if self.cpus[cpu as usize].rearm_deferred {
            self.requeue_pending_irqs(cpu);
        }
    }

    /// Deliver the interrupts that were pending as events now: after a return to user
    /// mode, or once the CPU has left the interrupted task's exit some other way.
    pub(crate) fn requeue_pending_irqs(&mut self, cpu: u32) {
        self.cpus[cpu as usize].irqs_off_until = 0;
        self.cpus[cpu as usize].rearm_deferred = false;
        for (kind, gen, task) in std::mem::take(&mut self.cpus[cpu as usize].pending_irqs) {
            self.push(
                self.now,
                Event::Irq {
                    cpu,
                    kind,
                    gen,
                    task,
                },
            );
        }
    }
}
