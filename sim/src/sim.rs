//! The simulation: machine state, the one event loop, and user-side operations.
//!
//! The loop pops the earliest event, sets the clock to its time and dispatches it. User
//! code runs inside `UserThread` coroutines; a user operation stamped before the next
//! queued event is performed at once (no queue round trip), otherwise it becomes a
//! `UserStep` event at its time, which an interrupt arriving first makes stale.

use std::collections::{BTreeMap, VecDeque};

use corosensei::stack::DefaultStack;
use rand_core::SeedableRng;
use rand_pcg::Pcg64Mcg;
use rseq_abi::layout::offset;
use rseq_abi::{CpuSet, CtrlWord, Errno, SharedWord};

use crate::choice::{Chooser, Draw, InjectMenu, InjectPoint, Injection, PointOp, Seeded};
use crate::config::{ConfigError, SimConfig, TieBreak};
use crate::coro::{
    Costs, Finished, Op, Resume, SeqOp, SharedOp, SimProgram, Step, ThreadInfo, UserThread, Value,
};
use crate::cpu::{Cpu, CpuMode, SliceStats};
use crate::event::{Event, IrqKind};
use crate::irq::IrqSource;
use crate::marks::PendingMarks;
use crate::queue::EventQueue;
use crate::task::*;
use crate::trace::{LogKind, LogRecord};

/// Base address of the simulated rseq areas; task `i`'s area is at `BASE + i * 4096`.
pub const RSEQ_AREA_BASE: u64 = 0x7f00_0000_0000;

/// How a task is created.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    /// Name for reports.
    pub name: String,
    /// Allowed CPUs (`None` = all).
    pub affinity: Option<CpuSet>,
    /// Scheduling class.
    pub policy: Policy,
    /// Nice value (-20..=19) of a fair-class task; lower runs longer.
    pub nice: i8,
    /// When it starts, ns.
    pub start_ns: u64,
    /// Length its program registers its rseq area with (`None` = 32, or 64 for the
    /// post-merge revision, whose extension needs more than 32).
    pub rseq_len: Option<u32>,
    /// Process it belongs to: `None` = a new process; `Some(task)` = a thread of the same
    /// process as that task (shares its mm).
    pub thread_of: Option<u32>,
}

impl TaskSpec {
    /// A task with defaults: all CPUs, fair class, starting at 0, its own process.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            affinity: None,
            policy: Policy::Normal,
            nice: 0,
            start_ns: 0,
            rseq_len: None,
            thread_of: None,
        }
    }
}

/// Stacks of finished user threads, handed from one simulation to the next: explorers run
/// many tiny simulations, and a fresh stack costs an `mmap`, an `mprotect` and page faults.
#[derive(Default)]
pub struct StackPool(Vec<DefaultStack>);

impl StackPool {
    /// Stacks in the pool.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Is the pool empty?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a simulation could not be built or continued.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
}

/// A deterministic simulation of CPUs running user programs on the modelled kernel.
pub struct Simulation {
    pub(crate) cfg: SimConfig,
    pub(crate) now: u64,
    pub(crate) queue: EventQueue,
    pub(crate) chooser: Box<dyn Chooser>,
    /// Any task watched by the chooser (checked before building an `InjectPoint`).
    pub(crate) watching: bool,
    /// Injection points offered so far.
    pub(crate) points: u32,
    pub(crate) cpus: Vec<Cpu>,
    pub(crate) tasks: Vec<Task>,
    pub(crate) threads: Vec<Option<UserThread>>,
    pub(crate) shared: BTreeMap<u32, u32>,
    pub(crate) futex: BTreeMap<u32, VecDeque<u32>>,
    pub(crate) membarrier_registered: BTreeMap<u32, bool>,
    pub(crate) log: Vec<LogRecord>,
    /// User markers waiting for the clock to reach them (log on only).
    pub(crate) marks: PendingMarks,
    pub(crate) stack_pool: Vec<DefaultStack>,
    pub(crate) sources: Vec<IrqSource>,
    pub(crate) slice_ext_nsec: u32,
    pub(crate) idle: CpuSet,
    pub(crate) events: u64,
    pub(crate) live_threads: usize,
    pub(crate) next_mm: u32,
    /// The CPU whose context the engine is executing (for "is this IPI remote?").
    pub(crate) ctx_cpu: u32,
    /// End of the current `run_until` (user code never runs past it).
    pub(crate) limit: u64,
    /// An observer of the kernel model's decisions (`observe.rs`), taken out at each
    /// decision site while it watches.
    pub(crate) observer: Option<Box<dyn crate::observe::Observer>>,
}

