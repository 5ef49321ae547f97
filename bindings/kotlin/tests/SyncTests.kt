// Sync tests of the Kotlin bindings against the reference server. Run the suite through
//
//   bindings/with-test-server.sh bash bindings/kotlin/run-tests.sh \
//       target/release bindings/kotlin/generated bindings/kotlin/tests
//
// which starts crewsafe-server (test faults on) and exports CREWSAFE_TEST_SERVER_URL,
// CREWSAFE_TEST_DEVICE_ID, CREWSAFE_TEST_DEVICE_TOKEN and CREWSAFE_TEST_DISPATCHER_TOKEN.
// Without them the server tests FAIL (they do not skip). All tests share one server, so they
// assert per record (fresh UUIDs), never global server counts; a test that sets faults clears
// them again (DELETE /test/faults) whatever happens.

import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.time.Duration
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kz.crewsafe.*

/** The server started by bindings/with-test-server.sh, and plain-HTTP access to it. */
class TestServer(
    val url: String,
    val deviceId: String,
    val deviceToken: String,
    val dispatcherToken: String,
) {
    private val http: HttpClient = HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5))
        .build()

    /** Sends a request; returns the status and the body. */
    fun call(method: String, path: String, json: String? = null, token: String? = null): Pair<Int, String> {
        val b = HttpRequest.newBuilder(URI.create(url.trimEnd('/') + path)).timeout(Duration.ofSeconds(10))
        if (json != null) b.header("Content-Type", "application/json")
        if (token != null) b.header("Authorization", "Bearer $token")
        b.method(method, json?.let { HttpRequest.BodyPublishers.ofString(it) } ?: HttpRequest.BodyPublishers.noBody())
        val r = http.send(b.build(), HttpResponse.BodyHandlers.ofString())
        return r.statusCode() to r.body()
    }

    private fun ok(method: String, path: String, json: String? = null, token: String? = null): String {
        val (status, body) = call(method, path, json, token)
        assertEquals(200, status, "$method $path answered $body")
        return body
    }

    /** POST /test/faults with a JSON list of faults (TestFault, tag "fault", snake_case). */
    fun addFaults(jsonList: String) = ok("POST", "/test/faults", jsonList)

    fun clearFaults() = ok("DELETE", "/test/faults")

    /** Runs [body] and clears the server's faults afterwards, pass or fail. */
    fun <T> withFaults(jsonList: String, body: () -> T): T {
        clearFaults()
        addFaults(jsonList)
        try {
            return body()
        } finally {
            clearFaults()
        }
    }

    /** A dispatcher acknowledges (or resolves) an SOS, with an optional message to the crew. */
    fun dispatch(sosId: String, action: String, message: String? = null) =
        ok(
            "POST", "/v1/dispatch/sos/$sosId/$action",
            json = message?.let { "{\"message\": \"$it\"}" }, token = dispatcherToken,
        )

    /** The sample crew, on the device the server enrolled. */
    fun crew() = CrewIdentity(deviceId = deviceId, crewId = "astana-brigade-12", staffId = "staff-77")

    fun config() = SyncConfig(serverUrl = url)
}

/** The test server from the environment; fails the test (no skip) when it is missing. */
fun testServer(): TestServer {
    fun env(name: String): String = System.getenv(name)?.takeIf { it.isNotBlank() } ?: fail(
        "$name is not set: the sync tests need the reference server. Run the suite through " +
            "bindings/with-test-server.sh, e.g. bindings/with-test-server.sh bash bindings/kotlin/run-tests.sh " +
            "target/release bindings/kotlin/generated bindings/kotlin/tests"
    )
    return TestServer(
        url = env("CREWSAFE_TEST_SERVER_URL"),
        deviceId = env("CREWSAFE_TEST_DEVICE_ID"),
        deviceToken = env("CREWSAFE_TEST_DEVICE_TOKEN"),
        dispatcherToken = env("CREWSAFE_TEST_DISPATCHER_TOKEN"),
    )
}

