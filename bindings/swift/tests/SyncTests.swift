// SyncTests.swift - sync tests of the Swift bindings against the reference server. Run through
//   bindings/with-test-server.sh bash bindings/swift/run-tests.sh \
//       target/release bindings/swift/generated bindings/swift/tests
// which starts crewsafe-server (test faults on) and exports CREWSAFE_TEST_SERVER_URL,
// CREWSAFE_TEST_DEVICE_ID, CREWSAFE_TEST_DEVICE_TOKEN and CREWSAFE_TEST_DISPATCHER_TOKEN
// (chroot.sh passes CREWSAFE_TEST_* into the chroot). Without them these tests FAIL.
// All tests share one server: they assert per record (fresh UUIDs), never global counts.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking   // URLSession on Linux (libcurl)
#endif

/// The server started by bindings/with-test-server.sh, and plain-HTTP access to it.
struct TestServer {
    let url: String
    let deviceId: String
    let deviceToken: String
    let dispatcherToken: String

    /// The sample crew, on the device the server enrolled.
    func crew() -> CrewIdentity {
        CrewIdentity(deviceId: deviceId, crewId: "astana-brigade-12", staffId: "staff-77")
    }

    func config() -> SyncConfig { SyncConfig(serverUrl: url) }

    /// Sends a request with URLSession and waits for it; returns the status and the body.
    func call(_ method: String, _ path: String, json: String? = nil,
              token: String? = nil) throws -> (status: Int, body: String) {
        var req = URLRequest(url: try requireSome(URL(string: url + path), "bad URL \(url + path)"))
        req.httpMethod = method
        req.timeoutInterval = 10
        if let json {
            req.httpBody = Data(json.utf8)
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        if let token { req.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let done = DispatchSemaphore(value: 0)
        let result = Locked<(Int, String)?>(nil)
        let failure = Locked<String?>(nil)
        URLSession.shared.dataTask(with: req) { data, response, error in
            if let error {
                failure.with { $0 = "\(error)" }
            } else if let http = response as? HTTPURLResponse {
                result.with { $0 = (http.statusCode, String(decoding: data ?? Data(), as: UTF8.self)) }
            } else {
                failure.with { $0 = "no HTTP response" }
            }
            done.signal()
        }.resume()
        try require(done.wait(timeout: .now() + 15) == .success, "\(method) \(path): no answer in 15 s")
        if let f = failure.get { fail("\(method) \(path) failed: \(f)"); throw TestAbort() }
        let (status, body) = try requireSome(result.get, "\(method) \(path): no result")
        return (status, body)
    }

    @discardableResult
    func ok(_ method: String, _ path: String, json: String? = nil, token: String? = nil) throws -> String {
        let r = try call(method, path, json: json, token: token)
        try require(r.status == 200, "\(method) \(path) answered \(r.status): \(r.body)")
        return r.body
    }

    /// Runs `body` with the faults in `jsonList` set (POST /test/faults) and clears them
    /// afterwards (DELETE /test/faults), pass or fail.
    func withFaults<T>(_ jsonList: String, _ body: () throws -> T) throws -> T {
        try ok("DELETE", "/test/faults")
        try ok("POST", "/test/faults", json: jsonList)
        defer { _ = try? ok("DELETE", "/test/faults") }
        return try body()
    }

    /// A dispatcher acknowledges or resolves an SOS, with an optional message to the crew.
    @discardableResult
    func dispatch(_ sosId: String, _ action: String, message: String? = nil) throws -> String {
        try ok("POST", "/v1/dispatch/sos/\(sosId)/\(action)",
               json: message.map { "{\"message\": \"\($0)\"}" }, token: dispatcherToken)
    }
}

/// The test server from the environment; fails the test (no skip) when it is missing.
func testServer(file: StaticString = #file, line: UInt = #line) throws -> TestServer {
    let env = ProcessInfo.processInfo.environment
    func get(_ name: String) throws -> String {
        guard let v = env[name], !v.isEmpty else {
            fail("\(name) is not set: the sync tests need the reference server. Run the suite "
                 + "through bindings/with-test-server.sh, e.g. bindings/with-test-server.sh bash "
                 + "bindings/swift/run-tests.sh target/release bindings/swift/generated bindings/swift/tests",
                 file: file, line: line)
            throw TestAbort()
        }
        return v
    }
    return TestServer(url: try get("CREWSAFE_TEST_SERVER_URL"),
                      deviceId: try get("CREWSAFE_TEST_DEVICE_ID"),
                      deviceToken: try get("CREWSAFE_TEST_DEVICE_TOKEN"),
                      dispatcherToken: try get("CREWSAFE_TEST_DISPATCHER_TOKEN"))
}

struct SwiftTokenBug: Error, CustomStringConvertible {
    var description: String { "SwiftTokenBug: token source broken" }
}

/// A Swift TokenProvider that counts its calls; `failure` makes token() throw.
final class CountingTokens: TokenProvider, @unchecked Sendable {
    private let state: Locked<(current: String, refreshed: String, tokens: Int, refreshes: Int)>
    private let failure: Error?

    init(current: String, refreshed: String, failure: Error? = nil) {
        state = Locked((current, refreshed, 0, 0))
        self.failure = failure
    }

    var tokenCalls: Int { state.get.tokens }
    var refreshCalls: Int { state.get.refreshes }
    func setCurrent(_ token: String) { state.with { $0.current = token } }

    func token() throws -> String {
        let t = state.with { s -> String in s.tokens += 1; return s.current }
        if let failure { throw failure }
        return t
    }

    func refreshToken() throws -> String {
        state.with { s -> String in s.refreshes += 1; return s.refreshed }
    }
}

/// Records every callback (and whether it came on the main thread); optionally throws.
final class Recorder: RecordListener, SyncListener, @unchecked Sendable {
    let changes = Locked<[(change: RecordChange, main: Bool)]>([])
    let progress = Locked<[(progress: SyncProgress, main: Bool)]>([])
    let failure: Error?
    init(failure: Error? = nil) { self.failure = failure }

    func onRecordChanged(change: RecordChange) throws {
        changes.with { $0.append((change, Thread.isMainThread)) }
        if let failure { throw failure }
    }

    func onSyncProgress(progress p: SyncProgress) throws {
        progress.with { $0.append((p, Thread.isMainThread)) }
        if let failure { throw failure }
    }

    func states(of id: String) -> [SyncState] {
        changes.get.filter { $0.change.id == id }.map(\.change.state)
    }
}

/// Runs `body` with a fresh store whose sync is configured against `server`.
func withSyncStore(_ server: TestServer, tokens: TokenProvider? = nil,
                   _ body: (TempStore) throws -> Void) throws {
    try withStore { t in
        try t.store.configureSync(
            config: server.config(),
            tokens: tokens ?? CountingTokens(current: server.deviceToken, refreshed: server.deviceToken))
        defer { t.store.shutdown() }
        try body(t)
    }
}

func entry(_ store: CrewStore, _ id: String) throws -> QueueEntry {
    try requireSome(try store.listRecords().first { $0.id == id }, "record \(id) not in listRecords()")
}

func runSyncTests() {
    test("sync: SOS + follow-up + finalized report delivered by syncNow with a Swift TokenProvider") {
        let server = try testServer()
        let tokens = CountingTokens(current: server.deviceToken, refreshed: server.deviceToken)
        try withSyncStore(server, tokens: tokens) { t in
            let sos = try t.store.raiseSos(crew: server.crew(), location: fix(), note: "help")
            let update = try t.store.addSosLocation(sosId: sos.id, location: fix(latitude: 51.2))
            let draft = try t.store.createDraft(crew: server.crew(), fields: completeFields())
            let report = try t.store.finalizeDraft(draftId: draft.id, expectedRevision: 1)
            expectEqual(try t.store.pendingCounts(), PendingCounts(sos: 2, reports: 1, wedged: 0, drafts: 0))

            let r = try t.store.syncNow()
            expectEqual(r.outcome, .complete, "outcome of \(r)")
            expectEqual(r.accepted, 3, "accepted")
            expectEqual(r.sent, 3, "sent")
            expectEqual(r.duplicates, 0, "duplicates")
            expectEqual(r.wedged, 0, "wedged")
            expectEqual(r.pendingSos, 0, "pendingSos")
            expectEqual(r.pendingReports, 0, "pendingReports")
            expect(r.nextAttemptAt == nil, "nextAttemptAt \(String(describing: r.nextAttemptAt))")
            expectEqual(tokens.tokenCalls, 1, "token() calls")
            expectEqual(tokens.refreshCalls, 0, "refreshToken() calls")

            let list = try t.store.listRecords()
            expectEqual(list.map(\.id), [sos.id, update.id, report.id], "records")
            for e in list {
                expectEqual(e.state, .delivered, "state of \(e.id)")
                expect(e.wedgedReason == nil, "wedgedReason of \(e.id)")
            }
            expectEqual(try t.store.pendingCounts(), PendingCounts(sos: 0, reports: 0, wedged: 0, drafts: 0))
            let got = try t.store.getSos(sosId: sos.id)
            expectEqual(got.syncState, .delivered)
            expectEqual(got.dispatchStatus, .delivered)
            expectEqual(try t.store.getReport(reportId: report.id).syncState, .delivered)
            let again = try t.store.syncNow()
            expectEqual(again.outcome, .complete)
            expectEqual(again.sent, 0, "a second sync sends nothing")
        }
    }

    test("sync: Swift listeners see queued -> sending -> delivered and started..finished; throwing listeners are ignored; cancel() stops callbacks") {
        let server = try testServer()
        try withSyncStore(server) { t in
            let good = Recorder()
            let throwsHostError = Recorder(failure: HostError.Failed(reason: "listener bug"))
            let throwsOther = Recorder(failure: SwiftTokenBug())
            let subs = [
                t.store.subscribeRecords(listener: good), t.store.subscribeSync(listener: good),
                t.store.subscribeRecords(listener: throwsHostError), t.store.subscribeSync(listener: throwsHostError),
                t.store.subscribeRecords(listener: throwsOther), t.store.subscribeSync(listener: throwsOther),
            ]
            let sos = try t.store.raiseSos(crew: server.crew(), location: nil, note: nil)
            expectEqual(good.states(of: sos.id), [.queued], "called before raiseSos returns")
            let r = try t.store.syncNow()
            expectEqual(r.outcome, .complete, "a throwing listener broke the sync: \(r)")
            expectEqual(r.accepted, 1)
            expectEqual(good.states(of: sos.id), [.queued, .sending, .delivered], "record states")
            expectEqual(good.changes.get.last?.change.dispatchStatus, .delivered)
            expect(good.changes.get.allSatisfy(\.main), "callbacks of a sync called from the main thread come on it")
            let phases = good.progress.get.map(\.progress.phase)
            expectEqual(phases.first, .started, "phases \(phases)")
            expectEqual(phases.last, .finished, "phases \(phases)")
            expect(phases.contains(.uploaded), "an uploaded phase in \(phases)")
            let last = try requireSome(good.progress.get.last?.progress)
            expectEqual(last.sent, 1)
            expectEqual(last.delivered, 1)
            for bad in [throwsHostError, throwsOther] {
                expectEqual(bad.changes.get.map(\.change), good.changes.get.map(\.change), "changes seen by a throwing listener")
                expectEqual(bad.progress.get.map(\.progress), good.progress.get.map(\.progress), "progress seen by a throwing listener")
            }

            for s in subs { s.cancel(); s.cancel() }
            let seen = (good.changes.get.count, good.progress.get.count)
            let later = try t.store.raiseSos(crew: server.crew(), location: nil, note: nil)
            expectEqual(try t.store.syncNow().accepted, 1)
            expectEqual(try entry(t.store, later.id).state, .delivered)
            expect(seen == (good.changes.get.count, good.progress.get.count), "callbacks after cancel()")
            expectEqual(throwsOther.changes.get.count, seen.0, "callbacks after cancel()")
        }
    }

    test("sync: the background worker delivers after setOnline(true), calling listeners off the main thread") {
        let server = try testServer()
        try withSyncStore(server) { t in
            let rec = Recorder()
            let sub = t.store.subscribeRecords(listener: rec)
            defer { sub.cancel() }
            let sos = try t.store.raiseSos(crew: server.crew(), location: nil, note: nil)
            Thread.sleep(forTimeInterval: 0.2)
            expectEqual(rec.states(of: sos.id), [.queued], "nothing sent before setOnline(true)")
            try t.store.setOnline(online: true)
            let deadline = Date().addingTimeInterval(15)
            while rec.states(of: sos.id).last != .delivered && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.02)
            }
            expectEqual(rec.states(of: sos.id), [.queued, .sending, .delivered])
            let fromWorker = rec.changes.get.dropFirst()
            expect(!fromWorker.isEmpty && fromWorker.allSatisfy { !$0.main },
                   "worker callbacks came on the main thread")
            t.store.shutdown()
        }
    }

