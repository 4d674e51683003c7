//! `slicesim-vm`: build the fidelity kernel and run the probes on it in qemu.
//!
//! ```text
//! cargo run -p slicesim-vm -- kernel                      fetch and build (cached)
//! cargo run -p slicesim-vm -- fetch-source [--series 7.2]  fetch and unpack only (cached)
//! cargo run -p slicesim-vm -- run [--preempt full|lazy] [--no-slice-ext] [--debug]
//!                                 [--accel auto|kvm|tcg] [--clock icount[=SHIFT]|host]
//!                                 [--only PROBE] [--out FILE]
//! cargo run -p slicesim-vm -- calibrate [--clock icount[=SHIFT]|host] [--out FILE]
//!                                       [--console FILE] [--name NAME]
//!                                  measure the kernel's costs, write a machine profile
//! cargo run -p slicesim-vm -- calibrate --from-console FILE [--out FILE] [--name NAME]
//!                                  the profile of an earlier calibration console
//! cargo run -p slicesim-vm -- doctor [--install]  list the prerequisites (and install them)
//! ```
//!
//! `fetch-source`, `kernel`, `run` and `calibrate` first check what they need on the host
//! (apt-get, dpkg, tar and xz to fetch; make, gcc, flex, bison, bc and the libelf headers
//! to build; qemu and the `x86_64-unknown-linux-musl` Rust target to boot) and fail with
//! the exact install commands instead of failing inside a build; `doctor` lists every
//! prerequisite and `doctor --install` runs those commands.
//!
//! `calibrate` boots the kernel once with `vm_probes --calibrate` instead of the probes
//! (under TCG, by default with the instruction-counting clock), appends `SLICESIM-CAL
//! host` lines (qemu version, accelerator, clock, wall time) to the console file and
//! writes the machine profile computed from it (`slicesim_vm::calibrate`), all or
//! nothing: the profile goes to a temporary file renamed into place.
//!
//! Downloads come from the machine's Debian package registry only: `linux-source-7.*`
//! from the sid suite through a private sources file and lists under the cache (the
//! system's apt configuration is left alone), `busybox-static` from the system's suites;
//! both are unpacked with `dpkg -x`, never installed. The cache is `$SLICESIM_VM_CACHE`,
//! else `~/.cache/slicesim-vm`. See docs/fidelity.md.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use slicesim_vm::boot::{self, Accel, Boot, Preempt};
use slicesim_vm::prereq::{self, Need, Prereq};
use slicesim_vm::{cache_key, calibrate, config, initramfs};

#[derive(Parser)]
#[command(
    name = "slicesim-vm",
    about = "Build a kernel with the rseq time slice extension and run the fidelity probes on it"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fetch linux-source-7.* and build the kernel (cached by source version and options).
    Kernel {
        /// Build the variant with event tracing (`run --trace-kernel` boots it).
        #[arg(long)]
        trace: bool,
    },
    /// Fetch and unpack linux-source-7.* only (no kernel build); prints the source tree.
    /// The kernel oracle (`kernel-oracle/`) compiles its rseq code from this tree.
    FetchSource {
        /// Only this series (e.g. `7.2`, what the oracle pins) instead of the newest 7.*.
        #[arg(long)]
        series: Option<String>,
    },
    /// Boot the kernel with the probes and write the console output.
    Run(RunArgs),
    /// Boot the kernel with the calibration benchmarks and write a machine profile of the
    /// measured costs (issue 14).
    Calibrate(CalibrateArgs),
    /// List every prerequisite with found / missing and the commands that install what is
    /// missing.
    Doctor {
        /// Run those commands (apt-get install, rustup target add).
        #[arg(long)]
        install: bool,
    },
}

