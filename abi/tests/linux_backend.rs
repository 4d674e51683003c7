//! The real-kernel backend (`rseq_abi::linux`) against the kernel this test runs on.
//!
//! Expectations are exact errnos. Kernels before 7.0 have no time slice extension at all:
//! `prctl(PR_RSEQ_SLICE_EXTENSION=79, …)` hits prctl's default case (`EINVAL`) and syscall
//! 471 (and V1's 470) is unassigned (`ENOSYS`); that is what the development machine
//! (Linux 6.18) returns. On 7.0+ the tests check the looser set of answers such a kernel
//! may give instead.
//!
//! glibc ≥ 2.35 registers its own rseq area in every thread, so this test process cannot
//! register ours. Tests of the success path re-run this test binary as a child process
//! with `GLIBC_TUNABLES=glibc.pthread.rseq=0` and a marker variable naming the test, whose
//! body then runs the child branch and prints a completion line the parent checks.

#![cfg(target_os = "linux")]

use std::process::Command;
use std::sync::atomic::Ordering;

use rseq_abi::consts::*;
use rseq_abi::layout::offset;
use rseq_abi::linux::probe::{self, ArgError, ProbeOptions};
use rseq_abi::linux::{
    glibc_rseq, glibc_rseq_size, kernel_version, GlibcRseq, LinuxPlatform, RegisterError,
    SharedMem, AREA_SIZE, GLIBC_HINT,
};
use rseq_abi::platform::{
    MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
};
use rseq_abi::protocol::{SetupError, SliceExt};
use rseq_abi::{CpuSet, EnableMode, Errno, Platform, Revision, SharedWord, SliceOutcome, Syscall};

const CHILD_ENV: &str = "RSEQ_ABI_LINUX_BACKEND_CHILD";
const EAGAIN: Errno = Errno(11);
const EINTR: Errno = Errno(4);

/// Is this process the child spawned by [`run_child`] for `test`?
fn in_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(test)
}

/// Re-run this test binary for `test` alone, without glibc's rseq registration, and check
/// that the child branch ran to its end.
fn run_child(test: &str) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
        .env(CHILD_ENV, test)
        .output()
        .expect("spawning the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {test} failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(&format!("CHILD-DONE {test}")),
        "child {test} did not run its branch:\n{stdout}\n{stderr}"
    );
    stdout
}

/// A kernel older than 7.0: no time slice extension, exact errnos known.
fn pre_7_0() -> bool {
    kernel_version().expect("uname -r parses") < (7, 0)
}

fn ctrl_bytes(p: &mut LinuxPlatform) -> [u8; 4] {
    [0, 1, 2, 3].map(|i| p.load_u8(offset::SLICE_CTRL + i))
}

fn rseq_call(addr: u64, len: u32, flags: u32, sig: u32) -> Syscall {
    Syscall::Rseq {
        addr,
        len,
        flags,
        sig,
    }
}

// --- registration -----------------------------------------------------------------------

#[test]
fn glibc_owned_registration_is_detected() {
    let mut p = LinuxPlatform::standalone();
    match glibc_rseq() {
        GlibcRseq::Registered { size, offset } => {
            assert!(size > 0);
            assert_eq!(glibc_rseq_size(), Some(size));
            assert!(
                offset.is_some(),
                "__rseq_offset is exported with __rseq_size"
            );
            let err = p.register_own(0).unwrap_err();
            assert_eq!(
                err,
                RegisterError::GlibcOwnsRseq {
                    errno: Errno::EINVAL,
                    glibc_size: size
                }
            );
            assert_eq!(err.errno(), Errno::EINVAL);
            assert_eq!(err.hint(), Some(GLIBC_HINT));
            assert!(GLIBC_HINT.contains("GLIBC_TUNABLES=glibc.pthread.rseq=0"));
            assert!(
                err.to_string()
                    .contains("GLIBC_TUNABLES=glibc.pthread.rseq=0"),
                "{err}"
            );
            assert!(!p.is_registered());
            // The kernel never wrote the area: cpu_id is still our zero, not -1.
            assert_eq!(p.cpu_id(), 0);
        }
        GlibcRseq::Disabled { .. } | GlibcRseq::Absent => {
            // Run with the tunable set (or not on glibc): our registration must work.
            assert_ne!(glibc_rseq_size().unwrap_or(0), 1);
            p.register_own(0).expect("registration without glibc's");
            assert!(p.is_registered());
        }
    }
    // A non-EINVAL failure is never blamed on glibc.
    assert_eq!(
        RegisterError::classify(Errno::EPERM),
        RegisterError::Kernel(Errno::EPERM)
    );
    assert_eq!(RegisterError::Kernel(Errno::EFAULT).hint(), None);
}

