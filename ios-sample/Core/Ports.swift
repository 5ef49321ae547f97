// The few things the app logic needs from the platform, as plain protocols. The iOS classes in
// ../App implement them; the Linux tests use fakes. Foundation and the bindings only.
import Foundation
#if canImport(CrewSafe)
import CrewSafe
#endif

/// Keeps the store's 32-byte data key in a platform vault (the Keychain, item accessible
/// `AfterFirstUnlockThisDeviceOnly`). Never bound to user presence: an SOS must work on a
/// locked phone.
protocol KeyStorage: AnyObject {
    /// The saved key; nil when none was saved (or it can never be read again).
    /// Throws on a transient failure.
    func loadKey() throws -> Data?
    /// Saves `key` durably. Called before the store is created with it.
    func saveKey(_ key: Data) throws
    func deleteKey() throws
}

/// Reports whether the phone has a network; `start`'s callback may come on any thread.
protocol Connectivity: AnyObject {
    func start(_ onChange: @escaping @Sendable (Bool) -> Void)
    func stop()
}

protocol Cancellable {
    func cancel()
}

/// A clock and delayed tasks: injectable, so the SOS cancel window and autosave are testable.
protocol Scheduler: AnyObject {
    /// Monotonic milliseconds.
    func nowMs() -> Int64
    func schedule(afterMs: Int64, _ task: @escaping () -> Void) -> Cancellable
}

/// The last known position; nil raises the SOS without one rather than waiting for a fix.
protocol FixSource: AnyObject {
    func lastFix() -> LocationFix?
}

final class NoFix: FixSource {
    func lastFix() -> LocationFix? { nil }
}

/// A `Scheduler` on one serial background queue (used by the app; tests use a manual one).
final class DispatchScheduler: Scheduler, @unchecked Sendable {
    private let queue = DispatchQueue(label: "crewsafe.scheduler")

    private struct Item: Cancellable {
        let work: DispatchWorkItem
        func cancel() { work.cancel() }
    }

    func nowMs() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }

    func schedule(afterMs: Int64, _ task: @escaping () -> Void) -> Cancellable {
        let work = DispatchWorkItem(block: task)
        queue.asyncAfter(deadline: .now() + .milliseconds(Int(afterMs)), execute: work)
        return Item(work: work)
    }
}
