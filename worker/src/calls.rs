//! Every kind of cloud request a worker makes, and the permissions each needs.
//!
//! A worker reaches the cloud in two ways only: object storage, through the
//! [`CountingStore`](crate::counting_store::CountingStore) that wraps every
//! store of a task (each of its methods names the [`WorkerCall`] it makes;
//! fetching a spec by reference is a [`WorkerCall::GetObject`] on scratch),
//! and the Lambda Invoke API, when a worker runs as a launcher
//! (`squall_jobs::run_launcher`). The IAM policy of the worker function
//! (`squall deploy lambda --print-policy`) is derived from [`WorkerCall::ALL`]:
//! a call missing here is a call the deployed function is denied.

/// One kind of request a worker makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerCall {
    /// Reads an object or a byte range of one.
    GetObject,
    /// Reads an object's size and version.
    HeadObject,
    /// Lists objects under a prefix.
    ListObjects,
    /// Writes a whole object.
    PutObject,
    /// Writes an object in parts (exchange data, large files), or abandons
    /// such a write.
    MultipartUpload,
    /// Deletes objects.
    DeleteObject,
    /// Copies an object, or renames it (copy, then delete).
    CopyObject,
    /// Invokes the worker function itself: a launcher starts its share of a
    /// stage's tasks.
    InvokeFunction,
    /// The function's log lines (written by Lambda on the function's behalf).
    WriteLogs,
}

/// What a call is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallTarget {
    /// Tables the user's queries read.
    Inputs,
    /// The scratch prefix: specs, fragments, exchange data, results.
    Scratch,
    /// Destinations of `COPY`/`INSERT`: tasks write below `_squall_staging/`
    /// beside them.
    Destinations,
    /// The worker function (its versions and aliases too).
    OwnFunction,
    /// The function's log groups.
    Logs,
}

impl WorkerCall {
    /// Every call a worker makes.
    pub const ALL: [WorkerCall; 9] = [
        WorkerCall::GetObject,
        WorkerCall::HeadObject,
        WorkerCall::ListObjects,
        WorkerCall::PutObject,
        WorkerCall::MultipartUpload,
        WorkerCall::DeleteObject,
        WorkerCall::CopyObject,
        WorkerCall::InvokeFunction,
        WorkerCall::WriteLogs,
    ];

    /// The IAM actions the call needs on AWS.
    pub fn iam_actions(self) -> &'static [&'static str] {
        match self {
            WorkerCall::GetObject | WorkerCall::HeadObject => &["s3:GetObject"],
            WorkerCall::ListObjects => &["s3:ListBucket"],
            WorkerCall::PutObject => &["s3:PutObject"],
            WorkerCall::MultipartUpload => &["s3:PutObject", "s3:AbortMultipartUpload"],
            WorkerCall::DeleteObject => &["s3:DeleteObject"],
            WorkerCall::CopyObject => &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            WorkerCall::InvokeFunction => &["lambda:InvokeFunction"],
            WorkerCall::WriteLogs => &[
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
        }
    }

    /// What the call is made on.
    pub fn targets(self) -> &'static [CallTarget] {
        use CallTarget::*;
        match self {
            WorkerCall::GetObject | WorkerCall::HeadObject | WorkerCall::ListObjects => {
                &[Inputs, Scratch]
            }
            WorkerCall::PutObject | WorkerCall::MultipartUpload => &[Scratch, Destinations],
            WorkerCall::DeleteObject | WorkerCall::CopyObject => &[Scratch],
            WorkerCall::InvokeFunction => &[OwnFunction],
            WorkerCall::WriteLogs => &[Logs],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_call_once() {
        // A new variant fails to compile here until it is placed in ALL.
        let position = |call: WorkerCall| match call {
            WorkerCall::GetObject => 0,
            WorkerCall::HeadObject => 1,
            WorkerCall::ListObjects => 2,
            WorkerCall::PutObject => 3,
            WorkerCall::MultipartUpload => 4,
            WorkerCall::DeleteObject => 5,
            WorkerCall::CopyObject => 6,
            WorkerCall::InvokeFunction => 7,
            WorkerCall::WriteLogs => 8,
        };
        for (i, call) in WorkerCall::ALL.iter().enumerate() {
            assert_eq!(position(*call), i);
            assert!(!call.iam_actions().is_empty() && !call.targets().is_empty());
        }
    }
}
