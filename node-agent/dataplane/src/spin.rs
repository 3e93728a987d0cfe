//! Spin's host interfaces for Spin apps (spin-sdk 3.x components): `fermyon:spin/variables@2.0.0`
//! from the WasmApp's `variables` (resolved by the agent, Secrets and ConfigMaps included) and
//! `fermyon:spin/key-value@2.0.0`, whose `default` store is the app's Redis dependency with keys
//! namespaced per app as `shoal:redis` does, and `fermyon:spin/redis@2.0.0` to the app's declared
//! Redis dependencies only (`redis://<dependency>`; same keys; `execute` refused), and
//! `fermyon:spin/mysql@2.0.0` to the app's declared MySQL dependencies only (`mysql://<dependency>`).
//! The agent's Python capability code does the Redis and MySQL calls, through the same pools and
//! key spaces as the core-module host ABI. Every other Spin import is stubbed by `stub_absent`: the component
//! loads, and a call traps naming the interface.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyConnectionError, PyLookupError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use wasmtime::component::types::{ComponentInstance, ComponentItem};
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceType};
use wasmtime::{Engine, Result, bail};

use crate::component::CGuest;

wasmtime::component::bindgen!({
    path: "wit/spin",
    world: "fermyon:spin/shoal-host",
    with: {
        "fermyon:spin/key-value.store": KvStore,
        "fermyon:spin/redis.connection": RedisConn,
        "fermyon:spin/mysql.connection": MysqlConn,
    },
});

use fermyon::spin::key_value::{self, Error as KvError};
use fermyon::spin::mysql;
use fermyon::spin::rdbms_types::{
    self, Column, DbDataType, DbValue, Error as DbError, ParameterValue, RowSet,
};
use fermyon::spin::redis::{self, Error as RedisError, RedisParameter, RedisResult};
use fermyon::spin::variables::{self, Error as VarError};

/// What an app's Spin imports see: its variables and the agent's backend for stores.
#[derive(Default)]
pub struct SpinApp {
    pub namespace: String,
    pub name: String,
    pub variables: HashMap<String, String>,
    /// `backend(namespace, app, op, args)`: the agent's Python capability code (key-value).
    pub backend: Option<Arc<Py<PyAny>>>,
}

/// An open key-value store: its label.
pub struct KvStore {
    label: String,
}

/// A Redis connection of `fermyon:spin/redis`: the app's Redis dependency it names.
pub struct RedisConn {
    dependency: String,
}

/// A MySQL connection of `fermyon:spin/mysql`: the app's MySQL dependency it names.
pub struct MysqlConn {
    dependency: String,
}

/// Interfaces Shoal implements (the linker matches a 2.0.x import to them).
const IMPLEMENTED: [&str; 5] = [
    "fermyon:spin/variables@2.0",
    "fermyon:spin/key-value@2.0",
    "fermyon:spin/redis@2.0",
    "fermyon:spin/mysql@2.0",
    "fermyon:spin/rdbms-types@2.0",
];

/// Packages whose interfaces Spin hosts provide; an import from them that Shoal lacks is stubbed.
/// WASI's own interfaces (cli, http, io, ...) never are: a missing one fails the load, as it should.
const SPIN_FAMILY: [&str; 4] = ["fermyon:spin/", "spin:", "wasi:keyvalue/", "wasi:config/"];

pub fn add_to_linker(linker: &mut Linker<CGuest>) -> Result<()> {
    ShoalHost::add_to_linker::<CGuest, HasSelf<CGuest>>(linker, |g| g)
}

/// Whether an import is a Spin interface this host does not implement.
pub fn is_absent(name: &str) -> bool {
    SPIN_FAMILY.iter().any(|p| name.starts_with(p))
        && !IMPLEMENTED.iter().any(|i| {
            name.strip_prefix(i)
                .is_some_and(|rest| rest.starts_with('.'))
        })
}

/// Define trapping stubs for the Spin imports of `component` that Shoal does not implement, by
/// their exact names (not `define_unknown_imports_as_traps`, which is blind to semver and would
/// shadow WASI interfaces the linker provides under a newer patch version). Returns their names.
pub fn stub_absent(
    linker: &mut Linker<CGuest>,
    engine: &Engine,
    component: &Component,
) -> Result<Vec<String>> {
    let mut stubbed = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        if let ComponentItem::ComponentInstance(instance) = item.ty
            && is_absent(name)
        {
            stub_instance(linker, engine, name, &instance)?;
            stubbed.push(name.to_string());
        }
    }
    Ok(stubbed)
}

