//! `slicesim step`: walk through a run one engine event at a time.
//!
//! After each step it prints the new log lines, then every CPU (mode, current task) and
//! every task (state, the user word's bytes, the kernel's grant, pending NEED_RESCHED, the
//! CPU's enforcement timer). Commands, one per line: Enter = next event, `g` = run to the
//! next grant or revocation, `n N` = N events, `c` = to the end, `q` = quit. Line-based,
//! so it works on any terminal and can be driven through a pipe or a pseudo-terminal.

use std::io::{BufRead, Write};

use rseq_sim::cpu::CpuMode;
use rseq_sim::task::{TaskState, TIF_NEED_RESCHED, TIF_NEED_RESCHED_LAZY};
use rseq_sim::{LogKind, Simulation};

fn us(ns: u64) -> String {
    format!("{}.{:03} us", ns / 1000, ns % 1000)
}

/// Print the machine's state.
pub fn show(sim: &Simulation, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "-- at {} ({} events) --",
        us(sim.now()),
        sim.events_processed()
    )?;
    for c in sim.cpus() {
        let mode = match c.mode {
            CpuMode::Idle => "idle",
            CpuMode::User => "user",
            CpuMode::Kernel => "kernel",
        };
        let curr = c.curr.map_or("-".to_string(), |t| {
            format!("T{t} {}", sim.tasks()[t as usize].name)
        });
        let timer = if c.slice_timer.armed {
            format!(
                "slice timer armed for {} (T{})",
                us(c.slice_timer.expiry),
                c.slice_timer.cookie.unwrap_or(0)
            )
        } else {
            "slice timer idle".to_string()
        };
        writeln!(out, "cpu{:<3} {mode:<6} {curr:<20} {timer}", c.id)?;
    }
    for t in sim.tasks() {
        let state = match t.state {
            TaskState::New => "new",
            TaskState::Runnable => "runnable",
            TaskState::Running => "running",
            TaskState::Sleeping => "sleeping",
            TaskState::Dead => "dead",
        };
        let nr = match (
            t.tif & TIF_NEED_RESCHED != 0,
            t.tif & TIF_NEED_RESCHED_LAZY != 0,
        ) {
            (true, _) => "NEED_RESCHED",
            (false, true) => "NEED_RESCHED_LAZY",
            _ => "-",
        };
        writeln!(
            out,
            "T{:<3} {:<16} {state:<9} word [{}]  kernel granted={}  {nr}",
            t.id,
            t.name,
            t.ctrl(),
            u8::from(t.rseq.granted)
        )?;
    }
    Ok(())
}

/// A grant, or a revocation that changed the word or ended a grant (not the no-op clears
/// of registration or of a word that was already zero).
fn is_grant_or_revoke(k: &LogKind) -> bool {
    match k {
        LogKind::Grant { .. } => true,
        LogKind::Revoke {
            before,
            was_granted,
            ..
        } => *was_granted || *before != rseq_abi::CtrlWord::ZERO,
        _ => false,
    }
}

/// Drive `sim` until `end` with commands read from `input`; output goes to `out`.
pub fn run(
    sim: &mut Simulation,
    end: u64,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "Enter: next event, g: next grant/revoke, n N: N events, c: to the end, q: quit"
    )?;
    show(sim, out)?;
    let mut line = String::new();
    loop {
        write!(out, "step> ")?;
        out.flush()?;
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(()); // end of input
        }
        let cmd = line.trim();
        let seen = sim.log().len();
        let done = match cmd {
            "q" => return Ok(()),
            "" => !sim.step(end),
            "c" => {
                sim.run_until(end);
                true
            }
            "g" => {
                let mut done = false;
                loop {
                    if !sim.step(end) {
                        done = true;
                        break;
                    }
                    if sim.log()[seen..]
                        .iter()
                        .any(|r| is_grant_or_revoke(&r.kind))
                    {
                        break;
                    }
                }
                done
            }
            _ => match cmd
                .strip_prefix("n ")
                .and_then(|n| n.trim().parse::<u64>().ok())
            {
                Some(n) => (0..n).any(|_| !sim.step(end)),
                None => {
                    writeln!(out, "unknown command {cmd:?}: Enter, g, n N, c or q")?;
                    continue;
                }
            },
        };
        for r in &sim.log()[seen..] {
            writeln!(out, "  + {r}")?;
        }
        show(sim, out)?;
        if done {
            writeln!(out, "-- the run is over at {} --", us(end))?;
            return Ok(());
        }
    }
}