#[test]
fn registration_lifecycle_without_glibc_rseq() {
    const NAME: &str = "registration_lifecycle_without_glibc_rseq";
    if !in_child(NAME) {
        let out = run_child(NAME);
        assert!(out.contains("registered on cpu"), "{out}");
        return;
    }
    assert!(
        !glibc_rseq().owns_rseq(),
        "the tunable must stop glibc: {}",
        glibc_rseq()
    );

    let mut p = LinuxPlatform::standalone();
    let (addr, len, sig) = (p.rseq_addr(), p.rseq_len(), p.rseq_sig());
    assert_eq!(addr % AREA_SIZE as u64, 0);
    assert_eq!((len, sig), (32, RSEQ_SIG));
    assert_eq!(p.cpu_id(), 0, "fresh area is zeroed");

    p.register_own(0).expect("own registration");
    assert!(p.is_registered());
    let cpu = p.cpu_id();
    let mask = p.sched_getaffinity().unwrap();
    assert!(
        cpu >= 0 && mask.contains(cpu as usize),
        "cpu_id {cpu} not in {mask:?}"
    );
    assert_eq!(p.load_u32(offset::CPU_ID_START) as i32, cpu);
    println!("registered on cpu {cpu}");

    // Pinned to each allowed CPU in turn, the kernel reports exactly that CPU.
    for target in mask.iter().take(8) {
        p.syscall(Syscall::SchedSetaffinity(CpuSet::single(target)))
            .unwrap();
        p.syscall(Syscall::Getpid).unwrap();
        assert_eq!(p.cpu_id(), target as i32);
        assert_eq!(p.load_u32(offset::CPU_ID_START), target as u32);
    }
    p.syscall(Syscall::SchedSetaffinity(mask)).unwrap();

    // Re-registration (spec §2.3 step 2) and flag validation (step 1).
    assert_eq!(p.syscall(rseq_call(addr, len, 0, sig)), Err(Errno::EBUSY));
    assert_eq!(
        p.syscall(rseq_call(addr, len, 0, sig ^ 1)),
        Err(Errno::EPERM)
    );
    assert_eq!(p.syscall(rseq_call(addr, 64, 0, sig)), Err(Errno::EINVAL));
    assert_eq!(
        p.syscall(rseq_call(addr + 64, len, 0, sig)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.syscall(rseq_call(addr, len, 1 << 7, sig)),
        Err(Errno::EINVAL)
    );
    assert!(
        p.is_registered(),
        "failed calls leave the registration alone"
    );

    // Unregistration: wrong signature, wrong length, wrong pointer, then the real one.
    let unreg = RSEQ_FLAG_UNREGISTER;
    assert_eq!(
        p.syscall(rseq_call(addr, len, unreg, sig ^ 1)),
        Err(Errno::EPERM)
    );
    assert_eq!(
        p.syscall(rseq_call(addr, 64, unreg, sig)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.syscall(rseq_call(addr + 64, len, unreg, sig)),
        Err(Errno::EINVAL)
    );
    assert!(p.is_registered());
    rseq_abi::protocol::unregister(&mut p).expect("unregister");
    assert!(!p.is_registered());
    assert_eq!(p.cpu_id(), RSEQ_CPU_ID_UNINITIALIZED);
    assert_eq!(rseq_abi::protocol::unregister(&mut p), Err(Errno::EINVAL));

    // A post-7.0 sized registration is accepted too; dropping the platform unregisters,
    // so a new platform can register afterwards.
    drop(p);
    let mut p64 = LinuxPlatform::standalone().with_rseq_len(64);
    p64.register_own(0).expect("64-byte registration");
    assert!(p64.cpu_id() >= 0);
    drop(p64);
    let mut again = LinuxPlatform::standalone();
    again
        .register_own(0)
        .expect("registration after the previous platform dropped");
    println!("CHILD-DONE {NAME}");
}

#[test]
#[should_panic(expected = "refuses to register rseq memory it does not own")]
fn registering_foreign_memory_panics() {
    let mut p = LinuxPlatform::standalone();
    let other = LinuxPlatform::standalone();
    let _ = p.syscall(Syscall::Rseq {
        addr: other.rseq_addr(),
        len: 32,
        flags: 0,
        sig: RSEQ_SIG,
    });
}

#[test]
fn registrations_the_kernel_must_refuse_are_let_through() {
    let mut p = LinuxPlatform::standalone();
    let base = p.rseq_addr();
    // Misaligned, null and kernel-half addresses never reach a kernel write.
    assert_eq!(
        p.syscall(rseq_call(base + 4, 32, 0, RSEQ_SIG)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.syscall(rseq_call(0x1004, 32, 0, RSEQ_SIG)),
        Err(Errno::EINVAL)
    );
    let kernel = p.syscall(rseq_call(0xffff_ffff_ffff_0000, 32, 0, RSEQ_SIG));
    // EINVAL while glibc's registration exists, EFAULT (access_ok) otherwise.
    assert!(
        matches!(kernel, Err(Errno::EINVAL) | Err(Errno::EFAULT)),
        "{kernel:?}"
    );
    // Too short: EINVAL whoever owns the registration.
    assert_eq!(
        p.syscall(rseq_call(base, 16, 0, RSEQ_SIG)),
        Err(Errno::EINVAL)
    );
    assert!(!p.is_registered());
}

// --- the extension on this kernel ---------------------------------------------------------

#[test]
fn slice_extension_syscalls_on_this_kernel() {
    let mut p = LinuxPlatform::standalone();
    let get = rseq_abi::protocol::prctl_slice(&mut p, PR_RSEQ_SLICE_EXTENSION_GET, 0, 0, 0);
    let set = rseq_abi::protocol::slice_ext_set(&mut p, true);
    let bad = rseq_abi::protocol::prctl_slice(&mut p, PR_RSEQ_SLICE_EXTENSION_GET, 0, 1, 0);
    let yield_ = p.syscall(Syscall::RseqSliceYield);
    let nr471 = p.syscall(Syscall::Other { nr: 471 });
    let mut v1 = LinuxPlatform::standalone().with_revision(Revision::V1);
    let yield_v1 = v1.syscall(Syscall::RseqSliceYield);
    if pre_7_0() {
        // prctl option 79 does not exist: prctl's default case.
        assert_eq!(get, Err(Errno::EINVAL));
        assert_eq!(set, Err(Errno::EINVAL));
        assert_eq!(bad, Err(Errno::EINVAL));
        // 471 (merged) and 470 (V1) are unassigned.
        assert_eq!(yield_, Err(Errno::ENOSYS));
        assert_eq!(nr471, Err(Errno::ENOSYS));
        assert_eq!(yield_v1, Err(Errno::ENOSYS));
    } else {
        // 7.0+: compiled out → ENOTSUPP (524) from prctl and ENOSYS from the stub;
        // compiled in → GET answers, the yield outside a grant returns 0.
        assert!(matches!(get, Ok(0 | 1) | Err(Errno::ENOTSUPP)), "{get:?}");
        assert_eq!(
            bad,
            Err(if get.is_ok() {
                Errno::EINVAL
            } else {
                Errno::ENOTSUPP
            })
        );
        assert!(matches!(yield_, Ok(0) | Err(Errno::ENOSYS)), "{yield_:?}");
        assert_eq!(nr471, yield_);
        let _ = (set, yield_v1);
    }
    // A number no kernel assigns.
    assert_eq!(
        p.syscall(Syscall::Other { nr: 100_000 }),
        Err(Errno::ENOSYS)
    );
}

/// Set the control word to a pattern the kernel never writes, run a critical section with
/// `ext`, and check the section ran, reported Unused and left every byte alone.
fn assert_unused_section(p: &mut LinuxPlatform, ext: &SliceExt) {
    let pattern = [0xa5, 0x5a, 0x3c, 0xc3];
    for (i, b) in pattern.into_iter().enumerate() {
        p.store_u8(offset::SLICE_CTRL + i, b);
    }
    let mut ran = false;
    let (r, outcome) = ext.critical_section(p, |p| {
        ran = true;
        p.burn(1_000);
        42
    });
    assert!(ran);
    assert_eq!((r, outcome), (42, SliceOutcome::Unused));
    assert_eq!(
        ctrl_bytes(p),
        pattern,
        "an unused handle must not touch the control word"
    );
}

#[test]
fn setup_degrades_to_unused_when_glibc_owns_rseq() {
    let mut p = LinuxPlatform::standalone();
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::Prctl);
    if glibc_rseq().owns_rseq() {
        assert_eq!(err, Some(SetupError::Register(Errno::EINVAL)));
        assert!(!ext.is_active());
        assert_eq!(ext.revision(), Revision::Merged);
        assert_unused_section(&mut p, &ext);
        let (ext2, err2) = SliceExt::setup(&mut p, EnableMode::DefaultOn);
        assert_eq!(err2, Some(SetupError::Register(Errno::EINVAL)));
        assert!(!ext2.is_active());
    } else if pre_7_0() {
        assert_eq!(err, Some(SetupError::Enable(Errno::EINVAL)));
        assert_unused_section(&mut p, &ext);
    } else {
        assert_eq!(ext.is_active(), err.is_none());
    }
}

#[test]
fn registered_thread_without_the_feature() {
    const NAME: &str = "registered_thread_without_the_feature";
    if !in_child(NAME) {
        run_child(NAME);
        return;
    }
    assert!(!glibc_rseq().owns_rseq());
    if !pre_7_0() {
        println!("CHILD-DONE {NAME} (7.0+: the probe tests cover this kernel)");
        return;
    }
    // RSEQ_FLAG_SLICE_EXT_DEFAULT_ON is an unknown rseq() flag before 7.0.
    let mut on = LinuxPlatform::standalone();
    let (ext, err) = SliceExt::setup(&mut on, EnableMode::DefaultOn);
    assert_eq!(err, Some(SetupError::Register(Errno::EINVAL)));
    assert!(!ext.is_active() && !on.is_registered());
    drop(on);

    // Registration succeeds, the prctl fails with EINVAL: the handle degrades.
    let mut p = LinuxPlatform::standalone();
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::Prctl);
    assert_eq!(err, Some(SetupError::Enable(Errno::EINVAL)));
    assert!(!ext.is_active());
    assert!(p.is_registered());
    let flags = rseq_abi::protocol::read_flags(&mut p);
    assert!(!flags.available() && !flags.enabled(), "{flags:?}");
    assert_unused_section(&mut p, &ext);
    // The pattern has `request` set; no kernel before 7.0 writes bytes 28..32.
    p.syscall(Syscall::Getpid).unwrap();
    assert_eq!(ctrl_bytes(&mut p), [0xa5, 0x5a, 0x3c, 0xc3]);
    assert_eq!(
        rseq_abi::protocol::slice_ext_get(&mut p),
        Err(Errno::EINVAL),
        "GET on a registered thread"
    );
    drop(p);

    // The probe with its own registration: fails at the prctl, exit code 6.
    let report = probe::run(&ProbeOptions {
        duration_ms: 50,
        ..Default::default()
    });
    assert_eq!(report.register, Some(Ok(())));
    assert_eq!(report.prctl_set, Some(Err(Errno::EINVAL)));
    assert_eq!(report.prctl_get, Err(Errno::EINVAL));
    assert_eq!(report.slice_yield, Err(Errno::ENOSYS));
    assert_eq!(report.flags.map(|f| f.0), Some(0));
    assert!(report.cpu_id.is_some_and(|c| c >= 0));
    assert!(report.run.is_none());
    assert_eq!(report.exit_code(), probe::EXIT_ENABLE);
    let text = report.to_string();
    assert!(
        text.contains("len 64, flags 0x0, sig 0x53053053) = 0\n"),
        "{text}"
    );
    assert!(
        text.contains("SET, ENABLE, 0, 0) = -1 EINVAL (22)"),
        "{text}"
    );
    assert!(text.contains("(AVAILABLE 0, ENABLED 0)"), "{text}");
    println!("CHILD-DONE {NAME}");
}

// --- the probe ----------------------------------------------------------------------------

#[test]
fn probe_reports_setup_failure() {
    let mut p = LinuxPlatform::standalone();
    let before = p.sched_getaffinity().unwrap();
    let report = probe::run(&ProbeOptions {
        duration_ms: 50,
        ..Default::default()
    });
    assert_eq!(
        p.sched_getaffinity().unwrap(),
        before,
        "the probe restores the affinity"
    );
    assert_eq!(report.options.params().total_ns, 50_000_000);
    if pre_7_0() {
        assert_eq!(report.prctl_get, Err(Errno::EINVAL));
        assert_eq!(report.slice_yield, Err(Errno::ENOSYS));
        assert!(!report.setup_ok());
        assert!(report.run.is_none(), "no loop after a failed setup");
    }
    let text = report.to_string();
    assert!(text.contains("GET, 0, 0, 0) = "), "{text}");
    assert!(
        text.ends_with(&format!("# exit code {}\n", report.exit_code())),
        "{text}"
    );
    if let GlibcRseq::Registered { size, .. } = glibc_rseq() {
        let err = RegisterError::GlibcOwnsRseq {
            errno: Errno::EINVAL,
            glibc_size: size,
        };
        assert_eq!(report.register, Some(Err(err)));
        assert_eq!(
            report.prctl_set, None,
            "prctl is not attempted after a failed register"
        );
        assert_eq!((report.flags, report.cpu_id), (None, None));
        assert_eq!(report.exit_code(), probe::EXIT_GLIBC_OWNS_RSEQ);
        assert!(
            text.contains("len 64, flags 0x0, sig 0x53053053) = -1 EINVAL (22)"),
            "{text}"
        );
        assert!(text.contains(&format!("# hint: {GLIBC_HINT}")), "{text}");
    }
}

#[test]
fn probe_force_runs_the_loop_without_the_feature() {
    for variant in probe::VARIANTS {
        let opts = ProbeOptions {
            duration_ms: 50,
            variant,
            force: true,
            ..Default::default()
        };
        let report = probe::run(&opts);
        let run = report.run.as_ref().expect("--force runs the loop");
        assert_eq!(run.invariants, Ok(()));
        let c = run.counters;
        assert!(c.total >= 1);
        if pre_7_0() {
            // Nothing ever grants or consumes the request.
            assert_eq!(
                (c.success, c.yielded, c.aborted, c.scheduled, c.raced),
                (c.total, 0, 0, 0, 0)
            );
            assert_ne!(report.exit_code(), probe::EXIT_OK);
        }
        let text = report.to_string();
        assert!(
            text.contains(&format!("# Total     {:12}\n", c.total)),
            "{text}"
        );
        assert!(
            text.contains(&format!("# Raced     {:12}\n", c.raced)),
            "{text}"
        );
    }
}

#[test]
fn probe_options_parse() {
    let parse = |s: &str| ProbeOptions::parse(s.split_whitespace().map(String::from));
    assert_eq!(parse(""), Ok(ProbeOptions::default()));
    assert_eq!(ProbeOptions::default().duration_ms, 5_000);
    // Linux 7.2 by default, with a registration long enough for ABI v2; 7.0 and V1 know
    // only 32 bytes, unless told otherwise.
    let d = ProbeOptions::default();
    assert_eq!((d.revision, d.rseq_len), (Revision::PostMerge, 64));
    assert_eq!(parse("--revision 7.0").unwrap().rseq_len, 32);
    assert_eq!(
        parse("--revision merged").unwrap().revision,
        Revision::Merged
    );
    assert_eq!(parse("--revision 7.0 --rseq-len 64").unwrap().rseq_len, 64);
    let o =
        parse("--duration-ms 250 --variant n2_2_50_no_yield --rseq-len=64 --revision v1 --force")
            .unwrap();
    assert_eq!(
        o,
        ProbeOptions {
            duration_ms: 250,
            variant: "n2_2_50_no_yield",
            rseq_len: 64,
            revision: Revision::V1,
            force: true
        }
    );
    assert!(o.params().no_yield);
    assert_eq!(o.params().total_ns, 250_000_000);
    assert_eq!(parse("--help"), Err(ArgError::Help));
    assert!(matches!(parse("--variant n9"), Err(ArgError::Bad(_))));
    assert!(matches!(parse("--rseq-len 512"), Err(ArgError::Bad(_))));
    assert!(matches!(parse("--duration-ms"), Err(ArgError::Bad(_))));
    assert!(matches!(parse("--bogus"), Err(ArgError::Bad(_))));
}

// --- shared words, futex, affinity, misc syscalls ------------------------------------------

#[test]
fn shared_words_are_shared_between_threads() {
    let shared = SharedMem::new(2);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut p = LinuxPlatform::new(shared);
                for _ in 0..1000 {
                    p.shared_fetch_add(SharedWord(0), 1);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut p = LinuxPlatform::new(shared.clone());
    assert_eq!(p.shared_load(SharedWord(0)), 2000);
    assert_eq!(p.shared_cas(SharedWord(1), 0, 7), Ok(0));
    assert_eq!(p.shared_cas(SharedWord(1), 0, 9), Err(7));
    p.shared_store(SharedWord(1), 3);
    assert_eq!(shared.word(SharedWord(1)).load(Ordering::SeqCst), 3);
    assert_eq!(shared.len(), 2);
}

#[test]
fn futex_wait_and_wake_between_threads() {
    let shared = SharedMem::new(2);
    let (word, woken) = (SharedWord(0), SharedWord(1));
    let waiter = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let mut p = LinuxPlatform::new(shared);
            let mut results = Vec::new();
            while p.shared_load(word) == 0 {
                let r = p.syscall(Syscall::FutexWait { word, expected: 0 });
                if r == Ok(0) {
                    p.shared_fetch_add(woken, 1);
                }
                results.push(r);
            }
            results
        })
    };
    let mut p = LinuxPlatform::new(shared.clone());
    // Keep waking one waiter until the kernel reports it woke one: then the waiter was
    // asleep in FUTEX_WAIT and that wait returns 0. (Bounded only to turn a hang into a
    // failure; nothing here depends on timing.)
    let deadline = p.clock_ns() + 30_000_000_000;
    loop {
        let r = p.syscall(Syscall::FutexWake { word, count: 1 }).unwrap();
        assert!(r <= 1, "woke {r} with one waiter");
        if r == 1 {
            break;
        }
        assert!(
            p.clock_ns() < deadline,
            "the waiter never slept in FUTEX_WAIT"
        );
        p.syscall(Syscall::Nanosleep { ns: 100_000 }).unwrap();
    }
    p.shared_store(word, 1);
    p.syscall(Syscall::FutexWake {
        word,
        count: u32::MAX,
    })
    .unwrap();
    let results = waiter.join().unwrap();
    assert!(results.contains(&Ok(0)), "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(0) | Err(EAGAIN) | Err(EINTR))),
        "{results:?}"
    );
    assert!(p.shared_load(woken) >= 1);
}