    test("sync: a stale token is refreshed once and the sync succeeds; two bad tokens -> Unauthorized") {
        let server = try testServer()
        let stale = CountingTokens(current: "stale-token", refreshed: server.deviceToken)
        try withSyncStore(server, tokens: stale) { t in
            let sos = try t.store.raiseSos(crew: server.crew(), location: fix(), note: nil)
            let r = try t.store.syncNow()
            expectEqual(r.outcome, .complete, "outcome of \(r)")
            expectEqual(r.accepted, 1)
            expectEqual(stale.tokenCalls, 1, "token() calls")
            expectEqual(stale.refreshCalls, 1, "refreshToken() calls")
            expectEqual(try entry(t.store, sos.id).state, .delivered)
        }

        let bad = CountingTokens(current: "stale-token", refreshed: "also-bad")
        try withSyncStore(server, tokens: bad) { t in
            let sos = try t.store.raiseSos(crew: server.crew(), location: fix(), note: nil)
            let d = try t.store.createDraft(crew: server.crew(), fields: completeFields())
            let report = try t.store.finalizeDraft(draftId: d.id, expectedRevision: 1)
            expectCrewSafeError("syncNow with two bad tokens", { try t.store.syncNow() }) { if case .Unauthorized = $0 { return true } else { return false } }
            expectEqual(bad.tokenCalls, 1, "token() calls")
            expectEqual(bad.refreshCalls, 1, "refreshToken() is called at most once per sync")
            for id in [sos.id, report.id] {
                expectEqual(try entry(t.store, id).state, .queued, "nothing lost")
            }
            expectEqual(try t.store.pendingCounts(), PendingCounts(sos: 1, reports: 1, wedged: 0, drafts: 0))
            bad.setCurrent(server.deviceToken)
            expectEqual(try t.store.syncNow().accepted, 2, "delivered once the token is fixed")
        }
    }

