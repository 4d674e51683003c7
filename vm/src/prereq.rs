//! What `slicesim-vm` needs on the host before it fetches, builds or boots anything, and
//! the commands that install what is missing (`slicesim-vm doctor [--install]`).
//!
//! Looking is `main.rs`'s business (`PATH`, header files, `rustup target list
//! --installed`); here are the list of prerequisites per command and the pure functions
//! from "found / missing" to the report and the install commands.

/// How a missing prerequisite is installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A Debian package (`apt-get install -y PKG`).
    Apt(&'static str),
    /// A Rust target (`rustup target add TARGET`).
    RustTarget(&'static str),
}

/// What is looked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A program on `PATH`.
    Program(&'static str),
    /// Any of these files exists.
    AnyFile(&'static [&'static str]),
    /// An installed Rust target.
    RustTarget(&'static str),
}

/// One prerequisite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prereq {
    /// What it is called in the report.
    pub name: &'static str,
    /// What it is for.
    pub why: &'static str,
    /// How to look for it.
    pub probe: Probe,
    /// How to install it.
    pub source: Source,
}

/// The Rust target of the static probe binary.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

const fn program(name: &'static str, why: &'static str, pkg: &'static str) -> Prereq {
    Prereq {
        name,
        why,
        probe: Probe::Program(name),
        source: Source::Apt(pkg),
    }
}

/// Fetching the kernel source and busybox: apt's download, dpkg and the tarball's tools.
pub const FETCH: [Prereq; 4] = [
    program(
        "apt-get",
        "downloads linux-source and busybox-static",
        "apt",
    ),
    program("dpkg", "unpacks the downloaded packages", "dpkg"),
    program("tar", "unpacks the kernel source tarball", "tar"),
    program("xz", "decompresses the kernel source tarball", "xz-utils"),
];

/// Building the kernel.
pub const BUILD: [Prereq; 6] = [
    program("make", "runs the kernel build", "make"),
    program("gcc", "compiles the kernel", "gcc"),
    program("flex", "generates the kconfig lexer", "flex"),
    program("bison", "generates the kconfig parser", "bison"),
    program("bc", "computes the kernel's timer constants", "bc"),
    Prereq {
        name: "libelf headers",
        why: "objtool, which an x86_64 kernel build runs",
        probe: Probe::AnyFile(&["/usr/include/gelf.h", "/usr/include/libelf.h"]),
        source: Source::Apt("libelf-dev"),
    },
];

/// Booting: qemu and the static probe binary's target.
pub const BOOT: [Prereq; 2] = [
    program("qemu-system-x86_64", "boots the kernel", "qemu-system-x86"),
    Prereq {
        name: MUSL_TARGET,
        why: "the static probe binary the initramfs runs",
        probe: Probe::RustTarget(MUSL_TARGET),
        source: Source::RustTarget(MUSL_TARGET),
    },
];

/// The commands whose needs differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `fetch-source`: download and unpack.
    Fetch,
    /// `kernel`: fetch and build.
    Kernel,
    /// `run`, `calibrate`, `doctor`: fetch, build and boot.
    Boot,
}

/// What a command needs, in report order.
pub fn needed(need: Need) -> Vec<Prereq> {
    let mut v = FETCH.to_vec();
    if matches!(need, Need::Kernel | Need::Boot) {
        v.extend(BUILD);
    }
    if need == Need::Boot {
        v.extend(BOOT);
    }
    v
}

