import Combine
import CrewSafe
import Foundation

/// Bridges the plain controller to SwiftUI: its models call back on library or scheduler
/// threads; the published copies are updated on the main queue.
final class AppModel: ObservableObject {
    /// One store per process, shared with the BGTask handler.
    static let shared: AppModel = AppModel()

    @Published private(set) var sos: SosPhase = .idle
    @Published private(set) var checkIn = CheckInUiState()
    @Published private(set) var draft = DraftState()
    @Published private(set) var records = RecordsState()
    @Published private(set) var settingsProblem: String?
    @Published var notice: String?

    let controller: CrewSafeController?
    let editor: DraftEditor?
    let scheduler = DispatchScheduler()
    let fixes = LocationFixSource()

    private init() {
        do {
            let dir = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                                  appropriateFor: nil, create: true)
                .appendingPathComponent("CrewSafe", isDirectory: true)
            var db = dir.appendingPathComponent("crewsafe.db")
            let opened = try openStore(at: db, keys: KeychainKeyStorage())
            var values = URLResourceValues()
            values.isExcludedFromBackup = true // the key never leaves this phone; neither does the store
            try? db.setResourceValues(values)
            if let aside = opened.setAside {
                notice = "The old store could not be opened on this phone; it was kept as \(aside.lastPathComponent)."
            }
            let c = CrewSafeController(store: opened.store, settings: SettingsStore.load(),
                                       connectivity: PathMonitorConnectivity(), scheduler: scheduler, fixes: fixes,
                                       requestBackgroundSync: { BackgroundSync.submit() })
            controller = c
            editor = c.newDraftEditor()
        } catch {
            // E.g. the Keychain is locked before the first unlock after a reboot.
            controller = nil
            editor = nil
            notice = "CrewSafe could not open its store: \(describe(error))"
            return
        }
        wire()
    }

    private func wire() {
        guard let c = controller, let e = editor else { return }
        c.sos.onChange = { p in DispatchQueue.main.async { self.sos = p } }
        c.checkIns.onChange = { s in DispatchQueue.main.async { self.checkIn = s } }
        e.onChange = { s in DispatchQueue.main.async { self.draft = s } }
        c.records.onChange = { s in DispatchQueue.main.async { self.records = s } }
        e.resumeLatest()
        c.start()
        settingsProblem = c.settingsProblem
        fixes.requestPermission()
    }

    func save(_ s: SampleSettings) {
        SettingsStore.save(s)
        settingsProblem = controller?.applySettings(s)
        BackgroundSync.submit()
    }

    /// A sync off the main thread (the button on the records screen).
    func syncNow() {
        guard let c = controller else { return }
        DispatchQueue.global(qos: .userInitiated).async { c.syncNow() }
    }
}

/// The tester's settings in UserDefaults. (A production app would get the device token from
/// its enrollment flow and keep it in the Keychain.)
enum SettingsStore {
    private static let key = "crewsafe.settings"

    static func load() -> SampleSettings {
        guard let data = UserDefaults.standard.data(forKey: key),
              let s = try? JSONDecoder().decode(SampleSettings.self, from: data) else { return SampleSettings() }
        return s
    }

    static func save(_ s: SampleSettings) {
        UserDefaults.standard.set(try? JSONEncoder().encode(s), forKey: key)
    }
}
