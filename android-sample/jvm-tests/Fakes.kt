// Test doubles for the platform interfaces, and access to the reference server that
// bindings/with-test-server.sh starts.

import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.time.Duration
import java.time.Instant
import java.util.UUID
import java.util.concurrent.atomic.AtomicInteger
import kz.crewsafe.*
import kz.crewsafe.sample.core.*

/** Time that moves only when told; due tasks run on the calling thread, in order. */
class ManualScheduler : Scheduler {
    private class Task(val at: Long, val seq: Long, val body: () -> Unit) { @Volatile var cancelled = false }
    private val tasks = mutableListOf<Task>()
    private var seq = 0L
    var now = 1_000_000L
        private set

    override fun nowMs() = now

    @Synchronized
    override fun schedule(delayMs: Long, task: () -> Unit): Cancellable {
        val t = Task(now + delayMs, seq++, task)
        tasks += t
        return Cancellable { t.cancelled = true }
    }

    fun advance(ms: Long) {
        val target = now + ms
        while (true) {
            val next = synchronized(this) {
                tasks.removeAll { it.cancelled }
                tasks.filter { it.at <= target }.minWithOrNull(compareBy({ it.at }, { it.seq }))
                    ?.also { tasks.remove(it) }
            } ?: break
            now = next.at
            next.body()
        }
        now = target
    }

    @Synchronized
    fun pending() = tasks.count { !it.cancelled }
}

/** Keeps the "wrapped" key in memory (XOR stands in for the Keystore's AES-GCM). */
class MemoryKeyStorage : KeyStorage {
    private var wrapped: ByteArray? = null
    val saves = AtomicInteger()

    override fun loadKey(): ByteArray? = wrapped?.map { (it.toInt() xor 0x5a).toByte() }?.toByteArray()

    override fun saveKey(key: ByteArray) {
        wrapped = key.map { (it.toInt() xor 0x5a).toByte() }.toByteArray()
        saves.incrementAndGet()
    }

    override fun deleteKey() {
        wrapped = null
    }
}

class FakeConnectivity : Connectivity {
    @Volatile private var callback: ((Boolean) -> Unit)? = null
    @Volatile var stopped = false

    override fun start(onChange: (Boolean) -> Unit) {
        callback = onChange
    }

    override fun stop() {
        stopped = true
        callback = null
    }

    fun set(online: Boolean) = callback?.invoke(online) ?: fail("connectivity was not started")
}

/** The reference server from the environment; a test fails (never skips) without it. */
object Server {
    private fun env(name: String) = System.getenv(name)?.takeIf { it.isNotBlank() } ?: fail(
        "$name is not set: run through bindings/with-test-server.sh (see android-sample/run-jvm-tests.sh)"
    )
    val url get() = env("CREWSAFE_TEST_SERVER_URL")
    val deviceId get() = env("CREWSAFE_TEST_DEVICE_ID")
    val deviceToken get() = env("CREWSAFE_TEST_DEVICE_TOKEN")
    private val dispatcherToken get() = env("CREWSAFE_TEST_DISPATCHER_TOKEN")
    private val http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build()

    /** Settings for a fresh crew (a unique crew id, so tests can find their own alarms). */
    fun settings() = SampleSettings(
        serverUrl = url, deviceId = deviceId, deviceToken = deviceToken,
        crewId = "crew-" + UUID.randomUUID().toString().take(8), staffId = "staff-7",
    )

    /** The dispatcher's view: GET /v1/dispatch/sos (JSON). */
    fun dispatchList(): String = call("GET", "/v1/dispatch/sos")

    /** A dispatcher acknowledges the SOS, optionally with a message for the crew. */
    fun acknowledge(sosId: String, message: String? = null) = move(sosId, "acknowledge", message)

    /** A dispatcher resolves the SOS, optionally with a message for the crew. */
    fun resolve(sosId: String, message: String? = null) = move(sosId, "resolve", message)

    private fun move(sosId: String, action: String, message: String?): String =
        call("POST", "/v1/dispatch/sos/$sosId/$action", message?.let { "{\"message\": ${jsonString(it)}}" })

    private fun jsonString(s: String) =
        "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\""

    private fun call(method: String, path: String, json: String? = null): String {
        val b = HttpRequest.newBuilder(URI.create(url.trimEnd('/') + path))
            .header("Authorization", "Bearer $dispatcherToken").timeout(Duration.ofSeconds(10))
        if (json != null) b.header("Content-Type", "application/json")
        b.method(method, json?.let { HttpRequest.BodyPublishers.ofString(it) } ?: HttpRequest.BodyPublishers.noBody())
        val res = http.send(b.build(), HttpResponse.BodyHandlers.ofString())
        assertEquals(200, res.statusCode(), "$method $path answered ${res.body()}")
        return res.body()
    }
}

/** A controller over a fresh store in a temp dir, with a manual clock and fake network. */
class Harness(settings: SampleSettings = Server.settings()) : AutoCloseable {
    val dir: File = Files.createTempDirectory("crewsafe-sample-").toFile()
    val keys = MemoryKeyStorage()
    val clock = ManualScheduler()
    val network = FakeConnectivity()
    val syncRequests = AtomicInteger()
    @Volatile var fix: LocationFix? = fix()
    val opened = openStore(File(dir, "crewsafe.db"), keys)
    val store get() = opened.store
    val controller = CrewSafeController(
        opened.store, settings, network, clock, FixSource { fix }, requestBackgroundSync = { syncRequests.incrementAndGet() },
    )

    override fun close() {
        controller.close()
        dir.deleteRecursively()
    }
}

fun <T> withHarness(settings: SampleSettings = Server.settings(), body: (Harness) -> T): T =
    Harness(settings).use(body)

fun fix(latitude: Double = 51.1694) = LocationFix(
    latitude = latitude, longitude = 71.4491, accuracyM = 6.5, altitudeM = null,
    provider = LocationProvider.GPS, fixedAt = Instant.now(),
)

fun entry(store: CrewStore, id: String): QueueEntry =
    store.listRecords().firstOrNull { it.id == id } ?: fail("record $id not listed")

/** Polls [condition] every 50 ms for up to [seconds]. */
fun waitFor(what: String, seconds: Long = 20, condition: () -> Boolean) {
    val deadline = System.nanoTime() + seconds * 1_000_000_000
    while (!condition()) {
        if (System.nanoTime() > deadline) fail("timed out after ${seconds}s waiting for $what")
        Thread.sleep(50)
    }
}

fun SyncResult.report(): SyncReport = (this as? SyncResult.Done)?.report ?: fail("sync needs attention: $this")
