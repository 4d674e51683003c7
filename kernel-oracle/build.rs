//! Builds the kernel's own rseq code for the oracle, or a stub without it.
//!
//! The source is `linux-source-7.2` as `slicesim-vm fetch-source` unpacks it
//! (`$SLICESIM_KSRC`, else the newest `src/*/linux-source-7.2` under `$SLICESIM_VM_CACHE`
//! or `~/.cache/slicesim-vm`). Every file read is checked against a pinned SHA-256 first:
//! a new 7.2.x is a reviewed bump of [`PINNED`], never a silent change of what the oracle
//! means. The files are copied into `OUT_DIR` (no kernel text is in the repository), the
//! few definitions that live in headers too heavy to compile whole are extracted
//! mechanically (never retyped), `autoconf.h` is generated from `vm/kernel.config`, and
//! the wrapper translation units in `shim/` are compiled with the `cc` crate.
//!
//! Without the source, or with a file that does not match, the crate builds as a stub
//! (`cfg(oracle_stub)`) and its tests say why and how to fetch the source.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The Linux version the hashes pin.
const VERSION: &str = "7.2.13";

/// Every kernel file the oracle reads, with its SHA-256 in Linux 7.2.13.
const PINNED: &[(&str, &str)] = &[
    (
        "kernel/rseq.c",
        "140c6c69677ca070c02384539400fb8652702c623a27a978232331328091a398",
    ),
    (
        "kernel/entry/common.c",
        "0f18f8a2c85cead149a7760893c251a4565df07ff0582cc967771527fb5844c0",
    ),
    (
        "include/linux/rseq_entry.h",
        "8671d68c6502a11147f5cb44938d7f19239fe4b8dcd6599c7b285e536cbf47e5",
    ),
    (
        "include/linux/rseq.h",
        "fbd58ca2fc658cf37a4db2ab5ca9d0bd43cdb35a3de8a30647eae1b87dd436ca",
    ),
    (
        "include/linux/rseq_types.h",
        "f42d75717d6b4b056d89e55a7fd310ab168401a7aeed17587eed63c05d3d57d3",
    ),
    (
        "include/linux/hrtimer_rearm.h",
        "73dd6d46bd3300bda330398ee9b73beef5b08400a512849edd855a0cb0001b45",
    ),
    (
        "include/asm-generic/thread_info_tif.h",
        "121390cca293c7ccadd591cbf96f312bdb1050852ed5b532462bf8c15e1b043c",
    ),
    (
        "include/linux/kconfig.h",
        "1b51cc51b6e4beb9b249853e0a0774f63679599f9a27b9e9fb8cc26ca14265f1",
    ),
    (
        "include/uapi/linux/rseq.h",
        "56339aefae205c859613cd9c87261b911b1e200dd333fe2aa5dc33f18f05ceac",
    ),
    (
        "include/uapi/linux/prctl.h",
        "87e50dc83d684b8d78087b8a0ff0e5100c453ac1bba4480853374049362702dc",
    ),
    (
        "include/linux/irq-entry-common.h",
        "2e3d387d8450245eec20dbe902d58aac8b56363f0e536689a3d7f41cd7720b02",
    ),
    (
        "include/linux/thread_info.h",
        "9216f1c3993bb2ad0eb60854b5070cc4350643957ed05c4f270a023d282ad0c0",
    ),
    (
        "include/linux/sched.h",
        "04b2939eeca63ba686709c184fd4c7e03be76d97ceac7239eb5204fc35522a62",
    ),
    (
        "include/linux/resume_user_mode.h",
        "917953d34b7eb03e25cba8ddd06e9660d8a48535757141a46e66202468d13f01",
    ),
    (
        "arch/x86/include/asm/uaccess_64.h",
        "b14258a1d193f5c3d63af371466a6a8402808f470d76769e378141e7720f152d",
    ),
    (
        "arch/x86/include/asm/page_64.h",
        "0d0d8b7e1c8701be6e3492dbd9e9df8ad9e6b064c8dc45353f29142d29b9df20",
    ),
    (
        "arch/x86/entry/syscalls/syscall_64.tbl",
        "93e42d351de2002418bf499b9a538f189fd683e8ecd52b4adc8a0bbe59130455",
    ),
    (
        "arch/x86/include/asm/thread_info.h",
        "29601bd9646cfcaf90d77eb334b7eff4c80dbdeff7148004c60a182ba932ccec",
    ),
    (
        "include/linux/bitops.h",
        "fdee528a2e2a17a568d305dd40cfa6f1bea510e155a0ed32df53bfda47a45209",
    ),
];

/// Compiled unmodified (copied whole into `OUT_DIR/real`).
const COMPILED: &[&str] = &[
    "kernel/rseq.c",
    "kernel/entry/common.c",
    "include/linux/rseq_entry.h",
    "include/linux/rseq.h",
    "include/linux/rseq_types.h",
    "include/linux/hrtimer_rearm.h",
    "include/asm-generic/thread_info_tif.h",
    "include/linux/kconfig.h",
    "include/uapi/linux/rseq.h",
    "include/uapi/linux/prctl.h",
];

