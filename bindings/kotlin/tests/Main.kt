// Kotlin (JVM) tests of the uniffi-generated CrewSafe bindings.
//
//   bindings/with-test-server.sh \
//     bash bindings/kotlin/run-tests.sh target/release bindings/kotlin/generated bindings/kotlin/tests
//
// (with-test-server.sh starts the reference server that the sync tests in SyncTests.kt need;
// without it those tests fail.)
// The library must be built with `--features test-hooks` (debugPanic). Every test opens its own
// store in a fresh temp dir and deletes the dir afterwards.

import java.nio.file.Files
import java.time.Duration
import java.time.Instant
import java.util.concurrent.CountDownLatch
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import kz.crewsafe.*

fun main() {
    test("01 open, closeStore, reopen with the same key keeps the data") {
        withStore { t ->
            assertEquals(32, t.key.size, "generateDataKey() length")
            assertFalse(t.key.contentEquals(generateDataKey()), "two generated keys are equal")
            assertTrue(Files.exists(t.path), "db file created at ${t.path}")

            val sos = t.store.raiseSos(crew(), fix(), "kept across reopen")
            val draft = t.store.createDraft(crew(), completeFields())
            val before = t.store.listRecords()
            assertEquals(2, before.size)

            t.reopen()
            assertEquals(before, t.store.listRecords(), "queue view after reopen")
            assertEquals(sos, t.store.getSos(sos.id), "SOS after reopen")
            assertEquals(draft, t.store.getDraft(draft.id), "draft after reopen")
            assertEquals("kept across reopen", t.store.getSos(sos.id).note)
            assertEquals(PendingCounts(sos = 1UL, reports = 0UL, wedged = 0UL, drafts = 1UL), t.store.pendingCounts())
        }
    }

    test("02 wrong key -> WrongKey, 16-byte key -> InvalidKey, file untouched") {
        withStore { t ->
            t.store.raiseSos(crew(), null, null)
            t.store.closeStore()
            t.release()
            val hashBefore = sha256(t.path)

            assertThrows<CrewSafeException.WrongKey> {
                CrewStore.open(t.path.toString(), generateDataKey()).close()
            }
            val short = assertThrows<CrewSafeException.InvalidKey> {
                CrewStore.open(t.path.toString(), ByteArray(16) { 1 }).close()
            }
            assertTrue(short.reason.contains("16"), "InvalidKey reason names the length: ${short.reason}")
            assertThrows<CrewSafeException.InvalidKey> {
                CrewStore.open(t.path.toString(), ByteArray(0)).close()
            }

            assertEquals(hashBefore, sha256(t.path), "SHA-256 of the db file after a wrong-key open")
            val left = Files.list(t.dir).use { s -> s.map { it.fileName.toString() }.sorted().toList() }
            assertEquals(listOf("crewsafe.db"), left, "files after the wrong-key attempt")
            // The right key still opens it, with the data intact.
            t.store = CrewStore.open(t.path.toString(), t.key)
            assertEquals(1UL, t.store.pendingCounts().sos)
        }
    }

    test("03 SOS with fix and note, follow-up location, cancel; second cancel -> InvalidState") {
        withStore { t ->
            val at = fix()
            val sos = t.store.raiseSos(crew(), at, "aggressive relative")
            assertUuidLike(sos.id)
            assertEquals(SosState.ACTIVE, sos.state)
            assertEquals(SyncState.QUEUED, sos.syncState)
            assertEquals(at, sos.location, "location fix round trip (incl. Instant nanos)")
            assertEquals(crew(), sos.crew)
            assertTrue(sos.locationUpdates.isEmpty())
            assertNull(sos.cancellation)

            val upd = t.store.addSosLocation(sos.id, fix(latitude = 51.2))
            assertEquals(sos.id, upd.sosId)
            assertEquals(51.2, upd.location.latitude)
            val cancel = t.store.cancelSos(sos.id, CancelReason.FALSE_ALARM, "pocket press")
            assertEquals(sos.id, cancel.sosId)
            assertEquals(CancelReason.FALSE_ALARM, cancel.reason)

            val got = t.store.getSos(sos.id)
            assertEquals(SosState.CANCELLED, got.state)
            assertEquals(listOf(upd), got.locationUpdates)
            assertEquals(cancel, got.cancellation)
            assertEquals("pocket press", got.cancellation?.note)
            assertEquals("aggressive relative", got.note)
            assertEquals(sos.raisedAt, got.raisedAt)

            assertThrows<CrewSafeException.InvalidState> {
                t.store.cancelSos(sos.id, CancelReason.OTHER, null)
            }
            assertThrows<CrewSafeException.InvalidState> { t.store.addSosLocation(sos.id, fix()) }
            assertEquals(3UL, t.store.pendingCounts().sos, "SOS + follow-up + cancel queued")
        }
    }

    test("04 draft: update, stale revision -> Conflict(2), finalize rules, report") {
        withStore { t ->
            val d = t.store.createDraft(crew(), IncidentFields())
            assertEquals(1UL, d.revision)
            assertUuidLike(d.id)

            val noNarrative = completeFields().copy(narrative = null)
            val saved = t.store.updateDraft(d.id, 1UL, noNarrative)
            assertEquals(2UL, saved.revision)
            assertEquals(d.id, saved.id)

            val conflict = assertThrows<CrewSafeException.Conflict> {
                t.store.updateDraft(d.id, 1UL, IncidentFields())
            }
            assertEquals(2UL, conflict.currentRevision)
            assertEquals(noNarrative, t.store.getDraft(d.id).fields, "the stale write changed nothing")

            val missing = assertThrows<CrewSafeException.InvalidInput> { t.store.finalizeDraft(d.id, 2UL) }
            assertEquals("narrative", missing.field)
            assertEquals(2UL, t.store.getDraft(d.id).revision, "draft kept after refused finalize")
            assertEquals(2UL, assertThrows<CrewSafeException.Conflict> { t.store.finalizeDraft(d.id, 1UL) }.currentRevision)

            val complete = completeFields()
            assertEquals(3UL, t.store.updateDraft(d.id, 2UL, complete).revision)
            val report = t.store.finalizeDraft(d.id, 3UL)
            assertEquals(d.id, report.id)
            assertEquals(SyncState.QUEUED, report.syncState)
            assertEquals(complete, report.fields)
            assertEquals(crew(), report.crew)
            assertEquals(report, t.store.getReport(d.id))
            assertThrows<CrewSafeException.NotFound> { t.store.getDraft(d.id) }
            assertThrows<CrewSafeException.NotFound> { t.store.updateDraft(d.id, 3UL, complete) }
            assertEquals(PendingCounts(sos = 0UL, reports = 1UL, wedged = 0UL, drafts = 0UL), t.store.pendingCounts())
        }
    }

    test("05 listRecords: SOS lane first, then reports, then drafts; pendingCounts") {
        withStore { t ->
            val d = t.store.createDraft(crew(), completeFields())
            val r = t.store.finalizeDraft(d.id, 1UL)
            val s1 = t.store.raiseSos(crew(), null, null)
            val f1 = t.store.addSosLocation(s1.id, fix())
            val d2 = t.store.createDraft(crew(), IncidentFields())

            val list = t.store.listRecords()
            assertEquals(listOf(s1.id, f1.id, r.id, d2.id), list.map { it.id }, "queue order")
            assertEquals(
                listOf(RecordKind.SOS, RecordKind.SOS_LOCATION, RecordKind.INCIDENT_REPORT, RecordKind.INCIDENT_REPORT),
                list.map { it.kind },
            )
            assertEquals(listOf(Lane.SOS, Lane.SOS, Lane.REPORT, null), list.map { it.lane })
            assertEquals(
                listOf(SyncState.QUEUED, SyncState.QUEUED, SyncState.QUEUED, SyncState.DRAFT),
                list.map { it.state },
            )
            assertEquals(s1.id, list[1].parentId)
            assertNull(list[0].parentId)
            val p0 = assertNotNull(list[0].queuePosition)
            val p1 = assertNotNull(list[1].queuePosition)
            assertTrue(p0 < p1, "queue positions $p0 < $p1")
            assertNull(list[3].queuePosition, "drafts have no queue position")
            assertTrue(list.all { it.createdAt != null && it.attempts == 0u })

            assertEquals(PendingCounts(sos = 2UL, reports = 1UL, wedged = 0UL, drafts = 1UL), t.store.pendingCounts())
            assertEquals(listOf(d2.id), t.store.listDrafts().map { it.id })
            t.store.deleteDraft(d2.id)
            assertEquals(0UL, t.store.pendingCounts().drafts)
        }
    }

    test("06 errors are Kotlin exceptions: NotFound, InvalidInput(NaN), Closed after closeStore") {
        withStore { t ->
            val unknown = "00000000-0000-4000-8000-000000000000"
            val nf = assertThrows<CrewSafeException.NotFound> { t.store.getSos(unknown) }
            assertEquals(unknown, nf.id)
            assertThrows<CrewSafeException.NotFound> { t.store.getDraft(unknown) }
            assertThrows<CrewSafeException.NotFound> { t.store.getReport(unknown) }
            assertThrows<CrewSafeException.NotFound> { t.store.updateDraft(unknown, 1UL, IncidentFields()) }
            // A malformed id is bad input, not "not found".
            assertEquals("sos_id", assertThrows<CrewSafeException.InvalidInput> { t.store.getSos("not-a-uuid") }.field)

            val before = t.store.listRecords()
            val nan = assertThrows<CrewSafeException.InvalidInput> {
                t.store.raiseSos(crew(), fix(latitude = Double.NaN), null)
            }
            assertEquals("location.latitude", nan.field)
            assertTrue(nan.message.contains("location.latitude"), "message: ${nan.message}")
            assertEquals(before, t.store.listRecords(), "nothing stored on bad input")
            // All of them are catchable as the one sealed base class (and as kotlin.Exception).
            val base = assertThrows<CrewSafeException> { t.store.raiseSos(crew(), fix(latitude = 91.0), null) }
            assertTrue(base is CrewSafeException.InvalidInput)

            t.store.closeStore()
            assertThrows<CrewSafeException.Closed> { t.store.pendingCounts() }
            assertThrows<CrewSafeException.Closed> { t.store.raiseSos(crew(), null, null) }
            t.store.closeStore() // closing twice is fine
        }
    }

    test("07 two Kotlin threads save at once on one store") {
        withStore { t ->
            val perThread = 25
            val pool = Executors.newFixedThreadPool(2)
            val start = CountDownLatch(1)
            try {
                val futures = (0 until 2).map {
                    pool.submit<Int> {
                        start.await()
                        repeat(perThread) {
                            t.store.raiseSos(crew(), fix(), null)
                            val d = t.store.createDraft(crew(), IncidentFields())
                            t.store.updateDraft(d.id, 1UL, completeFields())
                        }
                        perThread
                    }
                }
                start.countDown()
                // get() rethrows (wrapped in ExecutionException) anything a worker threw.
                val done = futures.sumOf { it.get(120, TimeUnit.SECONDS) }
                assertEquals(2 * perThread, done)
            } finally {
                pool.shutdownNow()
            }
            val c = t.store.pendingCounts()
            assertEquals(50UL, c.sos, "SOS count")
            assertEquals(50UL, c.drafts, "draft count")
            val drafts = t.store.listDrafts()
            assertEquals(50, drafts.size)
            assertTrue(drafts.all { it.revision == 2UL }, "every draft saved exactly once more")
            assertEquals(100, t.store.listRecords().size)
        }
    }

    test("08 a Rust panic surfaces as InternalException and the store keeps working") {
        withStore { t ->
            t.store.raiseSos(crew(), null, null)
            val e = assertThrows<InternalException> { t.store.debugPanic() }
            assertTrue(e.message!!.contains("deliberate test panic"), "panic message: ${e.message}")
            assertFalse((e as Throwable) is CrewSafeException, "a panic is not a CrewSafeException")
            // Same store object, same (poisoned, then recovered) lock.
            val sos = t.store.raiseSos(crew(), fix(), "after the panic")
            assertEquals(SosState.ACTIVE, sos.state)
            assertEquals(2UL, t.store.pendingCounts().sos)
            assertEquals(sos, t.store.getSos(sos.id))
            // It also survives a second panic.
            assertThrows<InternalException> { t.store.debugPanic() }
            assertEquals(2UL, t.store.pendingCounts().sos)
        }
    }

    test("09 destroy(\"DESTROY\") deletes db, -wal, -shm; wrong confirmation -> InvalidInput") {
        withStore { t ->
            t.store.raiseSos(crew(), null, null)
            assertTrue(Files.exists(t.path), "db file exists")
            assertTrue(Files.exists(t.companion("-wal")), "-wal exists while open (WAL mode)")
            assertTrue(Files.exists(t.companion("-shm")), "-shm exists while open")

            val wrong = assertThrows<CrewSafeException.InvalidInput> { t.store.destroyStore("yes") }
            assertEquals("confirmation", wrong.field)
            assertThrows<CrewSafeException.InvalidInput> { t.store.destroyStore("destroy") }
            assertTrue(Files.exists(t.path), "db kept after a wrong confirmation")
            assertEquals(1UL, t.store.pendingCounts().sos, "store still open after a wrong confirmation")

            t.store.destroyStore("DESTROY")
            for (suffix in listOf("", "-wal", "-shm", "-journal")) {
                assertFalse(Files.exists(t.companion(suffix)), "crewsafe.db$suffix still exists")
            }
            assertThrows<CrewSafeException.Closed> { t.store.pendingCounts() }
            assertThrows<CrewSafeException.Closed> { t.store.destroyStore("DESTROY") }
            // A new store can be created at the same path, empty.
            CrewStore.open(t.path.toString(), generateDataKey()).use { fresh ->
                assertEquals(PendingCounts(0UL, 0UL, 0UL, 0UL), fresh.pendingCounts())
                fresh.closeStore()
            }
        }
    }

    test("10 times are java.time.Instant close to now") {
        withStore { t ->
            val before = Instant.now()
            val sos = t.store.raiseSos(crew(), null, null)
            val after = Instant.now()
            val raised: Instant = sos.raisedAt
            val slack = Duration.ofSeconds(5)
            assertTrue(
                !raised.isBefore(before.minus(slack)) && !raised.isAfter(after.plus(slack)),
                "raisedAt $raised not within [$before, $after] +- $slack",
            )
            assertNear(Instant.now(), raised, slack, "raisedAt")
            val d = t.store.createDraft(crew(), IncidentFields())
            assertNear(Instant.now(), d.createdAt, slack, "draft createdAt")
            val e = t.store.listRecords().first { it.id == sos.id }
            assertEquals(raised, e.createdAt, "queue entry createdAt is raisedAt")
            // An Instant handed in comes back unchanged, nanoseconds included.
            val odd = Instant.parse("2024-02-29T23:59:59.123456789Z")
            val saved = t.store.updateDraft(d.id, 1UL, IncidentFields(occurredAt = odd))
            assertEquals(odd, t.store.getDraft(saved.id).fields.occurredAt)
            // Times before 2000 are refused.
            val old = assertThrows<CrewSafeException.InvalidInput> {
                t.store.raiseSos(crew(), fix().copy(fixedAt = Instant.ofEpochSecond(10)), null)
            }
            assertEquals("location.fixed_at", old.field)
        }
    }

    test("11 after AutoCloseable.close() calls throw IllegalStateException, not CrewSafeException") {
        withTempDir { dir ->
            val path = dir.resolve("crewsafe.db").toString()
            val key = generateDataKey()
            val store = CrewStore.open(path, key)
            store.use { it.raiseSos(crew(), null, null) }
            assertTrue(store.uniffiIsDestroyed)
            assertThrows<IllegalStateException> { store.pendingCounts() }
            // Freeing the handle without closeStore() still closes the database (Rust Drop):
            // the file reopens with the same key and the SOS is there.
            System.gc()
            CrewStore.open(path, key).use { again ->
                assertEquals(1UL, again.pendingCounts().sos)
                again.closeStore()
            }
        }
    }

    test("12 rekey: InvalidKey for a short key, then only the new key opens the store") {
        withStore { t ->
            val sos = t.store.raiseSos(crew(), fix(), "note")
            val d = t.store.createDraft(crew(), completeFields())
            val before = t.store.listRecords()
            assertThrows<CrewSafeException.InvalidKey> { t.store.rekey(ByteArray(3)) }
            val newKey = generateDataKey()
            t.store.rekey(newKey)
            assertEquals(before, t.store.listRecords())
            t.store.closeStore()
            t.release()
            assertThrows<CrewSafeException.WrongKey> { CrewStore.open(t.path.toString(), t.key).close() }
            t.key = newKey
            t.store = CrewStore.open(t.path.toString(), t.key)
            assertEquals(sos, t.store.getSos(sos.id))
            assertEquals(d, t.store.getDraft(d.id))
        }
    }

    test("13 text limits count Unicode scalar values, not UTF-16 units; NUL refused") {
        withStore { t ->
            // U+1F691 AMBULANCE is one scalar value but two UTF-16 chars in Kotlin.
            val ambulance = "\uD83D\uDE91"
            val crew64 = crew().copy(crewId = ambulance.repeat(64))
            assertEquals(128, crew64.crewId.length)
            val sos = t.store.raiseSos(crew64, null, "ж".repeat(500))
            assertEquals(crew64.crewId, t.store.getSos(sos.id).crew.crewId, "non-BMP text round trip")
            assertEquals("crew.crew_id", assertThrows<CrewSafeException.InvalidInput> {
                t.store.raiseSos(crew().copy(crewId = ambulance.repeat(65)), null, null)
            }.field)
            assertEquals("note", assertThrows<CrewSafeException.InvalidInput> {
                t.store.raiseSos(crew(), null, "x".repeat(501))
            }.field)
            assertEquals("note", assertThrows<CrewSafeException.InvalidInput> {
                t.store.raiseSos(crew(), null, "a\u0000b")
            }.field)
            assertEquals("crew.device_id", assertThrows<CrewSafeException.InvalidInput> {
                t.store.raiseSos(crew().copy(deviceId = "  "), null, null)
            }.field)
            assertEquals(1UL, t.store.pendingCounts().sos)
        }
    }

    test("13b listRecordsPage walks the same records as listRecords, in both orders; bad limit -> InvalidInput") {
        withStore { t ->
            repeat(7) {
                val sos = t.store.raiseSos(crew(), fix(), null)
                t.store.addSosLocation(sos.id, fix())
                val d = t.store.createDraft(crew(), completeFields())
                t.store.finalizeDraft(d.id, d.revision)
            }
            val all = t.store.listRecords().filter { it.state != SyncState.DRAFT }
            fun walk(order: RecordOrder, kinds: List<RecordKind> = emptyList()): List<QueueEntry> {
                val out = mutableListOf<QueueEntry>()
                var after: String? = null
                do {
                    val page = t.store.listRecordsPage(RecordPageRequest(order = order, limit = 4u, kinds = kinds, after = after))
                    assertTrue(page.entries.size <= 4, "page size ${page.entries.size}")
                    out += page.entries
                    after = page.nextCursor
                } while (after != null)
                return out
            }
            assertEquals(all, walk(RecordOrder.UPLOAD), "upload order")
            assertEquals(all.sortedByDescending { it.queuePosition }.map { it.id }, walk(RecordOrder.NEWEST_FIRST).map { it.id }, "newest first")
            assertEquals(7, walk(RecordOrder.UPLOAD, listOf(RecordKind.INCIDENT_REPORT)).size, "reports only")
            assertEquals("limit", assertThrows<CrewSafeException.InvalidInput> {
                t.store.listRecordsPage(RecordPageRequest(order = RecordOrder.UPLOAD, limit = 0u))
            }.field)
        }
    }

    test("13c panic button: raiseSosQuick and raiseSosNow raise for the crew of setCrew; before it -> InvalidState") {
        withStore { t ->
            // No store in this process was given a crew yet (the tests run one at a time).
            assertThrows<CrewSafeException.InvalidState> { t.store.raiseSosQuick(51.1, 71.4, 5.0, 0L) }
            t.store.setCrew(crew())
            val at = Instant.now().minusSeconds(5).toEpochMilli()
            val id = t.store.raiseSosQuick(51.1694, 71.4491, 6.5, at)
            val quick = t.store.getSos(id)
            assertEquals(crew(), quick.crew)
            assertEquals(LocationProvider.FUSED, quick.location!!.provider)
            assertEquals(at, quick.location!!.fixedAt.toEpochMilli())
            raiseSosNow(Double.NaN, 0.0, 0.0, 0L)
            assertEquals(2UL, t.store.pendingCounts().sos)
            val newest = t.store.listRecordsPage(RecordPageRequest(order = RecordOrder.NEWEST_FIRST, limit = 1u)).entries.single()
            val now = t.store.getSos(newest.id)
            assertEquals(crew(), now.crew)
            assertEquals(null, now.location, "NaN latitude: no fix")
            assertEquals("location.latitude", assertThrows<CrewSafeException.InvalidInput> {
                raiseSosNow(95.0, 0.0, 5.0, at)
            }.field)
            t.store.closeStore()
            assertThrows<CrewSafeException.Closed> { raiseSosNow(51.1, 71.4, 5.0, at) }
        }
    }

    syncTests() // SyncTests.kt: against the server of bindings/with-test-server.sh
    callbackTests() // CallbackTests.kt: callbacks that call back into the store (same server)

    finishTests()
}