    test("sync: a throwing TokenProvider -> HostFailed (HostError keeps its reason, other errors their description)") {
        let server = try testServer()
        let locked = CountingTokens(current: server.deviceToken, refreshed: server.deviceToken,
                                    failure: HostError.Failed(reason: "keychain locked"))
        try withSyncStore(server, tokens: locked) { t in
            let sos = try t.store.raiseSos(crew: server.crew(), location: nil, note: nil)
            let e = expectCrewSafeError("syncNow", { try t.store.syncNow() }) {
                if case .HostFailed = $0 { return true } else { return false }
            }
            if case .HostFailed(let reason)? = e {
                expect(reason.contains("keychain locked"), "reason: \(reason)")
            }
            expectEqual(try entry(t.store, sos.id).state, .queued)
        }
        let buggy = CountingTokens(current: server.deviceToken, refreshed: server.deviceToken,
                                   failure: SwiftTokenBug())
        try withSyncStore(server, tokens: buggy) { t in
            _ = try t.store.raiseSos(crew: server.crew(), location: nil, note: nil)
            let e = expectCrewSafeError("syncNow", { try t.store.syncNow() }) {
                if case .HostFailed = $0 { return true } else { return false }
            }
            if case .HostFailed(let reason)? = e {
                expect(reason.contains("SwiftTokenBug: token source broken"), "reason: \(reason)")
            }
            expectEqual(try t.store.pendingCounts().sos, 1)
        }
    }

