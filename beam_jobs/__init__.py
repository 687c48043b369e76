"""Apache Beam pipelines: thin composite PTransforms over av_pipeline functions."""