/** A Kotlin TokenProvider that counts its calls. */
class CountingTokens(
    @Volatile var current: String,
    @Volatile var refreshed: String,
    private val failure: (() -> Exception)? = null,
) : TokenProvider {
    val tokenCalls = AtomicInteger()
    val refreshCalls = AtomicInteger()

    override fun token(): String {
        tokenCalls.incrementAndGet()
        failure?.let { throw it() }
        return current
    }

    override fun refreshToken(): String {
        refreshCalls.incrementAndGet()
        return refreshed
    }
}

/** Records every callback (and the thread it came on); optionally throws after recording. */
class Recorder(private val failure: (() -> Exception)? = null) : RecordListener, SyncListener {
    val changes = CopyOnWriteArrayList<RecordChange>()
    val changeThreads = CopyOnWriteArrayList<String>()
    val progress = CopyOnWriteArrayList<SyncProgress>()
    val progressThreads = CopyOnWriteArrayList<String>()
    /** Counted down on every record change. */
    @Volatile var onChange: ((RecordChange) -> Unit)? = null

    override fun onRecordChanged(change: RecordChange) {
        changes += change
        changeThreads += Thread.currentThread().name
        onChange?.invoke(change)
        failure?.let { throw it() }
    }

    override fun onSyncProgress(progress: SyncProgress) {
        this.progress += progress
        progressThreads += Thread.currentThread().name
        failure?.let { throw it() }
    }

    fun statesOf(id: String) = changes.filter { it.id == id }.map { it.state }
}

/** A fresh store with sync configured against [server]; the worker is shut down afterwards. */
fun <T> withSyncStore(
    server: TestServer,
    tokens: TokenProvider = CountingTokens(server.deviceToken, server.deviceToken),
    config: SyncConfig = server.config(),
    body: (TestStore) -> T,
): T = withStore { t ->
    t.store.configureSync(config, tokens)
    try {
        body(t)
    } finally {
        t.store.shutdown()
    }
}

fun QueueEntry.describe() = "$id $kind $state attempts=$attempts reason=$wedgedReason"

fun entry(store: CrewStore, id: String): QueueEntry =
    store.listRecords().firstOrNull { it.id == id } ?: fail("record $id not in listRecords()")

