//! Layout, constants and the control word against the spec's tables (§1.1–§1.5, §11).

mod support;

use core::mem::{align_of, offset_of, size_of};

use rseq_abi::consts::*;
use rseq_abi::layout::{cs_offset, offset, Rseq, RseqCs, RseqSliceCtrl};
use rseq_abi::{CtrlWord, Endian, Errno, Revision, Syscall};

// --- §1.1 struct rseq ---------------------------------------------------------------------

#[test]
fn rseq_field_offsets_match_spec_table_1_1() {
    assert_eq!(offset_of!(Rseq, cpu_id_start), 0);
    assert_eq!(offset_of!(Rseq, cpu_id), 4);
    assert_eq!(offset_of!(Rseq, rseq_cs), 8);
    assert_eq!(offset_of!(Rseq, flags), 16);
    assert_eq!(offset_of!(Rseq, node_id), 20);
    assert_eq!(offset_of!(Rseq, mm_cid), 24);
    assert_eq!(offset_of!(Rseq, slice_ctrl), 28);
}

#[test]
fn rseq_offset_constants_match_spec_table_1_1() {
    let table = [
        (offset::CPU_ID_START, 0),
        (offset::CPU_ID, 4),
        (offset::RSEQ_CS, 8),
        (offset::FLAGS, 16),
        (offset::NODE_ID, 20),
        (offset::MM_CID, 24),
        (offset::SLICE_CTRL, 28),
        (offset::REQUEST, 28),
        (offset::GRANTED, 29),
        (offset::RESERVED, 30),
        (offset::END, 32),
    ];
    for (got, want) in table {
        assert_eq!(got, want);
    }
}

#[test]
fn rseq_field_sizes_match_spec_table_1_1() {
    let r = Rseq::default();
    assert_eq!(size_of_val(&r.cpu_id_start), 4);
    assert_eq!(size_of_val(&r.cpu_id), 4);
    assert_eq!(size_of_val(&r.rseq_cs), 8);
    assert_eq!(size_of_val(&r.flags), 4);
    assert_eq!(size_of_val(&r.node_id), 4);
    assert_eq!(size_of_val(&r.mm_cid), 4);
    assert_eq!(size_of_val(&r.slice_ctrl), 4);
}

#[test]
fn rseq_is_32_bytes_aligned_32_and_feature_size_is_offset_of_end() {
    assert_eq!(size_of::<Rseq>(), 32);
    assert_eq!(align_of::<Rseq>(), 32);
    assert_eq!(RSEQ_FEATURE_SIZE, 32);
    assert_eq!(ORIG_RSEQ_SIZE, 32);
    assert_eq!(RSEQ_ALLOC_ALIGN, 32);
    assert_eq!(offset::END as u32, RSEQ_FEATURE_SIZE);
}

// --- §1.2 struct rseq_slice_ctrl ----------------------------------------------------------

#[test]
fn slice_ctrl_is_4_bytes_aligned_4_with_request_granted_reserved_at_0_1_2() {
    assert_eq!(size_of::<RseqSliceCtrl>(), 4);
    assert_eq!(align_of::<RseqSliceCtrl>(), 4);
    assert_eq!(offset_of!(RseqSliceCtrl, request), 0);
    assert_eq!(offset_of!(RseqSliceCtrl, granted), 1);
    assert_eq!(offset_of!(RseqSliceCtrl, reserved), 2);
    assert_eq!(
        size_of::<u16>(),
        size_of_val(&RseqSliceCtrl::default().reserved)
    );
}

#[test]
fn slice_ctrl_bytes_are_request_granted_reserved_in_memory_order() {
    let c = RseqSliceCtrl {
        request: 1,
        granted: 2,
        reserved: u16::from_ne_bytes([0xab, 0xcd]),
    };
    assert_eq!(c.to_bytes(), [1, 2, 0xab, 0xcd]);
    assert_eq!(RseqSliceCtrl::from_bytes([1, 2, 0xab, 0xcd]), c);
}

