import java.time.Duration
import java.time.Instant
import kz.crewsafe.*
import kz.crewsafe.sample.core.*

fun draftTests() {
    test("draft: autosave after the pause, revisions, a merge with another screen, finalize rules, delivery") {
        withHarness { h ->
            val ed = h.controller.newDraftEditor()
            assertFalse(ed.resumeLatest(), "no draft to resume")
            ed.edit { it.copy(narrative = "The patient's son attacked the paramedic.") }
            h.clock.advance(ed.autosaveMs / 2)
            ed.edit { it.copy(address = "Abai ave 10") }
            h.clock.advance(ed.autosaveMs - 1)
            assertEquals(0, h.store.listDrafts().size, "saved before the pause ended")
            assertTrue(ed.state.dirty)
            h.clock.advance(1)
            val id = assertNotNull(ed.state.draftId, "draft created by the autosave")
            assertEquals(1uL, ed.state.revision)
            assertFalse(ed.state.dirty)
            assertEquals("Abai ave 10", h.store.getDraft(id).fields.address)

            ed.edit { it.copy(kind = IncidentKind.PHYSICAL_ASSAULT) }
            h.clock.advance(ed.autosaveMs)
            assertEquals(2uL, ed.state.revision)

            // Another screen saves the severity meanwhile...
            val other = h.store.getDraft(id)
            h.store.updateDraft(id, other.revision, other.fields.copy(severity = Severity.SERIOUS, address = "Abai ave 12"))
            // ...while this one edits the address and sets the police flag.
            ed.edit { it.copy(policeCalled = true, address = "Abai ave 10, 2nd floor") }
            h.clock.advance(ed.autosaveMs)
            assertEquals(4uL, ed.state.revision, "saved on top of revision 3")
            assertEquals(1, ed.state.conflictsMerged)
            val stored = h.store.getDraft(id).fields
            assertEquals(ed.state.fields, stored, "editor shows what is stored")
            assertEquals(Severity.SERIOUS, stored.severity, "their change kept")
            assertEquals(true, stored.policeCalled, "my change kept")
            assertEquals("Abai ave 10, 2nd floor", stored.address, "a field both changed: mine wins")
            assertEquals(IncidentKind.PHYSICAL_ASSAULT, stored.kind)

            assertNull(ed.finalizeReport())
            assertEquals("occurred_at", ed.state.fieldError?.field, "first missing field")
            ed.edit { it.copy(occurredAt = Instant.now().minus(Duration.ofMinutes(20))) }
            assertNull(ed.finalizeReport())
            assertEquals("staff_harmed", ed.state.fieldError?.field, "an assault needs harmed staff")
            ed.edit { it.copy(staffHarmed = listOf(HarmedStaff(StaffRole.PARAMEDIC, null, "bruised arm"))) }
            val report = assertNotNull(ed.finalizeReport(), "finalized; state ${ed.state}")
            assertEquals(id, report.id)
            assertEquals(0, h.clock.pending(), "no autosave left after finalizing")
            assertEquals(PendingCounts(0uL, 1uL, 0uL, 0uL), h.store.pendingCounts())
            assertEquals(1, h.syncRequests.get(), "background sync requested")
            ed.edit { it.copy(narrative = "too late") }
            assertEquals(report.fields.narrative, ed.state.fields.narrative, "edits after finalizing are ignored")

            val r = h.controller.syncNow().report()
            assertEquals(1u, r.accepted)
            assertEquals(SyncState.DELIVERED, h.store.getReport(id).syncState)
        }
    }

    test("draft: a second editor resumes it; finalizing a version the user has not seen sends nothing") {
        withHarness { h ->
            val first = h.controller.newDraftEditor()
            first.edit { it.copy(narrative = "draft one") }
            assertTrue(first.saveNow())
            val second = h.controller.newDraftEditor()
            assertTrue(second.resumeLatest())
            assertEquals(first.state.draftId, second.state.draftId)
            assertEquals(first.state.fields, second.state.fields)
            second.edit {
                it.copy(occurredAt = Instant.now(), address = "Kenesary 40", kind = IncidentKind.THREAT,
                    severity = Severity.MODERATE, policeCalled = false, narrative = "complete now")
            }
            assertTrue(second.saveNow())

            assertNull(first.finalizeReport(), "finalize on a stale revision")
            assertNotNull(first.state.error, "the user is told")
            assertEquals(second.state.fields, first.state.fields, "their version is loaded")
            assertEquals(PendingCounts(0uL, 0uL, 0uL, 1uL), h.store.pendingCounts(), "still a draft")
            assertNotNull(first.finalizeReport(), "after a look, send: ${first.state}")
            assertEquals(1uL, h.store.pendingCounts().reports)
        }
    }

    test("draft: a field that is too long is reported and nothing is saved; discard deletes the draft") {
        withHarness { h ->
            val ed = h.controller.newDraftEditor()
            ed.edit { it.copy(narrative = "ok") }
            assertTrue(ed.saveNow())
            ed.edit { it.copy(address = "x".repeat(501)) }
            assertFalse(ed.saveNow())
            assertEquals("address", ed.state.fieldError?.field)
            assertTrue(ed.state.dirty, "the edit is kept for the user to fix")
            assertEquals(1uL, h.store.getDraft(ed.state.draftId!!).revision)
            ed.discard()
            assertEquals(0, h.store.listDrafts().size)
            assertNull(ed.state.draftId)
        }
    }

    test("merge: unchanged fields take the other side, changed fields keep mine") {
        val base = IncidentFields(narrative = "a", address = "x")
        val mine = base.copy(narrative = "b")
        val theirs = base.copy(address = "y", severity = Severity.LOW)
        assertEquals(IncidentFields(narrative = "b", address = "y", severity = Severity.LOW), merge(base, mine, theirs))
        assertEquals(theirs, merge(base, base, theirs))
        assertEquals(mine, merge(base, mine, base))
    }
}

