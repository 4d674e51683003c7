//! Calibration micro-benchmarks (issue 14): how long the kernel takes for the paths the
//! simulator charges a cost for, measured from user space with `CLOCK_MONOTONIC`.
//!
//! Each function here is one thread's side of one benchmark, written against
//! [`Platform`] like every other program: a syscall round trip (`getpid`), a vDSO clock
//! read, an access to the thread's `struct rseq` and to a shared word, the interrupt round
//! trip of the scheduler tick seen as a gap in a clock-polling loop, the expiry latency
//! of a sleep's hrtimer (with 1 ns of timer slack and with the default slack), a futex
//! ping-pong between two threads on one CPU (context switches) and a futex wakeup of a
//! thread waiting on an idle CPU (wakeup IPI and switch). The real-kernel runner
//! (`rseq_abi::linux::calibrate`) starts the threads, pins them and collects the samples
//! into a [`CalFrame`], which the VM prints on its console and `slicesim-vm calibrate`
//! turns into a machine profile.
//!
//! Samples are raw nanoseconds of guest time; a batched benchmark reports the time of a
//! whole batch with its size ([`Series::per`]) and the host divides. Statistics are the
//! host's business, so the console holds everything a profile is computed from.

use crate::platform::{Platform, SharedWord, Syscall};

/// `PR_SET_TIMERSLACK` (`include/uapi/linux/prctl.h`): the calling thread's timer slack in
/// ns; 0 restores the thread's default (50 µs for a normal task).
pub const PR_SET_TIMERSLACK: i32 = 29;

/// Prefix of every line of a calibration frame on the console.
pub const CAL_PREFIX: &str = "SLICESIM-CAL";
/// Version of the calibration frame format, in its `BEGIN` line.
pub const CAL_VERSION: u32 = 1;
/// Values per `data` line (keeps console lines short).
const PER_LINE: usize = 16;

/// One benchmark's samples.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    /// The benchmark's name (`syscall`, `clock_read`, ...).
    pub name: String,
    /// Operations per sample: a sample is the time of `per` operations.
    pub per: u32,
    /// Samples, ns of guest time.
    pub values: Vec<u64>,
}

/// Everything one calibration boot reported.
///
/// On the console:
///
/// ```text
/// SLICESIM-CAL BEGIN 1
/// SLICESIM-CAL meta kernel = 7.2.13
/// SLICESIM-CAL series syscall per 16
/// SLICESIM-CAL data syscall 5120 5088 5104
/// SLICESIM-CAL END 3
/// ```
///
/// `END` carries the number of values, so a frame cut short is an error. Lines that do
/// not start with [`CAL_PREFIX`] (kernel messages) are skipped; `host` lines, which
/// `slicesim-vm calibrate` appends after the boot (the qemu version, the clock), are read
/// into [`CalFrame::host`] wherever they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CalFrame {
    /// `meta` lines from the guest: key and free text.
    pub meta: Vec<(String, String)>,
    /// `host` lines: facts about the boot only the host knows.
    pub host: Vec<(String, String)>,
    /// The benchmarks in the order reported.
    pub series: Vec<Series>,
}

/// Why console text is not a well-formed calibration frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalFrameError {
    /// No `BEGIN` line.
    #[error("no `{CAL_PREFIX} BEGIN` line: the calibration did not run")]
    NoBegin,
    /// A line that does not parse.
    #[error("line {line}: cannot read `{text}`: {why}")]
    BadLine {
        /// 1-based console line.
        line: usize,
        /// The line.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No `END` line.
    #[error("the calibration frame has no END line: cut short after {values} values")]
    Truncated {
        /// Values read.
        values: usize,
    },
    /// `END n` does not match.
    #[error("END says {expected} values but the frame has {found}")]
    CountMismatch {
        /// From the END line.
        expected: usize,
        /// Read.
        found: usize,
    },
}