#[test]
fn futex_exact_results_without_a_partner() {
    let mut p = LinuxPlatform::new(SharedMem::new(1));
    p.shared_store(SharedWord(0), 5);
    // The value is not the expected one: EAGAIN (11) at once.
    assert_eq!(
        p.syscall(Syscall::FutexWait {
            word: SharedWord(0),
            expected: 4
        }),
        Err(EAGAIN)
    );
    assert_eq!(
        p.syscall(Syscall::FutexWake {
            word: SharedWord(0),
            count: 1
        }),
        Ok(0)
    );
}

#[test]
#[should_panic(expected = "SharedWord(3) out of range")]
fn shared_word_out_of_range_panics() {
    let mut p = LinuxPlatform::new(SharedMem::new(3));
    p.shared_load(SharedWord(3));
}

#[test]
fn affinity_roundtrip() {
    let mut p = LinuxPlatform::standalone();
    let original = p.sched_getaffinity().unwrap();
    assert!(!original.is_empty());
    let last = original.iter().last().unwrap();
    assert_eq!(
        p.syscall(Syscall::SchedSetaffinity(CpuSet::single(last))),
        Ok(0)
    );
    assert_eq!(p.sched_getaffinity().unwrap(), CpuSet::single(last));
    assert_eq!(
        p.syscall(Syscall::SchedSetaffinity(CpuSet::empty())),
        Err(Errno::EINVAL)
    );
    assert_eq!(p.syscall(Syscall::SchedSetaffinity(original)), Ok(0));
    assert_eq!(p.sched_getaffinity().unwrap(), original);
}

