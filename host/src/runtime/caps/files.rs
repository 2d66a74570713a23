//! `host.file-metadata`, `host.list-metadata` and `host.file-set-mode`:
//! what WASI does not expose — mode bits, owner, setuid — of paths inside
//! the step's `dirs` grant, and changing mode bits inside `:rw` grants.
//!
//! Paths are guest paths, mapped to host paths as the WASI preopens map
//! them (`/var/app:/scan:ro` makes `/scan/x` mean `/var/app/x`). A path
//! outside every granted directory, one whose `..` climbs out of its grant,
//! or one that resolves through a symlink to a place outside it is refused
//! and the refusal recorded; a symlink inside a grant is described, never
//! followed. Reads only metadata; never a file's content.

use super::Denials;
use crate::runtime::bindings::types;
use crate::runtime::grants::DirGrant;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Most entries `list-metadata` returns for one directory; a larger one is
/// an error naming it (guest memory is bounded too).
pub const MAX_LIST_ENTRIES: usize = 100_000;

/// What a path is (mirrors the WIT enum `file-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// Metadata of one path (mirrors the WIT record `file-meta`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The guest path, e.g. `/scan/etc/key.pem`.
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub setuid: bool,
    pub setgid: bool,
    /// Others may write (never true of a symlink, whose bits mean nothing).
    pub world_writable: bool,
    /// Last modification, seconds since the Unix epoch.
    pub modified: i64,
}

impl Meta {
    fn new(path: String, md: &std::fs::Metadata) -> Meta {
        let ft = md.file_type();
        let kind = if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        let mode = md.mode() & 0o7777;
        Meta {
            path,
            kind,
            size: md.len(),
            mode,
            uid: md.uid(),
            gid: md.gid(),
            setuid: mode & 0o4000 != 0,
            setgid: mode & 0o2000 != 0,
            world_writable: kind != Kind::Symlink && mode & 0o002 != 0,
            modified: md.mtime(),
        }
    }
}

/// A guest path resolved inside one grant.
struct Resolved<'a> {
    grant: &'a DirGrant,
    /// The guest path, normalized (no `.`, `..` or doubled `/`).
    guest: String,
    /// The host path (grant root joined with the relative part).
    host: PathBuf,
}

/// Per-step access to file metadata inside the `dirs` grant.
pub struct FilesCap {
    dirs: Vec<DirGrant>,
    denials: Denials,
}

impl FilesCap {
    /// Part two: per-step state from the `dirs` grant.
    pub fn new(dirs: &[DirGrant], denials: Denials) -> Self {
        FilesCap { dirs: dirs.to_vec(), denials }
    }

    /// Part three: `host.file-metadata` (a symlink is described, not followed).
    pub async fn metadata(&self, path: String) -> Result<Meta, String> {
        let r = self.resolve(&path, false, false)?;
        let (guest, host) = (r.guest.clone(), r.host.clone());
        blocking(move || {
            let md = std::fs::symlink_metadata(&host).map_err(|e| io_error(&guest, &e))?;
            Ok(Meta::new(guest, &md))
        })
        .await
    }

