//! The scheduler: `schedule()`, wakeups, `resched_curr()`, the tick and migration.
//!
//! A deliberately small model of `kernel/sched/{core,fair,rt}.c`: per-CPU run queues, a
//! fair class ordered by virtual runtime with sleeper credit and wakeup preemption, a FIFO
//! RT class above it, tick-driven slice expiry, and the `NEED_RESCHED` / `NEED_RESCHED_LAZY`
//! distinction of the preemption models. The context-switch hook sets the rseq switch event
//! exactly as spec §5 says (`rseq_sched_switch_event()`).

use rseq_abi::CpuSet;

use crate::cpu::CpuMode;
use crate::event::{Event, IrqKind};
use crate::sim::Simulation;
use crate::task::*;
use crate::trace::LogKind;

/// What happens to the previous task in `schedule()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prev {
    /// Preempted: stays runnable.
    Preempt,
    /// `sched_yield()`: stays runnable but goes behind the others.
    Yield,
    /// Sleeping or dead: leaves the run queue.
    Gone,
    /// Leaving for another CPU's queue (the caller places it there).
    Migrate,
}

impl Simulation {
    /// Charge the current task of `cpu` for the time since it was last charged. Under
    /// EEVDF, returns whether `update_curr()` would reschedule it (the callers that act
    /// on it are the tick and the wakeup path, as in the kernel).
    pub(crate) fn update_curr(&mut self, cpu: u32) -> bool {
        // update_rq_clock(): the run queue's clock is read wherever its lock is taken.
        self.cpus[cpu as usize].rq_clock = self.now;
        self.update_curr_to(cpu, self.now)
    }

    /// `update_curr()` with the run queue's clock at `now`.
    fn update_curr_to(&mut self, cpu: u32, now: u64) -> bool {
        let Some(tid) = self.cpus[cpu as usize].curr else {
            return false;
        };
        let t = &mut self.tasks[tid as usize];
        let delta = now.saturating_sub(t.exec_start);
        t.exec_start = now;
        t.sum_exec += delta;
        if t.policy == Policy::Normal && self.cfg.fair_class == crate::config::FairClass::Eevdf {
            return self.update_curr_eevdf(cpu, tid, delta);
        }
        if t.policy == Policy::Normal {
            // calc_delta_fair(): virtual time runs slower for heavier (lower nice) tasks.
            t.vruntime += delta * NICE_0_WEIGHT / nice_weight(t.nice);
            let v = t.vruntime;
            let rq = &mut self.cpus[cpu as usize].rq;
            let left = rq.fair.first().map_or(v, |&(lv, _)| lv);
            rq.min_vruntime = rq.min_vruntime.max(v.min(left));
        }
        false
    }

    pub(crate) fn enqueue(&mut self, cpu: u32, tid: u32) {
        // A CPU with queued work is no placement target for others, even before it switches.
        self.idle.remove(cpu as usize);
        let t = &self.tasks[tid as usize];
        if t.policy == Policy::Normal && self.eevdf() {
            return self.tree_insert(cpu, tid);
        }
        let rq = &mut self.cpus[cpu as usize].rq;
        match t.policy {
            Policy::Normal => {
                rq.fair.insert((t.vruntime, tid));
            }
            Policy::Fifo(prio) => {
                rq.rt_seq += 1;
                rq.rt.insert((100 - prio.min(99), rq.rt_seq, tid));
            }
        }
    }

    pub(crate) fn dequeue(&mut self, cpu: u32, tid: u32) {
        let t = &self.tasks[tid as usize];
        if t.policy == Policy::Normal && self.eevdf() {
            return self.tree_remove(cpu, tid);
        }
        let rq = &mut self.cpus[cpu as usize].rq;
        match t.policy {
            Policy::Normal => {
                rq.fair.remove(&(t.vruntime, tid));
            }
            Policy::Fifo(_) => rq.rt.retain(|&(_, _, id)| id != tid),
        }
    }

