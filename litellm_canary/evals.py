"""Public path of the bundled scorers, as config files name them (``litellm_canary.evals:exact_match``).

The code lives in :mod:`litellm_canary.detection.evals` (:mod:`~litellm_canary.detection.evals.scorers`,
:mod:`~litellm_canary.detection.evals.answers`, :mod:`~litellm_canary.detection.evals.sequential`);
this module keeps the public path of the scorers, of the response-text helpers scorers use and of
the sequential test.
"""

from litellm_canary.detection.evals.answers import answer_kind, response_text
from litellm_canary.detection.evals.scorers import (
    Scorer,
    build_scorer,
    check_score,
    exact_match,
    json_schema_valid,
    load_scorer,
    reference_similarity,
    regex_match,
    token_f1,
)
from litellm_canary.detection.evals.sequential import (
    MAX_BET,
    PRIOR_VARIANCE,
    TUNED_PAIRS,
    EvalSide,
    EvalVerdict,
    SequentialEvalTest,
    mean_log_e_value,
    plug_in_bet,
)

__all__ = [
    "MAX_BET",
    "PRIOR_VARIANCE",
    "TUNED_PAIRS",
    "EvalSide",
    "EvalVerdict",
    "Scorer",
    "SequentialEvalTest",
    "answer_kind",
    "build_scorer",
    "check_score",
    "exact_match",
    "json_schema_valid",
    "load_scorer",
    "mean_log_e_value",
    "plug_in_bet",
    "reference_similarity",
    "regex_match",
    "response_text",
    "token_f1",
]
