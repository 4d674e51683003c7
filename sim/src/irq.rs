//! Interrupt sources injected by a scenario: one-shot, periodic and Poisson device
//! interrupts, exceptions, IPIs (spec §3.3: every generic irqentry from user mode is a grant
//! opportunity).
//!
//! Poisson inter-arrival times are drawn from the simulation's one generator with a
//! logarithm computed from IEEE basic operations only, so they are identical on every host.

use crate::choice::{Chooser, Draw};
use crate::event::{Event, IrqKind};
use crate::sim::Simulation;

/// When a source fires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IrqPattern {
    /// Once, at this time (ns).
    OneShot {
        /// Time, ns.
        at: u64,
    },
    /// Every `period_ns` from `start_ns` (inclusive) until `end_ns` (exclusive).
    Periodic {
        /// First firing, ns.
        start_ns: u64,
        /// Period, ns (> 0).
        period_ns: u64,
        /// No firing at or after this time.
        end_ns: u64,
    },
    /// A Poisson process with `rate_hz` events per second from `start_ns` until `end_ns`.
    Poisson {
        /// Events per simulated second (> 0).
        rate_hz: f64,
        /// Start, ns.
        start_ns: u64,
        /// End, ns.
        end_ns: u64,
    },
}

/// An interrupt source: which CPU, what kind, when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IrqSource {
    /// Target CPU.
    pub cpu: u32,
    /// What arrives.
    pub kind: IrqKind,
    /// When.
    pub pattern: IrqPattern,
    pub(crate) next: u64,
}

impl IrqSource {
    /// A new source.
    pub fn new(cpu: u32, kind: IrqKind, pattern: IrqPattern) -> Self {
        Self {
            cpu,
            kind,
            pattern,
            next: 0,
        }
    }

    pub(crate) fn first_time(&self, rng: &mut dyn Chooser) -> Option<u64> {
        match self.pattern {
            IrqPattern::OneShot { at } => Some(at),
            IrqPattern::Periodic {
                start_ns, end_ns, ..
            } => (start_ns < end_ns).then_some(start_ns),
            IrqPattern::Poisson {
                rate_hz,
                start_ns,
                end_ns,
            } => {
                let t = start_ns + exp_sample_ns(rng, rate_hz);
                (t < end_ns).then_some(t)
            }
        }
    }

    fn next_after(&self, now: u64, rng: &mut dyn Chooser) -> Option<u64> {
        match self.pattern {
            IrqPattern::OneShot { .. } => None,
            IrqPattern::Periodic {
                period_ns, end_ns, ..
            } => {
                let t = now + period_ns.max(1);
                (t < end_ns).then_some(t)
            }
            IrqPattern::Poisson {
                rate_hz, end_ns, ..
            } => {
                let t = now + exp_sample_ns(rng, rate_hz).max(1);
                (t < end_ns).then_some(t)
            }
        }
    }
}

impl Simulation {
    pub(crate) fn source_fire(&mut self, idx: u32) {
        let src = self.sources[idx as usize];
        if let Some(t) = src.next_after(self.now, self.chooser.as_mut()) {
            self.push(t, Event::Source { source: idx });
        }
        self.ctx_cpu = src.cpu;
        if (src.cpu as usize) < self.cpus.len() {
            self.irq(src.cpu, src.kind, 0, u32::MAX);
        }
    }
}

/// An exponential inter-arrival time in ns for `rate_hz`, from one 53-bit uniform draw.
fn exp_sample_ns(rng: &mut dyn Chooser, rate_hz: f64) -> u64 {
    // u in (0, 1]: never 0, so ln(u) is finite.
    let u = ((rng.draw(Draw::IrqArrival) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let mean_ns = 1e9 / rate_hz;
    (-portable_ln(u) * mean_ns) as u64
}

/// Natural logarithm for x in (0, 1] using only +, -, *, / (bit-identical everywhere).
fn portable_ln(x: f64) -> f64 {
    // x = m * 2^-k with m in [1, 2).
    let mut m = x;
    let mut k = 0i32;
    while m < 1.0 {
        m *= 2.0;
        k += 1;
    }
    // ln(m) = 2 atanh(z), z = (m-1)/(m+1) in [0, 1/3): the series converges fast.
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let (mut term, mut sum) = (z, 0.0);
    for n in 0..30 {
        sum += term / f64::from(2 * n + 1);
        term *= z2;
    }
    2.0 * sum - f64::from(k) * std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::portable_ln;

    #[test]
    fn portable_ln_matches_std_ln() {
        for &x in &[1.0, 0.5, 0.25, 0.1, 0.9, 1e-9, 0.333] {
            assert!((portable_ln(x) - f64::ln(x)).abs() < 1e-12, "ln({x})");
        }
    }
}
