//! The user-side protocol (`SliceExt`, registration, prctl helpers) against the scripted
//! fake platform: every `SliceOutcome`, both races of spec §8.3, the V1 flow of §8.2, and
//! `SliceExt::setup` for every `EnableMode` (spec §2.3–§2.4).

mod support;

use rseq_abi::consts::*;
use rseq_abi::layout::offset;
use rseq_abi::protocol::{self, SetupError};
use rseq_abi::{EnableMode, Endian, Errno, Platform, Revision, SliceExt, SliceOutcome, Syscall};
use support::{Action, FakePlatform, Violation, FAKE_ADDR, V1_GR, V1_REQ};

const SECTION_NS: u64 = 1_000;

/// Run one critical section of `SECTION_NS` with an active handle of the fake's revision.
fn run_section(p: &mut FakePlatform) -> SliceOutcome {
    let ext = SliceExt::assume_enabled(p.revision);
    let ((), outcome) = ext.critical_section(p, |p| p.burn(SECTION_NS));
    assert_eq!(
        p.pending_actions(),
        0,
        "script not fully applied: {:?}",
        p.trace()
    );
    outcome
}

// Merged call indexes: 0 st8 request, 1 burn, 2 ld8 request, 3 st8 request, 4 ld8 granted,
// 5 syscall.

#[test]
fn unused_handle_never_touches_the_control_word() {
    let mut p = FakePlatform::merged();
    p.set_ctrl(rseq_abi::CtrlWord::from_bytes([0, 1, 0, 0]));
    let ext = SliceExt::unused(Revision::Merged);
    assert!(!ext.is_active());
    let (r, outcome) = ext.critical_section(&mut p, |p| {
        p.burn(SECTION_NS);
        42
    });
    assert_eq!((r, outcome), (42, SliceOutcome::Unused));
    assert_eq!(p.trace(), ["burn 1000"]);
    assert_eq!(
        p.ctrl().bytes,
        [0, 1, 0, 0],
        "even a visible grant is left alone"
    );
}

#[test]
fn unused_handle_request_and_release_make_no_calls_in_v1_either() {
    let mut p = FakePlatform::v1();
    let ext = SliceExt::unused(Revision::V1);
    ext.request(&mut p);
    assert_eq!(ext.release(&mut p), SliceOutcome::Unused);
    assert!(p.log.is_empty());
}

#[test]
fn merged_not_interrupted_clears_request_and_does_not_yield() {
    let mut p = FakePlatform::merged();
    assert_eq!(run_section(&mut p), SliceOutcome::NotInterrupted);
    assert_eq!(
        p.trace(),
        [
            "st8 request <- 1",
            "burn 1000",
            "ld8 request -> 1",
            "st8 request <- 0",
            "ld8 granted -> 0"
        ]
    );
    assert_eq!(p.ctrl().bytes, [0; 4]);
}

#[test]
fn merged_grant_during_section_yields_and_syscall_returns_1() {
    let mut p = FakePlatform::merged();
    p.at(1, Action::Grant);
    assert_eq!(run_section(&mut p), SliceOutcome::Yielded(Ok(1)));
    assert_eq!(
        p.trace(),
        [
            "st8 request <- 1",
            "burn 1000",
            "ld8 request -> 0",
            "st8 request <- 0",
            "ld8 granted -> 1",
            "rseq_slice_yield -> Ok(1)"
        ]
    );
    assert_eq!(p.grant_ending_syscalls, ["rseq_slice_yield"]);
    assert!(p.violations.is_empty(), "{:?}", p.violations);
}

#[test]
fn merged_revoke_between_granted_load_and_syscall_yields_ok_0() {
    // §8.3: the grant is taken back after the user saw it; the yield finds no grant.
    let mut p = FakePlatform::merged();
    p.at(1, Action::Grant).at(5, Action::Revoke);
    assert_eq!(run_section(&mut p), SliceOutcome::Yielded(Ok(0)));
    assert_eq!(
        p.trace()[4..],
        ["ld8 granted -> 1", "rseq_slice_yield -> Ok(0)"]
    );
    assert!(p.grant_ending_syscalls.is_empty());
    assert!(
        p.violations.is_empty(),
        "a revoked word is all zero, as the check expects"
    );
}