fn stub_instance(
    linker: &mut Linker<CGuest>,
    engine: &Engine,
    name: &str,
    instance: &ComponentInstance,
) -> Result<()> {
    let mut inst = linker.instance(name)?;
    for (export, item) in instance.exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(_) => {
                let what = format!("{name}#{export}");
                inst.func_new(export, move |_, _, _, _| {
                    bail!("{what}: this Spin interface is not implemented by Shoal")
                })?;
            }
            // One host type for every stubbed resource, so interfaces that share one type-check.
            ComponentItem::Resource(_) => {
                inst.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?
            }
            _ => {}
        }
    }
    Ok(())
}

/// Why a backend call failed: the store or dependency is unknown (LookupError), a value has the
/// wrong type (TypeError), the dependency cannot be reached (ConnectionError), or something else;
/// each with the backend's message.
enum Failure {
    NoSuchStore(String),
    Type(String),
    Connection(String),
    Other(String),
}

impl SpinApp {
    /// Call the agent's backend (blocking on a dependency: the thread is handed to other tasks).
    fn call<T>(
        &self,
        op: &str,
        args: impl for<'py> IntoPyObject<
            'py,
            Target = PyTuple,
            Output = Bound<'py, PyTuple>,
            Error = PyErr,
        >,
        convert: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>,
    ) -> std::result::Result<T, Failure> {
        let Some(backend) = self.backend.as_ref() else {
            return Err(Failure::NoSuchStore(
                "the agent has no backend for Spin stores".into(),
            ));
        };
        tokio::task::block_in_place(|| {
            Python::with_gil(|py| {
                let args = args
                    .into_pyobject(py)
                    .map_err(|e| Failure::Other(e.to_string()))?;
                let out = backend
                    .call1(py, (self.namespace.as_str(), self.name.as_str(), op, args))
                    .and_then(|v| convert(v.bind(py)));
                out.map_err(|e| {
                    let message = e.value(py).to_string();
                    if e.is_instance_of::<PyLookupError>(py) {
                        Failure::NoSuchStore(message)
                    } else if e.is_instance_of::<PyTypeError>(py) {
                        Failure::Type(message)
                    } else if e.is_instance_of::<PyConnectionError>(py) {
                        Failure::Connection(message)
                    } else {
                        Failure::Other(message)
                    }
                })
            })
        })
    }
}

fn kv_error(f: Failure) -> KvError {
    match f {
        Failure::NoSuchStore(_) => KvError::NoSuchStore,
        Failure::Type(_) => KvError::Other("wrong type".into()),
        Failure::Connection(m) | Failure::Other(m) => KvError::Other(m),
    }
}

fn redis_error(f: Failure) -> RedisError {
    match f {
        Failure::NoSuchStore(_) => RedisError::InvalidAddress,
        Failure::Type(_) => RedisError::TypeError,
        Failure::Connection(m) | Failure::Other(m) => RedisError::Other(m),
    }
}

/// An undeclared address is connection-failed with the backend's message, which names the
/// declared dependencies; a parameter the statement cannot take is bad-parameter.
fn db_error(f: Failure) -> DbError {
    match f {
        Failure::NoSuchStore(m) | Failure::Connection(m) => DbError::ConnectionFailed(m),
        Failure::Type(m) => DbError::BadParameter(m),
        Failure::Other(m) => DbError::QueryFailed(m),
    }
}

impl<'py> IntoPyObject<'py> for ParameterValue {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            ParameterValue::Boolean(v) => v.into_bound_py_any(py),
            ParameterValue::Int8(v) => v.into_bound_py_any(py),
            ParameterValue::Int16(v) => v.into_bound_py_any(py),
            ParameterValue::Int32(v) => v.into_bound_py_any(py),
            ParameterValue::Int64(v) => v.into_bound_py_any(py),
            ParameterValue::Uint8(v) => v.into_bound_py_any(py),
            ParameterValue::Uint16(v) => v.into_bound_py_any(py),
            ParameterValue::Uint32(v) => v.into_bound_py_any(py),
            ParameterValue::Uint64(v) => v.into_bound_py_any(py),
            ParameterValue::Floating32(v) => v.into_bound_py_any(py),
            ParameterValue::Floating64(v) => v.into_bound_py_any(py),
            ParameterValue::Str(v) => v.into_bound_py_any(py),
            ParameterValue::Binary(v) => Ok(PyBytes::new(py, &v).into_any()),
            ParameterValue::DbNull => Ok(py.None().into_bound(py)),
        }
    }
}

