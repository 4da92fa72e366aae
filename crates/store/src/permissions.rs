//! The database holds people's emails and phone numbers: its file is created readable by this user
//! only (0600) in a directory only this user can enter (0700), and one found looser is tightened.

use std::path::Path;

use crate::StoreError;

/// The suffixes of the files SQLite (and Signal's lock) keep beside the database.
const SIDE_FILES: [&str; 4] = ["-wal", "-shm", "-journal", ".lock"];

/// Creates the database's directory and file privately, or tightens them; returns what was
/// tightened, with its mode before.
pub(crate) fn prepare(path: &Path) -> Result<Vec<(String, u32)>, StoreError> {
    let mut tightened = Vec::new();
    if let Some(directory) = path.parent().filter(|directory| !directory.as_os_str().is_empty()) {
        create_directory(directory)?;
        // A directory that holds other things (a home, /tmp) is not Signal's to change.
        if only_signal_files(directory, path) {
            tighten(directory, 0o700, &mut tightened)?;
        }
    }
    create_file(path)?;
    tighten(path, 0o600, &mut tightened)?;
    for suffix in SIDE_FILES {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = Path::new(&side);
        if side.exists() {
            tighten(side, 0o600, &mut tightened)?;
        }
    }
    Ok(tightened)
}

fn failure(doing: &'static str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError { doing, cause: format!("{}: {error}", path.display()) }
}

#[cfg(unix)]
fn create_directory(directory: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
        .map_err(|error| failure("creating the data directory", directory, error))
}

#[cfg(not(unix))]
fn create_directory(directory: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(directory).map_err(|error| failure("creating the data directory", directory, error))
}

#[cfg(unix)]
fn create_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(failure("creating the database", path, error)),
    }
}

#[cfg(not(unix))]
fn create_file(_: &Path) -> Result<(), StoreError> {
    Ok(())
}

fn only_signal_files(directory: &Path, database: &Path) -> bool {
    let Some(name) = database.file_name().and_then(|name| name.to_str()) else { return false };
    let Ok(entries) = std::fs::read_dir(directory) else { return false };
    entries.flatten().all(|entry| {
        let entry_name = entry.file_name();
        let entry_name = entry_name.to_string_lossy();
        entry_name == name || SIDE_FILES.iter().any(|suffix| entry_name == format!("{name}{suffix}"))
    })
}

#[cfg(unix)]
fn tighten(path: &Path, mode: u32, tightened: &mut Vec<(String, u32)>) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = std::fs::metadata(path).map_err(|error| failure("reading the permissions", path, error))?;
    let before = metadata.permissions().mode() & 0o777;
    if before & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|error| failure("making the data private", path, error))?;
        tightened.push((path.display().to_string(), before));
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_: &Path, _: u32, _: &mut Vec<(String, u32)>) -> Result<(), StoreError> {
    Ok(())
}
