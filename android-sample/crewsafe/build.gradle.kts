// The CrewSafe Android library: libcrewsafe.so for each ABI (built by ../build-native.sh with
// cargo-ndk) plus the uniffi-generated Kotlin bindings (package kz.crewsafe), with the R8 rules
// an app needs. Other apps can depend on this module or on the AAR it builds.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

val generatedKotlin = layout.projectDirectory.dir("src/main/generated")

android {
    namespace = "kz.crewsafe"
    compileSdk = 35

    defaultConfig {
        // java.time.Instant in the bindings needs API 26 (or core library desugaring).
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets["main"].apply {
        java.srcDir(generatedKotlin)
        // jniLibs/<abi>/libcrewsafe.so, written by build-native.sh
        jniLibs.srcDir("src/main/jniLibs")
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // @aar: the Android flavour of JNA, with libjnidispatch.so for every ABI. The plain jar
    // has no Android natives and fails at runtime with UnsatisfiedLinkError.
    api("net.java.dev.jna:jna:5.17.0@aar")
    // The bindings are generated with `android = true` (SystemCleaner on API 34+).
    implementation("androidx.annotation:annotation:1.9.1")
}

// ./gradlew :crewsafe:buildNative runs build-native.sh (cargo-ndk + uniffi-bindgen).
// It is not wired into preBuild: the Rust build takes minutes and needs the NDK and Rust
// Android targets, which app-only developers may not have.
tasks.register<Exec>("buildNative") {
    group = "build"
    description = "Builds libcrewsafe.so for arm64-v8a, armeabi-v7a, x86_64 and generates the Kotlin bindings"
    workingDir = rootProject.projectDir
    commandLine("bash", "build-native.sh")
}
