//! Backups against a real PostgreSQL: the happy path and the compatibility promises.

mod common;

use common::*;
use predicates::prelude::*;

#[test]
fn plain_gzip_backup_restores_with_gunzip_psql_and_sha256sum_matches() {
    let db = TestDb::create(SAMPLE);
    db.pgkeep()
        .arg("backup")
        .assert()
        .success()
        .stderr(predicate::str::contains("backup complete"));
    let files = db.files();
    assert_eq!(files.len(), 2, "{files:?}");
    let data = files.iter().find(|f| f.ends_with(".sql.gz")).unwrap();
    let manifest = files
        .iter()
        .find(|f| f.ends_with(".manifest.json"))
        .unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(db.backup_dir.join(manifest)).unwrap()).unwrap();
    assert_eq!(m["tables"]["public.\"SBI_USER\""], 300);
    assert_eq!(m["tables"]["public.routes"], 1000);
    assert_eq!(m["database_info"]["owner"], db.user.as_str());

    let path = db.backup_dir.join(data);
    let out = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        sum.split_whitespace().next().unwrap(),
        m["sha256"].as_str().unwrap()
    );

    // The old runbook's restore works on our file.
    let target = unique("restored");
    psql("postgres", &format!("CREATE DATABASE {target}"));
    let info = cluster();
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; gunzip -c '{}' | '{}/psql' -X -q -v ON_ERROR_STOP=1 -h '{}' -p {} -U postgres -d {target} >/dev/null",
            path.display(),
            info.bindir.display(),
            info.socket_dir.display(),
            info.port
        ))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        psql(&target, "SELECT count(*) FROM \"SBI_USER\"").trim(),
        "300"
    );
}
