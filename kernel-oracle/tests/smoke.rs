//! The kernel's own rseq code driven by hand through one task's life: registration,
//! a grant on an interrupt exit, the timer arming and expiry, the revoke and schedule on
//! the next exit, a second grant relinquished with `rseq_slice_yield()`, prctl, and a
//! fault at grant time. Every step checks the kernel's answer and its counters.

use kernel_oracle::{KTask, Kernel, PtRegs};
use rseq_abi::consts::*;
use rseq_abi::layout::offset;

const BASE: u64 = 0x7f00_0000_0000;
const SIG: u32 = RSEQ_SIG;

fn kernel() -> Option<Kernel> {
    match Kernel::lock() {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            if std::env::var_os("SLICESIM_ORACLE_REQUIRED").is_some() {
                panic!("SLICESIM_ORACLE_REQUIRED is set but {e}");
            }
            None
        }
    }
}

fn word(mem: &[u8; 256]) -> [u8; 4] {
    mem[offset::SLICE_CTRL..offset::SLICE_CTRL + 4]
        .try_into()
        .unwrap()
}

fn u32_at(mem: &[u8; 256], off: usize) -> u32 {
    u32::from_le_bytes(mem[off..off + 4].try_into().unwrap())
}

#[test]
fn a_task_life_through_the_kernel_code() {
    let Some(mut k) = kernel() else { return };
    let tif = k.tif();
    let mut mem = [0xaau8; 256];
    let mut regs = PtRegs {
        ip: 0x40_1000,
        user: 1,
    };
    // Whole exit loops below: schedule() must switch the task out and in.
    k.set_switch_on_schedule(true);
    k.load_task(&KTask {
        cpu: 1,
        mm_cid: 1,
        ids_cpu_id: u32::MAX,
        ..KTask::default()
    });
    k.set_user(BASE, &mem, true);

    // Registration, 64 bytes, enabled by default.
    let r = k.sys_rseq(BASE, 64, RSEQ_FLAG_SLICE_EXT_DEFAULT_ON as i32, SIG);
    assert_eq!(r, 0);
    let t = k.task();
    assert_eq!(
        (t.has_rseq, t.enabled, t.ids_changed, t.sched_switch),
        (2, 1, 1, 1)
    );
    assert_ne!(t.tif & tif.rseq, 0, "rseq_force_update raises TIF_RSEQ");
    k.user(&mut mem);
    assert_eq!(
        u32_at(&mem, offset::FLAGS),
        RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE | RSEQ_CS_FLAG_SLICE_EXT_ENABLED
    );
    assert_eq!(u32_at(&mem, offset::CPU_ID), u32::MAX);
    assert_eq!(word(&mem), [0; 4]);
    // Registering again: EBUSY.
    assert_eq!(k.sys_rseq(BASE, 64, 0, SIG), -16);

    // The first exit to user writes the IDs.
    assert!(!k.exit_restart(t.tif, &mut regs));
    k.user(&mut mem);
    assert_eq!(u32_at(&mem, offset::CPU_ID), 1);
    let t = k.task();
    assert_eq!(t.tif & tif.rseq, 0);
    assert_eq!(t.sched_switch, 0);

    // User space requests; an interrupt with a reschedule pending: granted.
    mem[offset::REQUEST] = 1;
    k.set_user(BASE, &mem, true);
    let mut t = k.task();
    t.user_irq = 1;
    t.tif |= tif.need_resched;
    k.load_task(&t);
    k.set_clock(1_000_000);
    assert!(k.grant(t.tif));
    let t = k.task();
    assert_eq!((t.granted, t.expires), (1, 1_005_000));
    assert_eq!(t.tif & tif.need_resched, 0, "the grant clears NEED_RESCHED");
    k.user(&mut mem);
    assert_eq!(word(&mem), [0, 1, 0, 0]);
    assert_eq!(k.stats().granted(), 1);

    // Arming on the way out.
    assert!(!k.exit_restart(t.tif, &mut regs));
    let timer = k.timer();
    assert!(timer.armed && timer.cookie_is_current);
    assert_eq!(timer.expires, 1_005_000);
    assert_ne!(k.task().syscall_work & tif.syscall_rseq_slice, 0);

    // The timer fires while the task is still current and granted.
    k.set_clock(1_005_001);
    assert!(k.fire_slice_timer());
    assert_eq!(k.stats().expired(), 1);
    let t = k.task();
    assert_ne!(t.tif & tif.need_resched, 0);

    // The interrupt's exit: the second reschedule revokes and schedules.
    let mut t = t;
    t.user_irq = 1;
    k.load_task(&t);
    k.reset_effects();
    k.exit_loop(t.tif, &mut regs);
    assert_eq!(k.effects().schedules, 1);
    let t = k.task();
    assert_eq!(t.granted, 0);
    assert_eq!(k.stats().revoked(), 1);
    k.user(&mut mem);
    assert_eq!(word(&mem), [0; 4]);

    // A second grant, relinquished with rseq_slice_yield().
    mem[offset::REQUEST] = 1;
    k.set_user(BASE, &mem, true);
    let mut t = k.task();
    t.user_irq = 1;
    t.sched_switch = 0;
    t.tif = tif.need_resched_lazy;
    k.load_task(&t);
    k.set_clock(2_000_000);
    assert!(k.grant(t.tif));
    assert!(!k.exit_restart(k.task().tif, &mut regs));
    assert!(k.timer().armed);
    let mut t = k.task();
    t.user_irq = 0;
    k.load_task(&t);
    k.reset_effects();
    let nr = k.nr_rseq_slice_yield();
    assert_eq!(nr, 471);
    k.syscall_enter_work(nr);
    let t = k.task();
    assert_eq!((t.granted, t.yielded), (0, 1));
    assert_eq!(t.syscall_work & tif.syscall_rseq_slice, 0);
    assert!(!k.timer().armed, "the syscall work cancels the timer");
    assert_eq!(k.stats().yielded(), 1);
    assert_eq!(
        k.effects().preempt_schedules,
        1,
        "preempt_enable() reschedules"
    );
    assert_eq!(k.effects().depths, [0, 0, 0]);
    k.user(&mut mem);
    assert_eq!(word(&mem), [0; 4]);
    assert_eq!(k.sys_rseq_slice_yield(), 1);
    assert_eq!(k.sys_rseq_slice_yield(), 0);

    // prctl.
    assert_eq!(
        k.prctl(PR_RSEQ_SLICE_EXTENSION_GET, 0),
        PR_RSEQ_SLICE_EXT_ENABLE as i32
    );
    assert_eq!(k.prctl(PR_RSEQ_SLICE_EXTENSION_GET, 1), -22);

    // A fault at grant time: SIGSEGV, and TIF_SIGPENDING so the exit loop delivers it.
    let mut t = k.task();
    t.user_irq = 1;
    t.tif = tif.need_resched;
    k.load_task(&t);
    k.set_user(BASE, &mem, false);
    k.reset_effects();
    assert!(!k.grant(t.tif));
    let e = k.effects();
    assert_eq!((e.signals, e.last_signal), (1, 11));
    assert_ne!(k.task().tif & tif.sigpending, 0);
}

#[test]
fn the_deny_masks_are_the_kernels() {
    let Some(mut k) = kernel() else { return };
    let tif = k.tif();
    let work = k.exit_to_user_mode_work();
    assert_eq!(
        k.slice_ext_deny(),
        work & !(tif.need_resched | tif.need_resched_lazy)
    );
    k.set_preempt(kernel_oracle::PreemptModel::Rt);
    assert_eq!(k.slice_ext_deny(), work & !tif.need_resched_lazy);
}