    test("sync: a poison record (reject_id fault over HTTP) ends wedged with a reason; retryWedged delivers it") {
        let server = try testServer()
        try withSyncStore(server) { t in
            let sos = try t.store.raiseSos(crew: server.crew(), location: fix(), note: nil)
            var reports: [String] = []
            for _ in 0..<3 {
                let d = try t.store.createDraft(crew: server.crew(), fields: completeFields())
                reports.append(try t.store.finalizeDraft(draftId: d.id, expectedRevision: 1).id)
            }
            let poison = reports[1]
            try server.withFaults(#"[{"fault":"reject_id","id":"\#(poison)"}]"#) {
                let r = try t.store.syncNow()
                expectEqual(r.outcome, .complete, "outcome of \(r)")
                expectEqual(r.accepted, 3, "accepted")
                expectEqual(r.wedged, 1, "wedged")
                let e = try entry(t.store, poison)
                expectEqual(e.state, .wedged)
                let reason = try requireSome(e.wedgedReason, "wedgedReason")
                expect(reason.contains("poison"), "wedged reason: \(reason)")
                for id in [sos.id, reports[0], reports[2]] {
                    expectEqual(try entry(t.store, id).state, .delivered, "record \(id)")
                }
                expectEqual(try t.store.pendingCounts(), PendingCounts(sos: 0, reports: 0, wedged: 1, drafts: 0))
            }
            try t.store.retryWedged(recordId: poison)
            expectEqual(try entry(t.store, poison).state, .queued)
            expectCrewSafeError("retry a queued record", { try t.store.retryWedged(recordId: poison) }) {
                if case .InvalidState = $0 { return true } else { return false }
            }
            expectEqual(try t.store.syncNow().accepted, 1)
            expectEqual(try entry(t.store, poison).state, .delivered)
            expectEqual(try t.store.pendingCounts(), PendingCounts(sos: 0, reports: 0, wedged: 0, drafts: 0))
        }
    }

