//! Encryption at rest with age, through the real binary: a backup encrypted to public keys holds
//! no plaintext (a marker row's value is not in the stored bytes, gunzip cannot read it), its
//! manifest records the recipients and never a secret; verify without the identity checks the
//! stored bytes and says `inconclusive`, with it proves the content; a restore without the
//! identity, or with another one, is refused (exit 7) and changes nothing; with it the data comes
//! back; the age command line decrypts it as the README's manual path says. Local directory and
//! S3 (moto on loopback), plain and custom format.

mod common;

#[path = "common/moto.rs"]
#[allow(dead_code)]
mod moto;

use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use common::*;

const MARKER: &str = "marker-7f3e2a-plaintext";

/// A key pair: the public key, and the identity written to a 0600 file in `dir`.
fn keypair(dir: &Path, name: &str) -> (String, PathBuf, String) {
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let secret = id.to_string().expose_secret().to_string();
    let path = dir.join(name);
    std::fs::write(&path, format!("# public key: {public}\n{secret}\n")).unwrap();
    (public, path, secret)
}

fn sample_db() -> TestDb {
    let db = TestDb::create(SAMPLE);
    db.sql_as_owner(&format!(
        "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('{MARKER}');"
    ));
    db
}

fn output(c: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn list(c: &mut assert_cmd::Command) -> Vec<serde_json::Value> {
    let (code, out, err) = output(c.args(["list", "--json"]));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// What every encrypted backup must show, wherever it is stored: `bytes` are the stored bytes.
fn assert_sealed(bytes: &[u8], manifest: &serde_json::Value, public: &str, secret: &str) {
    assert!(
        !contains(bytes, MARKER),
        "the marker row is in the stored bytes"
    );
    assert!(bytes.starts_with(b"age-encryption.org/v1"), "an age file");
    assert_eq!(manifest["encryption"]["scheme"], "age");
    assert_eq!(manifest["encryption"]["recipients"][0], public);
    let text = manifest.to_string();
    assert!(!text.contains(secret), "the identity is in the manifest");
    use sha2::Digest;
    assert_eq!(
        manifest["sha256"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(bytes)),
        "the manifest's sha256 is that of the stored (encrypted) bytes"
    );
    assert_eq!(
        manifest["stored_bytes"].as_u64().unwrap(),
        bytes.len() as u64
    );
}

#[test]
fn a_local_encrypted_backup_holds_no_plaintext_and_restores_only_with_its_identity() {
    let db = sample_db();
    let keys = tempfile::tempdir().unwrap();
    let (public, identity, secret) = keypair(keys.path(), "key.txt");
    let (_, wrong, _) = keypair(keys.path(), "other.txt");
    let pgkeep = || {
        let mut c = db.pgkeep();
        c.env("PGKEEP_AGE_RECIPIENTS", &public);
        c
    };

    let (code, _, err) = output(pgkeep().arg("backup"));
    assert_eq!(code, 0, "{err}");
    let files = db.files();
    let data = files
        .iter()
        .find(|f| f.ends_with(".sql.gz.age"))
        .unwrap_or_else(|| panic!("an encrypted .sql.gz.age: {files:?}"));
    let path = db.backup_dir.join(data);
    let bytes = std::fs::read(&path).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{}.manifest.json", path.display())).unwrap(),
    )
    .unwrap();
    assert_sealed(&bytes, &manifest, &public, &secret);
    let gunzip = std::process::Command::new("gunzip")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!gunzip.status.success(), "gunzip cannot read it");

    // The manual path of the README: age -d -i KEY FILE | gunzip.
    let manual = std::process::Command::new("sh")
        .arg("-c")
        .arg("age -d -i \"$1\" \"$2\" | gunzip -c")
        .arg("sh")
        .arg(&identity)
        .arg(&path)
        .output()
        .unwrap();
    assert!(manual.status.success(), "{manual:?}");
    assert!(contains(&manual.stdout, MARKER));

    let listed = list(&mut pgkeep());
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "good");

    // Without the identity: the stored bytes are checked, the verdict is inconclusive.
    let (code, out, _) = output(pgkeep().arg("verify"));
    assert_eq!(code, 10, "{out}");
    assert!(out.to_lowercase().contains("inconclusive"), "{out}");
    assert!(out.contains("sha256 match"), "{out}");
    assert!(out.contains("no identity"), "{out}");
    // With another identity: the same, naming the recipient.
    let (code, out, _) = output(
        pgkeep()
            .env("PGKEEP_AGE_IDENTITY_FILE", &wrong)
            .arg("verify"),
    );
    assert_eq!(code, 10, "{out}");
    assert!(out.contains(&public), "{out}");
    // With it: proven, the restore level too.
    let (code, out, err) = output(
        pgkeep()
            .env("PGKEEP_AGE_IDENTITY_FILE", &identity)
            .env("PGKEEP_ADMIN_USER", "postgres")
            .args(["verify", "--restore"]),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok "), "{out}");

    db.sql("DELETE FROM notes");
    for (why, extra) in [
        ("no identity", None),
        (
            "another identity",
            Some(("PGKEEP_AGE_IDENTITY_FILE", &wrong)),
        ),
    ] {
        let mut c = pgkeep();
        c.env("PGKEEP_ADMIN_USER", "postgres");
        if let Some((k, v)) = extra {
            c.env(k, v);
        }
        let (code, _, err) = output(c.args(["restore", "--yes"]));
        assert_eq!(code, 7, "{why}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{why}: one line: {err}");
        assert!(err.contains("nothing was changed"), "{why}: {err}");
        assert!(!err.contains(&secret[20..]), "{why}: {err}");
        assert_eq!(db.sql("SELECT count(*) FROM notes").trim(), "0", "{why}");
    }
    // The identity from a Secret's environment variable.
    let (code, _, err) = output(
        pgkeep()
            .env("PGKEEP_AGE_IDENTITY", &secret)
            .env("PGKEEP_ADMIN_USER", "postgres")
            .args(["restore", "--yes"]),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains(&secret), "{err}");
    assert_eq!(db.sql("SELECT body FROM notes").trim(), MARKER);
    assert_eq!(db.sql("SELECT count(*) FROM routes").trim(), "1000");
    let leftovers: Vec<_> = db
        .files()
        .into_iter()
        .filter(|f| !f.contains(".age"))
        .collect();
    assert!(
        leftovers.iter().all(|f| f.ends_with(".verify.json")),
        "no plaintext copy beside the backups: {leftovers:?}"
    );

    // config show never shows the identity.
    let (code, out, err) = output(
        pgkeep()
            .env("PGKEEP_AGE_IDENTITY", &secret)
            .args(["config", "show"]),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains(&secret) && !out.contains(&secret[20..]),
        "{out}"
    );
    assert!(out.contains(&public), "{out}");
}