#[derive(clap::Args)]
struct CalibrateArgs {
    /// The guest clock (TCG): `icount` (1 instruction = 1 ns), `icount=SHIFT` or `host`.
    #[arg(long, value_parser = boot::Clock::parse, default_value = "icount")]
    clock: boot::Clock,
    /// The profile to write [target/vm/calibrate.toml].
    #[arg(long)]
    out: Option<PathBuf>,
    /// The console output (with the host lines appended) [target/vm/calibrate.console].
    #[arg(long)]
    console: Option<PathBuf>,
    /// The profile's name [qemu-CLOCK-measured].
    #[arg(long)]
    name: Option<String>,
    /// Virtual CPUs of the calibration boot (2..=64): the tick stalls it measures are the
    /// other vCPUs' turns under `-icount`, so calibrate with the vCPUs the runs will have.
    #[arg(long, default_value_t = boot::VCPUS, value_parser = clap::value_parser!(u32).range(2..=64))]
    vcpus: u32,
    /// Give up on the boot after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Boot nothing: convert this calibration console (with its host lines) into the
    /// profile, e.g. to regenerate a committed profile from its console.
    #[arg(long, value_name = "CONSOLE")]
    from_console: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PreemptArg {
    Full,
    Lazy,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AccelArg {
    /// KVM if a boot under it reaches the probes within 30 s, else TCG.
    Auto,
    Kvm,
    Tcg,
}

#[derive(clap::Args)]
struct RunArgs {
    /// `preempt=`.
    #[arg(long, value_enum, default_value_t = PreemptArg::Full)]
    preempt: PreemptArg,
    /// Boot with `rseq_slice_ext=0`.
    #[arg(long)]
    no_slice_ext: bool,
    /// Boot with `rseq_debug=1`.
    #[arg(long)]
    debug: bool,
    /// Boot the kernel variant with event tracing (built once by `kernel --trace`): `/init`
    /// mounts tracefs at /sys/kernel/tracing for `--extra` programs, e.g.
    /// `examples/slice-trace` (docs/fidelity.md, "tracing the guest kernel").
    #[arg(long)]
    trace_kernel: bool,
    /// Set debugfs `rseq/slice_ext_nsec` (5000..=50000) before the probes.
    #[arg(long, value_parser = clap::value_parser!(u32).range(5000..=50000))]
    slice_ext_nsec: Option<u32>,
    /// Virtual CPUs (2..=64; the probes pin to CPU 1). Under `-icount` qemu runs the
    /// vCPUs round-robin on one clock, so the other vCPUs' work is time the probes' CPU
    /// stands still (docs/fidelity.md).
    #[arg(long, default_value_t = boot::VCPUS, value_parser = clap::value_parser!(u32).range(2..=64))]
    vcpus: u32,
    /// Accelerator.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    accel: AccelArg,
    /// The guest clock under TCG: `icount` (1 instruction = 1 ns: reproducible,
    /// hardware-shaped timings, the default for fidelity runs), `icount=SHIFT`
    /// (2^SHIFT ns per instruction) or `host` (plain TCG: the guest clock follows the
    /// host's while its code runs tens of times slower). KVM always uses the host clock.
    #[arg(long, value_parser = boot::Clock::parse, default_value = "icount")]
    clock: boot::Clock,
    /// Run only these probes (comma-separated names).
    #[arg(long)]
    only: Option<String>,
    /// Also run this static binary after the probes (repeatable): your own program on the
    /// same kernel, e.g. `--extra target/x86_64-unknown-linux-musl/release/ticket-lock-host`;
    /// its output follows a `SLICESIM-EXTRA NAME` line in the console file.
    #[arg(long, value_name = "FILE")]
    extra: Vec<PathBuf>,
    /// Console output file [target/vm/LABEL.console].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Give up on a boot after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Kernel { trace } => {
            check_prereqs("kernel", Need::Kernel)?;
            let k = kernel(trace)?;
            println!("{}", k.display());
            Ok(())
        }
        Cmd::FetchSource { series } => {
            check_prereqs("fetch-source", Need::Fetch)?;
            let s = fetch_source(series.as_deref())?;
            eprintln!("kernel: source {} {}", s.pkg, s.version);
            println!("{}", s.tree.display());
            Ok(())
        }
        Cmd::Run(a) => {
            check_prereqs("run", Need::Boot)?;
            run(a)
        }
        Cmd::Calibrate(a) => {
            if a.from_console.is_none() {
                check_prereqs("calibrate", Need::Boot)?;
            }
            calibrate(a)
        }
        Cmd::Doctor { install } => doctor(install),
    }
}

/// Is `name` an executable file in a directory of `PATH`?
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Look for every prerequisite of `need`.
fn check(need: Need) -> Vec<(Prereq, bool)> {
    let mut targets: Option<String> = None;
    prereq::needed(need)
        .into_iter()
        .map(|p| {
            let found = match p.probe {
                prereq::Probe::Program(name) => on_path(name),
                prereq::Probe::AnyFile(files) => files.iter().any(|f| Path::new(f).exists()),
                prereq::Probe::RustTarget(t) => targets
                    .get_or_insert_with(|| {
                        output(Command::new("rustup").args(["target", "list", "--installed"]))
                            .unwrap_or_default()
                    })
                    .lines()
                    .any(|l| l.trim() == t),
            };
            (p, found)
        })
        .collect()
}