impl CalFrame {
    /// The value of meta key `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        find(&self.meta, key)
    }

    /// The value of host key `key`.
    pub fn host(&self, key: &str) -> Option<&str> {
        find(&self.host, key)
    }

    /// The series called `name`.
    pub fn series(&self, name: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.name == name)
    }

    /// The frame as console lines (each ends with `\n`).
    pub fn render(&self) -> String {
        let mut s = format!("{CAL_PREFIX} BEGIN {CAL_VERSION}\n");
        for (k, v) in &self.meta {
            s += &format!("{CAL_PREFIX} meta {k} = {v}\n");
        }
        let mut n = 0;
        for series in &self.series {
            s += &format!("{CAL_PREFIX} series {} per {}\n", series.name, series.per);
            for chunk in series.values.chunks(PER_LINE) {
                let vals: Vec<String> = chunk.iter().map(u64::to_string).collect();
                s += &format!("{CAL_PREFIX} data {} {}\n", series.name, vals.join(" "));
                n += chunk.len();
            }
        }
        s += &format!("{CAL_PREFIX} END {n}\n");
        for (k, v) in &self.host {
            s += &format!("{CAL_PREFIX} host {k} = {v}\n");
        }
        s
    }

    /// Read the calibration frame out of console text.
    pub fn parse(text: &str) -> Result<CalFrame, CalFrameError> {
        let mut frame: Option<CalFrame> = None;
        let mut host = Vec::new();
        let mut values = 0;
        let mut ended = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let Some(at) = raw.find(CAL_PREFIX) else {
                continue;
            };
            let body = raw[at + CAL_PREFIX.len()..].trim();
            let bad = |why| CalFrameError::BadLine {
                line,
                text: raw.trim_end().to_string(),
                why,
            };
            let (word, rest) = body.split_once(' ').unwrap_or((body, ""));
            let kv = || {
                rest.split_once(" = ")
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .ok_or_else(|| bad("expected `key = value`"))
            };
            match (word, frame.as_mut()) {
                ("host", _) => host.push(kv()?),
                ("BEGIN", Some(_)) => return Err(bad("a second BEGIN")),
                ("BEGIN", None) => {
                    if rest.trim() != CAL_VERSION.to_string() {
                        return Err(bad("unknown calibration frame version"));
                    }
                    frame = Some(CalFrame::default());
                }
                (_, None) => continue,
                (_, Some(_)) if ended.is_some() => continue,
                ("meta", Some(f)) => f.meta.push(kv()?),
                ("series", Some(f)) => {
                    let mut w = rest.split_whitespace();
                    let (Some(name), Some("per"), Some(per), None) =
                        (w.next(), w.next(), w.next(), w.next())
                    else {
                        return Err(bad("expected `series NAME per N`"));
                    };
                    let per = per.parse().map_err(|_| bad("`per` is not a number"))?;
                    f.series.push(Series {
                        name: name.to_string(),
                        per,
                        values: Vec::new(),
                    });
                }
                ("data", Some(f)) => {
                    let mut w = rest.split_whitespace();
                    let name = w.next().ok_or_else(|| bad("expected `data NAME v...`"))?;
                    let s = f
                        .series
                        .iter_mut()
                        .rev()
                        .find(|s| s.name == name)
                        .ok_or_else(|| bad("data for a series never announced"))?;
                    for v in w {
                        s.values
                            .push(v.parse().map_err(|_| bad("a value is not a number"))?);
                        values += 1;
                    }
                }
                ("END", Some(_)) => {
                    let n: usize = rest.trim().parse().map_err(|_| bad("END needs a count"))?;
                    ended = Some(n);
                }
                (_, Some(_)) => return Err(bad("unknown line kind")),
            }
        }
        let mut frame = frame.ok_or(CalFrameError::NoBegin)?;
        match ended {
            None => Err(CalFrameError::Truncated { values }),
            Some(n) if n != values => Err(CalFrameError::CountMismatch {
                expected: n,
                found: values,
            }),
            Some(_) => {
                frame.host = host;
                Ok(frame)
            }
        }
    }
}

fn find<'a>(list: &'a [(String, String)], key: &str) -> Option<&'a str> {
    list.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------
// One thread's side of each benchmark
// ---------------------------------------------------------------------------------------

/// `clock_read`: `batches` samples, each the time of `per` back-to-back clock reads
/// (`per + 1` reads bracket `per` intervals).
pub fn clock_reads<P: Platform>(p: &mut P, batches: usize, per: u32) -> Vec<u64> {
    (0..batches)
        .map(|_| {
            let t0 = p.clock_ns();
            let mut t = t0;
            for _ in 0..per {
                t = p.clock_ns();
            }
            t - t0
        })
        .collect()
}

