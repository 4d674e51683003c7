//! Signals: `force_sig()` for protocol violations and their delivery in the exit work
//! (`arch_do_signal_or_restart()` → `get_signal()`).
//!
//! User programs cannot install handlers in this model: fatal signals (SIGSEGV, SIGKILL,
//! SIGTERM, SIGABRT, SIGBUS) kill the task and record the cause; others (e.g. SIGUSR1) are
//! consumed as if a handler ran and returned. Either way a pending signal is exit work that
//! denies a grant (spec §3.1), and a grant survives delivery otherwise (spec §13.7).

use rseq_abi::consts::signal::*;

use crate::coro::Value;
use crate::cpu::CpuMode;
use crate::event::IrqKind;
use crate::sim::Simulation;
use crate::task::*;
use crate::trace::{FaultCause, LogKind};

fn is_fatal(signo: i32) -> bool {
    matches!(signo, SIGSEGV | SIGKILL | 15 | 6 | 7)
}

impl Simulation {
    /// `force_sig()`: queue `signo` on `tid` with its cause; it is acted upon at the next
    /// exit to user.
    pub(crate) fn force_sig(&mut self, cpu: u32, tid: u32, signo: i32, cause: Option<FaultCause>) {
        let t = &mut self.tasks[tid as usize];
        t.sig_pending.push((signo, cause.clone()));
        t.tif |= TIF_SIGPENDING;
        self.emit(cpu, Some(tid), LogKind::Signal { signo, cause });
    }

    /// A signal sent from outside the program: queue it and kick the task (an IPI if it
    /// runs in user mode; an interrupted sleep returns `EINTR`).
    pub(crate) fn send_signal_now(&mut self, tid: u32, signo: i32) {
        let Some(t) = self.tasks.get(tid as usize) else {
            return;
        };
        if !t.alive() || t.state == TaskState::New {
            return;
        }
        let cpu = t.cpu;
        let cause = is_fatal(signo).then_some(FaultCause::External);
        self.force_sig(cpu, tid, signo, cause);
        match self.tasks[tid as usize].state {
            TaskState::Sleeping => {
                let t = &mut self.tasks[tid as usize];
                t.sleep_gen = t.sleep_gen.wrapping_add(1);
                t.kcont = KCont::ExitToUser {
                    ret: Ret::Value(Value::Sys(Err(rseq_abi::Errno(4)))),
                };
                for q in self.futex.values_mut() {
                    q.retain(|&w| w != tid);
                }
                self.wake_up(tid);
            }
            TaskState::Running if self.cpus[cpu as usize].mode == CpuMode::User => {
                self.send_ipi(cpu, IrqKind::SignalKick);
            }
            _ => {}
        }
    }

    /// Deliver pending signals in the exit work. Returns true if the task was killed.
    pub(crate) fn do_signal(&mut self, cpu: u32, tid: u32) -> bool {
        let t = &mut self.tasks[tid as usize];
        t.tif &= !TIF_SIGPENDING;
        let pending = std::mem::take(&mut t.sig_pending);
        if let Some((signo, cause)) = pending.iter().find(|(s, _)| is_fatal(*s)).cloned() {
            self.kill_now(cpu, tid, TaskExit::Signaled { signo, cause });
            return true;
        }
        // Each other signal is handled as if its handler ran: the handler frame is set up
        // through `handle_signal()`, which calls `rseq_signal_deliver()` first.
        for _ in &pending {
            self.rseq_signal_deliver(cpu, tid);
        }
        false
    }
}
