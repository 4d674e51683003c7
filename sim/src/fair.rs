//! EEVDF: the fair scheduling class of `kernel/sched/fair.c` (Linux 6.6 and later; read
//! against 7.2.13), selected by `SimConfig::fair_class`.
//!
//! What is modelled, each under the kernel's name:
//! - `avg_vruntime()`: V, the load-weighted average vruntime of the queue, kept as a sum
//!   of keys relative to `zero_vruntime` over the tree plus the running entity;
//! - `entity_eligible()`: an entity may be picked only while `v <= V` (lag >= 0);
//! - `update_deadline()`: a virtual deadline one slice ahead, renewed when reached, which
//!   is also when a running task's request is used up and it is rescheduled;
//! - `place_entity()`: a waking task keeps the lag it left with (`PLACE_LAG`, inflated so
//!   that it survives its own arrival), a new one starts half a slice from its deadline
//!   (`PLACE_DEADLINE_INITIAL`), a migrated one keeps a relative deadline
//!   (`PLACE_REL_DEADLINE`);
//! - `pick_eevdf()`: the eligible entity with the earliest deadline, except that the
//!   running one keeps the CPU while its slice is protected (`RUN_TO_PARITY`:
//!   `set_protect_slice()` when it is picked, `protect_slice()`);
//! - `update_curr()`: with others queued, a running task whose deadline passed or whose
//!   protection ended is rescheduled (`resched_curr_lazy()`);
//! - `wakeup_preempt_fair()`: a woken task preempts only if it is what `pick_eevdf()`
//!   would now choose; never a fork (`WF_FORK`);
//! - `dequeue_entity()` with `DELAY_DEQUEUE`/`DELAY_ZERO`: a task that sleeps while
//!   ineligible stays queued, competing, until it is picked (then it leaves) or woken
//!   (`requeue_delayed_entity()`), and leaves with its lag clamped to at most zero;
//! - `yield_task_fair()`: an eligible task forfeits the rest of its request.
//!
//! Not modelled: group scheduling, custom slices (`sched_attr.sched_runtime`, so
//! `PREEMPT_SHORT` never applies), `NEXT_BUDDY`/`PICK_BUDDY` (no buddies are nominated
//! without `NEXT_BUDDY`, off by default), load tracking, and the 64-bit kernel's scaled
//! load weights (the simulator uses `sched_prio_to_weight[]` unscaled: the same ratios).

use crate::sched::{nice_weight, NICE_0_WEIGHT};
use crate::sim::Simulation;
use crate::task::{Policy, TaskState};

/// The vruntime origin of every run queue: far from zero so that placing a task with
/// positive lag never wraps below it, and deadlines order correctly as plain `u64`s.
pub(crate) const ORIGIN: u64 = 1 << 62;

/// `struct sched_entity`'s EEVDF fields.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Entity {
    /// `deadline`: the virtual time its current request ends.
    pub deadline: u64,
    /// `vlag`: V - vruntime when it last left the queue (clamped).
    pub vlag: i64,
    /// `vprot`: the vruntime up to which it keeps the CPU (`RUN_TO_PARITY`).
    pub vprot: u64,
    /// `sched_delayed`: asleep but still queued.
    pub delayed: bool,
    /// `rel_deadline`: `deadline` is relative to `vruntime` (dequeued without sleeping).
    pub rel_deadline: bool,
}

/// `calc_delta_fair()`: real time to the entity's virtual time.
fn vdelta(delta: u64, weight: u64) -> u64 {
    if weight == NICE_0_WEIGHT {
        delta
    } else {
        (u128::from(delta) * u128::from(NICE_0_WEIGHT) / u128::from(weight)) as u64
    }
}

/// `vruntime_cmp(a, "<", b)`.
fn before(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) < 0
}

impl Simulation {
    /// Is the fair class EEVDF?
    pub(crate) fn eevdf(&self) -> bool {
        self.cfg.fair_class == crate::config::FairClass::Eevdf
    }

    fn weight(&self, tid: u32) -> u64 {
        nice_weight(self.tasks[tid as usize].nice)
    }

    /// `entity_key()`.
    fn key(&self, cpu: u32, v: u64) -> i64 {
        v.wrapping_sub(self.cpus[cpu as usize].rq.zero_vruntime) as i64
    }

    /// The slice every entity requests (no custom slices).
    fn slice(&self) -> u64 {
        self.cfg.base_slice_ns().max(1)
    }

    /// The running fair task of `cpu` while it is on the queue (`cfs_rq->curr` with
    /// `on_rq`): not in the tree, counted beside it.
    pub(crate) fn curr_entity(&self, cpu: u32) -> Option<u32> {
        let c = self.cpus[cpu as usize].curr?;
        let t = &self.tasks[c as usize];
        (t.policy == Policy::Normal && t.state == TaskState::Running).then_some(c)
    }

