//! HTTPS end to end with certificates made at test time (rcgen): both services serve TLS,
//! catalogd talks to storaged over HTTPS trusting a private CA, the smoke runs in URL mode
//! against the HTTPS stack; catalogd given the wrong CA never becomes ready and says why;
//! a certificate replaced on disk is served after SIGHUP.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::lake::{manifest_key_of, register_body};
use testkit::pki::{pki, Pki};
use testkit::{free_port, Api, Launch, Proc};

fn with_tls(launch: Launch, pki: &Pki) -> Launch {
    pki.serve(launch)
}

async fn https_stack(dir: &Path, pki: &Pki) -> (Proc, Proc) {
    let storaged = with_tls(Launch::storaged(&dir.join("data"), free_port()), pki)
        .log_dir(dir)
        .spawn();
    storaged.wait_ready().await;
    let catalogd = with_tls(Launch::catalogd(&storaged.url(), free_port()), pki)
        .env("CATALOGD_STORAGED_CA_FILE", &pki.ca)
        .log_dir(dir)
        .spawn();
    catalogd.wait_ready().await;
    (storaged, catalogd)
}

#[actix_web::test]
async fn register_and_read_over_https_end_to_end_and_the_smoke_passes_in_url_mode() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path(), "one");
    let (storaged, catalogd) = https_stack(dir.path(), &pki).await;
    assert!(storaged.url().starts_with("https://") && catalogd.url().starts_with("https://"));

    let api = catalogd.api();
    let reply = api
        .register_ok(&register_body("tls.orders", "fp", 2, "a"))
        .await;
    assert_eq!(reply.code(), 201, "{:?}", reply.json());
    assert_eq!(api.get_ok("/v1/datasets/tls.orders").await.code(), 200);
    let manifest = storaged
        .api()
        .get_ok(&format!("/v1/objects/{}", manifest_key_of("tls.orders")))
        .await;
    assert_eq!(
        manifest.code(),
        200,
        "the manifest went to storaged over https"
    );

    // Plain HTTP reaches neither service.
    assert!(Api::new(catalogd.port)
        .get("/healthz")
        .await
        .is_err_or_not_ok());
    assert!(Api::new(storaged.port)
        .get("/healthz")
        .await
        .is_err_or_not_ok());

    let out = Command::new(env!("CARGO_BIN_EXE_smoke"))
        .args([
            "--storaged-url",
            &storaged.url(),
            "--catalogd-url",
            &catalogd.url(),
        ])
        .args(["--restart-cmd", "true", "--ca-file"])
        .arg(&pki.ca)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("6 passed, 0 failed"));
}

trait NotOk {
    fn is_err_or_not_ok(&self) -> bool;
}

impl NotOk for Result<testkit::Reply, String> {
    fn is_err_or_not_ok(&self) -> bool {
        self.as_ref().map_or(true, |r| r.code() != 200)
    }
}

#[actix_web::test]
async fn catalogd_with_the_wrong_ca_is_not_ready_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (right, wrong) = (pki(dir.path(), "right"), pki(dir.path(), "wrong"));
    let storaged = with_tls(
        Launch::storaged(&dir.path().join("data"), free_port()),
        &right,
    )
    .log_dir(dir.path())
    .spawn();
    storaged.wait_ready().await;
    let catalogd = Launch::catalogd(&storaged.url(), free_port())
        .env("CATALOGD_STORAGED_CA_FILE", &wrong.ca)
        .log_dir(dir.path())
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = catalogd.log_text();
        if log.contains("cannot rebuild the index yet") {
            assert!(
                log.to_lowercase().contains("certificate"),
                "the log does not say the certificate is the problem: {log}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no log line about storaged: {log}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(catalogd.api().get_ok("/readyz").await.code(), 503);
}

#[actix_web::test]
async fn a_certificate_replaced_on_disk_is_served_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (pki(dir.path(), "first"), pki(dir.path(), "second"));
    let live = Pki {
        ca: first.ca.clone(),
        cert: dir.path().join("live-cert.pem"),
        key: dir.path().join("live-key.pem"),
    };
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();
    let storaged = with_tls(
        Launch::storaged(&dir.path().join("data"), free_port()),
        &live,
    )
    .log_dir(dir.path())
    .spawn();
    storaged.wait_ready().await;
    let trusts_second = Api::at_with_ca(&storaged.url(), &second.ca);
    assert!(trusts_second.get("/healthz").await.is_err());

    std::fs::copy(&second.cert, &live.cert).unwrap();
    std::fs::copy(&second.key, &live.key).unwrap();
    storaged.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while trusts_second.get("/healthz").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(Api::at_with_ca(&storaged.url(), &first.ca)
        .get("/healthz")
        .await
        .is_err());
    assert!(storaged.log_text().contains("tls certificate reloaded"));
}
