"""The Executor: runs a named model under the caller's deadline and reports how long it took.

Backends (``--backend``):

- ``embedded`` (default): TensorFlow in the Executor process, loading SavedModels from a TF
  Serving base path (``--model-base``; ``modipick zoo build`` makes one).
- ``tfserving``: a real TensorFlow Serving over gRPC. Run it on the same pool, e.g.::

      modipick zoo build --pool digits --out /srv/pool --config-base-path /models
      docker run -p 8500:8500 -v /srv/pool:/models tensorflow/serving \\
          --model_config_file=/models/models.config --model_config_file_poll_wait_seconds=60
      modipick executor --backend tfserving --tfserving-target 127.0.0.1:8500 --model-base /srv/pool

  ``--model-base`` is still read (not served) by this backend: TF Serving cannot list its models,
  so their names and declared accuracies come from the pool's models.config and manifest.json.
  ``--config-base-path /models`` writes the container's paths into models.config.
"""
