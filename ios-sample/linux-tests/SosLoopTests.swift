// Issue 12: the SOS screen shows "help is on the way" and the dispatcher's message as soon as
// dispatch acts (the library's status watch, no syncNow), and the lone-worker check-in section.

import Foundation

func sosLoopTests() {
    test("SOS loop: online through the connectivity port, raised by the controller; the acknowledgement and the dispatcher's message reach the phase and status line within 5 s with no syncNow; then resolved") {
        try withHarness { h in
            let c = h.controller
            let phases = Locked<[SosPhase]>([])
            c.sos.onChange = { p in phases.with { $0.append(p) } }
            c.start()
            h.network.set(true) // the platform reports a network: the controller calls store.setOnline(true)
            c.sos.press()
            c.sos.raiseNow()
            let raised = try requireSome(c.sos.phase.raisedSos, "phase \(c.sos.phase)")
            try waitFor("the worker to deliver the SOS", seconds: 10) {
                c.sos.statusText() == "Sent — waiting for dispatch"
            }
            expectEqual(c.sos.phase.raisedSos?.syncState, .delivered)
            expect(c.sos.canCancelRaised, "an open alarm can be cancelled")

            let message = "crew 7 on the way, 6 min"
            let t0 = Date()
            try SampleServer.acknowledge(raised.id, message: message)
            try waitFor("'help is on the way' without syncNow (status '\(c.sos.statusText())')", seconds: 5) {
                c.sos.phase.raisedSos.map { sosStatus($0).helpOnTheWay } ?? false
            }
            print("      acknowledged on the server -> phase on the phone: \(Int(Date().timeIntervalSince(t0) * 1000)) ms")
            let acked = try requireSome(c.sos.phase.raisedSos)
            let answer = try requireSome(acked.dispatch, "no dispatch answer in \(acked)")
            expectEqual(answer.status, .acknowledged)
            expectEqual(answer.acknowledgedBy, "test-dispatcher")
            expectEqual(answer.message, message)
            let at = hhmm(try requireSome(answer.acknowledgedAt, "acknowledgedAt"))
            expectEqual(sosStatus(acked),
                        SosStatus(headline: "Help is on the way — acknowledged by test-dispatcher at \(at)",
                                  message: message, helpOnTheWay: true))
            expectEqual(c.sos.statusText(), "Help is on the way — acknowledged by test-dispatcher at \(at)\nDispatch: \(message)")
            expect(phases.get.contains { $0.raisedSos?.dispatch?.message == message }, "the new phase reached onChange")
            try waitFor("the records list to show it acknowledged", seconds: 5) {
                c.records.state.records.contains { $0.id == raised.id && $0.dispatchStatus == .acknowledged }
            }
            c.sos.press() // no second alarm while this one is open
            expectEqual(c.sos.phase, .raised(acked))
            c.sos.dismiss() // an open alarm stays on screen
            expectEqual(c.sos.phase, .raised(acked))

            try SampleServer.resolve(raised.id, message: "closed, police on site")
            try waitFor("'Resolved by dispatch' without syncNow (status '\(c.sos.statusText())')", seconds: 5) {
                c.sos.phase.isFinished
            }
            let resolved = try requireSome(c.sos.phase.raisedSos)
            let resolvedAt = hhmm(try requireSome(resolved.dispatch?.resolvedAt, "resolvedAt"))
            expectEqual(c.sos.statusText(), "Resolved by dispatch at \(resolvedAt)\nDispatch: closed, police on site")
            expect(!c.sos.canCancelRaised, "nothing to cancel once resolved")
            c.sos.dismiss()
            expectEqual(c.sos.phase, .idle)
            expectEqual(try h.store.pendingCounts().sos, 0, "nothing left to send")
            expectEqual(c.records.state.lastReport, nil, "no syncNow ran")
        }
    }

    test("SOS status line: queued, sending, delivered, acknowledged (no name, no message), resolved, cancelled, wedged") {
        try withHarness { h in
            var sos = try h.store.raiseSos(crew: h.controller.settings.crew, location: nil, note: nil)
            let t = Date(timeIntervalSince1970: 1_740_819_900) // 2025-03-01 09:05 UTC
            let zone = TimeZone(secondsFromGMT: 5 * 3600)!
            func line(_ s: Sos) -> SosStatus { sosStatus(s, timeZone: zone) }
            expectEqual(line(sos), SosStatus(headline: "SOS stored — it is sent as soon as there is a network"))
            sos.syncState = .sending
            expectEqual(line(sos), SosStatus(headline: "Sending the SOS…"))
            sos.syncState = .wedged
            expect(line(sos).headline.contains("did not accept"))
            sos.syncState = .delivered
            sos.dispatchStatus = .delivered
            expectEqual(line(sos), SosStatus(headline: "Sent — waiting for dispatch"))
            expect(!sos.isFinished)
            var acked = sos
            acked.dispatchStatus = .acknowledged
            acked.dispatch = DispatchAnswer(status: .acknowledged, updatedAt: t, acknowledgedAt: t, acknowledgedBy: nil,
                                            resolvedAt: nil, message: " ")
            expectEqual(line(acked), SosStatus(headline: "Help is on the way — acknowledged by dispatch at 14:05",
                                               helpOnTheWay: true))
            var resolved = acked
            resolved.dispatchStatus = .resolved
            resolved.dispatch = DispatchAnswer(status: .resolved, updatedAt: t, acknowledgedAt: t, acknowledgedBy: nil,
                                               resolvedAt: t.addingTimeInterval(600), message: "done")
            expectEqual(line(resolved), SosStatus(headline: "Resolved by dispatch at 14:15", message: "done"))
            expectEqual(line(resolved).text, "Resolved by dispatch at 14:15\nDispatch: done")
            expect(resolved.isFinished)
            _ = try h.store.cancelSos(sosId: sos.id, reason: .falseAlarm, note: nil)
            let cancelled = try h.store.getSos(sosId: sos.id)
            expectEqual(line(cancelled), SosStatus(headline: "Cancelled — telling dispatch"))
            expect(cancelled.isFinished)
        }
    }

    test("SOS: a restored alarm follows dispatch too; after syncNow offline the status line shows the acknowledgement") {
        try withHarness { h in
            let c = h.controller
            let sos = try h.store.raiseSos(crew: c.settings.crew, location: nil, note: nil) // raised before a restart
            c.start() // restore + listen; the network stays down
            expectEqual(c.sos.phase.raisedSos?.id, sos.id, "restored: \(c.sos.phase)")
            expectEqual(c.sos.statusText(), "SOS stored — it is sent as soon as there is a network")
            expectEqual(try c.syncNow().report().accepted, 1)
            expectEqual(c.sos.statusText(), "Sent — waiting for dispatch")
            try SampleServer.acknowledge(sos.id)
            Thread.sleep(forTimeInterval: 0.3)
            expectEqual(c.sos.statusText(), "Sent — waiting for dispatch", "offline: no watch")
            _ = try c.syncNow().report()
            let status = sosStatus(try requireSome(c.sos.phase.raisedSos))
            expect(status.headline.hasPrefix("Help is on the way — acknowledged by test-dispatcher at "), status.headline)
            expectEqual(status.message, nil)
        }
    }
}

