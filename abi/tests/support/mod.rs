//! A scripted fake [`Platform`] for the tests: a 64-byte rseq image, a fake clock, scripted
//! syscall results, shared words, a log of every call, and a script of "kernel" mutations
//! applied before a given call index, so a test can put an interrupt between any two
//! accesses.
//!
//! Besides the script, the fake models exactly one piece of kernel behaviour, the
//! syscall-entry work of spec §6.1, because tests of "revoke between the check and the
//! syscall" must not script the answer they check: a [`Action::Grant`] arms the slice work
//! bit; the next syscall clears it, runs the debug check (recording a [`Violation`] on
//! mismatch, plus one for any non-yield syscall inside a V1 grant), and, if the kernel
//! grant is still active, ends it (word := 0) and makes an unscripted `rseq_slice_yield`
//! return 1. Everything else (registration, prctl, ...) returns its scripted result, by
//! default `Ok(0)`.
//!
//! Not logged: the pure accessors `revision`, `rseq_addr`, `rseq_len`, `rseq_sig`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

use rseq_abi::consts::{V1_RSEQ_SLICE_EXT_GRANTED, V1_RSEQ_SLICE_EXT_REQUEST};
use rseq_abi::layout::offset;
use rseq_abi::{
    CpuSet, CtrlWord, Endian, Errno, Platform, Revision, SharedWord, SysResult, Syscall,
};

/// Address of the fake area (32-byte aligned).
pub const FAKE_ADDR: u64 = 0x7f00_dead_0000;

/// A mutation of the fake kernel's state, applied before a chosen call.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The kernel grants: merged `request = 0, granted = 1`, reserved preserved; V1 clears
    /// REQUEST and sets GRANTED. Unconditional (the test chose the moment). Sets the kernel
    /// grant and arms the slice work bit.
    Grant,
    /// Every kernel clear/revoke: `all = 0`, kernel grant ended (work bit stays armed, as in
    /// the kernel: only a syscall entry clears it).
    Revoke,
    /// Overwrite the four control bytes.
    SetCtrl([u8; 4]),
    /// Overwrite one byte of the image.
    SetByte(usize, u8),
    /// Overwrite an aligned u32 of the image (in the fake's byte order).
    SetU32(usize, u32),
    /// Another thread stores a shared word.
    SetShared(SharedWord, u32),
    /// Time passes (e.g. the thread was preempted).
    AdvanceClock(u64),
}

/// One logged platform call, with what it read or returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `load_u8`.
    LoadU8 {
        off: usize,
        val: u8,
    },
    /// `store_u8`.
    StoreU8 {
        off: usize,
        val: u8,
    },
    /// `load_u32`.
    LoadU32 {
        off: usize,
        val: u32,
    },
    /// `store_u32`.
    StoreU32 {
        off: usize,
        val: u32,
    },
    /// `store_u64`.
    StoreU64 {
        off: usize,
        val: u64,
    },
    LoadU64 {
        off: usize,
        val: u64,
    },
    /// `test_and_clear_bit_local`.
    TestAndClear {
        off: usize,
        bit: u32,
        was_set: bool,
    },
    /// `syscall`.
    Syscall {
        call: Syscall,
        result: SysResult,
    },
    /// `sched_getaffinity`.
    GetAffinity(Result<CpuSet, Errno>),
    /// `clock_ns` (the value returned).
    Clock(u64),
    /// `burn`.
    Burn(u64),
    /// `shared_load`.
    SharedLoad {
        word: SharedWord,
        val: u32,
    },
    /// `shared_store`.
    SharedStore {
        word: SharedWord,
        val: u32,
    },
    /// `shared_cas`.
    SharedCas {
        word: SharedWord,
        old: u32,
        new: u32,
        result: Result<u32, u32>,
    },
    /// `shared_fetch_add`.
    SharedFetchAdd {
        word: SharedWord,
        val: u32,
        prev: u32,
    },
}

fn off_name(off: usize, size: usize) -> String {
    match (off, size) {
        (offset::CPU_ID_START, _) => "cpu_id_start".into(),
        (offset::CPU_ID, _) => "cpu_id".into(),
        (offset::RSEQ_CS, _) => "rseq_cs".into(),
        (offset::FLAGS, _) => "flags".into(),
        (offset::NODE_ID, _) => "node_id".into(),
        (offset::MM_CID, _) => "mm_cid".into(),
        (offset::REQUEST, 1) => "request".into(),
        (offset::SLICE_CTRL, _) => "ctrl".into(),
        (offset::GRANTED, _) => "granted".into(),
        (offset::RESERVED, _) => "rsv0".into(),
        (31, _) => "rsv1".into(),
        _ => format!("@{off}"),
    }
}

