//! Host functions implemented in Python (the `shoal:redis` and `shoal:sql` capabilities of host
//! ABI v1): the guest calls into Rust, which calls the agent's Python dispatcher with the GIL.
//!
//! The call may block on a dependency, so it runs under `block_in_place` (the guest thread is
//! handed over to other guests meanwhile) and gives its execution slot back for the duration.
//! The Python side sees the guest's linear memory through a `GuestMemory` that is only valid
//! during the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::IntoPyObjectExt;
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use wasmtime::{Caller, Engine, Extern, FuncType, Linker, Result, Val, ValType, bail};

use crate::invoke::{Guest, Shared};

/// The Python side: `dispatch(state, index, memory, args)` runs host function `index`;
/// `new_state(namespace, app)` makes the per-invocation state capability code keeps its results in.
pub struct HostBridge {
    pub dispatch: Py<PyAny>,
    pub new_state: Py<PyAny>,
    pub shared: Arc<Shared>,
}

pub struct HostFn {
    pub module: String,
    pub name: String,
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
    pub index: usize,
}

pub fn val_type(kind: &str) -> Result<ValType> {
    Ok(match kind {
        "i32" => ValType::I32,
        "i64" => ValType::I64,
        "f32" => ValType::F32,
        "f64" => ValType::F64,
        other => bail!("unsupported host function value type {other:?}"),
    })
}

/// Per-invocation Python state, made at the first host call.
pub struct HostState {
    bridge: Arc<HostBridge>,
    namespace: String,
    app: String,
    app_id: u64,
    state: Option<Py<PyAny>>,
}

impl HostState {
    pub fn new(bridge: Arc<HostBridge>, namespace: &str, app: &str, app_id: u64) -> Self {
        Self {
            bridge,
            namespace: namespace.to_string(),
            app: app.to_string(),
            app_id,
            state: None,
        }
    }
}

/// A guest's linear memory during one host call; bounds-checked, invalid after the call.
#[pyclass(frozen, module = "shoal_dataplane")]
pub struct GuestMemory {
    base: AtomicUsize,
    len: AtomicUsize,
}

#[pymethods]
impl GuestMemory {
    fn read<'py>(&self, py: Python<'py>, ptr: i64, length: i64) -> PyResult<Bound<'py, PyBytes>> {
        let (ptr, length) = (
            (ptr as u64 & 0xffff_ffff) as usize,
            (length as u64 & 0xffff_ffff) as usize,
        );
        let (base, size) = (
            self.base.load(Ordering::Relaxed),
            self.len.load(Ordering::Relaxed),
        );
        if base == 0 || ptr + length > size {
            return Err(PyIndexError::new_err(format!(
                "read of {length} bytes at {ptr} is outside guest memory"
            )));
        }
        // SAFETY: in bounds of the guest memory, which cannot move or shrink while the guest is
        // suspended in this host call; `base` is zeroed before the call returns.
        let data = unsafe { std::slice::from_raw_parts((base + ptr) as *const u8, length) };
        Ok(PyBytes::new(py, data))
    }

    fn write(&self, ptr: i64, data: &[u8]) -> PyResult<()> {
        let ptr = (ptr as u64 & 0xffff_ffff) as usize;
        let (base, size) = (
            self.base.load(Ordering::Relaxed),
            self.len.load(Ordering::Relaxed),
        );
        if base == 0 || ptr + data.len() > size {
            return Err(PyIndexError::new_err(format!(
                "write of {} bytes at {ptr} is outside guest memory",
                data.len()
            )));
        }
        // SAFETY: as in `read`.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), (base + ptr) as *mut u8, data.len())
        };
        Ok(())
    }
}