/// `syscall`: `batches` samples, each the time of `per` `getpid()` round trips plus one
/// clock read (the host subtracts it).
pub fn syscalls<P: Platform>(p: &mut P, batches: usize, per: u32) -> Vec<u64> {
    (0..batches)
        .map(|_| {
            let t0 = p.clock_ns();
            for _ in 0..per {
                let _ = p.syscall(Syscall::Getpid);
            }
            p.clock_ns() - t0
        })
        .collect()
}

/// `mem_access`: `batches` samples of `per` loads of the thread's `struct rseq`
/// `cpu_id_start` (a volatile L1 load with its loop), plus one clock read.
pub fn rseq_loads<P: Platform>(p: &mut P, batches: usize, per: u32) -> Vec<u64> {
    (0..batches)
        .map(|_| {
            let t0 = p.clock_ns();
            let mut x = 0u32;
            for _ in 0..per {
                x = x.wrapping_add(p.load_u32(crate::layout::offset::CPU_ID_START));
            }
            let t = p.clock_ns() - t0;
            core::hint::black_box(x);
            t
        })
        .collect()
}

/// `shared_access`: `batches` samples of `per` atomic increments of an uncontended
/// shared word (a locked read-modify-write), plus one clock read.
pub fn shared_adds<P: Platform>(p: &mut P, word: SharedWord, batches: usize, per: u32) -> Vec<u64> {
    (0..batches)
        .map(|_| {
            let t0 = p.clock_ns();
            for _ in 0..per {
                p.shared_fetch_add(word, 1);
            }
            p.clock_ns() - t0
        })
        .collect()
}

/// `irq_latency`: poll the clock for `duration_ns` and return every gap between two
/// consecutive reads longer than `threshold_ns`: on an otherwise idle CPU those are the
/// interrupts (the tick, every 1 ms at HZ=1000), each gap one interrupt's entry, handler
/// and return to user, plus one clock read.
pub fn clock_gaps<P: Platform>(p: &mut P, duration_ns: u64, threshold_ns: u64) -> Vec<u64> {
    let start = p.clock_ns();
    let mut last = start;
    let mut gaps = Vec::new();
    while last - start < duration_ns {
        let t = p.clock_ns();
        if t - last > threshold_ns {
            gaps.push(t - last);
        }
        last = t;
    }
    gaps
}

/// The shortest gap between two clock reads in `reads` reads: the polling loop's own
/// period, from which [`clock_gaps`]'s threshold is chosen.
pub fn min_clock_gap<P: Platform>(p: &mut P, reads: u32) -> u64 {
    let mut last = p.clock_ns();
    let mut min = u64::MAX;
    for _ in 0..reads {
        let t = p.clock_ns();
        min = min.min(t - last);
        last = t;
    }
    min
}

/// Sleep overshoot: `n` relative sleeps of `sleep_ns` (`clock_nanosleep`), each sample
/// the time from before the syscall to after it minus `sleep_ns`: the hrtimer's slack and
/// expiry latency, the wakeup and the syscall round trip. The caller sets the thread's
/// timer slack first ([`set_timer_slack`]).
pub fn sleep_overshoots<P: Platform>(p: &mut P, sleep_ns: u64, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let t0 = p.clock_ns();
            let _ = p.syscall(Syscall::Nanosleep { ns: sleep_ns });
            (p.clock_ns() - t0).saturating_sub(sleep_ns)
        })
        .collect()
}

/// The busy CPU's wake path, the sleeper's side: [`sleep_overshoots`] while another
/// thread spins on the same CPU ([`spin_until_stopped`]), then `stop` is set. Each wake
/// comes as a timer interrupt into the spinner's user code and switches to the sleeper
/// at that interrupt's exit (while the sleeper is owed service: the fastest samples).
pub fn busy_overshoots<P: Platform>(
    p: &mut P,
    sleep_ns: u64,
    n: usize,
    stop: SharedWord,
) -> Vec<u64> {
    let out = sleep_overshoots(p, sleep_ns, n);
    p.shared_store(stop, 1);
    out
}

/// The spinner beside [`busy_overshoots`]: run user code until `stop` is set.
pub fn spin_until_stopped<P: Platform>(p: &mut P, stop: SharedWord) {
    while p.shared_load(stop) == 0 {
        p.burn(1_000);
    }
}