fn res(r: &SysResult) -> String {
    match r {
        Ok(v) => format!("Ok({v})"),
        Err(e) => format!("Err({})", e.name()),
    }
}

/// Short `strace`-like rendering of a syscall with its arguments.
pub fn syscall_str(call: &Syscall) -> String {
    match call {
        Syscall::Rseq { flags, .. } => format!("rseq(flags={flags:#x})"),
        Syscall::Prctl {
            option,
            arg2,
            arg3,
            arg4,
            arg5,
        } => {
            format!("prctl({option}, {arg2}, {arg3}, {arg4}, {arg5})")
        }
        Syscall::Nanosleep { ns } => format!("clock_nanosleep({ns})"),
        Syscall::FutexWait { word, expected } => format!("futex_wait(w{}, {expected})", word.0),
        Syscall::FutexWake { word, count } => format!("futex_wake(w{}, {count})", word.0),
        Syscall::SchedSetaffinity(set) => format!("sched_setaffinity({set:?})"),
        Syscall::Membarrier { cmd, flags, cpu_id } => {
            format!("membarrier({cmd}, {flags}, {cpu_id})")
        }
        Syscall::Other { nr } => format!("syscall({nr})"),
        other => other.name().to_string(),
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::LoadU8 { off, val } => write!(f, "ld8 {} -> {val}", off_name(*off, 1)),
            Call::StoreU8 { off, val } => write!(f, "st8 {} <- {val}", off_name(*off, 1)),
            Call::LoadU32 { off, val } => write!(f, "ld32 {} -> {val:#x}", off_name(*off, 4)),
            Call::StoreU32 { off, val } => write!(f, "st32 {} <- {val:#x}", off_name(*off, 4)),
            Call::StoreU64 { off, val } => write!(f, "st64 {} <- {val:#x}", off_name(*off, 8)),
            Call::LoadU64 { off, val } => write!(f, "ld64 {} = {val:#x}", off_name(*off, 8)),
            Call::TestAndClear { off, bit, was_set } => {
                write!(f, "btr {} bit{bit} -> {was_set}", off_name(*off, 4))
            }
            Call::Syscall { call, result } => write!(f, "{} -> {}", syscall_str(call), res(result)),
            Call::GetAffinity(Ok(set)) => write!(f, "sched_getaffinity -> {set:?}"),
            Call::GetAffinity(Err(e)) => write!(f, "sched_getaffinity -> Err({})", e.name()),
            Call::Clock(t) => write!(f, "clock -> {t}"),
            Call::Burn(ns) => write!(f, "burn {ns}"),
            Call::SharedLoad { word, val } => write!(f, "load w{} -> {val}", word.0),
            Call::SharedStore { word, val } => write!(f, "store w{} <- {val}", word.0),
            Call::SharedCas {
                word,
                old,
                new,
                result,
            } => {
                write!(f, "cas w{} {old}->{new} -> {result:?}", word.0)
            }
            Call::SharedFetchAdd { word, val, prev } => {
                write!(f, "fetch_add w{} +{val} -> {prev}", word.0)
            }
        }
    }
}

