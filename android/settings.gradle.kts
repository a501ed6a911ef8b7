// android/ built on its own as a Gradle library module (the AAR). An app that
// includes this directory as a subproject of its own build uses its own
// settings instead: it must declare the same three repositories (see the
// README, "Android packaging"), and its plugin versions win.
//
// Nothing here is read by scripts/test-kotlin.sh, which compiles the same
// Kotlin sources on the JVM with kotlinc.

pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    // Versions for the plugins build.gradle.kts applies (it names none, so an
    // including build's own versions take over). AGP 8.7 needs Gradle 8.9+
    // and JDK 17, and builds against compileSdk 35.
    plugins {
        id("com.android.library") version "8.7.3"
        id("org.jetbrains.kotlin.android") version "2.1.21"
    }
}

// The Kotlin half of rustls-platform-verifier is not on any public Maven
// repository: the Rust crate rustls-platform-verifier-android ships it as a
// local one (its maven/ directory), whose path scripts/build-android.sh finds
// with `cargo metadata` and writes into local.properties. -P or
// ~/.gradle/gradle.properties can give it too.
val verifierKey = "rustls.platform.verifier.maven"
val verifierMaven: String = run {
    val props = java.util.Properties()
    val local = settingsDir.resolve("local.properties")
    if (local.isFile) local.inputStream().use { props.load(it) }
    props.getProperty(verifierKey)
        ?: providers.gradleProperty(verifierKey).orNull
        ?: throw GradleException(
            "$verifierKey is not set: run scripts/build-android.sh (it writes android/local.properties), " +
                "or pass -P$verifierKey=<rustls-platform-verifier-android crate>/maven",
        )
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
        maven {
            name = "rustlsPlatformVerifier"
            url = uri(verifierMaven)
            // The crate's repository holds the AAR and a POM (packaging aar,
            // no dependencies) but no Gradle module metadata.
            metadataSources {
                mavenPom()
                artifact()
            }
            content { includeGroup("rustls") }
        }
    }
}

rootProject.name = "waxwing"
