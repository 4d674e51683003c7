//! The scheduler's high-resolution tick: `hrtick_start()`, `hrtick()` and the
//! `hrtick_schedule_enter()`/`hrtick_schedule_exit()` pair of `kernel/sched/core.c`, and the
//! fair class's `hrtick_start_fair()` and `hrtick_update()` (`kernel/sched/fair.c`), read
//! against Linux 7.2.13.
//!
//! With `sched_feat(HRTICK)` (on wherever `CONFIG_HRTIMER_REARM_DEFERRED` is, which 7.2
//! selects on x86) a fair task picked while another fair task is queued gets a per-CPU
//! hrtimer at its virtual deadline, so its request ends there exactly rather than at the
//! next 1 ms tick, and the timer's `hrtick()` reschedules it with `resched_curr()`: the full
//! bit, under `preempt=lazy` too. For the slice extension it is one more reschedule a
//! critical section can be granted against, and one more hrtimer interrupt on the CPU,
//! which also ends sleeps whose soft expiry has passed. Nothing cancels it when its task
//! sleeps: it stays queued for the old deadline until the next pick with company re-arms
//! it, or an idle pick cancels it.
//!
//! Not modelled: `cpu_util_irq()`'s scaling (zero without `CONFIG_IRQ_TIME_ACCOUNTING`,
//! as in the kernel the fidelity runs boot) and the deadline class's `HRTICK_DL`.

use crate::event::{Event, IrqKind};
use crate::sim::Simulation;
use crate::task::{Policy, TaskState};

/// `hrtick_start()`: slices shorter than this are not worth a timer.
const HRTICK_MIN_NS: u64 = 10_000;
/// `hrtick_needs_rearm()`: a queued timer is moved only if its expiry changes by more.
const HRTICK_REARM_SLACK_NS: u64 = 5_000;

impl Simulation {
    fn hrtick_enabled_fair(&self) -> bool {
        self.cfg.hrtick && self.eevdf()
    }

    /// `rq->cfs.h_nr_queued`: fair tasks on `cpu`'s queue, the running one and
    /// delayed-dequeue sleepers included.
    fn h_nr_queued(&self, cpu: u32) -> usize {
        let c = &self.cpus[cpu as usize];
        let curr_fair = c.curr.is_some_and(|t| {
            let t = &self.tasks[t as usize];
            t.policy == Policy::Normal && t.state == TaskState::Running
        });
        c.rq.fair.len() + usize::from(curr_fair)
    }

    /// `hrtick_start_fair()`: the time to `tid`'s virtual deadline, in real time, if another
    /// fair task is queued; `Err(())` if the deadline has already passed.
    fn hrtick_delay_fair(&self, cpu: u32, tid: u32) -> Option<Result<u64, ()>> {
        if self.h_nr_queued(cpu) <= 1 {
            return None;
        }
        let t = &self.tasks[tid as usize];
        let vdelta = t.se.deadline.wrapping_sub(t.vruntime) as i64;
        if vdelta < 0 {
            return Some(Err(()));
        }
        let w = crate::sched::nice_weight(t.nice);
        let delta = (u128::from(vdelta as u64) * u128::from(w)
            / u128::from(crate::sched::NICE_0_WEIGHT)) as u64;
        Some(Ok(delta))
    }

    /// `hrtick_start()` → `hrtick_cond_restart()`: (re)arm for `now + delay` (at least
    /// `HRTICK_MIN_NS`) unless the queued expiry is within `HRTICK_REARM_SLACK_NS` of it.
    fn hrtick_start(&mut self, cpu: u32, delay: u64) {
        let at = self.now + delay.max(HRTICK_MIN_NS);
        let h = &mut self.cpus[cpu as usize].hrtick;
        if h.armed && h.expiry.abs_diff(at) <= HRTICK_REARM_SLACK_NS {
            return;
        }
        h.armed = true;
        h.expiry = at;
        h.gen = h.gen.wrapping_add(1);
        let gen = h.gen;
        self.push(
            at,
            Event::Irq {
                cpu,
                kind: IrqKind::Hrtick,
                gen,
                task: 0,
            },
        );
    }

    /// `schedule()` switched `cpu` to `next`: `set_next_task_fair()` asks for the timer
    /// at the new task's deadline (armed by `hrtick_schedule_exit()`); an idle pick cancels
    /// a queued one. A re-pick of the same task does neither.
    pub(crate) fn hrtick_switched(&mut self, cpu: u32, next: Option<u32>) {
        if !self.hrtick_enabled_fair() {
            return;
        }
        match next {
            None => self.cpus[cpu as usize].hrtick.armed = false,
            Some(n) if self.tasks[n as usize].policy == Policy::Normal => {
                // A passed deadline asks for nothing: `n` is not yet the donor here.
                if let Some(Ok(delay)) = self.hrtick_delay_fair(cpu, n) {
                    self.hrtick_start(cpu, delay);
                }
            }
            Some(_) => {}
        }
    }

    /// `hrtick_update()`, at the end of `enqueue_task_fair()`: a fair task was queued on
    /// `cpu`; if the running task is fair and no hrtick is queued, start one at its
    /// deadline now that it has company (or reschedule it if the deadline passed).
    pub(crate) fn hrtick_update(&mut self, cpu: u32) {
        if !self.hrtick_enabled_fair() || self.cpus[cpu as usize].hrtick.armed {
            return;
        }
        let Some(curr) = self.cpus[cpu as usize].curr else {
            return;
        };
        if self.tasks[curr as usize].policy != Policy::Normal
            || self.tasks[curr as usize].state != TaskState::Running
        {
            return;
        }
        // The enqueue's place_entity() has just charged the running task (update_curr()):
        // its vruntime is current.
        match self.hrtick_delay_fair(cpu, curr) {
            None => {}
            Some(Err(())) => self.resched_curr(cpu, false, "hrtick_start_fair"),
            Some(Ok(delay)) => self.hrtick_start(cpu, delay),
        }
    }

    /// `hrtick()` (hard irq): `task_tick_fair(queued = 1)` → `entity_tick()` charges the
    /// running task and reschedules it with the full bit, since a queued tick is timed to
    /// match the request.
    pub(crate) fn hrtick(&mut self, cpu: u32) {
        self.cpus[cpu as usize].hrtick.armed = false;
        let Some(curr) = self.cpus[cpu as usize].curr else {
            return;
        };
        if self.tasks[curr as usize].policy != Policy::Normal {
            return;
        }
        self.update_curr(cpu);
        self.resched_curr(cpu, false, "hrtick");
    }
}