/// Wait until sleeps end on time: sleep `sleep_ns` (the caller has set a 1 ns slack) until
/// `in_a_row` consecutive sleeps overshoot by less than `on_time_ns`, at most `max_sleeps`
/// sleeps; returns how many it took (`max_sleeps` if it never settled).
///
/// Right after boot the kernel's hrtimers run in low-resolution mode: until the TSC
/// clocksource is verified and installed, every timer expires at the next tick (a 100 µs
/// sleep takes 1 ms at HZ=1000). Under qemu's instruction counting an idle guest's clock
/// jumps ahead, so the init script starts well before that switch; measuring then would
/// measure the tick, not the hrtimer.
pub fn settle_hres<P: Platform>(
    p: &mut P,
    sleep_ns: u64,
    on_time_ns: u64,
    in_a_row: u32,
    max_sleeps: u32,
) -> u32 {
    let mut good = 0;
    for n in 1..=max_sleeps {
        let t0 = p.clock_ns();
        let _ = p.syscall(Syscall::Nanosleep { ns: sleep_ns });
        let over = (p.clock_ns() - t0).saturating_sub(sleep_ns);
        good = if over < on_time_ns { good + 1 } else { 0 };
        if good == in_a_row {
            return n;
        }
    }
    max_sleeps
}

/// `prctl(PR_SET_TIMERSLACK, ns)`: 0 restores the default.
pub fn set_timer_slack<P: Platform>(p: &mut P, ns: u64) -> crate::SysResult {
    p.syscall(Syscall::Prctl {
        option: PR_SET_TIMERSLACK,
        arg2: ns,
        arg3: 0,
        arg4: 0,
        arg5: 0,
    })
}

/// The ping-pong's word: 0 = the follower's turn is over (the leader may go on), 1 = the
/// follower's turn, 2 = stop.
const PING_IDLE: u32 = 0;
const PING_GO: u32 = 1;
const PING_STOP: u32 = 2;

/// What one side of the ping-pong did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingPong {
    /// Per round (leader only): the time from handing the turn over to getting it back.
    pub rounds: Vec<u64>,
    /// futex syscalls this side made (wakes and waits, blocking or not).
    pub futex_calls: u64,
}

/// `ctx_switch`, the leader's side: `rounds` rounds of handing the turn to the follower
/// (set `word` to 1, wake it) and waiting for it back (futex wait while 1). With both
/// threads on one CPU every round is two context switches; the runner subtracts the
/// futex syscalls both sides counted (see `slicesim-vm`'s calibration arithmetic).
pub fn pingpong_leader<P: Platform>(p: &mut P, word: SharedWord, rounds: usize) -> PingPong {
    let mut out = PingPong::default();
    for _ in 0..rounds {
        let t0 = p.clock_ns();
        p.shared_store(word, PING_GO);
        let _ = p.syscall(Syscall::FutexWake { word, count: 1 });
        out.futex_calls += 1;
        while p.shared_load(word) == PING_GO {
            let _ = p.syscall(Syscall::FutexWait {
                word,
                expected: PING_GO,
            });
            out.futex_calls += 1;
        }
        out.rounds.push(p.clock_ns() - t0);
    }
    p.shared_store(word, PING_STOP);
    let _ = p.syscall(Syscall::FutexWake { word, count: 1 });
    out
}

/// `ctx_switch`, the follower's side: wait for the turn, hand it back, until told to stop.
pub fn pingpong_follower<P: Platform>(p: &mut P, word: SharedWord) -> PingPong {
    let mut out = PingPong::default();
    loop {
        let mut v = p.shared_load(word);
        while v == PING_IDLE {
            let _ = p.syscall(Syscall::FutexWait {
                word,
                expected: PING_IDLE,
            });
            out.futex_calls += 1;
            v = p.shared_load(word);
        }
        if v == PING_STOP {
            return out;
        }
        p.shared_store(word, PING_IDLE);
        let _ = p.syscall(Syscall::FutexWake { word, count: 1 });
        out.futex_calls += 1;
    }
}

/// The shared words of the cross-CPU wakeup: the sequence number the waker sets, the
/// waker's timestamp (two halves) and the sleeper's acknowledgement.
#[derive(Clone, Copy, Debug)]
pub struct WakeWords {
    /// Set to the round number (1, 2, ...) by the waker, then woken.
    pub go: SharedWord,
    /// Low 32 bits of the waker's clock right before its wake.
    pub t_lo: SharedWord,
    /// High 32 bits.
    pub t_hi: SharedWord,
    /// Set to the round number by the sleeper once it has taken its timestamp.
    pub ack: SharedWord,
}