#[test]
fn a_custom_archive_is_encrypted_and_no_plaintext_archive_lands_beside_the_backups() {
    let db = sample_db();
    let keys = tempfile::tempdir().unwrap();
    let (public, identity, secret) = keypair(keys.path(), "key.txt");
    let pgkeep = || {
        let mut c = db.pgkeep();
        c.env("PGKEEP_AGE_RECIPIENTS", &public)
            .env("PGKEEP_FORMAT", "custom")
            .env("PGKEEP_COMPRESSION", "none");
        c
    };
    let (code, _, err) = output(pgkeep().arg("backup"));
    assert_eq!(code, 0, "{err}");
    let files = db.files();
    assert_eq!(
        files.len(),
        2,
        "the archive and its manifest only: {files:?}"
    );
    let data = files.iter().find(|f| f.ends_with(".dump.age")).unwrap();
    let path = db.backup_dir.join(data);
    let bytes = std::fs::read(&path).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{}.manifest.json", path.display())).unwrap(),
    )
    .unwrap();
    assert_sealed(&bytes, &manifest, &public, &secret);

    let (code, out, err) = output(
        pgkeep()
            .env("PGKEEP_AGE_IDENTITY_FILE", &identity)
            .arg("verify"),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("replayed"), "{out}");
    db.sql("DELETE FROM notes");
    let (code, _, err) = output(
        pgkeep()
            .env("PGKEEP_AGE_IDENTITY_FILE", &identity)
            .env("PGKEEP_ADMIN_USER", "postgres")
            .args(["restore", "--yes"]),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.sql("SELECT body FROM notes").trim(), MARKER);
}

