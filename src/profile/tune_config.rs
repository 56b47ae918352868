//! The tuning file written by `simdnet tune` and read by `train` and `bench` (to be written).

/// Applies the tuning file if present and not ignored; returns a line saying what was used.
pub fn apply_if_present(ignore: bool) -> crate::Result<Option<String>> {
    let _ = ignore;
    Ok(None)
}
