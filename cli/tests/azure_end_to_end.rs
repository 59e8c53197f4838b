//! TPC-H with `az://` inputs, scratch and results against Azurite (Azure's
//! blob storage emulator, installed by scripts/install-test-deps.sh) on
//! 127.0.0.1, configured the way Azure users configure tools
//! (AZURE_STORAGE_USE_EMULATOR, AZURITE_BLOB_STORAGE_URL). Results must equal
//! the same queries over local files.

mod support;

use support::azurite::AzuriteServer;
use support::tpch::{generate, normalized, query_args, query_is_ordered, squall};

#[test]
fn tpch_on_azure_blob_storage_equals_local_files() {
    let azurite = AzuriteServer::start();
    let envs = azurite.envs();
    for container in ["lake", "scratch"] {
        azurite.create_container(container);
    }
    let local = tempfile::tempdir().unwrap();
    let local_root = local.path().display().to_string();
    generate(&local_root, &[]);
    generate("az://lake/tpch", &envs);

    for q in 1..=22 {
        let ordered = query_is_ordered(q);
        let expected = squall(&query_args(&local_root, "local", None, q), &[]);
        let actual = squall(
            &query_args("az://lake/tpch", "local", Some("az://scratch/squall/"), q),
            &envs,
        );
        assert_eq!(
            normalized(&actual, ordered),
            normalized(&expected, ordered),
            "q{q} on az://"
        );
    }
    assert!(
        !azurite.list_blobs("lake").is_empty(),
        "the listing must see the generated tables"
    );
    let leftovers = azurite.list_blobs("scratch");
    assert!(leftovers.is_empty(), "scratch must be empty: {leftovers:?}");
}
