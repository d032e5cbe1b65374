"""The host's toolkit for families that generate points or images (GANs, diffusion, a plugin's own).

* :mod:`.data`: :class:`~.data.Samples` and the data itself: generated Gaussian mixtures
  (``ring``, ``grid``), scikit-learn's digits, image folders, .npy/.csv vectors, and
  :func:`~.data.load` for ``data.path`` (a registered dataset, a folder or a file).
* :mod:`.metrics`: the PacGAN protocol for the mixtures, classifier metrics for digits,
  and a label-free diversity.
* :mod:`.evaluation`: :class:`~.evaluation.SampleEvaluator` (a training task's ``evaluate``
  and ``on_eval``), :func:`~.evaluation.measure` and :func:`~.evaluation.draw`.
* :mod:`.io`: writing samples as .png, .csv or .npy (torch-free: runtime drivers use it).
* :mod:`.config`: the ``[data]`` config section these families share.

Nothing here is imported by ``import gentoolkit.samples``; import the module you need.
"""
