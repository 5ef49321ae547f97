// RawFfi.swift - calls one scaffolding function directly through the C header, to observe
// what a Rust panic hands back across the FFI without the generated wrapper's `try!`.

import Foundation
#if canImport(CrewSafeFFI)
import CrewSafeFFI
#endif

/// The RustCallStatus code uniffi uses for a caught Rust panic (CALL_UNEXPECTED_ERROR).
let rustCallUnexpectedError: Int8 = 2

/// Calls `CrewStore.debug_panic` like the generated `debugPanic()` does, but returns the
/// call status instead of trapping: the status code and the panic message, if any.
func callDebugPanicRaw(_ store: CrewStore) -> (code: Int8, message: String?) {
    var status = RustCallStatus(code: 0, errorBuf: RustBuffer(capacity: 0, len: 0, data: nil))
    // Like the generated code: the callee consumes a cloned handle.
    uniffi_crewsafe_fn_method_crewstore_debug_panic(store.uniffiCloneHandle(), &status)
    var message: String? = nil
    let buf = status.errorBuf
    if let data = buf.data, buf.len > 0 {
        message = String(decoding: UnsafeBufferPointer(start: data, count: Int(buf.len)),
                         as: UTF8.self)
    }
    if buf.data != nil {
        var freeStatus = RustCallStatus(code: 0,
                                        errorBuf: RustBuffer(capacity: 0, len: 0, data: nil))
        ffi_crewsafe_rustbuffer_free(buf, &freeStatus)
    }
    return (status.code, message)
}

/// Runs `body` with the process's stderr (fd 2) sent to a temporary file; returns what was
/// written. Rust's default panic hook prints every panic there.
func capturingStderr<T>(_ body: () throws -> T) rethrows -> (T, String) {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("crewsafe-stderr-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: url.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: url) }
    guard let file = FileHandle(forWritingAtPath: url.path) else { return (try body(), "") }
    fflush(stderr)
    let saved = dup(2)
    dup2(file.fileDescriptor, 2)
    defer { try? file.close() }
    let result: T
    do {
        result = try body()
    } catch {
        fflush(stderr); dup2(saved, 2); close(saved)
        throw error
    }
    fflush(stderr); dup2(saved, 2); close(saved)
    let text = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    return (result, text)
}
