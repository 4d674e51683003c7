//! The `script` program: a scenario spells out a user thread step by step.
//!
//! Steps are strings, one action each, run in order through the same `rseq-abi` helpers a
//! real program would call. `loop N` … `end` repeats the steps between them. The program
//! returns counters: the last value each `load FIELD` saw (as `read_FIELD`), the last
//! syscall result, and the outcome tally of `release` and of a `yield` after a load that
//! read `granted` set.

use rseq_abi::layout::offset;
use rseq_abi::platform::{
    MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
};
use rseq_abi::protocol::{self, SliceExt};
use rseq_abi::{consts, CpuSet, Marker, Platform, SharedWord, SliceOutcome, SysResult, Syscall};
use rseq_sim::SimPlatform;
use rseq_sim::RSEQ_AREA_SIZE;

use super::Nanos;

/// A field of `struct rseq` a step can load or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `slice_ctrl.request` (byte).
    Request,
    /// `slice_ctrl.granted` (byte).
    Granted,
    /// `slice_ctrl.__reserved` (low byte).
    Reserved,
    /// `slice_ctrl.all` (u32).
    Ctrl,
    /// `flags` (u32).
    Flags,
    /// `cpu_id` (u32).
    CpuId,
    /// `cpu_id_start` (u32).
    CpuIdStart,
    /// `node_id` (u32).
    NodeId,
    /// `mm_cid` (u32).
    MmCid,
    /// `rseq_cs` (u64: the address of a `struct rseq_cs`, or 0).
    RseqCs,
}

impl Field {
    const NAMES: [&'static str; 10] = [
        "request",
        "granted",
        "reserved",
        "ctrl",
        "flags",
        "cpu_id",
        "cpu_id_start",
        "node_id",
        "mm_cid",
        "rseq_cs",
    ];

    /// The counter reporting the last value a `load` of each field read.
    const READ_NAMES: [&'static str; 10] = [
        "read_request",
        "read_granted",
        "read_reserved",
        "read_ctrl",
        "read_flags",
        "read_cpu_id",
        "read_cpu_id_start",
        "read_node_id",
        "read_mm_cid",
        "read_rseq_cs",
    ];

    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "request" => Field::Request,
            "granted" => Field::Granted,
            "reserved" => Field::Reserved,
            "ctrl" => Field::Ctrl,
            "flags" => Field::Flags,
            "cpu_id" => Field::CpuId,
            "cpu_id_start" => Field::CpuIdStart,
            "node_id" => Field::NodeId,
            "mm_cid" => Field::MmCid,
            "rseq_cs" => Field::RseqCs,
            _ => return Err(unknown("field", s, &Self::NAMES)),
        })
    }

    /// The 32-bit fields by offset (the byte and 64-bit ones are handled apart).
    fn u32_offset(self) -> Option<usize> {
        Some(match self {
            Field::Ctrl => offset::SLICE_CTRL,
            Field::Flags => offset::FLAGS,
            Field::CpuId => offset::CPU_ID,
            Field::CpuIdStart => offset::CPU_ID_START,
            Field::NodeId => offset::NODE_ID,
            Field::MmCid => offset::MM_CID,
            _ => return None,
        })
    }

    fn load<P: Platform + ?Sized>(self, p: &mut P) -> u64 {
        match self {
            Field::Request => p.load_u8(offset::REQUEST).into(),
            Field::Granted => p.load_u8(offset::GRANTED).into(),
            Field::Reserved => p.load_u8(offset::RESERVED).into(),
            Field::RseqCs => p.load_u64(offset::RSEQ_CS),
            f => p.load_u32(f.u32_offset().expect("a u32 field")).into(),
        }
    }

    fn store<P: Platform + ?Sized>(self, p: &mut P, v: u64) {
        match self {
            Field::Request => p.store_u8(offset::REQUEST, v as u8),
            Field::Granted => p.store_u8(offset::GRANTED, v as u8),
            Field::Reserved => p.store_u8(offset::RESERVED, v as u8),
            Field::RseqCs => p.store_u64(offset::RSEQ_CS, v),
            f => p.store_u32(f.u32_offset().expect("a u32 field"), v as u32),
        }
    }
}

