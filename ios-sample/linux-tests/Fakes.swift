// Test doubles for the platform protocols, and access to the reference server that
// bindings/with-test-server.sh starts (chroot.sh passes CREWSAFE_TEST_* in).

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking // URLSession on Linux
#endif

/// Time that moves only when told; due tasks run on the calling thread, in order.
final class ManualScheduler: Scheduler {
    private final class Job: Cancellable {
        let at: Int64, seq: Int, body: () -> Void
        var cancelled = false
        init(at: Int64, seq: Int, body: @escaping () -> Void) { (self.at, self.seq, self.body) = (at, seq, body) }
        func cancel() { cancelled = true }
    }
    private var tasks: [Job] = []
    private var seq = 0
    private(set) var now: Int64 = 1_000_000

    func nowMs() -> Int64 { now }

    func schedule(afterMs: Int64, _ task: @escaping () -> Void) -> Cancellable {
        seq += 1
        let t = Job(at: now + afterMs, seq: seq, body: task)
        tasks.append(t)
        return t
    }

    func advance(_ ms: Int64) {
        let target = now + ms
        while true {
            tasks.removeAll { $0.cancelled }
            guard let next = tasks.filter({ $0.at <= target }).min(by: { ($0.at, $0.seq) < ($1.at, $1.seq) }) else { break }
            tasks.removeAll { $0 === next }
            now = next.at
            next.body()
        }
        now = target
    }

    var pending: Int { tasks.filter { !$0.cancelled }.count }
}

/// Keeps the key in memory (the Keychain stands behind this protocol in the app).
final class MemoryKeyStorage: KeyStorage {
    private(set) var saved: Data?
    private(set) var saves = 0
    func loadKey() throws -> Data? { saved }
    func saveKey(_ key: Data) throws { saved = key; saves += 1 }
    func deleteKey() throws { saved = nil }
}

final class FakeConnectivity: Connectivity, @unchecked Sendable {
    private var callback: (@Sendable (Bool) -> Void)?
    func start(_ onChange: @escaping @Sendable (Bool) -> Void) { callback = onChange }
    func stop() { callback = nil }
    func set(_ online: Bool) { callback?(online) }
}

final class FixedFix: FixSource {
    var fix: LocationFix? = sampleFix()
    func lastFix() -> LocationFix? { fix }
}

func sampleFix() -> LocationFix {
    LocationFix(latitude: 51.1694, longitude: 71.4491, accuracyM: 6.5, altitudeM: nil,
                provider: .gps, fixedAt: Date())
}

/// The reference server from the environment; a test fails (never skips) without it.
enum SampleServer {
    static func env(_ name: String) throws -> String {
        try requireSome(ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 },
                        "\(name) is not set: run through ios-sample/run-linux-tests.sh")
    }

    /// Settings for a fresh crew (a unique crew id, so tests can find their own alarms).
    static func settings() throws -> SampleSettings {
        SampleSettings(serverUrl: try env("CREWSAFE_TEST_SERVER_URL"), deviceId: try env("CREWSAFE_TEST_DEVICE_ID"),
                       deviceToken: try env("CREWSAFE_TEST_DEVICE_TOKEN"),
                       crewId: "crew-" + UUID().uuidString.prefix(8).lowercased(), staffId: "staff-7")
    }

    /// A dispatcher request (GET /v1/dispatch/sos, POST .../acknowledge with an optional JSON
    /// body); returns the body.
    @discardableResult
    static func dispatcher(_ method: String, _ path: String, json: [String: String]? = nil) throws -> String {
        var req = URLRequest(url: URL(string: try env("CREWSAFE_TEST_SERVER_URL") + path)!)
        req.httpMethod = method
        req.setValue("Bearer \(try env("CREWSAFE_TEST_DISPATCHER_TOKEN"))", forHTTPHeaderField: "Authorization")
        if let json {
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
            req.httpBody = try JSONSerialization.data(withJSONObject: json)
        }
        let done = DispatchSemaphore(value: 0)
        let result = Locked<(Int, String)?>(nil)
        URLSession.shared.dataTask(with: req) { data, response, _ in
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            result.with { $0 = (status, String(decoding: data ?? Data(), as: UTF8.self)) }
            done.signal()
        }.resume()
        try require(done.wait(timeout: .now() + 15) == .success, "\(method) \(path): no answer")
        let (status, body) = try requireSome(result.get)
        try require(status == 200, "\(method) \(path) answered \(status): \(body)")
        return body
    }
}

extension SampleServer {
    /// A dispatcher acknowledges the SOS, optionally with a message for the crew.
    static func acknowledge(_ sosId: String, message: String? = nil) throws {
        try dispatcher("POST", "/v1/dispatch/sos/\(sosId)/acknowledge", json: message.map { ["message": $0] })
    }

    /// A dispatcher resolves the SOS, optionally with a message for the crew.
    static func resolve(_ sosId: String, message: String? = nil) throws {
        try dispatcher("POST", "/v1/dispatch/sos/\(sosId)/resolve", json: message.map { ["message": $0] })
    }
}

/// A controller over a fresh store in a temp dir, with a manual clock and a fake network.
final class Harness {
    let dir: URL
    let keys = MemoryKeyStorage()
    let clock = ManualScheduler()
    let network = FakeConnectivity()
    let fixes = FixedFix()
    let syncRequests: Locked<Int>
    let opened: OpenedStore
    let controller: CrewSafeController
    var store: CrewStore { opened.store }

    init(_ settings: SampleSettings) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("crewsafe-sample-\(UUID().uuidString)")
        opened = try openStore(at: dir.appendingPathComponent("crewsafe.db"), keys: keys)
        let requests = Locked(0)
        syncRequests = requests
        controller = CrewSafeController(store: opened.store, settings: settings, connectivity: network,
                                        scheduler: clock, fixes: fixes,
                                        requestBackgroundSync: { requests.with { $0 += 1 } })
    }

    func close() {
        controller.close()
        try? FileManager.default.removeItem(at: dir)
    }
}

func withHarness(_ settings: SampleSettings? = nil, _ body: (Harness) throws -> Void) throws {
    let h = try Harness(settings ?? SampleServer.settings())
    defer { h.close() }
    try body(h)
}

func entry(_ store: CrewStore, _ id: String) throws -> QueueEntry {
    try requireSome(try store.listRecords().first { $0.id == id }, "record \(id) not listed")
}

/// Polls `condition` every 50 ms for up to `seconds`.
func waitFor(_ what: String, seconds: Double = 20, _ condition: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        try require(Date() < deadline, "timed out after \(seconds)s waiting for \(what)")
        Thread.sleep(forTimeInterval: 0.05)
    }
}

extension SyncResult {
    func report() throws -> SyncReport {
        guard case .done(let r) = self else { fail("sync needs attention: \(self)"); throw TestAbort() }
        return r
    }
}
