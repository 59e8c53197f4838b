//! The session's side of the cloud model: predicting a query's seconds and
//! dollars on Lambda + S3 from its plan, and planning it for a deadline or
//! a budget (see [`crate::cloud_model`]). Runs nothing.

use squall_planner::StageGraph;

use crate::analyze::QueryMeasures;
use crate::cloud_model::fanout::seconds_text;
use crate::cloud_model::fanout::{better_for, candidate_task_bytes, choose, size_stages_apart};
use crate::cloud_model::{
    Candidate, Goal, ModelParams, QueryPrediction, profile_from_measures, profiles_from_plan,
};
use crate::cost::dollars;
use crate::error::{JobError, Result};
use crate::session::Session;

/// The plans considered for a goal, and the one chosen.
#[derive(Debug, Clone)]
pub struct FanoutChoice {
    pub candidates: Vec<Candidate>,
    pub chosen: usize,
}

impl FanoutChoice {
    pub fn chosen(&self) -> &Candidate {
        &self.candidates[self.chosen]
    }
}

impl Session {
    /// `params` as they apply to this session: on a backend that bills
    /// function memory (Lambda), the deployed function's memory.
    pub fn cost_model_params(&self, params: &ModelParams) -> ModelParams {
        let mut params = params.clone();
        if let Some(bytes) = self.backend().billed_memory_bytes() {
            params.function_memory_mb = (bytes / (1024 * 1024)).max(1);
        }
        params
    }

    /// `squall explain --cost`: the stage graph of the last statement of
    /// `sql` as the session plans it (its fragments checked, as
    /// [`Session::explain`] does), and the model's prediction for it.
    pub async fn predict_cost(
        &self,
        sql: &str,
        params: &ModelParams,
    ) -> Result<(StageGraph, QueryPrediction)> {
        let params = self.checked_params(params)?;
        let graph = self.plan_checked(sql).await?;
        let prediction =
            crate::cloud_model::predict::predict(&profiles_from_plan(&graph, &params), &params);
        Ok((graph, prediction))
    }

    /// The input bytes per task that meets `goal` best for the last
    /// statement of `sql`: one plan per candidate size, each predicted;
    /// then, on the best, stages sized apart where the model predicts that
    /// meets the goal better still (see [`crate::cloud_model::fanout`]; for
    /// `sql` of one statement, since stages are known by their ids). An
    /// unreachable goal is an error naming the best that can be had.
    pub async fn choose_fanout(
        &self,
        sql: &str,
        goal: Goal,
        params: &ModelParams,
    ) -> Result<FanoutChoice> {
        let params = self.checked_params(params)?;
        // What a task may hold: the session's plan, and at most the share
        // of a function's memory a Lambda worker gives its task.
        let function_task_memory = (params.function_memory_mb as f64
            * 1024.0
            * 1024.0
            * squall_worker::memory::LAMBDA_POOL_SHARE) as u64;
        let largest = self.planning_memory_bytes().min(function_task_memory)
            / squall_planner::config::MEMORY_PER_INPUT_BYTE;
        let sizes = candidate_task_bytes(largest);
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut graphs: Vec<StageGraph> = Vec::new();
        for &size in &sizes {
            let mut config = self.planner_config();
            config.target_task_bytes = size;
            config.stage_target_task_bytes.clear();
            let (graph, _) = self.plan_without_running(sql, &config).await?;
            let prediction =
                crate::cloud_model::predict::predict(&profiles_from_plan(&graph, &params), &params);
            // A larger size that plans the same tasks is the same plan.
            let tasks = |p: &QueryPrediction| p.stages.iter().map(|s| s.tasks).collect::<Vec<_>>();
            if candidates
                .last()
                .is_some_and(|c| tasks(&c.prediction) == tasks(&prediction))
            {
                continue;
            }
            candidates.push(Candidate {
                target_task_bytes: size,
                stage_target_task_bytes: Default::default(),
                prediction,
            });
            graphs.push(graph);
        }
        let mut chosen = choose(&candidates, goal).map_err(JobError::Plan)?;
        let target = candidates[chosen].target_task_bytes;
        let mut config = self.planner_config();
        // Stages are sized apart by id, which only the last statement's
        // plan gives meaning to: with several statements, one size for all.
        let one_statement = self.parse(sql)?.len() == 1;
        if one_statement
            && let Some((apart, _)) = size_stages_apart(
                &graphs[chosen],
                target,
                &sizes,
                config.max_tasks_per_stage,
                goal,
                &params,
            )
        {
            // Planned again, since the planner has the last word on task
            // counts (one task per split at most, file groups kept).
            config.target_task_bytes = target;
            config.stage_target_task_bytes = apart.clone();
            let (graph, _) = self.plan_without_running(sql, &config).await?;
            let prediction =
                crate::cloud_model::predict::predict(&profiles_from_plan(&graph, &params), &params);
            let sized_apart = Candidate {
                target_task_bytes: target,
                stage_target_task_bytes: apart,
                prediction,
            };
            if better_for(
                goal,
                &sized_apart.prediction,
                &candidates[chosen].prediction,
            ) {
                candidates.push(sized_apart);
                chosen = candidates.len() - 1;
            }
        }
        Ok(FanoutChoice { candidates, chosen })
    }

    /// `EXPLAIN ANALYZE`'s line: what the run `measures` recorded of
    /// `graph` would take and cost on Lambda + S3, by the session's model.
    /// None when a stage has no measures (it did not run).
    pub(crate) fn predict_measured(
        &self,
        graph: &StageGraph,
        measures: &QueryMeasures,
    ) -> Option<String> {
        let params = self.checked_params(&self.options.cost_model).ok()?;
        let ran = measures.query_stages(measures.queries().checked_sub(1)?);
        let profiles = graph
            .stages
            .iter()
            .map(|stage| Some(profile_from_measures(stage, ran.get(&stage.id)?)))
            .collect::<Option<Vec<_>>>()?;
        let prediction = crate::cloud_model::predict::predict(&profiles, &params);
        Some(format!(
            "Predicted on AWS Lambda + S3 from these measures (a model's estimate; docs/cost-model.md): {}, {} on functions of {} MB",
            seconds_text(prediction.seconds),
            dollars(prediction.usd),
            params.function_memory_mb
        ))
    }

    fn checked_params(&self, params: &ModelParams) -> Result<ModelParams> {
        let params = self.cost_model_params(params);
        params.check().map_err(JobError::Plan)?;
        Ok(params)
    }
}