    /// Put a fair task in the tree (`__enqueue_entity()` + `sum_w_vruntime_add()`).
    pub(crate) fn tree_insert(&mut self, cpu: u32, tid: u32) {
        let key = self.key(cpu, self.tasks[tid as usize].vruntime);
        let w = self.weight(tid);
        let se = self.tasks[tid as usize].se;
        let rq = &mut self.cpus[cpu as usize].rq;
        rq.sum_w_vruntime += i128::from(key) * i128::from(w);
        rq.sum_weight += w;
        rq.delayed += u32::from(se.delayed);
        rq.fair.insert((se.deadline, tid));
    }

    /// Take a fair task out of the tree (`__dequeue_entity()` + `sum_w_vruntime_sub()`).
    pub(crate) fn tree_remove(&mut self, cpu: u32, tid: u32) {
        let key = self.key(cpu, self.tasks[tid as usize].vruntime);
        let w = self.weight(tid);
        let se = self.tasks[tid as usize].se;
        let rq = &mut self.cpus[cpu as usize].rq;
        if rq.fair.remove(&(se.deadline, tid)) {
            rq.sum_w_vruntime -= i128::from(key) * i128::from(w);
            rq.sum_weight -= w;
            rq.delayed -= u32::from(se.delayed);
        }
    }

    /// `avg_vruntime()`: V, with `curr` (not in the tree) counted; moves `zero_vruntime`
    /// to it as the kernel does.
    pub(crate) fn avg_vruntime(&mut self, cpu: u32, curr: Option<u32>) -> u64 {
        let cw = curr.map(|c| {
            (
                self.key(cpu, self.tasks[c as usize].vruntime),
                self.weight(c),
            )
        });
        let rq = &mut self.cpus[cpu as usize].rq;
        let mut runtime = rq.sum_w_vruntime;
        let mut weight = i128::from(rq.sum_weight);
        if let Some((k, w)) = cw {
            runtime += i128::from(k) * i128::from(w);
            weight += i128::from(w);
        }
        if weight > 0 {
            if runtime < 0 {
                runtime -= weight - 1;
            }
            let delta = (runtime / weight) as i64;
            rq.sum_w_vruntime -= i128::from(rq.sum_weight) * i128::from(delta);
            rq.zero_vruntime = rq.zero_vruntime.wrapping_add(delta as u64);
        }
        rq.zero_vruntime
    }

    /// `vruntime_eligible()`: `v <= V`, compared without the division.
    fn eligible(&self, cpu: u32, v: u64, curr: Option<u32>) -> bool {
        let rq = &self.cpus[cpu as usize].rq;
        let mut avg = rq.sum_w_vruntime;
        let mut load = i128::from(rq.sum_weight);
        if let Some(c) = curr {
            let w = i128::from(self.weight(c));
            avg += i128::from(self.key(cpu, self.tasks[c as usize].vruntime)) * w;
            load += w;
        }
        avg >= i128::from(self.key(cpu, v)) * load
    }

    /// `update_entity_lag()`: the lag `tid` leaves (or is requeued) with, clamped to two
    /// slices' worth (`entity_lag()`: the largest slice plus a tick), and for a delayed
    /// entity never more than it had nor above zero (`DELAY_ZERO`). Returns whether the
    /// lag differs from its position (the kernel's "vlag was modified").
    fn update_entity_lag(&mut self, cpu: u32, tid: u32, curr: Option<u32>) -> bool {
        let avr = self.avg_vruntime(cpu, curr);
        let tick = 1_000_000_000 / u64::from(self.cfg.hz.max(1));
        let limit = vdelta(self.slice() + tick, self.weight(tid)) as i64;
        let t = &mut self.tasks[tid as usize];
        let mut vlag = (avr.wrapping_sub(t.vruntime) as i64).clamp(-limit, limit);
        if t.se.delayed {
            vlag = vlag.max(t.se.vlag).min(0);
        }
        t.se.vlag = vlag;
        avr.wrapping_sub(vlag as u64) != t.vruntime
    }

