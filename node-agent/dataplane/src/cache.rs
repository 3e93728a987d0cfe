//! Compile once per digest: serialized modules and components on disk survive agent restarts.
//!
//! A file is only valid for the same wasmtime version and engine configuration, so both are in
//! its name. wasmtime trusts what it deserializes, so each file carries a sha256 of its payload;
//! anything that does not verify is deleted and compiled again instead of being loaded.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module, Result, bail, format_err};

const FILE_MAGIC: &[u8; 8] = b"SHOALCW2";
const HASH_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileResult {
    Compiled,
    CacheLoad,
    /// Already compiled in this process: not a compile, so not observed as one.
    Memory,
}

impl CompileResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compiled => "compiled",
            Self::CacheLoad => "cache_load",
            Self::Memory => "memory",
        }
    }
}

/// What an artifact compiles to: a core module, or a component (WASI preview 2).
#[derive(Clone)]
pub enum Artifact {
    Module(Module),
    Component(Component),
}

impl Artifact {
    fn serialize(&self) -> Result<Vec<u8>> {
        match self {
            Self::Module(m) => m.serialize(),
            Self::Component(c) => c.serialize(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Module(_) => "module",
            Self::Component(_) => "component",
        }
    }
}

/// A component's binary header: the `\0asm` magic, then version 0x0d and layer 1 (a core module
/// has version 1, layer 0).
pub fn is_component(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm[..4] == *b"\0asm" && wasm[6..8] == [1, 0]
}

pub struct ModuleCache {
    engine: Engine,
    dir: Option<PathBuf>,
    suffix: String,
    memory: Mutex<HashMap<String, Artifact>>,
}

pub fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl ModuleCache {
    pub fn new(engine: Engine, dir: Option<PathBuf>) -> Result<Self> {
        if let Some(d) = &dir {
            std::fs::create_dir_all(d).map_err(|e| format_err!("creating {}: {e}", d.display()))?;
        }
        let suffix = format!(
            "wasmtime{}-{}.cwasm",
            wasmtime_version(),
            crate::engine::fingerprint(&engine)
        );
        Ok(Self {
            engine,
            dir,
            suffix,
            memory: Mutex::new(HashMap::new()),
        })
    }

    pub fn path_for(&self, hex: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{hex}-{}", self.suffix)))
    }

    /// The compiled module or component of `wasm` (whose sha256 hex is `hex`), and how it was
    /// obtained.
    pub fn get(&self, wasm: &[u8], hex: &str) -> Result<(Artifact, CompileResult, f64)> {
        let start = Instant::now();
        if let Some(m) = self.memory.lock().unwrap().get(hex) {
            return Ok((
                m.clone(),
                CompileResult::Memory,
                start.elapsed().as_secs_f64(),
            ));
        }
        let component = is_component(wasm);
        let (module, result) = match self.load(hex, component) {
            Some(m) => (m, CompileResult::CacheLoad),
            None => {
                let m = if component {
                    crate::preview3::refuse(wasm)?;
                    Artifact::Component(Component::new(&self.engine, wasm)?)
                } else {
                    Artifact::Module(Module::new(&self.engine, wasm)?)
                };
                if let Err(e) = self.store(hex, &m) {
                    eprintln!("shoal_dataplane: could not write the module cache: {e:#}");
                }
                (m, CompileResult::Compiled)
            }
        };
        let seconds = start.elapsed().as_secs_f64();
        self.memory
            .lock()
            .unwrap()
            .entry(hex.to_string())
            .or_insert_with(|| module.clone());
        Ok((module, result, seconds))
    }

    /// Drop the in-memory copy (the disk copy stays for the next load).
    pub fn forget(&self, hex: &str) {
        self.memory.lock().unwrap().remove(hex);
    }

    fn load(&self, hex: &str, component: bool) -> Option<Artifact> {
        let path = self.path_for(hex)?;
        let blob = std::fs::read(&path).ok()?;
        match verify(&blob) {
            Ok(payload) => {
                // SAFETY: the payload was written by `store` below for this engine configuration
                // (file name) and its sha256 matches, so it is wasmtime's own serialization.
                let loaded = if component {
                    unsafe { Component::deserialize(&self.engine, payload) }
                        .map(Artifact::Component)
                } else {
                    unsafe { Module::deserialize(&self.engine, payload) }.map(Artifact::Module)
                };
                match loaded {
                    Ok(m) => Some(m),
                    Err(e) => {
                        eprintln!(
                            "shoal_dataplane: discarding unloadable {}: {e}",
                            path.display()
                        );
                        let _ = std::fs::remove_file(&path);
                        None
                    }
                }
            }
            Err(e) => {
                eprintln!("shoal_dataplane: discarding {}: {e}", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn store(&self, hex: &str, module: &Artifact) -> Result<()> {
        let Some(path) = self.path_for(hex) else {
            return Ok(());
        };
        let payload = module.serialize()?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), hex));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(FILE_MAGIC)?;
        f.write_all(&Sha256::digest(&payload))?;
        f.write_all(&payload)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

fn verify(blob: &[u8]) -> Result<&[u8]> {
    if blob.len() < FILE_MAGIC.len() + HASH_LEN || &blob[..FILE_MAGIC.len()] != FILE_MAGIC {
        bail!("not a Shoal module cache file");
    }
    let (hash, payload) = blob[FILE_MAGIC.len()..].split_at(HASH_LEN);
    if Sha256::digest(payload).as_slice() != hash {
        bail!("checksum mismatch");
    }
    Ok(payload)
}

pub fn wasmtime_version() -> &'static str {
    "48.0.8"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineSettings, build_engine};

    const WAT: &str = r#"(module (func (export "_start")))"#;

    #[test]
    fn compiles_once_then_loads_from_disk_and_discards_corrupt_files() {
        let dir = std::env::temp_dir().join(format!("shoal-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = build_engine(&EngineSettings {
            max_instances: 4,
            ..Default::default()
        })
        .unwrap();
        let wasm = wat::parse_str(WAT).unwrap();
        let hex = sha256_hex(&wasm);
        let cache = ModuleCache::new(engine.clone(), Some(dir.clone())).unwrap();
        assert_eq!(cache.get(&wasm, &hex).unwrap().1, CompileResult::Compiled);
        assert_eq!(cache.get(&wasm, &hex).unwrap().1, CompileResult::Memory);
        let fresh = ModuleCache::new(engine.clone(), Some(dir.clone())).unwrap();
        assert_eq!(fresh.get(&wasm, &hex).unwrap().1, CompileResult::CacheLoad);
        let path = fresh.path_for(&hex).unwrap();
        let mut blob = std::fs::read(&path).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 0xff;
        std::fs::write(&path, blob).unwrap();
        let again = ModuleCache::new(engine, Some(dir.clone())).unwrap();
        assert_eq!(again.get(&wasm, &hex).unwrap().1, CompileResult::Compiled);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