/// The backend's column type names are the WIT enum's case names.
fn data_type(name: &str) -> DbDataType {
    match name {
        "boolean" => DbDataType::Boolean,
        "int8" => DbDataType::Int8,
        "int16" => DbDataType::Int16,
        "int32" => DbDataType::Int32,
        "int64" => DbDataType::Int64,
        "uint8" => DbDataType::Uint8,
        "uint16" => DbDataType::Uint16,
        "uint32" => DbDataType::Uint32,
        "uint64" => DbDataType::Uint64,
        "floating32" => DbDataType::Floating32,
        "floating64" => DbDataType::Floating64,
        "str" => DbDataType::Str,
        "binary" => DbDataType::Binary,
        _ => DbDataType::Other,
    }
}

/// A column value as the column's type says (an integer that does not fit the signed type of its
/// width is an unsigned column's); an `other` column keeps a string or bytes value as it is.
fn db_value(ty: DbDataType, v: &Bound<'_, PyAny>) -> PyResult<DbValue> {
    fn int<S, U>(
        v: &Bound<'_, PyAny>,
        signed: fn(S) -> DbValue,
        unsigned: fn(U) -> DbValue,
    ) -> PyResult<DbValue>
    where
        S: for<'py> FromPyObject<'py>,
        U: for<'py> FromPyObject<'py>,
    {
        match v.extract::<S>() {
            Ok(s) => Ok(signed(s)),
            Err(_) => v.extract::<U>().map(unsigned),
        }
    }
    if v.is_none() {
        return Ok(DbValue::DbNull);
    }
    Ok(match ty {
        DbDataType::Boolean => DbValue::Boolean(v.extract::<i64>()? != 0),
        DbDataType::Int8 => int(v, DbValue::Int8, DbValue::Uint8)?,
        DbDataType::Int16 => int(v, DbValue::Int16, DbValue::Uint16)?,
        DbDataType::Int32 => int(v, DbValue::Int32, DbValue::Uint32)?,
        DbDataType::Int64 => int(v, DbValue::Int64, DbValue::Uint64)?,
        DbDataType::Uint8 => DbValue::Uint8(v.extract()?),
        DbDataType::Uint16 => DbValue::Uint16(v.extract()?),
        DbDataType::Uint32 => DbValue::Uint32(v.extract()?),
        DbDataType::Uint64 => DbValue::Uint64(v.extract()?),
        DbDataType::Floating32 => DbValue::Floating32(v.extract()?),
        DbDataType::Floating64 => DbValue::Floating64(v.extract()?),
        DbDataType::Str => DbValue::Str(v.extract()?),
        DbDataType::Binary => DbValue::Binary(v.downcast::<PyBytes>()?.as_bytes().to_vec()),
        DbDataType::Other => match (v.downcast::<PyBytes>(), v.extract::<String>()) {
            (Ok(b), _) => DbValue::Binary(b.as_bytes().to_vec()),
            (_, Ok(s)) => DbValue::Str(s),
            _ => DbValue::Unsupported,
        },
    })
}

/// What the backend returns for a query: `(columns: [(name, type)], rows: [[value]])`.
type BackendRows<'py> = (Vec<(String, String)>, Vec<Vec<Bound<'py, PyAny>>>);

/// The backend's rows as a row set.
fn row_set(v: &Bound<'_, PyAny>) -> PyResult<RowSet> {
    let (columns, rows): BackendRows<'_> = v.extract()?;
    let columns: Vec<Column> = columns
        .into_iter()
        .map(|(name, ty)| Column {
            name,
            data_type: data_type(&ty),
        })
        .collect();
    let rows = rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&columns)
                .map(|(value, column)| db_value(column.data_type, value))
                .collect::<PyResult<Vec<DbValue>>>()
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(RowSet { columns, rows })
}

fn as_bytes(v: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    if v.is_none() {
        return Ok(None);
    }
    Ok(Some(v.downcast::<PyBytes>()?.as_bytes().to_vec()))
}

