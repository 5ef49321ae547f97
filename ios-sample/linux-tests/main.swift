// Linux tests of the sample app's plain Swift logic (ios-sample/Core) against the real library
// and the reference server, compiled together with the bindings. Run with
// ios-sample/run-linux-tests.sh.

import Foundation

// MARK: store opening

test("openStore: first run saves the key before creating the store; reopen keeps records") {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("crewsafe-open-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let keys = MemoryKeyStorage()
    let db = dir.appendingPathComponent("crewsafe.db")
    let first = try openStore(at: db, keys: keys)
    expect(first.newKey, "first run makes a key")
    expectEqual(keys.saves, 1)
    expectEqual(keys.saved?.count, 32)
    let sos = try first.store.raiseSos(crew: try SampleServer.settings().crew, location: nil, note: "kept")
    try first.store.close()

    let again = try openStore(at: db, keys: keys)
    expect(!again.newKey && again.setAside == nil, "second run reuses the key")
    expectEqual(try again.store.getSos(sosId: sos.id).id, sos.id)
    try again.store.close()
    expectEqual(keys.saves, 1)
}

test("openStore: with the key lost, WrongKey moves the old files aside (still openable) and starts empty") {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("crewsafe-open-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let keys = MemoryKeyStorage()
    let db = dir.appendingPathComponent("crewsafe.db")
    let first = try openStore(at: db, keys: keys)
    let oldKey = try requireSome(keys.saved)
    let sos = try first.store.raiseSos(crew: try SampleServer.settings().crew, location: nil, note: nil)
    try first.store.close()

    try keys.deleteKey()
    let fresh = try openStore(at: db, keys: keys)
    let aside = try requireSome(fresh.setAside, "files moved aside")
    expect(FileManager.default.fileExists(atPath: aside.path), "\(aside.path) exists")
    expectEqual(try fresh.store.listRecords().count, 0, "the new store is empty")
    _ = try fresh.store.raiseSos(crew: try SampleServer.settings().crew, location: nil, note: nil)
    try fresh.store.close()

    let old = try CrewStore.open(path: aside.path, key: oldKey)
    expectEqual(try old.getSos(sosId: sos.id).state, .active, "old alarm readable with the old key")
    try old.close()
}

// MARK: SOS

test("SOS: released before the hold completes, nothing happens") {
    try withHarness { h in
        let sos = h.controller.sos
        sos.press()
        if case .holding = sos.phase {} else { fail("phase \(sos.phase)") }
        h.clock.advance(sos.holdMs - 1)
        sos.release()
        h.clock.advance(60_000)
        expectEqual(sos.phase, .idle)
        expectEqual(try h.store.listRecords().count, 0)
    }
}

test("SOS: cancelled inside the window, nothing is stored and dispatch never sees it") {
    try withHarness { h in
        let sos = h.controller.sos
        var phases: [String] = []
        sos.onChange = { p in phases.append("\(p)".components(separatedBy: "(")[0]) }
        sos.press()
        h.clock.advance(sos.holdMs)
        guard case .cancelWindow(let raiseAt) = sos.phase else { fail("phase \(sos.phase)"); return }
        expectEqual(raiseAt, h.clock.now + sos.cancelWindowMs)
        sos.release() // letting go after the hold does not cancel
        expect(sos.phase.isArming)
        h.clock.advance(sos.cancelWindowMs - 1)
        sos.cancel()
        h.clock.advance(60_000)
        expectEqual(sos.phase, .idle)
        expectEqual(phases, ["holding", "cancelWindow", "idle"])
        expectEqual(try h.store.pendingCounts().sos, 0)
        expectEqual(h.syncRequests.get, 0)
        expectEqual(try h.controller.syncNow().report().sent, 0)
        let list = try SampleServer.dispatcher("GET", "/v1/dispatch/sos")
        expect(!list.contains(h.controller.settings.crewId), "dispatch lists our crew")
    }
}

test("SOS: raised when the window ends, delivered, acknowledged by dispatch, restored, then cancelled") {
    try withHarness { h in
        let sos = h.controller.sos
        sos.press()
        h.clock.advance(sos.holdMs + sos.cancelWindowMs)
        guard case .raised(let raised) = sos.phase else { fail("phase \(sos.phase)"); return }
        expectEqual(raised.location?.latitude, h.fixes.fix?.latitude, "location from the FixSource")
        expectEqual(raised.crew, h.controller.settings.crew)
        expectEqual(h.syncRequests.get, 1, "background sync requested")
        expectEqual(try entry(h.store, raised.id).state, .queued)
        sos.press() // an active SOS is not raised twice
        expectEqual(try h.store.pendingCounts().sos, 1)

        let r = try h.controller.syncNow().report()
        expectEqual(r.outcome, .complete)
        expectEqual(r.accepted, 1)
        expectEqual(try entry(h.store, raised.id).state, .delivered)
        let listed = try SampleServer.dispatcher("GET", "/v1/dispatch/sos")
        expect(listed.contains(raised.id), "dispatch sees it")

        try SampleServer.dispatcher("POST", "/v1/dispatch/sos/\(raised.id)/acknowledge")
        _ = try h.controller.syncNow().report()
        expectEqual(try entry(h.store, raised.id).dispatchStatus, .acknowledged)
        expectEqual(h.controller.records.state.records.first { $0.id == raised.id }?.dispatchStatus, .acknowledged)

        let again = SosController(store: h.store, crew: { h.controller.settings.crew }, scheduler: h.clock)
        again.restore()
        expectEqual(again.phase, .raised(try h.store.getSos(sosId: raised.id)), "restored after a restart")

        expect(sos.cancelRaised(reason: .falseAlarm, note: "pressed by mistake"))
        expectEqual(sos.phase, .idle)
        expectEqual(try h.store.pendingCounts().sos, 1, "the cancellation waits")
        _ = try h.controller.syncNow().report()
        let after = try h.store.getSos(sosId: raised.id)
        expectEqual(after.state, .cancelled)
        expectEqual(after.cancellation?.syncState, .delivered)
        let cancelled = try SampleServer.dispatcher("GET", "/v1/dispatch/sos")
        expect(cancelled.contains("false_alarm"), "dispatch sees the cancellation")
    }
}

test("SOS: raiseNow skips the window; a missing crew id fails visibly; the real DispatchScheduler works") {
    var settings = try SampleServer.settings()
    settings.crewId = ""
    try withHarness(settings) { h in
        h.controller.sos.press()
        h.controller.sos.raiseNow()
        guard case .failed(let reason) = h.controller.sos.phase else { fail("phase \(h.controller.sos.phase)"); return }
        expect(reason.contains("crew.crew_id"), reason)
        expectEqual(try h.store.listRecords().count, 0)
        expectEqual(h.clock.pending, 0, "timers left")
    }
    try withHarness { h in
        let sos = SosController(store: h.store, crew: { h.controller.settings.crew }, scheduler: DispatchScheduler(),
                                holdMs: 50, cancelWindowMs: 100)
        sos.press()
        try waitFor("the SOS to be raised", seconds: 5) { if case .raised = sos.phase { return true }; return false }
        expectEqual(try h.store.pendingCounts().sos, 1)
    }
}

// MARK: drafts

test("draft: autosave after the pause, revisions, a merge with another screen, finalize rules, delivery") {
    try withHarness { h in
        let ed = h.controller.newDraftEditor()
        expect(!ed.resumeLatest(), "no draft to resume")
        ed.edit { $0.narrative = "The patient's son attacked the paramedic." }
        h.clock.advance(ed.autosaveMs / 2)
        ed.edit { $0.address = "Abai ave 10" }
        h.clock.advance(ed.autosaveMs - 1)
        expectEqual(try h.store.listDrafts().count, 0, "saved before the pause ended")
        h.clock.advance(1)
        let id = try requireSome(ed.state.draftId, "draft created by the autosave")
        expectEqual(ed.state.revision, 1)
        expect(!ed.state.dirty)

        ed.edit { $0.kind = .physicalAssault }
        h.clock.advance(ed.autosaveMs)
        expectEqual(ed.state.revision, 2)

        var other = try h.store.getDraft(draftId: id).fields
        other.severity = .serious
        other.address = "Abai ave 12"
        _ = try h.store.updateDraft(draftId: id, expectedRevision: 2, fields: other)
        ed.edit { $0.policeCalled = true; $0.address = "Abai ave 10, 2nd floor" }
        h.clock.advance(ed.autosaveMs)
        expectEqual(ed.state.revision, 4, "saved on top of revision 3")
        expectEqual(ed.state.conflictsMerged, 1)
        let stored = try h.store.getDraft(draftId: id).fields
        expectEqual(ed.state.fields, stored, "editor shows what is stored")
        expectEqual(stored.severity, .serious, "their change kept")
        expectEqual(stored.policeCalled, true, "my change kept")
        expectEqual(stored.address, "Abai ave 10, 2nd floor", "a field both changed: mine wins")

        expect(ed.finalizeReport() == nil)
        expectEqual(ed.state.fieldError?.field, "occurred_at")
        ed.edit { $0.occurredAt = Date().addingTimeInterval(-1200) }
        expect(ed.finalizeReport() == nil)
        expectEqual(ed.state.fieldError?.field, "staff_harmed")
        ed.edit { $0.staffHarmed = [HarmedStaff(role: .paramedic, name: nil, injuryDescription: "bruised arm")] }
        let report = try requireSome(ed.finalizeReport(), "finalized; state \(ed.state)")
        expectEqual(report.id, id)
        expectEqual(h.clock.pending, 0, "no autosave left")
        expectEqual(try h.store.pendingCounts(), PendingCounts(sos: 0, reports: 1, wedged: 0, drafts: 0))
        expectEqual(h.syncRequests.get, 1)

        expectEqual(try h.controller.syncNow().report().accepted, 1)
        expectEqual(try h.store.getReport(reportId: id).syncState, .delivered)
    }
}

test("draft: a second editor resumes it; finalizing a version the user has not seen sends nothing") {
    try withHarness { h in
        let first = h.controller.newDraftEditor()
        first.edit { $0.narrative = "draft one" }
        expect(first.saveNow())
        let second = h.controller.newDraftEditor()
        expect(second.resumeLatest())
        expectEqual(second.state.draftId, first.state.draftId)
        second.edit {
            $0.occurredAt = Date(); $0.address = "Kenesary 40"; $0.kind = .threat
            $0.severity = .moderate; $0.policeCalled = false; $0.narrative = "complete now"
        }
        expect(second.saveNow())

        expect(first.finalizeReport() == nil, "finalize on a stale revision")
        expect(first.state.error != nil, "the user is told")
        expectEqual(first.state.fields, try h.store.getDraft(draftId: first.state.draftId!).fields, "their version is loaded")
        expectEqual(try h.store.pendingCounts().drafts, 1)
        expect(first.finalizeReport() != nil, "after a look, send: \(first.state)")
        expectEqual(try h.store.pendingCounts().reports, 1)
    }
}

test("merge: unchanged fields take the other side, changed fields keep mine") {
    let base = IncidentFields(address: "x", narrative: "a")
    var mine = base; mine.narrative = "b"
    var theirs = base; theirs.address = "y"; theirs.severity = .low
    expectEqual(merge(base: base, mine: mine, theirs: theirs), IncidentFields(address: "y", severity: .low, narrative: "b"))
    expectEqual(merge(base: base, mine: base, theirs: theirs), theirs)
    expectEqual(merge(base: base, mine: mine, theirs: base), mine)
}

// MARK: network and settings

test("network: the connectivity callback sets the store online and its worker delivers without syncNow") {
    try withHarness { h in
        let c = h.controller
        let seen = Locked<[SyncState]>([])
        c.start()
        c.sos.press(); c.sos.raiseNow()
        guard case .raised(let raised) = c.sos.phase else { fail("phase \(c.sos.phase)"); return }
        c.records.onChange = { s in
            if let st = s.records.first(where: { $0.id == raised.id })?.state {
                seen.with { if $0.last != st { $0.append(st) } }
            }
        }
        expectEqual(c.records.state.counts.sos, 1, "pending SOS count shown")
        Thread.sleep(forTimeInterval: 0.3)
        expectEqual(try entry(h.store, raised.id).state, .queued, "offline: nothing sent")

        let before = h.syncRequests.get
        h.network.set(true)
        h.network.set(true) // platforms repeat themselves; only changes count
        expect(c.records.state.online)
        expectEqual(h.syncRequests.get, before + 1, "background task requested once")
        try waitFor("delivery by the background worker") {
            c.records.state.records.contains { $0.id == raised.id && $0.state == .delivered }
        }
        try waitFor("pending counts to reach 0") { c.records.state.counts.sos == 0 }
        expectEqual(seen.get, [.queued, .sending, .delivered], "states seen by the list")
    }
}

test("settings: http to a LAN address is refused; missing and wrong tokens need attention; records wait") {
    var settings = try SampleServer.settings()
    settings.serverUrl = "http://192.168.1.10:8080"
    try withHarness(settings) { h in
        let c = h.controller
        expect(c.settingsProblem?.contains("server_url") == true, "problem: \(String(describing: c.settingsProblem))")
        c.sos.press(); c.sos.raiseNow()
        guard case .needsAttention(let notConfigured) = c.syncNow() else { fail("synced without a server"); return }
        expect(notConfigured.contains("server address"), notConfigured)

        var s = c.settings
        s.serverUrl = try SampleServer.env("CREWSAFE_TEST_SERVER_URL")
        s.deviceToken = ""
        expectEqual(c.applySettings(s), nil)
        guard case .needsAttention(let noToken) = c.syncNow() else { fail("synced without a token"); return }
        expect(noToken.contains("no device token"), noToken)

        s.deviceToken = "not-the-token"
        c.applySettings(s)
        guard case .needsAttention(let refused) = c.syncNow() else { fail("a wrong token was accepted"); return }
        expect(refused.contains("enroll"), refused)
        expectEqual(c.records.state.problem, refused)
        expectEqual(try h.store.pendingCounts().sos, 1, "the SOS still waits")

        s.deviceToken = try SampleServer.env("CREWSAFE_TEST_DEVICE_TOKEN")
        c.applySettings(s)
        expectEqual(try c.syncNow().report().accepted, 1)
        expectEqual(c.records.state.problem, nil)
        expectEqual(c.records.state.counts.sos, 0)
    }
}

// MARK: the SOS loop (issue 12) and check-ins

sosLoopTests()
checkInTests()

finishTests()
