package kz.crewsafe.sample.core

import kz.crewsafe.CancelReason
import kz.crewsafe.CrewIdentity
import kz.crewsafe.CrewSafeException
import kz.crewsafe.CrewStore
import kz.crewsafe.DispatchStatus
import kz.crewsafe.RecordChange
import kz.crewsafe.RecordKind
import kz.crewsafe.RecordListener
import kz.crewsafe.Sos
import kz.crewsafe.SosState
import kz.crewsafe.Subscription
import kz.crewsafe.SyncState
import java.time.Instant
import java.time.ZoneId
import java.time.format.DateTimeFormatter

/** Where the SOS button is. */
sealed class SosPhase {
    object Idle : SosPhase()

    /** The button is held; released before [armedAtMs] nothing happens. */
    data class Holding(val armedAtMs: Long) : SosPhase()

    /** Last chance to cancel: nothing is stored yet; the SOS is raised at [raiseAtMs]. */
    data class CancelWindow(val raiseAtMs: Long) : SosPhase()

    /**
     * Stored and queued (first in line); it leaves the phone as soon as there is a network.
     * [sos] is re-read whenever the library reports a change (delivered, acknowledged,
     * resolved, a new dispatcher message), so it always holds the latest dispatch answer.
     */
    data class Raised(val sos: Sos) : SosPhase() {
        /** What the crew is told about it. */
        fun status(zone: ZoneId = ZoneId.systemDefault()): SosStatus = sosStatus(sos, zone)

        /** Dispatch resolved it, or the crew cancelled it: a new SOS may be raised. */
        val finished: Boolean get() = sos.isFinished()
    }

    data class Failed(val reason: String) : SosPhase()
}

