//! The kernel's rseq and time slice extension paths.
//!
//! Follows `kernel/rseq.c` and `include/linux/rseq_entry.h` as merged for 7.0 (spec §2–§7),
//! with the V1 posting and the post-7.0 fixes as revisions: registration
//! (`sys_rseq`), `PR_RSEQ_SLICE_EXTENSION`, the grant decision
//! (`rseq_grant_slice_extension`), the exit-to-user update (`rseq_exit_to_user_mode_restart`,
//! R3/R4/R5), the enforcement timer (`rseq_arm_slice_extension_timer`,
//! `rseq_slice_expired`), the syscall-entry work (`rseq_syscall_enter_work`, R6) and
//! `sys_rseq_slice_yield`.

use rseq_abi::consts::*;
use rseq_abi::layout::offset;
use rseq_abi::{CtrlWord, Errno, Revision, SysResult};

use crate::config::AvailableWhenBootDisabled;
use crate::event::{Event, IrqKind};
use crate::sim::Simulation;
use crate::task::*;
use crate::trace::{FaultCause, LogKind, RevokePath};

/// The IDs registration (and the 7.0 model's unregistration) write: CPU ids
/// uninitialized, node and cid 0; also the kernel's cached IDs after `rseq_reset()`.
const UNINIT_IDS: [u32; 4] = [u32::MAX, u32::MAX, 0, 0];

/// The IDs 7.2's `rseq_reset_ids()` writes at unregistration: `cpu_id_start = 0`.
const RESET_IDS: [u32; 4] = [0, u32::MAX, 0, 0];

/// x86_64 `TASK_SIZE` (user addresses are below it).
pub const TASK_SIZE: u64 = 0x0000_7fff_ffff_f000;

/// The user instruction pointer the kernel model evaluates `rseq_cs` against. User code
/// in the simulator has no instruction pointer of its own, so every task is "at" this
/// address (the start of a static x86_64 binary's text): a descriptor covers it only if
/// a scenario builds one that does.
pub const USER_IP: u64 = 0x0040_1000;

/// Why a 7.2 rseq update did not complete (`rseq_event::error`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum UpdateFail {
    /// A user access faulted (`fatal` clear): the fast path retries in the slow path.
    Fault,
    /// Invalid user data (`fatal` set): SIGSEGV once the slow path sees it.
    Fatal(FaultCause),
}

impl Simulation {
    fn rev(&self) -> Revision {
        self.cfg.revision
    }

    /// `rseq_slice_clear_grant()` (`include/linux/rseq_entry.h`): clear the kernel grant,
    /// counting `s_revoked` when `count` and it was active.
    fn rseq_slice_clear_grant(&mut self, cpu: u32, tid: u32, count: bool) -> bool {
        let t = &mut self.tasks[tid as usize];
        let was = t.rseq.granted;
        t.rseq.granted = false;
        if was && count {
            self.cpus[cpu as usize].stats.revoked += 1;
        }
        was
    }

    /// `rseq_slice_clear_user()` (`include/linux/rseq_entry.h`): write the user word to
    /// zero and log the path (`false` = fault).
    fn clear_user_word(&mut self, cpu: u32, tid: u32, path: RevokePath, was_granted: bool) -> bool {
        let before = self.read_ctrl(tid);
        let ok = self.write_ctrl(tid, CtrlWord::ZERO);
        if let (true, Some(before)) = (ok, before) {
            self.emit(
                cpu,
                Some(tid),
                LogKind::Revoke {
                    path,
                    before,
                    after: CtrlWord::ZERO,
                    was_granted,
                },
            );
        }
        ok
    }

    // ---- registration (spec §2.3) ----------------------------------------------------

