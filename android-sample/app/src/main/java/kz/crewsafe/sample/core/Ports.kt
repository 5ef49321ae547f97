// The few things the app logic needs from the platform, as plain interfaces. The Android
// classes in ../android implement them; the JVM tests use fakes. No android.* here.
package kz.crewsafe.sample.core

import kz.crewsafe.LocationFix
import java.util.concurrent.Executors
import java.util.concurrent.ScheduledExecutorService
import java.util.concurrent.TimeUnit

/**
 * Keeps the store's 32-byte data key, wrapped by a platform key that never leaves the secure
 * hardware (Android Keystore, iOS Keychain). Never bound to user authentication: an SOS must
 * work on a locked phone.
 */
interface KeyStorage {
    /**
     * The unwrapped data key; null when none was saved, or when the saved one can never be
     * unwrapped again (the platform key is gone). Throws on a transient failure.
     */
    fun loadKey(): ByteArray?

    /**
     * Wraps [key] and saves it durably. Called before the store is created with it. Keep no
     * reference to [key]: the caller zeroes it once the store is open.
     */
    fun saveKey(key: ByteArray)

    /** Forgets the saved key. */
    fun deleteKey()
}

/** Reports whether the phone has a network. [start]'s callback may come on any thread. */
interface Connectivity {
    fun start(onChange: (online: Boolean) -> Unit)
    fun stop()
}

fun interface Cancellable {
    fun cancel()
}

/** A clock and delayed tasks: injectable, so the SOS cancel window and autosave are testable. */
interface Scheduler {
    /** Monotonic milliseconds. */
    fun nowMs(): Long

    fun schedule(delayMs: Long, task: () -> Unit): Cancellable
}

/** The last known position; null raises the SOS without one rather than waiting for a fix. */
fun interface FixSource {
    fun lastFix(): LocationFix?
}

/** A [Scheduler] on one background thread (used by the app; tests use a manual one). */
class ExecutorScheduler(
    private val executor: ScheduledExecutorService = Executors.newSingleThreadScheduledExecutor { r ->
        Thread(r, "crewsafe-scheduler").apply { isDaemon = true }
    },
) : Scheduler, AutoCloseable {
    override fun nowMs(): Long = System.nanoTime() / 1_000_000

    override fun schedule(delayMs: Long, task: () -> Unit): Cancellable {
        val future = executor.schedule(task, delayMs, TimeUnit.MILLISECONDS)
        return Cancellable { future.cancel(false) }
    }

    override fun close() {
        executor.shutdownNow()
    }
}
