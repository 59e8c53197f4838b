//! Plan shapes beyond TPC-H, each checked against single-node DataFusion:
//! unions of complete and split results, outer and null-aware joins, window
//! functions, limits, distinct, constants.

mod common;

use common::{
    assert_no_failures, assert_same_rows, partition_every_join, reference_context, squall_session,
    tpch_data,
};

const QUERIES: &[&str] = &[
    // A complete aggregate next to split scan rows: produced once, not per task.
    "SELECT 'total' AS k, count(*) AS n FROM lineitem UNION ALL SELECT l_returnflag, count(*) FROM lineitem GROUP BY l_returnflag",
    "SELECT n_name FROM nation UNION ALL SELECT 'extra' UNION ALL SELECT r_name FROM region",
    "SELECT DISTINCT l_shipmode FROM lineitem",
    "SELECT o_orderpriority, count(DISTINCT o_custkey) FROM orders GROUP BY o_orderpriority",
    // Outer joins in every direction, and a full join.
    "SELECT c_custkey, count(o_orderkey) FROM customer LEFT JOIN orders ON c_custkey = o_custkey AND o_comment LIKE '%special%' GROUP BY c_custkey",
    "SELECT count(*), count(c_custkey) FROM orders RIGHT JOIN customer ON c_custkey = o_custkey",
    "SELECT count(*), count(s_suppkey), count(c_custkey) FROM supplier FULL JOIN customer ON s_nationkey = c_nationkey AND s_suppkey = c_custkey",
    // NOT IN is a null-aware anti join; NOT EXISTS a plain one.
    "SELECT count(*) FROM part WHERE p_partkey NOT IN (SELECT ps_partkey FROM partsupp WHERE ps_availqty < 100)",
    "SELECT count(*) FROM customer WHERE NOT EXISTS (SELECT 1 FROM orders WHERE o_custkey = c_custkey)",
    "SELECT count(*) FROM customer WHERE EXISTS (SELECT 1 FROM orders WHERE o_custkey = c_custkey AND o_totalprice > 400000)",
    // Window functions: partitioned by key, and over everything.
    "SELECT o_custkey, o_orderkey, rank() OVER (PARTITION BY o_custkey ORDER BY o_totalprice DESC) AS r FROM orders WHERE o_custkey < 200",
    "SELECT n_nationkey, sum(n_regionkey) OVER (ORDER BY n_nationkey) AS running FROM nation",
    // Limits with and without order; a limit of a split scan is global.
    "SELECT count(*) FROM (SELECT l_orderkey FROM lineitem LIMIT 1234)",
    "SELECT l_orderkey, l_linenumber FROM lineitem ORDER BY l_orderkey DESC, l_linenumber LIMIT 7",
    // Cross join with a scalar aggregate; constants only.
    "SELECT count(*) FROM nation, (SELECT max(r_regionkey) AS m FROM region) t WHERE n_regionkey < t.m",
    "SELECT 1 AS one, 'two' AS two",
    "SELECT count(*) FROM lineitem WHERE l_orderkey = -1",
];

/// Joins whose sides arrive already hash-partitioned, in another order of
/// the keys or on fewer of them: an exchange may be left out only where the
/// rows of every key already meet in one task.
const PARTITIONED_JOIN_QUERIES: &[&str] = &[
    // Both sides grouped by the join keys, the right side in the other order.
    "SELECT a.l_orderkey, a.l_suppkey, a.c, b.q FROM \
       (SELECT l_orderkey, l_suppkey, count(*) AS c FROM lineitem GROUP BY l_orderkey, l_suppkey) a \
       JOIN (SELECT l_suppkey, l_orderkey, sum(l_quantity) AS q FROM lineitem GROUP BY l_suppkey, l_orderkey) b \
       ON a.l_orderkey = b.l_orderkey AND a.l_suppkey = b.l_suppkey",
    // One side grouped by one of the two join keys only.
    "SELECT t.o_custkey, count(*) FROM \
       (SELECT o_custkey, max(o_orderdate) AS d FROM orders GROUP BY o_custkey) t \
       JOIN orders o ON t.o_custkey = o.o_custkey AND t.d = o.o_orderdate GROUP BY t.o_custkey",
    // A join's output grouped by its key, by the other side's key, by more keys.
    "SELECT o_custkey, count(*) FROM customer JOIN orders ON c_custkey = o_custkey GROUP BY o_custkey",
    "SELECT c_custkey, c_nationkey, sum(o_totalprice) FROM customer JOIN orders ON c_custkey = o_custkey GROUP BY c_custkey, c_nationkey",
    "SELECT c_nationkey, count(*) FROM customer LEFT JOIN orders ON c_custkey = o_custkey GROUP BY c_nationkey",
    "SELECT o_custkey, count(c_custkey) FROM customer RIGHT JOIN orders ON c_custkey = o_custkey AND c_acctbal > 0 GROUP BY o_custkey",
    "SELECT c_custkey, count(*) FROM customer FULL JOIN orders ON c_custkey = o_custkey AND o_totalprice > 300000 GROUP BY c_custkey",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_shapes_match_single_node_datafusion() {
    let data = tpch_data().await;
    let session = squall_session(data, 4).await;
    let failures = differences(
        &session,
        data,
        QUERIES.iter().chain(PARTITIONED_JOIN_QUERIES),
    )
    .await;
    assert_no_failures(&failures);
}

/// The same with every join partitioned (no broadcast), as joins of large
/// tables run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_shapes_match_single_node_datafusion_with_partitioned_joins() {
    let data = tpch_data().await;
    let session = squall_session(data, 4).await;
    partition_every_join(&session).await;
    let failures = differences(
        &session,
        data,
        QUERIES.iter().chain(PARTITIONED_JOIN_QUERIES),
    )
    .await;
    assert_no_failures(&failures);
}

