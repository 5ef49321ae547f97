package kz.crewsafe.sample.core

import kz.crewsafe.CancelReason
import kz.crewsafe.CrewIdentity
import kz.crewsafe.CrewSafeException
import kz.crewsafe.CrewStore
import kz.crewsafe.DispatchStatus
import kz.crewsafe.RecordKind
import kz.crewsafe.Sos
import kz.crewsafe.SosState

/** Where the SOS button is. */
sealed class SosPhase {
    object Idle : SosPhase()

    /** The button is held; released before [armedAtMs] nothing happens. */
    data class Holding(val armedAtMs: Long) : SosPhase()

    /** Last chance to cancel: nothing is stored yet; the SOS is raised at [raiseAtMs]. */
    data class CancelWindow(val raiseAtMs: Long) : SosPhase()

    /** Stored and queued (first in line); it leaves the phone as soon as there is a network. */
    data class Raised(val sos: Sos) : SosPhase()

    data class Failed(val reason: String) : SosPhase()
}

/**
 * The SOS button: press and hold for [holdMs], then [cancelWindowMs] to cancel before the
 * alarm is stored. A cancel inside the window stores and sends nothing. After it, the alarm
 * stands; [cancelRaised] sends a cancellation and dispatch still sees both.
 *
 * [listener] is called on the caller's or the scheduler's thread; it must not block.
 */
class SosController(
    private val store: CrewStore,
    private val crew: () -> CrewIdentity,
    private val scheduler: Scheduler,
    private val fixes: FixSource = FixSource { null },
    val holdMs: Long = 1_500,
    val cancelWindowMs: Long = 5_000,
    private val onQueued: () -> Unit = {},
) {
    @Volatile
    var phase: SosPhase = SosPhase.Idle
        private set

    @Volatile
    var listener: ((SosPhase) -> Unit)? = null

    private var timer: Cancellable? = null
    private var generation = 0L // a timer that fires after being cancelled is ignored

    /** Shows an SOS that is still active (raised before the app was restarted). */
    @Synchronized
    fun restore() {
        if (phase != SosPhase.Idle) return
        val active = store.listRecords().asReversed()
            .filter { it.kind == RecordKind.SOS && it.dispatchStatus != DispatchStatus.RESOLVED }
            .firstNotNullOfOrNull { e ->
                runCatching { store.getSos(e.id) }.getOrNull()?.takeIf { it.state == SosState.ACTIVE }
            }
        if (active != null) setPhase(SosPhase.Raised(active))
    }

    @Synchronized
    fun press() {
        if (phase !is SosPhase.Idle && phase !is SosPhase.Failed) return
        setPhase(SosPhase.Holding(scheduler.nowMs() + holdMs))
        startTimer(holdMs) { openWindow() }
    }

    /** Released before the hold completed: nothing happens. Later releases do not cancel. */
    @Synchronized
    fun release() {
        if (phase is SosPhase.Holding) reset()
    }

    /** Cancels during the hold or the window: nothing is stored or sent. */
    @Synchronized
    fun cancel() {
        if (phase is SosPhase.Holding || phase is SosPhase.CancelWindow) reset()
    }

    /** Skips the rest of the window ("send now"). */
    @Synchronized
    fun raiseNow() {
        if (phase is SosPhase.Holding || phase is SosPhase.CancelWindow) raise()
    }

    /** Cancels a raised SOS: the alarm is kept and delivered, followed by the cancellation. */
    @Synchronized
    fun cancelRaised(reason: CancelReason, note: String? = null): Boolean {
        val raised = phase as? SosPhase.Raised ?: return false
        return try {
            store.cancelSos(raised.sos.id, reason, note)
            onQueued()
            setPhase(SosPhase.Idle)
            true
        } catch (e: CrewSafeException) {
            setPhase(SosPhase.Failed(describe(e)))
            false
        }
    }

    private fun openWindow() {
        setPhase(SosPhase.CancelWindow(scheduler.nowMs() + cancelWindowMs))
        startTimer(cancelWindowMs) { raise() }
    }

    private fun raise() {
        stopTimer()
        val fix = runCatching { fixes.lastFix() }.getOrNull()
        try {
            val sos = store.raiseSos(crew(), fix, null)
            setPhase(SosPhase.Raised(sos))
            onQueued()
        } catch (e: CrewSafeException) {
            setPhase(SosPhase.Failed(describe(e)))
        }
    }

    private fun startTimer(delayMs: Long, action: () -> Unit) {
        stopTimer()
        val gen = generation
        timer = scheduler.schedule(delayMs) {
            synchronized(this) { if (gen == generation) action() }
        }
    }

    private fun stopTimer() {
        generation++
        timer?.cancel()
        timer = null
    }

    private fun reset() {
        stopTimer()
        setPhase(SosPhase.Idle)
    }

    private fun setPhase(p: SosPhase) {
        phase = p
        listener?.invoke(p)
    }
}