/// Are we root (no `sudo` in front of apt-get)?
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Fail with the install commands if something `command` needs is missing.
fn check_prereqs(command: &str, need: Need) -> Result<()> {
    match prereq::missing_message(command, &check(need), is_root()) {
        Some(msg) => bail!(msg),
        None => Ok(()),
    }
}

fn doctor(install: bool) -> Result<()> {
    let checked = check(Need::Boot);
    print!("{}", prereq::report(&checked, is_root()));
    if !install {
        return Ok(());
    }
    let cmds = prereq::install_commands(&checked, is_root());
    for c in &cmds {
        eprintln!("doctor: running {c}");
        sh(Command::new("sh").args(["-c", c]))?;
    }
    if !cmds.is_empty() {
        let again = check(Need::Boot);
        print!("{}", prereq::report(&again, is_root()));
        ensure!(
            again.iter().all(|(_, found)| *found),
            "still missing after the install commands"
        );
    }
    Ok(())
}

fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("SLICESIM_VM_CACHE") {
        return Ok(d.into());
    }
    let home = std::env::var_os("HOME").context("neither SLICESIM_VM_CACHE nor HOME is set")?;
    Ok(Path::new(&home).join(".cache/slicesim-vm"))
}

fn workspace_dir() -> PathBuf {
    let vm = Path::new(env!("CARGO_MANIFEST_DIR"));
    vm.parent().unwrap_or(vm).to_path_buf()
}

/// Run a command, failing with its name and status.
fn sh(cmd: &mut Command) -> Result<()> {
    let what = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("starting {what}"))?;
    ensure!(st.success(), "{what} failed: {st}");
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// apt options that point at a private sid sources file and lists under the cache.
fn sid_apt_opts(cache: &Path) -> Result<Vec<String>> {
    let apt = cache.join("apt");
    std::fs::create_dir_all(apt.join("lists/partial"))?;
    let sources = apt.join("sid.sources");
    std::fs::write(
        &sources,
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
    )?;
    Ok(vec![
        "-o".into(),
        format!("Dir::Etc::SourceList={}", sources.display()),
        "-o".into(),
        "Dir::Etc::SourceParts=/dev/null".into(),
        "-o".into(),
        format!("Dir::State::Lists={}", apt.join("lists").display()),
    ])
}

/// `apt-get download PKG` into `dir` (once), returning the .deb.
fn download(opts: &[String], pkg: &str, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let find = |dir: &Path| -> Result<Option<PathBuf>> {
        Ok(std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{pkg}_")))
            }))
    };
    if let Some(p) = find(dir)? {
        return Ok(p);
    }
    sh(Command::new("apt-get")
        .args(opts)
        .args(["download", pkg])
        .current_dir(dir))?;
    find(dir)?.with_context(|| format!("apt-get download {pkg} left no .deb"))
}

/// The newest `linux-source-7.*` in sid (or `linux-source-SERIES`): package name and
/// version.
fn newest_source(opts: &[String], series: Option<&str>) -> Result<(String, String)> {
    sh(Command::new("apt-get")
        .args(opts)
        .arg("update")
        .stdout(Stdio::null()))?;
    let names = output(Command::new("apt-cache").args(opts).args([
        "search",
        "--names-only",
        r"^linux-source-7\.[0-9]+$",
    ]))?;
    let mut pkgs: Vec<(u32, String)> = names
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| series.is_none_or(|s| n.strip_prefix("linux-source-") == Some(s)))
        .filter_map(|n| {
            Some((
                n.strip_prefix("linux-source-7.")?.parse().ok()?,
                n.to_string(),
            ))
        })
        .collect();
    pkgs.sort();
    let Some((_, pkg)) = pkgs.pop() else {
        bail!("no linux-source-{} package in sid", series.unwrap_or("7.*"));
    };
    let show = output(Command::new("apt-cache").args(opts).args(["show", &pkg]))?;
    let version = show
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .context("apt-cache show gave no Version")?
        .to_string();
    Ok((pkg, version))
}

/// An unpacked kernel source tree in the cache.
struct Source {
    pkg: String,
    version: String,
    tree: PathBuf,
}

