package kz.crewsafe.sample.core

import kz.crewsafe.CrewSafeException
import kz.crewsafe.CrewStore
import kz.crewsafe.generateDataKey
import java.io.File

/** An open store; [setAside] is where unreadable old files were moved, if that happened. */
class OpenedStore(val store: CrewStore, val newKey: Boolean, val setAside: File?)

/**
 * Opens the store at [dbFile] with the key held by [keys], creating both on first run.
 *
 * A new key is saved (wrapped) *before* the store is created with it, so a crash in between
 * never leaves a store whose key is lost. If the key does not open the file (the platform key
 * was wiped, or app data was restored onto another phone), the library refuses with `WrongKey`
 * without touching the file; the files are then moved aside (kept, never deleted) and a new
 * store is created, so the SOS button keeps working.
 */
fun openStore(dbFile: File, keys: KeyStorage): OpenedStore {
    dbFile.parentFile?.mkdirs()
    var key = keys.loadKey()
    val newKey = key == null
    if (key == null) {
        key = generateDataKey()
        keys.saveKey(key)
    }
    try {
        return try {
            OpenedStore(CrewStore.open(dbFile.path, key), newKey, null)
        } catch (e: CrewSafeException.WrongKey) {
            val aside = setAside(dbFile)
            OpenedStore(CrewStore.open(dbFile.path, key), newKey, aside)
        }
    } finally {
        key.fill(0)
    }
}

/** Renames the database and its -wal/-shm companions to `<name>.unreadable-<time>[-wal|-shm]`. */
private fun setAside(dbFile: File): File {
    val aside = File(dbFile.path + ".unreadable-" + System.currentTimeMillis())
    for (suffix in listOf("", "-wal", "-shm")) {
        val from = File(dbFile.path + suffix)
        if (from.exists() && !from.renameTo(File(aside.path + suffix))) {
            throw IllegalStateException("could not move ${from.name} aside")
        }
    }
    return aside
}
