import Foundation
import Network

/// NWPathMonitor → online/offline. It reports every path update; the controller passes only
/// real changes to `setOnline`.
final class PathMonitorConnectivity: Connectivity {
    private var monitor: NWPathMonitor?
    private let queue = DispatchQueue(label: "crewsafe.path-monitor")

    func start(_ onChange: @escaping @Sendable (Bool) -> Void) {
        stop()
        let m = NWPathMonitor()
        m.pathUpdateHandler = { path in onChange(path.status == .satisfied) }
        m.start(queue: queue)
        monitor = m
    }

    func stop() {
        monitor?.cancel()
        monitor = nil
    }
}
