// The Kotlin side of the FFI cost benchmark (run by bindings/kotlin/bench/run.sh, which also
// runs the same calls from Rust: examples/ffi_cost.rs). Calls raiseSos (one fsync'd commit),
// getSos, pendingCounts and setOnline (the floor: one primitive argument, no buffer) on a store in a temp folder through the generated bindings after
// a warm-up (JIT compiled), and prints the median and mean of each in the Rust twin's format.
// The two saves are also timed interleaved with the same save timed inside the library (the
// `test-hooks` build that bindings/generate.sh --test-hooks makes): that ratio has its
// baseline in the same process, on the same disk at the same moment.
//
// Counts come from CREWSAFE_FFI_BENCH="<raiseSos calls> <quick calls>" (run-tests.sh passes
// no arguments); default 2000 200000.

import java.io.RandomAccessFile
import java.nio.file.Files
import java.time.Instant
import kz.crewsafe.*

private fun report(name: String, v: LongArray) {
    v.sort()
    val mean = v.average() / 1e3
    println(String.format("kotlin  %-14s median %8.2f us   mean %8.2f us   (%d calls)",
        name, v[v.size / 2] / 1e3, mean, v.size))
}

/// `n` rounds of a call timed from Kotlin and its twin timed inside the library (nanoseconds).
private fun interleaved(n: Int, call: () -> Unit, inside: () -> Long): Pair<LongArray, LongArray> {
    val kotlin = LongArray(n)
    val rust = LongArray(n)
    fun fromKotlin(): Long {
        val t = System.nanoTime()
        call()
        return System.nanoTime() - t
    }
    for (i in 0 until n) {
        if (i % 2 == 0) {
            kotlin[i] = fromKotlin()
            rust[i] = inside()
        } else {
            rust[i] = inside()
            kotlin[i] = fromKotlin()
        }
    }
    return Pair(kotlin, rust)
}

private fun compare(name: String, runs: Pair<LongArray, LongArray>) {
    val (k, r) = runs
    k.sort()
    r.sort()
    val km = k[k.size / 2] / 1e3
    val rm = r[r.size / 2] / 1e3
    println(String.format("same run  %-14s kotlin %8.2f us   inside the library %8.2f us   ratio %.3fx   (%d rounds)",
        name, km, rm, km / rm, k.size))
}

private inline fun timed(n: Int, f: () -> Unit): LongArray {
    val out = LongArray(n)
    for (i in 0 until n) {
        val t = System.nanoTime()
        f()
        out[i] = System.nanoTime() - t
    }
    return out
}

fun main() {
    val args = System.getenv("CREWSAFE_FFI_BENCH")?.trim()?.split(Regex("\\s+")) ?: emptyList()
    val slow = args.getOrNull(0)?.toInt() ?: 2_000
    val quick = args.getOrNull(1)?.toInt() ?: 200_000
    val dir = Files.createTempDirectory("crewsafe-kt-bench-")
    try {
        RandomAccessFile(dir.resolve("fsync-probe").toFile(), "rw").use { f ->
            val block = ByteArray(4096) { 7 }
            val v = timed(15) { f.write(block); f.channel.force(true) }
            v.sort()
            println(String.format("kotlin  fsync after writing 4 KiB %.3f ms (median of 15)", v[7] / 1e6))
        }
        val store = CrewStore.open(dir.resolve("bench.db").toString(), generateDataKey())
        val crew = CrewIdentity(deviceId = "device-0001", crewId = "astana-brigade-12", staffId = "staff-77")
        val fix = LocationFix(latitude = 51.1694, longitude = 71.4491, accuracyM = 6.5,
            altitudeM = 347.0, provider = LocationProvider.GPS, fixedAt = Instant.now())
        val id = store.raiseSos(crew, fix, null).id
        // Warm-up: enough calls for the JIT to compile the binding code on every path.
        timed(slow / 10) { store.raiseSos(crew, fix, null) }
        timed(quick / 10) { store.getSos(id) }
        timed(quick / 10) { store.pendingCounts() }
        report("raiseSos", timed(slow) { store.raiseSos(crew, fix, null) })
        // The flat fast path: the crew set once, the fix as plain numbers.
        store.setCrew(crew)
        val at = fix.fixedAt.toEpochMilli()
        timed(slow / 10) { store.raiseSosQuick(51.1694, 71.4491, 6.5, at) }
        report("raiseSosQuick", timed(slow) { store.raiseSosQuick(51.1694, 71.4491, 6.5, at) })
        // The same saves interleaved with their twins timed inside the library (a test hook:
        // no FFI crossing), in one process on one disk, each going first in every other
        // round: the disk's drift hits both, unlike the separate Rust process below.
        val q = interleaved(slow, { store.raiseSosQuick(51.1694, 71.4491, 6.5, at) }) {
            store.debugTimedRaiseSosQuick(51.1694, 71.4491, 6.5, at).toLong()
        }
        compare("raiseSosQuick", q)
        // The panic button: one call on the armed store, no handle, no buffers.
        val now = interleaved(slow, { raiseSosNow(51.1694, 71.4491, 6.5, at) }) {
            debugTimedRaiseSosNow(51.1694, 71.4491, 6.5, at).toLong()
        }
        compare("raiseSosNow", now)
        val r = interleaved(slow, { store.raiseSos(crew, fix, null) }) {
            store.debugTimedRaiseSos(crew, fix, null).toLong()
        }
        compare("raiseSos", r)
        report("getSos", timed(quick / 4) { store.getSos(id) })
        report("pendingCounts", timed(quick) { store.pendingCounts() })
        // The floor: a call with one primitive argument, no buffer either way.
        timed(quick / 10) { store.setOnline(false) }
        report("setOnline", timed(quick) { store.setOnline(false) })
        store.closeStore()
        store.close()
    } finally {
        dir.toFile().deleteRecursively()
    }
}
