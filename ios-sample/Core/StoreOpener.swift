import Foundation
#if canImport(CrewSafe)
import CrewSafe
#endif

/// An open store; `setAside` is where unreadable old files were moved, if that happened.
struct OpenedStore {
    let store: CrewStore
    let newKey: Bool
    let setAside: URL?
}

/// Opens the store at `dbFile` with the key held by `keys`, creating both on first run.
///
/// A new key is saved *before* the store is created with it, so a crash in between never
/// leaves a store whose key is lost. If the key does not open the file (the Keychain item was
/// lost, or the files came from another phone), the library refuses with `WrongKey` without
/// touching the file; the files are then moved aside (kept, never deleted) and a new store is
/// created, so the SOS button keeps working.
func openStore(at dbFile: URL, keys: KeyStorage) throws -> OpenedStore {
    try FileManager.default.createDirectory(at: dbFile.deletingLastPathComponent(),
                                            withIntermediateDirectories: true)
    var newKey = false
    let key: Data
    if let saved = try keys.loadKey() {
        key = saved
    } else {
        key = generateDataKey()
        try keys.saveKey(key)
        newKey = true
    }
    do {
        return OpenedStore(store: try CrewStore.open(path: dbFile.path, key: key), newKey: newKey, setAside: nil)
    } catch CrewSafeError.WrongKey {
        let aside = try setAside(dbFile)
        return OpenedStore(store: try CrewStore.open(path: dbFile.path, key: key), newKey: newKey, setAside: aside)
    }
}

/// Renames the database and its -wal/-shm companions to `<name>.unreadable-<time>[-wal|-shm]`.
private func setAside(_ dbFile: URL) throws -> URL {
    let aside = dbFile.path + ".unreadable-\(Int64(Date().timeIntervalSince1970 * 1000))"
    for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: dbFile.path + suffix) {
        try FileManager.default.moveItem(atPath: dbFile.path + suffix, toPath: aside + suffix)
    }
    return URL(fileURLWithPath: aside)
}