    /// `host.list-metadata`: one directory's entries, sorted by name,
    /// without descending (symlinks described, not followed).
    pub async fn list(&self, dir: String) -> Result<Vec<Meta>, String> {
        let r = self.resolve(&dir, false, true)?;
        let (guest, host) = (r.guest.clone(), r.host.clone());
        blocking(move || {
            let entries = std::fs::read_dir(&host).map_err(|e| io_error(&guest, &e))?;
            let mut list = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| io_error(&guest, &e))?;
                if list.len() == MAX_LIST_ENTRIES {
                    return Err(format!("{guest}: has more than {MAX_LIST_ENTRIES} entries"));
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = if guest.ends_with('/') { format!("{guest}{name}") } else { format!("{guest}/{name}") };
                // An entry removed since read_dir saw it is left out.
                if let Ok(md) = entry.metadata() {
                    list.push(Meta::new(child, &md));
                }
            }
            list.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(list)
        })
        .await
    }

    /// `host.file-set-mode`: sets the permission bits (`mode & 0o7777`) of
    /// a file or directory inside a `:rw` grant; a symlink is refused.
    pub async fn set_mode(&self, path: String, mode: u32) -> Result<(), String> {
        if mode > 0o7777 {
            return Err(format!("mode {mode:#o} of {path:?} is not a permission mode (0 to 0o7777)"));
        }
        let r = self.resolve(&path, true, false)?;
        let root = canonical_root(r.grant)?;
        let (guest, host) = (r.guest.clone(), r.host.clone());
        let denials = self.denials.clone();
        let grant = r.grant.to_string();
        blocking(move || {
            let md = std::fs::symlink_metadata(&host).map_err(|e| io_error(&guest, &e))?;
            if md.file_type().is_symlink() {
                return Err(format!("{guest}: is a symlink; its mode cannot be set"));
            }
            // Change the file that was opened, after checking where it really
            // is: a path swapped for a symlink meanwhile cannot redirect it.
            let file = std::fs::File::open(&host).map_err(|e| io_error(&guest, &e))?;
            let real = opened_path(&file).map_err(|e| format!("{guest}: cannot tell where it is: {e}"))?;
            if !real.starts_with(&root) {
                let msg = format!("dirs: {guest} resolves outside the granted directory (grant {grant})");
                denials.push(msg.clone());
                return Err(msg);
            }
            file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(|e| io_error(&guest, &e))
        })
        .await
    }

    /// Maps a guest path into its grant (the longest matching guest path),
    /// refusing — and recording — paths outside every grant, `..` that
    /// climbs out, and parents (with `follow`, the path itself) that resolve
    /// through a symlink outside.
    fn resolve(&self, path: &str, write: bool, follow: bool) -> Result<Resolved<'_>, String> {
        let guest = normalize(path).ok_or_else(|| self.deny(format!("dirs: {path:?} climbs out of the root")))?;
        let grant = self
            .dirs
            .iter()
            .filter(|d| within(&guest, &normalize(&d.guest).unwrap_or_default()))
            .max_by_key(|d| d.guest.len())
            .ok_or_else(|| {
                let granted = if self.dirs.is_empty() {
                    "none".to_string()
                } else {
                    self.dirs.iter().map(|d| d.guest.clone()).collect::<Vec<_>>().join(", ")
                };
                self.deny(format!("dirs: {guest} is not inside a directory granted to this step (granted: {granted})"))
            })?;
        if write && !grant.writable {
            return Err(self.deny(format!("dirs: {guest} is in a read-only grant ({grant}); changing it needs :rw")));
        }
        let base = normalize(&grant.guest).unwrap_or_default();
        let rel = guest[base.len()..].trim_start_matches('/');
        let host = if rel.is_empty() { grant.host.clone() } else { grant.host.join(rel) };
        // The grant root may itself be a symlink (as a preopen follows it);
        // below it, every parent must resolve inside it.
        if !rel.is_empty() {
            let root = canonical_root(grant)?;
            let checked = if follow { &host } else { host.parent().unwrap_or(&host) };
            if let Ok(real) = checked.canonicalize()
                && !real.starts_with(&root)
            {
                return Err(self.deny(format!("dirs: {guest} resolves outside the granted directory (grant {grant})")));
            }
        }
        Ok(Resolved { grant, guest, host })
    }

    fn deny(&self, msg: String) -> String {
        self.denials.push(msg.clone());
        msg
    }
}

/// `path` with `.` and doubled `/` removed and `..` applied; None when `..`
/// climbs above the start. Keeps a leading `/`.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let lead = if path.starts_with('/') { "/" } else { "" };
    Some(format!("{lead}{}", parts.join("/")))
}

/// Whether normalized guest path `path` is `base` or below it.
fn within(path: &str, base: &str) -> bool {
    if base == "/" {
        return path.starts_with('/');
    }
    path == base || path.strip_prefix(base).is_some_and(|rest| rest.starts_with('/'))
}

fn canonical_root(grant: &DirGrant) -> Result<PathBuf, String> {
    grant.host.canonicalize().map_err(|e| format!("dirs: granted directory {} cannot be read: {e}", grant.guest))
}

/// Where an open file really is (Linux: `/proc/self/fd/N`).
fn opened_path(file: &std::fs::File) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// An I/O error on guest path `guest`, without the host path.
fn io_error(guest: &str, e: &std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::NotADirectory => "not a directory".to_string(),
        _ => e.to_string(),
    };
    format!("{guest}: {what}")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| format!("reading file metadata failed: {e}"))?
}