/// A value a step writes: a number, or an address inside the thread's rseq area
/// (`area+128`), resolved when the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    /// A plain number.
    Num(u64),
    /// The area's address plus this many bytes.
    Area(u64),
}

impl Val {
    fn parse(a: &str) -> Result<Self, String> {
        if let Some(off) = a.strip_prefix("area+") {
            return parse_num(off).map(Val::Area);
        }
        if a == "area" {
            return Ok(Val::Area(0));
        }
        parse_num(a).map(Val::Num)
    }

    fn resolve<P: Platform + ?Sized>(self, p: &P) -> u64 {
        match self {
            Val::Num(n) => n,
            Val::Area(off) => p.rseq_addr() + off,
        }
    }
}

/// A decimal or `0x` hexadecimal number.
fn parse_num(a: &str) -> Result<u64, String> {
    let parsed = match a.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => a.parse(),
    };
    parsed.map_err(|_| format!("`{a}` is not a number"))
}

/// Steps with the index of the `steps` line each came from (a `loop` or `fork` block
/// carries its opening line's): the program announces it as it goes
/// (`SimPlatform::at_step`), so a livelock or a panic names the line.
pub type Body = Vec<(u32, Step)>;

/// One step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `register` / `register default_on`.
    Register {
        /// Pass `RSEQ_FLAG_SLICE_EXT_DEFAULT_ON`.
        default_on: bool,
    },
    /// `unregister`.
    Unregister,
    /// `enable` / `disable`: prctl SET.
    Enable(bool),
    /// `request`: ask for an extension.
    Request,
    /// `release`: leave the section per the protocol (yields if granted).
    Release,
    /// `burn 10us`.
    Burn(u64),
    /// `sleep 50us`.
    Sleep(u64),
    /// `yield`: `rseq_slice_yield()`.
    Yield,
    /// `getpid`.
    Getpid,
    /// `sched_yield`.
    SchedYield,
    /// `load FIELD`.
    Load(Field),
    /// `store FIELD VALUE` (`VALUE` may be `area+N`).
    Store(Field, Val),
    /// `clear FIELD MASK`: clear the bits of `MASK` the way a careless program does, with a
    /// plain load, then a store of the value without them: two user operations an
    /// interrupt can land between (V1's non-atomic clear, spec §8.2).
    Clear(Field, u64),
    /// `poke32 OFF VALUE` / `poke64 OFF VALUE`: a raw aligned store at byte `OFF` of the
    /// thread's 256-byte rseq area, e.g. to build a `struct rseq_cs` descriptor there.
    Poke {
        /// Byte offset in the area.
        off: usize,
        /// 4 or 8 bytes.
        size: usize,
        /// The value.
        val: Val,
    },
    /// `syscall NR [ARG...]`: any syscall with up to six arguments, decoded as the kernel
    /// dispatches it (`rseq`, `prctl`, `rseq_slice_yield`, … or any other number).
    Syscall(Syscall),
    /// `fork` … `end`: fork a child process that runs the steps in between (it inherits
    /// the registration and a copy of the area); the parent goes on.
    Fork(Body),
    /// `unmap` / `map` the rseq area.
    Mapped(bool),
    /// `membarrier register` / `membarrier rseq`.
    Membarrier(bool),
    /// `affinity CPU`.
    Affinity(usize),
    /// `futex wait W VAL` (sleep while shared word W holds VAL) / `futex wake W N`: a
    /// wakeup that another CPU can send, e.g. a lazy reschedule with no IPI.
    Futex {
        /// Wait (true) or wake (false).
        wait: bool,
        /// The shared word.
        word: SharedWord,
        /// The expected value (wait) or the most waiters to wake (wake).
        val: u32,
    },
    /// `panic`: the program fails (to show fault reporting).
    Panic,
    /// `mark cs_enter`, `mark lock_acquired 0`, ...: report a marker for the metrics.
    Mark(Marker),
    /// `loop N` … `end`.
    Loop(u64, Body),
}