/// One line per query of `queries` whose rows differ from single-node
/// DataFusion's, or that fails.
async fn differences(
    session: &squall_jobs::Session,
    data: &common::TpchData,
    queries: impl Iterator<Item = &'static &'static str>,
) -> Vec<String> {
    let reference = reference_context(data).await;
    let mut failures = Vec::new();
    for sql in queries {
        let actual = match session.query(sql).await {
            Ok(s) => s.collect().await,
            Err(e) => Err(e),
        };
        let expected = reference
            .sql(sql)
            .await
            .expect("reference plans")
            .collect()
            .await
            .expect("reference runs");
        match actual {
            Err(e) => failures.push(format!("{sql}\n  error: {e}")),
            Ok(actual) => {
                if let Err(diff) = assert_same_rows(&expected, &actual) {
                    failures.push(format!("{sql}\n  {diff}"));
                }
            }
        }
    }
    failures
}

/// With DataFusion's broadcast limits at 0, every join is planned
/// partitioned; Squall's own rule (`BroadcastCheapBuildSides`) then
/// broadcasts a build side where reading it in every task of the probe side
/// moves fewer bytes than exchanging both sides, and only there. The rows
/// stay single-node DataFusion's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_broadcast_where_that_moves_fewer_bytes() {
    let data = tpch_data().await;
    let session = squall_session(data, 4).await;
    partition_every_join(&session).await;
    let cases: &[(&str, &str)] = &[
        // A year of orders (two narrow columns) against all of lineitem.
        (
            "SELECT l_returnflag, sum(l_extendedprice) FROM orders JOIN lineitem ON o_orderkey = l_orderkey \
             WHERE o_orderdate >= DATE '1994-01-01' AND o_orderdate < DATE '1995-01-01' GROUP BY l_returnflag",
            "mode=CollectLeft, join_type=Inner",
        ),
        // Wide customers against their orders, read by few tasks: the
        // broadcast would move more than the exchange.
        (
            "SELECT c_name, c_address, c_comment, o_totalprice FROM customer JOIN orders ON c_custkey = o_custkey",
            "mode=Partitioned, join_type=Inner",
        ),
        // A left join's build side needs every probe row: never broadcast.
        (
            "SELECT c_custkey, count(o_orderkey) FROM customer LEFT JOIN orders ON c_custkey = o_custkey GROUP BY c_custkey",
            "mode=Partitioned, join_type=Left",
        ),
    ];
    let mut failures = Vec::new();
    for (sql, join) in cases {
        let graph = session.plan_stages(sql).await.expect("plans");
        let text = squall_planner::render_stage_graph(&graph);
        if !text.contains(join) {
            failures.push(format!("{sql}\n  expected {join} in:\n{text}"));
        }
    }
    let sqls: &'static [&'static str] = &[
        "SELECT l_returnflag, sum(l_extendedprice) FROM orders JOIN lineitem ON o_orderkey = l_orderkey \
         WHERE o_orderdate >= DATE '1994-01-01' AND o_orderdate < DATE '1995-01-01' GROUP BY l_returnflag",
        "SELECT c_name, c_address, c_comment, o_totalprice FROM customer JOIN orders ON c_custkey = o_custkey",
    ];
    failures.extend(differences(&session, data, sqls.iter()).await);
    assert_no_failures(&failures);
}