/// Download (once) and unpack (once) `pkg` at `version` under the cache.
fn unpack_source(cache: &Path, opts: &[String], pkg: String, version: String) -> Result<Source> {
    let t0 = Instant::now();
    let deb = download(opts, &pkg, &cache.join("dl"))?;
    let src_root = cache.join("src").join(&version);
    let series = pkg.trim_start_matches("linux-source-");
    let tree = src_root.join(format!("linux-source-{series}"));
    if !tree.join("Makefile").exists() {
        std::fs::create_dir_all(&src_root)?;
        sh(Command::new("dpkg").arg("-x").arg(&deb).arg(&src_root))?;
        let tarball = src_root.join(format!("usr/src/linux-source-{series}.tar.xz"));
        sh(Command::new("tar")
            .arg("-xJf")
            .arg(&tarball)
            .arg("-C")
            .arg(&src_root))?;
        // The tarball is no longer needed once unpacked (about 150 MB).
        let _ = std::fs::remove_file(&tarball);
    }
    eprintln!(
        "kernel: fetched and unpacked {pkg} {version} in {:.0?}",
        t0.elapsed()
    );
    Ok(Source { pkg, version, tree })
}

/// Fetch and unpack the newest source only: what the kernel oracle and
/// `tests/kernel_map.rs` need, without building a kernel.
fn fetch_source(series: Option<&str>) -> Result<Source> {
    let cache = cache_dir()?;
    let opts = sid_apt_opts(&cache)?;
    let (pkg, version) = newest_source(&opts, series)?;
    unpack_source(&cache, &opts, pkg, version)
}

/// Fetch, unpack, configure, check and build; returns the bzImage. `trace`: the variant
/// with event tracing (`config::TRACE_FRAGMENT`), in its own build directory.
fn kernel(trace: bool) -> Result<PathBuf> {
    let fragment_text = config::fragment(trace);
    let cache = cache_dir()?;
    let opts = sid_apt_opts(&cache)?;
    let (pkg, version) = newest_source(&opts, None)?;
    let build = cache
        .join("build")
        .join(cache_key(&version, &fragment_text));
    let image = build.join("arch/x86/boot/bzImage");
    let dotconfig = build.join(".config");
    if image.exists()
        && config::check(&std::fs::read_to_string(&dotconfig)?, &fragment_text).is_empty()
    {
        eprintln!("kernel: cached {} ({pkg} {version})", image.display());
        return Ok(image);
    }
    let Source { tree, .. } = unpack_source(&cache, &opts, pkg, version)?;
    std::fs::create_dir_all(&build)?;
    let fragment = build.join("slicesim.config");
    std::fs::write(&fragment, &fragment_text)?;
    let make = |args: &[&str]| -> Result<()> {
        sh(Command::new("make")
            .arg(format!("O={}", build.display()))
            .args(args)
            .current_dir(&tree))
    };
    let t1 = Instant::now();
    make(&["tinyconfig"])?;
    sh(Command::new(tree.join("scripts/kconfig/merge_config.sh"))
        .arg("-m")
        .arg("-O")
        .arg(&build)
        .arg(&dotconfig)
        .arg(&fragment)
        .current_dir(&tree)
        .stdout(Stdio::null()))?;
    make(&["olddefconfig"])?;
    let missing = config::check(&std::fs::read_to_string(&dotconfig)?, &fragment_text);
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
        bail!(
            "the kernel configuration lacks options the VM needs:\n  {}",
            list.join("\n  ")
        );
    }
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    make(&["-j", &jobs.to_string(), "bzImage"])?;
    eprintln!("kernel: built {} in {:.0?}", image.display(), t1.elapsed());
    Ok(image)
}

/// busybox from Debian's `busybox-static`, unpacked (once).
fn busybox(cache: &Path) -> Result<Vec<u8>> {
    let bin = cache.join("busybox/bin/busybox");
    if !bin.exists() {
        let deb = download(&[], "busybox-static", &cache.join("dl"))?;
        sh(Command::new("dpkg")
            .arg("-x")
            .arg(&deb)
            .arg(cache.join("busybox")))?;
    }
    std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))
}

/// The static musl probe binary, built with cargo.
fn probes_binary() -> Result<Vec<u8>> {
    const TARGET: &str = "x86_64-unknown-linux-musl";
    let ws = workspace_dir();
    sh(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "-p",
                "rseq-abi",
                "--example",
                "vm_probes",
                "--target",
                TARGET,
            ])
            .current_dir(&ws),
    )?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| ws.join("target"), PathBuf::from);
    let bin = target.join(TARGET).join("release/examples/vm_probes");
    std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))
}

/// A finished boot: its console text and when the probes started and ended.
struct Booted {
    text: String,
    /// qemu start to the start marker (the system is up).
    boot: Option<Duration>,
    /// Start marker to done marker: the probes.
    probes: Option<Duration>,
}