fun syncTests() {
    test("network: the connectivity callback sets the store online and its worker delivers without syncNow") {
        withHarness { h ->
            val c = h.controller
            val states = java.util.concurrent.CopyOnWriteArrayList<RecordsState>()
            c.records.listener = { states += it }
            c.start()
            c.sos.press(); c.sos.raiseNow()
            val id = (c.sos.phase as SosPhase.Raised).sos.id
            assertEquals(1uL, c.records.state.counts.sos, "pending SOS count shown")
            assertEquals(SyncState.QUEUED, c.records.state.records.single { it.id == id }.state)
            Thread.sleep(300)
            assertEquals(SyncState.QUEUED, entry(h.store, id).state, "offline: nothing sent")

            val requests = h.syncRequests.get()
            h.network.set(true)
            h.network.set(true) // platforms repeat themselves; only changes count
            assertTrue(c.records.state.online)
            assertEquals(requests + 1, h.syncRequests.get(), "background job requested when online")
            waitFor("delivery by the background worker") {
                c.records.state.records.any { it.id == id && it.state == SyncState.DELIVERED }
            }
            waitFor("pending counts to reach 0") { c.records.state.counts.sos == 0uL }
            val seen = states.flatMap { s -> s.records.filter { it.id == id }.map { it.state } }.distinct()
            assertEquals(listOf(SyncState.QUEUED, SyncState.SENDING, SyncState.DELIVERED), seen, "states seen by the list")
            h.network.set(false)
            assertFalse(c.records.state.online)
        }
    }

    test("settings: http to 10.0.2.2 is refused; missing and wrong tokens need attention; records wait") {
        withHarness(Server.settings().copy(serverUrl = "http://10.0.2.2:8080")) { h ->
            val c = h.controller
            assertTrue(c.settingsProblem?.contains("server_url") == true, "problem: ${c.settingsProblem}")
            c.sos.press(); c.sos.raiseNow()
            val notConfigured = c.syncNow() as? SyncResult.NeedsAttention ?: fail("synced without a server")
            assertTrue(notConfigured.message.contains("server address"), notConfigured.message)

            assertNull(c.applySettings(c.settings.copy(serverUrl = Server.url, deviceToken = "")))
            val noToken = c.syncNow() as? SyncResult.NeedsAttention ?: fail("synced without a token")
            assertTrue(noToken.message.contains("no device token"), noToken.message)

            assertNull(c.applySettings(c.settings.copy(deviceToken = "not-the-token")))
            val refused = c.syncNow() as? SyncResult.NeedsAttention ?: fail("a wrong token was accepted")
            assertTrue(refused.message.contains("enroll"), refused.message)
            assertEquals(refused.message, c.records.state.problem)
            assertEquals(1uL, h.store.pendingCounts().sos, "the SOS still waits")

            assertNull(c.applySettings(c.settings.copy(deviceToken = Server.deviceToken)))
            assertEquals(1u, c.syncNow().report().accepted)
            assertNull(c.records.state.problem)
            assertEquals(0uL, c.records.state.counts.sos)
        }
    }
}