/// Options the x86_64 architecture selects that `vm/kernel.config` does not spell out
/// (arch/x86/Kconfig `select`s): the entry code's shape depends on them.
const ARCH_SELECTED: &[&str] = &[
    "CONFIG_X86_64",
    "CONFIG_GENERIC_ENTRY",
    "CONFIG_GENERIC_IRQ_ENTRY",
    "CONFIG_HAVE_GENERIC_TIF_BITS",
    "CONFIG_HAVE_RSEQ",
];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(oracle_stub)");
    println!("cargo::rerun-if-env-changed=SLICESIM_KSRC");
    println!("cargo::rerun-if-env-changed=SLICESIM_VM_CACHE");
    println!("cargo::rerun-if-env-changed=SLICESIM_ORACLE_GCOV");
    println!("cargo::rerun-if-changed=shim");
    println!("cargo::rerun-if-changed=../vm/kernel.config");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    match build(&out) {
        Ok(tree) => {
            println!("cargo::rustc-env=KERNEL_ORACLE_SOURCE={}", tree.display());
            println!("cargo::rustc-env=KERNEL_ORACLE_STUB=");
        }
        Err(why) => {
            println!("cargo::rustc-cfg=oracle_stub");
            println!("cargo::rustc-env=KERNEL_ORACLE_SOURCE=");
            println!("cargo::rustc-env=KERNEL_ORACLE_STUB={why}");
        }
    }
}

/// The source tree, if there is one.
fn source_tree() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SLICESIM_KSRC") {
        return Some(d.into());
    }
    let cache = std::env::var_os("SLICESIM_VM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/slicesim-vm")))?;
    let src = cache.join("src");
    println!("cargo::rerun-if-changed={}", src.display());
    let mut trees: Vec<PathBuf> = std::fs::read_dir(&src)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("linux-source-7.2")))
        .filter(|p| p.join("kernel/rseq.c").is_file())
        .collect();
    trees.sort();
    trees.pop()
}

fn build(out: &Path) -> Result<PathBuf, String> {
    let tree = source_tree().ok_or_else(|| {
        "no linux-source-7.2 found (run `cargo run -p slicesim-vm -- fetch-source`, or set SLICESIM_KSRC)"
            .to_string()
    })?;
    let mut texts = std::collections::BTreeMap::new();
    for (file, want) in PINNED {
        let path = tree.join(file);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let got = format!("{:x}", Sha256::digest(&bytes));
        if got != *want {
            return Err(format!(
                "{} does not match Linux {VERSION} (sha256 {got}): a new 7.2.x needs a reviewed bump of PINNED in kernel-oracle/build.rs",
                path.display()
            ));
        }
        let text = String::from_utf8(bytes).map_err(|e| format!("{file}: {e}"))?;
        texts.insert(*file, text);
    }
    let real = out.join("real");
    for file in COMPILED {
        // uapi headers are found as <linux/...> through include/uapi, as in the kernel.
        let dest = real.join(file.strip_prefix("include/").unwrap_or(file));
        write(&dest, &texts[file])?;
    }
    let gen = out.join("gen");
    write(&gen.join("generated/autoconf.h"), &autoconf()?)?;
    let (pre, post, resume) = extracted(&texts)?;
    write(&gen.join("extracted_pre.h"), &pre)?;
    write(&gen.join("extracted_post.h"), &post)?;
    write(&gen.join("extracted_resume.h"), &resume)?;

    let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("shim");
    let mut cc = cc::Build::new();
    cc.include(&real)
        .include(shim.join("include"))
        .include(&shim)
        .include(&gen)
        .include(real.join("uapi"))
        .std("gnu11")
        // access_ok() relies on __builtin_constant_p folding: at least -O1, as the kernel.
        .opt_level(2)
        .flag("-fno-strict-aliasing")
        .flag("-fno-common")
        .flag("-fwrapv")
        .flag("-Werror=implicit-function-declaration")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-sign-compare")
        .flag_if_supported("-Wno-missing-field-initializers")
        .flag_if_supported("-Wno-unused-function")
        .flag_if_supported("-Wno-unused-variable")
        .flag_if_supported("-Wno-unused-label")
        .flag_if_supported("-Wno-pointer-arith")
        .file(shim.join("runtime.c"))
        .file(shim.join("wrap_rseq.c"))
        .file(shim.join("wrap_common.c"))
        .file(shim.join("wrap_common_rt.c"));
    if std::env::var_os("SLICESIM_ORACLE_GCOV").is_some() {
        cc.flag("--coverage").opt_level(0).flag("-fno-inline");
        println!("cargo::rustc-link-lib=gcov");
    }
    cc.try_compile("kernel_oracle")
        .map_err(|e| format!("compiling the kernel code: {e}"))?;
    Ok(tree)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `generated/autoconf.h` from the VM's option fragment plus what x86_64 selects.
fn autoconf() -> Result<String, String> {
    let frag = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vm/kernel.config");
    let text = std::fs::read_to_string(&frag).map_err(|e| format!("{}: {e}", frag.display()))?;
    let mut h = String::from("/* generated by kernel-oracle/build.rs from vm/kernel.config */\n");
    for line in text.lines().map(str::trim) {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if !k.starts_with("CONFIG_") {
            continue;
        }
        // The oracle builds the preemption models and the RT deny mask separately;
        // PREEMPT_DYNAMIC needs the static-call machinery, which the shim replaces.
        if k == "CONFIG_PREEMPT_DYNAMIC" {
            continue;
        }
        match v {
            "y" => writeln!(h, "#define {k} 1"),
            v if v.parse::<i64>().is_ok() => writeln!(h, "#define {k} {v}"),
            v => writeln!(h, "#define {k} {v}"),
        }
        .expect("writing to a String");
    }
    for k in ARCH_SELECTED {
        writeln!(h, "#define {k} 1").expect("writing to a String");
    }
    Ok(h)
}

/// The block that starts at the first line beginning with `start`: a `#define` with its
/// continuation lines, or a declaration up to its closing brace.
fn block(text: &str, start: &str) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(start))
        .ok_or_else(|| format!("no `{start}` to extract"))?;
    let mut out = String::new();
    if start.starts_with('#') {
        for l in &lines[i..] {
            out.push_str(l);
            out.push('\n');
            if !l.trim_end().ends_with('\\') {
                break;
            }
        }
        return Ok(out);
    }
    let mut depth = 0i32;
    let mut opened = false;
    for l in &lines[i..] {
        out.push_str(l);
        out.push('\n');
        depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
        opened |= l.contains('{');
        if opened && depth == 0 {
            break;
        }
    }
    Ok(out)
}