impl Simulation {
    /// Build a simulation; fails on an invalid configuration.
    pub fn new(cfg: SimConfig) -> Result<Self, SimError> {
        cfg.validate()?;
        let cpus: Vec<Cpu> = (0..cfg.cpus as u32).map(Cpu::new).collect();
        let idle = CpuSet::first_n(cfg.cpus);
        let slice_ext_nsec = cfg.effective_slice_ext_nsec();
        // Short runs (explorers make thousands) should not regrow the log from empty.
        let log = Vec::with_capacity(if cfg.log { 256 } else { 0 });
        Ok(Self {
            chooser: Box::new(Seeded(Pcg64Mcg::seed_from_u64(cfg.seed))),
            watching: false,
            points: 0,
            cfg,
            now: 0,
            queue: EventQueue::new(cpus.len()),
            cpus,
            tasks: Vec::new(),
            threads: Vec::new(),
            shared: BTreeMap::new(),
            futex: BTreeMap::new(),
            membarrier_registered: BTreeMap::new(),
            log,
            marks: PendingMarks::default(),
            stack_pool: Vec::new(),
            sources: Vec::new(),
            slice_ext_nsec,
            idle,
            events: 0,
            live_threads: 0,
            observer: None,
            next_mm: 0,
            ctx_cpu: u32::MAX,
            limit: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Current simulated time, ns.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Events processed so far (queue pops plus user operations performed in place).
    pub fn events_processed(&self) -> u64 {
        self.events
    }

    /// The tasks.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The CPUs.
    pub fn cpus(&self) -> &[Cpu] {
        &self.cpus
    }

    /// The event log.
    pub fn log(&self) -> &[LogRecord] {
        &self.log
    }

    /// Stable hash of the event log.
    pub fn log_hash(&self) -> u64 {
        crate::trace::log_hash(&self.log)
    }

    /// Slice counters summed over all CPUs.
    pub fn stats(&self) -> SliceStats {
        let mut s = SliceStats::default();
        for c in &self.cpus {
            s.add(&c.stats);
        }
        s
    }

    /// The rseq counters of `rseq/stats` (`exit` .. `fixup`), summed over the CPUs.
    pub fn rseq_stats(&self) -> crate::cpu::RseqStats {
        let mut s = crate::cpu::RseqStats::default();
        for c in &self.cpus {
            s.add(&c.rseq_stats);
        }
        s
    }

    /// The slice lines of debugfs `rseq/stats`.
    pub fn stats_debugfs(&self) -> String {
        self.stats().debugfs()
    }

    /// Current value of a shared word.
    pub fn shared_word(&self, w: SharedWord) -> u32 {
        self.shared.get(&w.0).copied().unwrap_or(0)
    }

    /// Set a shared word before (or between) runs.
    pub fn set_shared_word(&mut self, w: SharedWord, val: u32) {
        self.shared.insert(w.0, val);
    }

    /// The global `slice_ext_nsec` in force.
    pub fn slice_ext_nsec(&self) -> u32 {
        self.slice_ext_nsec
    }

    /// Write debugfs `rseq/slice_ext_nsec` (V1: the sysctl): `EINVAL` if not a number,
    /// `ERANGE` outside the revision's range; takes effect for later grants.
    pub fn write_slice_ext_nsec(&mut self, text: &str) -> Result<(), Errno> {
        self.slice_ext_nsec = crate::config::parse_slice_ext_nsec(self.cfg.revision, text)?;
        Ok(())
    }

    /// Add a task running `program`; it starts at `spec.start_ns`. Returns its id.
    pub fn spawn(&mut self, spec: TaskSpec, program: SimProgram) -> u32 {
        let mm = match spec.thread_of.and_then(|t| self.tasks.get(t as usize)) {
            Some(t) => t.mm,
            None => self.new_mm(),
        };
        let id = self.new_task(spec.name, mm, program);
        let ncpus = self.cfg.cpus;
        let t = &mut self.tasks[id as usize];
        if let Some(mut a) = spec.affinity {
            // CPUs the machine does not have are dropped; an empty mask fails the task at
            // its start (never the engine).
            for c in ncpus..CpuSet::CAPACITY {
                a.remove(c);
            }
            t.affinity = a;
        }
        t.policy = spec.policy;
        t.nice = spec.nice.clamp(-20, 19);
        t.start_ns = spec.start_ns;
        if let Some(len) = spec.rseq_len {
            t.rseq_len = len;
        }
        self.push(spec.start_ns, Event::TaskStart { task: id });
        id
    }

    pub(crate) fn new_mm(&mut self) -> u32 {
        self.next_mm += 1;
        self.next_mm
    }

    pub(crate) fn new_task(&mut self, name: String, mm: u32, program: SimProgram) -> u32 {
        let id = self.tasks.len() as u32;
        let default_len = match self.cfg.revision {
            rseq_abi::Revision::PostMerge => 64,
            _ => 32,
        };
        self.tasks.push(Task {
            id,
            name,
            mm,
            state: TaskState::New,
            cpu: 0,
            affinity: CpuSet::first_n(self.cfg.cpus),
            policy: Policy::Normal,
            nice: 0,
            vruntime: 0,
            sum_exec: 0,
            exec_start: 0,
            slice_start: 0,
            se: Default::default(),
            tif: 0,
            syscall_work_slice: false,
            in_syscall: false,
            rseq: RseqTask::default(),
            mem: UserMem {
                area: RSEQ_AREA_BASE + u64::from(id) * 4096,
                bytes: [0; crate::coro::RSEQ_AREA_SIZE],
                mapped: true,
            },
            rseq_len: default_len,
            sig_pending: Vec::new(),
            exit: None,
            step: None,
            ip: crate::rseq::USER_IP,
            seq_abort: false,
            counters: Vec::new(),
            user_steps: 0,
            instant_at: u64::MAX,
            instant_ops: 0,
            kcont: KCont::None,
            pending_op: None,
            pending_at: 0,
            pending_remaining: 0,
            sleep_gen: 0,
            program: Some(program),
            start_ns: 0,
            watched: false,
            migrate_to: None,
        });
        self.threads.push(None);
        id
    }

    /// Add a recurring or one-shot interrupt source.
    pub fn add_irq_source(&mut self, src: IrqSource) {
        let idx = self.sources.len() as u32;
        let first = src.first_time(self.chooser.as_mut());
        self.sources.push(src);
        if let Some(t) = first {
            self.push(t, Event::Source { source: idx });
        }
    }

    /// Inject one interrupt of `kind` on `cpu` at `at` (a device interrupt, an exception
    /// from user mode, a membarrier IPI, a reschedule IPI).
    pub fn inject_irq(&mut self, at: u64, cpu: u32, kind: IrqKind) {
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

    /// Replace the source of every nondeterministic decision (see [`crate::choice`]). Call
    /// before running; the default is the seeded generator of the configuration.
    pub fn set_chooser(&mut self, chooser: Box<dyn Chooser>) {
        self.chooser = chooser;
    }

    /// The chooser, if it is a `T` (to read what an explorer recorded).
    pub fn chooser_mut<T: Chooser + 'static>(&mut self) -> Option<&mut T> {
        let any: &mut dyn std::any::Any = self.chooser.as_mut();
        any.downcast_mut::<T>()
    }

    /// Give this simulation stacks to run its user threads on (before running it).
    pub fn give_stacks(&mut self, pool: StackPool) {
        self.stack_pool.extend(pool.0);
    }

    /// End the simulation: tear down every user thread still alive (unwinding its program)
    /// and keep all the stacks for the next simulation.
    pub fn into_stacks(mut self) -> StackPool {
        for tid in 0..self.threads.len() as u32 {
            self.release_thread(tid);
        }
        StackPool(std::mem::take(&mut self.stack_pool))
    }

    /// Offer `task`'s user operations to the chooser as injection points.
    pub fn watch(&mut self, task: u32) {
        if let Some(t) = self.tasks.get_mut(task as usize) {
            t.watched = true;
            self.watching = true;
        }
    }

    /// Injection points offered so far.
    pub fn points_offered(&self) -> u32 {
        self.points
    }

    /// Send signal `signo` to `task` at `at` from outside the simulated program.
    pub fn send_signal(&mut self, at: u64, task: u32, signo: i32) {
        self.push(at, Event::SendSignal { task, signo });
    }

    /// Run until simulated time `end` (events at `end` and later stay queued).
    pub fn run_until(&mut self, end: u64) {
        self.run_until_cond(end, |_| false);
    }

    /// Run until `end` or until `stop` returns true (checked after every event). Returns
    /// whether `stop` fired.
    pub fn run_until_cond(&mut self, end: u64, mut stop: impl FnMut(&Simulation) -> bool) -> bool {
        self.limit = end;
        while let Some((time, ev)) = self.queue.pop_before(end) {
            self.now = time;
            self.events += 1;
            self.dispatch(ev);
            // `stop` may read the log: the markers the clock has reached are in it.
            self.flush_marks();
            if stop(self) {
                return true;
            }
        }
        self.now = self.now.max(end);
        self.flush_marks();
        false
    }

    /// Run until `end`, or until about `events` more events have been processed (the
    /// count may be passed by the user operations of the last event). Returns whether
    /// `end` was reached. Runs cut this way are the run in one go: callers use it to drain
    /// the log ([`Simulation::drain_log`]) and check budgets between chunks.
    pub fn run_chunk(&mut self, end: u64, events: u64) -> bool {
        self.limit = end;
        let target = self.events.saturating_add(events);
        while self.events < target {
            let Some((time, ev)) = self.queue.pop_before(end) else {
                self.now = self.now.max(end);
                self.flush_marks();
                return true;
            };
            self.now = time;
            self.events += 1;
            self.dispatch(ev);
        }
        self.flush_marks();
        false
    }

    /// Take the log records so far, leaving the log empty (markers the clock has not
    /// reached stay pending): a long run streams its log to its consumers this way and
    /// keeps none of it.
    pub fn drain_log(&mut self) -> Vec<LogRecord> {
        let cap = self.log.capacity();
        std::mem::replace(&mut self.log, Vec::with_capacity(cap.min(1 << 16)))
    }

    /// Process exactly one queued event before `end`; false if there was none.
    pub fn step(&mut self, end: u64) -> bool {
        self.limit = end;
        match self.queue.pop_before(end) {
            Some((time, ev)) => {
                self.now = time;
                self.events += 1;
                self.dispatch(ev);
                self.flush_marks();
                true
            }
            None => false,
        }
    }

    /// Number of events waiting in the queue.
    pub fn pending_events(&self) -> usize {
        self.queue.len()
    }

    /// Time of the next queued event, if any.
    pub fn next_event_time(&self) -> Option<u64> {
        self.queue.peek_time()
    }

    /// Have all tasks exited?
    pub fn all_exited(&self) -> bool {
        self.tasks.iter().all(|t| !t.alive())
    }

    // ---- internals --------------------------------------------------------------------

    pub(crate) fn push(&mut self, time: u64, ev: Event) {
        let key = match self.cfg.tie_break {
            TieBreak::Fifo => 0,
            TieBreak::Seeded => self.chooser.draw(Draw::TieKey),
        };
        self.queue.push(time, key, ev);
    }

    pub(crate) fn emit(&mut self, cpu: u32, task: Option<u32>, kind: LogKind) {
        if self.cfg.log {
            self.flush_marks();
            tracing::trace!(time = self.now, cpu, task, "{kind}");
            self.log.push(LogRecord {
                time: self.now,
                cpu,
                task,
                kind,
            });
        }
    }

    /// Log the user markers the clock has reached (at or before now), before any record of
    /// a later decision.
    pub(crate) fn flush_marks(&mut self) {
        while let Some(r) = self.marks.pop_due(self.now) {
            tracing::trace!(time = r.time, cpu = r.cpu, task = r.task, "{}", r.kind);
            self.log.push(r);
        }
    }

    /// User accesses are recorded only when the log is kept at all: building a record the
    /// log would drop costs the hot loop for nothing.
    fn logs_user_accesses(&self) -> bool {
        self.cfg.log && self.cfg.log_user_accesses
    }

    fn horizon(&self) -> u64 {
        self.queue
            .peek_time()
            .map_or(self.limit, |t| t.min(self.limit))
    }

    /// How far `cpu`'s user code may advance its clock on its own (clock reads, burns):
    /// up to the next event aimed at this CPU or at none, and no further than the global
    /// next event plus the IPI latency: every effect another CPU can have on a CPU running
    /// user code arrives as an IPI, so it cannot land earlier. Operations the engine must
    /// order (memory, syscalls) still use the global horizon, `global`.
    fn local_horizon(&self, cpu: u32, global: u64) -> u64 {
        let reach = global.saturating_add(self.cfg.ipi_latency_ns);
        self.queue
            .peek_time_for(cpu)
            .map_or(reach, |t| t.min(reach))
            .min(self.limit)
    }

    fn dispatch(&mut self, ev: Event) {
        match ev {
            Event::UserStep { cpu, gen } => {
                if self.cpus[cpu as usize].gen == gen {
                    self.ctx_cpu = cpu;
                    let tid = self.cpus[cpu as usize]
                        .curr
                        .expect("user step without a task");
                    let op = self.tasks[tid as usize]
                        .pending_op
                        .take()
                        .expect("user step without op");
                    self.exec_op(cpu, tid, op);
                }
            }
            Event::KernelStep { cpu, gen } => {
                if self.cpus[cpu as usize].gen == gen {
                    self.ctx_cpu = cpu;
                    self.kernel_continue(cpu);
                } else if !self.cpus[cpu as usize].pending_irqs.is_empty()
                    && self.now >= self.cpus[cpu as usize].irqs_off_until
                {
                    // The interrupted exit will not run (its task left the CPU).
                    self.ctx_cpu = cpu;
                    self.requeue_pending_irqs(cpu);
                }
            }
            Event::Irq {
                cpu,
                kind,
                gen,
                task,
            } => {
                self.ctx_cpu = cpu;
                self.irq(cpu, kind, gen, task);
            }
            Event::VcpuStall { cpu, ns } => {
                self.ctx_cpu = cpu;
                self.vcpu_stall(cpu, ns);
            }
            Event::TaskStart { task } => {
                self.ctx_cpu = u32::MAX;
                self.task_start(task);
            }
            Event::Source { source } => self.source_fire(source),
            Event::SendSignal { task, signo } => {
                self.ctx_cpu = u32::MAX;
                self.send_signal_now(task, signo);
            }
            Event::Inject {
                cpu,
                task,
                what,
                point,
            } => self.land_injection(cpu, task, what, point),
        }
    }

    /// Run `tid`'s user code (on `cpu`, in user mode) from `val` until it needs the engine
    /// at a later time, enters the kernel, or ends.
    pub(crate) fn run_user(&mut self, cpu: u32, tid: u32, first: bool, mut val: Value) {
        loop {
            let horizon = self.horizon();
            let resume = Resume {
                now: self.now,
                horizon: self.local_horizon(cpu, horizon),
                val,
            };
            let mut step = {
                if first && self.threads[tid as usize].is_none() && !self.create_thread(tid) {
                    return;
                }
                let th = self.threads[tid as usize]
                    .as_mut()
                    .expect("task without thread");
                th.resume(resume)
            };
            let marks = match &mut step {
                Step::Request(req) => std::mem::take(&mut req.marks),
                Step::Finished(_, marks) => std::mem::take(marks),
            };
            if !marks.is_empty() {
                self.marks.add(cpu, tid, marks);
            }
            match step {
                Step::Finished(Finished::Returned(counters), _) => {
                    self.tasks[tid as usize].counters = counters;
                    self.user_exit(cpu, tid, TaskExit::Exited);
                    return;
                }
                Step::Finished(Finished::Panicked(msg), _) => {
                    self.user_exit(cpu, tid, TaskExit::Panicked(msg));
                    return;
                }
                Step::Request(req) => {
                    let t = &mut self.tasks[tid as usize];
                    t.user_steps += 1;
                    if t.user_steps > self.cfg.max_user_steps {
                        let n = self.cfg.max_user_steps;
                        self.now = req.at.max(self.now);
                        self.kill_now(cpu, tid, TaskExit::StepBudget(n));
                        return;
                    }
                    if self.watching && t.watched {
                        if let Some(p) = point_op(&req.op) {
                            if let Some((what, point)) = self.offer_point(cpu, tid, req.at, p) {
                                // The injection lands at the operation's time, before it: it
                                // is queued first, with the lowest key.
                                let t = &mut self.tasks[tid as usize];
                                t.pending_op = Some(req.op);
                                t.pending_at = req.at;
                                let inject = Event::Inject {
                                    cpu,
                                    task: tid,
                                    what,
                                    point,
                                };
                                self.queue.push(req.at, 0, inject);
                                let gen = self.cpus[cpu as usize].gen;
                                self.push(req.at, Event::UserStep { cpu, gen });
                                return;
                            }
                        }
                    }
                    let t = &mut self.tasks[tid as usize];
                    if req.at < horizon {
                        self.now = req.at;
                        self.events += 1;
                        match self.exec_op_inline(cpu, tid, req.op) {
                            Some(v) => {
                                val = v;
                                continue;
                            }
                            None => return,
                        }
                    }
                    t.pending_op = Some(req.op);
                    t.pending_at = req.at;
                    let gen = self.cpus[cpu as usize].gen;
                    self.push(req.at, Event::UserStep { cpu, gen });
                    return;
                }
            }
        }
    }

    /// Offer injection point `self.points` (before `tid`'s operation `op` at `at`) to the
    /// chooser. Returns what to inject and the point's index.
    fn offer_point(
        &mut self,
        cpu: u32,
        tid: u32,
        at: u64,
        op: PointOp,
    ) -> Option<(Injection, u32)> {
        let (menu, pruned) = self.inject_menu(cpu, tid);
        let index = self.points;
        self.points += 1;
        let point = InjectPoint {
            index,
            task: tid,
            cpu,
            time: at,
            op,
            menu,
            pruned,
        };
        let what = self.chooser.inject(&point)?;
        menu.contains(what).then_some((what, index))
    }

    /// The kinds that can land on `tid` (current on `cpu`, in user mode) with distinct
    /// effects, and those left off because here they act like another kind or like nothing.
    fn inject_menu(&self, cpu: u32, tid: u32) -> (InjectMenu, InjectMenu) {
        let t = &self.tasks[tid as usize];
        let mut menu = InjectMenu::default().with(Injection::Irq);
        let mut pruned = InjectMenu::default();
        let mut offer = |k: Injection, distinct: bool| {
            if distinct {
                menu = menu.with(k);
            } else {
                pruned = pruned.with(k);
            }
        };
        // resched_curr() returns early when the bit is already set: a plain interrupt.
        let need = t.tif & TIF_NEED_RESCHED != 0;
        offer(Injection::IrqResched, !need);
        if self.cfg.preempt.has_lazy() {
            offer(
                Injection::IrqReschedLazy,
                t.tif & (TIF_NEED_RESCHED | TIF_NEED_RESCHED_LAZY) == 0,
            );
        }
        if self.cfg.cpus > 1 {
            // With the bit set, the remote resched_curr() does nothing at all.
            offer(Injection::RemoteResched, !need);
        }
        let st = &self.cpus[cpu as usize].slice_timer;
        if st.armed {
            // rseq_slice_expired() acts only on a granted cookie task.
            offer(
                Injection::SliceTimer,
                st.cookie == Some(tid) && t.rseq.granted,
            );
        }
        // ipi_rseq() is the switch hook: nothing new without an area or with it pending.
        let switch_pending = t.tif & TIF_RSEQ != 0 && t.rseq.sched_switch;
        offer(
            Injection::MembarrierIpi,
            t.rseq.reg.is_some() && !switch_pending,
        );
        offer(Injection::Signal, true);
        if self.migration_target(cpu, tid).is_some() {
            offer(Injection::Migrate, t.migrate_to.is_none());
        }
        (menu, pruned)
    }

    /// An injection lands on `tid` (on `cpu`).
    fn land_injection(&mut self, cpu: u32, tid: u32, what: Injection, point: u32) {
        self.emit(cpu, Some(tid), LogKind::Injected { what, point });
        let device = |r| IrqKind::Device(r);
        match what {
            Injection::Irq => self.inject_irq_now(cpu, device(crate::event::ReschedReq::None)),
            Injection::IrqResched => {
                self.inject_irq_now(cpu, device(crate::event::ReschedReq::Full))
            }
            Injection::IrqReschedLazy => {
                self.inject_irq_now(cpu, device(crate::event::ReschedReq::Lazy))
            }
            Injection::MembarrierIpi => self.inject_irq_now(cpu, IrqKind::MembarrierIpi),
            Injection::RemoteResched => {
                self.ctx_cpu = u32::MAX;
                self.resched_curr(cpu, false, "remote_cpu");
            }
            Injection::SliceTimer => {
                let st = self.cpus[cpu as usize].slice_timer;
                if st.armed {
                    self.ctx_cpu = cpu;
                    let cookie = st.cookie.unwrap_or(u32::MAX);
                    self.irq(cpu, IrqKind::SliceTimer, st.gen, cookie);
                }
            }
            Injection::Signal => {
                self.ctx_cpu = u32::MAX;
                self.send_signal_now(tid, SIGUSR1);
            }
            Injection::Migrate => {
                if let Some(dest) = self.migration_target(cpu, tid) {
                    self.tasks[tid as usize].migrate_to = Some(dest);
                    self.ctx_cpu = u32::MAX;
                    self.resched_curr(cpu, false, "migration");
                }
            }
        }
    }

    /// Where a migration would move `tid` from `cpu`: the first other CPU it may run on.
    fn migration_target(&self, cpu: u32, tid: u32) -> Option<u32> {
        let allowed = &self.tasks[tid as usize].affinity;
        (0..self.cfg.cpus as u32).find(|&c| c != cpu && allowed.contains(c as usize))
    }

    fn inject_irq_now(&mut self, cpu: u32, kind: IrqKind) {
        self.ctx_cpu = cpu;
        self.irq(cpu, kind, 0, u32::MAX);
    }

    fn create_thread(&mut self, tid: u32) -> bool {
        let t = &mut self.tasks[tid as usize];
        let info = ThreadInfo {
            task: tid,
            revision: self.cfg.revision,
            rseq_addr: t.mem.area,
            rseq_len: t.rseq_len,
            costs: Costs {
                clock_read_ns: self.cfg.clock_read_ns,
                mem_access_ns: self.cfg.mem_access_ns,
                shared_access_ns: self.cfg.shared_access_ns,
            },
            log_marks: self.cfg.log,
        };
        let program = t.program.take().expect("thread already created");
        if self.live_threads >= self.cfg.max_threads {
            // Each stack costs two memory mappings; running out of them would abort the
            // whole process inside the allocator, so the limit is a deterministic knob.
            let cpu = self.tasks[tid as usize].cpu;
            let why = format!(
                "max_threads = {} live coroutine stacks reached",
                self.cfg.max_threads
            );
            self.kill_now(cpu, tid, TaskExit::SpawnFailed(why));
            return false;
        }
        match UserThread::new(info, program, &mut self.stack_pool, self.cfg.stack_size) {
            Ok(th) => {
                self.threads[tid as usize] = Some(th);
                self.live_threads += 1;
                true
            }
            Err(e) => {
                let cpu = self.tasks[tid as usize].cpu;
                self.kill_now(cpu, tid, TaskExit::SpawnFailed(e.to_string()));
                false
            }
        }
    }

    /// A user step event fired: perform the pending op and continue the program.
    fn exec_op(&mut self, cpu: u32, tid: u32, op: Op) {
        if let Some(v) = self.exec_op_inline(cpu, tid, op) {
            self.run_user(cpu, tid, false, v);
        }
    }

    /// Perform a user operation at `self.now`. Returns the value to resume with, or `None`
    /// when the task entered the kernel (the engine resumes it later).
    fn exec_op_inline(&mut self, cpu: u32, tid: u32, op: Op) -> Option<Value> {
        let endian = self.cfg.endian;
        match op {
            Op::Wait => Some(Value::None),
            Op::Seq { at, after, op } => {
                self.tasks[tid as usize].ip = crate::coro::seq_ip(at);
                let v = match op {
                    SeqOp::Nop => Value::None,
                    SeqOp::LoadArea(off) => {
                        self.exec_op_inline(cpu, tid, Op::Load { off, size: 4 })?
                    }
                    SeqOp::Shared(s) => self.shared_op(s),
                };
                self.tasks[tid as usize].ip = crate::coro::seq_ip(after);
                Some(v)
            }
            Op::Still(n) => {
                if let Some(exit) = self.instant_budget(tid, u64::from(n), &op) {
                    self.kill_now(cpu, tid, exit);
                    return None;
                }
                Some(Value::None)
            }
            Op::Load { off, size } => {
                if self.cfg.mem_access_ns == 0 {
                    if let Some(exit) = self.instant_budget(tid, 1, &op) {
                        self.kill_now(cpu, tid, exit);
                        return None;
                    }
                }
                let t = &self.tasks[tid as usize];
                let o = off as usize;
                let v = match size {
                    1 => u64::from(t.mem.bytes[o]),
                    4 => u64::from(endian.u32_from(t.mem.bytes[o..o + 4].try_into().unwrap())),
                    8 => {
                        let b: [u8; 8] = t.mem.bytes[o..o + 8].try_into().unwrap();
                        match endian {
                            rseq_abi::Endian::Little => u64::from_le_bytes(b),
                            rseq_abi::Endian::Big => u64::from_be_bytes(b),
                        }
                    }
                    _ => unreachable!(),
                };
                if self.logs_user_accesses() && is_ctrl(o) {
                    self.emit(cpu, Some(tid), LogKind::UserLoad { off, val: v as u32 });
                }
                Some(Value::U64(v))
            }
            Op::Store { off, size, val } => {
                if self.cfg.mem_access_ns == 0 {
                    if let Some(exit) = self.instant_budget(tid, 1, &op) {
                        self.kill_now(cpu, tid, exit);
                        return None;
                    }
                }
                let t = &mut self.tasks[tid as usize];
                let o = off as usize;
                match size {
                    1 => t.mem.bytes[o] = val as u8,
                    4 => t.mem.bytes[o..o + 4].copy_from_slice(&endian.u32_to(val as u32)),
                    8 => {
                        let (lo, hi) = (val as u32, (val >> 32) as u32);
                        let (a, b) = match endian {
                            rseq_abi::Endian::Little => (lo, hi),
                            rseq_abi::Endian::Big => (hi, lo),
                        };
                        t.mem.bytes[o..o + 4].copy_from_slice(&endian.u32_to(a));
                        t.mem.bytes[o + 4..o + 8].copy_from_slice(&endian.u32_to(b));
                    }
                    _ => unreachable!(),
                }
                if self.logs_user_accesses() && is_ctrl(o) {
                    let after = self.tasks[tid as usize].ctrl();
                    self.emit(cpu, Some(tid), LogKind::UserStore { off, after });
                }
                Some(Value::None)
            }
            Op::TestAndClearBit { off, bit } => {
                if self.cfg.mem_access_ns == 0 {
                    if let Some(exit) = self.instant_budget(tid, 1, &op) {
                        self.kill_now(cpu, tid, exit);
                        return None;
                    }
                }
                let t = &mut self.tasks[tid as usize];
                let o = off as usize;
                let w = endian.u32_from(t.mem.bytes[o..o + 4].try_into().unwrap());
                let was = w & (1 << bit) != 0;
                t.mem.bytes[o..o + 4].copy_from_slice(&endian.u32_to(w & !(1 << bit)));
                if self.logs_user_accesses() && is_ctrl(o) {
                    let after = self.tasks[tid as usize].ctrl();
                    self.emit(cpu, Some(tid), LogKind::UserStore { off, after });
                }
                Some(Value::U64(u64::from(was)))
            }
            Op::Shared(s) => {
                if self.cfg.shared_access_ns == 0 {
                    if let Some(exit) = self.instant_budget(tid, 1, &op) {
                        self.kill_now(cpu, tid, exit);
                        return None;
                    }
                }
                Some(self.shared_op(s))
            }
            Op::Syscall(_)
            | Op::GetAffinity
            | Op::Spawn { .. }
            | Op::Exec { .. }
            | Op::SetRseqMapped(_) => {
                if let Some(exit) = self.instant_budget(tid, 1, &op) {
                    self.kill_now(cpu, tid, exit);
                    return None;
                }
                use crate::syscall::KSys;
                let k = match op {
                    Op::Syscall(call) => KSys::Std(*call),
                    Op::GetAffinity => KSys::GetAffinity,
                    Op::Spawn { clone_vm, program } => KSys::Spawn { clone_vm, program },
                    Op::Exec { program } => KSys::Exec { program },
                    Op::SetRseqMapped(m) => KSys::SetRseqMapped(m),
                    _ => unreachable!("not a kernel entry"),
                };
                self.syscall_enter(cpu, tid, k);
                None
            }
        }
    }

    /// The livelock budget (`SimConfig::max_ops_per_instant`): count `ops` operations of
    /// `tid` at `self.now`, and say how it ends if time has stood still too long. Counted:
    /// kernel entries, memory accesses only when their cost is zero (else time passes and
    /// the hot path need not count), and the coroutine's `Still` reports of markers and
    /// `burn(0)`.
    fn instant_budget(&mut self, tid: u32, ops: u64, op: &Op) -> Option<TaskExit> {
        let now = self.now;
        let t = &mut self.tasks[tid as usize];
        if t.instant_at != now {
            t.instant_at = now;
            t.instant_ops = 0;
        }
        t.instant_ops += ops;
        (t.instant_ops > self.cfg.max_ops_per_instant).then(|| TaskExit::Livelock {
            ops: t.instant_ops,
            at_ns: now,
            op: op.describe(),
        })
    }

    fn shared_op(&mut self, s: SharedOp) -> Value {
        match s {
            SharedOp::Load(w) => Value::U64(u64::from(self.shared_word(w))),
            SharedOp::Store(w, v) => {
                self.shared.insert(w.0, v);
                Value::None
            }
            SharedOp::Cas(w, old, new) => {
                let cur = self.shared_word(w);
                if cur == old {
                    self.shared.insert(w.0, new);
                    Value::Cas(Ok(old))
                } else {
                    Value::Cas(Err(cur))
                }
            }
            SharedOp::FetchAdd(w, v) => {
                let cur = self.shared_word(w);
                self.shared.insert(w.0, cur.wrapping_add(v));
                Value::U64(u64::from(cur))
            }
        }
    }

    /// Return `tid` (current on `cpu`, exit work done) to user mode and deliver `ret`.
    pub(crate) fn resume_user(&mut self, cpu: u32, tid: u32, ret: Ret) {
        self.resume_user_now(cpu, tid, ret);
        let stall = std::mem::take(&mut self.cpus[cpu as usize].deferred_stall_ns);
        if stall > 0 {
            self.vcpu_stall(cpu, stall);
        }
    }

    fn resume_user_now(&mut self, cpu: u32, tid: u32, ret: Ret) {
        self.cpus[cpu as usize].mode = CpuMode::User;
        // rseq_{syscall,irqentry}_exit_to_user_mode(): every return to user mode.
        if self.cfg.revision == rseq_abi::Revision::PostMerge {
            self.cpus[cpu as usize].rseq_stats.exit += 1;
        }
        match ret {
            Ret::Start => self.run_user(cpu, tid, true, Value::None),
            Ret::Value(v) => self.run_user(cpu, tid, false, v),
            // The kernel moved the instruction pointer to a sequence's abort_ip: what the
            // program was doing there never happens, and it learns of the abort.
            _ if self.tasks[tid as usize].seq_abort => {
                let t = &mut self.tasks[tid as usize];
                t.seq_abort = false;
                t.pending_op = None;
                self.marks.drop_cut(tid);
                self.run_user(cpu, tid, false, Value::Aborted);
            }
            Ret::Continue => self.continue_user_op(cpu, tid),
        }
    }

    /// The user operation an interrupt (or a vCPU stall) cut goes on with what was left
    /// of it.
    pub(crate) fn continue_user_op(&mut self, cpu: u32, tid: u32) {
        self.marks.resume(cpu, tid, self.now);
        let t = &mut self.tasks[tid as usize];
        let at = self.now + t.pending_remaining;
        t.pending_at = at;
        let gen = self.cpus[cpu as usize].gen;
        self.push(at, Event::UserStep { cpu, gen });
    }

    /// The program finished (returned or panicked): it exits like `exit_group()`, which
    /// is a syscall, so a grant ends at its entry.
    fn user_exit(&mut self, cpu: u32, tid: u32, how: TaskExit) {
        self.syscall_enter(cpu, tid, crate::syscall::KSys::Exit(how));
    }

    /// Tear down `tid` immediately (it is current on `cpu` or not running at all).
    pub(crate) fn kill_now(&mut self, cpu: u32, tid: u32, how: TaskExit) {
        self.do_exit(tid, how);
        if self.cpus[cpu as usize].curr == Some(tid) {
            self.schedule(cpu, crate::sched::Prev::Gone);
        }
    }

    /// Mark `tid` dead: free its thread, cancel its sleep, leave futex queues.
    pub(crate) fn do_exit(&mut self, tid: u32, how: TaskExit) {
        let t = &mut self.tasks[tid as usize];
        if !t.alive() {
            return;
        }
        // A delayed-dequeue sleeper (EEVDF) is still in its queue's tree.
        let was_queued = t.state == TaskState::Runnable || t.se.delayed;
        t.state = TaskState::Dead;
        t.sleep_gen = t.sleep_gen.wrapping_add(1);
        t.kcont = KCont::None;
        t.pending_op = None;
        t.program = None;
        let status = how.to_string();
        t.exit = Some(how);
        let cpu = t.cpu;
        if was_queued {
            self.dequeue(cpu, tid);
            self.tasks[tid as usize].se.delayed = false;
        }
        self.release_thread(tid);
        for q in self.futex.values_mut() {
            q.retain(|&w| w != tid);
        }
        self.emit(cpu, Some(tid), LogKind::TaskExit { status });
        self.marks.forget(tid);
    }

    /// Tear down `tid`'s coroutine (if any) and keep its stack for reuse.
    pub(crate) fn release_thread(&mut self, tid: u32) {
        if let Some(th) = self.threads[tid as usize].take() {
            self.tasks[tid as usize].step = th.step();
            self.stack_pool.push(th.into_stack());
            self.live_threads -= 1;
        }
    }

    /// Kernel read of the task's control word at its registered address (`None` = fault).
    pub(crate) fn read_ctrl(&self, tid: u32) -> Option<CtrlWord> {
        let t = &self.tasks[tid as usize];
        let reg = t.rseq.reg?;
        let o = t.mem.offset(reg.addr + offset::SLICE_CTRL as u64, 4)?;
        Some(CtrlWord::from_bytes(
            t.mem.bytes[o..o + 4].try_into().unwrap(),
        ))
    }

    /// Kernel 32-bit write of the control word (`false` = fault).
    pub(crate) fn write_ctrl(&mut self, tid: u32, w: CtrlWord) -> bool {
        let t = &mut self.tasks[tid as usize];
        let Some(reg) = t.rseq.reg else { return false };
        match t.mem.offset(reg.addr + offset::SLICE_CTRL as u64, 4) {
            Some(o) => {
                t.mem.bytes[o..o + 4].copy_from_slice(&w.bytes);
                true
            }
            None => false,
        }
    }

    /// Kernel read of a u32 field of the registered area (`None` = fault).
    pub(crate) fn read_u32(&self, tid: u32, field: usize) -> Option<u32> {
        let t = &self.tasks[tid as usize];
        let reg = t.rseq.reg?;
        let o = t.mem.offset(reg.addr + field as u64, 4)?;
        Some(
            self.cfg
                .endian
                .u32_from(t.mem.bytes[o..o + 4].try_into().unwrap()),
        )
    }

    /// Kernel read of a u32 at any user address of the task (`None` = fault: only the
    /// task's mapped area is memory in this model).
    pub(crate) fn read_user_u32(&self, tid: u32, addr: u64) -> Option<u32> {
        let t = &self.tasks[tid as usize];
        let o = t.mem.offset(addr, 4)?;
        Some(
            self.cfg
                .endian
                .u32_from(t.mem.bytes[o..o + 4].try_into().unwrap()),
        )
    }

    /// Kernel 64-bit read at any user address of the task (`None` = fault).
    pub(crate) fn read_user_u64(&self, tid: u32, addr: u64) -> Option<u64> {
        let t = &self.tasks[tid as usize];
        let o = t.mem.offset(addr, 8)?;
        let b: [u8; 8] = t.mem.bytes[o..o + 8].try_into().unwrap();
        Some(match self.cfg.endian {
            rseq_abi::Endian::Little => u64::from_le_bytes(b),
            rseq_abi::Endian::Big => u64::from_be_bytes(b),
        })
    }

    /// Kernel write of a u32 field at `addr + field` (`false` = fault).
    pub(crate) fn write_u32_at(&mut self, tid: u32, addr: u64, field: usize, v: u32) -> bool {
        let bytes = self.cfg.endian.u32_to(v);
        let t = &mut self.tasks[tid as usize];
        match t.mem.offset(addr + field as u64, 4) {
            Some(o) => {
                t.mem.bytes[o..o + 4].copy_from_slice(&bytes);
                true
            }
            None => false,
        }
    }
}

/// `SIGUSR1`: the non-fatal signal of [`Injection::Signal`].
const SIGUSR1: i32 = 10;

/// The injection-point class of a user operation (`None`: not a point, e.g. a clock read
/// that reached the horizon).
fn point_op(op: &Op) -> Option<PointOp> {
    Some(match op {
        Op::Wait | Op::Still(_) => return None,
        Op::Seq { op, .. } => match op {
            SeqOp::Nop => return None,
            SeqOp::LoadArea(off) => PointOp::Load(*off),
            SeqOp::Shared(_) => PointOp::Shared,
        },
        Op::Load { off, .. } => PointOp::Load(*off),
        Op::Store { off, .. } => PointOp::Store(*off),
        Op::TestAndClearBit { off, .. } => PointOp::TestAndClear(*off),
        Op::Shared(_) => PointOp::Shared,
        Op::Syscall(_)
        | Op::GetAffinity
        | Op::Spawn { .. }
        | Op::Exec { .. }
        | Op::SetRseqMapped(_) => PointOp::Syscall,
    })
}

fn is_ctrl(off: usize) -> bool {
    (offset::SLICE_CTRL..offset::SLICE_CTRL + 4).contains(&off)
}
