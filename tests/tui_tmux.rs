//! End to end: the real binary in tmux, keys sent with `send-keys`, the screen read with
//! `capture-pane`, the store checked afterwards — including a `kill -9` in the middle.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Fixture, write_image};

/// A tmux server of our own (its own socket), killed when the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "tmux is not installed: run scripts/test.sh, which installs it"
        );
        Tmux {
            socket: format!("termtag-test-{name}-{}", std::process::id()),
        }
    }
    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn start(&self, f: &Fixture) {
        self.start_with(f, "--graphics halfblocks");
    }
    fn start_with(&self, f: &Fixture, flags: &str) {
        // The pane stays after termtag exits and shows how it ended.
        let cmd = format!(
            "env TERM=xterm-256color USER=tester {} -C {} label {flags}; echo termtag-exit=$?; sleep 600",
            env!("CARGO_BIN_EXE_termtag"),
            f.project().display()
        );
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args([
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "48",
                "-s",
                "t",
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
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "t", k]);
            // Keys are read one event at a time; a short gap keeps them apart as a person types.
            std::thread::sleep(Duration::from_millis(60));
        }
    }
    /// Waits until the screen contains `text` (the app is asynchronous), or fails showing it.
    #[track_caller]
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "screen never showed {text:?}:\n{s}\npanes: {}",
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
    fn termtag_pid(&self) -> String {
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

fn project() -> Fixture {
    let f = Fixture::new();
    for name in ["a.png", "b.png", "c.png"] {
        write_image(&f.images().join(name), 120, 80);
    }
    f.ok(&[
        "init",
        f.project().to_str().unwrap(),
        "--task",
        "detect",
        "--classes",
        "knot,defect",
        "--source",
        f.images().to_str().unwrap(),
    ]);
    f.write(
        "totag.csv",
        "filename,class,xmin,xmax,ymin,ymax,height,width,folder,box_confidence,image_confidence\n\
         a.png,knot,0.1,0.3,0.1,0.3,80,120,,0.9,0.6\n\
         a.png,defect,0.5,0.9,0.5,0.9,80,120,,0.6,0.6\n\
         b.png,knot,0.2,0.4,0.2,0.4,80,120,,0.8,0.8\n",
    );
    f.ok(&[
        "import",
        "totag.csv",
        "--format",
        "ald-csv",
        "--as",
        "predictions",
    ]);
    f
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn review_in_tmux_and_survive_kill_9() {
    let f = project();
    let t = Tmux::new("review");
    t.start(&f);
    t.wait_for("REVIEW");
    // The queue arrives from the store worker a moment after the first frame.
    t.wait_for("image 1/3");
    let s = t.wait_for("proposal");
    assert!(s.contains("knot") && s.contains("0.90"), "{s}");

    // Accept a.png as shown: both proposals become labels and the queue moves on.
    t.keys(&["Enter"]);
    t.wait_for("image 2/3");
    assert_eq!(
        f.count("SELECT count(*) FROM annotation a JOIN image i ON i.id = a.image_id WHERE i.key = 'a.png'"),
        2
    );
    // b.png: delete its proposal and draw a box (w, corner, move, corner).
    t.keys(&[
        "x", "w", "Space", "l", "l", "l", "j", "j", "j", "Space", "2",
    ]);
    wait_until("the drawn box in the store", || {
        f.count("SELECT count(*) FROM annotation a JOIN image i ON i.id = a.image_id JOIN class c ON c.id = a.class_id WHERE i.key = 'b.png' AND c.name = 'defect' AND a.origin = 'human'") == 1
    });
    let s = t.screen();
    assert!(s.contains("defect") && s.contains("label"), "{s}");

    // kill -9 in the middle: everything shown as done is in the store.
    let pid = t.termtag_pid();
    Command::new("kill").args(["-9", &pid]).status().unwrap();
    t.wait_for("termtag-exit=137");
    assert_eq!(
        f.count("SELECT count(*) FROM image WHERE key = 'a.png' AND status = 'reviewed'"),
        1
    );
    assert_eq!(f.count("SELECT count(*) FROM annotation"), 3);

    // Restart, in a fresh tmux server (killing and reusing one races its exit): the store
    // opens cleanly and the screen comes back with the work in it.
    drop(t);
    let t = Tmux::new("restart");
    t.start(&f);
    t.wait_for("REVIEW");
    // The unreviewed b.png leads the queue now, with the box drawn before the kill.
    let s = t.wait_for("b.png");
    assert!(s.contains("defect"), "{s}");
    // Help and quit.
    t.keys(&["?"]);
    t.wait_for("keys (Esc closes)");
    t.keys(&["Escape", "q"]);
    t.wait_for("termtag-exit=0");
}

#[test]
fn graphics_query_does_not_eat_the_first_key() {
    let f = project();
    let t = Tmux::new("query");
    // Auto detection asks the terminal (tmux here) what it can show.
    t.start_with(&f, "");
    t.wait_for("image 1/3");
    t.keys(&["]"]);
    t.wait_for("image 2/3");
    t.keys(&["q"]);
    t.wait_for("termtag-exit=0");
}

#[test]
fn pull_review_and_push_with_the_keys() {
    let f = Fixture::new();
    // A shared folder as the team's remote, holding three images.
    for name in ["a.png", "b.png", "c.png"] {
        write_image(&f.path("remote/activelearningimages").join(name), 64, 48);
    }
    f.ok(&[
        "init",
        f.project().to_str().unwrap(),
        "--task",
        "detect",
        "--classes",
        "knot",
    ]);
    let toml = f.read("proj/termtag.toml");
    f.write(
        "proj/termtag.toml",
        &format!(
            "{toml}\n[remote]\nfolder = \"{}\"\n",
            f.path("remote").display()
        ),
    );
    let t = Tmux::new("sync");
    t.start(&f);
    t.wait_for("REVIEW");
    t.keys(&["F"]);
    t.wait_for("pulled 3 images");
    t.wait_for("image 1/3");
    assert_eq!(f.count("SELECT count(*) FROM claim"), 3);
    t.keys(&["e"]);
    t.wait_for("image 2/3");
    t.keys(&["P"]);
    t.wait_for("pushed 1 images");
    let batches = std::fs::read_dir(f.path("remote/activelearninglabels/termtag/batches"))
        .unwrap()
        .count();
    assert_eq!(batches, 1);
    t.keys(&["q"]);
    t.wait_for("termtag-exit=0");
}