#[test]
fn merged_yield_error_is_reported_as_yielded_err() {
    let mut p = FakePlatform::merged();
    p.at(1, Action::Grant)
        .results("rseq_slice_yield", [Err(Errno::ENOSYS)]);
    assert_eq!(
        run_section(&mut p),
        SliceOutcome::Yielded(Err(Errno::ENOSYS))
    );
}

#[test]
fn merged_grant_then_revoke_before_release_is_consumed_without_syscall() {
    let mut p = FakePlatform::merged();
    p.at(1, Action::Grant).at(2, Action::Revoke);
    assert_eq!(run_section(&mut p), SliceOutcome::Consumed);
    assert_eq!(
        p.trace()[2..],
        ["ld8 request -> 0", "st8 request <- 0", "ld8 granted -> 0"]
    );
    assert!(p.syscalls().is_empty());
}

#[test]
fn merged_request_wiped_by_a_switch_is_consumed() {
    let mut p = FakePlatform::merged();
    p.at(1, Action::Revoke);
    assert_eq!(run_section(&mut p), SliceOutcome::Consumed);
    assert!(p.syscalls().is_empty());
}

#[test]
fn merged_late_grant_between_request_load_and_store_is_seen_and_yielded() {
    // §8.3 mirror race: request read as 1, grant lands, the byte store of 0 is harmless and
    // the granted check catches it.
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant);
    assert_eq!(run_section(&mut p), SliceOutcome::Yielded(Ok(1)));
    assert_eq!(
        p.trace()[2..],
        [
            "ld8 request -> 1",
            "st8 request <- 0",
            "ld8 granted -> 1",
            "rseq_slice_yield -> Ok(1)"
        ]
    );
    assert!(p.violations.is_empty());
}

#[test]
fn merged_release_store_touches_only_the_request_byte() {
    // The clear is a byte store: reserved bytes preserved by the grant write are still there
    // when the yield enters the kernel (which the debug check then reports).
    let mut p = FakePlatform::merged();
    p.at(1, Action::SetByte(offset::RESERVED, 0xab))
        .at(3, Action::Grant);
    assert_eq!(run_section(&mut p), SliceOutcome::Yielded(Ok(1)));
    match &p.violations[..] {
        [Violation::DebugCheck {
            call: 5,
            syscall: "rseq_slice_yield",
            actual,
            expected,
        }] => {
            assert_eq!(actual.bytes, [0, 1, 0xab, 0]);
            assert_eq!(*expected, rseq_abi::CtrlWord::expected(true));
        }
        v => panic!("unexpected violations {v:?}"),
    }
}

#[test]
fn merged_flow_is_byte_accesses_on_big_endian_too() {
    let mut p = FakePlatform::merged().with_endian(Endian::Big);
    p.at(1, Action::Grant);
    assert_eq!(run_section(&mut p), SliceOutcome::Yielded(Ok(1)));
    assert_eq!(p.trace()[4], "ld8 granted -> 1");
}

// V1 call indexes: 0 st32 ctrl, 1 burn, 2 btr, 3 ld32 ctrl, 4 syscall.

#[test]
fn v1_request_is_a_plain_u32_store_of_the_request_bit() {
    let mut p = FakePlatform::v1();
    SliceExt::assume_enabled(Revision::V1).request(&mut p);
    assert_eq!(p.trace(), ["st32 ctrl <- 0x1"]);
    assert_eq!(p.ctrl().bytes, [1, 0, 0, 0]);
}

#[test]
fn v1_bit_still_set_is_not_interrupted_after_one_test_and_clear() {
    let mut p = FakePlatform::v1();
    assert_eq!(run_section(&mut p), SliceOutcome::NotInterrupted);
    assert_eq!(
        p.trace(),
        ["st32 ctrl <- 0x1", "burn 1000", "btr ctrl bit0 -> true"]
    );
    assert_eq!(p.ctrl().bytes, [0; 4]);
}

