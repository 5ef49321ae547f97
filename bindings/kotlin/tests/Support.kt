// Helpers shared by the Kotlin binding tests: temporary stores and sample content
// (the Kotlin twins of tests/common/mod.rs).

import java.nio.file.Files
import java.nio.file.Path
import java.security.MessageDigest
import java.time.Duration
import java.time.Instant
import kz.crewsafe.*

/** A fresh temp folder, deleted with everything in it after [body] (pass or fail). */
fun <T> withTempDir(body: (Path) -> T): T {
    val dir = Files.createTempDirectory("crewsafe-kt-")
    try {
        return body(dir)
    } finally {
        dir.toFile().deleteRecursively()
    }
}

/** A store at `<fresh temp dir>/crewsafe.db` opened with a new key. */
class TestStore(val dir: Path) {
    val path: Path = dir.resolve("crewsafe.db")
    var key: ByteArray = generateDataKey()
    var store: CrewStore = CrewStore.open(path.toString(), key)

    /** closeStore() (the Rust close), then free the native handle, then open again. */
    fun reopen() {
        store.closeStore()
        store.close()
        store = CrewStore.open(path.toString(), key)
    }

    /** Frees the native handle; idempotent (AutoCloseable.close() -> Disposable.destroy()). */
    fun release() = store.close()

    fun companion(suffix: String): Path = dir.resolve("crewsafe.db$suffix")
}

/** Runs [body] with a [TestStore] in a fresh temp dir; cleans everything up afterwards. */
fun <T> withStore(body: (TestStore) -> T): T = withTempDir { dir ->
    val t = TestStore(dir)
    try {
        body(t)
    } finally {
        t.release()
    }
}

fun crew() = CrewIdentity(
    deviceId = "device-0001",
    crewId = "astana-brigade-12",
    staffId = "staff-77",
)

fun fix(latitude: Double = 51.1694) = LocationFix(
    latitude = latitude,
    longitude = 71.4491,
    accuracyM = 6.5,
    altitudeM = 347.0,
    provider = LocationProvider.GPS,
    fixedAt = Instant.now(),
)

/** A report that passes every finalize rule. */
fun completeFields() = IncidentFields(
    occurredAt = Instant.now().minus(Duration.ofMinutes(30)),
    location = fix(),
    address = "Kenesary st 40, apt 12",
    kind = IncidentKind.PHYSICAL_ASSAULT,
    severity = Severity.SERIOUS,
    staffHarmed = listOf(
        HarmedStaff(role = StaffRole.PARAMEDIC, name = "A. Seitkali", injuryDescription = "struck on the head"),
    ),
    perpetratorDescription = "male, about 40, intoxicated",
    witnesses = listOf(Witness(name = "Neighbour", contact = "+7 700 000 0000")),
    policeCalled = true,
    policeReportNumber = "KUI-2026-1234",
    dispatchCallNumber = "103-556677",
    narrative = "The patient's son attacked the paramedic during treatment.",
)

fun sha256(path: Path): String =
    MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(path))
        .joinToString("") { "%02x".format(it) }

fun assertUuidLike(s: String) {
    assertEquals(36, s.length, "uuid length of '$s'")
    assertEquals(4, s.count { it == '-' }, "dashes in '$s'")
}

/** |a - b| <= tolerance. */
fun assertNear(expected: Instant, actual: Instant, tolerance: Duration, message: String) {
    val diff = Duration.between(expected, actual).abs()
    assertTrue(diff <= tolerance, "$message: $actual is $diff away from $expected (tolerance $tolerance)")
}