/// The commands that install every missing prerequisite: one `apt-get install -y` line
/// with all the packages (prefixed with `sudo` when not root), then one `rustup target
/// add` per target. Empty when nothing is missing.
pub fn install_commands(checked: &[(Prereq, bool)], root: bool) -> Vec<String> {
    let mut pkgs: Vec<&str> = Vec::new();
    let mut targets: Vec<&str> = Vec::new();
    for (p, found) in checked {
        if *found {
            continue;
        }
        match p.source {
            Source::Apt(pkg) if !pkgs.contains(&pkg) => pkgs.push(pkg),
            Source::RustTarget(t) if !targets.contains(&t) => targets.push(t),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if !pkgs.is_empty() {
        let sudo = if root { "" } else { "sudo " };
        out.push(format!("{sudo}apt-get install -y {}", pkgs.join(" ")));
    }
    out.extend(targets.iter().map(|t| format!("rustup target add {t}")));
    out
}

/// Every prerequisite with found / missing, then the install commands if anything is
/// missing: what `doctor` prints.
pub fn report(checked: &[(Prereq, bool)], root: bool) -> String {
    let width = checked.iter().map(|(p, _)| p.name.len()).max().unwrap_or(0);
    let mut s = String::new();
    for (p, found) in checked {
        let state = if *found { "found" } else { "MISSING" };
        s += &format!("{:<width$}  {state:<7}  {}\n", p.name, p.why);
    }
    let cmds = install_commands(checked, root);
    if cmds.is_empty() {
        s += "everything slicesim-vm needs is installed\n";
    } else {
        s += "install what is missing with:\n";
        for c in cmds {
            s += &format!("  {c}\n");
        }
    }
    s
}

/// The error a command fails with when something is missing (`None` if nothing is): what
/// is missing and the exact commands, instead of a failure deep inside a build.
pub fn missing_message(command: &str, checked: &[(Prereq, bool)], root: bool) -> Option<String> {
    let missing: Vec<&str> = checked
        .iter()
        .filter(|(_, found)| !found)
        .map(|(p, _)| p.name)
        .collect();
    if missing.is_empty() {
        return None;
    }
    let cmds = install_commands(checked, root);
    Some(format!(
        "`slicesim-vm {command}` needs {} which {} not installed; install with:\n  {}\n(or run `slicesim-vm doctor --install`)",
        missing.join(", "),
        if missing.len() == 1 { "is" } else { "are" },
        cmds.join("\n  ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(need: Need, missing: &[&str]) -> Vec<(Prereq, bool)> {
        needed(need)
            .into_iter()
            .map(|p| (p, !missing.contains(&p.name)))
            .collect()
    }

    #[test]
    fn each_command_checks_only_what_it_needs() {
        let names = |n| needed(n).iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names(Need::Fetch), ["apt-get", "dpkg", "tar", "xz"]);
        assert!(names(Need::Kernel).contains(&"libelf headers"));
        assert!(!names(Need::Kernel).contains(&"qemu-system-x86_64"));
        assert!(names(Need::Boot).contains(&"qemu-system-x86_64"));
        assert!(names(Need::Boot).contains(&MUSL_TARGET));
    }

    #[test]
    fn missing_packages_share_one_apt_line_and_targets_get_rustup() {
        let c = checked(
            Need::Boot,
            &[
                "qemu-system-x86_64",
                "flex",
                "bison",
                "libelf headers",
                MUSL_TARGET,
            ],
        );
        assert_eq!(
            install_commands(&c, true),
            [
                "apt-get install -y flex bison libelf-dev qemu-system-x86",
                "rustup target add x86_64-unknown-linux-musl"
            ]
        );
        assert_eq!(
            install_commands(&c, false)[0],
            "sudo apt-get install -y flex bison libelf-dev qemu-system-x86"
        );
        let msg = missing_message("run", &c, true).unwrap();
        assert!(msg.starts_with(
            "`slicesim-vm run` needs flex, bison, libelf headers, qemu-system-x86_64, \
             x86_64-unknown-linux-musl which are not installed"
        ));
        assert!(msg.contains("\n  apt-get install -y flex bison libelf-dev qemu-system-x86\n"));
        assert!(msg.contains("\n  rustup target add x86_64-unknown-linux-musl\n"));
    }

    #[test]
    fn the_report_lists_everything_and_says_when_all_is_there() {
        let all = checked(Need::Boot, &[]);
        assert_eq!(missing_message("kernel", &all, true), None);
        assert!(install_commands(&all, false).is_empty());
        let r = report(&all, true);
        assert_eq!(r.lines().count(), needed(Need::Boot).len() + 1);
        assert!(r.ends_with("everything slicesim-vm needs is installed\n"));
        let one = checked(Need::Fetch, &["xz"]);
        let r = report(&one, true);
        assert!(r.contains("xz       MISSING  decompresses"), "{r}");
        assert!(r.contains("apt-get  found  "), "{r}");
        assert!(r.ends_with("install what is missing with:\n  apt-get install -y xz-utils\n"));
        let m = missing_message("fetch-source", &one, true).unwrap();
        assert!(m.contains("needs xz which is not installed"), "{m}");
    }
}