    test("sync: a dispatcher acknowledges the SOS over HTTP; the next syncNow brings .acknowledged") {
        let server = try testServer()
        try withSyncStore(server) { t in
            let sos = try t.store.raiseSos(crew: server.crew(), location: fix(), note: nil)
            _ = try t.store.syncNow()
            expectEqual(try t.store.getSos(sosId: sos.id).dispatchStatus, .delivered)
            let ack = try server.dispatch(sos.id, "acknowledge")
            expect(ack.contains("\"acknowledged\""), "acknowledge answered \(ack)")
            let r = try t.store.syncNow()
            expectEqual(r.sent, 0, "nothing to upload")
            expectEqual(try t.store.getSos(sosId: sos.id).dispatchStatus, .acknowledged)
        }
    }

    test("sync: http:// to a non-loopback host is InvalidInput(server_url); unconfigured syncNow is NotConfigured") {
        try withStore { t in
            let tokens = CountingTokens(current: "a", refreshed: "b")
            for url in ["http://10.1.2.3:8080", "http://crewsafe.example.kz", "ftp://127.0.0.1"] {
                expectCrewSafeError(url, {
                    try t.store.configureSync(config: SyncConfig(serverUrl: url), tokens: tokens)
                }) { if case .InvalidInput("server_url", _) = $0 { return true } else { return false } }
            }
            expectCrewSafeError("syncNow", { try t.store.syncNow() }) { if case .NotConfigured = $0 { return true } else { return false } }
            expectEqual(tokens.tokenCalls, 0, "token() never called")
        }
    }

    test("watch: online, the listener hears .acknowledged and getSos shows the dispatcher's message, with no syncNow") {
        let server = try testServer()
        try withSyncStore(server) { t in
            let rec = Recorder()
            let sub = t.store.subscribeRecords(listener: rec)
            defer { sub.cancel() }
            try t.store.setOnline(online: true)
            let sos = try t.store.raiseSos(crew: server.crew(), location: fix(), note: "stairwell")
            func waitFor(_ seconds: Double, _ done: () -> Bool) -> Bool {
                let deadline = Date().addingTimeInterval(seconds)
                while !done() && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
                return done()
            }
            expect(waitFor(10) { rec.states(of: sos.id).last == .delivered }, "delivered by the worker")
            Thread.sleep(forTimeInterval: 0.3)
            try server.dispatch(sos.id, "acknowledge", message: "crew 7 on the way, 6 min")
            expect(waitFor(5) {
                rec.changes.get.contains { $0.change.id == sos.id && $0.change.dispatchStatus == .acknowledged }
            }, ".acknowledged reaches the listener by itself")
            let answer = try requireSome(try t.store.getSos(sosId: sos.id).dispatch, "dispatch answer kept")
            expectEqual(answer.status, .acknowledged)
            expectEqual(answer.message, "crew 7 on the way, 6 min")
            expectEqual(answer.acknowledgedBy, "test-dispatcher")
            t.store.shutdown()
        }
    }

