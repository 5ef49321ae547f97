import CoreLocation
import CrewSafe
import Foundation

/// The location manager's last fix, if the user allowed location; never waits for a new one.
final class LocationFixSource: NSObject, FixSource {
    private let manager = CLLocationManager()

    func requestPermission() { manager.requestWhenInUseAuthorization() }

    func lastFix() -> LocationFix? {
        guard let l = manager.location, l.horizontalAccuracy >= 0 else { return nil }
        return LocationFix(latitude: l.coordinate.latitude, longitude: l.coordinate.longitude,
                           accuracyM: min(l.horizontalAccuracy, 100_000),
                           altitudeM: l.verticalAccuracy >= 0 ? min(max(l.altitude, -1_000), 20_000) : nil,
                           provider: .fused, fixedAt: l.timestamp)
    }
}