    /// `place_entity()` on `cpu` for a task about to be queued there, with `curr` the
    /// running entity (if any) counted beside the tree.
    pub(crate) fn place_eevdf(&mut self, cpu: u32, tid: u32, initial: bool) {
        // `enqueue_entity()` charges the running task first.
        self.update_curr(cpu);
        let curr = self.curr_entity(cpu).filter(|&c| c != tid);
        let v_avg = self.avg_vruntime(cpu, curr);
        let w = self.weight(tid);
        let mut vslice = vdelta(self.slice(), w);
        let nr_queued = self.cpus[cpu as usize].rq.fair.len() + usize::from(curr.is_some());
        let mut lag: i64 = 0;
        let mut update_zero = false;
        let vlag = self.tasks[tid as usize].se.vlag;
        if nr_queued > 0 && vlag != 0 {
            // Inflate the lag so that it is still `vlag` once this entity has moved V.
            let mut load = self.cpus[cpu as usize].rq.sum_weight;
            if let Some(c) = curr {
                load += self.weight(c);
            }
            let l = i128::from(vlag) * i128::from(load + w) / i128::from(load.max(1));
            lag = l as i64;
            update_zero = w > load;
        }
        let v = v_avg.wrapping_sub(lag as u64);
        if update_zero {
            // update_zero_vruntime(cfs_rq, -lag)
            let rq = &mut self.cpus[cpu as usize].rq;
            rq.sum_w_vruntime -= i128::from(rq.sum_weight) * i128::from(-lag);
            rq.zero_vruntime = rq.zero_vruntime.wrapping_add((-lag) as u64);
        }
        let t = &mut self.tasks[tid as usize];
        t.vruntime = v;
        if t.se.rel_deadline {
            t.se.deadline = t.se.deadline.wrapping_add(v);
            t.se.rel_deadline = false;
            return;
        }
        if initial {
            vslice /= 2;
        }
        t.se.deadline = v.wrapping_add(vslice);
    }

    /// `update_curr()`'s EEVDF part for the running task `tid` after `delta` ns: advance
    /// its vruntime, renew its deadline when reached (`update_deadline()`), and say
    /// whether it should be rescheduled (others queued, and its request is used up or
    /// its protection over).
    pub(crate) fn update_curr_eevdf(&mut self, cpu: u32, tid: u32, delta: u64) -> bool {
        let w = self.weight(tid);
        let slice = self.slice();
        let t = &mut self.tasks[tid as usize];
        t.vruntime = t.vruntime.wrapping_add(vdelta(delta, w));
        let mut resched = false;
        if !before(t.vruntime, t.se.deadline) {
            t.se.deadline = t.vruntime.wrapping_add(vdelta(slice, w));
            resched = true;
            if t.state == TaskState::Running {
                self.avg_vruntime(cpu, Some(tid));
            }
        }
        let t = &self.tasks[tid as usize];
        t.state == TaskState::Running
            && !self.cpus[cpu as usize].rq.fair.is_empty()
            && (resched || !before(t.vruntime, t.se.vprot))
    }

    /// `set_protect_slice()` as `tid` is picked: with every slice equal, it keeps the
    /// CPU until its deadline.
    pub(crate) fn set_protect_slice(&mut self, tid: u32) {
        let se = &mut self.tasks[tid as usize].se;
        se.vprot = se.deadline;
    }

    /// `pick_eevdf()` on `cpu`. `curr` is the running entity, outside the tree; `cand` an
    /// entity that is current for the pick but already back in the tree (`schedule()`
    /// re-queues its previous task first). Returns a task id, possibly a delayed one.
    fn pick_eevdf(
        &self,
        cpu: u32,
        curr: Option<u32>,
        cand: Option<u32>,
        protect: bool,
    ) -> Option<u32> {
        let rq = &self.cpus[cpu as usize].rq;
        let nr_queued = rq.fair.len() + usize::from(curr.is_some());
        if nr_queued <= 1 {
            return curr.or_else(|| rq.fair.first().map(|&(_, t)| t));
        }
        let me = curr.or(cand).filter(|&c| {
            let t = &self.tasks[c as usize];
            !t.se.delayed && self.eligible(cpu, t.vruntime, curr)
        });
        if let Some(c) = me {
            let t = &self.tasks[c as usize];
            if protect && before(t.vruntime, t.se.vprot) {
                return Some(c);
            }
        }
        let best = rq
            .fair
            .iter()
            .map(|&(_, t)| t)
            .find(|&t| self.eligible(cpu, self.tasks[t as usize].vruntime, curr));
        match (best, me) {
            (Some(b), Some(c))
                if before(
                    self.tasks[c as usize].se.deadline,
                    self.tasks[b as usize].se.deadline,
                ) =>
            {
                Some(c)
            }
            (Some(b), _) => Some(b),
            (None, Some(c)) => Some(c),
            // V is a weighted average, so something is eligible; guard rounding anyway.
            (None, None) => curr.or_else(|| rq.fair.first().map(|&(_, t)| t)),
        }
    }

