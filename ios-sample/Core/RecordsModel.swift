import Foundation
#if canImport(CrewSafe)
import CrewSafe
#endif

struct RecordsState: Equatable {
    var records: [QueueEntry] = []
    var counts = PendingCounts(sos: 0, reports: 0, wedged: 0, drafts: 0)
    var online = false
    var syncing = false
    var lastReport: SyncReport?
    /// Why the last sync stopped, if it needs a person (bad token, TLS, settings).
    var problem: String?
}

enum SyncResult: Equatable {
    case done(SyncReport)
    /// Nothing more will happen without a person: fix the settings or the enrollment.
    case needsAttention(String)
}

/// The records screen's model: every record with its delivery state, the pending counts and
/// the sync state, refreshed whenever the library reports a record change or a sync ends (its
/// callbacks come on library threads).
final class RecordsModel: @unchecked Sendable {
    var onChange: ((RecordsState) -> Void)?

    private let store: CrewStore
    private let lock = NSRecursiveLock()
    private var current = RecordsState()
    private var subscriptions: [Subscription] = []

    init(store: CrewStore) {
        self.store = store
    }

    var state: RecordsState { locked { current } }

    func start() {
        let callbacks = Callbacks(model: self)
        subscriptions.append(store.subscribeRecords(listener: callbacks))
        subscriptions.append(store.subscribeSync(listener: callbacks))
        refresh()
    }

    func refresh() {
        do {
            let records = try store.listRecords()
            let counts = try store.pendingCounts()
            update { $0.records = records; $0.counts = counts }
        } catch {
            update { $0.problem = describe(error) }
        }
    }

    func setOnline(_ online: Bool) {
        update { $0.online = online }
    }

    /// Runs one blocking sync (call it off the main thread: a BGTask, a background queue).
    @discardableResult
    func syncNow() -> SyncResult {
        let result: SyncResult
        do {
            result = .done(try store.syncNow())
        } catch {
            result = .needsAttention(describe(error))
        }
        update {
            switch result {
            case .done(let report): $0.lastReport = report; $0.problem = nil
            case .needsAttention(let message): $0.problem = message
            }
        }
        refresh()
        return result
    }

    func stop() {
        subscriptions.forEach { $0.cancel() }
        subscriptions.removeAll()
    }

    fileprivate func syncProgress(_ p: SyncProgress) {
        update { $0.syncing = p.phase != .finished }
        if p.phase == .finished { refresh() }
    }

    private func update(_ change: (inout RecordsState) -> Void) {
        locked {
            change(&current)
            onChange?(current)
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}

/// The library's listener protocols, forwarding to the model (held weakly: the store keeps
/// its listeners until the subscription is cancelled).
private final class Callbacks: RecordListener, SyncListener, @unchecked Sendable {
    weak var model: RecordsModel?
    init(model: RecordsModel) { self.model = model }
    func onRecordChanged(change: RecordChange) throws { model?.refresh() }
    func onSyncProgress(progress: SyncProgress) throws { model?.syncProgress(progress) }
}

extension QueueEntry {
    /// One line for the list: "sos · delivered (acknowledged)".
    var summary: String {
        var line = "\(kind) · \(state)"
        if let d = dispatchStatus { line += " (\(d))" }
        if let r = wedgedReason { line += ": \(r)" }
        return line
    }
}

extension SyncReport {
    var summary: String {
        switch outcome {
        case .complete: return "all delivered (\(accepted) new, \(duplicates) already there)"
        case .deferred: return "waiting to retry; \(pendingSos + pendingReports) pending"
        case .willRetry(let reason): return "will retry: \(reason)"
        }
    }
}

/// A short message for a person, per error.
func describe(_ error: Error) -> String {
    guard let e = error as? CrewSafeError else { return "\(error)" }
    switch e {
    case .WrongKey: return "This store's key is not available on this phone."
    case .InvalidInput(let field, let reason): return "Invalid \(field): \(reason)"
    case .Conflict: return "Changed on another screen."
    case .InvalidState(let reason): return "Not allowed: \(reason)"
    case .NotConfigured: return "Set the server address and device token first."
    case .Unauthorized: return "The server refused the device token: enroll the device again."
    case .PinMismatch: return "The server's key does not match the pinned keys."
    case .CertificateRejected(let reason): return "The server certificate is not trusted: \(reason)"
    case .HostFailed(let reason): return "The token provider failed: \(reason)"
    case .Closed: return "The store is closed."
    case .InvalidDeviceToken: return "The device token is damaged (a space or line break?): enroll the device again."
    case .ServerRejectedRequest(let status):
        return "The server refused the upload (HTTP \(status)): check the server address. Alarms stay queued."
    default: return "\(e)"
    }
}
