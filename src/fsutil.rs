//! Writing files so that a crash or a full disk never leaves a half-written one.

use std::io::Write;
use std::path::Path;

/// Prefix of the temporary files termtag writes beside their destination.
pub const TMP_PREFIX: &str = ".termtag-tmp-";

/// Writes `path` whole or not at all: the bytes go to a temporary file beside it, which replaces
/// `path` only once fully written and synced. A full disk leaves the earlier file (or none), never
/// a truncated one, and no temporary file behind. Errors are the plain kind (`no storage space`),
/// without the temporary file's name.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let plain = |e: std::io::Error| std::io::Error::from(e.kind());
    let mut builder = tempfile::Builder::new();
    builder.prefix(TMP_PREFIX);
    // Like `fs::write`: 0666 less the umask, not a temporary file's private 0600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir).map_err(plain)?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(plain)?;
    tmp.persist(path).map_err(|e| plain(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! A failed write leaving the earlier file whole is tested on a full disk:
    //! tests/disk_full.rs `export_on_a_full_disk_keeps_the_earlier_file_whole`.
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        std::fs::write(&p, "old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_ne!(
                mode & 0o044,
                0,
                "readable by others as fs::write makes it: {mode:o}"
            );
        }
    }
}