#[test]
fn an_encrypted_backup_on_s3_holds_no_plaintext_and_restores_with_its_identity() {
    let db = sample_db();
    let keys = tempfile::tempdir().unwrap();
    let (public, identity, secret) = keypair(keys.path(), "key.txt");
    let bucket = moto::bucket();
    let url = format!("s3://{bucket}/enc");
    let pgkeep = || {
        let mut c = db.pgkeep();
        for (k, v) in moto::vars(moto::endpoint()) {
            c.env(k, v);
        }
        c.env("BACKUP_DIR", &url)
            .env("PGKEEP_AGE_RECIPIENTS", &public)
            .env("PGKEEP_COMPRESSION", "zstd");
        c
    };
    let (code, _, err) = output(pgkeep().arg("backup"));
    assert_eq!(code, 0, "{err}");
    let listed = list(&mut pgkeep());
    assert_eq!(listed.len(), 1, "{listed:?}");
    let file = listed[0]["file"].as_str().unwrap();
    assert!(file.ends_with(".sql.zst.age"), "{file}");
    let store = pgkeep::storage::open(Path::new(&url), &moto::options(moto::endpoint())).unwrap();
    let get = |key: &str| {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut store.open(key).unwrap(), &mut body).unwrap();
        body
    };
    let bytes = get(file);
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(&format!("{file}.manifest.json"))).unwrap();
    assert_sealed(&bytes, &manifest, &public, &secret);

    let (code, out, _) = output(pgkeep().arg("verify"));
    assert_eq!(code, 10, "{out}");
    let (code, out, err) = output(
        pgkeep()
            .env("PGKEEP_AGE_IDENTITY_FILE", &identity)
            .env("PGKEEP_ADMIN_USER", "postgres")
            .args(["verify", "--restore"]),
    );
    assert_eq!(code, 0, "{out}{err}");
    db.sql("DELETE FROM notes");
    let (code, _, err) = output(
        pgkeep()
            .env("PGKEEP_ADMIN_USER", "postgres")
            .args(["restore", "--yes"]),
    );
    assert_eq!(code, 7, "{err}");
    assert_eq!(db.sql("SELECT count(*) FROM notes").trim(), "0");
    // The hooks see none of the S3 credentials nor the identity.
    let seen = keys.path().join("hook-env.txt");
    let hook = serde_json::json!([["/bin/sh", "-c", format!("env > {}", seen.display())]]);
    let (code, _, err) = output(
        pgkeep()
            .env("PGKEEP_AGE_IDENTITY_FILE", &identity)
            .env("PGKEEP_S3_SESSION_TOKEN", "session-token-d41c")
            .env("PGKEEP_ADMIN_USER", "postgres")
            .env("PGKEEP_PRE_RESTORE", hook.to_string())
            .args(["restore", "--yes"]),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(db.sql("SELECT body FROM notes").trim(), MARKER);
    let env = std::fs::read_to_string(&seen).expect("the hook ran");
    for leak in [
        moto::ACCESS_KEY_ID,
        moto::SECRET_ACCESS_KEY,
        "session-token-d41c",
        "AWS_",
        "PGKEEP_S3",
        "PGKEEP_AGE",
        &identity.display().to_string(),
    ] {
        assert!(!env.contains(leak), "the hook saw {leak}: {env}");
    }
}