#[test]
fn v1_grant_landed_before_test_and_clear_yields_with_the_yield_syscall() {
    let mut p = FakePlatform::v1();
    p.at(1, Action::Grant);
    assert_eq!(run_section(&mut p), SliceOutcome::Yielded(Ok(1)));
    assert_eq!(
        p.trace(),
        [
            "st32 ctrl <- 0x1",
            "burn 1000",
            "btr ctrl bit0 -> false",
            "ld32 ctrl -> 0x2",
            "rseq_slice_yield -> Ok(1)"
        ]
    );
    assert!(p.violations.is_empty(), "{:?}", p.violations);
}

#[test]
fn v1_test_and_clear_leaves_granted_intact() {
    // The reason V1 needed an atomic: a load/modify/store racing the grant would lose it.
    let mut p = FakePlatform::v1();
    p.at(1, Action::Grant);
    run_section(&mut p);
    assert!(p
        .log
        .iter()
        .all(|c| !matches!(c, support::Call::StoreU32 { val: 0, .. })));
    assert_eq!(p.grant_ending_syscalls, ["rseq_slice_yield"]);
}

#[test]
fn v1_nothing_set_is_consumed_without_syscall() {
    let mut p = FakePlatform::v1();
    p.at(1, Action::Revoke);
    assert_eq!(run_section(&mut p), SliceOutcome::Consumed);
    assert_eq!(
        p.trace()[2..],
        ["btr ctrl bit0 -> false", "ld32 ctrl -> 0x0"]
    );
    assert!(p.syscalls().is_empty());
}

#[test]
fn v1_revoke_between_granted_load_and_syscall_yields_ok_0() {
    let mut p = FakePlatform::v1();
    p.at(1, Action::Grant).at(4, Action::Revoke);
    assert_eq!(run_section(&mut p), SliceOutcome::Yielded(Ok(0)));
}

#[test]
fn v1_on_big_endian_uses_byte_3() {
    let mut p = FakePlatform::v1().with_endian(Endian::Big);
    SliceExt::assume_enabled(Revision::V1).request(&mut p);
    assert_eq!(p.ctrl().bytes, [0, 0, 0, 1]);
    p.at(p.log.len(), Action::Grant);
    let outcome = SliceExt::assume_enabled(Revision::V1).release(&mut p);
    assert_eq!(outcome, SliceOutcome::Yielded(Ok(1)));
    assert_eq!(
        p.trace()[1..3],
        [
            "btr ctrl bit0 -> false".to_string(),
            format!("ld32 ctrl -> {V1_GR:#x}")
        ]
    );
    assert_eq!(p.ctrl().all(Endian::Big) & V1_REQ, 0);
}

// --- SliceExt::setup (spec §2.3, §2.4) -------------------------------------------------------

fn rseq_call(p: &FakePlatform, flags: u32) -> Syscall {
    Syscall::Rseq {
        addr: FAKE_ADDR,
        len: p.len,
        flags,
        sig: RSEQ_SIG,
    }
}

fn prctl_set(enable: bool) -> Syscall {
    Syscall::Prctl {
        option: PR_RSEQ_SLICE_EXTENSION,
        arg2: PR_RSEQ_SLICE_EXTENSION_SET,
        arg3: u64::from(enable),
        arg4: 0,
        arg5: 0,
    }
}

#[test]
fn setup_prctl_registers_with_flags_0_then_enables() {
    let mut p = FakePlatform::merged();
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::Prctl);
    assert_eq!(err, None);
    assert!(ext.is_active());
    assert_eq!(ext.revision(), Revision::Merged);
    assert_eq!(p.syscalls(), [rseq_call(&p, 0), prctl_set(true)]);
    assert_eq!(
        p.trace(),
        ["rseq(flags=0x0) -> Ok(0)", "prctl(79, 2, 1, 0, 0) -> Ok(0)"]
    );
}