/// How long qemu may go on after the done marker before it is stopped (it exits by itself
/// on `reboot -f`; this only guards against a guest that halts instead).
const AFTER_DONE: Duration = Duration::from_secs(10);

/// Boot once; `None` if `first_deadline` passed without the probes starting (used to give
/// up on a KVM that does not run guests).
fn boot_once(
    args: &[String],
    console: &Path,
    deadline: Duration,
    first_deadline: Option<Duration>,
) -> Result<Option<Booted>> {
    let mut child = Command::new("qemu-system-x86_64")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut file = std::fs::File::create(console)
        .with_context(|| format!("creating {}", console.display()))?;
    let start = Instant::now();
    let mut b = Booted {
        text: String::new(),
        boot: None,
        probes: None,
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if b.boot.is_none() && line.contains(initramfs::START_MARKER) {
                    b.boot = Some(start.elapsed());
                }
                if b.probes.is_none() && line.contains(initramfs::DONE_MARKER) {
                    b.probes = Some(start.elapsed() - b.boot.unwrap_or_default());
                }
                writeln!(file, "{line}")?;
                b.text += &line;
                b.text.push('\n');
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let late = first_deadline.is_some_and(|d| b.boot.is_none() && start.elapsed() > d);
        let done_long_ago = b
            .probes
            .is_some_and(|p| start.elapsed() > b.boot.unwrap_or_default() + p + AFTER_DONE);
        if late || done_long_ago || start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            if late {
                return Ok(None);
            }
            if done_long_ago {
                return Ok(Some(b));
            }
            bail!(
                "the VM did not finish within {deadline:?}; console so far in {}",
                console.display()
            );
        }
    }
    let _ = reader.join();
    child.wait()?;
    Ok(Some(b))
}

fn run(a: RunArgs) -> Result<()> {
    let cache = cache_dir()?;
    let boot = Boot {
        preempt: match a.preempt {
            PreemptArg::Full => Preempt::Full,
            PreemptArg::Lazy => Preempt::Lazy,
        },
        slice_ext: !a.no_slice_ext,
        debug: a.debug,
        slice_ext_nsec: a.slice_ext_nsec,
        trace: a.trace_kernel,
        vcpus: a.vcpus,
    };
    let image = kernel(a.trace_kernel)?;
    let probe_args = a
        .only
        .as_ref()
        .map(|p| format!("--only {p}"))
        .unwrap_or_default();
    let mut extras = Vec::new();
    for path in &a.extra {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("--extra {}: no file name", path.display()))?
            .to_string();
        let bytes = std::fs::read(path).with_context(|| format!("--extra {}", path.display()))?;
        extras.push((name, bytes));
    }
    let entries = initramfs::layout_with(
        busybox(&cache)?,
        probes_binary()?,
        &probe_args,
        boot.slice_ext_nsec,
        extras,
    );
    let initrd = cache.join(format!("initramfs-{}.cpio", boot.label()));
    std::fs::write(&initrd, initramfs::newc(&entries))?;
    let console = a.out.unwrap_or_else(|| {
        workspace_dir()
            .join("target/vm")
            .join(format!("{}.console", boot.label()))
    });
    if let Some(dir) = console.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let deadline = Duration::from_secs(a.timeout);
    let kvm_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let mut accel = match a.accel {
        AccelArg::Tcg => Accel::Tcg,
        AccelArg::Kvm => Accel::Kvm,
        AccelArg::Auto if kvm_usable => Accel::Kvm,
        AccelArg::Auto => Accel::Tcg,
    };
    let t = Instant::now();
    let first =
        (a.accel == AccelArg::Auto && accel == Accel::Kvm).then_some(Duration::from_secs(30));
    let mut text = boot_once(
        &boot::qemu_args(&image, &initrd, &boot, accel, a.clock),
        &console,
        deadline,
        first,
    )?;
    if text.is_none() {
        eprintln!("run: KVM did not start the probes within 30 s; falling back to TCG");
        accel = Accel::Tcg;
        text = boot_once(
            &boot::qemu_args(&image, &initrd, &boot, accel, a.clock),
            &console,
            deadline,
            None,
        )?;
    }
    let booted = text.context("the VM produced no console output")?;
    let (Some(to_begin), Some(probes)) = (booted.boot, booted.probes) else {
        bail!(
            "the VM stopped before the probes finished; see {}",
            console.display()
        );
    };
    let clock = match accel {
        Accel::Kvm => "host clock".to_string(),
        Accel::Tcg => format!("{} clock", a.clock.name()),
    };
    eprintln!(
        "run: {} ({}) under {} ({clock}): boot {:.1?}, probes {:.1?}, {:.1?} in all; console in {}",
        boot.label(),
        boot.cmdline(),
        accel.name(),
        to_begin,
        probes,
        t.elapsed(),
        console.display()
    );
    Ok(())
}

