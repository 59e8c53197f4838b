//! An ETL step: raw CSV in, cleaned and aggregated Parquet out, written by
//! the tasks themselves (the files appear only once the query succeeded),
//! then read back.
//!
//! cargo run --example etl

use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::prelude::*;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let raw = dir.path().join("sales.csv");
    let mut csv = String::from("day,store,amount\n");
    for day in 1..=30 {
        for store in ["north", "south", "east"] {
            // Refunds are negative: the step leaves them out.
            let amount = if day % 10 == 0 { -5 } else { day * 3 };
            csv.push_str(&format!("2026-11-{day:02},{store},{amount}\n"));
        }
    }
    std::fs::write(&raw, csv)?;

    let session = squall::Session::builder().workers(2).build()?;
    let sales = session
        .read_csv(raw.to_str().unwrap(), CsvReadOptions::new())
        .await?;
    let curated = dir.path().join("sales_by_store");
    sales
        .filter(col("amount").gt(lit(0)))?
        .aggregate(
            vec![col("store")],
            vec![sum(col("amount")).alias("revenue")],
        )?
        .write_parquet(
            curated.to_str().unwrap(),
            DataFrameWriteOptions::new(),
            None,
        )
        .await?;

    session
        .read_parquet(curated.to_str().unwrap())
        .await?
        .sort(vec![col("store").sort(true, true)])?
        .show()
        .await?;
    Ok(())
}