/// Something the fake's kernel-entry model would punish with SIGSEGV.
#[derive(Clone, Debug, PartialEq)]
pub enum Violation {
    /// Debug check at syscall entry (spec §6.1 step 2, §7 item 3): the word was not
    /// `{granted = kernel granted, everything else 0}` (V1: `all == GRANTED` or 0).
    DebugCheck {
        call: usize,
        syscall: &'static str,
        expected: CtrlWord,
        actual: CtrlWord,
    },
    /// V1 (spec §11): a syscall other than the yield while granted.
    V1SyscallInGrant { call: usize, syscall: &'static str },
}

/// The fake platform.
pub struct FakePlatform {
    /// Revision spoken.
    pub revision: Revision,
    /// Byte order of the fake machine (how u32/u64 accesses map to bytes).
    pub endian: Endian,
    /// The rseq image (`struct rseq` is the first 32 bytes).
    pub bytes: [u8; 64],
    /// Registered length reported by `rseq_len`.
    pub len: u32,
    /// Current fake time.
    pub now: u64,
    /// Time a clock read advances the clock by (after returning the current value).
    pub clock_cost: u64,
    /// Time every logged call advances the clock by (before it executes).
    pub call_cost: u64,
    /// Shared words (absent = 0).
    pub shared: BTreeMap<SharedWord, u32>,
    /// What `sched_getaffinity` returns.
    pub affinity: Result<CpuSet, Errno>,
    /// Every call, in order.
    pub log: Vec<Call>,
    /// Kernel grant state of the entry model.
    pub kernel_granted: bool,
    /// Slice work bit of the entry model (armed by a grant, cleared at syscall entry).
    pub slice_work: bool,
    /// Whether the debug check of the entry model runs.
    pub debug: bool,
    /// What the entry model caught.
    pub violations: Vec<Violation>,
    /// Syscalls that ended a kernel grant at entry, by name.
    pub grant_ending_syscalls: Vec<&'static str>,
    /// Panic after this many calls (a runaway loop in a test).
    pub max_calls: usize,
    yielded: bool,
    results: HashMap<&'static str, VecDeque<SysResult>>,
    defaults: HashMap<&'static str, SysResult>,
    script: BTreeMap<usize, Vec<Action>>,
}

impl FakePlatform {
    /// A little-endian fake speaking `revision`, all bytes 0, clock at 0 advancing 100 ns
    /// per read, affinity {0..4}, debug check on.
    pub fn new(revision: Revision) -> Self {
        Self {
            revision,
            endian: Endian::Little,
            bytes: [0; 64],
            len: 32,
            now: 0,
            clock_cost: 100,
            call_cost: 0,
            shared: BTreeMap::new(),
            affinity: Ok(CpuSet::first_n(4)),
            log: Vec::new(),
            kernel_granted: false,
            slice_work: false,
            debug: true,
            violations: Vec::new(),
            grant_ending_syscalls: Vec::new(),
            max_calls: 1_000_000,
            yielded: false,
            results: HashMap::new(),
            defaults: HashMap::new(),
            script: BTreeMap::new(),
        }
    }

    /// Merged revision, little-endian.
    pub fn merged() -> Self {
        Self::new(Revision::Merged)
    }

    /// V1 revision, little-endian.
    pub fn v1() -> Self {
        Self::new(Revision::V1)
    }

    /// Set the byte order.
    pub fn with_endian(mut self, endian: Endian) -> Self {
        self.endian = endian;
        self
    }

    /// Apply `action` just before call number `index` (0-based) executes.
    pub fn at(&mut self, index: usize, action: Action) -> &mut Self {
        self.script.entry(index).or_default().push(action);
        self
    }

    /// Queue results for the syscall named `name` (`Syscall::name()`), used in order.
    pub fn results(
        &mut self,
        name: &'static str,
        results: impl IntoIterator<Item = SysResult>,
    ) -> &mut Self {
        self.results.entry(name).or_default().extend(results);
        self
    }

    /// Result of the syscall named `name` once its queue is empty (default `Ok(0)`).
    pub fn default_result(&mut self, name: &'static str, result: SysResult) -> &mut Self {
        self.defaults.insert(name, result);
        self
    }

    /// Scripted actions not yet applied (the program made fewer calls than scripted).
    pub fn pending_actions(&self) -> usize {
        self.script.values().map(Vec::len).sum()
    }

    /// The log rendered one line per call.
    pub fn trace(&self) -> Vec<String> {
        self.log.iter().map(ToString::to_string).collect()
    }

    /// The trace with clock reads and burns left out (what touches the kernel).
    pub fn accesses(&self) -> Vec<String> {
        self.log
            .iter()
            .filter(|c| !matches!(c, Call::Clock(_) | Call::Burn(_)))
            .map(ToString::to_string)
            .collect()
    }

    /// The syscalls made, in order.
    pub fn syscalls(&self) -> Vec<Syscall> {
        self.log
            .iter()
            .filter_map(|c| match c {
                Call::Syscall { call, .. } => Some(*call),
                _ => None,
            })
            .collect()
    }

    /// Index of the first logged call whose rendering starts with `prefix`.
    pub fn index_of(&self, prefix: &str) -> Option<usize> {
        self.log
            .iter()
            .position(|c| c.to_string().starts_with(prefix))
    }

