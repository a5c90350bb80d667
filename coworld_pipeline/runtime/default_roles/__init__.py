"""Built-in default roles: what `softmax/default-{reporter,grader,diagnoser,optimizer}` resolve to.

Game-agnostic baselines that work from what every episode has (results with per-slot `scores`, and a
replay whose format is the game's own, read only where it looks like frames with ticks and scores):

* `reporter`: per-slot final scores, ranks and every per-slot numeric result field; episode length;
  per-tick score rows and lead changes when the replay has frames; a Markdown report.
* `grader`: how close (margin between the top two) and how eventful (lead changes) an episode was.
* `diagnoser`: one slot against the field (rank, gap to the winner and the mean, per-field standing);
  for a failed episode, whether that slot caused it, with the end of its player log.
* `optimizer`: a plan from many grades and diagnoses (weakest fields, episodes worth studying).

They follow the same env-var contract as any role and depend on the standard library and pyarrow
only: the host runs them as ``python -m coworld_pipeline.runtime.default_roles.<role>``; the docker
runtime mounts this directory read-only into a Python base image and runs
``python -m coworld_default_roles.<role>`` (relative imports keep both names working).
"""
