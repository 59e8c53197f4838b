//! A query on AWS Lambda: the tasks run in the deployed `squall` function
//! (see `squall deploy lambda`), exchanging data through an S3 scratch
//! location. Needs AWS credentials, SQUALL_LAMBDA_FUNCTION and
//! SQUALL_SCRATCH (s3://bucket/prefix/); without them it says so and stops.
//!
//! SQUALL_LAMBDA_FUNCTION=squall-worker SQUALL_SCRATCH=s3://scratch/squall/ \
//!   cargo run --example lambda -- s3://lake/tpch/lineitem/

use std::sync::Arc;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (Ok(function), Ok(scratch)) = (
        std::env::var("SQUALL_LAMBDA_FUNCTION"),
        std::env::var("SQUALL_SCRATCH"),
    ) else {
        eprintln!(
            "set SQUALL_LAMBDA_FUNCTION and SQUALL_SCRATCH (s3://bucket/prefix/) to run this example"
        );
        return Ok(());
    };
    let lineitem = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "s3://lake/tpch/lineitem/".to_string());
    let backend = squall::LambdaBackend::try_new(squall::LambdaOptions {
        functions: vec![function],
        ..Default::default()
    })
    .await?;
    let session = squall::Session::builder()
        .backend(Arc::new(backend))
        .scratch(scratch)
        .build()?;
    session.register_table("lineitem", &lineitem).await?;
    session
        .sql("SELECT l_returnflag, count(*) AS lines FROM lineitem GROUP BY 1 ORDER BY 1")
        .await?
        .show()
        .await?;
    Ok(())
}
