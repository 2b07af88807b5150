//! How large a capture may grow (`--capture-max`), and how large it is.
//!
//! A bounded capture keeps every record (they are small) and gives up payload bytes,
//! oldest first, a whole segment file at a time (see the payload files). Segments are a
//! sixteenth of the bound, so the capture stays within its bound plus one segment; their
//! size never changes during a run.

/// The smallest segment: tiny bounds (tests) still write in sizeable pieces.
const MIN_SEGMENT: u64 = 256 << 10;
/// The largest segment, and the segment of a capture without a bound.
const MAX_SEGMENT: u64 = 64 << 20;

/// The default bound: the smaller of this and a quarter of the free space.
pub const DEFAULT_MAX: u64 = 4 << 30;

/// The bound of a capture to be written at `dir` when none is asked for: the smaller of
/// [`DEFAULT_MAX`] and a quarter of the space free there now (or of the nearest folder
/// above it that exists).
pub fn default_for(dir: &std::path::Path) -> u64 {
    let free = dir
        .ancestors()
        .find(|folder| folder.exists())
        .and_then(crate::layout::free_space);
    free.map_or(DEFAULT_MAX, |free| (free / 4).min(DEFAULT_MAX))
}

/// The segment size for a capture bounded at `bound` bytes (`None`: no bound).
pub fn segment_for(bound: Option<u64>) -> u64 {
    bound.map_or(MAX_SEGMENT, |bound| {
        (bound / 16).clamp(MIN_SEGMENT, MAX_SEGMENT)
    })
}

/// A capture's size on disk against its bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureSize {
    /// The database (with its write-ahead log) and the payload files kept.
    pub bytes: u64,
    /// `--capture-max`, when the capture has one.
    pub bound: Option<u64>,
    /// Payload bytes given up to stay within the bound, so far.
    pub dropped: u64,
}

/// `4.0 GiB`, `512.0 KiB`, `10 B`: sizes as wstap prints them.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_a_sixteenth_of_the_bound_within_limits() {
        assert_eq!(segment_for(None), 64 << 20);
        assert_eq!(segment_for(Some(4 << 30)), 64 << 20);
        assert_eq!(segment_for(Some(160 << 20)), 10 << 20);
        assert_eq!(segment_for(Some(8 << 20)), 512 << 10);
        assert_eq!(segment_for(Some(1 << 20)), 256 << 10);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_text(10), "10 B");
        assert_eq!(size_text(4 << 30), "4.0 GiB");
        assert_eq!(size_text(1536), "1.5 KiB");
    }
}
