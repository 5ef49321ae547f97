package kz.crewsafe.sample.core

import kz.crewsafe.CrewIdentity
import kz.crewsafe.CrewSafeException
import kz.crewsafe.CrewStore
import kz.crewsafe.HostException
import kz.crewsafe.SyncConfig
import kz.crewsafe.TokenProvider

/** What a tester types in (persisted by the platform layer). */
data class SampleSettings(
    val serverUrl: String = DEFAULT_SERVER_URL,
    val deviceId: String = "",
    val deviceToken: String = "",
    val crewId: String = "",
    val staffId: String = "",
    /** PEM of a private or test CA the server's certificate chains to (optional). */
    val extraRootCertsPem: String = "",
) {
    fun crew() = CrewIdentity(deviceId = deviceId, crewId = crewId, staffId = staffId.ifBlank { null })

    companion object {
        /**
         * The emulator reaches the host as 10.0.2.2. The library allows plain http only to
         * loopback, so this needs an https server (or `adb reverse` and http://127.0.0.1).
         */
        const val DEFAULT_SERVER_URL = "https://10.0.2.2:8443"
    }
}

/** Hands the library the device token from the settings. A real app would refresh it. */
class SettingsTokens(private val source: () -> String) : TokenProvider {
    override fun token(): String = source().ifBlank { throw HostException.Failed("no device token set") }

    override fun refreshToken(): String = token()
}

/**
 * The app's view model over one open store: the SOS button, lone-worker check-ins, report
 * drafts, the records list, connectivity and sync. [requestBackgroundSync] is called when something was queued or the
 * network returned (Android: enqueue the WorkManager job; iOS: submit the BGTask).
 */
class CrewSafeController(
    val store: CrewStore,
    settings: SampleSettings,
    private val connectivity: Connectivity,
    private val scheduler: Scheduler,
    fixes: FixSource = FixSource { null },
    private val requestBackgroundSync: () -> Unit = {},
) : AutoCloseable {
    @Volatile
    var settings: SampleSettings = settings
        private set

    /** Why the settings were refused (null: sync is configured). */
    @Volatile
    var settingsProblem: String? = null
        private set

    val sos = SosController(store, { this.settings.crew() }, scheduler, fixes, onQueued = requestBackgroundSync)
    val checkIns = CheckInController(store, { this.settings.crew() }, fixes, onQueued = requestBackgroundSync)
    val records = RecordsModel(store)
    private val tokens = SettingsTokens { this.settings.deviceToken }
    private var lastOnline: Boolean? = null

    init {
        applySettings(settings)
    }

    /**
     * Configures sync with [s]. Returns null, or why the library refused them. The retry delay
     * a failure under the old settings left (say a TLS error before the CA was added) is
     * forgotten through `setOnline(true)` when the network is up, so the fix is tried now.
     */
    @Synchronized
    fun applySettings(s: SampleSettings): String? {
        settings = s
        settingsProblem = try {
            val pem = s.extraRootCertsPem.ifBlank { null }
            store.configureSync(SyncConfig(serverUrl = s.serverUrl.trim(), extraRootCertsPem = pem), tokens)
            if (lastOnline == true) store.setOnline(true)
            null
        } catch (e: CrewSafeException) {
            describe(e)
        }
        return settingsProblem
    }

    /**
     * Starts listening to records and the network; shows an SOS and a check-in still active
     * from before. Once the network is reported up, the library delivers and follows an open
     * SOS by itself: [sos] hears "acknowledged" and the dispatcher's message without a sync.
     */
    fun start() {
        records.start()
        sos.restore()
        sos.start()
        checkIns.start()
        connectivity.start { online -> setOnline(online) }
    }

    /**
     * Passes a network change to the store. Platforms report the same state many times
     * (Android on every capability change); only real changes go through, because going
     * online also forgets the retry delays.
     */
    @Synchronized
    fun setOnline(online: Boolean) {
        if (online == lastOnline) return
        lastOnline = online
        try {
            store.setOnline(online)
        } catch (e: CrewSafeException) {
            return
        }
        records.setOnline(online)
        if (online && records.state.counts.let { it.sos + it.reports > 0uL }) requestBackgroundSync()
    }

    fun newDraftEditor(): DraftEditor =
        DraftEditor(store, scheduler, { settings.crew() }, onQueued = requestBackgroundSync)

    /** One blocking sync; call it from a background job. */
    fun syncNow(): SyncResult = records.syncNow()

    fun retryWedged(id: String) = store.retryWedged(id).also { requestBackgroundSync() }

    fun discardWedged(id: String): ULong = store.discardWedged(id).also { records.refresh() }

    /** Stops callbacks and the sync worker, closes the store and frees its native handle. */
    override fun close() {
        connectivity.stop()
        records.close()
        sos.stop()
        checkIns.stop()
        store.shutdown()
        runCatching { store.closeStore() }
        store.close()
    }
}
