//! `[spool]`: the local durable buffer used while Redis cannot take events.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Directory of the segment files; empty turns the spool off (ingest
    /// then answers 503 while Redis is unreachable). One per instance:
    /// a second process on the same directory is refused.
    pub dir: PathBuf,
    /// Bytes the segments may take on disk; beyond it ingest answers 503
    /// as without a spool, so a long outage cannot fill the disk.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::new(),
            max_bytes: 1 << 30,
        }
    }
}

impl SpoolConfig {
    pub fn enabled(&self) -> bool {
        !self.dir.as_os_str().is_empty()
    }
}
