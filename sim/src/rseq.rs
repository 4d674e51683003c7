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

/// The IDs registration and unregistration write: CPU ids uninitialized, node and cid 0.
const UNINIT_IDS: [u32; 4] = [u32::MAX, u32::MAX, 0, 0];

/// x86_64 `TASK_SIZE` (user addresses are below it).
pub const TASK_SIZE: u64 = 0x0000_7fff_ffff_f000;

impl Simulation {
    fn rev(&self) -> Revision {
        self.cfg.revision
    }

    /// Clear the kernel grant, counting `s_revoked` when `count` and it was active.
    fn rseq_slice_clear_grant(&mut self, cpu: u32, tid: u32, count: bool) -> bool {
        let t = &mut self.tasks[tid as usize];
        let was = t.rseq.granted;
        t.rseq.granted = false;
        if was && count {
            self.cpus[cpu as usize].stats.revoked += 1;
        }
        was
    }

    /// Write the user word to zero and log the path (`false` = fault).
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

    /// `sys_rseq(addr, len, flags, sig)`.
    pub(crate) fn sys_rseq(
        &mut self,
        cpu: u32,
        tid: u32,
        addr: u64,
        len: u32,
        flags: u32,
        sig: u32,
    ) -> SysResult {
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
        if v2 {
            // R1: the word is cleared unconditionally (post-7.0 legacy registrations keep it).
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
        let ok = self.write_ids(tid, addr, UNINIT_IDS);
        let was = self.tasks[tid as usize].rseq.granted;
        let ok = ok
            && (!self.cfg.static_key()
                || !reg.v2
                || self.clear_user_word(cpu, tid, RevokePath::R7Unregister, was));
        self.rseq_slice_clear_grant(cpu, tid, true);
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

    /// `prctl(PR_RSEQ_SLICE_EXTENSION, arg2, arg3, arg4, arg5)`; other options → EINVAL.
    /// `args` are `arg2..arg5`.
    pub(crate) fn sys_prctl(
        &mut self,
        cpu: u32,
        tid: u32,
        option: i32,
        args: [u64; 4],
    ) -> SysResult {
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
        if !self.cfg.static_key() {
            return false;
        }
        let t = &self.tasks[tid as usize];
        let enabled = t.rseq.enabled && t.rseq.user_irq;
        let granted = t.rseq.granted;
        if !enabled && !granted {
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
        let fast_now = self.now.saturating_add_signed(self.cfg.fast_clock_skew_ns);
        let expires = fast_now + u64::from(self.slice_ext_nsec);
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
        if ti_work & TIF_RSEQ != 0 {
            self.tasks[tid as usize].tif &= !TIF_RSEQ;
            if !self.rseq_update_user(cpu, tid, false) {
                // The fast path runs with page faults disabled: defer to the slow path.
                self.tasks[tid as usize].tif |= TIF_NOTIFY_RESUME;
                return true;
            }
        }
        self.rseq_arm_slice_extension_timer(cpu, tid)
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
        // rseq_cs: there is no user instruction pointer inside a section in this model, so
        // a set pointer is validated and cleared.
        let cs_lo = self.read_u32(tid, offset::RSEQ_CS).unwrap_or(0);
        let cs_hi = self.read_u32(tid, offset::RSEQ_CS + 4).unwrap_or(0);
        let cs = match self.cfg.endian {
            rseq_abi::Endian::Little => u64::from(cs_lo) | u64::from(cs_hi) << 32,
            rseq_abi::Endian::Big => u64::from(cs_hi) | u64::from(cs_lo) << 32,
        };
        if cs != 0 {
            if cs >= TASK_SIZE {
                return self.rseq_fatal(cpu, tid, slow, FaultCause::RseqCsInvalid);
            }
            self.write_u32_at(tid, reg.addr, offset::RSEQ_CS, 0);
            self.write_u32_at(tid, reg.addr, offset::RSEQ_CS + 4, 0);
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

    /// `rseq_handle_notify_resume()`: the slow path retries the update with faults enabled;
    /// a fault there is fatal (spec §7 item 5).
    pub(crate) fn rseq_handle_notify_resume(&mut self, cpu: u32, tid: u32) {
        if !self.rseq_update_user(cpu, tid, true) {
            self.force_sig(
                cpu,
                tid,
                rseq_abi::consts::signal::SIGSEGV,
                Some(FaultCause::RseqUpdateFault),
            );
        }
    }

    /// `rseq_arm_slice_extension_timer()`: true = need-resched was set, loop again.
    fn rseq_arm_slice_extension_timer(&mut self, cpu: u32, tid: u32) -> bool {
        let t = &self.tasks[tid as usize];
        if !self.cfg.static_key() || !t.rseq.granted {
            return false;
        }
        let expires = t.rseq.expires;
        if expires < self.now {
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
        self.push(
            expires,
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

    // ---- syscall entry (spec §6.1) ---------------------------------------------------

    /// `rseq_syscall_enter_work(nr)` steps 1–4. Returns true if the reschedule point
    /// (steps 5–6) and the final clear (step 7) must follow.
    pub(crate) fn rseq_syscall_enter_work(&mut self, cpu: u32, tid: u32, nr: i64) -> bool {
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
                // V1: any other syscall inside a grant is a protocol violation.
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
        if !self.cfg.config_slice_ext {
            return Err(Errno::ENOSYS);
        }
        let t = &mut self.tasks[tid as usize];
        let y = std::mem::take(&mut t.rseq.yielded);
        Ok(i64::from(y))
    }
}
