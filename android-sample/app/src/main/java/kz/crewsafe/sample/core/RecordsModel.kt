package kz.crewsafe.sample.core

import kz.crewsafe.CrewSafeException
import kz.crewsafe.CrewStore
import kz.crewsafe.PendingCounts
import kz.crewsafe.QueueEntry
import kz.crewsafe.RecordChange
import kz.crewsafe.RecordListener
import kz.crewsafe.Subscription
import kz.crewsafe.SyncListener
import kz.crewsafe.SyncOutcome
import kz.crewsafe.SyncPhase
import kz.crewsafe.SyncProgress
import kz.crewsafe.SyncReport

data class RecordsState(
    val records: List<QueueEntry> = emptyList(),
    val counts: PendingCounts = PendingCounts(0uL, 0uL, 0uL, 0uL),
    val online: Boolean = false,
    val syncing: Boolean = false,
    val lastReport: SyncReport? = null,
    /** Why the last sync stopped, if it needs a person (bad token, TLS, settings). */
    val problem: String? = null,
)

sealed class SyncResult {
    data class Done(val report: SyncReport) : SyncResult()

    /** Nothing more will happen without a person: fix the settings or the enrollment. */
    data class NeedsAttention(val message: String) : SyncResult()
}

/**
 * The records screen's model: every record with its delivery state, the pending counts, and
 * the sync state, refreshed whenever the library reports a record change or a sync ends
 * (its callbacks come on library threads).
 */
class RecordsModel(private val store: CrewStore) : AutoCloseable {
    @Volatile
    var state = RecordsState()
        private set

    @Volatile
    var listener: ((RecordsState) -> Unit)? = null

    private val subscriptions = mutableListOf<Subscription>()

    fun start() {
        subscriptions += store.subscribeRecords(object : RecordListener {
            override fun onRecordChanged(change: RecordChange) = refresh()
        })
        subscriptions += store.subscribeSync(object : SyncListener {
            override fun onSyncProgress(progress: SyncProgress) {
                update { it.copy(syncing = progress.phase != SyncPhase.FINISHED) }
                if (progress.phase == SyncPhase.FINISHED) refresh()
            }
        })
        refresh()
    }

    fun refresh() {
        try {
            val records = store.listRecords()
            val counts = store.pendingCounts()
            update { it.copy(records = records, counts = counts) }
        } catch (e: CrewSafeException) {
            update { it.copy(problem = describe(e)) }
        }
    }

    fun setOnline(online: Boolean) = update { it.copy(online = online) }

    /** Runs one blocking sync (call it off the main thread: WorkManager, a BGTask). */
    fun syncNow(): SyncResult {
        val result = try {
            SyncResult.Done(store.syncNow())
        } catch (e: CrewSafeException) {
            SyncResult.NeedsAttention(describe(e))
        }
        update {
            when (result) {
                is SyncResult.Done -> it.copy(lastReport = result.report, problem = null)
                is SyncResult.NeedsAttention -> it.copy(problem = result.message)
            }
        }
        refresh()
        return result
    }

    @Synchronized
    private fun update(change: (RecordsState) -> RecordsState) {
        state = change(state)
        listener?.invoke(state)
    }

    override fun close() {
        subscriptions.forEach { it.cancel(); it.close() }
        subscriptions.clear()
    }
}

/** One line for the list: "SOS · delivered (acknowledged)". */
fun QueueEntry.summary(): String {
    val what = kind.name.lowercase().replace('_', ' ')
    val status = dispatchStatus?.let { " (${it.name.lowercase()})" } ?: ""
    val reason = wedgedReason?.let { ": $it" } ?: ""
    return "$what · ${state.name.lowercase()}$status$reason"
}

fun SyncReport.summary(): String = when (val o = outcome) {
    is SyncOutcome.Complete -> "all delivered ($accepted new, $duplicates already there)"
    is SyncOutcome.Deferred -> "waiting to retry; ${pendingSos + pendingReports} pending"
    is SyncOutcome.WillRetry -> "will retry: ${o.reason}"
}

/** A short message for a person, per error. */
fun describe(e: CrewSafeException): String = when (e) {
    is CrewSafeException.WrongKey -> "This store's key is not available on this phone."
    is CrewSafeException.InvalidInput -> "Invalid ${e.field}: ${e.reason}"
    is CrewSafeException.Conflict -> "Changed on another screen."
    is CrewSafeException.InvalidState -> "Not allowed: ${e.reason}"
    is CrewSafeException.NotConfigured -> "Set the server address and device token first."
    is CrewSafeException.Unauthorized -> "The server refused the device token: enroll the device again."
    is CrewSafeException.PinMismatch -> "The server's key does not match the pinned keys."
    is CrewSafeException.CertificateRejected -> "The server certificate is not trusted: ${e.reason}"
    is CrewSafeException.HostFailed -> "The token provider failed: ${e.reason}"
    is CrewSafeException.Closed -> "The store is closed."
    is CrewSafeException.InvalidDeviceToken -> "The device token is damaged (a space or line break?): enroll the device again."
    is CrewSafeException.ServerRejectedRequest ->
        "The server refused the upload (HTTP ${e.status}): check the server address. Alarms stay queued."
    else -> e.message ?: e::class.java.simpleName
}