    /// `sys_rseq(addr, len, flags, sig)` (`kernel/rseq.c`): `rseq_unregister()` for the
    /// unregister flag, else the checks and `rseq_register()`.
    pub(crate) fn sys_rseq(
        &mut self,
        cpu: u32,
        tid: u32,
        addr: u64,
        len: u32,
        flags: u32,
        sig: u32,
    ) -> SysResult {
        if let Some(o) = self.observer.take() {
            let site = crate::observe::Site::SysRseq {
                addr,
                len,
                flags,
                sig,
            };
            return self.observed(o, site, cpu, Some(tid), |s| {
                s.sys_rseq(cpu, tid, addr, len, flags, sig)
            });
        }
        if flags & RSEQ_FLAG_UNREGISTER != 0 {
            return self.rseq_unregister(cpu, tid, addr, len, flags, sig);
        }
        let allowed = if self.rev() == Revision::V1 {
            0
        } else {
            RSEQ_FLAG_SLICE_EXT_DEFAULT_ON
        };
        if flags & !allowed != 0 {
            return Err(Errno::EINVAL);
        }
        if let Some(reg) = self.tasks[tid as usize].rseq.reg {
            if reg.addr != addr || reg.len != len {
                return Err(Errno::EINVAL);
            }
            if reg.sig != sig {
                return Err(Errno::EPERM);
            }
            return Err(Errno::EBUSY);
        }
        if len < ORIG_RSEQ_SIZE {
            return Err(Errno::EINVAL);
        }
        if len == ORIG_RSEQ_SIZE && addr % u64::from(ORIG_RSEQ_SIZE) != 0 {
            return Err(Errno::EINVAL);
        }
        // Post-7.0 the struct grew past 32 bytes, so a longer registration needs 64-byte
        // alignment (checked against Linux 7.2 in docs/fidelity.md).
        let (feature_size, align) = match self.rev() {
            Revision::PostMerge => (POST_MERGE_RSEQ_FEATURE_SIZE, POST_MERGE_RSEQ_ALLOC_ALIGN),
            _ => (RSEQ_FEATURE_SIZE, RSEQ_ALLOC_ALIGN),
        };
        if len != ORIG_RSEQ_SIZE && (addr % u64::from(align) != 0 || len < feature_size) {
            return Err(Errno::EINVAL);
        }
        if addr
            .checked_add(u64::from(len))
            .is_none_or(|end| end > TASK_SIZE)
        {
            return Err(Errno::EFAULT);
        }
        // Post-7.0: registrations larger than 32 bytes are ABI v2 (generic IRQ entry).
        let v2 = self.rev() != Revision::PostMerge || len > ORIG_RSEQ_SIZE;
        let key = self.cfg.static_key();
        let mut rseqfl = 0;
        if self.cfg.config_slice_ext && v2 {
            let hide = self.cfg.effective_available_when_boot_disabled()
                == AvailableWhenBootDisabled::Hide;
            if key || !hide {
                rseqfl |= RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE;
            }
            if key && flags & RSEQ_FLAG_SLICE_EXT_DEFAULT_ON != 0 {
                rseqfl |= RSEQ_CS_FLAG_SLICE_EXT_ENABLED;
            }
        }
        // One user-write section: any fault → EFAULT, registration not activated.
        if self.tasks[tid as usize]
            .mem
            .offset(addr, len.min(crate::coro::RSEQ_AREA_SIZE as u32) as usize)
            .is_none()
        {
            return Err(Errno::EFAULT);
        }
        let ok = self.write_u32_at(tid, addr, offset::RSEQ_CS, 0)
            && self.write_u32_at(tid, addr, offset::RSEQ_CS + 4, 0)
            && self.write_u32_at(tid, addr, offset::FLAGS, rseqfl)
            && self.write_ids(tid, addr, UNINIT_IDS);
        if !ok {
            return Err(Errno::EFAULT);
        }
        let t = &mut self.tasks[tid as usize];
        t.rseq.reg = Some(Registration { addr, len, sig, v2 });
        if v2 && self.cfg.config_slice_ext {
            // R1: the word is cleared unconditionally (post-7.0 legacy registrations keep
            // it; without CONFIG_RSEQ_SLICE_EXTENSION the kernel has no such field).
            self.clear_user_word(cpu, tid, RevokePath::R1Register, false);
        }
        let t = &mut self.tasks[tid as usize];
        t.rseq.enabled = rseqfl & RSEQ_CS_FLAG_SLICE_EXT_ENABLED != 0;
        t.rseq.ids_written = None;
        // Force an ID update on the way out (also zeroes the word again, spec §2.3 step 7).
        t.rseq.ids_changed = true;
        t.rseq.sched_switch = true;
        t.tif |= TIF_RSEQ;
        Ok(0)
    }

    /// `rseq_unregister()` (`kernel/rseq.c`). 7.2: `rseq_reset_ids()` writes only the ID
    /// fields (`cpu_id_start = 0`) and `rseq_reset()` zeroes the state, counting nothing;
    /// 7.0 and V1 clear the slice word too (R7).
    fn rseq_unregister(
        &mut self,
        cpu: u32,
        tid: u32,
        addr: u64,
        len: u32,
        flags: u32,
        sig: u32,
    ) -> SysResult {
        if flags != RSEQ_FLAG_UNREGISTER {
            return Err(Errno::EINVAL);
        }
        let Some(reg) = self.tasks[tid as usize].rseq.reg else {
            return Err(Errno::EINVAL);
        };
        if reg.addr != addr || reg.len != len {
            return Err(Errno::EINVAL);
        }
        if reg.sig != sig {
            return Err(Errno::EPERM);
        }
        let ok = if self.rev() == Revision::PostMerge {
            // 7.2 `rseq_reset_ids()` then `rseq_reset()`: only the ID fields are written
            // (cpu_id_start = 0), the word is left alone and the state wiped uncounted.
            self.write_ids(tid, addr, RESET_IDS)
        } else {
            let ok = self.write_ids(tid, addr, UNINIT_IDS);
            let was = self.tasks[tid as usize].rseq.granted;
            let ok = ok
                && (!self.cfg.static_key()
                    || !reg.v2
                    || self.clear_user_word(cpu, tid, RevokePath::R7Unregister, was));
            self.rseq_slice_clear_grant(cpu, tid, true);
            ok
        };
        if !ok {
            self.force_sig(
                cpu,
                tid,
                rseq_abi::consts::signal::SIGSEGV,
                Some(FaultCause::UnregisterFault),
            );
            return Err(Errno::EFAULT);
        }
        self.tasks[tid as usize].rseq = RseqTask::default();
        Ok(0)
    }

    // ---- prctl (spec §2.4) -----------------------------------------------------------

    /// `prctl(PR_RSEQ_SLICE_EXTENSION, arg2, arg3, arg4, arg5)` →
    /// `rseq_slice_extension_prctl()` (`kernel/rseq.c`); other options → EINVAL.
    /// `args` are `arg2..arg5`.
    pub(crate) fn sys_prctl(
        &mut self,
        cpu: u32,
        tid: u32,
        option: i32,
        args: [u64; 4],
    ) -> SysResult {
        if let Some(o) = self.observer.take() {
            let site = crate::observe::Site::Prctl { option, args };
            return self.observed(o, site, cpu, Some(tid), |s| {
                s.sys_prctl(cpu, tid, option, args)
            });
        }
        let [a2, a3, a4, a5] = args;
        if option != PR_RSEQ_SLICE_EXTENSION {
            return Err(Errno::EINVAL);
        }
        if a4 != 0 || a5 != 0 {
            return Err(Errno::EINVAL);
        }
        if !self.cfg.config_slice_ext {
            // The stub: ENOTSUPP in the merged code, EINVAL in V1 (spec §11, §13 q1).
            return Err(if self.rev() == Revision::V1 {
                Errno::EINVAL
            } else {
                Errno::ENOTSUPP
            });
        }
        match a2 {
            PR_RSEQ_SLICE_EXTENSION_GET => {
                if a3 != 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(i64::from(self.tasks[tid as usize].rseq.enabled)
                    * PR_RSEQ_SLICE_EXT_ENABLE as i64)
            }
            PR_RSEQ_SLICE_EXTENSION_SET => self.prctl_set(cpu, tid, a3),
            _ => Err(Errno::EINVAL),
        }
    }

