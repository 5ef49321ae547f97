// main.swift - the CrewSafe Swift binding suite. Run with
//   bindings/with-test-server.sh \
//     bash bindings/swift/run-tests.sh target/release bindings/swift/generated bindings/swift/tests
// (the sync tests in SyncTests.swift need that server and fail without it).
// The library must be built with the `test-hooks` feature (for `debugPanic()`).

import Foundation

// MARK: 1. open / reopen

test("open in a fresh directory, reopen with the same key keeps everything") {
    try withStore { t in
        let key = generateDataKey()
        expectEqual(key.count, 32, "generateDataKey() length")
        expect(key != generateDataKey(), "two generated keys must differ")
        expectEqual(try t.store.pendingCounts(), PendingCounts(sos: 0, reports: 0, wedged: 0, drafts: 0),
                    "a new store is empty")

        let sos = try t.store.raiseSos(crew: crew(), location: fix(), note: "before reopen")
        let draft = try t.store.createDraft(crew: crew(), fields: completeFields())
        let before = try t.store.listRecords()
        expectEqual(before.count, 2)

        try t.reopen()
        expectEqual(try t.store.listRecords(), before, "queue view after reopen")
        expectEqual(try t.store.getSos(sosId: sos.id), sos, "SOS after reopen")
        expectEqual(try t.store.getDraft(draftId: draft.id), draft, "draft after reopen")
        expectEqual(try t.store.pendingCounts(), PendingCounts(sos: 1, reports: 0, wedged: 0, drafts: 1))
    }
}

// MARK: 2. keys

test("wrong key throws WrongKey, a 16-byte key throws InvalidKey, the file stays usable") {
    try withStore { t in
        let sos = try t.store.raiseSos(crew: crew(), location: nil, note: nil)
        try t.store.close()
        expectCrewSafeError("pendingCounts after close", { try t.store.pendingCounts() }) {
            if case .Closed = $0 { return true } else { return false }
        }

        expectCrewSafeError("open with another key", {
            try CrewStore.open(path: t.path, key: generateDataKey())
        }) { if case .WrongKey = $0 { return true } else { return false } }
        let invalid = expectCrewSafeError("open with a 16-byte key", {
            try CrewStore.open(path: t.path, key: Data(repeating: 1, count: 16))
        }) { if case .InvalidKey = $0 { return true } else { return false } }
        if case .InvalidKey(let reason)? = invalid {
            expect(reason.contains("16"), "InvalidKey reason should name the length: \(reason)")
        }
        expectCrewSafeError("open with an empty key", {
            try CrewStore.open(path: t.path, key: Data())
        }) { if case .InvalidKey = $0 { return true } else { return false } }

        // The refused opens did not touch the file: the right key still opens it.
        t.store = try CrewStore.open(path: t.path, key: t.key)
        expectEqual(try t.store.getSos(sosId: sos.id), sos)
    }
}

// MARK: 3. SOS

test("SOS: raise with fix and note, follow-up location, cancel; second cancel is InvalidState") {
    try withStore { t in
        let raisedFix = fix()
        let sos = try t.store.raiseSos(crew: crew(), location: raisedFix, note: "aggressive relative")
        expect(isUuidLike(sos.id), "SOS id should be a UUID: \(sos.id)")
        expectEqual(sos.state, .active)
        expectEqual(sos.syncState, .queued)
        expectEqual(sos.crew, crew())
        expectEqual(sos.note, "aggressive relative")
        expect(sos.locationUpdates.isEmpty && sos.cancellation == nil, "fresh SOS has no follow-ups")

        let update = try t.store.addSosLocation(sosId: sos.id, location: fix(latitude: 51.17))
        expectEqual(update.sosId, sos.id)
        expectEqual(update.location.latitude, 51.17)
        expectEqual(update.syncState, .queued)

        let cancel = try t.store.cancelSos(sosId: sos.id, reason: .falseAlarm, note: "pocket press")
        expectEqual(cancel.sosId, sos.id)
        expectEqual(cancel.reason, .falseAlarm)
        expectEqual(cancel.note, "pocket press")

        let got = try t.store.getSos(sosId: sos.id)
        expectEqual(got.state, .cancelled)
        expectEqual(got.locationUpdates, [update])
        expectEqual(got.cancellation, cancel)
        expectEqual(got.note, "aggressive relative")
        expectEqual(got.raisedAt, sos.raisedAt)
        expectEqual(got.location?.latitude, raisedFix.latitude)
        expectEqual(got.location?.provider, .gps)

        expectCrewSafeError("second cancel", {
            try t.store.cancelSos(sosId: sos.id, reason: .other, note: nil)
        }) { if case .InvalidState = $0 { return true } else { return false } }
        expectCrewSafeError("follow-up after cancel", {
            try t.store.addSosLocation(sosId: sos.id, location: fix())
        }) { if case .InvalidState = $0 { return true } else { return false } }
        expectEqual(try t.store.getSos(sosId: sos.id), got, "refused calls changed nothing")
        expectEqual(try t.store.pendingCounts().sos, 3, "SOS + follow-up + cancellation queued")
        expectEqual(try t.store.listRecords().map(\.kind), [.sos, .sosLocation, .sosCancel],
                    "the cancellation is queued after the follow-up")
    }
}

