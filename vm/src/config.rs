//! The kernel options the fidelity VM needs (`vm/kernel.config`) and their check against the
//! `.config` a build produced: `make olddefconfig` silently drops an option whose
//! dependencies are missing, so the harness refuses to boot a kernel without them.

/// The option fragment merged on top of `make tinyconfig`.
pub const FRAGMENT: &str = include_str!("../kernel.config");

/// One option a `.config` lacks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{option}: wanted {wanted}, .config has {found}")]
pub struct Missing {
    /// `CONFIG_…`.
    pub option: String,
    /// The fragment's value.
    pub wanted: String,
    /// The `.config`'s value, or `not set`.
    pub found: String,
}

/// The `CONFIG_X=value` assignments of a fragment or `.config`, in order; comments and
/// `# CONFIG_X is not set` lines are skipped.
pub fn assignments(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .collect()
}

/// Every option of `fragment` that `dotconfig` does not have with the same value.
pub fn check(dotconfig: &str, fragment: &str) -> Vec<Missing> {
    let have = assignments(dotconfig);
    assignments(fragment)
        .into_iter()
        .filter_map(|(k, v)| {
            let found = have
                .iter()
                .rev()
                .find(|(hk, _)| *hk == k)
                .map(|(_, hv)| *hv);
            (found != Some(v)).then(|| Missing {
                option: k.to_string(),
                wanted: v.to_string(),
                found: found.unwrap_or("not set").to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragment_asks_for_every_option_of_the_issue() {
        let opts: Vec<&str> = assignments(FRAGMENT).into_iter().map(|(k, _)| k).collect();
        for want in [
            "CONFIG_64BIT",
            "CONFIG_SMP",
            "CONFIG_HZ_1000",
            "CONFIG_HIGH_RES_TIMERS",
            "CONFIG_SERIAL_8250_CONSOLE",
            "CONFIG_BLK_DEV_INITRD",
            "CONFIG_DEVTMPFS",
            "CONFIG_PROC_FS",
            "CONFIG_SYSFS",
            "CONFIG_DEBUG_FS",
            "CONFIG_FUTEX",
            "CONFIG_POSIX_TIMERS",
            "CONFIG_RSEQ",
            "CONFIG_RSEQ_SLICE_EXTENSION",
            "CONFIG_RSEQ_STATS",
            "CONFIG_PREEMPT_DYNAMIC",
        ] {
            assert!(opts.contains(&want), "{want} missing from vm/kernel.config");
        }
    }

    #[test]
    fn a_dropped_option_is_reported_with_what_the_config_has() {
        let fragment = "# comment\nCONFIG_RSEQ=y\nCONFIG_RSEQ_SLICE_EXTENSION=y\nCONFIG_HZ=1000\n";
        let dotconfig = "CONFIG_RSEQ=y\n# CONFIG_RSEQ_SLICE_EXTENSION is not set\nCONFIG_HZ=250\n";
        let missing = check(dotconfig, fragment);
        assert_eq!(
            missing,
            vec![
                Missing {
                    option: "CONFIG_RSEQ_SLICE_EXTENSION".into(),
                    wanted: "y".into(),
                    found: "not set".into()
                },
                Missing {
                    option: "CONFIG_HZ".into(),
                    wanted: "1000".into(),
                    found: "250".into()
                },
            ]
        );
        assert_eq!(
            missing[1].to_string(),
            "CONFIG_HZ: wanted 1000, .config has 250"
        );
    }

    #[test]
    fn a_config_with_everything_passes() {
        let dotconfig = format!("# generated\n{FRAGMENT}CONFIG_EXTRA=y\n");
        assert_eq!(check(&dotconfig, FRAGMENT), vec![]);
    }
}