#[test]
fn slice_ctrl_all_is_the_host_endian_view_of_the_bytes() {
    let c = RseqSliceCtrl {
        request: 0,
        granted: 1,
        reserved: 0,
    };
    assert_eq!(
        c.all(),
        CtrlWord::from_bytes([0, 1, 0, 0]).all(Endian::NATIVE)
    );
    if cfg!(target_endian = "little") {
        assert_eq!(c.all(), 0x0000_0100);
    } else {
        assert_eq!(c.all(), 0x0001_0000);
    }
}

// --- §1.3 struct rseq_cs -------------------------------------------------------------------

#[test]
fn rseq_cs_layout_matches_spec_1_3() {
    assert_eq!(size_of::<RseqCs>(), 32);
    assert_eq!(align_of::<RseqCs>(), 32);
    assert_eq!(offset_of!(RseqCs, version), 0);
    assert_eq!(offset_of!(RseqCs, flags), 4);
    assert_eq!(offset_of!(RseqCs, start_ip), 8);
    assert_eq!(offset_of!(RseqCs, post_commit_offset), 16);
    assert_eq!(offset_of!(RseqCs, abort_ip), 24);
    assert_eq!(
        [
            cs_offset::VERSION,
            cs_offset::FLAGS,
            cs_offset::START_IP,
            cs_offset::POST_COMMIT_OFFSET,
            cs_offset::ABORT_IP
        ],
        [0, 4, 8, 16, 24]
    );
}

// --- §1.4 constants -----------------------------------------------------------------------

#[test]
fn cpu_id_sentinels_are_minus_1_and_minus_2() {
    assert_eq!(RSEQ_CPU_ID_UNINITIALIZED, -1);
    assert_eq!(RSEQ_CPU_ID_REGISTRATION_FAILED, -2);
    assert_eq!(RSEQ_CPU_ID_UNINITIALIZED as u32, 0xffff_ffff);
}

#[test]
fn rseq_flags_are_unregister_1_and_default_on_2() {
    assert_eq!(RSEQ_FLAG_UNREGISTER, 0x1);
    assert_eq!(RSEQ_FLAG_SLICE_EXT_DEFAULT_ON, 0x2);
}

#[test]
fn rseq_cs_flag_bits_match_spec_with_gap_at_bit_3() {
    assert_eq!(
        (
            RSEQ_CS_FLAG_NO_RESTART_ON_PREEMPT_BIT,
            RSEQ_CS_FLAG_NO_RESTART_ON_PREEMPT
        ),
        (0, 0x1)
    );
    assert_eq!(
        (
            RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL_BIT,
            RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL
        ),
        (1, 0x2)
    );
    assert_eq!(
        (
            RSEQ_CS_FLAG_NO_RESTART_ON_MIGRATE_BIT,
            RSEQ_CS_FLAG_NO_RESTART_ON_MIGRATE
        ),
        (2, 0x4)
    );
    assert_eq!(
        (
            RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE_BIT,
            RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE
        ),
        (4, 0x10)
    );
    assert_eq!(
        (
            RSEQ_CS_FLAG_SLICE_EXT_ENABLED_BIT,
            RSEQ_CS_FLAG_SLICE_EXT_ENABLED
        ),
        (5, 0x20)
    );
    let all = RSEQ_CS_FLAG_NO_RESTART_ON_PREEMPT
        | RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL
        | RSEQ_CS_FLAG_NO_RESTART_ON_MIGRATE
        | RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE
        | RSEQ_CS_FLAG_SLICE_EXT_ENABLED;
    assert_eq!(all & (1 << 3), 0, "bit 3 is the deliberate gap");
}

#[test]
fn prctl_constants_are_79_get_1_set_2_enable_1() {
    assert_eq!(PR_RSEQ_SLICE_EXTENSION, 79);
    assert_eq!(PR_RSEQ_SLICE_EXTENSION_GET, 1);
    assert_eq!(PR_RSEQ_SLICE_EXTENSION_SET, 2);
    assert_eq!(PR_RSEQ_SLICE_EXT_ENABLE, 0x01);
}

#[test]
fn errnos_match_spec_1_4() {
    use rseq_abi::consts::errno::*;
    assert_eq!((ENXIO, EINVAL, EFAULT, EPERM, EBUSY), (6, 22, 14, 1, 16));
    assert_eq!((ERANGE, ENOSYS), (34, 38));
}

