package kz.crewsafe.sample.android

import android.app.Activity
import android.app.AlertDialog
import android.widget.LinearLayout
import android.widget.ScrollView
import kz.crewsafe.SyncState
import kz.crewsafe.sample.core.CrewSafeController
import kz.crewsafe.sample.core.SampleSettings
import kz.crewsafe.sample.core.summary

/** Every record with its delivery state, the pending counts, sync state, and the settings. */
class RecordsScreen(activity: Activity, private val c: CrewSafeController) : Screen(activity) {
    private val counts = activity.text(sizeSp = 18f)
    private val syncLine = activity.text()
    private val list = LinearLayout(activity).apply { orientation = LinearLayout.VERTICAL }

    private val s = c.settings
    private val serverUrl = activity.field("Server URL (https://, or http://127.0.0.1 with adb reverse)", s.serverUrl)
    private val deviceId = activity.field("Device id", s.deviceId)
    private val deviceToken = activity.field("Device token (from enroll-device)", s.deviceToken)
    private val crewId = activity.field("Crew id", s.crewId)
    private val staffId = activity.field("Staff id (optional)", s.staffId)
    private val rootPem = activity.field("Extra root CA, PEM (optional, for a test server)", s.extraRootCertsPem, lines = 3)
    private val settingsStatus = activity.text(c.settingsProblem ?: "")

    override val view = ScrollView(activity).apply {
        addView(activity.column(
            counts, syncLine,
            activity.button("Sync now") { SyncWork.requestNow(activity) },
            list,
            activity.text("Settings", 20f), serverUrl, deviceId, deviceToken, crewId, staffId, rootPem,
            activity.button("Save settings") { save() }, settingsStatus,
        ))
    }

    override fun attach() {
        c.records.listener = { ui(::render) }
        c.records.refresh()
        render()
    }

    override fun detach() {
        c.records.listener = null
    }

    private fun render() {
        val st = c.records.state
        val n = st.counts
        counts.text = "Pending: SOS ${n.sos} · reports ${n.reports} · wedged ${n.wedged} · drafts ${n.drafts}"
        syncLine.text = (if (st.online) "Online" else "Offline") + " · " + when {
            st.syncing -> "syncing…"
            st.problem != null -> st.problem
            st.lastReport != null -> "last sync: " + st.lastReport.summary()
            else -> "not synced yet"
        }
        list.removeAllViews()
        for (e in st.records.asReversed().take(100)) {
            list.addView(activity.text(e.summary()).apply {
                if (e.state == SyncState.WEDGED) setOnClickListener { askWedged(e.id) }
            })
        }
    }

    /** A wedged record was refused by the server for good: retry after a fix, or discard. */
    private fun askWedged(id: String) {
        AlertDialog.Builder(activity)
            .setMessage("The server refused this record. Retry once the cause is fixed, or discard it.")
            .setPositiveButton("Retry") { _, _ -> c.retryWedged(id) }
            .setNegativeButton("Discard") { _, _ -> c.discardWedged(id) }
            .show()
    }

    private fun save() {
        val next = SampleSettings(
            serverUrl = serverUrl.text.toString().trim(),
            deviceId = deviceId.text.toString().trim(),
            deviceToken = deviceToken.text.toString().trim(),
            crewId = crewId.text.toString().trim(),
            staffId = staffId.text.toString().trim(),
            extraRootCertsPem = rootPem.text.toString(),
        )
        SettingsPrefs(activity).save(next)
        settingsStatus.text = c.applySettings(next) ?: "Saved; sync is configured."
        SyncWork.requestNow(activity)
    }
}