func checkInTests() {
    test("check-in: started with minutes and an address, extended, closed with I'm safe through the controller; each delivered by the worker; due time shown") {
        try withHarness { h in
            let c = h.controller
            let ci = c.checkIns
            let seen = Locked<[CheckInUiState]>([])
            ci.onChange = { s in seen.with { $0.append(s) } }
            c.start()
            expectEqual(ci.statusText(), "No check-in running")

            expect(ci.startCheckIn(minutes: 0, address: "Abay ave 12") == nil, "0 minutes refused")
            expectEqual(ci.state.fieldError?.field, "due_in_minutes")
            expectEqual(try h.store.listRecords().count, 0, "nothing stored")

            let started = try requireSome(ci.startCheckIn(minutes: 20, address: "  Abay ave 12, flat 40 "), "refused: \(ci.state)")
            expectEqual(started.state, .open)
            expectEqual(started.address, "Abay ave 12, flat 40")
            expectEqual(started.location?.latitude, h.fixes.fix?.latitude, "position from the FixSource")
            expectEqual(started.dueAt.timeIntervalSince(started.startedAt), 20 * 60)
            expectEqual(ci.state.fieldError, nil)
            expectEqual(h.syncRequests.get, 1, "background sync requested")
            let now = started.startedAt.addingTimeInterval(60)
            expectEqual(ci.statusText(now: now),
                        "Check in by \(hhmm(started.dueAt)) (19 min left) · Abay ave 12, flat 40 — not sent yet: it leaves as soon as there is a network")
            expect(ci.startCheckIn(minutes: 10, address: "elsewhere") == nil, "one check-in at a time")
            expect(ci.state.error != nil)

            h.network.set(true)
            try waitFor("the start to be delivered by the worker", seconds: 10) { ci.state.checkIn?.syncState == .delivered }
            expect(ci.statusText(now: now).hasSuffix("— dispatch has it"), ci.statusText(now: now))

            let extended = try requireSome(ci.extend(minutes: 15), "extend refused: \(ci.state)")
            expectEqual(extended.dueInMinutes, 35)
            expectEqual(extended.dueAt, started.startedAt.addingTimeInterval(35 * 60))
            expect(ci.statusText(now: now).hasPrefix("Check in by \(hhmm(extended.dueAt)) (34 min left)"), ci.statusText(now: now))
            try waitFor("the extension to be delivered", seconds: 10) {
                ci.state.checkIn?.extensions.count == 1 && ci.state.checkIn?.extensions.first?.syncState == .delivered
            }
            expectEqual(ci.statusText(now: extended.dueAt.addingTimeInterval(1)),
                        "Overdue since \(hhmm(extended.dueAt)) · Abay ave 12, flat 40 — dispatch is alerted: tap I'm safe")

            // After a restart the open check-in is shown again.
            let again = CheckInController(store: h.store, crew: { c.settings.crew })
            again.restore()
            expectEqual(again.state.checkIn?.id, extended.id)
            expectEqual(again.state.checkIn?.dueInMinutes, 35)

            let done = try requireSome(ci.checkIn(), "I'm safe refused: \(ci.state)")
            expectEqual(done.state, .done)
            try waitFor("the closing to be delivered", seconds: 10) { ci.state.checkIn?.doneSyncState == .delivered }
            let doneAt = hhmm(try requireSome(done.doneAt, "doneAt"))
            expectEqual(ci.statusText(), "Checked in safe at \(doneAt) · Abay ave 12, flat 40 — dispatch was told")
            expect(ci.extend(minutes: 5) == nil, "a closed check-in is not extended")
            expect(ci.checkIn() == nil, "nor closed twice")

            let stored = try h.store.getCheckIn(checkInId: started.id)
            expectEqual(stored.syncState, .delivered)
            expectEqual(stored.extensions.map(\.syncState), [.delivered])
            expectEqual(stored.doneSyncState, .delivered)
            expectEqual(try h.store.pendingCounts().sos, 0, "nothing left to send")
            expectEqual(c.records.state.lastReport, nil, "no syncNow ran")
            expect(seen.get.contains { $0.checkIn?.doneSyncState == .delivered }, "delivery reached onChange")

            ci.dismiss()
            expectEqual(ci.statusText(), "No check-in running")
            expect(ci.canStart)
        }
    }
}