    /// `schedule()` on `cpu`: put the previous task away per `prev`, pick the next and
    /// switch to it. Returns true if another task (or idle) now owns the CPU.
    pub(crate) fn schedule(&mut self, cpu: u32, prev: Prev) -> bool {
        // __schedule() promotes a skip requested by wakeup_preempt() and leaves the clock
        // where the wakeup read it: the previous task is charged up to there, the next one
        // from there (`rq_clock_skip_update()`).
        let clock = if std::mem::take(&mut self.cpus[cpu as usize].clock_skip) {
            let at = self.cpus[cpu as usize].rq_clock;
            self.update_curr_to(cpu, at);
            at
        } else {
            self.update_curr(cpu);
            self.now
        };
        let prev_tid = self.cpus[cpu as usize].curr;
        let eevdf = self.eevdf();
        // The previous task, if it stays queued here: the pick's current entity.
        let mut cand = None;
        if let Some(p) = prev_tid {
            let t = &mut self.tasks[p as usize];
            t.tif &= !(TIF_NEED_RESCHED | TIF_NEED_RESCHED_LAZY);
            let fair = t.policy == Policy::Normal;
            let staying = !matches!(prev, Prev::Gone | Prev::Migrate) && t.alive();
            if eevdf && fair && !staying {
                let dead = !t.alive();
                self.dequeue_prev_eevdf(cpu, p, prev == Prev::Gone, dead);
            }
            let t = &mut self.tasks[p as usize];
            if staying {
                t.state = TaskState::Runnable;
                if prev == Prev::Yield && eevdf && fair {
                    self.yield_eevdf(cpu, p);
                } else if prev == Prev::Yield {
                    // Behind every other fair task: the simplest faithful `yield_task_fair`.
                    let max = self.cpus[cpu as usize]
                        .rq
                        .fair
                        .last()
                        .map_or(0, |&(v, _)| v);
                    let t = &mut self.tasks[p as usize];
                    t.vruntime = t.vruntime.max(max + 1);
                }
                match self.tasks[p as usize].migrate_to.take() {
                    // The stopper's move (an explorer's injected migration): queued on
                    // the destination, whose IDs it will find changed (R4).
                    Some(dest) if dest != cpu => {
                        if eevdf && fair {
                            self.dequeue_prev_eevdf(cpu, p, false, false);
                        }
                        self.set_task_cpu(p, dest);
                        self.place_entity(dest, p);
                        self.enqueue(dest, p);
                        self.hrtick_update(dest);
                        self.check_preempt(dest, p);
                    }
                    _ => {
                        self.enqueue(cpu, p);
                        cand = fair.then_some(p);
                    }
                }
            }
        }
        let next = self.pick_next(cpu, cand);
        if next == prev_tid {
            if let Some(n) = next {
                self.dequeue(cpu, n);
                self.tasks[n as usize].state = TaskState::Running;
            }
            return false;
        }
        self.emit(
            cpu,
            prev_tid,
            LogKind::Switch {
                prev: prev_tid,
                next,
            },
        );
        let c = &mut self.cpus[cpu as usize];
        c.gen = c.gen.wrapping_add(1);
        c.curr = next;
        match next {
            Some(n) => {
                // context_switch(): rseq learns of the switch as `next` is scheduled in,
                // after a migration or CID change has marked its IDs.
                self.rseq_sched_switch_event(n);
                self.dequeue(cpu, n);
                if eevdf {
                    self.set_protect_slice(n);
                }
                let now = self.now;
                let t = &mut self.tasks[n as usize];
                t.state = TaskState::Running;
                t.exec_start = clock;
                t.slice_start = t.sum_exec;
                self.cpus[cpu as usize].mode = CpuMode::Kernel;
                let gen = self.cpus[cpu as usize].gen;
                let idle_exit = if prev_tid.is_none() {
                    self.cfg.idle_exit_ns
                } else {
                    0
                };
                self.push(
                    now + idle_exit + self.cfg.ctx_switch_ns,
                    Event::KernelStep { cpu, gen },
                );
                self.set_busy(cpu);
                self.hrtick_switched(cpu, next);
            }
            None => {
                self.hrtick_switched(cpu, None);
                self.cpus[cpu as usize].mode = CpuMode::Idle;
                self.set_idle(cpu);
                if self.cfg.load_balance {
                    self.newidle_balance(cpu);
                }
            }
        }
        true
    }

