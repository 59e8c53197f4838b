//! Azurite, Azure's blob storage emulator (npm; installed by
//! scripts/install-test-deps.sh), on a free loopback port, stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::start_listening;

pub struct AzuriteServer {
    child: Child,
    _data: tempfile::TempDir,
    pub port: u16,
}

/// `azurite-blob` from SQUALL_AZURITE, else where the install script puts it.
fn azurite_blob() -> PathBuf {
    if let Some(p) = std::env::var_os("SQUALL_AZURITE") {
        return p.into();
    }
    let home = std::env::var_os("HOME").expect("HOME");
    PathBuf::from(home).join(".cache/squall/azurite/node_modules/.bin/azurite-blob")
}

impl AzuriteServer {
    pub fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let binary = azurite_blob();
        let (child, port) = start_listening("Azurite", |port| {
            Command::new(&binary)
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .arg("--location")
                .arg(data.path())
                .args(["--silent", "--skipApiVersionCheck", "--disableTelemetry"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: {e} (run scripts/install-test-deps.sh)",
                        binary.display()
                    )
                })
        });
        Self {
            child,
            _data: data,
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn container_script(&self, container: &str, action: &str) -> String {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/support/azurite_container.py");
        let out = Command::new("python3")
            .arg(script)
            .args([&self.url(), container, action])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{action} container {container}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a container (object_store cannot), signing with the emulator's key.
    pub fn create_container(&self, name: &str) {
        self.container_script(name, "create");
    }

    /// The names of the blobs in a container.
    pub fn list_blobs(&self, container: &str) -> Vec<String> {
        self.container_script(container, "list")
            .lines()
            .map(String::from)
            .collect()
    }

    /// The environment that points `az://` at this emulator, as an Azure user would set it.
    pub fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", self.url()),
        ]
    }
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
