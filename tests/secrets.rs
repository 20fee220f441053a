//! Secrets never leave: a SAS token, an account key and a connection string are planted, every
//! remote command runs at `TERMTAG_LOG=trace` (where the Azure SDK logs its requests) against
//! Azurite, successes and failures alike, the review screen pulls in tmux, and every byte of
//! stdout, stderr, `.termtag/termtag.log`, the exports and the captured screens is searched.

mod common;
mod remote_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::tmux::Tmux;
use remote_support::{Backend, azurite_url};
use termtag::remote::auth::{AZURITE_KEY, account_sas};

const TOTAG: &str =
    "filename,class,xmin,xmax,ymin,ymax,height,width,box_confidence,image_confidence
img_000.png,can,0.1,0.5,0.1,0.5,12,16,0.9,0.8
img_001.png,can,0.1,0.5,0.1,0.5,12,16,0.3,0.3
";

/// Everything that must never be seen, in every spelling a URL or a log could give it.
struct Planted(Vec<String>);

impl Planted {
    fn add(&mut self, s: &str) {
        let enc: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
        self.0.push(s.to_string());
        self.0.push(enc);
    }
    #[track_caller]
    fn assert_absent(&self, what: &str, text: &str) {
        for s in &self.0 {
            assert!(
                !text.contains(s.as_str()),
                "{what} shows a secret ({s}):\n{text}"
            );
        }
        // Whatever the value, a signature or key parameter is always blanked.
        for key in ["sig=", "AccountKey="] {
            for (i, _) in text.match_indices(key) {
                let rest = &text[i + key.len()..];
                assert!(
                    rest.starts_with("REDACTED") || rest.starts_with('&') || rest.is_empty(),
                    "{what}: `{key}` not redacted: {}",
                    &rest[..rest.len().min(40)]
                );
            }
        }
    }
}