pub fn define(linker: &mut Linker<Guest>, engine: &Engine, f: HostFn) -> Result<()> {
    let ty = FuncType::new(engine, f.params.clone(), f.results.clone());
    let label = format!("{}.{}", f.module, f.name);
    let (index, results_ty) = (f.index, f.results.clone());
    linker.func_new(
        &f.module,
        &f.name,
        ty,
        move |mut caller: Caller<'_, Guest>, params, results| {
            let (base, len) = match caller.get_export("memory") {
                Some(Extern::Memory(m)) => (m.data_ptr(&caller) as usize, m.data_size(&caller)),
                _ => (0, 0),
            };
            let (shared, app_id) = match caller.data().host.as_ref() {
                Some(h) => (h.bridge.shared.clone(), h.app_id),
                None => bail!("host function {label} called without host state"),
            };
            let holding = caller.data().holding.clone();
            // The call may block on a dependency: let other guests have the slot and the thread.
            if holding.swap(false, std::sync::atomic::Ordering::AcqRel) {
                shared.slots.release();
            }
            let Some(host) = caller.data_mut().host.as_mut() else {
                bail!("host function {label} called without host state");
            };
            let outcome = tokio::task::block_in_place(|| {
                let r = Python::with_gil(|py| {
                    call_python(py, host, index, base, len, params, results, &results_ty)
                });
                // A guest in the background lane runs without a slot (crate::lane).
                if !crate::lane::on_background() {
                    tokio::runtime::Handle::current().block_on(shared.slots.acquire(app_id, true));
                    holding.store(true, std::sync::atomic::Ordering::Release);
                }
                r
            });
            outcome.map_err(|message| {
                caller.data_mut().host_failure = Some(message.clone());
                wasmtime::Error::msg(message)
            })
        },
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn call_python(
    py: Python<'_>,
    host: &mut HostState,
    index: usize,
    base: usize,
    len: usize,
    params: &[Val],
    results: &mut [Val],
    results_ty: &[ValType],
) -> std::result::Result<(), String> {
    let fail = |e: PyErr| {
        e.value(py)
            .str()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| e.to_string())
    };
    if host.state.is_none() {
        let s = host
            .bridge
            .new_state
            .call1(py, (host.namespace.as_str(), host.app.as_str()))
            .map_err(fail)?;
        host.state = Some(s);
    }
    let state = host.state.as_ref().map(|s| s.clone_ref(py));
    let memory = Py::new(
        py,
        GuestMemory {
            base: AtomicUsize::new(base),
            len: AtomicUsize::new(len),
        },
    )
    .map_err(fail)?;
    let mut args: Vec<PyObject> = Vec::with_capacity(params.len());
    for p in params {
        let v = match p {
            Val::I32(i) => i.into_py_any(py),
            Val::I64(i) => i.into_py_any(py),
            Val::F32(bits) => f32::from_bits(*bits).into_py_any(py),
            Val::F64(bits) => f64::from_bits(*bits).into_py_any(py),
            _ => return Err("unsupported parameter type".into()),
        };
        args.push(v.map_err(fail)?);
    }
    let args = PyTuple::new(py, args).map_err(fail)?;
    let returned = host
        .bridge
        .dispatch
        .call1(py, (state, index, memory.clone_ref(py), args));
    let m = memory.get();
    m.base.store(0, Ordering::Relaxed);
    m.len.store(0, Ordering::Relaxed);
    let returned = returned.map_err(fail)?;
    let returned = returned.bind(py);
    let values: Vec<Bound<'_, PyAny>> = match results_ty.len() {
        0 => Vec::new(),
        1 => vec![returned.clone()],
        _ => returned
            .try_iter()
            .map_err(fail)?
            .collect::<PyResult<Vec<_>>>()
            .map_err(fail)?,
    };
    if values.len() != results_ty.len() {
        return Err(format!(
            "returned {} values, expected {}",
            values.len(),
            results_ty.len()
        ));
    }
    for ((slot, ty), v) in results.iter_mut().zip(results_ty).zip(values) {
        *slot = match ty {
            ValType::I32 => Val::I32(v.extract::<i64>().map_err(fail)? as i32),
            ValType::I64 => Val::I64(v.extract::<i64>().map_err(fail)?),
            ValType::F32 => Val::F32(v.extract::<f32>().map_err(fail)?.to_bits()),
            ValType::F64 => Val::F64(v.extract::<f64>().map_err(fail)?.to_bits()),
            _ => return Err("unsupported result type".into()),
        };
    }
    Ok(())
}
