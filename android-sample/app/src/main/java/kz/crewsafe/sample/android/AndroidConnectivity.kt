package kz.crewsafe.sample.android

import android.content.Context
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities
import kz.crewsafe.sample.core.Connectivity

/**
 * ConnectivityManager's default-network callback → online/offline. It fires on every
 * capability change; the controller passes only real changes to `setOnline`.
 * (INTERNET, not VALIDATED: a closed ambulance APN may fail Google's validation check yet reach
 * the national server; a wrong "online" only costs one retry.)
 */
class AndroidConnectivity(context: Context) : Connectivity {
    private val manager = requireNotNull(context.getSystemService(ConnectivityManager::class.java))
    private var callback: ConnectivityManager.NetworkCallback? = null

    override fun start(onChange: (online: Boolean) -> Unit) {
        stop()
        val cb = object : ConnectivityManager.NetworkCallback() {
            override fun onCapabilitiesChanged(network: Network, caps: NetworkCapabilities) =
                onChange(caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET))

            override fun onLost(network: Network) = onChange(false)
        }
        manager.registerDefaultNetworkCallback(cb)
        callback = cb
    }

    override fun stop() {
        callback?.let { runCatching { manager.unregisterNetworkCallback(it) } }
        callback = null
    }
}