// MARK: 4. drafts

test("draft: revisions, stale update Conflict(currentRevision: 2), finalize rules, report") {
    try withStore { t in
        let d = try t.store.createDraft(crew: crew(), fields: IncidentFields())
        expectEqual(d.revision, 1)
        expect(isUuidLike(d.id), "draft id should be a UUID: \(d.id)")

        var fields = completeFields()
        fields.narrative = nil
        let saved = try t.store.updateDraft(draftId: d.id, expectedRevision: 1, fields: fields)
        expectEqual(saved.id, d.id)
        expectEqual(saved.revision, 2)

        expectCrewSafeError("stale update", {
            try t.store.updateDraft(draftId: d.id, expectedRevision: 1, fields: IncidentFields())
        }) { $0 == .Conflict(currentRevision: 2) }
        let afterConflict = try t.store.getDraft(draftId: d.id)
        expectEqual(afterConflict.revision, 2)
        expectEqual(afterConflict.fields.address, fields.address, "stale write changed nothing")
        expectEqual(afterConflict.fields.narrative, nil)

        let missing = expectCrewSafeError("finalize without narrative", {
            try t.store.finalizeDraft(draftId: d.id, expectedRevision: 2)
        }) { if case .InvalidInput = $0 { return true } else { return false } }
        if case .InvalidInput(let field, _)? = missing {
            expectEqual(field, "narrative")
        }
        expectEqual(try t.store.getDraft(draftId: d.id).revision, 2, "failed finalize keeps the draft")
        expectCrewSafeError("finalize a stale revision", {
            try t.store.finalizeDraft(draftId: d.id, expectedRevision: 1)
        }) { $0 == .Conflict(currentRevision: 2) }

        let complete = completeFields()
        expectEqual(try t.store.updateDraft(draftId: d.id, expectedRevision: 2, fields: complete).revision, 3)
        let report = try t.store.finalizeDraft(draftId: d.id, expectedRevision: 3)
        expectEqual(report.id, d.id, "the report keeps the draft's id")
        expectEqual(report.syncState, .queued)
        expectEqual(report.crew, crew())
        expectEqual(report.fields.narrative, complete.narrative)
        expectEqual(report.fields.kind, .physicalAssault)
        expectEqual(report.fields.staffHarmed, complete.staffHarmed)
        expectEqual(report.fields.witnesses, complete.witnesses)
        expectEqual(report.createdAt, d.createdAt)
        expectEqual(try t.store.getReport(reportId: d.id), report)
        expectCrewSafeError("draft is gone after finalize", { try t.store.getDraft(draftId: d.id) }) {
            if case .NotFound = $0 { return true } else { return false }
        }
        expectEqual(try t.store.pendingCounts(), PendingCounts(sos: 0, reports: 1, wedged: 0, drafts: 0))
    }
}

test("delete draft removes it") {
    try withStore { t in
        let d = try t.store.createDraft(crew: crew(), fields: completeFields())
        expectEqual(try t.store.listDrafts().map(\.id), [d.id])
        try t.store.deleteDraft(draftId: d.id)
        expectEqual(try t.store.listDrafts(), [])
        expectEqual(try t.store.pendingCounts().drafts, 0)
    }
}