    fn prctl_set(&mut self, cpu: u32, tid: u32, a3: u64) -> SysResult {
        if a3 & !PR_RSEQ_SLICE_EXT_ENABLE != 0 {
            return Err(Errno::EINVAL);
        }
        let enable = a3 & PR_RSEQ_SLICE_EXT_ENABLE != 0;
        if !self.cfg.static_key() {
            return Err(Errno::ENOTSUPP);
        }
        let Some(reg) = self.tasks[tid as usize].rseq.reg else {
            return Err(Errno::ENXIO);
        };
        if !reg.v2 {
            return Err(Errno::ENOTSUPP);
        }
        let current = self.tasks[tid as usize].rseq.enabled;
        if enable == current {
            return Ok(0);
        }
        let segv = |s: &mut Self, flags: u32| {
            s.force_sig(
                cpu,
                tid,
                rseq_abi::consts::signal::SIGSEGV,
                Some(FaultCause::PrctlFlags { flags }),
            );
            Err(Errno::EFAULT)
        };
        let Some(flags) = self.read_u32(tid, offset::FLAGS) else {
            return segv(self, 0);
        };
        let mut required = RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE;
        if current {
            required |= RSEQ_CS_FLAG_SLICE_EXT_ENABLED;
        }
        if flags & required != required {
            return segv(self, flags);
        }
        let mut new = (flags & !RSEQ_CS_FLAG_SLICE_EXT_ENABLED) | RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE;
        if enable {
            new |= RSEQ_CS_FLAG_SLICE_EXT_ENABLED;
        }
        if !self.write_u32_at(tid, reg.addr, offset::FLAGS, new) {
            return segv(self, flags);
        }
        self.tasks[tid as usize].rseq.enabled = enable;
        Ok(0)
    }

    // ---- the grant decision (spec §3.2) ----------------------------------------------

    /// `rseq_grant_slice_extension(work_pending)`: true = extension granted, the caller
    /// skips `schedule()`.
    pub(crate) fn rseq_grant_slice_extension(
        &mut self,
        cpu: u32,
        tid: u32,
        work_pending: u32,
    ) -> bool {
        if let Some(o) = self.observer.take() {
            let site = crate::observe::Site::Grant { work_pending };
            return self.observed(o, site, cpu, Some(tid), |s| {
                s.rseq_grant_slice_extension(cpu, tid, work_pending)
            });
        }
        if !self.cfg.static_key() {
            self.emit(
                cpu,
                Some(tid),
                LogKind::NoGrant {
                    why: "boot_switch_off",
                },
            );
            return false;
        }
        let t = &self.tasks[tid as usize];
        let enabled = t.rseq.enabled && t.rseq.user_irq;
        let granted = t.rseq.granted;
        if !enabled && !granted {
            // Step 2: say which half failed, so `explain` can answer "why no grant?".
            let why = match (t.rseq.reg.is_some(), t.rseq.enabled) {
                (false, _) => "not_registered",
                (true, false) => "not_enabled",
                (true, true) => "no_user_irq",
            };
            self.emit(cpu, Some(tid), LogKind::NoGrant { why });
            return false;
        }
        let Some(word) = self.read_ctrl(tid) else {
            self.force_sig(
                cpu,
                tid,
                rseq_abi::consts::signal::SIGSEGV,
                Some(FaultCause::GrantFault),
            );
            return false;
        };
        if work_pending != 0 || granted {
            if !granted {
                // Step 4 refuses a request: on PREEMPT_RT a non-lazy NEED_RESCHED alone is
                // "other work" (only lazy reschedules may be extended, spec §3.1).
                let why = if work_pending & !TIF_NEED_RESCHED == 0 {
                    "rt_lazy_only"
                } else {
                    "exit_work"
                };
                self.emit(cpu, Some(tid), LogKind::NoGrant { why });
            }
            if !self.write_ctrl(tid, CtrlWord::ZERO) {
                self.force_sig(
                    cpu,
                    tid,
                    rseq_abi::consts::signal::SIGSEGV,
                    Some(FaultCause::GrantFault),
                );
                return false;
            }
            let was = self.rseq_slice_clear_grant(cpu, tid, true);
            self.emit(
                cpu,
                Some(tid),
                LogKind::Revoke {
                    path: RevokePath::R2GrantPath,
                    before: word,
                    after: CtrlWord::ZERO,
                    was_granted: was,
                },
            );
            return false;
        }
        let (rev, endian) = (self.rev(), self.cfg.endian);
        if !word.is_requested(rev, endian) {
            self.emit(cpu, Some(tid), LogKind::NoGrant { why: "request=0" });
            return false;
        }
        let after = word.after_grant(rev, endian);
        if !self.write_ctrl(tid, after) {
            self.force_sig(
                cpu,
                tid,
                rseq_abi::consts::signal::SIGSEGV,
                Some(FaultCause::GrantFault),
            );
            return false;
        }
        self.cpus[cpu as usize].stats.granted += 1;
        let expires = self.fast_clock_ns() + u64::from(self.slice_ext_nsec);
        let t = &mut self.tasks[tid as usize];
        t.rseq.granted = true;
        t.rseq.expires = expires;
        t.tif &= !(TIF_NEED_RESCHED | TIF_NEED_RESCHED_LAZY);
        self.emit(
            cpu,
            Some(tid),
            LogKind::Grant {
                before: word,
                after,
                expires,
            },
        );
        true
    }

    // ---- exit to user: rseq update and timer arming (spec §4.2, §5) -------------------

