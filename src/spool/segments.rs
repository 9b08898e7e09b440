//! The spool directory: segment files `<seq>.seg` (20 digits, so names
//! sort in order), `quarantine/` for damaged bytes, and `lock`, which one
//! live process holds.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::SpoolError;
use super::record::{self, Scan};

const SUFFIX: &str = ".seg";
pub const QUARANTINE: &str = "quarantine";

pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SUFFIX}"))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> SpoolError {
    move |source| SpoolError::Io { what, source }
}

/// Bytes the file system holding `dir` still has for an unprivileged
/// writer; unbounded if it cannot tell (it cannot be asked, or reports no
/// size at all, as some FUSE file systems do): the writes then tell.
pub fn disk_free(dir: &Path) -> u64 {
    match rustix::fs::statvfs(dir) {
        Ok(fs) if fs.f_blocks > 0 => fs.f_bavail.saturating_mul(fs.f_frsize),
        _ => u64::MAX,
    }
}

/// Makes a directory entry (a new or removed file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// Whether `dir` could be made the spool without touching it: it is a
/// directory, or the nearest part of its path that exists is one, and a
/// file can be written there (a probe file, removed at once). Read-only
/// mounts and a path through a regular file fail here rather than at
/// the first start. A lock another process holds is not an error here:
/// the running daemon holds it while its next configuration is checked.
pub fn check(dir: &Path) -> Result<(), SpoolError> {
    // A relative path none of whose parts exist yet is made in `.`.
    let existing = dir
        .ancestors()
        .find(|p| fs::symlink_metadata(p).is_ok())
        .unwrap_or(Path::new("."));
    if !fs::metadata(existing)
        .map_err(io(format!("reading {}", existing.display())))?
        .is_dir()
    {
        return Err(SpoolError::Io {
            what: format!("check of {}", dir.display()),
            source: std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", existing.display()),
            ),
        });
    }
    let probe = existing.join(format!(".hookd-check-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(io(format!("writing to {}", existing.display())))?;
    fs::remove_file(&probe).map_err(io(format!("removing {}", probe.display())))
}

/// Creates the directory if needed and takes its lock: a second process
/// on the same spool would drain and delete the first one's segments.
pub fn lock(dir: &Path) -> Result<File, SpoolError> {
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SpoolError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(io(format!("locking {}", path.display()))(e)),
    }
}

/// A segment as recovery left it.
#[derive(Debug)]
pub struct Recovered {
    pub seq: u64,
    pub events: u64,
    pub bytes: u64,
    pub oldest_ms: u64,
}

/// What recovery did besides counting, for the log.
#[derive(Debug, Default)]
pub struct Repairs {
    /// (segment, bytes cut) for torn tails.
    pub torn: Vec<(PathBuf, u64)>,
    /// Quarantine files written for damaged records.
    pub quarantined: Vec<PathBuf>,
}

/// Reads every segment in order; cuts a torn tail of the newest one at its
/// last intact record, moves damaged bytes (anywhere else) to quarantine
/// and rewrites the segment without them, deletes empty segments.
pub fn recover(dir: &Path) -> Result<(Vec<Recovered>, Repairs), SpoolError> {
    let mut seqs: Vec<u64> = fs::read_dir(dir)
        .map_err(io(format!("reading {}", dir.display())))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(SUFFIX)?.parse().ok()
        })
        .collect();
    seqs.sort_unstable();
    let mut segments = Vec::new();
    let mut repairs = Repairs::default();
    let newest = seqs.last().copied();
    for seq in seqs {
        let path = segment_path(dir, seq);
        let bytes =
            Bytes::from(fs::read(&path).map_err(io(format!("reading {}", path.display())))?);
        let mut scan = record::scan(&bytes);
        if Some(seq) == newest
            && let Some(tail) = scan.tail.take()
        {
            // The last write of a process that died mid-append: never
            // answered 202, so cutting it loses nothing accepted.
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io(format!("opening {}", path.display())))?;
            file.set_len(tail.start as u64)
                .and_then(|()| file.sync_all())
                .map_err(io(format!("cutting {}", path.display())))?;
            repairs
                .torn
                .push((path.clone(), (tail.end - tail.start) as u64));
        }
        let mut damaged = std::mem::take(&mut scan.damaged);
        damaged.extend(scan.tail.take());
        if !damaged.is_empty() {
            quarantine(dir, seq, &bytes, &damaged, &mut repairs)?;
            rewrite(dir, &path, &bytes, &scan)?;
        }
        if scan.records.is_empty() {
            fs::remove_file(&path).map_err(io(format!("removing {}", path.display())))?;
            sync_dir(dir)?;
            continue;
        }
        let oldest_ms = scan
            .records
            .first()
            .and_then(|r| record::decode(&bytes, r.clone()))
            .map_or(0, |e| e.received_ms);
        segments.push(Recovered {
            seq,
            events: scan.records.len() as u64,
            bytes: scan.records.iter().map(|r| (r.end - r.start) as u64).sum(),
            oldest_ms,
        });
    }
    Ok((segments, repairs))
}

fn quarantine(
    dir: &Path,
    seq: u64,
    bytes: &[u8],
    damaged: &[std::ops::Range<usize>],
    repairs: &mut Repairs,
) -> Result<(), SpoolError> {
    let quarantine = dir.join(QUARANTINE);
    fs::create_dir_all(&quarantine).map_err(io(format!("creating {}", quarantine.display())))?;
    for range in damaged {
        let path = quarantine.join(format!("{seq:020}-{}.bad", range.start));
        let mut file = File::create(&path).map_err(io(format!("creating {}", path.display())))?;
        file.write_all(&bytes[range.clone()])
            .and_then(|()| file.sync_all())
            .map_err(io(format!("writing {}", path.display())))?;
        repairs.quarantined.push(path);
    }
    sync_dir(&quarantine)
}

/// Replaces a segment by its intact records only, atomically.
fn rewrite(dir: &Path, path: &Path, bytes: &[u8], scan: &Scan) -> Result<(), SpoolError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    for range in &scan.records {
        file.write_all(&bytes[range.clone()])
            .map_err(io(format!("writing {}", tmp.display())))?;
    }
    file.sync_all()
        .map_err(io(format!("syncing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(io(format!("replacing {}", path.display())))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_a_directory_to_be_made_and_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/spool");
        check(&dir).unwrap();
        assert!(!root.path().join("a").exists());
        check(root.path()).unwrap();
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn check_refuses_a_path_through_a_file() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("file");
        fs::write(&file, b"x").unwrap();
        let err = check(&file.join("spool")).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
        assert!(check(&file).is_err());
    }
}