fn unknown(what: &str, s: &str, names: &[&str]) -> String {
    match super::error::closest(s, names) {
        Some(c) => format!("unknown {what} `{s}` (did you mean `{c}`?)"),
        None => format!("unknown {what} `{s}`, expected one of {}", names.join(", ")),
    }
}

const VERBS: [&str; 25] = [
    "register",
    "unregister",
    "enable",
    "disable",
    "request",
    "release",
    "burn",
    "sleep",
    "yield",
    "getpid",
    "sched_yield",
    "load",
    "store",
    "clear",
    "unmap",
    "map",
    "membarrier",
    "affinity",
    "futex",
    "panic",
    "mark",
    "poke32",
    "poke64",
    "syscall",
    "prctl",
];

const MARKERS: [&str; 5] = [
    "lock_attempt",
    "lock_acquired",
    "lock_released",
    "cs_enter",
    "cs_exit",
];

/// Parse one step line (not `loop`/`end`).
fn parse_step(line: &str) -> Result<Step, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let arg = |i: usize| {
        words
            .get(i)
            .copied()
            .ok_or_else(|| format!("`{line}` needs an argument"))
    };
    let dur = |i: usize| arg(i).and_then(|a| Nanos::parse(a).map(|n| n.0));
    let num = |i: usize| -> Result<u64, String> {
        parse_num(arg(i)?).map_err(|e| format!("{e} in `{line}`"))
    };
    let val = |i: usize| -> Result<Val, String> {
        Val::parse(arg(i)?).map_err(|e| format!("{e} in `{line}`"))
    };
    let poke = |size: usize| -> Result<Step, String> {
        let off = num(1)? as usize;
        if off % size != 0 || off + size > RSEQ_AREA_SIZE {
            return Err(format!(
                "`{line}`: offset {off} is not a {size}-byte aligned offset inside the \
                 {RSEQ_AREA_SIZE}-byte area"
            ));
        }
        Ok(Step::Poke {
            off,
            size,
            val: val(2)?,
        })
    };
    let args = |from: usize, max: usize| -> Result<Vec<u64>, String> {
        if words.len() > from + max {
            return Err(format!("`{line}`: at most {max} arguments"));
        }
        (from..words.len()).map(num).collect()
    };
    let step = match words.first().copied().unwrap_or("") {
        "register" => match words.get(1).copied() {
            None => Step::Register { default_on: false },
            Some("default_on") => Step::Register { default_on: true },
            Some(w) => {
                return Err(format!(
                    "`register {w}`: only `register` or `register default_on`"
                ))
            }
        },
        "unregister" => Step::Unregister,
        "enable" => Step::Enable(true),
        "disable" => Step::Enable(false),
        "request" => Step::Request,
        "release" => Step::Release,
        "burn" => Step::Burn(dur(1)?),
        "sleep" => Step::Sleep(dur(1)?),
        "yield" => Step::Yield,
        "getpid" => Step::Getpid,
        "sched_yield" => Step::SchedYield,
        "load" => Step::Load(Field::parse(arg(1)?)?),
        "store" => Step::Store(Field::parse(arg(1)?)?, val(2)?),
        "clear" => Step::Clear(Field::parse(arg(1)?)?, num(2)?),
        "poke32" => poke(4)?,
        "poke64" => poke(8)?,
        "syscall" => {
            let nr = num(1)? as i64;
            let a = args(2, 6)?;
            Step::Syscall(Syscall::decode(
                nr,
                std::array::from_fn(|i| a.get(i).copied().unwrap_or(0)),
            ))
        }
        "prctl" => {
            let a = args(1, 4)?;
            if a.is_empty() {
                return Err(format!("`{line}` needs arg2 (1 = GET, 2 = SET)"));
            }
            let at = |i: usize| a.get(i).copied().unwrap_or(0);
            Step::Syscall(Syscall::Prctl {
                option: consts::PR_RSEQ_SLICE_EXTENSION,
                arg2: at(0),
                arg3: at(1),
                arg4: at(2),
                arg5: at(3),
            })
        }
        "unmap" => Step::Mapped(false),
        "map" => Step::Mapped(true),
        "membarrier" => match arg(1)? {
            "register" => Step::Membarrier(true),
            "rseq" => Step::Membarrier(false),
            w => {
                return Err(format!(
                    "`membarrier {w}`: use `membarrier register` or `membarrier rseq`"
                ))
            }
        },
        "affinity" => Step::Affinity(num(1)? as usize),
        "futex" => {
            let wait = match arg(1)? {
                "wait" => true,
                "wake" => false,
                w => {
                    return Err(format!(
                        "`futex {w}`: use `futex wait W VAL` or `futex wake W N`"
                    ))
                }
            };
            let word = SharedWord(
                u32::try_from(num(2)?).map_err(|_| format!("word out of range in `{line}`"))?,
            );
            let val =
                u32::try_from(num(3)?).map_err(|_| format!("value out of range in `{line}`"))?;
            Step::Futex { wait, word, val }
        }
        "panic" => Step::Panic,
        "mark" => {
            let lock = || num(2).map(|w| SharedWord(w as u32));
            Step::Mark(match arg(1)? {
                "lock_attempt" => Marker::LockAttempt(lock()?),
                "lock_acquired" => Marker::LockAcquired(lock()?),
                "lock_released" => Marker::LockReleased(lock()?),
                "cs_enter" => Marker::CsEnter,
                "cs_exit" => Marker::CsExit,
                m => return Err(unknown("marker", m, &MARKERS)),
            })
        }
        w => return Err(unknown("step", w, &VERBS)),
    };
    Ok(step)
}

