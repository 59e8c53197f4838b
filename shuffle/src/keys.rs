//! Object names of exchange and result objects.
//!
//! `{scratch}/{query}/s{stage}/{hash-prefix}/t{task}-a{attempt}.sqx`: the short
//! hash prefix spreads a stage's objects over many S3 key prefixes (S3 scales
//! request rates per prefix), and the attempt number makes every attempt's
//! object distinct, so the coordinator can pick a winner without any object
//! ever being overwritten.

/// A four-hex-digit prefix derived from the query, stage and task (FNV-1a).
pub fn hash_prefix(query_id: &str, stage: usize, task: usize) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in query_id
        .bytes()
        .chain(stage.to_le_bytes())
        .chain(task.to_le_bytes())
    {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:04x}", h & 0xffff)
}

/// Relative key of a map task attempt's exchange object, below the scratch prefix.
pub fn exchange_key(query_id: &str, stage: usize, task: usize, attempt: u32) -> String {
    format!(
        "{query_id}/s{stage}/{}/t{task}-a{attempt}.sqx",
        hash_prefix(query_id, stage, task)
    )
}

/// Relative key of a final-stage task attempt's result part, below the scratch prefix.
pub fn result_key(query_id: &str, stage: usize, task: usize, attempt: u32) -> String {
    format!(
        "{query_id}/s{stage}/{}/t{task}-a{attempt}.arrows",
        hash_prefix(query_id, stage, task)
    )
}

/// Relative key of a task spec too large for its backend's payload limit.
pub fn spec_key(query_id: &str, stage: usize, task: usize, attempt: u32) -> String {
    format!("{query_id}/s{stage}/specs/t{task}-a{attempt}.json")
}

/// Relative key of the backup specs of a launcher group whose first task is
/// `first_task` (see `squall_jobs::group_speculation`).
pub fn group_backups_key(query_id: &str, stage: usize, first_task: usize) -> String {
    format!("{query_id}/s{stage}/specs/g{first_task}-backups.json")
}

/// Relative key of a plan fragment too large to travel inside a TaskSpec.
pub fn fragment_key(query_id: &str, stage: usize) -> String {
    format!("{query_id}/s{stage}/fragment.bin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_attempt_scoped_and_spread() {
        let a = exchange_key("q1", 2, 7, 0);
        let b = exchange_key("q1", 2, 7, 1);
        assert_ne!(a, b);
        assert!(a.starts_with("q1/s2/") && a.ends_with("/t7-a0.sqx"), "{a}");
        let prefixes: std::collections::HashSet<_> =
            (0..64).map(|t| hash_prefix("q1", 2, t)).collect();
        assert!(
            prefixes.len() > 32,
            "prefixes should spread: {}",
            prefixes.len()
        );
    }
}
