//! All-or-nothing output files.
//!
//! A command that writes several files names them all before it runs: [`Outputs::prepare`]
//! creates a temporary file beside each one at once, so an unwritable path is an error
//! before the simulation starts. The content goes to the temporary files; only when every
//! one was written does [`Outputs::commit`] rename them into place. On an error, a panic
//! or Ctrl-C the temporary files are removed and no output is left behind.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// Temporary files alive in this process: Ctrl-C removes them before it exits.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Remove the temporary files on Ctrl-C (once per process; a command that installs its
/// own handler keeps it).
fn clean_on_ctrl_c() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if let Ok(live) = LIVE.lock() {
                for p in live.iter() {
                    let _ = std::fs::remove_file(p);
                }
            }
            std::process::exit(130);
        });
    });
}

/// A set of output files written together or not at all.
#[derive(Default)]
pub struct Outputs {
    /// (final path, temporary path, open file).
    staged: Vec<(PathBuf, PathBuf, Option<File>)>,
    /// Scratch files (a streamed body), removed in any case.
    scratch: Vec<PathBuf>,
    /// Outputs that exist only if something is written to them (see [`Outputs::maybe`]).
    optional: BTreeSet<PathBuf>,
    /// Outputs written to.
    written: BTreeSet<PathBuf>,
}

impl Outputs {
    /// Create a temporary file beside each of `paths` now: fails (naming the path) if one
    /// cannot be written, or if two options name the same file.
    pub fn prepare<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<Self> {
        clean_on_ctrl_c();
        let mut out = Outputs::default();
        let mut seen = BTreeSet::new();
        for path in paths {
            if path == Path::new("-") {
                // A file named `-` is almost always a reader expecting stdout; the
                // outputs are written whole or not at all, so they are always files.
                bail!(
                    "output `-`: outputs are files written whole (temporary file, then \
                     rename), not stdout; name a file, e.g. `out.txt`"
                );
            }
            if !seen.insert(path.to_path_buf()) {
                bail!("two outputs name the same file {}", path.display());
            }
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = path
                .file_name()
                .with_context(|| format!("output path {} has no file name", path.display()))?;
            let tmp = dir.join(format!(
                ".{}.{}.tmp",
                name.to_string_lossy(),
                std::process::id()
            ));
            let f =
                File::create(&tmp).with_context(|| format!("cannot write {}", path.display()))?;
            LIVE.lock().expect("not poisoned").push(tmp.clone());
            out.staged.push((path.to_path_buf(), tmp, Some(f)));
        }
        Ok(out)
    }

    /// Also stage `paths` (checked now like [`Outputs::prepare`]'s), but create each only if
    /// something is written to it before [`Outputs::commit`]: an explorer's counterexample
    /// and witnesses exist only if the search finds them.
    pub fn maybe<'a>(mut self, paths: impl IntoIterator<Item = &'a Path>) -> Result<Self> {
        let paths: Vec<&Path> = paths.into_iter().collect();
        let more = Outputs::prepare(
            self.staged
                .iter()
                .map(|(p, _, _)| p.as_path())
                .chain(paths.iter().copied())
                .collect::<Vec<_>>(),
        );
        // Only the new paths are staged from `more`; the check above caught duplicates.
        let mut more = more?;
        let old = self.staged.len();
        for (i, (path, tmp, f)) in more.staged.drain(..).enumerate() {
            if i < old {
                drop(f);
                let _ = std::fs::remove_file(&tmp);
                forget(std::iter::once(&tmp));
            } else {
                self.optional.insert(path.clone());
                self.staged.push((path, tmp, f));
            }
        }
        Ok(self)
    }

    /// A scratch file beside output `path`, removed when the set is committed or dropped
    /// (a streamed trace's body, before its header is known).
    pub fn scratch(&mut self, path: &Path) -> Result<File> {
        let tmp = path.with_file_name(format!(
            ".{}.{}.body.tmp",
            path.file_name()
                .map_or("out".into(), |n| n.to_string_lossy()),
            std::process::id()
        ));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", path.display()))?;
        LIVE.lock().expect("not poisoned").push(tmp.clone());
        self.scratch.push(tmp);
        Ok(f)
    }

    /// The open temporary file of output `path` (which must have been prepared).
    pub fn file(&mut self, path: &Path) -> &mut File {
        self.written.insert(path.to_path_buf());
        self.staged
            .iter_mut()
            .find(|(p, _, _)| p == path)
            .and_then(|(_, _, f)| f.as_mut())
            .expect("a prepared output")
    }

    /// Write all of `bytes` as the content of output `path`.
    pub fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.file(path)
            .write_all(bytes)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Flush every file and rename them all into place.
    pub fn commit(mut self) -> Result<()> {
        for (path, _, f) in &mut self.staged {
            let f = f.take().expect("open until commit");
            f.sync_all()
                .with_context(|| format!("writing {}", path.display()))?;
        }
        for (path, tmp, _) in &self.staged {
            if self.optional.contains(path) && !self.written.contains(path) {
                let _ = std::fs::remove_file(tmp);
                continue;
            }
            std::fs::rename(tmp, path).with_context(|| format!("writing {}", path.display()))?;
        }
        let staged = std::mem::take(&mut self.staged);
        forget(staged.iter().map(|(_, t, _)| t));
        for t in std::mem::take(&mut self.scratch) {
            let _ = std::fs::remove_file(&t);
            forget(std::iter::once(&t));
        }
        Ok(())
    }
}

/// Stop tracking these temporary files.
fn forget<'a>(tmps: impl Iterator<Item = &'a PathBuf>) {
    let mut live = LIVE.lock().expect("not poisoned");
    for t in tmps {
        live.retain(|p| p != t);
    }
}

impl Drop for Outputs {
    /// An output set dropped without [`Outputs::commit`] leaves nothing behind.
    fn drop(&mut self) {
        for (_, tmp, f) in &mut self.staged {
            drop(f.take());
            let _ = std::fs::remove_file(tmp);
        }
        forget(self.staged.iter().map(|(_, t, _)| t));
        for t in &self.scratch {
            let _ = std::fs::remove_file(t);
        }
        forget(self.scratch.iter());
    }
}
