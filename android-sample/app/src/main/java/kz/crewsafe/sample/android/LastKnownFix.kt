package kz.crewsafe.sample.android

import android.Manifest
import android.annotation.SuppressLint
import android.content.Context
import android.content.pm.PackageManager
import android.location.LocationManager
import java.time.Instant
import kz.crewsafe.LocationFix
import kz.crewsafe.LocationProvider
import kz.crewsafe.sample.core.FixSource

/** The newest last-known location of any enabled provider; null without permission. */
class LastKnownFix(private val context: Context) : FixSource {
    @SuppressLint("MissingPermission") // checked below
    override fun lastFix(): LocationFix? {
        val granted = listOf(Manifest.permission.ACCESS_FINE_LOCATION, Manifest.permission.ACCESS_COARSE_LOCATION)
            .any { context.checkSelfPermission(it) == PackageManager.PERMISSION_GRANTED }
        if (!granted) return null
        val manager = context.getSystemService(LocationManager::class.java) ?: return null
        val best = manager.getProviders(true)
            .mapNotNull { runCatching { manager.getLastKnownLocation(it) }.getOrNull() }
            .maxByOrNull { it.time } ?: return null
        return LocationFix(
            latitude = best.latitude,
            longitude = best.longitude,
            accuracyM = if (best.hasAccuracy()) best.accuracy.toDouble().coerceIn(0.0, 100_000.0) else 100_000.0,
            altitudeM = if (best.hasAltitude()) best.altitude.coerceIn(-1_000.0, 20_000.0) else null,
            provider = when (best.provider) {
                LocationManager.GPS_PROVIDER -> LocationProvider.GPS
                LocationManager.NETWORK_PROVIDER -> LocationProvider.NETWORK
                else -> LocationProvider.FUSED
            },
            fixedAt = Instant.ofEpochMilli(best.time),
        )
    }
}