/// Parse a script; errors carry the index of the offending step.
pub fn parse(lines: &[&str]) -> Result<Body, (usize, String)> {
    // Open blocks: their opening line, `Some(n)` a loop or `None` a fork, and their steps.
    let mut stack: Vec<(u32, Option<u64>, Body)> = vec![(0, Some(1), Vec::new())];
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("loop") => {
                let n = words
                    .get(1)
                    .and_then(|n| n.parse().ok())
                    .ok_or((i, format!("`{line}`: write `loop N`")))?;
                stack.push((i as u32, Some(n), Vec::new()));
            }
            Some("fork") => {
                if words.len() > 1 {
                    return Err((
                        i,
                        format!("`{line}`: write `fork` alone, then the child's steps and `end`"),
                    ));
                }
                stack.push((i as u32, None, Vec::new()));
            }
            Some("end") => {
                if stack.len() == 1 {
                    return Err((i, "`end` without `loop` or `fork`".into()));
                }
                let (at, n, body) = stack.pop().expect("checked");
                let step = match n {
                    Some(n) => Step::Loop(n, body),
                    None => Step::Fork(body),
                };
                stack.last_mut().expect("root").2.push((at, step));
            }
            _ => {
                let step = parse_step(line).map_err(|e| (i, e))?;
                stack.last_mut().expect("root").2.push((i as u32, step));
            }
        }
    }
    if stack.len() != 1 {
        let what = if stack.last().is_some_and(|b| b.1.is_none()) {
            "fork"
        } else {
            "loop"
        };
        return Err((
            lines.len().saturating_sub(1),
            format!("`{what}` without `end`"),
        ));
    }
    Ok(stack.pop().expect("root").2)
}