/**
 * The SOS button: press and hold for [holdMs], then [cancelWindowMs] to cancel before the
 * alarm is stored. A cancel inside the window stores and sends nothing. After it, the alarm
 * stands; [cancelRaised] sends a cancellation and dispatch still sees both.
 *
 * While [start]ed it listens to record changes and keeps a raised alarm's phase up to date:
 * once the host says the network is up the library delivers the SOS and watches dispatch by
 * itself, so "help is on the way" and the dispatcher's message arrive with no sync call.
 *
 * [listener] is called on the caller's, the scheduler's or a library thread; it must not
 * block.
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
    private var subscription: Subscription? = null

    /** Starts following record changes (delivery, dispatch answers) of the raised alarm. */
    @Synchronized
    fun start() {
        if (subscription != null) return
        subscription = store.subscribeRecords(object : RecordListener {
            override fun onRecordChanged(change: RecordChange) = changed(change)
        })
        refresh()
    }

    /** Stops following record changes. */
    @Synchronized
    fun stop() {
        subscription?.let { it.cancel(); it.close() }
        subscription = null
    }

    /**
     * Re-reads the raised alarm and publishes a new [SosPhase.Raised] if anything changed.
     * Called for every SOS record change; callable any time.
     */
    @Synchronized
    fun refresh() {
        val raised = phase as? SosPhase.Raised ?: return
        val fresh = try {
            store.getSos(raised.sos.id)
        } catch (e: CrewSafeException) {
            return // e.g. its content was purged long after delivery: keep what is shown
        }
        if (fresh != raised.sos) setPhase(SosPhase.Raised(fresh))
    }

    private fun changed(change: RecordChange) {
        when (change.kind) {
            // The alarm itself (delivery, dispatch status and message), its cancellation or
            // a follow-up location: re-read it.
            RecordKind.SOS, RecordKind.SOS_CANCEL, RecordKind.SOS_LOCATION -> refresh()
            RecordKind.INCIDENT_REPORT, RecordKind.CHECK_IN_START, RecordKind.CHECK_IN_EXTEND,
            RecordKind.CHECK_IN_DONE -> {}
        }
    }

    /**
     * The text under the button for the current phase: the hold and cancel countdowns, or for
     * a raised alarm "Sent — waiting for dispatch", "Help is on the way — acknowledged by …"
     * with the dispatcher's message, "Resolved by dispatch".
     */
    fun statusText(zone: ZoneId = ZoneId.systemDefault()): String = when (val p = phase) {
        is SosPhase.Idle -> "Press and hold for ${holdMs / 1000.0} s"
        is SosPhase.Holding -> "Keep holding…"
        is SosPhase.CancelWindow ->
            "Sending in ${((p.raiseAtMs - scheduler.nowMs() + 999) / 1000).coerceAtLeast(0)} s — cancel now if by mistake"
        is SosPhase.Raised -> p.status(zone).text
        is SosPhase.Failed -> "Could not raise the SOS: ${p.reason}"
    }

    /** Whether "Cancel the SOS…" makes sense: raised, and neither resolved nor cancelled. */
    val canCancelRaised: Boolean get() = (phase as? SosPhase.Raised)?.finished == false

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

    /** Starts the hold. A raised alarm blocks a second one until dispatch resolved it. */
    @Synchronized
    fun press() {
        val p = phase
        if (p !is SosPhase.Idle && p !is SosPhase.Failed && !(p is SosPhase.Raised && p.finished)) return
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

    /** Clears a resolved alarm from the screen (an open one stays). */
    @Synchronized
    fun dismiss() {
        if ((phase as? SosPhase.Raised)?.finished == true) setPhase(SosPhase.Idle)
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

/**
 * What the crew is told about a raised alarm: [headline] ("Help is on the way — acknowledged
 * by … at 14:05") and the dispatcher's latest [message], if any.
 */
data class SosStatus(
    val headline: String,
    val message: String? = null,
    /** Dispatch acknowledged it (and has not resolved it yet). */
    val helpOnTheWay: Boolean = false,
) {
    /** Both, for one text view. */
    val text: String get() = message?.let { "$headline\nDispatch: $it" } ?: headline
}

/** The status line of [sos]; times of day in [zone]. */
fun sosStatus(sos: Sos, zone: ZoneId = ZoneId.systemDefault()): SosStatus {
    val answer = sos.dispatch
    val message = answer?.message?.takeIf { it.isNotBlank() }
    if (sos.state == SosState.CANCELLED) {
        val told = sos.cancellation?.syncState == SyncState.DELIVERED
        return SosStatus(if (told) "Cancelled — dispatch was told" else "Cancelled — telling dispatch", message)
    }
    return when (sos.dispatchStatus ?: answer?.status) {
        DispatchStatus.RESOLVED -> SosStatus(
            "Resolved by dispatch" + (answer?.resolvedAt?.let { " at ${hhmm(it, zone)}" } ?: ""), message,
        )
        DispatchStatus.ACKNOWLEDGED -> {
            val who = answer?.acknowledgedBy?.takeIf { it.isNotBlank() } ?: "dispatch"
            val at = answer?.acknowledgedAt ?: answer?.updatedAt
            SosStatus(
                "Help is on the way — acknowledged by $who" + (at?.let { " at ${hhmm(it, zone)}" } ?: ""),
                message, helpOnTheWay = true,
            )
        }
        DispatchStatus.DELIVERED, null -> when (sos.syncState) {
            SyncState.DELIVERED -> SosStatus("Sent — waiting for dispatch", message)
            SyncState.SENDING -> SosStatus("Sending the SOS…")
            SyncState.WEDGED -> SosStatus("The server did not accept the SOS — see Records; call dispatch")
            SyncState.QUEUED, SyncState.DRAFT -> SosStatus("SOS stored — it is sent as soon as there is a network")
        }
    }
}

/** Dispatch resolved it, or the crew cancelled it. */
fun Sos.isFinished(): Boolean =
    state == SosState.CANCELLED || (dispatchStatus ?: dispatch?.status) == DispatchStatus.RESOLVED

private val HH_MM: DateTimeFormatter = DateTimeFormatter.ofPattern("HH:mm")

/** "14:05" in [zone]. */
fun hhmm(t: Instant, zone: ZoneId = ZoneId.systemDefault()): String = HH_MM.format(t.atZone(zone))