#[test]
fn enotsupp_is_kernel_internal_524_not_libc_enotsup_95() {
    use rseq_abi::consts::errno::{ENOTSUP, ENOTSUPP};
    assert_eq!(ENOTSUPP, 524);
    assert_eq!(ENOTSUP, 95);
    assert_eq!(Errno::ENOTSUPP, Errno(524));
    assert_eq!(Errno(524).name(), "ENOTSUPP");
    assert_eq!(Errno(95).name(), "ENOTSUP");
    assert_eq!(Errno::ENOTSUPP.to_string(), "ENOTSUPP (524)");
}

#[test]
fn errno_constants_and_names_agree() {
    let table = [
        (Errno::EPERM, "EPERM", 1),
        (Errno::ENXIO, "ENXIO", 6),
        (Errno::EFAULT, "EFAULT", 14),
        (Errno::EBUSY, "EBUSY", 16),
        (Errno::EINVAL, "EINVAL", 22),
        (Errno::ERANGE, "ERANGE", 34),
        (Errno::ENOSYS, "ENOSYS", 38),
    ];
    for (e, name, v) in table {
        assert_eq!((e.0, e.name()), (v, name));
        assert_eq!(e.to_string(), format!("{name} ({v})"));
    }
    assert_eq!(Errno(9999).name(), "E?");
}

#[test]
fn rseq_sig_is_0x53053053() {
    assert_eq!(RSEQ_SIG, 0x5305_3053);
    assert_eq!(RSEQ_SIG_X86, 0x5305_3053);
}

#[test]
fn slice_ext_nsec_ranges_match_spec_4_1_and_v1() {
    assert_eq!(
        (
            SLICE_EXT_NSEC_DEFAULT,
            SLICE_EXT_NSEC_MIN,
            SLICE_EXT_NSEC_MAX
        ),
        (5_000, 5_000, 50_000)
    );
    assert_eq!(
        (
            V1_SLICE_EXT_NSEC_DEFAULT,
            V1_SLICE_EXT_NSEC_MIN,
            V1_SLICE_EXT_NSEC_MAX
        ),
        (30_000, 10_000, 50_000)
    );
}

#[test]
fn v1_request_is_bit_0_and_granted_is_bit_1() {
    assert_eq!(
        (V1_RSEQ_SLICE_EXT_REQUEST_BIT, V1_RSEQ_SLICE_EXT_REQUEST),
        (0, 1)
    );
    assert_eq!(
        (V1_RSEQ_SLICE_EXT_GRANTED_BIT, V1_RSEQ_SLICE_EXT_GRANTED),
        (1, 2)
    );
}

// --- §1.5 syscall numbers -----------------------------------------------------------------

#[test]
fn rseq_syscall_numbers_match_spec_1_5() {
    use rseq_abi::consts::nr::*;
    assert_eq!(
        (X86_64_RSEQ, I386_RSEQ, GENERIC_RSEQ, ALPHA_RSEQ),
        (334, 386, 293, 527)
    );
    #[cfg(target_arch = "x86_64")]
    assert_eq!(RSEQ, 334);
    #[cfg(target_arch = "aarch64")]
    assert_eq!(RSEQ, 293);
}

#[test]
fn rseq_slice_yield_is_471_merged_581_alpha_mips_offsets_and_470_in_v1() {
    use rseq_abi::consts::nr::*;
    assert_eq!(RSEQ_SLICE_YIELD, 471);
    assert_eq!(X86_64_RSEQ_SLICE_YIELD, 471);
    assert_eq!(I386_RSEQ_SLICE_YIELD, 471);
    assert_eq!(GENERIC_RSEQ_SLICE_YIELD, 471);
    assert_eq!(ALPHA_RSEQ_SLICE_YIELD, 581);
    assert_eq!(
        (
            MIPS_O32_RSEQ_SLICE_YIELD,
            MIPS_N64_RSEQ_SLICE_YIELD,
            MIPS_N32_RSEQ_SLICE_YIELD
        ),
        (4471, 5471, 6471)
    );
    assert_eq!(V1_RSEQ_SLICE_YIELD, 470);
}