    /// `pick_next_task()`: RT first, then the fair class; `cand` is the previous task,
    /// already back in the fair tree, which EEVDF treats as current.
    fn pick_next(&mut self, cpu: u32, cand: Option<u32>) -> Option<u32> {
        let rq = &self.cpus[cpu as usize].rq;
        if let Some(&(_, _, tid)) = rq.rt.first() {
            return Some(tid);
        }
        if self.eevdf() {
            return self.pick_next_eevdf(cpu, None, cand, true);
        }
        rq.fair.first().map(|&(_, tid)| tid)
    }

    fn set_busy(&mut self, cpu: u32) {
        self.idle.remove(cpu as usize);
        let c = &mut self.cpus[cpu as usize];
        if c.busy_since.is_none() {
            c.busy_since = Some(self.now);
        }
        if !c.tick_on && self.cfg.hz > 0 {
            c.tick_on = true;
            c.tick_gen = c.tick_gen.wrapping_add(1);
            let period = 1_000_000_000 / u64::from(self.cfg.hz);
            let next = (self.now / period + 1) * period;
            c.tick_next = next;
            let gen = c.tick_gen;
            self.push(
                next,
                Event::Irq {
                    cpu,
                    kind: IrqKind::Tick,
                    gen,
                    task: u32::MAX,
                },
            );
        }
    }

    fn set_idle(&mut self, cpu: u32) {
        self.idle.insert(cpu as usize);
        let c = &mut self.cpus[cpu as usize];
        if let Some(s) = c.busy_since.take() {
            c.busy_ns += self.now - s;
        }
        // NOHZ idle: the tick chain stops at its next firing.
        c.tick_on = false;
        c.tick_gen = c.tick_gen.wrapping_add(1);
    }

    /// `rseq_sched_switch_event()` (`include/linux/rseq.h`, from `context_switch()` for the
    /// task scheduled in): one that entered the kernel by an interrupt/exception from user
    /// mode, or whose IDs changed, gets `sched_switch` and `TIF_RSEQ` (spec §5).
    ///
    /// 7.2 (`include/linux/rseq.h`): a legacy (32-byte) registration gets a full ID update
    /// after every switch, voluntary ones included.
    pub(crate) fn rseq_sched_switch_event(&mut self, tid: u32) {
        if let Some(o) = self.observer.take() {
            let cpu = self.tasks[tid as usize].cpu;
            let site = crate::observe::Site::SchedSwitchEvent;
            return self.observed(o, site, cpu, Some(tid), |s| s.rseq_sched_switch_event(tid));
        }
        let t = &mut self.tasks[tid as usize];
        let Some(reg) = t.rseq.reg else { return };
        if !reg.v2 {
            t.rseq.ids_changed = true;
            t.rseq.sched_switch = true;
            t.tif |= TIF_RSEQ;
        } else if t.rseq.user_irq || t.rseq.ids_changed {
            t.rseq.sched_switch = true;
            t.tif |= TIF_RSEQ;
        }
    }

    /// `resched_curr()` / `resched_curr_lazy()` on `cpu`.
    pub(crate) fn resched_curr(&mut self, cpu: u32, lazy: bool, why: &'static str) {
        let Some(tid) = self.cpus[cpu as usize].curr else {
            return;
        };
        let lazy = lazy && self.cfg.preempt.has_lazy();
        let t = &mut self.tasks[tid as usize];
        if lazy {
            if t.tif & (TIF_NEED_RESCHED | TIF_NEED_RESCHED_LAZY) != 0 {
                return;
            }
            t.tif |= TIF_NEED_RESCHED_LAZY;
            self.emit(cpu, Some(tid), LogKind::NeedResched { lazy: true, why });
            return;
        }
        if t.tif & TIF_NEED_RESCHED != 0 {
            return;
        }
        t.tif |= TIF_NEED_RESCHED;
        self.emit(cpu, Some(tid), LogKind::NeedResched { lazy: false, why });
        if cpu != self.ctx_cpu {
            self.send_ipi(cpu, IrqKind::ReschedIpi);
        }
    }

    /// Send an IPI to `cpu`; it arrives after the configured latency.
    pub(crate) fn send_ipi(&mut self, cpu: u32, kind: IrqKind) {
        let at = self.now + self.cfg.ipi_latency_ns;
        self.push(
            at,
            Event::Irq {
                cpu,
                kind,
                gen: 0,
                task: u32::MAX,
            },
        );
    }