fn sig_of(query: &str) -> String {
    let enc = query
        .split('&')
        .find_map(|p| p.strip_prefix("sig="))
        .unwrap();
    percent_encoding::percent_decode_str(enc)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

fn termtag(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_termtag"));
    c.current_dir(dir)
        .env_remove("AZURE_STORAGE_SAS_URL")
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .env_remove("AZURE_STORAGE_KEY")
        .env_remove("AZURE_STORAGE_ACCOUNT")
        .env("TERMTAG_LOG", "trace")
        .env("USER", "tester")
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn init(dir: &Path, name: &str, source: &str, labels: &str) -> String {
    let proj = dir.join(name);
    let out = termtag(
        dir,
        &[
            "init",
            proj.to_str().unwrap(),
            "--task",
            "detect",
            "--classes",
            "can,bottle",
            "--source",
            source,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let toml = proj.join("termtag.toml");
    let t = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        t.replace(
            "labels_container = \"activelearninglabels\"",
            &format!("labels_container = \"{labels}\""),
        ),
    )
    .unwrap();
    proj.to_str().unwrap().to_string()
}

fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn no_secret_reaches_output_logs_exports_or_screen() {
    let url = azurite_url();
    let b = Backend::azure(&url, "sec");
    let seed_dir = tempfile::tempdir().unwrap();
    let seeder = b.project(seed_dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(b.seed(&b.open(&seeder), 6, Some(TOTAG)));
    let Backend::Azure { images, labels, .. } = &b else {
        unreachable!()
    };

    let expiry = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let sas = account_sas("devstoreaccount1", AZURITE_KEY, "racwdl", expiry, false).unwrap();
    let read_only = account_sas("devstoreaccount1", AZURITE_KEY, "rl", expiry, false).unwrap();
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={url};"
    );
    let wrong_key = "d3JvbmctYnV0LWJhc2U2NC1rZXktdmFsdWUtOTg3NjU0MzI=";
    let wrong_sas = sas.replace("sig=", "sig=AAAA");
    let mut planted = Planted(Vec::new());
    for s in [
        AZURITE_KEY,
        &conn,
        &sig_of(&sas),
        &sig_of(&read_only),
        &sig_of(&wrong_sas),
        wrong_key,
    ] {
        planted.add(s);
    }

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = init(d, "proj", &format!("{url}/{images}"), labels);
    let sas_url = format!("{url}?{sas}");
    let key_env = [
        ("AZURE_STORAGE_ACCOUNT", "devstoreaccount1"),
        ("AZURE_STORAGE_KEY", AZURITE_KEY),
    ];
    let mut seen = Vec::new();
    let mut run = |what: &str, args: &[&str], env: &[(&str, &str)], ok: bool| {
        let out = termtag(d, args, env);
        let t = text(&out);
        assert_eq!(out.status.success(), ok, "{what}: {t}");
        planted.assert_absent(what, &t);
        seen.push(t.clone());
        t
    };

    // Successes, with each kind of credential.
    let t = run(
        "pull (connection string)",
        &["-C", &p, "pull", "--count", "2"],
        &[("AZURE_STORAGE_CONNECTION_STRING", &conn)],
        true,
    );
    assert!(t.contains("pulled 2 images"), "{t}");
    assert!(
        t.contains("TRACE") || t.contains("DEBUG"),
        "the trace level reached the SDK: {t}"
    );
    run("doctor (key)", &["-C", &p, "doctor"], &key_env, true);
    run(
        "label import",
        &[
            "-C",
            &p,
            "import",
            "--format",
            "ald-csv",
            "--skip-missing",
            &write(
                d,
                "l.csv",
                "filename,class,xmin,xmax,ymin,ymax,height,width\nimg_000.png,can,0.1,0.5,0.1,0.5,12,16\nimg_001.png,can,0.2,0.5,0.1,0.5,12,16\n",
            ),
        ],
        &[],
        true,
    );
    let t = run(
        "push (SAS URL)",
        &["-C", &p, "push"],
        &[("AZURE_STORAGE_SAS_URL", &sas_url)],
        true,
    );
    assert!(t.contains("as batch"), "{t}");
    for (format, out) in [
        ("coco", "x.json"),
        ("azureml-jsonl", "x.jsonl"),
        ("ald-csv", "x.csv"),
    ] {
        run(
            "export",
            &["-C", &p, "export", "--format", format, out],
            &[],
            true,
        );
        let exported = std::fs::read_to_string(Path::new(&p).join(out))
            .unwrap_or_else(|_| std::fs::read_to_string(d.join(out)).unwrap());
        planted.assert_absent(&format!("export {format}"), &exported);
    }

    // A SAS URL pasted where a file belongs: the error names the path, not the signature.
    run(
        "import (SAS URL as a file)",
        &[
            "-C",
            &p,
            "import",
            &format!("{url}/{labels}/tagged.csv?{sas}"),
            "--format",
            "ald-csv",
        ],
        &[],
        false,
    );

    // Failures: a wrong key, a forged SAS, a SAS that may not write, nothing listening, no such host.
    let t = run(
        "pull (wrong key)",
        &["-C", &p, "pull", "--count", "1"],
        &[
            ("AZURE_STORAGE_ACCOUNT", "devstoreaccount1"),
            ("AZURE_STORAGE_KEY", wrong_key),
        ],
        false,
    );
    assert!(t.contains("access denied"), "{t}");
    let t = run(
        "pull (forged SAS)",
        &["-C", &p, "pull", "--count", "1"],
        &[("AZURE_STORAGE_SAS_URL", &format!("{url}?{wrong_sas}"))],
        false,
    );
    assert!(t.contains("access denied"), "{t}");
    run(
        "pull (read-only SAS)",
        &["-C", &p, "pull", "--count", "1"],
        &[("AZURE_STORAGE_SAS_URL", &format!("{url}?{read_only}"))],
        false,
    );
    let dead = format!("http://127.0.0.1:{}/devstoreaccount1", dead_port());
    let q = init(d, "dead", &format!("{dead}/{images}"), labels);
    let t = run(
        "pull (connection refused)",
        &["-C", &q, "pull", "--count", "1"],
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            &conn.replace(&url, &dead),
        )],
        false,
    );
    assert!(
        t.contains("connection refused") && t.contains("tried 2 times"),
        "{t}"
    );
    assert_eq!(
        t.lines().filter(|l| l.starts_with("termtag: ")).count(),
        1,
        "one error line: {t}"
    );
    let r = init(
        d,
        "nohost",
        &format!("http://nonexistent.invalid/devstoreaccount1/{images}"),
        labels,
    );
    let t = run(
        "pull (no such host)",
        &["-C", &r, "pull", "--count", "1"],
        &[(
            "AZURE_STORAGE_SAS_URL",
            &format!("http://nonexistent.invalid/devstoreaccount1?{sas}"),
        )],
        false,
    );
    assert!(t.contains("tried 2 times"), "{t}");

    // The review screen: pull from it (F) with logs at trace into .termtag/termtag.log, then
    // again with a wrong key, whose error shows on the screen.
    {
        for (what, env) in [
            (
                "screen pull",
                format!("AZURE_STORAGE_CONNECTION_STRING='{conn}'"),
            ),
            (
                "screen pull, wrong key",
                format!("AZURE_STORAGE_ACCOUNT=devstoreaccount1 AZURE_STORAGE_KEY='{wrong_key}'"),
            ),
        ] {
            let screen = review_and_pull(&p, &env);
            planted.assert_absent(what, &screen);
            seen.push(screen);
        }
        let log = std::fs::read_to_string(Path::new(&p).join(".termtag/termtag.log")).unwrap();
        assert!(
            log.contains(images.as_str()) || log.contains(labels.as_str()),
            "the SDK logged its requests: {log}"
        );
        planted.assert_absent("termtag.log", &log);
    }
    assert!(seen.len() >= 12);
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Opens the review screen in a tmux of its own, presses F (pull) and returns the screen once
/// the pull has answered.
fn review_and_pull(project: &str, env: &str) -> String {
    let t = Tmux::new("secrets");
    t.run_env(
        &format!("TERMTAG_LOG=trace {env}"),
        &format!("-C {project} label --graphics halfblocks"),
    );
    t.wait_any(&["REVIEW"], 40);
    t.keys(&["F"]);
    let screen = t.wait_any(&["pulled", "denied", "error", "cannot"], 40);
    t.keys(&["q"]);
    std::thread::sleep(Duration::from_millis(300));
    screen
}
