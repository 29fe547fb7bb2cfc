"""Eval scores of a running canary: what a score is, how the scores are judged, how they are gathered.

* :mod:`.answers` — the text of a chat completion or Responses API answer;
* :mod:`.scorers` — the scorer interface, the bundled scorers, loading a user's scorer;
* :mod:`.sequential` — the always-valid sequential test (testing by betting) and combining sources;
* :mod:`.judge` — one rollout's tests, one per score source, and the ``eval_score`` verdict;
* :mod:`.sample_queue` — the bounded queue between the request path and the scorer;
* :mod:`.sampling` — the eval pipeline: sampling, scoring, golden rounds, status;
* :mod:`.worker` — the scoring thread and its event loop.

Nothing is re-exported here (import from the modules): :mod:`litellm_canary.detection.golden` uses
the scorers and the pipeline uses golden sets, so a re-export of the pipeline would make a circle.
"""
