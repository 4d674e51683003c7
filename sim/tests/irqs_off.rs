//! Interrupts are disabled from the entry of an interrupt from user mode to the end of its
//! exit work (`arch/x86/entry/entry_64.S`, `irqentry_exit_to_user_mode()` runs with
//! interrupts off): an interrupt raised meanwhile stays pending in the APIC and is taken
//! right after the return, from user mode, after the first one's exit has made its grant
//! decision. A tick that comes due just after the wakeup interrupt that was granted an
//! extension therefore lands inside the extension. This is how Linux 7.2.13 expires and
//! revokes a share of the 2 µs selftest's grants (docs/fidelity.md).

mod common;

use rseq_abi::Platform;
use rseq_sim::*;

use common::*;

/// One user-mode spinner on CPU 0; a device interrupt at `at`; the 1 kHz tick; each
/// interrupt costs 3 µs. Returns every `irq_enter` as (time, kind, from user).
fn irqs(at: u64) -> Vec<(u64, IrqKind, bool)> {
    let cfg = SimConfig {
        hz: 1000,
        irq_latency_ns: 3 * US,
        ..cfg1()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    sim.spawn(
        TaskSpec::new("spinner"),
        prog(|p| {
            p.burn(2_500 * US);
            vec![]
        }),
    );
    sim.add_irq_source(IrqSource::new(
        0,
        IrqKind::Device(ReschedReq::None),
        IrqPattern::OneShot { at },
    ));
    sim.run_until(2_600 * US);
    sim.log()
        .iter()
        .filter_map(|r| match r.kind {
            LogKind::IrqEnter { kind, from_user } => Some((r.time, kind, from_user)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_tick_raised_during_an_interrupts_exit_is_taken_after_the_return_from_user_mode() {
    // The device interrupt at 999 µs keeps interrupts off until 1,002 µs; the tick due at
    // 1 ms waits for that and then enters from user mode like any other.
    let seen = irqs(999 * US);
    let first = seen.iter().position(|e| e.1 == IrqKind::Tick).unwrap();
    assert_eq!(
        seen[first - 1],
        (999 * US, IrqKind::Device(ReschedReq::None), true)
    );
    assert_eq!(seen[first], (1_002 * US, IrqKind::Tick, true));
    // The late tick does not move the next one: hrtimer_forward() keeps the period.
    assert_eq!(seen[first + 1], (2_000 * US, IrqKind::Tick, true));
}

#[test]
fn an_interrupt_after_the_exit_is_not_deferred() {
    // At 996 µs the device interrupt's exit is over (999 µs) before the tick comes due.
    let seen = irqs(996 * US);
    assert!(
        seen.contains(&(1_000 * US, IrqKind::Tick, true)),
        "{seen:?}"
    );
}
