// Callbacks that call back into the store, from Kotlin over JNA: a RecordListener, a
// SyncListener and a TokenProvider that call store methods, on the caller's thread (a manual
// syncNow()) and on the background worker's native thread (setOnline(true)). Each call either
// works or fails at once with a typed exception; nothing hangs, and closeStore() always
// returns. Needs the reference server of bindings/with-test-server.sh (see SyncTests.kt).
//
// Every test body runs under a watchdog ([guardedTest], [within]): a hang fails the test after
// a timeout instead of stalling the suite.

import java.util.concurrent.Callable
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.ExecutionException
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import java.util.concurrent.TimeoutException
import java.util.concurrent.atomic.AtomicInteger
import kz.crewsafe.*

/**
 * Runs [body] on a fresh daemon thread and waits at most [seconds] for it: its result, or what
 * it threw. A hang fails with an AssertionError (the stuck thread is left behind, as a daemon).
 */
fun <T> within(seconds: Long, what: String, body: () -> T): T {
    val pool = Executors.newSingleThreadExecutor { r -> Thread(r, "within: $what").apply { isDaemon = true } }
    try {
        val future = pool.submit(Callable { body() })
        try {
            return future.get(seconds, TimeUnit.SECONDS)
        } catch (e: TimeoutException) {
            future.cancel(true)
            fail("$what: hung for more than $seconds s")
        } catch (e: ExecutionException) {
            throw e.cause ?: e
        }
    } finally {
        pool.shutdownNow()
    }
}

/** A [test] whose whole body (set-up and clean-up included) runs under [within]. */
fun guardedTest(name: String, seconds: Long = 120, body: () -> Unit) =
    test(name) { within(seconds, name, body) }

/** Polls [condition] every 20 ms; fails if it is not true within [seconds]. */
fun waitUntil(seconds: Long, what: String, condition: () -> Boolean) {
    val end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds)
    while (!condition()) {
        if (System.nanoTime() > end) fail("$what: not within $seconds s")
        Thread.sleep(20)
    }
}

/** What a callback does with the store when it is called. */
enum class Reflex {
    /** syncNow(): refused at once (InvalidState) inside a running sync. */
    SYNC_AGAIN,

    /** pendingCounts, listRecords, raiseSos, getSos, createDraft, setOnline(true): all work. */
    EVERYTHING,

    /** closeStore(): returns; the store is closed from then on. */
    CLOSE,
}

/** The three kinds of callback the store makes. */
enum class CallbackKind { RECORD, SYNC, TOKEN }

/** One call a callback made into the store: which callback, on which thread, what came of it. */
class BackCall(
    val kind: CallbackKind,
    val thread: Thread,
    val method: String,
    val error: Throwable?,
    val millis: Long,
) {
    override fun toString() =
        "$kind on '${thread.name}': $method -> ${error?.let { it::class.java.simpleName + " " + it.message } ?: "ok"} ($millis ms)"
}

/**
 * A RecordListener, SyncListener and TokenProvider that call back into [store] with [reflex]
 * while [budget] lasts (one unit per callback that calls back; 0 = quiet). A callback never
 * calls back from inside another one on the same thread (raiseSos from a record listener
 * would otherwise recurse). Everything the store throws at the callbacks is recorded, never
 * rethrown.
 */