    /// `rseq_exit_to_user_mode_restart()`: true = run the exit work loop again.
    pub(crate) fn rseq_exit_to_user_mode_restart(
        &mut self,
        cpu: u32,
        tid: u32,
        ti_work: u32,
    ) -> bool {
        if let Some(o) = self.observer.take() {
            let site = crate::observe::Site::ExitRestart { ti_work };
            return self.observed(o, site, cpu, Some(tid), |s| {
                s.rseq_exit_to_user_mode_restart(cpu, tid, ti_work)
            });
        }
        if ti_work & TIF_RSEQ != 0 {
            if self.rev() == Revision::PostMerge {
                if self.rseq_exit_to_user_mode_restart_72(cpu, tid) {
                    return true;
                }
            } else {
                self.tasks[tid as usize].tif &= !TIF_RSEQ;
                if !self.rseq_update_user(cpu, tid, false) {
                    // The fast path runs with page faults disabled: defer to the slow path.
                    self.tasks[tid as usize].tif |= TIF_NOTIFY_RESUME;
                    return true;
                }
            }
        }
        self.rseq_arm_slice_extension_timer(cpu, tid)
    }

    /// 7.2 `__rseq_exit_to_user_mode_restart()` (`include/linux/rseq_entry.h`): only a
    /// task with `sched_switch` is updated; a failure defers to the slow path with
    /// `TIF_RSEQ` still set. True = loop again.
    fn rseq_exit_to_user_mode_restart_72(&mut self, cpu: u32, tid: u32) -> bool {
        if self.tasks[tid as usize].rseq.sched_switch {
            self.cpus[cpu as usize].rseq_stats.fastpath += 1;
        }
        if self.tasks[tid as usize].rseq.sched_switch
            && self.rseq_exit_user_update(cpu, tid).is_err()
        {
            let t = &mut self.tasks[tid as usize];
            t.rseq.slowpath = true;
            t.tif |= TIF_NOTIFY_RESUME;
            return true;
        }
        let t = &mut self.tasks[tid as usize];
        t.rseq.clear_events();
        t.tif &= !TIF_RSEQ;
        false
    }

    /// 7.2 `rseq_exit_user_update()`: with unchanged IDs only `rseq_cs` is read, the word
    /// and the grant cleared (R3) and, in debug mode or with a set `rseq_cs`, the section
    /// evaluated; the read-only ID check and the ID write happen only when IDs changed.
    fn rseq_exit_user_update(&mut self, cpu: u32, tid: u32) -> Result<(), UpdateFail> {
        let t = &self.tasks[tid as usize];
        let Some(reg) = t.rseq.reg else {
            return Ok(());
        };
        if t.rseq.ids_changed {
            return self.rseq_update_usr(cpu, tid, RevokePath::R4IdsChanged);
        }
        let csaddr = self.read_rseq_cs(tid).ok_or(UpdateFail::Fault)?;
        if reg.v2 && self.cfg.static_key() {
            let was = self.tasks[tid as usize].rseq.granted;
            if !self.clear_user_word(cpu, tid, RevokePath::R3SchedSwitch, was) {
                return Err(UpdateFail::Fault);
            }
        }
        self.rseq_slice_clear_grant(cpu, tid, true);
        if self.cfg.rseq_debug || csaddr != 0 {
            return self.rseq_update_user_cs(cpu, tid, csaddr);
        }
        Ok(())
    }

    /// 7.2 `rseq_update_usr()` → `rseq_set_ids_get_csaddr()`: validate the read-only ID
    /// fields (ABI v2 or debug) against the cached IDs, write the new IDs, read `rseq_cs`,
    /// clear the word (v2) and the grant; then evaluate `rseq_cs` only after an interrupt
    /// from user mode, unless in debug mode.
    fn rseq_update_usr(&mut self, cpu: u32, tid: u32, path: RevokePath) -> Result<(), UpdateFail> {
        let t = &self.tasks[tid as usize];
        let Some(reg) = t.rseq.reg else {
            return Ok(());
        };
        let cached = t.rseq.ids_written.unwrap_or(UNINIT_IDS);
        if self.cfg.rseq_debug || reg.v2 {
            let found = self.read_ids(tid).ok_or(UpdateFail::Fault)?;
            // cpu_id_start against the cache, cpu_id against cpu_id_start, node and cid
            // against the cache.
            if found[0] != cached[0]
                || found[1] != found[0]
                || found[2] != cached[2]
                || found[3] != cached[3]
            {
                return Err(UpdateFail::Fatal(FaultCause::IdFieldTampered));
            }
        }
        let cpu_id = self.tasks[tid as usize].cpu;
        let ids = [cpu_id, cpu_id, 0, cpu_id];
        if !self.write_ids(tid, reg.addr, ids) {
            return Err(UpdateFail::Fault);
        }
        let csaddr = self.read_rseq_cs(tid).ok_or(UpdateFail::Fault)?;
        if reg.v2 && self.cfg.static_key() {
            let was = self.tasks[tid as usize].rseq.granted;
            if !self.clear_user_word(cpu, tid, path, was) {
                return Err(UpdateFail::Fault);
            }
        }
        self.rseq_slice_clear_grant(cpu, tid, true);
        self.tasks[tid as usize].rseq.ids_written = Some(ids);
        self.cpus[cpu as usize].rseq_stats.ids += 1;
        self.emit(cpu, Some(tid), LogKind::IdsUpdate { cpu_id });
        if !self.cfg.rseq_debug && !self.tasks[tid as usize].rseq.user_irq {
            return Ok(());
        }
        if csaddr == 0 {
            return Ok(());
        }
        self.rseq_update_user_cs(cpu, tid, csaddr)
    }