/// Write `text` to `path` all or nothing: a temporary file beside it, renamed into place.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let name = path
        .file_name()
        .with_context(|| format!("{}: no file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

fn calibrate(a: CalibrateArgs) -> Result<()> {
    let cache = cache_dir()?;
    let boot = Boot {
        vcpus: a.vcpus,
        ..Boot::default()
    };
    let name = |clock: &str| {
        a.name
            .clone()
            .unwrap_or_else(|| format!("qemu-{clock}-measured"))
    };
    let out = a
        .out
        .unwrap_or_else(|| workspace_dir().join("target/vm/calibrate.toml"));
    // Fail on an unwritable --out before the boot, not after it.
    let probe_out = out.with_file_name(format!(
        ".{}.probe",
        out.file_name()
            .map_or("out".into(), |n| n.to_string_lossy())
    ));
    write_atomic(&probe_out, "")
        .with_context(|| format!("--out {} is not writable", out.display()))?;
    let _ = std::fs::remove_file(&probe_out);
    if let Some(console) = &a.from_console {
        let text = std::fs::read_to_string(console)
            .with_context(|| format!("reading {}", console.display()))?;
        let frame = rseq_abi::programs::calibrate::CalFrame::parse(&text)
            .with_context(|| format!("reading the calibration from {}", console.display()))?;
        // The clock the console was taken under, not this command's --clock.
        let name = name(frame.host("clock").unwrap_or(&a.clock.name()));
        let profile = calibrate::profile(&frame, &name)
            .with_context(|| format!("reading the calibration from {}", console.display()))?;
        write_atomic(&out, &profile)?;
        eprintln!(
            "calibrate: profile `{name}` from {} in {}",
            console.display(),
            out.display()
        );
        return Ok(());
    }

    let image = kernel(false)?;
    let entries = initramfs::layout(busybox(&cache)?, probes_binary()?, "--calibrate", None);
    let initrd = cache.join("initramfs-calibrate.cpio");
    std::fs::write(&initrd, initramfs::newc(&entries))?;
    let console = a
        .console
        .unwrap_or_else(|| workspace_dir().join("target/vm/calibrate.console"));
    if let Some(dir) = console.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let qemu = output(Command::new("qemu-system-x86_64").arg("--version"))?
        .lines()
        .next()
        .unwrap_or("?")
        .trim()
        .to_string();
    let t = Instant::now();
    let booted = boot_once(
        &boot::qemu_args(&image, &initrd, &boot, Accel::Tcg, a.clock),
        &console,
        Duration::from_secs(a.timeout),
        None,
    )?
    .context("the VM produced no console output")?;
    let wall = t.elapsed();
    let (Some(to_begin), Some(benchmarks)) = (booted.boot, booted.probes) else {
        bail!(
            "the VM stopped before the calibration finished; see {}",
            console.display()
        );
    };
    let host = format!(
        "{p} host qemu = {qemu}\n{p} host accel = tcg\n{p} host clock = {}\n{p} host wall_s = {:.1}\n{p} host boot_s = {:.1}\n{p} host calibrate_s = {:.1}\n",
        a.clock.name(),
        wall.as_secs_f64(),
        to_begin.as_secs_f64(),
        benchmarks.as_secs_f64(),
        p = rseq_abi::programs::calibrate::CAL_PREFIX,
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&console)
        .and_then(|mut f| f.write_all(host.as_bytes()))
        .with_context(|| format!("appending the host lines to {}", console.display()))?;
    let text = booted.text + &host;
    let name = name(&a.clock.name());
    let profile = calibrate::profile_from_console(&text, &name)
        .with_context(|| format!("reading the calibration from {}", console.display()))?;
    write_atomic(&out, &profile)?;
    eprintln!(
        "calibrate: {} under tcg ({} clock): boot {:.1?}, benchmarks {:.1?}, {:.1?} in all; console in {}, profile `{name}` in {}",
        boot.cmdline(),
        a.clock.name(),
        to_begin,
        benchmarks,
        wall,
        console.display(),
        out.display()
    );
    Ok(())
}