class CallingBack(
    private val reflex: Reflex,
    private val token: String,
    private val crew: CrewIdentity,
) : RecordListener, SyncListener, TokenProvider {
    @Volatile var store: CrewStore? = null
    val budget = AtomicInteger(0)
    val calls = CopyOnWriteArrayList<BackCall>()
    /** Every callback, calling back or not: its kind and thread. */
    val callbacks = CopyOnWriteArrayList<Pair<CallbackKind, Thread>>()
    /** Callbacks running right now (so a test can wait for them before it closes). */
    val inFlight = AtomicInteger(0)
    /** Ids of the SOS alarms and drafts the callbacks created. */
    val raised = CopyOnWriteArrayList<String>()
    val drafts = CopyOnWriteArrayList<String>()
    private val inside = ThreadLocal.withInitial { false }

    override fun onRecordChanged(change: RecordChange) = callBack(CallbackKind.RECORD)

    override fun onSyncProgress(progress: SyncProgress) = callBack(CallbackKind.SYNC)

    override fun token(): String {
        callBack(CallbackKind.TOKEN)
        return token
    }

    override fun refreshToken(): String = token

    fun callsOf(kind: CallbackKind) = calls.filter { it.kind == kind }

    /** Stops calling back and waits for callbacks still running. */
    fun quiet() {
        budget.set(0)
        waitUntil(30, "callbacks still running") { inFlight.get() == 0 }
    }

    private fun callBack(kind: CallbackKind) {
        callbacks += kind to Thread.currentThread()
        inFlight.incrementAndGet()
        try {
            val s = store ?: return
            if (inside.get() || budget.getAndDecrement() <= 0) return
            inside.set(true)
            try {
                when (reflex) {
                    Reflex.SYNC_AGAIN -> call(kind, "syncNow") { s.syncNow() }
                    Reflex.CLOSE -> call(kind, "closeStore") { s.closeStore() }
                    Reflex.EVERYTHING -> {
                        call(kind, "pendingCounts") { s.pendingCounts() }
                        call(kind, "listRecords") { s.listRecords() }
                        val sos = call(kind, "raiseSos") { s.raiseSos(crew, fix(), "from a $kind callback") }
                        if (sos != null) {
                            raised += sos.id
                            call(kind, "getSos") { assertEquals(sos.id, s.getSos(sos.id).id, "getSos from a callback") }
                        }
                        call(kind, "createDraft") { s.createDraft(crew, IncidentFields()) }?.let { drafts += it.id }
                        call(kind, "setOnline") { s.setOnline(true) }
                    }
                }
            } finally {
                inside.set(false)
            }
        } finally {
            inFlight.decrementAndGet()
        }
    }

    private fun <T> call(kind: CallbackKind, method: String, body: () -> T): T? {
        val start = System.nanoTime()
        var error: Throwable? = null
        val result = try {
            body()
        } catch (e: Throwable) {
            error = e
            null
        }
        calls += BackCall(kind, Thread.currentThread(), method, error, (System.nanoTime() - start) / 1_000_000)
        return result
    }
}

/**
 * A fresh synced store whose callbacks of [kinds] are [cb] (the token provider is a plain one
 * when TOKEN is not among them).
 */
fun <T> withCallingStore(
    server: TestServer,
    cb: CallingBack,
    kinds: Set<CallbackKind> = CallbackKind.entries.toSet(),
    config: SyncConfig = server.config(),
    body: (TestStore) -> T,
): T {
    val tokens: TokenProvider =
        if (CallbackKind.TOKEN in kinds) cb else CountingTokens(server.deviceToken, server.deviceToken)
    return withSyncStore(server, tokens, config) { t ->
        cb.store = t.store
        val subs = mutableListOf<Subscription>()
        if (CallbackKind.RECORD in kinds) subs += t.store.subscribeRecords(cb)
        if (CallbackKind.SYNC in kinds) subs += t.store.subscribeSync(cb)
        try {
            body(t)
        } finally {
            subs.forEach { it.cancel() }
        }
    }
}

/** closeStore() from this thread returns in time; every later call is Closed. */
fun assertClosesAndStaysClosed(store: CrewStore, server: TestServer) {
    within(30, "closeStore() from the test thread") { store.closeStore() }
    assertThrows<CrewSafeException.Closed>("pendingCounts after close") { store.pendingCounts() }
    assertThrows<CrewSafeException.Closed>("listRecords after close") { store.listRecords() }
    assertThrows<CrewSafeException.Closed>("raiseSos after close") { store.raiseSos(server.crew(), null, null) }
    assertThrows<CrewSafeException.Closed>("syncNow after close") { store.syncNow() }
    // Closing again returns too.
    within(30, "a second closeStore()") { store.closeStore() }
}

/** Inner syncNow calls: each refused with InvalidState, at once. */
fun assertSyncAgainRefused(calls: List<BackCall>, what: String) {
    assertTrue(calls.isNotEmpty(), "$what: no callback called syncNow")
    for (c in calls) {
        assertEquals("syncNow", c.method, "$what: $c")
        assertTrue(c.error is CrewSafeException.InvalidState, "$what: not InvalidState: $c")
        assertTrue(c.millis < 2_000, "$what: not refused at once: $c")
    }
}

