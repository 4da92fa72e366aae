//! Reading the files that people's files name — a blueprint's `extends`, a test file's `blueprint`
//! and `events` — without reading what they must not: a test file in a pull request is untrusted
//! input to a CI job, and an excerpt of `/proc/self/environ` in an error would print the job's
//! secrets. A [`FileAccess`] says which folders may be read; every file is resolved (symlinks
//! followed) and checked before a byte of it is read.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The largest file read: far above any blueprint or test file, far below what would exhaust memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Which files may be read.
#[derive(Debug, Clone, Default)]
pub struct FileAccess {
    /// The folders (resolved) that files must resolve inside; `None`: anywhere.
    roots: Option<Vec<PathBuf>>,
}

/// Why a file was not read.
#[derive(Debug)]
pub struct FileRefusal {
    /// The file, as it was named.
    pub path: PathBuf,
    /// What is wrong with it.
    pub kind: RefusalKind,
}

/// The kinds of [`FileRefusal`].
#[derive(Debug)]
pub enum RefusalKind {
    /// It resolves (after symlinks) outside every allowed folder; it was not opened.
    Outside {
        /// Where it resolves to.
        resolved: PathBuf,
    },
    /// It is not a regular file (a folder, a FIFO, a device, a socket): reading it could block or
    /// never end.
    NotRegular {
        /// What it is, in words.
        what: &'static str,
    },
    /// It is larger than [`MAX_FILE_BYTES`].
    TooLarge {
        /// Its size.
        bytes: u64,
    },
    /// It does not exist, or cannot be read.
    Io(std::io::Error),
}

impl FileAccess {
    /// Any file may be read (still only regular files, up to [`MAX_FILE_BYTES`]).
    pub fn anywhere() -> FileAccess {
        FileAccess { roots: None }
    }

    /// Only files inside `roots` (and their subfolders, after symlinks) may be read. A root that
    /// does not exist allows nothing.
    pub fn within(roots: impl IntoIterator<Item = PathBuf>) -> FileAccess {
        let mut resolved: Vec<PathBuf> =
            roots.into_iter().filter_map(|root| std::fs::canonicalize(root).ok()).collect();
        resolved.sort();
        resolved.dedup();
        FileAccess { roots: Some(resolved) }
    }

    /// What a command that was handed `paths` may read: the current folder, each folder named, and
    /// the folder of each file named. A folder reached through a symlink (`link/`, `link/.`,
    /// `link/sub`) adds nothing: what it leads to is read only where it is inside another root,
    /// so a symlink a pull request plants cannot widen what is read. With `allow_outside`,
    /// anything.
    pub fn for_command_line(paths: &[PathBuf], allow_outside: bool) -> FileAccess {
        if allow_outside {
            return FileAccess::anywhere();
        }
        let mut roots = vec![PathBuf::from(".")];
        for path in paths {
            // `components` drops a trailing `/` and `.`, through which `lstat` would follow a link.
            let named: PathBuf = path.components().collect();
            let folder = if std::fs::symlink_metadata(&named).is_ok_and(|meta| meta.is_dir()) {
                named
            } else {
                folder_of(&named).to_path_buf()
            };
            if !through_symlink(&folder) {
                roots.push(folder);
            }
        }
        FileAccess::within(roots)
    }

    /// Whether `path` may be read: it resolves inside the allowed folders and is a regular file
    /// no larger than [`MAX_FILE_BYTES`]. Nothing is opened.
    pub fn check(&self, path: &Path) -> Result<PathBuf, FileRefusal> {
        let refuse = |kind| FileRefusal { path: path.to_path_buf(), kind };
        let resolved = std::fs::canonicalize(path).map_err(|error| refuse(RefusalKind::Io(error)))?;
        if let Some(roots) = &self.roots
            && !roots.iter().any(|root| resolved.starts_with(root))
        {
            return Err(refuse(RefusalKind::Outside { resolved }));
        }
        let meta = std::fs::metadata(&resolved).map_err(|error| refuse(RefusalKind::Io(error)))?;
        check_meta(&meta).map_err(refuse)?;
        Ok(resolved)
    }

    /// Reads `path` as UTF-8 text once [`check`](Self::check) allows it.
    pub fn read(&self, path: &Path) -> Result<String, FileRefusal> {
        let resolved = self.check(path)?;
        let refuse = |kind| FileRefusal { path: path.to_path_buf(), kind };
        let file = std::fs::File::open(&resolved).map_err(|error| refuse(RefusalKind::Io(error)))?;
        // Checked again on what was opened: the path may have been swapped since.
        let meta = file.metadata().map_err(|error| refuse(RefusalKind::Io(error)))?;
        check_meta(&meta).map_err(refuse)?;
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(|error| refuse(RefusalKind::Io(error)))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(refuse(RefusalKind::TooLarge { bytes: text.len() as u64 }));
        }
        Ok(text)
    }

    /// Whether files in `folder` (not its subfolders' names) may be listed.
    pub fn allows_folder(&self, folder: &Path) -> bool {
        match &self.roots {
            None => true,
            Some(roots) => std::fs::canonicalize(folder).is_ok_and(|folder| roots.iter().any(|root| folder.starts_with(root))),
        }
    }

    /// Whether this access is confined to some folders.
    pub fn is_confined(&self) -> bool {
        self.roots.is_some()
    }
}

