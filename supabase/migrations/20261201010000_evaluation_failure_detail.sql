-- huntflow: what went wrong with a failed evaluation, next to its failure category.
-- Function and command models (issue 9) fail with a category (timeout, exception, exit_code,
-- invalid_output, nonfinite, or one the simulator names) and a small JSON detail: exception
-- type, message and traceback tail; exit code and stderr tail; what was found instead of a
-- metric. Parse writes it with the category; a retry of the generation clears it.

alter table hunt.evaluations add column if not exists failure_detail jsonb;
comment on column hunt.evaluations.failure_detail is 'Why a failed evaluation failed: {category, message, type, traceback, code, stderr_tail, found, walltime_seconds, tries} as applicable (null when it succeeded).';
