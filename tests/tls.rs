//! TLS to the server over TCP on loopback: libpq's sslmode semantics for pgkeep's own connection
//! and for pg_dump (require encrypts without verifying; verify-full checks the CA and the name).

mod common;

use std::path::Path;
use std::process::Command;

use pgkeep::cluster::TempCluster;
use predicates::prelude::*;

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn sslmode_require_and_verify_full_over_loopback() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: no openssl command to make certificates");
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=pgkeep test CA",
        ],
    );
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    if nix::unistd::geteuid().is_root() {
        let pg = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        for f in ["", "server.key", "server.crt"] {
            std::os::unix::fs::chown(d.join(f), Some(pg.uid.as_raw()), Some(pg.gid.as_raw()))
                .unwrap();
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();

    let port = free_port();
    let bindir = common::cluster().bindir.clone();
    let conf = format!(
        "listen_addresses = '127.0.0.1'\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
        d.join("server.crt").display(),
        d.join("server.key").display()
    );
    let cluster = TempCluster::start_with(
        &bindir,
        port,
        &conf,
        "hostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject",
    )
    .unwrap();
    cluster
        .psql(
            "postgres",
            "CREATE ROLE tls_user LOGIN PASSWORD 'tls pw'; CREATE DATABASE tls_db OWNER tls_user;",
        )
        .unwrap();
    cluster
        .psql(
            "tls_db",
            "SET ROLE tls_user; CREATE TABLE t AS SELECT g FROM generate_series(1, 50) g;",
        )
        .unwrap();
    let backups = tempfile::tempdir().unwrap();
    let pgkeep = |host: &str, mode: &str| {
        let mut cmd = assert_cmd::Command::cargo_bin("pgkeep").unwrap();
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_SERVICE_NAME", host)
            .env("PGPORT", port.to_string())
            .env("POSTGRESQL_USER", "tls_user")
            .env("POSTGRESQL_PASSWORD", "tls pw")
            .env("POSTGRESQL_DATABASE", "tls_db")
            .env("BACKUP_DIR", backups.path())
            .env("PGKEEP_PG_BINDIR", &bindir)
            .env("PGSSLMODE", mode)
            .arg("backup");
        cmd
    };
    pgkeep("127.0.0.1", "require").assert().success();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    pgkeep("localhost", "verify-full")
        .env("PGSSLROOTCERT", d.join("ca.crt"))
        .assert()
        .success();
    // Without the CA, verification fails before anything is written.
    pgkeep("localhost", "verify-full")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("certificate"));
    // The server only accepts TLS: sslmode=disable is refused by pg_hba.
    pgkeep("127.0.0.1", "disable").assert().code(3).stderr(
        predicate::str::contains("no encryption").or(predicate::str::contains("pg_hba.conf")),
    );
    let manifests = std::fs::read_dir(backups.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|day| std::fs::read_dir(day.path()).unwrap().flatten())
        .filter(|f| f.file_name().to_string_lossy().ends_with(".manifest.json"))
        .count();
    assert_eq!(manifests, 2);
}