/// The definitions extracted from headers the shim cannot compile whole.
fn extracted(
    texts: &std::collections::BTreeMap<&str, String>,
) -> Result<(String, String, String), String> {
    let t = |f: &str| texts[f].as_str();
    let mut pre = String::from("/* extracted by kernel-oracle/build.rs; see PINNED there */\n");
    let arch_ti = t("arch/x86/include/asm/thread_info.h");
    pre += &block(arch_ti, "#define HAVE_TIF_NEED_RESCHED_LAZY")?;
    pre += &block(arch_ti, "#define HAVE_TIF_POLLING_NRFLAG")?;
    let ti = t("include/linux/thread_info.h");
    pre += &block(ti, "enum syscall_work_bit")?;
    pre += &block(ti, "#define SYSCALL_WORK_SYSCALL_RSEQ_SLICE")?;
    pre += &block(ti, "#define set_task_syscall_work")?;
    pre += &block(ti, "#define test_task_syscall_work")?;
    pre += &block(ti, "#define clear_task_syscall_work")?;
    let iec = t("include/linux/irq-entry-common.h");
    pre += "#ifndef ARCH_EXIT_TO_USER_MODE_WORK\n";
    pre += &block(iec, "# define ARCH_EXIT_TO_USER_MODE_WORK")?;
    pre += "#endif\n";
    pre += &block(iec, "#define EXIT_TO_USER_MODE_WORK")?;
    // TASK_SIZE_MAX: x86_64's task_size_max() picks between two constants at boot; the
    // oracle takes the 4-level paging one, as the model's TASK_SIZE.
    let page = t("arch/x86/include/asm/page_64.h");
    let small = page
        .lines()
        .find_map(|l| l.trim().strip_prefix("[small] \"i\" "))
        .and_then(|r| r.strip_suffix(','))
        .ok_or("no [small] constant in task_size_max()")?;
    writeln!(pre, "#define TASK_SIZE_MAX ({small})").expect("writing to a String");
    for name in ["rseq", "rseq_slice_yield"] {
        let nr = t("arch/x86/entry/syscalls/syscall_64.tbl")
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3 && f[2] == name && f[1] != "x32").then(|| f[0].to_string())
            })
            .ok_or_else(|| format!("no {name} in syscall_64.tbl"))?;
        writeln!(pre, "#define __NR_{name} {nr}").expect("writing to a String");
    }
    let mut post = String::from("/* extracted by kernel-oracle/build.rs; see PINNED there */\n");
    let sched = t("include/linux/sched.h");
    post += &block(sched, "static inline void set_tsk_need_resched(")?;
    post += &block(sched, "static inline void clear_tsk_need_resched(")?;
    post += &block(sched, "static inline void set_need_resched_current(")?;
    let ua = t("arch/x86/include/asm/uaccess_64.h");
    post += &block(ua, "#define valid_user_address(")?;
    post += &block(ua, "static inline bool __access_ok(")?;
    post += &block(
        t("include/linux/bitops.h"),
        "static inline int get_count_order(",
    )?;
    let mut resume = String::from("/* extracted by kernel-oracle/build.rs; see PINNED there */\n");
    resume += &block(
        t("include/linux/resume_user_mode.h"),
        "static inline void resume_user_mode_work(",
    )?;
    Ok((pre, post, resume))
}
