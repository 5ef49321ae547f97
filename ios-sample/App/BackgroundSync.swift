import BackgroundTasks
import CrewSafe
import Foundation

/// A BGProcessingTask with a network requirement that runs the blocking `syncNow()`. While the
/// app runs, the library's own worker already delivers as soon as `setOnline(true)`; this task
/// is the backstop when the app is suspended. The identifier is listed in Info.plist
/// (BGTaskSchedulerPermittedIdentifiers, see project.yml).
enum BackgroundSync {
    static let identifier = "kz.crewsafe.sample.sync"

    /// Call once, before the app finishes launching.
    static func register(_ controller: @escaping () -> CrewSafeController?) {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: identifier, using: nil) { task in
            submit() // the next one
            guard let c = controller() else { return task.setTaskCompleted(success: false) }
            let finish = Once { task.setTaskCompleted(success: $0) }
            // A running sync cannot be interrupted; on expiry it finishes its request (bounded
            // by the request timeout) and the records it did not deliver stay queued.
            task.expirationHandler = { finish(false) }
            DispatchQueue.global(qos: .utility).async {
                if case .done(let report) = c.syncNow() {
                    finish(report.pendingSos + report.pendingReports == 0)
                } else {
                    finish(false)
                }
            }
        }
    }

    /// Asks iOS to run the task when there is a network (it decides when).
    static func submit() {
        let request = BGProcessingTaskRequest(identifier: identifier)
        request.requiresNetworkConnectivity = true
        request.requiresExternalPower = false
        try? BGTaskScheduler.shared.submit(request)
    }
}

/// Calls `body` the first time only (a task is completed once: by the sync or by expiry).
private final class Once: @unchecked Sendable {
    private let lock = NSLock()
    private var body: ((Bool) -> Void)?
    init(_ body: @escaping (Bool) -> Void) { self.body = body }
    func callAsFunction(_ ok: Bool) {
        lock.lock()
        let b = body
        body = nil
        lock.unlock()
        b?(ok)
    }
}