/// What a script saw.
#[derive(Debug, Default)]
struct State {
    ext: Option<SliceExt>,
    loads: [Option<u64>; Field::NAMES.len()],
    last_ret: i64,
    syscall_errors: i64,
    not_interrupted: i64,
    yielded: i64,
    yield_1: i64,
    raced: i64,
    consumed: i64,
    /// The last load of `granted` (or of the whole word) saw a grant, and no `yield` has
    /// followed it yet: the next `yield` is the protocol's "if granted: yield".
    saw_granted: bool,
}

/// Count a yield the program made because it saw `granted` (by `release`, or by a `load`
/// and a `yield` step): `yielded`, then `yield_1` or `raced` by its result (§8.3).
fn count_yield(st: &mut State, r: SysResult) {
    st.yielded += 1;
    match r {
        Ok(1) => st.yield_1 += 1,
        Ok(_) => st.raced += 1,
        Err(_) => {}
    }
    ret(st, r);
}

fn ret(st: &mut State, r: SysResult) {
    match r {
        Ok(v) => st.last_ret = v,
        Err(e) => {
            st.last_ret = -i64::from(e.0);
            st.syscall_errors += 1;
        }
    }
}

fn exec(p: &mut SimPlatform<'_>, st: &mut State, steps: &[(u32, Step)]) {
    for (at, step) in steps {
        p.at_step(*at);
        match step {
            Step::Register { default_on } => {
                let flags = if *default_on {
                    consts::RSEQ_FLAG_SLICE_EXT_DEFAULT_ON
                } else {
                    0
                };
                ret(st, protocol::register(p, flags).map(|_| 0));
            }
            Step::Unregister => ret(st, protocol::unregister(p).map(|_| 0)),
            Step::Enable(on) => ret(st, protocol::slice_ext_set(p, *on).map(|_| 0)),
            Step::Request => st
                .ext
                .get_or_insert(SliceExt::assume_enabled(p.revision()))
                .request(p),
            Step::Release => {
                let ext = *st.ext.get_or_insert(SliceExt::assume_enabled(p.revision()));
                match ext.release(p) {
                    SliceOutcome::Unused => {}
                    SliceOutcome::NotInterrupted => st.not_interrupted += 1,
                    SliceOutcome::Consumed => st.consumed += 1,
                    SliceOutcome::Yielded(r) => count_yield(st, r),
                }
            }
            Step::Burn(ns) => p.burn(*ns),
            Step::Sleep(ns) => ret(st, p.syscall(Syscall::Nanosleep { ns: *ns })),
            Step::Yield => {
                let r = p.syscall(Syscall::RseqSliceYield);
                if std::mem::take(&mut st.saw_granted) {
                    count_yield(st, r);
                } else {
                    ret(st, r);
                }
            }
            Step::Getpid => ret(st, p.syscall(Syscall::Getpid)),
            Step::SchedYield => ret(st, p.syscall(Syscall::SchedYield)),
            Step::Load(f) => {
                let v = f.load(p);
                st.loads[*f as usize] = Some(v);
                match f {
                    Field::Granted => st.saw_granted = v != 0,
                    // V1's word is a value: GRANTED is bit 1 whatever the byte order.
                    Field::Ctrl if p.revision().is_v1() => {
                        st.saw_granted = v & u64::from(consts::V1_RSEQ_SLICE_EXT_GRANTED) != 0;
                    }
                    _ => {}
                }
            }
            Step::Clear(f, mask) => {
                let v = f.load(p);
                f.store(p, v & !mask);
            }
            Step::Store(f, v) => {
                let v = v.resolve(p);
                f.store(p, v);
            }
            Step::Poke { off, size, val } => {
                let v = val.resolve(p);
                match size {
                    4 => p.store_u32(*off, v as u32),
                    _ => p.store_u64(*off, v),
                }
            }
            Step::Syscall(call) => ret(st, p.syscall(*call)),
            Step::Fork(body) => {
                let body = body.clone();
                let r = p.fork(Box::new(move |c| run(c, &body)));
                ret(st, r);
            }
            Step::Mapped(m) => p.set_rseq_mapped(*m),
            Step::Membarrier(register) => {
                let cmd = if *register {
                    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ
                } else {
                    MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ
                };
                ret(
                    st,
                    p.syscall(Syscall::Membarrier {
                        cmd,
                        flags: 0,
                        cpu_id: 0,
                    }),
                );
            }
            Step::Affinity(cpu) => ret(
                st,
                p.syscall(Syscall::SchedSetaffinity(CpuSet::single(*cpu))),
            ),
            Step::Futex { wait, word, val } => {
                let call = if *wait {
                    Syscall::FutexWait {
                        word: *word,
                        expected: *val,
                    }
                } else {
                    Syscall::FutexWake {
                        word: *word,
                        count: *val,
                    }
                };
                ret(st, p.syscall(call));
            }
            Step::Panic => panic!("script step `panic`"),
            Step::Mark(m) => p.mark(*m),
            Step::Loop(n, body) => {
                for _ in 0..*n {
                    exec(p, st, body);
                }
            }
        }
    }
}