#[test]
fn plain_syscalls() {
    let mut p = LinuxPlatform::standalone();
    assert_eq!(
        p.syscall(Syscall::Getpid),
        Ok(i64::from(std::process::id()))
    );
    assert_eq!(p.syscall(Syscall::SchedYield), Ok(0));
    assert_eq!(p.syscall(Syscall::Nanosleep { ns: 1_000 }), Ok(0));
    let t0 = p.clock_ns();
    p.burn(20_000);
    assert!(
        p.clock_ns() - t0 >= 20_000,
        "burn returns only after the time has passed"
    );

    // MEMBARRIER_CMD_QUERY lists the rseq commands; using one before registering for it
    // is EPERM, afterwards it succeeds.
    let query = p
        .syscall(Syscall::Membarrier {
            cmd: 0,
            flags: 0,
            cpu_id: 0,
        })
        .unwrap();
    if query & i64::from(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) != 0 {
        let rseq = Syscall::Membarrier {
            cmd: MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ,
            flags: 0,
            cpu_id: 0,
        };
        assert_eq!(p.syscall(rseq), Err(Errno::EPERM));
        let reg = Syscall::Membarrier {
            cmd: MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
            flags: 0,
            cpu_id: 0,
        };
        assert_eq!(p.syscall(reg), Ok(0));
        assert_eq!(p.syscall(rseq), Ok(0));
    }
    assert_eq!(
        p.syscall(Syscall::Membarrier {
            cmd: 1 << 30,
            flags: 0,
            cpu_id: 0
        }),
        Err(Errno::EINVAL)
    );
}

