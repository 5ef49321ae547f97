import Foundation
#if canImport(CrewSafe)
import CrewSafe
#endif

/// What a tester types in (persisted by the platform layer).
struct SampleSettings: Equatable, Codable {
    /// The simulator shares the Mac's network: loopback reaches a server on the Mac, and the
    /// library allows plain http only to loopback. A device needs https.
    static let defaultServerUrl = "http://127.0.0.1:8080"

    var serverUrl = SampleSettings.defaultServerUrl
    var deviceId = ""
    var deviceToken = ""
    var crewId = ""
    var staffId = ""
    /// PEM of a private or test CA the server's certificate chains to (optional).
    var extraRootCertsPem = ""

    var crew: CrewIdentity {
        CrewIdentity(deviceId: deviceId, crewId: crewId, staffId: staffId.isEmpty ? nil : staffId)
    }
}

/// Hands the library the device token from the settings. A real app would refresh it.
final class SettingsTokens: TokenProvider, @unchecked Sendable {
    private let source: () -> String
    init(_ source: @escaping () -> String) { self.source = source }

    func token() throws -> String {
        let t = source()
        if t.isEmpty { throw HostError.Failed(reason: "no device token set") }
        return t
    }

    func refreshToken() throws -> String { try token() }
}

/// The app's view model over one open store: the SOS button, lone-worker check-ins, report
/// drafts, the records list, connectivity and sync. `requestBackgroundSync` is called when something was queued or the
/// network returned (iOS: submit the BGTask request).
final class CrewSafeController: @unchecked Sendable {
    let store: CrewStore
    let sos: SosController
    let checkIns: CheckInController
    let records: RecordsModel
    private let connectivity: Connectivity
    private let scheduler: Scheduler
    private let requestBackgroundSync: () -> Void
    private let box: SettingsBox
    private let lock = NSRecursiveLock()
    private var problem: String?
    private var lastOnline: Bool?

    init(store: CrewStore, settings: SampleSettings, connectivity: Connectivity, scheduler: Scheduler,
         fixes: FixSource = NoFix(), requestBackgroundSync: @escaping () -> Void = {}) {
        let box = SettingsBox(settings)
        self.box = box
        self.store = store
        self.connectivity = connectivity
        self.scheduler = scheduler
        self.requestBackgroundSync = requestBackgroundSync
        self.records = RecordsModel(store: store)
        self.sos = SosController(store: store, crew: { box.value.crew }, scheduler: scheduler, fixes: fixes,
                                 onQueued: requestBackgroundSync)
        self.checkIns = CheckInController(store: store, crew: { box.value.crew }, fixes: fixes,
                                          onQueued: requestBackgroundSync)
        applySettings(settings)
    }

    var settings: SampleSettings { box.value }
    /// Why the settings were refused (nil: sync is configured).
    var settingsProblem: String? { locked { problem } }

    /// Configures sync with `s`. Returns nil, or why the library refused them. The retry delay a
    /// failure under the old settings left (say a TLS error before the CA was added) is
    /// forgotten through `setOnline(true)` when the network is up, so the fix is tried now.
    @discardableResult
    func applySettings(_ s: SampleSettings) -> String? {
        locked {
            box.value = s
            let config = SyncConfig(serverUrl: s.serverUrl.trimmingCharacters(in: .whitespaces),
                                    extraRootCertsPem: s.extraRootCertsPem.isEmpty ? nil : s.extraRootCertsPem)
            do {
                try store.configureSync(config: config, tokens: SettingsTokens { [box] in box.value.deviceToken })
                if lastOnline == true { try store.setOnline(online: true) }
                problem = nil
            } catch {
                problem = describe(error)
            }
            return problem
        }
    }

    /// Starts listening to records and the network; shows an SOS and a check-in still active
    /// from before. Once the network is reported up, the library delivers and follows an open
    /// SOS by itself: `sos` hears "acknowledged" and the dispatcher's message without a sync.
    func start() {
        records.start()
        sos.restore()
        sos.start()
        checkIns.start()
        connectivity.start { [weak self] online in self?.setOnline(online) }
    }

    /// Passes a network change to the store. Platforms report the same state many times; only
    /// real changes go through, because going online also forgets the retry delays.
    func setOnline(_ online: Bool) {
        let changed: Bool = locked {
            guard online != lastOnline else { return false }
            lastOnline = online
            return true
        }
        guard changed, (try? store.setOnline(online: online)) != nil else { return }
        records.setOnline(online)
        let c = records.state.counts
        if online && c.sos + c.reports > 0 { requestBackgroundSync() }
    }

    func newDraftEditor() -> DraftEditor {
        DraftEditor(store: store, scheduler: scheduler, crew: { [box] in box.value.crew },
                    onQueued: requestBackgroundSync)
    }

    /// One blocking sync; call it from a background task.
    @discardableResult
    func syncNow() -> SyncResult { records.syncNow() }

    func retryWedged(_ id: String) throws {
        try store.retryWedged(recordId: id)
        requestBackgroundSync()
    }

    func discardWedged(_ id: String) throws {
        _ = try store.discardWedged(recordId: id)
        records.refresh()
    }

    /// Stops callbacks and the sync worker and closes the store.
    func close() {
        connectivity.stop()
        records.stop()
        sos.stop()
        checkIns.stop()
        store.shutdown()
        try? store.close()
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}

/// The current settings, shared with the closures the library and the models hold.
private final class SettingsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var current: SampleSettings
    init(_ s: SampleSettings) { current = s }
    var value: SampleSettings {
        get { lock.lock(); defer { lock.unlock() }; return current }
        set { lock.lock(); current = newValue; lock.unlock() }
    }
}
