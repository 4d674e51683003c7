//! The kernel options the fidelity VM needs (`vm/kernel.config`) and their check against the
//! `.config` a build produced: `make olddefconfig` silently drops an option whose
//! dependencies are missing, so the harness refuses to boot a kernel without them.

/// The option fragment merged on top of `make tinyconfig`.
pub const FRAGMENT: &str = include_str!("../kernel.config");

/// What `--trace-kernel` adds: event tracing (tracefs with the sched, timer, irq,
/// irq_vectors, ipi and workqueue tracepoints, `trace_marker`) and symbol names for
/// hrtimer callbacks. No function tracer: its mcount hooks would change every path's
/// instruction count, and so the icount clock. The events themselves cost guest time only
/// when enabled.
pub const TRACE_FRAGMENT: &str = "\
CONFIG_FTRACE=y
CONFIG_ENABLE_DEFAULT_TRACERS=y
# CONFIG_FUNCTION_TRACER is not set
CONFIG_KALLSYMS=y
";

/// The fragment a build merges: [`FRAGMENT`], plus [`TRACE_FRAGMENT`] for a traced kernel
/// (its own build directory, since the cache key covers the fragment).
pub fn fragment(trace: bool) -> String {
    if trace {
        format!("{FRAGMENT}{TRACE_FRAGMENT}")
    } else {
        FRAGMENT.to_string()
    }
}

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
    fn the_traced_kernel_adds_event_tracing_and_builds_apart() {
        assert_eq!(fragment(false), FRAGMENT);
        let traced = fragment(true);
        assert!(traced.starts_with(FRAGMENT));
        let opts = assignments(&traced);
        for want in [
            "CONFIG_FTRACE",
            "CONFIG_ENABLE_DEFAULT_TRACERS",
            "CONFIG_KALLSYMS",
        ] {
            assert!(opts.contains(&(want, "y")), "{want}");
        }
        // Not the function tracer: its hooks would change every path's instruction count.
        assert!(traced.contains("# CONFIG_FUNCTION_TRACER is not set"));
        assert_ne!(
            crate::cache_key("7.2.13-1", FRAGMENT),
            crate::cache_key("7.2.13-1", &traced)
        );
    }

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
