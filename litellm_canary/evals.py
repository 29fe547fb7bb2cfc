"""Public path of the bundled scorers, as config files name them (``litellm_canary.evals:exact_match``).

The code lives in :mod:`litellm_canary.detection.evals`; this module keeps the public path.
"""

from litellm_canary.detection.evals import (
    MAX_BET as MAX_BET,
)
from litellm_canary.detection.evals import (
    PRIOR_VARIANCE as PRIOR_VARIANCE,
)
from litellm_canary.detection.evals import (
    TUNED_PAIRS as TUNED_PAIRS,
)
from litellm_canary.detection.evals import (
    EvalSide as EvalSide,
)
from litellm_canary.detection.evals import (
    EvalVerdict as EvalVerdict,
)
from litellm_canary.detection.evals import (
    Scorer as Scorer,
)
from litellm_canary.detection.evals import (
    SequentialEvalTest as SequentialEvalTest,
)
from litellm_canary.detection.evals import (
    answer_kind as answer_kind,
)
from litellm_canary.detection.evals import (
    check_score as check_score,
)
from litellm_canary.detection.evals import (
    exact_match as exact_match,
)
from litellm_canary.detection.evals import (
    json_schema_valid as json_schema_valid,
)
from litellm_canary.detection.evals import (
    load_scorer as load_scorer,
)
from litellm_canary.detection.evals import (
    mean_log_e_value as mean_log_e_value,
)
from litellm_canary.detection.evals import (
    plug_in_bet as plug_in_bet,
)
from litellm_canary.detection.evals import (
    reference_similarity as reference_similarity,
)
from litellm_canary.detection.evals import (
    regex_match as regex_match,
)
from litellm_canary.detection.evals import (
    response_text as response_text,
)
from litellm_canary.detection.evals import (
    token_f1 as token_f1,
)
