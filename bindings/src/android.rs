//! The Android entry point (`im.waxwing.WaxwingAndroid.nativeInit`, JNI):
//! hands the app's `Context` to rustls-platform-verifier, which checks
//! server certificates against Android's trust store through it. Compiled
//! on every platform so the JVM tests call the same symbol; off Android
//! there is nothing to hand over (the verifier reads the system's store).
//!
//! `scripts/check-android.sh` type-checks this file for an Android target.

use jni::objects::{JClass, JObject};
use jni::sys::{jboolean, JNI_FALSE, JNI_TRUE};
use jni::JNIEnv;

/// `WaxwingAndroid.nativeInit(context)`: true once the verifier has the
/// `Context`. Never unwinds into the JVM.
#[allow(unsafe_code)] // the JVM finds the function by its unmangled name
#[unsafe(no_mangle)]
pub extern "system" fn Java_im_waxwing_WaxwingAndroid_nativeInit<'local>(
    mut env: JNIEnv<'local>,
    _class: JClass<'local>,
    context: JObject<'local>,
) -> jboolean {
    let init = std::panic::AssertUnwindSafe(|| init(&mut env, context));
    match std::panic::catch_unwind(init) {
        Ok(Ok(())) => {
            super::platform_verifier_ready();
            JNI_TRUE
        }
        Ok(Err(reason)) => {
            tracing::error!(reason, "WaxwingAndroid.init failed");
            JNI_FALSE
        }
        Err(_) => JNI_FALSE,
    }
}

#[cfg(target_os = "android")]
fn init(env: &mut JNIEnv, context: JObject) -> Result<(), &'static str> {
    if context.is_null() {
        return Err("no Context given");
    }
    let is_context = env
        .is_instance_of(&context, "android/content/Context")
        .map_err(|_| "android.content.Context not found")?;
    if !is_context {
        return Err("not an android.content.Context");
    }
    rustls_platform_verifier::android::init_with_env(env, context)
        .map_err(|_| "the certificate verifier refused the Context")
}

#[cfg(not(target_os = "android"))]
fn init(_env: &mut JNIEnv, context: JObject) -> Result<(), &'static str> {
    if context.is_null() {
        return Err("no Context given");
    }
    Ok(())
}
