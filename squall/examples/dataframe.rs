//! A DataFrame pipeline: filter, derive a column, aggregate, sort. Every
//! step is DataFusion's API; the session makes the whole plan run
//! distributed when it is executed.
//!
//! cargo run --example dataframe

use datafusion::arrow::datatypes::DataType;
use datafusion::functions_aggregate::expr_fn::{avg, count};
use datafusion::prelude::*;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let session = squall::Session::builder().workers(2).build()?;
    let numbers = session
        .sql("SELECT value AS n FROM range(1, 100001)")
        .await?;
    let by_digits = numbers
        .filter((col("n") % lit(3)).eq(lit(0)))?
        .with_column("digits", character_length(cast(col("n"), DataType::Utf8)))?
        .aggregate(
            vec![col("digits")],
            vec![
                count(lit(1)).alias("multiples_of_3"),
                avg(col("n")).alias("mean"),
            ],
        )?
        .sort(vec![col("digits").sort(true, true)])?;
    by_digits.show().await?;
    Ok(())
}
