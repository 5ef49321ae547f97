package kz.crewsafe.sample.android

import android.content.Context
import kz.crewsafe.sample.core.SampleSettings

/**
 * The tester's settings in SharedPreferences. (A production app would get the device token
 * from its enrollment flow and keep it wrapped like the data key.)
 */
class SettingsPrefs(context: Context) {
    private val prefs = context.getSharedPreferences("crewsafe-settings", Context.MODE_PRIVATE)

    fun load(): SampleSettings {
        val d = SampleSettings()
        return SampleSettings(
            serverUrl = prefs.getString("serverUrl", null) ?: d.serverUrl,
            deviceId = prefs.getString("deviceId", null) ?: d.deviceId,
            deviceToken = prefs.getString("deviceToken", null) ?: d.deviceToken,
            crewId = prefs.getString("crewId", null) ?: d.crewId,
            staffId = prefs.getString("staffId", null) ?: d.staffId,
            extraRootCertsPem = prefs.getString("extraRootCertsPem", null) ?: d.extraRootCertsPem,
        )
    }

    fun save(s: SampleSettings) {
        prefs.edit()
            .putString("serverUrl", s.serverUrl)
            .putString("deviceId", s.deviceId)
            .putString("deviceToken", s.deviceToken)
            .putString("crewId", s.crewId)
            .putString("staffId", s.staffId)
            .putString("extraRootCertsPem", s.extraRootCertsPem)
            .apply()
    }
}