/// A path's metadata, in the contract's types.
impl From<Meta> for types::FileMeta {
    fn from(m: Meta) -> types::FileMeta {
        types::FileMeta {
            path: m.path,
            kind: match m.kind {
                Kind::File => types::FileKind::File,
                Kind::Dir => types::FileKind::Dir,
                Kind::Symlink => types::FileKind::Symlink,
                Kind::Other => types::FileKind::Other,
            },
            size: m.size,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            setuid: m.setuid,
            setgid: m.setgid,
            world_writable: m.world_writable,
            modified: m.modified,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(dir: &Path, mode: &str) -> FilesCap {
        let grant = DirGrant::parse(&format!("{}:/scan:{mode}", dir.display())).unwrap();
        FilesCap::new(&[grant], Denials::default())
    }

    #[tokio::test]
    async fn metadata_reports_mode_bits_owner_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.sh");
        std::fs::write(&file, "echo hi\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4757)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let files = cap(dir.path(), "ro");

        let m = files.metadata("/scan/run.sh".into()).await.unwrap();
        assert_eq!((m.path.as_str(), m.kind, m.size, m.mode), ("/scan/run.sh", Kind::File, 8, 0o4757));
        assert!(m.setuid && !m.setgid && m.world_writable);
        assert_eq!(m.uid, std::fs::metadata(&file).unwrap().uid());
        assert!(m.modified > 1_600_000_000);

        let list = files.list("/scan/".into()).await.unwrap();
        let shown: Vec<(&str, Kind)> = list.iter().map(|m| (m.path.as_str(), m.kind)).collect();
        assert_eq!(shown, [("/scan/link", Kind::Symlink), ("/scan/run.sh", Kind::File)]);
        assert!(!list[0].world_writable, "a symlink's bits mean nothing");
        assert!(files.denials.list().is_empty());
    }

    #[tokio::test]
    async fn paths_outside_the_grant_are_refused_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("etc")).unwrap();
        let files = cap(dir.path(), "ro");

        let err = files.metadata("/etc/passwd".into()).await.unwrap_err();
        assert_eq!(err, "dirs: /etc/passwd is not inside a directory granted to this step (granted: /scan)");
        let err = files.list("/scan/sub/../../etc".into()).await.unwrap_err();
        assert_eq!(err, "dirs: /etc is not inside a directory granted to this step (granted: /scan)");
        let err = files.metadata("/scan/etc/passwd".into()).await.unwrap_err();
        let grant = format!("{}:/scan:ro", dir.path().display());
        assert_eq!(err, format!("dirs: /scan/etc/passwd resolves outside the granted directory (grant {grant})"));
        let err = files.metadata("/../x".into()).await.unwrap_err();
        assert_eq!(err, "dirs: \"/../x\" climbs out of the root");
        let err = files.list("/scan/etc".into()).await.unwrap_err();
        assert_eq!(err, format!("dirs: /scan/etc resolves outside the granted directory (grant {grant})"));
        assert_eq!(files.denials.list().len(), 5);
        // "/scanner" is not inside "/scan".
        assert!(files.metadata("/scanner".into()).await.is_err());
        // Inside the grant, a missing file is an error but no denial.
        assert_eq!(files.metadata("/scan/nope".into()).await.unwrap_err(), "/scan/nope: no such file or directory");
        assert_eq!(files.denials.list().len(), 6);
    }

    #[tokio::test]
    async fn set_mode_needs_a_writable_grant_and_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.pem");
        std::fs::write(&file, "k").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("link")).unwrap();

        let err = cap(dir.path(), "ro").set_mode("/scan/key.pem".into(), 0o600).await.unwrap_err();
        let grant = format!("{}:/scan:ro", dir.path().display());
        assert_eq!(err, format!("dirs: /scan/key.pem is in a read-only grant ({grant}); changing it needs :rw"));

        let rw = cap(dir.path(), "rw");
        rw.set_mode("/scan/key.pem".into(), 0o600).await.unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(
            rw.set_mode("/scan/link".into(), 0o666).await.unwrap_err(),
            "/scan/link: is a symlink; its mode cannot be set"
        );
        assert_eq!(
            rw.set_mode("/scan/key.pem".into(), 0o17777).await.unwrap_err(),
            "mode 0o17777 of \"/scan/key.pem\" is not a permission mode (0 to 0o7777)"
        );
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o7777, 0o600);
    }
}