    test("check-in: start, extend, check in; delivered; a closed check-in refuses more") {
        let server = try testServer()
        try withSyncStore(server) { t in
            let c = try t.store.startCheckIn(crew: server.crew(), dueInMinutes: 20,
                                             address: "Abay ave 12, flat 40", note: nil, location: fix())
            expectEqual(c.state, .open)
            expectEqual(c.dueAt.timeIntervalSince(c.startedAt), 20 * 60)
            expectEqual(try t.store.extendCheckIn(checkInId: c.id, extendByMinutes: 10).dueInMinutes, 30)
            expectEqual(try t.store.checkIn(checkInId: c.id, location: nil).state, .done)
            expectEqual(try t.store.syncNow().outcome, .complete)
            let got = try t.store.getCheckIn(checkInId: c.id)
            expectEqual(got.syncState, .delivered)
            expectEqual(got.doneSyncState, .delivered)
            expectCrewSafeError("closed twice", { _ = try t.store.checkIn(checkInId: c.id, location: nil) }) {
                if case .InvalidState = $0 { return true } else { return false }
            }
            expectCrewSafeError("0 minutes", {
                _ = try t.store.startCheckIn(crew: server.crew(), dueInMinutes: 0, address: nil, note: nil, location: nil)
            }) { if case .InvalidInput("due_in_minutes", _) = $0 { return true } else { return false } }
        }
    }

    test("attachments: a photo (Data) and a recording (file) read back through openAttachment, finalized, synced, both delivered") {
        let server = try testServer()
        try withSyncStore(server) { t in
            let draft = try t.store.createDraft(crew: server.crew(), fields: completeFields())
            let photo = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
            let recording = Data((0..<1_000_003).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ 3) })
            let file = t.dir.appendingPathComponent("recording.m4a")
            try recording.write(to: file)
            let p = try t.store.addAttachmentBytes(draftId: draft.id, bytes: photo, kind: .photo,
                                                   mimeType: "image/jpeg", capturedAt: nil)
            let f = try t.store.addAttachmentFile(draftId: draft.id, path: file.path, kind: .audio,
                                                  mimeType: "audio/mp4", capturedAt: nil)
            // The library holds its own encrypted copy: the app may delete its plaintext file.
            try FileManager.default.removeItem(at: file)
            func readAll(_ id: String) throws -> Data {
                let r = try t.store.openAttachment(attachmentId: id)
                var out = Data()
                while true {
                    let part = try r.read(offset: UInt64(out.count), maxBytes: 65_536)
                    if part.isEmpty { break }
                    out.append(part)
                }
                expectEqual(r.size(), UInt64(out.count), "size of \(id)")
                return out
            }
            for (a, bytes) in [(p, photo), (f, recording)] {
                expectEqual(a.size, UInt64(bytes.count), "size of \(a.kind)")
                expectEqual(a.sha256.count, 64, "sha256 of \(a.kind)")
                expectEqual(a.syncState, .draft)
                expect(try readAll(a.id) == bytes, "\(a.kind) read back")
            }
            let tail = try t.store.openAttachment(attachmentId: f.id).read(offset: 999_990, maxBytes: 100)
            expect(tail == recording.subdata(in: 999_990..<1_000_003), "a range read back")
            expectEqual(try t.store.listAttachments(reportId: draft.id).map(\.id), [p.id, f.id])

            let report = try t.store.finalizeDraft(
                draftId: draft.id, expectedRevision: try t.store.getDraft(draftId: draft.id).revision)
            expectEqual(report.attachments.map(\.id), [p.id, f.id], "the report commits to its files")
            let deadline = Date().addingTimeInterval(30)
            while true {
                let r = try t.store.syncNow()
                if r.outcome == .complete && r.pendingAttachments == 0 { break }
                try require(Date() < deadline, "not delivered in 30 s: \(r)")
                Thread.sleep(forTimeInterval: 0.05)
            }
            let after = try t.store.listAttachments(reportId: report.id)
            expectEqual(after.count, 2)
            for a in after {
                expectEqual(a.syncState, .delivered, "\(a.kind)")
                expectEqual(a.uploadedBytes, a.size, "uploadedBytes of \(a.kind)")
            }
            expectEqual(try t.store.getReport(reportId: report.id).syncState, .delivered)
            expect(try readAll(p.id) == photo, "photo after delivery")
        }
    }
}
