pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "crewsafe-sample"

// :crewsafe packages the native library and its generated Kotlin bindings (an AAR other apps
// can depend on); :app is the tester's sample app.
include(":crewsafe", ":app")