#[test]
fn setup_registers_the_platforms_address_length_and_signature() {
    let mut p = FakePlatform::new(Revision::PostMerge);
    p.len = 64;
    SliceExt::setup(&mut p, EnableMode::Prctl);
    assert_eq!(
        p.syscalls()[0],
        Syscall::Rseq {
            addr: FAKE_ADDR,
            len: 64,
            flags: 0,
            sig: 0x5305_3053
        }
    );
}

#[test]
fn setup_registration_einval_gives_unused_handle_and_no_prctl() {
    let mut p = FakePlatform::merged();
    p.results("rseq", [Err(Errno::EINVAL)]);
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::Prctl);
    assert_eq!(err, Some(SetupError::Register(Errno::EINVAL)));
    assert!(!ext.is_active());
    assert_eq!(p.syscalls().len(), 1);
}

#[test]
fn setup_registration_ebusy_counts_as_registered() {
    let mut p = FakePlatform::merged();
    p.results("rseq", [Err(Errno::EBUSY)]);
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::Prctl);
    assert_eq!(err, None);
    assert!(ext.is_active());
    assert_eq!(p.syscalls()[1], prctl_set(true));
}

#[test]
fn setup_prctl_enotsupp_gives_unused_handle_that_leaves_the_word_alone() {
    let mut p = FakePlatform::merged();
    p.results("prctl", [Err(Errno::ENOTSUPP)]);
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::Prctl);
    assert_eq!(err, Some(SetupError::Enable(Errno(524))));
    assert!(!ext.is_active());
    let n = p.log.len();
    assert_eq!(ext.critical_section(&mut p, |_| ()).1, SliceOutcome::Unused);
    assert_eq!(p.log.len(), n);
}

#[test]
fn setup_prctl_einval_from_a_v1_kernel_gives_unused_handle() {
    let mut p = FakePlatform::v1();
    p.results("prctl", [Err(Errno::EINVAL)]);
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::Prctl);
    assert_eq!(err, Some(SetupError::Enable(Errno::EINVAL)));
    assert_eq!(ext, SliceExt::unused(Revision::V1));
}

#[test]
fn setup_off_registers_only() {
    let mut p = FakePlatform::merged();
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::Off);
    assert_eq!((ext.is_active(), err), (false, None));
    assert_eq!(p.syscalls(), [rseq_call(&p, 0)]);
}

#[test]
fn setup_default_on_with_enabled_flag_needs_no_prctl() {
    let mut p = FakePlatform::merged();
    // Registration writes AVAILABLE|ENABLED into rseq::flags (spec §2.3 step 6).
    p.at(
        1,
        Action::SetU32(
            offset::FLAGS,
            RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE | RSEQ_CS_FLAG_SLICE_EXT_ENABLED,
        ),
    );
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::DefaultOn);
    assert_eq!((ext.is_active(), err), (true, None));
    assert_eq!(
        p.trace(),
        ["rseq(flags=0x2) -> Ok(0)", "ld32 flags -> 0x30"]
    );
}

#[test]
fn setup_default_on_without_enabled_flag_falls_back_to_prctl() {
    let mut p = FakePlatform::merged();
    p.at(
        1,
        Action::SetU32(offset::FLAGS, RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE),
    );
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::DefaultOn);
    assert_eq!((ext.is_active(), err), (true, None));
    assert_eq!(
        p.trace(),
        [
            "rseq(flags=0x2) -> Ok(0)",
            "ld32 flags -> 0x10",
            "prctl(79, 2, 1, 0, 0) -> Ok(0)"
        ]
    );
}

#[test]
fn setup_default_on_boot_disabled_reports_the_prctl_error() {
    let mut p = FakePlatform::merged();
    p.at(
        1,
        Action::SetU32(offset::FLAGS, RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE),
    );
    p.results("prctl", [Err(Errno::ENOTSUPP)]);
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::DefaultOn);
    assert!(!ext.is_active());
    assert_eq!(err, Some(SetupError::Enable(Errno::ENOTSUPP)));
}