/// Whether `folder`, or any folder it is named through, is a symlink.
fn through_symlink(folder: &Path) -> bool {
    folder
        .ancestors()
        .filter(|ancestor| !ancestor.as_os_str().is_empty())
        .any(|ancestor| std::fs::symlink_metadata(ancestor).is_ok_and(|meta| meta.file_type().is_symlink()))
}

/// The folder a file named `path` is in: `.` for a bare name.
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn check_meta(meta: &std::fs::Metadata) -> Result<(), RefusalKind> {
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() { "a folder" } else { "not a regular file (a pipe, device or socket)" };
        return Err(RefusalKind::NotRegular { what });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(RefusalKind::TooLarge { bytes: meta.len() });
    }
    Ok(())
}

impl FileRefusal {
    /// The diagnostic for a file that could not be read as a whole (at its 1:1), named `file`:
    /// `io` with `cannot read the WHAT: …` when the system said no, `file_refused` otherwise.
    pub fn diagnostic(&self, file: String, what: &str, io_hint: &str) -> crate::Diagnostic {
        let (kind, message, hint) = match &self.kind {
            RefusalKind::Io(error) => (crate::DiagnosticKind::Io, format!("cannot read the {what}: {error}"), io_hint),
            _ => (crate::DiagnosticKind::FileRefused, self.to_string(), self.hint()),
        };
        crate::Diagnostic {
            file,
            position: crate::yaml::Position { line: 1, column: 1, len: 1 },
            kind,
            message,
            hint: Some(hint.into()),
            source_line: None,
        }
    }

    /// Whether the file simply is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(&self.kind, RefusalKind::Io(error) if error.kind() == std::io::ErrorKind::NotFound)
    }

    /// How to fix it.
    pub fn hint(&self) -> &'static str {
        match self.kind {
            RefusalKind::Outside { .. } => {
                "files are read only inside the current folder and the folders named on the command line; move it there, or pass --allow-outside if you trust every file involved"
            }
            RefusalKind::NotRegular { .. } => "name a regular file",
            RefusalKind::TooLarge { .. } => "split it into smaller files",
            RefusalKind::Io(_) => "check the path and that the file is readable",
        }
    }
}

impl fmt::Display for FileRefusal {
    /// What is wrong, naming the file but quoting none of it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            RefusalKind::Outside { resolved } => write!(
                f,
                "`{path}` is refused without being read: it resolves to {}, outside the folders this command may read",
                resolved.display()
            ),
            RefusalKind::NotRegular { what } => write!(f, "`{path}` is refused without being read: it is {what}"),
            RefusalKind::TooLarge { bytes } => write!(
                f,
                "`{path}` is refused: {bytes} bytes is over the limit of {} MB",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
            RefusalKind::Io(error) => write!(f, "cannot read `{path}`: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_out_of_the_tree_is_refused_and_one_inside_is_read() -> std::io::Result<()> {
        let (tree, outside) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let (tree, outside) = (tree.path(), outside.path());
        std::fs::write(outside.join("secret.txt"), "TOKEN=hunter2")?;
        std::fs::write(tree.join("shop.yaml"), "events: {}")?;
        std::os::unix::fs::symlink(outside.join("secret.txt"), tree.join("link.yaml"))?;
        std::os::unix::fs::symlink(tree.join("shop.yaml"), tree.join("inside.yaml"))?;
        let access = FileAccess::within([tree.to_path_buf()]);
        let refusal = access.read(&tree.join("link.yaml")).expect_err("outside");
        assert!(matches!(refusal.kind, RefusalKind::Outside { .. }), "{refusal}");
        assert!(!refusal.to_string().contains("hunter2"));
        assert_eq!(access.read(&tree.join("inside.yaml")).map_err(|e| e.to_string()).as_deref(), Ok("events: {}"));
        assert!(FileAccess::anywhere().read(&tree.join("link.yaml")).is_ok());
        Ok(())
    }

    #[test]
    fn a_folder_named_through_a_symlink_widens_nothing() -> std::io::Result<()> {
        let (tree, outside) = (tempfile::tempdir()?, tempfile::tempdir()?);
        std::fs::write(outside.path().join("secret.txt"), "TOKEN=hunter2")?;
        std::os::unix::fs::symlink(outside.path(), tree.path().join("blueprints"))?;
        let secret = tree.path().join("blueprints/secret.txt");
        for named in ["blueprints", "blueprints/", "blueprints/.", "blueprints/./"] {
            let access = FileAccess::for_command_line(&[tree.path().join(named)], false);
            let refusal = access.read(&secret).expect_err(named);
            assert!(matches!(refusal.kind, RefusalKind::Outside { .. }), "{named}: {refusal}");
        }
        // A real folder named with a trailing slash is a root.
        std::fs::create_dir(tree.path().join("real"))?;
        std::fs::write(tree.path().join("real/shop.yaml"), "events: {}")?;
        let access = FileAccess::for_command_line(&[tree.path().join("real/")], false);
        assert!(access.read(&tree.path().join("real/shop.yaml")).is_ok());
        Ok(())
    }

    #[test]
    fn a_fifo_is_refused_at_once_not_waited_on() -> std::io::Result<()> {
        let tree = tempfile::tempdir()?;
        let fifo = tree.path().join("events.ndjson");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
        assert!(made.success());
        let refusal = FileAccess::within([tree.path().to_path_buf()]).read(&fifo).expect_err("a fifo");
        assert!(matches!(refusal.kind, RefusalKind::NotRegular { .. }), "{refusal}");
        Ok(())
    }
}
