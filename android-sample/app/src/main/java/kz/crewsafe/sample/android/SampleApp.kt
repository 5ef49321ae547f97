package kz.crewsafe.sample.android

import android.app.Application
import java.io.File
import kz.crewsafe.sample.core.CrewSafeController
import kz.crewsafe.sample.core.ExecutorScheduler
import kz.crewsafe.sample.core.openStore

/** Opens the store once per process; the activity and the WorkManager job share it. */
class SampleApp : Application() {
    lateinit var controller: CrewSafeController
        private set
    val scheduler = ExecutorScheduler()

    /** Shown once if an unreadable store had to be moved aside at startup. */
    var startupNotice: String? = null

    override fun onCreate() {
        super.onCreate()
        // noBackupFilesDir: never part of a backup or device transfer.
        val opened = openStore(File(noBackupFilesDir, "crewsafe/crewsafe.db"), KeystoreKeyStorage(this))
        opened.setAside?.let { startupNotice = "The old store could not be opened on this phone; it was kept as ${it.name}." }
        controller = CrewSafeController(
            store = opened.store,
            settings = SettingsPrefs(this).load(),
            connectivity = AndroidConnectivity(this),
            scheduler = scheduler,
            fixes = LastKnownFix(this),
            requestBackgroundSync = { SyncWork.requestNow(this) },
        )
        controller.start()
        SyncWork.schedulePeriodic(this)
    }
}
