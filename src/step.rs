//! `slicesim step`: walk through a run one engine event at a time.
//!
//! After each step it prints the new log lines, then every CPU (mode, current task) and
//! every task (state, the user word's bytes, the kernel's grant, pending NEED_RESCHED, the
//! CPU's enforcement timer). Commands, one per line: Enter = next event, `g` = run to the
//! next grant or write of the word by a revocation or clearing path (R1..R10, also the
//! clears of a word that was already 0), `n N` = N events, `c` = to the end, `q` = quit.
//! An engine event can log several lines, or none: the header counts both. The word is
//! shown as `explain` tells it (V1: `REQUEST=1 GRANTED=0`). Line-based, so it works on any
//! terminal and can be driven through a pipe or a pseudo-terminal.

use std::io::{BufRead, Write};

use rseq_sim::{CpuMode, TaskState, TIF_NEED_RESCHED, TIF_NEED_RESCHED_LAZY};
use rseq_sim::{LogKind, Simulation};

fn us(ns: u64) -> String {
    format!("{}.{:03} us", ns / 1000, ns % 1000)
}

/// Print the machine's state.
pub fn show(sim: &Simulation, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "-- at {} (engine event {}, log line {}) --",
        us(sim.now()),
        sim.events_processed(),
        sim.log().len()
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
    let cfg = sim.config();
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
            crate::explain::word_text(cfg.revision, cfg.endian, &t.ctrl()),
            u8::from(t.rseq.granted)
        )?;
    }
    Ok(())
}

/// A grant, or any revocation or clearing path (R1..R10), also one that found the word
/// already 0: registration's R1 and the first update's R4 are steps a reader looks for.
fn is_grant_or_revoke(k: &LogKind) -> bool {
    matches!(k, LogKind::Grant { .. } | LogKind::Revoke { .. })
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
        "Enter: next engine event, g: next grant or revoke (R1..R10), n N: N events, c: to the end, q: quit"
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
        let cfg = sim.config();
        for r in &sim.log()[seen..] {
            let gloss = crate::explain::v1_gloss(cfg.revision, cfg.endian, &r.kind);
            writeln!(out, "  + {r}{}", gloss.unwrap_or_default())?;
        }
        show(sim, out)?;
        if done {
            writeln!(out, "-- the run is over at {} --", us(end))?;
            return Ok(());
        }
    }
}