    /// Indexes of every logged call whose rendering starts with `prefix`.
    pub fn indexes_of(&self, prefix: &str) -> Vec<usize> {
        self.log
            .iter()
            .enumerate()
            .filter(|(_, c)| c.to_string().starts_with(prefix))
            .map(|(i, _)| i)
            .collect()
    }

    /// The control word bytes.
    pub fn ctrl(&self) -> CtrlWord {
        CtrlWord::from_bytes(self.bytes[28..32].try_into().unwrap())
    }

    /// Overwrite the control word bytes.
    pub fn set_ctrl(&mut self, w: CtrlWord) {
        self.bytes[28..32].copy_from_slice(&w.bytes);
    }

    /// Read an aligned u32 of the image in the fake's byte order.
    pub fn u32_at(&self, off: usize) -> u32 {
        self.endian
            .u32_from(self.bytes[off..off + 4].try_into().unwrap())
    }

    /// Write an aligned u32 of the image in the fake's byte order.
    pub fn set_u32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&self.endian.u32_to(v));
    }

    /// `rseq::flags`.
    pub fn flags(&self) -> u32 {
        self.u32_at(offset::FLAGS)
    }

    /// Set `rseq::flags`.
    pub fn set_flags(&mut self, v: u32) {
        self.set_u32(offset::FLAGS, v);
    }

    /// Value of a shared word.
    pub fn word(&self, w: SharedWord) -> u32 {
        self.shared.get(&w).copied().unwrap_or(0)
    }

    fn apply(&mut self, a: Action) {
        match a {
            Action::Grant => {
                let w = self.ctrl().after_grant(self.revision, self.endian);
                self.set_ctrl(w);
                self.kernel_granted = true;
                self.slice_work = true;
            }
            Action::Revoke => {
                self.set_ctrl(CtrlWord::ZERO);
                self.kernel_granted = false;
            }
            Action::SetCtrl(b) => self.set_ctrl(CtrlWord::from_bytes(b)),
            Action::SetByte(off, v) => self.bytes[off] = v,
            Action::SetU32(off, v) => self.set_u32(off, v),
            Action::SetShared(w, v) => {
                self.shared.insert(w, v);
            }
            Action::AdvanceClock(ns) => self.now += ns,
        }
    }

    /// Start call number `log.len()`: apply its script, charge `call_cost`.
    fn begin(&mut self) {
        let index = self.log.len();
        assert!(
            index < self.max_calls,
            "fake platform: more than {} calls (runaway loop?)",
            self.max_calls
        );
        if let Some(actions) = self.script.remove(&index) {
            for a in actions {
                self.apply(a);
            }
        }
        self.now += self.call_cost;
    }

    fn check_off(&self, off: usize, size: usize) {
        assert!(off % size == 0, "misaligned {size}-byte access at {off}");
        assert!(
            off + size <= self.bytes.len(),
            "access at {off} outside the fake area"
        );
    }

    /// The syscall-entry work of spec §6.1, as far as the fake models it.
    fn entry_work(&mut self, call: &Syscall) {
        if !self.slice_work {
            return;
        }
        self.slice_work = false;
        let index = self.log.len();
        let actual = self.ctrl();
        let expected = if self.revision.is_v1() {
            let all = if self.kernel_granted {
                V1_RSEQ_SLICE_EXT_GRANTED
            } else {
                0
            };
            CtrlWord::from_all(all, self.endian)
        } else {
            CtrlWord::expected(self.kernel_granted)
        };
        if self.debug && actual != expected {
            self.violations.push(Violation::DebugCheck {
                call: index,
                syscall: call.name(),
                expected,
                actual,
            });
        }
        if !self.kernel_granted {
            return;
        }
        let is_yield = *call == Syscall::RseqSliceYield;
        if self.revision.is_v1() && !is_yield {
            self.violations.push(Violation::V1SyscallInGrant {
                call: index,
                syscall: call.name(),
            });
        }
        self.yielded = is_yield;
        self.grant_ending_syscalls.push(call.name());
        self.kernel_granted = false;
        self.set_ctrl(CtrlWord::ZERO);
    }
}

impl Platform for FakePlatform {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn rseq_addr(&self) -> u64 {
        FAKE_ADDR
    }

    fn rseq_len(&self) -> u32 {
        self.len
    }