#[test]
fn revision_yield_number_is_470_for_v1_and_471_after() {
    assert_eq!(Revision::V1.slice_yield_nr(), 470);
    assert_eq!(Revision::Merged.slice_yield_nr(), 471);
    assert_eq!(Revision::PostMerge.slice_yield_nr(), 471);
    assert_eq!(
        Revision::default(),
        Revision::PostMerge,
        "7.2 is the default"
    );
    assert_eq!(Revision::ALL.map(Revision::name), ["v1", "7.0", "7.2"]);
    for (alias, rev) in [
        ("merged", Revision::Merged),
        ("post-merge", Revision::PostMerge),
    ] {
        assert_eq!(Revision::from_name(alias), Some(rev), "old name {alias}");
    }
    for name in Revision::NAMES {
        assert!(Revision::from_name(name).is_some(), "{name}");
    }
    assert_eq!(Revision::from_name("7.1"), None);
    assert_eq!(Revision::ALL.map(Revision::is_v1), [true, false, false]);
}

#[test]
fn helper_syscall_numbers_match_the_x86_64_and_generic_tables() {
    use rseq_abi::consts::nr::*;
    assert_eq!((X86_64_GETPID, GENERIC_GETPID), (39, 172));
    assert_eq!((X86_64_SCHED_YIELD, GENERIC_SCHED_YIELD), (24, 124));
    assert_eq!((X86_64_PRCTL, GENERIC_PRCTL), (157, 167));
}

#[test]
fn syscall_names_are_strace_names() {
    assert_eq!(Syscall::RseqSliceYield.name(), "rseq_slice_yield");
    assert_eq!(Syscall::Getpid.name(), "getpid");
    assert_eq!(Syscall::SchedYield.name(), "sched_yield");
    assert_eq!(
        Syscall::Rseq {
            addr: 0,
            len: 32,
            flags: 0,
            sig: RSEQ_SIG
        }
        .name(),
        "rseq"
    );
    assert_eq!(Syscall::Other { nr: 1 }.name(), "syscall");
}

// --- control word per revision and byte order -------------------------------------------

#[test]
fn merged_granted_request_clear_word_reads_0x100_on_le_and_0x10000_on_be() {
    let w = CtrlWord::from_bytes([0, 1, 0, 0]);
    assert_eq!(w.all(Endian::Little), 0x0000_0100);
    assert_eq!(w.all(Endian::Big), 0x0001_0000);
}

#[test]
fn merged_bytes_are_at_fixed_offsets_on_both_byte_orders() {
    for endian in [Endian::Little, Endian::Big] {
        let w = CtrlWord::from_bytes([7, 1, 0xab, 0xcd]);
        assert_eq!(w.request(), 7);
        assert_eq!(w.granted(), 1);
        assert_eq!(w.reserved(), [0xab, 0xcd]);
        assert!(w.is_requested(Revision::Merged, endian));
        assert!(w.is_granted(Revision::Merged, endian));
        // And through the u32 view the bytes keep their memory positions.
        assert_eq!(CtrlWord::from_all(w.all(endian), endian), w);
    }
    assert_eq!(
        CtrlWord::from_all(0x0000_0100, Endian::Little).bytes,
        [0, 1, 0, 0]
    );
    assert_eq!(
        CtrlWord::from_all(0x0001_0000, Endian::Big).bytes,
        [0, 1, 0, 0]
    );
}

#[test]
fn merged_request_is_any_non_zero_byte() {
    for v in [1u8, 2, 0x80, 0xff] {
        assert!(CtrlWord::from_bytes([v, 0, 0, 0]).is_requested(Revision::Merged, Endian::Little));
    }
    assert!(!CtrlWord::from_bytes([0, 1, 0xff, 0xff]).is_requested(Revision::Merged, Endian::Big));
}

