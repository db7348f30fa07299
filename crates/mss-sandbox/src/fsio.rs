//! Files of the sandbox directory: written whole (temporary file then rename), private keys
//! and secrets readable by the owner only.

use std::io::Write;
use std::path::Path;

use crate::error::SandboxError;

/// Largest file the sandbox reads back from its own directory.
const MAX_READ: u64 = 1024 * 1024;

/// Writes `data` to `path` atomically; `private` files get mode 0600 from their creation.
pub(crate) fn write(path: &Path, data: &[u8], private: bool) -> Result<(), SandboxError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(SandboxError::io(parent))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(SandboxError::io(&tmp))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(SandboxError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(SandboxError::io(path))
}

/// Reads a text file of the sandbox directory, bounded in size.
pub(crate) fn read(path: &Path) -> Result<String, SandboxError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(SandboxError::io(path))?;
    let mut text = String::new();
    file.take(MAX_READ + 1)
        .read_to_string(&mut text)
        .map_err(SandboxError::io(path))?;
    if text.len() as u64 > MAX_READ {
        return Err(SandboxError::Damaged {
            path: path.to_owned(),
            why: "larger than 1 MiB".into(),
        });
    }
    Ok(text)
}
