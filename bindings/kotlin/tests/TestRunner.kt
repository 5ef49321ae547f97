// A tiny test runner for the Kotlin binding tests (no JUnit: Maven Central is
// not reachable). Use from a plain `main`:
//
//   fun main() {
//       test("adds") { assertEquals(4, 2 + 2) }
//       testAsync("suspend call") { assertTrue(someSuspendFun()) }
//       finishTests()          // prints the summary, exits 1 on any failure
//   }
//
// Set CREWSAFE_TEST_FILTER=substring to run only tests whose name contains it.

import kotlin.system.exitProcess

object TestRunner {
    var passed = 0
    var failed = 0
    var skipped = 0
    val failures = mutableListOf<String>()
    val filter: String? = System.getenv("CREWSAFE_TEST_FILTER")?.takeIf { it.isNotEmpty() }
}

/** Runs one named test now; a thrown Throwable (failed assertion or otherwise) marks it failed. */
fun test(name: String, body: () -> Unit) {
    if (TestRunner.filter != null && !name.contains(TestRunner.filter)) {
        TestRunner.skipped++
        return
    }
    val start = System.nanoTime()
    try {
        body()
        TestRunner.passed++
        println("PASS  $name (${(System.nanoTime() - start) / 1_000_000} ms)")
    } catch (e: Throwable) {
        TestRunner.failed++
        TestRunner.failures += name
        println("FAIL  $name: ${e::class.java.name}: ${e.message}")
        e.printStackTrace(System.out)
    }
    System.out.flush()
}

/** Like [test] for code that calls suspend functions (uniffi async exports). */
fun testAsync(name: String, body: suspend () -> Unit) =
    test(name) { kotlinx.coroutines.runBlocking { body() } }

/** Prints the summary and exits: status 1 if any test failed or none ran, else 0. */
fun finishTests(): Nothing {
    val r = TestRunner
    println()
    if (r.failures.isNotEmpty()) {
        println("Failed tests:")
        r.failures.forEach { println("  - $it") }
    }
    if (r.passed + r.failed == 0) println("No test ran" + (r.filter?.let { " (filter '$it')" } ?: ""))
    println("kotlin: ${r.passed} passed, ${r.failed} failed" + if (r.skipped > 0) ", ${r.skipped} skipped" else "")
    System.out.flush()
    exitProcess(if (r.failed > 0 || r.passed == 0) 1 else 0)
}

fun fail(message: String = "failed"): Nothing = throw AssertionError(message)

fun <T> assertEquals(expected: T, actual: T, message: String? = null) {
    if (expected != actual) {
        throw AssertionError((message?.let { "$it: " } ?: "") + "expected <$expected> but was <$actual>")
    }
}

fun <T> assertNotEquals(unexpected: T, actual: T, message: String? = null) {
    if (unexpected == actual) {
        throw AssertionError((message?.let { "$it: " } ?: "") + "expected a value other than <$actual>")
    }
}

fun assertTrue(condition: Boolean, message: String? = null) {
    if (!condition) throw AssertionError(message ?: "expected true")
}

fun assertFalse(condition: Boolean, message: String? = null) {
    if (condition) throw AssertionError(message ?: "expected false")
}

fun <T : Any> assertNotNull(value: T?, message: String? = null): T =
    value ?: throw AssertionError(message ?: "expected a non-null value")

fun assertNull(value: Any?, message: String? = null) {
    if (value != null) throw AssertionError((message?.let { "$it: " } ?: "") + "expected null but was <$value>")
}

fun assertContentEquals(expected: ByteArray, actual: ByteArray, message: String? = null) {
    if (!expected.contentEquals(actual)) {
        throw AssertionError(
            (message?.let { "$it: " } ?: "") +
                "expected <${expected.contentToString()}> but was <${actual.contentToString()}>"
        )
    }
}

/** Runs [block], expects it to throw a [T] (or subclass) and returns the exception. */
inline fun <reified T : Throwable> assertThrows(message: String? = null, block: () -> Unit): T {
    val prefix = message?.let { "$it: " } ?: ""
    try {
        block()
    } catch (e: Throwable) {
        if (e is T) return e
        throw AssertionError(
            "${prefix}expected ${T::class.java.name} but got ${e::class.java.name}: ${e.message}", e
        )
    }
    throw AssertionError("${prefix}expected ${T::class.java.name} but nothing was thrown")
}
