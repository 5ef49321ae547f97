import java.io.File
import kz.crewsafe.*
import kz.crewsafe.sample.core.*

fun storeOpenerTests() {
    test("openStore: first run saves a wrapped key before creating the store; reopen keeps records") {
        val dir = kotlin.io.path.createTempDirectory("crewsafe-open-").toFile()
        try {
            val keys = MemoryKeyStorage()
            val db = File(dir, "crewsafe.db")
            val first = openStore(db, keys)
            assertTrue(first.newKey, "first run makes a key")
            assertEquals(1, keys.saves.get(), "key saves")
            assertEquals(32, keys.loadKey()?.size, "saved key length")
            val sos = first.store.raiseSos(Server.settings().crew(), null, "kept")
            first.store.closeStore(); first.store.close()

            val again = openStore(db, keys)
            assertFalse(again.newKey, "second run reuses the key")
            assertNull(again.setAside)
            assertEquals(sos.id, again.store.getSos(sos.id).id)
            again.store.closeStore(); again.store.close()
            assertEquals(1, keys.saves.get(), "key saves after reopen")
        } finally {
            dir.deleteRecursively()
        }
    }

    test("openStore: with the key lost, WrongKey moves the old files aside (still openable) and starts empty") {
        val dir = kotlin.io.path.createTempDirectory("crewsafe-open-").toFile()
        try {
            val keys = MemoryKeyStorage()
            val db = File(dir, "crewsafe.db")
            val first = openStore(db, keys)
            val oldKey = keys.loadKey()!!
            val sos = first.store.raiseSos(Server.settings().crew(), null, null)
            first.store.closeStore(); first.store.close()

            keys.deleteKey() // e.g. app data restored onto another phone
            val fresh = openStore(db, keys)
            val aside = assertNotNull(fresh.setAside, "files moved aside")
            assertTrue(fresh.newKey)
            assertTrue(aside.exists(), "$aside exists")
            assertEquals(0, fresh.store.listRecords().size, "the new store is empty")
            fresh.store.raiseSos(Server.settings().crew(), null, null) // the SOS button still works
            fresh.store.closeStore(); fresh.store.close()

            val old = CrewStore.open(aside.path, oldKey)
            assertEquals(SosState.ACTIVE, old.getSos(sos.id).state, "old alarm readable with the old key")
            old.closeStore(); old.close()
        } finally {
            dir.deleteRecursively()
        }
    }
}

