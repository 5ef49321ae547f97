package kz.crewsafe.sample.android

import android.content.Context
import androidx.work.BackoffPolicy
import androidx.work.Constraints
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.ExistingWorkPolicy
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequestBuilder
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkManager
import androidx.work.Worker
import androidx.work.WorkerParameters
import java.util.concurrent.TimeUnit
import kz.crewsafe.sample.core.SyncResult

/**
 * Runs the blocking `syncNow()` when there is a network, also after the app was killed.
 * While the app runs, the library's own worker already delivers as soon as `setOnline(true)`;
 * this job is the backstop.
 */
class SyncWorker(context: Context, params: WorkerParameters) : Worker(context, params) {
    override fun doWork(): Result {
        val controller = (applicationContext as SampleApp).controller
        return when (val result = controller.syncNow()) {
            // Something left (a retry time, or queued meanwhile): WorkManager tries again.
            is SyncResult.Done ->
                if (result.report.pendingSos + result.report.pendingReports == 0uL) Result.success() else Result.retry()
            // A bad token or settings: retrying cannot help until a person fixes them.
            is SyncResult.NeedsAttention -> Result.failure()
        }
    }
}

object SyncWork {
    private val network = Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build()

    /** One sync as soon as there is a network (KEEP: one already waiting will do). */
    fun requestNow(context: Context) {
        val request = OneTimeWorkRequestBuilder<SyncWorker>()
            .setConstraints(network)
            .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 15, TimeUnit.SECONDS)
            .build()
        WorkManager.getInstance(context).enqueueUniqueWork("crewsafe-sync", ExistingWorkPolicy.KEEP, request)
    }

    /** Every 15 minutes (the platform minimum) with a network. */
    fun schedulePeriodic(context: Context) {
        val request = PeriodicWorkRequestBuilder<SyncWorker>(15, TimeUnit.MINUTES).setConstraints(network).build()
        WorkManager.getInstance(context)
            .enqueueUniquePeriodicWork("crewsafe-sync-periodic", ExistingPeriodicWorkPolicy.KEEP, request)
    }
}