impl variables::Host for CGuest {
    fn get(&mut self, name: String) -> std::result::Result<String, VarError> {
        // Spin's rule for variable names: lower-case letters, digits and underscores, a letter first.
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(VarError::InvalidName(name));
        }
        self.spin
            .variables
            .get(&name)
            .cloned()
            .ok_or(VarError::Undefined(name))
    }
}

impl key_value::Host for CGuest {}

impl key_value::HostStore for CGuest {
    fn open(&mut self, label: String) -> std::result::Result<Resource<KvStore>, KvError> {
        self.spin
            .call("kv.open", (label.as_str(),), |_| Ok(()))
            .map_err(kv_error)?;
        self.table
            .push(KvStore { label })
            .map_err(|e| KvError::Other(e.to_string()))
    }

    fn get(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> std::result::Result<Option<Vec<u8>>, KvError> {
        let label = self.label(&store)?;
        self.spin
            .call("kv.get", (label, key), as_bytes)
            .map_err(kv_error)
    }

    fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> std::result::Result<(), KvError> {
        let label = self.label(&store)?;
        self.spin
            .call("kv.set", (label, key, value), |_| Ok(()))
            .map_err(kv_error)
    }

    fn delete(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> std::result::Result<(), KvError> {
        let label = self.label(&store)?;
        self.spin
            .call("kv.delete", (label, key), |_| Ok(()))
            .map_err(kv_error)
    }

    fn exists(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> std::result::Result<bool, KvError> {
        let label = self.label(&store)?;
        self.spin
            .call("kv.exists", (label, key), |v| v.extract::<bool>())
            .map_err(kv_error)
    }

    fn get_keys(&mut self, store: Resource<KvStore>) -> std::result::Result<Vec<String>, KvError> {
        let label = self.label(&store)?;
        self.spin
            .call("kv.keys", (label,), |v| v.extract::<Vec<String>>())
            .map_err(kv_error)
    }

    fn drop(&mut self, store: Resource<KvStore>) -> Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl redis::Host for CGuest {}

impl redis::HostConnection for CGuest {
    /// `address` names one of the app's Redis dependencies: `redis://<dependency>` (the agent
    /// resolves where it is; any other host is InvalidAddress).
    fn open(&mut self, address: String) -> std::result::Result<Resource<RedisConn>, RedisError> {
        let dependency = self
            .spin
            .call("redis.open", (address,), |v| v.extract::<String>())
            .map_err(redis_error)?;
        self.table
            .push(RedisConn { dependency })
            .map_err(|e| RedisError::Other(e.to_string()))
    }

    fn publish(
        &mut self,
        conn: Resource<RedisConn>,
        channel: String,
        payload: Vec<u8>,
    ) -> std::result::Result<(), RedisError> {
        let dep = self.dependency(&conn)?;
        self.spin
            .call("redis.publish", (dep, channel, payload), |_| Ok(()))
            .map_err(redis_error)
    }

    fn get(
        &mut self,
        conn: Resource<RedisConn>,
        key: String,
    ) -> std::result::Result<Option<Vec<u8>>, RedisError> {
        let dep = self.dependency(&conn)?;
        self.spin
            .call("redis.get", (dep, key), as_bytes)
            .map_err(redis_error)
    }

    fn set(
        &mut self,
        conn: Resource<RedisConn>,
        key: String,
        value: Vec<u8>,
    ) -> std::result::Result<(), RedisError> {
        let dep = self.dependency(&conn)?;
        self.spin
            .call("redis.set", (dep, key, value), |_| Ok(()))
            .map_err(redis_error)
    }

    fn incr(
        &mut self,
        conn: Resource<RedisConn>,
        key: String,
    ) -> std::result::Result<i64, RedisError> {
        let dep = self.dependency(&conn)?;
        self.spin
            .call("redis.incr", (dep, key), |v| v.extract::<i64>())
            .map_err(redis_error)
    }

    fn del(
        &mut self,
        conn: Resource<RedisConn>,
        keys: Vec<String>,
    ) -> std::result::Result<u32, RedisError> {
        let dep = self.dependency(&conn)?;
        self.spin
            .call("redis.del", (dep, keys), |v| v.extract::<u32>())
            .map_err(redis_error)
    }

    fn sadd(
        &mut self,
        conn: Resource<RedisConn>,
        key: String,
        values: Vec<String>,
    ) -> std::result::Result<u32, RedisError> {
        let dep = self.dependency(&conn)?;
        self.spin
            .call("redis.sadd", (dep, key, values), |v| v.extract::<u32>())
            .map_err(redis_error)
    }

    fn smembers(
        &mut self,
        conn: Resource<RedisConn>,
        key: String,
    ) -> std::result::Result<Vec<String>, RedisError> {
        let dep = self.dependency(&conn)?;
        self.spin
            .call("redis.smembers", (dep, key), |v| v.extract::<Vec<String>>())
            .map_err(redis_error)
    }

    fn srem(
        &mut self,
        conn: Resource<RedisConn>,
        key: String,
        values: Vec<String>,
    ) -> std::result::Result<u32, RedisError> {
        let dep = self.dependency(&conn)?;
        self.spin
            .call("redis.srem", (dep, key, values), |v| v.extract::<u32>())
            .map_err(redis_error)
    }

    /// Refused: an arbitrary command's keys cannot be put into the app's key space.
    fn execute(
        &mut self,
        _conn: Resource<RedisConn>,
        command: String,
        _arguments: Vec<RedisParameter>,
    ) -> std::result::Result<Vec<RedisResult>, RedisError> {
        Err(RedisError::Other(format!(
            "execute({command}) is not supported by Shoal: its keys could not be kept in the \
             app's key space; use the typed functions"
        )))
    }

    fn drop(&mut self, conn: Resource<RedisConn>) -> Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

impl rdbms_types::Host for CGuest {}

impl mysql::Host for CGuest {}

impl mysql::HostConnection for CGuest {
    /// `address` names one of the app's MySQL dependencies: `mysql://<dependency>` (the agent
    /// knows where it is, its database and credentials; anything else is connection-failed).
    fn open(&mut self, address: String) -> std::result::Result<Resource<MysqlConn>, DbError> {
        let dependency = self
            .spin
            .call("mysql.open", (address,), |v| v.extract::<String>())
            .map_err(db_error)?;
        self.table
            .push(MysqlConn { dependency })
            .map_err(|e| DbError::Other(e.to_string()))
    }

    fn query(
        &mut self,
        conn: Resource<MysqlConn>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> std::result::Result<RowSet, DbError> {
        let dep = self.mysql_dependency(&conn)?;
        self.spin
            .call("mysql.query", (dep, statement, params), |v| {
                Ok(row_set(v).map_err(|e| e.to_string()))
            })
            .map_err(db_error)?
            .map_err(DbError::ValueConversionFailed)
    }

    fn execute(
        &mut self,
        conn: Resource<MysqlConn>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> std::result::Result<(), DbError> {
        let dep = self.mysql_dependency(&conn)?;
        self.spin
            .call("mysql.execute", (dep, statement, params), |_| Ok(()))
            .map_err(db_error)
    }

    fn drop(&mut self, conn: Resource<MysqlConn>) -> Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

impl CGuest {
    fn mysql_dependency(&self, conn: &Resource<MysqlConn>) -> std::result::Result<String, DbError> {
        self.table
            .get(conn)
            .map(|c| c.dependency.clone())
            .map_err(|e| DbError::Other(e.to_string()))
    }

    fn dependency(&self, conn: &Resource<RedisConn>) -> std::result::Result<String, RedisError> {
        self.table
            .get(conn)
            .map(|c| c.dependency.clone())
            .map_err(|e| RedisError::Other(e.to_string()))
    }

    fn label(&self, store: &Resource<KvStore>) -> std::result::Result<String, KvError> {
        self.table
            .get(store)
            .map(|s| s.label.clone())
            .map_err(|e| KvError::Other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absent_spin_interfaces_are_stubbed() {
        for absent in [
            "fermyon:spin/llm@2.0.0",
            "fermyon:spin/variables@3.0.0",
            "spin:postgres/postgres@4.0.0",
            "wasi:keyvalue/store@0.2.0-draft2",
            "wasi:config/store@0.2.0-draft-2024-09-27",
        ] {
            assert!(is_absent(absent), "{absent}");
        }
        for present in [
            "fermyon:spin/variables@2.0.0",
            "fermyon:spin/key-value@2.0.0",
            "fermyon:spin/redis@2.0.0",
            "fermyon:spin/mysql@2.0.0",
            "fermyon:spin/rdbms-types@2.0.0",
            "wasi:http/types@0.2.0",
            "wasi:cli/environment@0.2.0",
        ] {
            assert!(!is_absent(present), "{present}");
        }
    }
}
