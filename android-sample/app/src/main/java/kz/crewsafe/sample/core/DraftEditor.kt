package kz.crewsafe.sample.core

import kz.crewsafe.CrewIdentity
import kz.crewsafe.CrewSafeException
import kz.crewsafe.CrewStore
import kz.crewsafe.IncidentFields
import kz.crewsafe.IncidentReport

data class FieldError(val field: String, val reason: String)

data class DraftState(
    val draftId: String? = null,
    /** The stored revision [fields] are based on (0: not saved yet). */
    val revision: ULong = 0uL,
    val fields: IncidentFields = IncidentFields(),
    /** Edits not saved yet. */
    val dirty: Boolean = false,
    /** How many times a save met another screen's newer revision and merged it. */
    val conflictsMerged: Int = 0,
    val fieldError: FieldError? = null,
    val error: String? = null,
    /** Set once the draft was finalized and queued. */
    val report: IncidentReport? = null,
)

/**
 * The report form's model: every edit is autosaved [autosaveMs] after the last one, with the
 * draft revision the editor last saw. If another screen saved meanwhile (`Conflict`), the
 * stored version is read and merged field by field: fields this editor changed win, the
 * other screen's changes to the remaining fields are kept. The draft itself is created by the
 * first save, so opening the form alone leaves nothing behind.
 */
class DraftEditor(
    private val store: CrewStore,
    private val scheduler: Scheduler,
    private val crew: () -> CrewIdentity,
    val autosaveMs: Long = 1_000,
    private val onQueued: () -> Unit = {},
) {
    @Volatile
    var state = DraftState()
        private set

    @Volatile
    var listener: ((DraftState) -> Unit)? = null

    private var base = IncidentFields() // what the store holds at state.revision
    private var pending: Cancellable? = null

    /** Continues the newest unfinished draft, if there is one. */
    @Synchronized
    fun resumeLatest(): Boolean {
        val draft = store.listDrafts().lastOrNull() ?: return false
        base = draft.fields
        set(DraftState(draft.id, draft.revision, draft.fields))
        return true
    }

    /** Applies an edit now and schedules the autosave. */
    @Synchronized
    fun edit(change: (IncidentFields) -> IncidentFields) {
        if (state.report != null) return
        set(state.copy(fields = change(state.fields), dirty = true, fieldError = null, error = null))
        pending?.cancel()
        pending = scheduler.schedule(autosaveMs) { saveNow() }
    }

    /** Saves pending edits now. Returns false (and sets an error) if they could not be saved. */
    @Synchronized
    fun saveNow(): Boolean {
        pending?.cancel()
        pending = null
        if (!state.dirty || state.report != null) return true
        return try {
            val id = state.draftId
            if (id == null) {
                val d = store.createDraft(crew(), state.fields)
                base = d.fields
                set(state.copy(draftId = d.id, revision = d.revision, fields = d.fields, dirty = false))
            } else {
                saveMerging(id)
            }
            true
        } catch (e: CrewSafeException.InvalidInput) {
            set(state.copy(fieldError = FieldError(e.field, e.reason)))
            false
        } catch (e: CrewSafeException) {
            set(state.copy(error = describe(e)))
            false
        }
    }

    private fun saveMerging(id: String) {
        var revision = state.revision
        var fields = state.fields
        var merges = 0
        while (true) {
            try {
                val saved = store.updateDraft(id, revision, fields)
                base = fields
                set(state.copy(revision = saved.revision, fields = fields, dirty = false,
                    conflictsMerged = state.conflictsMerged + merges))
                return
            } catch (e: CrewSafeException.Conflict) {
                if (++merges > 3) throw e
                val theirs = store.getDraft(id)
                fields = merge(base, fields, theirs.fields)
                base = theirs.fields
                revision = theirs.revision
            }
        }
    }

    /**
     * Saves, then finalizes the draft into a queued report. A missing or bad field is reported
     * in [DraftState.fieldError]. If another screen changed the draft after this one saved,
     * nothing is sent: its version is loaded for the user to check first.
     */
    @Synchronized
    fun finalizeReport(): IncidentReport? {
        if (!saveNow()) return null
        val id = state.draftId ?: run {
            set(state.copy(error = "Nothing to send yet: fill in the report first."))
            return null
        }
        return try {
            val report = store.finalizeDraft(id, state.revision)
            set(state.copy(report = report, fieldError = null, error = null))
            onQueued()
            report
        } catch (e: CrewSafeException.InvalidInput) {
            set(state.copy(fieldError = FieldError(e.field, e.reason)))
            null
        } catch (e: CrewSafeException.Conflict) {
            val theirs = store.getDraft(id)
            base = theirs.fields
            set(state.copy(revision = theirs.revision, fields = theirs.fields, dirty = false,
                error = "The draft was changed on another screen: check it and send again."))
            null
        } catch (e: CrewSafeException) {
            set(state.copy(error = describe(e)))
            null
        }
    }

    /** Deletes the draft and starts over with an empty form. */
    @Synchronized
    fun discard() {
        pending?.cancel()
        state.draftId?.let { id -> if (state.report == null) runCatching { store.deleteDraft(id) } }
        base = IncidentFields()
        set(DraftState())
    }

    private fun set(s: DraftState) {
        state = s
        listener?.invoke(s)
    }
}

/** Three-way merge: a field changed in [mine] (against [base]) wins, otherwise [theirs]. */
fun merge(base: IncidentFields, mine: IncidentFields, theirs: IncidentFields): IncidentFields {
    fun <T> pick(b: T, m: T, t: T): T = if (m != b) m else t
    return IncidentFields(
        occurredAt = pick(base.occurredAt, mine.occurredAt, theirs.occurredAt),
        location = pick(base.location, mine.location, theirs.location),
        address = pick(base.address, mine.address, theirs.address),
        kind = pick(base.kind, mine.kind, theirs.kind),
        severity = pick(base.severity, mine.severity, theirs.severity),
        staffHarmed = pick(base.staffHarmed, mine.staffHarmed, theirs.staffHarmed),
        perpetratorDescription = pick(base.perpetratorDescription, mine.perpetratorDescription, theirs.perpetratorDescription),
        witnesses = pick(base.witnesses, mine.witnesses, theirs.witnesses),
        policeCalled = pick(base.policeCalled, mine.policeCalled, theirs.policeCalled),
        policeReportNumber = pick(base.policeReportNumber, mine.policeReportNumber, theirs.policeReportNumber),
        dispatchCallNumber = pick(base.dispatchCallNumber, mine.dispatchCallNumber, theirs.dispatchCallNumber),
        narrative = pick(base.narrative, mine.narrative, theirs.narrative),
    )
}
