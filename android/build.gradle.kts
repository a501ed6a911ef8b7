// Waxwing for Android: an Android library (AAR) holding the Kotlin layer
// (src/main/kotlin), the uniffi-generated bindings and libwaxwing_ffi.so for
// four ABIs. scripts/build-android.sh produces the last two and the path of
// the rustls-platform-verifier Maven repository (see settings.gradle.kts);
// run it first. The same Kotlin sources are compiled and tested on the JVM by
// scripts/test-kotlin.sh, without Gradle.

import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "im.waxwing"
    compileSdk = 35

    defaultConfig {
        // Android 7.0. rustls-platform-verifier's Kotlin component itself
        // declares minSdk 22, but Android's certificate revocation checks,
        // which the verifier uses for the server's certificate, need API 24
        // (the crate's README). scripts/build-android.sh links the native
        // library for the same API level (cargo ndk --platform 24).
        minSdk = 24
        // Applied by every app that shrinks with R8: JNA, the bindings and
        // the verifier are reached by reflection and JNI only.
        consumerProguardFiles("consumer-rules.pro")
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    sourceSets {
        getByName("main") {
            // src/main/kotlin: the hand-written layer (also compiled on the
            // JVM by the tests, so it uses no Android API).
            // src/main/generated/kotlin: the uniffi bindings, written by
            // scripts/build-android.sh (not in git).
            // (WaxwingAndroid.init takes the Context as Any for that reason.)
            java.srcDirs("src/main/kotlin", "src/main/generated/kotlin")
            // libwaxwing_ffi.so per ABI, written by scripts/build-android.sh.
            jniLibs.srcDirs("src/main/jniLibs")
        }
        getByName("test") {
            // src/test holds the JVM tests, which need a real Prosody and the
            // host build of the library: scripts/test-kotlin.sh runs them.
            // Gradle's unit-test task would run them without either.
            java.setSrcDirs(emptyList<String>())
            kotlin.setSrcDirs(emptyList<String>())
        }
    }

    lint {
        // The generated bindings use java.lang.ref.Cleaner (API 33) only
        // after a runtime check that the class exists (Class.forName),
        // falling back to JNA's cleaner on older Android; lint cannot see
        // the check.
        disable += "NewApi"
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    // The generated bindings call the native library through JNA. The AAR
    // packs JNA's own libjnidispatch.so per Android ABI where Android's
    // loader finds it.
    api("net.java.dev.jna:jna:5.17.0@aar")
    // Flow and suspend functions in the public API; Dispatchers.Main on Android.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
    // The Kotlin half of rustls-platform-verifier, called from Rust over JNI.
    // Its only repository is the one in the crate's source (settings.gradle.kts),
    // which holds exactly the version Cargo.lock pins, hence latest.release.
    implementation("rustls:rustls-platform-verifier:latest.release")
}
