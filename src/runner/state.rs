//! A stateful stage's snapshot file: written whole or not at all, read back on start.

use std::io::Write;
use std::path::Path;

/// Writes `value` as JSON to `path` through a temporary file that is flushed to disk and renamed
/// over the old one, so a crash at any point leaves the old snapshot or the new one, whole.
pub fn save_atomically<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        serde_json::to_writer(&mut f, value)?;
        f.flush()?;
        f.get_ref().sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// The snapshot at `path`: `Ok(None)` when there is none yet, `Err` (with the reason) when it
/// cannot be read or parsed.
pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_whole_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.json");
        assert_eq!(load::<Vec<u32>>(&path).unwrap(), None);
        save_atomically(&path, &vec![1u32, 2, 3]).unwrap();
        save_atomically(&path, &vec![4u32]).unwrap();
        assert_eq!(load::<Vec<u32>>(&path).unwrap(), Some(vec![4]));
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::write(&path, b"{not json").unwrap();
        assert!(load::<Vec<u32>>(&path).is_err());
    }
}
