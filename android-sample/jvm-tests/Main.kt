// JVM tests of the sample app's plain Kotlin logic (android-sample/app/src/main/java/.../core)
// against the real library and the reference server. Run with android-sample/run-jvm-tests.sh.

fun main() {
    storeOpenerTests()
    sosTests()
    draftTests()
    syncTests()
    sosLoopTests()
    checkInTests()
    finishTests()
}
