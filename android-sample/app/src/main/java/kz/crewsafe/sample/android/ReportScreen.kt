package kz.crewsafe.sample.android

import android.app.Activity
import android.text.Editable
import android.text.TextWatcher
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.CheckBox
import android.widget.EditText
import android.widget.ScrollView
import android.widget.Spinner
import java.time.Instant
import kz.crewsafe.HarmedStaff
import kz.crewsafe.IncidentFields
import kz.crewsafe.IncidentKind
import kz.crewsafe.Severity
import kz.crewsafe.StaffRole
import kz.crewsafe.sample.core.CrewSafeController
import kz.crewsafe.sample.core.DraftEditor

/** The incident report form. Every change is autosaved as a draft; "Send" finalizes it. */
class ReportScreen(activity: Activity, private val c: CrewSafeController) : Screen(activity) {
    private val editor: DraftEditor = c.newDraftEditor()
    private var filling = false // true while the form is filled from the model
    private var shown = IncidentFields() // what the form displays

    private val narrative = activity.field("What happened (required)", lines = 4)
    private val address = activity.field("Address")
    private val perpetrator = activity.field("Perpetrator description", lines = 2)
    private val injury = activity.field("Injury of the harmed paramedic")
    private val harmed = CheckBox(activity).apply { text = "A crew member was harmed" }
    private val police = CheckBox(activity).apply { text = "Police called" }
    private val kind = spinner(IncidentKind.entries) { f, v -> f.copy(kind = v) }
    private val severity = spinner(Severity.entries) { f, v -> f.copy(severity = v) }
    private val status = activity.text()

    override val view = ScrollView(activity).apply {
        addView(activity.column(
            activity.text("Incident report", 22f), kind, severity, narrative, address, perpetrator,
            harmed, injury, police,
            activity.button("Occurred: now") { Instant.now().let { t -> change { it.copy(occurredAt = t) } } },
            status,
            activity.button("Send") { editor.finalizeReport()?.let { render() } },
            activity.button("Discard draft") { editor.discard(); fill() },
        ))
    }

    init {
        bind(narrative) { f, v -> f.copy(narrative = v) }
        bind(address) { f, v -> f.copy(address = v) }
        bind(perpetrator) { f, v -> f.copy(perpetratorDescription = v) }
        bind(injury) { f, _ -> f.copy(staffHarmed = harmedStaff()) }
        harmed.setOnCheckedChangeListener { _, _ -> change { it.copy(staffHarmed = harmedStaff()) } }
        police.setOnCheckedChangeListener { _, on -> change { it.copy(policeCalled = on) } }
    }

    override fun attach() {
        editor.resumeLatest()
        editor.listener = { ui(::render) }
        fill()
    }

    override fun pause() {
        editor.saveNow()
    }

    override fun detach() {
        editor.saveNow()
        editor.listener = null
    }

    private fun harmedStaff() =
        if (harmed.isChecked) listOf(HarmedStaff(StaffRole.PARAMEDIC, null, injury.text.toString().ifBlank { null })) else emptyList()

    /** Passes a real change to the editor (widgets also fire when filled or laid out). */
    private fun change(edit: (IncidentFields) -> IncidentFields) {
        if (filling || edit(shown) == shown) return
        shown = edit(shown)
        editor.edit(edit)
    }

    private fun bind(view: EditText, apply: (IncidentFields, String?) -> IncidentFields) =
        view.addTextChangedListener(object : TextWatcher {
            override fun beforeTextChanged(s: CharSequence?, a: Int, b: Int, c: Int) {}
            override fun onTextChanged(s: CharSequence?, a: Int, b: Int, c: Int) {}
            override fun afterTextChanged(s: Editable?) = change { apply(it, s?.toString()?.ifEmpty { null }) }
        })

    /** A drop-down with "—" (not set) and [items]. */
    private fun <T : Any> spinner(items: List<T>, apply: (IncidentFields, T?) -> IncidentFields) = Spinner(activity).apply {
        val labels = listOf("—") + items.map { it.toString().lowercase().replace('_', ' ') }
        adapter = ArrayAdapter(activity, android.R.layout.simple_spinner_dropdown_item, labels)
        onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(p: AdapterView<*>?, v: View?, i: Int, id: Long) =
                change { apply(it, items.getOrNull(i - 1)) }
            override fun onNothingSelected(p: AdapterView<*>?) {}
        }
    }

    /** Puts the model's fields into the form (after resume, a merge or a reload). */
    private fun fill() {
        filling = true
        val f = editor.state.fields
        shown = f
        fun set(view: EditText, value: String?) { if (view.text.toString() != (value ?: "")) view.setText(value ?: "") }
        set(narrative, f.narrative)
        set(address, f.address)
        set(perpetrator, f.perpetratorDescription)
        set(injury, f.staffHarmed.firstOrNull()?.injuryDescription)
        harmed.isChecked = f.staffHarmed.isNotEmpty()
        police.isChecked = f.policeCalled == true
        kind.setSelection(f.kind?.let { it.ordinal + 1 } ?: 0)
        severity.setSelection(f.severity?.let { it.ordinal + 1 } ?: 0)
        filling = false
        render()
    }

    private fun render() {
        val s = editor.state
        if (s.fields != shown) fill() // merged with another screen, reloaded or discarded
        status.text = when {
            s.report != null -> "Sent to the queue (${s.report!!.syncState.name.lowercase()}). Discard to start a new report."
            s.fieldError != null -> "Fix ${s.fieldError!!.field}: ${s.fieldError!!.reason}"
            s.error != null -> s.error
            s.dirty -> "Editing…"
            s.draftId != null -> "Draft saved (revision ${s.revision})" +
                if (s.conflictsMerged > 0) " — merged ${s.conflictsMerged} change(s) from another screen" else ""
            else -> "New report"
        }
    }
}