/// The hint for an expectation naming a counter by its name before loads were reported as
/// `read_FIELD`: `granted` is now `read_granted`.
pub fn renamed_counter(name: &str) -> Option<&'static str> {
    let i = Field::NAMES.iter().position(|n| *n == name)?;
    Some(Field::READ_NAMES[i])
}

/// Run a parsed script on the simulator.
pub fn run(p: &mut SimPlatform<'_>, steps: &[(u32, Step)]) -> rseq_abi::programs::Counters {
    let mut st = State::default();
    exec(p, &mut st, steps);
    let mut c: rseq_abi::programs::Counters = vec![
        ("ret", st.last_ret),
        ("syscall_errors", st.syscall_errors),
        ("not_interrupted", st.not_interrupted),
        ("yielded", st.yielded),
        ("yield_1", st.yield_1),
        ("raced", st.raced),
        ("consumed", st.consumed),
    ];
    for (i, v) in st.loads.iter().enumerate() {
        if let Some(v) = v {
            c.push((Field::READ_NAMES[i], *v as i64));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_with_loops_and_suggest_on_typos() {
        let s = parse(&[
            "register", "enable", "loop 2", "request", "burn 2us", "release", "end",
        ])
        .unwrap();
        assert_eq!(s.len(), 3);
        // Each step keeps its line; a block, its opening line.
        assert!(matches!(&s[2], (2, Step::Loop(2, body)) if body.len() == 3));
        let Step::Loop(_, body) = &s[2].1 else {
            unreachable!()
        };
        assert_eq!(body.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(
            parse(&["relase"]).unwrap_err(),
            (0, "unknown step `relase` (did you mean `release`?)".into())
        );
        assert_eq!(
            parse(&["load grnted"]).unwrap_err().1,
            "unknown field `grnted` (did you mean `granted`?)"
        );
        assert_eq!(
            parse(&["loop 2", "burn 1us"]).unwrap_err().1,
            "`loop` without `end`"
        );
        assert!(parse(&["burn 5"]).unwrap_err().1.contains("needs a unit"));
        assert_eq!(
            parse(&["mark lock_acquired 3", "mark cs_exit"]).unwrap(),
            vec![
                (0, Step::Mark(Marker::LockAcquired(SharedWord(3)))),
                (1, Step::Mark(Marker::CsExit))
            ]
        );
        assert_eq!(
            parse(&["mark lock_released"]).unwrap_err().1,
            "`mark lock_released` needs an argument"
        );
        assert_eq!(
            parse(&["mark cs_entr"]).unwrap_err().1,
            "unknown marker `cs_entr` (did you mean `cs_enter`?)"
        );
    }
}
