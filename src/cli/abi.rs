//! `slicesim abi`: the ABI this build mirrors (layout, constants, syscall numbers).

pub(super) fn print_abi() {
    use rseq_abi::consts::*;
    use rseq_abi::layout::offset;
    println!(
        "struct rseq: size {} align {}",
        std::mem::size_of::<rseq_abi::layout::Rseq>(),
        std::mem::align_of::<rseq_abi::layout::Rseq>()
    );
    for (n, o) in [
        ("cpu_id_start", offset::CPU_ID_START),
        ("cpu_id", offset::CPU_ID),
        ("rseq_cs", offset::RSEQ_CS),
        ("flags", offset::FLAGS),
        ("node_id", offset::NODE_ID),
        ("mm_cid", offset::MM_CID),
        ("slice_ctrl.request", offset::REQUEST),
        ("slice_ctrl.granted", offset::GRANTED),
        ("slice_ctrl.__reserved", offset::RESERVED),
    ] {
        println!("  {o:>2} {n}");
    }
    println!("RSEQ_FLAG_SLICE_EXT_DEFAULT_ON = {RSEQ_FLAG_SLICE_EXT_DEFAULT_ON:#x}");
    println!("RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE = {RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE:#x}, ENABLED = {RSEQ_CS_FLAG_SLICE_EXT_ENABLED:#x}");
    println!("PR_RSEQ_SLICE_EXTENSION = {PR_RSEQ_SLICE_EXTENSION} (GET {PR_RSEQ_SLICE_EXTENSION_GET}, SET {PR_RSEQ_SLICE_EXTENSION_SET}, ENABLE {PR_RSEQ_SLICE_EXT_ENABLE:#x})");
    println!(
        "__NR_rseq_slice_yield = {} (V1: {}, alpha: {})",
        nr::RSEQ_SLICE_YIELD,
        nr::V1_RSEQ_SLICE_YIELD,
        nr::ALPHA_RSEQ_SLICE_YIELD
    );
    println!("slice_ext_nsec: default {SLICE_EXT_NSEC_DEFAULT}, range [{SLICE_EXT_NSEC_MIN}, {SLICE_EXT_NSEC_MAX}] (V1 sysctl: {V1_SLICE_EXT_NSEC_DEFAULT}, [{V1_SLICE_EXT_NSEC_MIN}, {V1_SLICE_EXT_NSEC_MAX}])");
    println!(
        "ENOTSUPP = {} (not ENOTSUP = {})",
        errno::ENOTSUPP,
        errno::ENOTSUP
    );
}
