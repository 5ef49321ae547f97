// TestRunner.swift - a tiny test harness for the CrewSafe Swift bindings (no XCTest on the
// trixie chroot, only Foundation). Compiled together with the generated bindings and
// main.swift into one executable by bindings/swift/run-tests.sh.
//
//   test("name") { ... }        runs a test now; an `expect*` miss or a thrown error fails it
//   expect(cond, "message")      records a failure and continues
//   expectEqual(a, b)            records a failure (with both values) and continues
//   try require(cond, "msg")     records a failure and ends the test
//   expectCrewSafeError(...)     the call must throw a CrewSafeError that matches
//   finishTests()                prints a summary and exits 1 if any test failed

import Foundation

/// Thrown by `require` to end the current test (the failure is already recorded).
struct TestAbort: Error {}

private var currentFailures: [String] = []
private var results: [(name: String, failures: [String], seconds: Double)] = []
private let failureLock = NSLock()
private var suiteStart: Date? = nil

private func location(_ file: StaticString, _ line: UInt) -> String {
    let name = ("\(file)" as NSString).lastPathComponent
    return "\(name):\(line)"
}

/// Records a failure for the running test. Thread-safe, so worker threads may call it.
func fail(_ message: String, file: StaticString = #file, line: UInt = #line) {
    failureLock.lock()
    currentFailures.append("\(location(file, line)): \(message)")
    failureLock.unlock()
}

func expect(_ condition: Bool, _ message: @autoclosure () -> String = "expectation failed",
            file: StaticString = #file, line: UInt = #line) {
    if !condition { fail(message(), file: file, line: line) }
}

func expectEqual<T: Equatable>(_ actual: T, _ expected: T, _ message: String = "",
                               file: StaticString = #file, line: UInt = #line) {
    if actual != expected {
        let prefix = message.isEmpty ? "" : "\(message): "
        fail("\(prefix)expected \(expected), got \(actual)", file: file, line: line)
    }
}

/// Like `expect`, but ends the test when the condition does not hold.
func require(_ condition: Bool, _ message: @autoclosure () -> String = "requirement failed",
             file: StaticString = #file, line: UInt = #line) throws {
    if !condition {
        fail(message(), file: file, line: line)
        throw TestAbort()
    }
}

/// Unwraps an optional or ends the test.
func requireSome<T>(_ value: T?, _ message: String = "unexpected nil",
                    file: StaticString = #file, line: UInt = #line) throws -> T {
    guard let v = value else {
        fail(message, file: file, line: line)
        throw TestAbort()
    }
    return v
}

/// Runs `body`, which must throw a `CrewSafeError` for which `matches` returns true.
/// Returns the error (nil if nothing or something else was thrown).
@discardableResult
func expectCrewSafeError<T>(_ what: String, _ body: () throws -> T,
                            matches: (CrewSafeError) -> Bool,
                            file: StaticString = #file, line: UInt = #line) -> CrewSafeError? {
    do {
        let value = try body()
        fail("\(what): expected a CrewSafeError, got success \(value)", file: file, line: line)
    } catch let e as CrewSafeError {
        if matches(e) { return e }
        fail("\(what): unexpected CrewSafeError \(e)", file: file, line: line)
    } catch {
        fail("\(what): expected a CrewSafeError, got \(type(of: error)): \(error)",
             file: file, line: line)
    }
    return nil
}

/// A value shared between threads, guarded by a lock.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func with<R>(_ body: (inout T) throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try body(&value)
    }
    var get: T { with { $0 } }
}

/// Runs one test immediately and records its outcome.
func test(_ name: String, _ body: () throws -> Void) {
    failureLock.lock(); currentFailures = []; failureLock.unlock()
    let start = Date()
    if suiteStart == nil { suiteStart = start }
    do {
        try body()
    } catch is TestAbort {
        // already recorded
    } catch {
        fail("unexpected error thrown: \(type(of: error)): \(error)")
    }
    let seconds = Date().timeIntervalSince(start)
    failureLock.lock(); let failures = currentFailures; failureLock.unlock()
    results.append((name, failures, seconds))
    let status = failures.isEmpty ? "PASS" : "FAIL"
    print(String(format: "[%@] %@ (%.3fs)", status, name, seconds))
    for f in failures { print("       \(f)") }
    fflush(stdout)
}

/// Prints the summary and exits: 0 if every test passed, 1 otherwise.
func finishTests() -> Never {
    let failed = results.filter { !$0.failures.isEmpty }
    let total = Date().timeIntervalSince(suiteStart ?? Date())
    print(String(format: "\n%d tests, %d passed, %d failed in %.2fs",
                 results.count, results.count - failed.count, failed.count, total))
    for r in failed { print("  FAILED: \(r.name)") }
    fflush(stdout)
    exit(failed.isEmpty && !results.isEmpty ? 0 : 1)
}