    /// 7.2 `rseq_update_user_cs()` and, in debug mode, `rseq_debug_update_user_cs()`:
    /// evaluate the critical section descriptor at `csaddr` against the task's instruction
    /// pointer ([`USER_IP`], or the instruction of the restartable sequence it is in):
    /// outside → clear `rseq_cs` (`clear`); inside → clear it and fix the IP up to
    /// `abort_ip` (`fixup`), which the program sees as the sequence's abort. Every call
    /// counts `cs`, as the kernel's first statement does. The non-debug variant checks only what protects the kernel (an
    /// `abort_ip` in user space, preceded by the signature); the debug variant checks
    /// everything and that the entry was an interrupt from user mode.
    pub(crate) fn rseq_update_user_cs(
        &mut self,
        cpu: u32,
        tid: u32,
        csaddr: u64,
    ) -> Result<(), UpdateFail> {
        self.cpus[cpu as usize].rseq_stats.cs += 1;
        if csaddr >= TASK_SIZE {
            return Err(UpdateFail::Fatal(FaultCause::RseqCsInvalid));
        }
        self.rseq_cs_evaluate(cpu, tid, csaddr, self.cfg.rseq_debug)
    }

    /// The evaluation itself: `rseq_debug_update_user_cs()` when `debug`, else the body
    /// of `rseq_update_user_cs()` (which counts `cs` before; the debug syscall-return
    /// check calls the debug variant directly and counts nothing).
    fn rseq_cs_evaluate(
        &mut self,
        cpu: u32,
        tid: u32,
        csaddr: u64,
        debug: bool,
    ) -> Result<(), UpdateFail> {
        use rseq_abi::layout::cs_offset;
        let bad = |why: &'static str| Err(UpdateFail::Fatal(FaultCause::RseqCsDescriptor { why }));
        let ip = self.tasks[tid as usize].ip;
        let rd = |s: &Self, off: usize| s.read_user_u64(tid, csaddr + off as u64);
        let sig = self.tasks[tid as usize].rseq.reg.map_or(0, |r| r.sig);
        let abort_ip;
        if debug {
            let start_ip = rd(self, cs_offset::START_IP).ok_or(UpdateFail::Fault)?;
            if start_ip >= TASK_SIZE {
                return bad("start_ip beyond TASK_SIZE");
            }
            if ip < start_ip {
                return self.rseq_cs_clear(cpu, tid);
            }
            let off = rd(self, cs_offset::POST_COMMIT_OFFSET).ok_or(UpdateFail::Fault)?;
            let end = start_ip.wrapping_add(off);
            if end >= TASK_SIZE || end < start_ip {
                return bad("post_commit_offset overflows");
            }
            if ip >= end {
                return self.rseq_cs_clear(cpu, tid);
            }
            abort_ip = rd(self, cs_offset::ABORT_IP).ok_or(UpdateFail::Fault)?;
            if !(4..TASK_SIZE).contains(&abort_ip) {
                return bad("abort_ip outside user space");
            }
            if abort_ip.wrapping_sub(start_ip) < off {
                return bad("abort_ip inside the critical section");
            }
            if rd(self, cs_offset::VERSION).ok_or(UpdateFail::Fault)? != 0 {
                return bad("version or flags not 0");
            }
            let usig = self
                .read_user_u32(tid, abort_ip - 4)
                .ok_or(UpdateFail::Fault)?;
            if usig != sig {
                return bad("signature mismatch at abort_ip");
            }
            if !self.tasks[tid as usize].rseq.user_irq {
                return bad("inside a critical section without an interrupt from user mode");
            }
        } else {
            let start_ip = rd(self, cs_offset::START_IP).ok_or(UpdateFail::Fault)?;
            let off = rd(self, cs_offset::POST_COMMIT_OFFSET).ok_or(UpdateFail::Fault)?;
            abort_ip = rd(self, cs_offset::ABORT_IP).ok_or(UpdateFail::Fault)?;
            if ip.wrapping_sub(start_ip) >= off {
                return self.rseq_cs_clear(cpu, tid);
            }
            if !(4..TASK_SIZE).contains(&abort_ip) {
                return bad("abort_ip outside user space");
            }
            let usig = self
                .read_user_u32(tid, abort_ip - 4)
                .ok_or(UpdateFail::Fault)?;
            if usig != sig {
                return bad("signature mismatch at abort_ip");
            }
        }
        if !self.write_rseq_cs_zero(tid) {
            return Err(UpdateFail::Fault);
        }
        let t = &mut self.tasks[tid as usize];
        t.ip = abort_ip;
        t.seq_abort = true;
        self.cpus[cpu as usize].rseq_stats.fixup += 1;
        self.emit(
            cpu,
            Some(tid),
            LogKind::RseqCs {
                fixup: Some(abort_ip),
            },
        );
        Ok(())
    }

    /// The `clear:` label of the `rseq_cs` evaluation: the IP is outside the section.
    fn rseq_cs_clear(&mut self, cpu: u32, tid: u32) -> Result<(), UpdateFail> {
        if !self.write_rseq_cs_zero(tid) {
            return Err(UpdateFail::Fault);
        }
        self.cpus[cpu as usize].rseq_stats.clear += 1;
        self.emit(cpu, Some(tid), LogKind::RseqCs { fixup: None });
        Ok(())
    }

    /// Kernel 64-bit read of `rseq->rseq_cs` (`None` = fault).
    fn read_rseq_cs(&self, tid: u32) -> Option<u64> {
        let addr = self.tasks[tid as usize].rseq.reg?.addr;
        self.read_user_u64(tid, addr + offset::RSEQ_CS as u64)
    }

    /// Kernel 64-bit write of 0 to `rseq->rseq_cs` (`false` = fault).
    fn write_rseq_cs_zero(&mut self, tid: u32) -> bool {
        let Some(reg) = self.tasks[tid as usize].rseq.reg else {
            return false;
        };
        self.write_u32_at(tid, reg.addr, offset::RSEQ_CS, 0)
            && self.write_u32_at(tid, reg.addr, offset::RSEQ_CS + 4, 0)
    }

