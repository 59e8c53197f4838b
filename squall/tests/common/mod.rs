//! Test support shared by the library's tests.

use std::sync::OnceLock;

/// TPC-H scale 0.01 in four parts per large table, made once per test binary.
pub fn tpch() -> &'static str {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let location =
            squall_connectors::Location::parse(&dir.path().display().to_string()).unwrap();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                squall_connectors::tpch::generate_tpch(0.01, &location, 4)
                    .await
                    .unwrap()
            })
        })
        .join()
        .unwrap();
        dir
    });
    dir.path().to_str().unwrap()
}
