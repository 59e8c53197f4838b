//! SQL through a Squall session: the query runs as stages of in-process tasks.
//!
//! cargo run --example query

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let session = squall::Session::builder().workers(2).build()?;
    let df = session
        .sql(
            "SELECT value % 7 AS weekday, count(*) AS days, sum(value) AS total \
             FROM range(100000) GROUP BY 1 ORDER BY 1",
        )
        .await?;
    df.show().await?;
    Ok(())
}