    /// The rseq user update after a switch or ID change (R3/R4; R5 when `slow`).
    /// Returns false on a fault.
    fn rseq_update_user(&mut self, cpu: u32, tid: u32, slow: bool) -> bool {
        let t = &self.tasks[tid as usize];
        let Some(reg) = t.rseq.reg else { return true };
        let (switched, ids_changed) = (t.rseq.sched_switch, t.rseq.ids_changed);
        let legacy = !reg.v2;
        if !switched && !ids_changed && !legacy {
            return true;
        }
        if t.mem.offset(reg.addr, offset::END).is_none() {
            return false;
        }
        // Post-7.0 read-only ABI enforcement (v2 registrations, or debug mode).
        if let Some(ids) = t.rseq.ids_written {
            let check = (self.rev() == Revision::PostMerge && reg.v2) || self.cfg.rseq_debug;
            if check && self.read_ids(tid) != Some(ids) {
                return self.rseq_fatal(cpu, tid, slow, FaultCause::IdFieldTampered);
            }
        }
        let cpu_id = self.tasks[tid as usize].cpu;
        let ids = [cpu_id, cpu_id, 0, cpu_id];
        if ids_changed || legacy || self.tasks[tid as usize].rseq.ids_written != Some(ids) {
            self.write_ids(tid, reg.addr, ids);
            self.tasks[tid as usize].rseq.ids_written = Some(ids);
            self.emit(cpu, Some(tid), LogKind::IdsUpdate { cpu_id });
        }
        // rseq_cs: evaluated against the task's instruction pointer (inside a restartable
        // sequence: aborted), as 7.2 does.
        let cs_lo = self.read_u32(tid, offset::RSEQ_CS).unwrap_or(0);
        let cs_hi = self.read_u32(tid, offset::RSEQ_CS + 4).unwrap_or(0);
        let cs = match self.cfg.endian {
            rseq_abi::Endian::Little => u64::from(cs_lo) | u64::from(cs_hi) << 32,
            rseq_abi::Endian::Big => u64::from(cs_hi) | u64::from(cs_lo) << 32,
        };
        if cs != 0 {
            match self.rseq_update_user_cs(cpu, tid, cs) {
                Ok(()) => {}
                Err(UpdateFail::Fault) => return false,
                Err(UpdateFail::Fatal(cause)) => return self.rseq_fatal(cpu, tid, slow, cause),
            }
        }
        let was = self.tasks[tid as usize].rseq.granted;
        if self.cfg.static_key() && reg.v2 {
            let path = match (slow, ids_changed) {
                (true, _) => RevokePath::R5SlowPath,
                (false, true) => RevokePath::R4IdsChanged,
                (false, false) => RevokePath::R3SchedSwitch,
            };
            self.clear_user_word(cpu, tid, path, was);
        }
        self.rseq_slice_clear_grant(cpu, tid, true);
        let r = &mut self.tasks[tid as usize].rseq;
        r.sched_switch = false;
        r.ids_changed = false;
        r.user_irq = false;
        true
    }

    /// Write `cpu_id_start, cpu_id, node_id, mm_cid` of the area at `addr` (`false` = fault).
    fn write_ids(&mut self, tid: u32, addr: u64, ids: [u32; 4]) -> bool {
        [
            offset::CPU_ID_START,
            offset::CPU_ID,
            offset::NODE_ID,
            offset::MM_CID,
        ]
        .into_iter()
        .zip(ids)
        .all(|(f, v)| self.write_u32_at(tid, addr, f, v))
    }

    /// A fatal condition found by the rseq update: the fast path (page faults disabled)
    /// only fails, deferring to the slow path through `TIF_NOTIFY_RESUME`; the slow path
    /// raises SIGSEGV inside the exit work loop, so it is delivered on this same exit.
    fn rseq_fatal(&mut self, cpu: u32, tid: u32, slow: bool, cause: FaultCause) -> bool {
        if !slow {
            return false;
        }
        self.force_sig(cpu, tid, rseq_abi::consts::signal::SIGSEGV, Some(cause));
        true
    }

    fn read_ids(&self, tid: u32) -> Option<[u32; 4]> {
        Some([
            self.read_u32(tid, offset::CPU_ID_START)?,
            self.read_u32(tid, offset::CPU_ID)?,
            self.read_u32(tid, offset::NODE_ID)?,
            self.read_u32(tid, offset::MM_CID)?,
        ])
    }

    /// `rseq_handle_notify_resume()` (7.0), `__rseq_handle_slowpath()` (7.2,
    /// `kernel/rseq.c`): the slow path retries the update with faults enabled; a fault
    /// there is fatal (spec §7 item 5).
    pub(crate) fn rseq_handle_notify_resume(&mut self, cpu: u32, tid: u32) {
        if let Some(o) = self.observer.take() {
            let site = crate::observe::Site::NotifyResume;
            return self.observed(o, site, cpu, Some(tid), |s| {
                s.rseq_handle_notify_resume(cpu, tid)
            });
        }
        if self.rev() == Revision::PostMerge {
            return self.rseq_slowpath_update_usr(cpu, tid);
        }
        if !self.rseq_update_user(cpu, tid, true) {
            self.force_sig(
                cpu,
                tid,
                rseq_abi::consts::signal::SIGSEGV,
                Some(FaultCause::RseqUpdateFault),
            );
        }
    }

    /// 7.2 `rseq_handle_slowpath()` → `rseq_slowpath_update_usr()` (`kernel/rseq.c`): runs
    /// only after a fast-path failure; keeps `user_irq`, clears the other events, and
    /// redoes the whole update with page faults allowed, so any failure is SIGSEGV.
    fn rseq_slowpath_update_usr(&mut self, cpu: u32, tid: u32) {
        let r = &mut self.tasks[tid as usize].rseq;
        if !r.slowpath {
            return;
        }
        self.cpus[cpu as usize].rseq_stats.slowpath += 1;
        let r = &mut self.tasks[tid as usize].rseq;
        let event = r.sched_switch;
        let user_irq = r.user_irq;
        r.clear_events();
        r.user_irq = user_irq;
        if !event {
            return;
        }
        if let Err(fail) = self.rseq_update_usr(cpu, tid, RevokePath::R5SlowPath) {
            self.rseq_update_failed(cpu, tid, fail);
        }
    }

