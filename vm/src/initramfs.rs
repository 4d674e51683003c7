//! The initramfs: busybox, the static probe binary and an `/init` that mounts proc, sys,
//! devtmpfs and debugfs, runs the probes and powers off. Written as an uncompressed
//! `newc` cpio archive (the format `Documentation/driver-api/early-userspace` describes),
//! which every kernel with `CONFIG_BLK_DEV_INITRD` unpacks; no `cpio` tool is needed, and
//! the same inputs give the same bytes.

/// Where the probe binary lives in the VM.
pub const PROBES_PATH: &str = "/probes";
/// Where busybox lives in the VM (`/init` calls every applet through it, no symlinks).
pub const BUSYBOX_PATH: &str = "/bin/busybox";
/// Printed by `/init` once the system is up, right before the probes start.
pub const START_MARKER: &str = "SLICESIM-VM START";
/// Printed by `/init` after the probes, before leaving.
pub const DONE_MARKER: &str = "SLICESIM-VM DONE";

/// One file or directory of the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path without the leading `/`.
    pub path: String,
    /// `st_mode`: type and permissions.
    pub mode: u32,
    /// File contents (empty for a directory).
    pub data: Vec<u8>,
}

const DIR: u32 = 0o040_000;
const FILE: u32 = 0o100_000;

impl Entry {
    fn dir(path: &str) -> Self {
        Self {
            path: path.into(),
            mode: DIR | 0o755,
            data: Vec::new(),
        }
    }

    fn exe(path: &str, data: Vec<u8>) -> Self {
        Self {
            path: path.trim_start_matches('/').into(),
            mode: FILE | 0o755,
            data,
        }
    }
}

/// The `/init` script: mount the pseudo file systems, set debugfs `rseq/slice_ext_nsec` if
/// asked (the probes' runner reports the value in force), run the probes with `probe_args`,
/// print [`DONE_MARKER`] and leave: `reboot -f`, which qemu's `-no-reboot` turns into an
/// exit (the tiny kernel's ACPI cannot power off: it halts instead, and qemu would wait).
pub fn init_script(probe_args: &str, slice_ext_nsec: Option<u32>) -> String {
    init_script_with(probe_args, slice_ext_nsec, &[])
}

/// Where extra user binaries live in the VM (`--extra FILE`): `/extra/NAME`.
pub const EXTRA_DIR: &str = "/extra";

/// Printed by `/init` before each extra binary runs: `SLICESIM-EXTRA NAME`.
pub const EXTRA_MARKER: &str = "SLICESIM-EXTRA";

/// [`init_script`], then each of `extras` (names under [`EXTRA_DIR`]) after the probes,
/// each announced by an [`EXTRA_MARKER`] line, with its exit status after it: a user's own
/// static binary on the same kernel, beside the probes (the probes' frame stays whole).
pub fn init_script_with(
    probe_args: &str,
    slice_ext_nsec: Option<u32>,
    extras: &[String],
) -> String {
    let extras: String = extras
        .iter()
        .map(|n| {
            format!("echo {EXTRA_MARKER} {n}\n{EXTRA_DIR}/{n}\necho {EXTRA_MARKER} {n} exit $?\n")
        })
        .collect();
    let tunable = slice_ext_nsec
        .map(|ns| format!("echo {ns} > /sys/kernel/debug/rseq/slice_ext_nsec\n"))
        .unwrap_or_default();
    format!(
        "#!{BUSYBOX_PATH} sh
B={BUSYBOX_PATH}
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
$B mount -t debugfs debugfs /sys/kernel/debug
[ -d /sys/kernel/tracing ] && $B mount -t tracefs tracefs /sys/kernel/tracing
{tunable}echo {START_MARKER}
{PROBES_PATH} {probe_args}
{extras}echo {DONE_MARKER}
$B reboot -f
"
    )
}

/// The archive's entries: directories, busybox, the probes and `/init`.
pub fn layout(
    busybox: Vec<u8>,
    probes: Vec<u8>,
    probe_args: &str,
    slice_ext_nsec: Option<u32>,
) -> Vec<Entry> {
    layout_with(busybox, probes, probe_args, slice_ext_nsec, Vec::new())
}