// MARK: 5. queue view

test("listRecords: SOS lane first, then reports, then drafts; pendingCounts") {
    try withStore { t in
        let d = try t.store.createDraft(crew: crew(), fields: completeFields())
        let r = try t.store.finalizeDraft(draftId: d.id, expectedRevision: 1)
        let s1 = try t.store.raiseSos(crew: crew(), location: nil, note: nil)
        let f1 = try t.store.addSosLocation(sosId: s1.id, location: fix())
        let d2 = try t.store.createDraft(crew: crew(), fields: IncidentFields())

        let list = try t.store.listRecords()
        expectEqual(list.map(\.id), [s1.id, f1.id, r.id, d2.id], "upload order")
        try require(list.count == 4, "expected 4 entries, got \(list.count)")
        expectEqual(list[0].kind, .sos)
        expectEqual(list[0].lane, .sos)
        expectEqual(list[0].state, .queued)
        expectEqual(list[0].parentId, nil)
        expectEqual(list[1].kind, .sosLocation)
        expectEqual(list[1].lane, .sos)
        expectEqual(list[1].parentId, s1.id)
        expectEqual(list[2].kind, .incidentReport)
        expectEqual(list[2].lane, .report)
        expectEqual(list[2].state, .queued)
        expectEqual(list[3].kind, .incidentReport)
        expectEqual(list[3].state, .draft)
        expectEqual(list[3].lane, nil)
        expectEqual(list[3].queuePosition, nil)
        let p0 = try requireSome(list[0].queuePosition), p1 = try requireSome(list[1].queuePosition)
        expect(p0 < p1, "queue positions \(p0) < \(p1)")
        expect(list.allSatisfy { $0.createdAt != nil }, "every entry has a time")
        expect(list.allSatisfy { $0.attempts == 0 }, "nothing was attempted yet")

        expectEqual(try t.store.pendingCounts(), PendingCounts(sos: 2, reports: 1, wedged: 0, drafts: 1))
    }
}

// MARK: 6. errors as Swift errors

test("panic button: raiseSosQuick and raiseSosNow raise for the crew of setCrew; closed store is Closed") {
    try withStore { t in
        try t.store.setCrew(crew: crew())
        let at = Int64(Date().addingTimeInterval(-5).timeIntervalSince1970 * 1000)
        let id = try t.store.raiseSosQuick(latitude: 51.1694, longitude: 71.4491, accuracyM: 6.5, fixedAtMs: at)
        let quick = try t.store.getSos(sosId: id)
        expectEqual(quick.crew, crew())
        expectEqual(quick.location?.provider, LocationProvider.fused)
        try raiseSosNow(latitude: Double.nan, longitude: 0, accuracyM: 0, fixedAtMs: 0)
        expectEqual(try t.store.pendingCounts().sos, 2)
        let newest = try t.store.listRecordsPage(request: RecordPageRequest(order: .newestFirst, limit: 1))
        let now = try t.store.getSos(sosId: newest.entries[0].id)
        expectEqual(now.crew, crew())
        expect(now.location == nil, "a NaN latitude means no fix")
        expectCrewSafeError("latitude out of range", {
            try raiseSosNow(latitude: 95, longitude: 0, accuracyM: 5, fixedAtMs: at)
        }) { if case .InvalidInput = $0 { return true } else { return false } }
        try t.store.close()
        expectCrewSafeError("the armed store is closed", {
            try raiseSosNow(latitude: 51.1, longitude: 71.4, accuracyM: 5, fixedAtMs: at)
        }) { if case .Closed = $0 { return true } else { return false } }
    }
}