fun callbackTests() {
    val allKinds = CallbackKind.entries.toList()

    guardedTest("26 callbacks: syncNow from a record listener, sync listener and token provider inside a manual syncNow -> InvalidState at once, on the caller's thread; the outer syncNow returns") {
        val server = testServer()
        val cb = CallingBack(Reflex.SYNC_AGAIN, server.deviceToken, server.crew())
        withCallingStore(server, cb) { t ->
            // Outside a sync a listener's syncNow would simply sync: quiet while queuing.
            val ids = (0 until 3).map { t.store.raiseSos(server.crew(), fix(), null).id }
            val me = Thread.currentThread()
            cb.budget.set(100)
            val r = t.store.syncNow()
            cb.quiet()
            assertEquals(SyncOutcome.Complete, r.outcome, "outer syncNow: $r")
            assertEquals(3u, r.accepted, "accepted in $r")
            for (kind in allKinds) {
                val calls = cb.callsOf(kind)
                assertSyncAgainRefused(calls, "$kind")
                assertTrue(calls.all { it.thread === me }, "$kind callbacks not on the caller's thread: $calls")
            }
            for (id in ids) assertEquals(SyncState.DELIVERED, entry(t.store, id).state, "record $id")
            assertClosesAndStaysClosed(t.store, server)
        }
    }

    guardedTest("27 callbacks: syncNow from every callback kind on the worker's thread -> InvalidState at once; closeStore from the test thread returns") {
        val server = testServer()
        val cb = CallingBack(Reflex.SYNC_AGAIN, server.deviceToken, server.crew())
        // The worker's syncs only: the status watch asks the token provider too, on its own
        // thread and outside any sync, where syncNow is allowed; it is off here.
        withCallingStore(server, cb, config = server.config().copy(statusWatchSeconds = 0u)) { t ->
            val sos = t.store.raiseSos(server.crew(), fix(), null)
            val me = Thread.currentThread()
            cb.budget.set(100)
            t.store.setOnline(true)
            waitUntil(30, "the worker's callbacks of every kind") {
                allKinds.all { k -> cb.callsOf(k).isNotEmpty() } &&
                    entry(t.store, sos.id).state == SyncState.DELIVERED
            }
            cb.quiet()
            for (kind in allKinds) {
                val calls = cb.callsOf(kind)
                assertSyncAgainRefused(calls, "$kind")
                assertTrue(calls.none { it.thread === me }, "$kind callbacks on the test thread: $calls")
            }
            assertClosesAndStaysClosed(t.store, server)
        }
    }

    guardedTest("28 callbacks: pendingCounts, listRecords, raiseSos, getSos, createDraft, setOnline from every callback kind work, inside a manual syncNow and on the worker's thread") {
        val server = testServer()
        val cb = CallingBack(Reflex.EVERYTHING, server.deviceToken, server.crew())
        withCallingStore(server, cb) { t ->
            val first = t.store.raiseSos(server.crew(), fix(), null)
            val me = Thread.currentThread()

            // On the caller's thread, inside syncNow.
            cb.budget.set(12)
            val r = t.store.syncNow()
            cb.quiet()
            assertTrue(r.outcome == SyncOutcome.Complete || r.outcome == SyncOutcome.Deferred, "outer syncNow: $r")
            assertEquals(SyncState.DELIVERED, entry(t.store, first.id).state)
            for (kind in allKinds) {
                val mine = cb.callsOf(kind).filter { it.thread === me }
                assertEquals(
                    setOf("pendingCounts", "listRecords", "raiseSos", "getSos", "createDraft", "setOnline"),
                    mine.map { it.method }.toSet(),
                    "$kind: calls on the caller's thread",
                )
            }
            assertTrue(cb.calls.all { it.error == null }, "failed calls: ${cb.calls.filter { it.error != null }}")

            // On the worker's thread (the callbacks above already set the store online). Offline
            // first, and a manual sync to wait out any worker sync still running, so that the
            // worker's next sync starts after the budget is set.
            t.store.setOnline(false)
            t.store.syncNow()
            val before = cb.calls.size
            t.store.raiseSos(server.crew(), null, "for the worker")
            cb.budget.set(12)
            t.store.setOnline(true)
            waitUntil(30, "calls from the worker's callbacks of every kind") {
                allKinds.all { k -> cb.calls.drop(before).any { it.kind == k && it.thread !== me } }
            }
            cb.quiet()
            for (kind in allKinds) {
                val worker = cb.calls.drop(before).filter { it.kind == kind && it.thread !== me }
                assertTrue(worker.isNotEmpty(), "$kind: no calls from the worker")
                assertTrue(worker.all { it.error == null }, "$kind: failed calls on the worker: $worker")
            }
            assertTrue(cb.calls.all { it.error == null }, "failed calls: ${cb.calls.filter { it.error != null }}")

            // What the callbacks saved is there, and goes out like anything else.
            assertTrue(cb.raised.isNotEmpty() && cb.drafts.isNotEmpty(), "nothing saved by the callbacks")
            val drafts = t.store.listDrafts().map { it.id }.toSet()
            assertTrue(drafts.containsAll(cb.drafts), "drafts created by callbacks: ${cb.drafts} vs $drafts")
            waitUntil(30, "everything delivered") {
                t.store.syncNow()
                t.store.pendingCounts().sos == 0UL
            }
            for (id in cb.raised) assertEquals(SyncState.DELIVERED, t.store.getSos(id).syncState, "SOS $id raised by a callback")
            assertClosesAndStaysClosed(t.store, server)
        }
    }

    guardedTest("29 callbacks: closeStore from a record listener, sync listener or token provider inside a manual syncNow returns; syncNow ends; later calls -> Closed") {
        val server = testServer()
        for (kind in allKinds) {
            val cb = CallingBack(Reflex.CLOSE, server.deviceToken, server.crew())
            withCallingStore(server, cb, setOf(kind)) { t ->
                val sos = t.store.raiseSos(server.crew(), fix(), null)
                val me = Thread.currentThread()
                cb.budget.set(5)
                val outcome = try {
                    "returned ${t.store.syncNow()}"
                } catch (e: CrewSafeException.Closed) {
                    "Closed"
                }
                cb.quiet()
                val closes = cb.callsOf(kind)
                assertTrue(closes.isNotEmpty(), "$kind: closeStore was not called ($outcome)")
                assertNull(closes.first().error, "$kind: the first closeStore in a callback: ${closes.first()}")
                assertTrue(closes.all { it.thread === me }, "$kind: not on the caller's thread: $closes")
                assertTrue(
                    closes.all { it.error == null || it.error is CrewSafeException.Closed },
                    "$kind: $closes",
                )
                assertThrows<CrewSafeException.Closed>("$kind: getSos after close") { t.store.getSos(sos.id) }
                assertClosesAndStaysClosed(t.store, server)
            }
        }
    }

    guardedTest("30 callbacks: closeStore from a record listener, sync listener or token provider on the worker's thread returns; later calls -> Closed") {
        val server = testServer()
        for (kind in allKinds) {
            val cb = CallingBack(Reflex.CLOSE, server.deviceToken, server.crew())
            withCallingStore(server, cb, setOf(kind)) { t ->
                t.store.raiseSos(server.crew(), fix(), null)
                val me = Thread.currentThread()
                cb.budget.set(5)
                try {
                    t.store.setOnline(true)
                } catch (e: CrewSafeException.Closed) {
                    // The worker woke and its callback closed the store before setOnline(true)
                    // returned: a store closed meanwhile answers Closed.
                }
                waitUntil(30, "$kind: the worker's callback closed the store") {
                    cb.callsOf(kind).isNotEmpty() &&
                        try {
                            t.store.pendingCounts()
                            false
                        } catch (e: CrewSafeException.Closed) {
                            true
                        }
                }
                cb.quiet()
                val closes = cb.callsOf(kind)
                assertNull(closes.first().error, "$kind: the first closeStore in a callback: ${closes.first()}")
                assertTrue(closes.none { it.thread === me }, "$kind: on the test thread: $closes")
                assertTrue(
                    closes.all { it.error == null || it.error is CrewSafeException.Closed },
                    "$kind: $closes",
                )
                assertClosesAndStaysClosed(t.store, server)
            }
        }
    }

    guardedTest("31 callbacks: closeStore from the test thread returns while the worker's callbacks are calling back") {
        val server = testServer()
        for (reflex in listOf(Reflex.SYNC_AGAIN, Reflex.EVERYTHING)) {
            val cb = CallingBack(reflex, server.deviceToken, server.crew())
            withCallingStore(server, cb) { t ->
                t.store.raiseSos(server.crew(), fix(), null)
                // Bounded: closeStore() waits for the worker's running sync, and with EVERYTHING
                // that sync keeps taking the SOS alarms its own callbacks raise; with an
                // unbounded budget closeStore() does not return (reported, not fixed here).
                cb.budget.set(200)
                t.store.setOnline(true)
                waitUntil(30, "$reflex: the worker's callbacks call back") { cb.calls.isNotEmpty() }
                // Closed under the callbacks' feet: they get typed errors, nothing hangs.
                val start = System.nanoTime()
                within(30, "$reflex: closeStore() while the worker calls back") { t.store.closeStore() }
                println("      $reflex: closeStore() took ${(System.nanoTime() - start) / 1_000_000} ms after ${cb.calls.size} calls")
                cb.quiet()
                assertThrows<CrewSafeException.Closed>("$reflex: pendingCounts after close") { t.store.pendingCounts() }
                for (c in cb.calls) {
                    val e = c.error ?: continue
                    assertTrue(
                        e is CrewSafeException.InvalidState || e is CrewSafeException.Closed,
                        "$reflex: untyped failure in a callback: $c",
                    )
                }
                assertClosesAndStaysClosed(t.store, server)
            }
        }
    }
}
