//! Wakes the sync thread as soon as a pod record appears, changes or goes (inotify on the
//! records directory), so a pod's CNI ADD is configured without waiting for the next poll.
//!
//! vpg-cni writes a record to a hidden temporary file and renames it into place, so a rename
//! into the directory (or a delete, or a write closed in place by hand) is the event. Polling
//! stays as the safety net: before the directory exists, when inotify is refused (no
//! instances left), and when the kernel's event queue overflows, the next poll still finds
//! the change.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

use crate::run::Wake;

/// Starts the watcher thread. It ends when the sync thread is gone (a send fails).
pub fn spawn(dir: PathBuf, wake: mpsc::Sender<Wake>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("vpg-agent-podwatch".into())
        .spawn(move || watch(&dir, &wake))
        .map(|_| ())
}

/// Whether `name` is a record (hidden names are vpg-cni's temporary files).
fn is_record(name: &[u8]) -> bool {
    !name.starts_with(b".") && name.ends_with(b".json")
}

fn watch(dir: &Path, wake: &mpsc::Sender<Wake>) {
    let fd = match inotify::init(CreateFlags::CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!("pod records: inotify refused ({e}); polling only");
            return;
        }
    };
    let mask = WatchFlags::MOVED_TO
        | WatchFlags::MOVED_FROM
        | WatchFlags::DELETE
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF;
    let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
    loop {
        // The directory may not exist yet (no pod on the node so far): the poll covers that
        // time; try again every second.
        let wd = loop {
            match inotify::add_watch(&fd, dir, mask) {
                Ok(wd) => break wd,
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        };
        // Whatever happened before the watch was in place is the poll's.
        if wake.send(Wake::Pods).is_err() {
            return;
        }
        let mut reader = inotify::Reader::new(&fd, &mut buf);
        let gone = loop {
            let ev = match reader.next() {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!("pod records: reading inotify events: {e}; polling only");
                    return;
                }
            };
            let flags = ev.events();
            if flags.intersects(ReadFlags::IGNORED | ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF)
                && ev.wd() == wd
            {
                break true;
            }
            let record = ev.file_name().is_some_and(|n| is_record(n.to_bytes()));
            if (record || flags.contains(ReadFlags::QUEUE_OVERFLOW))
                && wake.send(Wake::Pods).is_err()
            {
                return;
            }
        };
        if gone {
            // The directory was removed or moved: watch it again once it is back.
            let _ = inotify::remove_watch(&fd, wd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Waits up to 5 s for a `Pods` wake (and drains the ones right behind it).
    fn woken(rx: &mpsc::Receiver<Wake>) -> bool {
        let got = matches!(rx.recv_timeout(Duration::from_secs(5)), Ok(Wake::Pods));
        while rx.recv_timeout(Duration::from_millis(50)).is_ok() {}
        got
    }

    #[test]
    fn records_written_renamed_and_removed_wake_the_sync_thread() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pods");
        let (tx, rx) = mpsc::channel();
        spawn(dir.clone(), tx).unwrap();
        // No directory yet: nothing to watch; once it exists the watcher says so.
        std::fs::create_dir(&dir).unwrap();
        let t0 = Instant::now();
        assert!(woken(&rx), "the directory appeared");
        assert!(t0.elapsed() < Duration::from_secs(3));
        // vpg-cni's way: a hidden temporary file renamed into place. The temporary file's
        // own write does not count.
        std::fs::write(dir.join(".c1@eth0.json.tmp"), b"{}").unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "a temporary file is not a record"
        );
        std::fs::rename(dir.join(".c1@eth0.json.tmp"), dir.join("c1@eth0.json")).unwrap();
        assert!(woken(&rx), "a record renamed into place");
        std::fs::write(dir.join("c1@eth0.json"), b"{ }").unwrap();
        assert!(woken(&rx), "a record rewritten in place");
        std::fs::remove_file(dir.join("c1@eth0.json")).unwrap();
        assert!(woken(&rx), "a record removed");
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "not a record"
        );
        // The directory removed and made again: watched again.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        assert!(woken(&rx), "the directory came back");
        std::fs::write(dir.join("c2@eth0.json"), b"{}").unwrap();
        assert!(woken(&rx), "a record in the new directory");
    }
}