test("errors are typed Swift errors: NotFound for an unknown UUID, InvalidInput for NaN") {
    try withStore { t in
        let sos = try t.store.raiseSos(crew: crew(), location: fix(), note: nil)
        let before = try t.store.listRecords()

        // A typed catch clause, as an app would write it.
        do {
            _ = try t.store.getSos(sosId: unknownId)
            fail("getSos(unknown) returned")
        } catch CrewSafeError.NotFound(let what, let id) {
            expectEqual(what, "sos")
            expectEqual(id, unknownId)
        } catch {
            fail("expected CrewSafeError.NotFound, got \(error)")
        }

        do {
            _ = try t.store.raiseSos(crew: crew(), location: fix(latitude: .nan), note: nil)
            fail("NaN latitude accepted")
        } catch let error as CrewSafeError {
            switch error {
            case .InvalidInput(let field, let reason):
                expectEqual(field, "location.latitude")
                expect(!reason.isEmpty, "reason should not be empty")
            default:
                fail("expected InvalidInput, got \(error)")
            }
            // Through the generic Error/LocalizedError path too.
            let asError: Error = error
            expect(asError.localizedDescription.contains("location.latitude"),
                   "localizedDescription: \(asError.localizedDescription)")
        }

        expectCrewSafeError("latitude 91 in a follow-up", {
            try t.store.addSosLocation(sosId: sos.id, location: fix(latitude: 91))
        }) { $0 == .InvalidInput(field: "location.latitude", reason: "must be between -90 and 90") }
        expectCrewSafeError("infinite latitude", {
            try t.store.raiseSos(crew: crew(), location: fix(latitude: .infinity), note: nil)
        }) { if case .InvalidInput("location.latitude", _) = $0 { return true } else { return false } }
        expectCrewSafeError("empty device id", {
            try t.store.raiseSos(crew: CrewIdentity(deviceId: "", crewId: "c"), location: nil, note: nil)
        }) { if case .InvalidInput("crew.device_id", _) = $0 { return true } else { return false } }
        expectCrewSafeError("note over 500 characters", {
            try t.store.raiseSos(crew: crew(), location: nil, note: String(repeating: "ж", count: 501))
        }) { if case .InvalidInput("note", _) = $0 { return true } else { return false } }
        expectCrewSafeError("malformed id", { try t.store.getSos(sosId: "not-a-uuid") }) {
            if case .InvalidInput("sos_id", _) = $0 { return true } else { return false }
        }

        let notFound: [(String, () throws -> Any)] = [
            ("addSosLocation", { try t.store.addSosLocation(sosId: unknownId, location: fix()) }),
            ("cancelSos", { try t.store.cancelSos(sosId: unknownId, reason: .other, note: nil) }),
            ("getDraft", { try t.store.getDraft(draftId: unknownId) }),
            ("deleteDraft", { try t.store.deleteDraft(draftId: unknownId) }),
            ("updateDraft", { try t.store.updateDraft(draftId: unknownId, expectedRevision: 1,
                                                       fields: IncidentFields()) }),
            ("finalizeDraft", { try t.store.finalizeDraft(draftId: unknownId, expectedRevision: 1) }),
            ("getReport", { try t.store.getReport(reportId: unknownId) }),
            ("getReport(sos id)", { try t.store.getReport(reportId: sos.id) }),
        ]
        for (name, call) in notFound {
            expectCrewSafeError(name, call) {
                if case .NotFound = $0 { return true } else { return false }
            }
        }
        expectEqual(try t.store.listRecords(), before, "refused calls stored nothing")
    }
}

// MARK: 7. concurrency

test("concurrency: 4 threads raise SOS and write drafts on one store object at once") {
    try withStore { t in
        let threads = 4, perThread = 25
        let store = t.store
        let gate = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        let ids = Locked<[String]>([])
        let errors = Locked<[String]>([])
        for n in 0..<threads {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                gate.wait()   // start all workers together
                for i in 0..<perThread {
                    do {
                        let sos = try store.raiseSos(crew: crew(), location: fix(),
                                                     note: "thread \(n) #\(i)")
                        let d = try store.createDraft(crew: crew(), fields: IncidentFields())
                        let saved = try store.updateDraft(draftId: d.id, expectedRevision: 1,
                                                          fields: completeFields())
                        ids.with { $0 += [sos.id, d.id] }
                        if saved.revision != 2 { errors.with { $0.append("revision \(saved.revision)") } }
                    } catch {
                        errors.with { $0.append("thread \(n): \(error)") }
                    }
                }
            }
            thread.start()
        }
        for _ in 0..<threads { gate.signal() }
        try require(group.wait(timeout: .now() + 120) == .success, "workers did not finish in 120 s")
        expectEqual(errors.get, [], "errors on worker threads")
        let allIds = ids.get
        expectEqual(Set(allIds).count, threads * perThread * 2, "distinct ids")
        let c = try store.pendingCounts()
        expectEqual(c, PendingCounts(sos: UInt64(threads * perThread), reports: 0, wedged: 0,
                                     drafts: UInt64(threads * perThread)))
        let list = try store.listRecords()
        expectEqual(list.count, threads * perThread * 2)
        expectEqual(Set(list.map(\.id)), Set(allIds))
        expect(list.prefix(threads * perThread).allSatisfy { $0.kind == .sos }, "SOS lane first")
    }
}

