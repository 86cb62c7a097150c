"""The jobs: one module per rule file. The only place that reads run configs and stores and
calls :mod:`ntkpipe.core`.

- :mod:`~ntkpipe.jobs.init` (rule ``init``), :mod:`~ntkpipe.jobs.kernels` (``kernel_init``,
  ``kernel_final``), :mod:`~ntkpipe.jobs.analytic`, :mod:`~ntkpipe.jobs.train` (with the
  training driver, its checkpoints and the trajectory records), :mod:`~ntkpipe.jobs.linear`
  (closed form and direct f_lin), :mod:`~ntkpipe.jobs.compare`, :mod:`~ntkpipe.jobs.ensemble`
  (Fig. 2 / S1), :mod:`~ntkpipe.jobs.analysis` (``collect``, ``figures``, ``report``) and
  :mod:`~ntkpipe.jobs.run` (every stage of one run in one job, ``resources.jobs: runs``);
- private: :mod:`~ntkpipe.jobs._job` (the one run-config reader, the job and its store, the
  run's precision, dataset and network) and :mod:`~ntkpipe.jobs._weights` (the sampled weights of
  Fig. 3, shared by train and linear).

Which module and function runs each rule is the stage table's
(:mod:`ntkpipe.sweep.stage_table`).
"""