    /// `select_task_rq()`: the previous CPU if allowed and idle or no idle CPU is allowed;
    /// else the lowest-numbered idle allowed CPU; else the first allowed CPU.
    fn select_task_rq(&self, tid: u32) -> u32 {
        let t = &self.tasks[tid as usize];
        let prev = t.cpu as usize;
        let allowed = t.affinity;
        if allowed.contains(prev) && (self.idle.contains(prev) || !self.cfg.load_balance) {
            return prev as u32;
        }
        if self.cfg.load_balance {
            if let Some(c) = first_common(&allowed, &self.idle, self.cfg.cpus) {
                return c;
            }
        }
        if allowed.contains(prev) {
            return prev as u32;
        }
        first_cpu(&allowed)
    }

    /// Place a waking fair task's vruntime: under EEVDF with the lag it left with
    /// (`place_entity()`, `sim/src/fair.rs`); under CFS not below
    /// `min_vruntime - sleeper_credit`.
    fn place_entity(&mut self, cpu: u32, tid: u32) {
        if self.eevdf() {
            if self.tasks[tid as usize].policy == Policy::Normal {
                self.place_eevdf(cpu, tid, false);
            }
            return;
        }
        let min = self.cpus[cpu as usize].rq.min_vruntime;
        let t = &mut self.tasks[tid as usize];
        if t.policy == Policy::Normal {
            t.vruntime = t
                .vruntime
                .max(min.saturating_sub(self.cfg.sleeper_credit_ns));
        }
    }

    /// `set_task_cpu()` → `__set_task_cpu()` (`kernel/sched/sched.h`): move a task's
    /// bookkeeping to a new CPU; `rseq_sched_set_ids_changed()` sets `ids_changed`.
    fn set_task_cpu(&mut self, tid: u32, cpu: u32) {
        let from = self.tasks[tid as usize].cpu;
        if from == cpu {
            return;
        }
        let t = &mut self.tasks[tid as usize];
        t.cpu = cpu;
        t.rseq.ids_changed = true;
        t.tif |= TIF_RSEQ;
        self.emit(
            cpu,
            Some(tid),
            LogKind::Migrate {
                task: tid,
                from,
                to: cpu,
            },
        );
    }

    /// `try_to_wake_up()`: make `tid` runnable, preempting the CPU's current task if the
    /// woken one should run first.
    pub(crate) fn wake_up(&mut self, tid: u32) {
        if self.eevdf() && self.requeue_delayed(tid) {
            // ttwu_runnable(): still queued where it slept.
            let cpu = self.tasks[tid as usize].cpu;
            self.tasks[tid as usize].state = TaskState::Runnable;
            self.emit(cpu, Some(tid), LogKind::Wakeup { task: tid, cpu });
            self.check_preempt(cpu, tid);
            return;
        }
        let cpu = self.select_task_rq(tid);
        self.set_task_cpu(tid, cpu);
        self.place_entity(cpu, tid);
        self.tasks[tid as usize].state = TaskState::Runnable;
        self.enqueue(cpu, tid);
        self.hrtick_update(cpu);
        self.emit(cpu, Some(tid), LogKind::Wakeup { task: tid, cpu });
        self.check_preempt(cpu, tid);
    }

    /// `check_preempt_curr()` / `wakeup_preempt()`, or kick an idle CPU.
    fn check_preempt(&mut self, cpu: u32, tid: u32) {
        self.check_preempt_flags(cpu, tid, false)
    }

    /// `wakeup_preempt()`; `fork` for `wake_up_new_task()` (`WF_FORK`). When it leaves
    /// the running task with `TIF_NEED_RESCHED` (the full bit: not a lazy request), it asks
    /// the coming `__schedule()` to skip its clock update (`rq_clock_skip_update()`), since
    /// the schedule is expected right away. With a slice extension granted against that
    /// request the schedule comes microseconds later, and the time the task runs under the
    /// grant is charged to the task switched in.
    fn check_preempt_flags(&mut self, cpu: u32, tid: u32, fork: bool) {
        self.wakeup_preempt_class(cpu, tid, fork);
        if let Some(curr) = self.cpus[cpu as usize].curr {
            let t = &self.tasks[curr as usize];
            if t.state == TaskState::Running && t.tif & TIF_NEED_RESCHED != 0 {
                self.cpus[cpu as usize].clock_skip = true;
            }
        }
    }