test("concurrency: optimistic draft edits from 4 threads; Conflict carries the current revision") {
    try withStore { t in
        let store = t.store
        let d = try store.createDraft(crew: crew(), fields: IncidentFields())
        let edits = 10, workers = 4
        let conflicts = Locked(0)
        let errors = Locked<[String]>([])
        DispatchQueue.concurrentPerform(iterations: workers) { n in
            for i in 0..<edits {
                var expected = (try? store.getDraft(draftId: d.id).revision) ?? 0
                while true {
                    do {
                        _ = try store.updateDraft(draftId: d.id, expectedRevision: expected,
                                                  fields: IncidentFields(narrative: "w\(n) e\(i)"))
                        break
                    } catch CrewSafeError.Conflict(let current) {
                        conflicts.with { $0 += 1 }
                        if current <= expected {
                            errors.with { $0.append("Conflict(\(current)) not newer than \(expected)") }
                            return
                        }
                        expected = current
                    } catch {
                        errors.with { $0.append("\(error)") }
                        return
                    }
                }
            }
        }
        expectEqual(errors.get, [])
        expectEqual(try store.getDraft(draftId: d.id).revision, UInt64(1 + workers * edits),
                    "every edit landed exactly once (\(conflicts.get) conflicts retried)")
    }
}

// MARK: 8. panics

test("Rust panic: debugPanic() throws a (non-CrewSafeError) Swift error; the store stays usable") {
    try withStore { t in
        _ = try t.store.raiseSos(crew: crew(), location: nil, note: nil)
        // The panic arrives as the generated file's fileprivate `UniffiInternalError.rustPanic`,
        // which test code cannot name: catch it generically.
        for round in 1...2 {
            do {
                try t.store.debugPanic()
                fail("debugPanic() returned normally (round \(round))")
            } catch let e as CrewSafeError {
                fail("a panic must not be a CrewSafeError, got \(e)")
            } catch {
                expect("\(error)".contains("rustPanic"), "error case: \(error)")
                expectEqual(error.localizedDescription, "deliberate test panic", "panic message")
                expect(String(reflecting: type(of: error)).contains("UniffiInternalError"),
                       "error type: \(String(reflecting: type(of: error)))")
            }
            // The panic happened while holding the store's mutex (now poisoned): same store
            // object, still usable.
            let sos = try t.store.raiseSos(crew: crew(), location: fix(), note: "after panic \(round)")
            expectEqual(try t.store.getSos(sosId: sos.id).note, "after panic \(round)")
            expectEqual(try t.store.pendingCounts().sos, UInt64(1 + round), "SOS count after panic \(round)")
        }
        try t.reopen()
        expectEqual(try t.store.pendingCounts().sos, 3, "after reopen")
    }
}

// MARK: 9. destroy

test("destroy(\"DESTROY\") removes the db, -wal and -shm; a wrong confirmation is InvalidInput") {
    try withStore { t in
        _ = try t.store.raiseSos(crew: crew(), location: nil, note: nil)
        let files = t.existingFiles()
        expect(files.contains(t.path), "db file exists: \(files)")
        expect(files.contains(t.path + "-wal"), "-wal exists while open: \(files)")

        for wrong in ["yes", "destroy", "DESTROY ", ""] {
            expectCrewSafeError("destroy(\"\(wrong)\")", { try t.store.destroy(confirmation: wrong) }) {
                if case .InvalidInput("confirmation", _) = $0 { return true } else { return false }
            }
        }
        _ = try t.store.raiseSos(crew: crew(), location: nil, note: nil)
        expectEqual(try t.store.pendingCounts().sos, 2, "a refused destroy keeps the store open")

        try t.store.destroy(confirmation: "DESTROY")
        expectEqual(t.existingFiles(), [], "db, -wal and -shm removed")
        expectCrewSafeError("pendingCounts after destroy", { try t.store.pendingCounts() }) {
            if case .Closed = $0 { return true } else { return false }
        }
        expectCrewSafeError("second destroy", { try t.store.destroy(confirmation: "DESTROY") }) {
            if case .Closed = $0 { return true } else { return false }
        }
        // A new store at the same path starts empty.
        t.store = try CrewStore.open(path: t.path, key: generateDataKey())
        expectEqual(try t.store.pendingCounts(), PendingCounts(sos: 0, reports: 0, wedged: 0, drafts: 0))
    }
}

