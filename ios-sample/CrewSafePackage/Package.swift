// swift-tools-version:5.9
// The CrewSafe Swift package: the Rust core as a static-library XCFramework (binary target
// CrewSafeFFI) plus the uniffi-generated Swift source (target CrewSafe). Both are produced
// by ../build-xcframework.sh; they are not committed.
import PackageDescription

let package = Package(
    name: "CrewSafe",
    platforms: [.iOS(.v16)],
    products: [
        .library(name: "CrewSafe", targets: ["CrewSafe"]),
    ],
    targets: [
        .binaryTarget(name: "CrewSafeFFI", path: "CrewSafeFFI.xcframework"),
        .target(
            name: "CrewSafe",
            dependencies: ["CrewSafeFFI"],
            path: "Sources/CrewSafe",
            // The static library's own system dependencies (a static library carries no
            // link directives): rustls-platform-verifier, linked in through reqwest, and chrono's
            // time zone lookup use these frameworks.
            linkerSettings: [.linkedFramework("Security"), .linkedFramework("CoreFoundation")]
        ),
    ]
)