#[test]
fn v1_request_and_granted_bits_land_in_byte_0_on_le_and_byte_3_on_be() {
    let req = V1_RSEQ_SLICE_EXT_REQUEST;
    let gr = V1_RSEQ_SLICE_EXT_GRANTED;
    assert_eq!(CtrlWord::from_all(req, Endian::Little).bytes, [1, 0, 0, 0]);
    assert_eq!(CtrlWord::from_all(req, Endian::Big).bytes, [0, 0, 0, 1]);
    assert_eq!(CtrlWord::from_all(gr, Endian::Little).bytes, [2, 0, 0, 0]);
    assert_eq!(CtrlWord::from_all(gr, Endian::Big).bytes, [0, 0, 0, 2]);
    // Read back per byte order.
    let be = CtrlWord::from_bytes([0, 0, 0, 2]);
    assert!(be.v1_granted(Endian::Big) && !be.v1_request(Endian::Big));
    assert!(
        !be.v1_granted(Endian::Little),
        "byte 3 is bits 24..31 on LE"
    );
    // A V1 REQUEST on LE is what the merged ABI calls the request byte; on BE it is not.
    assert!(CtrlWord::from_all(req, Endian::Little).is_requested(Revision::Merged, Endian::Little));
    assert!(!CtrlWord::from_all(req, Endian::Big).is_requested(Revision::Merged, Endian::Big));
}

#[test]
fn grant_write_preserves_reserved_bytes_on_both_byte_orders() {
    let before = CtrlWord::from_bytes([1, 0, 0xab, 0xcd]);
    assert_eq!(before.granted_from().bytes, [0, 1, 0xab, 0xcd]);
    for endian in [Endian::Little, Endian::Big] {
        let after = before.after_grant(Revision::Merged, endian);
        assert_eq!(after.bytes, [0, 1, 0xab, 0xcd]);
        assert_eq!(before.after_grant(Revision::PostMerge, endian), after);
    }
}

#[test]
fn v1_grant_clears_request_sets_granted_and_keeps_other_bits() {
    for endian in [Endian::Little, Endian::Big] {
        let before = CtrlWord::from_all(0xa55a_0000 | V1_RSEQ_SLICE_EXT_REQUEST, endian);
        let after = before.after_grant(Revision::V1, endian);
        assert_eq!(after.all(endian), 0xa55a_0000 | V1_RSEQ_SLICE_EXT_GRANTED);
        assert!(after.is_granted(Revision::V1, endian));
        assert!(!after.is_requested(Revision::V1, endian));
    }
}

#[test]
fn expected_word_is_only_granted_equal_to_kernel_state() {
    assert_eq!(CtrlWord::expected(true).bytes, [0, 1, 0, 0]);
    assert_eq!(CtrlWord::expected(true).all(Endian::Little), 0x100);
    assert_eq!(CtrlWord::expected(true).all(Endian::Big), 0x1_0000);
    assert_eq!(CtrlWord::expected(false), CtrlWord::ZERO);
    // What the debug check would reject while granted:
    for bad in [[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]] {
        assert_ne!(CtrlWord::from_bytes(bad), CtrlWord::expected(true));
    }
}

#[test]
fn ctrl_word_display_is_req_gr_rsv_in_memory_order() {
    assert_eq!(
        CtrlWord::from_bytes([1, 0, 0, 0]).to_string(),
        "req=1 gr=0 rsv=0000"
    );
    assert_eq!(
        CtrlWord::from_bytes([0, 1, 0xab, 0x0c]).to_string(),
        "req=0 gr=1 rsv=ab0c"
    );
}

#[test]
fn endian_native_matches_the_compile_target() {
    assert_eq!(
        Endian::NATIVE == Endian::Little,
        cfg!(target_endian = "little")
    );
    assert_eq!(Endian::Little.u32_to(0x0102_0304), [4, 3, 2, 1]);
    assert_eq!(Endian::Big.u32_to(0x0102_0304), [1, 2, 3, 4]);
}

// --- the fake platform maps u32 accesses by its configured byte order ---------------------

#[test]
fn fake_platform_u32_accesses_follow_its_byte_order() {
    use rseq_abi::Platform;
    let mut le = support::FakePlatform::merged();
    le.store_u32(offset::SLICE_CTRL, 0x100);
    assert_eq!(le.ctrl().bytes, [0, 1, 0, 0]);
    let mut be = support::FakePlatform::merged().with_endian(Endian::Big);
    be.store_u32(offset::SLICE_CTRL, 0x100);
    assert_eq!(be.ctrl().bytes, [0, 0, 1, 0]);
    assert_eq!(be.load_u8(offset::GRANTED), 0);
}
