//! A ticket lock whose holder asks for an rseq time slice extension around its hold,
//! written once against [`rseq_abi::Platform`]: the same code runs on a real kernel
//! (`rseq_abi::linux`) and in slicesim.
//!
//! Each acquisition takes a ticket (`fetch_add` on `next`), waits with plain loads until
//! `serving` shows it, holds the lock (a non-atomic increment of `counter`, the witness of
//! mutual exclusion), then stores `serving + 1` and only **then** releases the extension,
//! so a yield never gives the CPU away while the lock is held (spec §8.1).
//!
//! [`Mistake::YieldBeforeUnlock`] plants the classic mistake: the release (and its yield)
//! comes before the unlocking store. Every single run still ends well; only a run where a
//! grant lands during the hold shows the waiter stuck behind a holder that gave its CPU
//! away. `tests/harness.rs` shows exploration finding that run.

use rseq_abi::programs::Counters;
use rseq_abi::protocol::{self, SliceExt, SliceOutcome};
use rseq_abi::{Marker, Platform, SharedWord, Syscall};

/// One ticket-lock thread's parameters (a scenario's `params` table of `ticket_lock`).
#[derive(Clone, Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketParams {
    /// Shared word holding the next ticket to hand out (default: 0); `serving` is `next + 1` and
    /// the protected counter `next + 2`.
    #[serde(default)]
    pub next: u32,
    /// Acquisitions to make (default: 1).
    #[serde(default = "one")]
    pub iterations: u32,
    /// CPU time spent holding the lock, ns (default: 2000).
    #[serde(default = "two_us")]
    pub hold_ns: u64,
    /// CPU time between an unlock and the next acquisition, ns (default: 1000).
    #[serde(default = "one_us")]
    pub think_ns: u64,
    /// Ask for an extension around the hold (default: true).
    #[serde(default = "yes")]
    pub use_ext: bool,
}

fn one() -> u32 {
    1
}
fn two_us() -> u64 {
    2_000
}
fn one_us() -> u64 {
    1_000
}
fn yes() -> bool {
    true
}

impl Default for TicketParams {
    fn default() -> Self {
        TicketParams {
            next: 0,
            iterations: one(),
            hold_ns: two_us(),
            think_ns: one_us(),
            use_ext: yes(),
        }
    }
}

impl TicketParams {
    /// The word of the next ticket.
    pub fn next_word(&self) -> SharedWord {
        SharedWord(self.next)
    }
    /// The word of the ticket now served.
    pub fn serving_word(&self) -> SharedWord {
        SharedWord(self.next + 1)
    }
    /// The word incremented non-atomically under the lock.
    pub fn counter_word(&self) -> SharedWord {
        SharedWord(self.next + 2)
    }
}

/// A mistake to plant, to see the harness catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mistake {
    /// The lock as it should be.
    None,
    /// Release the extension (yielding if granted) before the unlocking store.
    YieldBeforeUnlock,
}

/// Run one ticket-lock thread: register rseq, enable the extension, then
/// `params.iterations` acquisitions. Counters: `acquired`, `yielded` (yields that
/// returned 1), `raced` (a grant revoked before the yield, spec §8.3), `ext` (1 if the
/// extension was in use, 0 if the kernel does not offer it to this thread).
pub fn ticket_lock<P: Platform + ?Sized>(
    p: &mut P,
    params: &TicketParams,
    mistake: Mistake,
) -> Counters {
    let ext = if params.use_ext {
        // Without the feature (an older kernel, a boot option) `setup` says why and the
        // lock works on without extensions.
        SliceExt::setup(p, protocol::EnableMode::Prctl).0
    } else {
        SliceExt::unused(p.revision())
    };
    let (next, serving, counter) = (
        params.next_word(),
        params.serving_word(),
        params.counter_word(),
    );
    let (mut acquired, mut yielded, mut raced) = (0i64, 0i64, 0i64);
    for _ in 0..params.iterations {
        p.mark(Marker::LockAttempt(serving));
        let my = p.shared_fetch_add(next, 1);
        // Wait without a request (extending a waiter would delay the holder), giving the
        // CPU to the holder if it shares ours.
        while p.shared_load(serving) != my {
            let _ = p.syscall(Syscall::SchedYield);
        }
        ext.request(p);
        p.mark(Marker::LockAcquired(serving));
        let v = p.shared_load(counter);
        p.burn(params.hold_ns);
        p.shared_store(counter, v + 1);
        acquired += 1;
        let outcome = match mistake {
            Mistake::None => {
                p.mark(Marker::LockReleased(serving));
                p.shared_store(serving, my + 1);
                ext.release(p)
            }
            Mistake::YieldBeforeUnlock => {
                let o = ext.release(p);
                p.mark(Marker::LockReleased(serving));
                p.shared_store(serving, my + 1);
                o
            }
        };
        match outcome {
            SliceOutcome::Yielded(Ok(1)) => yielded += 1,
            SliceOutcome::Yielded(Ok(0)) => raced += 1,
            _ => {}
        }
        p.burn(params.think_ns);
    }
    vec![
        ("acquired", acquired),
        ("yielded", yielded),
        ("raced", raced),
    ]
}
