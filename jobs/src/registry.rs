//! An object-store registry that builds stores on first use.
//!
//! With it, `CREATE EXTERNAL TABLE ... LOCATION 's3://...'` and
//! `COPY ... TO 's3://...'` work without registering the bucket first: the
//! store is built from the URL and the environment, as a worker would.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use object_store::ObjectStore;
use url::Url;

/// Stores by `scheme://host`, built on demand by `squall_connectors::store::build_store`.
#[derive(Debug, Default)]
pub struct LazyObjectStoreRegistry {
    stores: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

fn key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""))
}

impl ObjectStoreRegistry for LazyObjectStoreRegistry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.stores
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key(url), store)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let k = key(url);
        if let Some(s) = self
            .stores
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&k)
        {
            return Ok(Arc::clone(s));
        }
        let store = squall_connectors::store::build_store(url)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.stores
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, Arc::clone(&store));
        Ok(store)
    }
}
