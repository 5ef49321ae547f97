// Fixtures.swift - temporary stores and sample content for the Swift binding tests
// (mirrors tests/common/mod.rs on the Rust side).

import Foundation

/// A store in a fresh temporary directory; `cleanup()` removes the directory.
final class TempStore {
    let dir: URL
    let path: String
    var key: Data
    var store: CrewStore

    init() throws {
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("crewsafe-swift-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        path = dir.appendingPathComponent("crewsafe.db").path
        key = generateDataKey()
        store = try CrewStore.open(path: path, key: key)
    }

    /// Closes the store and opens the file again with `key`.
    func reopen() throws {
        try store.close()
        store = try CrewStore.open(path: path, key: key)
    }

    /// Which of the database, -wal and -shm files exist.
    func existingFiles() -> [String] {
        ["", "-wal", "-shm"].map { path + $0 }.filter { FileManager.default.fileExists(atPath: $0) }
    }

    func cleanup() {
        try? store.close()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// Runs `body` with a fresh store and always removes its directory afterwards.
func withStore(_ body: (TempStore) throws -> Void) throws {
    let t = try TempStore()
    defer { t.cleanup() }
    try body(t)
}

func crew() -> CrewIdentity {
    CrewIdentity(deviceId: "device-0001", crewId: "astana-brigade-12", staffId: "staff-77")
}

func fix(latitude: Double = 51.1694, at: Date = Date()) -> LocationFix {
    LocationFix(latitude: latitude, longitude: 71.4491, accuracyM: 6.5, altitudeM: 347.0,
                provider: .gps, fixedAt: at)
}

/// A report that passes every finalize rule.
func completeFields() -> IncidentFields {
    IncidentFields(
        occurredAt: Date().addingTimeInterval(-1800),
        location: fix(),
        address: "Kenesary st 40, apt 12",
        kind: .physicalAssault,
        severity: .serious,
        staffHarmed: [HarmedStaff(role: .paramedic, name: "A. Seitkali",
                                  injuryDescription: "struck on the head")],
        perpetratorDescription: "male, about 40, intoxicated",
        witnesses: [Witness(name: "Neighbour", contact: "+7 700 000 0000")],
        policeCalled: true,
        policeReportNumber: "KUI-2026-1234",
        dispatchCallNumber: "103-556677",
        narrative: "The patient's son attacked the paramedic during treatment.")
}

let unknownId = "00000000-0000-4000-8000-000000000000"

func isUuidLike(_ s: String) -> Bool {
    UUID(uuidString: s) != nil
}
