//! File primitives of the state directory: durable replacement, moving bad files
//! aside, names that stay inside the directory.

use anyhow::Context;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// True if `name` is a Linux interface name that is also a safe file name: 1-15
/// bytes, not `.` or `..`, no `/`, `:`, whitespace or NUL.
pub fn valid_port_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
}

/// `dir/file`, refused unless `name` is a valid port name and the result is a
/// direct child of `dir`.
pub(super) fn inside(dir: &Path, file: &str, name: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        valid_port_name(name),
        "invalid interface name {name:?}: 1-15 characters, not . or .., no '/', ':' or whitespace"
    );
    let path = dir.join(file);
    anyhow::ensure!(
        path.parent() == Some(dir) && path.file_name().is_some_and(|f| f == file),
        "{} is outside the state directory",
        path.display()
    );
    Ok(path)
}

/// Flushes a directory's entries (a rename or unlink in it) to disk.
pub(super) fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Replaces `path` with `bytes`: a temporary file (mode 0600) written and synced,
/// renamed over `path`, and the directory synced. On any error `path` still holds
/// its previous content and the temporary file is gone.
pub(super) fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("a state file has a directory")?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("a state file has a name")?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    sync_dir(dir)
}

fn aside_name(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".unreadable-{secs}"));
    path.with_file_name(name)
}

/// Renames an unreadable file aside so that nothing overwrites it; returns the
/// problem as a line for the log.
pub(super) fn move_aside(path: &Path, why: &anyhow::Error) -> String {
    let aside = aside_name(path);
    match std::fs::rename(path, &aside) {
        Ok(()) => format!("{}: {why:#}; moved to {}", path.display(), aside.display()),
        Err(e) => format!("{}: {why:#}; could not move it aside: {e}", path.display()),
    }
}

/// Copies a partly readable file aside (its good entries are still used); returns
/// the problem as a line for the log.
pub(super) fn copy_aside(path: &Path, bad: usize) -> String {
    let aside = aside_name(path);
    match std::fs::copy(path, &aside) {
        Ok(_) => format!(
            "{}: {bad} bad entries; the whole file is kept in {}",
            path.display(),
            aside.display()
        ),
        Err(e) => format!("{}: {bad} bad entries; could not copy it aside: {e}", path.display()),
    }
}

/// Reads a JSON file into `T`; a missing file is the default, an unreadable one is
/// moved aside and reported.
pub(super) fn load_or_move_aside<T: DeserializeOwned + Default>(path: &Path) -> (T, Vec<String>) {
    match std::fs::read(path) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(v) => (v, Vec::new()),
            Err(e) => (T::default(), vec![move_aside(path, &e.into())]),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (T::default(), Vec::new()),
        Err(e) => (T::default(), vec![format!("{}: {e}", path.display())]),
    }
}
