//! What every outage test checks once the fault is gone.

use testkit::lake::{register_body, stored_version};
use testkit::Api;

/// After a fault heals, the next acknowledged register of each name continues from the
/// version storaged holds — whatever a failed or delayed write left there — so catalogd's
/// memory was never ahead of (nor behind) the store. `context` names the fault in messages.
pub async fn next_write_continues_from_store(
    catalogd: &Api,
    storaged: &Api,
    names: &[&str],
    context: &str,
) {
    for name in names {
        let stored = stored_version(storaged, name).await;
        let reply = catalogd
            .register(&register_body(name, "fp", 3, "after-heal"))
            .await
            .unwrap_or_else(|e| panic!("{context} {name}: register failed: {e}"));
        let expected_status = if stored == 0 { 201 } else { 200 };
        assert_eq!(
            reply.code(),
            expected_status,
            "{context} {name}: {:?}",
            reply.json()
        );
        let version = reply.json()["manifest"]["version"].as_i64().unwrap();
        assert_eq!(
            version,
            stored + 1,
            "{context} {name}: catalogd's memory was not the stored version"
        );
        assert_eq!(
            stored_version(storaged, name).await,
            version,
            "{context} {name}"
        );
    }
}