    /// An rseq update that failed where page faults are allowed: `force_sig(SIGSEGV)`,
    /// with the invalid value as the cause, or the fault.
    fn rseq_update_failed(&mut self, cpu: u32, tid: u32, fail: UpdateFail) {
        let cause = match fail {
            UpdateFail::Fatal(c) => c,
            UpdateFail::Fault => FaultCause::RseqUpdateFault,
        };
        self.force_sig(cpu, tid, rseq_abi::consts::signal::SIGSEGV, Some(cause));
    }

    /// 7.2 `rseq_signal_deliver()` → `__rseq_signal_deliver()`: when a handler is about to
    /// run, a set `rseq_cs` is evaluated against the interrupted IP (ABI v2: only after an
    /// interrupt from user mode; legacy: always), and a legacy registration is forced to
    /// rewrite its IDs on the way out. A failure is SIGSEGV.
    pub(crate) fn rseq_signal_deliver(&mut self, cpu: u32, tid: u32) {
        if let Some(o) = self.observer.take() {
            let site = crate::observe::Site::SignalDeliver;
            return self.observed(o, site, cpu, Some(tid), |s| s.rseq_signal_deliver(cpu, tid));
        }
        if self.rev() != Revision::PostMerge {
            return;
        }
        let r = &self.tasks[tid as usize].rseq;
        let Some(reg) = r.reg else { return };
        if reg.v2 && !r.user_irq {
            return;
        }
        self.cpus[cpu as usize].rseq_stats.signal += 1;
        let res = match self.read_rseq_cs(tid) {
            None => Err(UpdateFail::Fault),
            Some(0) => Ok(()),
            Some(cs) => self.rseq_update_user_cs(cpu, tid, cs),
        };
        if let Err(fail) = res {
            self.rseq_update_failed(cpu, tid, fail);
        }
        if !reg.v2 {
            self.rseq_force_update(tid);
        }
    }

    /// `rseq_force_update()`: a full ID update on the next exit to user (registration,
    /// a failed execve, legacy signal delivery and membarrier IPIs).
    pub(crate) fn rseq_force_update(&mut self, tid: u32) {
        let t = &mut self.tasks[tid as usize];
        if t.rseq.reg.is_some() {
            t.rseq.ids_changed = true;
            t.rseq.sched_switch = true;
            t.tif |= TIF_RSEQ;
        }
    }

    /// 7.2 `__rseq_debug_syscall_return()`: in debug mode every syscall return of a
    /// registered task validates a set `rseq_cs` with the debug checks; a fault or an
    /// invalid descriptor is SIGSEGV.
    pub(crate) fn rseq_debug_syscall_return(&mut self, cpu: u32, tid: u32) {
        if let Some(o) = self.observer.take() {
            let site = crate::observe::Site::DebugSyscallReturn;
            return self.observed(o, site, cpu, Some(tid), |s| {
                s.rseq_debug_syscall_return(cpu, tid)
            });
        }
        if self.rev() != Revision::PostMerge || !self.cfg.rseq_debug {
            return;
        }
        if self.tasks[tid as usize].rseq.reg.is_none() {
            return;
        }
        let res = match self.read_rseq_cs(tid) {
            None => Err(UpdateFail::Fault),
            Some(0) => return,
            Some(cs) if cs >= TASK_SIZE => Err(UpdateFail::Fatal(FaultCause::RseqCsInvalid)),
            // rseq_debug_update_user_cs() directly: no `cs` count.
            Some(cs) => self.rseq_cs_evaluate(cpu, tid, cs, true),
        };
        if let Err(fail) = res {
            self.rseq_update_failed(cpu, tid, fail);
        }
    }

    /// `rseq_arm_slice_extension_timer()`: true = need-resched was set, loop again.
    fn rseq_arm_slice_extension_timer(&mut self, cpu: u32, tid: u32) -> bool {
        let t = &self.tasks[tid as usize];
        if !self.cfg.static_key() || !t.rseq.granted {
            return false;
        }
        let expires = t.rseq.expires;
        // `expires` was taken from ktime_get_mono_fast_ns() and is compared with the same
        // clock; the hrtimer itself runs on CLOCK_MONOTONIC (`fast_clock_skew_ns` apart).
        if expires < self.fast_clock_ns() {
            self.tasks[tid as usize].tif |= TIF_NEED_RESCHED;
            self.emit(
                cpu,
                Some(tid),
                LogKind::NeedResched {
                    lazy: false,
                    why: "slice_expired_at_exit",
                },
            );
            return true;
        }
        let st = &mut self.cpus[cpu as usize].slice_timer;
        st.armed = true;
        st.expiry = expires;
        st.cookie = Some(tid);
        st.gen = st.gen.wrapping_add(1);
        let gen = st.gen;
        // An expiry already past on the hrtimer clock fires at once.
        self.push(
            expires.max(self.now),
            Event::Irq {
                cpu,
                kind: IrqKind::SliceTimer,
                gen,
                task: tid,
            },
        );
        self.tasks[tid as usize].syscall_work_slice = true;
        self.emit(cpu, Some(tid), LogKind::TimerArm { expires });
        false
    }

