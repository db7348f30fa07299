//! Reading the files a user names, with a size bound so a wrong path to a
//! huge file fails fast instead of filling memory.

use anyhow::{Context, Result, bail};
use std::path::Path;

/// Largest input file accepted by the document commands.
pub const MAX_INPUT_BYTES: u64 = 512 * 1024 * 1024;

pub fn read(path: &Path) -> Result<Vec<u8>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", path.display());
    }
    if meta.len() > MAX_INPUT_BYTES {
        bail!(
            "{} is {} bytes, more than the {} accepted",
            path.display(),
            meta.len(),
            MAX_INPUT_BYTES
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file renamed into place, so a
/// failure never leaves half a file behind.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("the output path has no file name")?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}", path.display())
    })
}