#[test]
fn setup_default_on_rejected_by_v1_registration() {
    let mut p = FakePlatform::v1();
    p.results("rseq", [Err(Errno::EINVAL)]);
    let (ext, err) = SliceExt::setup(&mut p, EnableMode::DefaultOn);
    assert_eq!(err, Some(SetupError::Register(Errno::EINVAL)));
    assert!(!ext.is_active());
    assert_eq!(
        p.syscalls(),
        [rseq_call(&p, RSEQ_FLAG_SLICE_EXT_DEFAULT_ON)]
    );
}

#[test]
fn setup_error_messages_name_the_step_and_errno() {
    assert_eq!(
        SetupError::Enable(Errno::ENOTSUPP).to_string(),
        "prctl(PR_RSEQ_SLICE_EXTENSION, SET, ENABLE) failed: ENOTSUPP (524)"
    );
    assert_eq!(
        SetupError::Register(Errno::EPERM).to_string(),
        "rseq registration failed: EPERM (1)"
    );
}

// --- the other helpers ------------------------------------------------------------------------

#[test]
fn unregister_passes_the_unregister_flag_and_same_area() {
    let mut p = FakePlatform::merged();
    protocol::unregister(&mut p).unwrap();
    assert_eq!(p.syscalls(), [rseq_call(&p, RSEQ_FLAG_UNREGISTER)]);
}

#[test]
fn slice_ext_get_reads_the_enable_bit_of_the_result() {
    let mut p = FakePlatform::merged();
    p.results("prctl", [Ok(1), Ok(0), Err(Errno::ENOTSUPP)]);
    assert_eq!(protocol::slice_ext_get(&mut p), Ok(true));
    assert_eq!(protocol::slice_ext_get(&mut p), Ok(false));
    assert_eq!(protocol::slice_ext_get(&mut p), Err(Errno::ENOTSUPP));
    assert_eq!(p.trace()[0], "prctl(79, 1, 0, 0, 0) -> Ok(1)");
}

#[test]
fn slice_ext_set_disable_passes_arg3_0() {
    let mut p = FakePlatform::merged();
    protocol::slice_ext_set(&mut p, false).unwrap();
    assert_eq!(p.syscalls(), [prctl_set(false)]);
}

#[test]
fn read_flags_decodes_available_and_enabled() {
    let mut p = FakePlatform::merged().with_endian(Endian::Big);
    p.set_flags(RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE);
    let f = protocol::read_flags(&mut p);
    assert!(f.available() && !f.enabled());
    p.set_flags(RSEQ_CS_FLAG_SLICE_EXT_ENABLED);
    let f = protocol::read_flags(&mut p);
    assert!(!f.available() && f.enabled());
}

#[test]
fn spin_until_polls_the_clock_until_the_span_has_elapsed() {
    let mut p = FakePlatform::merged();
    p.now = 1_000;
    protocol::spin_until(&mut p, 1_000, 250);
    assert_eq!(
        p.trace(),
        [
            "clock -> 1000",
            "clock -> 1100",
            "clock -> 1200",
            "clock -> 1300"
        ]
    );
}

// --- the fake itself --------------------------------------------------------------------------

#[test]
fn fake_applies_scripted_action_just_before_the_indexed_call() {
    let mut p = FakePlatform::merged();
    p.at(1, Action::SetByte(offset::GRANTED, 1));
    assert_eq!(p.load_u8(offset::GRANTED), 0);
    assert_eq!(p.load_u8(offset::GRANTED), 1);
}

#[test]
fn fake_debug_check_flags_a_word_that_differs_from_the_kernel_grant() {
    let mut p = FakePlatform::merged();
    p.at(0, Action::Grant);
    p.store_u8(offset::REQUEST, 1);
    let _ = p.syscall(Syscall::RseqSliceYield);
    assert!(matches!(
        p.violations[..],
        [Violation::DebugCheck { call: 1, .. }]
    ));
}