#[test]
#[should_panic(expected = "would end or corrupt the calling thread")]
fn other_refuses_thread_exit() {
    let mut p = LinuxPlatform::standalone();
    let _ = p.syscall(Syscall::Other { nr: libc::SYS_exit });
}

// --- the area -----------------------------------------------------------------------------

#[test]
fn area_loads_stores_and_local_test_and_clear() {
    let mut p = LinuxPlatform::standalone();
    p.store_u64(offset::RSEQ_CS, 0x1122_3344_5566_7788);
    let lo = p.load_u32(offset::RSEQ_CS);
    let hi = p.load_u32(offset::RSEQ_CS + 4);
    assert_eq!(u64::from(hi) << 32 | u64::from(lo), 0x1122_3344_5566_7788);
    p.store_u32(offset::SLICE_CTRL, 0x0403_0201);
    assert_eq!(ctrl_bytes(&mut p), 0x0403_0201u32.to_ne_bytes());
    p.store_u8(offset::GRANTED, 0xff);
    assert_eq!(p.load_u8(offset::GRANTED), 0xff);
    assert_eq!(p.load_u8(offset::REQUEST), 0x01);

    // V1's REQUEST clear: returns the old bit, clears only that bit.
    p.store_u32(
        offset::SLICE_CTRL,
        V1_RSEQ_SLICE_EXT_REQUEST | V1_RSEQ_SLICE_EXT_GRANTED,
    );
    assert!(p.test_and_clear_bit_local(offset::SLICE_CTRL, V1_RSEQ_SLICE_EXT_REQUEST_BIT));
    assert_eq!(p.load_u32(offset::SLICE_CTRL), V1_RSEQ_SLICE_EXT_GRANTED);
    assert!(!p.test_and_clear_bit_local(offset::SLICE_CTRL, V1_RSEQ_SLICE_EXT_REQUEST_BIT));
    assert_eq!(p.load_u32(offset::SLICE_CTRL), V1_RSEQ_SLICE_EXT_GRANTED);
    p.store_u32(offset::FLAGS, u32::MAX);
    assert!(p.test_and_clear_bit_local(offset::FLAGS, 31));
    assert_eq!(p.load_u32(offset::FLAGS), u32::MAX >> 1);
    // Neighbours untouched.
    assert_eq!(p.load_u32(offset::NODE_ID), 0);
    assert_eq!(p.load_u32(offset::MM_CID), 0);

    // A 64-byte registration length makes bytes 32..64 addressable.
    let mut big = LinuxPlatform::standalone().with_rseq_len(64);
    big.store_u8(32, 1);
    assert_eq!(big.load_u32(32), u32::from_ne_bytes([1, 0, 0, 0]));
}

#[test]
#[should_panic(expected = "outside the registered 32 bytes")]
fn area_access_past_rseq_len_panics() {
    let mut p = LinuxPlatform::standalone();
    p.load_u8(offset::END);
}

#[test]
#[should_panic(expected = "misaligned 4-byte rseq area access")]
fn misaligned_area_access_panics() {
    let mut p = LinuxPlatform::standalone();
    p.store_u32(offset::CPU_ID + 2, 1);
}
