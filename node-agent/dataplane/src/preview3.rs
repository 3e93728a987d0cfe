//! WASI preview 3 components (what Spin SDK 4+ emits: `wasi:http@0.3.x`, async lifts, streams and
//! futures) are refused before compiling, by the names they import and export. This host is
//! wasmtime 48 with its WASI preview 2 implementation only: without this check such a component
//! fails later with a validation error about async features, or a link error about a missing
//! instance, neither of which says what the user has to change.

use wasmparser::{Parser, Payload};

/// What a refusal says first; the agent's status and tests look for it.
pub const REFUSAL: &str = "WASI preview 3 (wasi:*@0.3.x, e.g. wasi:http@0.3.0) components are not \
     supported by this data plane (wasmtime 48, a WASI preview 2 host)";

/// Whether `name` (an import or export of a component) names a WASI 0.3 interface, release
/// candidates included (`wasi:http/handler@0.3.0-rc-2025-09-16`).
fn is_preview3(name: &str) -> bool {
    name.starts_with("wasi:")
        && name
            .split_once('@')
            .is_some_and(|(_, version)| version.starts_with("0.3.") || version == "0.3")
}

/// The top-level imports and exports of a component that are WASI 0.3 interfaces. Nested modules
/// and components are skipped: only what the host must provide or call counts. A binary that does
/// not parse yields what was read before the error (the compiler then says what is wrong).
pub fn preview3_names(wasm: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth == 0 => break,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 0 => names.extend(
                reader
                    .into_iter()
                    .flatten()
                    .map(|i| i.name.name.to_string()),
            ),
            Payload::ComponentExportSection(reader) if depth == 0 => names.extend(
                reader
                    .into_iter()
                    .flatten()
                    .map(|e| e.name.name.to_string()),
            ),
            _ => {}
        }
    }
    names.retain(|n| is_preview3(n));
    names.dedup();
    names
}

/// Refuse a WASI preview 3 component, naming (some of) the interfaces that make it one.
pub fn refuse(wasm: &[u8]) -> wasmtime::Result<()> {
    let names = preview3_names(wasm);
    if names.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    let more = match names.len() - shown.len() {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    wasmtime::bail!(
        "{REFUSAL}: it uses {}{more}; build it for WASI 0.2 (wasi:http@0.2.x), e.g. with \
         spin-sdk 3.x for Python or componentize-py 0.17",
        shown.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).unwrap()
    }

    #[test]
    fn a_component_that_imports_or_exports_wasi_0_3_is_refused_by_name() {
        let imports = component(
            r#"(component
                 (import "wasi:clocks/monotonic-clock@0.3.0-rc-2025-09-16" (instance))
                 (import "wasi:http/types@0.3.0" (instance)))"#,
        );
        let err = refuse(&imports).unwrap_err().to_string();
        assert!(err.starts_with(REFUSAL), "{err}");
        assert!(
            err.contains("wasi:clocks/monotonic-clock@0.3.0-rc-2025-09-16, wasi:http/types@0.3.0;"),
            "{err}"
        );
        let exports = component(
            r#"(component
                 (instance $h)
                 (export "wasi:http/handler@0.3.0" (instance $h)))"#,
        );
        assert_eq!(preview3_names(&exports), ["wasi:http/handler@0.3.0"]);
    }

    #[test]
    fn preview_2_components_and_lookalikes_pass() {
        let p2 = component(
            r#"(component
                 (import "wasi:http/types@0.2.3" (instance))
                 (import "fermyon:spin/key-value@0.3.0" (instance))
                 (component $inner (import "wasi:http/types@0.3.0" (instance))))"#,
        );
        assert!(preview3_names(&p2).is_empty());
        assert!(refuse(&p2).is_ok());
        assert!(refuse(b"not wasm at all").is_ok());
    }
}
