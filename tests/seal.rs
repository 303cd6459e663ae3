//! Tamper-evident manifests against a real PostgreSQL: with `manifest_keys`, a backup's manifest
//! is signed; verify (exit 9) and restore (exit 7, nothing changed) refuse one changed after it
//! was written or signed by a key that is not configured; keys rotate; unsigned manifests pass
//! with a note unless `manifest_keys_required`; a short key is a configuration error and keys
//! never show in `config show`.

mod common;

use common::*;

const KEY_A: &str = "the-first-key-0123456789abcdef";
const KEY_B: &str = "the-second-key-0123456789abcdef";

fn manifest_of(db: &TestDb) -> std::path::PathBuf {
    let m = db
        .files()
        .into_iter()
        .filter(|f| f.ends_with(".manifest.json"))
        .max()
        .expect("a manifest");
    db.backup_dir.join(m)
}

fn with_keys(db: &TestDb, keys: &str) -> assert_cmd::Command {
    let mut c = db.pgkeep();
    c.env("PGKEEP_MANIFEST_KEYS", keys)
        .env("PGKEEP_ADMIN_USER", "postgres");
    c
}

fn code_and_text(c: &mut assert_cmd::Command) -> (Option<i32>, String) {
    let out = c.output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn databases() -> String {
    psql("postgres", "SELECT datname FROM pg_database ORDER BY 1")
}

#[test]
fn a_signed_manifest_verifies_and_a_changed_one_is_refused() {
    let db = TestDb::create(SAMPLE);
    with_keys(&db, KEY_A).arg("backup").assert().success();
    let manifest = manifest_of(&db);
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("\"signature\": \"hmac-sha256:"), "{text}");
    assert!(!text.contains(KEY_A), "the key is not in the manifest");

    let (code, out) = code_and_text(with_keys(&db, KEY_A).arg("verify"));
    assert_eq!(code, Some(0), "{out}");
    // Rotation: a new key first, the old one still verifies.
    let (code, out) = code_and_text(with_keys(&db, &format!("{KEY_B} {KEY_A}")).arg("verify"));
    assert_eq!(code, Some(0), "{out}");
    // Only a key that did not sign it: refused.
    let (code, out) = code_and_text(with_keys(&db, KEY_B).arg("verify"));
    assert_eq!(code, Some(9), "{out}");
    assert!(out.contains("signature"), "{out}");

    // A change nothing else would notice (the pgkeep version) breaks the signature.
    let changed = text.replacen("\"pgkeep_version\": \"", "\"pgkeep_version\": \"9", 1);
    assert_ne!(changed, text);
    std::fs::write(&manifest, &changed).unwrap();
    let (code, out) = code_and_text(with_keys(&db, KEY_A).arg("verify"));
    assert_eq!(code, Some(9), "{out}");
    assert!(out.contains("none of manifest_keys verifies"), "{out}");
    // Without keys nothing is checked: the same manifest verifies.
    let (code, out) = code_and_text(db.pgkeep().arg("verify"));
    assert_eq!(code, Some(0), "{out}");

    let before = databases();
    db.sql("DELETE FROM \"SBI_USER\" WHERE id > 5");
    let (code, out) = code_and_text(with_keys(&db, KEY_A).args(["restore", "--yes"]));
    assert_eq!(code, Some(7), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "one line: {out}");
    assert!(out.contains("nothing was changed"), "{out}");
    assert_eq!(databases(), before, "no database created or renamed");
    assert_eq!(
        db.sql("SELECT count(*) FROM \"SBI_USER\" WHERE id > 5")
            .trim(),
        "0"
    );
}

#[test]
fn unsigned_manifests_pass_with_a_note_unless_signatures_are_required() {
    let db = TestDb::create(SAMPLE);
    db.pgkeep().arg("backup").assert().success();
    let (code, out) = code_and_text(with_keys(&db, KEY_A).arg("verify"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("not signed"), "{out}");

    let required = |c: &mut assert_cmd::Command| {
        c.env("PGKEEP_MANIFEST_KEYS_REQUIRED", "true");
    };
    let mut v = with_keys(&db, KEY_A);
    required(&mut v);
    let (code, out) = code_and_text(v.arg("verify"));
    assert_eq!(code, Some(9), "{out}");
    assert!(out.contains("is not signed"), "{out}");
    let before = databases();
    let mut r = with_keys(&db, KEY_A);
    required(&mut r);
    let (code, out) = code_and_text(r.args(["restore", "--yes"]));
    assert_eq!(code, Some(7), "{out}");
    assert!(out.contains("manifest_keys_required"), "{out}");
    assert_eq!(databases(), before);
}

#[test]
fn short_keys_are_refused_and_keys_never_show() {
    let db = TestDb::create(SAMPLE);
    let (code, out) = code_and_text(with_keys(&db, &format!("{KEY_A} short")).arg("backup"));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("key 2 of 2"), "{out}");
    assert!(!out.contains("short"), "no key in the error: {out}");
    assert!(db.files().is_empty(), "nothing written: {:?}", db.files());
    let (code, out) = code_and_text(with_keys(&db, KEY_A).args(["config", "show"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("manifest_keys"), "{out}");
    assert!(!out.contains(KEY_A), "{out}");
}
