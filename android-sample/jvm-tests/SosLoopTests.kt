// Issue 12: the SOS screen shows "help is on the way" and the dispatcher's message as soon as
// dispatch acts (the library's status watch, no syncNow), and the lone-worker check-in section.

import java.time.Duration
import java.util.concurrent.CopyOnWriteArrayList
import kz.crewsafe.*
import kz.crewsafe.sample.core.*

fun sosLoopTests() {
    test("SOS loop: online through the connectivity port, raised by the controller; the acknowledgement and the dispatcher's message reach the phase and status line within 5 s with no syncNow; then resolved") {
        withHarness { h ->
            val c = h.controller
            val phases = CopyOnWriteArrayList<SosPhase>()
            c.sos.listener = { phases += it }
            c.start()
            h.network.set(true) // the platform reports a network: the controller calls store.setOnline(true)
            c.sos.press()
            c.sos.raiseNow()
            val raised = (c.sos.phase as? SosPhase.Raised ?: fail("phase ${c.sos.phase}")).sos
            waitFor("the worker to deliver the SOS (status '${c.sos.statusText()}')", 10) {
                c.sos.statusText() == "Sent — waiting for dispatch"
            }
            assertEquals(SyncState.DELIVERED, (c.sos.phase as SosPhase.Raised).sos.syncState)
            assertTrue(c.sos.canCancelRaised, "an open alarm can be cancelled")

            val message = "crew 7 on the way, 6 min"
            val t0 = System.nanoTime()
            Server.acknowledge(raised.id, message)
            waitFor("'help is on the way' without syncNow (status '${c.sos.statusText()}')", 5) {
                (c.sos.phase as? SosPhase.Raised)?.status()?.helpOnTheWay == true
            }
            println("      acknowledged on the server -> phase on the phone: ${(System.nanoTime() - t0) / 1_000_000} ms")
            val acked = c.sos.phase as SosPhase.Raised
            val answer = acked.sos.dispatch ?: fail("no dispatch answer in ${acked.sos}")
            assertEquals(DispatchStatus.ACKNOWLEDGED, answer.status)
            assertEquals("test-dispatcher", answer.acknowledgedBy)
            assertEquals(message, answer.message)
            val at = hhmm(answer.acknowledgedAt ?: fail("acknowledgedAt"))
            assertEquals(
                SosStatus("Help is on the way — acknowledged by test-dispatcher at $at", message, helpOnTheWay = true),
                acked.status(),
            )
            assertEquals("Help is on the way — acknowledged by test-dispatcher at $at\nDispatch: $message", c.sos.statusText())
            assertTrue(
                phases.any { it is SosPhase.Raised && it.status().helpOnTheWay && it.sos.dispatch?.message == message },
                "the new phase reached the listener: $phases",
            )
            waitFor("the records list to show it acknowledged", 5) {
                c.records.state.records.any { it.id == raised.id && it.dispatchStatus == DispatchStatus.ACKNOWLEDGED }
            }
            c.sos.press() // no second alarm while this one is open
            assertEquals(acked, c.sos.phase)
            c.sos.dismiss() // an open alarm stays on screen
            assertEquals(acked, c.sos.phase)

            Server.resolve(raised.id, "closed, police on site")
            waitFor("'Resolved by dispatch' without syncNow (status '${c.sos.statusText()}')", 5) {
                (c.sos.phase as? SosPhase.Raised)?.finished == true
            }
            val resolved = (c.sos.phase as SosPhase.Raised).sos
            val resolvedAt = hhmm(resolved.dispatch?.resolvedAt ?: fail("resolvedAt"))
            assertEquals("Resolved by dispatch at $resolvedAt\nDispatch: closed, police on site", c.sos.statusText())
            assertFalse(c.sos.canCancelRaised, "nothing to cancel once resolved")
            c.sos.dismiss()
            assertEquals(SosPhase.Idle, c.sos.phase)
            assertEquals(0uL, h.store.pendingCounts().sos, "nothing left to send")
            assertNull(c.records.state.lastReport, "no syncNow ran")
        }
    }

    test("SOS status line: queued, sending, delivered, acknowledged (no name, no message), resolved, cancelled, wedged") {
        withHarness { h ->
            val sos = h.store.raiseSos(h.controller.settings.crew(), null, null)
            val t = java.time.Instant.parse("2025-03-01T09:05:00Z")
            val zone = java.time.ZoneOffset.ofHours(5)
            fun line(s: Sos) = sosStatus(s, zone)
            assertEquals(SosStatus("SOS stored — it is sent as soon as there is a network"), line(sos))
            assertEquals(SosStatus("Sending the SOS…"), line(sos.copy(syncState = SyncState.SENDING)))
            val delivered = sos.copy(syncState = SyncState.DELIVERED, dispatchStatus = DispatchStatus.DELIVERED)
            assertEquals(SosStatus("Sent — waiting for dispatch"), line(delivered))
            assertTrue(line(sos.copy(syncState = SyncState.WEDGED)).headline.contains("did not accept"))
            val ack = DispatchAnswer(DispatchStatus.ACKNOWLEDGED, t, t, null, null, " ")
            assertEquals(
                SosStatus("Help is on the way — acknowledged by dispatch at 14:05", helpOnTheWay = true),
                line(delivered.copy(dispatchStatus = DispatchStatus.ACKNOWLEDGED, dispatch = ack)),
            )
            val res = ack.copy(status = DispatchStatus.RESOLVED, resolvedAt = t.plusSeconds(600), message = "done")
            val resolved = delivered.copy(dispatchStatus = DispatchStatus.RESOLVED, dispatch = res)
            assertEquals(SosStatus("Resolved by dispatch at 14:15", "done"), line(resolved))
            assertEquals("Resolved by dispatch at 14:15\nDispatch: done", line(resolved).text)
            assertTrue(resolved.isFinished())
            assertFalse(delivered.isFinished())
            h.store.cancelSos(sos.id, CancelReason.FALSE_ALARM, null)
            val cancelled = h.store.getSos(sos.id)
            assertEquals(SosStatus("Cancelled — telling dispatch"), line(cancelled))
            assertTrue(cancelled.isFinished())
        }
    }

    test("SOS: a restored alarm follows dispatch too; after syncNow offline the status line shows the acknowledgement") {
        withHarness { h ->
            val c = h.controller
            val sos = h.store.raiseSos(c.settings.crew(), null, null) // raised before a restart
            c.start() // restore + listen; the network stays down
            assertEquals(sos.id, (c.sos.phase as? SosPhase.Raised)?.sos?.id, "restored: ${c.sos.phase}")
            assertEquals("SOS stored — it is sent as soon as there is a network", c.sos.statusText())
            assertEquals(1u, c.syncNow().report().accepted)
            assertEquals("Sent — waiting for dispatch", c.sos.statusText())
            Server.acknowledge(sos.id)
            Thread.sleep(300)
            assertEquals("Sent — waiting for dispatch", c.sos.statusText(), "offline: no watch")
            c.syncNow().report()
            val status = (c.sos.phase as SosPhase.Raised).status()
            assertTrue(status.headline.startsWith("Help is on the way — acknowledged by test-dispatcher at "), status.headline)
            assertNull(status.message)
        }
    }
}