    /// The class's own `wakeup_preempt()`, or a kick of an idle CPU.
    fn wakeup_preempt_class(&mut self, cpu: u32, tid: u32, fork: bool) {
        let c = &self.cpus[cpu as usize];
        let Some(curr) = c.curr else {
            if c.mode == CpuMode::Idle && cpu != self.ctx_cpu {
                self.send_ipi(cpu, IrqKind::ReschedIpi);
            }
            return;
        };
        if self.eevdf()
            && self.tasks[tid as usize].policy == Policy::Normal
            && self.tasks[curr as usize].policy == Policy::Normal
        {
            if self.tasks[curr as usize].state == TaskState::Running {
                self.wakeup_preempt_eevdf(cpu, curr, tid, fork);
            }
            return;
        }
        self.update_curr(cpu);
        let (w, cu) = (&self.tasks[tid as usize], &self.tasks[curr as usize]);
        match (w.policy, cu.policy) {
            (Policy::Fifo(pw), Policy::Fifo(pc)) if pw > pc => {
                self.resched_curr(cpu, false, "wakeup_rt")
            }
            (Policy::Fifo(_), Policy::Normal) => self.resched_curr(cpu, false, "wakeup_rt"),
            (Policy::Normal, Policy::Normal)
                if cu.vruntime > w.vruntime.saturating_add(self.cfg.wakeup_gran_ns) =>
            {
                self.resched_curr(cpu, true, "wakeup_preempt")
            }
            _ => {}
        }
    }

    /// `wake_up_new_task()`.
    pub(crate) fn task_start(&mut self, tid: u32) {
        let t = &mut self.tasks[tid as usize];
        if t.state != TaskState::New {
            return;
        }
        if t.affinity.is_empty() {
            let why = "affinity names no CPU of this machine".to_string();
            self.do_exit(tid, TaskExit::SpawnFailed(why));
            return;
        }
        let t = &mut self.tasks[tid as usize];
        t.kcont = KCont::ExitToUser { ret: Ret::Start };
        let first = first_cpu(&t.affinity);
        t.cpu = first;
        let cpu = self.select_task_rq(tid);
        self.tasks[tid as usize].cpu = cpu;
        self.emit(cpu, Some(tid), LogKind::TaskStart);
        if self.eevdf() {
            if self.tasks[tid as usize].policy == Policy::Normal {
                self.place_eevdf(cpu, tid, true);
            }
        } else {
            self.place_entity(cpu, tid);
        }
        self.tasks[tid as usize].state = TaskState::Runnable;
        self.enqueue(cpu, tid);
        self.hrtick_update(cpu);
        self.check_preempt_flags(cpu, tid, true);
    }

    /// `sched_tick()`: charge the current task, expire its slice, and upgrade a pending
    /// lazy reschedule to a full one whenever lazy preemption is active (LAZY and RT).
    pub(crate) fn scheduler_tick(&mut self, cpu: u32) {
        let resched = self.update_curr(cpu);
        let Some(tid) = self.cpus[cpu as usize].curr else {
            return;
        };
        let t = &self.tasks[tid as usize];
        if t.tif & TIF_NEED_RESCHED_LAZY != 0 && self.cfg.preempt.has_lazy() {
            self.resched_curr(cpu, false, "tick_lazy_upgrade");
            return;
        }
        if self.eevdf() {
            // task_tick_fair() -> entity_tick() -> update_curr().
            if resched {
                self.resched_curr(cpu, true, "tick_slice");
            }
            return;
        }
        let ran = t.sum_exec - t.slice_start;
        if t.policy == Policy::Normal
            && ran >= self.cfg.base_slice_ns()
            && !self.cpus[cpu as usize].rq.is_empty()
        {
            self.tasks[tid as usize].slice_start = self.tasks[tid as usize].sum_exec;
            self.resched_curr(cpu, true, "tick_slice");
        }
    }

