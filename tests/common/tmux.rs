//! A tmux server of the test's own for end-to-end runs of the real binary: keys go in with
//! `send-keys`, the screen comes out with `capture-pane`.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::Fixture;

/// A tmux server on a socket of its own (never reused, so a server still shutting down is never
/// joined), killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn new(name: &str) -> Tmux {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "tmux is not installed: run scripts/test.sh, which installs it"
        );
        Tmux {
            socket: format!(
                "termtag-test-{name}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs termtag with `args` in a 160×48 pane, `env` (`NAME=value …`) added to its
    /// environment. The pane stays after termtag exits and shows how it ended.
    pub fn run_env(&self, env: &str, args: &str) {
        let cmd = format!(
            "env TERM=xterm-256color USER=tester {env} {} {args}; echo termtag-exit=$?; sleep 600",
            env!("CARGO_BIN_EXE_termtag"),
        );
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args([
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "48",
                "-s",
                "t",
                // As argv, not a line for the user's shell: $SHELL may be anything (nologin,
                // /bin/false in a CI runner) and the pane would die at once.
                "/bin/sh",
                "-c",
                &cmd,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn run(&self, args: &str) {
        self.run_env("", args);
    }

    /// Opens the review screen of `f`'s project with halfblocks.
    pub fn start(&self, f: &Fixture) {
        self.start_with(f, "--graphics halfblocks");
    }

    pub fn start_with(&self, f: &Fixture, flags: &str) {
        self.run(&format!("-C {} label {flags}", f.project().display()));
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "t", k]);
            // Keys are read one event at a time; a short gap keeps them apart as a person types.
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    /// Waits until the screen contains `text` (the app is asynchronous), or fails showing it.
    #[track_caller]
    pub fn wait_for(&self, text: &str) -> String {
        self.wait_any(&[text], 20)
    }

    #[track_caller]
    pub fn wait_secs(&self, text: &str, secs: u64) -> String {
        self.wait_any(&[text], secs)
    }

    /// Waits until the screen contains one of `texts`, or fails showing the screen and panes.
    #[track_caller]
    pub fn wait_any(&self, texts: &[&str], secs: u64) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if texts.iter().any(|t| s.contains(t)) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "screen never showed {texts:?}:\n{s}\npanes: {}",
                self.tmux(&[
                    "list-panes",
                    "-a",
                    "-F",
                    "#{pane_dead} #{pane_pid} #{pane_current_command}"
                ])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The termtag process in the pane (the pane's shell is its parent).
    pub fn termtag_pid(&self) -> String {
        let shell = self.tmux(&["display-message", "-p", "-t", "t", "#{pane_pid}"]);
        let out = Command::new("pgrep")
            .args(["-P", shell.trim(), "termtag"])
            .output()
            .unwrap();
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            !pid.is_empty(),
            "termtag is not running in the pane:\n{}",
            self.screen()
        );
        pid
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}
