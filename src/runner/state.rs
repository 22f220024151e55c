//! A stateful stage's snapshot: which input it covers, when to take the next one, and the file,
//! written whole or not at all and read back on start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Settled, StageError};

/// How long a stateful stage may hold its batches under continuous input before a snapshot
/// settles them.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(5);

/// What a stateful stage's state covers: per input partition, the next offset it has not seen;
/// whether it changed since the last snapshot, and when that was.
pub struct Coverage {
    next: BTreeMap<i32, i64>,
    unsaved: bool,
    last_save: Instant,
}

impl Coverage {
    /// The coverage of a restored snapshot (empty for a fresh state).
    pub fn restored(next: BTreeMap<i32, i64>) -> Coverage {
        Coverage {
            next,
            unsaved: false,
            last_save: Instant::now(),
        }
    }

    /// Takes the record at `offset` of `partition` into the state: `false` when the restored
    /// snapshot already holds it (the stage crashed after the snapshot, before its offsets were
    /// committed), so the stage skips it.
    pub fn take(&mut self, partition: i32, offset: i64) -> bool {
        if self.next.get(&partition).is_some_and(|next| offset < *next) {
            return false;
        }
        self.next.insert(partition, offset + 1);
        self.unsaved = true;
        true
    }

    /// The state changed without a record (e.g. a flush on shutdown).
    pub fn changed(&mut self) {
        self.unsaved = true;
    }

    /// Settle everything now when the input is `quiet` or a snapshot is due, else hold.
    pub fn settle_when(&self, quiet: bool) -> Settled {
        if quiet || self.last_save.elapsed() >= SNAPSHOT_EVERY {
            Settled::All
        } else {
            Settled::Oldest(0)
        }
    }

    /// Makes the state durable if it changed since the last snapshot: `write` gets the
    /// coverage to store beside the state and writes the snapshot (see [`save_atomically`]).
    pub fn save(
        &mut self,
        what: &'static str,
        path: &Path,
        write: impl FnOnce(&BTreeMap<i32, i64>) -> std::io::Result<()>,
    ) -> Result<(), StageError> {
        self.last_save = Instant::now();
        if !std::mem::take(&mut self.unsaved) {
            return Ok(());
        }
        write(&self.next).map_err(|source| StageError::State {
            what,
            path: path.to_path_buf(),
            source,
        })
    }
}

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
    fn coverage_skips_what_the_snapshot_holds_and_saves_only_changes() {
        let mut c = Coverage::restored(BTreeMap::from([(0, 10)]));
        assert!(!c.take(0, 9), "covered by the snapshot");
        assert!(c.take(0, 10));
        assert!(c.take(1, 0), "a partition the snapshot never saw");
        let mut written = None;
        c.save("state", Path::new("/x"), |next| {
            written = Some(next.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(written, Some(BTreeMap::from([(0, 11), (1, 1)])));
        // Nothing new: nothing written.
        c.save("state", Path::new("/x"), |_| panic!("unchanged"))
            .unwrap();
        assert_eq!(c.settle_when(true), Settled::All);
        assert_eq!(c.settle_when(false), Settled::Oldest(0));
    }

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
