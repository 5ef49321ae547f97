//! The uniffi bindings generator, built from this crate so its version always matches.
fn main() {
    uniffi::uniffi_bindgen_main()
}