fun checkInTests() {
    test("check-in: started with minutes and an address, extended, closed with I'm safe through the controller; each delivered by the worker; due time shown") {
        withHarness { h ->
            val c = h.controller
            val ci = c.checkIns
            val seen = CopyOnWriteArrayList<CheckInUiState>()
            ci.listener = { seen += it }
            c.start()
            assertEquals("No check-in running", ci.statusText())

            assertNull(ci.startCheckIn(0, "Abay ave 12"), "0 minutes refused")
            assertEquals("due_in_minutes", ci.state.fieldError?.field)
            assertEquals(0, h.store.listRecords().size, "nothing stored")

            val started = ci.startCheckIn(20, "  Abay ave 12, flat 40 ") ?: fail("refused: ${ci.state}")
            assertEquals(CheckInState.OPEN, started.state)
            assertEquals("Abay ave 12, flat 40", started.address)
            assertEquals(h.fix, started.location, "position from the FixSource")
            assertEquals(Duration.ofMinutes(20), Duration.between(started.startedAt, started.dueAt))
            assertNull(ci.state.fieldError)
            assertEquals(1, h.syncRequests.get(), "background sync requested")
            val now = started.startedAt.plusSeconds(60)
            assertEquals(
                "Check in by ${hhmm(started.dueAt)} (19 min left) · Abay ave 12, flat 40 — not sent yet: it leaves as soon as there is a network",
                ci.statusText(now),
            )
            assertNull(ci.startCheckIn(10, "elsewhere"), "one check-in at a time")
            assertNotNull(ci.state.error)

            h.network.set(true)
            waitFor("the start to be delivered by the worker", 10) { ci.state.checkIn?.syncState == SyncState.DELIVERED }
            assertTrue(ci.statusText(now).endsWith("— dispatch has it"), ci.statusText(now))

            val extended = ci.extend(15) ?: fail("extend refused: ${ci.state}")
            assertEquals(35u, extended.dueInMinutes)
            assertEquals(started.startedAt.plus(Duration.ofMinutes(35)), extended.dueAt)
            assertTrue(ci.statusText(now).startsWith("Check in by ${hhmm(extended.dueAt)} (34 min left)"), ci.statusText(now))
            waitFor("the extension to be delivered", 10) {
                ci.state.checkIn?.extensions?.singleOrNull()?.syncState == SyncState.DELIVERED
            }
            assertEquals(
                "Overdue since ${hhmm(extended.dueAt)} · Abay ave 12, flat 40 — dispatch is alerted: tap I'm safe",
                ci.statusText(extended.dueAt.plusSeconds(1)),
            )

            // After a restart the open check-in is shown again.
            val again = CheckInController(h.store, { c.settings.crew() })
            again.restore()
            assertEquals(extended.id, again.state.checkIn?.id)
            assertEquals(35u, again.state.checkIn?.dueInMinutes)

            val done = ci.checkIn() ?: fail("I'm safe refused: ${ci.state}")
            assertEquals(CheckInState.DONE, done.state)
            waitFor("the closing to be delivered", 10) { ci.state.checkIn?.doneSyncState == SyncState.DELIVERED }
            val doneAt = hhmm(done.doneAt ?: fail("doneAt"))
            assertEquals("Checked in safe at $doneAt · Abay ave 12, flat 40 — dispatch was told", ci.statusText())
            assertNull(ci.extend(5), "a closed check-in is not extended")
            assertNull(ci.checkIn(), "nor closed twice")

            val stored = h.store.getCheckIn(started.id)
            assertEquals(SyncState.DELIVERED, stored.syncState)
            assertEquals(SyncState.DELIVERED, stored.extensions.single().syncState)
            assertEquals(SyncState.DELIVERED, stored.doneSyncState)
            assertEquals(0uL, h.store.pendingCounts().sos, "nothing left to send")
            assertNull(c.records.state.lastReport, "no syncNow ran")
            assertTrue(seen.any { it.checkIn?.doneSyncState == SyncState.DELIVERED }, "delivery reached the listener")

            ci.dismiss()
            assertEquals("No check-in running", ci.statusText())
            assertTrue(ci.canStart)
        }
    }
}