/// [`layout`] with extra static binaries `(name, bytes)` under [`EXTRA_DIR`], run after
/// the probes ([`init_script_with`]).
pub fn layout_with(
    busybox: Vec<u8>,
    probes: Vec<u8>,
    probe_args: &str,
    slice_ext_nsec: Option<u32>,
    extras: Vec<(String, Vec<u8>)>,
) -> Vec<Entry> {
    let names: Vec<String> = extras.iter().map(|(n, _)| n.clone()).collect();
    let mut v: Vec<Entry> = ["bin", "dev", "proc", "sys", "tmp"]
        .into_iter()
        .map(Entry::dir)
        .collect();
    if !names.is_empty() {
        v.push(Entry::dir(EXTRA_DIR.trim_start_matches('/')));
    }
    v.push(Entry::exe(BUSYBOX_PATH, busybox));
    v.push(Entry::exe(PROBES_PATH, probes));
    for (name, bytes) in extras {
        v.push(Entry::exe(&format!("{EXTRA_DIR}/{name}"), bytes));
    }
    v.push(Entry::exe(
        "/init",
        init_script_with(probe_args, slice_ext_nsec, &names).into_bytes(),
    ));
    v
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, size: usize, name: &str) {
    // c_magic, then 13 eight-digit hex fields: ino mode uid gid nlink mtime filesize
    // devmajor devminor rdevmajor rdevminor namesize check. mtime 0 keeps it reproducible.
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        size as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

/// The entries as a `newc` cpio archive, ending with the `TRAILER!!!` record.
pub fn newc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let nlink = if e.mode & DIR != 0 { 2 } else { 1 };
        header(&mut out, i as u32 + 1, e.mode, nlink, e.data.len(), &e.path);
        out.extend_from_slice(&e.data);
        pad4(&mut out);
    }
    header(&mut out, 0, 0, 1, 0, "TRAILER!!!");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read a newc archive back: (name, mode, data) per record, trailer excluded.
    fn read_newc(mut b: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let total = b.len();
        loop {
            assert_eq!(&b[..6], b"070701", "bad magic at {}", total - b.len());
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name = std::str::from_utf8(&b[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            let data_at = (110 + namesize).div_ceil(4) * 4;
            let data = b[data_at..data_at + size].to_vec();
            b = &b[(data_at + size).div_ceil(4) * 4..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty(), "bytes after the trailer");
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn the_archive_holds_init_busybox_and_the_probes() {
        let entries = layout(
            b"BUSYBOX".to_vec(),
            b"PROBES!!!".to_vec(),
            "--revision 7.2",
            None,
        );
        let files = read_newc(&newc(&entries));
        let names: Vec<&str> = files.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "dev",
                "proc",
                "sys",
                "tmp",
                "bin/busybox",
                "probes",
                "init"
            ]
        );
        let get = |n: &str| files.iter().find(|(x, _, _)| x == n).unwrap();
        assert_eq!(get("bin/busybox").2, b"BUSYBOX");
        assert_eq!(get("probes").2, b"PROBES!!!");
        assert_eq!(get("init").1, 0o100_755, "init must be an executable file");
        assert_eq!(get("proc").1, 0o040_755);
    }

    #[test]
    fn init_mounts_everything_runs_the_probes_and_leaves() {
        let init = init_script("--only registration", None);
        assert!(
            !init.contains("slice_ext_nsec"),
            "the default tunable is left alone"
        );
        let tuned = init_script("", Some(50_000));
        let set = tuned
            .find("echo 50000 > /sys/kernel/debug/rseq/slice_ext_nsec")
            .expect("sets the tunable");
        assert!(
            tuned.find("debugfs /sys/kernel/debug").unwrap() < set
                && set < tuned.find(START_MARKER).unwrap()
        );
        assert!(init.starts_with("#!/bin/busybox sh\n"));
        for m in [
            "-t proc proc /proc",
            "-t sysfs sysfs /sys",
            "-t devtmpfs devtmpfs /dev",
            "-t debugfs debugfs /sys/kernel/debug",
        ] {
            assert!(init.contains(m), "init does not mount {m}");
        }
        let probes = init
            .find("/probes --only registration")
            .expect("runs the probes");
        let off = init.find("reboot -f").expect("leaves the VM");
        assert!(init.find("debugfs").unwrap() < probes && probes < off);
    }

    #[test]
    fn a_calibration_boot_runs_the_benchmarks_in_place_of_the_probes() {
        let init = init_script("--calibrate", None);
        let run = init
            .find("/probes --calibrate\n")
            .expect("runs the benchmarks");
        assert!(init.find(START_MARKER).unwrap() < run && run < init.find(DONE_MARKER).unwrap());
    }

    #[test]
    fn extra_binaries_run_after_the_probes_each_announced() {
        let entries = layout_with(
            b"BUSYBOX".to_vec(),
            b"PROBES".to_vec(),
            "",
            None,
            vec![("ticket-lock-host".into(), b"USER".to_vec())],
        );
        let files = read_newc(&newc(&entries));
        let get = |n: &str| files.iter().find(|(x, _, _)| x == n).unwrap();
        assert_eq!(get("extra/ticket-lock-host").2, b"USER");
        assert_eq!(get("extra/ticket-lock-host").1, 0o100_755);
        let init = String::from_utf8(get("init").2.clone()).unwrap();
        let probes = init.find("/probes").unwrap();
        let marker = init.find("echo SLICESIM-EXTRA ticket-lock-host\n").unwrap();
        let run = init.find("/extra/ticket-lock-host\n").unwrap();
        let done = init.find(DONE_MARKER).unwrap();
        assert!(probes < marker && marker < run && run < done, "{init}");
        assert!(init.contains("echo SLICESIM-EXTRA ticket-lock-host exit $?"));
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes() {
        let a = newc(&layout(vec![1; 5], vec![2; 7], "", None));
        assert_eq!(a, newc(&layout(vec![1; 5], vec![2; 7], "", None)));
        assert_eq!(a.len() % 4, 0);
    }
}