/// Cross-CPU wakeup, the waker's side: `n` rounds of sleeping `idle_ns` (so the sleeper's
/// CPU has gone idle), publishing a timestamp, setting `go` and waking the sleeper, then
/// waiting for its acknowledgement.
pub fn wake_remote<P: Platform>(p: &mut P, w: WakeWords, n: u32, idle_ns: u64) {
    for round in 1..=n {
        let _ = p.syscall(Syscall::Nanosleep { ns: idle_ns });
        let t0 = p.clock_ns();
        p.shared_store(w.t_lo, t0 as u32);
        p.shared_store(w.t_hi, (t0 >> 32) as u32);
        p.shared_store(w.go, round);
        let _ = p.syscall(Syscall::FutexWake {
            word: w.go,
            count: 1,
        });
        loop {
            let a = p.shared_load(w.ack);
            if a == round {
                break;
            }
            let _ = p.syscall(Syscall::FutexWait {
                word: w.ack,
                expected: a,
            });
        }
    }
}

/// Cross-CPU wakeup, the sleeper's side: for each of `n` rounds, wait on `go` and take the
/// time from the waker's timestamp to running again. Only rounds where the sleeper really
/// slept (its futex wait returned 0, woken) are samples; the rest are counted in the
/// second value.
pub fn wake_sleeper<P: Platform>(p: &mut P, w: WakeWords, n: u32) -> (Vec<u64>, u64) {
    let (mut samples, mut not_asleep) = (Vec::new(), 0);
    for round in 1..=n {
        let mut slept = false;
        loop {
            let g = p.shared_load(w.go);
            if g == round {
                break;
            }
            slept = p
                .syscall(Syscall::FutexWait {
                    word: w.go,
                    expected: g,
                })
                .is_ok();
        }
        let t1 = p.clock_ns();
        let t0 = u64::from(p.shared_load(w.t_lo)) | u64::from(p.shared_load(w.t_hi)) << 32;
        if slept {
            samples.push(t1.saturating_sub(t0));
        } else {
            not_asleep += 1;
        }
        p.shared_store(w.ack, round);
        let _ = p.syscall(Syscall::FutexWake {
            word: w.ack,
            count: 1,
        });
    }
    (samples, not_asleep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CalFrame {
        CalFrame {
            meta: vec![("kernel".into(), "7.2.13".into())],
            host: vec![("qemu".into(), "QEMU emulator version 7.2.22".into())],
            series: vec![
                Series {
                    name: "syscall".into(),
                    per: 16,
                    values: (0..40).collect(),
                },
                Series {
                    name: "ipi".into(),
                    per: 1,
                    values: vec![7, 8],
                },
            ],
        }
    }

    #[test]
    fn a_frame_reads_back_from_a_console_with_noise_around_it() {
        let f = sample();
        let text = format!(
            "SeaBIOS\nSLICESIM-VM START\n{}ACPI Error: x\nSLICESIM-VM DONE\n",
            f.render().replace('\n', "\r\n")
        );
        assert_eq!(CalFrame::parse(&text), Ok(f.clone()));
        assert_eq!(f.series("syscall").unwrap().values.len(), 40);
        assert_eq!(f.meta("kernel"), Some("7.2.13"));
        assert!(f.render().contains("SLICESIM-CAL END 42\n"));
    }

    #[test]
    fn a_cut_or_damaged_frame_is_an_error() {
        let text = sample().render();
        assert_eq!(CalFrame::parse("nothing"), Err(CalFrameError::NoBegin));
        let cut: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert!(matches!(
            CalFrame::parse(&cut),
            Err(CalFrameError::Truncated { .. })
        ));
        let lost = text.replacen("SLICESIM-CAL data ipi 7 8\n", "", 1);
        assert_eq!(
            CalFrame::parse(&lost),
            Err(CalFrameError::CountMismatch {
                expected: 42,
                found: 40
            })
        );
        let bad = text.replace("data ipi 7 8", "data ipi 7 x");
        assert!(matches!(
            CalFrame::parse(&bad),
            Err(CalFrameError::BadLine { .. })
        ));
    }
}