fun syncTests() {
    test("14 sync: SOS + follow-up + finalized report delivered by syncNow with a Kotlin TokenProvider") {
        val server = testServer()
        val tokens = CountingTokens(server.deviceToken, server.deviceToken)
        withSyncStore(server, tokens) { t ->
            val sos = t.store.raiseSos(server.crew(), fix(), "help")
            val upd = t.store.addSosLocation(sos.id, fix(latitude = 51.2))
            val draft = t.store.createDraft(server.crew(), completeFields())
            val report = t.store.finalizeDraft(draft.id, 1UL)
            assertEquals(PendingCounts(sos = 2UL, reports = 1UL, wedged = 0UL, drafts = 0UL), t.store.pendingCounts())

            val r = t.store.syncNow()
            assertEquals(SyncOutcome.Complete, r.outcome, "outcome of $r")
            assertEquals(3u, r.accepted, "accepted in $r")
            assertEquals(3u, r.sent, "sent in $r")
            assertEquals(0u, r.duplicates, "duplicates in $r")
            assertEquals(0u, r.wedged, "wedged in $r")
            assertEquals(0UL, r.pendingSos, "pendingSos in $r")
            assertEquals(0UL, r.pendingReports, "pendingReports in $r")
            assertNull(r.nextAttemptAt, "nextAttemptAt")
            assertEquals(1, tokens.tokenCalls.get(), "token() calls")
            assertEquals(0, tokens.refreshCalls.get(), "refreshToken() calls")

            val list = t.store.listRecords()
            assertEquals(listOf(sos.id, upd.id, report.id), list.map { it.id }, "records")
            for (e in list) {
                assertEquals(SyncState.DELIVERED, e.state, e.describe())
                assertNull(e.wedgedReason, e.describe())
                assertEquals(1u, e.attempts, e.describe())
            }
            assertEquals(PendingCounts(sos = 0UL, reports = 0UL, wedged = 0UL, drafts = 0UL), t.store.pendingCounts())
            val got = t.store.getSos(sos.id)
            assertEquals(SyncState.DELIVERED, got.syncState)
            assertEquals(DispatchStatus.DELIVERED, got.dispatchStatus)
            assertEquals(SyncState.DELIVERED, t.store.getReport(report.id).syncState)

            // Nothing left: a second sync sends nothing.
            val again = t.store.syncNow()
            assertEquals(SyncOutcome.Complete, again.outcome)
            assertEquals(0u, again.sent, "sent by the second sync")
        }
    }

    test("15 sync: Kotlin listeners see Queued -> Sending -> Delivered and Started..Finished; a throwing listener does not break the sync; cancel() stops callbacks") {
        val server = testServer()
        withSyncStore(server) { t ->
            val good = Recorder()
            val throwsHostError = Recorder { HostException.Failed("listener bug (HostException)") }
            val throwsRuntime = Recorder { IllegalStateException("listener bug (IllegalStateException)") }
            val subs = listOf(
                t.store.subscribeRecords(good),
                t.store.subscribeSync(good),
                t.store.subscribeRecords(throwsHostError),
                t.store.subscribeSync(throwsHostError),
                t.store.subscribeRecords(throwsRuntime),
                t.store.subscribeSync(throwsRuntime),
            )
            val sos = t.store.raiseSos(server.crew(), null, null)
            // Called synchronously on the saving thread, before raiseSos returns.
            assertEquals(listOf(SyncState.QUEUED), good.statesOf(sos.id), "after raiseSos")
            assertEquals(Thread.currentThread().name, good.changeThreads.single(), "thread of the Queued callback")

            val r = t.store.syncNow()
            assertEquals(SyncOutcome.Complete, r.outcome, "a throwing listener broke the sync: $r")
            assertEquals(1u, r.accepted)
            assertEquals(SyncState.DELIVERED, entry(t.store, sos.id).state)

            assertEquals(listOf(SyncState.QUEUED, SyncState.SENDING, SyncState.DELIVERED), good.statesOf(sos.id), "record states")
            val delivered = good.changes.last { it.id == sos.id }
            assertEquals(RecordKind.SOS, delivered.kind)
            assertEquals(DispatchStatus.DELIVERED, delivered.dispatchStatus, "the Delivered change carries the dispatch status")
            val phases = good.progress.map { it.phase }
            assertEquals(SyncPhase.STARTED, phases.first(), "phases $phases")
            assertEquals(SyncPhase.FINISHED, phases.last(), "phases $phases")
            assertTrue(SyncPhase.UPLOADED in phases, "an Uploaded phase in $phases")
            assertEquals(Lane.SOS, good.progress.first { it.phase == SyncPhase.UPLOADED }.lane)
            val last = good.progress.last()
            assertEquals(1u, last.sent, "sent in $last")
            assertEquals(1u, last.delivered, "delivered in $last")
            assertEquals(0u, last.wedged, "wedged in $last")
            assertTrue(good.progressThreads.all { it == Thread.currentThread().name }, "progress threads ${good.progressThreads}")
            // The throwing listeners were called just as often (and kept being called).
            for (bad in listOf(throwsHostError, throwsRuntime)) {
                assertEquals(good.changes.toList(), bad.changes.toList(), "changes seen by a throwing listener")
                assertEquals(good.progress.toList(), bad.progress.toList(), "progress seen by a throwing listener")
            }

            // Cancelled subscriptions hear nothing more; cancelling twice is harmless.
            subs.forEach { it.cancel() }
            subs.forEach { it.cancel() }
            val seen = good.changes.size to good.progress.size
            val later = t.store.raiseSos(server.crew(), null, null)
            assertEquals(1u, t.store.syncNow().accepted)
            assertEquals(SyncState.DELIVERED, entry(t.store, later.id).state)
            assertEquals(seen, good.changes.size to good.progress.size, "callbacks after cancel()")
            assertEquals(seen, throwsRuntime.changes.size to throwsRuntime.progress.size, "callbacks after cancel()")
            subs.forEach { it.close() }
        }
    }

    test("16 sync: the background worker delivers after setOnline(true), calling listeners on its own thread") {
        val server = testServer()
        withSyncStore(server) { t ->
            val rec = Recorder()
            val sub = t.store.subscribeRecords(rec)
            val latch = CountDownLatch(1)
            val sos = t.store.raiseSos(server.crew(), null, null) // queued while "offline"
            rec.onChange = { if (it.id == sos.id && it.state == SyncState.DELIVERED) latch.countDown() }
            Thread.sleep(200)
            assertEquals(listOf(SyncState.QUEUED), rec.statesOf(sos.id), "nothing sent before setOnline(true)")
            t.store.setOnline(true)
            assertTrue(latch.await(15, TimeUnit.SECONDS), "worker did not deliver: ${rec.statesOf(sos.id)}")
            assertEquals(listOf(SyncState.QUEUED, SyncState.SENDING, SyncState.DELIVERED), rec.statesOf(sos.id))
            val me = Thread.currentThread().name
            val workerThreads = rec.changeThreads.drop(1).toSet()
            assertFalse(me in workerThreads, "worker callbacks came on the test thread ($me): $workerThreads")
            t.store.shutdown()
            sub.cancel()
        }
    }

    test("17 sync: a stale token is refreshed once and the sync succeeds; two bad tokens -> Unauthorized") {
        val server = testServer()
        val stale = CountingTokens(current = "stale-token", refreshed = server.deviceToken)
        withSyncStore(server, stale) { t ->
            val sos = t.store.raiseSos(server.crew(), fix(), null)
            val r = t.store.syncNow()
            assertEquals(SyncOutcome.Complete, r.outcome, "outcome of $r")
            assertEquals(1u, r.accepted)
            assertEquals(1, stale.tokenCalls.get(), "token() calls")
            assertEquals(1, stale.refreshCalls.get(), "refreshToken() calls")
            assertEquals(SyncState.DELIVERED, entry(t.store, sos.id).state)
        }

        val bad = CountingTokens(current = "stale-token", refreshed = "also-bad")
        withSyncStore(server, bad) { t ->
            val sos = t.store.raiseSos(server.crew(), fix(), null)
            val d = t.store.createDraft(server.crew(), completeFields())
            val report = t.store.finalizeDraft(d.id, 1UL)
            assertThrows<CrewSafeException.Unauthorized> { t.store.syncNow() }
            assertEquals(1, bad.tokenCalls.get(), "token() calls")
            assertEquals(1, bad.refreshCalls.get(), "refreshToken() is called at most once per sync")
            for (id in listOf(sos.id, report.id)) {
                assertEquals(SyncState.QUEUED, entry(t.store, id).state, "nothing lost")
            }
            assertEquals(PendingCounts(sos = 1UL, reports = 1UL, wedged = 0UL, drafts = 0UL), t.store.pendingCounts())
            // The host fixes its token source: the next sync delivers.
            bad.current = server.deviceToken
            assertEquals(2u, t.store.syncNow().accepted)
        }
    }

    test("18 sync: a TokenProvider that throws -> HostFailed (HostException carries its reason, any other exception its stack trace)") {
        val server = testServer()
        val locked = CountingTokens(server.deviceToken, server.deviceToken) { HostException.Failed("keystore locked") }
        withSyncStore(server, locked) { t ->
            val sos = t.store.raiseSos(server.crew(), null, null)
            val e = assertThrows<CrewSafeException.HostFailed> { t.store.syncNow() }
            assertTrue(e.reason.contains("keystore locked"), "reason: ${e.reason}")
            assertEquals(SyncState.QUEUED, entry(t.store, sos.id).state)
        }
        val buggy = CountingTokens(server.deviceToken, server.deviceToken) { IllegalStateException("token bug") }
        withSyncStore(server, buggy) { t ->
            t.store.raiseSos(server.crew(), null, null)
            val e = assertThrows<CrewSafeException.HostFailed> { t.store.syncNow() }
            assertTrue(
                e.reason.contains("java.lang.IllegalStateException: token bug"),
                "reason: ${e.reason.take(300)}",
            )
            assertEquals(1UL, t.store.pendingCounts().sos)
        }
    }

    test("19 sync: a poison record (reject_id fault) ends Wedged with a reason, the others are delivered; retryWedged delivers it") {
        val server = testServer()
        withSyncStore(server) { t ->
            val sos = t.store.raiseSos(server.crew(), fix(), null)
            val upd = t.store.addSosLocation(sos.id, fix())
            val reports = (0 until 3).map {
                val d = t.store.createDraft(server.crew(), completeFields())
                t.store.finalizeDraft(d.id, 1UL).id
            }
            val poison = reports[1]
            val rec = Recorder()
            t.store.subscribeRecords(rec)
            server.withFaults("""[{"fault":"reject_id","id":"$poison"}]""") {
                val r = t.store.syncNow()
                assertEquals(SyncOutcome.Complete, r.outcome, "outcome of $r")
                assertEquals(4u, r.accepted, "accepted in $r")
                assertEquals(1u, r.wedged, "wedged in $r")
                val e = entry(t.store, poison)
                assertEquals(SyncState.WEDGED, e.state, e.describe())
                val reason = assertNotNull(e.wedgedReason, "wedgedReason")
                assertTrue(reason.contains("poison"), "wedged reason: $reason")
                for (id in listOf(sos.id, upd.id, reports[0], reports[2])) {
                    assertEquals(SyncState.DELIVERED, entry(t.store, id).state, "record $id")
                }
                assertEquals(PendingCounts(sos = 0UL, reports = 0UL, wedged = 1UL, drafts = 0UL), t.store.pendingCounts())
                assertEquals(SyncState.WEDGED, rec.statesOf(poison).last(), "listener saw the wedge")
                // Still poisoned: a retry wedges it again.
                t.store.retryWedged(poison)
                assertEquals(1u, t.store.syncNow().wedged)
                assertEquals(SyncState.WEDGED, entry(t.store, poison).state)
            }
            // Fixed on the server (faults cleared): retry it.
            t.store.retryWedged(poison)
            val queued = entry(t.store, poison)
            assertEquals(SyncState.QUEUED, queued.state, queued.describe())
            assertNull(queued.wedgedReason)
            assertEquals(0u, queued.attempts, "attempts reset by retryWedged")
            assertEquals(SyncState.QUEUED, rec.statesOf(poison).last(), "listener saw the retry")
            assertThrows<CrewSafeException.InvalidState>("retrying a queued record") { t.store.retryWedged(poison) }
            val r = t.store.syncNow()
            assertEquals(1u, r.accepted, "accepted in $r")
            assertEquals(SyncState.DELIVERED, entry(t.store, poison).state)
            assertEquals(PendingCounts(sos = 0UL, reports = 0UL, wedged = 0UL, drafts = 0UL), t.store.pendingCounts())
            assertThrows<CrewSafeException.InvalidState>("retrying a delivered record") { t.store.retryWedged(poison) }
        }
    }

    test("20 sync: a wedged record can be discarded") {
        val server = testServer()
        withSyncStore(server) { t ->
            val d = t.store.createDraft(server.crew(), completeFields())
            val report = t.store.finalizeDraft(d.id, 1UL)
            server.withFaults("""[{"fault":"reject_id","id":"${report.id}"}]""") {
                assertEquals(1u, t.store.syncNow().wedged)
            }
            assertEquals(1UL, t.store.discardWedged(report.id))
            assertTrue(t.store.listRecords().none { it.id == report.id }, "discarded record still listed")
            assertThrows<CrewSafeException.NotFound> { t.store.getReport(report.id) }
            assertEquals(PendingCounts(sos = 0UL, reports = 0UL, wedged = 0UL, drafts = 0UL), t.store.pendingCounts())
        }
    }

    test("21 sync: 503 with Retry-After -> WillRetry with nextAttemptAt; records stay queued, then delivered") {
        val server = testServer()
        withSyncStore(server, config = server.config().copy(backoffBaseMs = 200uL, backoffMaxMs = 1000uL)) { t ->
            val sos = t.store.raiseSos(server.crew(), null, null)
            val r = server.withFaults("""[{"fault":"status","code":503,"retry_after_secs":1}]""") {
                t.store.syncNow()
            }
            assertTrue(r.outcome is SyncOutcome.WillRetry, "outcome of $r")
            assertTrue((r.outcome as SyncOutcome.WillRetry).reason.isNotEmpty(), "reason")
            val next = assertNotNull(r.nextAttemptAt, "nextAttemptAt")
            assertEquals(1UL, r.pendingSos)
            assertEquals(SyncState.QUEUED, entry(t.store, sos.id).state)
            // Before the retry time the lane is held.
            val held = t.store.syncNow()
            assertEquals(SyncOutcome.Deferred, held.outcome, "outcome while held: $held")
            assertEquals(0u, held.sent)
            Thread.sleep(maxOf(0L, Duration.between(java.time.Instant.now(), next).toMillis()) + 50)
            val done = t.store.syncNow()
            assertEquals(SyncOutcome.Complete, done.outcome, "outcome of $done")
            assertEquals(SyncState.DELIVERED, entry(t.store, sos.id).state)
        }
    }

    test("22 sync: a dispatcher acknowledges (then resolves) the SOS over HTTP; the next syncNow brings the status") {
        val server = testServer()
        withSyncStore(server) { t ->
            val rec = Recorder()
            t.store.subscribeRecords(rec)
            val sos = t.store.raiseSos(server.crew(), fix(), "help")
            t.store.syncNow()
            assertEquals(DispatchStatus.DELIVERED, t.store.getSos(sos.id).dispatchStatus)

            val ack = server.dispatch(sos.id, "acknowledge")
            assertTrue(ack.contains(sos.id) && ack.contains("acknowledged"), "acknowledge answered $ack")
            assertEquals(DispatchStatus.DELIVERED, t.store.getSos(sos.id).dispatchStatus, "not fetched before a sync")
            val r = t.store.syncNow()
            assertEquals(0u, r.sent, "nothing to upload")
            assertEquals(DispatchStatus.ACKNOWLEDGED, t.store.getSos(sos.id).dispatchStatus)
            assertEquals(DispatchStatus.ACKNOWLEDGED, entry(t.store, sos.id).dispatchStatus)

            server.dispatch(sos.id, "resolve")
            t.store.syncNow()
            assertEquals(DispatchStatus.RESOLVED, t.store.getSos(sos.id).dispatchStatus)
            assertEquals(
                listOf(DispatchStatus.DELIVERED, DispatchStatus.ACKNOWLEDGED, DispatchStatus.RESOLVED),
                rec.changes.filter { it.id == sos.id }.mapNotNull { it.dispatchStatus },
                "dispatch statuses seen by the listener",
            )
            // Unknown SOS: 404 from the dispatcher endpoint.
            assertEquals(404, server.call("POST", "/v1/dispatch/sos/00000000-0000-4000-8000-000000000000/acknowledge",
                token = server.dispatcherToken).first)
        }
    }

    test("24 sync: a redirecting front -> ServerRejectedRequest(307) from syncNow and the listener; nothing wedged; delivered once fixed") {
        val server = testServer()
        // A load balancer that redirects every request (a host move, an http->https rule),
        // from the JDK's own HTTP server on loopback.
        val front = com.sun.net.httpserver.HttpServer.create(java.net.InetSocketAddress("127.0.0.1", 0), 0)
        front.createContext("/") { ex ->
            ex.requestBody.readAllBytes()
            ex.responseHeaders.add("Location", "https://elsewhere.example.kz/v1/records:batch")
            ex.sendResponseHeaders(307, -1)
            ex.close()
        }
        front.start()
        try {
            val config = server.config().copy(serverUrl = "http://127.0.0.1:${front.address.port}")
            withSyncStore(server, config = config) { t ->
                val rec = Recorder()
                val sub = t.store.subscribeSync(rec)
                val a = t.store.raiseSos(server.crew(), fix(), null)
                val b = t.store.raiseSos(server.crew(), null, "second")
                val e = assertThrows<CrewSafeException.ServerRejectedRequest> { t.store.syncNow() }
                assertEquals(307.toUShort(), e.status)
                assertTrue(e.message!!.contains("307"), "message: ${e.message}")
                val counts = t.store.pendingCounts()
                assertEquals(2UL, counts.sos, "still queued: $counts")
                assertEquals(0UL, counts.wedged, "nothing wedged: $counts")
                val end = rec.progress.last()
                assertEquals(SyncPhase.FINISHED, end.phase)
                assertTrue(end.error is CrewSafeException.ServerRejectedRequest, "listener error: ${end.error}")
                sub.cancel()
                // The address is fixed: both alarms go, once.
                t.store.configureSync(server.config(), CountingTokens(server.deviceToken, server.deviceToken))
                val done = t.store.syncNow()
                assertEquals(SyncOutcome.Complete, done.outcome, "after the fix: $done")
                assertEquals(2u, done.accepted)
                assertEquals(SyncState.DELIVERED, entry(t.store, a.id).state)
                assertEquals(SyncState.DELIVERED, entry(t.store, b.id).state)
            }
        } finally {
            front.stop(0)
        }
    }

    test("25 errors: every exception the library builds has a non-empty message and toString") {
        val every = debugEveryError()
        assertTrue(every.size >= 17, "one per variant: ${every.size}")
        for (e in every) {
            val name = e::class.java.simpleName
            assertTrue(!e.message.isNullOrBlank(), "$name has an empty message")
            assertTrue(e.toString().isNotBlank(), "$name has an empty toString")
        }
        // And as thrown: no-detail variants carry a readable reason.
        withStore { t ->
            assertThrows<CrewSafeException.NotConfigured> { t.store.syncNow() }.let {
                assertTrue(it.message!!.contains("not configured"), "NotConfigured: ${it.message}")
            }
            t.store.closeStore()
            t.release()
            val wrong = assertThrows<CrewSafeException.WrongKey> {
                CrewStore.open(t.path.toString(), generateDataKey()).close()
            }
            assertTrue(wrong.message!!.contains("key"), "WrongKey: ${wrong.message}")
        }
    }

    test("23 sync: http:// to a non-loopback host -> InvalidInput(server_url); not configured -> NotConfigured") {
        withStore { t ->
            val tokens = CountingTokens("a", "b")
            for (url in listOf("http://10.1.2.3:8080", "http://crewsafe.example.kz", "ftp://127.0.0.1")) {
                val e = assertThrows<CrewSafeException.InvalidInput>(url) {
                    t.store.configureSync(SyncConfig(serverUrl = url), tokens)
                }
                assertEquals("server_url", e.field, url)
            }
            assertThrows<CrewSafeException.NotConfigured> { t.store.syncNow() }
            assertEquals(0, tokens.tokenCalls.get(), "token() never called")
            // Bad numbers are refused too.
            val e = assertThrows<CrewSafeException.InvalidInput> {
                t.store.configureSync(SyncConfig(serverUrl = "http://127.0.0.1:9", maxBatchRecords = 0u), tokens)
            }
            assertEquals("max_batch_records", e.field)
        }
    }

    test("33 watch: online, the listener hears Acknowledged and getSos shows the dispatcher's message, with no syncNow") {
        val server = testServer()
        withSyncStore(server) { t ->
            val delivered = CountDownLatch(1)
            val acknowledged = CountDownLatch(1)
            val rec = Recorder()
            t.store.subscribeRecords(rec)
            t.store.setOnline(true)
            val sos = t.store.raiseSos(server.crew(), fix(), "stairwell, 4th floor")
            rec.onChange = { c ->
                if (c.id == sos.id && c.state == SyncState.DELIVERED) delivered.countDown()
                if (c.id == sos.id && c.dispatchStatus == DispatchStatus.ACKNOWLEDGED) acknowledged.countDown()
            }
            // The change may have come before onChange was set.
            if (rec.statesOf(sos.id).contains(SyncState.DELIVERED)) delivered.countDown()
            assertTrue(delivered.await(10, TimeUnit.SECONDS), "the background worker delivers the SOS")
            Thread.sleep(300)
            server.dispatch(sos.id, "acknowledge", "crew 7 on the way, 6 min")
            assertTrue(acknowledged.await(5, TimeUnit.SECONDS), "Acknowledged reaches the listener by itself")
            val answer = t.store.getSos(sos.id).dispatch ?: fail("no dispatch answer kept")
            assertEquals(DispatchStatus.ACKNOWLEDGED, answer.status)
            assertEquals("crew 7 on the way, 6 min", answer.message)
            assertEquals("test-dispatcher", answer.acknowledgedBy)
            assertTrue(answer.acknowledgedAt != null, "acknowledgedAt")
        }
    }

    test("34 check-in: start, extend, check in; delivered in the SOS lane; a closed check-in refuses more") {
        val server = testServer()
        withSyncStore(server) { t ->
            val c = t.store.startCheckIn(server.crew(), 20u, "Abay ave 12, flat 40", null, fix())
            assertEquals(CheckInState.OPEN, c.state)
            assertEquals(Duration.ofMinutes(20), Duration.between(c.startedAt, c.dueAt))
            val extended = t.store.extendCheckIn(c.id, 10u)
            assertEquals(30u, extended.dueInMinutes)
            val done = t.store.checkIn(c.id, null)
            assertEquals(CheckInState.DONE, done.state)
            val r = t.store.syncNow()
            assertEquals(SyncOutcome.Complete, r.outcome)
            val got = t.store.getCheckIn(c.id)
            assertEquals(SyncState.DELIVERED, got.syncState)
            assertEquals(SyncState.DELIVERED, got.doneSyncState)
            assertThrows<CrewSafeException.InvalidState> { t.store.checkIn(c.id, null) }
            val bad = assertThrows<CrewSafeException.InvalidInput> {
                t.store.startCheckIn(server.crew(), 0u, null, null, null)
            }
            assertEquals("due_in_minutes", bad.field)
        }
    }

    test("35 attachments: a photo (bytes) and a recording (file) read back through openAttachment, finalized, synced, both Delivered") {
        val server = testServer()
        withSyncStore(server) { t ->
            val draft = t.store.createDraft(server.crew(), completeFields())
            val photo = ByteArray(300_000) { (it * 31 + 7).toByte() }
            val recording = ByteArray(1_000_003) { (it * 17 + 3).toByte() }
            val file = t.dir.resolve("recording.m4a")
            java.nio.file.Files.write(file, recording)
            val p = t.store.addAttachmentBytes(draft.id, photo, AttachmentKind.PHOTO, "image/jpeg", null)
            val f = t.store.addAttachmentFile(draft.id, file.toString(), AttachmentKind.AUDIO, "audio/mp4", null)
            // The library holds its own encrypted copy: the app may delete its plaintext file.
            java.nio.file.Files.delete(file)
            fun sha256(b: ByteArray) =
                java.security.MessageDigest.getInstance("SHA-256").digest(b).joinToString("") { "%02x".format(it) }
            fun readAll(id: String): ByteArray = t.store.openAttachment(id).use { r ->
                val out = java.io.ByteArrayOutputStream()
                while (true) {
                    val part = r.read(out.size().toULong(), 65_536u)
                    if (part.isEmpty()) break
                    out.write(part)
                }
                assertEquals(r.size(), out.size().toULong(), "size of $id")
                out.toByteArray()
            }
            for ((a, bytes) in listOf(p to photo, f to recording)) {
                assertEquals(bytes.size.toULong(), a.size, "size of ${a.kind}")
                assertEquals(sha256(bytes), a.sha256, "sha256 of ${a.kind}")
                assertEquals(SyncState.DRAFT, a.syncState)
                assertTrue(bytes.contentEquals(readAll(a.id)), "${a.kind} read back")
            }
            assertContentEquals(recording.copyOfRange(999_990, 1_000_003), t.store.openAttachment(f.id).use { it.read(999_990uL, 100u) })
            assertEquals(listOf(p.id, f.id), t.store.listAttachments(draft.id).map { it.id })

            val report = t.store.finalizeDraft(draft.id, t.store.getDraft(draft.id).revision)
            assertEquals(listOf(p.id, f.id), report.attachments.map { it.id }, "the report commits to its files")
            val deadline = System.nanoTime() + 30_000_000_000L
            while (true) {
                val r = t.store.syncNow()
                if (r.outcome == SyncOutcome.Complete && r.pendingAttachments == 0UL) break
                assertTrue(System.nanoTime() < deadline, "not delivered in 30 s: $r")
                Thread.sleep(50)
            }
            val after = t.store.listAttachments(report.id)
            assertEquals(2, after.size)
            for (a in after) {
                assertEquals(SyncState.DELIVERED, a.syncState, "${a.kind}")
                assertEquals(a.size, a.uploadedBytes, "uploadedBytes of ${a.kind}")
            }
            assertEquals(SyncState.DELIVERED, t.store.getReport(report.id).syncState)
            // Still readable on the phone after delivery.
            assertTrue(photo.contentEquals(readAll(p.id)), "photo after delivery")
        }
    }
}