    /// Continue the periodic tick on `cpu` if it is busy.
    pub(crate) fn tick_rearm(&mut self, cpu: u32) {
        let now = self.now;
        let c = &mut self.cpus[cpu as usize];
        if c.tick_on && self.cfg.hz > 0 {
            let period = 1_000_000_000 / u64::from(self.cfg.hz);
            // Forward from the due time: a tick delivered late (interrupts were off) does
            // not shift the ones after it.
            let mut next = c.tick_next + period;
            if next <= now {
                next += (now - next) / period * period + period;
            }
            c.tick_next = next;
            let gen = c.tick_gen;
            self.push(
                next,
                Event::Irq {
                    cpu,
                    kind: IrqKind::Tick,
                    gen,
                    task: u32::MAX,
                },
            );
        }
    }

    /// The current task of `cpu` changes its affinity: if its CPU is no longer allowed it
    /// is moved (the stopper preempts it), with `ids_changed` set (spec §5 R4).
    pub(crate) fn migrate_current_if_needed(&mut self, cpu: u32, tid: u32) -> bool {
        let allowed = self.tasks[tid as usize].affinity;
        if allowed.contains(cpu as usize) {
            return false;
        }
        let dest = first_common(&allowed, &self.idle, self.cfg.cpus)
            .unwrap_or_else(|| first_cpu(&allowed));
        self.update_curr(cpu);
        // Switch away from this CPU as if blocked, then queue on the destination.
        self.tasks[tid as usize].state = TaskState::Sleeping;
        self.schedule(cpu, Prev::Migrate);
        self.set_task_cpu(tid, dest);
        self.place_entity(dest, tid);
        self.tasks[tid as usize].state = TaskState::Runnable;
        self.enqueue(dest, tid);
        self.hrtick_update(dest);
        self.check_preempt(dest, tid);
        true
    }

    /// `newidle_balance()`: an idle CPU pulls the first runnable task it may run from the
    /// busiest other run queue.
    fn newidle_balance(&mut self, cpu: u32) {
        let mut best: Option<(usize, u32)> = None;
        for (i, c) in self.cpus.iter().enumerate() {
            if i as u32 == cpu || c.rq.is_empty() {
                continue;
            }
            if best.is_none_or(|(n, _)| c.rq.len() > n) {
                best = Some((c.rq.len(), i as u32));
            }
        }
        let Some((_, src)) = best else { return };
        let cand: Vec<u32> = self.cpus[src as usize]
            .rq
            .fair
            .iter()
            .map(|&(_, t)| t)
            .collect();
        let Some(tid) = cand.into_iter().find(|&t| {
            let t = &self.tasks[t as usize];
            t.affinity.contains(cpu as usize) && !t.se.delayed
        }) else {
            return;
        };
        if self.eevdf() {
            self.detach_eevdf(src, tid);
        } else {
            self.dequeue(src, tid);
        }
        self.set_task_cpu(tid, cpu);
        self.place_entity(cpu, tid);
        self.enqueue(cpu, tid);
        // The idle CPU picks it up at once.
        self.schedule(cpu, Prev::Gone);
    }
}

/// Lowest-numbered CPU in both sets (word-wise, so 1024 CPUs cost 16 ANDs).
fn first_common(a: &CpuSet, b: &CpuSet, ncpus: usize) -> Option<u32> {
    for (i, (x, y)) in a.words().iter().zip(b.words()).enumerate() {
        let m = x & y;
        if m != 0 {
            let c = i * 64 + m.trailing_zeros() as usize;
            return (c < ncpus).then_some(c as u32);
        }
    }
    None
}

/// Lowest-numbered CPU of a set (0 if empty).
pub(crate) fn first_cpu(s: &CpuSet) -> u32 {
    let c = s.iter().next().unwrap_or(0);
    c as u32
}

/// `NICE_0_LOAD` (unscaled): the weight of a nice-0 task.
pub(crate) const NICE_0_WEIGHT: u64 = 1024;

/// `sched_prio_to_weight[]` (kernel/sched/core.c): weight per nice level -20..=19; each
/// step is ~1.25x, so one nice level is ~10% CPU share.
const PRIO_TO_WEIGHT: [u64; 40] = [
    88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904,
    3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87,
    70, 56, 45, 36, 29, 23, 18, 15,
];

/// The load weight of a nice value (clamped to -20..=19).
pub(crate) fn nice_weight(nice: i8) -> u64 {
    PRIO_TO_WEIGHT[(i32::from(nice).clamp(-20, 19) + 20) as usize]
}