// MARK: 9b. error messages

test("every CrewSafeError the library builds prints a readable message") {
    let every = debugEveryError()
    expect(every.count >= 17, "one per variant: \(every.count)")
    for e in every {
        let text = "\(e)"
        expect(!text.isEmpty, "empty description for \(String(reflecting: e))")
        expect(!(e.errorDescription ?? "").isEmpty, "empty errorDescription")
    }
}

// MARK: 10. dates

test("Date fields: SystemTime maps to Foundation Date (raisedAt is now)") {
    try withStore { t in
        let before = Date()
        let sos = try t.store.raiseSos(crew: crew(), location: nil, note: nil)
        let after = Date()
        expect(abs(sos.raisedAt.timeIntervalSinceNow) < 5, "raisedAt \(sos.raisedAt) is not now")
        expect(sos.raisedAt >= before.addingTimeInterval(-0.001) && sos.raisedAt <= after.addingTimeInterval(0.001),
               "raisedAt \(sos.raisedAt.timeIntervalSince1970) not within [\(before.timeIntervalSince1970), \(after.timeIntervalSince1970)]")
        let entry = try requireSome(try t.store.listRecords().first)
        expectEqual(entry.createdAt, sos.raisedAt, "queue entry time is the raise time")

        let d = try t.store.createDraft(crew: crew(), fields: IncidentFields())
        expect(abs(d.createdAt.timeIntervalSinceNow) < 5, "draft createdAt is now")
        let saved = try t.store.updateDraft(draftId: d.id, expectedRevision: 1,
                                            fields: IncidentFields(narrative: "x"))
        expect(saved.updatedAt >= d.updatedAt, "updatedAt moves forward")

        // Dates handed in come back within a microsecond (Date is a Double of seconds since
        // 2001, so an exact round trip is not guaranteed).
        let fixDate = Date(timeIntervalSince1970: 1_767_225_600.123_456_7)  // 2026-01-01
        let withFix = try t.store.raiseSos(crew: crew(), location: fix(at: fixDate), note: nil)
        let back = try requireSome(try t.store.getSos(sosId: withFix.id).location).fixedAt
        expect(abs(back.timeIntervalSince(fixDate)) < 1e-6,
               "fixedAt round trip: sent \(fixDate.timeIntervalSince1970), got \(back.timeIntervalSince1970)")
        let whole = Date(timeIntervalSince1970: 1_767_225_600)
        let wholeBack = try t.store.raiseSos(crew: crew(), location: fix(at: whole), note: nil).location?.fixedAt
        expectEqual(wholeBack, whole, "whole seconds round-trip exactly")

        // Times before 2000 (and before 1970: negative seconds across the FFI) are refused.
        for old in [Date(timeIntervalSince1970: 10), Date(timeIntervalSince1970: -86_400.5), Date.distantPast] {
            expectCrewSafeError("fixedAt \(old)", {
                try t.store.raiseSos(crew: crew(), location: fix(at: old), note: nil)
            }) { if case .InvalidInput("location.fixed_at", _) = $0 { return true } else { return false } }
        }
        expectCrewSafeError("occurredAt an hour ahead", {
            try t.store.createDraft(crew: crew(), fields: IncidentFields(occurredAt: Date().addingTimeInterval(3600)))
        }) { if case .InvalidInput("occurred_at", _) = $0 { return true } else { return false } }
    }
}

// MARK: 11. sync (SyncTests.swift; needs the server of bindings/with-test-server.sh)

runSyncTests()

finishTests()