    /// `pick_next_entity()`: `pick_eevdf()`, dequeuing delayed sleepers it lands on
    /// (`dequeue_entities(DEQUEUE_DELAYED)`) until it finds a runnable task.
    pub(crate) fn pick_next_eevdf(
        &mut self,
        cpu: u32,
        curr: Option<u32>,
        cand: Option<u32>,
        protect: bool,
    ) -> Option<u32> {
        loop {
            let t = self.pick_eevdf(cpu, curr, cand, protect)?;
            if !self.tasks[t as usize].se.delayed {
                return Some(t);
            }
            self.finish_delayed_dequeue(cpu, t, curr);
        }
    }

    /// A delayed sleeper leaves the queue for good, its lag clamped to at most zero.
    fn finish_delayed_dequeue(&mut self, cpu: u32, tid: u32, curr: Option<u32>) {
        self.update_entity_lag(cpu, tid, curr);
        self.tree_remove(cpu, tid);
        self.tasks[tid as usize].se.delayed = false;
    }

    /// `dequeue_entity()` of `cpu`'s previous task `tid` in `schedule()` (it has just been
    /// charged; it is still counted as the running entity). A sleeper that is not eligible
    /// stays in the tree, delayed; others leave with their lag. `sleep` is false for a
    /// migration, whose deadline is kept relative to its vruntime.
    pub(crate) fn dequeue_prev_eevdf(&mut self, cpu: u32, tid: u32, sleep: bool, dead: bool) {
        let v = self.tasks[tid as usize].vruntime;
        if sleep && !dead && !self.eligible(cpu, v, Some(tid)) {
            self.update_entity_lag(cpu, tid, Some(tid));
            self.tasks[tid as usize].se.delayed = true;
            self.tree_insert(cpu, tid);
            return;
        }
        self.update_entity_lag(cpu, tid, Some(tid));
        if !sleep {
            let se = &mut self.tasks[tid as usize].se;
            se.deadline = se.deadline.wrapping_sub(v);
            se.rel_deadline = true;
        }
    }

    /// A queued (not running) task leaves `cpu` to be placed on another
    /// (`detach_task()`): lag and a relative deadline go with it.
    pub(crate) fn detach_eevdf(&mut self, cpu: u32, tid: u32) {
        self.tree_remove(cpu, tid);
        let curr = self.curr_entity(cpu);
        self.update_entity_lag(cpu, tid, curr);
        let v = self.tasks[tid as usize].vruntime;
        let se = &mut self.tasks[tid as usize].se;
        se.deadline = se.deadline.wrapping_sub(v);
        se.rel_deadline = true;
    }

    /// `ttwu_runnable()` → `requeue_delayed_entity()`: a delayed sleeper is woken where
    /// it still sits; re-placed only if its clamped lag moved it. Returns false if `tid`
    /// was not delayed.
    pub(crate) fn requeue_delayed(&mut self, tid: u32) -> bool {
        if !self.tasks[tid as usize].se.delayed {
            return false;
        }
        let cpu = self.tasks[tid as usize].cpu;
        self.update_curr(cpu);
        let curr = self.curr_entity(cpu);
        if self.update_entity_lag(cpu, tid, curr) {
            self.tree_remove(cpu, tid);
            self.tasks[tid as usize].se.delayed = false;
            self.place_eevdf(cpu, tid, false);
            self.tree_insert(cpu, tid);
        } else {
            self.cpus[cpu as usize].rq.delayed -= 1;
            self.tasks[tid as usize].se.delayed = false;
        }
        true
    }

    /// `wakeup_preempt_fair()` for `woken`, queued on `cpu` whose running fair task is
    /// `curr`.
    pub(crate) fn wakeup_preempt_eevdf(&mut self, cpu: u32, curr: u32, woken: u32, fork: bool) {
        if self.tasks[curr as usize].tif & crate::task::TIF_NEED_RESCHED != 0 {
            return;
        }
        if self.update_curr(cpu) {
            self.resched_curr(cpu, true, "wakeup_preempt");
        }
        if fork || self.tasks[woken as usize].se.delayed {
            return;
        }
        let running = self.curr_entity(cpu);
        if self.pick_next_eevdf(cpu, running, None, true) == Some(woken) {
            self.resched_curr(cpu, true, "wakeup_preempt");
        }
    }

    /// `yield_task_fair()`: an eligible task forfeits the rest of its request.
    pub(crate) fn yield_eevdf(&mut self, cpu: u32, tid: u32) {
        if self.cpus[cpu as usize].rq.is_empty() {
            return;
        }
        let v = self.tasks[tid as usize].vruntime;
        if self.eligible(cpu, v, Some(tid)) {
            let w = self.weight(tid);
            let slice = self.slice();
            let t = &mut self.tasks[tid as usize];
            t.vruntime = t.se.deadline;
            t.se.deadline = t.vruntime.wrapping_add(vdelta(slice, w));
        }
    }
}
