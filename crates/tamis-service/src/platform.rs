//! The platform's store: where metadata lives and how it is brought up to date.

use crate::ServiceError;

/// The default metadata database: an SQLite file under the data directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./tamis-data/tamis.db";

/// Connects to the metadata database and applies the migrations it lacks;
/// returns the store, ready for use.
pub async fn open_store(url: &str) -> Result<tamis_store::Store, ServiceError> {
    let store = tamis_store::Store::connect(url).await?;
    store.migrate().await?;
    Ok(store)
}
