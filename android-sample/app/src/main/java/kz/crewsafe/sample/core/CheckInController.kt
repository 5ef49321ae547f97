package kz.crewsafe.sample.core

import kz.crewsafe.CheckIn
import kz.crewsafe.CheckInState
import kz.crewsafe.CrewIdentity
import kz.crewsafe.CrewSafeException
import kz.crewsafe.CrewStore
import kz.crewsafe.RecordChange
import kz.crewsafe.RecordKind
import kz.crewsafe.RecordListener
import kz.crewsafe.Subscription
import kz.crewsafe.SyncState
import java.time.Duration
import java.time.Instant
import java.time.ZoneId

data class CheckInUiState(
    /** The running check-in, or the last one closed on this screen; null: none. */
    val checkIn: CheckIn? = null,
    /** A bad minutes value or address, per field. */
    val fieldError: FieldError? = null,
    /** Why the last action failed. */
    val error: String? = null,
)

/**
 * The lone-worker check-in section: before going in somewhere alone the crew starts a check-in
 * ("expect me back within 20 minutes, Abay ave 12, flat 40"); the server raises an alarm for
 * the dispatcher by itself if "I'm safe" has not arrived by the due time, even if this phone
 * is offline or broken. More time can be asked for ([extend]). Every action is stored and
 * queued in the SOS lane before it returns, even offline.
 *
 * While [start]ed it follows record changes, so the delivery states shown stay current.
 * [listener] is called on the caller's or a library thread; it must not block.
 */
class CheckInController(
    private val store: CrewStore,
    private val crew: () -> CrewIdentity,
    private val fixes: FixSource = FixSource { null },
    private val onQueued: () -> Unit = {},
) {
    @Volatile
    var state = CheckInUiState()
        private set

    @Volatile
    var listener: ((CheckInUiState) -> Unit)? = null

    private var subscription: Subscription? = null

    /** Follows record changes and shows a check-in still open from before a restart. */
    @Synchronized
    fun start() {
        if (subscription == null) {
            subscription = store.subscribeRecords(object : RecordListener {
                override fun onRecordChanged(change: RecordChange) = changed(change)
            })
        }
        restore()
    }

    @Synchronized
    fun stop() {
        subscription?.let { it.cancel(); it.close() }
        subscription = null
    }

    /** Shows the newest open check-in, if there is one and nothing is shown yet. */
    @Synchronized
    fun restore() {
        if (state.checkIn != null) return
        val open = store.listRecords().asReversed()
            .filter { it.kind == RecordKind.CHECK_IN_START }
            .firstNotNullOfOrNull { e ->
                runCatching { store.getCheckIn(e.id) }.getOrNull()?.takeIf { it.state == CheckInState.OPEN }
            }
        if (open != null) set(CheckInUiState(open))
    }

    /** Whether a new check-in can be started (none is running). */
    val canStart: Boolean get() = state.checkIn?.state != CheckInState.OPEN

    /** Starts a check-in due in [minutes] (1 to 1440) at [address]. Null (and an error) if refused. */
    @Synchronized
    fun startCheckIn(minutes: Int, address: String, note: String? = null): CheckIn? {
        if (!canStart) {
            set(state.copy(error = "A check-in is already running: check in or extend it."))
            return null
        }
        return act {
            store.startCheckIn(
                crew(), minutes.coerceAtLeast(0).toUInt(), address.trim().ifBlank { null },
                note?.trim()?.ifBlank { null }, runCatching { fixes.lastFix() }.getOrNull(),
            )
        }
    }

    /** Asks for [minutes] more (1 to 1440). */
    @Synchronized
    fun extend(minutes: Int): CheckIn? {
        val id = openId() ?: return null
        return act { store.extendCheckIn(id, minutes.coerceAtLeast(0).toUInt()) }
    }

    /** "I'm safe": closes the running check-in, with the current position if there is one. */
    @Synchronized
    fun checkIn(): CheckIn? {
        val id = openId() ?: return null
        return act { store.checkIn(id, runCatching { fixes.lastFix() }.getOrNull()) }
    }

    /** Clears a closed check-in from the screen. */
    @Synchronized
    fun dismiss() {
        if (canStart) set(CheckInUiState())
    }

    /** Re-reads the shown check-in (called for every check-in record change). */
    @Synchronized
    fun refresh() {
        val shown = state.checkIn ?: return
        val fresh = try {
            store.getCheckIn(shown.id)
        } catch (e: CrewSafeException) {
            return // purged long after delivery: keep what is shown
        }
        if (fresh != shown) set(state.copy(checkIn = fresh))
    }

    /** The section's text: due time and minutes left, or when the crew checked in; delivery. */
    fun statusText(now: Instant = Instant.now(), zone: ZoneId = ZoneId.systemDefault()): String =
        state.checkIn?.let { checkInStatus(it, now, zone) } ?: "No check-in running"

    private fun openId(): String? {
        val c = state.checkIn?.takeIf { it.state == CheckInState.OPEN }
        if (c == null) set(state.copy(error = "No check-in is running."))
        return c?.id
    }

    private fun act(call: () -> CheckIn): CheckIn? = try {
        val c = call()
        set(CheckInUiState(c))
        onQueued()
        c
    } catch (e: CrewSafeException.InvalidInput) {
        set(state.copy(fieldError = FieldError(e.field, e.reason), error = null))
        null
    } catch (e: CrewSafeException) {
        set(state.copy(fieldError = null, error = describe(e)))
        null
    }

    private fun changed(change: RecordChange) {
        when (change.kind) {
            RecordKind.CHECK_IN_START, RecordKind.CHECK_IN_EXTEND, RecordKind.CHECK_IN_DONE -> refresh()
            RecordKind.SOS, RecordKind.SOS_LOCATION, RecordKind.SOS_CANCEL, RecordKind.INCIDENT_REPORT -> {}
        }
    }

    private fun set(s: CheckInUiState) {
        state = s
        listener?.invoke(s)
    }
}

/**
 * "Check in by 14:35 (25 min left) · Abay ave 12 — dispatch has it", "Overdue since 14:35 —
 * dispatch is alerted: tap I'm safe", "Checked in safe at 14:20 — dispatch was told". The due
 * time is the phone's estimate (the server times it from when it received the start).
 */
fun checkInStatus(c: CheckIn, now: Instant = Instant.now(), zone: ZoneId = ZoneId.systemDefault()): String {
    val where = c.address?.let { " · $it" } ?: ""
    if (c.state == CheckInState.DONE) {
        val told = if (c.doneSyncState == SyncState.DELIVERED) "dispatch was told" else "telling dispatch…"
        return "Checked in safe at ${hhmm(c.doneAt ?: now, zone)}$where — $told"
    }
    val delivered = c.syncState == SyncState.DELIVERED && c.extensions.all { it.syncState == SyncState.DELIVERED }
    val told = if (delivered) "dispatch has it" else "not sent yet: it leaves as soon as there is a network"
    val left = Duration.between(now, c.dueAt)
    if (left.isNegative) {
        val alert = if (delivered) "dispatch is alerted" else "not sent yet"
        return "Overdue since ${hhmm(c.dueAt, zone)}$where — $alert: tap I'm safe"
    }
    val minutes = (left.toSeconds() + 59) / 60
    return "Check in by ${hhmm(c.dueAt, zone)} ($minutes min left)$where — $told"
}