    /// `rseq_slice_expired()` (hard irq): only a still-granted cookie task gets need-resched.
    pub(crate) fn rseq_slice_expired(&mut self, cpu: u32) {
        if let Some(o) = self.observer.take() {
            let site = crate::observe::Site::SliceExpired;
            return self.observed(o, site, cpu, self.cpus[cpu as usize].curr, |s| {
                s.rseq_slice_expired(cpu)
            });
        }
        let st = &mut self.cpus[cpu as usize].slice_timer;
        st.armed = false;
        let cookie = st.cookie;
        let curr = self.cpus[cpu as usize].curr;
        let hit = cookie.is_some()
            && cookie == curr
            && curr.is_some_and(|t| self.tasks[t as usize].rseq.granted);
        self.emit(cpu, curr, LogKind::TimerExpire { hit });
        if hit {
            self.cpus[cpu as usize].stats.expired += 1;
            let tid = curr.unwrap();
            self.tasks[tid as usize].tif |= TIF_NEED_RESCHED;
            self.emit(
                cpu,
                Some(tid),
                LogKind::NeedResched {
                    lazy: false,
                    why: "slice_timer",
                },
            );
        }
    }

    /// `ktime_get_mono_fast_ns()`: the hrtimer clock plus `fast_clock_skew_ns`.
    fn fast_clock_ns(&self) -> u64 {
        self.now.saturating_add_signed(self.cfg.fast_clock_skew_ns)
    }

    // ---- syscall entry (spec §6.1) ---------------------------------------------------

    /// `rseq_syscall_enter_work(nr)` steps 1–4. Returns true if the reschedule point
    /// (steps 5–6) and the final clear (step 7) must follow.
    pub(crate) fn rseq_syscall_enter_work(&mut self, cpu: u32, tid: u32, nr: i64) -> bool {
        if let Some(o) = self.observer.take() {
            let site = crate::observe::Site::SyscallEnterWork { nr };
            return self.observed(o, site, cpu, Some(tid), |s| {
                s.rseq_syscall_enter_work(cpu, tid, nr)
            });
        }
        self.tasks[tid as usize].syscall_work_slice = false;
        let granted = self.tasks[tid as usize].rseq.granted;
        if self.cfg.rseq_debug {
            let expected = if self.rev().is_v1() {
                CtrlWord::from_all(
                    if granted {
                        V1_RSEQ_SLICE_EXT_GRANTED
                    } else {
                        0
                    },
                    self.cfg.endian,
                )
            } else {
                CtrlWord::expected(granted)
            };
            match self.read_ctrl(tid) {
                Some(found) if found == expected => {}
                Some(found) => self.force_sig(
                    cpu,
                    tid,
                    rseq_abi::consts::signal::SIGSEGV,
                    Some(FaultCause::DebugWordMismatch { found, expected }),
                ),
                None => self.force_sig(
                    cpu,
                    tid,
                    rseq_abi::consts::signal::SIGSEGV,
                    Some(FaultCause::GrantFault),
                ),
            }
        }
        if !granted {
            return false;
        }
        let st = &mut self.cpus[cpu as usize].slice_timer;
        if st.cookie == Some(tid) && st.armed {
            st.armed = false;
            st.gen = st.gen.wrapping_add(1);
            self.emit(cpu, Some(tid), LogKind::TimerCancel);
        }
        let yield_nr = self.rev().slice_yield_nr();
        if self.tasks[tid as usize].rseq.sched_switch {
            self.emit(cpu, Some(tid), LogKind::SliceSyscall { yielded: None });
        } else {
            self.tasks[tid as usize].tif |= TIF_NEED_RESCHED;
            self.emit(
                cpu,
                Some(tid),
                LogKind::NeedResched {
                    lazy: false,
                    why: "slice_syscall",
                },
            );
            if nr == yield_nr {
                self.cpus[cpu as usize].stats.yielded += 1;
                self.tasks[tid as usize].rseq.yielded = true;
                self.emit(
                    cpu,
                    Some(tid),
                    LogKind::SliceSyscall {
                        yielded: Some(true),
                    },
                );
            } else if self.rev().is_v1() {
                // V1 has no s_aborted: every syscall inside a grant counts s_yielded
                // (spec §11), and any but the yield is a protocol violation.
                self.cpus[cpu as usize].stats.yielded += 1;
                self.force_sig(
                    cpu,
                    tid,
                    rseq_abi::consts::signal::SIGSEGV,
                    Some(FaultCause::V1SyscallInGrant { nr }),
                );
            } else {
                self.cpus[cpu as usize].stats.aborted += 1;
                self.emit(
                    cpu,
                    Some(tid),
                    LogKind::SliceSyscall {
                        yielded: Some(false),
                    },
                );
            }
        }
        true
    }

    /// Step 7 of the syscall-entry work: clear the kernel grant and the user word (R6, no
    /// `s_revoked`); a fault is fatal.
    pub(crate) fn rseq_syscall_enter_finish(&mut self, cpu: u32, tid: u32) {
        if let Some(o) = self.observer.take() {
            let site = crate::observe::Site::SyscallEnterFinish;
            return self.observed(o, site, cpu, Some(tid), |s| {
                s.rseq_syscall_enter_finish(cpu, tid)
            });
        }
        let was = self.rseq_slice_clear_grant(cpu, tid, false);
        if !self.clear_user_word(cpu, tid, RevokePath::R6Syscall, was) {
            self.force_sig(
                cpu,
                tid,
                rseq_abi::consts::signal::SIGSEGV,
                Some(FaultCause::SyscallClearFault),
            );
        }
    }

    /// `sys_rseq_slice_yield()`: return the `yielded` handshake and reset it (spec §6.2).
    pub(crate) fn sys_rseq_slice_yield(&mut self, tid: u32) -> SysResult {
        if let Some(o) = self.observer.take() {
            let cpu = self.tasks[tid as usize].cpu;
            let site = crate::observe::Site::SliceYield;
            return self.observed(o, site, cpu, Some(tid), |s| s.sys_rseq_slice_yield(tid));
        }
        if !self.cfg.config_slice_ext {
            return Err(Errno::ENOSYS);
        }
        let t = &mut self.tasks[tid as usize];
        let y = std::mem::take(&mut t.rseq.yielded);
        Ok(i64::from(y))
    }
}