    fn load_u8(&mut self, off: usize) -> u8 {
        self.begin();
        self.check_off(off, 1);
        let val = self.bytes[off];
        self.log.push(Call::LoadU8 { off, val });
        val
    }

    fn store_u8(&mut self, off: usize, val: u8) {
        self.begin();
        self.check_off(off, 1);
        self.bytes[off] = val;
        self.log.push(Call::StoreU8 { off, val });
    }

    fn load_u32(&mut self, off: usize) -> u32 {
        self.begin();
        self.check_off(off, 4);
        let val = self.u32_at(off);
        self.log.push(Call::LoadU32 { off, val });
        val
    }

    fn store_u32(&mut self, off: usize, val: u32) {
        self.begin();
        self.check_off(off, 4);
        self.set_u32(off, val);
        self.log.push(Call::StoreU32 { off, val });
    }

    fn store_u64(&mut self, off: usize, val: u64) {
        self.begin();
        self.check_off(off, 8);
        let b = match self.endian {
            Endian::Little => val.to_le_bytes(),
            Endian::Big => val.to_be_bytes(),
        };
        self.bytes[off..off + 8].copy_from_slice(&b);
        self.log.push(Call::StoreU64 { off, val });
    }

    fn load_u64(&mut self, off: usize) -> u64 {
        self.begin();
        self.check_off(off, 8);
        let b: [u8; 8] = self.bytes[off..off + 8].try_into().unwrap();
        let val = match self.endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        };
        self.log.push(Call::LoadU64 { off, val });
        val
    }

    fn test_and_clear_bit_local(&mut self, off: usize, bit: u32) -> bool {
        self.begin();
        self.check_off(off, 4);
        let v = self.u32_at(off);
        let was_set = v & (1 << bit) != 0;
        self.set_u32(off, v & !(1 << bit));
        self.log.push(Call::TestAndClear { off, bit, was_set });
        was_set
    }

    fn syscall(&mut self, call: Syscall) -> SysResult {
        self.begin();
        self.entry_work(&call);
        let name = call.name();
        let scripted = self.results.get_mut(name).and_then(VecDeque::pop_front);
        let result = match scripted.or_else(|| self.defaults.get(name).copied()) {
            Some(r) => r,
            None if call == Syscall::RseqSliceYield => Ok(i64::from(self.yielded)),
            None => Ok(0),
        };
        if call == Syscall::RseqSliceYield {
            self.yielded = false;
        }
        self.log.push(Call::Syscall { call, result });
        result
    }

    fn sched_getaffinity(&mut self) -> Result<CpuSet, Errno> {
        self.begin();
        let r = self.affinity;
        self.log.push(Call::GetAffinity(r));
        r
    }

    fn clock_ns(&mut self) -> u64 {
        self.begin();
        let t = self.now;
        self.now += self.clock_cost;
        self.log.push(Call::Clock(t));
        t
    }

    fn burn(&mut self, ns: u64) {
        self.begin();
        self.now += ns;
        self.log.push(Call::Burn(ns));
    }

    fn shared_load(&mut self, word: SharedWord) -> u32 {
        self.begin();
        let val = self.word(word);
        self.log.push(Call::SharedLoad { word, val });
        val
    }

    fn shared_store(&mut self, word: SharedWord, val: u32) {
        self.begin();
        self.shared.insert(word, val);
        self.log.push(Call::SharedStore { word, val });
    }

    fn shared_cas(&mut self, word: SharedWord, old: u32, new: u32) -> Result<u32, u32> {
        self.begin();
        let cur = self.word(word);
        let result = if cur == old {
            self.shared.insert(word, new);
            Ok(old)
        } else {
            Err(cur)
        };
        self.log.push(Call::SharedCas {
            word,
            old,
            new,
            result,
        });
        result
    }

    fn shared_fetch_add(&mut self, word: SharedWord, val: u32) -> u32 {
        self.begin();
        let prev = self.word(word);
        self.shared.insert(word, prev.wrapping_add(val));
        self.log.push(Call::SharedFetchAdd { word, val, prev });
        prev
    }
}

/// The V1 `all` value with REQUEST set (for readable expectations).
pub const V1_REQ: u32 = V1_RSEQ_SLICE_EXT_REQUEST;
/// The V1 `all` value with GRANTED set.
pub const V1_GR: u32 = V1_RSEQ_SLICE_EXT_GRANTED;