fun sosTests() {
    test("SOS: released before the hold completes, nothing happens") {
        withHarness { h ->
            val sos = h.controller.sos
            sos.press()
            assertTrue(sos.phase is SosPhase.Holding, "phase ${sos.phase}")
            h.clock.advance(sos.holdMs - 1)
            sos.release()
            assertEquals(SosPhase.Idle, sos.phase)
            h.clock.advance(60_000)
            assertEquals(SosPhase.Idle, sos.phase)
            assertEquals(0, h.store.listRecords().size, "records")
        }
    }

    test("SOS: cancelled inside the window, nothing is stored and dispatch never sees it") {
        withHarness { h ->
            val sos = h.controller.sos
            val phases = mutableListOf<SosPhase>()
            sos.listener = { phases += it }
            sos.press()
            h.clock.advance(sos.holdMs)
            val window = sos.phase as? SosPhase.CancelWindow ?: fail("phase ${sos.phase}")
            assertEquals(h.clock.now + sos.cancelWindowMs, window.raiseAtMs)
            sos.release() // letting go after the hold does not cancel
            assertTrue(sos.phase is SosPhase.CancelWindow)
            h.clock.advance(sos.cancelWindowMs - 1)
            sos.cancel()
            h.clock.advance(60_000)
            assertEquals(SosPhase.Idle, sos.phase)
            assertEquals(listOf("Holding", "CancelWindow", "Idle"), phases.map { it::class.java.simpleName })
            assertEquals(0uL, h.store.pendingCounts().sos)
            assertEquals(0, h.syncRequests.get(), "background sync requests")
            assertEquals(0u, h.controller.syncNow().report().sent, "sent")
            assertFalse(Server.dispatchList().contains(h.controller.settings.crewId), "dispatch lists our crew")
        }
    }

    test("SOS: raised when the window ends, delivered first, acknowledged by dispatch, then cancelled") {
        withHarness { h ->
            val sos = h.controller.sos
            sos.press()
            h.clock.advance(sos.holdMs + sos.cancelWindowMs)
            val raised = (sos.phase as? SosPhase.Raised ?: fail("phase ${sos.phase}")).sos
            assertEquals(h.fix, raised.location, "location from the FixSource")
            assertEquals(h.controller.settings.crew(), raised.crew)
            assertEquals(1, h.syncRequests.get(), "background sync requested")
            assertEquals(SyncState.QUEUED, entry(h.store, raised.id).state)
            sos.press() // an active SOS is not raised twice
            assertTrue(sos.phase is SosPhase.Raised)

            val r = h.controller.syncNow().report()
            assertEquals(SyncOutcome.Complete, r.outcome, "outcome of $r")
            assertEquals(1u, r.accepted)
            assertEquals(SyncState.DELIVERED, entry(h.store, raised.id).state)
            assertTrue(Server.dispatchList().contains(raised.id), "dispatch sees the alarm")

            Server.acknowledge(raised.id)
            h.controller.syncNow().report()
            assertEquals(DispatchStatus.ACKNOWLEDGED, entry(h.store, raised.id).dispatchStatus)
            assertEquals(DispatchStatus.ACKNOWLEDGED, h.controller.records.state.records.first { it.id == raised.id }.dispatchStatus)

            // After a restart the active alarm is shown again.
            val again = SosController(h.store, { h.controller.settings.crew() }, h.clock)
            again.restore()
            assertEquals(raised.id, (again.phase as? SosPhase.Raised)?.sos?.id, "restored phase ${again.phase}")

            assertTrue(sos.cancelRaised(CancelReason.FALSE_ALARM, "pressed by mistake"))
            assertEquals(SosPhase.Idle, sos.phase)
            assertEquals(1uL, h.store.pendingCounts().sos, "the cancellation waits")
            h.controller.syncNow().report()
            val after = h.store.getSos(raised.id)
            assertEquals(SosState.CANCELLED, after.state)
            assertEquals(SyncState.DELIVERED, after.cancellation?.syncState)
            val list = Server.dispatchList()
            assertTrue(list.contains("false_alarm"), "dispatch sees the cancellation: $list")
        }
    }

    test("SOS: raiseNow skips the rest of the window; a bad crew id fails visibly, nothing stored") {
        withHarness(Server.settings().copy(crewId = "")) { h ->
            val sos = h.controller.sos
            sos.press()
            sos.raiseNow()
            val failed = sos.phase as? SosPhase.Failed ?: fail("phase ${sos.phase}")
            assertTrue(failed.reason.contains("crew.crew_id"), failed.reason)
            assertEquals(0, h.store.listRecords().size)
            assertEquals(0, h.clock.pending(), "timers left")
        }
        withHarness { h ->
            val sos = h.controller.sos
            sos.press()
            h.clock.advance(10)
            sos.raiseNow()
            assertTrue(sos.phase is SosPhase.Raised, "phase ${sos.phase}")
            h.clock.advance(60_000)
            assertEquals(1uL, h.store.pendingCounts().sos, "raised exactly once")
        }
    }

    test("SOS: the real ExecutorScheduler runs the hold and the window") {
        withHarness { h ->
            ExecutorScheduler().use { sched ->
                val sos = SosController(h.store, { h.controller.settings.crew() }, sched, holdMs = 50, cancelWindowMs = 100)
                sos.press()
                waitFor("the SOS to be raised", 5) { sos.phase is SosPhase.Raised }
                assertEquals(1uL, h.store.pendingCounts().sos)
            }
        }
    }
}
