//! What of the node's filesystem a guest sees: the read-only directories its app declares (filled by
//! the agent from the artifact and ConfigMaps) and, if it asks for one, a scratch directory of its
//! own per invocation. Nothing else: a WASI context without preopens has no filesystem at all.
//!
//! Read-only directories are preopened with `FsPerms::ReadOnly` (wasmtime-wasi refuses every
//! mutation); cap-std resolves every path the guest opens beneath the preopened directory, so `..`
//! and absolute paths cannot leave it, symlinks included.
//!
//! The scratch directory is a fresh directory under the agent's scratch root, preopened read-write
//! and removed with the invocation's store. Its size bound is checked by walking it: at epoch ticks
//! (at most every `CHECK_EVERY`, so a guest that writes fast overshoots by what it writes in that
//! time, one write at most as large as its linear memory) and once when the guest ends. A guest over
//! the bound traps with `ScratchFull`. Each entry counts at least `MIN_ENTRY_BYTES`, so a flood of
//! empty files fills the bound too.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::Result;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// How often a running guest's scratch directory is measured.
pub const CHECK_EVERY: Duration = Duration::from_millis(5);
/// What one file or directory counts at least (its inode and directory entry).
pub const MIN_ENTRY_BYTES: u64 = 512;

/// A host directory the guest sees read-only at `guest`.
#[derive(Debug, Clone)]
pub struct Mount {
    pub host: PathBuf,
    pub guest: String,
}

/// The scratch directory an app asks for.
#[derive(Debug, Clone)]
pub struct ScratchSpec {
    pub guest: String,
    pub max_bytes: u64,
    /// Where the per-invocation directories are made (the agent's own disk).
    pub root: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct Files {
    pub mounts: Vec<Mount>,
    pub scratch: Option<ScratchSpec>,
}

/// A guest wrote more into its scratch directory than its bound allows.
#[derive(Debug)]
pub struct ScratchFull {
    pub used: u64,
    pub bound: u64,
    pub guest: String,
}

impl std::fmt::Display for ScratchFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scratch directory {} holds {} bytes, over its bound of {} bytes",
            self.guest, self.used, self.bound
        )
    }
}

impl std::error::Error for ScratchFull {}

impl Files {
    /// Checked once at load, so a missing directory fails the app, not every request.
    pub fn check(&self) -> Result<()> {
        for m in &self.mounts {
            if !m.guest.starts_with('/') {
                wasmtime::bail!("guest path {:?} is not absolute", m.guest);
            }
            if !m.host.is_dir() {
                wasmtime::bail!(
                    "the directory for {} ({}) does not exist",
                    m.guest,
                    m.host.display()
                );
            }
        }
        if let Some(s) = &self.scratch {
            std::fs::create_dir_all(&s.root).map_err(|e| {
                wasmtime::Error::msg(format!("scratch root {}: {e}", s.root.display()))
            })?;
        }
        Ok(())
    }

    /// Preopen the app's directories into `wasi`; the returned scratch directory (if any) lives as
    /// long as the invocation's store and is removed with it.
    pub fn preopen(&self, wasi: &mut WasiCtxBuilder) -> Result<Option<Scratch>> {
        for m in &self.mounts {
            wasi.preopened_dir(&m.host, &m.guest, FsPerms::ReadOnly)?;
        }
        let Some(spec) = &self.scratch else {
            return Ok(None);
        };
        let scratch = Scratch::create(spec)?;
        wasi.preopened_dir(&scratch.dir, &spec.guest, FsPerms::ReadWrite)?;
        Ok(Some(scratch))
    }
}

/// The guest's run as it ended; a guest that ended normally (returned or exited) over its scratch
/// bound ends as `ScratchFull`.
pub fn checked_at_end<T>(run: Result<T>, scratch: Option<&Scratch>) -> Result<T> {
    let Some(s) = scratch else { return run };
    let ended = match &run {
        Ok(_) => true,
        Err(e) => e.downcast_ref::<wasmtime_wasi::I32Exit>().is_some(),
    };
    if ended {
        s.check().map_err(wasmtime::Error::new)?;
    }
    run
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// One invocation's scratch directory: measured while the guest runs, removed on drop.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    guest: String,
    bound: u64,
    last: Mutex<Instant>,
}

impl Scratch {
    fn create(spec: &ScratchSpec) -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = spec.root.join(format!("inv-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir)
            .map_err(|e| wasmtime::Error::msg(format!("scratch {}: {e}", dir.display())))?;
        Ok(Self {
            dir,
            guest: spec.guest.clone(),
            bound: spec.max_bytes,
            last: Mutex::new(Instant::now()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// At an epoch tick: measure if `CHECK_EVERY` has passed since the last time.
    pub fn tick(&self) -> std::result::Result<(), ScratchFull> {
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < CHECK_EVERY {
                return Ok(());
            }
            *last = Instant::now();
        }
        self.check()
    }

    /// Measure now: the guest has ended, or a tick said it is time.
    pub fn check(&self) -> std::result::Result<(), ScratchFull> {
        // Stop counting past the bound: a directory of a million entries costs one bound's walk.
        let used = usage(&self.dir, self.bound.saturating_add(1));
        if used > self.bound {
            return Err(ScratchFull {
                used,
                bound: self.bound,
                guest: self.guest.clone(),
            });
        }
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!(
                "WARNING shoal_dataplane: cannot remove scratch directory {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// Bytes under `dir` (files by the larger of their length and their allocated blocks, every entry
/// at least `MIN_ENTRY_BYTES`), counted until `stop` is reached.
pub fn usage(dir: &Path, stop: u64) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let bytes = meta.len().max(meta.blocks().saturating_mul(512));
            total = total.saturating_add(bytes.max(MIN_ENTRY_BYTES));
            if meta.is_dir() {
                pending.push(entry.path());
            }
            if total >= stop {
                return total;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("shoal-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn scratch_is_measured_and_removed() {
        let root = tmp("scratch");
        let spec = ScratchSpec {
            guest: "/tmp".into(),
            max_bytes: 8192,
            root: root.clone(),
        };
        let s = Scratch::create(&spec).unwrap();
        let dir = s.path().to_path_buf();
        std::fs::write(dir.join("a"), vec![1u8; 4000]).unwrap();
        assert!(s.check().is_ok());
        std::fs::write(dir.join("b"), vec![1u8; 6000]).unwrap();
        let full = s.check().unwrap_err();
        assert!(full.used > 8192, "{full}");
        assert!(full.to_string().contains("/tmp"), "{full}");
        drop(s);
        assert!(!dir.exists());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn empty_files_count_too() {
        let root = tmp("empties");
        for i in 0..40 {
            std::fs::write(root.join(format!("e{i}")), b"").unwrap();
        }
        assert_eq!(usage(&root, u64::MAX), 40 * MIN_ENTRY_BYTES);
        assert_eq!(usage(&root, 1024), 1024);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_missing_directory_fails_the_check() {
        let files = Files {
            mounts: vec![Mount {
                host: "/nonexistent/shoal".into(),
                guest: "/data".into(),
            }],
            scratch: None,
        };
        let e = files.check().unwrap_err().to_string();
        assert!(e.contains("/data"), "{e}");
    }
}
