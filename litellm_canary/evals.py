"""Public path of the bundled scorers, as config files name them (``litellm_canary.evals:exact_match``).

The code lives in :mod:`litellm_canary.detection.evals` (:mod:`~litellm_canary.detection.evals.scorers`,
:mod:`~litellm_canary.detection.evals.answers`, :mod:`~litellm_canary.detection.evals.sequential`);
this module keeps the public path of the scorers, of the response-text helpers scorers use and of
the sequential test.
"""

from litellm_canary.detection.evals.answers import answer_kind as answer_kind
from litellm_canary.detection.evals.answers import response_text as response_text
from litellm_canary.detection.evals.scorers import Scorer as Scorer
from litellm_canary.detection.evals.scorers import build_scorer as build_scorer
from litellm_canary.detection.evals.scorers import check_score as check_score
from litellm_canary.detection.evals.scorers import exact_match as exact_match
from litellm_canary.detection.evals.scorers import json_schema_valid as json_schema_valid
from litellm_canary.detection.evals.scorers import load_scorer as load_scorer
from litellm_canary.detection.evals.scorers import reference_similarity as reference_similarity
from litellm_canary.detection.evals.scorers import regex_match as regex_match
from litellm_canary.detection.evals.scorers import token_f1 as token_f1
from litellm_canary.detection.evals.sequential import MAX_BET as MAX_BET
from litellm_canary.detection.evals.sequential import PRIOR_VARIANCE as PRIOR_VARIANCE
from litellm_canary.detection.evals.sequential import TUNED_PAIRS as TUNED_PAIRS
from litellm_canary.detection.evals.sequential import EvalSide as EvalSide
from litellm_canary.detection.evals.sequential import EvalVerdict as EvalVerdict
from litellm_canary.detection.evals.sequential import SequentialEvalTest as SequentialEvalTest
from litellm_canary.detection.evals.sequential import mean_log_e_value as mean_log_e_value
from litellm_canary.detection.evals.sequential import plug_in_bet as plug_in_bet