#[test]
fn bad_keys_are_refused_in_one_line_with_exit_2_before_anything_is_written() {
    let db = sample_db();
    let keys = tempfile::tempdir().unwrap();
    let (public, _, secret) = keypair(keys.path(), "key.txt");
    let garbled = keys.path().join("garbled.txt");
    // Another last character (a random key may end in X already) breaks the checksum.
    let last = if secret.ends_with('X') { 'Q' } else { 'X' };
    std::fs::write(&garbled, format!("{}{last}\n", &secret[..secret.len() - 1])).unwrap();
    let recipients_file = keys.path().join("recipients.txt");
    std::fs::write(&recipients_file, format!("# team\n{public}\n")).unwrap();
    for (what, k, v) in [
        (
            "a private key as recipient",
            "PGKEEP_AGE_RECIPIENTS",
            secret.clone(),
        ),
        (
            "a missing recipients file",
            "PGKEEP_AGE_RECIPIENTS",
            "/nonexistent/keys".into(),
        ),
        (
            "a missing identity file",
            "PGKEEP_AGE_IDENTITY_FILE",
            "/nonexistent/key".into(),
        ),
        (
            "a garbled identity file",
            "PGKEEP_AGE_IDENTITY_FILE",
            garbled.display().to_string(),
        ),
        (
            "a garbled identity",
            "PGKEEP_AGE_IDENTITY",
            format!("{secret}X"),
        ),
    ] {
        let (code, _, err) = output(
            db.pgkeep()
                .env("PGKEEP_AGE_RECIPIENTS", &public)
                .env(k, &v)
                .arg("backup"),
        );
        assert_eq!(code, 2, "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        assert!(
            !err.contains(&secret[20..40]),
            "{what}: the secret shows: {err}"
        );
        assert!(db.files().is_empty(), "{what}: {:?}", db.files());
    }
    // A file of recipients works like the keys themselves.
    let (code, _, err) = output(
        db.pgkeep()
            .env("PGKEEP_AGE_RECIPIENTS", &recipients_file)
            .arg("backup"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(db.files().iter().any(|f| f.ends_with(".sql.gz.age")));
}

#[test]
fn a_decrypted_copy_left_by_a_killed_restore_is_removed_by_the_next_run() {
    let db = sample_db();
    let keys = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (public, identity, _) = keypair(keys.path(), "key.txt");
    let pgkeep = || {
        let mut c = db.pgkeep();
        c.env("PGKEEP_AGE_RECIPIENTS", &public)
            .env("PGKEEP_AGE_IDENTITY_FILE", &identity)
            .env("PGKEEP_FORMAT", "custom")
            .env("PGKEEP_COMPRESSION", "none")
            .env("TMPDIR", tmp.path());
        c
    };
    let staged = || -> Vec<PathBuf> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".pgkeep-staging-")
            })
            .collect()
    };
    let (code, _, err) = output(pgkeep().arg("backup"));
    assert_eq!(code, 0, "{err}");
    assert!(staged().is_empty());

    // Killed once the archive is decrypted for pg_restore.
    let out = pgkeep()
        .env("PGKEEP_ADMIN_USER", "postgres")
        .env("PGKEEP_FAULT_POINT", "restore.journaled")
        .args(["restore", "--yes"])
        .output()
        .unwrap();
    assert!(
        common::procs::killed_by_sigkill(out.status),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = staged();
    assert_eq!(left.len(), 1, "the killed run left its decrypted copy");
    assert!(
        contains(&std::fs::read(&left[0]).unwrap(), MARKER),
        "and it is plaintext"
    );

    // A staging file a live run holds is left alone; the dead run's goes with the next run.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (code, out, err) = output(pgkeep().arg("verify"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("removed 1 staging file(s) left in TMPDIR by a killed run"),
        "{err}"
    );
    assert!(staged().is_empty(), "{:?}", staged());
}
